//! Garbage collection: deletes the manifests and blobs nothing references
//! and frees their bytes, online, while pushes, mounts and pulls go on.
//!
//! # What is garbage
//!
//! A manifest is kept when it is tagged, referenced by a kept index in its
//! repository, a referrer (`subject`) of a kept manifest, or younger than
//! the grace window; the others go only with `delete_untagged` (Harbor's
//! option). A blob is kept while any kept manifest references it (as config
//! or layer) or while it was touched (uploaded, mounted, linked) within
//! the grace window; a repository's link to a blob that no manifest of that
//! repository references goes after the same window.
//!
//! # The protocol (why a concurrent push never loses a blob)
//!
//! Invariant: at every commit, a `blobs` row exists only with its file at
//! its content address. Everything that can make a blob reachable takes a
//! database write lock that GC's transactions exclude (SQLite `BEGIN
//! IMMEDIATE`; on PostgreSQL GC holds the cluster-wide lock exclusively and
//! a push holds it shared, see `locks`) and, inside it, records the blob
//! with a fresh `touched_ms`:
//!
//! - an upload renames its verified file into place *inside* that
//!   transaction (`Meta::commit_blob`), so GC cannot remove the file between
//!   the rename and the row;
//! - a mount re-reads the source link inside it (`Meta::mount_blob`): if GC
//!   deleted the blob first, the mount is refused and the client uploads;
//! - a manifest PUT checks every blob link inside its own transaction, so it
//!   either commits first (GC then sees the reference) or fails with
//!   MANIFEST_BLOB_UNKNOWN; it never commits a reference to a deleted blob;
//! - a HEAD or GET that answers "exists" touches the blob too (throttled to
//!   once per half window per process), so a client that skips an upload
//!   because the blob exists has at least half the window for its manifest.
//!
//! GC decides from a snapshot, then deletes each item in its own write
//! transaction that re-checks, under the lock, that the item is still
//! unreferenced and older than the grace window. For a blob it deletes the
//! rows and *renames the file into `_trash`* before committing, then unlinks
//! the trash file, once the delete is durable (`durable`: a power loss
//! must not bring back rows whose file is gone). A kill -9 at any point leaves either the row with its
//! file in the trash (the rename happened, the commit did not), which
//! [`reconcile_trash`] puts back at the next start or GC, or no row and a
//! trash file, which it removes. Files at a content address without a row
//! (an upload killed between rename and commit) are removed under the lock
//! once older than the grace window.
//!
//! At most one GC runs at a time, across processes: a row in `gc_lock`,
//! held under a lease renewed while the run goes on; a holder that died is
//! recognised at once on the same machine (its process is gone) and
//! elsewhere when the lease expires (`runs`).
//!
//! Caches are invalidated in the process that runs GC, and the others
//! sharing a PostgreSQL database are told (`changes`). Another process on
//! the same SQLite file may answer a HEAD from its cache for up to a
//! minute; a manifest referencing such a blob is still refused, because
//! that check reads the database.

mod durable;
mod objects;
mod plan;
mod purge;
mod runs;
mod sweep;

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use crate::audit::now_ms;
use crate::blobs::{read_dir, BlobStore};
use crate::changes::Change;
use crate::error::StorageError;
use crate::meta::Meta;
use crate::oci::Digest;
use crate::registry::{Registry, Role};

pub use purge::purge_interval;
use runs::Lease;
pub use runs::{GcRun, GcSchedule, GcStatus};

/// How a run was started (Harbor's `job_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcKind {
    Manual,
    Schedule,
}

impl GcKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GcKind::Manual => "MANUAL",
            GcKind::Schedule => "SCHEDULE",
        }
    }

    fn parse(s: &str) -> GcKind {
        if s == "SCHEDULE" {
            GcKind::Schedule
        } else {
            GcKind::Manual
        }
    }
}

/// Harbor's GC parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcOptions {
    /// Report what would go, change nothing.
    pub dry_run: bool,
    /// Also delete manifests that no tag, index or kept subject references.
    pub delete_untagged: bool,
}

/// What a run deleted (or, in a dry run, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub manifests_deleted: u64,
    /// Blobs whose rows and files were deleted.
    pub blobs_deleted: u64,
    /// Repository links removed from blobs that stay (used elsewhere).
    pub links_deleted: u64,
    /// Files at a content address with no row (left by a crash).
    pub orphans_deleted: u64,
    /// Sizes of the files removed (blobs and orphans), measured on disk.
    pub bytes_freed: u64,
    /// Abandoned upload sessions purged.
    pub uploads_purged: u64,
}

/// A GC that holds the lock and has a history entry, ready to run.
pub struct GcJob {
    pub run_id: i64,
    options: GcOptions,
    lease: Lease,
}

/// Lines kept in a run's log; past that only the count is.
const MAX_LOG_LINES: usize = 20_000;

struct Log {
    lines: Vec<String>,
    dropped: usize,
}

impl Log {
    fn push(&mut self, line: String) {
        if self.lines.len() < MAX_LOG_LINES {
            self.lines.push(line);
        } else {
            self.dropped += 1;
        }
    }

    fn text(&self) -> String {
        let mut out = self.lines.join("\n");
        if self.dropped > 0 {
            out.push_str(&format!("\n... and {} more lines", self.dropped));
        }
        out.push('\n');
        out
    }
}

impl Registry {
    /// Takes the GC lock and records a running entry in the history.
    /// [`StorageError::GcRunning`] when another GC holds the lock.
    pub async fn start_gc(&self, kind: GcKind, options: GcOptions) -> Result<GcJob, StorageError> {
        let lease = runs::acquire(&self.meta, kind, options).await?;
        Ok(GcJob {
            run_id: lease.run_id,
            options,
            lease,
        })
    }

    /// Runs a started GC to the end, records its outcome and log in the
    /// history and releases the lock, whatever happens.
    pub async fn run_gc(&self, mut job: GcJob) -> Result<GcReport, StorageError> {
        let started = std::time::Instant::now();
        let mut log = Log {
            lines: Vec::new(),
            dropped: 0,
        };
        log.push(format!(
            "garbage collection {} started: dry_run={} delete_untagged={} grace_period={}s",
            job.run_id,
            job.options.dry_run,
            job.options.delete_untagged,
            self.gc_grace.as_secs_f64()
        ));
        let result = self.collect(&mut job, &mut log).await;
        let status = match &result {
            Ok(report) => {
                log.push(format!(
                    "{}: {} manifests, {} blobs, {} repository links, {} orphan files, {} uploads; {} bytes freed, in {:.1}s",
                    if job.options.dry_run { "would delete" } else { "deleted" },
                    report.manifests_deleted,
                    report.blobs_deleted,
                    report.links_deleted,
                    report.orphans_deleted,
                    report.uploads_purged,
                    report.bytes_freed,
                    started.elapsed().as_secs_f64()
                ));
                GcStatus::Success
            }
            Err(e) => {
                log.push(format!("failed: {e}"));
                GcStatus::Error
            }
        };
        let empty = GcReport::default();
        let recorded = runs::finish(
            &self.meta,
            &job.lease,
            status,
            result.as_ref().unwrap_or(&empty),
            &log.text(),
        )
        .await;
        let report = result?;
        recorded?;
        Ok(report)
    }

    async fn collect(&self, job: &mut GcJob, log: &mut Log) -> Result<GcReport, StorageError> {
        job.lease.confirm(&self.meta).await?;
        reconcile_trash(&self.blobs, &self.meta).await?;
        let grace_ms = i64::try_from(self.gc_grace.as_millis()).unwrap_or(i64::MAX);
        let cutoff_ms = now_ms().saturating_sub(grace_ms);
        // Manifests record whole seconds: one created at second `c` is older
        // than the cutoff for sure when c < floor(cutoff_ms / 1000).
        let cutoff_s = cutoff_ms.div_euclid(1000);
        let graph = plan::load(&self.meta).await?;
        let plan = plan::plan(&graph, job.options.delete_untagged, cutoff_s, cutoff_ms);
        let mut report = GcReport::default();
        if job.options.dry_run {
            self.dry_run(&graph, &plan, cutoff_ms, log, &mut report)
                .await?;
            return Ok(report);
        }

        // Parents before children and subjects before referrers: repeat
        // while a pass makes progress (each attempt re-checks under the
        // lock, so an order that is not ready yet is simply retried).
        let mut pending = plan.manifests.clone();
        loop {
            let before = pending.len();
            let mut next = Vec::new();
            for (repo_id, digest) in pending {
                job.lease.renew(&self.meta).await?;
                if sweep::delete_manifest(&self.meta, repo_id, &digest, cutoff_s).await? {
                    report.manifests_deleted += 1;
                    let repo = graph.repo_name(repo_id);
                    log.push(format!("deleted manifest {repo}@{digest}"));
                    self.changed(Change::Manifest {
                        repo: repo.to_string(),
                        digest: digest.to_string(),
                    });
                } else {
                    next.push((repo_id, digest));
                }
            }
            if report.manifests_deleted > 0 {
                self.changed(Change::AnyTag);
            }
            if next.is_empty() || next.len() == before {
                break;
            }
            pending = next;
        }

        for (repo_id, digest) in &plan.links {
            job.lease.renew(&self.meta).await?;
            if sweep::delete_link(&self.meta, *repo_id, digest, cutoff_ms).await? {
                report.links_deleted += 1;
                let repo = graph.repo_name(*repo_id);
                log.push(format!("unlinked blob {digest} from {repo}"));
                self.forget_link(repo, digest);
            }
        }

        for digest in &plan.blobs {
            job.lease.renew(&self.meta).await?;
            let deleted = match &self.objects {
                Some(objects) => {
                    objects::delete_blob(&self.meta, objects, digest, cutoff_ms).await?
                }
                None => {
                    sweep::delete_blob(&self.meta, &self.blobs, digest, cutoff_ms, &mut |_| {})
                        .await?
                }
            };
            if let Some(deleted) = deleted {
                report.blobs_deleted += 1;
                report.bytes_freed += deleted.bytes;
                log.push(format!("deleted blob {digest} ({} bytes)", deleted.bytes));
                for repo in &deleted.repos {
                    self.forget_link(repo, digest);
                }
            }
        }

        let cutoff_time = SystemTime::UNIX_EPOCH + Duration::from_millis(cutoff_ms.max(0) as u64);
        if let Some(objects) = &self.objects {
            for (key, bytes) in objects::orphans(&self.meta, objects, cutoff_time).await? {
                job.lease.renew(&self.meta).await?;
                if objects::remove_orphan(&self.meta, objects, &key).await? {
                    report.orphans_deleted += 1;
                    report.bytes_freed += bytes;
                    log.push(format!("removed orphan object blobs/{key} ({bytes} bytes)"));
                }
            }
        }
        for (digest, _, _) in self.orphans(cutoff_time).await? {
            job.lease.renew(&self.meta).await?;
            if let Some(bytes) =
                sweep::remove_orphan(&self.meta, &self.blobs, &digest, cutoff_time).await?
            {
                report.orphans_deleted += 1;
                report.bytes_freed += bytes;
                log.push(format!("removed orphan file {digest} ({bytes} bytes)"));
            }
        }

        // Upload sessions belong to the server: a `berth gc` beside it
        // cannot see which one it is writing or completing right now.
        if self.role == Role::Server {
            for id in self.purge_uploads().await? {
                report.uploads_purged += 1;
                log.push(format!("purged abandoned upload {id}"));
            }
        } else {
            log.push("abandoned uploads are left to the server's purge".into());
        }
        Ok(report)
    }

    /// The same decisions as a real run at this moment, without changing
    /// anything: sizes are those of the files on disk now.
    async fn dry_run(
        &self,
        graph: &plan::Graph,
        plan: &plan::Plan,
        cutoff_ms: i64,
        log: &mut Log,
        report: &mut GcReport,
    ) -> Result<(), StorageError> {
        for (repo_id, digest) in &plan.manifests {
            report.manifests_deleted += 1;
            log.push(format!(
                "would delete manifest {}@{digest}",
                graph.repo_name(*repo_id)
            ));
        }
        for (repo_id, digest) in &plan.links {
            report.links_deleted += 1;
            log.push(format!(
                "would unlink blob {digest} from {}",
                graph.repo_name(*repo_id)
            ));
        }
        for digest in &plan.blobs {
            let bytes = match &self.objects {
                Some(_) => self.meta.blob_size(digest).await?.unwrap_or(0),
                None => std::fs::metadata(self.blobs.path(digest)).map_or(0, |m| m.len()),
            };
            report.blobs_deleted += 1;
            report.bytes_freed += bytes;
            log.push(format!("would delete blob {digest} ({bytes} bytes)"));
        }
        let cutoff_time = SystemTime::UNIX_EPOCH + Duration::from_millis(cutoff_ms.max(0) as u64);
        if let Some(objects) = &self.objects {
            for (key, bytes) in objects::orphans(&self.meta, objects, cutoff_time).await? {
                report.orphans_deleted += 1;
                report.bytes_freed += bytes;
                log.push(format!(
                    "would remove orphan object blobs/{key} ({bytes} bytes)"
                ));
            }
        }
        for (digest, bytes, _) in self.orphans(cutoff_time).await? {
            report.orphans_deleted += 1;
            report.bytes_freed += bytes;
            log.push(format!("would remove orphan file {digest} ({bytes} bytes)"));
        }
        Ok(())
    }

    /// Blob files older than `cutoff` that have no row (candidates; each
    /// is re-checked under the lock before it goes).
    async fn orphans(
        &self,
        cutoff: SystemTime,
    ) -> Result<Vec<(Digest, u64, SystemTime)>, StorageError> {
        let blobs = self.blobs.clone();
        let files = tokio::task::spawn_blocking(move || blobs.list())
            .await
            .map_err(|e| StorageError::Io {
                context: "listing blobs".into(),
                source: std::io::Error::other(e),
            })??;
        let known: HashSet<String> = sqlx::query_scalar("SELECT digest FROM blobs")
            .fetch_all(self.meta.pool())
            .await?
            .into_iter()
            .collect();
        Ok(files
            .into_iter()
            .filter(|(d, _, mtime)| *mtime < cutoff && !known.contains(&d.to_string()))
            .collect())
    }

    fn forget_link(&self, repo: &str, digest: &Digest) {
        self.changed(Change::BlobLink {
            repo: repo.to_owned(),
            digest: digest.to_string(),
        });
    }

    /// The GC history, newest first, and how many runs there are.
    pub async fn gc_runs(
        &self,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<GcRun>, i64), StorageError> {
        runs::list(&self.meta, offset, limit).await
    }

    pub async fn gc_run(&self, id: i64) -> Result<Option<GcRun>, StorageError> {
        runs::get(&self.meta, id).await
    }

    /// A run's log (what it deleted), `None` for an unknown run.
    pub async fn gc_log(&self, id: i64) -> Result<Option<String>, StorageError> {
        runs::log(&self.meta, id).await
    }

    pub async fn gc_schedule(&self) -> Result<Option<GcSchedule>, StorageError> {
        runs::schedule(&self.meta).await
    }

    /// Sets the schedule (`kind` is Harbor's schedule type word, stored as
    /// given); the next firing is counted from now.
    pub async fn set_gc_schedule(
        &self,
        kind: &str,
        cron: Option<&str>,
        options: GcOptions,
    ) -> Result<(), StorageError> {
        runs::set_schedule(&self.meta, kind, cron, options).await
    }

    /// Claims a scheduled firing: true for exactly one caller (across
    /// processes) among those that saw `last_fired_ms`.
    pub async fn claim_gc_firing(&self, last_fired_ms: i64) -> Result<bool, StorageError> {
        runs::claim_firing(&self.meta, last_fired_ms).await
    }
}

/// Settles one blob's trash file, if there is one.
pub(crate) async fn settle_from_trash(
    blobs: &BlobStore,
    meta: &Meta,
    digest: &Digest,
) -> Result<(), StorageError> {
    let trash = blobs.trash_path(digest);
    if trash.exists() {
        sweep::settle_trash(meta, blobs, digest, &trash).await?;
    }
    Ok(())
}

/// Puts back blobs that a killed GC moved to the trash before its delete
/// committed, and removes those whose delete did commit. Each file is
/// decided under the write lock, so no GC transaction is half-way then.
pub(crate) async fn reconcile_trash(blobs: &BlobStore, meta: &Meta) -> Result<(), StorageError> {
    for entry in read_dir(&blobs.trash_dir())? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(digest) = name
            .split_once('-')
            .and_then(|(alg, hex)| format!("{alg}:{hex}").parse::<Digest>().ok())
        else {
            continue;
        };
        sweep::settle_trash(meta, blobs, &digest, &entry.path()).await?;
    }
    runs::clear_dead_holder(meta).await
}

#[cfg(test)]
mod tests;
