//! Blobs on an S3-compatible object store (AWS S3, Ceph RGW, Swift's
//! s3api, MinIO, Garage), through the `object_store` crate.
//!
//! Layout under the configured key prefix:
//! - `blobs/<alg>/<hex>`: a blob at its content address (copied in by
//!   `berth migrate`; a `blobs` row without a `location`);
//! - `blobs/u/<id>`: a blob pushed or fetched here. An upload is assembled
//!   where it will stay and the row records that `location`, so committing
//!   copies nothing; every upload has its own key, so GC deleting an old
//!   copy can never remove a new push of the same digest;
//! - `uploads/<id>/<offset>-<nonce>`: pieces of an upload too small to be
//!   a multipart part yet (see `upload`);
//! - `probe/<nonce>`: health probes, removed at once.
//!
//! - [`sha`]: SHA-256 whose state the database can hold between chunks.
//! - [`upload`]: uploads as multipart uploads, resumable on any instance.

mod sha;
pub(crate) mod upload;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use uuid::Uuid;

use crate::error::StorageError;
use crate::oci::Digest;

/// How long a pre-signed blob URL stays valid (as distribution's).
const REDIRECT_TTL: Duration = Duration::from_secs(20 * 60);

/// `[storage.s3]`, with `[storage] redirect`.
#[derive(Clone)]
pub struct ObjectSettings {
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// Empty, or ending in `/`.
    pub prefix: String,
    /// Both or neither; neither: from the environment (`AWS_*`).
    pub credentials: Option<(String, String)>,
    pub path_style: bool,
    pub part_size: u64,
    pub redirect: bool,
}

impl std::fmt::Debug for ObjectSettings {
    // Never the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectSettings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("path_style", &self.path_style)
            .field("part_size", &self.part_size)
            .field("redirect", &self.redirect)
            .finish_non_exhaustive()
    }
}

/// The object store and where berth's keys live in it.
pub(crate) struct Objects {
    store: AmazonS3,
    prefix: String,
    pub(crate) part_size: u64,
    redirect: bool,
}

/// Where a blob's bytes are: the row's `location` column, or its content
/// address when that is empty.
pub(crate) fn blob_key(digest: &Digest, location: Option<&str>) -> String {
    match location {
        Some(loc) => loc.to_owned(),
        None => format!("{}/{}", digest.algorithm().as_str(), digest.hex()),
    }
}

/// A fresh location for a blob pushed or fetched here.
pub(crate) fn new_location() -> String {
    format!("u/{}", Uuid::new_v4().simple())
}

fn failed(context: impl Into<String>) -> impl FnOnce(object_store::Error) -> StorageError {
    let context = context.into();
    move |source| StorageError::Object {
        context,
        source: Box::new(source),
    }
}

impl Objects {
    pub(crate) fn connect(settings: &ObjectSettings) -> Result<Arc<Objects>, StorageError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_virtual_hosted_style_request(!settings.path_style)
            .with_retry(RetryConfig {
                max_retries: 5,
                retry_timeout: Duration::from_secs(60),
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &settings.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some((key, secret)) = &settings.credentials {
            builder = builder
                .with_access_key_id(key)
                .with_secret_access_key(secret);
        }
        let store = builder.build().map_err(failed(format!(
            "configuring the object store (bucket {})",
            settings.bucket
        )))?;
        Ok(Arc::new(Objects {
            store,
            prefix: settings.prefix.clone(),
            part_size: settings.part_size,
            redirect: settings.redirect,
        }))
    }

    fn path(&self, area: &str, key: &str) -> Path {
        Path::from(format!("{}{area}/{key}", self.prefix))
    }

    pub(crate) fn blob_path(&self, key: &str) -> Path {
        self.path("blobs", key)
    }

    pub(crate) fn upload_dir(&self, id: &str) -> Path {
        self.path("uploads", id)
    }

    /// `len` bytes of a blob from `offset`, fetched when first polled (a
    /// HEAD never polls it).
    pub(crate) fn read(
        self: &Arc<Self>,
        key: &str,
        offset: u64,
        len: u64,
    ) -> BoxStream<'static, Result<Bytes, StorageError>> {
        if len == 0 {
            return futures_util::stream::empty().boxed();
        }
        let path = self.blob_path(key);
        let this = self.clone();
        let context = format!("reading {path}");
        futures_util::stream::once(async move {
            let options = GetOptions {
                range: Some(GetRange::Bounded(offset..offset + len)),
                ..GetOptions::default()
            };
            this.store
                .get_opts(&path, options)
                .await
                .map(|got| {
                    let context = context.clone();
                    got.into_stream()
                        .map_err(move |e| failed(context.clone())(e))
                })
                .map_err(failed(context))
        })
        .try_flatten()
        .boxed()
    }

    /// A pre-signed URL for GETting a blob, when `redirect` is on.
    pub(crate) async fn presigned(&self, key: &str) -> Result<Option<String>, StorageError> {
        if !self.redirect {
            return Ok(None);
        }
        let path = self.blob_path(key);
        let url = self
            .store
            .signed_url(http::Method::GET, &path, REDIRECT_TTL)
            .await
            .map_err(failed(format!("signing a URL for {path}")))?;
        Ok(Some(url.to_string()))
    }

    pub(crate) async fn put(&self, path: &Path, payload: PutPayload) -> Result<(), StorageError> {
        self.store
            .put(path, payload)
            .await
            .map_err(failed(format!("writing {path}")))?;
        Ok(())
    }

    /// A whole small object (an upload's piece), in memory; `None` when
    /// there is none.
    pub(crate) async fn get_all(&self, path: &Path) -> Result<Option<Bytes>, StorageError> {
        let got = match self.store.get(path).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(failed(format!("reading {path}"))(e)),
        };
        got.bytes()
            .await
            .map(Some)
            .map_err(failed(format!("reading {path}")))
    }

    /// Deletes an object; one already gone is fine.
    pub(crate) async fn delete(&self, path: &Path) -> Result<(), StorageError> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(failed(format!("deleting {path}"))(e)),
        }
    }

    /// Deletes every object under `dir`.
    pub(crate) async fn delete_all(&self, dir: &Path) -> Result<(), StorageError> {
        let keys: Vec<Path> = self
            .store
            .list(Some(dir))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(failed(format!("listing {dir}")))?;
        for key in keys {
            self.delete(&key).await?;
        }
        Ok(())
    }

    /// Objects under `area` (`blobs`, `uploads`): key relative to the
    /// area, size, last modified.
    pub(crate) async fn list(
        &self,
        area: &str,
    ) -> Result<Vec<(String, u64, SystemTime)>, StorageError> {
        let dir = Path::from(format!("{}{area}", self.prefix));
        let strip = format!("{dir}/");
        self.store
            .list(Some(&dir))
            .map_ok(|meta| {
                let key = meta.location.as_ref();
                let rel = key.strip_prefix(&strip).unwrap_or(key).to_owned();
                (rel, meta.size, SystemTime::from(meta.last_modified))
            })
            .try_collect()
            .await
            .map_err(failed(format!("listing {dir}")))
    }

    pub(crate) async fn create_multipart(&self, path: &Path) -> Result<String, StorageError> {
        self.store
            .create_multipart(path)
            .await
            .map_err(failed(format!("starting a multipart upload of {path}")))
    }

    pub(crate) async fn put_part(
        &self,
        path: &Path,
        multipart: &str,
        index: usize,
        data: PutPayload,
    ) -> Result<String, StorageError> {
        let part = self
            .store
            .put_part(path, &multipart.to_owned(), index, data)
            .await
            .map_err(failed(format!("uploading part {} of {path}", index + 1)))?;
        Ok(part.content_id)
    }

    pub(crate) async fn complete_multipart(
        &self,
        path: &Path,
        multipart: &str,
        parts: &[String],
    ) -> Result<(), StorageError> {
        let parts = parts
            .iter()
            .map(|etag| PartId {
                content_id: etag.clone(),
            })
            .collect();
        self.store
            .complete_multipart(path, &multipart.to_owned(), parts)
            .await
            .map_err(failed(format!("completing the multipart upload of {path}")))?;
        Ok(())
    }

    pub(crate) async fn abort_multipart(
        &self,
        path: &Path,
        multipart: &str,
    ) -> Result<(), StorageError> {
        match self
            .store
            .abort_multipart(path, &multipart.to_owned())
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(failed(format!("aborting the multipart upload of {path}"))(
                e,
            )),
        }
    }

    /// The size of a blob's object, `None` when there is none.
    pub(crate) async fn size_of(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let path = self.blob_path(key);
        match self.store.head(&path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(failed(format!("looking up {path}"))(e)),
        }
    }

    /// Writes and removes a small object (for health checks).
    pub(crate) async fn probe(&self) -> Result<(), StorageError> {
        let path = self.path("probe", &Uuid::new_v4().simple().to_string());
        self.put(&path, PutPayload::from_static(b"probe")).await?;
        self.delete(&path).await
    }

    /// Stores a local file at `key` under `blobs/`, in parts when it is
    /// larger than one part, so memory stays at one part.
    pub(crate) async fn put_file(
        &self,
        key: &str,
        file: std::fs::File,
        size: u64,
    ) -> Result<(), StorageError> {
        let path = self.blob_path(key);
        let file = Arc::new(file);
        let part = self.part_size;
        let read = |offset: u64, len: u64| {
            let file = file.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    use std::os::unix::fs::FileExt;
                    let mut buf = vec![0u8; len as usize];
                    file.read_exact_at(&mut buf, offset)
                        .map(|()| PutPayload::from(buf))
                        .map_err(StorageError::io("reading a fetched blob"))
                })
                .await
                .map_err(|e| StorageError::Io {
                    context: "reading a fetched blob".into(),
                    source: std::io::Error::other(e),
                })?
            }
        };
        if size <= part {
            return self.put(&path, read(0, size).await?).await;
        }
        let multipart = self.create_multipart(&path).await?;
        let mut etags = Vec::new();
        let mut offset = 0;
        let result: Result<(), StorageError> = async {
            while offset < size {
                let len = part.min(size - offset);
                let payload = read(offset, len).await?;
                etags.push(
                    self.put_part(&path, &multipart, etags.len(), payload)
                        .await?,
                );
                offset += len;
            }
            self.complete_multipart(&path, &multipart, &etags).await
        }
        .await;
        if result.is_err() {
            let _ = self.abort_multipart(&path, &multipart).await;
        }
        result
    }
}

/// Whether the object a blob commit named is nobody's, given the commit's
/// outcome: the digest was stored at another location already (`false`),
/// or the commit was refused before anything was written (over the
/// quota). After any other error the commit may have gone through (a
/// connection lost while it committed): the object stays, and GC's orphan
/// sweep decides by the rows whether it is anybody's.
pub(crate) fn unowned_after(recorded: &Result<bool, StorageError>) -> bool {
    matches!(recorded, Ok(false) | Err(StorageError::QuotaExceeded(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_known_outcome_gives_an_uploaded_object_away() {
        let over = StorageError::QuotaExceeded(crate::quota::Exceeded {
            project: "team".into(),
            used: 1,
            limit: 1,
            needed: 1,
        });
        assert!(unowned_after(&Ok(false)));
        assert!(unowned_after(&Err(over)));
        assert!(!unowned_after(&Ok(true)));
        // Lost while committing: the row may name it.
        assert!(!unowned_after(&Err(StorageError::Corrupt(
            "connection reset".into()
        ))));
    }
}
