//! One task of an execution: one repository copied from the source to the
//! destination, tag by tag. For each artifact the destination is asked
//! first (an equal digest is skipped, a different one replaced only with
//! `override`); each blob is looked for at the destination, mounted from
//! another repository there when it has it, and streamed otherwise, with
//! retries, resuming where the destination's upload stands when the
//! policy copies by chunk. Manifests go last, children before their
//! index, so a reader never sees a tag whose content is missing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_storage::oci::manifest::parse;
use berth_storage::oci::{Digest, ManifestKind};
use berth_storage::replication::filter::{
    has_label_filters, selects_labels, selects_resource, selects_tag,
};
use berth_storage::replication::Filter;
use bytes::Bytes;
use futures_util::StreamExt;

use super::remote::{BlobStream, Manifest};
use super::side::{empty, Side};
use crate::error::GatewayError;

/// Attempts per blob and per manifest before the task fails.
const ATTEMPTS: u32 = 6;
/// The first pause between attempts; doubled each time.
const BACKOFF: Duration = Duration::from_secs(1);
/// Bytes per request when copying by chunk.
pub const CHUNK: u64 = 16 * 1024 * 1024;

/// Why a task ended early.
#[derive(Debug)]
pub enum Halt {
    Stopped,
    Failed(String),
}

impl From<GatewayError> for Halt {
    fn from(e: GatewayError) -> Halt {
        Halt::Failed(e.to_string())
    }
}

/// What the tasks of one execution share.
pub struct Run {
    pub src: Side,
    pub dst: Side,
    pub filters: Vec<Filter>,
    pub override_existing: bool,
    pub copy_by_chunk: bool,
    /// Bytes per second per task; `None` is unlimited.
    pub speed: Option<u64>,
    pub stop: Arc<AtomicBool>,
    /// Blobs known at the destination, by the repository they are in
    /// there: the next repository mounts them instead of sending them.
    pub placed: Mutex<HashMap<Digest, String>>,
    /// One task at a time per blob: a task that finds another sending
    /// the same blob waits for it and then mounts what it placed.
    pub sending: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
    /// Totals for metrics.
    pub bytes: Arc<AtomicU64>,
    pub artifacts: AtomicU64,
}

/// A task's own progress and log, written to the database as it goes.
pub struct TaskState {
    pub bytes: AtomicU64,
    pub artifacts_done: AtomicU64,
    pub artifacts_total: AtomicU64,
    pub log: Mutex<String>,
    /// Bytes of log kept so far; past `MAX_LOG` lines are dropped.
    logged: AtomicU64,
}

/// The longest line and the most log a task keeps: a registry's messages
/// end up in them, and the registry chooses their length.
const MAX_LINE: usize = 2048;
/// The largest piece of a blob sent at once.
const PIECE: usize = 64 << 10;
const MAX_LOG: u64 = 1 << 20;

impl TaskState {
    pub fn line(&self, text: impl AsRef<str>) {
        let text = text.as_ref();
        let text = match text.char_indices().nth(MAX_LINE) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.to_owned(),
        };
        let secs = berth_storage::audit::now_ms() / 1000;
        let line = format!("{} {text}\n", crate::api::request::time(secs));
        let before = self.logged.fetch_add(line.len() as u64, Ordering::Relaxed);
        if before >= MAX_LOG {
            return;
        }
        if let Ok(mut log) = self.log.lock() {
            if before + line.len() as u64 >= MAX_LOG {
                log.push_str("(the log reached 1 MiB; later lines are not kept)\n");
            } else {
                log.push_str(&line);
            }
        }
    }

    /// The log lines not yet written.
    pub fn take_log(&self) -> String {
        self.log
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

impl Default for TaskState {
    fn default() -> TaskState {
        TaskState {
            bytes: AtomicU64::new(0),
            artifacts_done: AtomicU64::new(0),
            artifacts_total: AtomicU64::new(0),
            log: Mutex::new(String::new()),
            logged: AtomicU64::new(0),
        }
    }
}

impl Run {
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn check(&self) -> Result<(), Halt> {
        if self.stopped() {
            Err(Halt::Stopped)
        } else {
            Ok(())
        }
    }

    /// Retries `step` with backoff; a stop ends the waiting.
    async fn retry<T, F, Fut>(
        &self,
        task: &Arc<TaskState>,
        what: &str,
        mut step: F,
    ) -> Result<T, Halt>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, GatewayError>>,
    {
        let mut pause = BACKOFF;
        for attempt in 1..=ATTEMPTS {
            self.check()?;
            match step().await {
                Ok(v) => return Ok(v),
                Err(_) if self.stopped() => return Err(Halt::Stopped),
                Err(e) if attempt == ATTEMPTS => {
                    return Err(Halt::Failed(format!("{what}: {e}")));
                }
                Err(e) => {
                    task.line(format!(
                        "{what}: attempt {attempt} failed: {e}; retrying in {}s",
                        pause.as_secs()
                    ));
                    let until = Instant::now() + pause;
                    while Instant::now() < until {
                        self.check()?;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    pause *= 2;
                }
            }
        }
        Err(Halt::Failed(what.to_owned()))
    }

    /// Copies the tags of `src_repo` the filters select to `dst_repo`;
    /// `tags` limits it to those (an event).
    pub async fn copy_repository(
        &self,
        task: &Arc<TaskState>,
        src_repo: &str,
        dst_repo: &str,
        only: Option<&[String]>,
    ) -> Result<(), Halt> {
        let tags = match only {
            Some(tags) => tags.to_vec(),
            None => {
                self.retry(task, "listing tags", || self.src.tags(src_repo))
                    .await?
            }
        };
        let tags: Vec<String> = tags
            .into_iter()
            .filter(|t| selects_tag(&self.filters, t))
            .collect();
        task.artifacts_total
            .store(tags.len() as u64, Ordering::Relaxed);
        task.line(format!("{} tag(s) of {src_repo} selected", tags.len()));
        let mut prepared = false;
        for tag in &tags {
            self.check()?;
            let Some(m) = self
                .retry(task, &format!("reading {src_repo}:{tag}"), || {
                    self.src.manifest(src_repo, tag)
                })
                .await?
            else {
                task.line(format!("{src_repo}:{tag} is gone at the source; skipped"));
                task.artifacts_done.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if !selects_resource(&self.filters, resource_type(&m)) {
                task.line(format!(
                    "{src_repo}:{tag} is not of the selected resource type; skipped"
                ));
                task.artifacts_done.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if has_label_filters(&self.filters) {
                let carried = self
                    .retry(
                        task,
                        &format!("reading the labels of {src_repo}:{tag}"),
                        || self.src.labels(src_repo, &m.digest),
                    )
                    .await?;
                if !selects_labels(&self.filters, &carried) {
                    task.line(format!(
                        "{src_repo}:{tag} does not pass the label filters; skipped"
                    ));
                    task.artifacts_done.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            let there = self
                .retry(task, &format!("looking up {dst_repo}:{tag}"), || {
                    self.dst.manifest_digest(dst_repo, tag)
                })
                .await?;
            match there {
                Some(d) if d == m.digest => {
                    task.line(format!("{dst_repo}:{tag} is already {d}; skipped"));
                }
                Some(d) if !self.override_existing => {
                    task.line(format!(
                        "{dst_repo}:{tag} is {d} at the destination, not {}; left alone (override is off)",
                        m.digest
                    ));
                }
                _ => {
                    if !prepared {
                        self.retry(task, &format!("preparing {dst_repo}"), || {
                            self.dst.prepare(dst_repo)
                        })
                        .await?;
                        prepared = true;
                    }
                    self.copy_artifact(task, src_repo, dst_repo, &m).await?;
                    self.retry(task, &format!("storing {dst_repo}:{tag}"), || {
                        self.dst.put_manifest(dst_repo, tag, &m)
                    })
                    .await?;
                    self.artifacts.fetch_add(1, Ordering::Relaxed);
                    task.line(format!(
                        "copied {src_repo}:{tag} ({}) to {dst_repo}:{tag}",
                        m.digest
                    ));
                }
            }
            task.artifacts_done.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Everything a manifest needs at the destination, except itself: its
    /// blobs, or an index's child manifests with their blobs.
    async fn copy_artifact(
        &self,
        task: &Arc<TaskState>,
        src_repo: &str,
        dst_repo: &str,
        m: &Manifest,
    ) -> Result<(), Halt> {
        let parsed = parse(Some(&m.media_type), &m.content)
            .map_err(|e| Halt::Failed(format!("{src_repo}@{}: {e}", m.digest)))?;
        for child in &parsed.manifests {
            let reference = child.to_string();
            let present = self
                .retry(task, &format!("looking up {dst_repo}@{child}"), || {
                    self.dst.manifest_digest(dst_repo, &reference)
                })
                .await?;
            if present.is_some() {
                continue;
            }
            let Some(cm) = self
                .retry(task, &format!("reading {src_repo}@{child}"), || {
                    self.src.manifest(src_repo, &reference)
                })
                .await?
            else {
                return Err(Halt::Failed(format!(
                    "{src_repo}@{child}, part of {}, is missing at the source",
                    m.digest
                )));
            };
            let child_parsed = parse(Some(&cm.media_type), &cm.content)
                .map_err(|e| Halt::Failed(format!("{src_repo}@{child}: {e}")))?;
            for (blob, size) in child_parsed.blobs.iter().zip(&child_parsed.blob_sizes) {
                self.copy_blob(task, src_repo, dst_repo, blob, *size)
                    .await?;
            }
            self.retry(task, &format!("storing {dst_repo}@{child}"), || {
                self.dst.put_manifest(dst_repo, &reference, &cm)
            })
            .await?;
        }
        for (blob, size) in parsed.blobs.iter().zip(&parsed.blob_sizes) {
            self.copy_blob(task, src_repo, dst_repo, blob, *size)
                .await?;
        }
        Ok(())
    }

    /// Places blob `digest` of `size` bytes (as the manifest says) at the
    /// destination.
    async fn copy_blob(
        &self,
        task: &Arc<TaskState>,
        src_repo: &str,
        dst_repo: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<(), Halt> {
        self.check()?;
        let gate = lock(&self.sending)
            .entry(digest.clone())
            .or_default()
            .clone();
        let _turn = gate.lock().await;
        let known = self.placed.lock().ok().and_then(|p| p.get(digest).cloned());
        if known.as_deref() == Some(dst_repo) {
            return Ok(());
        }
        let what = format!("{dst_repo}@{digest}");
        if self
            .retry(task, &format!("checking {what}"), || {
                self.dst.has_blob(dst_repo, digest)
            })
            .await?
        {
            self.placed_in(digest, dst_repo);
            return Ok(());
        }
        let mounted = self
            .retry(task, &format!("mounting {what}"), || {
                self.dst.mount(dst_repo, digest, known.as_deref())
            })
            .await?;
        if mounted {
            task.line(format!("mounted {digest} into {dst_repo}"));
            self.placed_in(digest, dst_repo);
            return Ok(());
        }
        let upload = Mutex::new(Upload::default());
        let sent = self
            .retry(task, &format!("copying {what}"), || {
                self.transfer(task, src_repo, dst_repo, digest, size, &upload)
            })
            .await;
        if sent.is_err() {
            let left = std::mem::take(&mut *upload.lock().unwrap_or_else(|p| p.into_inner()));
            left.abandon(&self.dst, dst_repo).await;
        }
        let size = sent?;
        task.line(format!("sent {digest} ({size} bytes) to {dst_repo}"));
        self.placed_in(digest, dst_repo);
        Ok(())
    }

    fn placed_in(&self, digest: &Digest, repo: &str) {
        if let Ok(mut p) = self.placed.lock() {
            p.insert(digest.clone(), repo.to_owned());
        }
    }

    /// One attempt at sending a blob; `upload` remembers where an earlier
    /// attempt got to.
    async fn transfer(
        &self,
        task: &Arc<TaskState>,
        src_repo: &str,
        dst_repo: &str,
        digest: &Digest,
        expected: u64,
        upload: &Mutex<Upload>,
    ) -> Result<u64, GatewayError> {
        let get = || {
            let u = upload.lock().unwrap_or_else(|p| p.into_inner());
            (u.local, u.remote.clone())
        };
        let set_local = |id| upload.lock().unwrap_or_else(|p| p.into_inner()).local = id;
        let set_remote = |l| upload.lock().unwrap_or_else(|p| p.into_inner()).remote = l;
        match &self.dst {
            Side::Local(l) => {
                let repo: berth_storage::oci::RepoName = dst_repo
                    .parse()
                    .map_err(|e| GatewayError::BadRequest(format!("{dst_repo}: {e}")))?;
                let id = match get().0 {
                    Some(id) => id,
                    None => {
                        let id = l.registry.start_upload(&repo).await?;
                        set_local(Some(id));
                        id
                    }
                };
                let offset = l.registry.upload_len(&repo, id).await?;
                let (size, start, mut stream) =
                    self.src.read_blob(src_repo, digest, offset).await?;
                agree(size, expected, digest)?;
                let (id, offset) = if start == offset {
                    (id, offset)
                } else {
                    // The source ignored the range: start over.
                    l.registry.cancel_upload(&repo, id).await?;
                    let id = l.registry.start_upload(&repo).await?;
                    set_local(Some(id));
                    (id, 0)
                };
                let written = self
                    .local_write(task, l, &repo, id, offset, size, &mut stream, digest)
                    .await;
                // A session the store ended (a failed completion) cannot
                // be resumed: the next attempt starts a new one.
                if written.is_err() && l.registry.upload_len(&repo, id).await.is_err() {
                    set_local(None);
                }
                written
            }
            Side::Remote(r) => {
                if !self.copy_by_chunk {
                    let location = r.start_upload(dst_repo).await?;
                    let (size, _, stream) = self.src.read_blob(src_repo, digest, 0).await?;
                    agree(size, expected, digest)?;
                    r.finish_upload(
                        dst_repo,
                        &location,
                        digest,
                        size,
                        self.metered(task, stream),
                    )
                    .await?;
                    return Ok(size);
                }
                let mut offset = 0;
                if let Some(location) = get().1 {
                    match r.upload_offset(dst_repo, &location).await? {
                        Some(n) => {
                            offset = n;
                            if n > 0 {
                                task.line(format!("resuming {digest} at byte {n}"));
                            }
                        }
                        None => set_remote(None),
                    }
                }
                let mut location = match get().1 {
                    Some(l) => l,
                    None => {
                        let l = r.start_upload(dst_repo).await?;
                        set_remote(Some(l.clone()));
                        offset = 0;
                        l
                    }
                };
                let size = self.src.blob_size(src_repo, digest).await?;
                agree(size, expected, digest)?;
                while offset < size {
                    let len = (size - offset).min(CHUNK);
                    let (_, start, stream) = self.src.read_blob(src_repo, digest, offset).await?;
                    let stream = skip_and_take(stream, offset - start, len);
                    location = r
                        .patch(dst_repo, &location, offset, len, self.metered(task, stream))
                        .await?;
                    set_remote(Some(location.clone()));
                    offset += len;
                }
                r.finish_upload(dst_repo, &location, digest, 0, empty())
                    .await?;
                set_remote(None);
                Ok(size)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn local_write(
        &self,
        task: &Arc<TaskState>,
        l: &super::side::Local,
        repo: &berth_storage::oci::RepoName,
        id: berth_storage::UploadId,
        offset: u64,
        size: u64,
        stream: &mut BlobStream,
        digest: &Digest,
    ) -> Result<u64, GatewayError> {
        let mut writer = l.registry.append(repo, id, Some(offset)).await?;
        let mut metered = self.metered(task, std::mem::replace(stream, empty()));
        let mut at = offset;
        while let Some(piece) = metered.next().await {
            // A source that sends more than the size it announced is not
            // let to fill the disk: the upload is dropped.
            let piece = piece.and_then(|bytes| {
                at += bytes.len() as u64;
                if at > size {
                    Err(GatewayError::BadRequest(format!(
                        "the source sent more than the {size} bytes of {digest}"
                    )))
                } else {
                    Ok(bytes)
                }
            });
            match piece {
                Ok(bytes) => writer.write(bytes).await,
                Err(e) if at > size => {
                    l.registry.end_chunk(id, writer).await?;
                    l.registry.cancel_upload(repo, id).await?;
                    return Err(e);
                }
                Err(e) => {
                    // What arrived is kept: the next attempt resumes there.
                    l.registry.end_chunk(id, writer).await?;
                    return Err(e);
                }
            }
        }
        l.registry.complete_upload(repo, id, writer, digest).await?;
        Ok(size)
    }

    /// Counts bytes, holds to the speed limit, and ends at a stop, also
    /// in the middle of a blob.
    fn metered(&self, task: &Arc<TaskState>, stream: BlobStream) -> BlobStream {
        let speed = self.speed;
        let started = Instant::now();
        let sent = Arc::new(AtomicU64::new(0));
        let stop = self.stop.clone();
        let run_bytes = self.bytes.clone();
        let task = task.clone();
        // Small pieces: the speed limit is kept smoothly, and the upload
        // watchdog sees progress at least every `PIECE / speed` seconds.
        stream
            .flat_map(|piece| {
                let pieces: Vec<Result<Bytes, GatewayError>> = match piece {
                    Ok(mut bytes) => {
                        let mut out = Vec::with_capacity(bytes.len() / PIECE + 1);
                        while bytes.len() > PIECE {
                            out.push(Ok(bytes.split_to(PIECE)));
                        }
                        out.push(Ok(bytes));
                        out
                    }
                    Err(e) => vec![Err(e)],
                };
                futures_util::stream::iter(pieces)
            })
            .then(move |piece| {
                let sent = sent.clone();
                let stop = stop.clone();
                let run_bytes = run_bytes.clone();
                let task = task.clone();
                async move {
                    if stop.load(Ordering::Relaxed) {
                        return Err(GatewayError::BadRequest("the execution was stopped".into()));
                    }
                    let bytes = piece?;
                    let n = bytes.len() as u64;
                    let total = sent.fetch_add(n, Ordering::Relaxed) + n;
                    task.bytes.fetch_add(n, Ordering::Relaxed);
                    run_bytes.fetch_add(n, Ordering::Relaxed);
                    if let Some(speed) = speed.filter(|s| *s > 0) {
                        let due = Duration::try_from_secs_f64(total as f64 / speed as f64)
                            .unwrap_or(Duration::ZERO);
                        let elapsed = started.elapsed();
                        if due > elapsed {
                            tokio::time::sleep(due - elapsed).await;
                        }
                    }
                    Ok::<Bytes, GatewayError>(bytes)
                }
            })
            .boxed()
    }
}

/// A blob's size as the source serves it must be the one its manifest
/// states: a source claiming more is not let to fill the disk before the
/// digest check fails.
fn agree(size: u64, expected: u64, digest: &Digest) -> Result<(), GatewayError> {
    if size == expected {
        Ok(())
    } else {
        Err(GatewayError::BadRequest(format!(
            "the source serves {digest} as {size} bytes, but its manifest says {expected}"
        )))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where an interrupted upload stands, for the next attempt.
#[derive(Default)]
struct Upload {
    local: Option<berth_storage::UploadId>,
    remote: Option<String>,
}

impl Upload {
    async fn abandon(&self, dst: &Side, repo: &str) {
        if let (Some(id), Side::Local(l)) = (self.local, dst) {
            if let Ok(repo) = repo.parse() {
                let _ = l.registry.cancel_upload(&repo, id).await;
            }
        }
    }
}

/// Drops the first `skip` bytes of a stream and ends it after `len`
/// (dropping the rest unread).
fn skip_and_take(stream: BlobStream, skip: u64, len: u64) -> BlobStream {
    futures_util::stream::unfold(
        (stream, skip, len),
        |(mut stream, mut skip, left)| async move {
            if left == 0 {
                return None;
            }
            loop {
                match stream.next().await? {
                    Err(e) => return Some((Err(e), (stream, skip, 0))),
                    Ok(mut bytes) => {
                        let drop = skip.min(bytes.len() as u64) as usize;
                        skip -= drop as u64;
                        let mut piece = bytes.split_off(drop);
                        if piece.is_empty() {
                            continue;
                        }
                        piece.truncate(left.min(piece.len() as u64) as usize);
                        let left = left - piece.len() as u64;
                        return Some((Ok(piece), (stream, skip, left)));
                    }
                }
            }
        },
    )
    .boxed()
}

/// Harbor's resource type of an artifact: `image` for container images
/// and their indexes, `artifact` for anything else.
pub fn resource_type(m: &Manifest) -> &'static str {
    let Ok(parsed) = parse(Some(&m.media_type), &m.content) else {
        return "artifact";
    };
    if matches!(
        parsed.kind,
        ManifestKind::OciIndex | ManifestKind::DockerManifestList
    ) {
        return "image";
    }
    match parsed.artifact_type.as_deref() {
        None
        | Some("application/vnd.oci.image.config.v1+json")
        | Some("application/vnd.docker.container.image.v1+json") => "image",
        Some(_) => "artifact",
    }
}
