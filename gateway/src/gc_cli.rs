//! `berth gc [--dry-run] [--delete-untagged]`: one garbage collection
//! against the configured database and blob store, from the command line.
//! Safe while a server runs on the same data: the database lock keeps it
//! the only GC, and the protocol in `berth_storage::gc` keeps pushes safe.

use berth_storage::gc::{GcKind, GcOptions};
use berth_storage::{Registry, StorageError};

/// Runs GC; the summary to print, or the message for a failure (another
/// GC holding the lock among them).
pub async fn run(registry: &Registry, options: GcOptions) -> Result<String, String> {
    let job = match registry.start_gc(GcKind::Manual, options).await {
        Ok(job) => job,
        Err(StorageError::GcRunning { run_id }) => {
            return Err(format!(
            "another garbage collection (run {run_id}) is running; try again when it has finished"
        ))
        }
        Err(e) => return Err(e.to_string()),
    };
    let id = job.run_id;
    let report = registry.run_gc(job).await.map_err(|e| e.to_string())?;
    let verb = if options.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let freed = if options.dry_run {
        "bytes to free"
    } else {
        "bytes freed"
    };
    Ok(format!(
        "garbage collection {id}{}: {verb} {} manifests, {} blobs, {} repository links, {} orphan files; {} abandoned uploads purged\n{freed}: {}",
        if options.dry_run { " (dry run)" } else { "" },
        report.manifests_deleted,
        report.blobs_deleted,
        report.links_deleted,
        report.orphans_deleted,
        report.uploads_purged,
        report.bytes_freed,
    ))
}
