//! Tag retention policies (Harbor's `/retentions`): at most one policy per
//! project, a list of rules ([`rules`]), a manual or cron trigger
//! ([`Cron`]), and the record of each execution with one task per
//! repository.
//!
//! Storage evaluates and records; the gateway's runner deletes what a
//! policy does not keep through the management API's delete path (audit
//! records, cache invalidation) and frees nothing itself: the bytes go
//! when garbage collection runs.

pub mod rules;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

pub use crate::cron::Cron;
use crate::error::StorageError;
use crate::meta::{now, Meta};
use crate::oci::RepoName;
pub use rules::{retained, Candidate, Rule, Template};

/// When a policy runs besides manual runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Trigger {
    /// Only when asked (Harbor's trigger with no schedule).
    Manual,
    /// By a cron schedule, already parsed once to be valid.
    Schedule { cron: String },
}

impl Trigger {
    /// The schedule, if any (validated when the policy was stored).
    pub fn cron(&self) -> Option<Cron> {
        match self {
            Trigger::Manual => None,
            Trigger::Schedule { cron } => cron.parse().ok(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub id: i64,
    pub project_id: i64,
    pub rules: Vec<Rule>,
    pub trigger: Trigger,
}

/// An execution of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRow {
    pub id: i64,
    pub policy_id: i64,
    /// `Running`, `Success` or `Error`.
    pub status: String,
    /// `MANUAL` or `SCHEDULE`.
    pub trigger: String,
    pub dry_run: bool,
    pub start_time: i64,
    pub end_time: Option<i64>,
}

/// What an execution did in one repository.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    pub id: i64,
    pub execution_id: i64,
    pub repository: String,
    pub status: String,
    /// Top-level artifacts looked at.
    pub total: i64,
    pub retained: i64,
    pub start_time: i64,
    pub end_time: Option<i64>,
}

/// A task to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub repository: String,
    pub status: String,
    pub total: i64,
    pub retained: i64,
    /// One line per artifact: its digest, tags and fate.
    pub log: String,
    pub start_time: i64,
}

/// A repository with its top-level artifacts, for evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct RepositoryArtifacts {
    pub repo_id: i64,
    pub name: RepoName,
    pub candidates: Vec<Candidate>,
}

fn policy_from_row(row: &AnyRow) -> Result<Policy, StorageError> {
    let rules: String = row.try_get("rules")?;
    let trig: String = row.try_get("trig")?;
    let bad = |e: serde_json::Error| StorageError::Corrupt(format!("retention policy: {e}"));
    Ok(Policy {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        rules: serde_json::from_str(&rules).map_err(bad)?,
        trigger: serde_json::from_str(&trig).map_err(bad)?,
    })
}

fn execution_from_row(row: &AnyRow) -> Result<ExecutionRow, StorageError> {
    Ok(ExecutionRow {
        id: row.try_get("id")?,
        policy_id: row.try_get("policy_id")?,
        status: row.try_get("status")?,
        trigger: row.try_get("trig")?,
        dry_run: crate::meta::flag(row, "dry_run")?,
        start_time: row.try_get("start_time")?,
        end_time: row.try_get("end_time")?,
    })
}

fn task_from_row(row: &AnyRow) -> Result<TaskRow, StorageError> {
    Ok(TaskRow {
        id: row.try_get("id")?,
        execution_id: row.try_get("execution_id")?,
        repository: row.try_get("repository")?,
        status: row.try_get("status")?,
        total: row.try_get("total")?,
        retained: row.try_get("retained")?,
        start_time: row.try_get("start_time")?,
        end_time: row.try_get("end_time")?,
    })
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

const EXECUTION_COLUMNS: &str = "id, policy_id, status, trig, dry_run, start_time, end_time";
const TASK_COLUMNS: &str =
    "id, execution_id, repository, status, total, retained, start_time, end_time";

impl Meta {
    pub async fn retention_policy(&self, id: i64) -> Result<Option<Policy>, StorageError> {
        let row = sqlx::query("SELECT * FROM retention_policies WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(policy_from_row).transpose()
    }

    /// The id of a project's policy (Harbor's `retention_id` metadata).
    pub async fn project_retention_id(&self, project_id: i64) -> Result<Option<i64>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM retention_policies WHERE project_id = $1")
                .bind(project_id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// Stores a project's policy; `None` when it already has one.
    pub async fn create_retention_policy(
        &self,
        project_id: i64,
        rules: &[Rule],
        trigger: &Trigger,
    ) -> Result<Option<i64>, StorageError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO retention_policies (project_id, rules, trig, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (project_id) DO NOTHING RETURNING id",
        )
        .bind(project_id)
        .bind(json(&rules))
        .bind(json(trigger))
        .bind(now())
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn update_retention_policy(
        &self,
        id: i64,
        rules: &[Rule],
        trigger: &Trigger,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE retention_policies SET rules = $2, trig = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(json(&rules))
        .bind(json(trigger))
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn delete_retention_policy(&self, id: i64) -> Result<bool, StorageError> {
        let done = sqlx::query("DELETE FROM retention_policies WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every policy with a schedule.
    pub async fn scheduled_retention_policies(&self) -> Result<Vec<Policy>, StorageError> {
        let rows = sqlx::query(
            "SELECT * FROM retention_policies WHERE json_extract(trig, '$.kind') = 'Schedule'",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(policy_from_row).collect()
    }

    /// Claims the firing of a schedule at `second`: true for exactly one
    /// caller, however many berth processes share the database.
    pub async fn claim_retention_fire(&self, id: i64, second: i64) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE retention_policies SET last_fired = $2 \
             WHERE id = $1 AND (last_fired IS NULL OR last_fired < $2)",
        )
        .bind(id)
        .bind(second)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The project's repositories with their top-level artifacts.
    pub async fn retention_candidates(
        &self,
        project: &str,
    ) -> Result<Vec<RepositoryArtifacts>, StorageError> {
        let repos = sqlx::query(
            "SELECT id, name FROM repositories WHERE name = $1 \
             OR (name >= $1 || '/' AND name < $1 || '0') ORDER BY name",
        )
        .bind(project)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(repos.len());
        for repo in repos {
            let repo_id: i64 = repo.try_get("id")?;
            // The tags as a JSON array: PostgreSQL has no json_group_array,
            // and its json_agg of no rows is NULL.
            let tag_list = self.backend().pick(
                "json_group_array(t.name)",
                "coalesce(CAST(json_agg(t.name) AS TEXT), '[]')",
            );
            let label_list = self.backend().pick(
                "json_group_array(l.name)",
                "coalesce(CAST(json_agg(l.name) AS TEXT), '[]')",
            );
            let rows = sqlx::query(&format!(
                "SELECT m.digest, m.rowid AS ord, m.pulled_at, m.created_at, \
                   coalesce((SELECT max(t.updated_at) FROM tags t \
                     WHERE t.repo_id = m.repo_id AND t.manifest_digest = m.digest), 0) AS tagged_at, \
                   (SELECT {tag_list} FROM tags t \
                     WHERE t.repo_id = m.repo_id AND t.manifest_digest = m.digest) AS tags, \
                   (SELECT {label_list} FROM artifact_labels al JOIN labels l ON l.id = al.label_id \
                     WHERE al.repo_id = m.repo_id AND al.manifest_digest = m.digest) AS labels \
                 FROM manifests m WHERE m.repo_id = $1 AND NOT EXISTS (SELECT 1 FROM manifest_refs c \
                   WHERE c.repo_id = m.repo_id AND c.is_manifest = 1 AND c.child_digest = m.digest) \
                 ORDER BY m.rowid",
            ))
            .bind(repo_id)
            .fetch_all(self.pool())
            .await?;
            let mut candidates = Vec::with_capacity(rows.len());
            for row in rows {
                let tags: String = row.try_get("tags")?;
                let mut tags: Vec<String> = serde_json::from_str(&tags)
                    .map_err(|e| StorageError::Corrupt(format!("tag list: {e}")))?;
                tags.sort();
                let labels: String = row.try_get("labels")?;
                let labels: Vec<String> = serde_json::from_str(&labels)
                    .map_err(|e| StorageError::Corrupt(format!("label list: {e}")))?;
                candidates.push(Candidate {
                    digest: row.try_get("digest")?,
                    tags,
                    labels,
                    // The later of the push and the last tagging.
                    pushed_at: row
                        .try_get::<i64, _>("created_at")?
                        .max(row.try_get("tagged_at")?),
                    pulled_at: row.try_get("pulled_at")?,
                    order: row.try_get("ord")?,
                });
            }
            out.push(RepositoryArtifacts {
                repo_id,
                name: repo.try_get::<String, _>("name")?.parse()?,
                candidates,
            });
        }
        Ok(out)
    }

    pub async fn start_retention_execution(
        &self,
        policy_id: i64,
        trigger: &str,
        dry_run: bool,
    ) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO retention_executions (policy_id, status, trig, dry_run, start_time) \
             VALUES ($1, 'Running', $2, $3, $4) RETURNING id",
        )
        .bind(policy_id)
        .bind(trigger)
        .bind(i64::from(dry_run))
        .bind(now())
        .fetch_one(self.pool())
        .await?)
    }

    pub async fn add_retention_task(
        &self,
        execution_id: i64,
        task: &NewTask,
    ) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO retention_tasks (execution_id, repository, status, total, retained, log, start_time, end_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(execution_id)
        .bind(&task.repository)
        .bind(&task.status)
        .bind(task.total)
        .bind(task.retained)
        .bind(&task.log)
        .bind(task.start_time)
        .bind(now())
        .fetch_one(self.pool())
        .await?)
    }

    pub async fn finish_retention_execution(
        &self,
        id: i64,
        status: &str,
    ) -> Result<(), StorageError> {
        sqlx::query("UPDATE retention_executions SET status = $2, end_time = $3 WHERE id = $1")
            .bind(id)
            .bind(status)
            .bind(now())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// One page of a policy's executions, newest first, and the total.
    pub async fn retention_executions(
        &self,
        policy_id: i64,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<ExecutionRow>, i64), StorageError> {
        let total: i64 =
            sqlx::query_scalar("SELECT count(*) FROM retention_executions WHERE policy_id = $1")
                .bind(policy_id)
                .fetch_one(self.pool())
                .await?;
        let rows = sqlx::query(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM retention_executions WHERE policy_id = $1 \
             ORDER BY id DESC LIMIT $2 OFFSET $3"
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

    pub async fn retention_execution(
        &self,
        policy_id: i64,
        id: i64,
    ) -> Result<Option<ExecutionRow>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM retention_executions WHERE policy_id = $1 AND id = $2"
        ))
        .bind(policy_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(execution_from_row).transpose()
    }

    /// One page of an execution's tasks, by repository, and the total.
    pub async fn retention_tasks(
        &self,
        execution_id: i64,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<TaskRow>, i64), StorageError> {
        let total: i64 =
            sqlx::query_scalar("SELECT count(*) FROM retention_tasks WHERE execution_id = $1")
                .bind(execution_id)
                .fetch_one(self.pool())
                .await?;
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM retention_tasks WHERE execution_id = $1 \
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

    pub async fn retention_task_log(
        &self,
        execution_id: i64,
        task_id: i64,
    ) -> Result<Option<String>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT log FROM retention_tasks WHERE execution_id = $1 AND id = $2",
        )
        .bind(execution_id)
        .bind(task_id)
        .fetch_optional(self.pool())
        .await?)
    }
}
