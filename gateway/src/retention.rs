//! Runs tag retention policies: on request (`POST
//! /retentions/{id}/executions`) and by their cron schedules.
//!
//! Storage decides what each rule keeps; this deletes the rest through the
//! management API's artifact delete (the same transaction, audit record
//! and cache invalidation), so retention can do nothing a user could not.
//! Artifacts an immutability rule protects are kept. Deleting frees no
//! bytes: garbage collection does.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use berth_storage::artifacts::ArtifactDeletion;
use berth_storage::audit::{now_ms, AuditLog, AuditRecord};
use berth_storage::retention::{retained, NewTask, Policy};
use berth_storage::webhooks::EventType;
use berth_storage::{Registry, StorageError};

use crate::webhooks::{Occurrence, Webhooks};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Who the audit log names for scheduled runs.
const SCHEDULER: &str = "retention-scheduler";

/// What a run needs: the store, the audit log, and the webhooks told
/// when it ends.
#[derive(Clone)]
pub struct Runner {
    registry: Arc<Registry>,
    audit: AuditLog,
    webhooks: Arc<Webhooks>,
    /// Policies with a run in progress in this process: a schedule does
    /// not start another on top of it.
    running: Arc<Mutex<HashSet<i64>>>,
}

impl Runner {
    pub fn new(registry: Arc<Registry>, audit: AuditLog, webhooks: Arc<Webhooks>) -> Runner {
        Runner {
            registry,
            audit,
            webhooks,
            running: Arc::default(),
        }
    }

    fn is_running(&self, policy: i64) -> bool {
        self.running
            .lock()
            .map(|r| r.contains(&policy))
            .unwrap_or(false)
    }

    fn mark(&self, policy: i64, running: bool) {
        if let Ok(mut set) = self.running.lock() {
            if running {
                set.insert(policy);
            } else {
                set.remove(&policy);
            }
        }
    }

    /// Records a new execution and runs it in the background; returns its
    /// id at once.
    pub async fn start(
        &self,
        policy: Policy,
        trigger: &'static str,
        dry_run: bool,
        operator: String,
    ) -> Result<i64, StorageError> {
        let meta = self.registry.meta();
        let execution = meta
            .start_retention_execution(policy.id, trigger, dry_run)
            .await?;
        let runner = self.clone();
        self.mark(policy.id, true);
        tokio::spawn(async move {
            let mut summary = Summary::default();
            let status = match runner
                .execute(&policy, execution, dry_run, &operator, &mut summary)
                .await
            {
                Ok(()) => "Success",
                Err(e) => {
                    tracing::error!(policy = policy.id, execution, error = %crate::error::cause_chain(&e), "retention run failed");
                    "Error"
                }
            };
            if let Err(e) = runner
                .registry
                .meta()
                .finish_retention_execution(execution, status)
                .await
            {
                tracing::error!(execution, error = %e, "cannot record the end of a retention run");
            }
            runner.mark(policy.id, false);
            if !dry_run {
                runner.tell(&policy, trigger, status, summary).await;
            }
        });
        Ok(execution)
    }

    /// Harbor's TAG_RETENTION event, for the project's webhooks.
    async fn tell(&self, policy: &Policy, trigger: &str, status: &str, summary: Summary) {
        let Some(name) = summary.project else {
            return;
        };
        if !self
            .webhooks
            .wants(policy.project_id, EventType::TagRetention)
            .await
        {
            return;
        }
        let data = serde_json::json!({
            "retention": {
                "total": summary.total,
                "retained": summary.retained,
                "hostname": self.webhooks.host(),
                "project_name": name,
                "retention_policy_id": policy.id,
                "result": status.to_uppercase(),
                "deleted_artifacts": summary.deleted,
                "deleted_count": summary.deleted_count,
            }
        });
        self.webhooks
            .notify(&Occurrence {
                event: EventType::TagRetention,
                project_id: policy.project_id,
                operator: trigger.to_owned(),
                occur_at: now(),
                data,
            })
            .await;
    }

    async fn execute(
        &self,
        policy: &Policy,
        execution: i64,
        dry_run: bool,
        operator: &str,
        summary: &mut Summary,
    ) -> Result<(), StorageError> {
        let meta = self.registry.meta();
        let Some(project) = meta.project_by_id(policy.project_id).await? else {
            return Ok(());
        };
        summary.project = Some(project.name.clone());
        let mut deleted_any = false;
        for repo in meta.retention_candidates(&project.name).await? {
            let started = now();
            let inside = repo
                .name
                .as_str()
                .split_once('/')
                .map_or("", |(_, rest)| rest);
            let Some(keep) = retained(&policy.rules, inside, &repo.candidates, started) else {
                continue;
            };
            let mut log = String::new();
            let mut kept = 0;
            let mut failed = false;
            for (candidate, keep) in repo.candidates.iter().zip(keep) {
                let tags = candidate.tags.join(",");
                let tag_refs: Vec<&str> = candidate.tags.iter().map(String::as_str).collect();
                let fate = if keep {
                    "RETAIN"
                } else if !meta
                    .protected_tags(policy.project_id, repo.name.as_str(), &tag_refs)
                    .await?
                    .is_empty()
                {
                    "RETAIN (immutable)"
                } else if dry_run {
                    "DELETE (dry run)"
                } else {
                    match self
                        .delete(
                            repo.repo_id,
                            &repo.name,
                            &candidate.digest,
                            operator,
                            &project.name,
                        )
                        .await
                    {
                        Ok(true) => {
                            deleted_any = true;
                            summary.deleted_count += 1;
                            let (namespace, name) =
                                repo.name.as_str().split_once('/').unwrap_or(("", inside));
                            if summary.deleted.len() < MAX_REPORTED {
                                summary.deleted.push(serde_json::json!({
                                "type": "image",
                                "status": "SUCCESS",
                                "name_space": namespace,
                                "repository": name,
                                "tag": tags,
                                "digest": candidate.digest,
                                }));
                            }
                            "DELETE"
                        }
                        Ok(false) => "GONE",
                        Err(StorageError::TagImmutable { .. }) => "RETAIN (immutable)",
                        Err(e) => {
                            tracing::error!(repository = %repo.name, digest = %candidate.digest, error = %e, "retention could not delete");
                            failed = true;
                            "ERROR"
                        }
                    }
                };
                if fate.starts_with("RETAIN") {
                    kept += 1;
                }
                log.push_str(&format!("{} [{tags}] {fate}\n", candidate.digest));
            }
            summary.total += repo.candidates.len() as i64;
            summary.retained += kept;
            meta.add_retention_task(
                execution,
                &NewTask {
                    repository: repo.name.to_string(),
                    status: if failed { "Error" } else { "Success" }.into(),
                    total: repo.candidates.len() as i64,
                    retained: kept,
                    log,
                    start_time: started,
                },
            )
            .await?;
        }
        if deleted_any {
            self.registry.forget_content().await;
        }
        Ok(())
    }

    /// Deletes one artifact as the API does; false if it was gone.
    async fn delete(
        &self,
        repo_id: i64,
        repo: &berth_storage::oci::RepoName,
        digest: &str,
        operator: &str,
        project: &str,
    ) -> Result<bool, StorageError> {
        let digest: berth_storage::oci::Digest = digest.parse()?;
        let outcome = self
            .registry
            .meta()
            .delete_artifact(repo_id, &digest)
            .await?;
        let deleted = matches!(outcome, ArtifactDeletion::Deleted { .. });
        self.audit.record(AuditRecord {
            op_time: now_ms(),
            username: operator.to_owned(),
            operation: "delete".into(),
            resource_type: "artifact".into(),
            resource: format!("{repo}@{digest}"),
            project: Some(project.to_owned()),
            success: deleted,
            client_ip: None,
        });
        Ok(deleted)
    }
}

/// What a run did, for its TAG_RETENTION event.
#[derive(Debug, Default)]
struct Summary {
    /// The project's name.
    project: Option<String>,
    total: i64,
    retained: i64,
    /// Harbor's `deleted_artifacts` entries, the first `MAX_REPORTED`.
    deleted: Vec<serde_json::Value>,
    deleted_count: u64,
}

/// Deleted artifacts a TAG_RETENTION payload lists at most (it says how
/// many there were in all).
const MAX_REPORTED: usize = 1000;

/// The scheduler's job: fires scheduled policies. Several processes
/// sharing the database fire each schedule once: storage hands each
/// second to one.
#[async_trait::async_trait]
impl crate::jobs::Periodic for Runner {
    async fn due(&self, from: i64, to: i64) {
        let policies = match self.registry.meta().scheduled_retention_policies().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read retention schedules");
                return;
            }
        };
        for second in from..=to {
            for policy in &policies {
                if !policy.trigger.cron().is_some_and(|c| c.fires_at(second))
                    || self.is_running(policy.id)
                {
                    continue;
                }
                match self
                    .registry
                    .meta()
                    .claim_retention_fire(policy.id, second)
                    .await
                {
                    Ok(true) => {
                        if let Err(e) = self
                            .start(policy.clone(), "SCHEDULE", false, SCHEDULER.into())
                            .await
                        {
                            tracing::error!(policy = policy.id, error = %e, "cannot start a scheduled retention run");
                        }
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(policy = policy.id, error = %e, "cannot claim a retention schedule")
                    }
                }
            }
        }
    }
}
