//! Settling: a request answers only once every instance applied its
//! changes.
//!
//! A notification (see `changes`) takes milliseconds, which is too long
//! for a client that deletes a tag through one instance and asks for it
//! through another at once (the OCI conformance suite does exactly this
//! behind a round-robin balancer). So a request whose change others must
//! see before it answers *settles*: it sends a barrier after its changes
//! and waits until every listening instance acknowledged it.
//! Notifications reach each listener in the order they were sent, so a
//! listener that acknowledges a barrier has applied every change announced
//! before it.
//!
//! - The listeners waited for are the connections of berth's own database
//!   role named [`LISTENER_NAME`] in `pg_stat_activity`, each by its
//!   backend pid, which is also what its acknowledgement carries: a
//!   listener that connects meanwhile (and so drops everything it cached)
//!   cannot stand in for one that was counted.
//! - Every message on the channel is signed with a secret that only
//!   berth's role can read ([`Signer`]; table `cluster_secrets`): any login
//!   to the database server may LISTEN and NOTIFY, and must not be able to
//!   forge a barrier (each costs every instance a round trip) or an
//!   acknowledgement (which would end a wait early).
//! - A barrier is acknowledged once, and only within [`BARRIER_AGE`] of
//!   when it was sent ([`Replays`]), so replaying captured ones costs
//!   nothing.
//! - The wait is bounded ([`SETTLE_LIMIT`]): an instance that hangs with
//!   its connections open delays such requests by that much, never more.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::StorageError;

/// The application name of every listening connection.
pub(crate) const LISTENER_NAME: &str = "berth-listen";

/// How long a settling request waits for acknowledgements.
pub(crate) const SETTLE_LIMIT: Duration = Duration::from_secs(1);

/// How far a barrier's send time may be from a listener's clock (clocks
/// of the instances' hosts may differ by this much).
pub(crate) const BARRIER_AGE: Duration = Duration::from_secs(30);

/// How many recent barriers a listener remembers (more than a cluster
/// sends in [`BARRIER_AGE`], unless someone replays).
const REMEMBERED: usize = 100_000;

/// The barrier protocol, on the same channel as the changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Settle {
    /// Every listener acknowledges barrier `id` (sent at `at`, ms since
    /// the epoch) once it applied what came before it.
    Barrier { id: u64, at: i64 },
    /// The listening connection with backend pid `by` acknowledges
    /// barrier `id`.
    Ack { id: u64, by: i64 },
}

impl Settle {
    pub(crate) fn encode(&self) -> Result<String, StorageError> {
        serde_json::to_string(self)
            .map_err(|e| StorageError::Corrupt(format!("encoding a barrier: {e}")))
    }

    pub(crate) fn decode(message: &str) -> Option<Settle> {
        serde_json::from_str(message).ok()
    }
}

/// Signs and checks what goes on the channel: `<hex HMAC-SHA256>.<message>`.
#[derive(Clone)]
pub(crate) struct Signer(Arc<[u8]>);

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

impl Signer {
    pub(crate) fn new(secret: &str) -> Signer {
        Signer(secret.as_bytes().into())
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        Hmac::<Sha256>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }

    pub(crate) fn sign(&self, message: &str) -> String {
        let mut mac = self.mac();
        mac.update(message.as_bytes());
        format!("{}.{message}", hex::encode(mac.finalize().into_bytes()))
    }

    /// The message of a payload this cluster signed; `None` for anything
    /// else (sent by another login, or by an installation with another
    /// secret).
    pub(crate) fn open<'a>(&self, payload: &'a str) -> Option<&'a str> {
        let (tag, message) = payload.split_once('.')?;
        let tag = hex::decode(tag).ok()?;
        let mut mac = self.mac();
        mac.update(message.as_bytes());
        // In constant time.
        mac.verify_slice(&tag).ok()?;
        Some(message)
    }
}

/// The barriers this process waits on, with the listeners (backend pids)
/// yet to acknowledge each.
#[derive(Debug, Default)]
pub(crate) struct Acks {
    open: std::sync::Mutex<HashMap<u64, Waiting>>,
}

#[derive(Debug)]
struct Waiting {
    missing: HashSet<i64>,
    wake: Arc<tokio::sync::Notify>,
}

impl Acks {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiting>> {
        // A panic elsewhere while holding it leaves the map usable.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts waiting for the listeners `of` to acknowledge barrier `id`.
    pub(crate) fn expect(&self, id: u64, of: HashSet<i64>) {
        self.open().insert(
            id,
            Waiting {
                missing: of,
                wake: Arc::new(tokio::sync::Notify::new()),
            },
        );
    }

    /// Records an acknowledgement (of a barrier of this process or not).
    pub(crate) fn ack(&self, id: u64, by: i64) {
        if let Some(waiting) = self.open().get_mut(&id) {
            if waiting.missing.remove(&by) && waiting.missing.is_empty() {
                waiting.wake.notify_one();
            }
        }
    }

    /// Waits until every listener expected acknowledged barrier `id`,
    /// then forgets it; how many never did within [`SETTLE_LIMIT`].
    pub(crate) async fn wait(&self, id: u64) -> usize {
        let wake = match self.open().get(&id) {
            Some(w) if !w.missing.is_empty() => Some(w.wake.clone()),
            _ => None,
        };
        if let Some(wake) = wake {
            // A permit stored by the last `ack` since the check wakes it at once.
            let _ = tokio::time::timeout(SETTLE_LIMIT, wake.notified()).await;
        }
        self.open()
            .remove(&id)
            .map_or(0, |waiting| waiting.missing.len())
    }
}

/// The barriers a listener acknowledged within [`BARRIER_AGE`].
#[derive(Debug, Default)]
pub(crate) struct Replays {
    seen: HashSet<u64>,
    order: VecDeque<(i64, u64)>,
}

impl Replays {
    /// Whether barrier `id`, sent at `at`, is to be acknowledged at `now`
    /// (ms since the epoch): fresh, and not acknowledged before.
    pub(crate) fn first_time(&mut self, id: u64, at: i64, now: i64) -> bool {
        let age = i64::try_from(BARRIER_AGE.as_millis()).unwrap_or(i64::MAX);
        while let Some(&(sent, old)) = self.order.front() {
            if sent >= now.saturating_sub(age) && self.order.len() < REMEMBERED {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&old);
        }
        if at < now.saturating_sub(age) || at > now.saturating_add(age) {
            return false;
        }
        if !self.seen.insert(id) {
            return false;
        }
        self.order.push_back((at, id));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_this_cluster_signed_opens() {
        let signer = Signer::new("secret");
        let payload = signer.sign(r#"{"kind":"any_tag"}"#);
        assert_eq!(signer.open(&payload), Some(r#"{"kind":"any_tag"}"#));
        assert_eq!(Signer::new("other").open(&payload), None);
        let (tag, _) = payload.split_once('.').unwrap();
        assert_eq!(
            signer.open(&format!("{tag}.{{\"kind\":\"everything\"}}")),
            None
        );
        assert_eq!(signer.open(r#"{"kind":"barrier","id":1,"at":1}"#), None);
        assert_eq!(signer.open("zz.{}"), None);
        assert_eq!(format!("{signer:?}"), "Signer(<redacted>)");
    }

    #[test]
    fn barriers_and_changes_do_not_mistake_each_other() {
        let barrier = Settle::Barrier {
            id: u64::MAX,
            at: 5,
        };
        let ack = Settle::Ack { id: 1, by: 2 };
        for s in [&barrier, &ack] {
            assert_eq!(Settle::decode(&s.encode().unwrap()).as_ref(), Some(s));
            assert_eq!(crate::changes::Change::decode(&s.encode().unwrap()), None);
        }
        let change = crate::changes::Change::AnyTag.encode().unwrap();
        assert_eq!(Settle::decode(&change), None);
    }

    #[tokio::test]
    async fn a_wait_ends_when_every_counted_listener_acknowledged() {
        let acks = Acks::default();
        acks.expect(7, HashSet::from([10, 11]));
        acks.ack(7, 10);
        acks.ack(7, 10);
        // A listener that was not counted does not stand in for one that was.
        acks.ack(7, 12);
        acks.ack(8, 11);
        let started = std::time::Instant::now();
        assert_eq!(acks.wait(7).await, 1, "11 never acknowledged");
        assert!(started.elapsed() >= SETTLE_LIMIT);
        acks.expect(9, HashSet::from([10, 11]));
        acks.ack(9, 11);
        acks.ack(9, 10);
        assert_eq!(acks.wait(9).await, 0);
        acks.expect(10, HashSet::new());
        assert_eq!(acks.wait(10).await, 0);
        assert!(acks.open().is_empty(), "waits forget their barrier");
    }

    #[test]
    fn a_barrier_is_acknowledged_once_and_only_while_fresh() {
        let age = BARRIER_AGE.as_millis() as i64;
        let mut replays = Replays::default();
        let now = 1_000_000_000;
        assert!(replays.first_time(1, now, now));
        assert!(!replays.first_time(1, now, now + 10), "replayed");
        assert!(!replays.first_time(2, now - age - 1, now), "too old");
        assert!(
            !replays.first_time(3, now + age + 1, now),
            "from the future"
        );
        // Once it would be too old anyway, it is forgotten.
        assert!(!replays.first_time(1, now, now + age + 1));
        assert!(replays.seen.len() <= 1);
    }
}
