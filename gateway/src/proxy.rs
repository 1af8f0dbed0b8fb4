//! The Pingora `ProxyHttp` implementation: the request phases of berth's
//! one data path. Registry requests are answered in `request_filter` from
//! the built-in store; nothing goes to a second hop.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::http::Method;
use pingora::proxy::{ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};
use uuid::Uuid;

use crate::app::App;
use crate::auth::challenge;
use crate::error::{cause_chain, harbor_body, oci_body, GatewayError};
use crate::http::{header, send, Reply, API_VERSION};
use crate::{api, token_endpoint, v2};

/// Unread request bodies up to this size are read and dropped before an
/// early error response rather than cutting the connection.
const DRAIN_LIMIT: u64 = 8 * 1024 * 1024;

pub struct Gateway {
    pub app: Arc<App>,
}

/// Per-request state kept for the access log.
pub struct RequestCtx {
    start: Instant,
    request_id: String,
    status: u16,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            start: Instant::now(),
            request_id: Uuid::new_v4().simple().to_string(),
            status: 0,
        }
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        let path = session.req_header().uri.path();
        let head = session.req_header().method == Method::HEAD;
        let result = if path == "/v2" || path.starts_with("/v2/") {
            v2::handle(&self.app, session).await
        } else if path == api::PREFIX || path.starts_with("/api/v2.0/") {
            api::handle(&self.app, session).await
        } else if path.starts_with("/service/") {
            token_endpoint::handle(&self.app, session).await
        } else if path == "/" {
            Ok(Reply::new(200)
                .header("Content-Type", "text/plain; charset=utf-8")
                .bytes("berth container registry: the API is at /v2/\n".into()))
        } else {
            Err(GatewayError::NotFound(path.to_owned()))
        };
        let reply = match result {
            Ok(reply) => reply,
            Err(e) => error_reply(&self.app, session, &e, ctx).await,
        };
        ctx.status = reply.status;
        let reply = reply
            .header(API_VERSION.0, API_VERSION.1)
            .header("X-Request-Id", ctx.request_id.clone());
        send(session, reply, head, &self.app.read_pool).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        // Every request is answered in request_filter; reaching here is a bug.
        Err(Error::explain(
            ErrorType::InternalError,
            "berth has no upstream for this request",
        ))
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let req = session.req_header();
        tracing::info!(
            target: "access",
            request_id = %ctx.request_id,
            method = %req.method,
            path = %req.uri.path(),
            status = ctx.status,
            duration_ms = ctx.start.elapsed().as_secs_f64() * 1000.0,
            error = e.map(|e| e.to_string()),
            "request"
        );
    }
}

/// Turns an error into the OCI error reply; internal errors are logged
/// here, once, with their cause chain.
/// Reads and drops the rest of the request body; false when it is longer
/// than `DRAIN_LIMIT` or the read fails.
async fn drain_body(session: &mut Session) -> bool {
    let mut read = 0u64;
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                read += chunk.len() as u64;
                if read > DRAIN_LIMIT {
                    return false;
                }
            }
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

async fn error_reply(
    app: &App,
    session: &mut Session,
    e: &GatewayError,
    ctx: &RequestCtx,
) -> Reply {
    let api = session.req_header().uri.path().starts_with(api::PREFIX);
    let p = if api { e.present_api() } else { e.present() };
    if p.internal {
        tracing::error!(request_id = %ctx.request_id, error = %cause_chain(e), "internal error");
    }
    // An early answer to a request whose body is still coming. A client
    // that sent `Expect: 100-continue` has not sent the body and will not
    // once it sees this answer. Otherwise a small body (a manifest, a form;
    // by Content-Length or, chunked, as it arrives) is read and dropped
    // first, so the connection stays usable and the client never sees a
    // reset while it is still writing; a large upload gets the connection
    // closed instead.
    if !session.as_downstream_mut().is_body_done() {
        let waiting =
            header(session, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        let too_large = header(session, "content-length")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|len| len > DRAIN_LIMIT);
        if waiting || too_large || !drain_body(session).await {
            session.set_keepalive(None);
        }
    }
    let body = if api {
        harbor_body(p.code, &p.message)
    } else {
        oci_body(p.code, &p.message)
    };
    let mut reply = Reply::new(p.status)
        .header("Content-Type", "application/json")
        .bytes(body.into());
    for (name, value) in e.extra_headers() {
        reply = reply.header(name, value);
    }
    // The management API uses Basic auth; the Bearer challenge is /v2's.
    if let (false, Some((scope, error))) = (api, e.challenge()) {
        reply = reply.header("WWW-Authenticate", challenge(app, session, scope, error));
    }
    reply
}
