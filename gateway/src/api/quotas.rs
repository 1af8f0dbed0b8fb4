//! Storage quotas (Harbor's `quota` API): `/quotas` GET,
//! `/quotas/{id}` GET and PUT. Members of a project read its quota;
//! system administrators list them all and change them. Usage is defined
//! in `berth_storage::quota`.

use berth_policy::{authorize, Action, Decision, Resource};
use berth_storage::quota::QuotaRow;
use pingora::http::Method;
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::page::Page;
use super::request::{decision_to_result, path_id, read_json, time, ApiRequest};
use crate::app::App;
use crate::auth::{project_facts, ProjectFacts};
use crate::error::GatewayError;
use crate::http::Reply;

#[derive(OpenApi)]
#[openapi(
    paths(list, get, update),
    components(schemas(Quota, QuotaRef, ResourceList, QuotaUpdateReq, SummaryQuota))
)]
pub struct Doc;

/// Harbor's `Quota`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Quota {
    pub id: i64,
    /// The project the quota belongs to.
    #[serde(rename = "ref")]
    pub reference: QuotaRef,
    /// The limit; `storage` -1 is unlimited.
    pub hard: ResourceList,
    /// Current usage: the distinct blobs and manifests the project's
    /// repositories hold, each counted once.
    pub used: ResourceList,
    pub creation_time: String,
    pub update_time: String,
}

/// Harbor's `QuotaRefObject` for a project.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QuotaRef {
    pub id: i64,
    pub name: String,
    pub owner_name: Option<String>,
}

/// Harbor's `ResourceList`: bytes of storage.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResourceList {
    pub storage: i64,
}

/// Harbor's `QuotaUpdateReq`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct QuotaUpdateReq {
    pub hard: Option<ResourceList>,
}

/// Harbor's `ProjectSummaryQuota`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SummaryQuota {
    pub hard: ResourceList,
    pub used: ResourceList,
}

/// The quota part of a project's summary, if the caller may read it.
pub(super) async fn summary_quota(
    app: &App,
    req: &ApiRequest,
    facts: &ProjectFacts,
    project_id: i64,
) -> Result<Option<SummaryQuota>, GatewayError> {
    if authorize(
        &req.subject(),
        Action::ReadQuota,
        Resource::Project(facts.view()),
    ) != Decision::Allow
    {
        return Ok(None);
    }
    let quotas = app.registry.meta().list_quotas(Some(&[project_id])).await?;
    Ok(quotas.first().map(|q| {
        let json = quota_json(q);
        SummaryQuota {
            hard: json.hard,
            used: json.used,
        }
    }))
}

fn quota_json(q: &QuotaRow) -> Quota {
    Quota {
        id: q.id,
        reference: QuotaRef {
            id: q.project_id,
            name: q.project_name.clone(),
            owner_name: q.owner_name.clone(),
        },
        hard: ResourceList {
            storage: q.hard.map_or(-1, |h| i64::try_from(h).unwrap_or(i64::MAX)),
        },
        used: ResourceList {
            storage: i64::try_from(q.used).unwrap_or(i64::MAX),
        },
        creation_time: time(q.created_at),
        update_time: time(q.updated_at),
    }
}

/// Parses a storage limit as Harbor sends it: bytes, or -1 for unlimited.
pub fn storage_limit(value: i64, field: &str) -> Result<Option<u64>, GatewayError> {
    match value {
        -1 => Ok(None),
        n => u64::try_from(n).map(Some).map_err(|_| {
            GatewayError::BadRequest(format!(
                "`{field}` must be a number of bytes, or -1 for unlimited; found {n}"
            ))
        }),
    }
}

pub async fn route(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    rest: &[&str],
) -> Result<Reply, GatewayError> {
    let method = session.req_header().method.clone();
    match rest {
        [] if method == Method::GET => list(app, req).await,
        [id] if method == Method::GET => get(app, req, id).await,
        [id] if method == Method::PUT => update(app, session, req, id).await,
        [] | [_] => Err(GatewayError::MethodNotAllowed {
            method: method.to_string(),
        }),
        _ => Err(GatewayError::NotFound(
            session.req_header().uri.path().to_owned(),
        )),
    }
}

/// Checks `action` on a project found by a stored id (a quota's or a
/// policy's), not by what the caller typed: a project named `42` is not
/// project 42. One the caller may not see is `not_found`.
pub(super) async fn require_on(
    app: &App,
    req: &ApiRequest,
    project: &str,
    action: Action,
    not_found: impl FnOnce() -> GatewayError,
) -> Result<(), GatewayError> {
    let facts = project_facts(app, req.identity.as_ref(), project).await?;
    match authorize(&req.subject(), action, Resource::Project(facts.view())) {
        Decision::Hidden(_) => Err(not_found()),
        d => decision_to_result(d),
    }
}

/// Whether the caller may read this project's quota.
async fn may_read(app: &App, req: &ApiRequest, project: &str) -> Result<bool, GatewayError> {
    let facts = project_facts(app, req.identity.as_ref(), project).await?;
    Ok(authorize(
        &req.subject(),
        Action::ReadQuota,
        Resource::Project(facts.view()),
    ) == Decision::Allow)
}

#[utoipa::path(get, path = "/api/v2.0/quotas", tag = "quota",
    params(
        ("reference" = Option<String>, Query, description = "`project` (the only kind of quota)"),
        ("reference_id" = Option<String>, Query, description = "The project's id"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100"),
    ),
    responses((status = 200, description = "Quotas of the projects the caller may read, by project name", body = [Quota],
        headers(("X-Total-Count" = i64, description = "Total matching"), ("Link" = String, description = "prev/next pages"))),
        (status = 400, body = super::Errors)))]
pub async fn list(app: &App, req: &ApiRequest) -> Result<Reply, GatewayError> {
    if req.identity.is_none() {
        return Err(GatewayError::Unauthenticated { scope: None });
    }
    let page = Page::parse(&req.query)?;
    if let Some(kind) = req.query.get("reference").filter(|r| *r != "project") {
        return Err(GatewayError::BadRequest(format!(
            "`reference` must be `project`, not `{kind}`: berth keeps quotas per project"
        )));
    }
    let ids = match req.query.get("reference_id") {
        Some(id) => Some(vec![path_id(id, "reference_id")?]),
        None => None,
    };
    let rows = app.registry.meta().list_quotas(ids.as_deref()).await?;
    let mut visible = Vec::with_capacity(rows.len());
    for row in rows {
        if req.is_admin() || may_read(app, req, &row.project_name).await? {
            visible.push(row);
        }
    }
    let total = visible.len() as i64;
    let items: Vec<Quota> = visible
        .iter()
        .skip(page.offset() as usize)
        .take(page.limit() as usize)
        .map(quota_json)
        .collect();
    Ok(page.reply("/api/v2.0/quotas", &req.query, &items, total))
}

/// The quota `id`, if the caller may read it (otherwise a 404, as for a
/// project it may not see).
async fn readable(
    app: &App,
    req: &ApiRequest,
    id: &str,
    action: Action,
) -> Result<QuotaRow, GatewayError> {
    let id = path_id(id, "id")?;
    let not_found = || GatewayError::ApiNotFound(format!("quota {id} not found"));
    let row = app.registry.meta().quota(id).await?.ok_or_else(not_found)?;
    require_on(app, req, &row.project_name, action, not_found).await?;
    Ok(row)
}

#[utoipa::path(get, path = "/api/v2.0/quotas/{id}", tag = "quota",
    params(("id" = i64, Path, description = "Quota id")),
    responses((status = 200, body = Quota), (status = 400, body = super::Errors),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors)))]
pub async fn get(app: &App, req: &ApiRequest, id: &str) -> Result<Reply, GatewayError> {
    let row = readable(app, req, id, Action::ReadQuota).await?;
    Ok(Reply::json(
        200,
        &serde_json::to_value(quota_json(&row)).unwrap_or_default(),
    ))
}

#[utoipa::path(put, path = "/api/v2.0/quotas/{id}", tag = "quota",
    params(("id" = i64, Path, description = "Quota id")),
    request_body = QuotaUpdateReq,
    responses((status = 200, description = "Updated; a limit below the usage only stops growth"),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn update(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    id: &str,
) -> Result<Reply, GatewayError> {
    // Refused before the body is read (`set_limit` then finds the quota).
    req.require(Action::ManageQuotas, Resource::System)?;
    let id = path_id(id, "id")?;
    let body: QuotaUpdateReq = read_json(session).await?;
    let hard = body.hard.ok_or_else(|| {
        GatewayError::BadRequest(
            "`hard` is required: {\"hard\": {\"storage\": <bytes or -1>}}".into(),
        )
    })?;
    let limit = storage_limit(hard.storage, "hard.storage")?;
    set_limit(app, req, id, limit).await?;
    Ok(Reply::new(200))
}

/// Sets a project's storage limit (`None`: unlimited), for the API's PUT
/// and the portal's quota form.
pub(crate) async fn set_limit(
    app: &App,
    req: &ApiRequest,
    id: i64,
    limit: Option<u64>,
) -> Result<(), GatewayError> {
    let row = readable(app, req, &id.to_string(), Action::ReadQuota).await?;
    req.require(Action::ManageQuotas, Resource::System)?;
    let updated = app.registry.meta().set_quota(row.id, limit).await?;
    req.audit(
        app,
        "update",
        "quota",
        &row.project_name,
        Some(&row.project_name),
        updated,
    );
    if !updated {
        return Err(GatewayError::ApiNotFound(format!(
            "quota {} not found",
            row.id
        )));
    }
    Ok(())
}
