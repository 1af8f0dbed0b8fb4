//! Keeps histories from growing without end: once an hour, for the whole
//! cluster, webhook deliveries that ended more than `KEEP_FOR` ago go, and
//! each policy keeps its newest `KEEP_EACH` at most (a public project's
//! pull events would otherwise add rows for good).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_storage::Registry;

use super::Periodic;
use crate::error::cause_chain;

/// How often the histories are pruned.
const EVERY: Duration = Duration::from_secs(3600);
/// How long an ended webhook delivery stays on record.
const KEEP_FOR: Duration = Duration::from_secs(14 * 24 * 3600);
/// The most executions a webhook policy keeps.
const KEEP_EACH: i64 = 10_000;

pub struct HistoryJob {
    registry: Arc<Registry>,
    next: Mutex<Instant>,
    busy: Arc<AtomicBool>,
}

impl HistoryJob {
    pub fn new(registry: Arc<Registry>) -> HistoryJob {
        HistoryJob {
            registry,
            next: Mutex::new(Instant::now()),
            busy: Arc::default(),
        }
    }
}

#[async_trait::async_trait]
impl Periodic for HistoryJob {
    async fn due(&self, _from: i64, to: i64) {
        {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            if Instant::now() < *next || self.busy.load(Ordering::Acquire) {
                return;
            }
            *next = Instant::now() + EVERY;
        }
        let registry = self.registry.clone();
        let busy = self.busy.clone();
        busy.store(true, Ordering::Release);
        // In the background: a large prune does not hold the other jobs'
        // seconds.
        tokio::spawn(async move {
            match registry.claim_pass("history-prune", EVERY).await {
                Ok(true) => {
                    let before = to - KEEP_FOR.as_secs() as i64;
                    match registry
                        .meta()
                        .prune_webhook_history(before, KEEP_EACH)
                        .await
                    {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(executions = n, "pruned webhook history"),
                        Err(e) => {
                            tracing::warn!(error = %cause_chain(&e), "pruning webhook history failed")
                        }
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %cause_chain(&e), "claiming the history prune failed")
                }
            }
            busy.store(false, Ordering::Release);
        });
    }
}
