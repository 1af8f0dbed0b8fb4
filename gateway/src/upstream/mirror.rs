//! Mirror mode: berth as a Docker daemon's `registry-mirrors` entry or a
//! containerd `hosts.toml` mirror. Those clients ask for the upstream's own
//! names (`/v2/library/alpine/...`), with no project in front. When
//! `[proxy] mirror` names a registry endpoint, a pull of a name whose first
//! segment is not a project is served from a proxy-cache project of that
//! endpoint (`[proxy] mirror_project`, created on first use, public).
//!
//! berth's own `library` project shadows Docker Hub's `library/` images;
//! a pull of `library/<x>` goes to the mirror when `library` holds no
//! repository `<x>`. containerd names the registry it mirrors in `ns=`;
//! a request for another registry is not mirrored.

use berth_storage::oci::RepoName;
use berth_storage::upstreams::{ProjectUpstream, ProxyMode};
use berth_storage::ProjectInfo;
use pingora::http::Method;

use super::client::{is_docker_hub, registry_base};
use crate::app::App;
use crate::error::GatewayError;
use crate::route::{Query, Route};

#[derive(Debug, Clone)]
pub struct Mirror {
    /// The registry endpoint's name.
    pub registry: String,
    /// The project holding the mirrored content.
    pub project: String,
}

/// The mirror's repository for a request, when the mirror answers it.
pub async fn resolve(
    app: &App,
    route: &Route,
    method: &Method,
    query: &Query,
) -> Result<Option<RepoName>, GatewayError> {
    let Some(mirror) = &app.upstreams.mirror else {
        return Ok(None);
    };
    let Some(repo) = route.repo() else {
        return Ok(None);
    };
    let read = matches!(*method, Method::GET | Method::HEAD);
    if !read
        || !matches!(
            route,
            Route::Manifest(..) | Route::Blob(..) | Route::Tags(_)
        )
    {
        return Ok(None);
    }
    if repo.project() == mirror.project {
        return Ok(None);
    }
    if !mirrored(app, repo).await? {
        return Ok(None);
    }
    let project = ensure_project(app, mirror).await?;
    if let Some(ns) = query.get("ns") {
        let ep = match project.upstream {
            Some(u) => app.upstreams.endpoint(&app.registry, u.registry_id).await?,
            None => return Ok(None),
        };
        if !ns_matches(ns, &ep) {
            return Ok(None);
        }
    }
    Ok(Some(repo.under(&mirror.project)?))
}

/// Whether `repo` is not local content: its project does not exist, or it
/// is an unknown repository of `library`.
async fn mirrored(app: &App, repo: &RepoName) -> Result<bool, GatewayError> {
    match app.registry.project_info(repo.project()).await? {
        None => Ok(true),
        Some(info) if repo.project() == "library" && info.upstream.is_none() => app
            .upstreams
            .is_local_repo(&app.registry, repo)
            .await
            .map(|local| !local),
        Some(_) => Ok(false),
    }
}

/// The project whose policy decides about names that are not projects:
/// the mirror's, when mirror mode is on.
pub async fn stand_in(app: &App, project: &str) -> Result<Option<ProjectInfo>, GatewayError> {
    match &app.upstreams.mirror {
        Some(mirror) if project != mirror.project => match ensure_project(app, mirror).await {
            Ok(info) => Ok(Some(info)),
            // Without a working mirror the name is simply unknown.
            Err(e) => {
                tracing::warn!(error = %e, "mirror mode is configured but unusable");
                Ok(None)
            }
        },
        _ => Ok(None),
    }
}

/// The mirror's project, created (public, caching the endpoint) when
/// missing.
async fn ensure_project(app: &App, mirror: &Mirror) -> Result<ProjectInfo, GatewayError> {
    if let Some(info) = app.registry.project_info(&mirror.project).await? {
        if info.upstream.is_some() {
            return Ok(info);
        }
    }
    // Made on first use; in read-only mode it waits (nothing could be
    // cached in it anyway).
    app.runtime.refuse_writes()?;
    let meta = app.registry.meta();
    let ep = meta
        .endpoint_by_name(&mirror.registry)
        .await?
        .ok_or_else(|| GatewayError::UpstreamUnreachable {
            registry: mirror.registry.clone(),
            detail: "[proxy] mirror names a registry endpoint that does not exist; create it with POST /api/v2.0/registries".into(),
            what: "this name".into(),
        })?;
    meta.ensure_project(&mirror.project, true).await?;
    let project = meta.project(&mirror.project).await?.ok_or_else(|| {
        GatewayError::BadRequest(format!("the mirror project `{}` vanished", mirror.project))
    })?;
    if project.upstream.is_none() {
        meta.set_project_upstream(
            project.id,
            Some(ProjectUpstream {
                registry_id: ep.id,
                mode: ProxyMode::Cache,
            }),
        )
        .await?;
        tracing::info!(project = %mirror.project, registry = %ep.name, "created the mirror's proxy-cache project");
    }
    app.registry.forget_project(&mirror.project).await;
    app.registry
        .project_info(&mirror.project)
        .await?
        .ok_or_else(|| GatewayError::BadRequest("the mirror project vanished".into()))
}

/// containerd's `ns`: `docker.io` for Docker Hub, else the host[:port]
/// of the registry mirrored.
fn ns_matches(ns: &str, ep: &berth_storage::upstreams::Endpoint) -> bool {
    if is_docker_hub(ep) {
        return matches!(ns, "docker.io" | "registry-1.docker.io" | "index.docker.io");
    }
    let base = registry_base(ep);
    let host = base
        .split_once("://")
        .map_or(base, |(_, rest)| rest)
        .trim_end_matches('/');
    host.eq_ignore_ascii_case(ns)
}
