//! Upload sessions: bytes stream to a temp file while being hashed, on a
//! blocking thread of their own so that hashing and writing overlap with
//! reading the next chunk from the network.
//!
//! The running hash lives in memory. When it is missing (after a restart,
//! or after a client dropped mid-chunk) it is rebuilt from the file, which
//! is always the source of truth for how many bytes an upload holds.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, OwnedMutexGuard};
use uuid::Uuid;

use crate::blobs::hash_file;
use crate::error::StorageError;
use crate::oci::{Algorithm, Hasher};

/// Batches queued between the network side and the writer thread.
const QUEUE_DEPTH: usize = 8;
/// Network chunks (~64 KiB from Pingora) are handed over in batches of
/// about this many bytes: one thread wake-up per batch, not per chunk.
const BATCH_BYTES: usize = 1024 * 1024;

/// Hash and file position of an upload, valid while held in memory.
pub(crate) struct Progress {
    pub(crate) file: File,
    pub(crate) len: u64,
    pub(crate) hasher: Hasher,
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

    /// Current length of an upload (from memory, else from its file).
    pub(crate) fn len(&self, id: Uuid, session: &Session) -> Result<u64, StorageError> {
        match &session.progress {
            Some(p) => Ok(p.len),
            None => match std::fs::metadata(self.path(id)) {
                Ok(m) => Ok(m.len()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(StorageError::UploadUnknown)
                }
                Err(e) => Err(StorageError::io("stat upload file")(e)),
            },
        }
    }

    /// Takes the progress out of the session, rebuilding it from the file
    /// when memory does not have it.
    pub(crate) async fn take_progress(
        &self,
        id: Uuid,
        session: &mut Session,
    ) -> Result<Progress, StorageError> {
        if let Some(p) = session.progress.take() {
            return Ok(p);
        }
        let path = self.path(id);
        tokio::task::spawn_blocking(move || -> Result<Progress, StorageError> {
            if !path.is_file() {
                return Err(StorageError::UploadUnknown);
            }
            let (hasher, len) = hash_file(&path, Algorithm::Sha256)?;
            let file = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(StorageError::io("reopening upload file"))?;
            Ok(Progress { file, len, hasher })
        })
        .await
        .map_err(|e| StorageError::Io {
            context: "upload recovery task".into(),
            source: std::io::Error::other(e),
        })?
    }
}

/// Streams one request body into an upload. Chunks go to a blocking thread
/// that hashes and writes them. The thread owns the session lock until it
/// has written everything it was sent, so even when the client vanishes
/// mid-request the next request for this upload sees a quiet file.
pub struct ChunkWriter {
    tx: Option<mpsc::Sender<Vec<Bytes>>>,
    batch: Vec<Bytes>,
    batched: usize,
    worker: tokio::task::JoinHandle<Result<OwnedMutexGuard<Session>, std::io::Error>>,
}

impl ChunkWriter {
    pub(crate) fn spawn(mut guard: OwnedMutexGuard<Session>, progress: Progress) -> ChunkWriter {
        let (tx, mut rx) = mpsc::channel::<Vec<Bytes>>(QUEUE_DEPTH);
        let worker = tokio::task::spawn_blocking(move || {
            let mut p = progress;
            while let Some(batch) = rx.blocking_recv() {
                for chunk in &batch {
                    p.hasher.update(chunk);
                }
                // On failure the progress is dropped: the file length is the
                // truth and the hash is rebuilt from it next time.
                write_all_vectored(&mut p.file, &batch)?;
                p.len += batch.iter().map(|c| c.len() as u64).sum::<u64>();
            }
            guard.progress = Some(p);
            Ok(guard)
        });
        ChunkWriter {
            tx: Some(tx),
            batch: Vec::new(),
            batched: 0,
            worker,
        }
    }

    /// Queues a chunk; waits only when the writer is `QUEUE_DEPTH` batches
    /// behind.
    pub async fn write(&mut self, chunk: Bytes) {
        self.batched += chunk.len();
        self.batch.push(chunk);
        if self.batched >= BATCH_BYTES {
            self.flush().await;
        }
    }

    async fn flush(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        self.batched = 0;
        if let Some(tx) = &self.tx {
            if !batch.is_empty() && tx.send(batch).await.is_err() {
                // The worker stopped early: it failed; `finish` says why.
                self.tx = None;
            }
        }
    }

    /// Waits until every chunk is on disk; returns the session, still locked.
    pub(crate) async fn finish(mut self) -> Result<OwnedMutexGuard<Session>, StorageError> {
        self.flush().await;
        self.tx = None;
        match self.worker.await {
            Ok(Ok(guard)) => Ok(guard),
            Ok(Err(e)) => Err(StorageError::io("writing upload")(e)),
            Err(e) => Err(StorageError::Io {
                context: "upload writer task".into(),
                source: std::io::Error::other(e),
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
