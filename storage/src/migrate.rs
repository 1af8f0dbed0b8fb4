//! `berth migrate`: copies an installation (its metadata database and its
//! blobs) into another one on PostgreSQL, the way to move an embedded
//! installation (SQLite and files) to a scaled-out one.
//!
//! Blobs go first, each streamed into a temp file while its digest is
//! computed and placed at its content address only when digest and size
//! match what the source records; blobs already at the destination (from
//! an earlier run) are skipped, so a rerun copies only what is new. The
//! metadata then replaces the destination's in one transaction: a rerun
//! picks up every change since the last (new pushes, deleted tags, moved
//! tags, changed passwords), and a failure leaves the destination as it
//! was. Manifests are checked against their digests on the way.
//!
//! The destination must be new, or last written by `berth migrate` and
//! not changed since (it compares what the last run left, table by table,
//! under the write lock just before replacing anything): a rerun would
//! otherwise replace what its users did there.

use std::fs::File;
use std::path::PathBuf;

use futures_util::TryStreamExt;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Column, Row, Transaction, ValueRef};

use crate::blobs::{hash_reader, BlobStore, CopyFailure};
use crate::changes::Change;
use crate::error::StorageError;
use crate::meta::{Backend, Meta};
use crate::objects::{blob_key, ObjectSettings, Objects};
use crate::oci::Digest;

/// One installation: where its metadata and its blobs are.
pub struct Installation {
    pub database_url: String,
    pub blob_root: PathBuf,
    /// Blobs in an object store instead of `blob_root` (a destination
    /// only: a source must keep its blobs on files).
    pub objects: Option<ObjectSettings>,
}

/// What a run did, for the summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub blobs_copied: u64,
    pub blobs_present: u64,
    pub bytes_copied: u64,
    pub rows_copied: u64,
}

/// The tables in an order that satisfies their foreign keys, each with
/// the columns to copy (`*`, plus SQLite's implicit `rowid` where the API
/// shows it as an id). Upload sessions, portal sign-ins, the GC lock and
/// the migrations table stay behind: they belong to running processes and
/// to each database.
const TABLES: &[(&str, &str)] = &[
    ("users", "*"),
    ("registries", "*"),
    ("projects", "*"),
    ("quotas", "*"),
    ("user_groups", "*"),
    ("project_members", "*"),
    ("robots", "*"),
    ("repositories", "*"),
    ("blobs", "*"),
    ("repo_blobs", "*"),
    ("manifests", "rowid, *"),
    ("manifest_refs", "*"),
    ("tags", "rowid, *"),
    ("labels", "*"),
    ("artifact_labels", "*"),
    ("audit_logs", "*"),
    ("audit_purges", "*"),
    ("audit_purge_schedule", "*"),
    ("gc_runs", "*"),
    ("gc_schedule", "*"),
    ("immutable_rules", "*"),
    ("retention_policies", "*"),
    ("retention_executions", "*"),
    ("retention_tasks", "*"),
    ("replication_policies", "*"),
    ("replication_executions", "*"),
    ("replication_tasks", "*"),
    ("webhook_policies", "*"),
    ("webhook_executions", "*"),
    ("webhook_tasks", "*"),
    ("configuration", "*"),
    ("secret_key", "*"),
    ("id_high_water", "*"),
];

/// Serial columns whose sequences must continue after the copied ids.
const SEQUENCES: &[(&str, &str)] = &[
    ("users", "id"),
    ("registries", "id"),
    ("quotas", "id"),
    ("user_groups", "id"),
    ("project_members", "id"),
    ("robots", "id"),
    ("repositories", "id"),
    ("manifests", "rowid"),
    ("tags", "rowid"),
    ("labels", "id"),
    ("audit_logs", "id"),
    ("audit_purges", "id"),
    ("gc_runs", "id"),
    ("immutable_rules", "id"),
    ("retention_policies", "id"),
    ("retention_executions", "id"),
    ("retention_tasks", "id"),
    ("replication_policies", "id"),
    ("replication_executions", "id"),
    ("replication_tasks", "id"),
    ("webhook_policies", "id"),
    ("webhook_executions", "id"),
    ("webhook_tasks", "id"),
];

/// Copies `from` into `to`; `progress` hears a line now and then.
pub async fn copy_installation(
    from: &Installation,
    to: &Installation,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<Summary, StorageError> {
    let source = Meta::connect(&from.database_url).await?;
    let dest = Meta::connect(&to.database_url).await?;
    if dest.backend() != Backend::Postgres {
        return Err(StorageError::MigrationRefused(
            "the destination's database.url must be postgres://...: berth migrate moves an \
             installation to PostgreSQL"
                .into(),
        ));
    }
    if from.database_url == to.database_url {
        return Err(StorageError::MigrationRefused(
            "the source and the destination are the same database".into(),
        ));
    }
    // Checked now, before hours of copying, and again under the write
    // lock just before the metadata is replaced.
    check_destination(&mut *dest.pool().acquire().await?).await?;
    if from.objects.is_some() {
        return Err(StorageError::MigrationRefused(
            "the source keeps its blobs in an object store; berth migrate copies blobs from \
             files only"
                .into(),
        ));
    }
    let source_blobs = BlobStore::open(&from.blob_root)?;
    let dest_blobs = BlobStore::open(&to.blob_root)?;
    let dest_objects = to.objects.as_ref().map(Objects::connect).transpose()?;
    let mut summary = copy_blobs(
        &source,
        &source_blobs,
        &dest_blobs,
        dest_objects.as_deref(),
        progress,
    )
    .await?;
    summary.rows_copied = copy_metadata(&source, &dest, progress).await?;
    Ok(summary)
}

/// Tables a registry in use writes to (a fresh berth writes only the
/// `admin` user, the `library` project and its quota), with a column that
/// grows with each write.
const WRITTEN: &[(&str, &str)] = &[
    ("audit_logs", "op_time"),
    ("manifests", "created_at"),
    ("tags", "updated_at"),
    ("blobs", "touched_ms"),
    ("users", "updated_at"),
    ("robots", "updated_at"),
    ("projects", "updated_at"),
    ("project_members", "updated_at"),
    ("user_groups", "created_at"),
    ("registries", "updated_at"),
    ("quotas", "updated_at"),
    ("immutable_rules", "created_at"),
    ("retention_policies", "updated_at"),
    ("gc_runs", "updated_at"),
];

/// The count and the latest write of every table in [`WRITTEN`]: any
/// insert, update or delete since changes it.
async fn fingerprint(conn: &mut AnyConnection) -> Result<String, StorageError> {
    let parts: Vec<String> = WRITTEN
        .iter()
        .map(|(table, column)| {
            format!(
                "CAST((SELECT count(*) FROM {table}) AS TEXT) || ':' || \
                 CAST((SELECT coalesce(max({column}), 0) FROM {table}) AS TEXT)"
            )
        })
        .collect();
    Ok(
        sqlx::query_scalar(&format!("SELECT {}", parts.join(" || ',' || ")))
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// Refuses a destination that holds data of its own: on a first run,
/// anything but what a fresh berth creates; on a rerun, any change since
/// the last run (pushes, uploads, account and project changes, deletions,
/// audit records of logins and pulls).
async fn check_destination(conn: &mut AnyConnection) -> Result<(), StorageError> {
    let marker: Option<String> =
        sqlx::query_scalar("SELECT fingerprint FROM migrated_from WHERE id = 1")
            .fetch_optional(&mut *conn)
            .await?;
    let used = match &marker {
        Some(left) => *left != fingerprint(&mut *conn).await?,
        None => {
            let counts: Vec<String> = WRITTEN
                .iter()
                .map(|(table, _)| {
                    let bootstrap = match *table {
                        "users" => " AND username <> 'admin'",
                        "projects" => " AND name <> 'library'",
                        "quotas" => {
                            " AND project_id NOT IN (SELECT id FROM projects WHERE name = 'library')"
                        }
                        _ => "",
                    };
                    format!("(SELECT count(*) FROM {table} WHERE true{bootstrap})")
                })
                .collect();
            let rows: i64 = sqlx::query_scalar(&format!("SELECT {}", counts.join(" + ")))
                .fetch_one(&mut *conn)
                .await?;
            rows > 0
        }
    };
    if used {
        return Err(StorageError::MigrationRefused(if marker.is_some() {
            "the destination was used after the last migration (it has pushes, uploads, account \
             or project changes, deletions or audit records since): a rerun would replace them; \
             migrate into a new database instead"
                .into()
        } else {
            "the destination database already holds a registry; migrate into a new, empty \
             database"
                .into()
        }));
    }
    Ok(())
}

async fn copy_blobs(
    source: &Meta,
    from: &BlobStore,
    to: &BlobStore,
    objects: Option<&Objects>,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<Summary, StorageError> {
    let blobs: Vec<(String, i64)> =
        sqlx::query_as("SELECT digest, size FROM blobs ORDER BY digest")
            .fetch_all(source.pool())
            .await?;
    let total = blobs.len();
    let total_bytes: i64 = blobs.iter().map(|(_, s)| *s).sum();
    progress(format!(
        "blobs: {total} in the source, {} bytes",
        total_bytes
    ));
    let mut summary = Summary::default();
    for (i, (digest, size)) in blobs.into_iter().enumerate() {
        let digest: Digest = digest.parse()?;
        let size = u64::try_from(size).unwrap_or(0);
        let present = match objects {
            Some(objects) => objects.size_of(&blob_key(&digest, None)).await? == Some(size),
            None => std::fs::metadata(to.path(&digest))
                .map(|m| m.is_file() && m.len() == size)
                .unwrap_or(false),
        };
        if present {
            summary.blobs_present += 1;
        } else if let Some(objects) = objects {
            // At its content address (rows keep no location): checked
            // first, then streamed in parts.
            let (src, d) = (from.clone(), digest.clone());
            let file = tokio::task::spawn_blocking(move || verified_source(&src, &d, size))
                .await
                .map_err(|e| StorageError::MigrationRefused(format!("copying {digest}: {e}")))??;
            objects
                .put_file(&blob_key(&digest, None), file, size)
                .await?;
            summary.blobs_copied += 1;
            summary.bytes_copied += size;
        } else {
            let (src, dst) = (from.clone(), to.clone());
            let d = digest.clone();
            tokio::task::spawn_blocking(move || dst.copy_verified(&src, &d, size))
                .await
                .map_err(|e| StorageError::MigrationRefused(format!("copying {digest}: {e}")))?
                .map_err(|e| match e {
                    CopyFailure::Unreadable(path, e) => StorageError::MigrationRefused(format!(
                        "blob {digest} is recorded in the source database but its file {} \
                         cannot be read ({e}); run `berth gc` on the source, then migrate again",
                        path.display()
                    )),
                    CopyFailure::Damaged { copied, got } => {
                        StorageError::MigrationRefused(format!(
                        "blob {digest} in the source is damaged: its file has {copied} bytes with \
                         digest {got}, the database says {size} bytes; it was not copied"
                    ))
                    }
                    CopyFailure::Store(e) => e,
                })?;
            summary.blobs_copied += 1;
            summary.bytes_copied += size;
        }
        if (i + 1) % 100 == 0 || i + 1 == total {
            progress(format!(
                "blobs: {}/{total} ({} copied, {} bytes; {} already there)",
                i + 1,
                summary.blobs_copied,
                summary.bytes_copied,
                summary.blobs_present
            ));
        }
    }
    Ok(summary)
}

/// Opens a source blob after checking that its file holds what the
/// source's database says (for a copy to an object store).
fn verified_source(from: &BlobStore, digest: &Digest, size: u64) -> Result<File, StorageError> {
    let path = from.path(digest);
    let unreadable = |e: std::io::Error| {
        StorageError::MigrationRefused(format!(
            "blob {digest} is recorded in the source database but its file {} cannot be read \
             ({e}); run `berth gc` on the source, then migrate again",
            path.display()
        ))
    };
    let mut file = File::open(&path).map_err(unreadable)?;
    let (hasher, copied) = hash_reader(&mut file, digest.algorithm(), &path)?;
    let got = hasher.finish();
    if &got != digest || copied != size {
        return Err(StorageError::MigrationRefused(format!(
            "blob {digest} in the source is damaged: its file has {copied} bytes with digest \
             {got}, the database says {size} bytes; it was not copied"
        )));
    }
    Ok(file)
}

/// Replaces the destination's metadata with the source's, in one
/// transaction; the number of rows copied.
async fn copy_metadata(
    source: &Meta,
    dest: &Meta,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<u64, StorageError> {
    let mut tx = dest.write().await?;
    check_destination(&mut tx).await?;
    let all: Vec<&str> = TABLES.iter().map(|(t, _)| *t).collect();
    sqlx::query(&format!("TRUNCATE {} CASCADE", all.join(", ")))
        .execute(&mut *tx)
        .await?;
    let mut rows = 0u64;
    for (table, columns) in TABLES {
        // PostgreSQL's tables have their `rowid` as a column of their own.
        let columns = match source.backend() {
            Backend::Sqlite => columns,
            Backend::Postgres => "*",
        };
        let mut replaced = 0;
        let n = copy_table(source, &mut tx, table, columns, &mut replaced).await?;
        if replaced > 0 {
            progress(format!(
                "{table}: {replaced} values held NUL characters, which PostgreSQL cannot store; \
                 each became U+FFFD"
            ));
        }
        if *table == "projects" {
            // Each project inserted got a quota row from its trigger; the
            // source's rows (with their ids and limits) replace them.
            sqlx::query("DELETE FROM quotas").execute(&mut *tx).await?;
        }
        progress(format!("{table}: {n} rows"));
        rows += n;
    }
    for (table, column) in SEQUENCES {
        sqlx::query_scalar::<_, i64>(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
             coalesce((SELECT max({column}) FROM {table}), 0) + 1, false)"
        ))
        .fetch_one(&mut *tx)
        .await?;
    }
    let left = fingerprint(&mut tx).await?;
    sqlx::query(
        "INSERT INTO migrated_from (id, finished_ms, fingerprint) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO UPDATE SET finished_ms = excluded.finished_ms, \
         fingerprint = excluded.fingerprint",
    )
    .bind(crate::audit::now_ms())
    .bind(left)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    // Servers already running on the destination drop what they cached.
    dest.announce(&Change::Everything).await?;
    Ok(rows)
}

/// A column value as it crosses between the databases.
enum Value {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

fn value(row: &AnyRow, i: usize) -> Result<Value, StorageError> {
    if row.try_get_raw(i)?.is_null() {
        return Ok(Value::Null);
    }
    if let Ok(v) = row.try_get::<i64, _>(i) {
        return Ok(Value::Int(v));
    }
    if let Ok(v) = row.try_get::<String, _>(i) {
        return Ok(Value::Text(v));
    }
    Ok(Value::Bytes(row.try_get::<Vec<u8>, _>(i)?))
}

async fn copy_table(
    source: &Meta,
    tx: &mut Transaction<'static, Any>,
    table: &str,
    columns: &str,
    replaced: &mut u64,
) -> Result<u64, StorageError> {
    // A NULL must be bound with its column's type (PostgreSQL does not
    // turn a text NULL into a bigint one).
    let types: std::collections::HashMap<String, String> = sqlx::query_as(
        "SELECT CAST(column_name AS TEXT), CAST(data_type AS TEXT) FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1",
    )
    .bind(table)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    let select = format!("SELECT {columns} FROM {table}");
    let mut rows = sqlx::query(&select).fetch(source.pool());
    let mut n = 0u64;
    let mut insert: Option<String> = None;
    while let Some(row) = rows.try_next().await? {
        let insert = insert.get_or_insert_with(|| {
            let names: Vec<String> = row.columns().iter().map(|c| c.name().to_owned()).collect();
            let params: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
            // The bootstrap row the destination's migration created.
            let conflict = if table == "id_high_water" {
                " ON CONFLICT (name) DO UPDATE SET last = excluded.last"
            } else {
                ""
            };
            format!(
                "INSERT INTO {table} ({}) VALUES ({}){conflict}",
                names.join(", "),
                params.join(", ")
            )
        });
        if table == "manifests" {
            check_manifest(&row)?;
        }
        let mut query = sqlx::query(insert.as_str());
        for (i, column) in row.columns().iter().enumerate() {
            // A quota's usage is rebuilt by the triggers as its
            // repositories' rows arrive.
            let v = if table == "quotas" && column.name() == "used_storage" {
                Value::Int(0)
            } else {
                value(&row, i)?
            };
            let v = match v {
                // PostgreSQL cannot store NUL in text; SQLite could (a
                // failed login's name, say). Kept visible, not fatal.
                Value::Text(t) if t.contains('\0') => {
                    *replaced += 1;
                    Value::Text(t.replace('\0', "\u{FFFD}"))
                }
                v => v,
            };
            query = match v {
                Value::Null => match types.get(column.name()).map(String::as_str) {
                    Some("bigint") | Some("integer") => query.bind(None::<i64>),
                    Some("bytea") => query.bind(None::<Vec<u8>>),
                    _ => query.bind(None::<String>),
                },
                Value::Int(v) => query.bind(v),
                Value::Text(v) => query.bind(v),
                Value::Bytes(v) => query.bind(v),
            };
        }
        query.execute(&mut **tx).await?;
        n += 1;
    }
    Ok(n)
}

/// A manifest is stored byte for byte under its digest: one that is not
/// would be served as something it is not.
fn check_manifest(row: &AnyRow) -> Result<(), StorageError> {
    let digest: String = row.try_get("digest")?;
    let digest: Digest = digest.parse()?;
    let content: Vec<u8> = row.try_get("content")?;
    let mut hasher = digest.algorithm().hasher();
    hasher.update(&content);
    if hasher.finish() != digest {
        return Err(StorageError::MigrationRefused(format!(
            "manifest {digest} in the source does not match its digest; nothing was migrated"
        )));
    }
    Ok(())
}
