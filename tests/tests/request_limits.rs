//! Limits against abuse, each answered in the protocol's own error format:
//! the largest manifest (`server.max_manifest_size`, 413 SIZE_INVALID),
//! the largest request head (`server.max_header_size`, 431), and how fast
//! one client may call the token service and the API
//! (`server.rate_limit`, 429 with Retry-After: TOOMANYREQUESTS from the
//! token service, Harbor's TOO_MANY_REQUESTS from the API), while
//! `/v2` pulls and other clients go on.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use berth_tests::content::image_manifest;
use berth_tests::registry::{assert_error, header};
use berth_tests::{Api, Berth, Blob, Image};
use serde_json::Value;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[test]
fn a_manifest_over_the_limit_is_refused_and_one_under_it_is_stored() {
    let berth = Berth::start_with_env(&[("BERTH_SERVER__MAX_MANIFEST_SIZE", "2KiB")]);
    Api::admin(&berth).create_projects(&["team"]);
    let registry = berth.registry();
    let image = Image::random(1);
    for blob in image.blobs() {
        registry.push_blob("team/app", blob);
    }
    let small = image_manifest(&image.config, &[image.layers[0].blob.clone()]);
    assert!(small.len() < 2048);
    registry.push_manifest("team/app", "small", &Blob::new(small, OCI_MANIFEST));
    // The same layer listed many times: a valid manifest, only too large.
    let layers: Vec<Blob> = (0..20).map(|_| image.layers[0].blob.clone()).collect();
    let large = image_manifest(&image.config, &layers);
    assert!(large.len() > 2048, "{}", large.len());
    let resp = registry.put_manifest("team/app", "large", OCI_MANIFEST, &large);
    let body = assert_error(resp, 413, &["SIZE_INVALID"]);
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("2048"), "{message}");
    assert_eq!(
        registry.tags("team/app"),
        ["small"],
        "nothing of the large one was stored"
    );
}

/// Sends `head` as a raw request and returns the status line and body.
fn raw(berth: &Berth, head: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", berth.port())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[test]
fn request_heads_over_the_limit_get_431_and_berth_keeps_serving() {
    let berth = Berth::start_with_env(&[("BERTH_SERVER__MAX_HEADER_SIZE", "8KiB")]);
    let big = "a".repeat(9000);
    let (status, body) = raw(
        &berth,
        &format!("GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"),
    );
    assert!(status.contains(" 431 "), "{status}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["errors"][0]["code"], "SIZE_INVALID", "{body}");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("server.max_header_size"));
    // The API answers in Harbor's error shape.
    let (status, body) = raw(
        &berth,
        &format!(
            "GET /api/v2.0/ping HTTP/1.1\r\nHost: x\r\nCookie: {big}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(status.contains(" 431 "), "{status}");
    assert!(body.contains("REQUEST_HEADER_FIELDS_TOO_LARGE"), "{body}");
    // Under the limit, the same request is served.
    let (status, _) = raw(
        &berth,
        &format!(
            "GET /api/v2.0/ping HTTP/1.1\r\nHost: x\r\nX-Ok: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(4000)
        ),
    );
    assert!(status.contains(" 200 "), "{status}");
    // A head larger than berth reads at all (1 MiB) ends the connection;
    // the server is unharmed.
    let (status, _) = raw(
        &berth,
        &format!(
            "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(2 << 20)
        ),
    );
    assert!(!status.contains(" 200 "), "{status}");
    assert_eq!(
        berth
            .registry()
            .http()
            .get(berth.registry().url("/v2/"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}

#[test]
fn one_client_over_its_rate_waits_and_others_go_on() {
    let berth = Berth::start_with_env(&[
        ("BERTH_SERVER__RATE_LIMIT", "2"),
        ("BERTH_SERVER__RATE_BURST", "5"),
    ]);
    let http = berth.registry().http().clone();
    let api = berth.registry().url("/api/v2.0/ping");
    let token = berth.registry().url("/service/token?service=berth");
    // The burst, then a refusal with when to come back.
    let mut refused = None;
    for _ in 0..20 {
        let resp = http.get(&api).send().unwrap();
        if resp.status().as_u16() == 429 {
            refused = Some(resp);
            break;
        }
        assert_eq!(resp.status().as_u16(), 200);
    }
    let resp = refused.expect("the API was never refused");
    let retry: u64 = header(&resp, "retry-after").unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry), "{retry}");
    let body: Value = resp.json().unwrap();
    assert_eq!(body["errors"][0]["code"], "TOO_MANY_REQUESTS", "{body}");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("server.rate_limit"));
    // The token service shares the client's allowance, in its own format.
    let resp = http.get(&token).send().unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert!(header(&resp, "retry-after").is_some());
    let body: Value = resp.json().unwrap();
    assert_eq!(body["errors"][0]["code"], "TOOMANYREQUESTS", "{body}");
    // /v2 is not limited: a pull-heavy client is not slowed.
    for _ in 0..30 {
        let status = http
            .get(berth.registry().url("/v2/"))
            .send()
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 200);
    }
    // Another client (here: another loopback address) has its own.
    let other = reqwest::blocking::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap();
    let resp = other
        .get(format!("http://127.0.0.1:{}/api/v2.0/ping", berth.port()))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // Once its allowance refills, the first client is served again.
    let deadline = Instant::now() + Duration::from_secs(retry + 10);
    loop {
        let status = http.get(&api).send().unwrap().status().as_u16();
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
