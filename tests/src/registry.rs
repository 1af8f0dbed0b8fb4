//! A thin blocking client for the distribution API, and assertions on its
//! responses.

use std::time::Duration;

use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use serde_json::Value;

use crate::content::{Blob, Image};

pub struct Registry {
    base: String,
    http: Client,
    credentials: Option<(String, String)>,
}

impl Registry {
    /// An anonymous client for the registry at `base`
    /// (`http://127.0.0.1:PORT`).
    pub fn new(base: &str) -> Registry {
        Registry {
            base: base.trim_end_matches('/').to_string(),
            http: http_client(None),
            credentials: None,
        }
    }

    /// A client with Basic credentials that also trusts the CA at `ca`
    /// (for a registry serving HTTPS).
    pub fn with_basic_auth_trusting(
        base: &str,
        user: &str,
        password: &str,
        ca: Option<&std::path::Path>,
    ) -> Registry {
        Registry {
            base: base.trim_end_matches('/').to_string(),
            http: http_client_trusting(Some((user, password)), ca),
            credentials: Some((user.to_string(), password.to_string())),
        }
    }

    /// A client that sends HTTP Basic credentials with every request.
    pub fn with_basic_auth(base: &str, user: &str, password: &str) -> Registry {
        Registry {
            base: base.trim_end_matches('/').to_string(),
            http: http_client(Some((user, password))),
            credentials: Some((user.to_string(), password.to_string())),
        }
    }

    /// The HTTP client, with this registry's credentials as a default
    /// header.
    pub fn http(&self) -> &Client {
        &self.http
    }

    /// `(user, password)`, if this client authenticates.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// [`curl`] with this registry's credentials.
    pub fn curl(&self, args: &[&str]) -> CurlResponse {
        let args = self.curl_args(args);
        curl(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// [`curl_lenient`] with this registry's credentials.
    pub fn curl_lenient(&self, args: &[&str]) -> CurlResponse {
        let args = self.curl_args(args);
        curl_lenient(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn curl_args(&self, args: &[&str]) -> Vec<String> {
        let mut all = Vec::new();
        if let Some((user, password)) = &self.credentials {
            all.push("-u".to_string());
            all.push(format!("{user}:{password}"));
        }
        all.extend(args.iter().map(|a| a.to_string()));
        all
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `base` + `path` (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Resolves a Location header (absolute, or a path with an optional
    /// query) against the base URL.
    pub fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            self.url(location)
        } else {
            panic!("unexpected relative Location {location:?}")
        }
    }

    /// POST /v2/<repo>/blobs/uploads/ and returns the absolute upload URL.
    pub fn start_upload(&self, repo: &str) -> String {
        let resp = self
            .http
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/")))
            .send()
            .expect("POST upload");
        assert_eq!(
            resp.status(),
            StatusCode::ACCEPTED,
            "POST /v2/{repo}/blobs/uploads/: {}",
            describe(resp)
        );
        self.location(&resp)
    }

    /// The absolute URL of a response's Location header.
    pub fn location(&self, resp: &Response) -> String {
        let loc = header(resp, "location")
            .unwrap_or_else(|| panic!("{} {} has no Location header", resp.status(), resp.url()));
        self.resolve(&loc)
    }

    /// Pushes a blob with POST + monolithic PUT; asserts 201.
    pub fn push_blob(&self, repo: &str, blob: &Blob) {
        self.push_bytes(repo, &blob.data, &blob.digest);
    }

    /// Pushes bytes under a given digest (sha256 or sha512); asserts 201.
    pub fn push_bytes(&self, repo: &str, data: &[u8], digest: &str) {
        let location = self.start_upload(repo);
        let resp = self
            .http
            .put(with_query(&location, "digest", digest))
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .expect("PUT upload");
        assert_eq!(
            resp.status(),
            StatusCode::CREATED,
            "PUT upload of {digest} to {repo}: {}",
            describe(resp)
        );
    }

    /// PUT /v2/<repo>/manifests/<reference> with this media type.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Response {
        self.http
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .expect("PUT manifest")
    }

    /// Pushes a manifest and asserts 201 and its digest.
    pub fn push_manifest(&self, repo: &str, reference: &str, manifest: &Blob) {
        let resp = self.put_manifest(repo, reference, &manifest.media_type, &manifest.data);
        assert_eq!(
            resp.status(),
            StatusCode::CREATED,
            "PUT /v2/{repo}/manifests/{reference}: {}",
            describe(resp)
        );
        assert_eq!(
            header(&resp, "docker-content-digest").as_deref(),
            Some(manifest.digest.as_str()),
            "Docker-Content-Digest of manifest PUT"
        );
    }

    /// Pushes every blob of an image, then its manifest under `tag`.
    pub fn push_image(&self, repo: &str, tag: &str, image: &Image) {
        for blob in image.blobs() {
            self.push_blob(repo, blob);
        }
        self.push_manifest(repo, tag, &image.manifest);
    }

    /// GET /v2/<repo>/manifests/<reference> accepting every manifest type.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Response {
        self.http
            .get(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("accept", ALL_MANIFEST_TYPES)
            .send()
            .expect("GET manifest")
    }

    /// GET /v2/<repo>/blobs/<digest>.
    pub fn get_blob(&self, repo: &str, digest: &str) -> Response {
        self.http
            .get(self.url(&format!("/v2/{repo}/blobs/{digest}")))
            .send()
            .expect("GET blob")
    }

    /// HEAD /v2/<repo>/blobs/<digest>.
    pub fn head_blob(&self, repo: &str, digest: &str) -> Response {
        self.http
            .head(self.url(&format!("/v2/{repo}/blobs/{digest}")))
            .send()
            .expect("HEAD blob")
    }

    /// Asserts the blob is readable in `repo` with exactly these bytes.
    pub fn assert_blob(&self, repo: &str, blob: &Blob) {
        let resp = self.get_blob(repo, &blob.digest);
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "GET blob {} in {repo}",
            blob.digest
        );
        let body = resp.bytes().expect("read blob body");
        assert!(
            body.as_ref() == blob.data.as_slice(),
            "blob {} in {repo}: {} bytes returned, {} expected, or different content",
            blob.digest,
            body.len(),
            blob.data.len()
        );
    }

    /// Asserts the manifest is readable by `reference` with exactly these
    /// bytes and its digest.
    pub fn assert_manifest(&self, repo: &str, reference: &str, manifest: &Blob) {
        let resp = self.get_manifest(repo, reference);
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "GET manifest {repo}:{reference}"
        );
        assert_eq!(
            header(&resp, "docker-content-digest").as_deref(),
            Some(manifest.digest.as_str()),
            "Docker-Content-Digest of {repo}:{reference}"
        );
        let body = resp.bytes().expect("read manifest body");
        assert_eq!(
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&manifest.data),
            "manifest bytes of {repo}:{reference}"
        );
    }

    /// Asserts the whole image (manifest by tag and digest, every blob).
    pub fn assert_image(&self, repo: &str, tag: &str, image: &Image) {
        self.assert_manifest(repo, tag, &image.manifest);
        self.assert_manifest(repo, &image.manifest.digest, &image.manifest);
        for blob in image.blobs() {
            self.assert_blob(repo, blob);
        }
    }

    /// The tags of a repository (GET tags/list, 200 asserted).
    /// What a project holds of these pushes, asked of the registry API:
    /// every blob of these images that its repository serves and every
    /// manifest it serves, each digest once, with its size (what the
    /// project's quota must count).
    pub fn held(&self, pushed: &[(String, Image)]) -> std::collections::BTreeMap<String, u64> {
        let mut held = std::collections::BTreeMap::new();
        for (repo, image) in pushed {
            for blob in image.blobs() {
                if self.head_blob(repo, &blob.digest).status() == 200 {
                    held.insert(blob.digest.clone(), blob.size());
                }
            }
            let manifest = &image.manifest;
            if self.get_manifest(repo, &manifest.digest).status() == 200 {
                held.insert(manifest.digest.clone(), manifest.size());
            }
        }
        held
    }

    pub fn tags(&self, repo: &str) -> Vec<String> {
        let resp = self
            .http
            .get(self.url(&format!("/v2/{repo}/tags/list")))
            .send()
            .expect("GET tags/list");
        assert_eq!(resp.status(), StatusCode::OK, "GET /v2/{repo}/tags/list");
        let body: Value = resp.json().expect("tags list JSON");
        body["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .map(|t| t.as_str().expect("tag is a string").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Every manifest media type, for Accept headers.
pub const ALL_MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// A blocking client without proxies or redirects, sending HTTP Basic
/// credentials with every request when given.
pub fn http_client(credentials: Option<(&str, &str)>) -> Client {
    http_client_trusting(credentials, None)
}

/// Like [`http_client`], trusting also the CA certificate (PEM) at `ca`.
pub fn http_client_trusting(
    credentials: Option<(&str, &str)>,
    ca: Option<&std::path::Path>,
) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some((user, password)) = credentials {
        let value = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
        let mut value = reqwest::header::HeaderValue::from_str(&value).expect("ASCII header");
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let mut builder = Client::builder();
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).expect("read CA certificate");
        builder = builder.add_root_certificate(
            reqwest::Certificate::from_pem(&pem).expect("CA certificate PEM"),
        );
    }
    builder
        .no_proxy()
        .default_headers(headers)
        .timeout(Duration::from_secs(300))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("build http client")
}

/// Appends `key=value` to a URL that may already carry a query.
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

/// A header's value as a string, if present.
pub fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("header is ASCII").to_string())
}

/// Every value of a header (repeated headers, or comma-separated values).
pub fn header_values(resp: &Response, name: &str) -> Vec<String> {
    resp.headers()
        .get_all(name)
        .iter()
        .flat_map(|v| {
            v.to_str()
                .expect("header is ASCII")
                .split(',')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// Status, headers and body of a response, for assertion messages.
pub fn describe(resp: Response) -> String {
    let status = resp.status();
    let headers = format!("{:?}", resp.headers());
    let body = resp.text().unwrap_or_else(|e| format!("<unreadable: {e}>"));
    format!("{status} {headers} {body}")
}

/// Asserts an OCI error response: this status, a JSON body
/// `{"errors":[{"code","message",...}]}`, and a first code among `codes`.
/// Returns the body.
pub fn assert_error(resp: Response, status: u16, codes: &[&str]) -> Value {
    let got = resp.status().as_u16();
    let url = resp.url().to_string();
    let content_type = header(&resp, "content-type").unwrap_or_default();
    let text = resp.text().expect("read error body");
    assert_eq!(got, status, "{url}: status (body: {text})");
    let body = assert_error_body(&text, &url);
    let code = body["errors"][0]["code"].as_str().unwrap_or_default();
    assert!(
        codes.contains(&code),
        "{url}: error code {code:?}, expected one of {codes:?} (body: {text})"
    );
    assert!(
        content_type.starts_with("application/json"),
        "{url}: error Content-Type {content_type:?}, expected application/json"
    );
    body
}

/// Asserts `text` is an OCI error body and returns it parsed.
pub fn assert_error_body(text: &str, what: &str) -> Value {
    let body: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("{what}: error body is not JSON ({e}): {text:?}"));
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no \"errors\" array in {text}"));
    assert!(!errors.is_empty(), "{what}: empty \"errors\" array");
    for error in errors {
        assert!(
            error["code"].is_string() && error["message"].is_string(),
            "{what}: each error needs string \"code\" and \"message\": {text}"
        );
    }
    body
}

/// A response as curl saw it on the wire.
pub struct CurlResponse {
    /// curl's complaint when it exited non-zero (e.g. a body shorter than
    /// its Content-Length), only from [`curl_lenient`].
    pub error: Option<String>,
    pub status: u16,
    /// Header names lowercased, in order (repeated headers kept).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl CurlResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Runs `curl -sS -i --noproxy '*' <args>` and parses the final response
/// (after any 1xx interim responses); curl must exit 0.
pub fn curl(args: &[&str]) -> CurlResponse {
    let resp = curl_lenient(args);
    if let Some(error) = &resp.error {
        panic!("curl {args:?} failed: {error}");
    }
    resp
}

/// Like [`curl`], but a non-zero exit after a response was received is
/// reported in `error` instead of panicking.
pub fn curl_lenient(args: &[&str]) -> CurlResponse {
    let out = std::process::Command::new("curl")
        .args(["-sS", "-i", "--noproxy", "*"])
        .args(args)
        .output()
        .expect("run curl");
    let error = (!out.status.success()).then(|| {
        format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    });
    let mut rest: &[u8] = &out.stdout;
    loop {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("curl {args:?}: no response ({error:?})"));
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        rest = &rest[end + 4..];
        let mut lines = head.lines();
        let status_line = lines.next().expect("status line");
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        if (100..200).contains(&status) {
            continue;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        return CurlResponse {
            error,
            status,
            headers,
            body: rest.to_vec(),
        };
    }
}

/// Standard base64 with padding, for HTTP Basic credentials.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
