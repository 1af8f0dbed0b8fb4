//! The separate `/metrics` listener (`[metrics] listen`): plain HTTP that
//! answers `GET /metrics` and 404 for anything else, so the registry's own
//! port can stay public while scrapes stay on an internal address.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::http::Method;
use pingora::protocols::http::ServerSession;
use pingora::services::listening::Service;

use super::{Finished, RouteClass, PATH};
use crate::app::App;
use crate::proxy::{access_log, Access};

struct MetricsOnly {
    app: Arc<App>,
}

/// A service that serves `/metrics` on `addr` (IP:PORT); for
/// `Server::add_service`.
pub fn metrics_service(app: Arc<App>, addr: &str) -> impl pingora::services::Service {
    let mut service = Service::new("berth metrics".to_owned(), MetricsOnly { app });
    service.add_tcp(addr);
    service
}

#[async_trait]
impl ServeHttp for MetricsOnly {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let start = Instant::now();
        let _in_flight = self.app.metrics.in_flight();
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_owned();
        // A scrape has no body; read any so the connection can be reused.
        let _ = session.drain_request_body().await;
        let (status, content_type, body) =
            if path == PATH && matches!(method, Method::GET | Method::HEAD) {
                (
                    200,
                    format!("{}; charset=utf-8", prometheus::TEXT_FORMAT),
                    self.app.metrics.render().await,
                )
            } else if path == PATH {
                (
                    405,
                    "text/plain; charset=utf-8".to_owned(),
                    b"method not allowed\n".to_vec(),
                )
            } else {
                (
                    404,
                    "text/plain; charset=utf-8".to_owned(),
                    b"not found: this listener serves /metrics only\n".to_vec(),
                )
            };
        let class = RouteClass::of(&path);
        let bytes_out = if method == Method::HEAD {
            0
        } else {
            body.len() as u64
        };
        self.app.metrics.record(&Finished {
            class,
            method: &method,
            status,
            duration: start.elapsed(),
            bytes_in: session.body_bytes_read() as u64,
            bytes_out,
        });
        access_log(&Access {
            request_id: None,
            method: &method,
            path: &path,
            class,
            status,
            user: None,
            bytes_in: session.body_bytes_read() as u64,
            bytes_out,
            duration: start.elapsed(),
            error: None,
        });
        let len = body.len();
        http::Response::builder()
            .status(status)
            .header("Content-Type", content_type)
            .header("Content-Length", len)
            .body(body)
            .unwrap_or_default()
    }
}
