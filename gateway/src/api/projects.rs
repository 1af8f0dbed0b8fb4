//! Projects: `/api/v2.0/projects` and `/api/v2.0/projects/{project_name_or_id}`
//! (Harbor's `project` API: list, create, head, get, update, delete,
//! summary).

use std::collections::BTreeMap;

use berth_policy::{authorize, Action, Decision, Resource, Role};
use berth_storage::oci::ProjectName;
use berth_storage::projects::{ProjectDeletion, ProjectFilter, ProjectRow};
use berth_storage::upstreams::{ProjectUpstream, ProxyMode};
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::page::{Page, Term, Q};
use super::request::{bounded, read_json, time, ApiRequest, ProjectRef};
use crate::app::App;
use crate::auth::ProjectFacts;
use crate::error::GatewayError;
use crate::http::Reply;

/// Harbor's `Project`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Project {
    pub project_id: i64,
    pub name: String,
    pub owner_id: Option<i64>,
    pub owner_name: Option<String>,
    pub creation_time: String,
    pub update_time: String,
    pub deleted: bool,
    pub repo_count: i64,
    /// The caller's strongest role id in the project (absent when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_user_role_id: Option<i64>,
    pub current_user_role_ids: Vec<i64>,
    pub togglable: bool,
    pub registry_id: Option<i64>,
    pub metadata: ProjectMetadata,
}

/// Harbor keeps project settings as strings: `"true"`/`"false"`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct ProjectMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<String>,
    /// With `registry_id`: `cache` (a read-only pull-through cache, the
    /// default) or `passthrough` (every request forwarded upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_mode: Option<String>,
    /// The project's tag retention policy id (read only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_id: Option<String>,
}

/// Harbor's `ProjectReq` (create and update).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProjectReq {
    #[serde(default)]
    pub project_name: Option<String>,
    /// Deprecated in Harbor in favour of `metadata.public`; accepted.
    #[serde(default)]
    pub public: Option<bool>,
    #[serde(default)]
    pub metadata: Option<ProjectMetadata>,
    /// Storage quota in bytes (-1: unlimited) of a new project; without
    /// it, `quota.default_storage_limit` applies. Only system
    /// administrators may choose another than the default. Updates change
    /// quotas through `/quotas/{id}`.
    #[serde(default)]
    pub storage_limit: Option<i64>,
    /// The registry endpoint a proxy-cache (or, with
    /// `metadata.proxy_mode = "passthrough"`, fronted) project uses.
    #[serde(default)]
    pub registry_id: Option<i64>,
}

/// Harbor's `ProjectSummary`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProjectSummary {
    pub repo_count: i64,
    /// Member counts per role, for callers who may list the members
    /// (Harbor leaves them out for the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_admin_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintainer_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub developer_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limited_guest_count: Option<i64>,
    /// The project's storage quota, for callers who may read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<super::quotas::SummaryQuota>,
}

pub fn project_json(row: &ProjectRow, role: Option<Role>) -> Project {
    Project {
        project_id: row.id,
        name: row.name.clone(),
        owner_id: row.owner_id,
        owner_name: row.owner_name.clone(),
        creation_time: time(row.created_at),
        update_time: time(row.updated_at),
        deleted: false,
        repo_count: row.repo_count,
        current_user_role_id: role.map(Role::id),
        current_user_role_ids: role.map(Role::id).into_iter().collect(),
        togglable: true,
        registry_id: row.upstream.map(|u| u.registry_id),
        metadata: ProjectMetadata {
            public: Some(row.public.to_string()),
            proxy_mode: row.upstream.map(|u| u.mode.as_str().to_owned()),
            retention_id: None,
        },
    }
}

/// `registry_id` and `metadata.proxy_mode`: a proxy-cache or fronted
/// project, which only system administrators create (it spends the
/// endpoint's credential on behalf of the project's members).
async fn requested_upstream(
    app: &App,
    req: &ApiRequest,
    body: &ProjectReq,
) -> Result<Option<ProjectUpstream>, GatewayError> {
    let mode = body.metadata.as_ref().and_then(|m| m.proxy_mode.as_deref());
    let Some(registry_id) = body.registry_id else {
        if mode.is_some() {
            return Err(GatewayError::BadRequest(
                "`metadata.proxy_mode` needs `registry_id`: the registry endpoint to cache or front"
                    .into(),
            ));
        }
        return Ok(None);
    };
    req.require(Action::ManageRegistries, Resource::System)?;
    let mode = match mode {
        None => ProxyMode::Cache,
        Some(m) => ProxyMode::parse(m).ok_or_else(|| {
            GatewayError::BadRequest(format!(
                "`metadata.proxy_mode` must be \"cache\" or \"passthrough\", not \"{m}\""
            ))
        })?,
    };
    if app.registry.meta().endpoint(registry_id).await?.is_none() {
        return Err(GatewayError::BadRequest(format!(
            "`registry_id` {registry_id} is not a registry endpoint; create one with POST /api/v2.0/registries"
        )));
    }
    Ok(Some(ProjectUpstream { registry_id, mode }))
}

/// `metadata.public` (or the older top-level `public`), as a bool.
fn requested_public(req: &ProjectReq) -> Result<Option<bool>, GatewayError> {
    if let Some(p) = req.metadata.as_ref().and_then(|m| m.public.as_deref()) {
        return match p {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            other => Err(GatewayError::BadRequest(format!(
                "`metadata.public` must be \"true\" or \"false\", not \"{other}\""
            ))),
        };
    }
    Ok(req.public)
}

#[utoipa::path(get, path = "/api/v2.0/projects", tag = "project",
    params(
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100"),
        ("name" = Option<String>, Query, description = "Exact project name"),
        ("public" = Option<bool>, Query, description = "Only public (true) or private (false) projects"),
        ("q" = Option<String>, Query, description = "Harbor query: name=~<substring>, public=<bool>"),
    ),
    responses((status = 200, description = "Projects the caller can see", body = [Project],
        headers(("X-Total-Count" = i64, description = "Total matching"), ("Link" = String, description = "prev/next pages")))))]
pub async fn list(app: &App, req: &ApiRequest) -> Result<Reply, GatewayError> {
    let page = Page::parse(&req.query)?;
    let q = Q::parse(&req.query)?;
    q.reject_unknown(&["name", "public"])?;
    let (mut exact, contains) = q.name_filter("name");
    if let Some(name) = req.query.get("name").filter(|n| !n.is_empty()) {
        exact = Some(name.to_owned());
    }
    let public_param = match (req.query.get("public"), q.get("public")) {
        (Some(v), _) => Some(v),
        (None, Some(Term::Exact(v))) => Some(v.as_str()),
        _ => None,
    };
    let public = match public_param {
        Some(v) => Some(match v {
            "true" | "1" => true,
            "false" | "0" => false,
            other => {
                return Err(GatewayError::BadRequest(format!(
                    "`public` must be true or false, not `{other}`"
                )))
            }
        }),
        _ => None,
    };
    let visibility = req.visibility();
    let filter = ProjectFilter {
        exact_name: exact,
        name_contains: contains,
        public,
    };
    let (rows, total) = app
        .registry
        .meta()
        .list_projects(&visibility, &filter, page.offset(), page.limit())
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        let role = match &req.identity {
            Some(id) if id.robot.is_none() => app.role_in(row.id, id).await?,
            _ => None,
        };
        items.push(project_json(row, role));
    }
    Ok(page.reply("/api/v2.0/projects", &req.query, &items, total))
}

#[utoipa::path(head, path = "/api/v2.0/projects", tag = "project",
    params(("project_name" = String, Query, description = "The name to check")),
    responses((status = 200, description = "A project with this name exists"),
        (status = 404, description = "No project has this name")))]
pub async fn head(app: &App, req: &ApiRequest) -> Result<Reply, GatewayError> {
    // Harbor answers any authenticated caller, robots included (CI jobs
    // check a project before pushing); anonymous callers log in first.
    if req.identity.is_none() {
        return Err(GatewayError::Unauthenticated { scope: None });
    }
    let name = req.query.get("project_name").ok_or_else(|| {
        GatewayError::BadRequest("`project_name` query parameter is required".into())
    })?;
    match app.registry.meta().project(name).await? {
        Some(_) => Ok(Reply::new(200)),
        None => Err(GatewayError::ApiNotFound(format!(
            "project `{name}` not found"
        ))),
    }
}

#[utoipa::path(post, path = "/api/v2.0/projects", tag = "project",
    request_body = ProjectReq,
    responses((status = 201, description = "Created; Location names the new project",
        headers(("Location" = String, description = "/api/v2.0/projects/{id}"))),
        (status = 400, description = "Invalid name or field", body = super::Errors),
        (status = 403, description = "Only administrators create projects here", body = super::Errors),
        (status = 409, description = "A project with this name exists", body = super::Errors)))]
pub async fn create(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
) -> Result<Reply, GatewayError> {
    req.require(
        Action::CreateProject,
        Resource::NewProject {
            admin_only: app.runtime.admin_only_projects(),
        },
    )?;
    let body: ProjectReq = read_json(session).await?;
    let id = create_project(app, req, &body).await?;
    Ok(Reply::new(201).header("Location", format!("/api/v2.0/projects/{id}")))
}

/// Creates a project (the API's POST and the portal's form); returns its id.
pub(crate) async fn create_project(
    app: &App,
    req: &ApiRequest,
    body: &ProjectReq,
) -> Result<i64, GatewayError> {
    req.require(
        Action::CreateProject,
        Resource::NewProject {
            admin_only: app.runtime.admin_only_projects(),
        },
    )?;
    let raw = body
        .project_name
        .as_deref()
        .ok_or_else(|| GatewayError::BadRequest("`project_name` is required".into()))?;
    bounded("project_name", raw, 255)?;
    let name: ProjectName = raw.parse()?;
    let public = requested_public(body)?.unwrap_or(false);
    let upstream = requested_upstream(app, req, body).await?;
    let owner = req.identity.as_ref().and_then(|i| i.user_id);
    let mut storage_limit = app.runtime.storage_per_project();
    if let Some(requested) = body.storage_limit {
        let requested = super::quotas::storage_limit(requested, "storage_limit")?;
        if requested != storage_limit {
            req.require(Action::ManageQuotas, Resource::System)?;
            storage_limit = requested;
        }
    }
    let result = app
        .registry
        .meta()
        .create_project(name.as_str(), public, owner, storage_limit)
        .await?;
    req.audit(
        app,
        "create",
        "project",
        name.as_str(),
        Some(name.as_str()),
        result.is_some(),
    );
    let Some(id) = result else {
        return Err(GatewayError::Conflict(format!(
            "project `{name}` already exists; choose another name"
        )));
    };
    if upstream.is_some() {
        app.registry
            .meta()
            .set_project_upstream(id, upstream)
            .await?;
    }
    app.registry.forget_project(name.as_str()).await;
    app.forget_access().await;
    Ok(id)
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}", tag = "project",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("X-Is-Resource-Name" = Option<bool>, Header, description = "Treat the value as a name")),
    responses((status = 200, body = Project), (status = 404, body = super::Errors)))]
pub async fn get(
    app: &App,
    session: &Session,
    req: &ApiRequest,
    name_or_id: &str,
) -> Result<Reply, GatewayError> {
    let (row, facts) = req
        .project(
            app,
            ProjectRef::name_or_id(session, name_or_id),
            Action::ReadProject,
        )
        .await?;
    let mut project = project_json(&row, facts.role);
    let retention = app.registry.meta().project_retention_id(row.id).await?;
    project.metadata.retention_id = retention.map(|id| id.to_string());
    let json = serde_json::to_value(project).unwrap_or_default();
    Ok(Reply::json(200, &json))
}

#[utoipa::path(put, path = "/api/v2.0/projects/{project_name_or_id}", tag = "project",
    params(("project_name_or_id" = String, Path, description = "Project name or id")),
    request_body = ProjectReq,
    responses((status = 200, description = "Updated"), (status = 400, body = super::Errors),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors)))]
pub async fn update(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    name_or_id: &str,
) -> Result<Reply, GatewayError> {
    let project = ProjectRef::name_or_id(session, name_or_id);
    // A caller who may not change the project is refused before its body
    // is read.
    req.project(app, project, Action::UpdateProject).await?;
    let body: ProjectReq = read_json(session).await?;
    update_project(app, req, project, &body).await?;
    Ok(Reply::new(200))
}

/// Changes a project's settings (the API's PUT and the portal's
/// configuration tab): today, whether it is public.
pub(crate) async fn update_project(
    app: &App,
    req: &ApiRequest,
    project: ProjectRef<'_>,
    body: &ProjectReq,
) -> Result<(), GatewayError> {
    let (row, _) = req.project(app, project, Action::UpdateProject).await?;
    if body.registry_id.is_some() {
        return Err(GatewayError::BadRequest(
            "`registry_id` is set when a project is created; create a new project to cache or front another registry"
                .into(),
        ));
    }
    if body.storage_limit.is_some() {
        return Err(GatewayError::BadRequest(
            "`storage_limit` is set when a project is created; change it with \
             PUT /api/v2.0/quotas/{id} (an administrator's call)"
                .into(),
        ));
    }
    if body.project_name.as_deref().is_some_and(|n| n != row.name) {
        return Err(GatewayError::BadRequest(
            "`project_name` cannot be changed; create a new project instead".into(),
        ));
    }
    if let Some(public) = requested_public(body)? {
        app.registry
            .meta()
            .set_project_public(row.id, public)
            .await?;
        app.registry.forget_project(&row.name).await;
    }
    req.audit(app, "update", "project", &row.name, Some(&row.name), true);
    Ok(())
}

#[utoipa::path(delete, path = "/api/v2.0/projects/{project_name_or_id}", tag = "project",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("force" = Option<bool>, Query, description = "Also delete the project's repositories (berth extension)")),
    responses((status = 200, description = "Deleted"), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors),
        (status = 412, description = "The project still has repositories", body = super::Errors)))]
pub async fn delete(
    app: &App,
    session: &Session,
    req: &ApiRequest,
    name_or_id: &str,
) -> Result<Reply, GatewayError> {
    let force = req.query.get("force") == Some("true");
    let project = ProjectRef::name_or_id(session, name_or_id);
    delete_project(app, req, project, force).await?;
    Ok(Reply::new(200))
}

/// Deletes a project (the API's DELETE and the portal's form); `force`
/// takes its repositories along.
pub(crate) async fn delete_project(
    app: &App,
    req: &ApiRequest,
    project: ProjectRef<'_>,
    force: bool,
) -> Result<(), GatewayError> {
    let name_or_id = project.to_string();
    let (row, _) = req.project(app, project, Action::DeleteProject).await?;
    let outcome = app.registry.meta().delete_project(row.id, force).await?;
    req.audit(
        app,
        "delete",
        "project",
        &row.name,
        Some(&row.name),
        matches!(outcome, ProjectDeletion::Deleted { .. }),
    );
    match outcome {
        ProjectDeletion::Deleted { repositories } => {
            app.registry.forget_project(&row.name).await;
            if repositories > 0 {
                app.registry.forget_content().await;
            }
            app.forget_access().await;
            Ok(())
        }
        ProjectDeletion::NotEmpty { repositories } => Err(GatewayError::Precondition(format!(
            "project `{}` still has {repositories} repositories; delete them first, \
             or delete the project with ?force=true",
            row.name
        ))),
        ProjectDeletion::NotFound => Err(GatewayError::ApiNotFound(format!(
            "project `{name_or_id}` not found"
        ))),
    }
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/summary", tag = "project",
    params(("project_name_or_id" = String, Path, description = "Project name or id")),
    responses((status = 200, body = ProjectSummary), (status = 404, body = super::Errors)))]
pub async fn summary(
    app: &App,
    session: &Session,
    req: &ApiRequest,
    name_or_id: &str,
) -> Result<Reply, GatewayError> {
    let (row, facts): (ProjectRow, ProjectFacts) = req
        .project(
            app,
            ProjectRef::name_or_id(session, name_or_id),
            Action::ReadProject,
        )
        .await?;
    let quota = super::quotas::summary_quota(app, req, &facts, row.id).await?;
    let may_list_members = matches!(
        authorize(
            &req.subject(),
            Action::ListMembers,
            Resource::Project(facts.view())
        ),
        Decision::Allow
    );
    let counts: Option<BTreeMap<i64, i64>> = match may_list_members {
        true => Some(
            app.registry
                .meta()
                .member_counts(row.id)
                .await?
                .into_iter()
                .collect(),
        ),
        false => None,
    };
    let count = |r: Role| {
        counts
            .as_ref()
            .map(|c| c.get(&r.id()).copied().unwrap_or(0))
    };
    let summary = ProjectSummary {
        repo_count: row.repo_count,
        project_admin_count: count(Role::ProjectAdmin),
        maintainer_count: count(Role::Maintainer),
        developer_count: count(Role::Developer),
        guest_count: count(Role::Guest),
        limited_guest_count: count(Role::LimitedGuest),
        quota,
    };
    Ok(Reply::json(
        200,
        &serde_json::to_value(summary).unwrap_or_default(),
    ))
}

/// Harbor's `ProjectDeletable`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProjectDeletable {
    pub deletable: bool,
    /// Why not, when it is not.
    pub message: String,
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/_deletable", tag = "project",
    params(("project_name_or_id" = String, Path, description = "Project name or id")),
    responses((status = 200, body = ProjectDeletable), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn deletable(
    app: &App,
    session: &Session,
    req: &ApiRequest,
    name_or_id: &str,
) -> Result<Reply, GatewayError> {
    let which = ProjectRef::name_or_id(session, name_or_id);
    // Asked as a read: read-only mode is an answer here, not an error.
    let (row, facts) = req.project(app, which, Action::ReadProject).await?;
    req.require(Action::DeleteProject, Resource::Project(facts.view()))?;
    let message = if app.runtime.read_only() {
        "the registry is in read-only mode".to_owned()
    } else if row.repo_count > 0 {
        format!(
            "the project still has {} repositories; delete them first, or delete the project \
             with ?force=true",
            row.repo_count
        )
    } else {
        String::new()
    };
    let body = ProjectDeletable {
        deletable: message.is_empty(),
        message,
    };
    Ok(Reply::json(
        200,
        &serde_json::to_value(body).unwrap_or_default(),
    ))
}
