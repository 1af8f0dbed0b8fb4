//! Uploads to the object store: multipart uploads whose progress lives in
//! the database, so that the chunks and the final PUT of one upload may
//! each land on a different instance.
//!
//! Every part but the last has exactly `part_size` bytes (S3 wants at
//! least 5 MiB; R2 wants them equal), so part `i` starts at byte
//! `i * part_size`. What a request leaves over, less than a part, is
//! stored as a small object (a *piece*) and becomes the head of the next
//! part, or of the blob when the upload completes. The running SHA-256
//! is stored with the parts and pieces it covers; the database row
//! (`uploads.len`, `uploads.object_state`) moves forward by
//! compare-and-swap on the length after each part and at the end of each
//! request, so an instance killed with -9 loses at most the request in
//! flight, and a duplicate request at the same offset cannot both win.
//!
//! Small blobs (under one part) never start a multipart upload: the final
//! PUT stores them in one request. A blob is assembled at its final key,
//! `blobs/u/<id>`, and only the database row makes it visible, after its
//! digest was verified: no copy at commit.
//!
//! The final PUT first *claims* the upload (`len` becomes -1 by
//! compare-and-swap, and `uploads.location` names the key it assembles
//! at): of two final PUTs of one upload, on two instances, one wins and
//! the other finds the upload gone; and GC's orphan sweep leaves a key an
//! upload row names alone (an object completed from a multipart upload
//! carries the upload's start as its modification time, so age alone
//! would not protect it).
//!
//! One request at a time writes an upload, across instances: it holds a
//! lease on the row (`writer`; [`LEASE`]), renewed by a heartbeat for as
//! long as the request lives (also while a part is on its way to the
//! store, however slow), and every save checks it. A second request at the same offset elsewhere
//! is refused (409) instead of overwriting a part the first one sent.
//! An instance killed with -9 holds its lease until it runs out.
//!
//! Pieces are capped at [`MAX_PIECES`]: a request that would store one
//! more merges them into one first, so a client sending tiny chunks
//! cannot make the state, or the reads at the next part, grow without
//! bound.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

use super::sha::Sha256State;
use super::{new_location, Objects};
use crate::error::StorageError;
use crate::meta::{now, Meta};
use crate::oci::{Algorithm, Digest};
use crate::uploads::Session;

/// An upload's progress, as stored in `uploads.object_state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UploadState {
    /// Key (under `blobs/`) the blob is assembled at.
    location: String,
    /// The multipart upload, once the first whole part was sent.
    multipart: Option<String>,
    /// ETags of the parts sent, in order.
    parts: Vec<String>,
    /// Bytes after the last part, as small objects, in order.
    pieces: Vec<Piece>,
    /// SHA-256 of every byte in `parts` and `pieces`.
    hash: Sha256State,
}

/// How long a request's hold on an upload lasts unless renewed; its
/// heartbeat renews it every third of this.
pub(crate) const LEASE: std::time::Duration = std::time::Duration::from_secs(10);

/// Pieces kept before they are merged into one.
const MAX_PIECES: usize = 16;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Piece {
    key: String,
    len: u64,
}

impl UploadState {
    fn new() -> UploadState {
        UploadState {
            location: new_location(),
            multipart: None,
            parts: Vec::new(),
            pieces: Vec::new(),
            hash: Sha256State::default(),
        }
    }

    fn pieces_len(&self) -> u64 {
        self.pieces.iter().map(|p| p.len).sum()
    }
}

/// The stored length and state of upload `id`, while it takes writes
/// (one claimed by a final PUT is, to every other request, gone).
pub(crate) async fn load(meta: &Meta, id: &str) -> Result<(u64, UploadState), StorageError> {
    match load_any(meta, id).await? {
        (Some(len), state) => Ok((len, state)),
        (None, _) => Err(StorageError::UploadUnknown),
    }
}

/// The stored length (`None` once claimed by a final PUT) and state of
/// upload `id`, for the purge and cancel.
pub(crate) async fn load_any(
    meta: &Meta,
    id: &str,
) -> Result<(Option<u64>, UploadState), StorageError> {
    let row: Option<(i64, Option<String>)> =
        sqlx::query_as("SELECT len, object_state FROM uploads WHERE id = $1")
            .bind(id)
            .fetch_optional(meta.pool())
            .await?;
    let Some((len, state)) = row else {
        return Err(StorageError::UploadUnknown);
    };
    let state = match state {
        None => UploadState::new(),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| StorageError::Corrupt(format!("upload {id}: {e}")))?,
    };
    Ok((u64::try_from(len).ok(), state))
}

/// Claims upload `id` for its final PUT: from `len` to -1 (completing),
/// naming the key the blob is assembled at. Refused when the upload is
/// gone, already claimed, or moved since this request loaded it.
async fn claim(
    meta: &Meta,
    id: &str,
    len: u64,
    state: &UploadState,
    writer: &str,
) -> Result<(), StorageError> {
    let text = serde_json::to_string(state)
        .map_err(|e| StorageError::Corrupt(format!("encoding upload {id}: {e}")))?;
    let done = sqlx::query(
        "UPDATE uploads SET len = -1, object_state = $3, location = $4, touched_at = $5 \
         WHERE id = $1 AND len = $2 AND writer = $6",
    )
    .bind(id)
    .bind(len as i64)
    .bind(text)
    .bind(&state.location)
    .bind(now())
    .bind(writer)
    .execute(meta.pool())
    .await?;
    if done.rows_affected() == 0 {
        return Err(refused(meta, id).await);
    }
    Ok(())
}

/// Moves the row from `old_len` to `new_len` and `state`; refused when
/// another request moved it first.
async fn save(
    meta: &Meta,
    id: &str,
    old_len: u64,
    new_len: u64,
    state: &UploadState,
    writer: &str,
) -> Result<(), StorageError> {
    let text = serde_json::to_string(state)
        .map_err(|e| StorageError::Corrupt(format!("encoding upload {id}: {e}")))?;
    let done = sqlx::query(
        "UPDATE uploads SET len = $3, object_state = $4, touched_at = $5, writer_until = $7 \
         WHERE id = $1 AND len = $2 AND writer = $6",
    )
    .bind(id)
    .bind(old_len as i64)
    .bind(new_len as i64)
    .bind(text)
    .bind(now())
    .bind(writer)
    .bind(lease_end())
    .execute(meta.pool())
    .await?;
    if done.rows_affected() == 0 {
        return Err(refused(meta, id).await);
    }
    Ok(())
}

/// Why a guarded update of upload `id` changed nothing: it is gone (or
/// claimed by a final PUT), or another request moved or holds it.
async fn refused(meta: &Meta, id: &str) -> StorageError {
    match load(meta, id).await {
        Ok(_) => StorageError::UploadBusy,
        Err(e) => e,
    }
}

fn lease_end() -> i64 {
    crate::audit::now_ms() + LEASE.as_millis() as i64
}

/// Takes the writer's lease on upload `id` at length `len`: refused
/// (busy) while another request holds it, or when the upload moved.
async fn take_lease(meta: &Meta, id: &str, len: u64, writer: &str) -> Result<(), StorageError> {
    let done = sqlx::query(
        "UPDATE uploads SET writer = $3, writer_until = $4, touched_at = $6 \
         WHERE id = $1 AND len = $2 AND (writer IS NULL OR writer_until < $5)",
    )
    .bind(id)
    .bind(len as i64)
    .bind(writer)
    .bind(lease_end())
    .bind(crate::audit::now_ms())
    .bind(now())
    .execute(meta.pool())
    .await?;
    if done.rows_affected() == 0 {
        return Err(refused(meta, id).await);
    }
    Ok(())
}

/// Extends a held lease (and marks the upload active for the purge);
/// false when the upload is gone or another request took it over.
async fn renew_lease(meta: &Meta, id: &str, writer: &str) -> Result<bool, StorageError> {
    let done = sqlx::query(
        "UPDATE uploads SET writer_until = $3, touched_at = $4 WHERE id = $1 AND writer = $2",
    )
    .bind(id)
    .bind(writer)
    .bind(lease_end())
    .bind(now())
    .execute(meta.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Renews a lease every third of [`LEASE`] until stopped; sets `lost`
/// when it could not.
fn heartbeat(
    meta: Meta,
    id: String,
    writer: String,
    lost: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(LEASE / 3).await;
            if !matches!(renew_lease(&meta, &id, &writer).await, Ok(true)) {
                lost.store(true, std::sync::atomic::Ordering::SeqCst);
                return;
            }
        }
    })
}

/// Deletes upload `id`'s row if nobody wrote it since `cutoff_s` and no
/// request holds it (for the purge); true when deleted.
pub(crate) async fn delete_if_idle(
    meta: &Meta,
    id: &str,
    cutoff_s: i64,
) -> Result<bool, StorageError> {
    let done = sqlx::query(
        "DELETE FROM uploads WHERE id = $1 AND touched_at <= $2 \
         AND (writer IS NULL OR writer_until < $3)",
    )
    .bind(id)
    .bind(cutoff_s)
    .bind(crate::audit::now_ms())
    .execute(meta.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

async fn release_lease(meta: &Meta, id: &str, writer: &str) {
    // Best effort: an unreleased lease runs out by itself.
    let _ = sqlx::query("UPDATE uploads SET writer = NULL WHERE id = $1 AND writer = $2")
        .bind(id)
        .bind(writer)
        .execute(meta.pool())
        .await;
}

/// Removes what an upload left in the store: its multipart upload and
/// its pieces (for cancel, purge, and a bad digest).
pub(crate) async fn discard(
    objects: &Objects,
    id: &str,
    state: Option<&UploadState>,
) -> Result<(), StorageError> {
    if let Some(state) = state {
        if let Some(multipart) = &state.multipart {
            objects
                .abort_multipart(&objects.blob_path(&state.location), multipart)
                .await?;
        }
    }
    objects.delete_all(&objects.upload_dir(id)).await
}

/// One request's writes into an upload.
pub(crate) struct ObjectWriter {
    objects: Arc<Objects>,
    meta: Meta,
    id: String,
    /// The row's length, as this request last saw or set it.
    saved_len: u64,
    state: UploadState,
    /// Received, not yet stored.
    mem: std::collections::VecDeque<Bytes>,
    mem_len: u64,
    failed: Option<StorageError>,
    /// This request's lease on the row (see [`LEASE`]); `None` once
    /// released. Its heartbeat, and whether the heartbeat lost it.
    writer: Option<String>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    lost: Arc<std::sync::atomic::AtomicBool>,
    /// Requests for one upload in this process wait for each other.
    _session: OwnedMutexGuard<Session>,
}

impl Drop for ObjectWriter {
    /// A request that ended early (the client went away) lets go of its
    /// lease at once, so the client's retry is not refused.
    fn drop(&mut self) {
        if let Some(beat) = self.heartbeat.take() {
            beat.abort();
        }
        if let Some(writer) = self.writer.take() {
            let (meta, id) = (self.meta.clone(), self.id.clone());
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { release_lease(&meta, &id, &writer).await });
            }
        }
    }
}

impl ObjectWriter {
    /// Opens upload `id` for one request's writes, taking its lease.
    /// `start`, when the client sent a Content-Range, must be its length.
    pub(crate) async fn open(
        objects: Arc<Objects>,
        meta: Meta,
        id: Uuid,
        start: Option<u64>,
        session: OwnedMutexGuard<Session>,
    ) -> Result<ObjectWriter, StorageError> {
        let id = id.to_string();
        let (saved_len, state) = load(&meta, &id).await?;
        if let Some(start) = start.filter(|s| *s != saved_len) {
            return Err(StorageError::UploadOffsetMismatch {
                expected: saved_len,
                got: start,
            });
        }
        let writer = Uuid::new_v4().simple().to_string();
        take_lease(&meta, &id, saved_len, &writer).await?;
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let beat = heartbeat(meta.clone(), id.clone(), writer.clone(), lost.clone());
        Ok(ObjectWriter {
            objects,
            meta,
            id,
            saved_len,
            state,
            mem: std::collections::VecDeque::new(),
            mem_len: 0,
            failed: None,
            writer: Some(writer),
            heartbeat: Some(beat),
            lost,
            _session: session,
        })
    }

    fn writer(&self) -> &str {
        self.writer.as_deref().unwrap_or("")
    }

    pub(crate) async fn write(&mut self, chunk: Bytes) {
        if self.failed.is_some() {
            return;
        }
        if self.lost.load(std::sync::atomic::Ordering::SeqCst) {
            self.failed = Some(StorageError::UploadBusy);
            return;
        }
        self.mem_len += chunk.len() as u64;
        self.mem.push_back(chunk);
        if self.state.pieces_len() + self.mem_len >= self.objects.part_size {
            if let Err(e) = self.send_parts().await {
                self.failed = Some(e);
            }
        }
    }

    /// The first `n` bytes held in memory, hashed as they leave.
    fn take(&mut self, n: u64) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut left = n;
        while left > 0 {
            let Some(first) = self.mem.front_mut() else {
                break;
            };
            let piece = if first.len() as u64 <= left {
                // Just checked: the front exists.
                self.mem.pop_front().unwrap_or_default()
            } else {
                first.split_to(left as usize)
            };
            left -= piece.len() as u64;
            self.state.hash.update(&piece);
            out.push(piece);
        }
        self.mem_len -= n - left;
        out
    }

    /// The pieces' bytes, read back (less than one part).
    async fn read_pieces(&self) -> Result<Vec<Bytes>, StorageError> {
        let mut out = Vec::with_capacity(self.state.pieces.len());
        for piece in &self.state.pieces {
            let path = self.objects.upload_dir(&self.id).join(piece.key.as_str());
            // Gone: the upload was cancelled or purged meanwhile.
            let bytes = self
                .objects
                .get_all(&path)
                .await?
                .ok_or(StorageError::UploadUnknown)?;
            if bytes.len() as u64 != piece.len {
                return Err(StorageError::Corrupt(format!(
                    "upload {}: piece {} holds {} bytes, {} recorded",
                    self.id,
                    piece.key,
                    bytes.len(),
                    piece.len
                )));
            }
            out.push(bytes);
        }
        Ok(out)
    }

    async fn delete_pieces(&self, pieces: &[Piece]) {
        for piece in pieces {
            let path = self.objects.upload_dir(&self.id).join(piece.key.as_str());
            // Best effort: the purge removes what is left.
            let _ = self.objects.delete(&path).await;
        }
    }

    /// Sends every whole part that pieces and memory hold, saving the
    /// progress after each.
    async fn send_parts(&mut self) -> Result<(), StorageError> {
        let part = self.objects.part_size;
        while self.state.pieces_len() + self.mem_len >= part {
            let mut payload = self.read_pieces().await?;
            let need = part - self.state.pieces_len();
            payload.extend(self.take(need));
            let path = self.objects.blob_path(&self.state.location);
            let multipart = match &self.state.multipart {
                Some(m) => m.clone(),
                None => {
                    let m = self.objects.create_multipart(&path).await?;
                    self.state.multipart = Some(m.clone());
                    m
                }
            };
            let index = self.state.parts.len();
            let etag = self
                .objects
                .put_part(&path, &multipart, index, payload.into_iter().collect())
                .await?;
            self.state.parts.push(etag);
            let sent = std::mem::take(&mut self.state.pieces);
            let len = self.state.parts.len() as u64 * part;
            save(
                &self.meta,
                &self.id,
                self.saved_len,
                len,
                &self.state,
                self.writer(),
            )
            .await?;
            self.saved_len = len;
            self.delete_pieces(&sent).await;
        }
        Ok(())
    }

    /// Ends a request: what is left in memory is stored as a piece.
    /// Returns the upload's length.
    pub(crate) async fn finish(mut self) -> Result<u64, StorageError> {
        let result = self.store_rest().await;
        // Released before the answer goes out: the client's next request
        // may reach another instance at once.
        if let Some(beat) = self.heartbeat.take() {
            beat.abort();
        }
        if let Some(writer) = self.writer.take() {
            release_lease(&self.meta, &self.id, &writer).await;
        }
        result
    }

    /// What is left in memory becomes a piece; the upload's length.
    async fn store_rest(&mut self) -> Result<u64, StorageError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if self.mem_len == 0 {
            return Ok(self.saved_len);
        }
        let len = self.mem_len;
        let mut bytes = self.take(len);
        let new_len = self.saved_len + len;
        // Too many pieces: this one takes the others' bytes too.
        let merged = if self.state.pieces.len() >= MAX_PIECES {
            let mut all = self.read_pieces().await?;
            all.append(&mut bytes);
            bytes = all;
            std::mem::take(&mut self.state.pieces)
        } else {
            Vec::new()
        };
        let start = new_len - bytes.iter().map(|b| b.len() as u64).sum::<u64>();
        let key = format!("{start}-{}", Uuid::new_v4().simple());
        let path = self.objects.upload_dir(&self.id).join(key.as_str());
        let piece_len = new_len - start;
        self.objects.put(&path, bytes.into_iter().collect()).await?;
        self.state.pieces.push(Piece {
            key,
            len: piece_len,
        });
        save(
            &self.meta,
            &self.id,
            self.saved_len,
            new_len,
            &self.state,
            self.writer(),
        )
        .await?;
        self.delete_pieces(&merged).await;
        Ok(new_len)
    }

    /// The final PUT: verifies the digest and stores the blob at its
    /// location. Returns its size and location; the caller records it.
    /// On a digest mismatch nothing of the upload is left.
    pub(crate) async fn complete(mut self, digest: &Digest) -> Result<(u64, String), StorageError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        // Before anything is written: one final PUT per upload wins.
        claim(
            &self.meta,
            &self.id,
            self.saved_len,
            &self.state,
            self.writer(),
        )
        .await?;
        match self.assemble(digest).await {
            Ok(done) => Ok(done),
            // A mismatch has removed everything already.
            Err(e @ StorageError::DigestMismatch { .. }) => Err(e),
            Err(e) => {
                // Claimed, so no other request can finish it: it ends
                // here rather than wait for the purge (it would count
                // against its owner's open sessions until then).
                self.abandon().await;
                Err(e)
            }
        }
    }

    /// Removes everything of a claimed upload that could not complete:
    /// its multipart upload, pieces, assembled object and row.
    async fn abandon(&self) {
        let path = self.objects.blob_path(&self.state.location);
        let cleaned = async {
            discard(&self.objects, &self.id, Some(&self.state)).await?;
            self.objects.delete(&path).await?;
            self.meta.delete_upload(&self.id).await
        };
        if let Err(e) = cleaned.await {
            tracing::warn!(upload = %self.id, error = %e, "could not remove a failed upload's objects; the purge and GC will");
        }
    }

    /// The claimed upload's blob, stored at its location and checked.
    async fn assemble(&mut self, digest: &Digest) -> Result<(u64, String), StorageError> {
        let rest_len = self.mem_len;
        let rest = self.take(rest_len);
        let size = self.saved_len + rest_len;
        if digest.algorithm() == Algorithm::Sha256 {
            let actual = self.state.hash.finish_hex();
            if actual != digest.hex() {
                return Err(self.mismatch(digest, &actual).await);
            }
        }
        let mut tail = self.read_pieces().await?;
        tail.extend(rest);
        let path = self.objects.blob_path(&self.state.location);
        match self.state.multipart.clone() {
            None => self.objects.put(&path, tail.into_iter().collect()).await?,
            Some(multipart) => {
                if tail.iter().any(|b| !b.is_empty()) {
                    let index = self.state.parts.len();
                    let etag = self
                        .objects
                        .put_part(&path, &multipart, index, tail.into_iter().collect())
                        .await?;
                    self.state.parts.push(etag);
                }
                self.objects
                    .complete_multipart(&path, &multipart, &self.state.parts)
                    .await?;
                self.state.multipart = None;
            }
        }
        if digest.algorithm() != Algorithm::Sha256 {
            // Only SHA-256 is kept running; another algorithm is checked
            // against the stored object.
            let mut hasher = digest.algorithm().hasher();
            let mut stream = self.objects.read(&self.state.location, 0, size);
            while let Some(chunk) = stream.try_next().await? {
                hasher.update(&chunk);
            }
            let actual = hasher.finish();
            if &actual != digest {
                self.objects.delete(&path).await?;
                return Err(self.mismatch(digest, actual.hex()).await);
            }
        }
        let pieces = std::mem::take(&mut self.state.pieces);
        self.delete_pieces(&pieces).await;
        Ok((size, self.state.location.clone()))
    }

    async fn mismatch(&self, expected: &Digest, actual_hex: &str) -> StorageError {
        if let Err(e) = discard(&self.objects, &self.id, Some(&self.state)).await {
            tracing::warn!(upload = %self.id, error = %e, "could not remove a refused upload's objects; the purge will");
        }
        let actual = format!("{}:{actual_hex}", expected.algorithm().as_str())
            .parse()
            .unwrap_or_else(|_| expected.clone());
        StorageError::DigestMismatch {
            expected: expected.clone(),
            actual,
        }
    }
}
