//! What slow, piled-up or tampered-with uploads may cost the registry:
//! slow bodies hold no thread and are cut off, sessions hold no file
//! descriptor and are capped per user, and the upload file (not memory)
//! decides what a session holds.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use berth_tests::content::sha256_digest;
use berth_tests::registry::{assert_error, base64, header, with_query};
use berth_tests::{Api, Berth, Blob, Registry};

fn setup_with_env(env: &[(&str, &str)]) -> (Berth, Registry) {
    let berth = Berth::start_with_env(env);
    Api::admin(&berth).create_projects(&["team"]);
    let registry = berth.registry();
    (berth, registry)
}

/// The path and query of an absolute upload URL.
fn path_of(berth: &Berth, url: &str) -> String {
    url.strip_prefix(&berth.url()).unwrap().to_owned()
}

/// A value of `/proc/<pid>/status` (`Threads`) of the berth process.
fn proc_status(berth: &Berth, key: &str) -> usize {
    let pid = berth.pid().unwrap();
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// Open file descriptors of the berth process.
fn open_fds(berth: &Berth) -> usize {
    let pid = berth.pid().unwrap();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Reads from `stream` until `"\r\n\r\n"` (the end of a response head).
fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => break,
            Err(e) => panic!(
                "reading a response head: {e} (so far: {:?})",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Sends a PATCH that declares 1 MiB, waits for `100 Continue` (the
/// handler has taken the request and opened the upload), then sends only
/// two bytes and stalls.
fn slow_patch(berth: &Berth, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(berth.host_port()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (user, password) = berth.admin_credentials();
    let auth = base64(format!("{user}:{password}").as_bytes());
    write!(
        stream,
        "PATCH {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\
         Expect: 100-continue\r\n\r\n",
        berth.host_port()
    )
    .unwrap();
    let head = read_head(&mut stream);
    assert!(
        head.starts_with("HTTP/1.1 100"),
        "expected 100 Continue: {head}"
    );
    stream.write_all(b"ab").unwrap();
    stream
}

/// Slow bodies wait without a thread each: with 100 of them stalled
/// mid-body, the process has about as many threads as before, and a pull
/// answers at once.
#[test]
fn slow_upload_bodies_hold_no_thread() {
    let (berth, registry) = setup_with_env(&[]);
    let blob = Blob::random(100_000);
    registry.push_blob("team/pulled", &blob);
    let before = proc_status(&berth, "Threads");
    let mut stalled = Vec::new();
    for _ in 0..100 {
        let location = registry.start_upload("team/slow");
        stalled.push(slow_patch(&berth, &path_of(&berth, &location)));
    }
    let during = proc_status(&berth, "Threads");
    assert!(
        during < before + 30,
        "100 stalled upload bodies took the process from {before} to {during} threads"
    );
    let started = Instant::now();
    let resp = registry
        .http()
        .get(registry.url(&format!("/v2/team/pulled/blobs/{}", blob.digest)))
        .timeout(Duration::from_secs(5))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().unwrap().as_ref(), &blob.data[..]);
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(stalled);
}

/// A body below `server.body_min_rate` after `server.body_timeout` is
/// answered 408 and its connection closed; what arrived stays in the
/// upload, which can be resumed and completed.
#[test]
fn too_slow_body_is_cut_off_and_the_upload_resumes() {
    let (berth, registry) = setup_with_env(&[
        ("BERTH_SERVER__BODY_TIMEOUT", "1s"),
        ("BERTH_SERVER__BODY_MIN_RATE", "1KiB"),
    ]);
    let location = registry.start_upload("team/slow");
    let started = Instant::now();
    let mut stream = slow_patch(&berth, &path_of(&berth, &location));
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let took = started.elapsed();
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "a stalled body gets 408: {answer}"
    );
    assert!(answer.contains("BLOB_UPLOAD_INVALID"), "{answer}");
    assert!(answer.contains("too slowly"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("range: 0-1"),
        "{answer}"
    );
    // read_to_string returned: the server closed the connection.
    assert!(took < Duration::from_secs(10), "cut off after {took:?}");

    let resp = registry.http().get(&location).send().unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        header(&resp, "range").as_deref(),
        Some("0-1"),
        "2 bytes kept"
    );
    let rest = vec![b'z'; 1000];
    let mut whole = b"ab".to_vec();
    whole.extend_from_slice(&rest);
    let digest = sha256_digest(&whole);
    let resp = registry
        .http()
        .put(with_query(&location, "digest", &digest))
        .header("content-range", format!("2-{}", whole.len() - 1))
        .body(rest)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "the upload resumes after the cut");
    let got = registry.get_blob("team/slow", &digest).bytes().unwrap();
    assert_eq!(got.as_ref(), &whole[..]);
}

/// Open sessions cost no file descriptor between their requests.
#[test]
fn open_upload_sessions_hold_no_file_descriptor() {
    let (berth, registry) = setup_with_env(&[]);
    // Warm up: the first requests open the pools' connections.
    let location = registry.start_upload("team/fds");
    registry.http().patch(&location).body("x").send().unwrap();
    let before = open_fds(&berth);
    for _ in 0..60 {
        let location = registry.start_upload("team/fds");
        let resp = registry.http().patch(&location).body("x").send().unwrap();
        assert_eq!(resp.status(), 202);
    }
    let after = open_fds(&berth);
    assert!(
        after < before + 30,
        "60 sessions with one chunk each took berth from {before} to {after} descriptors"
    );
}

/// `server.max_uploads_per_user`: one session more is 429 TOOMANYREQUESTS
/// until one ends.
#[test]
fn upload_sessions_are_capped_per_user() {
    let (_berth, registry) = setup_with_env(&[("BERTH_SERVER__MAX_UPLOADS_PER_USER", "3")]);
    let sessions: Vec<String> = (0..3).map(|_| registry.start_upload("team/cap")).collect();
    let resp = registry
        .http()
        .post(registry.url("/v2/team/cap/blobs/uploads/"))
        .send()
        .unwrap();
    let body = assert_error(resp, 429, &["TOOMANYREQUESTS"]);
    assert!(
        body.to_string().contains("at most 3"),
        "the message names the limit: {body}"
    );
    let resp = registry.http().delete(&sessions[0]).send().unwrap();
    assert_eq!(resp.status(), 204);
    let blob = Blob::random(1000);
    registry.push_blob("team/cap", &blob);
    registry.assert_blob("team/cap", &blob);
}

/// The file an upload writes to is the truth, not this process's memory:
/// bytes another process appended (a PATCH retried on another instance)
/// move the offset, and the digest is checked against what the file holds.
#[test]
fn upload_file_wins_over_memory() {
    let (berth, registry) = setup_with_env(&[]);
    let uploads = berth.data_dir().join("blobs/_uploads");
    let append_behind_berths_back = |location: &str, bytes: &[u8]| {
        let id = location
            .rsplit('/')
            .next()
            .unwrap()
            .split('?')
            .next()
            .unwrap();
        let path = uploads.join(id);
        assert!(path.is_file(), "upload file {}", path.display());
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(bytes).unwrap();
    };
    let patch = |location: &str, start: usize, bytes: &'static [u8]| {
        registry
            .http()
            .patch(location)
            .header(
                "content-range",
                format!("{start}-{}", start + bytes.len() - 1),
            )
            .body(bytes)
            .send()
            .unwrap()
    };

    // Memory says 5 bytes, the file holds 7: the next chunk starts at 7.
    let location = registry.start_upload("team/truth");
    assert_eq!(patch(&location, 0, b"hello").status(), 202);
    append_behind_berths_back(&location, b"XX");
    let resp = registry.http().get(&location).send().unwrap();
    assert_eq!(header(&resp, "range").as_deref(), Some("0-6"));
    let resp = patch(&location, 5, b"more");
    assert_eq!(resp.status(), 416, "a chunk at the stale offset is refused");
    // The digest of what memory saw is not what the file holds.
    let stale = sha256_digest(b"hellomore");
    let resp = registry
        .http()
        .put(with_query(&location, "digest", &stale))
        .body("more")
        .send()
        .unwrap();
    assert_error(resp, 400, &["DIGEST_INVALID"]);
    let resp = registry.get_blob("team/truth", &stale);
    assert_eq!(resp.status(), 404, "nothing stored under the stale digest");

    // The digest of the file's bytes is accepted, and those bytes served.
    let location = registry.start_upload("team/truth");
    assert_eq!(patch(&location, 0, b"hello").status(), 202);
    append_behind_berths_back(&location, b"XX");
    let real = sha256_digest(b"helloXXmore");
    let resp = registry
        .http()
        .put(with_query(&location, "digest", &real))
        .body("more")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let got = registry.get_blob("team/truth", &real).bytes().unwrap();
    assert_eq!(got.as_ref(), b"helloXXmore");
}
