//! A project's robot accounts: list, create (the secret is shown once, on
//! the page that answers the form, never in a URL), delete. Creating and
//! deleting call the API's own functions, which check the robot's project
//! and permissions exactly as `POST /api/v2.0/robots` does.

use askama::Template;
use berth_policy::Action;
use pingora::proxy::Session;

use super::form;
use super::page::{encode_path, html, human_time, redirect, Layout, Pager};
use super::projects::{allowed, listing, ProjectView};
use super::visitor::Visitor;
use crate::api::request::ProjectRef;
use crate::api::robots::{self, Access, RobotCreate, RobotCreated, RobotPermission};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::Query;

struct RobotLine {
    id: i64,
    name: String,
    description: String,
    permissions: String,
    expires: String,
    disabled: bool,
}

#[derive(Template)]
#[template(path = "robots.html")]
struct RobotsPage {
    l: Layout,
    project: ProjectView,
    tab: &'static str,
    rows: Vec<RobotLine>,
    pager: Pager,
    may_manage: bool,
    /// Just created: its name and secret, shown this once.
    created: Option<RobotCreated>,
}

/// The robots tab; `created` is the robot the form just made.
pub async fn list(
    app: &App,
    v: &Visitor,
    name: &str,
    query: &Query,
    created: Option<RobotCreated>,
) -> Result<Reply, GatewayError> {
    let req = v.api();
    let (row, facts) = req
        .project(app, ProjectRef::Name(name), Action::ReadRobots)
        .await?;
    let t = v.lang.text();
    let page = listing(query)?;
    let (list, total) = app
        .registry
        .meta()
        .list_robots(
            Some("project"),
            Some(row.id),
            None,
            page.offset(),
            page.limit(),
        )
        .await?;
    let rows = list
        .iter()
        .map(|r| {
            // Harbor's JSON, as stored: the actions granted.
            let permissions = serde_json::from_str::<serde_json::Value>(&r.permissions)
                .ok()
                .and_then(|v| {
                    v.as_array().map(|specs| {
                        specs
                            .iter()
                            .flat_map(|s| s["access"].as_array().cloned().unwrap_or_default())
                            .filter_map(|a| {
                                Some(format!(
                                    "{}:{}",
                                    a["resource"].as_str()?,
                                    a["action"].as_str()?
                                ))
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                })
                .unwrap_or_default();
            RobotLine {
                id: r.id,
                name: r.name.clone(),
                description: r.description.clone(),
                permissions,
                expires: if r.expires_at < 0 {
                    t.never.to_owned()
                } else {
                    human_time(r.expires_at)
                },
                disabled: r.disabled,
            }
        })
        .collect();
    let project = ProjectView::of(&row);
    let path = format!("{}/robots", project.url);
    let page_view = RobotsPage {
        l: Layout::new(v, row.name.clone(), "projects"),
        pager: Pager::new(&path, query, page, total),
        project,
        tab: "robots",
        rows,
        may_manage: allowed(&req, Action::ManageRobots, &facts),
        created,
    };
    html(200, &page_view, v)
}

pub async fn create(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    name: &str,
) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let duration = match form.get("duration").map(str::trim) {
        None | Some("") => -1,
        Some(d) => d.parse::<i64>().map_err(|_| {
            GatewayError::BadRequest(format!(
                "the validity `{d}` is not a number of days (-1: never expires)"
            ))
        })?,
    };
    let mut access = Vec::new();
    for (field, resource, action) in [
        ("pull", "repository", "pull"),
        ("push", "repository", "push"),
        ("delete", "artifact", "delete"),
    ] {
        if form.get(field) == Some("true") {
            access.push(Access {
                resource: resource.into(),
                action: action.into(),
                effect: None,
            });
        }
    }
    if access.is_empty() {
        return Err(GatewayError::BadRequest(
            "choose at least one permission for the robot account".into(),
        ));
    }
    let body = RobotCreate {
        name: form.get("name").unwrap_or("").trim().to_owned(),
        description: form.get("description").unwrap_or("").trim().to_owned(),
        level: "project".into(),
        disable: false,
        duration,
        permissions: vec![RobotPermission {
            kind: "project".into(),
            namespace: name.to_owned(),
            access,
        }],
    };
    let created = robots::create_robot(app, &v.api(), &body).await?;
    list(app, v, name, &Query::parse(None), Some(created)).await
}

pub async fn delete(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    name: &str,
    id: i64,
) -> Result<Reply, GatewayError> {
    form::read(session, v).await?;
    let req = v.api();
    // The robot's own project decides (the API's check); the one in the
    // URL only says where to go back to.
    robots::delete(app, &req, &id.to_string()).await?;
    Ok(redirect(
        &format!("/projects/{}/robots", encode_path(name)),
        v,
    ))
}
