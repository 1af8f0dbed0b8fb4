//! GC's mark phase: a snapshot of what references what, and from it the
//! manifests, links and blobs that are garbage at this moment. Pure once
//! loaded; every item is re-checked under the lock before it is deleted.

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use crate::error::StorageError;
use crate::meta::Meta;
use crate::oci::Digest;

pub(crate) struct ManifestNode {
    pub(crate) repo_id: i64,
    pub(crate) digest: Digest,
    pub(crate) subject: Option<Digest>,
    pub(crate) created_at: i64,
}

pub(crate) struct Reference {
    pub(crate) repo_id: i64,
    pub(crate) manifest: Digest,
    pub(crate) child: Digest,
    pub(crate) is_manifest: bool,
}

pub(crate) struct BlobNode {
    pub(crate) digest: Digest,
    pub(crate) touched_ms: i64,
}

#[derive(Default)]
pub(crate) struct Graph {
    pub(crate) repos: HashMap<i64, String>,
    pub(crate) manifests: Vec<ManifestNode>,
    pub(crate) tags: HashSet<(i64, Digest)>,
    pub(crate) refs: Vec<Reference>,
    pub(crate) blobs: Vec<BlobNode>,
    pub(crate) links: Vec<(i64, Digest)>,
}

impl Graph {
    pub(crate) fn repo_name(&self, id: i64) -> &str {
        self.repos.get(&id).map_or("?", String::as_str)
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) manifests: Vec<(i64, Digest)>,
    pub(crate) links: Vec<(i64, Digest)>,
    pub(crate) blobs: Vec<Digest>,
}

fn digest(row: &sqlx::any::AnyRow, col: &str) -> Result<Digest, StorageError> {
    row.try_get::<String, _>(col)?.parse()
}

/// Reads the snapshot. Not one transaction: each later table is read after
/// the earlier ones, and anything that appears in between is younger than
/// the grace window (or re-checked), so it is never deleted.
pub(crate) async fn load(meta: &Meta) -> Result<Graph, StorageError> {
    let pool = meta.pool();
    let mut g = Graph::default();
    for row in sqlx::query("SELECT id, name FROM repositories")
        .fetch_all(pool)
        .await?
    {
        g.repos.insert(row.try_get("id")?, row.try_get("name")?);
    }
    // Blobs first: a blob pushed after this read is not a candidate at all.
    for row in sqlx::query("SELECT digest, touched_ms FROM blobs")
        .fetch_all(pool)
        .await?
    {
        g.blobs.push(BlobNode {
            digest: digest(&row, "digest")?,
            touched_ms: row.try_get("touched_ms")?,
        });
    }
    for row in sqlx::query("SELECT repo_id, digest FROM repo_blobs")
        .fetch_all(pool)
        .await?
    {
        g.links
            .push((row.try_get("repo_id")?, digest(&row, "digest")?));
    }
    for row in sqlx::query("SELECT repo_id, digest, subject, created_at FROM manifests")
        .fetch_all(pool)
        .await?
    {
        g.manifests.push(ManifestNode {
            repo_id: row.try_get("repo_id")?,
            digest: digest(&row, "digest")?,
            subject: row
                .try_get::<Option<String>, _>("subject")?
                .map(|s| s.parse())
                .transpose()?,
            created_at: row.try_get("created_at")?,
        });
    }
    for row in sqlx::query("SELECT repo_id, manifest_digest FROM tags")
        .fetch_all(pool)
        .await?
    {
        g.tags
            .insert((row.try_get("repo_id")?, digest(&row, "manifest_digest")?));
    }
    for row in
        sqlx::query("SELECT repo_id, manifest_digest, child_digest, is_manifest FROM manifest_refs")
            .fetch_all(pool)
            .await?
    {
        g.refs.push(Reference {
            repo_id: row.try_get("repo_id")?,
            manifest: digest(&row, "manifest_digest")?,
            child: digest(&row, "child_digest")?,
            is_manifest: crate::meta::flag(&row, "is_manifest")?,
        });
    }
    Ok(g)
}

/// What is garbage in `g`. Manifests created at or after `cutoff_s` and
/// blobs touched at or after `cutoff_ms` are inside the grace window.
pub(crate) fn plan(g: &Graph, delete_untagged: bool, cutoff_s: i64, cutoff_ms: i64) -> Plan {
    let kept = kept_manifests(g, delete_untagged, cutoff_s);
    let manifests: Vec<(i64, Digest)> = g
        .manifests
        .iter()
        .map(|m| (m.repo_id, m.digest.clone()))
        .filter(|key| !kept.contains(key))
        .collect();

    let mut used_in_repo: HashSet<(i64, &Digest)> = HashSet::new();
    let mut used: HashSet<&Digest> = HashSet::new();
    for r in g.refs.iter().filter(|r| !r.is_manifest) {
        if kept.contains(&(r.repo_id, r.manifest.clone())) {
            used_in_repo.insert((r.repo_id, &r.child));
            used.insert(&r.child);
        }
    }
    let old: HashSet<&Digest> = g
        .blobs
        .iter()
        .filter(|b| b.touched_ms < cutoff_ms)
        .map(|b| &b.digest)
        .collect();
    let blobs: Vec<Digest> = g
        .blobs
        .iter()
        .filter(|b| old.contains(&b.digest) && !used.contains(&b.digest))
        .map(|b| b.digest.clone())
        .collect();
    let doomed: HashSet<&Digest> = blobs.iter().collect();
    // Links of blobs that stay (used elsewhere) but not in this repository.
    let links = g
        .links
        .iter()
        .filter(|(repo, d)| {
            old.contains(d) && !doomed.contains(d) && !used_in_repo.contains(&(*repo, d))
        })
        .cloned()
        .collect();
    Plan {
        manifests,
        links,
        blobs,
    }
}

/// Every manifest that stays: all of them without `delete_untagged`;
/// otherwise the tagged and the young, and, transitively, the children of
/// kept indexes and the referrers of kept subjects (same repository).
fn kept_manifests(g: &Graph, delete_untagged: bool, cutoff_s: i64) -> HashSet<(i64, Digest)> {
    let all = g.manifests.iter().map(|m| (m.repo_id, m.digest.clone()));
    if !delete_untagged {
        return all.collect();
    }
    let mut children: HashMap<(i64, &Digest), Vec<&Digest>> = HashMap::new();
    for r in g.refs.iter().filter(|r| r.is_manifest) {
        children
            .entry((r.repo_id, &r.manifest))
            .or_default()
            .push(&r.child);
    }
    let mut referrers: HashMap<(i64, &Digest), Vec<&Digest>> = HashMap::new();
    for m in &g.manifests {
        if let Some(subject) = &m.subject {
            referrers
                .entry((m.repo_id, subject))
                .or_default()
                .push(&m.digest);
        }
    }
    let mut stack: Vec<(i64, &Digest)> = g
        .manifests
        .iter()
        .filter(|m| m.created_at >= cutoff_s || g.tags.contains(&(m.repo_id, m.digest.clone())))
        .map(|m| (m.repo_id, &m.digest))
        .collect();
    let mut kept: HashSet<(i64, Digest)> = HashSet::new();
    while let Some((repo, d)) = stack.pop() {
        if !kept.insert((repo, d.clone())) {
            continue;
        }
        for next in [children.get(&(repo, d)), referrers.get(&(repo, d))]
            .into_iter()
            .flatten()
            .flatten()
        {
            stack.push((repo, next));
        }
    }
    // Only manifests that exist: a dangling child reference keeps nothing.
    let existing: HashSet<(i64, Digest)> = all.collect();
    kept.retain(|k| existing.contains(k));
    kept
}
