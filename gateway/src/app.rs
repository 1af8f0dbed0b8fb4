//! What every handler needs: the registry, the auth services, and how to
//! build URLs for Location headers and the token realm.

use std::sync::Arc;

use berth_auth::{LoginService, TokenService};
use berth_storage::Registry;
use pingora::proxy::Session;

use crate::bufpool::BufPool;
use crate::http::header;

pub struct App {
    pub registry: Arc<Registry>,
    pub tokens: Arc<TokenService>,
    pub login: Arc<LoginService>,
    /// `external_url` without a trailing slash; Location headers are
    /// relative paths when it is unset (clients resolve them).
    pub external_url: Option<String>,
    /// Whether this listener speaks TLS (for URLs derived from Host).
    pub tls: bool,
    /// Buffers for streaming blobs to clients.
    pub read_pool: Arc<BufPool>,
}

impl App {
    pub fn url(&self, path: &str) -> String {
        match &self.external_url {
            Some(base) => format!("{base}{path}"),
            None => path.to_owned(),
        }
    }

    /// The registry's base URL as the client sees it: `external_url`, or
    /// derived from the request's Host header.
    pub fn base_url(&self, session: &Session) -> String {
        if let Some(base) = &self.external_url {
            return base.clone();
        }
        let host = header(session, "host")
            .map(str::to_owned)
            .or_else(|| session.req_header().uri.authority().map(|a| a.to_string()))
            // The value ends up inside a quoted header parameter: allow
            // only what a host[:port] can contain.
            .filter(|h| {
                h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            })
            .unwrap_or_else(|| "localhost".to_owned());
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{host}")
    }
}
