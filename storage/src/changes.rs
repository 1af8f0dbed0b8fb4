//! Changes every berth process must see at once.
//!
//! Each process keeps caches in memory (manifests by tag, blob links,
//! projects, roles, logins). When a process changes what one of them
//! holds, it drops the entry and announces the [`Change`]; on PostgreSQL
//! the announcement is a `NOTIFY` on [`CHANNEL`], and every process
//! sharing the database listens and drops the same entry. So a deleted
//! tag, a disabled user or a removed member takes effect everywhere within
//! the time a notification takes, not a cache lifetime. (On SQLite there
//! is nothing to announce to: the caches' short lifetimes bound what
//! another process on the same file may miss.)
//!
//! Caches stay caches: a lost notification delays a change by at most the
//! cache's lifetime, and a listener that lost its connection drops
//! everything ([`Change::Everything`]) before it trusts its caches again.
//!
//! A notification takes milliseconds, which is too long for a client that
//! deletes a tag through one instance and asks for it through another at
//! once (the OCI conformance suite does exactly this behind a round-robin
//! balancer). So a request whose change others must see before it answers
//! *settles* ([`Settle`]): it sends a barrier after its changes and waits
//! until every listening process acknowledged it. Notifications reach each
//! listener in the order they were sent, so a listener that acknowledges a
//! barrier has applied every change announced before it. The listeners are
//! counted in `pg_stat_activity` by their application name
//! ([`LISTENER_NAME`]); the wait is bounded ([`SETTLE_LIMIT`]), so a stuck
//! instance delays such requests but never blocks them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::StorageError;

/// The PostgreSQL channel the announcements go through.
pub const CHANNEL: &str = "berth_changes";

/// The application name of every listening connection, by which a settling
/// request counts the listeners it waits for.
pub(crate) const LISTENER_NAME: &str = "berth-listen";

/// How long a settling request waits for acknowledgements.
pub(crate) const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The barrier protocol, on the same channel as the changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Settle {
    /// Every listener acknowledges barrier `id` once it applied what came
    /// before it.
    Barrier { id: u64 },
    /// Listener `by` (an id per connection) acknowledges barrier `id`.
    Ack { id: u64, by: u64 },
}

impl Settle {
    pub(crate) fn encode(&self) -> Result<String, StorageError> {
        serde_json::to_string(self)
            .map_err(|e| StorageError::Corrupt(format!("encoding a barrier: {e}")))
    }

    pub(crate) fn decode(payload: &str) -> Option<Settle> {
        serde_json::from_str(payload).ok()
    }
}

/// The barriers this process waits on, with the listeners that
/// acknowledged each.
#[derive(Debug, Default)]
pub(crate) struct Acks {
    open: std::sync::Mutex<HashMap<u64, Waiting>>,
}

#[derive(Debug)]
struct Waiting {
    by: HashSet<u64>,
    wake: Arc<tokio::sync::Notify>,
}

impl Acks {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiting>> {
        // A panic elsewhere while holding it leaves the map usable.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts waiting for barrier `id`.
    pub(crate) fn expect(&self, id: u64) {
        self.open().insert(
            id,
            Waiting {
                by: HashSet::new(),
                wake: Arc::new(tokio::sync::Notify::new()),
            },
        );
    }

    /// Records an acknowledgement (of a barrier of this process or not).
    pub(crate) fn ack(&self, id: u64, by: u64) {
        if let Some(waiting) = self.open().get_mut(&id) {
            waiting.by.insert(by);
            waiting.wake.notify_one();
        }
    }

    /// Waits until `listeners` distinct listeners acknowledged barrier
    /// `id`, then forgets it; false if it gave up after [`SETTLE_LIMIT`].
    pub(crate) async fn wait(&self, id: u64, listeners: usize) -> bool {
        let done = tokio::time::timeout(SETTLE_LIMIT, async {
            loop {
                let wake = {
                    let open = self.open();
                    match open.get(&id) {
                        Some(w) if w.by.len() < listeners => w.wake.clone(),
                        _ => return,
                    }
                };
                // A permit stored by an `ack` since the check wakes at once.
                wake.notified().await;
            }
        })
        .await
        .is_ok();
        self.open().remove(&id);
        done
    }
}

/// What cached entries a change makes stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A tag moved or went.
    Tag { repo: String, tag: String },
    /// Some tags of unknown names moved or went (a manifest deleted by
    /// digest, GC).
    AnyTag,
    /// A manifest went.
    Manifest { repo: String, digest: String },
    /// A blob's link into a repository went.
    BlobLink { repo: String, digest: String },
    /// A project was created, changed or deleted.
    Project { name: String },
    /// Repositories went wholesale (a project or repository deletion).
    Content,
    /// Accounts, memberships or robots changed: roles and logins go.
    Access,
    /// A registry endpoint changed or went.
    Endpoint { id: i64 },
    /// The token signing key was rotated: the keys are read again.
    Keys,
    /// Announcements may have been missed: every cache goes.
    Everything,
}

impl Change {
    pub(crate) fn encode(&self) -> Result<String, StorageError> {
        serde_json::to_string(self)
            .map_err(|e| StorageError::Corrupt(format!("encoding a change: {e}")))
    }

    /// A notification's payload; `None` for one this version does not know
    /// (sent by a newer berth during a rolling upgrade).
    pub fn decode(payload: &str) -> Option<Change> {
        serde_json::from_str(payload).ok()
    }
}

/// Counts the invalidations of one cache, so that a fill computed from
/// what the database said before an invalidation is not kept after it
/// (a login checked against the old password while another instance
/// changed it would otherwise stay cached for the cache's lifetime).
///
/// A filler reads [`Epoch::current`] before it queries and stores what it
/// got with [`Epoch::fill`]; an invalidation calls [`Epoch::bump`] before
/// it clears the cache.
#[derive(Debug, Default)]
pub struct Epoch(std::sync::atomic::AtomicU64);

impl Epoch {
    pub fn current(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn bump(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether no invalidation happened since `seen` was read.
    pub fn still(&self, seen: u64) -> bool {
        self.current() == seen
    }

    /// Caches what a query begun at `seen` returned, unless an
    /// invalidation ran since. Checked after the insert: one between the
    /// check and the insert would otherwise leave the stale value in.
    pub fn fill<K, V>(&self, cache: &moka::sync::Cache<K, V>, key: K, value: V, seen: u64)
    where
        K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        cache.insert(key.clone(), value);
        if !self.still(seen) {
            cache.invalidate(&key);
        }
    }
}

/// Sends announcements in order, off the caller's path: each is sent
/// only after the one before it, so listeners get them in this order.
#[derive(Debug, Clone)]
pub(crate) struct Announcer {
    queue: mpsc::UnboundedSender<String>,
}

impl Announcer {
    /// Starts the task that sends what is queued with `send`.
    pub(crate) fn start(pool: sqlx::AnyPool) -> Announcer {
        let (queue, mut queued) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(payload) = queued.recv().await {
                if let Err(e) = notify(&pool, &payload).await {
                    // The other processes see it when their caches expire.
                    tracing::warn!(error = %e, %payload, "could not announce a change to the other berth processes");
                }
            }
        });
        Announcer { queue }
    }

    pub(crate) fn send(&self, change: &Change) {
        if let Ok(payload) = change.encode() {
            let _ = self.queue.send(payload);
        }
    }

    /// Queues barrier `id` behind every change queued so far.
    pub(crate) fn barrier(&self, id: u64) {
        if let Ok(payload) = (Settle::Barrier { id }).encode() {
            let _ = self.queue.send(payload);
        }
    }
}

/// What sends one notification; in FROM, so that the void result is
/// never decoded.
pub(crate) const NOTIFY: &str = "SELECT 1 FROM pg_notify($1, $2)";

/// Sends one notification now.
pub(crate) async fn notify(pool: &sqlx::AnyPool, payload: &str) -> Result<(), StorageError> {
    sqlx::query(NOTIFY)
        .bind(CHANNEL)
        .bind(payload)
        .execute(pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_survive_the_wire_and_unknown_ones_are_ignored() {
        for change in [
            Change::Tag {
                repo: "team/app".into(),
                tag: "v1".into(),
            },
            Change::AnyTag,
            Change::Endpoint { id: 7 },
            Change::Everything,
        ] {
            assert_eq!(Change::decode(&change.encode().unwrap()), Some(change));
        }
        assert_eq!(Change::decode(r#"{"kind":"from_the_future"}"#), None);
        assert_eq!(Change::decode("not json"), None);
        // The barrier protocol and the changes do not mistake each other.
        let barrier = Settle::Barrier { id: u64::MAX };
        let ack = Settle::Ack { id: 1, by: 2 };
        for s in [&barrier, &ack] {
            assert_eq!(Settle::decode(&s.encode().unwrap()).as_ref(), Some(s));
            assert_eq!(Change::decode(&s.encode().unwrap()), None);
        }
        assert_eq!(Settle::decode(&Change::AnyTag.encode().unwrap()), None);
    }

    #[tokio::test]
    async fn a_barrier_waits_for_every_listener_and_gives_up_in_time() {
        let acks = Acks::default();
        acks.expect(7);
        acks.ack(7, 1);
        acks.ack(7, 1);
        acks.ack(8, 2);
        let started = std::time::Instant::now();
        assert!(!acks.wait(7, 2).await, "one listener acknowledged twice");
        assert!(started.elapsed() >= SETTLE_LIMIT);
        acks.expect(9);
        acks.ack(9, 1);
        acks.ack(9, 2);
        assert!(acks.wait(9, 2).await);
        assert!(acks.open().is_empty(), "waits forget their barrier");
    }
}
