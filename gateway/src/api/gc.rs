//! Garbage collection (Harbor's `gc` API): `/api/v2.0/system/gc` (history),
//! `/system/gc/{gc_id}`, `/system/gc/{gc_id}/log` and
//! `/system/gc/schedule` (GET, POST, PUT). System administrators only.
//! The collection itself is storage's (`berth_storage::gc`).

use std::sync::Arc;

use berth_policy::{Action, Resource};
use berth_storage::gc::{GcKind, GcOptions, GcRun, GcSchedule};
use berth_storage::Registry;
use pingora::http::Method;
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::page::Page;
use super::request::{path_id, read_json, time, ApiRequest};
use crate::app::App;
use crate::error::{cause_chain, GatewayError};
use crate::http::Reply;
use crate::jobs::gc::{next_firing, ScheduleType};

#[derive(OpenApi)]
#[openapi(
    paths(list, get, log, get_schedule, create_schedule, update_schedule),
    components(schemas(GcHistory, Schedule, ScheduleObj, GcParameters))
)]
pub struct Doc;

/// Harbor's `GCHistory`, plus what the run deleted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GcHistory {
    pub id: i64,
    /// Always `GARBAGE_COLLECTION`.
    pub job_name: String,
    /// `MANUAL` or `SCHEDULE`.
    pub job_kind: String,
    /// The parameters as a JSON string: `{"delete_untagged":..,"dry_run":..}`.
    pub job_parameters: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleObj>,
    /// `Running`, `Success` or `Error`.
    pub job_status: String,
    pub deleted: bool,
    pub creation_time: String,
    pub update_time: String,
    /// berth: manifests deleted (would be, in a dry run).
    pub manifests_deleted: u64,
    /// berth: blobs deleted (would be, in a dry run).
    pub blobs_deleted: u64,
    /// berth: bytes of blob files removed (would be, in a dry run).
    pub freed_bytes: u64,
}

/// Harbor's `ScheduleObj`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScheduleObj {
    /// `Hourly`, `Daily`, `Weekly`, `Custom`, `Manual` (run now) or `None`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Six fields, seconds first, in UTC (`0 0 3 * * *`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_scheduled_time: Option<String>,
}

/// GC's parameters.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct GcParameters {
    #[serde(default)]
    pub delete_untagged: bool,
    #[serde(default)]
    pub dry_run: bool,
}

/// Harbor's `Schedule`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Schedule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleObj>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<GcParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<String>,
}

pub(crate) fn history(run: &GcRun) -> GcHistory {
    let params = serde_json::json!({
        "delete_untagged": run.options.delete_untagged,
        "dry_run": run.options.dry_run,
    });
    GcHistory {
        id: run.id,
        job_name: "GARBAGE_COLLECTION".into(),
        job_kind: run.kind.as_str().into(),
        job_parameters: params.to_string(),
        schedule: Some(ScheduleObj {
            kind: Some(
                match run.kind {
                    GcKind::Manual => "Manual",
                    GcKind::Schedule => "Custom",
                }
                .into(),
            ),
            cron: None,
            next_scheduled_time: None,
        }),
        job_status: run.status.as_str().into(),
        deleted: false,
        creation_time: time(run.created_at),
        update_time: time(run.updated_at),
        manifests_deleted: run.report.manifests_deleted,
        blobs_deleted: run.report.blobs_deleted,
        freed_bytes: run.report.bytes_freed,
    }
}

fn json<T: Serialize>(status: u16, value: &T) -> Reply {
    Reply::json(status, &serde_json::to_value(value).unwrap_or_default())
}

/// Routes `/system/gc/...` (`rest` is what follows `gc`).
pub async fn route(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    rest: &[&str],
) -> Result<Reply, GatewayError> {
    req.require(Action::ManageGc, Resource::System)?;
    let method = session.req_header().method.clone();
    match (rest, &method) {
        ([], &Method::GET) => list(app, req).await,
        (["schedule"], &Method::GET) => get_schedule(app).await,
        (["schedule"], &Method::POST) => create_schedule(app, session, req).await,
        (["schedule"], &Method::PUT) => update_schedule(app, session, req).await,
        ([id], &Method::GET) => get(app, id).await,
        ([id, "log"], &Method::GET) => log(app, id).await,
        ([] | ["schedule"] | [_] | [_, "log"], _) => Err(GatewayError::MethodNotAllowed {
            method: method.to_string(),
        }),
        _ => Err(GatewayError::NotFound(
            session.req_header().uri.path().to_owned(),
        )),
    }
}

#[utoipa::path(get, path = "/api/v2.0/system/gc", tag = "gc",
    params(("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "GC runs, newest first; X-Total-Count has the total", body = [GcHistory]),
        (status = 403, description = "Not a system administrator", body = super::Errors)))]
pub async fn list(app: &App, req: &ApiRequest) -> Result<Reply, GatewayError> {
    let page = Page::parse(&req.query)?;
    let (runs, total) = app.registry.gc_runs(page.offset(), page.limit()).await?;
    let items: Vec<GcHistory> = runs.iter().map(history).collect();
    Ok(page.reply("/api/v2.0/system/gc", &req.query, &items, total))
}

#[utoipa::path(get, path = "/api/v2.0/system/gc/{gc_id}", tag = "gc",
    params(("gc_id" = i64, Path)),
    responses((status = 200, body = GcHistory),
        (status = 403, description = "Not a system administrator", body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn get(app: &App, id: &str) -> Result<Reply, GatewayError> {
    let id = path_id(id, "gc_id")?;
    let run = app
        .registry
        .gc_run(id)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("no garbage collection {id}")))?;
    Ok(json(200, &history(&run)))
}

#[utoipa::path(get, path = "/api/v2.0/system/gc/{gc_id}/log", tag = "gc",
    params(("gc_id" = i64, Path)),
    responses((status = 200, description = "The run's log as text/plain: each manifest and blob deleted, then the counts and bytes freed", body = String),
        (status = 403, description = "Not a system administrator", body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn log(app: &App, id: &str) -> Result<Reply, GatewayError> {
    let id = path_id(id, "gc_id")?;
    let text = app
        .registry
        .gc_log(id)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("no garbage collection {id}")))?;
    Ok(Reply::new(200)
        .header("Content-Type", "text/plain; charset=utf-8")
        .bytes(text.into()))
}

fn schedule_json(s: Option<&GcSchedule>) -> Schedule {
    let Some(s) = s else {
        return Schedule {
            schedule: Some(ScheduleObj {
                kind: Some("None".into()),
                cron: None,
                next_scheduled_time: None,
            }),
            parameters: Some(GcParameters::default()),
            creation_time: None,
            update_time: None,
        };
    };
    Schedule {
        schedule: Some(ScheduleObj {
            kind: Some(s.kind.clone()),
            cron: s.cron.clone(),
            next_scheduled_time: next_firing(s).map(time),
        }),
        parameters: Some(GcParameters {
            delete_untagged: s.options.delete_untagged,
            dry_run: s.options.dry_run,
        }),
        creation_time: Some(time(s.created_at)),
        update_time: Some(time(s.updated_at)),
    }
}

#[utoipa::path(get, path = "/api/v2.0/system/gc/schedule", tag = "gc",
    responses((status = 200, description = "The schedule (type None when there is none)", body = Schedule),
        (status = 403, description = "Not a system administrator", body = super::Errors)))]
pub async fn get_schedule(app: &App) -> Result<Reply, GatewayError> {
    let s = app.registry.gc_schedule().await?;
    Ok(json(200, &schedule_json(s.as_ref())))
}

#[utoipa::path(post, path = "/api/v2.0/system/gc/schedule", tag = "gc",
    request_body = Schedule,
    responses((status = 201, description = "Type Manual: a run started, named by Location; other types: the schedule was set",
        headers(("Location" = String, description = "/api/v2.0/system/gc/{gc_id} (Manual)"))),
        (status = 400, description = "Unknown type or invalid cron", body = super::Errors),
        (status = 403, description = "Not a system administrator", body = super::Errors),
        (status = 409, description = "A garbage collection is already running", body = super::Errors)))]
pub async fn create_schedule(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
) -> Result<Reply, GatewayError> {
    apply_schedule(app, session, req, 201).await
}

#[utoipa::path(put, path = "/api/v2.0/system/gc/schedule", tag = "gc",
    request_body = Schedule,
    responses((status = 200, description = "The schedule was set (type Manual: a run started, named by Location)",
        headers(("Location" = String, description = "/api/v2.0/system/gc/{gc_id} (Manual)"))),
        (status = 400, description = "Unknown type or invalid cron", body = super::Errors),
        (status = 403, description = "Not a system administrator", body = super::Errors),
        (status = 409, description = "A garbage collection is already running", body = super::Errors)))]
pub async fn update_schedule(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
) -> Result<Reply, GatewayError> {
    apply_schedule(app, session, req, 200).await
}

async fn apply_schedule(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    status: u16,
) -> Result<Reply, GatewayError> {
    let body: Schedule = read_json(session).await?;
    Ok(match schedule(app, req, body).await? {
        Some(id) => Reply::new(status).header("Location", format!("/api/v2.0/system/gc/{id}")),
        None => Reply::new(status),
    })
}

/// Sets the GC schedule, or with type Manual starts a run and returns its
/// id (the API's POST and PUT, and the portal's form).
pub(crate) async fn schedule(
    app: &App,
    req: &ApiRequest,
    body: Schedule,
) -> Result<Option<i64>, GatewayError> {
    req.require(Action::ManageGc, Resource::System)?;
    let (kind, cron) = requested(body.schedule)?;
    let params = body.parameters.unwrap_or_default();
    let options = GcOptions {
        dry_run: params.dry_run,
        delete_untagged: params.delete_untagged,
    };
    if kind == ScheduleType::Manual {
        if !options.dry_run {
            app.runtime.refuse_writes()?;
        }
        let started = app.registry.start_gc(GcKind::Manual, options).await;
        req.audit(app, "create", "gc", "manual", None, started.is_ok());
        let job = started?;
        let id = job.run_id;
        spawn_run(app, job);
        return Ok(Some(id));
    }
    app.registry
        .set_gc_schedule(kind.as_str(), cron.as_deref(), options)
        .await?;
    req.audit(app, "update", "gc", kind.as_str(), None, true);
    Ok(None)
}

/// The schedule a POST or PUT asks for (GC's and the audit purge's): its
/// type, and the cron a periodic one fires on, checked.
pub(crate) fn requested(
    obj: Option<ScheduleObj>,
) -> Result<(ScheduleType, Option<String>), GatewayError> {
    let obj =
        obj.ok_or_else(|| GatewayError::BadRequest("`schedule` (with `type`) is required".into()))?;
    let word = obj.kind.as_deref().unwrap_or("");
    let kind = ScheduleType::parse(word).ok_or_else(|| {
        GatewayError::BadRequest(format!(
            "`schedule.type` must be Hourly, Daily, Weekly, Custom, Manual or None, not `{word}`"
        ))
    })?;
    let cron = match kind.cron(obj.cron.as_deref()) {
        Some(Ok((text, _))) => Some(text),
        Some(Err(e)) => return Err(GatewayError::BadRequest(e)),
        None => None,
    };
    Ok((kind, cron))
}

/// Runs GC on the side runtime; the history records how it ended.
fn spawn_run(app: &App, job: berth_storage::gc::GcJob) {
    let registry: Arc<Registry> = app.registry.clone();
    app.side.spawn(async move {
        let id = job.run_id;
        match registry.run_gc(job).await {
            Ok(report) => tracing::info!(
                run = id,
                blobs = report.blobs_deleted,
                manifests = report.manifests_deleted,
                bytes = report.bytes_freed,
                "garbage collection finished"
            ),
            Err(e) => {
                tracing::error!(run = id, error = %cause_chain(&e), "garbage collection failed")
            }
        }
    });
}
