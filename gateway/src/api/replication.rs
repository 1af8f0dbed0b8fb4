//! Replication (Harbor's `replication` API), system administrators only:
//!
//! - `/replication/policies` GET (q=name=~, page), POST; `/{id}` GET, PUT,
//!   DELETE
//! - `/replication/executions` GET (policy_id, status, trigger, page),
//!   POST `{"policy_id"}`; `/{id}` GET, PUT (stop); `/{id}/tasks` GET;
//!   `/{id}/tasks/{tid}/log` GET (text)
//! - `/replication/adapters`, `/replication/adapterinfos` GET
//!
//! A policy's `src_registry` or `dest_registry` absent (or id 0) is this
//! registry. The copying is `crate::replication`'s.

use std::collections::BTreeMap;

use berth_policy::{Action, Resource};
use berth_storage::cron::Cron;
use berth_storage::oci::RepoName;
use berth_storage::replication::{
    Execution, ExecutionQuery, Filter, FilterKind, Policy, PolicySpec, Task, Trigger,
};
use pingora::http::Method;
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::page::{Page, Term, Q};
use super::registries::{registry_json, Registry};
use super::request::{bounded, path_id, read_json, time, ApiRequest};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::replication::Scope;
use crate::route::Query;

#[derive(OpenApi)]
#[openapi(
    paths(
        list,
        create,
        get,
        update,
        delete,
        executions,
        start,
        execution,
        stop,
        tasks,
        task_log,
        adapters,
        adapter_infos
    ),
    components(schemas(
        ReplicationPolicy,
        ReplicationTrigger,
        TriggerSettings,
        ReplicationFilter,
        ReplicationExecution,
        ReplicationTask,
        StartReplicationExecution,
        AdapterInfo,
        RegistryRef
    ))
)]
pub struct Doc;

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
    /// `name`, `tag`, `resource` (`label` is refused: no labels yet).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// A doublestar pattern; for `resource`, `image` or `artifact`.
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

pub async fn route(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    rest: &[&str],
) -> Result<Reply, GatewayError> {
    req.require(Action::ManageReplication, Resource::System)?;
    let m = session.req_header().method.clone();
    let query = Query::parse(session.req_header().uri.query());
    match rest {
        ["policies"] if m == Method::GET => list(app, &query).await,
        ["policies"] if m == Method::POST => create(app, session, req).await,
        ["policies", id] if m == Method::GET => get(app, id).await,
        ["policies", id] if m == Method::PUT => update(app, session, req, id).await,
        ["policies", id] if m == Method::DELETE => delete(app, req, id).await,
        ["executions"] if m == Method::GET => executions(app, &query).await,
        ["executions"] if m == Method::POST => start(app, session, req).await,
        ["executions", id] if m == Method::GET => execution(app, id).await,
        ["executions", id] if m == Method::PUT => stop(app, req, id).await,
        ["executions", id, "tasks"] if m == Method::GET => tasks(app, &query, id).await,
        ["executions", id, "tasks", tid, "log"] if m == Method::GET => task_log(app, id, tid).await,
        ["adapters"] if m == Method::GET => Ok(adapters()),
        ["adapterinfos"] if m == Method::GET => Ok(adapter_infos()),
        ["policies"]
        | ["policies", _]
        | ["executions"]
        | ["executions", _]
        | ["executions", _, "tasks"]
        | ["executions", _, "tasks", _, "log"]
        | ["adapters"]
        | ["adapterinfos"] => Err(GatewayError::MethodNotAllowed {
            method: m.to_string(),
        }),
        _ => Err(GatewayError::NotFound(
            session.req_header().uri.path().to_owned(),
        )),
    }
}

/// This registry as a policy's side.
fn local(app: &App) -> RegistryRef {
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

async fn policy_json(app: &App, p: &Policy) -> Result<ReplicationPolicy, GatewayError> {
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
                    value: serde_json::Value::String(f.value.clone()),
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

/// Checks a policy from the API; each refusal names the field.
async fn spec(app: &App, body: ReplicationPolicy) -> Result<PolicySpec, GatewayError> {
    let bad = |m: String| GatewayError::BadRequest(m);
    let name = body.name.as_deref().unwrap_or("").trim().to_owned();
    if name.is_empty() {
        return Err(bad("`name` is required".into()));
    }
    bounded("name", &name, 255)?;
    let description = body.description.unwrap_or_default();
    bounded("description", &description, 1024)?;
    let endpoint = |r: Option<RegistryRef>| r.and_then(|r| r.id).filter(|id| *id != 0);
    let src = endpoint(body.src_registry);
    let dest = endpoint(body.dest_registry);
    let remote = match (src, dest) {
        (Some(_), Some(_)) => return Err(bad(
            "one of `src_registry` and `dest_registry` must be this registry (absent or id 0): \
                 berth replicates between itself and an endpoint"
                .into(),
        )),
        (None, None) => {
            return Err(bad(
                "`src_registry` (pull mode) or `dest_registry` (push mode) must name a registry \
                 endpoint by id"
                    .into(),
            ))
        }
        (Some(id), None) | (None, Some(id)) => id,
    };
    let ep = app.registry.meta().endpoint(remote).await?.ok_or_else(|| {
        bad(format!(
            "registry endpoint {remote} does not exist; create it under /api/v2.0/registries"
        ))
    })?;
    if !ADAPTERS.contains(&ep.kind.as_str()) {
        return Err(bad(format!(
            "registry endpoint `{}` is of type `{}`, which berth does not replicate with; use one of {}",
            ep.name,
            ep.kind,
            ADAPTERS.join(", ")
        )));
    }
    let namespace = body
        .dest_namespace
        .as_deref()
        .unwrap_or("")
        .trim()
        .trim_matches('/')
        .to_owned();
    if !namespace.is_empty() && format!("{namespace}/x").parse::<RepoName>().is_err() {
        return Err(bad(format!(
            "`dest_namespace` `{namespace}` is not a valid start of a repository name (lowercase \
             letters, digits, `.`, `_`, `-`, separated by `/`)"
        )));
    }
    let replace_count = body.dest_namespace_replace_count.unwrap_or(-1);
    if !(-1..=100).contains(&replace_count) {
        return Err(bad(format!(
            "`dest_namespace_replace_count` must be -1, 0 or a number of leading path components, not {replace_count}"
        )));
    }
    let trigger = match body.trigger {
        None => Trigger::Manual,
        Some(t) => {
            match t.kind.as_deref().unwrap_or("") {
                "" | "manual" => Trigger::Manual,
                "event_based" if src.is_some() => return Err(bad(
                    "an `event_based` trigger reacts to pushes and deletes here: it needs this \
                     registry as the source (push mode)"
                        .into(),
                )),
                "event_based" => Trigger::EventBased,
                "scheduled" => {
                    let cron = t.trigger_settings.and_then(|s| s.cron).unwrap_or_default();
                    let parsed: Cron = cron.trim().parse().map_err(bad)?;
                    if !parsed.at_most_once_a_minute() {
                        return Err(bad(format!(
                        "cron `{cron}` fires more than once a minute; give the seconds field one value, such as `0 */5 * * * *`"
                    )));
                    }
                    Trigger::Scheduled {
                        cron: cron.trim().to_owned(),
                    }
                }
                other => {
                    return Err(bad(format!(
                "trigger type `{other}` is not known; use `manual`, `scheduled` or `event_based`"
            )))
                }
            }
        }
    };
    let mut filters = Vec::new();
    for f in body.filters.unwrap_or_default() {
        let word = f.kind.as_deref().unwrap_or("");
        let kind = FilterKind::parse(word).ok_or_else(|| {
            bad(format!(
                "filter type `{word}` is not known; use `name`, `tag` or `resource`"
            ))
        })?;
        let value = match &f.value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => {
                return Err(bad(format!(
                    "the {word} filter's value must be a string, not {other}"
                )))
            }
        };
        if value.is_empty() {
            // Harbor's portal sends empty filters for fields left blank.
            continue;
        }
        let decoration = f.decoration.as_deref().unwrap_or("");
        filters.push(Filter::new(kind, &value, decoration).map_err(bad)?);
    }
    let speed_kib = match body.speed.unwrap_or(-1) {
        -1 | 0 => None,
        n if n > 0 => Some(n as u64),
        n => {
            return Err(bad(format!(
                "`speed` must be -1 (unlimited) or KiB/s above 0, not {n}"
            )))
        }
    };
    Ok(PolicySpec {
        name,
        description,
        src_registry: src,
        dest_registry: dest,
        dest_namespace: namespace,
        dest_namespace_replace_count: replace_count,
        trigger,
        filters,
        replicate_deletion: body.replicate_deletion.unwrap_or(false)
            || body.deletion.unwrap_or(false),
        override_existing: body.override_existing.unwrap_or(false),
        enabled: body.enabled.unwrap_or(true),
        speed_kib,
        copy_by_chunk: body.copy_by_chunk.unwrap_or(false),
        single_active: body.single_active_replication.unwrap_or(false),
    })
}

async fn load(app: &App, id: &str) -> Result<Policy, GatewayError> {
    let id = path_id(id, "id")?;
    app.registry
        .meta()
        .replication_policy(id)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("replication policy {id} not found")))
}

#[utoipa::path(get, path = "/api/v2.0/replication/policies", tag = "replication",
    params(("q" = Option<String>, Query, description = "name=~<substring> or name=<name>"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, description = "Policies, oldest first", body = [ReplicationPolicy]),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors)))]
pub async fn list(app: &App, query: &Query) -> Result<Reply, GatewayError> {
    let page = Page::parse(query)?;
    let name = match (Q::parse(query)?.get("name"), query.get("name")) {
        (Some(Term::Exact(n) | Term::Fuzzy(n)), _) => Some(n.clone()),
        (_, Some(n)) if !n.is_empty() => Some(n.to_owned()),
        _ => None,
    };
    let (rows, total) = app
        .registry
        .meta()
        .replication_policies(name.as_deref(), page.offset(), page.limit())
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    for p in &rows {
        items.push(policy_json(app, p).await?);
    }
    Ok(page.reply("/api/v2.0/replication/policies", query, &items, total))
}

#[utoipa::path(post, path = "/api/v2.0/replication/policies", tag = "replication",
    request_body = ReplicationPolicy,
    responses((status = 201, description = "Created; Location names the policy",
        headers(("Location" = String, description = "/api/v2.0/replication/policies/{id}"))),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 409, description = "The name is taken", body = super::Errors)))]
pub async fn create(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
) -> Result<Reply, GatewayError> {
    let body: ReplicationPolicy = read_json(session).await?;
    let spec = spec(app, body).await?;
    let id = app
        .registry
        .meta()
        .create_replication_policy(&spec)
        .await?
        .ok_or_else(|| {
            GatewayError::Conflict(format!(
                "a replication policy named `{}` exists; choose another name",
                spec.name
            ))
        })?;
    req.audit(app, "create", "replication_policy", &spec.name, None, true);
    Ok(Reply::new(201).header("Location", format!("/api/v2.0/replication/policies/{id}")))
}

#[utoipa::path(get, path = "/api/v2.0/replication/policies/{id}", tag = "replication",
    params(("id" = i64, Path, description = "Policy id")),
    responses((status = 200, body = ReplicationPolicy), (status = 400, body = super::Errors),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors)))]
pub async fn get(app: &App, id: &str) -> Result<Reply, GatewayError> {
    let p = load(app, id).await?;
    let body = serde_json::to_value(policy_json(app, &p).await?).unwrap_or_default();
    Ok(Reply::json(200, &body))
}

#[utoipa::path(put, path = "/api/v2.0/replication/policies/{id}", tag = "replication",
    params(("id" = i64, Path, description = "Policy id")), request_body = ReplicationPolicy,
    responses((status = 200, description = "Updated"), (status = 400, body = super::Errors),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors),
        (status = 409, body = super::Errors)))]
pub async fn update(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    id: &str,
) -> Result<Reply, GatewayError> {
    let current = load(app, id).await?;
    let body: ReplicationPolicy = read_json(session).await?;
    let spec = spec(app, body).await?;
    match app
        .registry
        .meta()
        .update_replication_policy(current.id, &spec)
        .await?
    {
        Ok(true) => {}
        Ok(false) => {
            return Err(GatewayError::ApiNotFound(format!(
                "replication policy {} not found",
                current.id
            )))
        }
        Err(()) => {
            return Err(GatewayError::Conflict(format!(
                "a replication policy named `{}` exists; choose another name",
                spec.name
            )))
        }
    }
    req.audit(app, "update", "replication_policy", &spec.name, None, true);
    Ok(Reply::new(200))
}

#[utoipa::path(delete, path = "/api/v2.0/replication/policies/{id}", tag = "replication",
    params(("id" = i64, Path, description = "Policy id")),
    responses((status = 200, description = "Deleted with its executions"),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors),
        (status = 412, description = "An execution is running", body = super::Errors)))]
pub async fn delete(app: &App, req: &ApiRequest, id: &str) -> Result<Reply, GatewayError> {
    let current = load(app, id).await?;
    match app
        .registry
        .meta()
        .delete_replication_policy(current.id)
        .await?
    {
        Ok(_) => {
            req.audit(
                app,
                "delete",
                "replication_policy",
                &current.spec.name,
                None,
                true,
            );
            Ok(Reply::new(200))
        }
        Err(running) => Err(GatewayError::Precondition(format!(
            "replication policy `{}` has execution {running} running; stop it (PUT \
             /api/v2.0/replication/executions/{running}) and delete the policy after",
            current.spec.name
        ))),
    }
}

fn execution_json(e: &Execution) -> ReplicationExecution {
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

fn task_json(t: &Task) -> ReplicationTask {
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

#[utoipa::path(get, path = "/api/v2.0/replication/executions", tag = "replication",
    params(("policy_id" = Option<i64>, Query, description = "Only this policy's"),
        ("status" = Option<String>, Query, description = "InProgress, Succeed, Failed or Stopped"),
        ("trigger" = Option<String>, Query, description = "manual, scheduled or event_based"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, description = "Executions, newest first", body = [ReplicationExecution]),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors)))]
pub async fn executions(app: &App, query: &Query) -> Result<Reply, GatewayError> {
    let page = Page::parse(query)?;
    let policy_id = match query.get("policy_id").filter(|v| !v.is_empty()) {
        Some(v) => Some(path_id(v, "policy_id")?),
        None => None,
    };
    let text = |key: &str| query.get(key).filter(|v| !v.is_empty()).map(str::to_owned);
    let filter = ExecutionQuery {
        policy_id,
        status: text("status"),
        trigger: text("trigger"),
    };
    let (rows, total) = app
        .registry
        .meta()
        .replication_executions(&filter, page.offset(), page.limit())
        .await?;
    let items: Vec<ReplicationExecution> = rows.iter().map(execution_json).collect();
    Ok(page.reply("/api/v2.0/replication/executions", query, &items, total))
}

#[utoipa::path(post, path = "/api/v2.0/replication/executions", tag = "replication",
    request_body = StartReplicationExecution,
    responses((status = 201, description = "Started; Location names the execution",
        headers(("Location" = String, description = "/api/v2.0/replication/executions/{id}"))),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors),
        (status = 409, description = "single_active_replication and one is running", body = super::Errors),
        (status = 412, description = "The policy is disabled", body = super::Errors)))]
pub async fn start(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
) -> Result<Reply, GatewayError> {
    let body: StartReplicationExecution = read_json(session).await?;
    let policy = load(app, &body.policy_id.to_string()).await?;
    let id = start_policy(app, req, policy).await?;
    Ok(Reply::new(201).header("Location", format!("/api/v2.0/replication/executions/{id}")))
}

/// Starts a policy by hand (the API's POST and the portal's button).
pub(crate) async fn start_policy(
    app: &App,
    req: &ApiRequest,
    policy: Policy,
) -> Result<i64, GatewayError> {
    if !policy.spec.enabled {
        return Err(GatewayError::Precondition(format!(
            "replication policy `{}` is disabled; enable it first",
            policy.spec.name
        )));
    }
    let name = policy.spec.name.clone();
    let id = app
        .replication
        .start(policy, "manual", Scope::All, req.username())
        .await?;
    req.audit(
        app,
        "create",
        "replication_execution",
        &format!("{name} #{id}"),
        None,
        true,
    );
    Ok(id)
}

async fn load_execution(app: &App, id: &str) -> Result<Execution, GatewayError> {
    let id = path_id(id, "id")?;
    app.registry
        .meta()
        .replication_execution(id)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("replication execution {id} not found")))
}

#[utoipa::path(get, path = "/api/v2.0/replication/executions/{id}", tag = "replication",
    params(("id" = i64, Path, description = "Execution id")),
    responses((status = 200, body = ReplicationExecution), (status = 400, body = super::Errors),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors)))]
pub async fn execution(app: &App, id: &str) -> Result<Reply, GatewayError> {
    let e = load_execution(app, id).await?;
    let body = serde_json::to_value(execution_json(&e)).unwrap_or_default();
    Ok(Reply::json(200, &body))
}

#[utoipa::path(put, path = "/api/v2.0/replication/executions/{id}", tag = "replication",
    params(("id" = i64, Path, description = "Execution id")),
    responses((status = 200, description = "Stopping: the execution ends as Stopped within seconds"),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors),
        (status = 412, description = "It is not running", body = super::Errors)))]
pub async fn stop(app: &App, req: &ApiRequest, id: &str) -> Result<Reply, GatewayError> {
    let e = load_execution(app, id).await?;
    if !app.replication.stop(e.id).await? {
        return Err(GatewayError::Precondition(format!(
            "replication execution {} is not running (it ended as {})",
            e.id, e.status
        )));
    }
    req.audit(
        app,
        "stop",
        "replication_execution",
        &e.id.to_string(),
        None,
        true,
    );
    Ok(Reply::new(200))
}

#[utoipa::path(get, path = "/api/v2.0/replication/executions/{id}/tasks", tag = "replication",
    params(("id" = i64, Path, description = "Execution id"),
        ("status" = Option<String>, Query, description = "Only tasks with this status"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, description = "One task per repository", body = [ReplicationTask]),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn tasks(app: &App, query: &Query, id: &str) -> Result<Reply, GatewayError> {
    let e = load_execution(app, id).await?;
    let page = Page::parse(query)?;
    let status = query.get("status").filter(|s| !s.is_empty());
    let (rows, total) = app
        .registry
        .meta()
        .replication_tasks(e.id, status, page.offset(), page.limit())
        .await?;
    let items: Vec<ReplicationTask> = rows.iter().map(task_json).collect();
    Ok(page.reply(
        &format!("/api/v2.0/replication/executions/{}/tasks", e.id),
        query,
        &items,
        total,
    ))
}

#[utoipa::path(get, path = "/api/v2.0/replication/executions/{id}/tasks/{task_id}/log", tag = "replication",
    params(("id" = i64, Path, description = "Execution id"), ("task_id" = i64, Path, description = "Task id")),
    responses((status = 200, description = "The task's log, one line per step", body = String,
        content_type = "text/plain"),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn task_log(app: &App, id: &str, tid: &str) -> Result<Reply, GatewayError> {
    let e = load_execution(app, id).await?;
    let tid = path_id(tid, "task_id")?;
    let log = app
        .registry
        .meta()
        .replication_task_log(e.id, tid)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("replication task {tid} not found")))?;
    Ok(Reply::new(200)
        .header("Content-Type", "text/plain; charset=utf-8")
        .bytes(bytes::Bytes::from(log)))
}

#[utoipa::path(get, path = "/api/v2.0/replication/adapters", tag = "replication",
    responses((status = 200, description = "Registry types berth replicates with", body = [String]),
        (status = 403, body = super::Errors)))]
pub fn adapters() -> Reply {
    Reply::json(200, &serde_json::json!(ADAPTERS))
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
            serde_json::json!({"type": "resource", "style": "radio", "values": ["image", "artifact"]}),
        ],
        supported_triggers: vec!["manual".into(), "scheduled".into(), "event_based".into()],
    }
}

#[utoipa::path(get, path = "/api/v2.0/replication/adapterinfos", tag = "replication",
    responses((status = 200, description = "Each adapter's filters and triggers, by type",
        body = BTreeMap<String, AdapterInfo>), (status = 403, body = super::Errors)))]
pub fn adapter_infos() -> Reply {
    let all: BTreeMap<&str, AdapterInfo> = ADAPTERS.iter().map(|k| (*k, adapter_info(k))).collect();
    Reply::json(200, &serde_json::to_value(all).unwrap_or_default())
}
