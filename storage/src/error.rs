//! The storage crate's one error type, in the registry's own words. The
//! gateway maps each variant to an OCI error code and HTTP status.

use crate::oci::{Digest, RepoName};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid repository name {0}")]
    NameInvalid(String),
    #[error("invalid tag {0}")]
    TagInvalid(String),
    #[error("invalid digest {0}")]
    DigestInvalid(String),
    #[error("repository `{0}` is not known to this registry")]
    NameUnknown(RepoName),
    #[error("blob {0} is not in this repository; push it (or mount it) first")]
    BlobUnknown(Digest),
    #[error("upload session not found: it was finished, cancelled or never started; start a new one with POST")]
    UploadUnknown,
    #[error("the upload was changed by another request while this one wrote to it; check where it stands (GET its location) and resume from there")]
    UploadBusy,
    /// A user holds as many open upload sessions as allowed.
    #[error("too many unfinished uploads: at most {limit} per user may be open at once; complete or cancel (DELETE) some, or wait for abandoned ones to be purged")]
    TooManyUploads { limit: u32 },
    #[error("chunk starts at byte {got} but the upload has {expected} bytes; send chunks in order, resuming at {expected}")]
    UploadOffsetMismatch { expected: u64, got: u64 },
    #[error(
        "uploaded content has digest {actual}, not the {expected} given; the upload was discarded"
    )]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("manifest {0} is not in this repository")]
    ManifestUnknown(String),
    #[error("invalid manifest: {0}")]
    ManifestInvalid(String),
    #[error("manifest references {0}, which is not in this repository; push that blob or manifest first")]
    ManifestBlobUnknown(Digest),
    #[error(
        "manifest is larger than this registry's limit of {limit} bytes (server.max_manifest_size)"
    )]
    ManifestTooLarge { limit: usize },
    #[error("Docker schema1 manifests are not supported (deprecated since 2017); push with a current client, which sends schema2 or OCI manifests")]
    ManifestSchema1Unsupported,
    /// A push would take its project past its storage quota.
    #[error("{0}")]
    QuotaExceeded(crate::quota::Exceeded),
    /// A tag an immutability rule protects cannot be moved or deleted.
    #[error("tag `{tag}` is immutable by {rule}: it cannot be overwritten or deleted; push under a new tag, or ask a project admin or maintainer to disable the rule")]
    TagImmutable { tag: String, rule: String },
    /// `berth migrate` cannot copy this installation (the message says why
    /// and what to do).
    #[error("{0}")]
    MigrationRefused(String),
    /// `berth backup` or `berth restore` cannot go on (the message says
    /// why and what to do).
    #[error("{0}")]
    BackupRefused(String),
    /// The secret key file is missing, unreadable or not the database's
    /// (the message says which and what to do).
    #[error("{0}")]
    Secrets(String),
    /// A stored row berth cannot read back (written by a newer version?).
    #[error("unreadable stored data: {0}")]
    Corrupt(String),
    #[error("garbage collection {run_id} is running; wait for it to finish (GET /api/v2.0/system/gc/{run_id})")]
    GcRunning { run_id: i64 },
    #[error(
        "garbage collection lost its lock to another process (its lease expired); this run stopped"
    )]
    GcLockLost,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The object store failed or refused (its message names no secret).
    #[error("object store: {context}: {source}")]
    Object {
        context: String,
        #[source]
        source: Box<object_store::Error>,
    },
    /// Text a database cannot store (PostgreSQL refuses NUL characters).
    #[error("text must not contain a NUL character (\\0); remove it and try again")]
    TextInvalid,
    #[error("database: {0}")]
    Db(sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StorageError {
    fn from(e: sqlx::Error) -> StorageError {
        // 22021 character_not_in_repertoire: the input's fault, not ours.
        let unstorable = e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|code| code == "22021");
        if unstorable {
            StorageError::TextInvalid
        } else {
            StorageError::Db(e)
        }
    }
}

impl StorageError {
    /// Whether a disk (of the blob store or the database) is full: the
    /// write failed for want of space, not for a fault of berth's.
    pub fn is_storage_full(&self) -> bool {
        match self {
            StorageError::Io { source, .. } => {
                source.kind() == std::io::ErrorKind::StorageFull
                    || source.kind() == std::io::ErrorKind::QuotaExceeded
            }
            // SQLite's SQLITE_FULL (13, or extended codes ending in it);
            // PostgreSQL's disk_full (53100).
            StorageError::Db(sqlx::Error::Io(source)) => {
                source.kind() == std::io::ErrorKind::StorageFull
            }
            StorageError::Db(e) => {
                e.as_database_error()
                    .and_then(|d| d.code())
                    .is_some_and(|code| {
                        code == "53100" || code.parse::<i64>().is_ok_and(|c| c & 0xff == 13)
                    })
            }
            _ => false,
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StorageError {
        let context = context.into();
        move |source| StorageError::Io { context, source }
    }
}
