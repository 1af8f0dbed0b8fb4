//! Purging the audit log (Harbor's `purge` API), system administrators
//! only:
//!
//! - `/system/purgeaudit` GET: the runs, newest first
//! - `/system/purgeaudit/{purge_id}` GET; PUT stops a running one
//! - `/system/purgeaudit/{purge_id}/log` GET (text)
//! - `/system/purgeaudit/schedule` GET, POST, PUT (type `Manual` runs now)
//!
//! The purge itself is storage's (`berth_storage::audit_purge`); the
//! schedule fires through `crate::jobs::purge`.

use berth_policy::{Action, Resource};
use berth_storage::audit_purge::{PurgeParams, PurgeRefused, PurgeRun, PurgeSchedule};
use pingora::http::Method;
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::gc::{requested, ScheduleObj};
use super::page::Page;
use super::request::{path_id, read_json, time, ApiRequest};
use crate::app::App;
use crate::error::{cause_chain, GatewayError};
use crate::http::Reply;
use crate::jobs::gc::{next_at, ScheduleType};

#[derive(OpenApi)]
#[openapi(
    paths(list, get, stop, log, get_schedule, create_schedule, update_schedule),
    components(schemas(ExecHistory, PurgeScheduleReq, PurgeParameters))
)]
pub struct Doc;

/// Harbor's `ExecHistory`, with what the run purged.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExecHistory {
    pub id: i64,
    /// Always `PURGE_AUDIT`.
    pub job_name: String,
    /// `MANUAL` or `SCHEDULE`.
    pub job_kind: String,
    /// The parameters as a JSON string.
    pub job_parameters: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleObj>,
    /// `Running`, `Success`, `Error` or `Stopped`.
    pub job_status: String,
    pub deleted: bool,
    pub creation_time: String,
    pub update_time: String,
    /// berth: entries purged (would be, in a dry run).
    #[serde(default)]
    pub purged: i64,
}

/// The purge's parameters, as Harbor names them.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct PurgeParameters {
    /// Entries older than this many hours are purged (1 to 876600).
    #[serde(default)]
    pub audit_retention_hour: Option<i64>,
    /// Comma-separated event types (`create_artifact,delete_artifact,
    /// pull_artifact`): the operation, `_`, the resource type. None: nothing
    /// is purged.
    #[serde(default)]
    pub include_event_types: Option<String>,
    /// Comma-separated operations (`create,delete,pull`; Harbor's older
    /// parameter).
    #[serde(default)]
    pub include_operations: Option<String>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// Harbor's `Schedule` with the purge's parameters.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PurgeScheduleReq {
    #[serde(default)]
    pub schedule: Option<ScheduleObj>,
    #[serde(default)]
    pub parameters: Option<PurgeParameters>,
}

const JOB_NAME: &str = "PURGE_AUDIT";

fn history(run: &PurgeRun) -> ExecHistory {
    ExecHistory {
        id: run.id,
        job_name: JOB_NAME.into(),
        job_kind: run.kind.clone(),
        job_parameters: run.params.to_json(),
        schedule: Some(ScheduleObj {
            kind: Some(
                if run.kind == "MANUAL" {
                    "Manual"
                } else {
                    "Custom"
                }
                .into(),
            ),
            cron: None,
            next_scheduled_time: None,
        }),
        job_status: run.status.clone(),
        deleted: false,
        creation_time: time(run.created_at),
        update_time: time(run.updated_at),
        purged: run.deleted,
    }
}

fn json<T: Serialize>(status: u16, value: &T) -> Reply {
    Reply::json(status, &serde_json::to_value(value).unwrap_or_default())
}

/// Routes `/system/purgeaudit/...` (`rest` is what follows `purgeaudit`).
pub async fn route(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    rest: &[&str],
) -> Result<Reply, GatewayError> {
    req.require(Action::PurgeAuditLogs, Resource::System)?;
    let method = session.req_header().method.clone();
    match (rest, &method) {
        ([], &Method::GET) => list(app, req).await,
        (["schedule"], &Method::GET) => get_schedule(app).await,
        (["schedule"], &Method::POST) => create_schedule(app, session, req).await,
        (["schedule"], &Method::PUT) => update_schedule(app, session, req).await,
        ([id], &Method::GET) => get(app, id).await,
        ([id], &Method::PUT) => stop(app, req, id).await,
        ([id, "log"], &Method::GET) => log(app, id).await,
        ([] | ["schedule"] | [_] | [_, "log"], _) => Err(GatewayError::MethodNotAllowed {
            method: method.to_string(),
        }),
        _ => Err(GatewayError::NotFound(
            session.req_header().uri.path().to_owned(),
        )),
    }
}

#[utoipa::path(get, path = "/api/v2.0/system/purgeaudit", tag = "purge",
    params(("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "Purge runs, newest first; X-Total-Count has the total", body = [ExecHistory]),
        (status = 401, description = "Not signed in", body = super::Errors),
        (status = 403, description = "Not a system administrator", body = super::Errors)))]
pub async fn list(app: &App, req: &ApiRequest) -> Result<Reply, GatewayError> {
    let page = Page::parse(&req.query)?;
    let (runs, total) = app
        .registry
        .meta()
        .audit_purges(page.offset(), page.limit())
        .await?;
    let items: Vec<ExecHistory> = runs.iter().map(history).collect();
    Ok(page.reply("/api/v2.0/system/purgeaudit", &req.query, &items, total))
}

async fn run(app: &App, id: &str) -> Result<PurgeRun, GatewayError> {
    let id = path_id(id, "purge_id")?;
    app.registry
        .meta()
        .audit_purge(id)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("no audit log purge {id}")))
}

#[utoipa::path(get, path = "/api/v2.0/system/purgeaudit/{purge_id}", tag = "purge",
    params(("purge_id" = i64, Path)),
    responses((status = 200, body = ExecHistory),
        (status = 403, description = "Not a system administrator", body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn get(app: &App, id: &str) -> Result<Reply, GatewayError> {
    Ok(json(200, &history(&run(app, id).await?)))
}

#[utoipa::path(put, path = "/api/v2.0/system/purgeaudit/{purge_id}", tag = "purge",
    params(("purge_id" = i64, Path)),
    responses((status = 200, description = "The run stops after its current batch (status Stopped)"),
        (status = 403, description = "Not a system administrator", body = super::Errors),
        (status = 404, body = super::Errors),
        (status = 409, description = "The run has ended", body = super::Errors)))]
pub async fn stop(app: &App, req: &ApiRequest, id: &str) -> Result<Reply, GatewayError> {
    let found = run(app, id).await?;
    let stopping = app.registry.meta().stop_audit_purge(found.id).await?;
    req.audit(
        app,
        "stop",
        "purge-audit",
        &found.id.to_string(),
        None,
        stopping,
    );
    if !stopping {
        return Err(GatewayError::Conflict(format!(
            "audit log purge {} has ended ({}); there is nothing to stop",
            found.id, found.status
        )));
    }
    Ok(Reply::new(200))
}

#[utoipa::path(get, path = "/api/v2.0/system/purgeaudit/{purge_id}/log", tag = "purge",
    params(("purge_id" = i64, Path)),
    responses((status = 200, description = "The run's log as text/plain: what it purged and how it ended", body = String),
        (status = 403, description = "Not a system administrator", body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn log(app: &App, id: &str) -> Result<Reply, GatewayError> {
    let found = run(app, id).await?;
    let text = app
        .registry
        .meta()
        .audit_purge_log(found.id)
        .await?
        .unwrap_or_default();
    Ok(Reply::new(200)
        .header("Content-Type", "text/plain; charset=utf-8")
        .bytes(text.into()))
}

fn schedule_json(s: Option<&PurgeSchedule>) -> ExecHistory {
    let Some(s) = s else {
        return ExecHistory {
            id: 0,
            job_name: JOB_NAME.into(),
            job_kind: String::new(),
            job_parameters: "{}".into(),
            schedule: Some(ScheduleObj {
                kind: Some("None".into()),
                cron: None,
                next_scheduled_time: None,
            }),
            job_status: String::new(),
            deleted: false,
            creation_time: time(0),
            update_time: time(0),
            purged: 0,
        };
    };
    ExecHistory {
        id: 0,
        job_name: JOB_NAME.into(),
        job_kind: "SCHEDULE".into(),
        job_parameters: s.params.to_json(),
        schedule: Some(ScheduleObj {
            kind: Some(s.kind.clone()),
            cron: s.cron.clone(),
            next_scheduled_time: next_at(&s.kind, s.cron.as_deref(), s.last_fired_ms).map(time),
        }),
        job_status: String::new(),
        deleted: false,
        creation_time: time(s.created_at),
        update_time: time(s.updated_at),
        purged: 0,
    }
}

#[utoipa::path(get, path = "/api/v2.0/system/purgeaudit/schedule", tag = "purge",
    responses((status = 200, description = "The schedule and its parameters (type None when there is none)", body = ExecHistory),
        (status = 403, description = "Not a system administrator", body = super::Errors)))]
pub async fn get_schedule(app: &App) -> Result<Reply, GatewayError> {
    let s = app.registry.meta().audit_purge_schedule().await?;
    Ok(json(200, &schedule_json(s.as_ref())))
}

#[utoipa::path(post, path = "/api/v2.0/system/purgeaudit/schedule", tag = "purge",
    request_body = PurgeScheduleReq,
    responses((status = 201, description = "Type Manual: a run started, named by Location; other types: the schedule was set",
        headers(("Location" = String, description = "/api/v2.0/system/purgeaudit/{purge_id} (Manual)"))),
        (status = 400, description = "Unknown type, invalid cron or parameters", body = super::Errors),
        (status = 403, description = "Not a system administrator", body = super::Errors),
        (status = 409, description = "A purge is already running", body = super::Errors)))]
pub async fn create_schedule(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
) -> Result<Reply, GatewayError> {
    apply_schedule(app, session, req, 201).await
}

#[utoipa::path(put, path = "/api/v2.0/system/purgeaudit/schedule", tag = "purge",
    request_body = PurgeScheduleReq,
    responses((status = 200, description = "The schedule was set (type Manual: a run started, named by Location)",
        headers(("Location" = String, description = "/api/v2.0/system/purgeaudit/{purge_id} (Manual)"))),
        (status = 400, description = "Unknown type, invalid cron or parameters", body = super::Errors),
        (status = 403, description = "Not a system administrator", body = super::Errors),
        (status = 409, description = "A purge is already running", body = super::Errors)))]
pub async fn update_schedule(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
) -> Result<Reply, GatewayError> {
    apply_schedule(app, session, req, 200).await
}

fn params(p: Option<PurgeParameters>) -> Result<PurgeParams, GatewayError> {
    let p = p.unwrap_or_default();
    let hours = p.audit_retention_hour.ok_or_else(|| {
        GatewayError::BadRequest(
            "`parameters.audit_retention_hour` is required: entries older than it are purged"
                .into(),
        )
    })?;
    PurgeParams::new(
        hours,
        p.include_event_types.as_deref().unwrap_or(""),
        p.include_operations.as_deref().unwrap_or(""),
        p.dry_run.unwrap_or(false),
    )
    .map_err(GatewayError::BadRequest)
}

/// POST and PUT of the schedule: type Manual starts a run now; the other
/// types set the schedule (None removes it).
async fn apply_schedule(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    status: u16,
) -> Result<Reply, GatewayError> {
    let body: PurgeScheduleReq = read_json(session).await?;
    let (kind, cron) = requested(body.schedule)?;
    // Removing the schedule needs no parameters.
    let params = match (kind, body.parameters) {
        (ScheduleType::None, None) => {
            PurgeParams::new(24 * 7, "", "", false).map_err(GatewayError::BadRequest)?
        }
        (_, given) => params(given)?,
    };
    let meta = app.registry.meta();
    if kind == ScheduleType::Manual {
        if !params.dry_run() {
            app.runtime.refuse_writes()?;
        }
        let started = meta.start_audit_purge("MANUAL", &params).await?;
        req.audit(
            app,
            "create",
            "purge-audit",
            "manual",
            None,
            started.is_ok(),
        );
        let id = started.map_err(|PurgeRefused::Running(id)| {
            GatewayError::Conflict(format!(
                "audit log purge {id} is running; wait for it (GET /api/v2.0/system/purgeaudit/{id}) \
                 or stop it (PUT)"
            ))
        })?;
        let registry = app.registry.clone();
        app.side.spawn(async move {
            match registry.meta().run_audit_purge(id, &params).await {
                Ok(deleted) => tracing::info!(run = id, deleted, "audit log purge finished"),
                Err(e) => {
                    tracing::error!(run = id, error = %cause_chain(&e), "audit log purge failed")
                }
            }
        });
        return Ok(
            Reply::new(status).header("Location", format!("/api/v2.0/system/purgeaudit/{id}"))
        );
    }
    meta.set_audit_purge_schedule(kind.as_str(), cron.as_deref(), &params)
        .await?;
    req.audit(app, "update", "purge-audit", kind.as_str(), None, true);
    Ok(Reply::new(status))
}
