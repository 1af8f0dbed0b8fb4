//! The one HTTP client every server is measured with: hyper's HTTP/1.1
//! client connections (one per task, kept alive across requests), request
//! bodies generated piece by piece and response bodies counted as they
//! arrive, so nothing is buffered whole. Also the registry protocol on top:
//! the Bearer token dance, chunked pushes the way docker does them, pulls,
//! manifests.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use anyhow::{anyhow, bail, Context};
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::header::{
    HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, LOCATION,
    WWW_AUTHENTICATE,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::data::Pieces;

/// Error bodies and small replies are read up to this size.
const SMALL_BODY_LIMIT: usize = 1 << 20;

/// hyper's read buffer grows up to this: large reads for large bodies.
const READ_BUF_MAX: usize = 4 << 20;

/// What manifest GETs accept.
const MANIFEST_ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A request body: nothing, bytes in memory, or generated pieces (sent
/// with chunked transfer encoding, as the size is not announced).
pub enum ReqBody {
    Empty,
    Full(Bytes),
    Stream(Pieces),
}

impl ReqBody {
    fn try_clone(&self) -> Option<ReqBody> {
        match self {
            ReqBody::Empty => Some(ReqBody::Empty),
            ReqBody::Full(b) => Some(ReqBody::Full(b.clone())),
            ReqBody::Stream(_) => None,
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = match self.get_mut() {
            ReqBody::Empty => None,
            ReqBody::Full(b) => {
                let b = std::mem::take(b);
                (!b.is_empty()).then_some(b)
            }
            ReqBody::Stream(pieces) => pieces.next(),
        };
        Poll::Ready(next.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Full(b) => b.is_empty(),
            ReqBody::Stream(pieces) => pieces.remaining() == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Full(b) => SizeHint::with_exact(b.len() as u64),
            ReqBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// One HTTP/1.1 connection to a loopback address, reopened when the
/// server closes it.
pub struct Conn {
    addr: SocketAddr,
    host: HeaderValue,
    sender: Option<SendRequest<ReqBody>>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        ensure_loopback(addr.ip())?;
        let host = HeaderValue::from_str(&addr.to_string())?;
        let sender = Some(connect(addr).await?);
        Ok(Conn { addr, host, sender })
    }

    /// Sends a request; a bodiless or in-memory request that meets a
    /// connection the server had just closed is sent again on a new one.
    pub async fn send(&mut self, req: Request<ReqBody>) -> anyhow::Result<Response<Incoming>> {
        let again = req.body().try_clone().map(|body| {
            let mut copy = Request::new(body);
            *copy.method_mut() = req.method().clone();
            *copy.uri_mut() = req.uri().clone();
            *copy.headers_mut() = req.headers().clone();
            copy
        });
        match self.send_once(req).await {
            Ok(resp) => Ok(resp),
            Err(e) if is_stale(&e) => {
                let Some(again) = again else {
                    return Err(anyhow!(e).context("connection closed mid-request"));
                };
                self.sender = None;
                self.send_once(again)
                    .await
                    .context("request failed twice on fresh connections")
            }
            Err(e) => Err(e),
        }
    }

    /// Sends a request and reads its (small) answer whatever the status:
    /// for the portal, whose sign-in answers with a redirect.
    pub async fn exchange(
        &mut self,
        req: Request<ReqBody>,
    ) -> anyhow::Result<(StatusCode, HeaderMap, Bytes)> {
        let (parts, body) = self.send(req).await?.into_parts();
        Ok((parts.status, parts.headers, read_small(body).await?))
    }

    async fn send_once(&mut self, mut req: Request<ReqBody>) -> anyhow::Result<Response<Incoming>> {
        let alive = match self.sender.as_mut() {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !alive {
            self.sender = Some(connect(self.addr).await?);
        }
        let sender = self
            .sender
            .as_mut()
            .ok_or_else(|| anyhow!("no connection"))?;
        sender.ready().await?;
        req.headers_mut()
            .entry(HOST)
            .or_insert_with(|| self.host.clone());
        Ok(sender.send_request(req).await?)
    }
}

fn is_stale(e: &anyhow::Error) -> bool {
    e.downcast_ref::<hyper::Error>()
        .is_some_and(|h| h.is_canceled() || h.is_incomplete_message() || h.is_closed())
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<ReqBody>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(READ_BUF_MAX)
        .handshake(TokioIo::new(stream))
        .await?;
    tokio::spawn(async move {
        // Ends when the connection closes; errors surface on the sender.
        let _ = conn.await;
    });
    Ok(sender)
}

fn ensure_loopback(ip: IpAddr) -> anyhow::Result<()> {
    if ip.is_loopback() {
        Ok(())
    } else {
        bail!("refusing to talk to {ip}: the benchmark only sends traffic to loopback")
    }
}

/// Reads a whole (small) body, up to `SMALL_BODY_LIMIT`.
async fn read_small(mut body: Incoming) -> anyhow::Result<Bytes> {
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            if out.len() + data.len() > SMALL_BODY_LIMIT {
                bail!("response body larger than {SMALL_BODY_LIMIT} bytes");
            }
            out.extend_from_slice(data);
        }
    }
    Ok(out.freeze())
}

/// Counts a body's bytes without keeping them.
async fn count_body(mut body: Incoming) -> anyhow::Result<u64> {
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            n += data.len() as u64;
        }
    }
    Ok(n)
}

/// Checks the status, reads the (small) body; the error quotes the body.
async fn expect(
    resp: Response<Incoming>,
    want: StatusCode,
    what: &str,
) -> anyhow::Result<(HeaderMap, Bytes)> {
    let (parts, body) = resp.into_parts();
    let body = read_small(body).await?;
    if parts.status != want {
        bail!(
            "{what}: expected {want}, got {}: {}",
            parts.status,
            String::from_utf8_lossy(&body[..body.len().min(500)])
        );
    }
    Ok((parts.headers, body))
}

/// Admin credentials for registries that ask for a login.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// A registry at a loopback address.
#[derive(Clone, Debug)]
pub struct Registry {
    addr: SocketAddr,
    creds: Option<Credentials>,
}

impl Registry {
    pub fn new(addr: SocketAddr, creds: Option<Credentials>) -> Registry {
        Registry { addr, creds }
    }

    pub async fn conn(&self) -> anyhow::Result<Conn> {
        Conn::open(self.addr).await
    }

    /// The admin credentials, if the registry has any.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.creds.as_ref()
    }

    /// Where the registry listens (for raw connections).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle on one repository with push and pull rights. When `GET
    /// /v2/` answers 401, a token for the repository is fetched from the
    /// realm of the challenge with the admin credentials, and every request
    /// of the handle carries it.
    pub async fn repo(&self, name: &str) -> anyhow::Result<Repo> {
        let mut conn = self.conn().await?;
        let resp = conn.send(get("/v2/")?).await?;
        let status = resp.status();
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        read_small(resp.into_body()).await?;
        let auth = match status {
            StatusCode::OK => None,
            StatusCode::UNAUTHORIZED => {
                let challenge =
                    challenge.ok_or_else(|| anyhow!("401 from /v2/ without WWW-Authenticate"))?;
                let token = self.fetch_token(&challenge, name).await?;
                Some(HeaderValue::from_str(&format!("Bearer {token}"))?)
            }
            other => bail!("GET /v2/ answered {other}"),
        };
        Ok(Repo {
            name: name.to_owned(),
            auth,
        })
    }

    /// POSTs JSON to berth's management API with the admin credentials;
    /// returns the answer's headers (201 expected).
    pub async fn api_post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<HeaderMap> {
        let creds = self
            .creds
            .as_ref()
            .ok_or_else(|| anyhow!("the management API needs the admin credentials"))?;
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", creds.user, creds.password));
        let req = Request::post(path)
            .header(AUTHORIZATION, format!("Basic {basic}"))
            .header(CONTENT_TYPE, "application/json")
            .body(ReqBody::Full(Bytes::from(body.to_string())))?;
        let mut conn = self.conn().await?;
        let (headers, _) = expect(conn.send(req).await?, StatusCode::CREATED, path).await?;
        Ok(headers)
    }

    /// Creates a private project with the admin credentials (berth's
    /// management API, Harbor's shape): berth refuses pushes to a project
    /// that does not exist.
    pub async fn create_project(&self, name: &str) -> anyhow::Result<()> {
        let creds = self
            .creds
            .as_ref()
            .ok_or_else(|| anyhow!("creating a project needs the admin credentials"))?;
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", creds.user, creds.password));
        let body = serde_json::json!({"project_name": name, "metadata": {"public": "false"}});
        let req = Request::post("/api/v2.0/projects")
            .header(AUTHORIZATION, format!("Basic {basic}"))
            .header(CONTENT_TYPE, "application/json")
            .body(ReqBody::Full(Bytes::from(body.to_string())))?;
        let mut conn = self.conn().await?;
        expect(
            conn.send(req).await?,
            StatusCode::CREATED,
            &format!("creating project {name}"),
        )
        .await?;
        Ok(())
    }

    /// POSTs JSON to the management API with the admin's Basic
    /// credentials; returns the answer's headers (`status` expected).
    pub async fn post_json(
        &self,
        conn: &mut Conn,
        path: &str,
        body: &serde_json::Value,
        status: StatusCode,
    ) -> anyhow::Result<HeaderMap> {
        let mut req = Request::post(path).header(CONTENT_TYPE, "application/json");
        if let Some(basic) = self.basic()? {
            req = req.header(AUTHORIZATION, basic);
        }
        let resp = conn
            .send(req.body(ReqBody::Full(Bytes::from(body.to_string())))?)
            .await?;
        let headers = resp.headers().clone();
        expect(resp, status, path).await?;
        Ok(headers)
    }

    /// The admin's `Authorization: Basic` value, if the registry has
    /// credentials.
    fn basic(&self) -> anyhow::Result<Option<HeaderValue>> {
        self.creds
            .as_ref()
            .map(|c| {
                let basic = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", c.user, c.password));
                Ok(HeaderValue::from_str(&format!("Basic {basic}"))?)
            })
            .transpose()
    }

    /// A handle on one repository whose requests carry the admin's Basic
    /// credentials (berth takes them on `/v2` as on its API, through its
    /// login cache): no token per repository, for pushes to thousands of
    /// them. Without credentials, an anonymous handle.
    pub fn basic_repo(&self, name: &str) -> anyhow::Result<Repo> {
        Ok(Repo {
            name: name.to_owned(),
            auth: self.basic()?,
        })
    }

    /// GETs a path (the management API with the admin's Basic
    /// credentials, or `/v2/...`); returns the headers and the body (200
    /// expected).
    pub async fn get_ok(&self, conn: &mut Conn, path: &str) -> anyhow::Result<(HeaderMap, Bytes)> {
        let mut req = Request::get(path);
        if let Some(basic) = self.basic()? {
            req = req.header(AUTHORIZATION, basic);
        }
        expect(
            conn.send(req.body(ReqBody::Empty)?).await?,
            StatusCode::OK,
            path,
        )
        .await
    }

    async fn fetch_token(&self, challenge: &str, repo: &str) -> anyhow::Result<String> {
        let params = parse_challenge(challenge)?;
        let realm = params
            .get("realm")
            .ok_or_else(|| anyhow!("challenge without realm: {challenge}"))?;
        let creds = self
            .creds
            .as_ref()
            .ok_or_else(|| anyhow!("the registry asks for a login and no credentials are set"))?;
        let (addr, realm_path) = parse_loopback_url(realm)?;
        let mut path = format!(
            "{realm_path}{}scope={}",
            if realm_path.contains('?') { '&' } else { '?' },
            percent_encode(&format!("repository:{repo}:pull,push"))
        );
        if let Some(service) = params.get("service") {
            path.push_str(&format!("&service={}", percent_encode(service)));
        }
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", creds.user, creds.password));
        let req = Request::get(path)
            .header(AUTHORIZATION, format!("Basic {basic}"))
            .body(ReqBody::Empty)?;
        let mut conn = Conn::open(addr).await?;
        let (_, body) = expect(conn.send(req).await?, StatusCode::OK, "token request").await?;
        let json: serde_json::Value =
            serde_json::from_slice(&body).context("token response is not JSON")?;
        json.get("token")
            .or_else(|| json.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("token response without token"))
    }
}

fn get(path: &str) -> anyhow::Result<Request<ReqBody>> {
    Ok(Request::get(path).body(ReqBody::Empty)?)
}

/// One repository, with the Authorization header its requests carry.
#[derive(Clone, Debug)]
pub struct Repo {
    name: String,
    auth: Option<HeaderValue>,
}

impl Repo {
    /// A handle that sends no credentials (anonymous pulls of public
    /// repositories).
    pub fn anonymous(name: &str) -> Repo {
        Repo {
            name: name.to_owned(),
            auth: None,
        }
    }

    /// Whether the registry asked for a login and requests carry a token.
    pub fn uses_token(&self) -> bool {
        self.auth.is_some()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `Authorization` value requests carry, if any (for raw
    /// connections).
    pub fn authorization(&self) -> Option<&HeaderValue> {
        self.auth.as_ref()
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
    ) -> anyhow::Result<Request<ReqBody>> {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        Ok(req.body(body)?)
    }

    /// Pushes a blob as docker does: POST to open an upload, one PATCH
    /// with the whole body (chunked, no Content-Length or Content-Range),
    /// then PUT `?digest=` with an empty body.
    pub async fn push_blob(
        &self,
        conn: &mut Conn,
        body: ReqBody,
        digest: &str,
    ) -> anyhow::Result<()> {
        let mut post = self.request(
            Method::POST,
            &format!("/v2/{}/blobs/uploads/", self.name),
            ReqBody::Empty,
        )?;
        post.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let (headers, _) =
            expect(conn.send(post).await?, StatusCode::ACCEPTED, "POST upload").await?;
        let upload = location(&headers, conn.addr)?;

        let mut patch = self.request(Method::PATCH, &upload, body)?;
        patch.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let (headers, _) = expect(
            conn.send(patch).await?,
            StatusCode::ACCEPTED,
            "PATCH upload",
        )
        .await?;
        let upload = location(&headers, conn.addr)?;

        let sep = if upload.contains('?') { '&' } else { '?' };
        let mut put = self.request(
            Method::PUT,
            &format!("{upload}{sep}digest={}", percent_encode(digest)),
            ReqBody::Empty,
        )?;
        put.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        expect(conn.send(put).await?, StatusCode::CREATED, "PUT upload").await?;
        Ok(())
    }

    /// GETs a blob, following a redirect to the store the way clients
    /// do (a connection of its own, no credentials: the URL is signed).
    async fn get_blob(&self, conn: &mut Conn, digest: &str) -> anyhow::Result<Response<Incoming>> {
        let req = self.request(
            Method::GET,
            &format!("/v2/{}/blobs/{digest}", self.name),
            ReqBody::Empty,
        )?;
        let resp = conn.send(req).await?;
        let resp = if resp.status().is_redirection() {
            let to = resp
                .headers()
                .get(LOCATION)
                .ok_or_else(|| anyhow!("redirect without Location"))?
                .to_str()?
                .to_owned();
            let (addr, path) = parse_loopback_url(&to)?;
            let mut store = Conn::open(addr).await?;
            let req = Request::builder()
                .method(Method::GET)
                .uri(path)
                .body(ReqBody::Empty)?;
            store.send(req).await?
        } else {
            resp
        };
        if resp.status() != StatusCode::OK {
            expect(resp, StatusCode::OK, "GET blob").await?;
            bail!("GET blob failed");
        }
        Ok(resp)
    }

    /// GETs a blob; returns the number of bytes received.
    pub async fn pull_blob(&self, conn: &mut Conn, digest: &str) -> anyhow::Result<u64> {
        count_body(self.get_blob(conn, digest).await?.into_body()).await
    }

    /// GETs a blob and times it: (time to the first body byte, time to
    /// the last, bytes).
    pub async fn pull_blob_timed(
        &self,
        conn: &mut Conn,
        digest: &str,
    ) -> anyhow::Result<(std::time::Duration, std::time::Duration, u64)> {
        let started = std::time::Instant::now();
        let mut body = self.get_blob(conn, digest).await?.into_body();
        let mut first = None;
        let mut n = 0u64;
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame?.data_ref() {
                if first.is_none() && !data.is_empty() {
                    first = Some(started.elapsed());
                }
                n += data.len() as u64;
            }
        }
        let total = started.elapsed();
        Ok((first.unwrap_or(total), total, n))
    }

    pub async fn head_blob(&self, conn: &mut Conn, digest: &str) -> anyhow::Result<()> {
        let req = self.request(
            Method::HEAD,
            &format!("/v2/{}/blobs/{digest}", self.name),
            ReqBody::Empty,
        )?;
        expect(conn.send(req).await?, StatusCode::OK, "HEAD blob").await?;
        Ok(())
    }

    /// Links a blob of repository `from` into this one (`POST
    /// ?mount=&from=`, 201 expected).
    pub async fn mount_blob(
        &self,
        conn: &mut Conn,
        digest: &str,
        from: &str,
    ) -> anyhow::Result<()> {
        let mut post = self.request(
            Method::POST,
            &format!(
                "/v2/{}/blobs/uploads/?mount={}&from={}",
                self.name,
                percent_encode(digest),
                percent_encode(from)
            ),
            ReqBody::Empty,
        )?;
        post.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        expect(conn.send(post).await?, StatusCode::CREATED, "POST mount").await?;
        Ok(())
    }

    /// GETs a manifest; returns its size.
    pub async fn get_manifest(&self, conn: &mut Conn, reference: &str) -> anyhow::Result<usize> {
        let mut req = self.request(
            Method::GET,
            &format!("/v2/{}/manifests/{reference}", self.name),
            ReqBody::Empty,
        )?;
        req.headers_mut()
            .insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let (_, body) = expect(conn.send(req).await?, StatusCode::OK, "GET manifest").await?;
        Ok(body.len())
    }

    pub async fn put_manifest(
        &self,
        conn: &mut Conn,
        reference: &str,
        media_type: &str,
        manifest: Bytes,
    ) -> anyhow::Result<()> {
        let mut req = self.request(
            Method::PUT,
            &format!("/v2/{}/manifests/{reference}", self.name),
            ReqBody::Full(manifest),
        )?;
        req.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_str(media_type)?);
        expect(conn.send(req).await?, StatusCode::CREATED, "PUT manifest").await?;
        Ok(())
    }
}

/// The path and query of a Location header (relative, or absolute on the
/// same loopback address).
fn location(headers: &HeaderMap, addr: SocketAddr) -> anyhow::Result<String> {
    let raw = headers
        .get(LOCATION)
        .ok_or_else(|| anyhow!("reply without Location"))?
        .to_str()?;
    if raw.starts_with('/') {
        return Ok(raw.to_owned());
    }
    let (at, path) = parse_loopback_url(raw)?;
    if at.port() != addr.port() {
        bail!("Location {raw} points to another server than {addr}");
    }
    Ok(path)
}

/// `http://<loopback>[:port]/path?query` -> address and path. Anything not
/// on loopback is refused: the benchmark sends traffic nowhere else.
pub fn parse_loopback_url(url: &str) -> anyhow::Result<(SocketAddr, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("not a plain http URL: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h,
            p.parse::<u16>().with_context(|| format!("port in {url}"))?,
        ),
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse::<IpAddr>()
            .with_context(|| format!("host of {url} is not an IP address"))?
    };
    ensure_loopback(ip)?;
    Ok((SocketAddr::new(ip, port), path.to_owned()))
}

/// The parameters of `Bearer realm="...",service="...",scope="..."`.
pub fn parse_challenge(header: &str) -> anyhow::Result<HashMap<String, String>> {
    let rest = header.trim();
    let params = rest
        .get(..7)
        .filter(|s| s.eq_ignore_ascii_case("bearer "))
        .map(|_| &rest[7..])
        .ok_or_else(|| anyhow!("not a Bearer challenge: {header}"))?;
    let mut out = HashMap::new();
    let mut s = params.trim_start();
    while !s.is_empty() {
        let (key, after) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("malformed challenge: {header}"))?;
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or_else(|| anyhow!("unterminated quote in challenge: {header}"))?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            match after.find(',') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            }
        };
        out.insert(key.trim().to_ascii_lowercase(), value.to_owned());
        s = after.trim_start().trim_start_matches(',').trim_start();
    }
    Ok(out)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let p = parse_challenge(
            r#"Bearer realm="http://127.0.0.1:5000/service/token",service="berth",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(p["realm"], "http://127.0.0.1:5000/service/token");
        assert_eq!(p["service"], "berth");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        assert!(parse_challenge("Basic realm=x").is_err());
    }

    #[test]
    fn urls() {
        let (addr, path) = parse_loopback_url("http://127.0.0.1:5000/service/token?x=1").unwrap();
        assert_eq!(addr, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(path, "/service/token?x=1");
        let (addr, path) = parse_loopback_url("http://localhost").unwrap();
        assert_eq!(addr.port(), 80);
        assert_eq!(path, "/");
        assert!(parse_loopback_url("http://[::1]:8080/x").is_ok());
        assert!(parse_loopback_url("http://10.0.0.1:5000/").is_err());
        assert!(parse_loopback_url("https://127.0.0.1/").is_err());
    }

    #[test]
    fn encoding() {
        assert_eq!(percent_encode("sha256:ab"), "sha256%3Aab");
        assert_eq!(
            percent_encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
