//! The Pingora `ProxyHttp` implementation: the request phases of berth's
//! one data path. Registry requests are answered in `request_filter` from
//! the built-in store; nothing goes to a second hop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::http::Method;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};
use uuid::Uuid;

use crate::app::App;
use crate::auth::challenge;
use crate::auth::{basic_credentials, client_ip};
use crate::error::{cause_chain, harbor_body, oci_body, GatewayError};
use crate::http::{header, send, Reply, API_VERSION};
use crate::metrics::{self, Finished, InFlight, RouteClass};
use crate::upstream::passthrough::Forward;
use crate::v2::Answer;
use crate::{api, token_endpoint, ui, v2};
use berth_policy::{authorize, Action, Decision, Resource, Subject};

/// Unread request bodies up to this size are read and dropped before an
/// early error response rather than cutting the connection.
const DRAIN_LIMIT: u64 = 8 * 1024 * 1024;

pub struct Gateway {
    pub app: Arc<App>,
}

/// Per-request state kept for the access log and the metrics.
pub struct RequestCtx {
    start: Instant,
    request_id: String,
    status: u16,
    class: RouteClass,
    /// Who the caller said they are: the Basic username (as given; the
    /// status says whether it was accepted), or the subject of a bearer
    /// token a handler verified. Never a password or a token.
    pub user: Option<String>,
    /// Set when the request goes to a fronted project's upstream.
    forward: Option<Box<Forward>>,
    _in_flight: InFlight,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            start: Instant::now(),
            request_id: Uuid::new_v4().simple().to_string(),
            status: 0,
            class: RouteClass::Other,
            user: None,
            forward: None,
            _in_flight: self.app.metrics.in_flight(),
        }
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        let path = session.req_header().uri.path();
        let head = session.req_header().method == Method::HEAD;
        ctx.class = RouteClass::of(path);
        ctx.user = header(session, "authorization")
            .and_then(basic_credentials)
            .map(|(user, _password)| user);
        let limited =
            path == api::PREFIX || path.starts_with("/api/v2.0/") || path.starts_with("/service/");
        let checked = self
            .app
            .limits
            .check_head(session.req_header())
            .and_then(|()| match limited.then(|| client_ip(&self.app, session)) {
                Some(Some(ip)) => self.app.limits.take(ip),
                _ => Ok(()),
            });
        let result = if let Err(e) = checked {
            Err(e)
        } else if path == "/v2" || path.starts_with("/v2/") {
            match v2::handle(&self.app, session).await {
                Ok(Answer::Reply(reply)) => Ok(reply),
                Ok(Answer::Forward(forward)) => {
                    ctx.forward = Some(forward);
                    if ctx.user.is_none() {
                        ctx.user = bearer_subject(&self.app, session);
                    }
                    return Ok(false);
                }
                Err(e) => Err(e),
            }
        } else if path == api::PREFIX || path.starts_with("/api/v2.0/") {
            api::handle(&self.app, session).await
        } else if path.starts_with("/service/") {
            token_endpoint::handle(&self.app, session).await
        } else if path == "/livez" {
            // The process is up and serving: nothing else is checked, so
            // a restart is never triggered by a dependency.
            Ok(text_reply(200, "ok\n"))
        } else if path == "/readyz" {
            Ok(readiness(&self.app).await)
        } else if path == metrics::PATH && self.app.metrics.on_main_listener {
            // On the public listener the metrics name projects, private
            // ones included: administrators only (Prometheus sends Basic
            // credentials with `basic_auth`). The separate metrics
            // listener is meant for an internal interface and is open.
            match metrics_caller(&self.app, session).await {
                Ok(()) => Ok(metrics::scrape(&self.app).await),
                Err(e) => Err(e),
            }
        } else if ui::owns(path) {
            Ok(ui::handle(&self.app, session).await)
        } else {
            Err(GatewayError::NotFound(path.to_owned()))
        };
        let reply = match result {
            Ok(reply) => reply,
            Err(e) => error_reply(&self.app, session, &e, ctx).await,
        };
        ctx.status = reply.status;
        if ctx.user.is_none() {
            ctx.user = bearer_subject(&self.app, session);
        }
        let reply = reply
            .header(API_VERSION.0, API_VERSION.1)
            .header("X-Request-Id", ctx.request_id.clone());
        send(session, reply, head, &self.app.read_pool).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        // Only fronted projects' requests get here; everything else was
        // answered in request_filter.
        match &ctx.forward {
            Some(f) => Ok(Box::new(f.peer())),
            None => Err(Error::explain(
                ErrorType::InternalError,
                "berth has no upstream for this request",
            )),
        }
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        match &ctx.forward {
            Some(f) => f.request(upstream_request),
            None => Ok(()),
        }
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let Some(f) = &ctx.forward else {
            return Ok(());
        };
        let repo = f.local_repo.clone();
        f.response(&self.app, upstream_response, || {
            challenge(
                &self.app,
                session,
                Some(&format!("repository:{repo}:pull")),
                Some("invalid_token"),
            )
        })?;
        upstream_response.insert_header(API_VERSION.0, API_VERSION.1)?;
        upstream_response.insert_header("X-Request-Id", ctx.request_id.as_str())?;
        ctx.status = upstream_response.status.as_u16();
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let registry = ctx
            .forward
            .as_ref()
            .map_or_else(|| "upstream".to_owned(), |f| f.endpoint.name.clone());
        tracing::warn!(request_id = %ctx.request_id, registry = %registry, error = %e, "forwarding to the upstream failed");
        let gone = matches!(e.esource(), pingora::ErrorSource::Downstream);
        if gone || session.response_written().is_some() {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        let err = GatewayError::UpstreamUnreachable {
            registry,
            detail: e.etype().as_str().to_owned(),
            what: session.req_header().uri.path().to_owned(),
        };
        let p = err.present();
        ctx.status = p.status;
        let reply = Reply::new(p.status)
            .header("Content-Type", "application/json")
            .header(API_VERSION.0, API_VERSION.1)
            .header("X-Request-Id", ctx.request_id.clone())
            .bytes(oci_body(p.code, &p.message).into());
        session.set_keepalive(None);
        let _ = send(session, reply, false, &self.app.read_pool).await;
        FailToProxy {
            error_code: p.status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let duration = ctx.start.elapsed();
        if let Some(mut record) = ctx.forward.as_mut().and_then(|f| f.audit.take()) {
            record.success = e.is_none() && (200..400).contains(&ctx.status);
            self.app.audit.record(record);
        }
        let downstream = session.as_downstream();
        let bytes_in = downstream.body_bytes_read() as u64;
        let bytes_out = downstream.body_bytes_sent() as u64;
        let status = match ctx.status {
            0 => session.response_written().map_or(0, |r| r.status.as_u16()),
            status => status,
        };
        let req = session.req_header();
        self.app.metrics.record(&Finished {
            class: ctx.class,
            method: &req.method,
            status,
            duration,
            bytes_in,
            bytes_out,
        });
        access_log(&Access {
            request_id: Some(&ctx.request_id),
            method: &req.method,
            path: req.uri.path(),
            class: ctx.class,
            status,
            user: ctx.user.as_deref(),
            bytes_in,
            bytes_out,
            duration,
            error: e,
        });
    }
}

/// One line of the access log.
pub struct Access<'a> {
    /// Also sent to the client as `X-Request-Id`.
    pub request_id: Option<&'a str>,
    pub method: &'a Method,
    /// The path only: queries are left out.
    pub path: &'a str,
    pub class: RouteClass,
    pub status: u16,
    pub user: Option<&'a str>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration: Duration,
    pub error: Option<&'a Error>,
}

/// Writes the access log line (target `access`; JSON or text as
/// `[log] format` says). Headers are never logged: they carry passwords
/// and tokens.
pub fn access_log(a: &Access) {
    tracing::info!(
        target: "access",
        request_id = a.request_id,
        method = %a.method,
        path = %a.path,
        route = a.class.as_str(),
        status = a.status,
        user = a.user,
        bytes_in = a.bytes_in,
        bytes_out = a.bytes_out,
        duration_ms = a.duration.as_secs_f64() * 1000.0,
        error = a.error.map(|e| e.to_string()),
        "request"
    );
}

/// The subject of the request's bearer token if a handler verified it
/// (looked up in the token cache; nothing is verified here).
fn bearer_subject(app: &App, session: &Session) -> Option<String> {
    let value = header(session, "authorization")?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    app.tokens.verified_subject(token.trim())
}

fn text_reply(status: u16, text: &str) -> Reply {
    Reply::new(status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Cache-Control", "no-store")
        .bytes(text.to_owned().into())
}

/// `/readyz`: 200 when the database answers and the blob store takes
/// writes; 503 naming what failed otherwise (the cause goes to the log,
/// not to an unauthenticated caller).
async fn readiness(app: &App) -> Reply {
    let (database, storage) =
        tokio::join!(app.registry.meta().ping(), app.registry.probe_storage());
    let mut failed = Vec::new();
    // Reported, but still ready: pulls are served from a full disk.
    let mut warnings: Vec<String> = crate::disk::low(app)
        .into_iter()
        .map(|s| format!("storage: low on space: {s}\n"))
        .collect();
    if let Err(e) = database {
        tracing::warn!(error = %cause_chain(&e), "readiness: the database did not answer");
        failed.push("database: not answering\n".to_owned());
    }
    match storage {
        Ok(()) => {}
        Err(e) if e.is_storage_full() => {
            tracing::warn!(error = %cause_chain(&e), "readiness: the blob store is full");
            warnings.push("storage: full: pushes fail until space is freed\n".to_owned());
        }
        Err(e) => {
            tracing::warn!(error = %cause_chain(&e), "readiness: the blob store does not take writes");
            failed.push("storage: not writable\n".to_owned());
        }
    }
    if failed.is_empty() {
        text_reply(200, &format!("ok\n{}", warnings.concat()))
    } else {
        failed.extend(warnings);
        text_reply(503, &failed.concat())
    }
}

/// Whether the caller may scrape `/metrics` here, through policy.
async fn metrics_caller(app: &App, session: &Session) -> Result<(), GatewayError> {
    let subject = match header(session, "authorization").and_then(basic_credentials) {
        Some((user, password)) => app
            .login
            .login(&user, &password, client_ip(app, session))
            .await?
            .subject(),
        None => Subject::Anonymous,
    };
    match authorize(&subject, Action::ReadMetrics, Resource::System) {
        Decision::Allow => Ok(()),
        Decision::NeedsLogin => Err(GatewayError::MetricsLogin),
        Decision::Deny(why) | Decision::Hidden(why) => Err(GatewayError::Denied(why)),
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
    // A body that could not be read (malformed chunking, among others)
    // leaves no known end to the request: what follows on the connection
    // must never be read as another request. Pingora counts such a body as
    // done, so the connection is closed here.
    if matches!(e, GatewayError::BodyUnreadable { .. }) {
        session.set_keepalive(None);
    } else if !session.as_downstream_mut().is_body_done() {
        let waiting =
            header(session, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        let too_large = header(session, "content-length")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|len| len > DRAIN_LIMIT);
        // A body cut off for its slowness is not waited for again.
        let too_slow = matches!(e, GatewayError::BodyTooSlow { .. });
        if too_slow || waiting || too_large || !drain_body(session).await {
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
