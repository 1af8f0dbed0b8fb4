//! `/admin/gc`: garbage collection: run now (or a dry run), the
//! schedule, the history and each run's log. Runs and schedules go
//! through the API's own function, so the page and
//! `POST /api/v2.0/system/gc/schedule` behave alike.

use askama::Template;
use berth_policy::{Action, Resource};
use pingora::proxy::Session;

use crate::api::gc::{self, GcParameters, Schedule, ScheduleObj};
use crate::api::page::Page;
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::jobs::gc::next_firing;
use crate::route::Query;
use crate::ui::form;
use crate::ui::page::{html, human_size, human_time, redirect, Layout, Pager};
use crate::ui::visitor::Visitor;

struct GcLine {
    id: i64,
    kind: String,
    params: String,
    status: String,
    deleted: String,
    freed: String,
    created: String,
}

#[derive(Template)]
#[template(path = "gc.html")]
struct GcPage {
    l: Layout,
    tab: &'static str,
    flash: Option<super::Flash>,
    rows: Vec<GcLine>,
    pager: Pager,
    /// The schedule's type (`None` when there is none) and its options.
    schedule_kind: String,
    cron: String,
    next_run: String,
    scheduled_dry_run: bool,
    scheduled_delete_untagged: bool,
    kinds: &'static [&'static str],
}

/// The schedule types the form offers (Manual is the "run now" form).
const KINDS: [&str; 5] = ["None", "Hourly", "Daily", "Weekly", "Custom"];

pub async fn gc(app: &App, v: &Visitor, query: &Query) -> Result<Reply, GatewayError> {
    let req = v.api();
    req.require(Action::ManageGc, Resource::System)?;
    let page = Page::parse(query)?;
    let (runs, total) = app.registry.gc_runs(page.offset(), page.limit()).await?;
    let t = v.lang.text();
    let rows = runs
        .iter()
        .map(|run| {
            let mut params = Vec::new();
            if run.options.dry_run {
                params.push(t.dry_run);
            }
            if run.options.delete_untagged {
                params.push(t.delete_untagged);
            }
            GcLine {
                id: run.id,
                kind: run.kind.as_str().to_owned(),
                params: params.join(", "),
                status: run.status.as_str().to_owned(),
                deleted: format!(
                    "{} / {}",
                    run.report.manifests_deleted, run.report.blobs_deleted
                ),
                freed: human_size(i64::try_from(run.report.bytes_freed).unwrap_or(i64::MAX)),
                created: human_time(run.created_at),
            }
        })
        .collect();
    let schedule = app.registry.gc_schedule().await?;
    let flash = (query.get("done") == Some("scheduled")).then(|| super::Flash {
        ok: true,
        text: t.saved.to_owned(),
    });
    let page_view = GcPage {
        l: Layout::new(v, t.garbage_collection, "admin"),
        tab: "gc",
        flash,
        rows,
        pager: Pager::new("/admin/gc", query, page, total),
        schedule_kind: schedule
            .as_ref()
            .map_or_else(|| "None".to_owned(), |s| s.kind.clone()),
        cron: schedule
            .as_ref()
            .and_then(|s| s.cron.clone())
            .unwrap_or_default(),
        next_run: schedule
            .as_ref()
            .and_then(next_firing)
            .map(human_time)
            .unwrap_or_default(),
        scheduled_dry_run: schedule.as_ref().is_some_and(|s| s.options.dry_run),
        scheduled_delete_untagged: schedule.as_ref().is_some_and(|s| s.options.delete_untagged),
        kinds: &KINDS,
    };
    html(200, &page_view, v)
}

pub async fn run_gc(app: &App, session: &mut Session, v: &Visitor) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let body = Schedule {
        schedule: Some(ScheduleObj {
            kind: Some("Manual".into()),
            cron: None,
            next_scheduled_time: None,
        }),
        parameters: Some(GcParameters {
            dry_run: form.get("dry_run") == Some("true"),
            delete_untagged: form.get("delete_untagged") == Some("true"),
        }),
        creation_time: None,
        update_time: None,
    };
    gc::schedule(app, &v.api(), body).await?;
    Ok(redirect("/admin/gc", v))
}

/// Sets (or with type None, removes) the schedule.
pub async fn set_schedule(
    app: &App,
    session: &mut Session,
    v: &Visitor,
) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let kind = form.get("type").unwrap_or("None");
    if !KINDS.contains(&kind) {
        return Err(GatewayError::BadRequest(format!(
            "schedule type `{kind}` is not one of {}",
            KINDS.join(", ")
        )));
    }
    let body = Schedule {
        schedule: Some(ScheduleObj {
            kind: Some(kind.to_owned()),
            cron: form.get("cron").map(str::to_owned),
            next_scheduled_time: None,
        }),
        parameters: Some(GcParameters {
            dry_run: form.get("dry_run") == Some("true"),
            delete_untagged: form.get("delete_untagged") == Some("true"),
        }),
        creation_time: None,
        update_time: None,
    };
    gc::schedule(app, &v.api(), body).await?;
    Ok(redirect("/admin/gc?done=scheduled", v))
}

/// A run's log, as text.
pub async fn gc_log(app: &App, v: &Visitor, id: i64) -> Result<Reply, GatewayError> {
    v.api().require(Action::ManageGc, Resource::System)?;
    let text = app
        .registry
        .gc_log(id)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("no garbage collection {id}")))?;
    Ok(crate::ui::page::text(text, v))
}
