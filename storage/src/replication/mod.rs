//! Replication policies (Harbor's `/replication`): what to copy between
//! this registry and a registry endpoint ([`filter`]), when (manually, by
//! a cron schedule, or on each push and delete here), and the record of
//! each execution with one task per repository.
//!
//! Storage keeps the policies and the record; the gateway's replicator
//! does the copying. An execution belongs to the process running it,
//! which writes a heartbeat; one whose heartbeat stopped (its process was
//! killed) is marked failed by whichever process notices first.

pub mod filter;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::cron::Cron;
use crate::error::StorageError;
use crate::meta::{containing, flag, now, Meta};
pub use filter::{Filter, FilterKind};

/// When a policy runs besides manual starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Trigger {
    Manual,
    /// By a cron schedule, parsed once to be valid.
    Scheduled {
        cron: String,
    },
    /// On every push and delete in this registry that the filters select
    /// (push-mode policies only).
    EventBased,
}

impl Trigger {
    /// Harbor's trigger `type`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Scheduled { .. } => "scheduled",
            Trigger::EventBased => "event_based",
        }
    }

    /// The schedule, if any (validated when the policy was stored).
    pub fn cron(&self) -> Option<Cron> {
        match self {
            Trigger::Scheduled { cron } => cron.parse().ok(),
            _ => None,
        }
    }
}

/// A policy's settings, as created or updated.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    pub name: String,
    pub description: String,
    /// `None` is this registry: push mode when it is the source, pull
    /// mode when it is the destination. Exactly one side is `None`.
    pub src_registry: Option<i64>,
    pub dest_registry: Option<i64>,
    pub dest_namespace: String,
    pub dest_namespace_replace_count: i64,
    pub trigger: Trigger,
    pub filters: Vec<Filter>,
    pub replicate_deletion: bool,
    /// Replace a destination tag that points elsewhere.
    pub override_existing: bool,
    pub enabled: bool,
    /// KiB per second per task; `None` is unlimited.
    pub speed_kib: Option<u64>,
    pub copy_by_chunk: bool,
    pub single_active: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub id: i64,
    pub spec: PolicySpec,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Harbor's execution statuses.
pub const IN_PROGRESS: &str = "InProgress";
pub const SUCCEED: &str = "Succeed";
pub const FAILED: &str = "Failed";
pub const STOPPED: &str = "Stopped";

/// An execution with its tasks counted by status.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub id: i64,
    pub policy_id: i64,
    pub status: String,
    pub status_text: String,
    /// `manual`, `scheduled` or `event_based`.
    pub trigger: String,
    pub start_time: i64,
    pub end_time: Option<i64>,
    pub stop_requested: bool,
    pub total: i64,
    pub failed: i64,
    pub succeed: i64,
    pub in_progress: i64,
    pub stopped: i64,
}

/// A task: one repository copied (or deleted) by an execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: i64,
    pub execution_id: i64,
    pub resource_type: String,
    pub src_resource: String,
    pub dst_resource: String,
    /// `copy` or `deletion`.
    pub operation: String,
    pub status: String,
    pub bytes: i64,
    pub artifacts_done: i64,
    pub artifacts_total: i64,
    pub start_time: i64,
    pub end_time: Option<i64>,
}

/// A task's progress, written as it goes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub bytes: i64,
    pub artifacts_done: i64,
    pub artifacts_total: i64,
}

/// How executions are picked for a listing.
#[derive(Debug, Clone, Default)]
pub struct ExecutionQuery {
    pub policy_id: Option<i64>,
    pub status: Option<String>,
    pub trigger: Option<String>,
}

/// The longest status text an execution keeps.
const MAX_STATUS_TEXT: usize = 2048;

fn bad(e: serde_json::Error) -> StorageError {
    StorageError::Corrupt(format!("replication policy: {e}"))
}

fn policy_from_row(row: &AnyRow) -> Result<Policy, StorageError> {
    let trig: String = row.try_get("trig")?;
    let filters: String = row.try_get("filters")?;
    let speed: i64 = row.try_get("speed")?;
    Ok(Policy {
        id: row.try_get("id")?,
        spec: PolicySpec {
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            src_registry: row.try_get("src_registry_id")?,
            dest_registry: row.try_get("dest_registry_id")?,
            dest_namespace: row.try_get("dest_namespace")?,
            dest_namespace_replace_count: row.try_get("dest_replace_count")?,
            trigger: serde_json::from_str(&trig).map_err(bad)?,
            filters: serde_json::from_str(&filters).map_err(bad)?,
            replicate_deletion: flag(row, "replicate_deletion")?,
            override_existing: flag(row, "override")?,
            enabled: flag(row, "enabled")?,
            speed_kib: u64::try_from(speed).ok().filter(|s| *s > 0),
            copy_by_chunk: flag(row, "copy_by_chunk")?,
            single_active: flag(row, "single_active")?,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Executions with their tasks counted (one grouped subquery per page).
const EXECUTION_SELECT: &str = "SELECT e.id, e.policy_id, e.status, e.status_text, e.trig, \
     e.start_time, e.end_time, e.stop_requested, \
     (SELECT count(*) FROM replication_tasks t WHERE t.execution_id = e.id) AS total, \
     (SELECT count(*) FROM replication_tasks t WHERE t.execution_id = e.id AND t.status = 'Failed') AS failed, \
     (SELECT count(*) FROM replication_tasks t WHERE t.execution_id = e.id AND t.status = 'Succeed') AS succeed, \
     (SELECT count(*) FROM replication_tasks t WHERE t.execution_id = e.id AND t.status IN ('Pending', 'InProgress')) AS in_progress, \
     (SELECT count(*) FROM replication_tasks t WHERE t.execution_id = e.id AND t.status = 'Stopped') AS stopped \
     FROM replication_executions e";

fn execution_from_row(row: &AnyRow) -> Result<Execution, StorageError> {
    Ok(Execution {
        id: row.try_get("id")?,
        policy_id: row.try_get("policy_id")?,
        status: row.try_get("status")?,
        status_text: row.try_get("status_text")?,
        trigger: row.try_get("trig")?,
        start_time: row.try_get("start_time")?,
        end_time: row.try_get("end_time")?,
        stop_requested: flag(row, "stop_requested")?,
        total: row.try_get("total")?,
        failed: row.try_get("failed")?,
        succeed: row.try_get("succeed")?,
        in_progress: row.try_get("in_progress")?,
        stopped: row.try_get("stopped")?,
    })
}

const TASK_COLUMNS: &str = "id, execution_id, resource_type, src_resource, dst_resource, \
     operation, status, bytes, artifacts_done, artifacts_total, start_time, end_time";

fn task_from_row(row: &AnyRow) -> Result<Task, StorageError> {
    Ok(Task {
        id: row.try_get("id")?,
        execution_id: row.try_get("execution_id")?,
        resource_type: row.try_get("resource_type")?,
        src_resource: row.try_get("src_resource")?,
        dst_resource: row.try_get("dst_resource")?,
        operation: row.try_get("operation")?,
        status: row.try_get("status")?,
        bytes: row.try_get("bytes")?,
        artifacts_done: row.try_get("artifacts_done")?,
        artifacts_total: row.try_get("artifacts_total")?,
        start_time: row.try_get("start_time")?,
        end_time: row.try_get("end_time")?,
    })
}

/// Binds a policy's settings as `$1` to `$14`, in the columns' order
/// (name … single_active), for the insert and the update alike.
fn bind_spec<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    spec: &'q PolicySpec,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(&spec.name)
        .bind(&spec.description)
        .bind(spec.src_registry)
        .bind(spec.dest_registry)
        .bind(&spec.dest_namespace)
        .bind(spec.dest_namespace_replace_count)
        .bind(json(&spec.trigger))
        .bind(json(&spec.filters))
        .bind(i64::from(spec.replicate_deletion))
        .bind(i64::from(spec.override_existing))
        .bind(i64::from(spec.enabled))
        .bind(spec.speed_kib.map_or(-1, |s| s as i64))
        .bind(i64::from(spec.copy_by_chunk))
        .bind(i64::from(spec.single_active))
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

impl Meta {
    /// One page of policies by name (a substring, when given), and the
    /// total.
    pub async fn replication_policies(
        &self,
        name: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Policy>, i64), StorageError> {
        let pattern = containing(name);
        let total: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM replication_policies WHERE name LIKE $1 ESCAPE '\\'",
        )
        .bind(&pattern)
        .fetch_one(self.pool())
        .await?;
        let rows = sqlx::query(
            "SELECT * FROM replication_policies WHERE name LIKE $1 ESCAPE '\\' \
             ORDER BY id LIMIT $2 OFFSET $3",
        )
        .bind(&pattern)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let rows = rows.iter().map(policy_from_row).collect::<Result<_, _>>()?;
        Ok((rows, total))
    }

    pub async fn replication_policy(&self, id: i64) -> Result<Option<Policy>, StorageError> {
        let row = sqlx::query("SELECT * FROM replication_policies WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(policy_from_row).transpose()
    }

    /// Enabled policies with a schedule, or fired by events.
    pub async fn triggered_replication_policies(
        &self,
        kind: &str,
    ) -> Result<Vec<Policy>, StorageError> {
        let rows = sqlx::query(
            "SELECT * FROM replication_policies WHERE enabled = 1 AND trig LIKE $1 ORDER BY id",
        )
        .bind(format!("{{\"kind\":\"{kind}\"%"))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(policy_from_row).collect()
    }

    /// Creates a policy; `None` when the name is taken.
    pub async fn create_replication_policy(
        &self,
        spec: &PolicySpec,
    ) -> Result<Option<i64>, StorageError> {
        let mut tx = self.write().await?;
        let taken: Option<i64> =
            sqlx::query_scalar("SELECT id FROM replication_policies WHERE name = $1")
                .bind(&spec.name)
                .fetch_optional(&mut *tx)
                .await?;
        if taken.is_some() {
            return Ok(None);
        }
        let id: i64 = bind_spec(
            sqlx::query(
                "INSERT INTO replication_policies (name, description, src_registry_id, \
                 dest_registry_id, dest_namespace, dest_replace_count, trig, filters, \
                 replicate_deletion, override, enabled, speed, copy_by_chunk, single_active, \
                 created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15) \
                 RETURNING id",
            ),
            spec,
        )
        .bind(now())
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// Replaces a policy's settings: `Ok(false)` when there is no such
    /// policy, `Err(())` inside when the new name is another's.
    pub async fn update_replication_policy(
        &self,
        id: i64,
        spec: &PolicySpec,
    ) -> Result<Result<bool, ()>, StorageError> {
        let mut tx = self.write().await?;
        let taken: Option<i64> =
            sqlx::query_scalar("SELECT id FROM replication_policies WHERE name = $1 AND id <> $2")
                .bind(&spec.name)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if taken.is_some() {
            return Ok(Err(()));
        }
        let done = bind_spec(
            sqlx::query(
                "UPDATE replication_policies SET name = $1, description = $2, \
                 src_registry_id = $3, dest_registry_id = $4, dest_namespace = $5, \
                 dest_replace_count = $6, trig = $7, filters = $8, replicate_deletion = $9, \
                 override = $10, enabled = $11, speed = $12, copy_by_chunk = $13, \
                 single_active = $14, updated_at = $15 WHERE id = $16",
            ),
            spec,
        )
        .bind(now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(done.rows_affected() > 0))
    }

    /// Deletes a policy and its history unless it is running:
    /// `Err(execution)` names the running execution.
    pub async fn delete_replication_policy(
        &self,
        id: i64,
    ) -> Result<Result<bool, i64>, StorageError> {
        let mut tx = self.write().await?;
        let running: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM replication_executions WHERE policy_id = $1 AND status = 'InProgress' \
             ORDER BY id LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(execution) = running {
            return Ok(Err(execution));
        }
        let done = sqlx::query("DELETE FROM replication_policies WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(done.rows_affected() > 0))
    }

    /// Claims a scheduled firing for this process: true for exactly one
    /// caller per policy and second.
    pub async fn claim_replication_fire(&self, id: i64, second: i64) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE replication_policies SET last_fired = $2 \
             WHERE id = $1 AND (last_fired IS NULL OR last_fired < $2)",
        )
        .bind(id)
        .bind(second)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a new execution as in progress; with `single_active`,
    /// `Err(running)` when one already runs (checked in the same write).
    pub async fn start_replication_execution(
        &self,
        policy_id: i64,
        trigger: &str,
        single_active: bool,
    ) -> Result<Result<i64, i64>, StorageError> {
        let mut tx = self.write().await?;
        if single_active {
            let running: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM replication_executions WHERE policy_id = $1 \
                 AND status = 'InProgress' ORDER BY id LIMIT 1",
            )
            .bind(policy_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(running) = running {
                return Ok(Err(running));
            }
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO replication_executions (policy_id, status, trig, start_time, heartbeat) \
             VALUES ($1, 'InProgress', $2, $3, $3) RETURNING id",
        )
        .bind(policy_id)
        .bind(trigger)
        .bind(now())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(id))
    }

    /// Marks an execution alive; tells whether a stop was asked for.
    pub async fn replication_heartbeat(&self, id: i64) -> Result<bool, StorageError> {
        let stop: Option<i64> = sqlx::query_scalar(
            "UPDATE replication_executions SET heartbeat = $2 \
             WHERE id = $1 AND status = 'InProgress' RETURNING stop_requested",
        )
        .bind(id)
        .bind(now())
        .fetch_optional(self.pool())
        .await?;
        // An execution deleted, or ended by another process (marked
        // failed when this one's heartbeat stalled), stops too.
        Ok(stop.is_none_or(|s| s != 0))
    }

    /// Asks a running execution to stop; false when it is not running.
    pub async fn request_replication_stop(&self, id: i64) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE replication_executions SET stop_requested = 1 \
             WHERE id = $1 AND status = 'InProgress'",
        )
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Ends an execution (only one still in progress).
    pub async fn finish_replication_execution(
        &self,
        id: i64,
        status: &str,
        status_text: &str,
    ) -> Result<(), StorageError> {
        // A remote registry's words end up here, and it chooses their length.
        let status_text = match status_text.char_indices().nth(MAX_STATUS_TEXT) {
            Some((cut, _)) => format!("{}…", &status_text[..cut]),
            None => status_text.to_owned(),
        };
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE replication_executions SET status = $2, status_text = $3, end_time = $4 \
             WHERE id = $1 AND status = 'InProgress'",
        )
        .bind(id)
        .bind(status)
        .bind(&status_text)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        // Tasks the execution never got to end with it.
        let task_status = if status == STOPPED { STOPPED } else { FAILED };
        sqlx::query(
            "UPDATE replication_tasks SET status = $2, end_time = $3 \
             WHERE execution_id = $1 AND status IN ('Pending', 'InProgress')",
        )
        .bind(id)
        .bind(task_status)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Executions in progress whose process stopped writing its heartbeat
    /// before `stale_before`: their ids, after marking them failed.
    pub async fn fail_abandoned_replications(
        &self,
        stale_before: i64,
    ) -> Result<Vec<i64>, StorageError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM replication_executions WHERE status = 'InProgress' AND heartbeat < $1",
        )
        .bind(stale_before)
        .fetch_all(self.pool())
        .await?;
        for id in &ids {
            self.finish_replication_execution(
                *id,
                FAILED,
                "berth stopped while this execution ran (the process was restarted or killed); \
                 start the policy again",
            )
            .await?;
        }
        Ok(ids)
    }

    /// One page of executions, newest first, and the total.
    pub async fn replication_executions(
        &self,
        query: &ExecutionQuery,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Execution>, i64), StorageError> {
        let filter = "WHERE ($1 IS NULL OR e.policy_id = $1) AND ($2 IS NULL OR e.status = $2) \
                      AND ($3 IS NULL OR e.trig = $3)";
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM replication_executions e {filter}"
        ))
        .bind(query.policy_id)
        .bind(query.status.as_deref())
        .bind(query.trigger.as_deref())
        .fetch_one(self.pool())
        .await?;
        let rows = sqlx::query(&format!(
            "{EXECUTION_SELECT} {filter} ORDER BY e.id DESC LIMIT $4 OFFSET $5"
        ))
        .bind(query.policy_id)
        .bind(query.status.as_deref())
        .bind(query.trigger.as_deref())
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let rows = rows
            .iter()
            .map(execution_from_row)
            .collect::<Result<_, _>>()?;
        Ok((rows, total))
    }

    pub async fn replication_execution(&self, id: i64) -> Result<Option<Execution>, StorageError> {
        let row = sqlx::query(&format!("{EXECUTION_SELECT} WHERE e.id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(execution_from_row).transpose()
    }

    /// Records a task as in progress.
    pub async fn start_replication_task(
        &self,
        execution_id: i64,
        resource_type: &str,
        src: &str,
        dst: &str,
        operation: &str,
    ) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO replication_tasks (execution_id, resource_type, src_resource, \
             dst_resource, operation, status, start_time) \
             VALUES ($1, $2, $3, $4, $5, 'InProgress', $6) RETURNING id",
        )
        .bind(execution_id)
        .bind(resource_type)
        .bind(src)
        .bind(dst)
        .bind(operation)
        .bind(now())
        .fetch_one(self.pool())
        .await?)
    }

    /// Writes a task's progress and appends to its log.
    pub async fn replication_task_progress(
        &self,
        id: i64,
        progress: &Progress,
        log: &str,
    ) -> Result<(), StorageError> {
        sqlx::query(
            "UPDATE replication_tasks SET bytes = $2, artifacts_done = $3, artifacts_total = $4, \
             log = log || $5 WHERE id = $1",
        )
        .bind(id)
        .bind(progress.bytes)
        .bind(progress.artifacts_done)
        .bind(progress.artifacts_total)
        .bind(log)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Ends a task still in progress.
    pub async fn finish_replication_task(
        &self,
        id: i64,
        status: &str,
        progress: &Progress,
        log: &str,
    ) -> Result<(), StorageError> {
        self.replication_task_progress(id, progress, log).await?;
        sqlx::query(
            "UPDATE replication_tasks SET status = $2, end_time = $3 \
             WHERE id = $1 AND status IN ('Pending', 'InProgress')",
        )
        .bind(id)
        .bind(status)
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// One page of an execution's tasks, in order, and the total.
    pub async fn replication_tasks(
        &self,
        execution_id: i64,
        status: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Task>, i64), StorageError> {
        let filter = "WHERE execution_id = $1 AND ($2 IS NULL OR status = $2)";
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM replication_tasks {filter}"))
                .bind(execution_id)
                .bind(status)
                .fetch_one(self.pool())
                .await?;
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM replication_tasks {filter} ORDER BY id LIMIT $3 OFFSET $4"
        ))
        .bind(execution_id)
        .bind(status)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let rows = rows.iter().map(task_from_row).collect::<Result<_, _>>()?;
        Ok((rows, total))
    }

    pub async fn replication_task_log(
        &self,
        execution_id: i64,
        task_id: i64,
    ) -> Result<Option<String>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT log FROM replication_tasks WHERE execution_id = $1 AND id = $2",
        )
        .bind(execution_id)
        .bind(task_id)
        .fetch_optional(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn meta_with_policy() -> (tempfile::TempDir, Meta, i64) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let meta = Meta::connect(&url).await.unwrap();
        let spec = PolicySpec {
            name: "p".into(),
            description: String::new(),
            src_registry: None,
            dest_registry: None,
            dest_namespace: String::new(),
            dest_namespace_replace_count: -1,
            trigger: Trigger::Manual,
            filters: Vec::new(),
            replicate_deletion: false,
            override_existing: false,
            enabled: true,
            speed_kib: None,
            copy_by_chunk: false,
            single_active: true,
        };
        let id = meta
            .create_replication_policy(&spec)
            .await
            .unwrap()
            .unwrap();
        (dir, meta, id)
    }

    #[tokio::test]
    async fn an_execution_ended_elsewhere_tells_its_runner_to_stop() {
        let (_dir, meta, policy) = meta_with_policy().await;
        let execution = meta
            .start_replication_execution(policy, "manual", true)
            .await
            .unwrap()
            .unwrap();
        assert!(!meta.replication_heartbeat(execution).await.unwrap());
        // Another process found its heartbeat stale and failed it.
        let long = "x".repeat(100_000);
        meta.finish_replication_execution(execution, FAILED, &long)
            .await
            .unwrap();
        assert!(meta.replication_heartbeat(execution).await.unwrap());
        let ended = meta
            .replication_execution(execution)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ended.status, FAILED);
        // A remote's words are kept short.
        assert!(ended.status_text.chars().count() <= MAX_STATUS_TEXT + 1);
        // Single-active holds only while one runs.
        let next = meta
            .start_replication_execution(policy, "manual", true)
            .await
            .unwrap();
        assert!(next.is_ok());
    }
}
