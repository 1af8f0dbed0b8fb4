//! System endpoints (Harbor's `ping`, `health`, `systeminfo`, `search`
//! and `statistic` APIs): `/api/v2.0/ping`, `/api/v2.0/health`,
//! `/api/v2.0/systeminfo`, `/api/v2.0/search`, `/api/v2.0/statistics`.

use std::collections::HashMap;

use berth_auth::AuthError;
use berth_policy::{Action, Resource};
use berth_storage::projects::ProjectFilter;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::page::MAX_PAGE_SIZE;
use super::projects::{project_json, Project};
use super::request::ApiRequest;
use crate::app::App;
use crate::auth::project_facts;
use crate::error::{cause_chain, GatewayError};
use crate::http::Reply;

#[derive(OpenApi)]
#[openapi(
    paths(ping, health, systeminfo, volumes, search, statistics),
    components(schemas(
        OverallHealthStatus,
        ComponentHealthStatus,
        GeneralInfo,
        SystemInfo,
        Storage,
        Search,
        SearchRepository,
        Statistic
    ))
)]
pub struct Doc;

/// Harbor's `OverallHealthStatus`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OverallHealthStatus {
    /// `healthy` when every component is.
    pub status: String,
    pub components: Vec<ComponentHealthStatus>,
}

/// Harbor's `ComponentHealthStatus`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ComponentHealthStatus {
    pub name: String,
    /// `healthy` or `unhealthy`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Harbor's `GeneralInfo`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GeneralInfo {
    pub current_time: String,
    /// Where `docker login` and pulls go: `external_url` without its
    /// scheme; absent when `external_url` is not configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_url: Option<String>,
    /// `db_auth` or `ldap_auth`.
    pub auth_mode: String,
    /// `everyone`: every user may create projects.
    pub project_creation_restriction: String,
    pub self_registration: bool,
    pub has_ca_root: bool,
    /// `berth-<version>`.
    pub harbor_version: String,
    pub read_only: bool,
    pub with_chartmuseum: bool,
    pub notification_enable: bool,
}

/// Harbor's `Search`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Search {
    pub project: Vec<Project>,
    pub repository: Vec<SearchRepository>,
}

/// Harbor's `SearchRepository`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchRepository {
    pub project_id: i64,
    pub project_name: String,
    pub project_public: bool,
    /// The full name (`team/app`).
    pub repository_name: String,
    pub pull_count: i64,
    pub artifact_count: i64,
}

/// Harbor's `SystemInfo`: the blob store's volume.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SystemInfo {
    /// Empty with object storage (its size is the store's business).
    pub storage: Vec<Storage>,
}

/// Bytes of the filesystem that holds the blobs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Storage {
    pub total: u64,
    pub free: u64,
}

fn json_reply<T: Serialize>(value: &T) -> Reply {
    Reply::json(200, &serde_json::to_value(value).unwrap_or_default())
}

#[utoipa::path(get, path = "/api/v2.0/ping", tag = "ping",
    responses((status = 200, description = "`Pong`, as text/plain; answered before credentials are read", body = String)))]
pub fn ping() -> Reply {
    Reply::new(200)
        .header("Content-Type", "text/plain; charset=utf-8")
        .bytes("Pong".into())
}

#[utoipa::path(get, path = "/api/v2.0/health", tag = "health",
    responses((status = 200, description = "Health of each component: database, storage, and ldap when LDAP is configured (200 also when unhealthy, as Harbor); no credentials needed",
        body = OverallHealthStatus),
        (status = 401, description = "Wrong credentials (none are needed)", body = super::Errors)))]
pub async fn health(app: &App) -> Result<Reply, GatewayError> {
    Ok(json_reply(&health_status(app).await))
}

/// Each component's health (the API's `/health` and the portal's system
/// page): the causes stay in the log, the messages say where to look.
pub(crate) async fn health_status(app: &App) -> OverallHealthStatus {
    let low = crate::disk::low(app);
    let storage = match app.registry.probe_storage().await {
        Ok(()) if low.is_empty() => ComponentHealthStatus {
            name: "storage".into(),
            status: "healthy".into(),
            error: None,
        },
        Ok(()) => ComponentHealthStatus {
            name: "storage".into(),
            status: "unhealthy".into(),
            error: Some(format!(
                "low on space ({}); pushes will fail when it runs out: free space (delete what \
                 is not needed and run garbage collection) or grow the volume",
                low.join("; ")
            )),
        },
        Err(e) => {
            tracing::error!(error = %cause_chain(&e), "health check: blob store write failed");
            ComponentHealthStatus {
                name: "storage".into(),
                status: "unhealthy".into(),
                error: Some(if e.is_storage_full() {
                    "the blob store is full: pushes fail and pulls still work; free space (delete \
                     what is not needed and run garbage collection) or grow the volume"
                        .into()
                } else {
                    "the blob store does not take writes; the registry log has the cause".into()
                }),
            }
        }
    };
    let database = match app.registry.meta().ping().await {
        Ok(()) => ComponentHealthStatus {
            name: "database".into(),
            status: "healthy".into(),
            error: None,
        },
        Err(e) => {
            tracing::error!(error = %cause_chain(&e), "health check: database query failed");
            ComponentHealthStatus {
                name: "database".into(),
                status: "unhealthy".into(),
                error: Some("the database did not answer; the registry log has the cause".into()),
            }
        }
    };
    let mut components = vec![database, storage];
    if let Some(directory) = app.login.directory() {
        // Each step of the ping is bounded by `ldap.timeout`.
        components.push(match directory.ping().await {
            Ok(()) => ComponentHealthStatus {
                name: "ldap".into(),
                status: "healthy".into(),
                error: None,
            },
            Err(e) => {
                tracing::warn!(error = %e, "health check: ldap bind failed");
                ComponentHealthStatus {
                    name: "ldap".into(),
                    status: "unhealthy".into(),
                    // The details (URL, cause) stay in the log: this
                    // endpoint needs no credentials.
                    error: Some(
                        match e {
                            AuthError::DirectoryUnavailable(_) => {
                                "the LDAP directory is unreachable or did not answer within \
                                 ldap.timeout; the registry log has the cause"
                            }
                            AuthError::DirectoryMisconfigured(_) => {
                                "the LDAP directory refused the search bind; check \
                                 ldap.search_dn and ldap.search_password (the registry log has \
                                 the cause)"
                            }
                            _ => "the LDAP check failed; the registry log has the cause",
                        }
                        .into(),
                    ),
                }
            }
        });
    }
    let healthy = components.iter().all(|c| c.status == "healthy");
    OverallHealthStatus {
        status: if healthy { "healthy" } else { "unhealthy" }.into(),
        components,
    }
}

#[utoipa::path(get, path = "/api/v2.0/systeminfo", tag = "systeminfo",
    responses((status = 200, body = GeneralInfo),
        (status = 401, description = "Wrong credentials (none are needed)", body = super::Errors)))]
pub async fn systeminfo(app: &App, _req: &ApiRequest) -> Result<Reply, GatewayError> {
    let registry_url = app.external_url.as_deref().map(|u| {
        u.split_once("://")
            .map_or(u, |(_, host)| host)
            .trim_end_matches('/')
            .to_owned()
    });
    let now = std::time::SystemTime::now();
    Ok(json_reply(&GeneralInfo {
        current_time: humantime::format_rfc3339_millis(now).to_string(),
        registry_url,
        external_url: app.external_url.clone(),
        auth_mode: if app.login.uses_directory() {
            "ldap_auth"
        } else {
            "db_auth"
        }
        .into(),
        project_creation_restriction: if app.runtime.admin_only_projects() {
            "adminonly"
        } else {
            "everyone"
        }
        .into(),
        self_registration: false,
        has_ca_root: false,
        harbor_version: format!("berth-{}", env!("CARGO_PKG_VERSION")),
        read_only: app.runtime.read_only(),
        with_chartmuseum: false,
        notification_enable: true,
    }))
}

#[utoipa::path(get, path = "/api/v2.0/systeminfo/volumes", tag = "systeminfo",
    responses((status = 200, body = SystemInfo), (status = 403, body = super::Errors)))]
pub async fn volumes(app: &App, req: &ApiRequest) -> Result<Reply, GatewayError> {
    req.require(Action::ReadConfiguration, Resource::System)?;
    let storage = match &app.file_settings.blob_root {
        None => Vec::new(),
        Some(root) => {
            let space = crate::disk::space(root).map_err(|e| {
                GatewayError::Storage(berth_storage::StorageError::Io {
                    context: format!("reading the size of {}", root.display()),
                    source: e,
                })
            })?;
            vec![Storage {
                total: space.total,
                free: space.free,
            }]
        }
    };
    Ok(json_reply(&SystemInfo { storage }))
}

/// Harbor's `Statistic`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Statistic {
    pub private_project_count: i64,
    pub private_repo_count: i64,
    pub public_project_count: i64,
    pub public_repo_count: i64,
    pub total_project_count: i64,
    pub total_repo_count: i64,
    /// Bytes of every blob stored, each once; 0 for callers other than
    /// system administrators.
    pub total_storage_consumption: i64,
}

#[utoipa::path(get, path = "/api/v2.0/statistics", tag = "statistic",
    responses((status = 200, description = "The projects and repositories the caller may see, counted", body = Statistic),
        (status = 401, body = super::Errors)))]
pub async fn statistics(app: &App, req: &ApiRequest) -> Result<Reply, GatewayError> {
    req.require(Action::ReadStatistics, Resource::System)?;
    let meta = app.registry.meta();
    let counts = meta.project_statistics(&req.visibility()).await?;
    let storage = match req.require(Action::ReadStorageTotal, Resource::System) {
        Ok(()) => meta.stored_bytes().await?,
        Err(_) => 0,
    };
    Ok(json_reply(&Statistic {
        private_project_count: counts.private_projects,
        private_repo_count: counts.private_repos,
        public_project_count: counts.public_projects,
        public_repo_count: counts.public_repos,
        total_project_count: counts.private_projects + counts.public_projects,
        total_repo_count: counts.private_repos + counts.public_repos,
        total_storage_consumption: storage,
    }))
}

/// Repositories examined per query while filtering by visibility.
const SEARCH_BATCH: i64 = 500;

#[utoipa::path(get, path = "/api/v2.0/search", tag = "search",
    params(("q" = String, Query, description = "Part of a project or repository name")),
    responses((status = 200, description = "Projects and repositories the caller can see whose names contain `q`, by name, at most 100 of each",
        body = Search), (status = 400, body = super::Errors),
        (status = 401, description = "Wrong credentials (none are needed)", body = super::Errors)))]
pub async fn search(app: &App, req: &ApiRequest) -> Result<Reply, GatewayError> {
    let needle = req
        .query
        .get("q")
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .ok_or_else(|| GatewayError::BadRequest("`q` (part of a name) is required".into()))?;
    Ok(json_reply(&find(app, req, needle).await?))
}

/// Projects and repositories the caller may see whose names contain
/// `needle` (the API's search and the portal's).
pub(crate) async fn find(
    app: &App,
    req: &ApiRequest,
    needle: &str,
) -> Result<Search, GatewayError> {
    let meta = app.registry.meta();
    let filter = ProjectFilter {
        name_contains: Some(needle.to_owned()),
        ..ProjectFilter::default()
    };
    let (rows, _) = meta
        .list_projects(&req.visibility(), &filter, 0, MAX_PAGE_SIZE)
        .await?;
    let mut projects = Vec::with_capacity(rows.len());
    for row in &rows {
        let role = match &req.identity {
            Some(id) if id.robot.is_none() => app.role_in(row.id, id).await?,
            _ => None,
        };
        projects.push(project_json(row, role));
    }
    // Repositories: each project's visibility is policy's decision on a
    // pull, asked once per project.
    let mut allowed: HashMap<String, bool> = HashMap::new();
    let mut repositories = Vec::new();
    let mut after = String::new();
    'scan: loop {
        let hits = meta
            .search_repositories(needle, &after, SEARCH_BATCH)
            .await?;
        let Some(last) = hits.last() else { break };
        after = last.repository.name.to_string();
        let exhausted = (hits.len() as i64) < SEARCH_BATCH;
        for hit in hits {
            let visible = match allowed.get(&hit.project_name) {
                Some(v) => *v,
                None => {
                    let facts =
                        project_facts(app, req.identity.as_ref(), &hit.project_name).await?;
                    let v = req
                        .require(Action::Pull, Resource::Project(facts.view()))
                        .is_ok();
                    allowed.insert(hit.project_name.clone(), v);
                    v
                }
            };
            if visible {
                repositories.push(SearchRepository {
                    project_id: hit.project_id,
                    project_name: hit.project_name,
                    project_public: hit.project_public,
                    repository_name: hit.repository.name.to_string(),
                    pull_count: hit.repository.pull_count,
                    artifact_count: hit.repository.artifact_count,
                });
                if repositories.len() as i64 >= MAX_PAGE_SIZE {
                    break 'scan;
                }
            }
        }
        if exhausted {
            break;
        }
    }
    Ok(Search {
        project: projects,
        repository: repositories,
    })
}
