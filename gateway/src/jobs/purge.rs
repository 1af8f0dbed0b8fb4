//! The audit log's purge schedule (`/system/purgeaudit/schedule`): fired
//! when due by one process of many (a compare-and-set on the schedule),
//! the run in the background.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use berth_storage::{Registry, StorageError};

use super::gc::next_at;
use super::Periodic;
use crate::error::cause_chain;

pub struct PurgeJob {
    registry: Arc<Registry>,
    /// A firing is being checked or run.
    busy: Arc<AtomicBool>,
}

impl PurgeJob {
    pub fn new(registry: Arc<Registry>) -> PurgeJob {
        PurgeJob {
            registry,
            busy: Arc::default(),
        }
    }
}

#[async_trait::async_trait]
impl Periodic for PurgeJob {
    async fn due(&self, _from: i64, to: i64) {
        if self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let (registry, busy) = (self.registry.clone(), self.busy.clone());
        tokio::spawn(async move {
            if let Err(e) = fire_if_due(&registry, to).await {
                tracing::warn!(error = %cause_chain(&e), "scheduled audit log purge failed");
            }
            busy.store(false, Ordering::Release);
        });
    }
}

async fn fire_if_due(registry: &Registry, now: i64) -> Result<(), StorageError> {
    let meta = registry.meta();
    let Some(schedule) = meta.audit_purge_schedule().await? else {
        return Ok(());
    };
    let Some(due) = next_at(
        &schedule.kind,
        schedule.cron.as_deref(),
        schedule.last_fired_ms,
    ) else {
        return Ok(());
    };
    if now < due
        || !meta
            .claim_audit_purge_firing(schedule.last_fired_ms)
            .await?
    {
        return Ok(());
    }
    match meta.start_audit_purge("SCHEDULE", &schedule.params).await? {
        Ok(id) => {
            let deleted = meta.run_audit_purge(id, &schedule.params).await?;
            tracing::info!(run = id, deleted, "scheduled audit log purge finished");
        }
        Err(refused) => {
            tracing::info!(
                ?refused,
                "scheduled audit log purge skipped: another one is running"
            );
        }
    }
    Ok(())
}
