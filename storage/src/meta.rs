//! The metadata database: which blobs, manifests and tags each repository
//! has. Every change that must be all-or-nothing is one transaction.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Row, Transaction};

use sqlx::postgres::PgListener;

use crate::audit::now_ms;
use crate::changes::{Announcer, Change, CHANNEL};
use crate::error::StorageError;
use crate::locks::Scope;
use crate::oci::{Digest, ParsedManifest, Reference, RepoName, Tag};
use crate::secrets::Keyring;
use crate::settle::{Acks, Replays, Settle, Signer, LISTENER_NAME};

/// The database behind [`Meta`]. Queries are written once, in the SQL
/// both understand; the few that differ ask for their dialect here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: one file under the data directory.
    Sqlite,
    /// Shared by every instance of a scaled-out installation.
    Postgres,
}

impl Backend {
    /// The backend a `database.url` names.
    pub fn of_url(url: &str) -> Result<Backend, StorageError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StorageError::Corrupt(
                "database.url must start with sqlite:// or postgres://".into(),
            ))
        }
    }

    /// `sqlite` for SQLite, `postgres` for PostgreSQL, for the few
    /// statements whose dialects differ.
    pub(crate) fn pick<'a>(self, sqlite: &'a str, postgres: &'a str) -> &'a str {
        match self {
            Backend::Sqlite => sqlite,
            Backend::Postgres => postgres,
        }
    }

    /// The backend `conn` talks to.
    pub(crate) fn of_conn(conn: &AnyConnection) -> Backend {
        if conn.backend_name() == "PostgreSQL" {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

#[derive(Debug, Clone)]
pub struct Meta {
    pool: AnyPool,
    backend: Backend,
    /// PostgreSQL: where announcements of changes go, and the URL the
    /// listener connects to (it holds the password: never printed).
    announcer: Option<Announcer>,
    listen_url: Option<ListenUrl>,
    /// Barriers this process waits on, and whether its listener is
    /// connected (see `changes`).
    acks: Arc<Acks>,
    listening: Arc<std::sync::atomic::AtomicBool>,
    /// What seals and opens stored secrets (none until `open_secrets`).
    keyring: Arc<Keyring>,
}

/// Where the listener connects, and what opens the announcements it hears.
#[derive(Clone)]
struct ListenUrl(Arc<str>, Signer);

impl std::fmt::Debug for ListenUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenUrl(<redacted>)")
    }
}

/// How long a listener that lost its connection waits before retrying.
const LISTEN_RETRY: std::time::Duration = std::time::Duration::from_secs(1);
/// How long the listener waits for a notification before it checks that
/// its connection still answers, and how long it gives the check.
const LISTEN_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);

/// A random id (of a barrier, or of a listening connection).
fn rand_id() -> u64 {
    let (high, low) = uuid::Uuid::new_v4().as_u64_pair();
    high ^ low
}

/// A stored manifest, as served to clients.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub content: bytes::Bytes,
}

/// One entry of a referrers response.
#[derive(Debug, Clone, PartialEq)]
pub struct Referrer {
    pub digest: Digest,
    pub media_type: String,
    pub size: i64,
    pub artifact_type: Option<String>,
    pub annotations: Option<String>,
}

/// A `LIKE … ESCAPE '\'` pattern matching names that contain `part`
/// (any name when `None`), its own `%`, `_` and `\` taken literally.
pub(crate) fn containing(part: Option<&str>) -> String {
    format!(
        "%{}%",
        part.unwrap_or("")
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn parse_digest(s: String) -> Result<Digest, StorageError> {
    // Only digests berth parsed itself are ever written.
    s.parse()
}

impl Meta {
    /// Opens the database (creating an SQLite file if needed) and applies
    /// migrations. Several processes may do this at once: sqlx takes
    /// PostgreSQL's migration advisory lock, and SQLite's write lock
    /// serializes them.
    pub async fn connect(url: &str) -> Result<Meta, StorageError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let (url, max) = match backend {
            Backend::Sqlite => {
                if let Some(path) = url.strip_prefix("sqlite://") {
                    if let Some(dir) = Path::new(path.split('?').next().unwrap_or(path)).parent() {
                        std::fs::create_dir_all(dir)
                            .map_err(StorageError::io(format!("creating {}", dir.display())))?;
                    }
                }
                // Create the file if missing (`mode=rwc`) unless the URL says.
                let url = if url.contains("mode=") {
                    url.to_string()
                } else if url.contains('?') {
                    format!("{url}&mode=rwc")
                } else {
                    format!("{url}?mode=rwc")
                };
                (url, 8)
            }
            Backend::Postgres => (url.to_string(), 16),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .after_release(move |conn, _| {
                Box::pin(async move {
                    if backend != Backend::Sqlite {
                        return Ok(true);
                    }
                    // A COMMIT that failed for a full disk may have been
                    // rolled back by SQLite itself; sqlx's own ROLLBACK
                    // then fails and the connection keeps counting an
                    // open transaction, so every later BEGIN on it fails.
                    // Such a connection is closed, not reused. The ping
                    // first lets a rollback queued by a dropped
                    // transaction finish.
                    conn.ping().await?;
                    Ok(!conn.is_in_transaction())
                })
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL survives kill -9 with committed transactions
                        // intact and lets readers proceed while one writer
                        // commits.
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = NORMAL",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA busy_timeout = 10000",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        let (announcer, listen_url) = match backend {
            Backend::Sqlite => {
                sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
                (None, None)
            }
            Backend::Postgres => {
                sqlx::migrate!("./migrations/postgres").run(&pool).await?;
                let secret: String =
                    sqlx::query_scalar("SELECT secret FROM cluster_secrets WHERE name = 'changes'")
                        .fetch_one(&pool)
                        .await?;
                (
                    Some(Announcer::start(pool.clone(), Signer::new(&secret))),
                    Some(ListenUrl(url.as_str().into(), Signer::new(&secret))),
                )
            }
        };
        Ok(Meta {
            pool,
            backend,
            announcer,
            listen_url,
            acks: Arc::default(),
            listening: Arc::default(),
            keyring: Arc::new(Keyring::none()),
        })
    }

    /// Announces a change to the other processes sharing the database,
    /// after what the caller has committed; returns at once.
    pub fn announce_later(&self, change: Change) {
        if let Some(announcer) = &self.announcer {
            announcer.send(&change);
        }
    }

    /// Announces a change and waits until it is sent (for a command that
    /// exits right after its change).
    pub async fn announce(&self, change: &Change) -> Result<(), StorageError> {
        if let Some(announcer) = &self.announcer {
            crate::changes::notify(&self.pool, &announcer.signed(change)?).await?;
        }
        Ok(())
    }

    /// Waits until every listening process (this one included) has
    /// applied the changes this process announced so far, at most
    /// [`crate::settle::SETTLE_LIMIT`] (see `settle`). Nothing to wait for
    /// on SQLite, or while this process's own listener is not connected
    /// (it would hear no acknowledgement).
    pub async fn settle(&self) {
        let Some(announcer) = &self.announcer else {
            return;
        };
        if !self.listening.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let listeners: Vec<i32> = match sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND usename = current_user AND application_name = $1",
        )
        .bind(LISTENER_NAME)
        .fetch_all(&self.pool)
        .await
        {
            Ok(pids) => pids,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the berth processes to wait for; answering without waiting");
                return;
            }
        };
        let id = rand_id();
        self.acks
            .expect(id, listeners.iter().map(|p| i64::from(*p)).collect());
        announcer.barrier(id, crate::audit::now_ms());
        let missing = self.acks.wait(id).await;
        if missing > 0 {
            tracing::warn!(
                missing,
                of = listeners.len(),
                "not every berth process confirmed a change within {:?}; answering anyway",
                crate::settle::SETTLE_LIMIT
            );
        }
    }

    /// Calls `on_change` with every change any process announces (this
    /// one included), from a task of its own, for as long as the runtime
    /// runs; `Change::Everything` after the connection was lost. Nothing
    /// happens on SQLite.
    pub fn listen<F>(&self, on_change: F)
    where
        F: Fn(Change) + Send + Sync + 'static,
    {
        let Some(ListenUrl(url, signer)) = self.listen_url.clone() else {
            return;
        };
        // Named, so that settling requests can count the listeners.
        let sep = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{sep}application_name={LISTENER_NAME}");
        let (acks, listening) = (self.acks.clone(), self.listening.clone());
        tokio::spawn(async move {
            let mut listener: Option<PgListener> = None;
            // This connection's backend pid: its name in acknowledgements.
            let mut me: i64 = 0;
            let mut replays = Replays::default();
            loop {
                let Some(l) = listener.as_mut() else {
                    match PgListener::connect(&url).await {
                        Ok(mut l) => match l.listen(CHANNEL).await {
                            Ok(()) => {
                                let pid = sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
                                    .fetch_one(&mut l)
                                    .await;
                                match pid {
                                    Ok(pid) => {
                                        // Whatever was announced while nobody listened.
                                        on_change(Change::Everything);
                                        me = i64::from(pid);
                                        listener = Some(l);
                                        listening.store(true, std::sync::atomic::Ordering::SeqCst);
                                    }
                                    Err(e) => {
                                        tracing::warn!(error = %e, "cannot listen for changes of other berth processes; retrying");
                                        tokio::time::sleep(LISTEN_RETRY).await;
                                    }
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot listen for changes of other berth processes; retrying");
                                tokio::time::sleep(LISTEN_RETRY).await;
                            }
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot connect to listen for changes of other berth processes; retrying");
                            tokio::time::sleep(LISTEN_RETRY).await;
                        }
                    }
                    continue;
                };
                // A connection cut without a FIN or RST reaching us (a
                // firewall's idle timeout, a failover) would wait forever:
                // when nothing came for a while, the connection must answer.
                let received = match tokio::time::timeout(LISTEN_HEARTBEAT, l.try_recv()).await {
                    Ok(received) => received,
                    Err(_quiet) => {
                        let ping = sqlx::query("SELECT 1").execute(&mut *l);
                        match tokio::time::timeout(LISTEN_HEARTBEAT, ping).await {
                            Ok(Ok(_)) => continue,
                            Ok(Err(e)) => tracing::warn!(error = %e, "the connection that listens for changes does not answer; reconnecting"),
                            Err(_) => tracing::warn!("the connection that listens for changes does not answer; reconnecting"),
                        }
                        listening.store(false, std::sync::atomic::Ordering::SeqCst);
                        listener = None;
                        continue;
                    }
                };
                match received {
                    // Not signed by this cluster: not berth's, ignored.
                    Ok(Some(n)) => match signer.open(n.payload()).map(|m| (m, Settle::decode(m))) {
                        None => {}
                        // Everything before the barrier is applied: this
                        // connection got it first.
                        Some((_, Some(Settle::Barrier { id, at }))) => {
                            if !replays.first_time(id, at, crate::audit::now_ms()) {
                                continue;
                            }
                            let ack = Settle::Ack { id, by: me }.encode().unwrap_or_default();
                            let ack = signer.sign(&ack);
                            // On the listening connection itself (typed
                            // PostgreSQL, not Any), right after the barrier.
                            let sent = sqlx::query::<sqlx::Postgres>(crate::changes::NOTIFY)
                                .bind(CHANNEL)
                                .bind(ack)
                                .execute(&mut *l)
                                .await;
                            if let Err(e) = sent {
                                tracing::warn!(error = %e, "cannot acknowledge a change; reconnecting");
                                listening.store(false, std::sync::atomic::Ordering::SeqCst);
                                listener = None;
                            }
                        }
                        Some((_, Some(Settle::Ack { id, by }))) => acks.ack(id, by),
                        // One this version does not know (from a newer
                        // berth during a rolling upgrade): drop everything.
                        Some((message, None)) => {
                            on_change(Change::decode(message).unwrap_or(Change::Everything))
                        }
                    },
                    // The connection was lost; the next call reconnects.
                    Ok(None) => on_change(Change::Everything),
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the connection that listens for changes; reconnecting");
                        listening.store(false, std::sync::atomic::Ordering::SeqCst);
                        listener = None;
                        tokio::time::sleep(LISTEN_RETRY).await;
                    }
                }
            }
        });
    }

    /// What seals and opens stored secrets.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Seals and opens secrets with `keyring` from now on.
    pub fn set_keyring(&mut self, keyring: Keyring) {
        self.keyring = Arc::new(keyring);
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a write transaction that excludes every other writer (see
    /// [`crate::locks`]).
    pub(crate) async fn write(&self) -> Result<Transaction<'static, Any>, StorageError> {
        self.write_in(Scope::All).await
    }

    /// Begins a write transaction that excludes the writers `scope` names.
    pub(crate) async fn write_in(
        &self,
        scope: Scope<'_>,
    ) -> Result<Transaction<'static, Any>, StorageError> {
        crate::locks::begin(&self.pool, self.backend, scope).await
    }

    async fn repo_id(&self, repo: &RepoName) -> Result<Option<i64>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
                .bind(repo.as_str())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn ensure_repo(&self, repo: &RepoName) -> Result<i64, StorageError> {
        if let Some(id) = self.repo_id(repo).await? {
            return Ok(id);
        }
        sqlx::query("INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(repo.as_str())
            .bind(now())
            .execute(&self.pool)
            .await?;
        self.repo_id(repo)
            .await?
            .ok_or_else(|| StorageError::NameUnknown(repo.clone()))
    }

    pub async fn repo_exists(&self, repo: &RepoName) -> Result<bool, StorageError> {
        Ok(self.repo_id(repo).await?.is_some())
    }

    // ---- blobs ----

    /// Size and location (object store: see `objects`) of a blob if it is
    /// linked into `repo`.
    pub async fn blob_in_repo(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<(u64, Option<String>)>, StorageError> {
        let row: Option<(i64, Option<String>)> = sqlx::query_as(
            "SELECT b.size, b.location FROM repo_blobs rb JOIN repositories r ON r.id = rb.repo_id \
             JOIN blobs b ON b.digest = rb.digest WHERE r.name = $1 AND rb.digest = $2",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(size, location)| (size as u64, location)))
    }

    /// Repositories that hold a blob (for mounts without `from`).
    pub async fn repos_with_blob(
        &self,
        digest: &Digest,
        limit: i64,
    ) -> Result<Vec<RepoName>, StorageError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT r.name FROM repo_blobs rb JOIN repositories r ON r.id = rb.repo_id \
             WHERE rb.digest = $1 ORDER BY r.name LIMIT $2",
        )
        .bind(digest.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        names.iter().map(|n| n.parse()).collect()
    }

    /// Records a committed blob and links it into `repo`, atomically.
    pub async fn link_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
    ) -> Result<(), StorageError> {
        let repo_id = self.ensure_repo(repo).await?;
        let mut tx = self.write_in(Scope::Project(repo)).await?;
        touch_and_link(&mut tx, repo_id, digest, size, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a blob stored in the object store at `location` and links
    /// it into `repo`. False when the digest was already stored at
    /// another location, which stays: the caller deletes its copy. (True
    /// when the row names this very location: the same upload completed
    /// twice at once, on two instances.)
    pub(crate) async fn commit_located_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        location: &str,
    ) -> Result<bool, StorageError> {
        let repo_id = self.ensure_repo(repo).await?;
        let mut tx = self.write_in(Scope::Project(repo)).await?;
        let stored = touch_and_link(&mut tx, repo_id, digest, size, Some(location)).await?;
        tx.commit().await?;
        Ok(stored.as_deref() == Some(location))
    }

    /// Puts an upload's file at its content address (`place`) and records
    /// it, in one write transaction: GC deletes a blob's row and file under
    /// the same lock, so it can never remove the file between the rename
    /// and the row (see `gc`).
    pub(crate) async fn commit_blob<F>(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        place: F,
    ) -> Result<(), StorageError>
    where
        F: FnOnce() -> Result<(), StorageError> + Send + 'static,
    {
        let repo_id = self.ensure_repo(repo).await?;
        // The blocking thread is running before the lock is taken: waiting
        // for a free thread of the blocking pool (busy with parked uploads)
        // while holding the database's write lock would stall every writer.
        let (running_tx, running) = tokio::sync::oneshot::channel::<()>();
        let (locked, locked_rx) = tokio::sync::oneshot::channel::<()>();
        let placing = tokio::task::spawn_blocking(move || {
            let _ = running_tx.send(());
            match locked_rx.blocking_recv() {
                Ok(()) => place(),
                // No lock (the transaction failed to begin): nothing placed.
                Err(_) => Ok(()),
            }
        });
        let failed = |e: String| StorageError::Io {
            context: "placing blob".into(),
            source: std::io::Error::other(e),
        };
        running
            .await
            .map_err(|_| failed("the placing thread did not start".into()))?;
        let mut tx = self.write_in(Scope::Project(repo)).await?;
        let _ = locked.send(());
        placing.await.map_err(|e| failed(e.to_string()))??;
        touch_and_link(&mut tx, repo_id, digest, size, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Links a blob of `from` into `repo` if `from` still has it, in one
    /// write transaction (so a concurrent GC either deleted it first, and
    /// the mount is refused, or sees it freshly touched and keeps it).
    /// Returns its size, or `None` when `from` does not have it.
    pub async fn mount_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: &RepoName,
    ) -> Result<Option<u64>, StorageError> {
        let repo_id = self.ensure_repo(repo).await?;
        let mut tx = self.write_in(Scope::Project(repo)).await?;
        let size: Option<i64> = sqlx::query_scalar(
            "SELECT b.size FROM repo_blobs rb JOIN repositories r ON r.id = rb.repo_id \
             JOIN blobs b ON b.digest = rb.digest WHERE r.name = $1 AND rb.digest = $2",
        )
        .bind(from.as_str())
        .bind(digest.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(size) = size else {
            return Ok(None);
        };
        touch_and_link(&mut tx, repo_id, digest, size as u64, None).await?;
        tx.commit().await?;
        Ok(Some(size as u64))
    }

    /// Marks a blob as just used (GC's grace window counts from here).
    pub async fn touch_blob(&self, digest: &Digest) -> Result<(), StorageError> {
        let now = now_ms();
        // Under the shared lock: GC's check of `touched_ms` and its delete,
        // under the exclusive one, see the touch entirely before or after.
        let mut tx = self.write_in(Scope::Shared).await?;
        sqlx::query("UPDATE blobs SET touched_ms = $2 WHERE digest = $1 AND touched_ms < $2")
            .bind(digest.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a blob's link from a repository; the bytes stay until GC.
    pub async fn unlink_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<bool, StorageError> {
        // Under the project's lock, as every change of usage (quota triggers).
        let mut tx = self.write_in(Scope::Project(repo)).await?;
        let done = sqlx::query(
            "DELETE FROM repo_blobs WHERE digest = $2 AND repo_id = (SELECT id FROM repositories WHERE name = $1)",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    // ---- manifests and tags ----

    /// Stores a manifest, its references and tags in one transaction, after
    /// checking that everything it references is in the repository.
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        parsed: &ParsedManifest,
        content: &[u8],
        tags: &[Tag],
    ) -> Result<(), StorageError> {
        let repo_id = self.ensure_repo(repo).await?;
        // Checked first without the write lock (a missing reference is
        // refused without stalling other writers), then again under it:
        // a blob may have been unlinked in between. Each check is one
        // statement however many references there are.
        check_references(&mut *self.pool.acquire().await?, repo_id, parsed).await?;
        let mut tx = self.write_in(Scope::Project(repo)).await?;
        check_references(&mut tx, repo_id, parsed).await?;
        crate::quota::check_growth(&mut tx, repo_id, &digest.to_string(), content.len() as u64)
            .await?;
        crate::immutable::guard_retag(&mut tx, repo_id, tags, digest).await?;
        write_manifest(&mut tx, repo_id, digest, parsed, content, tags).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<Option<StoredManifest>, StorageError> {
        let row = match reference {
            Reference::Digest(d) => {
                sqlx::query(
                    "SELECT m.digest, m.media_type, m.content FROM manifests m JOIN repositories r ON r.id = m.repo_id \
                     WHERE r.name = $1 AND m.digest = $2",
                )
                .bind(repo.as_str())
                .bind(d.to_string())
                .fetch_optional(&self.pool)
                .await?
            }
            Reference::Tag(t) => {
                sqlx::query(
                    "SELECT m.digest, m.media_type, m.content FROM tags t JOIN repositories r ON r.id = t.repo_id \
                     JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.manifest_digest \
                     WHERE r.name = $1 AND t.name = $2",
                )
                .bind(repo.as_str())
                .bind(t.as_str())
                .fetch_optional(&self.pool)
                .await?
            }
        };
        row.map(|row| {
            Ok(StoredManifest {
                digest: parse_digest(row.try_get("digest")?)?,
                media_type: row.try_get("media_type")?,
                content: bytes::Bytes::from(row.try_get::<Vec<u8>, _>("content")?),
            })
        })
        .transpose()
    }

    /// Deletes a manifest and every tag pointing at it.
    pub async fn delete_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<bool, StorageError> {
        let Some(repo_id) = self.repo_id(repo).await? else {
            return Ok(false);
        };
        let mut tx = self.write_in(Scope::Project(repo)).await?;
        crate::immutable::guard_manifests(&mut tx, repo_id, &[digest.to_string()]).await?;
        sqlx::query("DELETE FROM tags WHERE repo_id = $1 AND manifest_digest = $2")
            .bind(repo_id)
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM manifests WHERE repo_id = $1 AND digest = $2")
            .bind(repo_id)
            .bind(digest.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool, StorageError> {
        let Some(repo_id) = self.repo_id(repo).await? else {
            return Ok(false);
        };
        let mut tx = self.write_in(Scope::Project(repo)).await?;
        crate::immutable::guard_tag(&mut tx, repo_id, tag.as_str()).await?;
        let done = sqlx::query("DELETE FROM tags WHERE repo_id = $1 AND name = $2")
            .bind(repo_id)
            .bind(tag.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Tags in lexical order after `last`, at most `n` (+1 to tell whether
    /// more follow).
    pub async fn list_tags(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        n: i64,
    ) -> Result<Option<Vec<String>>, StorageError> {
        let Some(repo_id) = self.repo_id(repo).await? else {
            return Ok(None);
        };
        let tags = sqlx::query_scalar(
            "SELECT name FROM tags WHERE repo_id = $1 AND name > $2 ORDER BY name LIMIT $3",
        )
        .bind(repo_id)
        .bind(last.unwrap_or(""))
        .bind(n)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(tags))
    }

    /// Repositories that hold at least one manifest, in lexical order.
    pub async fn catalog(&self, last: Option<&str>, n: i64) -> Result<Vec<String>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT name FROM repositories r WHERE name > $1 \
             AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id) ORDER BY name LIMIT $2",
        )
        .bind(last.unwrap_or(""))
        .bind(n)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, StorageError> {
        let rows = sqlx::query(
            "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations FROM manifests m \
             JOIN repositories r ON r.id = m.repo_id WHERE r.name = $1 AND m.subject = $2 \
             AND ($3 IS NULL OR m.artifact_type = $3) ORDER BY m.created_at, m.digest",
        )
        .bind(repo.as_str())
        .bind(subject.to_string())
        .bind(artifact_type)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(Referrer {
                    digest: parse_digest(row.try_get("digest")?)?,
                    media_type: row.try_get("media_type")?,
                    size: row.try_get("size")?,
                    artifact_type: row.try_get("artifact_type")?,
                    annotations: row.try_get("annotations")?,
                })
            })
            .collect()
    }

    // ---- uploads ----

    /// Records a new upload session of `owner`, unless `owner` already has
    /// `limit` open ones (0, or no owner: no limit). Counting and inserting
    /// are one statement under the owner's lock, so concurrent starts cannot
    /// overshoot the limit (PostgreSQL would run two such statements side
    /// by side, each counting without the other's row).
    pub async fn insert_upload(
        &self,
        id: &str,
        repo: &RepoName,
        owner: Option<&str>,
        limit: u32,
    ) -> Result<(), StorageError> {
        let repo_id = self.ensure_repo(repo).await?;
        // Counted under the owner's lock: starts of other owners go on.
        let scope = match owner {
            Some(owner) if limit > 0 => Scope::Owner(owner),
            _ => Scope::Shared,
        };
        let mut tx = self.write_in(scope).await?;
        let inserted = sqlx::query(
            "INSERT INTO uploads (id, repo_id, created_at, touched_at, owner) SELECT $1, $2, $3, $3, $4 \
             WHERE $4 IS NULL OR $5 = 0 OR (SELECT COUNT(*) FROM uploads WHERE owner = $4) < $5",
        )
        .bind(id)
        .bind(repo_id)
        .bind(now())
        .bind(owner)
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if inserted.rows_affected() == 0 {
            return Err(StorageError::TooManyUploads { limit });
        }
        Ok(())
    }

    /// Whether upload `id` exists and belongs to `repo`.
    pub async fn upload_in_repo(&self, id: &str, repo: &RepoName) -> Result<bool, StorageError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM uploads u JOIN repositories r ON r.id = u.repo_id WHERE u.id = $1 AND r.name = $2",
        )
        .bind(id)
        .bind(repo.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    pub async fn delete_upload(&self, id: &str) -> Result<(), StorageError> {
        sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Refuses a manifest whose blobs or child manifests are not in the
/// repository, naming the first one missing.
async fn check_references(
    conn: &mut AnyConnection,
    repo_id: i64,
    parsed: &ParsedManifest,
) -> Result<(), StorageError> {
    let checks = [
        (
            &parsed.blobs,
            "SELECT j.value FROM json_each($2) j WHERE NOT EXISTS \
             (SELECT 1 FROM repo_blobs b WHERE b.repo_id = $1 AND b.digest = j.value) LIMIT 1",
        ),
        (
            &parsed.manifests,
            "SELECT j.value FROM json_each($2) j WHERE NOT EXISTS \
             (SELECT 1 FROM manifests m WHERE m.repo_id = $1 AND m.digest = j.value) LIMIT 1",
        ),
    ];
    for (digests, query) in checks {
        if digests.is_empty() {
            continue;
        }
        let list =
            serde_json::to_string(&digests.iter().map(Digest::to_string).collect::<Vec<_>>())
                .map_err(|e| StorageError::Corrupt(format!("encoding references: {e}")))?;
        let missing: Option<String> = sqlx::query_scalar(query)
            .bind(repo_id)
            .bind(list)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(missing) = missing {
            return Err(StorageError::ManifestBlobUnknown(parse_digest(missing)?));
        }
    }
    Ok(())
}

/// Records a blob (or marks it reachable again: `touched_ms`, which GC's
/// grace window counts from) and links it into a repository. Runs inside
/// the caller's write transaction. Returns the location the blob's row
/// names (`None`: its content address).
pub(crate) async fn touch_and_link(
    conn: &mut AnyConnection,
    repo_id: i64,
    digest: &Digest,
    size: u64,
    location: Option<&str>,
) -> Result<Option<String>, StorageError> {
    // A row already there keeps its location: its bytes are stored. The
    // location is read back from the row this statement wrote, not from
    // an earlier SELECT: a commit of the same digest in another project
    // may run beside this one, and only the statement that waited for it
    // sees its row.
    let stored: Option<String> = sqlx::query_scalar(
        "INSERT INTO blobs (digest, size, created_at, touched_ms, location) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (digest) DO UPDATE SET touched_ms = excluded.touched_ms RETURNING location",
    )
    .bind(digest.to_string())
    .bind(size as i64)
    .bind(now())
    .bind(now_ms())
    .bind(location)
    .fetch_one(&mut *conn)
    .await?;
    // In the same transaction as the link: concurrent pushes cannot both
    // fit under the project's quota.
    crate::quota::check_growth(&mut *conn, repo_id, &digest.to_string(), size).await?;
    sqlx::query("INSERT INTO repo_blobs (repo_id, digest, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        .bind(repo_id)
        .bind(digest.to_string())
        .bind(now())
        .execute(&mut *conn)
        .await?;
    Ok(stored)
}

/// Writes a manifest's row, its references and its tags (the caller holds
/// the write transaction and has made its checks).
pub(crate) async fn write_manifest(
    conn: &mut AnyConnection,
    repo_id: i64,
    digest: &Digest,
    parsed: &ParsedManifest,
    content: &[u8],
    tags: &[Tag],
) -> Result<(), StorageError> {
    let inserted = sqlx::query(
        "INSERT INTO manifests (repo_id, digest, media_type, content, size, artifact_type, subject, annotations, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (repo_id, digest) DO UPDATE SET created_at = excluded.created_at",
    )
    .bind(repo_id)
    .bind(digest.to_string())
    .bind(parsed.kind.media_type())
    .bind(content)
    .bind(content.len() as i64)
    .bind(parsed.artifact_type.as_deref())
    .bind(parsed.subject.as_ref().map(|s| s.to_string()))
    .bind(parsed.annotations.as_deref())
    .bind(now())
    .execute(&mut *conn)
    .await?;
    // A push of a manifest already here counts as new for GC's grace
    // window (`created_at`): clients push platform manifests before their
    // index, and an untagged manifest pushed again just now must not go.
    if inserted.rows_affected() > 0 {
        // One statement per kind, not one per reference: this runs under
        // the write lock.
        for (children, is_manifest) in [(&parsed.blobs, false), (&parsed.manifests, true)] {
            if children.is_empty() {
                continue;
            }
            let list =
                serde_json::to_string(&children.iter().map(Digest::to_string).collect::<Vec<_>>())
                    .map_err(|e| StorageError::Corrupt(format!("encoding references: {e}")))?;
            sqlx::query(
                "INSERT INTO manifest_refs (repo_id, manifest_digest, child_digest, is_manifest) \
                 SELECT $1, $2, value, $3 FROM json_each($4) WHERE true ON CONFLICT DO NOTHING",
            )
            .bind(repo_id)
            .bind(digest.to_string())
            .bind(i64::from(is_manifest))
            .bind(list)
            .execute(&mut *conn)
            .await?;
        }
    }
    for tag in tags {
        sqlx::query(
            "INSERT INTO tags (repo_id, name, manifest_digest, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (repo_id, name) DO UPDATE SET manifest_digest = excluded.manifest_digest, updated_at = excluded.updated_at",
        )
        .bind(repo_id)
        .bind(tag.as_str())
        .bind(digest.to_string())
        .bind(now())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A yes/no column. Both databases store flags as integers (0 or 1), so
/// that the same statements bind and compare them.
pub(crate) fn flag(row: &AnyRow, column: &str) -> Result<bool, StorageError> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}
