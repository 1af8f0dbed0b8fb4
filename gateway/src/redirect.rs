//! The optional plain-HTTP listener (`server.http_redirect`) next to the
//! HTTPS one: every request is answered with a permanent redirect to the
//! same path over HTTPS, so a client or browser that tried `http://` learns
//! where to go instead of failing with "server gave HTTP response to HTTPS
//! client" the other way round.

use async_trait::async_trait;
use pingora::http::ResponseHeader;
use pingora::proxy::{ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};

use crate::app::valid_host;
use crate::http::header;

pub struct Redirect {
    /// `external_url` without a trailing slash, when configured.
    pub external_url: Option<String>,
    /// The HTTPS listener's port, for URLs built from the Host header.
    pub https_port: u16,
}

impl Redirect {
    fn location(&self, session: &Session) -> String {
        let uri = &session.req_header().uri;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        if let Some(base) = &self.external_url {
            return format!("{base}{path}");
        }
        let host = header(session, "host")
            .filter(|h| valid_host(h))
            .unwrap_or("localhost");
        // Drop the plain listener's port; add the HTTPS one unless it is 443.
        let name = match host.rsplit_once(':') {
            Some((name, port)) if !name.ends_with(']') || host.starts_with('[') => {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    name
                } else {
                    host
                }
            }
            _ => host,
        };
        match self.https_port {
            443 => format!("https://{name}{path}"),
            port => format!("https://{name}:{port}{path}"),
        }
    }
}

#[async_trait]
impl ProxyHttp for Redirect {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> pingora::Result<bool> {
        let mut resp = ResponseHeader::build(308, Some(3))?;
        resp.insert_header("Location", self.location(session))?;
        resp.insert_header("Content-Length", "0")?;
        // The request body (if any) is not read: close rather than drain.
        session.set_keepalive(None);
        session.write_response_header(Box::new(resp), true).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _s: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        Err(Error::explain(
            ErrorType::InternalError,
            "the redirect listener has no upstream",
        ))
    }
}
