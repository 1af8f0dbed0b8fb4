//! A project's webhooks (Harbor's `webhook` API):
//!
//! - `/projects/{p}/webhook/policies` GET, POST; `.../policies/{id}` GET,
//!   PUT, DELETE
//! - `.../policies/{id}/executions` GET (one per event), `.../executions/
//!   {eid}/tasks` GET (one per target), `.../tasks/{tid}/log` GET (one
//!   line per attempt, with the receiver's status)
//! - `/projects/{p}/webhook/lasttrigger` and `/webhook/events` GET
//!
//! Project admins and maintainers read them; project admins change them.
//! A target's `auth_header` is a secret: never shown back (a PUT that
//! leaves it out keeps the stored one).

use berth_policy::Action;
use berth_storage::projects::ProjectRow;
use berth_storage::webhooks::queue::{Execution, Task};
use berth_storage::webhooks::{
    EventType, PayloadFormat, Policy, PolicyRefused, PolicySpec, Target,
};
use pingora::http::Method;
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::page::{Page, Term, Q};
use super::request::{bounded, path_id, read_json, time, ApiRequest, ProjectRef};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;

#[derive(OpenApi)]
#[openapi(
    paths(
        list,
        create,
        get,
        update,
        delete,
        executions,
        tasks,
        task_log,
        last_trigger,
        jobs,
        events
    ),
    components(schemas(
        WebhookPolicy,
        WebhookTargetObject,
        WebhookExecution,
        WebhookTask,
        WebhookLastTrigger,
        WebhookJob,
        SupportedWebhookEventTypes,
        PayloadFormats
    ))
)]
pub struct Doc;

/// Targets per policy at most.
const MAX_TARGETS: usize = 10;

/// Harbor's `WebhookTargetObject`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookTargetObject {
    /// `http` (the only notify type berth sends).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// An `http://` or `https://` URL.
    pub address: String,
    /// Sent as the `Authorization` header. Write-only: answers leave it out.
    #[serde(default, skip_serializing)]
    pub auth_header: Option<String>,
    #[serde(default)]
    pub skip_cert_verify: bool,
    /// `Default` (Harbor's JSON) or `CloudEvents`.
    #[serde(default)]
    pub payload_format: Option<String>,
}

/// Harbor's `WebhookPolicy`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookPolicy {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub project_id: Option<i64>,
    #[serde(default)]
    pub targets: Vec<WebhookTargetObject>,
    #[serde(default)]
    pub event_types: Vec<String>,
    #[serde(default)]
    pub creator: Option<String>,
    #[serde(default)]
    pub creation_time: Option<String>,
    #[serde(default)]
    pub update_time: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Harbor's `Execution`, for a webhook policy: one event.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookExecution {
    pub id: i64,
    /// `WEBHOOK`.
    pub vendor_type: String,
    /// The policy.
    pub vendor_id: i64,
    /// `Running`, `Success` or `Error`.
    pub status: String,
    pub status_message: String,
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
    /// `EVENT`.
    pub trigger: String,
    /// `{"event_type": ...}`.
    #[schema(value_type = Object)]
    pub extra_attrs: serde_json::Value,
    pub start_time: String,
    pub end_time: String,
}

/// Harbor's `Task`, for a webhook execution: one target.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookTask {
    pub id: i64,
    pub execution_id: i64,
    /// `Pending` (waiting for an attempt), `Running`, `Success` or `Error`.
    pub status: String,
    pub status_message: String,
    /// Attempts so far.
    pub run_count: i64,
    /// `{"address": ..., "payload_format": ...}`.
    #[schema(value_type = Object)]
    pub extra_attrs: serde_json::Value,
    pub creation_time: String,
    pub update_time: String,
    pub start_time: String,
    pub end_time: String,
}

/// Harbor's `WebhookLastTrigger`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookLastTrigger {
    pub policy_name: String,
    pub event_type: String,
    pub enabled: bool,
    pub creation_time: String,
    pub last_trigger_time: String,
}

/// Harbor's `WebhookJob` (its older listing of deliveries).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookJob {
    pub id: i64,
    pub policy_id: i64,
    pub event_type: String,
    /// `http`.
    pub notify_type: String,
    pub status: String,
    /// The payload sent.
    pub job_detail: String,
    pub creation_time: String,
    pub update_time: String,
}

/// Harbor's `PayloadFormat`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PayloadFormats {
    pub notify_type: String,
    pub formats: Vec<String>,
}

/// Harbor's `SupportedWebhookEventTypes`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SupportedWebhookEventTypes {
    pub event_type: Vec<String>,
    pub notify_type: Vec<String>,
    pub payload_formats: Vec<PayloadFormats>,
}

pub async fn route(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    project: &str,
    rest: &[&str],
) -> Result<Reply, GatewayError> {
    let m = session.req_header().method.clone();
    let p = ProjectRef::name_or_id(session, project);
    match rest {
        ["policies"] if m == Method::GET => list(app, req, p, project).await,
        ["policies"] if m == Method::POST => create(app, session, req, project).await,
        ["policies", id] if m == Method::GET => get(app, req, p, id).await,
        ["policies", id] if m == Method::PUT => update(app, session, req, project, id).await,
        ["policies", id] if m == Method::DELETE => delete(app, req, p, id).await,
        ["policies", id, "executions"] if m == Method::GET => {
            executions(app, req, p, project, id).await
        }
        ["policies", id, "executions", eid, "tasks"] if m == Method::GET => {
            tasks(app, req, p, project, id, eid).await
        }
        ["policies", id, "executions", eid, "tasks", tid, "log"] if m == Method::GET => {
            task_log(app, req, p, id, eid, tid).await
        }
        ["lasttrigger"] if m == Method::GET => last_trigger(app, req, p).await,
        ["jobs"] if m == Method::GET => jobs(app, req, p, project).await,
        ["events"] if m == Method::GET => events(app, req, p).await,
        ["policies"]
        | ["policies", _]
        | ["policies", _, "executions"]
        | ["policies", _, "executions", _, "tasks"]
        | ["policies", _, "executions", _, "tasks", _, "log"]
        | ["lasttrigger"]
        | ["jobs"]
        | ["events"] => Err(GatewayError::MethodNotAllowed {
            method: m.to_string(),
        }),
        _ => Err(GatewayError::NotFound(
            session.req_header().uri.path().to_owned(),
        )),
    }
}

/// The API's policy as storage's, or a 400 naming the problem. `current`
/// supplies auth headers a PUT left out (answers never show them).
fn spec(body: WebhookPolicy, current: Option<&Policy>) -> Result<PolicySpec, GatewayError> {
    let name = body.name.unwrap_or_default().trim().to_owned();
    if name.is_empty() {
        return Err(GatewayError::BadRequest(
            "a webhook policy needs a `name`".into(),
        ));
    }
    bounded("name", &name, 256)?;
    let description = body.description.unwrap_or_default();
    bounded("description", &description, 1024)?;
    if body.targets.is_empty() || body.targets.len() > MAX_TARGETS {
        return Err(GatewayError::BadRequest(format!(
            "a webhook policy needs from 1 to {MAX_TARGETS} `targets`, such as \
             [{{\"type\":\"http\",\"address\":\"https://hooks.example.org/berth\"}}]"
        )));
    }
    let targets = body
        .targets
        .into_iter()
        .map(|t| target(t, current))
        .collect::<Result<Vec<Target>, _>>()?;
    // A delivery finds its target by address: each appears once.
    for (i, t) in targets.iter().enumerate() {
        if targets[..i].iter().any(|o| o.address == t.address) {
            return Err(GatewayError::BadRequest(format!(
                "target address `{}` is given twice; give each address once",
                t.address
            )));
        }
    }
    if body.event_types.is_empty() {
        return Err(GatewayError::BadRequest(format!(
            "a webhook policy needs `event_types`: some of {}",
            event_names().join(", ")
        )));
    }
    let mut event_types: Vec<EventType> = Vec::new();
    for e in &body.event_types {
        let e: EventType = e.parse().map_err(GatewayError::BadRequest)?;
        if !event_types.contains(&e) {
            event_types.push(e);
        }
    }
    Ok(PolicySpec {
        name,
        description,
        targets,
        event_types,
        enabled: body.enabled,
    })
}

fn target(t: WebhookTargetObject, current: Option<&Policy>) -> Result<Target, GatewayError> {
    match t.kind.as_deref() {
        None | Some("") | Some("http") => {}
        Some(other) => {
            return Err(GatewayError::BadRequest(format!(
                "webhook target type `{other}` is not supported; use `http`"
            )))
        }
    }
    let address = t.address.trim().to_owned();
    bounded("address", &address, 2048)?;
    // What is shown is where deliveries go: URL parsing would quietly drop
    // tabs and line breaks.
    if address.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(GatewayError::BadRequest(
            "a target address may not contain spaces or control characters".into(),
        ));
    }
    let url = reqwest::Url::parse(&address).map_err(|e| {
        GatewayError::BadRequest(format!(
            "target address `{address}` is not a URL ({e}); give one such as https://hooks.example.org/berth"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(GatewayError::BadRequest(format!(
            "target address `{address}` must be an http:// or https:// URL with a host"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(GatewayError::BadRequest(
            "a target address may not carry a user or password; give them as `auth_header`".into(),
        ));
    }
    // Stored as parsed (host in lower case and IDNA-mapped, path escaped):
    // what is shown, compared and sent is one string. Escaping can make
    // it three times as long: the bound holds for what is stored.
    let address = url.to_string();
    bounded("address", &address, 2048)?;
    let auth_header = match t.auth_header {
        Some(h) => h,
        // Left out of a PUT: the stored header of the same address stays.
        None => current
            .and_then(|p| p.spec.targets.iter().find(|c| c.address == address))
            .map(|c| c.auth_header.clone())
            .unwrap_or_default(),
    };
    bounded("auth_header", &auth_header, 4096)?;
    if !auth_header.is_empty() && http::HeaderValue::from_str(&auth_header).is_err() {
        return Err(GatewayError::BadRequest(
            "`auth_header` must be a valid header value (printable characters, no line breaks)"
                .into(),
        ));
    }
    let payload_format: PayloadFormat = t
        .payload_format
        .as_deref()
        .unwrap_or("")
        .parse()
        .map_err(GatewayError::BadRequest)?;
    Ok(Target {
        address,
        auth_header,
        skip_cert_verify: t.skip_cert_verify,
        payload_format,
    })
}

fn event_names() -> Vec<&'static str> {
    EventType::ALL.iter().map(|e| e.as_str()).collect()
}

fn policy_json(p: &Policy) -> WebhookPolicy {
    WebhookPolicy {
        id: Some(p.id),
        name: Some(p.spec.name.clone()),
        description: Some(p.spec.description.clone()),
        project_id: Some(p.project_id),
        targets: p
            .spec
            .targets
            .iter()
            .map(|t| WebhookTargetObject {
                kind: Some("http".into()),
                address: t.address.clone(),
                auth_header: None,
                skip_cert_verify: t.skip_cert_verify,
                payload_format: Some(t.payload_format.as_str().into()),
            })
            .collect(),
        event_types: p
            .spec
            .event_types
            .iter()
            .map(|e| e.as_str().to_owned())
            .collect(),
        creator: Some(p.creator.clone()),
        creation_time: Some(time(p.created_at)),
        update_time: Some(time(p.updated_at)),
        enabled: p.spec.enabled,
    }
}

fn optional_time(t: Option<i64>) -> String {
    t.map(time).unwrap_or_default()
}

fn execution_json(e: &Execution) -> WebhookExecution {
    WebhookExecution {
        id: e.id,
        vendor_type: "WEBHOOK".into(),
        vendor_id: e.policy_id,
        status: e.status.clone(),
        status_message: String::new(),
        metrics: serde_json::json!({
            "task_count": e.total,
            "success_task_count": e.succeed,
            "error_task_count": e.failed,
            "pending_task_count": e.in_progress,
            "running_task_count": 0,
            "scheduled_task_count": 0,
            "stopped_task_count": 0,
        }),
        trigger: "EVENT".into(),
        extra_attrs: serde_json::json!({ "event_type": e.event_type }),
        start_time: time(e.start_time),
        end_time: optional_time(e.end_time),
    }
}

fn task_json(t: &Task) -> WebhookTask {
    WebhookTask {
        id: t.id,
        execution_id: t.execution_id,
        status: t.status.clone(),
        status_message: String::new(),
        run_count: t.run_count,
        extra_attrs: serde_json::json!({
            "address": t.address,
            "payload_format": t.payload_format,
        }),
        creation_time: time(t.created_at),
        update_time: time(t.updated_at),
        start_time: optional_time(t.start_time),
        end_time: optional_time(t.end_time),
    }
}

/// The project, checked for `action`, and its policy `id`.
async fn policy(
    app: &App,
    req: &ApiRequest,
    p: ProjectRef<'_>,
    id: &str,
    action: Action,
) -> Result<(ProjectRow, Policy), GatewayError> {
    let (row, _) = req.project(app, p, action).await?;
    let id = path_id(id, "webhook_policy_id")?;
    let policy = app
        .registry
        .meta()
        .webhook_policy(row.id, id)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("webhook policy {id} not found")))?;
    Ok((row, policy))
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/webhook/policies", tag = "webhook",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("q" = Option<String>, Query, description = "name=~<substring> or name=<name>"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, description = "The project's policies, oldest first", body = [WebhookPolicy],
        headers(("X-Total-Count" = i64, description = "Total"), ("Link" = String, description = "prev/next pages"))),
        (status = 400, body = super::Errors), (status = 401, body = super::Errors),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors)))]
pub async fn list(
    app: &App,
    req: &ApiRequest,
    p: ProjectRef<'_>,
    project: &str,
) -> Result<Reply, GatewayError> {
    let (row, _) = req.project(app, p, Action::ReadWebhooks).await?;
    let page = Page::parse(&req.query)?;
    let q = Q::parse(&req.query)?;
    q.reject_unknown(&["name"])?;
    let name = match q.get("name") {
        Some(Term::Exact(n) | Term::Fuzzy(n)) => Some(n.clone()),
        Some(Term::Range(..) | Term::List(..)) => {
            return Err(GatewayError::BadRequest(
                "`q` takes name=<name> or name=~<part> for webhook policies".into(),
            ))
        }
        None => None,
    };
    let (policies, total) = app
        .registry
        .meta()
        .webhook_policies(row.id, name.as_deref(), page.offset(), page.limit())
        .await?;
    let items: Vec<WebhookPolicy> = policies.iter().map(policy_json).collect();
    let path = format!("/api/v2.0/projects/{project}/webhook/policies");
    Ok(page.reply(&path, &req.query, &items, total))
}

#[utoipa::path(post, path = "/api/v2.0/projects/{project_name_or_id}/webhook/policies", tag = "webhook",
    params(("project_name_or_id" = String, Path, description = "Project name or id")),
    request_body = WebhookPolicy,
    responses((status = 201, description = "Created; Location names the policy",
        headers(("Location" = String, description = ".../webhook/policies/{id}"))),
        (status = 400, body = super::Errors), (status = 401, body = super::Errors),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors),
        (status = 409, body = super::Errors)))]
pub async fn create(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    project: &str,
) -> Result<Reply, GatewayError> {
    let p = ProjectRef::name_or_id(session, project);
    req.project(app, p, Action::ManageWebhooks).await?;
    let body: WebhookPolicy = read_json(session).await?;
    let p = ProjectRef::name_or_id(session, project);
    let (row, _) = req.project(app, p, Action::ManageWebhooks).await?;
    let spec = spec(body, None)?;
    let id = app
        .registry
        .meta()
        .create_webhook_policy(row.id, &spec, req.username())
        .await?
        .map_err(|_| {
            GatewayError::Conflict(format!(
                "project `{}` has a webhook policy named `{}`; choose another name",
                row.name, spec.name
            ))
        })?;
    app.forget_webhook_policies();
    req.audit(
        app,
        "create",
        "webhook_policy",
        &spec.name,
        Some(&row.name),
        true,
    );
    Ok(Reply::new(201).header(
        "Location",
        format!("/api/v2.0/projects/{}/webhook/policies/{id}", row.id),
    ))
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/webhook/policies/{webhook_policy_id}", tag = "webhook",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("webhook_policy_id" = i64, Path, description = "Policy id")),
    responses((status = 200, body = WebhookPolicy), (status = 400, body = super::Errors),
        (status = 401, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn get(
    app: &App,
    req: &ApiRequest,
    p: ProjectRef<'_>,
    id: &str,
) -> Result<Reply, GatewayError> {
    let (_, policy) = policy(app, req, p, id, Action::ReadWebhooks).await?;
    let body = serde_json::to_value(policy_json(&policy)).unwrap_or_default();
    Ok(Reply::json(200, &body))
}

#[utoipa::path(put, path = "/api/v2.0/projects/{project_name_or_id}/webhook/policies/{webhook_policy_id}", tag = "webhook",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("webhook_policy_id" = i64, Path, description = "Policy id")),
    request_body = WebhookPolicy,
    responses((status = 200, description = "Updated"), (status = 400, body = super::Errors),
        (status = 401, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors), (status = 409, body = super::Errors)))]
pub async fn update(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    project: &str,
    id: &str,
) -> Result<Reply, GatewayError> {
    let p = ProjectRef::name_or_id(session, project);
    policy(app, req, p, id, Action::ManageWebhooks).await?;
    let body: WebhookPolicy = read_json(session).await?;
    let p = ProjectRef::name_or_id(session, project);
    let (row, current) = policy(app, req, p, id, Action::ManageWebhooks).await?;
    let spec = spec(body, Some(&current))?;
    let meta = app.registry.meta();
    match meta
        .update_webhook_policy(row.id, current.id, &spec)
        .await?
    {
        Ok(()) => {}
        Err(PolicyRefused::NameTaken) => {
            return Err(GatewayError::Conflict(format!(
                "project `{}` has a webhook policy named `{}`; choose another name",
                row.name, spec.name
            )))
        }
        Err(PolicyRefused::NotFound) => {
            return Err(GatewayError::ApiNotFound(format!(
                "webhook policy {} not found",
                current.id
            )))
        }
    }
    app.forget_webhook_policies();
    req.audit(
        app,
        "update",
        "webhook_policy",
        &spec.name,
        Some(&row.name),
        true,
    );
    Ok(Reply::new(200))
}

#[utoipa::path(delete, path = "/api/v2.0/projects/{project_name_or_id}/webhook/policies/{webhook_policy_id}", tag = "webhook",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("webhook_policy_id" = i64, Path, description = "Policy id")),
    responses((status = 200, description = "Deleted, with its history and undelivered events"),
        (status = 400, body = super::Errors), (status = 401, body = super::Errors),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors)))]
pub async fn delete(
    app: &App,
    req: &ApiRequest,
    p: ProjectRef<'_>,
    id: &str,
) -> Result<Reply, GatewayError> {
    let (row, current) = policy(app, req, p, id, Action::ManageWebhooks).await?;
    let deleted = app
        .registry
        .meta()
        .delete_webhook_policy(row.id, current.id)
        .await?;
    app.forget_webhook_policies();
    req.audit(
        app,
        "delete",
        "webhook_policy",
        &current.spec.name,
        Some(&row.name),
        deleted,
    );
    if !deleted {
        return Err(GatewayError::ApiNotFound(format!(
            "webhook policy {} not found",
            current.id
        )));
    }
    Ok(Reply::new(200))
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/webhook/policies/{webhook_policy_id}/executions", tag = "webhook",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("webhook_policy_id" = i64, Path, description = "Policy id"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, description = "One per event, newest first", body = [WebhookExecution],
        headers(("X-Total-Count" = i64, description = "Total"), ("Link" = String, description = "prev/next pages"))),
        (status = 400, body = super::Errors), (status = 401, body = super::Errors),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors)))]
pub async fn executions(
    app: &App,
    req: &ApiRequest,
    p: ProjectRef<'_>,
    project: &str,
    id: &str,
) -> Result<Reply, GatewayError> {
    let (_, policy) = policy(app, req, p, id, Action::ReadWebhooks).await?;
    let page = Page::parse(&req.query)?;
    let (rows, total) = app
        .registry
        .meta()
        .webhook_executions(policy.id, page.offset(), page.limit())
        .await?;
    let items: Vec<WebhookExecution> = rows.iter().map(execution_json).collect();
    let path = format!(
        "/api/v2.0/projects/{project}/webhook/policies/{}/executions",
        policy.id
    );
    Ok(page.reply(&path, &req.query, &items, total))
}

/// A policy's execution, or a 404.
async fn execution(app: &App, policy: &Policy, eid: &str) -> Result<Execution, GatewayError> {
    let eid = path_id(eid, "execution_id")?;
    app.registry
        .meta()
        .webhook_execution(policy.id, eid)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("execution {eid} not found")))
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/webhook/policies/{webhook_policy_id}/executions/{execution_id}/tasks", tag = "webhook",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("webhook_policy_id" = i64, Path, description = "Policy id"),
        ("execution_id" = i64, Path, description = "Execution id"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, description = "One per target", body = [WebhookTask],
        headers(("X-Total-Count" = i64, description = "Total"), ("Link" = String, description = "prev/next pages"))),
        (status = 400, body = super::Errors), (status = 401, body = super::Errors),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors)))]
pub async fn tasks(
    app: &App,
    req: &ApiRequest,
    p: ProjectRef<'_>,
    project: &str,
    id: &str,
    eid: &str,
) -> Result<Reply, GatewayError> {
    let (_, policy) = policy(app, req, p, id, Action::ReadWebhooks).await?;
    let execution = execution(app, &policy, eid).await?;
    let page = Page::parse(&req.query)?;
    let (rows, total) = app
        .registry
        .meta()
        .webhook_tasks(execution.id, page.offset(), page.limit())
        .await?;
    let items: Vec<WebhookTask> = rows.iter().map(task_json).collect();
    let path = format!(
        "/api/v2.0/projects/{project}/webhook/policies/{}/executions/{}/tasks",
        policy.id, execution.id
    );
    Ok(page.reply(&path, &req.query, &items, total))
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/webhook/policies/{webhook_policy_id}/executions/{execution_id}/tasks/{task_id}/log", tag = "webhook",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("webhook_policy_id" = i64, Path, description = "Policy id"),
        ("execution_id" = i64, Path, description = "Execution id"),
        ("task_id" = i64, Path, description = "Task id")),
    responses((status = 200, description = "One line per attempt", body = String, content_type = "text/plain"),
        (status = 400, body = super::Errors), (status = 401, body = super::Errors),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors)))]
pub async fn task_log(
    app: &App,
    req: &ApiRequest,
    p: ProjectRef<'_>,
    id: &str,
    eid: &str,
    tid: &str,
) -> Result<Reply, GatewayError> {
    let (_, policy) = policy(app, req, p, id, Action::ReadWebhooks).await?;
    let execution = execution(app, &policy, eid).await?;
    let tid = path_id(tid, "task_id")?;
    let log = app
        .registry
        .meta()
        .webhook_task_log(execution.id, tid)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("task {tid} not found")))?;
    Ok(Reply::new(200)
        .header("Content-Type", "text/plain; charset=utf-8")
        .bytes(log.into_bytes().into()))
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/webhook/lasttrigger", tag = "webhook",
    params(("project_name_or_id" = String, Path, description = "Project name or id")),
    responses((status = 200, description = "Per policy and event type, when it last fired", body = [WebhookLastTrigger]),
        (status = 401, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn last_trigger(
    app: &App,
    req: &ApiRequest,
    p: ProjectRef<'_>,
) -> Result<Reply, GatewayError> {
    let (row, _) = req.project(app, p, Action::ReadWebhooks).await?;
    let rows = app.registry.meta().webhook_last_triggers(row.id).await?;
    let items: Vec<WebhookLastTrigger> = rows
        .iter()
        .map(|(policy, event, at)| WebhookLastTrigger {
            policy_name: policy.spec.name.clone(),
            event_type: event.clone(),
            enabled: policy.spec.enabled,
            creation_time: time(policy.created_at),
            last_trigger_time: time(*at),
        })
        .collect();
    let body = serde_json::to_value(items).unwrap_or_default();
    Ok(Reply::json(200, &body))
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/webhook/jobs", tag = "webhook",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("policy_id" = i64, Query, description = "The policy"),
        ("status" = Option<String>, Query, description = "Pending, Running, Success or Error"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, description = "The policy's deliveries, newest first", body = [WebhookJob],
        headers(("X-Total-Count" = i64, description = "Total"), ("Link" = String, description = "prev/next pages"))),
        (status = 400, body = super::Errors), (status = 401, body = super::Errors),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors)))]
pub async fn jobs(
    app: &App,
    req: &ApiRequest,
    p: ProjectRef<'_>,
    project: &str,
) -> Result<Reply, GatewayError> {
    let id = req.query.get("policy_id").unwrap_or("").to_owned();
    if id.is_empty() {
        return Err(GatewayError::BadRequest(
            "give the policy as `policy_id`".into(),
        ));
    }
    let (_, policy) = policy(app, req, p, &id, Action::ReadWebhooks).await?;
    let page = Page::parse(&req.query)?;
    let status = match req.query.get("status").filter(|s| !s.is_empty()) {
        None => None,
        Some(s @ ("Pending" | "Running" | "Success" | "Error")) => Some(s),
        Some(other) => {
            return Err(GatewayError::BadRequest(format!(
                "`status` must be Pending, Running, Success or Error, not `{other}`"
            )))
        }
    };
    let (rows, total) = app
        .registry
        .meta()
        .webhook_jobs(policy.id, status, page.offset(), page.limit())
        .await?;
    let items: Vec<WebhookJob> = rows
        .into_iter()
        .map(|j| WebhookJob {
            id: j.id,
            policy_id: policy.id,
            event_type: j.event_type,
            notify_type: "http".into(),
            status: j.status,
            job_detail: j.payload,
            creation_time: time(j.created_at),
            update_time: time(j.updated_at),
        })
        .collect();
    let path = format!("/api/v2.0/projects/{project}/webhook/jobs");
    Ok(page.reply(&path, &req.query, &items, total))
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/webhook/events", tag = "webhook",
    params(("project_name_or_id" = String, Path, description = "Project name or id")),
    responses((status = 200, body = SupportedWebhookEventTypes),
        (status = 401, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn events(app: &App, req: &ApiRequest, p: ProjectRef<'_>) -> Result<Reply, GatewayError> {
    req.project(app, p, Action::ReadWebhooks).await?;
    let body = SupportedWebhookEventTypes {
        event_type: event_names().into_iter().map(str::to_owned).collect(),
        notify_type: vec!["http".into()],
        payload_formats: vec![PayloadFormats {
            notify_type: "http".into(),
            formats: vec!["Default".into(), "CloudEvents".into()],
        }],
    };
    let body = serde_json::to_value(body).unwrap_or_default();
    Ok(Reply::json(200, &body))
}
