//! Robot accounts: a project's (`/projects/<p>/robots`) and the system's
//! (`/admin/robots`, which may reach several or all projects): list,
//! create (the secret is shown once, on the page that answers the form,
//! never in a URL), delete. Creating and deleting call the API's own
//! functions, which check the robot's level, projects and permissions
//! exactly as `POST /api/v2.0/robots` does.

use askama::Template;
use berth_policy::{Action, Resource};
use berth_storage::robots::RobotRow;
use pingora::proxy::Session;

use super::form;
use super::i18n::Text;
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
    name: String,
    description: String,
    permissions: String,
    expires: String,
    disabled: bool,
    delete_url: String,
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
    let project = ProjectView::of(&row);
    let rows = lines(&list, t, &|r| {
        format!("{}/robots/{}/delete", project.url, r.id)
    });
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
    let body = RobotCreate {
        permissions: vec![RobotPermission {
            kind: "project".into(),
            namespace: name.to_owned(),
            access: access(&form)?,
        }],
        ..new_robot(&form, "project")?
    };
    let created = robots::create_robot(app, &v.api(), &body).await?;
    list(app, v, name, &Query::parse(None), Some(created)).await
}

/// The robot the form describes, without its permissions.
fn new_robot(form: &Query, level: &str) -> Result<RobotCreate, GatewayError> {
    let duration = match form.get("duration").map(str::trim) {
        None | Some("") => -1,
        Some(d) => d.parse::<i64>().map_err(|_| {
            GatewayError::BadRequest(format!(
                "the validity `{d}` is not a number of days (-1: never expires)"
            ))
        })?,
    };
    Ok(RobotCreate {
        name: form.get("name").unwrap_or("").trim().to_owned(),
        description: form.get("description").unwrap_or("").trim().to_owned(),
        level: level.into(),
        disable: false,
        duration,
        permissions: Vec::new(),
    })
}

/// The permissions ticked in the form, on repositories.
fn access(form: &Query) -> Result<Vec<Access>, GatewayError> {
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
    Ok(access)
}

/// The robots' lines; `delete_url` says where each one's delete form
/// posts. A system robot's permissions name their projects.
fn lines(list: &[RobotRow], t: &Text, delete_url: &dyn Fn(&RobotRow) -> String) -> Vec<RobotLine> {
    list.iter()
        .map(|r| {
            // Harbor's JSON, as stored: the actions granted, per project.
            let system = r.level == "system";
            let permissions = serde_json::from_str::<serde_json::Value>(&r.permissions)
                .ok()
                .and_then(|v| {
                    v.as_array().map(|specs| {
                        specs
                            .iter()
                            .map(|s| {
                                let actions = s["access"]
                                    .as_array()
                                    .map(|a| {
                                        a.iter()
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
                                    .unwrap_or_default();
                                match s["namespace"].as_str() {
                                    Some(ns) if system => format!("{ns}: {actions}"),
                                    _ => actions,
                                }
                            })
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                })
                .unwrap_or_default();
            RobotLine {
                name: r.name.clone(),
                description: r.description.clone(),
                permissions,
                expires: if r.expires_at < 0 {
                    t.never.to_owned()
                } else {
                    human_time(r.expires_at)
                },
                disabled: r.disabled,
                delete_url: delete_url(r),
            }
        })
        .collect()
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

#[derive(Template)]
#[template(path = "admin_robots.html")]
struct SystemRobotsPage {
    l: Layout,
    tab: &'static str,
    flash: Option<super::admin::Flash>,
    rows: Vec<RobotLine>,
    pager: Pager,
    may_manage: bool,
    created: Option<RobotCreated>,
}

/// `/admin/robots`: the system robot accounts.
pub async fn system_list(
    app: &App,
    v: &Visitor,
    query: &Query,
    created: Option<RobotCreated>,
) -> Result<Reply, GatewayError> {
    v.api()
        .require(Action::ManageSystemRobots, Resource::System)?;
    let t = v.lang.text();
    let page = listing(query)?;
    let (list, total) = app
        .registry
        .meta()
        .list_robots(Some("system"), None, None, page.offset(), page.limit())
        .await?;
    let view = SystemRobotsPage {
        l: Layout::new(v, t.robots, "admin"),
        tab: "robots",
        flash: None,
        rows: lines(&list, t, &|r| format!("/admin/robots/{}/delete", r.id)),
        pager: Pager::new("/admin/robots", query, page, total),
        may_manage: true,
        created,
    };
    html(200, &view, v)
}

/// A system robot for every project (`*`) or for the projects listed.
pub async fn system_create(
    app: &App,
    session: &mut Session,
    v: &Visitor,
) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let mut access = access(&form)?;
    let all = form.get("scope") != Some("listed");
    if all && form.get("catalog") == Some("true") {
        access.push(Access {
            resource: "catalog".into(),
            action: "list".into(),
            effect: None,
        });
    }
    let namespaces: Vec<String> = if all {
        vec!["*".into()]
    } else {
        form.get("projects")
            .unwrap_or("")
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    };
    if namespaces.is_empty() {
        return Err(GatewayError::BadRequest(
            "list the projects the robot account may reach, or choose all projects".into(),
        ));
    }
    let body = RobotCreate {
        permissions: namespaces
            .into_iter()
            .map(|namespace| RobotPermission {
                kind: "project".into(),
                namespace,
                access: access.clone(),
            })
            .collect(),
        ..new_robot(&form, "system")?
    };
    let created = robots::create_robot(app, &v.api(), &body).await?;
    system_list(app, v, &Query::parse(None), Some(created)).await
}

pub async fn system_delete(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    id: i64,
) -> Result<Reply, GatewayError> {
    form::read(session, v).await?;
    robots::delete(app, &v.api(), &id.to_string()).await?;
    Ok(redirect("/admin/robots", v))
}
