//! Webhooks (Harbor's `/projects/{p}/webhook`): a project's policies name
//! the events they want and the HTTP targets that hear of them.
//!
//! - this module: the policies, and the event types and payload formats.
//! - [`queue`]: one execution per event and policy, one task per target;
//!   the tasks are the durable delivery queue the gateway's sender drains.
//!
//! Storage keeps policies and the queue; the gateway builds payloads and
//! sends them.

pub mod queue;

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::error::StorageError;
use crate::meta::{containing, flag, now, Meta};
use crate::oci::RepoName;
use crate::secrets::{seal_in, Keyring, Purpose};

/// What a policy can be notified of, by Harbor's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    PushArtifact,
    PullArtifact,
    DeleteArtifact,
    QuotaExceed,
    QuotaWarning,
    Replication,
    TagRetention,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        EventType::PushArtifact,
        EventType::PullArtifact,
        EventType::DeleteArtifact,
        EventType::QuotaExceed,
        EventType::QuotaWarning,
        EventType::Replication,
        EventType::TagRetention,
    ];

    /// Harbor's name (`PUSH_ARTIFACT`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PushArtifact => "PUSH_ARTIFACT",
            EventType::PullArtifact => "PULL_ARTIFACT",
            EventType::DeleteArtifact => "DELETE_ARTIFACT",
            EventType::QuotaExceed => "QUOTA_EXCEED",
            EventType::QuotaWarning => "QUOTA_WARNING",
            EventType::Replication => "REPLICATION",
            EventType::TagRetention => "TAG_RETENTION",
        }
    }

    /// The CloudEvents `type` Harbor gives it.
    pub fn cloud_event_type(self) -> &'static str {
        match self {
            EventType::PushArtifact => "harbor.artifact.pushed",
            EventType::PullArtifact => "harbor.artifact.pulled",
            EventType::DeleteArtifact => "harbor.artifact.deleted",
            EventType::QuotaExceed => "harbor.quota.exceeded",
            EventType::QuotaWarning => "harbor.quota.warning",
            EventType::Replication => "harbor.replication.status.changed",
            EventType::TagRetention => "harbor.tag_retention.finished",
        }
    }
}

impl std::str::FromStr for EventType {
    type Err = String;

    fn from_str(s: &str) -> Result<EventType, String> {
        EventType::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
                format!("unknown event type `{s}`; use one of {}", known.join(", "))
            })
    }
}

/// How a payload is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum PayloadFormat {
    /// Harbor's own JSON (`{"type", "occur_at", "operator", "event_data"}`).
    #[default]
    Default,
    /// A CloudEvents 1.0 structured-mode event.
    CloudEvents,
}

impl PayloadFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadFormat::Default => "Default",
            PayloadFormat::CloudEvents => "CloudEvents",
        }
    }
}

impl std::str::FromStr for PayloadFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<PayloadFormat, String> {
        match s {
            "" | "Default" => Ok(PayloadFormat::Default),
            "CloudEvents" => Ok(PayloadFormat::CloudEvents),
            other => Err(format!(
                "unknown payload format `{other}`; use Default or CloudEvents"
            )),
        }
    }
}

/// Where a policy sends its events: an HTTP(S) endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// An absolute `http://` or `https://` URL (checked by the caller).
    pub address: String,
    /// Sent as the `Authorization` header when not empty (a secret: never
    /// logged, never shown back by the API).
    #[serde(default)]
    pub auth_header: String,
    #[serde(default)]
    pub skip_cert_verify: bool,
    #[serde(default)]
    pub payload_format: PayloadFormat,
}

/// A policy's settings, as created or updated.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    pub name: String,
    pub description: String,
    pub targets: Vec<Target>,
    pub event_types: Vec<EventType>,
    pub enabled: bool,
}

/// A stored policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub id: i64,
    pub project_id: i64,
    pub spec: PolicySpec,
    pub creator: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Policy {
    pub fn wants(&self, event: EventType) -> bool {
        self.spec.enabled && self.spec.event_types.contains(&event)
    }
}

fn bad(e: serde_json::Error) -> StorageError {
    StorageError::Corrupt(format!("webhook policy: {e}"))
}

fn policy_from_row(keyring: &Keyring, row: &AnyRow) -> Result<Policy, StorageError> {
    let targets: String = row.try_get("targets")?;
    let mut targets: Vec<Target> = serde_json::from_str(&targets).map_err(bad)?;
    for t in targets.iter_mut().filter(|t| !t.auth_header.is_empty()) {
        let purpose = Purpose::WebhookAuth {
            address: &t.address,
        };
        t.auth_header =
            keyring.open_or_warn(purpose, &t.auth_header, "a webhook's stored auth header")?;
    }
    let events: String = row.try_get("event_types")?;
    Ok(Policy {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        spec: PolicySpec {
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            targets,
            event_types: serde_json::from_str(&events).map_err(bad)?,
            enabled: flag(row, "enabled")?,
        },
        creator: row.try_get("creator")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".into())
}

impl Meta {
    /// `targets` as stored: each `Authorization` header sealed for its
    /// address, inside the caller's write transaction.
    async fn sealed_targets(
        &self,
        conn: &mut AnyConnection,
        targets: &[Target],
    ) -> Result<String, StorageError> {
        let mut sealed = targets.to_vec();
        for t in sealed.iter_mut().filter(|t| !t.auth_header.is_empty()) {
            let purpose = Purpose::WebhookAuth {
                address: &t.address,
            };
            t.auth_header = seal_in(self.keyring(), conn, purpose, &t.auth_header).await?;
        }
        Ok(json(&sealed))
    }
}

/// Why a policy could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyRefused {
    /// The project has another policy of that name.
    NameTaken,
    /// No such policy in this project.
    NotFound,
}

impl Meta {
    /// One page of a project's policies (name containing `name`, when
    /// given), oldest first, and the total.
    pub async fn webhook_policies(
        &self,
        project_id: i64,
        name: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Policy>, i64), StorageError> {
        let pattern = containing(name);
        let filter = "WHERE project_id = $1 AND name LIKE $2 ESCAPE '\\'";
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM webhook_policies {filter}"))
                .bind(project_id)
                .bind(&pattern)
                .fetch_one(self.pool())
                .await?;
        let rows = sqlx::query(&format!(
            "SELECT * FROM webhook_policies {filter} ORDER BY id LIMIT $3 OFFSET $4"
        ))
        .bind(project_id)
        .bind(&pattern)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let rows = rows
            .iter()
            .map(|r| policy_from_row(self.keyring(), r))
            .collect::<Result<_, _>>()?;
        Ok((rows, total))
    }

    /// A policy of a project (`None` for another project's policy).
    pub async fn webhook_policy(
        &self,
        project_id: i64,
        id: i64,
    ) -> Result<Option<Policy>, StorageError> {
        let row = sqlx::query("SELECT * FROM webhook_policies WHERE id = $1 AND project_id = $2")
            .bind(id)
            .bind(project_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref()
            .map(|r| policy_from_row(self.keyring(), r))
            .transpose()
    }

    /// A policy by id alone (the sender's view: its deliveries name it).
    pub async fn webhook_policy_by_id(&self, id: i64) -> Result<Option<Policy>, StorageError> {
        let row = sqlx::query("SELECT * FROM webhook_policies WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref()
            .map(|r| policy_from_row(self.keyring(), r))
            .transpose()
    }

    /// Every enabled policy of a project (events look them up).
    pub async fn enabled_webhook_policies(
        &self,
        project_id: i64,
    ) -> Result<Vec<Policy>, StorageError> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_policies WHERE project_id = $1 AND enabled = 1 ORDER BY id",
        )
        .bind(project_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| policy_from_row(self.keyring(), r))
            .collect()
    }

    pub async fn create_webhook_policy(
        &self,
        project_id: i64,
        spec: &PolicySpec,
        creator: &str,
    ) -> Result<Result<i64, PolicyRefused>, StorageError> {
        let mut tx = self.write().await?;
        let taken: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM webhook_policies WHERE project_id = $1 AND name = $2",
        )
        .bind(project_id)
        .bind(&spec.name)
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Ok(Err(PolicyRefused::NameTaken));
        }
        let targets = self.sealed_targets(&mut tx, &spec.targets).await?;
        let id: i64 = sqlx::query(
            "INSERT INTO webhook_policies (name, description, targets, event_types, enabled, \
             project_id, creator, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
        )
        .bind(&spec.name)
        .bind(&spec.description)
        .bind(targets)
        .bind(json(&spec.event_types))
        .bind(i64::from(spec.enabled))
        .bind(project_id)
        .bind(creator)
        .bind(now())
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        tx.commit().await?;
        Ok(Ok(id))
    }

    pub async fn update_webhook_policy(
        &self,
        project_id: i64,
        id: i64,
        spec: &PolicySpec,
    ) -> Result<Result<(), PolicyRefused>, StorageError> {
        let mut tx = self.write().await?;
        let taken: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM webhook_policies WHERE project_id = $1 AND name = $2 AND id <> $3",
        )
        .bind(project_id)
        .bind(&spec.name)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Ok(Err(PolicyRefused::NameTaken));
        }
        let targets = self.sealed_targets(&mut tx, &spec.targets).await?;
        let done = sqlx::query(
            "UPDATE webhook_policies SET name = $1, description = $2, targets = $3, \
             event_types = $4, enabled = $5, updated_at = $6 WHERE id = $7 AND project_id = $8",
        )
        .bind(&spec.name)
        .bind(&spec.description)
        .bind(targets)
        .bind(json(&spec.event_types))
        .bind(i64::from(spec.enabled))
        .bind(now())
        .bind(id)
        .bind(project_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(if done.rows_affected() > 0 {
            Ok(())
        } else {
            Err(PolicyRefused::NotFound)
        })
    }

    /// Deletes a policy with its history and its undelivered events;
    /// false when the project has no such policy.
    pub async fn delete_webhook_policy(
        &self,
        project_id: i64,
        id: i64,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query("DELETE FROM webhook_policies WHERE id = $1 AND project_id = $2")
            .bind(id)
            .bind(project_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// When a repository was created (unix seconds), for payloads.
    pub async fn repository_created(&self, repo: &RepoName) -> Result<Option<i64>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT created_at FROM repositories WHERE name = $1")
                .bind(repo.as_str())
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// When each of a project's policies last queued an event of each
    /// type: (policy, event type, unix seconds).
    pub async fn webhook_last_triggers(
        &self,
        project_id: i64,
    ) -> Result<Vec<(Policy, String, i64)>, StorageError> {
        let rows = sqlx::query(
            "SELECT p.*, e.event_type AS last_event, max(e.start_time) AS last_at \
             FROM webhook_policies p JOIN webhook_executions e ON e.policy_id = p.id \
             WHERE p.project_id = $1 GROUP BY p.id, e.event_type ORDER BY p.id, e.event_type",
        )
        .bind(project_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    policy_from_row(self.keyring(), row)?,
                    row.try_get("last_event")?,
                    row.try_get("last_at")?,
                ))
            })
            .collect()
    }
}
