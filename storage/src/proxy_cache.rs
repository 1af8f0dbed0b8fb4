//! What a pull-through cache keeps: manifests fetched from an upstream
//! (stored without their blobs, which arrive when clients ask for them)
//! and blobs fetched into temp files, verified, then committed like an
//! upload. The gateway does the fetching; this module only stores.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use uuid::Uuid;

use crate::blobs::{read_dir, BlobStore};
use crate::error::StorageError;
use crate::locks::Scope;
use crate::meta::{Meta, StoredManifest};
use crate::oci::{manifest, Digest, ParsedManifest, RepoName, Tag};
use crate::owner::{self, Liveness};
use crate::registry::Registry;

/// A fetch directory of a process whose liveness cannot be told (another
/// container on the same data) is removed when nothing in it changed for
/// this long: a fetch that is still running writes all the time, and the
/// upstream client gives up on a silent upstream long before.
const FOREIGN_FETCH_AGE: Duration = Duration::from_secs(24 * 3600);

/// When anything in `path` (a file, or a directory and its files) last
/// changed.
fn newest_change(path: &Path) -> Option<SystemTime> {
    let own = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    if !path.is_dir() {
        return own;
    }
    read_dir(path)
        .ok()?
        .iter()
        .filter_map(|e| e.metadata().and_then(|m| m.modified()).ok())
        .chain(own)
        .max()
}

/// A cached repository's footprint, for eviction.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedManifest {
    pub repo: RepoName,
    pub digest: Digest,
    /// Last pull, or when it was cached if never pulled (seconds).
    pub last_used: i64,
}

impl Registry {
    /// Stores a manifest fetched from an upstream under `repo`, tagging it
    /// when fetched by tag. The blobs it names need not be here yet: a
    /// cache fills them on demand. `digest` is what the client asked for or
    /// the upstream announced; the content must hash to it. Returns the
    /// manifest as a later GET would read it.
    pub async fn cache_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        content_type: Option<&str>,
        content: Bytes,
        tag: Option<&Tag>,
    ) -> Result<StoredManifest, StorageError> {
        if content.len() > self.max_manifest_size() {
            return Err(StorageError::ManifestTooLarge {
                limit: self.max_manifest_size(),
            });
        }
        let actual = Digest::compute(digest.algorithm(), &content);
        if &actual != digest {
            return Err(StorageError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let parsed = manifest::parse(content_type, &content)?;
        self.meta()
            .put_cached_manifest(repo, digest, &parsed, &content, tag)
            .await?;
        if let Some(tag) = tag {
            self.forget_tag(repo, tag);
        }
        Ok(StoredManifest {
            digest: digest.clone(),
            media_type: parsed.kind.media_type().to_owned(),
            content,
        })
    }

    /// A new temp file for a blob being fetched from an upstream, in this
    /// process's own fetch directory (`_fetch/<pid@host@boot>`): other
    /// processes on the same data never take it for a leftover.
    pub fn fetch_file(&self) -> Result<(PathBuf, File), StorageError> {
        let dir = self.fetch_root().join(owner::this_process());
        std::fs::create_dir_all(&dir)
            .map_err(StorageError::io(format!("creating {}", dir.display())))?;
        let path = dir.join(Uuid::new_v4().simple().to_string());
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(StorageError::io(format!("creating {}", path.display())))?;
        Ok((path, file))
    }

    fn fetch_root(&self) -> PathBuf {
        self.blob_store().root().join("_fetch")
    }

    /// At the server's start, before it fetches anything: removes the
    /// fetch directories of processes that are gone: of this machine when
    /// their process no longer runs (or has this process's id, so it is a
    /// predecessor's), of elsewhere once untouched for `FOREIGN_FETCH_AGE`.
    /// A live process's fetches stay.
    pub(crate) fn clear_stale_fetches(&self) -> Result<(), StorageError> {
        let root = self.fetch_root();
        let stale_before = SystemTime::now()
            .checked_sub(FOREIGN_FETCH_AGE)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        for entry in read_dir(&root)? {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = match owner::liveness(&name) {
                Liveness::This | Liveness::Dead => true,
                Liveness::Alive => false,
                // Another container's, or a file of an older version.
                Liveness::Unknown => newest_change(&path).is_some_and(|t| t < stale_before),
            };
            if !stale {
                continue;
            }
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match removed {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(format!("clearing {}", path.display()))(e)),
            }
        }
        Ok(())
    }

    /// Commits a fetched blob whose digest the caller verified, and links
    /// it into `repo`.
    pub async fn commit_fetched(
        &self,
        repo: &RepoName,
        digest: &Digest,
        temp: PathBuf,
        file: File,
        size: u64,
    ) -> Result<(), StorageError> {
        if let Some(objects) = self.objects.clone() {
            let location = crate::objects::new_location();
            let stored = objects.put_file(&location, file, size).await;
            let _ = std::fs::remove_file(&temp);
            stored?;
            let recorded = self
                .meta()
                .commit_located_blob(repo, digest, size, &location)
                .await;
            if crate::objects::unowned_after(&recorded) {
                let _ = objects.delete(&objects.blob_path(&location)).await;
            }
            recorded?;
            self.forget_blob_link(repo, digest);
            return Ok(());
        }
        let d = digest.clone();
        tokio::task::spawn_blocking(move || BlobStore::sync_upload(&file, &d))
            .await
            .map_err(|e| StorageError::Io {
                context: "syncing fetched blob".into(),
                source: std::io::Error::other(e),
            })??;
        // Placed under the database's write lock, like an upload: GC can
        // never remove the file between the rename and the row.
        let blobs = self.blob_store().clone();
        let placed = digest.clone();
        self.meta()
            .commit_blob(repo, digest, size, move || blobs.place(&temp, &placed))
            .await?;
        self.forget_blob_link(repo, digest);
        Ok(())
    }

    /// Whether a blob's bytes are in the store at all (in any repository).
    pub async fn blob_stored(&self, digest: &Digest) -> Result<Option<u64>, StorageError> {
        let size = self.meta().blob_size(digest).await?;
        // An object store's rows are the truth; a file may be missing
        // under a row a killed GC left.
        Ok(size.filter(|_| self.objects.is_some() || self.blob_store().exists(digest)))
    }

    /// Links a blob already in the store into `repo` (after the upstream
    /// confirmed `repo` has it, so no download is needed). False when GC
    /// deleted it meanwhile: the caller downloads it instead.
    pub async fn link_existing(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<bool, StorageError> {
        let linked = self.meta().link_stored_blob(repo, digest).await?;
        if linked {
            self.forget_blob_link(repo, digest);
        }
        Ok(linked)
    }
}

/// What one eviction pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Eviction {
    pub manifests: u64,
    /// Blob links dropped from cache repositories; the bytes go at the
    /// next garbage collection.
    pub blob_links: u64,
    /// Bytes the cache projects held before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

impl Registry {
    /// Evicts cached images from the cache projects named: every manifest
    /// not pulled since `unused_before` (seconds), then the least recently
    /// pulled ones while the projects hold more than `max_bytes`. An
    /// evicted manifest takes its tags and its repository's links to blobs
    /// no remaining manifest there references.
    pub async fn evict_cached(
        &self,
        projects: &[String],
        max_bytes: Option<u64>,
        unused_before: i64,
    ) -> Result<Eviction, StorageError> {
        let meta = self.meta();
        let mut done = Eviction {
            bytes_before: meta.projects_blob_bytes(projects).await?,
            ..Eviction::default()
        };
        let mut bytes = done.bytes_before;
        for m in meta.cached_manifests_lru(projects).await? {
            let stale = m.last_used < unused_before;
            let over = max_bytes.is_some_and(|max| bytes > max);
            if !stale && !over {
                // The list is oldest first: nothing later is stale either.
                break;
            }
            let (removed, links) = meta.evict_manifest(&m.repo, &m.digest).await?;
            if removed {
                done.manifests += 1;
                done.blob_links += links;
                if links > 0 {
                    bytes = meta.projects_blob_bytes(projects).await?;
                }
            }
        }
        if done.manifests > 0 {
            self.forget_content().await;
        }
        done.bytes_after = bytes;
        Ok(done)
    }
}

impl Meta {
    /// Deletes a cached manifest (tags go with it) and its repository's
    /// links to blobs no remaining manifest of the repository references,
    /// in one transaction. Returns whether it existed and the links dropped.
    pub async fn evict_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<(bool, u64), StorageError> {
        let mut tx = self.write_in(Scope::Project(repo)).await?;
        let repo_id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
                .bind(repo.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(repo_id) = repo_id else {
            return Ok((false, 0));
        };
        sqlx::query("DELETE FROM tags WHERE repo_id = $1 AND manifest_digest = $2")
            .bind(repo_id)
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?;
        let removed = sqlx::query("DELETE FROM manifests WHERE repo_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        let links = sqlx::query(
            "DELETE FROM repo_blobs WHERE repo_id = $1 AND digest NOT IN \
             (SELECT child_digest FROM manifest_refs WHERE repo_id = $1)",
        )
        .bind(repo_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok((removed, links))
    }

    /// Links a stored blob into `repo` if its row still exists, re-read
    /// under the project's write lock like a mount: GC deletes a blob's row
    /// and file under the exclusive lock, so either it deleted first and nothing is linked
    /// (a row recreated here would have no file), or it sees the fresh
    /// touch and keeps the blob.
    pub async fn link_stored_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<bool, StorageError> {
        let repo_id = self.ensure_repo(repo).await?;
        let mut tx = self.write_in(Scope::Project(repo)).await?;
        let size: Option<i64> = sqlx::query_scalar("SELECT size FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(size) = size else {
            return Ok(false);
        };
        crate::meta::touch_and_link(&mut tx, repo_id, digest, size as u64, None).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, StorageError> {
        let size: Option<i64> = sqlx::query_scalar("SELECT size FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(self.pool())
            .await?;
        Ok(size.map(|s| s as u64))
    }

    /// Stores a manifest and (if given) moves a tag to it, without the
    /// check that its blobs are present: a cache fetches them lazily.
    pub async fn put_cached_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        parsed: &ParsedManifest,
        content: &[u8],
        tag: Option<&Tag>,
    ) -> Result<(), StorageError> {
        let repo_id = self.ensure_repo(repo).await?;
        let mut tx = self.write_in(Scope::Project(repo)).await?;
        let tags: Vec<Tag> = tag.into_iter().cloned().collect();
        crate::meta::write_manifest(&mut tx, repo_id, digest, parsed, content, &tags).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Manifests of the cache projects named, least recently used first.
    pub async fn cached_manifests_lru(
        &self,
        projects: &[String],
    ) -> Result<Vec<CachedManifest>, StorageError> {
        let json = serde_json::to_string(projects).unwrap_or_else(|_| "[]".into());
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT r.name, m.digest, COALESCE(m.pulled_at, m.created_at) AS used \
             FROM manifests m JOIN repositories r ON r.id = m.repo_id \
             WHERE substr(r.name, 1, instr(r.name, '/') - 1) IN (SELECT value FROM json_each($1)) \
             ORDER BY used, m.created_at",
        )
        .bind(json)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(repo, digest, used)| {
                Ok(CachedManifest {
                    repo: repo.parse()?,
                    digest: digest.parse()?,
                    last_used: used,
                })
            })
            .collect()
    }

    /// Bytes of the distinct blobs linked into the projects named.
    pub async fn projects_blob_bytes(&self, projects: &[String]) -> Result<u64, StorageError> {
        let json = serde_json::to_string(projects).unwrap_or_else(|_| "[]".into());
        let bytes: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(SUM(b.size) AS BIGINT) FROM blobs b WHERE b.digest IN (SELECT rb.digest FROM repo_blobs rb \
             JOIN repositories r ON r.id = rb.repo_id \
             WHERE substr(r.name, 1, instr(r.name, '/') - 1) IN (SELECT value FROM json_each($1)))",
        )
        .bind(json)
        .fetch_one(self.pool())
        .await?;
        Ok(bytes.unwrap_or(0) as u64)
    }
}
