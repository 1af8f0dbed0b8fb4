//! Drains the webhook queue: claims due deliveries, POSTs them, and
//! records each attempt (with its status code) in the task's log.
//!
//! A failed attempt is tried again after a backoff that doubles from
//! `FIRST_RETRY` (or after the receiver's `Retry-After`, within
//! `LONGEST_WAIT`), `ATTEMPTS` times in all. Every process runs a sender;
//! the queue's leases give each delivery to one of them at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_storage::webhooks::queue::{Claimed, Outcome};
use berth_storage::Registry;
use tokio::sync::{Notify, Semaphore};

use super::payload::content_type;
use crate::error::cause_chain;

/// Attempts per delivery (about 17 minutes of retries in all).
const ATTEMPTS: i64 = 10;
/// The wait before the second attempt; doubled for each after.
const FIRST_RETRY: i64 = 2;
/// The longest wait a receiver's `Retry-After` may ask for.
const LONGEST_WAIT: i64 = 3600;
/// A receiver has this long to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// A claim outlives the longest attempt; a sender that died frees its
/// claims when they end.
const LEASE: i64 = 20;
/// Deliveries in flight per process.
const IN_FLIGHT: usize = 8;
/// How often an idle sender looks for due retries (and for deliveries
/// queued by other processes).
const POLL: Duration = Duration::from_secs(1);

pub(super) async fn run(registry: Arc<Registry>, queued: Arc<Notify>) {
    let clients = match Clients::new() {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; webhooks will not be sent");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut idle = false;
    loop {
        if idle {
            tokio::select! {
                _ = queued.notified() => {}
                _ = tokio::time::sleep(POLL) => {
                    // A cheap read before a claim (a write) when nothing
                    // here woke the sender.
                    match registry.meta().webhook_tasks_due(0).await {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(e) => {
                            tracing::warn!(error = %cause_chain(&e), "cannot read the webhook queue");
                            continue;
                        }
                    }
                }
            }
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        match registry.meta().claim_webhook_task(LEASE).await {
            Ok(Some(task)) => {
                idle = false;
                let registry = registry.clone();
                let clients = clients.clone();
                tokio::spawn(async move {
                    deliver(&registry, &clients, task).await;
                    drop(slot);
                });
            }
            Ok(None) => idle = true,
            Err(e) => {
                tracing::warn!(error = %cause_chain(&e), "cannot claim a webhook delivery");
                idle = true;
            }
        }
    }
}

/// Sends one delivery and records the attempt.
async fn deliver(registry: &Registry, clients: &Clients, task: Claimed) {
    let meta = registry.meta();
    let policy = match meta.webhook_policy_by_id(task.policy_id).await {
        Ok(p) => p,
        Err(e) => {
            // The claim runs out and the delivery is tried again.
            tracing::warn!(task = task.id, error = %cause_chain(&e), "cannot read a webhook policy");
            return;
        }
    };
    let target = policy
        .as_ref()
        .filter(|p| p.spec.enabled)
        .and_then(|p| p.spec.targets.iter().find(|t| t.address == task.address));
    let (outcome, line) = match target {
        None => (
            Outcome::GaveUp,
            "not sent: the policy was disabled or no longer has this target".to_owned(),
        ),
        Some(target) => {
            let client = clients.get(target.skip_cert_verify);
            let started = Instant::now();
            let answer = send(client, &task, &target.auth_header).await;
            let took = started.elapsed().as_millis();
            judge(task.attempt, answer, took)
        }
    };
    let line = format!(
        "{} attempt {}: {line}",
        crate::api::request::time(berth_storage::audit::now_ms() / 1000),
        task.attempt
    );
    match meta.record_webhook_attempt(&task, outcome, &line).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(
                task = task.id,
                "a webhook delivery was taken over by another sender"
            )
        }
        Err(e) => {
            tracing::warn!(task = task.id, error = %cause_chain(&e), "cannot record a webhook delivery; it will be sent again")
        }
    }
}

/// A receiver's answer: its status and `Retry-After`, or why there was
/// none.
type Answer = Result<(reqwest::StatusCode, Option<i64>), String>;

async fn send(client: &reqwest::Client, task: &Claimed, auth: &str) -> Answer {
    let mut request = client
        .post(&task.address)
        .header("Content-Type", content_type(task.payload_format))
        .body(task.payload.clone());
    if !auth.is_empty() {
        request = request.header("Authorization", auth);
    }
    let response = request.send().await.map_err(|e| {
        // The address may carry a secret in its path (chat webhooks do):
        // the error is logged without it.
        cause_chain(&e.without_url())
    })?;
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    Ok((response.status(), retry_after))
}

/// The outcome of attempt `attempt` and its log line.
fn judge(attempt: i64, answer: Answer, took_ms: u128) -> (Outcome, String) {
    let (what, retry_after) = match answer {
        Ok((status, _)) if status.is_success() => {
            return (
                Outcome::Delivered,
                format!("delivered: {status} in {took_ms} ms"),
            )
        }
        Ok((status, retry_after)) => (format!("the receiver answered {status}"), retry_after),
        Err(e) => (format!("not delivered: {e}"), None),
    };
    if attempt >= ATTEMPTS {
        return (
            Outcome::GaveUp,
            format!("{what}; gave up after {ATTEMPTS} attempts"),
        );
    }
    let backoff = FIRST_RETRY << (attempt - 1).clamp(0, 20);
    let wait = retry_after.unwrap_or(0).clamp(0, LONGEST_WAIT).max(backoff);
    (
        Outcome::RetryAt(berth_storage::audit::now_ms() / 1000 + wait),
        format!("{what}; next attempt in {wait} s"),
    )
}

/// One client that verifies certificates and one that does not (for
/// targets with `skip_cert_verify`). Redirects are not followed: a
/// delivery goes to the address its policy names.
struct Clients {
    verifying: reqwest::Client,
    insecure: reqwest::Client,
}

impl Clients {
    fn new() -> Result<Clients, reqwest::Error> {
        let build = |insecure: bool| {
            reqwest::Client::builder()
                .timeout(TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .danger_accept_invalid_certs(insecure)
                .user_agent(concat!("berth-webhook/", env!("CARGO_PKG_VERSION")))
                .build()
        };
        Ok(Clients {
            verifying: build(false)?,
            insecure: build(true)?,
        })
    }

    fn get(&self, skip_cert_verify: bool) -> &reqwest::Client {
        if skip_cert_verify {
            &self.insecure
        } else {
            &self.verifying
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_end() {
        let ok = Ok((reqwest::StatusCode::NO_CONTENT, None));
        assert_eq!(judge(1, ok, 3).0, Outcome::Delivered);
        let now = berth_storage::audit::now_ms() / 1000;
        let refused = || Err("connection refused".to_owned());
        match judge(1, refused(), 0) {
            (Outcome::RetryAt(at), line) => {
                assert!((now + 2..=now + 3).contains(&at), "{at} {now}");
                assert!(line.contains("next attempt in 2 s"), "{line}");
            }
            other => panic!("{other:?}"),
        }
        match judge(4, refused(), 0) {
            (Outcome::RetryAt(at), _) => assert!((now + 16..=now + 17).contains(&at)),
            other => panic!("{other:?}"),
        }
        // A receiver's Retry-After is honoured when longer, within bounds.
        let busy = Ok((reqwest::StatusCode::TOO_MANY_REQUESTS, Some(30)));
        match judge(1, busy, 0) {
            (Outcome::RetryAt(at), line) => {
                assert!((now + 30..=now + 31).contains(&at));
                assert!(line.contains("429"), "{line}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(judge(ATTEMPTS, refused(), 0).0, Outcome::GaveUp);
    }
}
