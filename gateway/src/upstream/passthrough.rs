//! Fronted projects (`metadata.proxy_mode = "passthrough"`): every `/v2`
//! request, pushes included, goes to the upstream through Pingora's proxy
//! phases once berth has authenticated the caller and policy has allowed
//! the action. Bodies stream both ways; nothing is stored here.
//!
//! berth speaks to the upstream with the endpoint's credentials (Basic or a
//! token from the upstream's realm), never the client's; it rewrites names
//! (`<project>/<repo>` to `<repo>`) on the way out, and `Location` headers
//! and challenges on the way back, so the client only ever sees berth.

use std::net::SocketAddr;
use std::sync::Arc;

use berth_storage::oci::RepoName;
use berth_storage::upstreams::Endpoint;
use berth_storage::StorageError;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::upstreams::peer::HttpPeer;

use super::cache::upstream_name;
use super::client::{registry_base, same_origin};
use crate::app::App;
use crate::error::GatewayError;
use crate::route::Query;

/// Everything the proxy phases need to forward one request.
pub struct Forward {
    pub endpoint: Arc<Endpoint>,
    pub local_repo: RepoName,
    pub upstream_repo: String,
    /// The upstream request's path and query.
    pub path_and_query: String,
    pub authorization: Option<String>,
    /// `Host` for the upstream request.
    pub host: String,
    pub addr: SocketAddr,
    pub tls: bool,
    /// The audit record to write once the upstream answered.
    pub audit: Option<berth_storage::audit::AuditRecord>,
}

/// Prepares forwarding of a request whose path is `raw_path` in `repo`.
pub async fn plan(
    app: &App,
    ep: Arc<Endpoint>,
    repo: &RepoName,
    raw_path: &str,
    query: &Query,
    actions: &'static str,
) -> Result<Forward, GatewayError> {
    let upstream_repo = upstream_name(&ep, repo);
    let local_prefix = format!("/v2/{repo}/");
    // The route was parsed from this path; a path that does not spell the
    // name the same way (an encoding) is not forwarded under another one.
    let tail = raw_path
        .strip_prefix(&local_prefix)
        .ok_or_else(|| StorageError::NameInvalid(format!("{raw_path}: spell the name plainly")))?;
    let mut path_and_query = format!("/v2/{upstream_repo}/{tail}");
    let rewritten = rewrite_query(query, repo.project(), &ep)?;
    if !rewritten.is_empty() {
        path_and_query.push('?');
        path_and_query.push_str(&rewritten);
    }
    let base = registry_base(&ep);
    let url = reqwest::Url::parse(base).map_err(|_| GatewayError::UpstreamRefused {
        registry: ep.name.clone(),
        detail: format!("the endpoint URL {base} is not a URL"),
    })?;
    let tls = url.scheme() == "https";
    let host = url.host_str().unwrap_or("").to_owned();
    let port = url
        .port_or_known_default()
        .unwrap_or(if tls { 443 } else { 80 });
    let addr = app.upstreams.resolve(&host, port).await.ok_or_else(|| {
        GatewayError::UpstreamUnreachable {
            registry: ep.name.clone(),
            detail: format!("cannot resolve {host}"),
            what: repo.to_string(),
        }
    })?;
    let authorization = app
        .upstreams
        .client
        .authorization_for(&ep, &upstream_repo, actions)
        .await?;
    let host_header = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    };
    Ok(Forward {
        endpoint: ep,
        local_repo: repo.clone(),
        upstream_repo,
        path_and_query,
        authorization,
        host: host_header,
        addr,
        tls,
        audit: None,
    })
}

/// The query for the upstream: a mount's `from` names the upstream's
/// repository when it is in the same fronted project; a mount from
/// anywhere else cannot happen upstream, so it becomes a plain upload.
/// `from` must be a repository name (`front/../../x` is not).
fn rewrite_query(query: &Query, project: &str, ep: &Endpoint) -> Result<String, GatewayError> {
    let from = match query.get("from") {
        Some(f) => {
            let name = f.parse::<RepoName>()?;
            match name.in_project() {
                Some(rest) if name.project() == project => {
                    Some(super::client::upstream_repo(ep, rest))
                }
                _ => None,
            }
        }
        None => None,
    };
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in query.pairs() {
        match (k, &from) {
            ("from", Some(f)) => {
                out.append_pair("from", f);
            }
            ("from" | "mount", None) => {}
            _ => {
                out.append_pair(k, v);
            }
        }
    }
    Ok(out.finish())
}

impl Forward {
    pub fn peer(&self) -> HttpPeer {
        let sni = if self.tls {
            self.host.split(':').next().unwrap_or("").to_owned()
        } else {
            String::new()
        };
        let mut peer = HttpPeer::new(self.addr, self.tls, sni);
        if self.endpoint.insecure {
            peer.options.verify_cert = false;
            peer.options.verify_hostname = false;
        }
        peer.options.connection_timeout = Some(std::time::Duration::from_secs(5));
        peer
    }

    /// Rewrites the request Pingora is about to send upstream.
    pub fn request(&self, req: &mut RequestHeader) -> pingora::Result<()> {
        let uri = self.path_and_query.parse::<http::Uri>().map_err(|e| {
            pingora::Error::because(pingora::ErrorType::InternalError, "upstream URI", e)
        })?;
        req.set_uri(uri);
        req.insert_header("Host", &self.host)?;
        req.remove_header("Authorization");
        // berth answered `Expect: 100-continue` itself.
        req.remove_header("Expect");
        if let Some(a) = &self.authorization {
            req.insert_header("Authorization", a)?;
        }
        Ok(())
    }

    /// Rewrites the upstream's response headers for the client.
    pub fn response(
        &self,
        app: &App,
        resp: &mut ResponseHeader,
        challenge: impl FnOnce() -> String,
    ) -> pingora::Result<()> {
        if let Some(loc) = resp
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
        {
            let local = self.local_location(app, &loc);
            resp.insert_header("Location", local)?;
        }
        if resp.status.as_u16() == 401 {
            // The upstream no longer takes berth's token (it expired early):
            // forget it, and let the client retry against berth.
            app.upstreams.client.forget(self.endpoint.id);
            resp.insert_header("WWW-Authenticate", challenge())?;
        }
        Ok(())
    }

    /// Where the client should go instead of the upstream's `Location`:
    /// `http://upstream/v2/<upstream repo>/blobs/uploads/<id>?_state=...`
    /// becomes `/v2/<project>/<repo>/blobs/uploads/<id>?_state=...`. A
    /// redirect elsewhere (object storage holding a blob: Docker Hub, GHCR
    /// and S3-backed registries answer blob GETs so) goes to the client
    /// untouched: it carries its own signature, and the client follows it
    /// without berth, so berth's credential never goes there.
    fn local_location(&self, app: &App, loc: &str) -> String {
        let base = registry_base(&self.endpoint);
        let path = match reqwest::Url::parse(loc) {
            Ok(u) if !same_origin(&u, base) => return loc.to_owned(),
            Ok(u) => match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_owned(),
            },
            // A path on the upstream.
            Err(_) => loc.to_owned(),
        };
        let upstream_prefix = format!("/v2/{}/", self.upstream_repo);
        match path.strip_prefix(&upstream_prefix) {
            Some(rest) => app.url(&format!("/v2/{}/{rest}", self.local_repo)),
            // Elsewhere on the upstream's host, outside the repository's
            // API: only the upstream can answer it.
            None => match reqwest::Url::parse(base).and_then(|b| b.join(&path)) {
                Ok(u) => u.to_string(),
                Err(_) => path,
            },
        }
    }
}
