//! Keeps the pull-through cache within `[proxy] cache_max_size` and drops
//! images nobody pulled for `[proxy] cache_ttl`: a background pass every
//! ten seconds (cheap when nothing is due), least recently pulled first. Evicted images leave their blobs
//! unreferenced; garbage collection frees the bytes.

use std::sync::Arc;
use std::time::Duration;

use berth_storage::Registry;

/// Time between eviction passes, at most: a short TTL is checked more
/// often (half the TTL, at least every second).
const PERIOD: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: Option<u64>,
    pub ttl: Duration,
}

/// Starts the eviction loop on `runtime`.
pub fn spawn(runtime: &tokio::runtime::Handle, registry: Arc<Registry>, limits: Limits) {
    runtime.spawn(async move {
        let period = PERIOD.min(limits.ttl / 2).max(Duration::from_secs(1));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // Once per period for the whole cluster (see storage's `passes`).
            match registry.claim_pass("proxy-cache-eviction", period).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming the pull-through cache eviction failed; retrying at the next pass");
                    continue;
                }
            }
            if let Err(e) = pass(&registry, limits).await {
                tracing::warn!(error = %e, "pull-through cache eviction failed; retrying at the next pass");
            }
        }
    });
}

/// One eviction pass over every proxy-cache project.
pub async fn pass(
    registry: &Registry,
    limits: Limits,
) -> Result<berth_storage::proxy_cache::Eviction, berth_storage::StorageError> {
    let projects = registry.meta().cache_projects().await?;
    if projects.is_empty() {
        return Ok(Default::default());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let unused_before = now.saturating_sub(limits.ttl.as_secs() as i64);
    let done = registry
        .evict_cached(&projects, limits.max_bytes, unused_before)
        .await?;
    if done.manifests > 0 {
        tracing::info!(
            manifests = done.manifests,
            blob_links = done.blob_links,
            bytes_before = done.bytes_before,
            bytes_after = done.bytes_after,
            "evicted cached images"
        );
    }
    Ok(done)
}
