//! Write locks: what each write transaction keeps other writers out of.
//!
//! Checks made inside a write transaction (a project's quota, a
//! manifest's references, GC's "unreferenced", a name's uniqueness across
//! case) hold only if no other writer changes what they read before the
//! commit. SQLite serializes every writer (`BEGIN IMMEDIATE`): one
//! process, short transactions, nothing more is needed.
//!
//! PostgreSQL runs writers of every instance side by side, so each write
//! transaction first takes transaction-scoped advisory locks that end with
//! it (also when its process dies):
//!
//! - [`Scope::All`] takes the cluster-wide lock exclusively: GC's sweeps,
//!   account and project changes, and whatever reads across projects.
//! - [`Scope::Project`] takes the cluster-wide lock shared and the
//!   project's own lock exclusively: pushes, mounts and deletes in one
//!   project. Everything they check lives in that project (its blob
//!   links, manifests, tags and quota row; a mount also reads the source
//!   repository's link, elsewhere, but only GC, which excludes them all,
//!   deletes the blob row that link needs), so pushes to different
//!   projects commit side by side on every instance, while two commits
//!   in one project still take turns, which keeps its quota exact. Only
//!   the commit takes turns, for milliseconds: the bytes of concurrent
//!   uploads stream in parallel before it.
//! - [`Scope::Owner`] is the same for one user's upload sessions (their
//!   count is limited across projects).
//! - [`Scope::Shared`] takes only the shared lock: writes that nothing
//!   checks but GC (a blob's touch).
//! - [`Scope::WebhookClaims`] is the shared lock and one lock of its own:
//!   a webhook delivery's claim checks that no other delivery to its
//!   receiver is running, which holds only if claims take turns (under
//!   READ COMMITTED, two side by side both see the receiver free).
//!
//! A transaction takes its locks once, at its start, in the order above
//! (cluster-wide first), so no two writers wait for each other in a cycle.
//!
//! Names share a key when their 32-bit hashes collide (and such names can
//! be found on purpose): their commits then take turns, as every commit
//! did under one lock. Nothing else follows from it.

use sqlx::{Any, AnyConnection, AnyPool, Connection, Transaction};

use crate::error::StorageError;
use crate::meta::Backend;
use crate::oci::RepoName;

/// The cluster-wide lock's key ("berthw"). The per-project and per-owner
/// locks use the two-key form, a key space of its own.
const CLUSTER_KEY: i64 = 0x6265_7274_6877;
/// First keys of the two-key locks.
const PROJECT_CLASS: i32 = 1;
const OWNER_CLASS: i32 = 2;
const QUEUE_CLASS: i32 = 3;
/// Second keys of the queue class.
const WEBHOOK_CLAIMS: i32 = 1;

/// What a write transaction excludes (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    All,
    Project(&'a RepoName),
    Owner(&'a str),
    Shared,
    WebhookClaims,
}

impl Scope<'_> {
    /// The two-key lock this scope holds exclusively, if any. A project
    /// is its repositories' first path component, as quotas count it.
    fn own_key(&self) -> Option<(i32, i32)> {
        match self {
            Scope::Project(repo) => {
                let name = repo.as_str();
                let project = name.split_once('/').map_or(name, |(p, _)| p);
                Some((PROJECT_CLASS, fnv1a(project)))
            }
            Scope::Owner(owner) => Some((OWNER_CLASS, fnv1a(owner))),
            Scope::WebhookClaims => Some((QUEUE_CLASS, WEBHOOK_CLAIMS)),
            Scope::All | Scope::Shared => None,
        }
    }
}

/// A stable 32-bit hash (FNV-1a) of a name: every instance, whatever its
/// build, locks the same key for it. Two names sharing a key only take
/// turns needlessly.
fn fnv1a(name: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash as i32
}

/// Begins a write transaction from `pool` holding `scope`'s locks.
pub(crate) async fn begin(
    pool: &AnyPool,
    backend: Backend,
    scope: Scope<'_>,
) -> Result<Transaction<'static, Any>, StorageError> {
    match backend {
        Backend::Sqlite => Ok(pool.begin_with("BEGIN IMMEDIATE").await?),
        Backend::Postgres => {
            let mut tx = pool.begin().await?;
            take(&mut tx, scope).await?;
            Ok(tx)
        }
    }
}

/// Begins a write transaction on `conn` holding `scope`'s locks.
pub(crate) async fn begin_on<'c>(
    conn: &'c mut AnyConnection,
    scope: Scope<'_>,
) -> Result<Transaction<'c, Any>, StorageError> {
    match Backend::of_conn(conn) {
        Backend::Sqlite => Ok(conn.begin_with("BEGIN IMMEDIATE").await?),
        Backend::Postgres => {
            let mut tx = conn.begin().await?;
            take(&mut tx, scope).await?;
            Ok(tx)
        }
    }
}

async fn take(conn: &mut AnyConnection, scope: Scope<'_>) -> Result<(), StorageError> {
    // In FROM, so that the void result is never decoded.
    let cluster = match scope {
        Scope::All => "SELECT 1 FROM pg_advisory_xact_lock($1)",
        _ => "SELECT 1 FROM pg_advisory_xact_lock_shared($1)",
    };
    sqlx::query(cluster)
        .bind(CLUSTER_KEY)
        .execute(&mut *conn)
        .await?;
    if let Some((class, key)) = scope.own_key() {
        sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1, $2)")
            .bind(class)
            .bind(key)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::meta::Meta;

    /// Long enough for a free lock to be taken on a loaded machine.
    const FREE: Duration = Duration::from_secs(20);
    /// How long a writer that must wait is watched waiting. A wait that
    /// should not happen fails the test however long it is watched.
    const WAITS: Duration = Duration::from_millis(300);

    fn repo(s: &str) -> RepoName {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    /// On PostgreSQL, with a push in `team` committing: a push in another
    /// project and a blob's touch go ahead; a second push in `team` and
    /// GC (everything) wait, then go once it commits. And while GC holds
    /// everything, a push waits for it.
    #[tokio::test]
    async fn writers_of_different_projects_go_side_by_side() {
        let url = berth_tests::postgres::shared()
            .create_database(&format!("locks_{}", uuid::Uuid::new_v4().simple()));
        let meta = Meta::connect(&url).await.expect("connect");
        let (team_a, team_b, other) = (repo("team/a"), repo("team/b/c"), repo("other/x"));

        let held = meta.write_in(Scope::Project(&team_a)).await.expect("first");
        let beside = tokio::time::timeout(FREE, meta.write_in(Scope::Project(&other)))
            .await
            .expect("a push in another project waited")
            .expect("begin");
        beside.commit().await.expect("commit");
        let touch = tokio::time::timeout(FREE, meta.write_in(Scope::Shared))
            .await
            .expect("a touch waited for a push")
            .expect("begin");
        touch.commit().await.expect("commit");

        let same = tokio::spawn({
            let meta = meta.clone();
            async move { meta.write_in(Scope::Project(&team_b)).await.map(drop) }
        });
        let all = tokio::spawn({
            let meta = meta.clone();
            async move { meta.write().await.map(drop) }
        });
        tokio::time::sleep(WAITS).await;
        assert!(!same.is_finished(), "a second push in `team` did not wait");
        assert!(!all.is_finished(), "GC did not wait for a push");
        held.commit().await.expect("commit");
        for waiter in [same, all] {
            tokio::time::timeout(FREE, waiter)
                .await
                .expect("a waiter stayed blocked after the commit")
                .expect("join")
                .expect("begin");
        }

        let everything = meta.write().await.expect("begin");
        let push = tokio::spawn({
            let meta = meta.clone();
            async move { meta.write_in(Scope::Project(&other)).await.map(drop) }
        });
        tokio::time::sleep(WAITS).await;
        assert!(!push.is_finished(), "a push did not wait for GC");
        everything.commit().await.expect("commit");
        tokio::time::timeout(FREE, push)
            .await
            .expect("the push stayed blocked after GC committed")
            .expect("join")
            .expect("begin");
    }

    #[test]
    fn a_project_is_locked_by_its_first_component() {
        let key = |s: &str| Scope::Project(&repo(s)).own_key();
        assert_eq!(key("team/app"), key("team/other/deep"));
        assert_eq!(key("team"), key("team/app"));
        assert_ne!(key("team/app"), key("teams/app"));
        assert_ne!(key("team/app"), Scope::Owner("team").own_key());
        assert_eq!(Scope::All.own_key(), None);
        assert_eq!(Scope::Shared.own_key(), None);
    }

    #[test]
    fn the_hash_is_fnv1a() {
        // Published FNV-1a 32 test vectors: the key must not change between builds.
        assert_eq!(fnv1a("") as u32, 0x811c_9dc5);
        assert_eq!(fnv1a("a") as u32, 0xe40c_292c);
        assert_eq!(fnv1a("foobar") as u32, 0xbf9c_f968);
    }
}
