//! The server's background work for garbage collection: scheduled GC runs
//! (Harbor's schedule types, cron in UTC) and the periodic purge of
//! abandoned uploads. Runs on the side runtime; every process of a
//! scale-out deployment runs it, and the database decides which one fires
//! (a compare-and-set on the schedule, then the GC lock).

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_storage::gc::{purge_interval, GcKind, GcSchedule};
use berth_storage::{Registry, StorageError};

use crate::error::cause_chain;
use berth_storage::cron::Cron;

/// How often the schedule is looked at: Harbor's cron has seconds.
const TICK: Duration = Duration::from_secs(1);

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
    let kind = ScheduleType::parse(&schedule.kind)?;
    let (_, cron) = kind.cron(schedule.cron.as_deref())?.ok()?;
    cron.next_after(schedule.last_fired_ms.div_euclid(1000))
}

/// Runs forever: fires scheduled GCs when due and purges abandoned uploads.
pub async fn run(registry: Arc<Registry>) {
    let purge_every = purge_interval(registry.upload_purge_age());
    let mut next_purge = Instant::now();
    loop {
        // Once per period for the whole cluster (see storage's `passes`).
        if Instant::now() >= next_purge {
            next_purge = Instant::now() + purge_every;
            if claimed(registry.claim_pass("upload-purge", purge_every).await) {
                match registry.purge_uploads().await {
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
        if let Err(e) = fire_if_due(&registry).await {
            tracing::warn!(error = %cause_chain(&e), "scheduled garbage collection failed");
        }
        tokio::time::sleep(TICK).await;
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
