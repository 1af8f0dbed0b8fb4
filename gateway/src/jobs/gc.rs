//! Garbage collection's schedule (Harbor's schedule types, cron in UTC)
//! and the periodic purge of abandoned uploads, as a job of the one
//! scheduler. Every process of a scale-out deployment runs it, and the
//! database decides which one fires (a compare-and-set on the schedule,
//! then the GC lock).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_storage::gc::{purge_interval, GcKind, GcSchedule};
use berth_storage::{Registry, StorageError};

use super::Periodic;
use crate::error::cause_chain;
use berth_storage::cron::Cron;

/// Harbor's schedule types (`ScheduleObj.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleType {
    Hourly,
    Daily,
    Weekly,
    Custom,
    /// Run once, now.
    Manual,
    /// No schedule.
    None,
}

impl ScheduleType {
    const WORDS: [(&'static str, ScheduleType); 6] = [
        ("Hourly", ScheduleType::Hourly),
        ("Daily", ScheduleType::Daily),
        ("Weekly", ScheduleType::Weekly),
        ("Custom", ScheduleType::Custom),
        ("Manual", ScheduleType::Manual),
        ("None", ScheduleType::None),
    ];

    pub fn parse(word: &str) -> Option<ScheduleType> {
        ScheduleType::WORDS
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(word))
            .map(|(_, t)| *t)
    }

    pub fn as_str(self) -> &'static str {
        ScheduleType::WORDS
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("None", |(w, _)| w)
    }

    /// The cron a periodic type fires on: Harbor's fixed ones, or the
    /// given expression for `Custom`. `None` for Manual and None.
    pub fn cron(self, custom: Option<&str>) -> Option<Result<(String, Cron), String>> {
        let text = match self {
            ScheduleType::Hourly => "0 0 * * * *",
            ScheduleType::Daily => "0 0 0 * * *",
            ScheduleType::Weekly => "0 0 0 * * 0",
            ScheduleType::Custom => match custom.map(str::trim).filter(|c| !c.is_empty()) {
                Some(c) => c,
                None => {
                    return Some(Err(
                        "a Custom schedule needs `cron`, e.g. \"0 0 3 * * *\" (six fields, seconds first)"
                            .into(),
                    ))
                }
            },
            ScheduleType::Manual | ScheduleType::None => return None,
        };
        Some(text.parse::<Cron>().map(|c| (text.to_owned(), c)))
    }
}

/// When a stored schedule fires next (Unix seconds), if it is periodic.
pub fn next_firing(schedule: &GcSchedule) -> Option<i64> {
    next_at(
        &schedule.kind,
        schedule.cron.as_deref(),
        schedule.last_fired_ms,
    )
}

/// When a stored schedule of type `kind` (Harbor's word) fires next after
/// it last fired (Unix seconds), if it is periodic.
pub fn next_at(kind: &str, cron: Option<&str>, last_fired_ms: i64) -> Option<i64> {
    let kind = ScheduleType::parse(kind)?;
    let (_, cron) = kind.cron(cron)?.ok()?;
    cron.next_after(last_fired_ms.div_euclid(1000))
}

/// Fires scheduled GCs when due and purges abandoned uploads.
pub struct GcJob(Arc<Inner>);

struct Inner {
    registry: Arc<Registry>,
    purge_every: Duration,
    next_purge: Mutex<Instant>,
    /// A GC or purge is under way (they run beside the scheduler).
    busy: AtomicBool,
}

impl GcJob {
    pub fn new(registry: Arc<Registry>) -> GcJob {
        GcJob(Arc::new(Inner {
            purge_every: purge_interval(registry.upload_purge_age()),
            next_purge: Mutex::new(Instant::now()),
            busy: AtomicBool::new(false),
            registry,
        }))
    }
}

impl Inner {
    async fn purge_if_due(&self) {
        {
            let mut next = self.next_purge.lock().unwrap_or_else(|p| p.into_inner());
            if Instant::now() < *next {
                return;
            }
            *next = Instant::now() + self.purge_every;
        }
        // Once per period for the whole cluster (see storage's `passes`).
        if claimed(
            self.registry
                .claim_pass("upload-purge", self.purge_every)
                .await,
        ) {
            match self.registry.purge_uploads().await {
                Ok(ids) if !ids.is_empty() => {
                    tracing::info!(count = ids.len(), "purged abandoned uploads");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %cause_chain(&e), "purging abandoned uploads failed")
                }
            }
        }
    }
}

/// Marks the job idle when its background work ends, however it ends.
struct Done(Arc<Inner>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

#[async_trait::async_trait]
impl Periodic for GcJob {
    async fn due(&self, _from: i64, _to: i64) {
        // A GC or a purge takes long: in the background, one at a time,
        // so the scheduler's other jobs keep their seconds.
        if self.0.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let done = Done(self.0.clone());
        tokio::spawn(async move {
            let inner = &done.0;
            inner.purge_if_due().await;
            // The schedule remembers when it last fired: a late tick fires
            // once, not once per second missed.
            if let Err(e) = fire_if_due(&inner.registry).await {
                tracing::warn!(error = %cause_chain(&e), "scheduled garbage collection failed");
            }
        });
    }
}

/// Whether a pass was claimed; a failure to claim is logged.
fn claimed(result: Result<bool, StorageError>) -> bool {
    result.unwrap_or_else(|e| {
        tracing::warn!(error = %cause_chain(&e), "claiming a background pass failed");
        false
    })
}

async fn fire_if_due(registry: &Registry) -> Result<(), StorageError> {
    let Some(schedule) = registry.gc_schedule().await? else {
        return Ok(());
    };
    let Some(due) = next_firing(&schedule) else {
        return Ok(());
    };
    let now = berth_storage::audit::now_ms().div_euclid(1000);
    if now < due || !registry.claim_gc_firing(schedule.last_fired_ms).await? {
        return Ok(());
    }
    match registry.start_gc(GcKind::Schedule, schedule.options).await {
        Ok(job) => {
            let id = job.run_id;
            let report = registry.run_gc(job).await?;
            tracing::info!(
                run = id,
                blobs = report.blobs_deleted,
                manifests = report.manifests_deleted,
                bytes = report.bytes_freed,
                "scheduled garbage collection finished"
            );
            Ok(())
        }
        Err(StorageError::GcRunning { run_id }) => {
            tracing::info!(
                running = run_id,
                "scheduled garbage collection skipped: another one is running"
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}
