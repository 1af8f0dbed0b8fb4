//! Upstream registries: the pull-through cache (proxy-cache projects and
//! the mirror) and fronted (passthrough) projects.
//!
//! - `client`: the pooled HTTP client and the upstream's authentication.
//! - `fetch`: one shared download per missing blob, verified before kept.
//! - `cache`: pulls from a proxy-cache project.
//! - `passthrough`: forwarding a fronted project's requests through
//!   Pingora's proxy phases.
//! - `evict`: keeping the cache within its size limit and TTL.
//! - `mirror`: serving requests for names that are not projects (a Docker
//!   daemon's `registry-mirrors`, containerd's `hosts.toml`).

pub mod cache;
pub mod client;
pub mod evict;
pub mod fetch;
pub mod mirror;
pub mod passthrough;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use berth_storage::oci::RepoName;
use berth_storage::upstreams::Endpoint;
use berth_storage::Registry;

use crate::error::GatewayError;
use client::UpstreamClient;
use fetch::Fetches;

/// How long an endpoint's settings are kept in memory; changes made
/// through this process's API apply at once.
const ENDPOINT_TTL: Duration = Duration::from_secs(30);
/// How long a push into `library` may take to shadow the mirror.
const LOCAL_REPO_TTL: Duration = Duration::from_secs(5);

pub struct Upstreams {
    pub client: UpstreamClient,
    pub fetches: Arc<Fetches>,
    endpoints: moka::sync::Cache<i64, Arc<Endpoint>>,
    /// Upstream host names resolved, so a forwarded request does not wait
    /// for a DNS lookup each time.
    addrs: moka::sync::Cache<(String, u16), SocketAddr>,
    /// Whether a `library/` repository is berth's own, for mirror mode
    /// (every pull would ask the database otherwise).
    local_repos: moka::sync::Cache<RepoName, bool>,
    /// Mirror mode, when configured.
    pub mirror: Option<mirror::Mirror>,
}

impl Upstreams {
    pub fn new(mirror: Option<mirror::Mirror>) -> Result<Upstreams, GatewayError> {
        Ok(Upstreams {
            client: UpstreamClient::new()?,
            fetches: Arc::new(Fetches::default()),
            endpoints: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ENDPOINT_TTL)
                .build(),
            addrs: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ENDPOINT_TTL)
                .build(),
            local_repos: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(LOCAL_REPO_TTL)
                .build(),
            mirror,
        })
    }

    /// A registry endpoint by id, cached.
    pub async fn endpoint(
        &self,
        registry: &Registry,
        id: i64,
    ) -> Result<Arc<Endpoint>, GatewayError> {
        if let Some(ep) = self.endpoints.get(&id) {
            return Ok(ep);
        }
        let ep = registry.meta().endpoint(id).await?.ok_or_else(|| {
            GatewayError::UpstreamUnreachable {
                registry: format!("#{id}"),
                detail: "the registry endpoint was deleted".into(),
                what: "anything".into(),
            }
        })?;
        let ep = Arc::new(ep);
        self.endpoints.insert(id, ep.clone());
        Ok(ep)
    }

    /// The first address of `host:port`, resolved at most every
    /// `ENDPOINT_TTL`.
    pub async fn resolve(&self, host: &str, port: u16) -> Option<SocketAddr> {
        let key = (host.to_owned(), port);
        if let Some(addr) = self.addrs.get(&key) {
            return Some(addr);
        }
        let addr = tokio::net::lookup_host((host, port)).await.ok()?.next()?;
        self.addrs.insert(key, addr);
        Some(addr)
    }

    /// Whether `repo` exists in berth's own store, cached briefly.
    pub async fn is_local_repo(
        &self,
        registry: &Registry,
        repo: &RepoName,
    ) -> Result<bool, GatewayError> {
        if let Some(local) = self.local_repos.get(repo) {
            return Ok(local);
        }
        let local = registry.meta().repo_exists(repo).await?;
        self.local_repos.insert(repo.clone(), local);
        Ok(local)
    }

    /// After an endpoint changed or was deleted (see `App::forget_endpoint`).
    pub fn forget_endpoint(&self, id: i64) {
        self.endpoints.invalidate(&id);
        self.client.forget(id);
    }

    /// After repositories went wholesale: which exist here is asked again.
    pub fn forget_local_repos(&self) {
        self.local_repos.invalidate_all();
    }

    /// After announcements of other processes may have been missed.
    pub fn forget_everything(&self) {
        self.endpoints.invalidate_all();
        self.local_repos.invalidate_all();
        self.client.forget_all();
    }
}
