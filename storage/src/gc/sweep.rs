//! GC's deletes: each item in its own write transaction that re-checks,
//! under the lock, what the plan assumed (see the protocol in `gc`).

use std::path::Path;
use std::time::SystemTime;

use super::durable::DurableConn;
use crate::blobs::BlobStore;
use crate::error::StorageError;
use crate::meta::Meta;
use crate::oci::Digest;

/// A blob whose rows and file are gone.
pub(crate) struct DeletedBlob {
    /// Size of the file removed (0 if it was already missing).
    pub(crate) bytes: u64,
    /// Repositories that had linked it (for cache invalidation).
    pub(crate) repos: Vec<String>,
}

/// Deletes an untagged manifest (with its references) if it still is
/// garbage: older than the cutoff, untagged, not a child of any index of
/// its repository, and without a subject that still exists there.
pub(crate) async fn delete_manifest(
    meta: &Meta,
    repo_id: i64,
    digest: &Digest,
    cutoff_s: i64,
) -> Result<bool, StorageError> {
    let d = digest.to_string();
    let mut tx = meta.write().await?;
    let row: Option<(i64, Option<String>)> = sqlx::query_as(
        "SELECT created_at, subject FROM manifests WHERE repo_id = $1 AND digest = $2",
    )
    .bind(repo_id)
    .bind(&d)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((created_at, subject)) = row else {
        return Ok(false);
    };
    if created_at >= cutoff_s {
        return Ok(false);
    }
    let held: Option<i64> = sqlx::query_scalar(
        "SELECT 1 WHERE EXISTS (SELECT 1 FROM tags WHERE repo_id = $1 AND manifest_digest = $2) \
         OR EXISTS (SELECT 1 FROM manifest_refs WHERE repo_id = $1 AND child_digest = $2 AND is_manifest = 1) \
         OR EXISTS (SELECT 1 FROM manifests WHERE repo_id = $1 AND digest = $3)",
    )
    .bind(repo_id)
    .bind(&d)
    .bind(subject.as_deref().unwrap_or(""))
    .fetch_optional(&mut *tx)
    .await?;
    if held.is_some() {
        return Ok(false);
    }
    sqlx::query("DELETE FROM manifests WHERE repo_id = $1 AND digest = $2")
        .bind(repo_id)
        .bind(&d)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Removes a repository's link to a blob that no manifest of that
/// repository references and that nobody touched since the cutoff.
pub(crate) async fn delete_link(
    meta: &Meta,
    repo_id: i64,
    digest: &Digest,
    cutoff_ms: i64,
) -> Result<bool, StorageError> {
    let d = digest.to_string();
    let mut tx = meta.write().await?;
    let touched: Option<i64> = sqlx::query_scalar("SELECT touched_ms FROM blobs WHERE digest = $1")
        .bind(&d)
        .fetch_optional(&mut *tx)
        .await?;
    if touched.is_none_or(|t| t >= cutoff_ms) {
        return Ok(false);
    }
    let used: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM manifest_refs WHERE repo_id = $1 AND child_digest = $2 AND is_manifest = 0 LIMIT 1",
    )
    .bind(repo_id)
    .bind(&d)
    .fetch_optional(&mut *tx)
    .await?;
    if used.is_some() {
        return Ok(false);
    }
    let done = sqlx::query("DELETE FROM repo_blobs WHERE repo_id = $1 AND digest = $2")
        .bind(repo_id)
        .bind(&d)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected() > 0)
}

/// What `delete_blob` did, in order, for tests of its ordering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// The delete committed; `synchronous` is the connection's setting
    /// then (2: FULL, durable on return) and `in_trash` whether the file
    /// was still in the trash.
    Committed { synchronous: i64, in_trash: bool },
    /// The trash file was unlinked.
    Unlinked,
}

/// Deletes a blob, rows and file, if no manifest references it and nobody
/// touched it since the cutoff. The file goes to the trash inside the
/// transaction and is unlinked after the commit, which is durable first
/// (see `durable`); if the commit fails the file is put back. `observe`
/// sees each step.
pub(crate) async fn delete_blob(
    meta: &Meta,
    blobs: &BlobStore,
    digest: &Digest,
    cutoff_ms: i64,
    observe: &mut (dyn FnMut(Step) + Send),
) -> Result<Option<DeletedBlob>, StorageError> {
    let d = digest.to_string();
    let mut conn = DurableConn::acquire(meta).await?;
    let mut tx = crate::locks::begin_on(&mut conn, crate::locks::Scope::All).await?;
    let touched: Option<i64> = sqlx::query_scalar("SELECT touched_ms FROM blobs WHERE digest = $1")
        .bind(&d)
        .fetch_optional(&mut *tx)
        .await?;
    let used: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM manifest_refs WHERE child_digest = $1 AND is_manifest = 0 LIMIT 1",
    )
    .bind(&d)
    .fetch_optional(&mut *tx)
    .await?;
    if touched.is_none_or(|t| t >= cutoff_ms) || used.is_some() {
        // Kept after all: the connection goes back to the pool (an error
        // above closes it instead).
        tx.rollback().await?;
        conn.release().await?;
        return Ok(None);
    }
    let repos: Vec<String> = sqlx::query_scalar(
        "SELECT r.name FROM repo_blobs rb JOIN repositories r ON r.id = rb.repo_id WHERE rb.digest = $1",
    )
    .bind(&d)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM repo_blobs WHERE digest = $1")
        .bind(&d)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM blobs WHERE digest = $1")
        .bind(&d)
        .execute(&mut *tx)
        .await?;
    let path = blobs.path(digest);
    let trash = blobs.trash_path(digest);
    let bytes = match std::fs::metadata(&path) {
        Ok(m) => {
            std::fs::create_dir_all(blobs.trash_dir())
                .map_err(StorageError::io("creating the GC trash directory"))?;
            std::fs::rename(&path, &trash).map_err(StorageError::io(format!(
                "moving blob {digest} to the trash"
            )))?;
            Some(m.len())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(StorageError::io(format!("stat blob {digest}"))(e)),
    };
    // PostgreSQL's commits are durable unless its administrator turned
    // `synchronous_commit` off; reported in SQLite's numbers (2 = FULL).
    let synchronous: i64 = sqlx::query_scalar(meta.backend().pick(
        "PRAGMA synchronous",
        "SELECT CASE WHEN current_setting('synchronous_commit') = 'off' THEN 0 ELSE 2 END",
    ))
    .fetch_one(&mut *tx)
    .await?;
    if let Err(e) = tx.commit().await {
        if bytes.is_some() {
            let _ = std::fs::rename(&trash, &path);
        }
        return Err(e.into());
    }
    observe(Step::Committed {
        synchronous,
        in_trash: trash.exists(),
    });
    conn.release().await?;
    if bytes.is_some() {
        match std::fs::remove_file(&trash) {
            Ok(()) => observe(Step::Unlinked),
            // A concurrent reconcile removed it already.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io(format!("removing blob {digest}"))(e)),
        }
    }
    Ok(Some(DeletedBlob {
        bytes: bytes.unwrap_or(0),
        repos,
    }))
}

/// Removes a file at a content address that has no row and was last
/// modified before `cutoff`; returns its size.
pub(crate) async fn remove_orphan(
    meta: &Meta,
    blobs: &BlobStore,
    digest: &Digest,
    cutoff: SystemTime,
) -> Result<Option<u64>, StorageError> {
    // The write lock, held while deciding: an upload renames its file and
    // inserts its row under this same lock.
    let mut tx = meta.write().await?;
    let row: Option<i64> = sqlx::query_scalar("SELECT 1 FROM blobs WHERE digest = $1")
        .bind(digest.to_string())
        .fetch_optional(&mut *tx)
        .await?;
    let path = blobs.path(digest);
    let removed = match (row, std::fs::metadata(&path)) {
        (None, Ok(m)) if m.modified().is_ok_and(|t| t < cutoff) => {
            std::fs::remove_file(&path)
                .map_err(StorageError::io(format!("removing orphan blob {digest}")))?;
            Some(m.len())
        }
        _ => None,
    };
    tx.rollback().await?;
    Ok(removed)
}

/// Decides one trash file under the write lock: back to its address when
/// its row exists (the delete never committed), else removed.
pub(crate) async fn settle_trash(
    meta: &Meta,
    blobs: &BlobStore,
    digest: &Digest,
    trash: &Path,
) -> Result<(), StorageError> {
    let mut tx = meta.write().await?;
    let row: Option<i64> = sqlx::query_scalar("SELECT 1 FROM blobs WHERE digest = $1")
        .bind(digest.to_string())
        .fetch_optional(&mut *tx)
        .await?;
    let dest = blobs.path(digest);
    let result = if row.is_some() && !dest.is_file() {
        tracing::warn!(%digest, "restoring a blob a killed garbage collection had moved to the trash");
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)
                .map_err(StorageError::io(format!("creating {}", dir.display())))?;
        }
        std::fs::rename(trash, &dest)
    } else {
        std::fs::remove_file(trash)
    };
    tx.rollback().await?;
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(format!(
            "settling trash file {}",
            trash.display()
        ))(e)),
    }
}
