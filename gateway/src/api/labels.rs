//! Labels (Harbor's `label` API and the artifact API's label calls):
//!
//! - `/labels` GET (`scope=g`, or `scope=p&project_id=`), POST
//! - `/labels/{label_id}` GET, PUT, DELETE
//! - `/projects/{p}/repositories/{r}/artifacts/{reference}/labels` POST
//! - `.../artifacts/{reference}/labels/{label_id}` DELETE
//!
//! Global labels are managed by administrators and listed by anyone
//! signed in; a project's are managed by its admins and maintainers.
//! Developers and up put either kind on the project's artifacts. A label
//! of a project the caller may not see reads as missing.

use std::collections::HashMap;

use berth_policy::{Action, Resource};
use berth_storage::labels::{
    Label as Stored, LabelQuery, LabelRefused, LabelScope, LabelSpec, Labeling,
};
use berth_storage::oci::{Digest, RepoName};
use berth_storage::projects::ProjectRow;
use pingora::http::Method;
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::page::{Page, Q};
use super::repositories::{artifact_in, target};
use super::request::{path_id, read_json, time, ApiRequest, ProjectRef};
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
        add_to_artifact,
        remove_from_artifact
    ),
    components(schemas(Label, LabelReq))
)]
pub struct Doc;

/// Harbor's `Label`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Label {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// `#` and 3 or 6 hex digits, or empty.
    pub color: String,
    /// `g` (global) or `p` (a project's).
    pub scope: String,
    /// 0 for a global label.
    pub project_id: i64,
    pub creation_time: String,
    pub update_time: String,
}

/// A label as a request sends it (Harbor's `Label`; `id` and the times
/// are ignored).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct LabelReq {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub project_id: Option<i64>,
}

pub fn label_json(l: &Stored) -> Label {
    Label {
        id: l.id,
        name: l.name.clone(),
        description: l.description.clone(),
        color: l.color.clone(),
        scope: l.scope.letter().to_owned(),
        project_id: match l.scope {
            LabelScope::Global => 0,
            LabelScope::Project(id) => id,
        },
        creation_time: time(l.created_at),
        update_time: time(l.updated_at),
    }
}

pub async fn route(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    rest: &[&str],
) -> Result<Reply, GatewayError> {
    let m = session.req_header().method.clone();
    match rest {
        [] if m == Method::GET => list(app, req).await,
        [] if m == Method::POST => create(app, session, req).await,
        [id] if m == Method::GET => get(app, req, id).await,
        [id] if m == Method::PUT => update(app, session, req, id).await,
        [id] if m == Method::DELETE => delete(app, req, id).await,
        [] | [_] => Err(GatewayError::MethodNotAllowed {
            method: m.to_string(),
        }),
        _ => Err(GatewayError::NotFound(
            session.req_header().uri.path().to_owned(),
        )),
    }
}

/// The scope a request names: `g`, or `p` with a project id.
fn scope_of(scope: Option<&str>, project_id: Option<i64>) -> Result<LabelScope, GatewayError> {
    match (scope, project_id) {
        (Some("g"), _) => Ok(LabelScope::Global),
        (Some("p"), Some(id)) if id > 0 => Ok(LabelScope::Project(id)),
        (Some("p"), _) => Err(GatewayError::BadRequest(
            "a project label needs `project_id`, the id of its project".into(),
        )),
        (other, _) => Err(GatewayError::BadRequest(format!(
            "`scope` must be `g` (global) or `p` (a project's), not `{}`",
            other.unwrap_or("")
        ))),
    }
}

/// Checks `action` on a label's scope: the system for a global label,
/// its project for a project's (`global` is the system action to use).
/// A project the caller may not see reads as a missing label.
async fn require(
    app: &App,
    req: &ApiRequest,
    scope: LabelScope,
    global: Action,
    project: Action,
    missing: impl FnOnce() -> String,
) -> Result<(), GatewayError> {
    match scope {
        LabelScope::Global => req.require(global, Resource::System),
        LabelScope::Project(id) => match req.project(app, ProjectRef::Id(id), project).await {
            Err(GatewayError::ApiNotFound(_)) => Err(GatewayError::ApiNotFound(missing())),
            other => other.map(|_| ()),
        },
    }
}

/// A stored label the caller may see (`action` decides, on its scope).
async fn visible(
    app: &App,
    req: &ApiRequest,
    id: &str,
    global: Action,
    project: Action,
) -> Result<Stored, GatewayError> {
    // Anonymous callers learn nothing, not even which ids exist.
    if req.identity.is_none() {
        return Err(GatewayError::Unauthenticated { scope: None });
    }
    let id = path_id(id, "label_id")?;
    let missing = move || format!("label {id} not found");
    let label = app
        .registry
        .meta()
        .label(id)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(missing()))?;
    require(app, req, label.scope, global, project, missing).await?;
    Ok(label)
}

#[utoipa::path(get, path = "/api/v2.0/labels", tag = "label",
    params(("scope" = String, Query, description = "g (global) or p (a project's)"),
        ("project_id" = Option<i64>, Query, description = "The project, with scope=p"),
        ("name" = Option<String>, Query, description = "Names containing this"),
        ("q" = Option<String>, Query, description = "Harbor query: name=~<substring> or name=<substring>"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, description = "The scope's labels, by name", body = [Label],
        headers(("X-Total-Count" = i64, description = "Total matching"), ("Link" = String, description = "prev/next pages"))),
        (status = 400, body = super::Errors), (status = 404, body = super::Errors),
        (status = 401, description = "Not signed in", body = super::Errors),
        (status = 403, description = "The caller's role does not allow this", body = super::Errors)))]
pub async fn list(app: &App, req: &ApiRequest) -> Result<Reply, GatewayError> {
    let page = Page::parse(&req.query)?;
    let project_id = match req.query.get("project_id") {
        None | Some("") => None,
        Some(v) => Some(path_id(v, "project_id")?),
    };
    let scope = scope_of(req.query.get("scope"), project_id)?;
    require(
        app,
        req,
        scope,
        Action::ReadGlobalLabels,
        Action::ReadLabels,
        || format!("project {} not found", project_id.unwrap_or(0)),
    )
    .await?;
    let q = Q::parse(&req.query)?;
    q.reject_unknown(&["name"])?;
    let (exact, fuzzy) = q.name_filter("name");
    let name_contains = req
        .query
        .get("name")
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .or(fuzzy)
        .or(exact);
    let query = LabelQuery {
        scope,
        name_contains,
    };
    let (rows, total) = app
        .registry
        .meta()
        .list_labels(&query, page.offset(), page.limit())
        .await?;
    let items: Vec<Label> = rows.iter().map(label_json).collect();
    Ok(page.reply("/api/v2.0/labels", &req.query, &items, total))
}

fn spec(name: Option<&str>, description: &str, color: &str) -> Result<LabelSpec, GatewayError> {
    let name = name.ok_or_else(|| GatewayError::BadRequest("`name` is required".into()))?;
    LabelSpec::new(name, description, color).map_err(GatewayError::BadRequest)
}

fn refused(why: LabelRefused, name: &str, id: Option<i64>) -> GatewayError {
    match why {
        LabelRefused::NameTaken => GatewayError::Conflict(format!(
            "a label named `{name}` already exists in this scope; choose another name"
        )),
        LabelRefused::NotFound => GatewayError::ApiNotFound(match id {
            Some(id) => format!("label {id} not found"),
            None => "the label's project was not found".into(),
        }),
    }
}

#[utoipa::path(post, path = "/api/v2.0/labels", tag = "label", request_body = LabelReq,
    responses((status = 201, description = "Created; Location names the label",
        headers(("Location" = String, description = "/api/v2.0/labels/{id}"))),
        (status = 400, body = super::Errors), (status = 404, body = super::Errors),
        (status = 409, description = "The scope has a label of that name", body = super::Errors),
        (status = 401, description = "Not signed in", body = super::Errors),
        (status = 403, description = "The caller's role does not allow this", body = super::Errors)))]
pub async fn create(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
) -> Result<Reply, GatewayError> {
    let body: LabelReq = read_json(session).await?;
    let scope = scope_of(body.scope.as_deref(), body.project_id)?;
    let project = body.project_id.unwrap_or(0);
    require(
        app,
        req,
        scope,
        Action::ManageGlobalLabels,
        Action::ManageLabels,
        || format!("project {project} not found"),
    )
    .await?;
    let spec = spec(
        body.name.as_deref(),
        body.description.as_deref().unwrap_or(""),
        body.color.as_deref().unwrap_or(""),
    )?;
    let outcome = app.registry.meta().create_label(scope, &spec).await?;
    req.audit(app, "create", "label", spec.name(), None, outcome.is_ok());
    let id = outcome.map_err(|why| refused(why, spec.name(), None))?;
    Ok(Reply::new(201).header("Location", format!("/api/v2.0/labels/{id}")))
}

#[utoipa::path(get, path = "/api/v2.0/labels/{label_id}", tag = "label",
    params(("label_id" = i64, Path, description = "The label's id")),
    responses((status = 200, body = Label), (status = 400, body = super::Errors),
        (status = 404, body = super::Errors),
        (status = 401, description = "Not signed in", body = super::Errors),
        (status = 403, description = "The caller's role does not allow this", body = super::Errors)))]
pub async fn get(app: &App, req: &ApiRequest, id: &str) -> Result<Reply, GatewayError> {
    let label = visible(app, req, id, Action::ReadGlobalLabels, Action::ReadLabels).await?;
    Ok(Reply::json(
        200,
        &serde_json::to_value(label_json(&label)).unwrap_or_default(),
    ))
}

#[utoipa::path(put, path = "/api/v2.0/labels/{label_id}", tag = "label", request_body = LabelReq,
    params(("label_id" = i64, Path, description = "The label's id")),
    responses((status = 200, description = "Changed: the name, description and color sent (absent ones stay); the scope never changes"),
        (status = 400, body = super::Errors), (status = 404, body = super::Errors),
        (status = 409, description = "The scope has another label of that name", body = super::Errors),
        (status = 401, description = "Not signed in", body = super::Errors),
        (status = 403, description = "The caller's role does not allow this", body = super::Errors)))]
pub async fn update(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    id: &str,
) -> Result<Reply, GatewayError> {
    let label = visible(
        app,
        req,
        id,
        Action::ManageGlobalLabels,
        Action::ManageLabels,
    )
    .await?;
    let body: LabelReq = read_json(session).await?;
    let spec = spec(
        Some(body.name.as_deref().unwrap_or(&label.name)),
        body.description.as_deref().unwrap_or(&label.description),
        body.color.as_deref().unwrap_or(&label.color),
    )?;
    let outcome = app.registry.meta().update_label(label.id, &spec).await?;
    req.audit(app, "update", "label", spec.name(), None, outcome.is_ok());
    outcome.map_err(|why| refused(why, spec.name(), Some(label.id)))?;
    Ok(Reply::new(200))
}

#[utoipa::path(delete, path = "/api/v2.0/labels/{label_id}", tag = "label",
    params(("label_id" = i64, Path, description = "The label's id")),
    responses((status = 200, description = "Deleted, and taken off every artifact"),
        (status = 400, body = super::Errors), (status = 404, body = super::Errors),
        (status = 401, description = "Not signed in", body = super::Errors),
        (status = 403, description = "The caller's role does not allow this", body = super::Errors)))]
pub async fn delete(app: &App, req: &ApiRequest, id: &str) -> Result<Reply, GatewayError> {
    let label = visible(
        app,
        req,
        id,
        Action::ManageGlobalLabels,
        Action::ManageLabels,
    )
    .await?;
    let deleted = app.registry.meta().delete_label(label.id).await?;
    req.audit(app, "delete", "label", &label.name, None, deleted);
    if !deleted {
        return Err(GatewayError::ApiNotFound(format!(
            "label {} not found",
            label.id
        )));
    }
    Ok(Reply::new(200))
}

/// The labels of artifacts of one repository, by digest, as the API shows
/// them (one query for the whole page).
pub async fn of_artifacts(
    app: &App,
    repo_id: i64,
    digests: &[&Digest],
) -> Result<HashMap<Digest, Vec<Label>>, GatewayError> {
    let found = app
        .registry
        .meta()
        .artifact_labels(repo_id, digests)
        .await?;
    Ok(found
        .into_iter()
        .map(|(d, labels)| (d, labels.iter().map(label_json).collect()))
        .collect())
}

#[utoipa::path(post, path = "/api/v2.0/projects/{project_name_or_id}/repositories/{repository_name}/artifacts/{reference}/labels", tag = "artifact",
    request_body = LabelReq,
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("repository_name" = String, Path, description = "Name without the project; encode `/` as %2F"),
        ("reference" = String, Path, description = "Digest or tag")),
    responses((status = 200, description = "The artifact carries the label (only `id` of the body is read)"),
        (status = 400, description = "No id, or the label is another project's", body = super::Errors),
        (status = 404, description = "No such artifact or label", body = super::Errors),
        (status = 409, description = "The artifact already carries the label", body = super::Errors),
        (status = 401, description = "Wrong credentials, or none where the project is private", body = super::Errors),
        (status = 403, description = "The caller's role does not allow this", body = super::Errors)))]
pub async fn add_to_artifact(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    project: ProjectRef<'_>,
    repo: &str,
    reference: &str,
) -> Result<Reply, GatewayError> {
    // The project is checked before the body is read.
    let (row, name) = target(app, req, project, repo, Action::LabelArtifacts).await?;
    let body: LabelReq = read_json(session).await?;
    let label_id = body
        .id
        .filter(|id| *id > 0)
        .ok_or_else(|| GatewayError::BadRequest("`id`, the label's id, is required".into()))?;
    attach(app, req, &row, &name, reference, label_id).await?;
    Ok(Reply::new(200))
}

/// Puts label `label_id` on the artifact `reference` of `name` in `row`
/// (the API's and the portal's), the caller already checked for
/// `LabelArtifacts` on the project.
pub(crate) async fn attach(
    app: &App,
    req: &ApiRequest,
    row: &ProjectRow,
    name: &RepoName,
    reference: &str,
    label_id: i64,
) -> Result<(), GatewayError> {
    let (_, digest) = artifact_in(app, name, reference).await?;
    let outcome = app
        .registry
        .meta()
        .add_artifact_label(row.id, name, &digest, label_id)
        .await?;
    req.audit(
        app,
        "create",
        "artifact-label",
        &format!("{name}@{digest}:{label_id}"),
        Some(&row.name),
        outcome == Labeling::Added,
    );
    match outcome {
        Labeling::Added => Ok(()),
        Labeling::AlreadyThere => Err(GatewayError::Conflict(format!(
            "artifact `{name}@{digest}` already has label {label_id}"
        ))),
        Labeling::Full => Err(GatewayError::BadRequest(format!(
            "artifact `{name}@{digest}` carries {} labels, the most it may; take one off first",
            berth_storage::labels::PER_ARTIFACT
        ))),
        Labeling::NoArtifact => Err(GatewayError::ApiNotFound(format!(
            "artifact `{name}@{digest}` not found"
        ))),
        // Another project's label reads as missing: its existence is
        // that project's business.
        Labeling::NoLabel | Labeling::OtherProject => Err(GatewayError::ApiNotFound(format!(
            "label {label_id} not found among the global labels and project `{}`'s labels",
            row.name
        ))),
    }
}

#[utoipa::path(delete, path = "/api/v2.0/projects/{project_name_or_id}/repositories/{repository_name}/artifacts/{reference}/labels/{label_id}", tag = "artifact",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("repository_name" = String, Path, description = "Name without the project; encode `/` as %2F"),
        ("reference" = String, Path, description = "Digest or tag"),
        ("label_id" = i64, Path, description = "The label's id")),
    responses((status = 200, description = "The label is off the artifact"),
        (status = 400, body = super::Errors),
        (status = 404, description = "No such artifact, or it does not carry the label", body = super::Errors),
        (status = 401, description = "Wrong credentials, or none where the project is private", body = super::Errors),
        (status = 403, description = "The caller's role does not allow this", body = super::Errors)))]
pub async fn remove_from_artifact(
    app: &App,
    req: &ApiRequest,
    project: ProjectRef<'_>,
    repo: &str,
    reference: &str,
    label_id: &str,
) -> Result<Reply, GatewayError> {
    let (row, name) = target(app, req, project, repo, Action::LabelArtifacts).await?;
    let label_id = path_id(label_id, "label_id")?;
    let (r, digest) = artifact_in(app, &name, reference).await?;
    let removed = app
        .registry
        .meta()
        .remove_artifact_label(r.id, &digest, label_id)
        .await?;
    req.audit(
        app,
        "delete",
        "artifact-label",
        &format!("{name}@{digest}:{label_id}"),
        Some(&row.name),
        removed,
    );
    if !removed {
        return Err(GatewayError::ApiNotFound(format!(
            "artifact `{name}@{digest}` does not have label {label_id}"
        )));
    }
    Ok(Reply::new(200))
}
