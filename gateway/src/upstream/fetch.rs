//! One upstream download per missing blob, shared by everyone who asks
//! while it runs.
//!
//! The first request for a blob starts a fetch task that writes the
//! upstream's body to a temp file while hashing it; every request for the
//! same digest (the first included) reads that file as it grows, with
//! `pread`, and may ask for any range of it. The task does not belong to
//! any client: if the first client goes away the download goes on for the
//! others and for the cache. When the body ends the digest is checked:
//! only a verified blob is committed to the store, and no response ever
//! receives its own last byte before that check passed: a whole-blob GET
//! and a `Range` of any part alike. A corrupt upstream thus yields a
//! cut-off response (an error in every client), never a complete wrong
//! one, however early in the blob the requested range ends.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use berth_storage::oci::{Digest, Hasher, RepoName};
use berth_storage::Registry;
use bytes::{Bytes, BytesMut};
use tokio::sync::watch;

use crate::bufpool::BufPool;
use crate::error::GatewayError;

/// The fetch task writes to the temp file in pieces of about this size.
const WRITE_BATCH: usize = 1024 * 1024;
/// The first piece is written as soon as this much arrived, so that the
/// clients' first bytes follow the upstream's closely.
const FIRST_BATCH: usize = 16 * 1024;

/// Where a fetch stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Waiting for the upstream's response headers.
    Starting,
    /// `written` of `size` bytes are in the temp file.
    Streaming { size: u64, written: u64 },
    /// Verified and committed to the store.
    Done { size: u64 },
    /// The fetch failed; readers fail with this message.
    Failed(FetchFailure),
}

#[derive(Debug, Clone, PartialEq)]
pub enum FetchFailure {
    /// The upstream answered with an error before any byte: an error the
    /// reader can present (status, message).
    Refused(u16, String),
    /// The bytes did not hash to the digest, or the body was cut short.
    Corrupt(String),
    Io(String),
}

pub struct Fetch {
    pub digest: Digest,
    file: Arc<File>,
    progress: watch::Receiver<Progress>,
}

/// The fetches in progress in this process, by digest.
#[derive(Default)]
pub struct Fetches {
    running: Mutex<HashMap<Digest, Arc<Fetch>>>,
}

/// What drives a fetch: the upstream body, handed over as a stream of
/// chunks, and how to store the result.
pub struct Source {
    pub response: reqwest::Response,
    pub registry: Arc<Registry>,
    pub repo: RepoName,
    pub registry_name: String,
}

impl Fetches {
    /// Joins the fetch of `digest` if one runs, or starts one with the
    /// response `start` obtains, on `runtime`. `start` runs inside the task, so the
    /// upstream request goes out once however many callers arrive.
    pub fn join_or_start<F, Fut>(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
        registry: &Registry,
        digest: &Digest,
        start: F,
    ) -> Result<(Arc<Fetch>, bool), GatewayError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<Source, GatewayError>> + Send + 'static,
    {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = running.get(digest) {
            return Ok((f.clone(), false));
        }
        let (path, file) = registry.fetch_file()?;
        let file = Arc::new(file);
        let (tx, rx) = watch::channel(Progress::Starting);
        let tx = Arc::new(tx);
        let fetch = Arc::new(Fetch {
            digest: digest.clone(),
            file: file.clone(),
            progress: rx,
        });
        running.insert(digest.clone(), fetch.clone());
        drop(running);
        let fetches = self.clone();
        let digest = digest.clone();
        // On the side runtime: the download then runs beside the request
        // threads that stream it to clients, not in turns with them.
        runtime.spawn(async move {
            let outcome = match start().await {
                Ok(source) => run(source, &digest, path.clone(), file, &tx).await,
                Err(e) => Err(FetchFailure::Refused(e.present().status, e.to_string())),
            };
            if let Err(failure) = outcome {
                let _ = std::fs::remove_file(&path);
                tx.send_replace(Progress::Failed(failure));
            }
            fetches
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&digest);
        });
        Ok((fetch, true))
    }
}

/// Streams the upstream body into the temp file, then verifies and commits.
async fn run(
    source: Source,
    digest: &Digest,
    path: PathBuf,
    file: Arc<File>,
    tx: &Arc<watch::Sender<Progress>>,
) -> Result<(), FetchFailure> {
    let Source {
        mut response,
        registry,
        repo,
        registry_name,
    } = source;
    let corrupt = || {
        FetchFailure::Corrupt(
            GatewayError::UpstreamCorrupt {
                registry: registry_name.clone(),
                digest: digest.to_string(),
            }
            .to_string(),
        )
    };
    let size = response.content_length().ok_or_else(|| {
        FetchFailure::Refused(
            502,
            format!("the upstream registry `{registry_name}` sent {digest} without a length"),
        )
    })?;
    tx.send_replace(Progress::Streaming { size, written: 0 });
    // Receiving and storing overlap: each batch is hashed and written on a
    // blocking thread (which then tells the readers) while the next one
    // arrives; at most one batch is in flight, so the hash stays in order.
    let mut hasher = Some(digest.algorithm().hasher());
    let mut pending: Option<tokio::task::JoinHandle<Result<Hasher, FetchFailure>>> = None;
    let mut received = 0u64;
    let mut batch = BytesMut::with_capacity(WRITE_BATCH);
    loop {
        let chunk = response.chunk().await.map_err(|e| {
            FetchFailure::Corrupt(format!(
                "the upstream registry `{registry_name}` stopped sending {digest}: {e}"
            ))
        })?;
        let end = chunk.is_none();
        if let Some(c) = chunk {
            if received + (batch.len() + c.len()) as u64 > size {
                return Err(corrupt());
            }
            batch.extend_from_slice(&c);
        }
        let due = if received == 0 {
            FIRST_BATCH
        } else {
            WRITE_BATCH
        };
        if batch.len() >= due || (end && !batch.is_empty()) {
            let data = batch.split().freeze();
            let offset = received;
            received += data.len() as u64;
            let mut h = match pending.take() {
                Some(job) => job.await.map_err(|e| FetchFailure::Io(e.to_string()))??,
                None => hasher
                    .take()
                    .ok_or_else(|| FetchFailure::Io("fetch hasher missing".into()))?,
            };
            let (file, tx) = (file.clone(), tx.clone());
            pending = Some(tokio::task::spawn_blocking(move || {
                h.update(&data);
                file.write_all_at(&data, offset).map_err(|e| io(&e))?;
                tx.send_replace(Progress::Streaming {
                    size,
                    written: offset + data.len() as u64,
                });
                Ok(h)
            }));
        }
        if end {
            break;
        }
    }
    let hasher = match pending.take() {
        Some(job) => job.await.map_err(|e| FetchFailure::Io(e.to_string()))??,
        None => hasher
            .take()
            .ok_or_else(|| FetchFailure::Io("fetch hasher missing".into()))?,
    };
    if received != size || hasher.finish() != *digest {
        return Err(corrupt());
    }
    let file = Arc::try_unwrap(file).or_else(|shared| shared.try_clone().map_err(|e| io(&e)))?;
    registry
        .commit_fetched(&repo, digest, path, file, size)
        .await
        .map_err(|e| FetchFailure::Io(e.to_string()))?;
    tx.send_replace(Progress::Done { size });
    Ok(())
}

fn io(e: &std::io::Error) -> FetchFailure {
    FetchFailure::Io(format!("writing a fetched blob: {e}"))
}

impl Fetch {
    /// Waits for the upstream's answer: the blob's size, or why it failed.
    pub async fn size(&self) -> Result<u64, FetchFailure> {
        let mut rx = self.progress.clone();
        loop {
            match &*rx.borrow_and_update() {
                Progress::Starting => {}
                Progress::Streaming { size, .. } | Progress::Done { size } => return Ok(*size),
                Progress::Failed(f) => return Err(f.clone()),
            }
            if rx.changed().await.is_err() {
                return Err(FetchFailure::Io("the fetch ended without a result".into()));
            }
        }
    }

    /// Reads up to one buffer of `pool` at `offset`, waiting until the
    /// bytes have arrived. `end` is the end of the caller's response: its
    /// last byte is released only once the whole blob is verified, so no
    /// response (a range included) completes on unverified bytes.
    /// `Ok(None)`: nothing left before `end` (exclusive).
    pub async fn read(
        &self,
        offset: u64,
        end: u64,
        pool: &Arc<BufPool>,
    ) -> Result<Option<Bytes>, FetchFailure> {
        if offset >= end {
            return Ok(None);
        }
        let mut rx = self.progress.clone();
        let available = loop {
            let available = match &*rx.borrow_and_update() {
                Progress::Starting => 0,
                // Hold back the response's final byte until the digest is
                // checked (`end` never exceeds the size). A range ending
                // early in the blob waits for the whole download: the
                // price of never completing on bytes that may be wrong.
                Progress::Streaming { written, .. } => (*written).min(end - 1),
                Progress::Done { size } => *size,
                Progress::Failed(f) => return Err(f.clone()),
            };
            if available > offset {
                break available;
            }
            if rx.changed().await.is_err() {
                return Err(FetchFailure::Io("the fetch ended without a result".into()));
            }
        };
        let len = (available.min(end) - offset).min(pool.size() as u64) as usize;
        let (file, pool) = (self.file.clone(), pool.clone());
        tokio::task::spawn_blocking(move || {
            let mut buf = pool.take();
            file.read_exact_at(&mut buf[..len], offset)
                .map(|()| pool.freeze(buf, len))
        })
        .await
        .map_err(|e| FetchFailure::Io(e.to_string()))?
        .map(Some)
        .map_err(|e| FetchFailure::Io(format!("reading a fetched blob: {e}")))
    }
}
