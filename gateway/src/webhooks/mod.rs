//! Webhooks: a project's events, sent to the HTTP targets of its
//! policies.
//!
//! - this module: [`Webhooks`], which turns an event into queued
//!   deliveries (one per target of each policy that wants it).
//! - `payload`: Harbor's payloads, `Default` and `CloudEvents`.
//! - `sender`: the task that drains the queue, with retries.
//!
//! An event is queued in the database before the request that caused it
//! answers (so a restart loses nothing) but sent later, off its path: a
//! slow or dead receiver never slows a push. Which policies a project has
//! is cached; every instance drops that cache when any changes a policy
//! (`Change::WebhookPolicies`).

pub mod payload;
mod sender;

use std::sync::Arc;
use std::time::Duration;

use berth_storage::changes::Epoch;
use berth_storage::webhooks::queue::Delivery;
use berth_storage::webhooks::{EventType, Policy};
use berth_storage::Registry;
use tokio::sync::Notify;

use crate::error::cause_chain;
pub use payload::Occurrence;

/// How long a project's cached policies serve events; bounds what a lost
/// announcement can delay.
const POLICIES_FRESH: Duration = Duration::from_secs(10);

pub struct Webhooks {
    registry: Arc<Registry>,
    /// `external_url`'s host, which payloads name when it is set.
    external_host: Option<String>,
    /// Each project's enabled policies.
    policies: moka::sync::Cache<i64, Arc<Vec<Policy>>>,
    epoch: Epoch,
    /// Rung when this process queued something: the sender looks at once.
    queued: Arc<Notify>,
}

impl Webhooks {
    pub fn new(registry: Arc<Registry>, external_url: Option<&str>) -> Webhooks {
        Webhooks {
            registry,
            external_host: external_url.map(payload::host_of),
            policies: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(POLICIES_FRESH)
                .build(),
            epoch: Epoch::default(),
            queued: Arc::new(Notify::new()),
        }
    }

    /// The registry's host as payloads name it: `external_url`'s, else
    /// none (a request's `Host` is the client's to choose, and a receiver
    /// may deploy from what a payload names).
    pub fn host(&self) -> String {
        self.external_host.clone().unwrap_or_default()
    }

    /// Starts the sender (once per process).
    pub fn start(self: &Arc<Self>) {
        tokio::spawn(sender::run(self.registry.clone(), self.queued.clone()));
    }

    /// A policy was created, changed or deleted (here or, announced, in
    /// another process).
    pub fn policies_changed(&self) {
        self.epoch.bump();
        self.policies.invalidate_all();
    }

    /// The project's enabled policies that want `event`.
    async fn wanting(&self, project_id: i64, event: EventType) -> Vec<Policy> {
        let policies = match self.policies.get(&project_id) {
            Some(p) => p,
            None => {
                let seen = self.epoch.current();
                match self
                    .registry
                    .meta()
                    .enabled_webhook_policies(project_id)
                    .await
                {
                    Ok(p) => {
                        let p = Arc::new(p);
                        self.epoch.fill(&self.policies, project_id, p.clone(), seen);
                        p
                    }
                    Err(e) => {
                        tracing::warn!(project_id, error = %cause_chain(&e), "cannot read webhook policies; an event was not sent");
                        return Vec::new();
                    }
                }
            }
        };
        policies
            .iter()
            .filter(|p| p.wants(event))
            .cloned()
            .collect()
    }

    /// Whether any policy of the project wants `event` (so that building
    /// an event's data can be skipped).
    pub async fn wants(&self, project_id: i64, event: EventType) -> bool {
        !self.wanting(project_id, event).await.is_empty()
    }

    /// Queues `o` for every policy of its project that wants it. Never
    /// fails the caller: what cannot be queued is logged.
    pub async fn notify(&self, o: &Occurrence) {
        for policy in self.wanting(o.project_id, o.event).await {
            let deliveries: Vec<Delivery> = policy
                .spec
                .targets
                .iter()
                .map(|t| Delivery {
                    address: t.address.clone(),
                    receiver: receiver(&t.address),
                    format: t.payload_format,
                    payload: payload::render(o, t.payload_format, policy.id),
                })
                .collect();
            match self
                .registry
                .meta()
                .queue_webhook(policy.id, o.event, &deliveries)
                .await
            {
                Ok(Some(_)) => self.queued.notify_one(),
                Ok(None) => {
                    tracing::warn!(policy = policy.id, event = o.event.as_str(), "a webhook policy holds too many undelivered events (is its receiver down?); an event was dropped")
                }
                Err(e) => {
                    tracing::warn!(policy = policy.id, event = o.event.as_str(), error = %cause_chain(&e), "cannot queue a webhook event; it is lost")
                }
            }
        }
    }
}

/// A target address's receiver: its scheme, host and port (addresses are
/// checked URLs; one that no longer parses is its own receiver).
fn receiver(address: &str) -> String {
    reqwest::Url::parse(address)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| address.to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn receivers_are_origins() {
        assert_eq!(
            super::receiver("https://Hooks.Example.org:443/a/b?c"),
            "https://hooks.example.org"
        );
        assert_eq!(
            super::receiver("http://127.0.0.1:9000/slow1"),
            super::receiver("http://127.0.0.1:9000/slow2")
        );
    }
}
