//! The registry's operations, as the gateway's handlers call them: each one
//! checks what the protocol requires and keeps the blob store and the
//! metadata database in step.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::blobs::{BlobStore, OpenBlob};
use crate::cache::{BlobAt, Caches};
use crate::changes::Change;
use crate::error::StorageError;
use crate::meta::{Meta, Referrer, StoredManifest};
use crate::objects::upload::{self, ObjectWriter};
use crate::objects::{blob_key, ObjectSettings, Objects};
use crate::oci::{manifest, Algorithm, Digest, Reference, RepoName, Tag, MAX_MANIFEST_SIZE};
use crate::uploads::{ChunkWriter, FileWriter, Sessions, Writer};
use crate::upstreams::ProjectUpstream;

/// Where the registry keeps its state.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The filesystem store; with an object store, scratch files only.
    pub blob_root: PathBuf,
    /// Blobs on an S3-compatible object store instead of `blob_root`.
    pub objects: Option<ObjectSettings>,
    pub database_url: String,
    /// The key file that seals stored secrets (created on the first start).
    pub secret_key_file: PathBuf,
    /// How long GC leaves an unreferenced blob after it was last pushed,
    /// mounted or linked (and an untagged manifest after its push).
    pub gc_grace: Duration,
    /// Upload sessions idle longer than this are purged.
    pub upload_purge_age: Duration,
    pub role: Role,
}

/// What kind of process opens the registry: several share one data
/// directory, and only the server owns transient files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `berth serve`: owns upload sessions and upstream fetches, purges
    /// abandoned ones and clears fetches dead processes left.
    Server,
    /// A command run beside a server (`berth gc`, `berth user`): it
    /// removes nothing a live server may be writing.
    Tool,
}

/// What authorization needs to know about a project, cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectInfo {
    pub id: i64,
    pub public: bool,
    /// Set for proxy-cache and passthrough projects.
    pub upstream: Option<ProjectUpstream>,
}

pub struct Registry {
    pub(crate) blobs: BlobStore,
    /// Set when blobs live in an object store (then `blobs` holds only
    /// scratch files).
    pub(crate) objects: Option<Arc<Objects>>,
    pub(crate) meta: Meta,
    pub(crate) sessions: Sessions,
    pub(crate) caches: Caches,
    pub(crate) gc_grace: Duration,
    pub(crate) upload_purge_age: Duration,
    /// Open upload sessions allowed per user (0: no limit).
    max_uploads_per_user: u32,
    max_manifest_size: usize,
    pub(crate) role: Role,
    /// Blobs this process touched lately on a HEAD or GET (a throttle on
    /// those writes, not state: see `keep_alive`).
    recently_touched: moka::sync::Cache<Digest, ()>,
}

/// An open upload session id, parsed from the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadId(Uuid);

impl std::str::FromStr for UploadId {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(UploadId)
            .map_err(|_| StorageError::UploadUnknown)
    }
}

impl std::fmt::Display for UploadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Registry {
    pub async fn open(settings: &Settings) -> Result<Registry, StorageError> {
        let blobs = BlobStore::open(&settings.blob_root)?;
        let objects = settings
            .objects
            .as_ref()
            .map(Objects::connect)
            .transpose()?;
        let mut meta = Meta::connect(&settings.database_url).await?;
        meta.open_secrets(&settings.secret_key_file).await?;
        let sessions = Sessions::new(blobs.uploads_dir());
        // A GC killed mid-delete may have left files in the trash: put back
        // those whose rows survived before anything is served.
        crate::gc::reconcile_trash(&blobs, &meta).await?;
        let registry = Registry {
            blobs,
            objects,
            meta,
            sessions,
            caches: Caches::new(),
            gc_grace: settings.gc_grace,
            upload_purge_age: settings.upload_purge_age,
            max_uploads_per_user: 0,
            max_manifest_size: MAX_MANIFEST_SIZE,
            role: settings.role,
            recently_touched: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live((settings.gc_grace / 2).max(Duration::from_millis(1)))
                .build(),
        };
        if registry.role == Role::Server {
            registry.clear_stale_fetches()?;
        }
        Ok(registry)
    }

    /// Caps the upload sessions each user may hold open at once (0: no
    /// limit). Every session keeps a file and a row until it ends or is
    /// purged; without a cap one client can pile them up.
    pub fn with_max_uploads_per_user(mut self, limit: u32) -> Registry {
        self.max_uploads_per_user = limit;
        self
    }

    /// Caps the size of a manifest pushed or cached, in bytes (default
    /// [`MAX_MANIFEST_SIZE`], as distribution's).
    pub fn with_max_manifest_size(mut self, limit: usize) -> Registry {
        self.max_manifest_size = limit;
        self
    }

    /// The largest manifest accepted, in bytes.
    pub fn max_manifest_size(&self) -> usize {
        self.max_manifest_size
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    pub(crate) fn blob_store(&self) -> &BlobStore {
        &self.blobs
    }

    /// Drops what `change` makes stale here and announces it to the other
    /// processes (after the change was committed).
    pub fn changed(&self, change: Change) {
        self.caches.apply(&change);
        self.meta.announce_later(change);
    }

    /// Returns once every instance has applied the changes this one made
    /// so far: a request calls it before it answers when the client may
    /// ask another instance next (deletes, a tag pushed). At once on
    /// SQLite.
    pub async fn settle(&self) {
        self.meta.settle().await;
    }

    /// Drops what a change another process announced makes stale here.
    pub fn apply_change(&self, change: &Change) {
        self.caches.apply(change);
    }

    pub(crate) fn forget_tag(&self, repo: &RepoName, tag: &Tag) {
        self.changed(Change::Tag {
            repo: repo.to_string(),
            tag: tag.to_string(),
        });
    }

    pub(crate) fn forget_blob_link(&self, repo: &RepoName, digest: &Digest) {
        self.changed(Change::BlobLink {
            repo: repo.to_string(),
            digest: digest.to_string(),
        });
    }

    /// Claims background pass `name` for this process for the coming
    /// `period`: true for one process of the cluster per period (see
    /// `passes`).
    pub async fn claim_pass(&self, name: &str, period: Duration) -> Result<bool, StorageError> {
        self.meta
            .claim_pass(name, &crate::owner::this_process(), period)
            .await
    }

    /// `server.upload_purge_age`, for the task that purges uploads.
    pub fn upload_purge_age(&self) -> Duration {
        self.upload_purge_age
    }

    /// Whether the blob store takes writes: a probe file is created,
    /// synced and removed in its uploads directory (for health checks).
    pub async fn probe_storage(&self) -> Result<(), StorageError> {
        if let Some(objects) = &self.objects {
            return objects.probe().await;
        }
        let path = self
            .blobs
            .uploads_dir()
            .join(format!(".probe-{}", Uuid::new_v4().simple()));
        tokio::task::spawn_blocking(move || {
            let result = std::fs::write(&path, b"probe")
                .and_then(|()| std::fs::File::open(&path)?.sync_all());
            let _ = std::fs::remove_file(&path);
            result.map_err(StorageError::io(format!("writing {}", path.display())))
        })
        .await
        .map_err(|e| StorageError::Io {
            context: "storage probe".into(),
            source: std::io::Error::other(e.to_string()),
        })?
    }

    // ---- blobs ----

    /// Size of a blob readable in `repo`.
    pub async fn stat_blob(&self, repo: &RepoName, digest: &Digest) -> Result<u64, StorageError> {
        Ok(self.locate_blob(repo, digest).await?.0)
    }

    /// Size and object-store location of a blob readable in `repo`.
    async fn locate_blob(&self, repo: &RepoName, digest: &Digest) -> Result<BlobAt, StorageError> {
        let key = (repo.clone(), digest.clone());
        let found = match self.caches.blob_links.get(&key) {
            Some(found) => found,
            None => {
                let epoch = self.caches.epoch.current();
                let (size, location) = self
                    .meta
                    .blob_in_repo(repo, digest)
                    .await?
                    .ok_or_else(|| StorageError::BlobUnknown(digest.clone()))?;
                let found = (size, location.map(Arc::from));
                self.caches
                    .epoch
                    .fill(&self.caches.blob_links, key, found.clone(), epoch);
                found
            }
        };
        self.keep_alive(digest).await?;
        Ok(found)
    }

    /// A client told that a blob exists may skip its upload and send a
    /// manifest next: the blob is touched so that GC leaves it for at
    /// least half the grace window. At most one write per blob per half
    /// window in this process.
    async fn keep_alive(&self, digest: &Digest) -> Result<(), StorageError> {
        if self.gc_grace.is_zero() || self.recently_touched.contains_key(digest) {
            return Ok(());
        }
        match self.meta.touch_blob(digest).await {
            Ok(()) => {
                self.recently_touched.insert(digest.clone(), ());
                Ok(())
            }
            // A full disk must not stop pulls; nothing can be pushed
            // against the blob meanwhile either (that write fails too).
            Err(e) if e.is_storage_full() => {
                tracing::warn!(%digest, error = %e, "the disk is full: the blob was served without renewing its GC grace");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// A project's id and whether it is public (`None`: no such project),
    /// cached: every authorization asks.
    pub async fn project_info(&self, project: &str) -> Result<Option<ProjectInfo>, StorageError> {
        if let Some(p) = self.caches.projects.get(project) {
            return Ok(p);
        }
        let epoch = self.caches.epoch.current();
        let p = self.meta.project(project).await?.map(|row| ProjectInfo {
            id: row.id,
            public: row.public,
            upstream: row.upstream,
        });
        self.caches
            .epoch
            .fill(&self.caches.projects, project.to_owned(), p, epoch);
        Ok(p)
    }

    /// Drops a project from the cache after it was created, changed or
    /// deleted here; returns once every instance has dropped it.
    pub async fn forget_project(&self, project: &str) {
        self.changed(Change::Project {
            name: project.to_owned(),
        });
        self.settle().await;
    }

    /// Drops cached manifests and blob links, after repositories were
    /// deleted wholesale (a project deletion); returns once every instance
    /// has dropped them.
    pub async fn forget_content(&self) {
        self.changed(Change::Content);
        self.settle().await;
    }

    /// Opens a blob readable in `repo`.
    pub async fn open_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<OpenBlob, StorageError> {
        let (size, location) = self.locate_blob(repo, digest).await?;
        if let Some(objects) = &self.objects {
            let key = blob_key(digest, location.as_deref());
            return Ok(OpenBlob::object(objects.clone(), key, size));
        }
        if let Some((file, size)) = self.blobs.open_blob(digest)? {
            return Ok(OpenBlob::file(file, size));
        }
        // A GC process killed between moving the file to its trash and
        // committing leaves the row and the file apart: put it back now
        // rather than at the next GC or start.
        crate::gc::settle_from_trash(&self.blobs, &self.meta, digest).await?;
        let (file, size) = self
            .blobs
            .open_blob(digest)?
            .ok_or_else(|| StorageError::BlobUnknown(digest.clone()))?;
        Ok(OpenBlob::file(file, size))
    }

    /// Settles what killed GC runs left in the trash (see `gc`); the
    /// server does this now and then, in case no GC or start comes soon.
    pub async fn reconcile_gc_trash(&self) -> Result<(), StorageError> {
        crate::gc::reconcile_trash(&self.blobs, &self.meta).await
    }

    pub async fn delete_blob(&self, repo: &RepoName, digest: &Digest) -> Result<(), StorageError> {
        let unlinked = self.meta.unlink_blob(repo, digest).await?;
        self.forget_blob_link(repo, digest);
        self.settle().await;
        if unlinked {
            Ok(())
        } else {
            Err(StorageError::BlobUnknown(digest.clone()))
        }
    }

    /// Links an existing blob into `repo` from `from`. Returns false when
    /// the source does not have it (the client then uploads instead).
    pub async fn mount_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: &RepoName,
    ) -> Result<bool, StorageError> {
        // On the filesystem a row may outlive its file (a GC killed at the
        // wrong moment); an object store's rows are the truth.
        if self.objects.is_none() && !self.blobs.exists(digest) {
            return Ok(false);
        }
        let mounted = self.meta.mount_blob(repo, digest, from).await?;
        if mounted.is_some() {
            self.caches
                .blob_links
                .invalidate(&(repo.clone(), digest.clone()));
        }
        Ok(mounted.is_some())
    }

    /// Repositories holding `digest`, candidates for a mount without `from`.
    pub async fn repos_with_blob(&self, digest: &Digest) -> Result<Vec<RepoName>, StorageError> {
        self.meta.repos_with_blob(digest, 100).await
    }

    // ---- uploads ----

    /// Starts an upload session owned by nobody (not counted against any
    /// user's limit): for berth's own uploads.
    pub async fn start_upload(&self, repo: &RepoName) -> Result<UploadId, StorageError> {
        self.start_upload_of(repo, None).await
    }

    /// Starts an upload session for `owner`, within the per-user limit.
    pub async fn start_upload_as(
        &self,
        repo: &RepoName,
        owner: &str,
    ) -> Result<UploadId, StorageError> {
        self.start_upload_of(repo, Some(owner)).await
    }

    async fn start_upload_of(
        &self,
        repo: &RepoName,
        owner: Option<&str>,
    ) -> Result<UploadId, StorageError> {
        let id = Uuid::new_v4();
        // The row first: a refused session leaves no file behind.
        self.meta
            .insert_upload(&id.to_string(), repo, owner, self.max_uploads_per_user)
            .await?;
        if self.objects.is_none() {
            if let Err(e) = self.sessions.create_file(id) {
                let _ = self.meta.delete_upload(&id.to_string()).await;
                return Err(e);
            }
        }
        Ok(UploadId(id))
    }

    async fn check_upload(&self, repo: &RepoName, id: UploadId) -> Result<(), StorageError> {
        if self.meta.upload_in_repo(&id.to_string(), repo).await? {
            Ok(())
        } else {
            Err(StorageError::UploadUnknown)
        }
    }

    /// Bytes received so far: what the file holds, even while a chunk is
    /// being written (no need to wait for it).
    pub async fn upload_len(&self, repo: &RepoName, id: UploadId) -> Result<u64, StorageError> {
        self.check_upload(repo, id).await?;
        if self.objects.is_some() {
            return Ok(upload::load(&self.meta, &id.to_string()).await?.0);
        }
        self.sessions.len(id.0)
    }

    /// Opens an upload for appending one request body. `start`, when the
    /// client sent a Content-Range, must equal the current length.
    pub async fn append(
        &self,
        repo: &RepoName,
        id: UploadId,
        start: Option<u64>,
    ) -> Result<ChunkWriter, StorageError> {
        self.check_upload(repo, id).await?;
        let mut guard = self.sessions.lock(id.0).await;
        if let Some(objects) = &self.objects {
            let writer =
                ObjectWriter::open(objects.clone(), self.meta.clone(), id.0, start, guard).await?;
            return Ok(ChunkWriter(Writer::Object(Box::new(writer))));
        }
        // The file, not memory: another process may have appended a chunk
        // this one never saw (a retried PATCH), and a chunk must not be
        // accepted twice.
        let len = self.sessions.len(id.0)?;
        if let Some(start) = start {
            if start != len {
                return Err(StorageError::UploadOffsetMismatch {
                    expected: len,
                    got: start,
                });
            }
        }
        self.sessions.check_progress(id.0, &mut guard).await?;
        let writer = FileWriter::new(guard, self.sessions.path(id.0));
        Ok(ChunkWriter(Writer::File(writer)))
    }

    /// Ends a chunk; returns the upload's length.
    pub async fn end_chunk(&self, id: UploadId, writer: ChunkWriter) -> Result<u64, StorageError> {
        let writer = match writer.0 {
            Writer::File(w) => w,
            Writer::Object(w) => return w.finish().await,
        };
        let guard = self.end_if_full(id, writer.finish().await).await?;
        let len = self.sessions.len(id.0);
        drop(guard);
        len
    }

    /// A write that ran out of space ends its upload: the bytes written
    /// so far hold space others need (pulls, the database), and the client
    /// must start again once space is freed. The file goes first; the row,
    /// which needs the database to write, may have to wait for the purge.
    async fn end_if_full<T>(
        &self,
        id: UploadId,
        result: Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        if result.as_ref().is_err_and(StorageError::is_storage_full) {
            self.sessions.forget(id.0);
            let _ = self.meta.delete_upload(&id.0.to_string()).await;
        }
        result
    }

    /// Verifies the upload against `digest` and commits it as a blob of
    /// `repo`. Returns the blob's size.
    pub async fn complete_upload(
        &self,
        repo: &RepoName,
        id: UploadId,
        writer: ChunkWriter,
        digest: &Digest,
    ) -> Result<u64, StorageError> {
        let writer = match writer.0 {
            Writer::File(w) => w,
            Writer::Object(w) => return self.complete_object_upload(repo, id, *w, digest).await,
        };
        let mut guard = self.end_if_full(id, writer.finish().await).await?;
        let path = self.sessions.path(id.0);
        let expected = digest.clone();
        // Hash check and fsync happen here, outside the database lock; the
        // rename into place happens in `commit_blob`, under it. The hash
        // in memory is used only if the file is exactly as this process
        // left it; otherwise the file itself is hashed, so the digest is
        // always checked against the bytes that get placed.
        let (guard, verified) = tokio::task::spawn_blocking(move || {
            let verified = (|| -> Result<u64, StorageError> {
                let (len, actual, file) =
                    Sessions::verify(&mut guard, &path, expected.algorithm())?;
                if actual != expected {
                    return Err(StorageError::DigestMismatch { expected, actual });
                }
                BlobStore::sync_upload(&file, &expected)?;
                Ok(len)
            })();
            (guard, verified)
        })
        .await
        .map_err(|e| StorageError::Io {
            context: "committing upload".into(),
            source: std::io::Error::other(e),
        })?;
        match verified {
            Ok(size) => {
                let blobs = self.blobs.clone();
                let (temp, placed) = (self.sessions.path(id.0), digest.clone());
                let linked = self
                    .meta
                    .commit_blob(repo, digest, size, move || blobs.place(&temp, &placed))
                    .await;
                // Over the quota the session ends too: its bytes were
                // placed in the store, so it cannot be completed again
                // (unreferenced bytes are garbage collection's).
                if matches!(linked, Err(StorageError::QuotaExceeded(_))) {
                    self.finish_session(id).await?;
                }
                self.end_if_full(id, linked).await?;
                self.finish_session(id).await?;
                drop(guard);
                Ok(size)
            }
            Err(e) => {
                // A bad digest ends the session: its bytes can never become
                // the blob the client meant.
                if matches!(e, StorageError::DigestMismatch { .. }) {
                    self.finish_session(id).await?;
                }
                let ended = self.end_if_full(id, Err(e)).await;
                drop(guard);
                ended
            }
        }
    }

    /// `complete_upload` on an object store: the blob is stored at its
    /// own location and recorded; a digest already stored keeps its bytes
    /// and this copy goes.
    async fn complete_object_upload(
        &self,
        repo: &RepoName,
        id: UploadId,
        writer: ObjectWriter,
        digest: &Digest,
    ) -> Result<u64, StorageError> {
        let Some(objects) = self.objects.clone() else {
            return Err(StorageError::UploadUnknown);
        };
        let (size, location) = match writer.complete(digest).await {
            Ok(done) => done,
            Err(e) => {
                if matches!(e, StorageError::DigestMismatch { .. }) {
                    self.finish_session(id).await?;
                }
                return Err(e);
            }
        };
        let recorded = self
            .meta
            .commit_located_blob(repo, digest, size, &location)
            .await;
        if crate::objects::unowned_after(&recorded) {
            // A failed delete leaves it to GC's orphan sweep.
            let _ = objects.delete(&objects.blob_path(&location)).await;
        }
        // The bytes were assembled: the session cannot be completed again.
        self.finish_session(id).await?;
        // No cache holds this link yet (a cache keeps only links found),
        // so nothing is announced, as for an upload to files.
        recorded?;
        Ok(size)
    }

    async fn finish_session(&self, id: UploadId) -> Result<(), StorageError> {
        self.meta.delete_upload(&id.0.to_string()).await?;
        self.sessions.forget(id.0);
        Ok(())
    }

    pub async fn cancel_upload(&self, repo: &RepoName, id: UploadId) -> Result<(), StorageError> {
        self.check_upload(repo, id).await?;
        let guard = self.sessions.lock(id.0).await;
        if let Some(objects) = &self.objects {
            // A claimed one too: its final PUT failed or was killed.
            let (_, state) = upload::load_any(&self.meta, &id.to_string()).await?;
            upload::discard(objects, &id.to_string(), Some(&state)).await?;
        }
        self.finish_session(id).await?;
        drop(guard);
        Ok(())
    }

    // ---- manifests ----

    /// Stores a manifest under `reference` (and any extra tags). Returns its
    /// digest and subject.
    pub async fn put_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        content_type: Option<&str>,
        content: &[u8],
        extra_tags: &[Tag],
    ) -> Result<(Digest, Option<Digest>), StorageError> {
        if content.len() > self.max_manifest_size {
            return Err(StorageError::ManifestTooLarge {
                limit: self.max_manifest_size,
            });
        }
        let parsed = manifest::parse(content_type, content)?;
        let digest = match reference {
            Reference::Digest(d) => {
                let actual = Digest::compute(d.algorithm(), content);
                if &actual != d {
                    return Err(StorageError::DigestMismatch {
                        expected: d.clone(),
                        actual,
                    });
                }
                actual
            }
            Reference::Tag(_) => Digest::compute(Algorithm::Sha256, content),
        };
        let mut tags: Vec<Tag> = extra_tags.to_vec();
        if let Reference::Tag(t) = reference {
            tags.push(t.clone());
        }
        self.meta
            .put_manifest(repo, &digest, &parsed, content, &tags)
            .await?;
        for tag in &tags {
            self.forget_tag(repo, tag);
        }
        if !tags.is_empty() {
            // A tag that moved must not be served from the old place.
            self.settle().await;
        }
        Ok((digest, parsed.subject))
    }

    pub async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<Arc<StoredManifest>, StorageError> {
        let cached = match reference {
            Reference::Tag(t) => self.caches.by_tag.get(&(repo.clone(), t.clone())),
            Reference::Digest(d) => self.caches.by_digest.get(&(repo.clone(), d.clone())),
        };
        if let Some(m) = cached {
            return Ok(m);
        }
        let epoch = self.caches.epoch.current();
        match self.meta.get_manifest(repo, reference).await? {
            Some(m) => {
                let m = Arc::new(m);
                let caches = &self.caches;
                match reference {
                    Reference::Tag(t) => caches.epoch.fill(
                        &caches.by_tag,
                        (repo.clone(), t.clone()),
                        m.clone(),
                        epoch,
                    ),
                    Reference::Digest(d) => caches.epoch.fill(
                        &caches.by_digest,
                        (repo.clone(), d.clone()),
                        m.clone(),
                        epoch,
                    ),
                }
                Ok(m)
            }
            None if !self.meta.repo_exists(repo).await? => {
                Err(StorageError::NameUnknown(repo.clone()))
            }
            None => Err(StorageError::ManifestUnknown(reference.to_string())),
        }
    }

    /// Deletes a manifest (by digest: with its tags) or just a tag.
    pub async fn delete_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<(), StorageError> {
        let deleted = match reference {
            Reference::Digest(d) => {
                let deleted = self.meta.delete_manifest(repo, d).await?;
                self.changed(Change::Manifest {
                    repo: repo.to_string(),
                    digest: d.to_string(),
                });
                // Which tags pointed here is not known without a query;
                // deletes are rare, so drop every cached tag.
                self.changed(Change::AnyTag);
                deleted
            }
            Reference::Tag(t) => {
                let deleted = self.meta.delete_tag(repo, t).await?;
                self.forget_tag(repo, t);
                deleted
            }
        };
        self.settle().await;
        if deleted {
            Ok(())
        } else {
            Err(StorageError::ManifestUnknown(reference.to_string()))
        }
    }

    /// A page of tags; `None` when the repository is unknown.
    pub async fn list_tags(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        n: i64,
    ) -> Result<Vec<String>, StorageError> {
        self.meta
            .list_tags(repo, last, n)
            .await?
            .ok_or_else(|| StorageError::NameUnknown(repo.clone()))
    }

    pub async fn catalog(&self, last: Option<&str>, n: i64) -> Result<Vec<String>, StorageError> {
        self.meta.catalog(last, n).await
    }

    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, StorageError> {
        self.meta.referrers(repo, subject, artifact_type).await
    }
}
