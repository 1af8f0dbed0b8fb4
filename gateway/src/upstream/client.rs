//! Talking to an upstream registry: one pooled HTTP client (two: one that
//! verifies certificates and one for endpoints marked insecure), and the
//! upstream's own authentication: HTTP Basic, or the Bearer token dance
//! against the realm its 401 names, with tokens kept until they expire.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use berth_storage::upstreams::{Credential, Endpoint};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};

use crate::error::GatewayError;

/// Connecting to an upstream gives up after this long; the cache then
/// serves what it has.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A manifest or token request as a whole, and the longest pause between
/// two reads of a blob body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Tokens are dropped this long before the upstream says they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);
/// How long an upstream that asked for Basic (or for nothing) is believed
/// to keep doing so, before a passthrough request probes it again.
const SCHEME_TTL: Duration = Duration::from_secs(300);

/// Every manifest type berth stores, for upstreams that pick by Accept.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

pub struct UpstreamClient {
    verifying: reqwest::Client,
    insecure: reqwest::Client,
    /// The same without the pause limit between reads, for uploads: the
    /// limit also ends a request while its body is still being sent
    /// (reqwest), so a large blob on a slow link never finished. The
    /// caller watches an upload's progress itself.
    uploading: reqwest::Client,
    uploading_insecure: reqwest::Client,
    /// What to send as `Authorization` by (endpoint id, scope): a Bearer
    /// token from the upstream's realm, the Basic credential, or nothing.
    tokens: moka::sync::Cache<(i64, String), Arc<Token>>,
}

struct Token {
    header: Option<String>,
    expires: Instant,
}

/// What a request to an upstream is for: its repository (as the upstream
/// names it) and whether it writes.
pub struct Call<'a> {
    pub endpoint: &'a Endpoint,
    pub method: Method,
    /// Path and query, starting with `/v2/`.
    pub path: &'a str,
    pub repo: &'a str,
    /// The token scope's actions: `pull`, `pull,push`...
    pub actions: &'static str,
    pub accept: Option<&'a str>,
    /// Blob bodies may take long: no overall deadline, only between reads.
    pub streaming: bool,
}

impl UpstreamClient {
    pub fn new() -> Result<UpstreamClient, GatewayError> {
        let build = |insecure: bool, read_timeout: bool| {
            let builder = reqwest::Client::builder();
            let builder = if read_timeout {
                builder.read_timeout(REQUEST_TIMEOUT)
            } else {
                builder
            };
            builder
                .connect_timeout(CONNECT_TIMEOUT)
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_max_idle_per_host(64)
                .redirect(reqwest::redirect::Policy::limited(5))
                .danger_accept_invalid_certs(insecure)
                .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| GatewayError::BadRequest(format!("building the upstream client: {e}")))
        };
        Ok(UpstreamClient {
            verifying: build(false, true)?,
            insecure: build(true, true)?,
            uploading: build(false, false)?,
            uploading_insecure: build(true, false)?,
            tokens: moka::sync::Cache::builder().max_capacity(10_000).build(),
        })
    }

    /// The HTTP client for `endpoint` (for requests with a body, which
    /// `send` cannot repeat after a 401: see `authorization_for_scope`).
    pub fn http(&self, endpoint: &Endpoint) -> &reqwest::Client {
        if endpoint.insecure {
            &self.insecure
        } else {
            &self.verifying
        }
    }

    /// The HTTP client for uploading to `endpoint`: no limit on the pause
    /// between reads (see `uploading`).
    pub fn upload_http(&self, endpoint: &Endpoint) -> &reqwest::Client {
        if endpoint.insecure {
            &self.uploading_insecure
        } else {
            &self.uploading
        }
    }

    /// Forgets every endpoint's tokens.
    pub fn forget_all(&self) {
        self.tokens.invalidate_all();
    }

    /// Forgets an endpoint's tokens (its URL or credential changed).
    pub fn forget(&self, endpoint_id: i64) {
        let _ = self
            .tokens
            .invalidate_entries_if(move |(id, _), _| *id == endpoint_id);
    }

    /// What the upstream last took for `scope`, while it is fresh:
    /// `Some(None)` means it asked for nothing.
    fn cached(&self, endpoint: &Endpoint, scope: &str) -> Option<Option<String>> {
        // Probes of settings not stored (a connection test) share nothing.
        if endpoint.id < 0 {
            return None;
        }
        self.tokens
            .get(&(endpoint.id, scope.to_owned()))
            .filter(|t| t.expires > Instant::now())
            .map(|t| t.header.clone())
    }

    fn remember(&self, endpoint: &Endpoint, scope: &str, header: Option<String>, ttl: Duration) {
        if endpoint.id < 0 {
            return;
        }
        self.tokens.insert(
            (endpoint.id, scope.to_owned()),
            Arc::new(Token {
                header,
                expires: Instant::now() + ttl,
            }),
        );
    }

    /// The `Authorization` value to use for `repo` on `endpoint`, if one is
    /// known already (a cached token, or the endpoint's Basic credential).
    pub fn known_authorization(&self, endpoint: &Endpoint, scope: &str) -> Option<String> {
        match self.cached(endpoint, scope) {
            Some(header) => header,
            None => endpoint.credential.as_ref().map(basic),
        }
    }

    /// Sends a request, logging in upstream when it answers 401 (once).
    pub async fn send(&self, call: &Call<'_>) -> Result<Response, GatewayError> {
        let scope = scope(call.repo, call.actions);
        let first = self
            .attempt(call, self.known_authorization(call.endpoint, &scope))
            .await?;
        if first.status() != StatusCode::UNAUTHORIZED {
            return Ok(first);
        }
        let challenge = first
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let auth = self.login(call.endpoint, &challenge, &scope).await?;
        let second = self.attempt(call, Some(auth)).await?;
        if second.status() == StatusCode::UNAUTHORIZED {
            return Err(refused(call.endpoint, "401 after logging in"));
        }
        Ok(second)
    }

    /// The `Authorization` value for `scope`, logging in if the upstream's
    /// 401 to a probe asks for it. For passthrough, where Pingora sends the
    /// request itself.
    pub async fn authorization_for(
        &self,
        endpoint: &Endpoint,
        repo: &str,
        actions: &'static str,
    ) -> Result<Option<String>, GatewayError> {
        self.authorization_for_scope(endpoint, &scope(repo, actions))
            .await
    }

    /// The `Authorization` value for a token scope, which may name several
    /// repositories separated by spaces (a cross-repository mount needs
    /// `pull` on the source too).
    pub async fn authorization_for_scope(
        &self,
        endpoint: &Endpoint,
        scope: &str,
    ) -> Result<Option<String>, GatewayError> {
        if let Some(header) = self.cached(endpoint, scope) {
            return Ok(header);
        }
        let repo = scope
            .split_whitespace()
            .next()
            .and_then(|s| s.strip_prefix("repository:"))
            .and_then(|s| s.rsplit_once(':'))
            .map_or("", |(repo, _)| repo);
        let probe = self
            .attempt(
                &Call {
                    endpoint,
                    method: Method::GET,
                    path: "/v2/",
                    repo,
                    actions: "pull",
                    accept: None,
                    streaming: false,
                },
                None,
            )
            .await?;
        if probe.status() != StatusCode::UNAUTHORIZED {
            // An open upstream: no need to probe again for a while.
            let header = endpoint.credential.as_ref().map(basic);
            self.remember(endpoint, scope, header.clone(), SCHEME_TTL);
            return Ok(header);
        }
        let challenge = probe
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        self.login(endpoint, &challenge, scope).await.map(Some)
    }

    /// Forgets what was sent for `scope` after the upstream refused it (a
    /// token that expired early, a password changed).
    pub fn forget_scope(&self, endpoint: &Endpoint, scope: &str) {
        self.tokens.invalidate(&(endpoint.id, scope.to_owned()));
    }

    async fn attempt(
        &self,
        call: &Call<'_>,
        auth: Option<String>,
    ) -> Result<Response, GatewayError> {
        let url = format!("{}{}", registry_base(call.endpoint), call.path);
        let mut headers = HeaderMap::new();
        if let Some(a) = auth.and_then(|a| HeaderValue::from_str(&a).ok()) {
            headers.insert(AUTHORIZATION, a);
        }
        if let Some(accept) = call.accept.and_then(|a| HeaderValue::from_str(a).ok()) {
            headers.insert(ACCEPT, accept);
        }
        let mut req = self
            .http(call.endpoint)
            .request(call.method.clone(), &url)
            .headers(headers);
        if !call.streaming {
            req = req.timeout(REQUEST_TIMEOUT);
        }
        req.send().await.map_err(|e| unreachable(call.endpoint, &e))
    }

    /// Answers a 401 challenge: Basic with the endpoint's credential, or a
    /// token from the realm (with the credential, or anonymously).
    async fn login(
        &self,
        endpoint: &Endpoint,
        challenge: &str,
        scope: &str,
    ) -> Result<String, GatewayError> {
        let (scheme, params) = parse_challenge(challenge);
        if scheme.eq_ignore_ascii_case("basic") {
            return match &endpoint.credential {
                Some(c) => {
                    let header = basic(c);
                    self.remember(endpoint, scope, Some(header.clone()), SCHEME_TTL);
                    Ok(header)
                }
                None => Err(refused(
                    endpoint,
                    "it asks for a username and password and the endpoint has none",
                )),
            };
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(refused(endpoint, "401 without a usable challenge"));
        }
        let realm = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| refused(endpoint, "Bearer challenge without a realm"))?;
        let mut url = reqwest::Url::parse(&realm)
            .map_err(|_| refused(endpoint, &format!("unusable token realm {realm}")))?;
        {
            let mut q = url.query_pairs_mut();
            if let Some((_, service)) = params.iter().find(|(k, _)| k == "service") {
                q.append_pair("service", service);
            }
            for one in scope.split_whitespace() {
                q.append_pair("scope", one);
            }
        }
        // The challenge names the realm, so whoever answers for the
        // upstream chooses where the credential goes: only to the
        // endpoint's own origin, or over TLS (Docker Hub's realm is
        // auth.docker.io). Elsewhere the token is asked for anonymously.
        let trusted = url.scheme() == "https" || same_origin(&url, registry_base(endpoint));
        let mut req = self.http(endpoint).get(url).timeout(REQUEST_TIMEOUT);
        match &endpoint.credential {
            Some(c) if trusted => {
                req = req.basic_auth(&c.access_key, Some(&c.access_secret));
            }
            Some(_) => {
                tracing::warn!(registry = %endpoint.name, %realm, "not sending the endpoint's credential to a plain-HTTP token realm on another host");
            }
            None => {}
        }
        let resp = req.send().await.map_err(|e| unreachable(endpoint, &e))?;
        let status = resp.status();
        if !status.is_success() {
            if status == StatusCode::TOO_MANY_REQUESTS {
                return Err(GatewayError::UpstreamRateLimited {
                    registry: endpoint.name.clone(),
                    what: "a token".into(),
                    retry_after: None,
                });
            }
            return Err(refused(
                endpoint,
                &format!("its token service answered {status}"),
            ));
        }
        let raw = resp
            .bytes()
            .await
            .map_err(|e| refused(endpoint, &format!("unreadable token response: {e}")))?;
        let body: serde_json::Value = serde_json::from_slice(&raw)
            .map_err(|e| refused(endpoint, &format!("token response is not JSON: {e}")))?;
        let value = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|v| v.as_str())
            .ok_or_else(|| refused(endpoint, "token response without a token"))?
            .to_owned();
        // The token spec's default lifetime is 60 s.
        let ttl = body
            .get("expires_in")
            .and_then(|v| v.as_u64())
            .unwrap_or(60);
        let header = format!("Bearer {value}");
        self.remember(
            endpoint,
            scope,
            Some(header.clone()),
            Duration::from_secs(ttl).saturating_sub(TOKEN_MARGIN),
        );
        Ok(header)
    }

    /// Whether the endpoint answers the API version check (its ping).
    pub async fn ping(&self, endpoint: &Endpoint) -> Result<(), GatewayError> {
        let resp = self
            .send(&Call {
                endpoint,
                method: Method::GET,
                path: "/v2/",
                repo: "",
                actions: "pull",
                accept: None,
                streaming: false,
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(refused(endpoint, &format!("{} on /v2/", resp.status())))
            }
            s => Err(GatewayError::UpstreamUnreachable {
                registry: endpoint.name.clone(),
                detail: format!("{s} on /v2/; is this a registry URL?"),
                what: "anything".into(),
            }),
        }
    }
}

/// The base URL the registry API lives at. Docker Hub's endpoints are
/// entered as hub.docker.com (Harbor's form) but served elsewhere.
pub fn registry_base(endpoint: &Endpoint) -> &str {
    let url = endpoint.url.trim_end_matches('/');
    match url {
        "https://hub.docker.com" | "https://docker.io" | "https://index.docker.io" => {
            "https://registry-1.docker.io"
        }
        _ => url,
    }
}

/// Whether `url` is on the same scheme, host and port as `base`.
pub fn same_origin(url: &reqwest::Url, base: &str) -> bool {
    reqwest::Url::parse(base).is_ok_and(|b| {
        b.scheme() == url.scheme()
            && b.host_str() == url.host_str()
            && b.port_or_known_default() == url.port_or_known_default()
    })
}

/// Whether an endpoint is Docker Hub, whose one-segment names are
/// `library/` images.
pub fn is_docker_hub(endpoint: &Endpoint) -> bool {
    endpoint.kind == "docker-hub" || registry_base(endpoint) == "https://registry-1.docker.io"
}

/// The repository name the upstream knows for `name`.
pub fn upstream_repo(endpoint: &Endpoint, name: &str) -> String {
    if is_docker_hub(endpoint) && !name.contains('/') {
        format!("library/{name}")
    } else {
        name.to_owned()
    }
}

/// `Basic base64(key:secret)`.
fn basic(c: &Credential) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", c.access_key, c.access_secret))
    )
}

/// The token scope for `actions` on `repo`.
pub fn scope(repo: &str, actions: &str) -> String {
    if repo.is_empty() {
        return String::new();
    }
    format!("repository:{repo}:{actions}")
}

fn unreachable(endpoint: &Endpoint, e: &reqwest::Error) -> GatewayError {
    let detail = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        crate::error::cause_chain(e)
    };
    GatewayError::UpstreamUnreachable {
        registry: endpoint.name.clone(),
        detail,
        what: "this".into(),
    }
}

fn refused(endpoint: &Endpoint, detail: &str) -> GatewayError {
    GatewayError::UpstreamRefused {
        registry: endpoint.name.clone(),
        detail: detail.to_owned(),
    }
}

/// Splits `Bearer realm="...",service="...",scope="..."` into the scheme
/// and its parameters.
pub fn parse_challenge(value: &str) -> (String, Vec<(String, String)>) {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let mut params = Vec::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (val, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.push((key, val.to_owned()));
        rest = remainder.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_owned(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(
            p,
            vec![
                ("realm".into(), "https://auth.docker.io/token".into()),
                ("service".into(), "registry.docker.io".into()),
                ("scope".into(), "repository:library/alpine:pull".into()),
            ]
        );
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(s, "Basic");
        assert_eq!(p, vec![("realm".into(), "Registry Realm".into())]);
        let (s, p) = parse_challenge("Bearer realm=http://x/t, service=y");
        assert_eq!(s, "Bearer");
        assert_eq!(
            p,
            vec![
                ("realm".into(), "http://x/t".into()),
                ("service".into(), "y".into())
            ]
        );
    }

    #[test]
    fn origins() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(same_origin(&u("http://up:5000/v2/x"), "http://up:5000"));
        assert!(same_origin(&u("https://up/v2/x"), "https://up:443"));
        assert!(!same_origin(&u("http://up:5001/v2/x"), "http://up:5000"));
        assert!(!same_origin(&u("https://up:5000/v2/x"), "http://up:5000"));
        assert!(!same_origin(&u("https://s3.example/b?sig=1"), "https://up"));
    }

    #[test]
    fn docker_hub_names() {
        let ep = Endpoint {
            id: 1,
            name: "hub".into(),
            kind: "docker-hub".into(),
            url: "https://hub.docker.com".into(),
            description: String::new(),
            insecure: false,
            credential: None,
            created_at: 0,
            updated_at: 0,
        };
        assert_eq!(registry_base(&ep), "https://registry-1.docker.io");
        assert_eq!(upstream_repo(&ep, "alpine"), "library/alpine");
        assert_eq!(upstream_repo(&ep, "bitnami/redis"), "bitnami/redis");
        let other = Endpoint {
            kind: "docker-registry".into(),
            url: "http://127.0.0.1:5000/".into(),
            ..ep
        };
        assert_eq!(registry_base(&other), "http://127.0.0.1:5000");
        assert_eq!(upstream_repo(&other, "alpine"), "alpine");
    }
}
