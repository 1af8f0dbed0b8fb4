//! `/admin/replication/executions/<id>`: one replication execution, its
//! status, a stop button while it runs, and its tasks (one per repository)
//! with their progress; `/tasks/<tid>/log` is a task's log. Through the
//! API's own functions (`api::replication`), as the policies page.

use askama::Template;
use berth_policy::{Action, Resource};
use berth_storage::replication::{Task, IN_PROGRESS};
use pingora::proxy::Session;

use super::replication::{policy_names, refusal, ExecutionLine, PATH};
use super::Flash;
use crate::api::page::Page;
use crate::api::replication;
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::Query;
use crate::ui::form;
use crate::ui::page::{html, human_size, human_time, redirect, Layout, Pager};
use crate::ui::visitor::Visitor;

/// Tasks shown per page.
const TASKS_PER_PAGE: i64 = 50;

struct TaskLine {
    id: i64,
    src: String,
    dst: String,
    operation: String,
    status: String,
    bytes: String,
    artifacts_done: i64,
    artifacts_total: i64,
    start: String,
    end: String,
}

impl TaskLine {
    fn of(t: &Task) -> TaskLine {
        TaskLine {
            id: t.id,
            src: t.src_resource.clone(),
            dst: t.dst_resource.clone(),
            operation: t.operation.clone(),
            status: t.status.clone(),
            bytes: human_size(t.bytes),
            artifacts_done: t.artifacts_done,
            artifacts_total: t.artifacts_total,
            start: human_time(t.start_time),
            end: t.end_time.map(human_time).unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin_replication_execution.html")]
struct ExecutionPage {
    l: Layout,
    tab: &'static str,
    flash: Option<Flash>,
    e: ExecutionLine,
    status_text: String,
    running: bool,
    tasks: Vec<TaskLine>,
    pager: Pager,
}

#[derive(Template)]
#[template(path = "admin_replication_log.html")]
struct LogPage {
    l: Layout,
    tab: &'static str,
    flash: Option<Flash>,
    execution: i64,
    task: i64,
    log: String,
}

fn path(id: i64) -> String {
    format!("{PATH}/executions/{id}")
}

pub async fn show(app: &App, v: &Visitor, id: i64, query: &Query) -> Result<Reply, GatewayError> {
    let flash = (query.get("done") == Some("stopping")).then(|| Flash {
        ok: true,
        text: v.lang.text().stop_requested.to_owned(),
    });
    page(app, v, id, query, 200, flash).await
}

async fn page(
    app: &App,
    v: &Visitor,
    id: i64,
    query: &Query,
    status: u16,
    flash: Option<Flash>,
) -> Result<Reply, GatewayError> {
    v.api()
        .require(Action::ManageReplication, Resource::System)?;
    let t = v.lang.text();
    let e = replication::load_execution(app, &id.to_string()).await?;
    let mut page = Page::parse(query)?;
    page.size = TASKS_PER_PAGE;
    let (tasks, total) = app
        .registry
        .meta()
        .replication_tasks(e.id, None, page.offset(), page.limit())
        .await?;
    let names = policy_names(app, &[], std::iter::once(e.policy_id)).await?;
    let name = names.get(&e.policy_id).cloned().unwrap_or_default();
    let view = ExecutionPage {
        l: Layout::new(v, format!("{} #{}", t.replication_execution, e.id), "admin"),
        tab: "replication",
        flash,
        running: e.status == IN_PROGRESS,
        status_text: e.status_text.clone(),
        e: ExecutionLine::of(t, &e, name),
        tasks: tasks.iter().map(TaskLine::of).collect(),
        pager: Pager::new(&path(e.id), query, page, total),
    };
    html(status, &view, v)
}

/// Asks a running execution to stop; it ends as Stopped within seconds.
pub async fn stop(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    id: i64,
) -> Result<Reply, GatewayError> {
    form::read(session, v).await?;
    let req = v.api();
    req.require(Action::ManageReplication, Resource::System)?;
    match replication::stop(app, &req, &id.to_string()).await {
        Ok(_) => Ok(redirect(&format!("{}?done=stopping", path(id)), v)),
        Err(e) => {
            let (status, flash) = refusal(e)?;
            page(app, v, id, &Query::parse(None), status, Some(flash)).await
        }
    }
}

/// A task's log, on a page of its own.
pub async fn task_log(
    app: &App,
    v: &Visitor,
    execution: i64,
    task: i64,
) -> Result<Reply, GatewayError> {
    v.api()
        .require(Action::ManageReplication, Resource::System)?;
    let e = replication::load_execution(app, &execution.to_string()).await?;
    let log = app
        .registry
        .meta()
        .replication_task_log(e.id, task)
        .await?
        .ok_or_else(|| {
            GatewayError::ApiNotFound(format!("replication execution {} has no task {task}", e.id))
        })?;
    let t = v.lang.text();
    let view = LogPage {
        l: Layout::new(v, format!("{} #{task}", t.task_log), "admin"),
        tab: "replication",
        flash: None,
        execution: e.id,
        task,
        log,
    };
    html(200, &view, v)
}
