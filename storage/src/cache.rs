//! In-memory caches in front of the metadata database, so the hot path
//! (blob HEAD/GET, manifest GET by tag, anonymous project checks) does no
//! database round trip on repeat requests.
//!
//! They are caches only: every entry can be rebuilt from the database, the
//! registry invalidates what it changes, and short lifetimes bound how long
//! another process's change (in the scale-out mode) can go unseen.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use crate::changes::{Change, Epoch};
use crate::meta::StoredManifest;
use crate::oci::{Digest, RepoName, Tag};
use crate::registry::ProjectInfo;

/// Blob links and manifests by digest are immutable until deleted.
const CONTENT_TTL: Duration = Duration::from_secs(60);
/// Tags move; another process's retag shows within this time.
const TAG_TTL: Duration = Duration::from_secs(5);
/// Total bytes of manifest content kept in memory.
const MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

/// Size and object-store location of a blob readable in a repository.
pub(crate) type BlobAt = (u64, Option<Arc<str>>);

pub(crate) struct Caches {
    pub(crate) blob_links: Cache<(RepoName, Digest), BlobAt>,
    pub(crate) by_digest: Cache<(RepoName, Digest), Arc<StoredManifest>>,
    pub(crate) by_tag: Cache<(RepoName, Tag), Arc<StoredManifest>>,
    pub(crate) projects: Cache<String, Option<ProjectInfo>>,
    /// Invalidations of any of them: a fill whose query ran across one is
    /// not kept (see `changes::Epoch`).
    pub(crate) epoch: Epoch,
}

fn manifest_cache<K>(ttl: Duration) -> Cache<K, Arc<StoredManifest>>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(MANIFEST_BYTES)
        .weigher(|_, m: &Arc<StoredManifest>| m.content.len().try_into().unwrap_or(u32::MAX))
        .time_to_live(ttl)
        .build()
}

impl Caches {
    pub(crate) fn new() -> Caches {
        Caches {
            blob_links: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(CONTENT_TTL)
                .build(),
            by_digest: manifest_cache(CONTENT_TTL),
            by_tag: manifest_cache(TAG_TTL),
            projects: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
            epoch: Epoch::default(),
        }
    }
}

impl Caches {
    /// Drops what `change` makes stale (see `changes`).
    pub(crate) fn apply(&self, change: &Change) {
        self.epoch.bump();
        match change {
            Change::Tag { repo, tag } => {
                if let (Ok(repo), Ok(tag)) = (repo.parse::<RepoName>(), tag.parse::<Tag>()) {
                    self.by_tag.invalidate(&(repo, tag));
                }
            }
            Change::AnyTag => self.by_tag.invalidate_all(),
            Change::Manifest { repo, digest } => {
                if let (Ok(repo), Ok(digest)) = (repo.parse::<RepoName>(), digest.parse::<Digest>())
                {
                    self.by_digest.invalidate(&(repo, digest));
                }
            }
            Change::BlobLink { repo, digest } => {
                if let (Ok(repo), Ok(digest)) = (repo.parse::<RepoName>(), digest.parse::<Digest>())
                {
                    self.blob_links.invalidate(&(repo, digest));
                }
            }
            Change::Project { name } => self.projects.invalidate(name),
            Change::Content => {
                self.blob_links.invalidate_all();
                self.by_digest.invalidate_all();
                self.by_tag.invalidate_all();
            }
            Change::Everything => {
                self.apply(&Change::Content);
                self.projects.invalidate_all();
            }
            // Not cached here.
            Change::Access
            | Change::Endpoint { .. }
            | Change::ReplicationPolicies
            | Change::WebhookPolicies
            | Change::Configuration { .. }
            | Change::Keys => {}
        }
    }
}
