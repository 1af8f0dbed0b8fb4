//! Registry endpoints, Harbor's `/api/v2.0/registries`: the upstreams that
//! proxy-cache and passthrough projects use, with the credential berth logs
//! in with there. System administrators only; the secret is never shown.

use berth_policy::{Action, Resource};
use berth_storage::upstreams::{Credential, Endpoint, EndpointSpec};
use pingora::http::Method;
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::request::{bounded, path_id, read_json, time, ApiRequest};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;

#[derive(OpenApi)]
#[openapi(paths(list, create, get, update, delete, ping, info))]
pub struct Doc;

/// Adapter types berth speaks to: all of them are the OCI distribution
/// API; `docker-hub` adds Docker Hub's host and `library/` names.
pub const TYPES: &[&str] = &[
    "docker-registry",
    "docker-hub",
    "harbor",
    "berth",
    "quay",
    "github-ghcr",
    "gitlab",
    "jfrog-artifactory",
    "aws-ecr",
    "azure-acr",
    "google-gcr",
];

/// Harbor's `Registry`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Registry {
    pub id: i64,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    pub description: String,
    pub insecure: bool,
    pub credential: RegistryCredential,
    /// `healthy` or `unhealthy` after a ping; `unknown` in listings.
    pub status: String,
    pub creation_time: String,
    pub update_time: String,
}

/// Harbor's `RegistryCredential`. `access_secret` is written, never read
/// back: responses carry `*****` when one is set.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct RegistryCredential {
    /// `basic` (the only type berth uses), or empty for anonymous access.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub access_key: String,
    #[serde(default)]
    pub access_secret: String,
}

/// Harbor's `Registry` as sent to create or update.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegistryReq {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub insecure: Option<bool>,
    #[serde(default)]
    pub credential: Option<RegistryCredential>,
    /// Ping: an existing endpoint's id (fields given override its own).
    #[serde(default)]
    pub id: Option<i64>,
}

/// Harbor's `Registry` for a stored endpoint; the secret shows as `*****`.
pub fn registry_json(ep: &Endpoint, status: &str) -> Registry {
    Registry {
        id: ep.id,
        name: ep.name.clone(),
        kind: ep.kind.clone(),
        url: ep.url.clone(),
        description: ep.description.clone(),
        insecure: ep.insecure,
        credential: match &ep.credential {
            Some(c) => RegistryCredential {
                kind: "basic".into(),
                access_key: c.access_key.clone(),
                access_secret: "*****".into(),
            },
            None => RegistryCredential::default(),
        },
        status: status.to_owned(),
        creation_time: time(ep.created_at),
        update_time: time(ep.updated_at),
    }
}

pub async fn route(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    rest: &[&str],
) -> Result<Reply, GatewayError> {
    req.require(Action::ManageRegistries, Resource::System)?;
    let m = session.req_header().method.clone();
    match rest {
        [] if m == Method::GET => list(app).await,
        [] if m == Method::POST => create(app, session, req).await,
        ["ping"] if m == Method::POST => ping(app, session, req).await,
        [id] if m == Method::GET => get(app, id).await,
        [id, "info"] if m == Method::GET => info(app, id).await,
        [id] if m == Method::PUT => update(app, session, req, id).await,
        [id] if m == Method::DELETE => delete(app, req, id).await,
        [] | ["ping"] | [_] | [_, "info"] => Err(GatewayError::MethodNotAllowed {
            method: m.to_string(),
        }),
        _ => Err(GatewayError::NotFound(
            session.req_header().uri.path().to_owned(),
        )),
    }
}

#[utoipa::path(get, path = "/api/v2.0/registries", tag = "registry",
    responses((status = 200, description = "Registry endpoints", body = [Registry]),
        (status = 403, body = super::Errors)))]
pub async fn list(app: &App) -> Result<Reply, GatewayError> {
    let all = app.registry.meta().endpoints().await?;
    let items: Vec<Registry> = all.iter().map(|e| registry_json(e, "unknown")).collect();
    Ok(
        Reply::json(200, &serde_json::to_value(items).unwrap_or_default())
            .header("X-Total-Count", all.len().to_string()),
    )
}

/// Checks a request into what is stored; `base` holds the current values
/// for an update.
fn spec(req: RegistryReq, base: Option<&Endpoint>) -> Result<EndpointSpec, GatewayError> {
    let name = req
        .name
        .or_else(|| base.map(|b| b.name.clone()))
        .ok_or_else(|| GatewayError::BadRequest("`name` is required".into()))?;
    bounded("name", &name, 255)?;
    if name.trim().is_empty() {
        return Err(GatewayError::BadRequest("`name` must not be empty".into()));
    }
    let kind = req
        .kind
        .or_else(|| base.map(|b| b.kind.clone()))
        .unwrap_or_else(|| "docker-registry".into());
    if !TYPES.contains(&kind.as_str()) {
        return Err(GatewayError::BadRequest(format!(
            "`type` `{kind}` is not supported; use one of {}",
            TYPES.join(", ")
        )));
    }
    let url = req
        .url
        .or_else(|| base.map(|b| b.url.clone()))
        .ok_or_else(|| {
            GatewayError::BadRequest("`url` is required (e.g. https://registry-1.docker.io)".into())
        })?;
    let url = url.trim().trim_end_matches('/').to_owned();
    match reqwest::Url::parse(&url) {
        // A password in the URL would be shown wherever the URL is.
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            return Err(GatewayError::BadRequest(format!(
                "`url` `{}` holds a user name or password; give them as `credential` instead",
                u.host_str().unwrap_or("")
            )))
        }
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        _ => {
            return Err(GatewayError::BadRequest(format!(
                "`url` `{url}` is not an http:// or https:// URL"
            )))
        }
    }
    let credential = match req.credential {
        None => base.and_then(|b| b.credential.clone()),
        Some(c) if c.access_key.is_empty() && c.access_secret.is_empty() => None,
        Some(c) => {
            if !(c.kind.is_empty() || c.kind == "basic") {
                return Err(GatewayError::BadRequest(format!(
                    "`credential.type` `{}` is not supported; use `basic`",
                    c.kind
                )));
            }
            // `*****` is what a GET showed: keep the stored secret.
            let secret = if c.access_secret == "*****" {
                base.and_then(|b| b.credential.as_ref())
                    .map(|b| b.access_secret.clone())
                    .unwrap_or_default()
            } else {
                c.access_secret
            };
            Some(Credential {
                access_key: c.access_key,
                access_secret: secret,
            })
        }
    };
    Ok(EndpointSpec {
        name,
        kind,
        url,
        description: req
            .description
            .or_else(|| base.map(|b| b.description.clone()))
            .unwrap_or_default(),
        insecure: req.insecure.or(base.map(|b| b.insecure)).unwrap_or(false),
        credential,
    })
}

#[utoipa::path(post, path = "/api/v2.0/registries", tag = "registry",
    request_body = RegistryReq,
    responses((status = 201, description = "Created; Location names it",
        headers(("Location" = String, description = "/api/v2.0/registries/{id}"))),
        (status = 400, body = super::Errors), (status = 409, body = super::Errors)))]
pub async fn create(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
) -> Result<Reply, GatewayError> {
    let body: RegistryReq = read_json(session).await?;
    let id = create_endpoint(app, req, body).await?;
    Ok(Reply::new(201).header("Location", format!("/api/v2.0/registries/{id}")))
}

/// Stores a registry endpoint (the API's POST and the portal's form).
pub(crate) async fn create_endpoint(
    app: &App,
    req: &ApiRequest,
    body: RegistryReq,
) -> Result<i64, GatewayError> {
    req.require(Action::ManageRegistries, Resource::System)?;
    let spec = spec(body, None)?;
    let id = app.registry.meta().create_endpoint(&spec).await?;
    req.audit(app, "create", "registry", &spec.name, None, id.is_some());
    id.ok_or_else(|| {
        GatewayError::Conflict(format!(
            "a registry endpoint named `{}` exists; choose another name",
            spec.name
        ))
    })
}

async fn load(app: &App, id: &str) -> Result<Endpoint, GatewayError> {
    let id = path_id(id, "registry id")?;
    app.registry
        .meta()
        .endpoint(id)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("registry endpoint {id} not found")))
}

#[utoipa::path(get, path = "/api/v2.0/registries/{id}", tag = "registry",
    params(("id" = i64, Path, description = "Registry endpoint id")),
    responses((status = 200, body = Registry), (status = 404, body = super::Errors)))]
pub async fn get(app: &App, id: &str) -> Result<Reply, GatewayError> {
    let ep = load(app, id).await?;
    Ok(Reply::json(
        200,
        &serde_json::to_value(registry_json(&ep, "unknown")).unwrap_or_default(),
    ))
}

#[utoipa::path(put, path = "/api/v2.0/registries/{id}", tag = "registry",
    params(("id" = i64, Path, description = "Registry endpoint id")),
    request_body = RegistryReq,
    responses((status = 200, description = "Updated"), (status = 400, body = super::Errors),
        (status = 404, body = super::Errors), (status = 409, body = super::Errors)))]
pub async fn update(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    id: &str,
) -> Result<Reply, GatewayError> {
    let current = load(app, id).await?;
    let body: RegistryReq = read_json(session).await?;
    let spec = spec(body, Some(&current))?;
    let meta = app.registry.meta();
    if let Some(other) = meta.endpoint_by_name(&spec.name).await? {
        if other.id != current.id {
            return Err(GatewayError::Conflict(format!(
                "a registry endpoint named `{}` exists; choose another name",
                spec.name
            )));
        }
    }
    meta.update_endpoint(current.id, &spec).await?;
    app.forget_endpoint(current.id).await;
    req.audit(app, "update", "registry", &spec.name, None, true);
    Ok(Reply::new(200))
}

#[utoipa::path(get, path = "/api/v2.0/registries/{id}/info", tag = "registry",
    params(("id" = i64, Path, description = "Registry endpoint id")),
    responses((status = 200, description = "What replication with it supports",
        body = super::replication::AdapterInfo), (status = 404, body = super::Errors)))]
pub async fn info(app: &App, id: &str) -> Result<Reply, GatewayError> {
    let ep = load(app, id).await?;
    let info = super::replication::adapter_info(&ep.kind);
    Ok(Reply::json(
        200,
        &serde_json::to_value(info).unwrap_or_default(),
    ))
}

#[utoipa::path(delete, path = "/api/v2.0/registries/{id}", tag = "registry",
    params(("id" = i64, Path, description = "Registry endpoint id")),
    responses((status = 200, description = "Deleted"), (status = 404, body = super::Errors),
        (status = 412, description = "Projects still use it", body = super::Errors)))]
pub async fn delete(app: &App, req: &ApiRequest, id: &str) -> Result<Reply, GatewayError> {
    req.require(Action::ManageRegistries, Resource::System)?;
    let current = load(app, id).await?;
    match app.registry.meta().delete_endpoint(current.id).await? {
        Ok(_) => {
            app.forget_endpoint(current.id).await;
            req.audit(app, "delete", "registry", &current.name, None, true);
            Ok(Reply::new(200))
        }
        Err(users) => Err(GatewayError::Precondition(format!(
            "registry endpoint `{}` is used by {}; delete those first",
            current.name,
            users.join(", ")
        ))),
    }
}

#[utoipa::path(post, path = "/api/v2.0/registries/ping", tag = "registry",
    request_body = RegistryReq,
    responses((status = 200, description = "The registry answered the API version check with these settings"),
        (status = 400, description = "It did not; the message says why", body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn ping(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
) -> Result<Reply, GatewayError> {
    let body: RegistryReq = read_json(session).await?;
    ping_endpoint(app, req, body).await?;
    Ok(Reply::new(200))
}

/// Checks that a registry answers with these settings (the API's ping
/// and the portal's "test connection"); the error says why not.
pub(crate) async fn ping_endpoint(
    app: &App,
    req: &ApiRequest,
    body: RegistryReq,
) -> Result<(), GatewayError> {
    req.require(Action::ManageRegistries, Resource::System)?;
    let base = match body.id {
        Some(id) => Some(load(app, &id.to_string()).await?),
        None => None,
    };
    // A secret typed in this request (`*****` is the stored one shown).
    let typed_secret = body
        .credential
        .as_ref()
        .is_some_and(|c| !c.access_secret.is_empty() && c.access_secret != "*****");
    let name = body
        .name
        .clone()
        .or_else(|| base.as_ref().map(|b| b.name.clone()))
        .unwrap_or_else(|| "ping".into());
    let spec = spec(
        RegistryReq {
            name: Some(name),
            ..body
        },
        base.as_ref(),
    )?;
    // A stored endpoint's secret goes to its own URL only: testing it
    // elsewhere takes the secret typed again.
    let moved = base.as_ref().is_some_and(|b| b.url != spec.url);
    if moved && spec.credential.is_some() && !typed_secret {
        return Err(GatewayError::BadRequest(format!(
            "to test registry endpoint `{}` at another URL, enter its access secret again \
             (the stored one is sent to its own URL only)",
            spec.name
        )));
    }
    let probe = Endpoint {
        // A stored, unmoved endpoint shares its tokens; any other probe
        // has an id no endpoint has, which the token cache skips (a
        // token one test got must not reach another test's URL).
        id: match &base {
            Some(b) if !moved => b.id,
            _ => -1,
        },
        name: spec.name,
        kind: spec.kind,
        url: spec.url,
        description: spec.description,
        insecure: spec.insecure,
        credential: spec.credential,
        created_at: 0,
        updated_at: 0,
    };
    match app.upstreams.client.ping(&probe).await {
        Ok(()) => Ok(()),
        Err(e) => Err(GatewayError::BadRequest(format!(
            "the registry did not answer as expected: {e}"
        ))),
    }
}
