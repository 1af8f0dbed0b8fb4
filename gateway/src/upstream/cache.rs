//! Pulls from a proxy-cache project (Harbor's proxy cache): the
//! `/v2/<project>/<name>/manifests|blobs/...` endpoints, answered from the
//! local store when it has the content and from the upstream otherwise,
//! keeping what the upstream sent.
//!
//! - A manifest by tag asks the upstream with a HEAD (cheap, and not
//!   counted by Docker Hub's pull limits): the same digest as cached is
//!   served locally, a new one is fetched, verified and stored.
//! - A manifest by digest is served locally when cached.
//! - A blob is served locally when cached; a miss joins or starts the one
//!   shared fetch of that digest (see `fetch`).
//! - When the upstream is down, slow or rate-limiting, a cached copy is
//!   served with a `Warning` header (a tag as its last known digest).

use std::sync::Arc;

use berth_storage::oci::{Digest, Reference, RepoName, Tag};
use berth_storage::upstreams::Endpoint;
use berth_storage::StorageError;
use pingora::proxy::Session;
use reqwest::{Method, StatusCode};

use super::client::{upstream_repo, Call, MANIFEST_ACCEPT};
use super::fetch::{FetchFailure, Source};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::{header, Body, Reply};
use crate::v2::blobs;

/// RFC 7234's warn-code for a stale response, with the reason.
fn stale_warning(ep: &Endpoint, why: &str) -> String {
    format!(
        "110 berth \"Response is Stale: upstream registry {} {why}\"",
        ep.name
    )
}

/// The upstream's name for a repository of a cache project.
pub fn upstream_name(ep: &Endpoint, repo: &RepoName) -> String {
    upstream_repo(ep, repo.in_project().unwrap_or(repo.as_str()))
}

/// GET and HEAD of a manifest in a cache project.
pub async fn manifest(
    app: &App,
    session: &Session,
    ep: &Endpoint,
    repo: &RepoName,
    reference: &Reference,
    is_get: bool,
) -> Result<Reply, GatewayError> {
    let local = match app.registry.get_manifest(repo, reference).await {
        Ok(m) => Some(m),
        Err(StorageError::NameUnknown(_) | StorageError::ManifestUnknown(_)) => None,
        Err(e) => return Err(e.into()),
    };
    // Read-only mode: what is cached is served as it is; nothing new is
    // fetched (it would be stored).
    if app.runtime.read_only() {
        return match &local {
            Some(m) => Ok(served(
                app,
                repo,
                m,
                is_get,
                // By tag it may be behind the upstream; by digest it is not.
                matches!(reference, Reference::Tag(_))
                    .then(|| stale_warning(ep, "was not asked (read-only mode)")),
            )),
            None => Err(GatewayError::ReadOnly),
        };
    }
    // Content addressed: what is cached is right forever.
    if let (Reference::Digest(_), Some(m)) = (reference, &local) {
        app.metrics.pull_through_hit();
        return Ok(served(app, repo, m, is_get, None));
    }
    let name = upstream_name(ep, repo);
    let accept = header(session, "accept")
        .filter(|a| !a.trim().is_empty() && a.trim() != "*/*")
        .unwrap_or(MANIFEST_ACCEPT)
        .to_owned();
    let path = format!("/v2/{name}/manifests/{reference}");
    let call = |method| Call {
        endpoint: ep,
        method,
        path: &path,
        repo: &name,
        actions: "pull",
        accept: Some(&accept),
        streaming: false,
    };
    // By tag: is the cached digest still the tag's?
    if let (Reference::Tag(_), Some(m)) = (reference, &local) {
        match app.upstreams.client.send(&call(Method::HEAD)).await {
            Ok(resp) if resp.status().is_success() => {
                let current = resp
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok());
                if current == Some(m.digest.to_string().as_str()) {
                    app.metrics.pull_through_hit();
                    return Ok(served(app, repo, m, is_get, None));
                }
            }
            Ok(resp) if resp.status() == StatusCode::NOT_FOUND => {
                return Err(StorageError::ManifestUnknown(reference.to_string()).into());
            }
            Ok(resp) => {
                app.metrics.pull_through_error();
                let why = format!("answered {}", resp.status());
                return Ok(served(app, repo, m, is_get, Some(stale_warning(ep, &why))));
            }
            Err(e) => {
                app.metrics.pull_through_error();
                tracing::warn!(registry = %ep.name, error = %e, "upstream check failed; serving the cached manifest");
                return Ok(served(
                    app,
                    repo,
                    m,
                    is_get,
                    Some(stale_warning(ep, "is unavailable")),
                ));
            }
        }
    }
    app.metrics.pull_through_miss();
    let what = format!("{repo}:{reference}");
    let resp = app
        .upstreams
        .client
        .send(&call(Method::GET))
        .await
        .map_err(|e| with_what(e, &what))?;
    let status = resp.status();
    if !status.is_success() {
        app.metrics.pull_through_error();
        return Err(upstream_status(ep, status, resp.headers(), &what, || {
            StorageError::ManifestUnknown(reference.to_string()).into()
        }));
    }
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let announced = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Digest>().ok());
    let body = resp.bytes().await.map_err(|e| {
        with_what(
            GatewayError::UpstreamUnreachable {
                registry: ep.name.clone(),
                detail: format!("reading the manifest: {e}"),
                what: String::new(),
            },
            &what,
        )
    })?;
    let digest = match (reference, announced) {
        (Reference::Digest(d), _) => d.clone(),
        (Reference::Tag(_), Some(d)) => d,
        (Reference::Tag(_), None) => Digest::compute(berth_storage::oci::Algorithm::Sha256, &body),
    };
    let tag: Option<&Tag> = match reference {
        Reference::Tag(t) => Some(t),
        Reference::Digest(_) => None,
    };
    let m = app
        .registry
        .cache_manifest(repo, &digest, content_type.as_deref(), body, tag)
        .await
        .map_err(|e| match e {
            StorageError::DigestMismatch { .. } => GatewayError::UpstreamCorrupt {
                registry: ep.name.clone(),
                digest: digest.to_string(),
            },
            other => other.into(),
        })?;
    Ok(served(app, repo, &m, is_get, None))
}

fn served(
    app: &App,
    repo: &RepoName,
    m: &berth_storage::meta::StoredManifest,
    is_get: bool,
    warning: Option<String>,
) -> Reply {
    if is_get {
        app.audit.pulled(repo.as_str(), &m.digest.to_string());
    }
    let mut reply = Reply::new(200)
        .header("Content-Type", m.media_type.clone())
        .header("Docker-Content-Digest", m.digest.to_string())
        .header("ETag", format!("\"{}\"", m.digest))
        .bytes(m.content.clone());
    if let Some(w) = warning {
        reply = reply.header("Warning", w);
    }
    reply
}

/// GET and HEAD of a blob in a cache project.
pub async fn blob(
    app: &App,
    session: &Session,
    ep: &Arc<Endpoint>,
    repo: &RepoName,
    digest: &Digest,
    head: bool,
) -> Result<Reply, GatewayError> {
    match blobs::get(app, session, repo, digest).await {
        Err(GatewayError::Storage(StorageError::BlobUnknown(_))) => {}
        done => {
            app.metrics.pull_through_hit();
            return done;
        }
    }
    // Read-only mode: a blob not cached here is not fetched (or linked).
    app.runtime.refuse_writes()?;
    let name = upstream_name(ep, repo);
    let path = format!("/v2/{name}/blobs/{digest}");
    let what = format!("{repo}@{digest}");
    // Stored for another repository: the upstream only has to confirm that
    // this one has it too, and no byte is downloaded again.
    let stored = app.registry.blob_stored(digest).await?;
    if head || stored.is_some() {
        let resp = app
            .upstreams
            .client
            .send(&Call {
                endpoint: ep,
                method: Method::HEAD,
                path: &path,
                repo: &name,
                actions: "pull",
                accept: None,
                streaming: false,
            })
            .await
            .map_err(|e| with_what(e, &what))?;
        if !resp.status().is_success() {
            return Err(upstream_status(
                ep,
                resp.status(),
                resp.headers(),
                &what,
                || StorageError::BlobUnknown(digest.clone()).into(),
            ));
        }
        if stored.is_some() && app.registry.link_existing(repo, digest).await? {
            app.metrics.pull_through_hit();
            return blobs::get(app, session, repo, digest).await;
        }
        // Not stored, or collected since: a HEAD answers from the
        // upstream, a GET downloads it again.
        if head {
            let len = resp.content_length().unwrap_or(0);
            return Ok(blob_reply(200, digest).body(Body::Length(len)));
        }
    }
    app.metrics.pull_through_miss();
    let (fetch, started) = {
        let client = app.upstreams.clone();
        let ep = ep.clone();
        let registry = app.registry.clone();
        let repo = repo.clone();
        let path = path.clone();
        let name = name.clone();
        let what = what.clone();
        let wanted = digest.clone();
        app.upstreams.fetches.join_or_start(
            &app.side,
            &app.registry,
            digest,
            move || async move {
                let resp = client
                    .client
                    .send(&Call {
                        endpoint: &ep,
                        method: Method::GET,
                        path: &path,
                        repo: &name,
                        actions: "pull",
                        accept: None,
                        streaming: true,
                    })
                    .await
                    .map_err(|e| with_what(e, &what))?;
                if !resp.status().is_success() {
                    return Err(upstream_status(
                        &ep,
                        resp.status(),
                        resp.headers(),
                        &what,
                        || StorageError::BlobUnknown(wanted).into(),
                    ));
                }
                Ok(Source {
                    response: resp,
                    registry,
                    repo,
                    registry_name: ep.name.clone(),
                })
            },
        )?
    };
    if !started {
        app.metrics.pull_through_shared();
    }
    let size = match fetch.size().await {
        Ok(size) => size,
        Err(f) => return Err(failure(ep, digest, f)),
    };
    let (status, offset, len, range) = match header(session, "range") {
        Some(r) => match blobs::parse_range(r, size)? {
            Some((start, end)) => (206, start, end - start + 1, Some((start, end))),
            None => (200, 0, size, None),
        },
        None => (200, 0, size, None),
    };
    let mut reply = blob_reply(status, digest);
    if let Some((start, end)) = range {
        reply = reply.header("Content-Range", format!("bytes {start}-{end}/{size}"));
    }
    Ok(reply.body(Body::Fetch { fetch, offset, len }))
}

fn blob_reply(status: u16, digest: &Digest) -> Reply {
    Reply::new(status)
        .header("Content-Type", "application/octet-stream")
        .header("Docker-Content-Digest", digest.to_string())
        .header("ETag", format!("\"{digest}\""))
        .header("Accept-Ranges", "bytes")
}

/// A fetch that failed before the response began, as an error reply.
fn failure(ep: &Endpoint, digest: &Digest, f: FetchFailure) -> GatewayError {
    match f {
        FetchFailure::Refused(404, _) => StorageError::BlobUnknown(digest.clone()).into(),
        FetchFailure::Refused(429, msg) => GatewayError::UpstreamRateLimited {
            registry: ep.name.clone(),
            what: msg,
            retry_after: None,
        },
        FetchFailure::Refused(_, msg) | FetchFailure::Corrupt(msg) | FetchFailure::Io(msg) => {
            GatewayError::UpstreamUnreachable {
                registry: ep.name.clone(),
                detail: msg,
                what: format!("blob {digest}"),
            }
        }
    }
}

/// An upstream error answer, as berth's error.
fn upstream_status(
    ep: &Endpoint,
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    what: &str,
    not_found: impl FnOnce() -> GatewayError,
) -> GatewayError {
    match status {
        StatusCode::NOT_FOUND => not_found(),
        StatusCode::TOO_MANY_REQUESTS => GatewayError::UpstreamRateLimited {
            registry: ep.name.clone(),
            what: what.to_owned(),
            retry_after: headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => GatewayError::UpstreamRefused {
            registry: ep.name.clone(),
            detail: format!("{status} for {what}"),
        },
        s => GatewayError::UpstreamUnreachable {
            registry: ep.name.clone(),
            detail: format!("it answered {s}"),
            what: what.to_owned(),
        },
    }
}

/// Names the content in an upstream error.
fn with_what(e: GatewayError, what: &str) -> GatewayError {
    match e {
        GatewayError::UpstreamUnreachable {
            registry, detail, ..
        } => GatewayError::UpstreamUnreachable {
            registry,
            detail,
            what: what.to_owned(),
        },
        GatewayError::UpstreamRateLimited {
            registry,
            retry_after,
            ..
        } => GatewayError::UpstreamRateLimited {
            registry,
            what: what.to_owned(),
            retry_after,
        },
        other => other,
    }
}
