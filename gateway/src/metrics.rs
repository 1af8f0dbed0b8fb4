//! Prometheus metrics, `GET /metrics` in the text exposition format 0.0.4:
//! on the main listener, or only on `[metrics] listen` when that is set.
//!
//! One registry, owned by [`Metrics`]. Requests are recorded once each, in
//! the logging phase, by route class (never by path: repository names would
//! make the series unbounded). Recording is atomic adds on handles looked up
//! once per label set. What other crates count (token and login caches,
//! LDAP requests, the database pool, bytes stored) is read when scraped:
//! see `sampled`.
//!
//! - `sampled`: the scrape-time collector.
//! - `listener`: the separate `/metrics` listener.

mod listener;
mod sampled;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pingora::http::Method;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::app::App;
use crate::http::Reply;
pub use listener::metrics_service;
pub use sampled::Sampled;

/// Where `/metrics` is served.
pub const PATH: &str = "/metrics";

/// Request latency buckets (seconds): from cached manifest hits to large
/// blob transfers.
const REQUEST_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Upload completion buckets (seconds): verifying the digest and committing
/// a blob of a few bytes to a few gigabytes.
const UPLOAD_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// What kind of request, as the `route` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    V2Base,
    V2Catalog,
    V2Tags,
    V2Manifest,
    V2Blob,
    V2Upload,
    V2Referrers,
    Token,
    Api,
    Metrics,
    Health,
    Other,
}

impl RouteClass {
    const COUNT: usize = 12;

    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::V2Base => "v2_base",
            RouteClass::V2Catalog => "v2_catalog",
            RouteClass::V2Tags => "v2_tags",
            RouteClass::V2Manifest => "v2_manifest",
            RouteClass::V2Blob => "v2_blob",
            RouteClass::V2Upload => "v2_upload",
            RouteClass::V2Referrers => "v2_referrers",
            RouteClass::Token => "token",
            RouteClass::Api => "api",
            RouteClass::Metrics => "metrics",
            RouteClass::Health => "health",
            RouteClass::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Classifies a path without parsing names or digests: the fixed tail
    /// of a `/v2` path says what it is, as in `route::parse`.
    pub fn of(path: &str) -> RouteClass {
        if path == "/v2" || path == "/v2/" {
            return RouteClass::V2Base;
        }
        if let Some(rest) = path.strip_prefix("/v2/") {
            return v2_class(rest);
        }
        if path == crate::api::PREFIX || path.starts_with("/api/v2.0/") {
            return RouteClass::Api;
        }
        if path.starts_with("/service/") {
            return RouteClass::Token;
        }
        match path {
            PATH => RouteClass::Metrics,
            "/livez" | "/readyz" => RouteClass::Health,
            _ => RouteClass::Other,
        }
    }
}

fn v2_class(rest: &str) -> RouteClass {
    if rest == "_catalog" {
        return RouteClass::V2Catalog;
    }
    let mut tail = rest.rsplit('/');
    let last = tail.next().unwrap_or("");
    let second = tail.next();
    let third = tail.next();
    // A name needs at least one segment before the endpoint's tail.
    let named = |fixed: usize| rest.split('/').count() > fixed;
    match (third, second, last) {
        (Some("blobs"), Some("uploads"), _) if named(3) => RouteClass::V2Upload,
        (_, Some("blobs"), "uploads") if named(2) => RouteClass::V2Upload,
        (_, Some("tags"), "list") if named(2) => RouteClass::V2Tags,
        (_, Some("blobs"), _) if named(2) => RouteClass::V2Blob,
        (_, Some("manifests"), _) if named(2) => RouteClass::V2Manifest,
        (_, Some("referrers"), _) if named(2) => RouteClass::V2Referrers,
        _ => RouteClass::Other,
    }
}

/// The `method` label: the standard methods, anything else `OTHER` (a
/// client may send any token as a method).
fn method_label(method: &Method) -> (&'static str, usize) {
    match *method {
        Method::GET => ("GET", 0),
        Method::HEAD => ("HEAD", 1),
        Method::PUT => ("PUT", 2),
        Method::POST => ("POST", 3),
        Method::PATCH => ("PATCH", 4),
        Method::DELETE => ("DELETE", 5),
        Method::OPTIONS => ("OPTIONS", 6),
        _ => ("OTHER", 7),
    }
}
const METHODS: usize = 8;

/// One finished request, as the logging phase saw it.
pub struct Finished<'a> {
    pub class: RouteClass,
    pub method: &'a Method,
    pub status: u16,
    pub duration: Duration,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// The registry and the handles the request path records into.
pub struct Metrics {
    registry: Registry,
    /// Whether the main listener answers `/metrics` (false when
    /// `[metrics] listen` is set).
    pub on_main_listener: bool,
    requests: IntCounterVec,
    durations: HistogramVec,
    /// Per (route, method): looked up in `durations` on first use, so
    /// unused pairs add no series.
    duration_handles: Vec<OnceLock<Histogram>>,
    in_flight: IntGauge,
    request_bytes: IntCounterVec,
    response_bytes: IntCounterVec,
    byte_handles: Vec<OnceLock<(IntCounter, IntCounter)>>,
    uploads: Histogram,
    pull_through: PullThrough,
    /// Handed to the replicator, which counts into them.
    pub replication: ReplicationCounters,
    sampled: Arc<Sampled>,
}

/// What replication moved, per policy (by name).
#[derive(Clone)]
pub struct ReplicationCounters {
    pub bytes: IntCounterVec,
    pub artifacts: IntCounterVec,
    pub failures: IntCounterVec,
}

struct PullThrough {
    hits: IntCounter,
    misses: IntCounter,
    shared: IntCounter,
    upstream_errors: IntCounter,
}

/// Keeps the in-flight gauge up while a request lives; dropped with the
/// request's context however the request ends.
pub struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Registers every metric. Fails only on a bad name or a duplicate,
    /// which is a bug here.
    pub fn new(on_main_listener: bool, sampled: Sampled) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "berth_http_requests_total",
                "HTTP requests answered, by route class, method and status.",
            ),
            &["route", "method", "status"],
        )?;
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "berth_http_request_duration_seconds",
                "Time from the request's arrival to its last response byte, by route class and \
                 method.",
            )
            .buckets(REQUEST_BUCKETS.to_vec()),
            &["route", "method"],
        )?;
        let in_flight = IntGauge::new(
            "berth_http_requests_in_flight",
            "HTTP requests being handled now.",
        )?;
        let request_bytes = IntCounterVec::new(
            Opts::new(
                "berth_http_request_bytes_total",
                "Request body bytes read, by route class.",
            ),
            &["route"],
        )?;
        let response_bytes = IntCounterVec::new(
            Opts::new(
                "berth_http_response_bytes_total",
                "Response body bytes sent, by route class.",
            ),
            &["route"],
        )?;
        let uploads = Histogram::with_opts(
            HistogramOpts::new(
                "berth_upload_duration_seconds",
                "Time to complete a blob upload (verify the digest, commit the blob), per \
                 completed upload.",
            )
            .buckets(UPLOAD_BUCKETS.to_vec()),
        )?;
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let pull_through = PullThrough {
            hits: counter(
                "berth_pull_through_hits_total",
                "Pull-through cache requests answered from the local store.",
            )?,
            misses: counter(
                "berth_pull_through_misses_total",
                "Pull-through cache requests that went to the upstream for content.",
            )?,
            shared: counter(
                "berth_pull_through_shared_fetches_total",
                "Blob misses that joined a fetch already running instead of asking the upstream \
                 again.",
            )?,
            upstream_errors: counter(
                "berth_pull_through_upstream_errors_total",
                "Upstream registries unreachable, rate-limiting or erroring on a pull-through \
                 request.",
            )?,
        };
        let per_policy = |name: &str, help: &str| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(Opts::new(name, help), &["policy"])?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let replication = ReplicationCounters {
            bytes: per_policy(
                "berth_replication_bytes_total",
                "Blob bytes replication sent, by policy.",
            )?,
            artifacts: per_policy(
                "berth_replication_artifacts_total",
                "Artifacts replication copied (tags stored at the destination), by policy.",
            )?,
            failures: per_policy(
                "berth_replication_failed_tasks_total",
                "Replication tasks that failed, by policy.",
            )?,
        };
        let build_info = prometheus::IntGaugeVec::new(
            Opts::new("berth_build_info", "Always 1; the version is the label."),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registry.register(Box::new(build_info))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(durations.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(request_bytes.clone()))?;
        registry.register(Box::new(response_bytes.clone()))?;
        registry.register(Box::new(uploads.clone()))?;
        let sampled = Arc::new(sampled);
        registry.register(Box::new(SharedCollector(sampled.clone())))?;
        Ok(Metrics {
            registry,
            on_main_listener,
            requests,
            durations,
            duration_handles: (0..RouteClass::COUNT * METHODS)
                .map(|_| OnceLock::new())
                .collect(),
            in_flight,
            request_bytes,
            response_bytes,
            byte_handles: (0..RouteClass::COUNT).map(|_| OnceLock::new()).collect(),
            uploads,
            pull_through,
            replication,
            sampled,
        })
    }

    /// Counts a request as in flight until the guard is dropped.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Records one finished request.
    pub fn record(&self, r: &Finished) {
        let (method, m) = method_label(r.method);
        let route = r.class.as_str();
        let status = itoa_status(r.status);
        self.requests
            .with_label_values(&[route, method, status.as_str()])
            .inc();
        self.duration_handles[r.class.index() * METHODS + m]
            .get_or_init(|| self.durations.with_label_values(&[route, method]))
            .observe(r.duration.as_secs_f64());
        let (bytes_in, bytes_out) = self.byte_handles[r.class.index()].get_or_init(|| {
            (
                self.request_bytes.with_label_values(&[route]),
                self.response_bytes.with_label_values(&[route]),
            )
        });
        bytes_in.inc_by(r.bytes_in);
        bytes_out.inc_by(r.bytes_out);
    }

    /// Records a completed blob upload.
    pub fn upload_completed(&self, took: Duration) {
        self.uploads.observe(took.as_secs_f64());
    }

    pub fn pull_through_hit(&self) {
        self.pull_through.hits.inc();
    }

    pub fn pull_through_miss(&self) {
        self.pull_through.misses.inc();
    }

    pub fn pull_through_shared(&self) {
        self.pull_through.shared.inc();
    }

    pub fn pull_through_error(&self) {
        self.pull_through.upstream_errors.inc();
    }

    /// The text exposition, after refreshing what is sampled from the
    /// database (at most every `sampled::USAGE_TTL`).
    pub async fn render(&self) -> Vec<u8> {
        self.sampled.refresh().await;
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            // Only a metric the text format cannot express; the rest of
            // the output is still worth serving.
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// Three ASCII digits for a status code, without allocating.
struct StatusText([u8; 3]);

impl StatusText {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("000")
    }
}

fn itoa_status(status: u16) -> StatusText {
    let s = status.min(999);
    StatusText([
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ])
}

/// Lets the registry hold the collector that `Metrics` also refreshes.
struct SharedCollector(Arc<Sampled>);

impl prometheus::core::Collector for SharedCollector {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.0.collect()
    }
}

/// `GET /metrics`.
pub async fn scrape(app: &App) -> Reply {
    let body = app.metrics.render().await;
    Reply::new(200)
        .header(
            "Content-Type",
            format!("{}; charset=utf-8", prometheus::TEXT_FORMAT),
        )
        .bytes(body.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_classified_by_their_fixed_tail() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let cases = [
            ("/v2/", RouteClass::V2Base),
            ("/v2", RouteClass::V2Base),
            ("/v2/_catalog", RouteClass::V2Catalog),
            ("/v2/a/b/tags/list", RouteClass::V2Tags),
            ("/v2/a/b/c/manifests/latest", RouteClass::V2Manifest),
            (&format!("/v2/x/blobs/{d}"), RouteClass::V2Blob),
            ("/v2/x/blobs/uploads/", RouteClass::V2Upload),
            ("/v2/x/blobs/uploads", RouteClass::V2Upload),
            ("/v2/x/y/blobs/uploads/6f1d3c7e", RouteClass::V2Upload),
            (&format!("/v2/x/referrers/{d}"), RouteClass::V2Referrers),
            // A repository called `blobs`.
            ("/v2/blobs/manifests/v1", RouteClass::V2Manifest),
            ("/v2/manifests/latest", RouteClass::Other),
            ("/v2/x/whatever", RouteClass::Other),
            ("/service/token", RouteClass::Token),
            ("/api/v2.0/projects/x/repositories", RouteClass::Api),
            ("/api/v2.0", RouteClass::Api),
            ("/metrics", RouteClass::Metrics),
            ("/livez", RouteClass::Health),
            ("/readyz", RouteClass::Health),
            ("/", RouteClass::Other),
            ("/favicon.ico", RouteClass::Other),
        ];
        for (path, class) in cases {
            assert_eq!(RouteClass::of(path), class, "{path}");
        }
    }

    #[test]
    fn status_codes_become_three_digits() {
        assert_eq!(itoa_status(200).as_str(), "200");
        assert_eq!(itoa_status(404).as_str(), "404");
        assert_eq!(itoa_status(0).as_str(), "000");
    }

    #[test]
    fn classes_index_their_slots() {
        assert_eq!(RouteClass::Other.index(), RouteClass::COUNT - 1);
    }
}
