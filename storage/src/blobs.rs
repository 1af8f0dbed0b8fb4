//! The content-addressed filesystem blob store, and [`OpenBlob`], a blob
//! opened for reading on either store.
//!
//! Layout under the root: `<alg>/<first two hex>/<hex>` for committed blobs
//! and `_uploads/<uuid>` for uploads in progress. Both live on the same
//! filesystem so that committing is a rename: a blob is either wholly at its
//! address or absent.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::error::StorageError;

/// Why [`BlobStore::copy_verified`] did not copy a blob.
#[derive(Debug)]
pub enum CopyFailure {
    /// The source file is missing or unreadable.
    Unreadable(PathBuf, std::io::Error),
    /// The source file is not what its address says.
    Damaged { copied: u64, got: Digest },
    /// Writing the copy failed.
    Store(StorageError),
}

impl From<StorageError> for CopyFailure {
    fn from(e: StorageError) -> CopyFailure {
        CopyFailure::Store(e)
    }
}
use crate::objects::Objects;
use crate::oci::{Algorithm, Digest, Hasher};

/// A blob found readable, not read yet.
pub struct OpenBlob {
    pub size: u64,
    source: Source,
}

enum Source {
    File(File),
    Object { objects: Arc<Objects>, key: String },
}

/// Bytes of a blob, as the store hands them out.
pub enum BlobBytes {
    /// `len` bytes of `file` from `offset`: the caller streams them.
    File { file: File, offset: u64, len: u64 },
    /// The bytes asked for, fetched when first polled.
    Stream(BoxStream<'static, Result<Bytes, StorageError>>),
}

impl OpenBlob {
    pub(crate) fn file(file: File, size: u64) -> OpenBlob {
        OpenBlob {
            size,
            source: Source::File(file),
        }
    }

    pub(crate) fn object(objects: Arc<Objects>, key: String, size: u64) -> OpenBlob {
        OpenBlob {
            size,
            source: Source::Object { objects, key },
        }
    }

    /// A short-lived URL the client may fetch the bytes from directly,
    /// when the store is an object store with `redirect` on.
    pub async fn redirect(&self) -> Result<Option<String>, StorageError> {
        match &self.source {
            Source::File(_) => Ok(None),
            Source::Object { objects, key } => objects.presigned(key).await,
        }
    }

    /// The whole blob in memory, if it is at most `max` bytes (an image
    /// config shown in the portal); `None` when it is larger.
    pub async fn read_small(self, max: u64) -> Result<Option<Bytes>, StorageError> {
        use futures_util::StreamExt;
        if self.size > max {
            return Ok(None);
        }
        let size = self.size;
        match self.bytes(0, size) {
            BlobBytes::File { mut file, .. } => tokio::task::spawn_blocking(move || {
                let mut buf = Vec::with_capacity(size as usize);
                file.by_ref()
                    .take(size)
                    .read_to_end(&mut buf)
                    .map_err(StorageError::io("reading a blob"))?;
                Ok(Some(Bytes::from(buf)))
            })
            .await
            .map_err(|e| StorageError::Corrupt(format!("blob read task: {e}")))?,
            BlobBytes::Stream(mut stream) => {
                let mut buf = Vec::with_capacity(size as usize);
                while let Some(chunk) = stream.next().await {
                    buf.extend_from_slice(&chunk?);
                }
                Ok(Some(Bytes::from(buf)))
            }
        }
    }

    /// The blob from `offset` to its end as a stream of pieces, for
    /// berth's own readers (replication); clients get `bytes`, which the
    /// gateway sends without this copy through a task.
    pub fn stream_from(self, offset: u64) -> BoxStream<'static, Result<Bytes, StorageError>> {
        let len = self.size.saturating_sub(offset);
        match self.bytes(offset, len) {
            BlobBytes::Stream(stream) => stream,
            BlobBytes::File { file, offset, len } => {
                let file = Arc::new(file);
                let end = offset + len;
                Box::pin(futures_util::stream::try_unfold(offset, move |at| {
                    let file = file.clone();
                    async move {
                        if at >= end {
                            return Ok(None);
                        }
                        let want = (end - at).min(READ_CHUNK as u64) as usize;
                        let piece = tokio::task::spawn_blocking(move || {
                            use std::os::unix::fs::FileExt;
                            let mut buf = vec![0u8; want];
                            let n = file
                                .read_at(&mut buf, at)
                                .map_err(StorageError::io("reading a blob"))?;
                            buf.truncate(n);
                            Ok::<_, StorageError>(buf)
                        })
                        .await
                        .map_err(|e| StorageError::Corrupt(format!("blob read task: {e}")))??;
                        if piece.is_empty() {
                            return Err(StorageError::Corrupt(
                                "a blob file is shorter than its recorded size".into(),
                            ));
                        }
                        let next = at + piece.len() as u64;
                        Ok(Some((Bytes::from(piece), next)))
                    }
                }))
            }
        }
    }

    /// `len` bytes from `offset` (within `size`).
    pub fn bytes(self, offset: u64, len: u64) -> BlobBytes {
        match self.source {
            Source::File(file) => BlobBytes::File { file, offset, len },
            Source::Object { objects, key } => BlobBytes::Stream(objects.read(&key, offset, len)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// Reads of a blob are done in pieces of this size: large enough that the
/// per-call overhead vanishes, small enough to keep memory flat.
pub const READ_CHUNK: usize = 1024 * 1024;

impl BlobStore {
    pub fn open(root: &Path) -> Result<BlobStore, StorageError> {
        let store = BlobStore {
            root: root.to_owned(),
        };
        std::fs::create_dir_all(store.uploads_dir())
            .map_err(StorageError::io(format!("creating {}", root.display())))?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join("_uploads")
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
    }

    /// Opens a committed blob for reading, with its size.
    pub fn open_blob(&self, digest: &Digest) -> Result<Option<(File, u64)>, StorageError> {
        match File::open(self.path(digest)) {
            Ok(f) => {
                let len = f
                    .metadata()
                    .map_err(StorageError::io(format!("stat blob {digest}")))?
                    .len();
                Ok(Some((f, len)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(format!("opening blob {digest}"))(e)),
        }
    }

    pub fn exists(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Where GC moves a blob while the transaction that deletes its row
    /// is open; see `gc` for why.
    pub fn trash_dir(&self) -> PathBuf {
        self.root.join("_trash")
    }

    pub(crate) fn trash_path(&self, digest: &Digest) -> PathBuf {
        self.trash_dir()
            .join(format!("{}-{}", digest.algorithm().as_str(), digest.hex()))
    }

    /// Makes an upload's bytes durable, before the rename that can expose
    /// them (done early, outside any database lock: it may take a while).
    pub fn sync_upload(file: &File, digest: &Digest) -> Result<(), StorageError> {
        file.sync_data()
            .map_err(StorageError::io(format!("syncing upload for {digest}")))
    }

    /// Moves a fully written, verified and synced temp file to its content
    /// address. Called while the database write lock is held (see `gc`):
    /// the file and its row then appear together for every other writer.
    /// Copies `digest` from the store `from` into this one: streamed into
    /// a temp file while hashed, and placed at its address only when it
    /// is `size` bytes with that digest (for `migrate`, `backup` and
    /// `restore`, which phrase the failure for their reader).
    pub fn copy_verified(
        &self,
        from: &BlobStore,
        digest: &Digest,
        size: u64,
    ) -> Result<(), CopyFailure> {
        let path = from.path(digest);
        let mut src = File::open(&path).map_err(|e| CopyFailure::Unreadable(path.clone(), e))?;
        let temp = self
            .uploads_dir()
            .join(format!("copy-{}", uuid::Uuid::new_v4()));
        let result = (|| {
            let mut out = File::create(&temp)
                .map_err(StorageError::io(format!("creating {}", temp.display())))?;
            let mut hasher = digest.algorithm().hasher();
            let mut buf = vec![0u8; READ_CHUNK];
            let mut copied = 0u64;
            loop {
                let n = src
                    .read(&mut buf)
                    .map_err(|e| CopyFailure::Unreadable(path.clone(), e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                std::io::Write::write_all(&mut out, &buf[..n])
                    .map_err(StorageError::io(format!("writing {}", temp.display())))?;
                copied += n as u64;
            }
            let got = hasher.finish();
            if &got != digest || copied != size {
                return Err(CopyFailure::Damaged { copied, got });
            }
            BlobStore::sync_upload(&out, digest)?;
            Ok(self.place(&temp, digest)?)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }

    pub fn place(&self, temp: &Path, digest: &Digest) -> Result<(), StorageError> {
        let dest = self.path(digest);
        if let Ok(existing) = std::fs::metadata(&dest) {
            let verified = std::fs::metadata(temp).map(|m| m.len()).ok();
            if existing.is_file() && Some(existing.len()) == verified {
                // Same content already stored: keep the existing file.
                let _ = std::fs::remove_file(temp);
                return Ok(());
            }
            // A stored file of another length cannot be this digest's
            // content (older versions could place unverified bytes): the
            // verified upload replaces it.
        }
        let dir = dest.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir)
            .map_err(StorageError::io(format!("creating {}", dir.display())))?;
        std::fs::rename(temp, &dest)
            .map_err(StorageError::io(format!("committing blob {digest}")))?;
        // Make the rename itself durable.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Every committed blob file: its digest, size and modification time.
    /// Names that are not a digest (and the `_uploads`/`_trash`
    /// directories) are skipped.
    pub(crate) fn list(&self) -> Result<Vec<(Digest, u64, SystemTime)>, StorageError> {
        let mut out = Vec::new();
        for alg in read_dir(&self.root)? {
            let alg_name = alg.file_name().to_string_lossy().into_owned();
            if alg_name.starts_with('_') || !alg.path().is_dir() {
                continue;
            }
            for prefix in read_dir(&alg.path())? {
                if !prefix.path().is_dir() {
                    continue;
                }
                for file in read_dir(&prefix.path())? {
                    let name = file.file_name().to_string_lossy().into_owned();
                    let Ok(digest) = format!("{alg_name}:{name}").parse::<Digest>() else {
                        continue;
                    };
                    if let Ok(meta) = file.metadata() {
                        if meta.is_file() {
                            let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                            out.push((digest, meta.len(), mtime));
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The entries of a directory (none when it does not exist).
pub(crate) fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>, StorageError> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .collect::<Result<Vec<_>, _>>()
            .map_err(StorageError::io(format!("listing {}", dir.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(StorageError::io(format!("listing {}", dir.display()))(e)),
    }
}

/// Hashes what `file` (at `path`) holds from its current position to its
/// end. Used only off the fast path: when an upload's hash in memory is
/// missing or stale, or for non-sha256 digests.
pub fn hash_reader(
    file: &mut File,
    algorithm: Algorithm,
    path: &Path,
) -> Result<(Hasher, u64), StorageError> {
    let mut hasher = algorithm.hasher();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut total = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(StorageError::io(format!("reading {}", path.display())))?;
        if n == 0 {
            return Ok((hasher, total));
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}
