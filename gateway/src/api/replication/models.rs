//! Harbor's replication JSON models, and berth's policies, executions
//! and tasks as those models.

use berth_storage::replication::{Execution, FilterKind, Policy, Task, Trigger};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::super::registries::{registry_json, Registry};
use super::super::request::time;
use crate::app::App;
use crate::error::GatewayError;

/// The adapters berth replicates with.
pub const ADAPTERS: &[&str] = &["docker-registry", "docker-hub", "harbor", "berth"];

/// Harbor's `ReplicationPolicy`. Every field may be absent or null in a
/// request (Harbor's clients send nulls for what they leave unset).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplicationPolicy {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Absent or id 0: this registry (push mode when it is the source).
    #[serde(default)]
    pub src_registry: Option<RegistryRef>,
    #[serde(default)]
    pub dest_registry: Option<RegistryRef>,
    #[serde(default)]
    pub dest_namespace: Option<String>,
    /// -1: only the last path component under the namespace; 0: the
    /// whole name; n: the first n components dropped.
    #[serde(default)]
    pub dest_namespace_replace_count: Option<i64>,
    #[serde(default)]
    pub trigger: Option<ReplicationTrigger>,
    #[serde(default)]
    pub filters: Option<Vec<ReplicationFilter>>,
    #[serde(default)]
    pub replicate_deletion: Option<bool>,
    /// Harbor's older name for `replicate_deletion`.
    #[serde(default)]
    pub deletion: Option<bool>,
    #[serde(default, rename = "override")]
    pub override_existing: Option<bool>,
    /// Absent: enabled.
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub creation_time: Option<String>,
    #[serde(default)]
    pub update_time: Option<String>,
    /// KiB/s per task; -1 (or 0) is unlimited.
    #[serde(default)]
    pub speed: Option<i64>,
    #[serde(default)]
    pub copy_by_chunk: Option<bool>,
    #[serde(default)]
    pub single_active_replication: Option<bool>,
}

/// A registry as a policy names it: Harbor's whole `Registry` in answers;
/// requests need only its `id`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegistryRef {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Harbor's `RegistryCredential` (the secret shows as `*****`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<String>,
}

impl From<Registry> for RegistryRef {
    fn from(r: Registry) -> RegistryRef {
        RegistryRef {
            id: Some(r.id),
            name: Some(r.name),
            kind: Some(r.kind),
            url: Some(r.url),
            description: Some(r.description),
            insecure: Some(r.insecure),
            status: Some(r.status),
            credential: serde_json::to_value(r.credential).ok(),
            creation_time: Some(r.creation_time),
            update_time: Some(r.update_time),
        }
    }
}

/// Harbor's `ReplicationTrigger`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplicationTrigger {
    /// `manual`, `scheduled` or `event_based`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub trigger_settings: Option<TriggerSettings>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TriggerSettings {
    /// Six fields, seconds first, UTC.
    #[serde(default)]
    pub cron: Option<String>,
}

/// Harbor's `ReplicationFilter`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplicationFilter {
    /// `name`, `tag`, `label` (push mode) or `resource`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// A doublestar pattern; for `resource`, `image` or `artifact`; for
    /// `label`, a list of label names an artifact must all carry.
    #[serde(default)]
    pub value: serde_json::Value,
    /// `matches` (the default) or `excludes`.
    #[serde(default)]
    pub decoration: Option<String>,
}

/// Harbor's `ReplicationExecution`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplicationExecution {
    pub id: i64,
    pub policy_id: i64,
    /// `InProgress`, `Succeed`, `Failed` or `Stopped`.
    pub status: String,
    pub status_text: String,
    /// `manual`, `scheduled` or `event_based`.
    pub trigger: String,
    pub start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    pub total: i64,
    pub failed: i64,
    pub succeed: i64,
    pub in_progress: i64,
    pub stopped: i64,
}

/// Harbor's `ReplicationTask`, with berth's progress counters.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReplicationTask {
    pub id: i64,
    pub execution_id: i64,
    pub resource_type: String,
    pub src_resource: String,
    pub dst_resource: String,
    /// `copy` or `deletion`.
    pub operation: String,
    pub status: String,
    pub job_id: String,
    pub start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// Bytes sent so far.
    pub bytes: i64,
    pub artifacts_done: i64,
    pub artifacts_total: i64,
}

/// Harbor's `StartReplicationExecution`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StartReplicationExecution {
    pub policy_id: i64,
}

/// Harbor's `AdapterInfo` (the endpoint pattern left out).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdapterInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub supported_resource_filters: Vec<serde_json::Value>,
    pub supported_triggers: Vec<String>,
}

/// This registry as a policy's side.
pub(crate) fn local(app: &App) -> RegistryRef {
    RegistryRef {
        id: Some(0),
        name: Some("Local".into()),
        kind: Some("berth".into()),
        url: Some(app.url("")),
        description: Some("this registry".into()),
        insecure: Some(false),
        status: Some("healthy".into()),
        credential: None,
        creation_time: None,
        update_time: None,
    }
}

async fn side(app: &App, id: Option<i64>) -> Result<RegistryRef, GatewayError> {
    Ok(match id {
        None => local(app),
        Some(id) => match app.registry.meta().endpoint(id).await? {
            Some(ep) => registry_json(&ep, "unknown").into(),
            // Endpoints in use cannot be deleted; this is a race at most.
            None => RegistryRef {
                id: Some(id),
                name: None,
                kind: None,
                url: None,
                description: None,
                insecure: None,
                status: None,
                credential: None,
                creation_time: None,
                update_time: None,
            },
        },
    })
}

pub(crate) async fn policy_json(app: &App, p: &Policy) -> Result<ReplicationPolicy, GatewayError> {
    let s = &p.spec;
    Ok(ReplicationPolicy {
        id: Some(p.id),
        name: Some(s.name.clone()),
        description: Some(s.description.clone()),
        src_registry: Some(side(app, s.src_registry).await?),
        dest_registry: Some(side(app, s.dest_registry).await?),
        dest_namespace: Some(s.dest_namespace.clone()),
        dest_namespace_replace_count: Some(s.dest_namespace_replace_count),
        trigger: Some(ReplicationTrigger {
            kind: Some(s.trigger.as_str().into()),
            trigger_settings: Some(TriggerSettings {
                cron: Some(match &s.trigger {
                    Trigger::Scheduled { cron } => cron.clone(),
                    _ => String::new(),
                }),
            }),
        }),
        filters: Some(
            s.filters
                .iter()
                .map(|f| ReplicationFilter {
                    kind: Some(f.kind.as_str().into()),
                    value: if f.kind == FilterKind::Label {
                        serde_json::json!(f.labels)
                    } else {
                        serde_json::Value::String(f.value.clone())
                    },
                    decoration: Some(if f.excludes { "excludes" } else { "matches" }.into()),
                })
                .collect(),
        ),
        replicate_deletion: Some(s.replicate_deletion),
        deletion: Some(s.replicate_deletion),
        override_existing: Some(s.override_existing),
        enabled: Some(s.enabled),
        creation_time: Some(time(p.created_at)),
        update_time: Some(time(p.updated_at)),
        speed: Some(s.speed_kib.map_or(-1, |k| k as i64)),
        copy_by_chunk: Some(s.copy_by_chunk),
        single_active_replication: Some(s.single_active),
    })
}

pub(crate) fn execution_json(e: &Execution) -> ReplicationExecution {
    ReplicationExecution {
        id: e.id,
        policy_id: e.policy_id,
        status: e.status.clone(),
        status_text: e.status_text.clone(),
        trigger: e.trigger.clone(),
        start_time: time(e.start_time),
        end_time: e.end_time.map(time),
        total: e.total,
        failed: e.failed,
        succeed: e.succeed,
        in_progress: e.in_progress,
        stopped: e.stopped,
    }
}

pub(crate) fn task_json(t: &Task) -> ReplicationTask {
    ReplicationTask {
        id: t.id,
        execution_id: t.execution_id,
        resource_type: t.resource_type.clone(),
        src_resource: t.src_resource.clone(),
        dst_resource: t.dst_resource.clone(),
        operation: t.operation.clone(),
        status: t.status.clone(),
        job_id: t.id.to_string(),
        start_time: time(t.start_time),
        end_time: t.end_time.map(time),
        bytes: t.bytes,
        artifacts_done: t.artifacts_done,
        artifacts_total: t.artifacts_total,
    }
}

/// What an adapter supports (also `/registries/{id}/info`).
pub fn adapter_info(kind: &str) -> AdapterInfo {
    let description = match kind {
        "docker-hub" => "Docker Hub: repositories named by the name filter (it cannot be listed)",
        "harbor" | "berth" => {
            "Harbor or berth: listed through the project API; missing projects are created"
        }
        _ => "any registry with the distribution API: listed through its catalog",
    };
    AdapterInfo {
        kind: kind.to_owned(),
        description: description.to_owned(),
        supported_resource_filters: vec![
            serde_json::json!({"type": "name", "style": "input"}),
            serde_json::json!({"type": "tag", "style": "input"}),
            serde_json::json!({"type": "label", "style": "list"}),
            serde_json::json!({"type": "resource", "style": "radio", "values": ["image", "artifact"]}),
        ],
        supported_triggers: vec!["manual".into(), "scheduled".into(), "event_based".into()],
    }
}
