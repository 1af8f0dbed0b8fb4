//! `/projects/{p}/metadatas` (Harbor's `projectMetadata` API): a project's
//! settings as a map of strings. `public` changes here (as through the
//! project's PUT); `retention_id` and `proxy_mode` are shown and set
//! elsewhere; Harbor's scanning and signing switches are accepted only
//! as "false", since berth neither scans nor signs.

use std::collections::BTreeMap;

use berth_policy::Action;
use pingora::http::Method;
use pingora::proxy::Session;
use utoipa::OpenApi;

use super::projects::{project_json, update_project, ProjectReq};
use super::request::{read_json, ApiRequest, ProjectRef};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;

#[derive(OpenApi)]
#[openapi(paths(list, get, add, update, delete))]
pub struct Doc;

/// Harbor's switches for features berth does not have.
const WITHOUT_EFFECT: &[&str] = &[
    "enable_content_trust",
    "enable_content_trust_cosign",
    "prevent_vul",
    "auto_scan",
    "auto_sbom_generation",
    "reuse_sys_cve_allowlist",
];

pub async fn route(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    project: &str,
    rest: &[&str],
) -> Result<Reply, GatewayError> {
    let m = session.req_header().method.clone();
    match rest {
        [] if m == Method::GET => list(app, session, req, project).await,
        [] if m == Method::POST => add(app, session, req, project).await,
        [name] if m == Method::GET => get(app, session, req, project, name).await,
        [name] if m == Method::PUT => update(app, session, req, project, name).await,
        [name] if m == Method::DELETE => delete(app, session, req, project, name).await,
        [] | [_] => Err(GatewayError::MethodNotAllowed {
            method: m.to_string(),
        }),
        _ => Err(GatewayError::NotFound(
            session.req_header().uri.path().to_owned(),
        )),
    }
}

async fn metadata(
    app: &App,
    session: &Session,
    req: &ApiRequest,
    project: &str,
) -> Result<BTreeMap<String, String>, GatewayError> {
    let which = ProjectRef::name_or_id(session, project);
    let (row, facts) = req.project(app, which, Action::ReadProject).await?;
    let shown = project_json(&row, facts.role).metadata;
    let retention = app.registry.meta().project_retention_id(row.id).await?;
    let mut map = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            map.insert(k.to_owned(), v);
        }
    };
    put("public", shown.public);
    put("proxy_mode", shown.proxy_mode);
    put("retention_id", retention.map(|id| id.to_string()));
    Ok(map)
}

fn json(map: &BTreeMap<String, String>) -> Reply {
    Reply::json(200, &serde_json::to_value(map).unwrap_or_default())
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/metadatas", tag = "projectMetadata",
    params(("project_name_or_id" = String, Path, description = "Project name or id")),
    responses((status = 200, body = BTreeMap<String, String>), (status = 404, body = super::Errors)))]
pub async fn list(
    app: &App,
    session: &Session,
    req: &ApiRequest,
    project: &str,
) -> Result<Reply, GatewayError> {
    Ok(json(&metadata(app, session, req, project).await?))
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/metadatas/{meta_name}", tag = "projectMetadata",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("meta_name" = String, Path, description = "The setting")),
    responses((status = 200, body = BTreeMap<String, String>), (status = 404, body = super::Errors)))]
pub async fn get(
    app: &App,
    session: &Session,
    req: &ApiRequest,
    project: &str,
    name: &str,
) -> Result<Reply, GatewayError> {
    let all = metadata(app, session, req, project).await?;
    let value = all.get(name).ok_or_else(|| {
        GatewayError::ApiNotFound(format!("project `{project}` has no metadata `{name}`"))
    })?;
    Ok(json(&BTreeMap::from([(name.to_owned(), value.clone())])))
}

/// Applies a map of settings: `public` is set; the rest is refused unless
/// it changes nothing.
async fn apply(
    app: &App,
    session: &Session,
    req: &ApiRequest,
    project: &str,
    body: &BTreeMap<String, String>,
) -> Result<(), GatewayError> {
    if body.is_empty() {
        return Err(GatewayError::BadRequest(
            "the body names no setting; send {\"public\": \"true\"} or similar".into(),
        ));
    }
    let current = metadata(app, session, req, project).await?;
    for (key, value) in body {
        match key.as_str() {
            "public" => {}
            k if WITHOUT_EFFECT.contains(&k) && value == "false" => {}
            k if WITHOUT_EFFECT.contains(&k) => {
                return Err(GatewayError::BadRequest(format!(
                    "`{k}` needs image scanning or signing, which berth does not do; only \"false\" is accepted"
                )))
            }
            k @ ("retention_id" | "proxy_mode") if current.get(k) == Some(value) => {}
            "retention_id" => {
                return Err(GatewayError::BadRequest(
                    "`retention_id` follows the project's retention policy (/api/v2.0/retentions)".into(),
                ))
            }
            "proxy_mode" => {
                return Err(GatewayError::BadRequest(
                    "`proxy_mode` is set when a proxy-cache project is created".into(),
                ))
            }
            other => {
                return Err(GatewayError::BadRequest(format!(
                    "`{other}` is not a project setting; berth knows public, retention_id and proxy_mode"
                )))
            }
        }
    }
    if let Some(public) = body.get("public") {
        let req_body: ProjectReq =
            serde_json::from_value(serde_json::json!({ "metadata": { "public": public } }))
                .map_err(|e| GatewayError::BadRequest(format!("invalid metadata: {e}")))?;
        update_project(
            app,
            req,
            ProjectRef::name_or_id(session, project),
            &req_body,
        )
        .await?;
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/v2.0/projects/{project_name_or_id}/metadatas", tag = "projectMetadata",
    params(("project_name_or_id" = String, Path, description = "Project name or id")),
    request_body = BTreeMap<String, String>,
    responses((status = 200, description = "Set"), (status = 400, body = super::Errors),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors)))]
pub async fn add(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    project: &str,
) -> Result<Reply, GatewayError> {
    req.project(
        app,
        ProjectRef::name_or_id(session, project),
        Action::UpdateProject,
    )
    .await?;
    let body: BTreeMap<String, String> = read_json(session).await?;
    apply(app, session, req, project, &body).await?;
    Ok(Reply::new(200))
}

#[utoipa::path(put, path = "/api/v2.0/projects/{project_name_or_id}/metadatas/{meta_name}", tag = "projectMetadata",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("meta_name" = String, Path, description = "The setting")),
    request_body = BTreeMap<String, String>,
    responses((status = 200, description = "Set"), (status = 400, body = super::Errors),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors)))]
pub async fn update(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    project: &str,
    name: &str,
) -> Result<Reply, GatewayError> {
    req.project(
        app,
        ProjectRef::name_or_id(session, project),
        Action::UpdateProject,
    )
    .await?;
    let body: BTreeMap<String, String> = read_json(session).await?;
    if body.len() != 1 || !body.contains_key(name) {
        return Err(GatewayError::BadRequest(format!(
            "the body must set `{name}` alone, such as {{\"{name}\": \"true\"}}"
        )));
    }
    apply(app, session, req, project, &body).await?;
    Ok(Reply::new(200))
}

#[utoipa::path(delete, path = "/api/v2.0/projects/{project_name_or_id}/metadatas/{meta_name}", tag = "projectMetadata",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("meta_name" = String, Path, description = "The setting")),
    responses((status = 400, body = super::Errors, description = "berth's settings cannot be removed"),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors)))]
pub async fn delete(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    project: &str,
    name: &str,
) -> Result<Reply, GatewayError> {
    req.project(
        app,
        ProjectRef::name_or_id(session, project),
        Action::UpdateProject,
    )
    .await?;
    let current = metadata(app, session, req, project).await?;
    if !current.contains_key(name) {
        return Err(GatewayError::ApiNotFound(format!(
            "project `{project}` has no metadata `{name}`"
        )));
    }
    Err(GatewayError::BadRequest(format!(
        "`{name}` cannot be removed; set it instead (public: \"false\" makes the project private)"
    )))
}
