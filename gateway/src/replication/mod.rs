//! Replication between this registry and registry endpoints, Harbor's
//! replication policies: push mode (this registry is the source) and pull
//! mode (it is the destination), started by hand, by a cron schedule, or
//! by pushes and deletes here.
//!
//! - `side`: the two ends, this registry's store or a remote.
//! - `remote`: a registry endpoint over the distribution API (and
//!   Harbor's project API for listing).
//! - `copy`: one task, one repository copied tag by tag.
//!
//! An execution runs in the process that started it, which writes a
//! heartbeat to the database every few seconds and learns there whether
//! a stop was asked for (by any process). Executions of a process that
//! died are marked failed by the others, or by itself when it restarts.

pub mod copy;
pub mod remote;
pub mod side;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_storage::audit::{now_ms, AuditLog, AuditRecord};
use berth_storage::changes::Epoch;
use berth_storage::oci::Digest;
use berth_storage::replication::filter::{
    destination_name, literal_repository, selects_repository, selects_tag,
};
use berth_storage::replication::{
    Filter, FilterKind, Policy, Progress, Trigger, FAILED, STOPPED, SUCCEED,
};
use berth_storage::webhooks::EventType;
use berth_storage::Registry;
use tokio::sync::mpsc;

use crate::error::{cause_chain, GatewayError};
use crate::metrics::ReplicationCounters;
use crate::upstream::Upstreams;
use crate::webhooks::{Occurrence, Webhooks};
use copy::{Halt, Run, TaskState};
use remote::Remote;
use side::{Local, Side};

/// How often a running execution says it is alive and looks for a stop.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// An execution whose heartbeat is older than this was left by a process
/// that died.
const ABANDONED_AFTER: i64 = 15;
/// How often (seconds) executions of dead processes are looked for.
const SWEEP_EVERY: i64 = 5;
/// Repositories copied at once by one execution.
const PARALLEL_TASKS: usize = 3;
/// Requests in flight to one registry endpoint, over all executions.
const PER_ENDPOINT: usize = 8;
/// How long a stopped execution may take to wind down before its work is
/// dropped where it stands.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// How long an event waits for a running execution of its policy (one at
/// a time) before it is given up.
const EVENT_WAIT: Duration = Duration::from_secs(3600);
/// Events waiting to be matched against the policies, and events waiting
/// for one policy: past these, events are dropped (and logged) rather
/// than held without bound.
const EVENT_QUEUE: usize = 10_000;
const POLICY_QUEUE: usize = 1_000;
/// How long the event-based policies read once serve events.
const POLICIES_FRESH: Duration = Duration::from_secs(5);

/// What starts an execution and what it covers.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Every repository the filters select.
    All,
    /// A push here: these tags of one repository.
    Pushed { repo: String, tags: Vec<String> },
    /// A delete here: a tag or an artifact (`reference`) of one
    /// repository, which was `digest`.
    Deleted {
        repo: String,
        reference: String,
        digest: Digest,
    },
}

pub struct Replicator {
    registry: Arc<Registry>,
    upstreams: Arc<Upstreams>,
    audit: AuditLog,
    /// Read-only mode, and new projects' limit (for projects replication
    /// creates).
    runtime: Arc<crate::runtime::Runtime>,
    /// Stop flags of the executions this process runs.
    running: Mutex<HashMap<i64, Arc<AtomicBool>>>,
    counters: ReplicationCounters,
    /// Each endpoint's request limit.
    limits: Mutex<HashMap<i64, Arc<tokio::sync::Semaphore>>>,
    /// Told of each task's end (Harbor's REPLICATION event).
    webhooks: Arc<Webhooks>,
    /// Pushes and deletes here, in order, for the event-based policies.
    events: mpsc::Sender<Event>,
    events_in: Mutex<Option<mpsc::Receiver<Event>>>,
    /// Each event-based policy's queue: its events run one after another.
    policy_queues: Mutex<HashMap<i64, mpsc::Sender<Queued>>>,
    /// The event-based policies as last read, and when: a burst of pushes
    /// reads them once. Emptied when any instance changes a policy
    /// (`Change::ReplicationPolicies`); `POLICIES_FRESH` bounds what a
    /// lost announcement can delay.
    event_policies: Mutex<Option<(tokio::time::Instant, Arc<Vec<Policy>>)>>,
    policies_epoch: Epoch,
}

impl Replicator {
    pub fn new(
        registry: Arc<Registry>,
        upstreams: Arc<Upstreams>,
        audit: AuditLog,
        runtime: Arc<crate::runtime::Runtime>,
        counters: ReplicationCounters,
        webhooks: Arc<Webhooks>,
    ) -> Replicator {
        let (events, events_in) = mpsc::channel(EVENT_QUEUE);
        Replicator {
            registry,
            upstreams,
            audit,
            runtime,
            running: Mutex::default(),
            counters,
            limits: Mutex::default(),
            webhooks,
            events,
            events_in: Mutex::new(Some(events_in)),
            policy_queues: Mutex::default(),
            event_policies: Mutex::default(),
            policies_epoch: Epoch::default(),
        }
    }

    /// A policy was created, changed or deleted (here or, announced, in
    /// another process): the next event reads them again.
    pub fn policies_changed(&self) {
        self.policies_epoch.bump();
        *lock(&self.event_policies) = None;
    }

    /// The enabled event-based policies, read at most once per
    /// `POLICIES_FRESH`.
    async fn event_policies(&self) -> Result<Arc<Vec<Policy>>, GatewayError> {
        if let Some((at, policies)) = &*lock(&self.event_policies) {
            if at.elapsed() < POLICIES_FRESH {
                return Ok(policies.clone());
            }
        }
        let seen = self.policies_epoch.current();
        let policies = Arc::new(
            self.registry
                .meta()
                .triggered_replication_policies("EventBased")
                .await?,
        );
        // Read before a change that was applied meanwhile: used once, not kept.
        let mut cached = lock(&self.event_policies);
        if self.policies_epoch.still(seen) {
            *cached = Some((tokio::time::Instant::now(), policies.clone()));
        }
        Ok(policies)
    }

    async fn side(&self, registry: Option<i64>) -> Result<Side, GatewayError> {
        Ok(match registry {
            None => Side::Local(Local {
                registry: self.registry.clone(),
                audit: self.audit.clone(),
                default_limit: self.runtime.storage_per_project(),
            }),
            Some(id) => Side::Remote(Remote {
                endpoint: self.upstreams.endpoint(&self.registry, id).await?,
                client: self.upstreams.clone(),
                limit: lock(&self.limits)
                    .entry(id)
                    .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(PER_ENDPOINT)))
                    .clone(),
            }),
        })
    }

    /// Records an execution and runs it in the background; its id.
    pub async fn start(
        self: &Arc<Self>,
        policy: Policy,
        trigger: &'static str,
        scope: Scope,
        operator: &str,
    ) -> Result<i64, GatewayError> {
        self.runtime.refuse_writes()?;
        let (execution, stop) = self.begin(&policy, trigger, operator).await?;
        let me = self.clone();
        tokio::spawn(async move { me.complete(policy, execution, scope, stop).await });
        Ok(execution)
    }

    /// Records an execution as in progress (refused while another runs
    /// when the policy allows one at a time); its id and stop flag.
    async fn begin(
        &self,
        policy: &Policy,
        trigger: &str,
        operator: &str,
    ) -> Result<(i64, Arc<AtomicBool>), GatewayError> {
        let started = self
            .registry
            .meta()
            .start_replication_execution(policy.id, trigger, policy.spec.single_active)
            .await?;
        let execution = started.map_err(|running| {
            GatewayError::Conflict(format!(
                "policy `{}` allows one execution at a time and execution {running} is running; \
                 wait for it or stop it",
                policy.spec.name
            ))
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        self.lock_running().insert(execution, stop.clone());
        self.audit.record(AuditRecord {
            op_time: now_ms(),
            username: operator.to_owned(),
            operation: "create".into(),
            resource_type: "replication_execution".into(),
            resource: format!("{} #{execution} ({trigger})", policy.spec.name),
            project: None,
            success: true,
            client_ip: None,
        });
        Ok((execution, stop))
    }

    /// Runs a recorded execution and records its end, whatever happens:
    /// a stop abandons the work after `STOP_GRACE`, and a panic inside it
    /// ends it as failed rather than leaving it in progress.
    async fn complete(&self, policy: Policy, execution: i64, scope: Scope, stop: Arc<AtomicBool>) {
        use futures_util::FutureExt;
        let work = std::panic::AssertUnwindSafe(self.run(&policy, execution, scope, stop.clone()))
            .catch_unwind();
        let (status, text) = tokio::select! {
            outcome = work => match outcome {
                Ok(done) => done,
                Err(_) => (FAILED, "internal error (berth's log has it); start the policy again".to_owned()),
            },
            () = stopped_for(&stop, STOP_GRACE) => (STOPPED, "stopped on request".to_owned()),
        };
        if let Err(e) = self
            .registry
            .meta()
            .finish_replication_execution(execution, status, &text)
            .await
        {
            tracing::error!(execution, error = %cause_chain(&e), "cannot record the end of a replication");
        }
        self.lock_running().remove(&execution);
        tracing::info!(
            policy = policy.id,
            execution,
            status,
            "replication finished"
        );
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<AtomicBool>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks an execution to stop: at once when this process runs it, else
    /// at the runner's next heartbeat. False when it is not running.
    pub async fn stop(&self, execution: i64) -> Result<bool, GatewayError> {
        let asked = self
            .registry
            .meta()
            .request_replication_stop(execution)
            .await?;
        if let Some(flag) = self.lock_running().get(&execution) {
            flag.store(true, Ordering::Relaxed);
        }
        Ok(asked)
    }

    /// Runs an execution to its end: its status and status text.
    async fn run(
        &self,
        policy: &Policy,
        execution: i64,
        scope: Scope,
        stop: Arc<AtomicBool>,
    ) -> (&'static str, String) {
        let spec = &policy.spec;
        let (src, dst) = match (
            self.side(spec.src_registry).await,
            self.side(spec.dest_registry).await,
        ) {
            (Ok(s), Ok(d)) => (s, d),
            (Err(e), _) | (_, Err(e)) => return (FAILED, e.to_string()),
        };
        let run = Arc::new(Run {
            src,
            dst,
            filters: spec.filters.clone(),
            override_existing: spec.override_existing,
            copy_by_chunk: spec.copy_by_chunk,
            speed: spec.speed_kib.map(|k| k.saturating_mul(1024).max(1)),
            stop,
            placed: Mutex::default(),
            sending: Mutex::default(),
            bytes: Arc::new(AtomicU64::new(0)),
            artifacts: AtomicU64::new(0),
        });
        let tasks: Arc<Mutex<HashMap<i64, Arc<TaskState>>>> = Arc::default();
        // Aborted however `run` ends, also when a stop drops it midway.
        let beat = AbortOnDrop(tokio::spawn(heartbeat(
            self.registry.clone(),
            execution,
            run.clone(),
            tasks.clone(),
        )));
        let outcome = self.execute(policy, execution, &run, &tasks, scope).await;
        drop(beat);
        flush(&self.registry, &tasks).await;
        let label = [spec.name.as_str()];
        self.counters
            .bytes
            .with_label_values(&label)
            .inc_by(run.bytes.load(Ordering::Relaxed));
        self.counters
            .artifacts
            .with_label_values(&label)
            .inc_by(run.artifacts.load(Ordering::Relaxed));
        match outcome {
            _ if run.stopped() => (STOPPED, "stopped on request".into()),
            Ok(0) => (SUCCEED, String::new()),
            Ok(failed) => {
                self.counters
                    .failures
                    .with_label_values(&label)
                    .inc_by(failed);
                (FAILED, format!("{failed} task(s) failed; see their logs"))
            }
            Err(e) => (FAILED, e.to_string()),
        }
    }

    /// The tasks of an execution; how many failed.
    async fn execute(
        &self,
        policy: &Policy,
        execution: i64,
        run: &Arc<Run>,
        tasks: &Arc<Mutex<HashMap<i64, Arc<TaskState>>>>,
        scope: Scope,
    ) -> Result<u64, GatewayError> {
        use futures_util::StreamExt;
        let spec = &policy.spec;
        let meta = self.registry.meta();
        let (repos, only, deletion) = match scope {
            Scope::All => {
                let repos = match literal_repository(&spec.filters) {
                    Some(name) => vec![name.to_owned()],
                    None => run.src.repositories().await?,
                };
                let repos: Vec<String> = repos
                    .into_iter()
                    .filter(|r| selects_repository(&spec.filters, r))
                    .collect();
                (repos, None, None)
            }
            Scope::Pushed { repo, tags } => (vec![repo], Some(tags), None),
            Scope::Deleted {
                repo,
                reference,
                digest,
            } => (vec![repo], None, Some((reference, digest))),
        };
        let failed = Arc::new(AtomicU64::new(0));
        let only = only.as_deref();
        futures_util::stream::iter(repos)
            .for_each_concurrent(PARALLEL_TASKS, |repo| {
                let failed = failed.clone();
                let deletion = deletion.clone();
                async move {
                    let dst_repo = match destination_name(&repo, &spec.dest_namespace, spec.dest_namespace_replace_count) {
                        Ok(name) if run.dst.is_local() && !name.contains('/') => format!("library/{name}"),
                        Ok(name) => name,
                        Err(e) => {
                            tracing::warn!(execution, repository = %repo, "{e}");
                            failed.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    };
                    let operation = if deletion.is_some() { "deletion" } else { "copy" };
                    let task_id = match meta
                        .start_replication_task(execution, "image", &repo, &dst_repo, operation)
                        .await
                    {
                        Ok(id) => id,
                        Err(e) => {
                            tracing::error!(execution, error = %cause_chain(&e), "cannot record a replication task");
                            failed.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    };
                    let state = Arc::new(TaskState::default());
                    lock(tasks).insert(task_id, state.clone());
                    state.line(format!("{operation} {} {repo} -> {} {dst_repo}", run.src.label(), run.dst.label()));
                    let outcome = match &deletion {
                        Some((reference, digest)) => {
                            delete(run, &state, &dst_repo, reference, digest).await
                        }
                        None => run.copy_repository(&state, &repo, &dst_repo, only).await,
                    };
                    let status = match outcome {
                        Ok(()) => SUCCEED,
                        Err(Halt::Stopped) => {
                            state.line("stopped");
                            STOPPED
                        }
                        Err(Halt::Failed(why)) => {
                            state.line(format!("failed: {why}"));
                            failed.fetch_add(1, Ordering::Relaxed);
                            FAILED
                        }
                    };
                    lock(tasks).remove(&task_id);
                    if let Err(e) = meta
                        .finish_replication_task(task_id, status, &progress(&state), &state.take_log())
                        .await
                    {
                        tracing::error!(execution, task = task_id, error = %cause_chain(&e), "cannot record the end of a replication task");
                    }
                    self.tell(policy, run, &repo, &dst_repo, status).await;
                }
            })
            .await;
        Ok(failed.load(Ordering::Relaxed))
    }

    /// Harbor's REPLICATION event for the local project a task read or
    /// wrote.
    async fn tell(&self, policy: &Policy, run: &Run, repo: &str, dst_repo: &str, status: &str) {
        let local = if run.src.is_local() { repo } else { dst_repo };
        let project = local.split_once('/').map_or(local, |(p, _)| p);
        let Ok(Some(info)) = self.registry.project_info(project).await else {
            return;
        };
        if !self.webhooks.wants(info.id, EventType::Replication).await {
            return;
        }
        let place = |label: String, name: &str| {
            serde_json::json!({
                "registry_name": label,
                "namespace": name.split_once('/').map_or("", |(p, _)| p),
                "repository": name,
            })
        };
        let data = serde_json::json!({
            "replication": {
                "harbor_hostname": self.webhooks.host(),
                "job_status": status,
                "artifact_type": "image",
                "override_mode": policy.spec.override_existing,
                "policy_name": policy.spec.name,
                "execution_timestamp": now(),
                "src_resource": place(run.src.label(), repo),
                "dest_resource": place(run.dst.label(), dst_repo),
            }
        });
        self.webhooks
            .notify(&Occurrence {
                event: EventType::Replication,
                project_id: info.id,
                operator: side::OPERATOR.to_owned(),
                occur_at: now(),
                data,
            })
            .await;
    }

    /// Marks failed the executions whose process stopped beating.
    pub async fn sweep(&self) {
        match self
            .registry
            .meta()
            .fail_abandoned_replications(now() - ABANDONED_AFTER)
            .await
        {
            Ok(ids) if !ids.is_empty() => {
                tracing::warn!(executions = ?ids, "replications left running by a stopped process marked failed")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %cause_chain(&e), "cannot look for abandoned replications")
            }
        }
    }

    /// A push here: event-based policies whose filters select it copy it.
    pub fn pushed(&self, repo: &str, tag: &str) {
        self.event(Event {
            repo: repo.to_owned(),
            reference: tag.to_owned(),
            deleted: None,
        });
    }

    /// A delete here of a tag or an artifact that was `digest`:
    /// event-based policies with `replicate_deletion` delete it at their
    /// destination.
    pub fn deleted(&self, repo: &str, reference: &str, digest: &Digest) {
        self.event(Event {
            repo: repo.to_owned(),
            reference: reference.to_owned(),
            deleted: Some(digest.clone()),
        });
    }

    /// Queues an event, in the order events happen here; never waits (a
    /// push's answer does not depend on replication).
    fn event(&self, event: Event) {
        if let Err(e) = self.events.try_send(event) {
            tracing::warn!(error = %e, "replication events are not keeping up; an event was dropped");
        }
    }

    /// Starts the task that hands events to their policies, in order.
    pub fn start_events(self: &Arc<Self>) {
        let Some(mut events) = lock(&self.events_in).take() else {
            return;
        };
        let me = self.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                me.dispatch(event).await;
            }
        });
    }

    /// Queues an event for each event-based policy that selects it.
    async fn dispatch(self: &Arc<Self>, event: Event) {
        let policies = match self.event_policies().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %cause_chain(&e), "cannot read event-based replication policies");
                return;
            }
        };
        let scope = match event.deleted {
            Some(digest) => Scope::Deleted {
                repo: event.repo,
                reference: event.reference,
                digest,
            },
            None => Scope::Pushed {
                repo: event.repo,
                tags: vec![event.reference],
            },
        };
        for policy in policies.iter() {
            if !wants_event(policy, &scope) {
                continue;
            }
            // The decision holds for this destination only: a policy
            // pointed elsewhere meanwhile does not get the event.
            let queued = (scope.clone(), policy.spec.dest_registry);
            let queue = lock(&self.policy_queues)
                .entry(policy.id)
                .or_insert_with(|| self.policy_worker(policy.id))
                .clone();
            if queue.try_send(queued).is_err() {
                tracing::warn!(policy = policy.id, "more than {POLICY_QUEUE} events wait for this policy (is its destination down?); an event was dropped");
            }
        }
    }

    /// The task that runs one policy's events one after another, each
    /// with the policy as it is then: one disabled, deleted, pointed at
    /// another destination, or whose filters or deletion setting no longer
    /// want the event since it was queued runs none. An execution already
    /// running (one at a time) is waited for, not a reason to drop the
    /// event.
    fn policy_worker(self: &Arc<Self>, policy_id: i64) -> mpsc::Sender<Queued> {
        let (tx, mut rx) = mpsc::channel::<Queued>(POLICY_QUEUE);
        let me = self.clone();
        tokio::spawn(async move {
            while let Some((scope, dest)) = rx.recv().await {
                let policy = match me.registry.meta().replication_policy(policy_id).await {
                    Ok(Some(p)) if p.spec.dest_registry == dest && wants_event(&p, &scope) => p,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!(policy = policy_id, error = %cause_chain(&e), "cannot read a replication policy; an event was dropped");
                        continue;
                    }
                };
                me.run_event(policy, scope).await;
            }
        });
        tx
    }

    async fn run_event(&self, policy: Policy, scope: Scope) {
        let deadline = tokio::time::Instant::now() + EVENT_WAIT;
        loop {
            match self
                .begin(&policy, "event_based", "replication-event")
                .await
            {
                Ok((execution, stop)) => {
                    self.complete(policy, execution, scope, stop).await;
                    return;
                }
                Err(GatewayError::Conflict(_)) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) => {
                    tracing::warn!(policy = policy.id, error = %e, scope = ?scope, "an event-based replication did not run");
                    return;
                }
            }
        }
    }
}

/// Whether an enabled event-based push policy replicates `scope` (a push
/// or a delete here).
fn wants_event(policy: &Policy, scope: &Scope) -> bool {
    let spec = &policy.spec;
    if !spec.enabled || spec.trigger != Trigger::EventBased || spec.src_registry.is_some() {
        return false;
    }
    let filtered = |kind| spec.filters.iter().any(|f: &Filter| f.kind == kind);
    match scope {
        Scope::All => false,
        Scope::Pushed { repo, tags } => {
            selects_repository(&spec.filters, repo)
                && tags
                    .iter()
                    .all(|t| t.parse::<Digest>().is_err() && selects_tag(&spec.filters, t))
        }
        // What was deleted is gone: a digest has no tag to check a tag
        // filter against, and neither has a resource type nor labels any
        // more (the labels went with the artifact). With such filters
        // deletes are not replicated (the destination may hold more than
        // the policy ever copied).
        Scope::Deleted {
            repo, reference, ..
        } => {
            spec.replicate_deletion
                && !filtered(FilterKind::Resource)
                && !filtered(FilterKind::Label)
                && selects_repository(&spec.filters, repo)
                && if reference.parse::<Digest>().is_err() {
                    selects_tag(&spec.filters, reference)
                } else {
                    !filtered(FilterKind::Tag)
                }
        }
    }
}

/// An event queued for a policy, with the destination the policy had
/// when it was chosen.
type Queued = (Scope, Option<i64>);

/// A push or delete here, as the replicator queues it.
#[derive(Debug)]
struct Event {
    repo: String,
    reference: String,
    /// For a delete: the digest that was deleted (or tagged).
    deleted: Option<Digest>,
}

/// The scheduler's job: marks executions left by dead processes failed
/// (every few seconds) and fires scheduled policies, each second of each
/// policy claimed in the database by one process.
pub struct ReplicationJob {
    pub replicator: Arc<Replicator>,
    next_sweep: Mutex<i64>,
}

impl ReplicationJob {
    pub fn new(replicator: Arc<Replicator>) -> ReplicationJob {
        ReplicationJob {
            replicator,
            next_sweep: Mutex::new(0),
        }
    }
}

#[async_trait::async_trait]
impl crate::jobs::Periodic for ReplicationJob {
    async fn due(&self, from: i64, to: i64) {
        let me = &self.replicator;
        let sweep = {
            let mut next = lock(&self.next_sweep);
            let due = to >= *next;
            if due {
                *next = to + SWEEP_EVERY;
            }
            due
        };
        if sweep {
            me.sweep().await;
        }
        let policies = match me
            .registry
            .meta()
            .triggered_replication_policies("Scheduled")
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %cause_chain(&e), "cannot read replication schedules");
                return;
            }
        };
        for second in from..=to {
            for policy in &policies {
                if !policy
                    .spec
                    .trigger
                    .cron()
                    .is_some_and(|c| c.fires_at(second))
                {
                    continue;
                }
                match me
                    .registry
                    .meta()
                    .claim_replication_fire(policy.id, second)
                    .await
                {
                    Ok(true) => {
                        if let Err(e) = me
                            .start(
                                policy.clone(),
                                "scheduled",
                                Scope::All,
                                "replication-scheduler",
                            )
                            .await
                        {
                            tracing::warn!(policy = policy.id, error = %e, "a scheduled replication did not start");
                        }
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(policy = policy.id, error = %cause_chain(&e), "cannot claim a replication schedule")
                    }
                }
            }
        }
    }
}

/// A task that ends with its handle.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Resolves once `stop` has been set for `grace`.
async fn stopped_for(stop: &AtomicBool, grace: Duration) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(grace).await;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> i64 {
    now_ms() / 1000
}

fn progress(state: &TaskState) -> Progress {
    Progress {
        bytes: state.bytes.load(Ordering::Relaxed) as i64,
        artifacts_done: state.artifacts_done.load(Ordering::Relaxed) as i64,
        artifacts_total: state.artifacts_total.load(Ordering::Relaxed) as i64,
    }
}

/// A deletion task: what was deleted here goes at the destination too, no
/// more: a deleted tag deletes the tag there, not its artifact.
async fn delete(
    run: &Run,
    state: &Arc<TaskState>,
    dst_repo: &str,
    reference: &str,
    digest: &Digest,
) -> Result<(), Halt> {
    // A tag that points elsewhere at the destination is the destination's
    // own (override off left it alone): it stays.
    if reference.parse::<Digest>().is_err() {
        match run.dst.manifest_digest(dst_repo, reference).await? {
            Some(there) if there != *digest => {
                state.line(format!(
                    "{dst_repo}:{reference} is {there} at the destination, not the deleted \
                     {digest}; left there"
                ));
                state.artifacts_done.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            _ => {}
        }
    }
    match run.dst.delete(dst_repo, reference).await? {
        Some(true) => state.line(format!("deleted {dst_repo}:{reference}")),
        Some(false) => state.line(format!("{dst_repo}:{reference} was not at the destination")),
        None => state.line(format!(
            "the destination cannot delete the tag {dst_repo}:{reference} alone (only whole \
             artifacts); left there"
        )),
    }
    state.artifacts_done.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Writes every running task's progress and new log lines.
async fn flush(registry: &Registry, tasks: &Mutex<HashMap<i64, Arc<TaskState>>>) {
    let running: Vec<(i64, Arc<TaskState>)> =
        lock(tasks).iter().map(|(k, v)| (*k, v.clone())).collect();
    for (id, state) in running {
        if let Err(e) = registry
            .meta()
            .replication_task_progress(id, &progress(&state), &state.take_log())
            .await
        {
            tracing::warn!(task = id, error = %cause_chain(&e), "cannot record replication progress");
        }
    }
}

/// Every `HEARTBEAT`: the execution is alive, its tasks' progress is
/// written, and a stop asked for anywhere reaches it.
async fn heartbeat(
    registry: Arc<Registry>,
    execution: i64,
    run: Arc<Run>,
    tasks: Arc<Mutex<HashMap<i64, Arc<TaskState>>>>,
) {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        match registry.meta().replication_heartbeat(execution).await {
            Ok(true) => run.stop.store(true, Ordering::Relaxed),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(execution, error = %cause_chain(&e), "replication heartbeat failed")
            }
        }
        flush(&registry, &tasks).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_storage::replication::PolicySpec;

    fn policy(replicate_deletion: bool, filters: Vec<Filter>) -> Policy {
        Policy {
            id: 1,
            spec: PolicySpec {
                name: "p".into(),
                description: String::new(),
                src_registry: None,
                dest_registry: Some(2),
                dest_namespace: String::new(),
                dest_namespace_replace_count: -1,
                trigger: Trigger::EventBased,
                filters,
                replicate_deletion,
                override_existing: false,
                enabled: true,
                speed_kib: None,
                copy_by_chunk: false,
                single_active: false,
            },
            created_at: 0,
            updated_at: 0,
        }
    }

    fn filter(kind: FilterKind, value: &str) -> Filter {
        Filter {
            kind,
            value: value.into(),
            excludes: false,
            labels: Vec::new(),
        }
    }

    #[test]
    fn events_wanted_by_what_the_policy_says_now() {
        let digest: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let pushed = Scope::Pushed {
            repo: "team/app".into(),
            tags: vec!["v1".into()],
        };
        let tag_deleted = Scope::Deleted {
            repo: "team/app".into(),
            reference: "v1".into(),
            digest: digest.clone(),
        };
        let digest_deleted = Scope::Deleted {
            repo: "team/app".into(),
            reference: digest.to_string(),
            digest,
        };
        let all = policy(true, vec![]);
        assert!(wants_event(&all, &pushed));
        assert!(wants_event(&all, &tag_deleted));
        assert!(wants_event(&all, &digest_deleted));
        // Deletion turned off since: deletes are not replicated.
        let keep = policy(false, vec![]);
        assert!(wants_event(&keep, &pushed));
        assert!(!wants_event(&keep, &tag_deleted));
        // A tag filter: tag deletes checked against it, digest deletes not
        // replicated; a resource filter: no deletes.
        let tagged = policy(true, vec![filter(FilterKind::Tag, "v*")]);
        assert!(wants_event(&tagged, &tag_deleted));
        assert!(!wants_event(&tagged, &digest_deleted));
        let typed = policy(true, vec![filter(FilterKind::Resource, "image")]);
        assert!(!wants_event(&typed, &tag_deleted));
        // A label filter: the labels went with the artifact, so no deletes.
        let labelled = policy(
            true,
            vec![Filter::labels(vec!["release".into()], "matches").unwrap()],
        );
        assert!(!wants_event(&labelled, &tag_deleted));
        assert!(!wants_event(&labelled, &digest_deleted));
        // Another repository, a disabled policy, a pull-mode policy.
        let other = policy(true, vec![filter(FilterKind::Name, "other/**")]);
        assert!(!wants_event(&other, &pushed));
        let mut off = policy(true, vec![]);
        off.spec.enabled = false;
        assert!(!wants_event(&off, &pushed));
        let mut pull = policy(true, vec![]);
        pull.spec.src_registry = Some(2);
        assert!(!wants_event(&pull, &pushed));
    }
}
