//! Upload sessions: bytes stream to a temp file while being hashed.
//!
//! No thread and no file descriptor belongs to an upload between its
//! chunks, nor while its client is slow: a request body is gathered into
//! batches on the async side, and each batch is hashed and written by a
//! short blocking task (one in flight per request, so that disk work
//! overlaps with reading the next batch). The file is opened per request.
//!
//! The running hash lives in memory, with the file's length and mtime as
//! this process last left them. The file is the source of truth: when it
//! differs from what memory remembers (another process appended to it, a
//! restart lost the memory, a client dropped mid-chunk), the hash is
//! rebuilt from the file rather than trusted.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::OwnedMutexGuard;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::blobs::hash_reader;
use crate::error::StorageError;
use crate::oci::{Algorithm, Hasher};

/// Network chunks (~64 KiB from Pingora) are handed to the disk in batches
/// of about this many bytes: one blocking task per batch, not per chunk.
const BATCH_BYTES: usize = 1024 * 1024;

/// What identifies the state of an upload file: if either changed since
/// this process wrote, someone else wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
        }
    }
}

/// Hash and length of an upload, valid while `stamp` matches its file.
pub(crate) struct Progress {
    pub(crate) len: u64,
    pub(crate) hasher: Hasher,
    pub(crate) stamp: Stamp,
}

impl Progress {
    /// Hashes the file behind `file` from its start (sha256, the upload
    /// hash). The stamp is taken after the last read; if the length then
    /// differs from what was read, a writer was at work meanwhile.
    fn rebuild(file: &mut File, path: &Path) -> Result<Progress, StorageError> {
        let (hasher, len) = hash_reader(file, Algorithm::Sha256, path)?;
        let stamp = Stamp::of(
            &file
                .metadata()
                .map_err(StorageError::io(format!("stat {}", path.display())))?,
        );
        if stamp.len != len {
            return Err(StorageError::UploadBusy);
        }
        Ok(Progress { len, hasher, stamp })
    }
}

#[derive(Default)]
pub(crate) struct Session {
    progress: Option<Progress>,
}

/// In-memory state of open uploads; the database and the files hold the
/// durable part.
#[derive(Default)]
pub(crate) struct Sessions {
    dir: PathBuf,
    open: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<Session>>>>,
}

impl Sessions {
    pub(crate) fn new(dir: PathBuf) -> Sessions {
        Sessions {
            dir,
            open: Mutex::default(),
        }
    }

    pub(crate) fn path(&self, id: Uuid) -> PathBuf {
        self.dir.join(id.to_string())
    }

    pub(crate) fn create_file(&self, id: Uuid) -> Result<(), StorageError> {
        File::create(self.path(id)).map_err(StorageError::io("creating upload file"))?;
        Ok(())
    }

    /// Locks the session for exclusive use: chunks of one upload are
    /// inherently sequential, so concurrent requests for it queue here.
    pub(crate) async fn lock(&self, id: Uuid) -> OwnedMutexGuard<Session> {
        let session = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            open.entry(id).or_default().clone()
        };
        session.lock_owned().await
    }

    pub(crate) fn forget(&self, id: Uuid) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.remove(&id);
        let _ = std::fs::remove_file(self.path(id));
    }

    /// Current length of an upload: its file's, whatever memory says.
    pub(crate) fn len(&self, id: Uuid) -> Result<u64, StorageError> {
        match std::fs::metadata(self.path(id)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StorageError::UploadUnknown),
            Err(e) => Err(StorageError::io("stat upload file")(e)),
        }
    }

    /// Makes sure the session's progress matches its file, rebuilding it
    /// from the file when memory is missing or stale.
    pub(crate) async fn check_progress(
        &self,
        id: Uuid,
        session: &mut Session,
    ) -> Result<(), StorageError> {
        let path = self.path(id);
        let current = match std::fs::metadata(&path) {
            Ok(m) => Stamp::of(&m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::UploadUnknown)
            }
            Err(e) => return Err(StorageError::io("stat upload file")(e)),
        };
        if session
            .progress
            .as_ref()
            .is_some_and(|p| p.stamp == current)
        {
            return Ok(());
        }
        if current.len == 0 {
            // Nothing to hash (a new session): no trip to the blocking pool.
            session.progress = Some(Progress {
                len: 0,
                hasher: Algorithm::Sha256.hasher(),
                stamp: current,
            });
            return Ok(());
        }
        session.progress = None;
        let rebuilt = blocking("upload recovery task", move || {
            let mut file = File::open(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StorageError::UploadUnknown,
                _ => StorageError::io("reopening upload file")(e),
            })?;
            Progress::rebuild(&mut file, &path)
        })
        .await?;
        session.progress = Some(rebuilt);
        Ok(())
    }

    /// Verifies that `session`'s progress still describes the file at
    /// `path`, just before it is placed, and returns the upload's length
    /// and its digest in `algorithm`. Memory is used only when the file is
    /// exactly as this process left it; otherwise the file is hashed.
    pub(crate) fn verify(
        session: &mut Session,
        path: &Path,
        algorithm: Algorithm,
    ) -> Result<(u64, crate::oci::Digest, File), StorageError> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StorageError::UploadUnknown,
                _ => StorageError::io("reopening upload file")(e),
            })?;
        let current = Stamp::of(
            &file
                .metadata()
                .map_err(StorageError::io(format!("stat {}", path.display())))?,
        );
        let fresh = session
            .progress
            .as_ref()
            .is_some_and(|p| p.stamp == current);
        let (len, digest) = match (session.progress.take(), algorithm) {
            (Some(p), Algorithm::Sha256) if fresh => (p.len, p.hasher.finish()),
            _ => {
                let (hasher, len) = hash_reader(&mut file, algorithm, path)?;
                (len, hasher.finish())
            }
        };
        Ok((len, digest, file))
    }
}

/// Runs `work` on the blocking pool: for short, bounded work only.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StorageError::Io {
            context: what.into(),
            source: std::io::Error::other(e),
        })?
}

/// The state a request's writes carry from one batch task to the next:
/// the session (locked for the whole request) and the file, opened on the
/// first write and closed when the request ends.
struct Writing {
    guard: OwnedMutexGuard<Session>,
    path: PathBuf,
    file: Option<File>,
}

impl Writing {
    /// Hashes and appends one batch; on success the session's progress
    /// covers it. On failure the progress is dropped: the file length is
    /// the truth and the hash is rebuilt from it next time.
    fn write(&mut self, batch: &[Bytes]) -> Result<(), StorageError> {
        let io = StorageError::io;
        let Some(mut p) = self.guard.progress.take() else {
            return Err(StorageError::UploadBusy);
        };
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(
                OpenOptions::new()
                    .append(true)
                    .open(&self.path)
                    .map_err(io("reopening upload file"))?,
            ),
        };
        // Someone else wrote since this process did (another process
        // serving the same upload): the hash in memory is no longer the
        // file's; it is dropped and rebuilt by the next request.
        if Stamp::of(&file.metadata().map_err(io("stat upload file"))?) != p.stamp {
            return Err(StorageError::UploadBusy);
        }
        for chunk in batch {
            p.hasher.update(chunk);
        }
        write_all_vectored(file, batch).map_err(io("writing upload"))?;
        p.len += batch.iter().map(|c| c.len() as u64).sum::<u64>();
        p.stamp = Stamp::of(&file.metadata().map_err(io("stat upload file"))?);
        self.guard.progress = Some(p);
        Ok(())
    }
}

/// Streams one request body into an upload, on whichever store holds
/// blobs.
pub struct ChunkWriter(pub(crate) Writer);

pub(crate) enum Writer {
    File(FileWriter),
    Object(Box<crate::objects::upload::ObjectWriter>),
}

impl ChunkWriter {
    /// Queues a chunk; waits only when the store must catch up.
    pub async fn write(&mut self, chunk: Bytes) {
        match &mut self.0 {
            Writer::File(w) => w.write(chunk).await,
            Writer::Object(w) => w.write(chunk).await,
        }
    }
}

/// Streams one request body into an upload file. The session stays locked
/// for the request; a batch being written owns the lock until it is on
/// disk, so even when the client vanishes mid-request the next request for
/// this upload sees a quiet file.
pub(crate) struct FileWriter {
    batch: Vec<Bytes>,
    batched: usize,
    /// Idle between batches; `None` while `pending` writes one.
    idle: Option<Writing>,
    pending: Option<JoinHandle<(Writing, Result<(), StorageError>)>>,
    /// The first failure; later chunks are dropped and `finish` reports it.
    failed: Option<StorageError>,
}

impl FileWriter {
    pub(crate) fn new(guard: OwnedMutexGuard<Session>, path: PathBuf) -> FileWriter {
        FileWriter {
            batch: Vec::new(),
            batched: 0,
            idle: Some(Writing {
                guard,
                path,
                file: None,
            }),
            pending: None,
            failed: None,
        }
    }

    /// Queues a chunk; waits only when a full batch is ready while the
    /// previous one is still being written.
    async fn write(&mut self, chunk: Bytes) {
        if self.failed.is_some() {
            return;
        }
        self.batched += chunk.len();
        self.batch.push(chunk);
        if self.batched >= BATCH_BYTES {
            self.flush().await;
        }
    }

    /// Waits for the batch in flight, if any.
    async fn settle(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        match pending.await {
            Ok((writing, result)) => {
                self.idle = Some(writing);
                if let Err(e) = result {
                    self.failed = Some(e);
                }
            }
            // The task panicked and took the session lock with it: the
            // lock is released, the progress is gone, the file is truth.
            Err(e) => {
                self.failed = Some(StorageError::Io {
                    context: "upload writer task".into(),
                    source: std::io::Error::other(e),
                })
            }
        }
    }

    async fn flush(&mut self) {
        self.settle().await;
        let batch = std::mem::take(&mut self.batch);
        self.batched = 0;
        if batch.is_empty() || self.failed.is_some() {
            return;
        }
        let Some(mut writing) = self.idle.take() else {
            return;
        };
        self.pending = Some(tokio::task::spawn_blocking(move || {
            let result = writing.write(&batch);
            (writing, result)
        }));
    }

    /// Waits until every chunk is on disk; returns the session, still locked.
    pub(crate) async fn finish(mut self) -> Result<OwnedMutexGuard<Session>, StorageError> {
        self.flush().await;
        self.settle().await;
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        match self.idle.take() {
            Some(writing) => Ok(writing.guard),
            None => Err(StorageError::Io {
                context: "upload writer".into(),
                source: std::io::Error::other("session lost"),
            }),
        }
    }
}

/// Writes a whole batch with as few `writev` calls as the kernel allows.
fn write_all_vectored(file: &mut File, batch: &[Bytes]) -> std::io::Result<()> {
    let (mut idx, mut off) = (0usize, 0usize);
    loop {
        while idx < batch.len() && off == batch[idx].len() {
            idx += 1;
            off = 0;
        }
        if idx == batch.len() {
            return Ok(());
        }
        let slices: Vec<IoSlice<'_>> = std::iter::once(IoSlice::new(&batch[idx][off..]))
            .chain(batch[idx + 1..].iter().map(|b| IoSlice::new(b)))
            .collect();
        let mut n = file.write_vectored(&slices)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let rest = batch[idx].len() - off;
            if n >= rest {
                n -= rest;
                idx += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn vectored_writes_keep_order_and_skip_empty_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = File::create(&path).unwrap();
        let batch: Vec<Bytes> = vec![
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from(vec![b'c'; 100_000]),
            Bytes::from_static(b"z"),
        ];
        write_all_vectored(&mut f, &batch).unwrap();
        let mut got = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), 100_003);
        assert_eq!(&got[..3], b"abc");
        assert_eq!(got[got.len() - 1], b'z');
    }
}
