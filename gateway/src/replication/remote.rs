//! A registry endpoint as one side of a replication: listing its
//! repositories and tags, reading and writing manifests and blobs over the
//! distribution API, with the endpoint's credential (Basic, or tokens from
//! its realm) through the upstream client.

use std::sync::Arc;

use berth_storage::oci::Digest;
use berth_storage::upstreams::Endpoint;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LINK, LOCATION, RANGE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use crate::error::GatewayError;
use crate::upstream::client::{
    is_docker_hub, registry_base, same_origin, scope, UpstreamClient, MANIFEST_ACCEPT,
};

/// Names asked for per page of a listing.
const PAGE: usize = 1000;
/// The most names a listing may hold: a source that paginates forever
/// (or lists millions) fails the execution instead of filling memory.
const MAX_NAMES: usize = 100_000;
/// The largest JSON answer read (a page of a listing).
const MAX_JSON: usize = 16 << 20;
/// The most bytes and pages one listing may take, whatever its names.
const MAX_LISTING_BYTES: usize = 64 << 20;
const MAX_PAGES: usize = 1000;
/// The most of an error answer kept for the task log.
const MAX_ERROR_TEXT: usize = 2048;
/// A request as a whole, but for blob bodies (which only have the
/// client's limit on the pause between two reads).
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// How often a 429 is waited out before it counts as a failure.
const RATE_LIMIT_WAITS: u32 = 3;
/// The longest `Retry-After` honoured, in seconds.
const MAX_RATE_LIMIT_WAIT: u64 = 60;

/// The longest an upload's destination may take no bytes.
const UPLOAD_IDLE: std::time::Duration = std::time::Duration::from_secs(120);
/// The longest a destination may take to answer once the body is sent
/// (it verifies the digest).
const UPLOAD_ANSWER: std::time::Duration = std::time::Duration::from_secs(300);

/// How an upload's body is going: when its last piece was taken, and
/// when it ended.
struct Progress {
    last: std::sync::Mutex<std::time::Instant>,
    ended: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            last: std::sync::Mutex::new(std::time::Instant::now()),
            ended: std::sync::Mutex::new(None),
        }
    }

    fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns, with the reason, once the upload stalled.
    async fn stalled(&self) -> String {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            if let Some(ended) = *Progress::lock(&self.ended) {
                if ended.elapsed() > UPLOAD_ANSWER {
                    return format!(
                        "did not answer within {} s of an upload's end",
                        UPLOAD_ANSWER.as_secs()
                    );
                }
            } else if Progress::lock(&self.last).elapsed() > UPLOAD_IDLE {
                return format!("took no upload bytes for {} s", UPLOAD_IDLE.as_secs());
            }
        }
    }
}

/// `body`, telling `progress` of each piece taken and of its end.
fn watched(body: BlobStream, progress: Arc<Progress>) -> BlobStream {
    let at_end = progress.clone();
    body.inspect(move |_| *Progress::lock(&progress.last) = std::time::Instant::now())
        .chain(futures_util::stream::poll_fn(move |_| {
            *Progress::lock(&at_end.ended) = Some(std::time::Instant::now());
            std::task::Poll::Ready(None)
        }))
        .boxed()
}

/// What a listing has read so far.
#[derive(Debug, Default)]
struct Budget {
    names: usize,
    pages: usize,
    read: usize,
}

/// What a listing lists: names that are not valid ones are left out
/// (a hostile source's megabyte-long "names" never reach the filters).
#[derive(Debug, Clone, Copy)]
enum Listed {
    Repositories,
    Tags,
}

impl Listed {
    fn key(self) -> &'static str {
        match self {
            Listed::Repositories => "repositories",
            Listed::Tags => "tags",
        }
    }

    fn valid(self, name: &str) -> bool {
        match self {
            Listed::Repositories => name.parse::<berth_storage::oci::RepoName>().is_ok(),
            Listed::Tags => name.parse::<berth_storage::oci::Tag>().is_ok(),
        }
    }
}

pub struct Remote {
    pub endpoint: Arc<Endpoint>,
    pub client: Arc<crate::upstream::Upstreams>,
    /// Requests in flight to this endpoint, shared by every execution.
    pub limit: Arc<tokio::sync::Semaphore>,
}

/// A manifest as read: media type, bytes, digest.
pub struct Manifest {
    pub media_type: String,
    pub content: Bytes,
    pub digest: Digest,
}

/// Blob bytes being read, with the blob's whole size.
pub type BlobStream = BoxStream<'static, Result<Bytes, GatewayError>>;

impl Remote {
    fn http(&self) -> &UpstreamClient {
        &self.client.client
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            return path.to_owned();
        }
        format!("{}{}", registry_base(&self.endpoint), path)
    }

    /// Whether the endpoint's credential may go to `url`: an upload
    /// `Location` is the destination's to choose, and one naming another
    /// host gets no credential of ours.
    fn ours(&self, url: &str) -> bool {
        reqwest::Url::parse(url).is_ok_and(|u| same_origin(&u, registry_base(&self.endpoint)))
    }

    /// An answer berth cannot go on with; 401 and 403 are about the
    /// endpoint's credential, anything else is not.
    fn failed(&self, what: &str, status: StatusCode) -> GatewayError {
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => GatewayError::UpstreamRefused {
                registry: self.endpoint.name.clone(),
                detail: format!("{what}: {status}"),
            },
            _ => self.failure(format!("answered {status} to {what}")),
        }
    }

    /// A refused write, with the start of what the destination said (its
    /// error body is the destination's to size: only `MAX_ERROR_TEXT` of
    /// it is read).
    async fn refusal(&self, resp: Response, what: &str) -> GatewayError {
        let status = resp.status();
        let mut said = Vec::new();
        let mut body = resp.bytes_stream();
        while let Some(Ok(piece)) = body.next().await {
            said.extend_from_slice(&piece);
            if said.len() >= MAX_ERROR_TEXT {
                said.truncate(MAX_ERROR_TEXT);
                break;
            }
        }
        let said = String::from_utf8_lossy(&said);
        let mut e = self.failed(what, status);
        if let GatewayError::UpstreamRefused { detail, .. }
        | GatewayError::UpstreamFailed { detail, .. } = &mut e
        {
            detail.push_str(&format!(" ({})", said.trim()));
        }
        e
    }

    fn failure(&self, detail: String) -> GatewayError {
        GatewayError::UpstreamFailed {
            registry: self.endpoint.name.clone(),
            detail,
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> GatewayError {
        GatewayError::UpstreamUnreachable {
            registry: self.endpoint.name.clone(),
            detail: crate::error::cause_chain(e),
            what: "this".into(),
        }
    }

    /// Sends a request without a body (or with one that can be built
    /// again), logging in again once if the upstream answers 401 and
    /// waiting as it asks when it answers 429 (Docker Hub's limits).
    async fn send(
        &self,
        method: Method,
        path: &str,
        scope: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, GatewayError> {
        let mut relogged = false;
        let mut waits = 0;
        loop {
            let auth = self
                .http()
                .authorization_for_scope(&self.endpoint, scope)
                .await?;
            let mut req = self
                .http()
                .http(&self.endpoint)
                .request(method.clone(), self.url(path));
            if let Some(a) = auth.filter(|_| self.ours(&self.url(path))) {
                req = req.header(AUTHORIZATION, a);
            }
            let blob_body = method == Method::GET && is_blob(path);
            if !blob_body {
                req = req.timeout(CALL_TIMEOUT);
            }
            let resp = {
                let _turn = self.limit.acquire().await;
                build(req).send().await.map_err(|e| self.unreachable(&e))?
            };
            match resp.status() {
                StatusCode::UNAUTHORIZED if !relogged => {
                    relogged = true;
                    self.http().forget_scope(&self.endpoint, scope);
                }
                StatusCode::TOO_MANY_REQUESTS if waits < RATE_LIMIT_WAITS => {
                    waits += 1;
                    let wait = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .unwrap_or(5)
                        .min(MAX_RATE_LIMIT_WAIT);
                    tracing::info!(registry = %self.endpoint.name, seconds = wait, "rate limited; waiting as asked");
                    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                }
                _ => return Ok(resp),
            }
        }
    }

    /// A listing past `MAX_NAMES` names, `MAX_PAGES` pages or
    /// `MAX_LISTING_BYTES` ends the execution, however the source pages
    /// (and however many projects a Harbor lists: one budget covers them
    /// all).
    fn bounded(&self, spent: &Budget, what: &str) -> Result<(), GatewayError> {
        if spent.names > MAX_NAMES || spent.pages > MAX_PAGES || spent.read > MAX_LISTING_BYTES {
            return Err(self.failure(format!(
                "{what} lists more than {MAX_NAMES} names (or {MAX_PAGES} pages, or {} MiB); \
                 narrow the policy with a name filter",
                MAX_LISTING_BYTES >> 20
            )));
        }
        Ok(())
    }

    /// A body read up to `max` bytes, no further: its length is the
    /// source's to claim.
    async fn read_capped(
        &self,
        resp: Response,
        max: usize,
        what: &str,
    ) -> Result<Bytes, GatewayError> {
        let too_large = || self.failure(format!("sent {what} larger than {} MiB", max >> 20));
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(too_large());
        }
        let mut body = resp.bytes_stream();
        let mut content = Vec::new();
        while let Some(piece) = body.next().await {
            content.extend_from_slice(&piece.map_err(|e| self.unreachable(&e))?);
            if content.len() > max {
                return Err(too_large());
            }
        }
        Ok(Bytes::from(content))
    }

    /// A JSON body (listings are small: a page at a time).
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        resp: Response,
        read: &mut usize,
    ) -> Result<T, GatewayError> {
        let raw = self.read_capped(resp, MAX_JSON, "a listing").await?;
        *read += raw.len();
        serde_json::from_slice(&raw)
            .map_err(|e| self.failure(format!("sent an answer that is not the JSON expected: {e}")))
    }

    /// The upstream's name for a repository (Docker Hub's `library/`).
    pub fn name(&self, repo: &str) -> String {
        crate::upstream::client::upstream_repo(&self.endpoint, repo)
    }

    /// Every repository, by the adapter's way of listing.
    pub async fn repositories(&self) -> Result<Vec<String>, GatewayError> {
        match self.endpoint.kind.as_str() {
            "harbor" | "berth" => self.repositories_by_api().await,
            _ if is_docker_hub(&self.endpoint) => Err(GatewayError::BadRequest(
                "Docker Hub cannot be listed: give the policy a name filter that names the \
                 repository, such as `library/alpine`"
                    .into(),
            )),
            _ => self.catalog().await,
        }
    }

    /// `/v2/_catalog`, every page.
    async fn catalog(&self) -> Result<Vec<String>, GatewayError> {
        let first = format!("/v2/_catalog?n={PAGE}");
        self.pages(
            first,
            "registry:catalog:*",
            Listed::Repositories,
            "its catalog",
            false,
        )
        .await
    }

    /// Harbor's project and repository listings (which need no catalog
    /// permission).
    async fn repositories_by_api(&self) -> Result<Vec<String>, GatewayError> {
        let mut spent = Budget::default();
        let projects = self.api_names("/api/v2.0/projects", &mut spent).await?;
        let mut out = Vec::new();
        for project in projects {
            let path = format!(
                "/api/v2.0/projects/{}/repositories",
                percent_encoding::utf8_percent_encode(&project, percent_encoding::NON_ALPHANUMERIC)
            );
            out.extend(self.api_names(&path, &mut spent).await?);
        }
        Ok(out)
    }

    /// The `name` of every item of a paged Harbor listing (projects or
    /// repositories), leaving out any that is not a valid name.
    async fn api_names(&self, path: &str, spent: &mut Budget) -> Result<Vec<String>, GatewayError> {
        let mut out = Vec::new();
        for page in 1.. {
            spent.pages += 1;
            self.bounded(spent, path)?;
            let url = format!("{path}?page={page}&page_size=100");
            let resp = self.api(Method::GET, &url, |r| r).await?;
            if !resp.status().is_success() {
                return Err(self.failed(&format!("listing {path}"), resp.status()));
            }
            let items: Vec<serde_json::Value> = self.json(resp, &mut spent.read).await?;
            spent.names += items.len();
            out.extend(
                items
                    .iter()
                    .filter_map(|i| i["name"].as_str())
                    .filter(|n| Listed::Repositories.valid(n))
                    .map(str::to_owned),
            );
            if items.len() < 100 {
                break;
            }
        }
        Ok(out)
    }

    /// A request to Harbor's management API, which takes the endpoint's
    /// credential as Basic.
    async fn api(
        &self,
        method: Method,
        path: &str,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, GatewayError> {
        let mut req = self
            .http()
            .http(&self.endpoint)
            .request(method, self.url(path));
        if let Some(c) = &self.endpoint.credential {
            req = req.basic_auth(&c.access_key, Some(&c.access_secret));
        }
        let _turn = self.limit.acquire().await;
        build(req.timeout(CALL_TIMEOUT))
            .send()
            .await
            .map_err(|e| self.unreachable(&e))
    }

    /// Every tag of a repository; none when it does not exist.
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>, GatewayError> {
        let name = self.name(repo);
        let first = format!("/v2/{name}/tags/list?n={PAGE}");
        let what = format!("the tags of {name}");
        self.pages(first, &scope(&name, "pull"), Listed::Tags, &what, true)
            .await
    }

    /// Every page of a distribution listing (`Link: <...>; rel="next"`),
    /// the valid names of `kind`; with `missing_ok`, none when the listing
    /// does not exist. The next page must be on the endpoint itself.
    async fn pages(
        &self,
        first: String,
        scope: &str,
        kind: Listed,
        what: &str,
        missing_ok: bool,
    ) -> Result<Vec<String>, GatewayError> {
        let mut out = Vec::new();
        let mut path = first;
        let mut spent = Budget::default();
        loop {
            spent.pages += 1;
            self.bounded(&spent, what)?;
            let resp = self.send(Method::GET, &path, scope, |r| r).await?;
            if resp.status() == StatusCode::NOT_FOUND && missing_ok {
                return Ok(out);
            }
            if !resp.status().is_success() {
                return Err(self.failed(&format!("listing {what}"), resp.status()));
            }
            let next = next_link(&resp);
            let body: serde_json::Value = self.json(resp, &mut spent.read).await?;
            let names = body[kind.key()].as_array().cloned().unwrap_or_default();
            spent.names += names.len();
            out.extend(
                names
                    .iter()
                    .filter_map(|n| n.as_str())
                    .filter(|n| kind.valid(n))
                    .map(str::to_owned),
            );
            match next {
                // A page linking to itself ends the listing.
                Some(n) if !names.is_empty() && n != path => {
                    if !n.starts_with('/') && !self.ours(&n) {
                        return Err(self.failure(format!(
                            "{what}: the next page is on another host ({n}); refused"
                        )));
                    }
                    path = n;
                }
                _ => return Ok(out),
            }
        }
    }

    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Manifest>, GatewayError> {
        let name = self.name(repo);
        let resp = self
            .send(
                Method::GET,
                &format!("/v2/{name}/manifests/{reference}"),
                &scope(&name, "pull"),
                |r| r.header(ACCEPT, MANIFEST_ACCEPT),
            )
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(self.failed(&format!("reading {name}:{reference}"), resp.status()));
        }
        let media_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let content = self
            .read_capped(
                resp,
                berth_storage::oci::MAX_MANIFEST_SIZE,
                &format!("the manifest {name}:{reference}"),
            )
            .await?;
        let digest = Digest::compute(berth_storage::oci::Algorithm::Sha256, &content);
        Ok(Some(Manifest {
            media_type,
            content,
            digest,
        }))
    }

    /// The digest a tag points at; `None` when it does not exist.
    pub async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Digest>, GatewayError> {
        let name = self.name(repo);
        let resp = self
            .send(
                Method::HEAD,
                &format!("/v2/{name}/manifests/{reference}"),
                &scope(&name, "pull,push"),
                |r| r.header(ACCEPT, MANIFEST_ACCEPT),
            )
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(self.failed(&format!("looking up {name}:{reference}"), resp.status()));
        }
        match resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
        {
            Some(d) => Ok(Some(d)),
            // Without the header the bytes tell.
            None => Ok(self.manifest(repo, reference).await?.map(|m| m.digest)),
        }
    }

    pub async fn has_blob(&self, repo: &str, digest: &Digest) -> Result<bool, GatewayError> {
        let name = self.name(repo);
        let resp = self
            .send(
                Method::HEAD,
                &format!("/v2/{name}/blobs/{digest}"),
                &scope(&name, "pull,push"),
                |r| r,
            )
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(self.failed(&format!("checking {name}@{digest}"), s)),
        }
    }

    pub async fn blob_size(&self, repo: &str, digest: &Digest) -> Result<u64, GatewayError> {
        let name = self.name(repo);
        let resp = self
            .send(
                Method::HEAD,
                &format!("/v2/{name}/blobs/{digest}"),
                &scope(&name, "pull"),
                |r| r,
            )
            .await?;
        if !resp.status().is_success() {
            return Err(self.failed(&format!("checking {name}@{digest}"), resp.status()));
        }
        // The header itself: a HEAD answer has no body to size.
        resp.headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                self.failed(
                    &format!("{name}@{digest} without a Content-Length"),
                    resp.status(),
                )
            })
    }

    /// Reads a blob from `offset`: its whole size and the bytes. A server
    /// that ignores the range starts over, which the caller is told by
    /// the offset returned.
    pub async fn read_blob(
        &self,
        repo: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<(u64, u64, BlobStream), GatewayError> {
        let name = self.name(repo);
        let resp = self
            .send(
                Method::GET,
                &format!("/v2/{name}/blobs/{digest}"),
                &scope(&name, "pull"),
                |r| {
                    if offset > 0 {
                        r.header(RANGE, format!("bytes={offset}-"))
                    } else {
                        r
                    }
                },
            )
            .await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(self.failed(&format!("reading {name}@{digest}"), status));
        }
        let (start, size) = if status == StatusCode::PARTIAL_CONTENT {
            let total = resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit_once('/'))
                .and_then(|(_, t)| t.parse::<u64>().ok());
            match total {
                Some(total) => (offset, total),
                None => return Err(self.failed("a range answer without its size", status)),
            }
        } else {
            match resp.content_length() {
                Some(len) => (0, len),
                None => {
                    return Err(
                        self.failed(&format!("{name}@{digest} without a Content-Length"), status)
                    )
                }
            }
        };
        let registry = self.endpoint.name.clone();
        let stream = resp
            .bytes_stream()
            .map(move |r| {
                r.map_err(|e| GatewayError::UpstreamUnreachable {
                    registry: registry.clone(),
                    detail: crate::error::cause_chain(&e),
                    what: "a blob".into(),
                })
            })
            .boxed();
        Ok((size, start, stream))
    }

    /// Links a blob from another repository of the destination; false when
    /// it declined (an upload it may have opened is cancelled).
    pub async fn mount(
        &self,
        repo: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<bool, GatewayError> {
        let name = self.name(repo);
        let from = self.name(from);
        let scopes = format!("{} {}", scope(&name, "pull,push"), scope(&from, "pull"));
        let resp = self
            .send(
                Method::POST,
                &format!("/v2/{name}/blobs/uploads/?mount={digest}&from={from}"),
                &scopes,
                |r| r.header(CONTENT_LENGTH, "0"),
            )
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                if let Some(location) = location(&resp) {
                    let _ = self
                        .send(Method::DELETE, &location, &scope(&name, "pull,push"), |r| r)
                        .await;
                }
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    /// Opens an upload session; its location.
    pub async fn start_upload(&self, repo: &str) -> Result<String, GatewayError> {
        let name = self.name(repo);
        let resp = self
            .send(
                Method::POST,
                &format!("/v2/{name}/blobs/uploads/"),
                &scope(&name, "pull,push"),
                |r| r.header(CONTENT_LENGTH, "0"),
            )
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.failed(&format!("starting an upload to {name}"), resp.status()));
        }
        location(&resp).ok_or_else(|| self.failed("an upload without a Location", resp.status()))
    }

    /// How many bytes an upload session holds; `None` when the session is
    /// gone (the destination restarted without it, or purged it).
    pub async fn upload_offset(
        &self,
        repo: &str,
        location: &str,
    ) -> Result<Option<u64>, GatewayError> {
        let name = self.name(repo);
        let resp = self
            .send(Method::GET, location, &scope(&name, "pull,push"), |r| r)
            .await?;
        if !resp.status().is_success() {
            return Ok(None);
        }
        Ok(Some(
            resp.headers()
                .get(RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit_once('-'))
                .and_then(|(_, end)| end.parse::<u64>().ok())
                .map_or(0, |end| end + 1),
        ))
    }

    /// Sends one chunk of `len` bytes at `offset`; the next location.
    pub async fn patch(
        &self,
        repo: &str,
        location: &str,
        offset: u64,
        len: u64,
        body: BlobStream,
    ) -> Result<String, GatewayError> {
        let name = self.name(repo);
        let resp = self
            .send_body(
                Method::PATCH,
                location,
                &name,
                |r| {
                    r.header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, len)
                        .header(CONTENT_RANGE, format!("{}-{}", offset, offset + len - 1))
                },
                body,
            )
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.failed(&format!("sending a chunk to {name}"), resp.status()));
        }
        location_or(&resp, location)
    }

    /// Ends an upload with its last bytes (possibly none) and the digest.
    pub async fn finish_upload(
        &self,
        repo: &str,
        location: &str,
        digest: &Digest,
        len: u64,
        body: BlobStream,
    ) -> Result<(), GatewayError> {
        let name = self.name(repo);
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={digest}");
        let resp = self
            .send_body(
                Method::PUT,
                &url,
                &name,
                |r| {
                    r.header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, len)
                },
                body,
            )
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self
                .refusal(resp, &format!("completing {name}@{digest}"))
                .await);
        }
        Ok(())
    }

    /// A request with a streamed body, which cannot be sent twice: a 401
    /// forgets the token and fails (the caller's retry logs in again).
    async fn send_body(
        &self,
        method: Method,
        path: &str,
        name: &str,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
        body: BlobStream,
    ) -> Result<Response, GatewayError> {
        let scope = scope(name, "pull,push");
        let auth = self
            .http()
            .authorization_for_scope(&self.endpoint, &scope)
            .await?;
        let mut req = self
            .http()
            .upload_http(&self.endpoint)
            .request(method, self.url(path));
        if let Some(a) = auth.filter(|_| self.ours(&self.url(path))) {
            req = req.header(AUTHORIZATION, a);
        }
        let _turn = self.limit.acquire().await;
        // No overall deadline (a large blob on a slow link takes what it
        // takes): a destination that takes nothing for `UPLOAD_IDLE`, or
        // does not answer within `UPLOAD_ANSWER` of the body's end, fails
        // the attempt.
        let progress = Arc::new(Progress::new());
        let body = watched(body, progress.clone());
        let send = build(req).body(reqwest::Body::wrap_stream(body)).send();
        let resp = tokio::select! {
            resp = send => resp.map_err(|e| self.unreachable(&e))?,
            why = progress.stalled() => return Err(self.failure(why)),
        };
        if resp.status() == StatusCode::UNAUTHORIZED {
            self.http().forget_scope(&self.endpoint, &scope);
        }
        Ok(resp)
    }

    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        content: Bytes,
    ) -> Result<(), GatewayError> {
        let name = self.name(repo);
        let resp = self
            .send(
                Method::PUT,
                &format!("/v2/{name}/manifests/{reference}"),
                &scope(&name, "pull,push"),
                |r| r.header(CONTENT_TYPE, media_type).body(content.clone()),
            )
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self
                .refusal(resp, &format!("storing {name}:{reference}"))
                .await);
        }
        Ok(())
    }

    /// Deletes a tag (only the tag: other tags of its artifact stay), or
    /// an artifact by digest. `Ok(None)` when the destination cannot
    /// delete a tag alone (distribution answers 4xx `UNSUPPORTED`): the
    /// caller then leaves it rather than delete more than was deleted here.
    pub async fn delete(&self, repo: &str, reference: &str) -> Result<Option<bool>, GatewayError> {
        let name = self.name(repo);
        let resp = self
            .send(
                Method::DELETE,
                &format!("/v2/{name}/manifests/{reference}"),
                &scope(&name, "delete,pull,push"),
                |r| r,
            )
            .await?;
        let is_tag = reference.parse::<Digest>().is_err();
        match resp.status() {
            s if s.is_success() => Ok(Some(true)),
            StatusCode::NOT_FOUND => Ok(Some(false)),
            StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED if is_tag => Ok(None),
            s => Err(self.failed(&format!("deleting {name}:{reference}"), s)),
        }
    }

    /// Creates the destination's project when it is a Harbor (or berth)
    /// that lacks it, as Harbor's adapter does.
    pub async fn ensure_project(&self, repo: &str) -> Result<(), GatewayError> {
        if !matches!(self.endpoint.kind.as_str(), "harbor" | "berth") {
            return Ok(());
        }
        let Some((project, _)) = repo.split_once('/') else {
            return Ok(());
        };
        let head = self
            .api(
                Method::HEAD,
                &format!("/api/v2.0/projects?project_name={project}"),
                |r| r,
            )
            .await?;
        if head.status().is_success() {
            return Ok(());
        }
        let body = serde_json::json!({"project_name": project, "metadata": {"public": "false"}});
        let resp = self
            .api(Method::POST, "/api/v2.0/projects", |r| {
                r.header(CONTENT_TYPE, "application/json")
                    .body(body.to_string())
            })
            .await?;
        match resp.status() {
            s if s.is_success() || s == StatusCode::CONFLICT => Ok(()),
            s => Err(self.failed(&format!("creating the project {project}"), s)),
        }
    }
}

/// Whether a path is a blob's (`.../blobs/<algorithm>:<hex>`): its body
/// may take long. Repository names hold no `:`, so no other path passes.
fn is_blob(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    let mut segments = path.rsplit('/');
    let last = segments.next().unwrap_or("");
    last.contains(':') && segments.next() == Some("blobs")
}

/// The `Location` of a response, as a path or URL.
fn location(resp: &Response) -> Option<String> {
    resp.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn location_or(resp: &Response, current: &str) -> Result<String, GatewayError> {
    Ok(location(resp).unwrap_or_else(|| current.to_owned()))
}

/// The next page of a listing (`Link: <...>; rel="next"`).
fn next_link(resp: &Response) -> Option<String> {
    let link = resp.headers().get(LINK)?.to_str().ok()?;
    let start = link.find('<')? + 1;
    let end = link[start..].find('>')? + start;
    link[end..]
        .contains("rel=\"next\"")
        .then(|| link[start..end].to_owned())
}
