//! `berth backup` and `berth restore` for the embedded installation
//! (SQLite and blobs on files). PostgreSQL and object stores are backed up
//! with their own tools (see README); berth's part there is the secret key
//! file.
//!
//! A backup folder holds `berth.db` (a consistent snapshot, SQLite's
//! `VACUUM INTO`, taken while the server runs), `blobs/` (each blob the
//! snapshot references, at its content address, digest checked on the way),
//! the secret key file `secret.key` (mode 0600) and `backup.json`.
//!
//! - Blobs are copied before the snapshot and again after it for what
//!   arrived in between: a blob the snapshot references and GC could
//!   delete before it is copied would have had to be unreferenced for the
//!   whole GC grace period, so it was copied in the first pass.
//! - A rerun copies only blobs it lacks, and drops those the new snapshot
//!   no longer references once that snapshot is in place: a crash leaves
//!   the previous backup whole.
//! - A restore writes a new installation only: the database goes in under
//!   a temporary name, every blob is copied and its digest checked, and
//!   only when all are sound is the database put in place. Damaged or
//!   missing blobs are listed and nothing is put in place.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::blobs::{BlobStore, CopyFailure};
use crate::error::StorageError;
use crate::meta::{Backend, Meta};
use crate::oci::Digest;

/// The file that describes a backup.
const MANIFEST: &str = "backup.json";
const DATABASE: &str = "berth.db";
const KEY: &str = "secret.key";
const FORMAT: u32 = 1;

/// What `backup.json` says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupInfo {
    pub format: u32,
    /// Seconds since the epoch when the snapshot was taken.
    pub taken_at: i64,
    pub blobs: u64,
    pub bytes: u64,
}

/// Where an installation on SQLite and files keeps its state.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// `sqlite://...`
    pub database_url: String,
    pub blob_root: PathBuf,
    pub key_file: PathBuf,
}

/// What a backup run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub blobs: u64,
    pub bytes: u64,
    pub copied: u64,
    pub copied_bytes: u64,
    pub dropped: u64,
}

/// What a restore did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RestoreSummary {
    pub blobs: u64,
    pub bytes: u64,
}

fn refused(why: impl Into<String>) -> StorageError {
    StorageError::BackupRefused(why.into())
}

fn sqlite_path(url: &str) -> Result<PathBuf, StorageError> {
    if Backend::of_url(url)? != Backend::Sqlite {
        return Err(refused(
            "berth backup and restore handle the embedded installation (SQLite): back up \
             PostgreSQL with pg_dump and the object store with its own tools, and keep the \
             secret key file (secrets.key_file) with them",
        ));
    }
    let path = url
        .strip_prefix("sqlite://")
        .unwrap_or(url)
        .split('?')
        .next()
        .unwrap_or_default();
    // The config writes `%`, `?` and `#` of a path escaped in the URL.
    Ok(PathBuf::from(
        percent_encoding::percent_decode_str(path)
            .decode_utf8_lossy()
            .into_owned(),
    ))
}

async fn blob_list(meta: &Meta) -> Result<Vec<(Digest, u64)>, StorageError> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT digest, size FROM blobs ORDER BY digest")
        .fetch_all(meta.pool())
        .await?;
    rows.into_iter()
        .map(|(d, s)| Ok((d.parse()?, u64::try_from(s).unwrap_or(0))))
        .collect()
}

/// Copies the blobs `list` names from `from` to `to` unless present there
/// with their size; returns (copied, bytes copied).
async fn copy_missing(
    from: &BlobStore,
    to: &BlobStore,
    list: &[(Digest, u64)],
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<(u64, u64), StorageError> {
    let (mut copied, mut bytes) = (0, 0);
    for (i, (digest, size)) in list.iter().enumerate() {
        let present = std::fs::metadata(to.path(digest)).is_ok_and(|m| m.len() == *size);
        if !present {
            let (src, dst, d, size) = (from.clone(), to.clone(), digest.clone(), *size);
            let done = tokio::task::spawn_blocking(move || dst.copy_verified(&src, &d, size))
                .await
                .map_err(|e| refused(format!("copying {digest}: {e}")))?;
            match done {
                Ok(()) => {
                    copied += 1;
                    bytes += size;
                }
                Err(CopyFailure::Unreadable(path, e)) => {
                    return Err(refused(format!(
                        "blob {digest} is recorded in the database but {} cannot be read ({e}); \
                         run `berth gc`, then back up again",
                        path.display()
                    )))
                }
                Err(CopyFailure::Damaged { copied, got }) => {
                    return Err(refused(format!(
                        "blob {digest} in the store is damaged ({copied} bytes with digest {got}); \
                         it was not copied"
                    )))
                }
                Err(CopyFailure::Store(e)) => return Err(e),
            }
        }
        if (i + 1) % 500 == 0 {
            progress(format!(
                "blobs: {}/{} checked, {copied} copied",
                i + 1,
                list.len()
            ));
        }
    }
    Ok((copied, bytes))
}

/// Creates `dir` (and its parents) and makes it readable by berth alone:
/// a backup holds password hashes and every private project's blobs.
fn private_dir(dir: &Path) -> Result<(), StorageError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)
        .map_err(StorageError::io(format!("creating {}", dir.display())))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(StorageError::io(
        format!("making {} private", dir.display()),
    ))
}

/// `p` with its links resolved as far as it exists, absolute.
fn real(p: &Path) -> PathBuf {
    if let Ok(r) = p.canonicalize() {
        return r;
    }
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => real(parent).join(name),
        _ => std::path::absolute(p).unwrap_or_else(|_| p.to_owned()),
    }
}

/// Whether one of two paths lies in the other.
fn overlap(a: &Path, b: &Path) -> bool {
    let (a, b) = (real(a), real(b));
    a.starts_with(&b) || b.starts_with(&a)
}

/// Refuses a backup folder that is, holds or lies in the installation's
/// own files: the snapshot would replace the live database, or the pass
/// that drops unreferenced blobs would delete live ones.
fn check_apart(dir: &Path, from: &Embedded, live_db: &Path) -> Result<(), StorageError> {
    let folder = |p: &Path| real(p.parent().unwrap_or(p));
    let d = real(dir);
    if d == folder(live_db)
        || d == folder(&from.key_file)
        || overlap(dir, &from.blob_root)
        || overlap(&dir.join("blobs"), &from.blob_root)
    {
        return Err(refused(format!(
            "{} is, holds or lies in the installation's own files (its database, secret key or \
             blob store): back up into a folder of its own, outside the data directory",
            dir.display()
        )));
    }
    Ok(())
}

/// Holds the backup folder for one run: two at once would drop each
/// other's blobs.
fn lock(dir: &Path) -> Result<std::fs::File, StorageError> {
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(StorageError::io(format!("opening {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(refused(format!(
            "another berth backup is writing to {}; wait for it to finish",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StorageError::Io {
            context: format!("locking {}", path.display()),
            source: e,
        }),
    }
}

/// The key file's text, if there is one.
pub fn read_key(path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    match std::fs::read(path) {
        Ok(key) => Ok(Some(key)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::Io {
            context: format!("reading {}", path.display()),
            source: e,
        }),
    }
}

/// Writes `bytes` to `path` through a temp file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StorageError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temp = path.with_extension("partial");
    let _ = std::fs::remove_file(&temp);
    let io = StorageError::io(format!("writing {}", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .map_err(StorageError::io(format!("writing {}", temp.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&temp, path))
        .map_err(io)
}

/// `berth backup --to DIR`: see the module documentation.
pub async fn backup(
    from: &Embedded,
    dir: &Path,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<BackupSummary, StorageError> {
    let live_db = sqlite_path(&from.database_url)?;
    if !live_db.exists() {
        return Err(refused(format!("no database at {}", live_db.display())));
    }
    check_apart(dir, from, &live_db)?;
    private_dir(dir)?;
    let dir = dir
        .canonicalize()
        .map_err(StorageError::io(format!("resolving {}", dir.display())))?;
    let _lock = lock(&dir)?;
    let live = Meta::connect(&from.database_url).await?;
    let store = BlobStore::open(&from.blob_root)?;
    private_dir(&dir.join("blobs"))?;
    let kept = BlobStore::open(&dir.join("blobs"))?;
    let mut summary = BackupSummary::default();

    let before = blob_list(&live).await?;
    progress(format!("blobs: {} in the store", before.len()));
    let (n, b) = copy_missing(&store, &kept, &before, progress).await?;
    (summary.copied, summary.copied_bytes) = (n, b);

    // The key file is read before and after the snapshot: a rotation in
    // between may have recorded a key only the later file holds, or
    // dropped the one the snapshot's values are sealed with.
    let key_before = read_key(&from.key_file)?;
    let snapshot = dir.join(format!("{DATABASE}.new"));
    let _ = std::fs::remove_file(&snapshot);
    sqlx::query("VACUUM INTO $1")
        .bind(snapshot.to_string_lossy().into_owned())
        .execute(live.pool())
        .await?;
    live.pool().close().await;
    let key_after = read_key(&from.key_file)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&snapshot, std::fs::Permissions::from_mode(0o600)).map_err(
            StorageError::io(format!("making {} private", snapshot.display())),
        )?;
    }
    let taken_at = crate::meta::now();
    let snapshot_url = format!("sqlite://{}", snapshot.display());
    let snap = Meta::connect(&snapshot_url).await?;
    let referenced = blob_list(&snap).await?;
    let sealing = snap.sealing_key_id().await?;
    snap.pool().close().await;
    let (n, b) = copy_missing(&store, &kept, &referenced, progress).await?;
    summary.copied += n;
    summary.bytes = referenced.iter().map(|(_, s)| s).sum();
    summary.copied_bytes += b;
    summary.blobs = referenced.len() as u64;

    // The key opens the secrets in this snapshot.
    let texts: Vec<&[u8]> = [&key_after, &key_before]
        .into_iter()
        .flatten()
        .map(Vec::as_slice)
        .collect();
    if !texts.is_empty() {
        let (key, ids) = crate::secrets::merged_key_file(&texts)?;
        if let Some(id) = sealing.filter(|id| !ids.contains(id)) {
            return Err(refused(format!(
                "the secret key was rotated twice while this backup ran (the snapshot needs key \
                 {id}, gone from {}): run the backup again",
                from.key_file.display()
            )));
        }
        write_atomically(&dir.join(KEY), &key, 0o600)?;
    }
    std::fs::File::open(&snapshot)
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::rename(&snapshot, dir.join(DATABASE)))
        .map_err(StorageError::io(format!(
            "placing {}",
            dir.join(DATABASE).display()
        )))?;
    let info = BackupInfo {
        format: FORMAT,
        taken_at,
        blobs: summary.blobs,
        bytes: summary.bytes,
    };
    let json = serde_json::to_vec_pretty(&info).map_err(|e| refused(e.to_string()))?;
    write_atomically(&dir.join(MANIFEST), &json, 0o600)?;

    // What the new snapshot no longer references goes.
    let wanted: std::collections::HashSet<&Digest> = referenced.iter().map(|(d, _)| d).collect();
    for (digest, _, _) in kept.list()? {
        if !wanted.contains(&digest) {
            let _ = std::fs::remove_file(kept.path(&digest));
            summary.dropped += 1;
        }
    }
    Ok(summary)
}

/// `berth restore --from DIR` into a new installation `to`.
pub async fn restore(
    dir: &Path,
    to: &Embedded,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<RestoreSummary, StorageError> {
    let info: BackupInfo = std::fs::read(dir.join(MANIFEST))
        .map_err(|e| {
            refused(format!(
                "{} is not a berth backup (no readable {MANIFEST}: {e})",
                dir.display()
            ))
        })
        .and_then(|b| {
            serde_json::from_slice(&b).map_err(|e| refused(format!("{MANIFEST}: {e}")))
        })?;
    if info.format != FORMAT {
        return Err(refused(format!(
            "this backup has format {}, which this berth does not read",
            info.format
        )));
    }
    let target = sqlite_path(&to.database_url)?;
    if target.exists() {
        return Err(refused(format!(
            "{} exists: restore into a new data directory (or move the old database away first)",
            target.display()
        )));
    }
    let key = std::fs::read(dir.join(KEY)).ok();
    match (&key, std::fs::read(&to.key_file)) {
        (Some(k), Ok(existing)) if *k != existing => {
            return Err(refused(format!(
                "{} holds another key than the backup's: restore into a new data directory, or \
                 remove it",
                to.key_file.display()
            )))
        }
        _ => {}
    }
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir)
            .map_err(StorageError::io(format!("creating {}", dir.display())))?;
    }
    // Under a temporary name until every blob is in place.
    let restoring = target.with_extension("restoring");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", restoring.display()));
    }
    std::fs::copy(dir.join(DATABASE), &restoring).map_err(StorageError::io(format!(
        "copying {}",
        dir.join(DATABASE).display()
    )))?;
    let meta = Meta::connect(&format!("sqlite://{}", restoring.display())).await?;
    let list = blob_list(&meta).await?;
    let sealing = meta.sealing_key_id().await?;
    meta.pool().close().await;
    if let Some(id) = sealing {
        let ids = match &key {
            Some(k) => crate::secrets::merged_key_file(&[k])?.1,
            None => Vec::new(),
        };
        if !ids.contains(&id) {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", restoring.display()));
            }
            return Err(refused(format!(
                "the backup's secret key file does not hold key {id}, which seals the secrets in \
                 its database: nothing was put in place (put the right key file at {} in the \
                 backup and run again)",
                dir.join(KEY).display()
            )));
        }
    }
    let kept = BlobStore::open(&dir.join("blobs"))?;
    let store = BlobStore::open(&to.blob_root)?;
    let mut damaged = Vec::new();
    let mut summary = RestoreSummary::default();
    for (i, (digest, size)) in list.iter().enumerate() {
        let (src, dst, d, s) = (kept.clone(), store.clone(), digest.clone(), *size);
        let done = tokio::task::spawn_blocking(move || dst.copy_verified(&src, &d, s))
            .await
            .map_err(|e| refused(format!("copying {digest}: {e}")))?;
        match done {
            Ok(()) => {
                summary.blobs += 1;
                summary.bytes += size;
            }
            Err(CopyFailure::Unreadable(_, e)) => damaged.push(format!("{digest}: missing ({e})")),
            Err(CopyFailure::Damaged { copied, got }) => damaged.push(format!(
                "{digest}: damaged ({copied} bytes with digest {got}, {size} expected)"
            )),
            Err(CopyFailure::Store(e)) => return Err(e),
        }
        if (i + 1) % 500 == 0 {
            progress(format!("blobs: {}/{} restored", i + 1, list.len()));
        }
    }
    if !damaged.is_empty() {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", restoring.display()));
        }
        return Err(refused(format!(
            "the backup is damaged: {} of {} blobs did not check out, so nothing was put in \
             place:\n{}",
            damaged.len(),
            list.len(),
            damaged.join("\n")
        )));
    }
    if let Some(key) = key {
        if !to.key_file.exists() {
            if let Some(dir) = to.key_file.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(StorageError::io(format!("creating {}", dir.display())))?;
            }
            write_atomically(&to.key_file, &key, 0o600)?;
        }
    }
    // The pool is closed: SQLite checkpointed its log into the file. A log
    // left over anyway goes with it.
    for suffix in ["-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", restoring.display()));
        if from.exists() {
            std::fs::rename(&from, format!("{}{suffix}", target.display()))
                .map_err(StorageError::io(format!("placing {}", from.display())))?;
        }
    }
    std::fs::rename(&restoring, &target)
        .map_err(StorageError::io(format!("placing {}", target.display())))?;
    Ok(summary)
}
