//! The webhook delivery queue: one execution per event and policy, one
//! task per target.
//!
//! An event is queued in one transaction before the request that caused it
//! answers, so it survives a crash or restart. A sender claims a due task
//! with a lease (`lease_until`); a process that dies mid-send leaves its
//! claim to expire, and any process takes the task again. Each claim counts
//! an attempt (`run_count`), and only the claim that is current may record
//! the outcome, so a sender that outlived its lease cannot overwrite a
//! newer attempt's result.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{EventType, PayloadFormat};
use crate::error::StorageError;
use crate::locks::Scope;
use crate::meta::{now, Meta};

/// A task to send, as claimed.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub execution_id: i64,
    pub policy_id: i64,
    pub address: String,
    pub payload_format: PayloadFormat,
    pub payload: String,
    /// This attempt's number, from 1; the claim's fence.
    pub attempt: i64,
}

/// One execution: an event one policy was notified of.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub id: i64,
    pub policy_id: i64,
    pub event_type: String,
    pub status: String,
    pub start_time: i64,
    pub end_time: Option<i64>,
    pub total: i64,
    pub succeed: i64,
    pub failed: i64,
    pub in_progress: i64,
}

/// One delivery of an execution to one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: i64,
    pub execution_id: i64,
    pub address: String,
    pub payload_format: String,
    pub status: String,
    pub run_count: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
}

/// A delivery as Harbor's older job listing shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub event_type: String,
    pub status: String,
    pub payload: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a delivery is owed after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Failed; tried again at this unix second.
    RetryAt(i64),
    /// Failed for the last time.
    GaveUp,
}

const EXECUTION_SELECT: &str = "SELECT e.id, e.policy_id, e.event_type, e.status, \
     e.start_time, e.end_time, \
     (SELECT count(*) FROM webhook_tasks t WHERE t.execution_id = e.id) AS total, \
     (SELECT count(*) FROM webhook_tasks t WHERE t.execution_id = e.id AND t.status = 'Success') AS succeed, \
     (SELECT count(*) FROM webhook_tasks t WHERE t.execution_id = e.id AND t.status = 'Error') AS failed, \
     (SELECT count(*) FROM webhook_tasks t WHERE t.execution_id = e.id AND t.status IN ('Pending', 'Running')) AS in_progress \
     FROM webhook_executions e";

fn execution_from_row(row: &AnyRow) -> Result<Execution, StorageError> {
    Ok(Execution {
        id: row.try_get("id")?,
        policy_id: row.try_get("policy_id")?,
        event_type: row.try_get("event_type")?,
        status: row.try_get("status")?,
        start_time: row.try_get("start_time")?,
        end_time: row.try_get("end_time")?,
        total: row.try_get("total")?,
        succeed: row.try_get("succeed")?,
        failed: row.try_get("failed")?,
        in_progress: row.try_get("in_progress")?,
    })
}

const TASK_COLUMNS: &str = "id, execution_id, address, payload_format, status, run_count, \
     created_at, updated_at, start_time, end_time";

fn task_from_row(row: &AnyRow) -> Result<Task, StorageError> {
    Ok(Task {
        id: row.try_get("id")?,
        execution_id: row.try_get("execution_id")?,
        address: row.try_get("address")?,
        payload_format: row.try_get("payload_format")?,
        status: row.try_get("status")?,
        run_count: row.try_get("run_count")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        start_time: row.try_get("start_time")?,
        end_time: row.try_get("end_time")?,
    })
}

/// A claim's condition: due and waiting, or claimed by a process whose
/// lease ran out.
const DUE: &str = "((status = 'Pending' AND next_at <= $1) \
     OR (status = 'Running' AND lease_until < $1))";
const DUE_T: &str = "((t.status = 'Pending' AND t.next_at <= $1) \
     OR (t.status = 'Running' AND t.lease_until < $1))";

/// One delivery at a time per receiver (scheme, host and port), across
/// every process: a slow receiver holds one sender, not all of them.
const RECEIVER_FREE: &str = "t.receiver NOT IN (SELECT receiver FROM webhook_tasks \
     WHERE status = 'Running' AND lease_until >= $1)";

/// At most `IN_FLIGHT_PER_POLICY` deliveries of one policy at a time, so
/// that one policy's many targets do not hold every sender either.
const POLICY_FREE: &str = "t.policy_id NOT IN (SELECT policy_id FROM webhook_tasks \
     WHERE status = 'Running' AND lease_until >= $1 GROUP BY policy_id HAVING count(*) >= 2)";

/// Undelivered events a policy may hold; past it new events are dropped
/// (a receiver that is down for days, and a flood of pull events).
const MAX_WAITING: i64 = 10_000;

/// Executions deleted per statement when pruning: short write locks.
const PRUNE_BATCH: i64 = 5_000;

/// One delivery to queue.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub address: String,
    /// The address's scheme, host and port.
    pub receiver: String,
    pub format: PayloadFormat,
    pub payload: String,
}

impl Meta {
    /// Queues one event for one policy: an execution, and a task per
    /// delivery. Its id; `None` when the policy already holds
    /// `MAX_WAITING` undelivered events (the event is dropped).
    pub async fn queue_webhook(
        &self,
        policy_id: i64,
        event: EventType,
        deliveries: &[Delivery],
    ) -> Result<Option<i64>, StorageError> {
        let mut tx = self.write_in(Scope::Shared).await?;
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM webhook_tasks WHERE policy_id = $1 \
             AND status IN ('Pending', 'Running')",
        )
        .bind(policy_id)
        .fetch_one(&mut *tx)
        .await?;
        if waiting >= MAX_WAITING {
            return Ok(None);
        }
        let at = now();
        let execution: i64 = sqlx::query(
            "INSERT INTO webhook_executions (policy_id, event_type, status, start_time) \
             VALUES ($1, $2, 'Running', $3) RETURNING id",
        )
        .bind(policy_id)
        .bind(event.as_str())
        .bind(at)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        for d in deliveries {
            sqlx::query(
                "INSERT INTO webhook_tasks (execution_id, policy_id, address, receiver, \
                 payload_format, payload, status, next_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'Pending', $7, $7, $7)",
            )
            .bind(execution)
            .bind(policy_id)
            .bind(&d.address)
            .bind(&d.receiver)
            .bind(d.format.as_str())
            .bind(&d.payload)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Some(execution))
    }

    /// Claims the task due longest for `lease` seconds; `None` when
    /// nothing is due.
    pub async fn claim_webhook_task(&self, lease: i64) -> Result<Option<Claimed>, StorageError> {
        let at = now();
        // Claims take turns across instances (their own lock): the
        // receiver-free check holds only if no other claim commits
        // between it and this one's commit. The update also repeats the
        // due condition, so a row taken meanwhile is left alone (`None`).
        // The policy waiting longest since its last delivery goes first:
        // policies sharing a receiver take turns, and one flooding it does
        // not make the others wait behind its whole backlog.
        let mut tx = self.write_in(Scope::WebhookClaims).await?;
        let row = sqlx::query(&format!(
            "UPDATE webhook_tasks SET status = 'Running', lease_until = $2, \
             run_count = run_count + 1, updated_at = $1, start_time = coalesce(start_time, $1) \
             WHERE id = (SELECT t.id FROM webhook_tasks t \
             LEFT JOIN webhook_policies p ON p.id = t.policy_id \
             WHERE {DUE_T} AND {RECEIVER_FREE} AND {POLICY_FREE} \
             ORDER BY coalesce(p.last_sent, 0), t.next_at, t.id LIMIT 1) \
             AND {DUE} \
             RETURNING id, execution_id, policy_id, address, payload_format, payload, run_count"
        ))
        .bind(at)
        .bind(at + lease)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        // In the claim's transaction: a claim whose turn-taking record
        // failed is not left Running (and an attempt spent) until its
        // lease ends.
        let policy_id: i64 = row.try_get("policy_id")?;
        sqlx::query("UPDATE webhook_policies SET last_sent = $1 WHERE id = $2")
            .bind(at)
            .bind(policy_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let format: String = row.try_get("payload_format")?;
        Ok(Some(Claimed {
            id: row.try_get("id")?,
            execution_id: row.try_get("execution_id")?,
            policy_id,
            address: row.try_get("address")?,
            payload_format: format.parse().map_err(StorageError::Corrupt)?,
            payload: row.try_get("payload")?,
            attempt: row.try_get("run_count")?,
        }))
    }

    /// Whether any task is due, or will be within `within` seconds.
    pub async fn webhook_tasks_due(&self, within: i64) -> Result<bool, StorageError> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT min(CASE WHEN status = 'Pending' THEN next_at ELSE lease_until END) \
             FROM webhook_tasks WHERE status IN ('Pending', 'Running')",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(next.is_some_and(|n| n <= now() + within))
    }

    /// Records an attempt's outcome with its log line, if `claim` is still
    /// the task's current claim; ends the execution when its last task
    /// ended. False when a newer claim took the task over.
    pub async fn record_webhook_attempt(
        &self,
        claim: &Claimed,
        outcome: Outcome,
        line: &str,
    ) -> Result<bool, StorageError> {
        let mut tx = self.write_in(Scope::Shared).await?;
        let at = now();
        let (status, next_at, end) = match outcome {
            Outcome::Delivered => ("Success", at, Some(at)),
            Outcome::RetryAt(when) => ("Pending", when, None),
            Outcome::GaveUp => ("Error", at, Some(at)),
        };
        let done = sqlx::query(
            "UPDATE webhook_tasks SET status = $1, next_at = $2, end_time = $3, \
             lease_until = NULL, updated_at = $4, log = log || $5 \
             WHERE id = $6 AND status = 'Running' AND run_count = $7",
        )
        .bind(status)
        .bind(next_at)
        .bind(end)
        .bind(at)
        .bind(format!("{line}\n"))
        .bind(claim.id)
        .bind(claim.attempt)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        if end.is_some() {
            sqlx::query(
                "UPDATE webhook_executions SET end_time = $2, status = CASE WHEN EXISTS \
                 (SELECT 1 FROM webhook_tasks WHERE execution_id = $1 AND status = 'Error') \
                 THEN 'Error' ELSE 'Success' END \
                 WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM webhook_tasks \
                 WHERE execution_id = $1 AND status IN ('Pending', 'Running'))",
            )
            .bind(claim.execution_id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Drops the history of ended deliveries: those that ended before
    /// `before` (unix seconds), and beyond the newest `keep` of each
    /// policy. How many executions went.
    pub async fn prune_webhook_history(&self, before: i64, keep: i64) -> Result<u64, StorageError> {
        let mut pruned = self
            .prune_webhook_batches(
                "SELECT id FROM webhook_executions WHERE end_time IS NOT NULL AND end_time < $1",
                before,
            )
            .await?;
        let policies: Vec<i64> = sqlx::query_scalar("SELECT id FROM webhook_policies")
            .fetch_all(self.pool())
            .await?;
        for policy in policies {
            let cut: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM webhook_executions WHERE policy_id = $1 \
                 ORDER BY id DESC LIMIT 1 OFFSET $2",
            )
            .bind(policy)
            .bind(keep)
            .fetch_optional(self.pool())
            .await?;
            let Some(cut) = cut else { continue };
            pruned += self
                .prune_webhook_batches(
                    &format!(
                        "SELECT id FROM webhook_executions WHERE policy_id = {policy} \
                         AND end_time IS NOT NULL AND id <= $1"
                    ),
                    cut,
                )
                .await?;
        }
        Ok(pruned)
    }

    /// Deletes the executions `select` (with `$1` bound to `bound`) names,
    /// `PRUNE_BATCH` at a time, each batch its own short transaction.
    async fn prune_webhook_batches(&self, select: &str, bound: i64) -> Result<u64, StorageError> {
        let mut pruned = 0;
        loop {
            let mut tx = self.write_in(Scope::Shared).await?;
            let done = sqlx::query(&format!(
                "DELETE FROM webhook_executions WHERE id IN ({select} ORDER BY id LIMIT {PRUNE_BATCH})"
            ))
            .bind(bound)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            pruned += done;
            if done < PRUNE_BATCH as u64 {
                return Ok(pruned);
            }
        }
    }

    /// One page of a policy's executions, newest first, and the total.
    pub async fn webhook_executions(
        &self,
        policy_id: i64,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Execution>, i64), StorageError> {
        let total: i64 =
            sqlx::query_scalar("SELECT count(*) FROM webhook_executions WHERE policy_id = $1")
                .bind(policy_id)
                .fetch_one(self.pool())
                .await?;
        let rows = sqlx::query(&format!(
            "{EXECUTION_SELECT} WHERE e.policy_id = $1 ORDER BY e.id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(policy_id)
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

    /// An execution of a policy (`None` for another policy's).
    pub async fn webhook_execution(
        &self,
        policy_id: i64,
        id: i64,
    ) -> Result<Option<Execution>, StorageError> {
        let row = sqlx::query(&format!(
            "{EXECUTION_SELECT} WHERE e.id = $1 AND e.policy_id = $2"
        ))
        .bind(id)
        .bind(policy_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(execution_from_row).transpose()
    }

    /// One page of an execution's tasks, and the total.
    pub async fn webhook_tasks(
        &self,
        execution_id: i64,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Task>, i64), StorageError> {
        let total: i64 =
            sqlx::query_scalar("SELECT count(*) FROM webhook_tasks WHERE execution_id = $1")
                .bind(execution_id)
                .fetch_one(self.pool())
                .await?;
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM webhook_tasks WHERE execution_id = $1 \
             ORDER BY id LIMIT $2 OFFSET $3"
        ))
        .bind(execution_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let rows = rows.iter().map(task_from_row).collect::<Result<_, _>>()?;
        Ok((rows, total))
    }

    /// One page of a policy's deliveries, newest first, with their event
    /// type and payload (Harbor's older "webhook jobs"), and the total.
    pub async fn webhook_jobs(
        &self,
        policy_id: i64,
        status: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Job>, i64), StorageError> {
        let filter = "FROM webhook_tasks t JOIN webhook_executions e ON e.id = t.execution_id \
                      WHERE e.policy_id = $1 AND ($2 IS NULL OR t.status = $2)";
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) {filter}"))
            .bind(policy_id)
            .bind(status)
            .fetch_one(self.pool())
            .await?;
        let rows = sqlx::query(&format!(
            "SELECT t.id, t.status, t.payload, t.created_at, t.updated_at, e.event_type \
             {filter} ORDER BY t.id DESC LIMIT $3 OFFSET $4"
        ))
        .bind(policy_id)
        .bind(status)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let jobs = rows
            .iter()
            .map(|row| {
                Ok(Job {
                    id: row.try_get("id")?,
                    event_type: row.try_get("event_type")?,
                    status: row.try_get("status")?,
                    payload: row.try_get("payload")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect::<Result<_, StorageError>>()?;
        Ok((jobs, total))
    }

    /// A task's log (`None` for another execution's task).
    pub async fn webhook_task_log(
        &self,
        execution_id: i64,
        task_id: i64,
    ) -> Result<Option<String>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT log FROM webhook_tasks WHERE id = $1 AND execution_id = $2")
                .bind(task_id)
                .bind(execution_id)
                .fetch_optional(self.pool())
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::{PolicySpec, Target};

    async fn meta() -> (tempfile::TempDir, Meta, i64) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let meta = Meta::connect(&url).await.unwrap();
        meta.ensure_project("p", false).await.unwrap();
        let project = meta.project("p").await.unwrap().unwrap().id;
        let target = |a: &str| Target {
            address: a.into(),
            auth_header: String::new(),
            skip_cert_verify: false,
            payload_format: PayloadFormat::Default,
        };
        let spec = PolicySpec {
            name: "hooks".into(),
            description: String::new(),
            targets: vec![target("http://slow/"), target("http://fast/")],
            event_types: vec![EventType::PushArtifact],
            enabled: true,
        };
        let policy = meta
            .create_webhook_policy(project, &spec, "admin")
            .await
            .unwrap()
            .unwrap();
        (dir, meta, policy)
    }

    fn to(address: &str) -> Delivery {
        Delivery {
            address: address.into(),
            receiver: address.trim_end_matches('/').into(),
            format: PayloadFormat::Default,
            payload: "{}".into(),
        }
    }

    #[tokio::test]
    async fn one_delivery_per_receiver_at_a_time_and_stale_claims_are_fenced() {
        let (_dir, meta, policy) = meta().await;
        for _ in 0..3 {
            meta.queue_webhook(policy, EventType::PushArtifact, &[to("http://slow/")])
                .await
                .unwrap();
        }
        meta.queue_webhook(policy, EventType::PushArtifact, &[to("http://fast/")])
            .await
            .unwrap();
        // The slow receiver's first delivery is out: its others wait, the
        // fast receiver's goes.
        let first = meta.claim_webhook_task(30).await.unwrap().unwrap();
        assert_eq!(first.address, "http://slow/");
        let second = meta.claim_webhook_task(30).await.unwrap().unwrap();
        assert_eq!(second.address, "http://fast/");
        assert!(meta.claim_webhook_task(30).await.unwrap().is_none());
        // A claim whose lease ran out is taken over; the old claim can no
        // longer record its outcome.
        sqlx::query("UPDATE webhook_tasks SET lease_until = 0 WHERE id = $1")
            .bind(first.id)
            .execute(meta.pool())
            .await
            .unwrap();
        let again = meta.claim_webhook_task(30).await.unwrap().unwrap();
        assert_eq!((again.id, again.attempt), (first.id, 2));
        assert!(!meta
            .record_webhook_attempt(&first, Outcome::Delivered, "late")
            .await
            .unwrap());
        assert!(meta
            .record_webhook_attempt(&again, Outcome::Delivered, "ok")
            .await
            .unwrap());
        let next = meta.claim_webhook_task(30).await.unwrap().unwrap();
        assert_eq!(next.address, "http://slow/");
        assert_ne!(next.id, first.id);
        let execution = meta
            .webhook_execution(policy, again.execution_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(execution.status, "Success");
        assert_eq!(
            meta.webhook_task_log(again.execution_id, again.id)
                .await
                .unwrap()
                .unwrap(),
            "ok\n"
        );
    }

    #[tokio::test]
    async fn policies_sharing_a_receiver_take_turns_and_waiting_is_bounded() {
        let (_dir, meta, flood) = meta().await;
        let project = meta.project("p").await.unwrap().unwrap().id;
        let mut spec = meta
            .webhook_policy(project, flood)
            .await
            .unwrap()
            .unwrap()
            .spec;
        spec.name = "quiet".into();
        let quiet = meta
            .create_webhook_policy(project, &spec, "admin")
            .await
            .unwrap()
            .unwrap();
        for _ in 0..3 {
            meta.queue_webhook(flood, EventType::PullArtifact, &[to("http://shared/")])
                .await
                .unwrap();
        }
        meta.queue_webhook(quiet, EventType::PushArtifact, &[to("http://shared/")])
            .await
            .unwrap();
        let mut order = Vec::new();
        while let Some(task) = meta.claim_webhook_task(30).await.unwrap() {
            order.push(task.policy_id);
            meta.record_webhook_attempt(&task, Outcome::Delivered, "ok")
                .await
                .unwrap();
        }
        // The quiet policy's one event goes second, not after the flood.
        assert_eq!(order, [flood, quiet, flood, flood]);
        // Past `MAX_WAITING` undelivered events, new ones are dropped.
        sqlx::query(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {MAX_WAITING}) \
             INSERT INTO webhook_tasks (execution_id, policy_id, address, receiver, \
             payload_format, payload, status, next_at, created_at, updated_at) \
             SELECT (SELECT min(id) FROM webhook_executions), {quiet}, 'http://x/', 'http://x', \
             'Default', '{{}}', 'Pending', 4102444800, 0, 0 FROM n"
        ))
        .execute(meta.pool())
        .await
        .unwrap();
        assert_eq!(
            meta.queue_webhook(quiet, EventType::PushArtifact, &[to("http://shared/")])
                .await
                .unwrap(),
            None
        );
        assert!(meta
            .queue_webhook(flood, EventType::PushArtifact, &[to("http://shared/")])
            .await
            .unwrap()
            .is_some());
    }

    #[tokio::test]
    async fn history_is_pruned_by_age_and_by_count() {
        let (_dir, meta, policy) = meta().await;
        for _ in 0..5 {
            meta.queue_webhook(policy, EventType::PushArtifact, &[to("http://fast/")])
                .await
                .unwrap();
            let task = meta.claim_webhook_task(30).await.unwrap().unwrap();
            meta.record_webhook_attempt(&task, Outcome::Delivered, "ok")
                .await
                .unwrap();
        }
        // One still waiting is never pruned.
        meta.queue_webhook(policy, EventType::PushArtifact, &[to("http://fast/")])
            .await
            .unwrap();
        // The newest three stay (the waiting one among them).
        assert_eq!(meta.prune_webhook_history(0, 3).await.unwrap(), 3);
        let (left, total) = meta.webhook_executions(policy, 0, 100).await.unwrap();
        assert_eq!(total, 3);
        assert_eq!(left.iter().filter(|e| e.end_time.is_none()).count(), 1);
        assert_eq!(
            meta.prune_webhook_history(now() + 10, 100).await.unwrap(),
            2
        );
        let (_, total) = meta.webhook_executions(policy, 0, 100).await.unwrap();
        assert_eq!(total, 1);
    }
}
