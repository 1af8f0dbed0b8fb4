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
//!
//! - `models`: Harbor's JSON models and berth's rows as them.
//! - `spec`: a policy from the API checked into storage's settings.

mod models;
mod spec;

use std::collections::BTreeMap;

use berth_policy::{Action, Resource};
use berth_storage::replication::{Execution, ExecutionQuery, Policy};
use pingora::http::Method;
use pingora::proxy::Session;
use utoipa::OpenApi;

use super::page::{Page, Term, Q};
use super::request::{path_id, read_json, ApiRequest};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::replication::Scope;
use crate::route::Query;
pub use models::{
    adapter_info, AdapterInfo, RegistryRef, ReplicationExecution, ReplicationFilter,
    ReplicationPolicy, ReplicationTask, ReplicationTrigger, StartReplicationExecution,
    TriggerSettings, ADAPTERS,
};
use models::{execution_json, policy_json, task_json};
use spec::spec;

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

pub(crate) async fn load(app: &App, id: &str) -> Result<Policy, GatewayError> {
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
    let id = create_policy(app, req, body).await?;
    Ok(Reply::new(201).header("Location", format!("/api/v2.0/replication/policies/{id}")))
}

/// Checks and stores a new policy (the API's POST and the portal's
/// form); its id.
pub(crate) async fn create_policy(
    app: &App,
    req: &ApiRequest,
    body: ReplicationPolicy,
) -> Result<i64, GatewayError> {
    req.require(Action::ManageReplication, Resource::System)?;
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
    app.forget_replication_policies();
    req.audit(app, "create", "replication_policy", &spec.name, None, true);
    Ok(id)
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
    app.forget_replication_policies();
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
    req.require(Action::ManageReplication, Resource::System)?;
    let current = load(app, id).await?;
    match app
        .registry
        .meta()
        .delete_replication_policy(current.id)
        .await?
    {
        Ok(_) => {
            app.forget_replication_policies();
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
    req.require(Action::ManageReplication, Resource::System)?;
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

pub(crate) async fn load_execution(app: &App, id: &str) -> Result<Execution, GatewayError> {
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
    req.require(Action::ManageReplication, Resource::System)?;
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

#[utoipa::path(get, path = "/api/v2.0/replication/adapterinfos", tag = "replication",
    responses((status = 200, description = "Each adapter's filters and triggers, by type",
        body = BTreeMap<String, AdapterInfo>), (status = 403, body = super::Errors)))]
pub fn adapter_infos() -> Reply {
    let all: BTreeMap<&str, AdapterInfo> = ADAPTERS.iter().map(|k| (*k, adapter_info(k))).collect();
    Reply::json(200, &serde_json::to_value(all).unwrap_or_default())
}
