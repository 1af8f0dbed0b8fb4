//! GC's deletes on an object store.
//!
//! Simpler than on the filesystem: every push stores its bytes at a key of
//! its own (`objects`), so deleting a blob's row and then its object can
//! never remove the bytes of a push of the same digest that commits in
//! between; that push's row names another key. The row goes first, in a
//! write transaction that re-checks the plan and is durable on return
//! (`durable`); the object after. A kill between the two leaves an object
//! no row names, which the orphan sweep removes once it is older than the
//! grace window. An upload being completed names its key in its
//! `uploads` row from before the object exists until after the blob's row
//! names it (see `objects::upload`), so the sweep never takes it; age
//! alone would not do, since an object completed from a multipart upload
//! is dated from the upload's start.

use std::collections::HashSet;
use std::time::SystemTime;

use super::durable::DurableConn;
use super::sweep::DeletedBlob;
use crate::error::StorageError;
use crate::meta::Meta;
use crate::objects::{blob_key, Objects};
use crate::oci::Digest;

/// Deletes a blob's rows and then its object, if no manifest references
/// it and nobody touched it since the cutoff.
pub(crate) async fn delete_blob(
    meta: &Meta,
    objects: &Objects,
    digest: &Digest,
    cutoff_ms: i64,
) -> Result<Option<DeletedBlob>, StorageError> {
    let d = digest.to_string();
    let mut conn = DurableConn::acquire(meta).await?;
    let mut tx = crate::locks::begin_on(&mut conn, crate::locks::Scope::All).await?;
    let row: Option<(i64, i64, Option<String>)> =
        sqlx::query_as("SELECT touched_ms, size, location FROM blobs WHERE digest = $1")
            .bind(&d)
            .fetch_optional(&mut *tx)
            .await?;
    let used: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM manifest_refs WHERE child_digest = $1 AND is_manifest = 0 LIMIT 1",
    )
    .bind(&d)
    .fetch_optional(&mut *tx)
    .await?;
    let garbage = row.filter(|(touched, _, _)| *touched < cutoff_ms && used.is_none());
    let Some((_, size, location)) = garbage else {
        // Kept after all: the connection goes back to the pool.
        tx.rollback().await?;
        conn.release().await?;
        return Ok(None);
    };
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
    tx.commit().await?;
    conn.release().await?;
    let key = blob_key(digest, location.as_deref());
    objects.delete(&objects.blob_path(&key)).await?;
    Ok(Some(DeletedBlob {
        bytes: size as u64,
        repos,
    }))
}

/// Every key under `blobs/` that a row names.
async fn known_keys(meta: &Meta) -> Result<HashSet<String>, StorageError> {
    let rows: Vec<(String, Option<String>)> = sqlx::query_as("SELECT digest, location FROM blobs")
        .fetch_all(meta.pool())
        .await?;
    let mut keys = HashSet::with_capacity(rows.len());
    for (digest, location) in rows {
        match location {
            Some(location) => keys.insert(location),
            None => match digest.parse::<Digest>() {
                Ok(d) => keys.insert(blob_key(&d, None)),
                Err(_) => continue,
            },
        };
    }
    let completing: Vec<String> =
        sqlx::query_scalar("SELECT location FROM uploads WHERE location IS NOT NULL")
            .fetch_all(meta.pool())
            .await?;
    keys.extend(completing);
    Ok(keys)
}

/// Objects under `blobs/` older than `cutoff` that no row names: key and
/// size (candidates; each is re-checked before it goes).
pub(crate) async fn orphans(
    meta: &Meta,
    objects: &Objects,
    cutoff: SystemTime,
) -> Result<Vec<(String, u64)>, StorageError> {
    // Listed before the rows are read: an object that gets its row in
    // between is then known.
    let listed = objects.list("blobs").await?;
    let known = known_keys(meta).await?;
    Ok(listed
        .into_iter()
        .filter(|(key, _, modified)| *modified < cutoff && !known.contains(key))
        .map(|(key, size, _)| (key, size))
        .collect())
}

/// Removes an orphan object if still no row names it. Rows naming a key
/// are only written for a fresh key (a new upload's, named by its upload
/// row before the object exists, until the blob's row names it), by a
/// proxy-cache fetch (just after storing it, young) or by `berth
/// migrate`, so a key no row names now, older than the grace window,
/// stays unnamed.
pub(crate) async fn remove_orphan(
    meta: &Meta,
    objects: &Objects,
    key: &str,
) -> Result<bool, StorageError> {
    let named: Option<i64> = match key.split_once('/') {
        Some(("u", _)) => {
            sqlx::query_scalar(
                "SELECT 1 WHERE EXISTS (SELECT 1 FROM blobs WHERE location = $1) \
                 OR EXISTS (SELECT 1 FROM uploads WHERE location = $1)",
            )
            .bind(key)
            .fetch_optional(meta.pool())
            .await?
        }
        _ => match key.replacen('/', ":", 1).parse::<Digest>() {
            Ok(d) => {
                sqlx::query_scalar("SELECT 1 FROM blobs WHERE digest = $1 AND location IS NULL")
                    .bind(d.to_string())
                    .fetch_optional(meta.pool())
                    .await?
            }
            // Not a key berth writes: leave it alone.
            Err(_) => return Ok(false),
        },
    };
    if named.is_some() {
        return Ok(false);
    }
    objects.delete(&objects.blob_path(key)).await?;
    Ok(true)
}
