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
//! Any login to the database server may LISTEN and NOTIFY on the channel,
//! so every announcement is signed with a secret only berth's role can
//! read (`settle::Signer`); what is not signed is ignored. A request that
//! other instances must see applied before it answers waits for them
//! (`settle`).

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::StorageError;
use crate::settle::{Settle, Signer};

/// The PostgreSQL channel the announcements go through.
pub const CHANNEL: &str = "berth_changes";

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
    /// A replication policy was created, changed or deleted.
    ReplicationPolicies,
    /// A webhook policy was created, changed or deleted.
    WebhookPolicies,
    /// Run-time settings changed (`/configurations`): every setting
    /// changed from its default, as stored, so that each process applies
    /// them as it hears them; `withheld` names the stored settings left
    /// out (secrets), which each process reads from the table.
    Configuration {
        values: Vec<(String, String)>,
        #[serde(default)]
        withheld: Vec<String>,
    },
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
    queue: mpsc::UnboundedSender<Outgoing>,
    signer: Signer,
}

/// A signed payload waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outgoing {
    Change(String),
    Barrier(String),
}

impl Announcer {
    /// Starts the task that sends what is queued with `send`.
    pub(crate) fn start(pool: sqlx::AnyPool, signer: Signer) -> Announcer {
        let (queue, queued) = mpsc::unbounded_channel::<Outgoing>();
        let everything = Change::Everything
            .encode()
            .map(|m| signer.sign(&m))
            .unwrap_or_default();
        tokio::spawn(pump(queued, everything, move |payload| {
            let pool = pool.clone();
            async move { notify(&pool, &payload).await }
        }));
        Announcer { queue, signer }
    }

    pub(crate) fn send(&self, change: &Change) {
        if let Ok(message) = change.encode() {
            let _ = self
                .queue
                .send(Outgoing::Change(self.signer.sign(&message)));
        }
    }

    /// Queues barrier `id`, sent at `at_ms`, behind every change queued
    /// so far.
    pub(crate) fn barrier(&self, id: u64, at_ms: i64) {
        if let Ok(message) = (Settle::Barrier { id, at: at_ms }).encode() {
            let _ = self
                .queue
                .send(Outgoing::Barrier(self.signer.sign(&message)));
        }
    }

    /// A change signed for [`notify`] now.
    pub(crate) fn signed(&self, change: &Change) -> Result<String, StorageError> {
        Ok(self.signer.sign(&change.encode()?))
    }
}

/// Sends what is queued, in order, with `send`. A change whose
/// announcement failed is owed to the others: before anything else goes
/// out they are told to drop everything (`everything`), and until they
/// have been, no barrier goes out, since its acknowledgements would claim
/// that the lost change was applied (the settling request then waits its
/// limit and answers anyway).
async fn pump<F, Fut>(mut queued: mpsc::UnboundedReceiver<Outgoing>, everything: String, send: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), StorageError>>,
{
    let mut owed = false;
    while let Some(outgoing) = queued.recv().await {
        if owed && send(everything.clone()).await.is_ok() {
            owed = false;
        }
        let payload = match outgoing {
            Outgoing::Barrier(_) if owed => continue,
            Outgoing::Barrier(p) | Outgoing::Change(p) => p,
        };
        if let Err(e) = send(payload).await {
            tracing::warn!(error = %e, "could not announce a change to the other berth processes; they will drop everything once the database answers");
            owed = true;
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
    }

    /// The announcer's order when the database fails for a while: a lost
    /// change is made up for by "everything" before anything else, and no
    /// barrier goes out while it is owed.
    #[tokio::test]
    async fn a_lost_change_is_owed_before_any_barrier() {
        use std::sync::{Arc, Mutex};
        let sent: Arc<Mutex<Vec<String>>> = Arc::default();
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (queue, queued) = mpsc::unbounded_channel();
        let send = {
            let (sent, down) = (sent.clone(), down.clone());
            move |payload: String| {
                let (sent, down) = (sent.clone(), down.clone());
                async move {
                    if down.load(std::sync::atomic::Ordering::SeqCst) {
                        return Err(StorageError::Corrupt("database down".into()));
                    }
                    sent.lock().unwrap().push(payload);
                    Ok(())
                }
            }
        };
        let change = |s: &str| Outgoing::Change(s.into());
        let barrier = |s: &str| Outgoing::Barrier(s.into());
        let pumping = tokio::spawn(pump(queued, "everything".into(), send));
        let drain = || async {
            // The pump takes what is queued in order; wait until it is idle.
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
        };
        queue.send(change("a")).unwrap();
        queue.send(barrier("b1")).unwrap();
        drain().await;
        down.store(true, std::sync::atomic::Ordering::SeqCst);
        queue.send(change("lost")).unwrap();
        drain().await;
        down.store(false, std::sync::atomic::Ordering::SeqCst);
        queue.send(barrier("b2")).unwrap();
        queue.send(change("c")).unwrap();
        queue.send(barrier("b3")).unwrap();
        drain().await;
        // Still down while the barrier came: it is not sent.
        down.store(true, std::sync::atomic::Ordering::SeqCst);
        queue.send(change("lost2")).unwrap();
        queue.send(barrier("b4")).unwrap();
        drain().await;
        down.store(false, std::sync::atomic::Ordering::SeqCst);
        queue.send(change("d")).unwrap();
        drop(queue);
        pumping.await.unwrap();
        assert_eq!(
            *sent.lock().unwrap(),
            ["a", "b1", "everything", "b2", "c", "b3", "everything", "d"]
        );
    }
}
