//! `/projects` and a project's tabs: summary, repositories, members.
//! Reads go through the storage listings the API uses, behind the same
//! policy checks (`ApiRequest::project`, `visibility`); changes call the
//! API's own functions.

use askama::Template;
use berth_policy::{authorize, Action, Decision, Resource, Role};
use berth_storage::artifacts::RepositoryFilter;
use berth_storage::projects::{Entity, ProjectFilter, ProjectRow};
use berth_storage::quota::QuotaRow;
use pingora::proxy::Session;

use super::form;
use super::page::{encode_path, html, human_size, human_time, redirect, Layout, Pager};
use super::visitor::Visitor;
use crate::api::members::{self, ProjectMember, UserEntity, UserGroup};
use crate::api::page::Page;
use crate::api::projects::{self as api_projects, ProjectMetadata, ProjectReq};
use crate::api::request::{ApiRequest, ProjectRef};
use crate::app::App;
use crate::auth::ProjectFacts;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::Query;

/// A project as the pages show it.
pub struct ProjectView {
    pub name: String,
    pub url: String,
    pub public: bool,
    pub repo_count: i64,
}

impl ProjectView {
    pub fn of(row: &ProjectRow) -> ProjectView {
        ProjectView {
            name: row.name.clone(),
            url: format!("/projects/{}", encode_path(&row.name)),
            public: row.public,
            repo_count: row.repo_count,
        }
    }
}

struct ProjectLine {
    name: String,
    url: String,
    public: bool,
    repo_count: i64,
    quota: Option<String>,
    created: String,
}

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    l: Layout,
    q: String,
    rows: Vec<ProjectLine>,
    pager: Pager,
    may_create: bool,
    may_set_quota: bool,
    /// Registry endpoints a new project may cache: only for those who may
    /// create a proxy-cache project (system administrators).
    endpoints: Vec<(i64, String)>,
}

pub struct QuotaView {
    pub text: String,
    pub percent: Option<i64>,
}

#[derive(Template)]
#[template(path = "project.html")]
struct SummaryPage {
    l: Layout,
    project: ProjectView,
    tab: &'static str,
    role: String,
    quota: Option<QuotaView>,
    host: String,
    may_delete: bool,
}

struct RepositoryLine {
    full: String,
    url: String,
    artifact_count: i64,
    pull_count: i64,
    updated: String,
}

#[derive(Template)]
#[template(path = "repositories.html")]
struct RepositoriesPage {
    l: Layout,
    project: ProjectView,
    tab: &'static str,
    q: String,
    rows: Vec<RepositoryLine>,
    pager: Pager,
}

struct MemberLine {
    id: i64,
    name: String,
    group: bool,
    role: &'static str,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    l: Layout,
    project: ProjectView,
    tab: &'static str,
    rows: Vec<MemberLine>,
    pager: Pager,
    may_manage: bool,
    roles: Vec<(i64, &'static str)>,
    /// Whether users sign in through LDAP, so LDAP groups can be members.
    ldap: bool,
}

/// Whether policy allows `action` on the project, for showing a button;
/// the action itself is checked again when it is taken.
pub fn allowed(req: &ApiRequest, action: Action, facts: &ProjectFacts) -> bool {
    authorize(&req.subject(), action, Resource::Project(facts.view())) == Decision::Allow
}

/// The page's listing parameters: the page and the page size (at most
/// the API's).
pub fn listing(query: &Query) -> Result<Page, GatewayError> {
    let mut page = Page::parse(query)?;
    if query.get("page_size").is_none() {
        page.size = 25;
    }
    Ok(page)
}

/// `"1.2 GiB of 10.0 GiB"`, with the share used when there is a limit.
pub fn quota_view(v: &Visitor, q: &QuotaRow) -> QuotaView {
    let t = v.lang.text();
    let used = i64::try_from(q.used).unwrap_or(i64::MAX);
    let Some(hard) = q.hard.map(|h| i64::try_from(h).unwrap_or(i64::MAX)) else {
        return QuotaView {
            text: format!("{} {} {}", human_size(used), t.used_of, t.unlimited),
            percent: None,
        };
    };
    QuotaView {
        text: format!("{} {} {}", human_size(used), t.used_of, human_size(hard)),
        percent: Some(if hard == 0 {
            100
        } else {
            (used.saturating_mul(100) / hard).clamp(0, 100)
        }),
    }
}

pub async fn list(app: &App, v: &Visitor, query: &Query) -> Result<Reply, GatewayError> {
    let req = v.api();
    let page = listing(query)?;
    let q = query.get("q").unwrap_or("").trim().to_owned();
    let filter = ProjectFilter {
        exact_name: None,
        name_contains: (!q.is_empty()).then(|| q.clone()),
        public: None,
    };
    let (rows, total) = app
        .registry
        .meta()
        .list_projects(&req.visibility(), &filter, page.offset(), page.limit())
        .await?;
    // Quotas of the projects on this page whose quota the visitor may read.
    let mut readable = Vec::new();
    for row in &rows {
        let facts = crate::auth::project_facts(app, req.identity.as_ref(), &row.name).await?;
        if allowed(&req, Action::ReadQuota, &facts) {
            readable.push(row.id);
        }
    }
    let quotas = if readable.is_empty() {
        Vec::new()
    } else {
        app.registry.meta().list_quotas(Some(&readable)).await?
    };
    let lines = rows
        .iter()
        .map(|row| {
            let view = ProjectView::of(row);
            let quota = quotas
                .iter()
                .find(|q| q.project_id == row.id)
                .map(|q| quota_view(v, q).text);
            ProjectLine {
                name: view.name,
                url: view.url,
                public: view.public,
                repo_count: view.repo_count,
                quota,
                created: human_time(row.created_at),
            }
        })
        .collect();
    let subject = req.subject();
    // `api::projects::requested_upstream`'s check, for showing the choice.
    let endpoints = match authorize(&subject, Action::ManageRegistries, Resource::System) {
        Decision::Allow => app
            .registry
            .meta()
            .endpoints()
            .await?
            .into_iter()
            .map(|e| (e.id, format!("{} ({})", e.name, e.url)))
            .collect(),
        _ => Vec::new(),
    };
    let page_view = ProjectsPage {
        l: Layout::new(v, v.lang.text().projects, "projects"),
        q,
        rows: lines,
        pager: Pager::new("/projects", query, page, total),
        may_create: v.identity.is_some()
            && authorize(
                &subject,
                Action::CreateProject,
                Resource::NewProject {
                    admin_only: app.runtime.admin_only_projects(),
                },
            ) == Decision::Allow,
        may_set_quota: authorize(&subject, Action::ManageQuotas, Resource::System)
            == Decision::Allow,
        endpoints,
    };
    html(200, &page_view, v)
}

pub async fn create(app: &App, session: &mut Session, v: &Visitor) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let name = form.get("project_name").unwrap_or("").trim().to_owned();
    let storage_limit = form::storage_limit(form.get("storage_limit").unwrap_or(""))?;
    let registry_id = match form.get("registry_id").map(str::trim) {
        None | Some("") => None,
        Some(id) => Some(id.parse::<i64>().map_err(|_| {
            GatewayError::BadRequest(format!("`{id}` is not a registry endpoint's id"))
        })?),
    };
    let body = ProjectReq {
        project_name: Some(name.clone()),
        public: None,
        metadata: Some(ProjectMetadata {
            public: Some((form.get("public") == Some("true")).to_string()),
            proxy_mode: None,
            retention_id: None,
        }),
        storage_limit,
        registry_id,
    };
    api_projects::create_project(app, &v.api(), &body).await?;
    Ok(redirect(&format!("/projects/{}", encode_path(&name)), v))
}

/// The project (checked for `action`) as the pages show it.
async fn project(
    app: &App,
    req: &ApiRequest,
    name: &str,
    action: Action,
) -> Result<(ProjectRow, ProjectFacts), GatewayError> {
    req.project(app, ProjectRef::Name(name), action).await
}

pub async fn summary(app: &App, v: &Visitor, name: &str) -> Result<Reply, GatewayError> {
    let req = v.api();
    let (row, facts) = project(app, &req, name, Action::ReadProject).await?;
    let t = v.lang.text();
    let quota = match allowed(&req, Action::ReadQuota, &facts) {
        true => app
            .registry
            .meta()
            .list_quotas(Some(&[row.id]))
            .await?
            .first()
            .map(|q| quota_view(v, q)),
        false => None,
    };
    let role = match (&v.identity, facts.role) {
        (Some(id), _) if id.admin => t.system_admin.to_owned(),
        (_, Some(role)) => t.role(role).to_owned(),
        _ => t.none.to_owned(),
    };
    let host = host_of(v);
    let page = SummaryPage {
        l: Layout::new(v, row.name.clone(), "projects"),
        project: ProjectView::of(&row),
        tab: "summary",
        role,
        quota,
        host,
        may_delete: allowed(&req, Action::DeleteProject, &facts),
    };
    html(200, &page, v)
}

/// The registry's host as clients reach it (for pull commands).
pub fn host_of(v: &Visitor) -> String {
    let base = v.base_url.as_str();
    base.split_once("://").map_or(base, |(_, h)| h).to_owned()
}

pub async fn delete(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    name: &str,
) -> Result<Reply, GatewayError> {
    form::read(session, v).await?;
    let req = v.api();
    api_projects::delete_project(app, &req, ProjectRef::Name(name), false).await?;
    Ok(redirect("/projects", v))
}

pub async fn repositories(
    app: &App,
    v: &Visitor,
    name: &str,
    query: &Query,
) -> Result<Reply, GatewayError> {
    let req = v.api();
    let (row, _) = project(app, &req, name, Action::Pull).await?;
    let page = listing(query)?;
    let q = query.get("q").unwrap_or("").trim().to_owned();
    let filter = RepositoryFilter {
        exact_name: None,
        name_contains: (!q.is_empty()).then(|| q.clone()),
    };
    let (repos, total) = app
        .registry
        .meta()
        .list_repositories(&row.name, &filter, page.offset(), page.limit())
        .await?;
    let project = ProjectView::of(&row);
    let rows = repos
        .iter()
        .map(|r| {
            let full = r.name.to_string();
            let short = full
                .strip_prefix(&format!("{}/", row.name))
                .unwrap_or(&full)
                .to_owned();
            RepositoryLine {
                url: format!("{}/repositories/{}", project.url, encode_path(&short)),
                full,
                artifact_count: r.artifact_count,
                pull_count: r.pull_count,
                updated: human_time(r.updated_at),
            }
        })
        .collect();
    let path = format!("{}/repositories", project.url);
    let page_view = RepositoriesPage {
        l: Layout::new(v, row.name.clone(), "projects"),
        pager: Pager::new(&path, query, page, total),
        project,
        tab: "repositories",
        q,
        rows,
    };
    html(200, &page_view, v)
}

pub async fn members(
    app: &App,
    v: &Visitor,
    name: &str,
    query: &Query,
) -> Result<Reply, GatewayError> {
    let req = v.api();
    let (row, facts) = project(app, &req, name, Action::ListMembers).await?;
    let t = v.lang.text();
    let page = listing(query)?;
    let (list, total) = app
        .registry
        .meta()
        .list_members(row.id, None, page.offset(), page.limit())
        .await?;
    let rows = list
        .iter()
        .map(|m| MemberLine {
            id: m.id,
            name: m.entity_name.clone(),
            group: matches!(m.entity, Entity::Group(_)),
            role: Role::from_id(m.role).map_or("?", |r| t.role(r)),
        })
        .collect();
    let roles = [
        Role::ProjectAdmin,
        Role::Maintainer,
        Role::Developer,
        Role::Guest,
        Role::LimitedGuest,
    ]
    .into_iter()
    .map(|r| (r.id(), t.role(r)))
    .collect();
    let project = ProjectView::of(&row);
    let path = format!("{}/members", project.url);
    let page = MembersPage {
        l: Layout::new(v, row.name.clone(), "projects"),
        pager: Pager::new(&path, query, page, total),
        project,
        tab: "members",
        rows,
        may_manage: allowed(&req, Action::ManageMembers, &facts),
        roles,
        ldap: app.login.uses_directory(),
    };
    html(200, &page, v)
}

pub async fn add_member(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    name: &str,
) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let role_id = form
        .get("role")
        .and_then(|r| r.parse::<i64>().ok())
        .ok_or_else(|| GatewayError::BadRequest("choose a role".into()))?;
    // The group form sends a DN, the user form a username.
    let group_dn = form
        .get("group_dn")
        .map(str::trim)
        .filter(|d| !d.is_empty());
    let body = match group_dn {
        Some(dn) => ProjectMember {
            role_id,
            member_user: None,
            member_group: Some(UserGroup {
                id: None,
                group_name: None,
                group_type: Some(1),
                ldap_group_dn: Some(dn.to_owned()),
            }),
        },
        None => ProjectMember {
            role_id,
            member_user: Some(UserEntity {
                user_id: None,
                username: Some(form.get("username").unwrap_or("").trim().to_owned()),
            }),
            member_group: None,
        },
    };
    let req = v.api();
    members::add(app, &req, ProjectRef::Name(name), &body).await?;
    Ok(redirect(
        &format!("/projects/{}/members", encode_path(name)),
        v,
    ))
}

pub async fn remove_member(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    name: &str,
    mid: i64,
) -> Result<Reply, GatewayError> {
    form::read(session, v).await?;
    let req = v.api();
    members::remove(app, &req, ProjectRef::Name(name), mid).await?;
    Ok(redirect(
        &format!("/projects/{}/members", encode_path(name)),
        v,
    ))
}
