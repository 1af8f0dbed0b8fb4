//! Administration pages (system administrators): garbage collection.
//! Runs start through the API's own function, so the page and
//! `POST /api/v2.0/system/gc/schedule` behave alike.

use askama::Template;
use berth_policy::{Action, Resource};
use pingora::proxy::Session;

use super::form;
use super::page::{html, human_size, human_time, redirect, Layout, Pager};
use super::visitor::Visitor;
use crate::api::gc::{self, GcParameters, Schedule, ScheduleObj};
use crate::api::page::Page;
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::Query;

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
    rows: Vec<GcLine>,
    pager: Pager,
}

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
    let page_view = GcPage {
        l: Layout::new(v, t.garbage_collection, "admin"),
        rows,
        pager: Pager::new("/admin/gc", query, page, total),
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

/// A run's log, as text.
pub async fn gc_log(app: &App, v: &Visitor, id: i64) -> Result<Reply, GatewayError> {
    v.api().require(Action::ManageGc, Resource::System)?;
    let text = app
        .registry
        .gc_log(id)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("no garbage collection {id}")))?;
    Ok(super::page::text(text, v))
}
