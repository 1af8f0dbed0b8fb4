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

use std::sync::Arc;
use std::time::Duration;

use berth_storage::upstreams::Endpoint;
use berth_storage::Registry;

use crate::error::GatewayError;
use client::UpstreamClient;
use fetch::Fetches;

/// How long an endpoint's settings are kept in memory; changes made
/// through this process's API apply at once.
const ENDPOINT_TTL: Duration = Duration::from_secs(30);

pub struct Upstreams {
    pub client: UpstreamClient,
    pub fetches: Arc<Fetches>,
    endpoints: moka::sync::Cache<i64, Arc<Endpoint>>,
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

    /// After an endpoint changed or was deleted here.
    pub fn forget_endpoint(&self, id: i64) {
        self.endpoints.invalidate(&id);
        self.client.forget(id);
    }
}
