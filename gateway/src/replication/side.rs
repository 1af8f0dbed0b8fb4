//! The two ends of a replication: this registry's own store, read and
//! written directly (no HTTP to itself), or a registry endpoint
//! ([`Remote`]). The copy code asks a `Side` and does not care which.

use std::sync::Arc;

use berth_storage::audit::{now_ms, AuditLog, AuditRecord};
use berth_storage::oci::{Digest, Reference, RepoName};
use berth_storage::{Registry, StorageError};
use bytes::Bytes;
use futures_util::StreamExt;

use super::remote::{BlobStream, Manifest, Remote};
use crate::error::GatewayError;

/// Who the audit log names for what replication writes here.
pub const OPERATOR: &str = "replication";

pub struct Local {
    pub registry: Arc<Registry>,
    pub audit: AuditLog,
    /// New projects' storage limit, for projects replication creates.
    pub default_limit: Option<u64>,
}

pub enum Side {
    Local(Local),
    Remote(Remote),
}

fn repo_name(name: &str) -> Result<RepoName, GatewayError> {
    name.parse::<RepoName>()
        .map_err(|e| GatewayError::BadRequest(format!("`{name}` cannot be a repository here: {e}")))
}

fn reference(text: &str) -> Result<Reference, GatewayError> {
    text.parse::<Reference>()
        .map_err(|e| GatewayError::BadRequest(format!("`{text}`: {e}")))
}

/// `Ok(None)` for "not there", other errors as they are.
fn absent<T>(r: Result<T, StorageError>) -> Result<Option<T>, GatewayError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(
            StorageError::NameUnknown(_)
            | StorageError::ManifestUnknown(_)
            | StorageError::BlobUnknown(_),
        ) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Side {
    pub fn is_local(&self) -> bool {
        matches!(self, Side::Local(_))
    }

    /// What the task log calls this side.
    pub fn label(&self) -> String {
        match self {
            Side::Local(_) => "local".into(),
            Side::Remote(r) => r.endpoint.name.clone(),
        }
    }

    pub async fn repositories(&self) -> Result<Vec<String>, GatewayError> {
        match self {
            Side::Remote(r) => r.repositories().await,
            Side::Local(l) => {
                all_pages(
                    |after| async move { Ok(l.registry.catalog(after.as_deref(), PAGE).await?) },
                )
                .await
            }
        }
    }

    pub async fn tags(&self, repo: &str) -> Result<Vec<String>, GatewayError> {
        match self {
            Side::Remote(r) => r.tags(repo).await,
            Side::Local(l) => {
                let repo = &repo_name(repo)?;
                all_pages(|after| async move {
                    let page = l.registry.list_tags(repo, after.as_deref(), PAGE).await;
                    Ok(absent(page)?.unwrap_or_default())
                })
                .await
            }
        }
    }

    pub async fn manifest(&self, repo: &str, r: &str) -> Result<Option<Manifest>, GatewayError> {
        match self {
            Side::Remote(remote) => remote.manifest(repo, r).await,
            Side::Local(l) => {
                let m = absent(
                    l.registry
                        .get_manifest(&repo_name(repo)?, &reference(r)?)
                        .await,
                )?;
                Ok(m.map(|m| Manifest {
                    media_type: m.media_type.clone(),
                    content: m.content.clone(),
                    digest: m.digest.clone(),
                }))
            }
        }
    }

    /// The names of the labels an artifact carries. Only this
    /// registry's artifacts have labels here (label filters are refused
    /// in pull mode).
    pub async fn labels(&self, repo: &str, digest: &Digest) -> Result<Vec<String>, GatewayError> {
        match self {
            Side::Remote(_) => Ok(Vec::new()),
            Side::Local(l) => Ok(l
                .registry
                .meta()
                .artifact_label_names(&repo_name(repo)?, digest)
                .await?),
        }
    }

    pub async fn manifest_digest(
        &self,
        repo: &str,
        r: &str,
    ) -> Result<Option<Digest>, GatewayError> {
        match self {
            Side::Remote(remote) => remote.manifest_digest(repo, r).await,
            Side::Local(_) => Ok(self.manifest(repo, r).await?.map(|m| m.digest)),
        }
    }

    pub async fn has_blob(&self, repo: &str, digest: &Digest) -> Result<bool, GatewayError> {
        match self {
            Side::Remote(r) => r.has_blob(repo, digest).await,
            Side::Local(l) => {
                Ok(absent(l.registry.stat_blob(&repo_name(repo)?, digest).await)?.is_some())
            }
        }
    }

    /// Links a blob the destination holds in `from` (or, here, in a
    /// repository of the same project) into `repo`; false when it could
    /// not. Here never from another project: a source could name a digest
    /// it does not have and get a private project's blob exposed.
    pub async fn mount(
        &self,
        repo: &str,
        digest: &Digest,
        from: Option<&str>,
    ) -> Result<bool, GatewayError> {
        match self {
            Side::Remote(r) => match from {
                Some(from) if from != repo => r.mount(repo, digest, from).await,
                _ => Ok(false),
            },
            Side::Local(l) => {
                let repo = repo_name(repo)?;
                for candidate in l.registry.repos_with_blob(digest).await? {
                    if candidate != repo
                        && candidate.project() == repo.project()
                        && l.registry.mount_blob(&repo, digest, &candidate).await?
                    {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }

    pub async fn blob_size(&self, repo: &str, digest: &Digest) -> Result<u64, GatewayError> {
        match self {
            Side::Remote(r) => r.blob_size(repo, digest).await,
            Side::Local(l) => Ok(l.registry.stat_blob(&repo_name(repo)?, digest).await?),
        }
    }

    /// A blob's bytes from `offset`: its size, where the bytes start
    /// (0 when a remote ignored the range), and the bytes.
    pub async fn read_blob(
        &self,
        repo: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<(u64, u64, BlobStream), GatewayError> {
        match self {
            Side::Remote(r) => r.read_blob(repo, digest, offset).await,
            Side::Local(l) => {
                let blob = l.registry.open_blob(&repo_name(repo)?, digest).await?;
                let size = blob.size;
                let offset = offset.min(size);
                let stream = blob
                    .stream_from(offset)
                    .map(|r| r.map_err(GatewayError::from))
                    .boxed();
                Ok((size, offset, stream))
            }
        }
    }

    pub async fn put_manifest(
        &self,
        repo: &str,
        r: &str,
        m: &Manifest,
    ) -> Result<(), GatewayError> {
        match self {
            Side::Remote(remote) => {
                remote
                    .put_manifest(repo, r, &m.media_type, m.content.clone())
                    .await
            }
            Side::Local(l) => {
                let name = repo_name(repo)?;
                l.ensure_project(&name).await?;
                let result = l
                    .registry
                    .put_manifest(&name, &reference(r)?, Some(&m.media_type), &m.content, &[])
                    .await;
                l.audit(
                    "push",
                    "artifact",
                    format!("{repo}:{r}"),
                    &name,
                    result.is_ok(),
                );
                result.map(|_| ()).map_err(GatewayError::from)
            }
        }
    }

    /// Deletes a tag (only the tag) or an artifact by digest, as it was
    /// deleted at the source; `Ok(None)` when the destination cannot
    /// delete a tag alone.
    pub async fn delete(&self, repo: &str, r: &str) -> Result<Option<bool>, GatewayError> {
        match self {
            Side::Remote(remote) => remote.delete(repo, r).await,
            Side::Local(l) => {
                let name = repo_name(repo)?;
                let done =
                    absent(l.registry.delete_manifest(&name, &reference(r)?).await)?.is_some();
                l.audit("delete", "artifact", format!("{repo}:{r}"), &name, done);
                Ok(Some(done))
            }
        }
    }

    /// Before writing into `repo`: its project exists (created as Harbor
    /// does when replicating into a registry that lacks it).
    pub async fn prepare(&self, repo: &str) -> Result<(), GatewayError> {
        match self {
            Side::Remote(r) => r.ensure_project(repo).await,
            Side::Local(l) => l.ensure_project(&repo_name(repo)?).await,
        }
    }
}

impl Local {
    async fn ensure_project(&self, repo: &RepoName) -> Result<(), GatewayError> {
        let project = repo.project();
        if self.registry.project_info(project).await?.is_some() {
            return Ok(());
        }
        let created = self
            .registry
            .meta()
            .create_project(project, false, None, self.default_limit)
            .await?;
        if created.is_some() {
            self.registry.forget_project(project).await;
            self.audit("create", "project", project.to_owned(), repo, true);
        }
        Ok(())
    }

    fn audit(&self, operation: &str, kind: &str, resource: String, repo: &RepoName, success: bool) {
        self.audit.record(AuditRecord {
            op_time: now_ms(),
            username: OPERATOR.into(),
            operation: operation.into(),
            resource_type: kind.into(),
            resource,
            project: Some(repo.project().to_owned()),
            success,
            client_ip: None,
        });
    }
}

/// Bytes as a blob stream, for a last empty request body.
pub fn empty() -> BlobStream {
    futures_util::stream::empty::<Result<Bytes, GatewayError>>().boxed()
}

/// Names read from the local store a page at a time.
const PAGE: i64 = 1000;

/// Every name of a listing read a page at a time, each page after the
/// last name of the one before.
async fn all_pages<F, Fut>(mut page: F) -> Result<Vec<String>, GatewayError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<String>, GatewayError>>,
{
    let mut out: Vec<String> = Vec::new();
    loop {
        let names = page(out.last().cloned()).await?;
        let done = names.len() < PAGE as usize;
        out.extend(names);
        if done {
            return Ok(out);
        }
    }
}
