//! `/metrics`: after a push and a pull, the exposition (parsed by the
//! Prometheus project's Python parser) shows requests by route class and
//! status, latency and upload histograms, bytes in and out, bytes stored
//! per project and the auth caches; the access log names the user but no
//! secret; with `[metrics] listen`, only that address serves it.
#![allow(clippy::unwrap_used)]

#[path = "support/prom.rs"]
mod prom;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use berth_tests::registry::describe;
use berth_tests::server::POLL;
use berth_tests::tokens::{fetch_token, BearerClient};
use berth_tests::{Api, Berth, Image};
use prom::{scrape, Scrape};

/// Label values of the request metrics are classes, never paths.
const ROUTE_CLASSES: &[&str] = &[
    "v2_base",
    "v2_catalog",
    "v2_tags",
    "v2_manifest",
    "v2_blob",
    "v2_upload",
    "v2_referrers",
    "token",
    "api",
    "metrics",
    "health",
    "other",
];

/// Checks a histogram's shape: buckets never decrease, `+Inf` equals the
/// count.
fn assert_histogram(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) {
    let bucket = format!("{name}_bucket");
    let buckets: Vec<f64> = scrape.find(&bucket, labels).map(|s| s.value).collect();
    assert!(!buckets.is_empty(), "{name}{labels:?} has no buckets");
    assert!(
        buckets.windows(2).all(|w| w[0] <= w[1]),
        "{name}{labels:?} buckets decrease: {buckets:?}"
    );
    let mut inf = labels.to_vec();
    inf.push(("le", "+Inf"));
    assert_eq!(
        scrape.value(&bucket, &inf),
        scrape.value(&format!("{name}_count"), labels),
        "{name}{labels:?}: +Inf bucket and count differ"
    );
}

#[test]
fn push_and_pull_move_the_counters_and_histograms() {
    let berth = Berth::start();
    Api::admin(&berth).create_project("team", false);
    let registry = berth.registry();
    let image = Image::random(3);
    let blobs = image.blobs();
    let blob_bytes: u64 = blobs.iter().map(|b| b.size()).sum();
    registry.push_image("team/app", "v1", &image);
    registry.assert_image("team/app", "v1", &image);
    // A token used twice: one signature check, then the cache.
    let token = fetch_token(
        &berth.url(),
        Some(berth.admin_credentials()),
        &["repository:team/app:pull"],
    );
    let bearer = BearerClient::new(&berth.url(), &token);
    for _ in 0..2 {
        let resp = bearer.get("/v2/team/app/manifests/v1");
        assert_eq!(resp.status(), 200, "{}", describe(resp));
    }
    let resp = reqwest::blocking::get(berth.url() + "/no/such/page").unwrap();
    assert_eq!(resp.status(), 404);

    // On the main listener the metrics name projects: administrators only.
    let anonymous = reqwest::blocking::get(berth.url() + "/metrics").unwrap();
    assert_eq!(
        anonymous.status(),
        401,
        "anonymous scrape of the main listener"
    );
    let m = scrape(&(berth.url() + "/metrics"), Some(berth.admin_credentials()));
    let n = blobs.len() as f64;
    let req = "berth_http_requests_total";
    assert_eq!(m.kind_of(req), Some("counter"));
    let count = |route, method, status| {
        m.sum(
            req,
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert!(count("v2_base", "GET", "200") >= 1.0);
    assert!(count("v2_upload", "POST", "202") >= n);
    assert!(count("v2_upload", "PUT", "201") >= n);
    assert!(count("v2_manifest", "PUT", "201") >= 1.0);
    assert!(count("v2_manifest", "GET", "200") >= 3.0);
    assert!(count("v2_blob", "GET", "200") >= n);
    assert!(count("token", "GET", "200") >= 1.0);
    assert!(count("api", "POST", "201") >= 1.0);
    assert!(count("other", "GET", "404") >= 1.0);
    for s in m.find(req, &[]) {
        let route = s.label("route").unwrap();
        assert!(ROUTE_CLASSES.contains(&route), "route label {route:?}");
    }
    assert!(
        m.0.iter()
            .all(|s| s.labels.iter().all(|(_, v)| !v.contains("team/app"))),
        "a label carries a repository path"
    );

    let duration = "berth_http_request_duration_seconds";
    assert_eq!(m.kind_of(duration), Some("histogram"));
    assert_histogram(&m, duration, &[("route", "v2_blob"), ("method", "GET")]);
    assert!(
        m.value(
            &format!("{duration}_count"),
            &[("route", "v2_blob"), ("method", "GET")]
        ) >= n
    );

    let uploads = "berth_upload_duration_seconds";
    assert_eq!(m.kind_of(uploads), Some("histogram"));
    assert_histogram(&m, uploads, &[]);
    assert!(m.value(&format!("{uploads}_count"), &[]) >= n);
    assert!(m.value(&format!("{uploads}_sum"), &[]) > 0.0);

    let bytes_out = m.value("berth_http_response_bytes_total", &[("route", "v2_blob")]);
    assert!(
        bytes_out >= blob_bytes as f64,
        "{bytes_out} bytes out, {blob_bytes} pulled"
    );
    let bytes_in = m.value("berth_http_request_bytes_total", &[("route", "v2_upload")]);
    assert!(
        bytes_in >= blob_bytes as f64,
        "{bytes_in} bytes in, {blob_bytes} pushed"
    );
    let stored = m.value("berth_storage_bytes", &[("project", "team")]);
    assert!(
        stored >= blob_bytes as f64,
        "{stored} bytes stored, {blob_bytes} pushed"
    );
    assert_eq!(
        m.value("berth_storage_bytes", &[("project", "library")]),
        0.0
    );

    // This scrape is in flight while it is rendered.
    assert!(m.value("berth_http_requests_in_flight", &[]) >= 1.0);
    assert!(m.value("berth_token_cache_hits_total", &[]) >= 1.0);
    assert!(m.value("berth_token_cache_misses_total", &[]) >= 1.0);
    assert!(m.value("berth_login_cache_hits_total", &[]) >= 1.0);
    assert!(m.value("berth_login_cache_misses_total", &[]) >= 1.0);
    let pool = m.sum("berth_db_pool_connections", &[]);
    assert!(pool >= 1.0, "{pool} database connections");
    for state in ["idle", "in_use"] {
        m.value("berth_db_pool_connections", &[("state", state)]);
    }
    for result in ["success", "rejected", "unavailable", "error"] {
        assert_eq!(
            m.value("berth_ldap_requests_total", &[("result", result)]),
            0.0
        );
    }
    assert_eq!(
        m.value("berth_ldap_request_duration_seconds_count", &[]),
        0.0
    );
    for name in [
        "berth_pull_through_hits_total",
        "berth_pull_through_misses_total",
        "berth_pull_through_upstream_errors_total",
    ] {
        assert_eq!(m.value(name, &[]), 0.0, "{name}");
    }
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(m.value("berth_build_info", &[("version", version)]), 1.0);

    // The next scrape counts the first one.
    let again = scrape(&(berth.url() + "/metrics"), Some(berth.admin_credentials()));
    assert!(
        again.sum(
            req,
            &[("route", "metrics"), ("method", "GET"), ("status", "200")]
        ) >= 1.0
    );

    // The access log: one line per request with route, user and bytes;
    // no password, no token, no Authorization header.
    let log = berth.log_tail(5000);
    let blob_line = log
        .lines()
        .find(|l| l.contains("v2_blob") && l.contains("GET") && l.contains("status=200"))
        .unwrap_or_else(|| panic!("no access log line for a blob GET:\n{log}"));
    assert!(blob_line.contains("admin"), "{blob_line}");
    assert!(blob_line.contains("bytes_out="), "{blob_line}");
    assert!(blob_line.contains("request_id="), "{blob_line}");
    let bearer_line = log
        .lines()
        .rev()
        .find(|l| l.contains("v2_manifest") && l.contains("status=200"))
        .unwrap();
    assert!(bearer_line.contains("admin"), "{bearer_line}");
    for secret in [berth.admin_password(), token.as_str()] {
        assert!(!log.contains(secret), "the log holds a secret");
    }
    assert!(!log.to_ascii_lowercase().contains("authorization"));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_separate_metrics_listener_is_the_only_place_metrics_are_served() {
    let addr = format!("127.0.0.1:{}", free_port());
    let berth = Berth::start_with_env(&[("BERTH_METRICS__LISTEN", &addr)]);
    let url = format!("http://{addr}/metrics");
    // Both listeners start together; the harness waited for the main one.
    let deadline = Instant::now() + Duration::from_secs(10);
    let http = reqwest::blocking::Client::new();
    loop {
        match http.get(&url).send() {
            Ok(resp) if resp.status() == 200 => break,
            other if Instant::now() > deadline => panic!("GET {url}: {other:?}"),
            _ => std::thread::sleep(POLL),
        }
    }
    let m = scrape(&url, None);
    assert_eq!(
        m.value(
            "berth_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    // The main listener's requests are counted there.
    assert!(
        m.sum(
            "berth_http_requests_total",
            &[("route", "v2_base"), ("status", "200")]
        ) >= 1.0
    );

    let main = reqwest::blocking::get(berth.url() + "/metrics").unwrap();
    assert_eq!(main.status(), 404, "/metrics on the main listener");
    let with_login = berth
        .registry()
        .http()
        .get(berth.url() + "/metrics")
        .send()
        .unwrap();
    assert_eq!(with_login.status(), 404, "/metrics on the main listener");
    for path in ["/v2/", "/", "/api/v2.0/ping"] {
        let resp = reqwest::blocking::get(format!("http://{addr}{path}")).unwrap();
        assert_eq!(resp.status(), 404, "{path} on the metrics listener");
    }
    // A request is counted in its logging phase, just after its answer
    // went out: poll until the last ones are in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let m = scrape(&url, None);
        let ok = m.sum(
            "berth_http_requests_total",
            &[("route", "metrics"), ("method", "GET"), ("status", "200")],
        ) >= 2.0
            && m.sum(
                "berth_http_requests_total",
                &[("route", "metrics"), ("status", "404")],
            ) >= 2.0;
        if ok {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the metrics listener's own requests were not counted"
        );
        std::thread::sleep(berth_tests::server::POLL);
    }
}
