//! GC's bookkeeping: the one-at-a-time lock (a leased row), the history
//! of runs with their logs, and the schedule.

use std::time::{Duration, Instant};

use sqlx::Row;
use uuid::Uuid;

use super::{GcKind, GcOptions, GcReport};
use crate::audit::now_ms;
use crate::error::StorageError;
use crate::meta::{now, Meta};

/// How long the lock stays held without a renewal.
const LEASE_MS: i64 = 60_000;
/// How often a running GC renews it.
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// Harbor's `job_status` of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcStatus {
    Running,
    Success,
    Error,
}

impl GcStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GcStatus::Running => "Running",
            GcStatus::Success => "Success",
            GcStatus::Error => "Error",
        }
    }

    fn parse(s: &str) -> GcStatus {
        match s {
            "Running" => GcStatus::Running,
            "Success" => GcStatus::Success,
            _ => GcStatus::Error,
        }
    }
}

/// One entry of the GC history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcRun {
    pub id: i64,
    pub kind: GcKind,
    pub options: GcOptions,
    pub status: GcStatus,
    pub report: GcReport,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// The stored schedule. `kind` is Harbor's schedule type word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcSchedule {
    pub kind: String,
    pub cron: Option<String>,
    pub options: GcOptions,
    pub created_at: i64,
    pub updated_at: i64,
    /// When the schedule last fired (or was set), in Unix milliseconds.
    pub last_fired_ms: i64,
}

/// The held lock: who holds it and for which run.
pub(crate) struct Lease {
    holder: String,
    pub(crate) run_id: i64,
    renewed: Instant,
}

/// This machine's boot and host name: a holder with the same pair lives
/// in the same process-id space as we do.
fn machine() -> String {
    crate::owner::machine()
}

/// Whether a holder (`boot/host/pid/nonce`) is a process of this machine
/// (same boot, same container) that no longer exists: then its lock is
/// stale at once, not only after the lease.
fn holder_dead(holder: &str) -> bool {
    let Some((place, rest)) = holder
        .rsplit_once('/')
        .and_then(|(head, _nonce)| head.rsplit_once('/'))
    else {
        return false;
    };
    let ours = machine();
    !ours.is_empty()
        && place == ours
        && rest
            .parse::<u32>()
            .is_ok_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
}

const INTERRUPTED: &str =
    "interrupted: the process running this garbage collection stopped before it finished\n";

/// Takes the lock (or a stale one over) and records a running entry.
pub(crate) async fn acquire(
    meta: &Meta,
    kind: GcKind,
    options: GcOptions,
) -> Result<Lease, StorageError> {
    let holder = format!(
        "{}/{}/{}",
        machine(),
        std::process::id(),
        Uuid::new_v4().simple()
    );
    let now_ms = now_ms();
    let mut tx = meta.write().await?;
    let held: Option<(String, i64, i64)> =
        sqlx::query_as("SELECT holder, run_id, expires_ms FROM gc_lock WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?;
    if let Some((other, run_id, expires_ms)) = held {
        if expires_ms > now_ms && !holder_dead(&other) {
            return Err(StorageError::GcRunning { run_id });
        }
        mark_interrupted(&mut tx, run_id).await?;
    }
    let run_id: i64 = sqlx::query_scalar(
        "INSERT INTO gc_runs (kind, dry_run, delete_untagged, status, created_at, updated_at) \
         VALUES ($1, $2, $3, 'Running', $4, $4) RETURNING id",
    )
    .bind(kind.as_str())
    .bind(i64::from(options.dry_run))
    .bind(i64::from(options.delete_untagged))
    .bind(now())
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO gc_lock (id, holder, run_id, expires_ms) VALUES (1, $1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, run_id = excluded.run_id, \
         expires_ms = excluded.expires_ms",
    )
    .bind(&holder)
    .bind(run_id)
    .bind(now_ms + LEASE_MS)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Lease {
        holder,
        run_id,
        renewed: Instant::now(),
    })
}

async fn mark_interrupted(conn: &mut sqlx::AnyConnection, run_id: i64) -> Result<(), StorageError> {
    sqlx::query(
        "UPDATE gc_runs SET status = 'Error', log = log || $2, updated_at = $3 \
         WHERE id = $1 AND status = 'Running'",
    )
    .bind(run_id)
    .bind(INTERRUPTED)
    .bind(now())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// At start: a lock left by a process of this boot that died is released,
/// and its run marked as interrupted (a live holder is left alone).
pub(crate) async fn clear_dead_holder(meta: &Meta) -> Result<(), StorageError> {
    let held: Option<(String, i64)> =
        sqlx::query_as("SELECT holder, run_id FROM gc_lock WHERE id = 1")
            .fetch_optional(meta.pool())
            .await?;
    let Some((holder, run_id)) = held else {
        return Ok(());
    };
    if !holder_dead(&holder) {
        return Ok(());
    }
    let mut tx = meta.write().await?;
    let gone = sqlx::query("DELETE FROM gc_lock WHERE id = 1 AND holder = $1")
        .bind(&holder)
        .execute(&mut *tx)
        .await?;
    if gone.rows_affected() > 0 {
        mark_interrupted(&mut tx, run_id).await?;
    }
    tx.commit().await?;
    Ok(())
}

impl Lease {
    /// Extends the lease when it is due; fails when another process took
    /// the lock over (this one looked dead or its lease had expired).
    pub(crate) async fn renew(&mut self, meta: &Meta) -> Result<(), StorageError> {
        if self.renewed.elapsed() < RENEW_EVERY {
            return Ok(());
        }
        self.confirm(meta).await
    }

    /// Extends the lease now, failing if it was taken over.
    pub(crate) async fn confirm(&mut self, meta: &Meta) -> Result<(), StorageError> {
        let done = sqlx::query("UPDATE gc_lock SET expires_ms = $1 WHERE id = 1 AND holder = $2")
            .bind(now_ms() + LEASE_MS)
            .bind(&self.holder)
            .execute(meta.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StorageError::GcLockLost);
        }
        self.renewed = Instant::now();
        Ok(())
    }
}

/// Records a run's outcome and releases the lock.
pub(crate) async fn finish(
    meta: &Meta,
    lease: &Lease,
    status: GcStatus,
    report: &GcReport,
    log: &str,
) -> Result<(), StorageError> {
    let mut tx = meta.write().await?;
    sqlx::query(
        "UPDATE gc_runs SET status = $2, manifests_deleted = $3, blobs_deleted = $4, \
         bytes_freed = $5, log = log || $6, updated_at = $7 WHERE id = $1 AND status = 'Running'",
    )
    .bind(lease.run_id)
    .bind(status.as_str())
    .bind(report.manifests_deleted as i64)
    .bind(report.blobs_deleted as i64)
    .bind(report.bytes_freed as i64)
    .bind(log)
    .bind(now())
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM gc_lock WHERE id = 1 AND holder = $1")
        .bind(&lease.holder)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

const RUN_COLUMNS: &str = "id, kind, dry_run, delete_untagged, status, manifests_deleted, \
                           blobs_deleted, bytes_freed, created_at, updated_at";

fn run_from_row(row: &sqlx::any::AnyRow) -> Result<GcRun, StorageError> {
    Ok(GcRun {
        id: row.try_get("id")?,
        kind: GcKind::parse(row.try_get::<&str, _>("kind")?),
        options: GcOptions {
            dry_run: crate::meta::flag(row, "dry_run")?,
            delete_untagged: crate::meta::flag(row, "delete_untagged")?,
        },
        status: GcStatus::parse(row.try_get::<&str, _>("status")?),
        report: GcReport {
            manifests_deleted: row.try_get::<i64, _>("manifests_deleted")? as u64,
            blobs_deleted: row.try_get::<i64, _>("blobs_deleted")? as u64,
            bytes_freed: row.try_get::<i64, _>("bytes_freed")? as u64,
            ..GcReport::default()
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(crate) async fn list(
    meta: &Meta,
    offset: i64,
    limit: i64,
) -> Result<(Vec<GcRun>, i64), StorageError> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM gc_runs")
        .fetch_one(meta.pool())
        .await?;
    let rows = sqlx::query(&format!(
        "SELECT {RUN_COLUMNS} FROM gc_runs ORDER BY id DESC LIMIT $1 OFFSET $2"
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(meta.pool())
    .await?;
    let runs = rows.iter().map(run_from_row).collect::<Result<_, _>>()?;
    Ok((runs, total))
}

pub(crate) async fn get(meta: &Meta, id: i64) -> Result<Option<GcRun>, StorageError> {
    sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM gc_runs WHERE id = $1"))
        .bind(id)
        .fetch_optional(meta.pool())
        .await?
        .as_ref()
        .map(run_from_row)
        .transpose()
}

pub(crate) async fn log(meta: &Meta, id: i64) -> Result<Option<String>, StorageError> {
    Ok(sqlx::query_scalar("SELECT log FROM gc_runs WHERE id = $1")
        .bind(id)
        .fetch_optional(meta.pool())
        .await?)
}

pub(crate) async fn schedule(meta: &Meta) -> Result<Option<GcSchedule>, StorageError> {
    let row = sqlx::query(
        "SELECT kind, cron, delete_untagged, dry_run, created_at, updated_at, last_fired_ms \
         FROM gc_schedule WHERE id = 1",
    )
    .fetch_optional(meta.pool())
    .await?;
    row.map(|row| {
        Ok(GcSchedule {
            kind: row.try_get("kind")?,
            cron: row.try_get("cron")?,
            options: GcOptions {
                dry_run: crate::meta::flag(&row, "dry_run")?,
                delete_untagged: crate::meta::flag(&row, "delete_untagged")?,
            },
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            last_fired_ms: row.try_get("last_fired_ms")?,
        })
    })
    .transpose()
}

pub(crate) async fn set_schedule(
    meta: &Meta,
    kind: &str,
    cron: Option<&str>,
    options: GcOptions,
) -> Result<(), StorageError> {
    sqlx::query(
        "INSERT INTO gc_schedule (id, kind, cron, delete_untagged, dry_run, created_at, updated_at, last_fired_ms) \
         VALUES (1, $1, $2, $3, $4, $5, $5, $6) ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, \
         cron = excluded.cron, delete_untagged = excluded.delete_untagged, dry_run = excluded.dry_run, \
         updated_at = excluded.updated_at, last_fired_ms = excluded.last_fired_ms",
    )
    .bind(kind)
    .bind(cron)
    .bind(i64::from(options.delete_untagged))
    .bind(i64::from(options.dry_run))
    .bind(now())
    .bind(now_ms())
    .execute(meta.pool())
    .await?;
    Ok(())
}

pub(crate) async fn claim_firing(meta: &Meta, last_fired_ms: i64) -> Result<bool, StorageError> {
    let done = sqlx::query(
        "UPDATE gc_schedule SET last_fired_ms = $2 WHERE id = 1 AND last_fired_ms = $1",
    )
    .bind(last_fired_ms)
    .bind(now_ms().max(last_fired_ms + 1))
    .execute(meta.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

#[cfg(test)]
pub(crate) fn holder_for_test(pid: u32) -> String {
    format!("{}/{pid}/test", machine())
}
