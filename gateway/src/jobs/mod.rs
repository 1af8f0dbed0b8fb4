//! The one scheduler of background work: every second it hands the
//! seconds that passed to each job, which fires what is due in them by the
//! one cron dialect (`berth_storage::cron`). Several processes sharing a
//! database run it alike; each job claims its firings in the database, so
//! one process fires each.
//!
//! - `gc`: scheduled garbage collection and the purge of abandoned
//!   uploads.
//! - `history`: old webhook deliveries pruned.
//! - `purge`: the audit log's purge schedule.
//! - Tag retention and replication schedules are jobs too; their runners
//!   live in `crate::retention` and `crate::replication`.

pub mod gc;
pub mod history;
pub mod purge;

use std::sync::Arc;
use std::time::Duration;

/// A job the scheduler drives.
#[async_trait::async_trait]
pub trait Periodic: Send + Sync {
    /// Fires what is due in the seconds `from..=to` (Unix, UTC): after a
    /// late tick, the seconds missed (at most the last minute).
    async fn due(&self, from: i64, to: i64);
}

/// Ticks every second forever. Jobs are asked in turn; a job's firing
/// runs in the background (a GC or a replication), never inside the tick.
/// In read-only mode nothing fires: what is due meanwhile is skipped, not
/// caught up on afterwards.
pub async fn run(runtime: Arc<crate::runtime::Runtime>, jobs: Vec<Arc<dyn Periodic>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut checked = now() - 1;
    loop {
        tick.tick().await;
        let current = now();
        if current <= checked {
            continue;
        }
        let from = (checked + 1).max(current - 60);
        if runtime.read_only() {
            checked = current;
            continue;
        }
        for job in &jobs {
            job.due(from, current).await;
        }
        checked = current;
    }
}

fn now() -> i64 {
    berth_storage::audit::now_ms().div_euclid(1000)
}
