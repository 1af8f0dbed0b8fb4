//! The content-addressed filesystem blob store.
//!
//! Layout under the root: `<alg>/<first two hex>/<hex>` for committed blobs
//! and `_uploads/<uuid>` for uploads in progress. Both live on the same
//! filesystem so that committing is a rename: a blob is either wholly at its
//! address or absent.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::StorageError;
use crate::oci::{Algorithm, Digest, Hasher};

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

    /// Moves a fully written, already verified temp file to its content
    /// address. The data is synced first so that the rename never exposes a
    /// blob whose bytes could still be lost.
    pub fn commit(&self, temp: &Path, file: &File, digest: &Digest) -> Result<(), StorageError> {
        let dest = self.path(digest);
        if dest.is_file() {
            // Same content already stored: keep the existing file.
            let _ = std::fs::remove_file(temp);
            return Ok(());
        }
        file.sync_data()
            .map_err(StorageError::io(format!("syncing upload for {digest}")))?;
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
}

/// Hashes a whole file from disk. Used only off the fast path: after a
/// restart (the in-memory hash state is gone) or for non-sha256 digests.
pub fn hash_file(path: &Path, algorithm: Algorithm) -> Result<(Hasher, u64), StorageError> {
    let mut f =
        File::open(path).map_err(StorageError::io(format!("opening {}", path.display())))?;
    let mut hasher = algorithm.hasher();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut total = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(StorageError::io(format!("reading {}", path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hasher, total))
}
