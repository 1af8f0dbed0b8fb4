//! The audit log: what it records from real traffic, and that a clean
//! shutdown commits every record it was handed.

use std::time::{Duration, Instant};

use berth_tests::{Berth, Image, Registry};
use reqwest::blocking::Client;
use serde_json::Value;

/// GET an API path as admin: (X-Total-Count, body).
fn api(berth: &Berth, path: &str) -> (i64, Value) {
    let resp = Client::new()
        .get(format!("{}{path}", berth.url()))
        .basic_auth("admin", Some(berth.admin_password()))
        .send()
        .expect("API request");
    assert_eq!(resp.status(), 200, "{path}");
    let total = resp
        .headers()
        .get("x-total-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    (total, resp.json().expect("JSON"))
}

/// Polls until `f` holds; records are written off the request path.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn a_clean_shutdown_commits_every_record() {
    let mut berth = Berth::start();
    let reg = Registry::with_basic_auth(&berth.url(), "admin", berth.admin_password());
    let image = Image::random(1);
    reg.push_image("library/app", "v1", &image);
    let pulls = 300;
    for _ in 0..pulls {
        assert_eq!(reg.get_manifest("library/app", "v1").status(), 200);
    }
    // Straight to shutdown: whatever is still queued must be written.
    berth.stop();
    berth.restart();
    let (total, page) = api(
        &berth,
        "/api/v2.0/audit-logs?q=operation%3Dpull&page_size=1",
    );
    assert_eq!(total, pulls, "pull records after restart");
    assert_eq!(page[0]["username"], "admin");
    assert_eq!(page[0]["resource"], "library/app:v1");
    assert_eq!(page[0]["resource_type"], "artifact");
    let (pushes, page) = api(&berth, "/api/v2.0/audit-logs?q=operation%3Dpush");
    assert_eq!(pushes, 1, "{page}");
    assert_eq!(page[0]["resource"], "library/app:v1");
    // The pulls also count in the repository's statistics.
    let (_, repo) = api(&berth, "/api/v2.0/projects/library/repositories/app");
    assert_eq!(repo["pull_count"], pulls, "{repo}");
}

#[test]
fn logins_denials_and_deletes_are_recorded_with_their_outcome() {
    let berth = Berth::start();
    let url = berth.url();
    let http = Client::new();
    // A failed and a successful login through the token service.
    let token = |user: &str, pw: &str| {
        http.get(format!("{url}/service/token?service=berth"))
            .basic_auth(user, Some(pw))
            .send()
            .expect("token request")
            .status()
            .as_u16()
    };
    assert_eq!(token("admin", "not-the-password"), 401);
    assert_eq!(token("admin", berth.admin_password()), 200);
    // A push refused because the project does not exist.
    let reg = Registry::with_basic_auth(&url, "admin", berth.admin_password());
    let resp = reg
        .http()
        .put(reg.url("/v2/nope/app/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(Image::random(1).manifest.data.clone())
        .send()
        .expect("PUT manifest");
    assert_eq!(resp.status(), 403);
    // A delete that works.
    let image = Image::random(1);
    reg.push_image("library/gone", "v1", &image);
    let del = reg
        .http()
        .delete(reg.url(&format!(
            "/v2/library/gone/manifests/{}",
            image.manifest.digest
        )))
        .send()
        .expect("DELETE manifest");
    assert_eq!(del.status(), 202);

    let find = |q: &str| api(&berth, &format!("/api/v2.0/audit-logs?q={q}&page_size=100")).1;
    eventually("login records", || {
        find("operation%3Dlogin").as_array().map_or(0, Vec::len) == 2
    });
    let logins = find("operation%3Dlogin");
    let outcomes: Vec<bool> = logins
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["operation_result"].as_bool().expect("operation_result"))
        .collect();
    assert_eq!(outcomes, [true, false], "newest first: {logins}");
    eventually("the refused push", || {
        find("operation%3Dpush%2Cresource%3D~nope/app")
            .as_array()
            .is_some_and(|a| a.len() == 1 && a[0]["operation_result"] == false)
    });
    eventually("the delete", || {
        find("operation%3Ddelete").as_array().is_some_and(|a| {
            a.len() == 1
                && a[0]["resource"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("library/gone@sha256:"))
        })
    });
    // The project's own log holds its events only.
    let (_, library) = api(&berth, "/api/v2.0/projects/library/logs?page_size=100");
    assert!(library
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["resource"].as_str().unwrap_or("").starts_with("library/")));
}
