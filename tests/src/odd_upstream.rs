//! A small in-memory registry that does what real ones do and
//! distribution 2.8 does not: upload ids that are not UUIDs (`up-1`),
//! blob GETs answered with a `307` to another host (object storage, as
//! Docker Hub, GHCR and S3-backed registries do), and optionally a Bearer
//! challenge whose token realm is plain HTTP on another port. It records
//! every request it and its object store and token service receive, with
//! the `Authorization` header each carried, so tests can tell where
//! credentials went.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use crate::content::sha256_digest;

/// One request a server of the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    blobs: HashMap<String, Vec<u8>>,
    /// Manifests by `repo:reference`: media type and bytes.
    manifests: HashMap<String, (String, Vec<u8>)>,
    uploads: HashMap<String, Vec<u8>>,
    next_upload: usize,
    registry_seen: Vec<Seen>,
    objects_seen: Vec<Seen>,
    tokens_seen: Vec<Seen>,
}

pub struct OddUpstream {
    pub port: u16,
    pub object_port: u16,
    pub token_port: u16,
    state: Arc<Mutex<State>>,
}

const TOKEN: &str = "odd-token";

impl OddUpstream {
    /// Open to anyone (it records what credentials arrive anyway).
    pub fn start() -> OddUpstream {
        OddUpstream::launch(false)
    }

    /// Asks for a Bearer token from `http://127.0.0.1:<token_port>/token`.
    pub fn start_with_token_realm() -> OddUpstream {
        OddUpstream::launch(true)
    }

    fn launch(token_auth: bool) -> OddUpstream {
        let state = Arc::new(Mutex::new(State::default()));
        let registry = TcpListener::bind("127.0.0.1:0").expect("bind");
        let objects = TcpListener::bind("127.0.0.1:0").expect("bind");
        let tokens = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = registry.local_addr().expect("addr").port();
        let object_port = objects.local_addr().expect("addr").port();
        let token_port = tokens.local_addr().expect("addr").port();
        let realm = token_auth.then(|| format!("http://127.0.0.1:{token_port}/token"));
        serve(registry, state.clone(), move |req, state| {
            registry_answer(req, state, object_port, realm.as_deref())
        });
        serve(objects, state.clone(), object_answer);
        serve(tokens, state.clone(), token_answer);
        OddUpstream {
            port,
            object_port,
            token_port,
            state,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn registry_requests(&self) -> Vec<Seen> {
        self.state().registry_seen.clone()
    }

    pub fn object_requests(&self) -> Vec<Seen> {
        self.state().objects_seen.clone()
    }

    pub fn token_requests(&self) -> Vec<Seen> {
        self.state().tokens_seen.clone()
    }

    /// Whether the registry holds a blob.
    pub fn has_blob(&self, digest: &str) -> bool {
        self.state().blobs.contains_key(digest)
    }
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    fn query(&self, key: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == key).then(|| v.replace("%3A", ":").replace("%3a", ":"))
        })
    }

    fn seen(&self) -> Seen {
        Seen {
            method: self.method.clone(),
            target: self.target.clone(),
            authorization: self.header("authorization").map(str::to_owned),
        }
    }
}

struct Answer {
    status: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn answer(status: &'static str, body: Vec<u8>) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body,
    }
}

impl Answer {
    fn with(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }
}

fn serve<F>(listener: TcpListener, state: Arc<Mutex<State>>, handler: F)
where
    F: Fn(&Request, &mut State) -> Answer + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (state, handler) = (state.clone(), handler.clone());
            std::thread::spawn(move || connection(stream, &state, &*handler));
        }
    });
}

fn connection(
    stream: TcpStream,
    state: &Mutex<State>,
    handler: &dyn Fn(&Request, &mut State) -> Answer,
) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut out = stream;
    while let Some(req) = read_request(&mut reader) {
        let head = req.method == "HEAD";
        let a = {
            let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
            handler(&req, &mut state)
        };
        let mut text = format!(
            "HTTP/1.1 {}\r\nContent-Length: {}\r\nDocker-Distribution-API-Version: registry/2.0\r\n",
            a.status,
            a.body.len()
        );
        for (k, v) in &a.headers {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
        text.push_str("\r\n");
        if out.write_all(text.as_bytes()).is_err() {
            return;
        }
        if !head && out.write_all(&a.body).is_err() {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let mut req = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    if req
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0u8; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            req.body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = req.header("content-length").and_then(|v| v.parse().ok()) {
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body).ok()?;
        req.body = body;
    }
    Some(req)
}

fn not_found() -> Answer {
    answer(
        "404 Not Found",
        br#"{"errors":[{"code":"NOT_FOUND","message":"no"}]}"#.to_vec(),
    )
    .with("Content-Type", "application/json")
}

fn registry_answer(
    req: &Request,
    state: &mut State,
    object_port: u16,
    realm: Option<&str>,
) -> Answer {
    state.registry_seen.push(req.seen());
    if let Some(realm) = realm {
        if req.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
            return answer("401 Unauthorized", b"{}".to_vec()).with(
                "WWW-Authenticate",
                format!("Bearer realm=\"{realm}\",service=\"odd\""),
            );
        }
    }
    let path = req.path().to_owned();
    if path == "/v2/" || path == "/v2" {
        return answer("200 OK", b"{}".to_vec()).with("Content-Type", "application/json");
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return not_found();
    };
    let method = req.method.as_str();
    if let Some(repo) = rest.strip_suffix("/blobs/uploads/") {
        state.next_upload += 1;
        let id = format!("up-{}", state.next_upload);
        state.uploads.insert(id.clone(), Vec::new());
        return answer("202 Accepted", Vec::new())
            .with("Location", format!("/v2/{repo}/blobs/uploads/{id}"))
            .with("Docker-Upload-UUID", id)
            .with("Range", "0-0");
    }
    if let Some((repo, id)) = rest.split_once("/blobs/uploads/") {
        let Some(data) = state.uploads.get_mut(id) else {
            return not_found();
        };
        data.extend_from_slice(&req.body);
        let len = data.len();
        if method == "PUT" {
            let (Some(digest), Some(data)) = (req.query("digest"), state.uploads.remove(id)) else {
                return not_found();
            };
            if sha256_digest(&data) != digest {
                return answer("400 Bad Request", b"{}".to_vec());
            }
            state.blobs.insert(digest.clone(), data);
            return answer("201 Created", Vec::new())
                .with("Location", format!("/v2/{repo}/blobs/{digest}"))
                .with("Docker-Content-Digest", digest);
        }
        return answer("202 Accepted", Vec::new())
            .with("Location", format!("/v2/{repo}/blobs/uploads/{id}"))
            .with("Range", format!("0-{}", len.saturating_sub(1)));
    }
    if let Some((_, digest)) = rest.split_once("/blobs/") {
        let Some(data) = state.blobs.get(digest) else {
            return not_found();
        };
        if method == "HEAD" {
            return answer("200 OK", data.clone())
                .with("Docker-Content-Digest", digest)
                .with("Content-Type", "application/octet-stream");
        }
        let hex = digest.trim_start_matches("sha256:");
        return answer("307 Temporary Redirect", Vec::new()).with(
            "Location",
            format!("http://127.0.0.1:{object_port}/bucket/{hex}?X-Signature=s1"),
        );
    }
    if let Some((repo, reference)) = rest.split_once("/manifests/") {
        if method == "PUT" {
            let media_type = req
                .header("content-type")
                .unwrap_or("application/vnd.oci.image.manifest.v1+json")
                .to_owned();
            let digest = sha256_digest(&req.body);
            for key in [format!("{repo}:{reference}"), format!("{repo}:{digest}")] {
                state
                    .manifests
                    .insert(key, (media_type.clone(), req.body.clone()));
            }
            return answer("201 Created", Vec::new())
                .with("Location", format!("/v2/{repo}/manifests/{digest}"))
                .with("Docker-Content-Digest", digest);
        }
        let Some((media_type, body)) = state.manifests.get(&format!("{repo}:{reference}")) else {
            return not_found();
        };
        return answer("200 OK", body.clone())
            .with("Content-Type", media_type.clone())
            .with("Docker-Content-Digest", sha256_digest(body));
    }
    not_found()
}

/// The object store: blob bytes by hex digest, for any signature.
fn object_answer(req: &Request, state: &mut State) -> Answer {
    state.objects_seen.push(req.seen());
    let hex = req.path().trim_start_matches("/bucket/");
    match state.blobs.get(&format!("sha256:{hex}")) {
        Some(data) => {
            answer("200 OK", data.clone()).with("Content-Type", "application/octet-stream")
        }
        None => not_found(),
    }
}

/// The token service: a token for anyone, anonymous or not.
fn token_answer(req: &Request, state: &mut State) -> Answer {
    state.tokens_seen.push(req.seen());
    answer(
        "200 OK",
        format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#).into_bytes(),
    )
    .with("Content-Type", "application/json")
}
