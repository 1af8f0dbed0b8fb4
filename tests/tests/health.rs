//! Liveness, readiness and Harbor's health API: `/livez` while the process
//! serves, `/readyz` while the database answers and the blob store takes
//! writes, and `/api/v2.0/health` with an `ldap` component that follows a
//! real slapd going away.
#![allow(clippy::unwrap_used)]

#[path = "support/prom.rs"]
mod prom;
#[path = "../../auth/tests/support/slapd.rs"]
mod slapd;

use std::time::{Duration, Instant};

use berth_tests::server::POLL;
use berth_tests::Berth;
use reqwest::blocking::Client;
use serde_json::Value;
use slapd::{Slapd, PEOPLE_DN, READER_DN};

fn get(url: &str) -> (u16, String) {
    let resp = Client::new().get(url).send().unwrap();
    (resp.status().as_u16(), resp.text().unwrap())
}

fn health(berth: &Berth) -> Value {
    let (status, body) = get(&(berth.url() + "/api/v2.0/health"));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn component<'a>(health: &'a Value, name: &str) -> Option<&'a Value> {
    health["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
}

/// Polls `f` until it returns `Some`, for at most `within`.
fn wait_for<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}

#[test]
fn livez_and_readyz_answer_without_credentials() {
    let berth = Berth::start();
    assert_eq!(get(&(berth.url() + "/livez")), (200, "ok\n".to_owned()));
    assert_eq!(get(&(berth.url() + "/readyz")), (200, "ok\n".to_owned()));
    let head = Client::new().head(berth.url() + "/readyz").send().unwrap();
    assert_eq!(head.status(), 200);

    // Without LDAP there is no ldap component.
    let h = health(&berth);
    assert_eq!(h["status"], "healthy", "{h}");
    assert!(component(&h, "ldap").is_none(), "{h}");

    // A blob store that cannot take writes (its uploads directory replaced
    // by a file, which stops root too): not ready, and says why; alive.
    let uploads = berth.data_dir().join("blobs").join("_uploads");
    let aside = berth.data_dir().join("uploads-aside");
    std::fs::rename(&uploads, &aside).unwrap();
    std::fs::write(&uploads, b"not a directory").unwrap();
    let (status, body) = get(&(berth.url() + "/readyz"));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("storage"), "{body}");
    assert!(!body.contains("database"), "{body}");
    assert_eq!(get(&(berth.url() + "/livez")).0, 200);
    std::fs::remove_file(&uploads).unwrap();
    std::fs::rename(&aside, &uploads).unwrap();
    assert_eq!(get(&(berth.url() + "/readyz")), (200, "ok\n".to_owned()));
}

#[test]
fn health_reports_the_ldap_directory_and_its_loss() {
    let mut slapd = Slapd::start();
    let url = slapd.url();
    let berth = Berth::start_with_env(&[
        ("BERTH_AUTH__MODE", "ldap"),
        ("BERTH_LDAP__URL", &url),
        ("BERTH_LDAP__SEARCH_DN", READER_DN),
        ("BERTH_LDAP__SEARCH_PASSWORD", slapd::READER_PASSWORD),
        ("BERTH_LDAP__BASE_DN", PEOPLE_DN),
        ("BERTH_LDAP__TIMEOUT", "2s"),
    ]);

    let h = health(&berth);
    assert_eq!(h["status"], "healthy", "{h}");
    let ldap = component(&h, "ldap").unwrap_or_else(|| panic!("no ldap component: {h}"));
    assert_eq!(ldap["status"], "healthy", "{h}");
    assert!(ldap.get("error").is_none(), "{h}");
    // The check is a bind as the search account.
    assert!(slapd.bind_count(READER_DN) >= 1);

    slapd.stop();
    let h = wait_for(Duration::from_secs(15), "ldap to turn unhealthy", || {
        let h = health(&berth);
        (component(&h, "ldap").unwrap()["status"] == "unhealthy").then_some(h)
    });
    assert_eq!(h["status"], "unhealthy", "{h}");
    let ldap = component(&h, "ldap").unwrap();
    let error = ldap["error"].as_str().unwrap();
    assert!(error.contains("unreachable"), "{error}");
    // Details stay in the log; the endpoint needs no credentials.
    assert!(!error.contains(&url), "{error}");
    for name in ["database", "storage"] {
        assert_eq!(component(&h, name).unwrap()["status"], "healthy", "{h}");
    }
    // Readiness is about this process's own state, not the directory's.
    assert_eq!(get(&(berth.url() + "/readyz")).0, 200);

    let m = prom::scrape(&(berth.url() + "/metrics"), Some(berth.admin_credentials()));
    let requests = |result| m.value("berth_ldap_requests_total", &[("result", result)]);
    assert!(requests("success") >= 1.0);
    assert!(requests("unavailable") >= 1.0);
    assert!(m.value("berth_ldap_request_duration_seconds_count", &[]) >= 2.0);
}
