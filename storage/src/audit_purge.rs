//! Purging the audit log (Harbor's `/system/purgeaudit`): entries older
//! than a number of hours, of the event types or operations chosen, are
//! deleted in batches, now or on a schedule; each run is kept with its
//! parameters, its count and its log. One run at a time across processes:
//! a run beats a heartbeat (`updated_at`) with each batch, and one whose
//! heartbeat stopped (its process died) is marked as failed when the next
//! starts.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::audit::now_ms;
use crate::error::StorageError;
use crate::meta::{flag, now, Meta};

/// Entries read per batch.
const BATCH: i64 = 2000;
/// A Running run whose heartbeat is older than this (seconds) died.
const STALE_SECS: i64 = 120;
/// The longest retention accepted: 100 years, in hours.
const MAX_HOURS: i64 = 876_600;

/// What a purge deletes: entries older than `retention_hours` whose event
/// type (`create_artifact`: the operation, `_`, the resource type) or
/// operation is listed. Harbor's rule: nothing listed, nothing purged. A
/// push counts as the creation of an artifact, as Harbor records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeParams {
    retention_hours: i64,
    event_types: Vec<String>,
    operations: Vec<String>,
    dry_run: bool,
}

fn words(list: &str) -> Vec<String> {
    list.split(',')
        .map(|w| w.trim().to_ascii_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

impl PurgeParams {
    /// From Harbor's parameters: `audit_retention_hour`,
    /// `include_event_types` and `include_operations` (comma-separated),
    /// `dry_run`.
    pub fn new(
        retention_hours: i64,
        event_types: &str,
        operations: &str,
        dry_run: bool,
    ) -> Result<PurgeParams, String> {
        if !(1..=MAX_HOURS).contains(&retention_hours) {
            return Err(format!(
                "`audit_retention_hour` must be from 1 to {MAX_HOURS} hours, not {retention_hours}"
            ));
        }
        let (event_types, operations) = (words(event_types), words(operations));
        let long = event_types.iter().chain(&operations).any(|w| w.len() > 64);
        if long || event_types.len() + operations.len() > 64 {
            return Err("`include_event_types` lists at most 64 types of 64 characters".into());
        }
        Ok(PurgeParams {
            retention_hours,
            event_types,
            operations,
            dry_run,
        })
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    pub fn retention_hours(&self) -> i64 {
        self.retention_hours
    }

    /// The event types, comma-separated (Harbor's form).
    pub fn event_types(&self) -> String {
        self.event_types.join(",")
    }

    pub fn operations(&self) -> String {
        self.operations.join(",")
    }

    /// Whether an entry of this operation and resource type is purged
    /// (when old enough).
    pub fn matches(&self, operation: &str, resource_type: &str) -> bool {
        let operation = operation.to_ascii_lowercase();
        let operation = if operation == "push" {
            "create"
        } else {
            operation.as_str()
        };
        let event = format!("{operation}_{}", resource_type.to_ascii_lowercase());
        self.event_types.contains(&event) || self.operations.iter().any(|o| o == operation)
    }

    /// Harbor's `job_parameters`.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "audit_retention_hour": self.retention_hours,
            "include_event_types": self.event_types(),
            "include_operations": self.operations(),
            "dry_run": self.dry_run,
        })
        .to_string()
    }

    fn from_json(text: &str) -> Result<PurgeParams, StorageError> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| StorageError::Corrupt(format!("audit purge parameters: {e}")))?;
        PurgeParams::new(
            v["audit_retention_hour"].as_i64().unwrap_or(0),
            v["include_event_types"].as_str().unwrap_or(""),
            v["include_operations"].as_str().unwrap_or(""),
            v["dry_run"].as_bool().unwrap_or(false),
        )
        .map_err(StorageError::Corrupt)
    }
}

/// A purge run, as the history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeRun {
    pub id: i64,
    /// `MANUAL` or `SCHEDULE`.
    pub kind: String,
    pub params: PurgeParams,
    /// `Running`, `Success`, `Error` or `Stopped`.
    pub status: String,
    /// Entries deleted (would be, in a dry run).
    pub deleted: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The purge schedule (one for the registry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeSchedule {
    /// Harbor's schedule type (`Daily`, `Custom`, ...).
    pub kind: String,
    pub cron: Option<String>,
    pub params: PurgeParams,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_fired_ms: i64,
}

/// Why a run did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeRefused {
    /// This run is under way.
    Running(i64),
}

/// A run's columns as shown: a Running run whose heartbeat stopped (its
/// process died) reads as failed, without a write per read; the next
/// start or stop records it.
fn run_columns() -> String {
    format!(
        "id, kind, parameters, CASE WHEN status = 'Running' AND updated_at < {} \
         THEN 'Error' ELSE status END AS status, deleted, created_at, updated_at",
        now() - STALE_SECS
    )
}

/// What the log of such a run says last.
const DIED: &str = "the process running this purge stopped before it ended\n";

fn run_from_row(row: &AnyRow) -> Result<PurgeRun, StorageError> {
    Ok(PurgeRun {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        params: PurgeParams::from_json(&row.try_get::<String, _>("parameters")?)?,
        status: row.try_get("status")?,
        deleted: row.try_get("deleted")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Marks Running runs whose heartbeat stopped (their process died) as
/// failed.
async fn mark_stale(conn: &mut sqlx::AnyConnection) -> Result<(), StorageError> {
    let at = now();
    sqlx::query(
        "UPDATE audit_purges SET status = 'Error', updated_at = $1, \
         log = log || $3 WHERE status = 'Running' AND updated_at < $2",
    )
    .bind(at)
    .bind(at - STALE_SECS)
    .bind(DIED)
    .execute(conn)
    .await?;
    Ok(())
}

impl Meta {
    /// Marks runs whose process died as failed, before one is stopped.
    async fn settle_stale_purges(&self) -> Result<(), StorageError> {
        let mut tx = self.write_in(crate::locks::Scope::Shared).await?;
        mark_stale(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a new run, unless one is under way. A Running run whose
    /// heartbeat stopped is marked as failed first.
    pub async fn start_audit_purge(
        &self,
        kind: &str,
        params: &PurgeParams,
    ) -> Result<Result<i64, PurgeRefused>, StorageError> {
        let mut tx = self.write().await?;
        let at = now();
        mark_stale(&mut tx).await?;
        let running: Option<i64> =
            sqlx::query_scalar("SELECT id FROM audit_purges WHERE status = 'Running'")
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(id) = running {
            return Ok(Err(PurgeRefused::Running(id)));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_purges (kind, parameters, status, created_at, updated_at) \
             VALUES ($1, $2, 'Running', $3, $3) RETURNING id",
        )
        .bind(kind)
        .bind(params.to_json())
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(id))
    }

    /// Runs purge `id` (started by [`Meta::start_audit_purge`]) to its
    /// end: batches of the oldest entries, the matching ones deleted (or
    /// counted, in a dry run), until none older than the cut-off is left
    /// or a stop is asked. Returns the entries deleted.
    pub async fn run_audit_purge(
        &self,
        id: i64,
        params: &PurgeParams,
    ) -> Result<i64, StorageError> {
        let outcome = self.purge_batches(id, params).await;
        let (status, line) = match &outcome {
            Ok((n, false)) if params.dry_run => {
                ("Success", format!("dry run: {n} entries would be purged"))
            }
            Ok((n, false)) => ("Success", format!("{n} entries purged")),
            Ok((n, true)) => ("Stopped", format!("stopped after {n} entries")),
            Err(e) => ("Error", format!("failed: {e}")),
        };
        let deleted = outcome.as_ref().map_or(0, |(n, _)| *n);
        sqlx::query(
            "UPDATE audit_purges SET status = $2, deleted = CASE WHEN $3 > deleted THEN $3 ELSE deleted END, \
             log = log || $4, updated_at = $5 WHERE id = $1 AND status = 'Running'",
        )
        .bind(id)
        .bind(status)
        .bind(deleted)
        .bind(format!("{line}\n"))
        .bind(now())
        .execute(self.pool())
        .await?;
        outcome.map(|(n, _)| n)
    }

    /// The batches; the count and whether a stop ended them.
    async fn purge_batches(
        &self,
        id: i64,
        params: &PurgeParams,
    ) -> Result<(i64, bool), StorageError> {
        let cutoff = now_ms() - params.retention_hours * 3_600_000;
        let mut cursor: (i64, i64) = (i64::MIN, i64::MIN);
        let mut total = 0_i64;
        sqlx::query("UPDATE audit_purges SET log = $2 WHERE id = $1")
            .bind(id)
            .bind(format!(
                "purging entries older than {} hours (before {cutoff} ms since the epoch) \
                 of types [{}] and operations [{}]{}\n",
                params.retention_hours,
                params.event_types(),
                params.operations(),
                if params.dry_run { ", dry run" } else { "" }
            ))
            .execute(self.pool())
            .await?;
        loop {
            let rows = sqlx::query(
                "SELECT id, op_time, operation, resource_type FROM audit_logs \
                 WHERE op_time < $1 AND (op_time > $2 OR (op_time = $2 AND id > $3)) \
                 ORDER BY op_time, id LIMIT $4",
            )
            .bind(cutoff)
            .bind(cursor.0)
            .bind(cursor.1)
            .bind(BATCH)
            .fetch_all(self.pool())
            .await?;
            let Some(last) = rows.last() else {
                return Ok((total, false));
            };
            cursor = (last.try_get("op_time")?, last.try_get("id")?);
            let mut doomed = Vec::new();
            for row in &rows {
                let (op, kind): (String, String) =
                    (row.try_get("operation")?, row.try_get("resource_type")?);
                if params.matches(&op, &kind) {
                    doomed.push(row.try_get::<i64, _>("id")?);
                }
            }
            if !params.dry_run && !doomed.is_empty() {
                let mut tx = self.write_in(crate::locks::Scope::Shared).await?;
                sqlx::query(
                    "DELETE FROM audit_logs WHERE id IN \
                     (SELECT CAST(value AS BIGINT) FROM json_each($1))",
                )
                .bind(serde_json::to_string(&doomed).unwrap_or_else(|_| "[]".into()))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            total += doomed.len() as i64;
            // The heartbeat, the count so far, and whether to stop.
            let row = sqlx::query(
                "UPDATE audit_purges SET deleted = $2, updated_at = $3 WHERE id = $1 \
                 RETURNING stop_requested",
            )
            .bind(id)
            .bind(total)
            .bind(now())
            .fetch_one(self.pool())
            .await?;
            if flag(&row, "stop_requested")? {
                return Ok((total, true));
            }
        }
    }

    /// Asks a running purge to stop after its current batch; false if it
    /// is not running.
    pub async fn stop_audit_purge(&self, id: i64) -> Result<bool, StorageError> {
        self.settle_stale_purges().await?;
        let done = sqlx::query(
            "UPDATE audit_purges SET stop_requested = 1 WHERE id = $1 AND status = 'Running'",
        )
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The runs, newest first, and their total.
    pub async fn audit_purges(
        &self,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<PurgeRun>, i64), StorageError> {
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_purges")
            .fetch_one(self.pool())
            .await?;
        let rows = sqlx::query(&format!(
            "SELECT {} FROM audit_purges ORDER BY id DESC LIMIT $1 OFFSET $2",
            run_columns()
        ))
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let runs = rows.iter().map(run_from_row).collect::<Result<_, _>>()?;
        Ok((runs, total))
    }

    pub async fn audit_purge(&self, id: i64) -> Result<Option<PurgeRun>, StorageError> {
        sqlx::query(&format!(
            "SELECT {} FROM audit_purges WHERE id = $1",
            run_columns()
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(run_from_row)
        .transpose()
    }

    pub async fn audit_purge_log(&self, id: i64) -> Result<Option<String>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT CASE WHEN status = 'Running' AND updated_at < $2 THEN log || $3 ELSE log END \
             FROM audit_purges WHERE id = $1",
        )
        .bind(id)
        .bind(now() - STALE_SECS)
        .bind(DIED)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn audit_purge_schedule(&self) -> Result<Option<PurgeSchedule>, StorageError> {
        let row = sqlx::query(
            "SELECT kind, cron, parameters, created_at, updated_at, last_fired_ms \
             FROM audit_purge_schedule WHERE id = 1",
        )
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(PurgeSchedule {
                kind: row.try_get("kind")?,
                cron: row.try_get("cron")?,
                params: PurgeParams::from_json(&row.try_get::<String, _>("parameters")?)?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
                last_fired_ms: row.try_get("last_fired_ms")?,
            })
        })
        .transpose()
    }

    /// Sets the schedule; it fires next after now.
    pub async fn set_audit_purge_schedule(
        &self,
        kind: &str,
        cron: Option<&str>,
        params: &PurgeParams,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO audit_purge_schedule (id, kind, cron, parameters, created_at, updated_at, \
             last_fired_ms) VALUES (1, $1, $2, $3, $4, $4, $5) ON CONFLICT (id) DO UPDATE SET \
             kind = excluded.kind, cron = excluded.cron, parameters = excluded.parameters, \
             updated_at = excluded.updated_at, last_fired_ms = excluded.last_fired_ms",
        )
        .bind(kind)
        .bind(cron)
        .bind(params.to_json())
        .bind(now())
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Claims a firing of the schedule (compare-and-set on when it last
    /// fired): one process of many fires each time.
    pub async fn claim_audit_purge_firing(&self, last_fired_ms: i64) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE audit_purge_schedule SET last_fired_ms = $2 WHERE id = 1 AND last_fired_ms = $1",
        )
        .bind(last_fired_ms)
        .bind(now_ms().max(last_fired_ms + 1))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::audit::AuditRecord;

    #[test]
    fn parameters_are_checked_and_matched() {
        assert!(PurgeParams::new(0, "create_artifact", "", false).is_err());
        assert!(PurgeParams::new(MAX_HOURS + 1, "", "", false).is_err());
        assert!(PurgeParams::new(1, &"x".repeat(65), "", false).is_err());
        let p = PurgeParams::new(
            24,
            "create_artifact, delete_artifact,pull_artifact",
            "",
            false,
        )
        .unwrap();
        assert!(p.matches("push", "artifact"));
        assert!(p.matches("create", "artifact"));
        assert!(p.matches("PULL", "artifact"));
        assert!(!p.matches("create", "project"));
        assert!(!p.matches("delete", "tag"));
        let ops = PurgeParams::new(24, "", "create,delete", false).unwrap();
        assert!(ops.matches("push", "artifact") && ops.matches("delete", "tag"));
        assert!(!ops.matches("pull", "artifact"));
        let none = PurgeParams::new(24, "", "", false).unwrap();
        assert!(!none.matches("create", "artifact"));
        assert_eq!(PurgeParams::from_json(&p.to_json()).unwrap(), p);
    }

    #[tokio::test]
    async fn old_matching_entries_are_purged_in_batches_and_runs_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta::connect(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        let hour = 3_600_000_i64;
        let old = now_ms() - 48 * hour;
        let mut records = Vec::new();
        // More than a batch of old pulls, old creations of projects,
        // and new pulls.
        for n in 0..(BATCH * 2 + 7) {
            records.push((old + n, "pull", "artifact"));
        }
        for n in 0..5 {
            records.push((old + n, "create", "project"));
        }
        for n in 0..3 {
            records.push((now_ms() - n, "pull", "artifact"));
        }
        let records: Vec<AuditRecord> = records
            .into_iter()
            .map(|(t, op, kind)| AuditRecord {
                op_time: t,
                username: "u".into(),
                operation: op.into(),
                resource_type: kind.into(),
                resource: "r".into(),
                project: None,
                success: true,
                client_ip: None,
            })
            .collect();
        let log = crate::audit::AuditLog::start(meta.clone());
        for r in records {
            log.record(r);
        }
        log.flush().await;
        let count = |meta: &Meta| {
            let meta = meta.clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM audit_logs")
                    .fetch_one(meta.pool())
                    .await
                    .unwrap()
            }
        };
        let all = count(&meta).await;
        let dry = PurgeParams::new(24, "pull_artifact", "", true).unwrap();
        let id = meta
            .start_audit_purge("MANUAL", &dry)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            meta.start_audit_purge("MANUAL", &dry).await.unwrap(),
            Err(PurgeRefused::Running(id))
        );
        assert_eq!(meta.run_audit_purge(id, &dry).await.unwrap(), BATCH * 2 + 7);
        assert_eq!(count(&meta).await, all);
        let real = PurgeParams::new(24, "pull_artifact", "", false).unwrap();
        let id = meta
            .start_audit_purge("SCHEDULE", &real)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            meta.run_audit_purge(id, &real).await.unwrap(),
            BATCH * 2 + 7
        );
        assert_eq!(count(&meta).await, all - (BATCH * 2 + 7));
        let run = meta.audit_purge(id).await.unwrap().unwrap();
        assert_eq!(
            (run.status.as_str(), run.deleted),
            ("Success", BATCH * 2 + 7)
        );
        assert!(meta
            .audit_purge_log(id)
            .await
            .unwrap()
            .unwrap()
            .contains("entries purged"));
        let (runs, total) = meta.audit_purges(0, 10).await.unwrap();
        assert_eq!((runs.len(), total, runs[0].id), (2, 2, id));
        // A run whose process died is marked failed by the next start.
        let stuck = meta
            .start_audit_purge("MANUAL", &real)
            .await
            .unwrap()
            .unwrap();
        sqlx::query("UPDATE audit_purges SET updated_at = 0 WHERE id = $1")
            .bind(stuck)
            .execute(meta.pool())
            .await
            .unwrap();
        let next = meta
            .start_audit_purge("MANUAL", &real)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            meta.audit_purge(stuck).await.unwrap().unwrap().status,
            "Error"
        );
        // Should its process come back, its end changes nothing.
        meta.run_audit_purge(stuck, &real).await.unwrap();
        assert_eq!(
            meta.audit_purge(stuck).await.unwrap().unwrap().status,
            "Error"
        );
        // A run whose process died is marked failed when it is read.
        sqlx::query("UPDATE audit_purges SET updated_at = 0 WHERE id = $1")
            .bind(next)
            .execute(meta.pool())
            .await
            .unwrap();
        assert_eq!(
            meta.audit_purge(next).await.unwrap().unwrap().status,
            "Error"
        );
        assert!(!meta.stop_audit_purge(next).await.unwrap());
        let next = meta
            .start_audit_purge("MANUAL", &real)
            .await
            .unwrap()
            .unwrap();
        assert!(meta.stop_audit_purge(next).await.unwrap());
        meta.run_audit_purge(next, &real).await.unwrap();
        assert_eq!(
            meta.audit_purge(next).await.unwrap().unwrap().status,
            "Stopped"
        );
        // The schedule, and its firing claimed once.
        meta.set_audit_purge_schedule("Daily", None, &real)
            .await
            .unwrap();
        let s = meta.audit_purge_schedule().await.unwrap().unwrap();
        assert_eq!((s.kind.as_str(), &s.params), ("Daily", &real));
        assert!(meta
            .claim_audit_purge_firing(s.last_fired_ms)
            .await
            .unwrap());
        assert!(!meta
            .claim_audit_purge_firing(s.last_fired_ms)
            .await
            .unwrap());
    }
}
