//! Crash safety and restarts: nothing acknowledged is lost, nothing half
//! written becomes visible, uploads survive a restart.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_tests::content::{random_bytes, sha256_digest, sha512_digest, to_json, OCI_MANIFEST};
use berth_tests::registry::{describe, header, with_query};
use berth_tests::server::POLL;
use berth_tests::{Api, Berth, Blob, Image, Registry};
use reqwest::blocking::Body;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const MIB: u64 = 1024 * 1024;

/// Deterministic pseudo-random bytes (xorshift), optionally stopping at a
/// gate until the test lets it go on.
struct Pattern {
    state: u64,
    produced: u64,
    total: u64,
    gate: Option<(u64, mpsc::Receiver<()>)>,
}

impl Pattern {
    fn new(seed: u64, total: u64) -> Pattern {
        Pattern {
            state: seed | 1,
            produced: 0,
            total,
            gate: None,
        }
    }

    fn gated(seed: u64, total: u64, at: u64, rx: mpsc::Receiver<()>) -> Pattern {
        Pattern {
            gate: Some((at, rx)),
            ..Pattern::new(seed, total)
        }
    }

    fn digest(seed: u64, total: u64) -> String {
        let mut hasher = Sha256::new();
        let mut p = Pattern::new(seed, total);
        let mut buf = vec![0u8; MIB as usize];
        loop {
            let n = p.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        format!("sha256:{}", hex::encode(hasher.finalize()))
    }
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut limit = self.total - self.produced;
        if let Some((at, rx)) = &self.gate {
            if self.produced == *at {
                // Hold the body here until the test has killed the server.
                let _ = rx.recv();
                self.gate = None;
            } else {
                limit = limit.min(at - self.produced);
            }
        }
        let n = (buf.len() as u64).min(limit).min(256 * 1024) as usize;
        // One xorshift step per byte: the stream does not depend on how
        // the reader is called.
        for byte in &mut buf[..n] {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *byte = (self.state >> 32) as u8;
        }
        self.produced += n as u64;
        Ok(n)
    }
}

/// berth with the projects these tests push to: pushes to a missing
/// project are refused.
fn start() -> Berth {
    let berth = Berth::start();
    Api::admin(&berth).create_projects(&["team", "tools"]);
    berth
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// The end offset of an upload's `Range: 0-<end>`, if the server answers.
fn upload_progress(registry: &Registry, location: &str) -> Option<u64> {
    let resp = registry
        .http()
        .get(location)
        .timeout(Duration::from_secs(2))
        .send()
        .ok()?;
    let range = header(&resp, "range")?;
    range.split_once('-')?.1.parse().ok()
}

#[test]
fn restart_keeps_everything() {
    let mut berth = start();
    let registry = berth.registry();
    let app = Image::random(3);
    let tool = Image::random(1);
    registry.push_image("team/app", "v1", &app);
    registry.push_manifest("team/app", "stable", &app.manifest);
    registry.push_image("tools/x/y", "latest", &tool);
    let loose = Blob::random(50_000);
    registry.push_blob("team/app", &loose);
    let data512 = random_bytes(3000);
    let digest512 = sha512_digest(&data512);
    registry.push_bytes("team/app", &data512, &digest512);
    let resp = registry
        .http()
        .post(registry.url(&format!(
            "/v2/tools/x/y/blobs/uploads/?mount={}&from=team/app",
            loose.digest
        )))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "mount");

    let check = |registry: &Registry, when: &str| {
        registry.assert_image("team/app", "v1", &app);
        registry.assert_manifest("team/app", "stable", &app.manifest);
        registry.assert_image("tools/x/y", "latest", &tool);
        registry.assert_blob("team/app", &loose);
        registry.assert_blob("tools/x/y", &loose);
        let got = registry.get_blob("team/app", &digest512).bytes().unwrap();
        assert!(got.as_ref() == data512.as_slice(), "sha512 blob {when}");
        let mut tags = registry.tags("team/app");
        tags.sort();
        assert_eq!(tags, vec!["stable", "v1"], "tags {when}");
        let catalog: Value = registry
            .http()
            .get(registry.url("/v2/_catalog"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(
            catalog["repositories"],
            serde_json::json!(["team/app", "tools/x/y"]),
            "catalog {when}"
        );
        // Still isolated per repository.
        assert_eq!(
            registry.head_blob("tools/x/y", &app.config.digest).status(),
            404,
            "blob links {when}"
        );
    };
    check(&registry, "before restart");
    berth.restart();
    check(&registry, "after a clean restart");
    berth.kill9();
    berth.restart();
    check(&registry, "after kill -9 and restart");
}

#[test]
fn kill9_during_a_large_streamed_upload() {
    const TOTAL: u64 = 200 * MIB;
    const GATE: u64 = 64 * MIB;
    const SEED: u64 = 0x5eed_1234_abcd_0001;
    let mut berth = start();
    let registry = berth.registry();
    let before = Image::random(2);
    registry.push_image("team/big", "v1", &before);
    let digest = Pattern::digest(SEED, TOTAL);
    let baseline = dir_size(berth.data_dir());

    let location = registry.start_upload("team/big");
    let (gate_tx, gate_rx) = mpsc::channel();
    let upload = {
        let location = location.clone();
        let http = registry.http().clone();
        std::thread::spawn(move || {
            http.patch(&location)
                .header("content-type", "application/octet-stream")
                .body(Body::new(Pattern::gated(SEED, TOTAL, GATE, gate_rx)))
                .send()
        })
    };
    // Kill once berth has taken in a good part of the body: seen either in
    // the upload's Range or in the data directory's growth.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let grown = dir_size(berth.data_dir()).saturating_sub(baseline);
        let progress = upload_progress(&registry, &location).unwrap_or(0);
        if grown >= 16 * MIB || progress >= 16 * MIB {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "berth never showed 16 MiB of the upload received (data dir grew {grown} bytes, Range end {progress})"
        );
        std::thread::sleep(POLL);
    }
    berth.kill9();
    // The client may already have dropped the body (and the gate's
    // receiver) when it saw the connection die: then there is nothing
    // to release. (Upload status no longer waits for the PATCH in flight,
    // so the kill can come before the body reaches the gate.)
    let _ = gate_tx.send(());
    // Normally the connection dies with the server; an answer cannot be a
    // success.
    if let Ok(resp) = upload.join().unwrap() {
        assert!(
            !resp.status().is_success(),
            "the PATCH cannot have succeeded: {}",
            describe(resp)
        );
    }

    berth.restart();
    registry.assert_image("team/big", "v1", &before);
    let resp = registry.head_blob("team/big", &digest);
    assert_eq!(
        resp.status(),
        404,
        "the unfinished blob must not be visible"
    );

    // Redo the whole upload from scratch.
    let location = registry.start_upload("team/big");
    let resp = registry
        .http()
        .patch(&location)
        .header("content-type", "application/octet-stream")
        .body(Body::new(Pattern::new(SEED, TOTAL)))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202, "redo PATCH: {}", describe(resp));
    assert_eq!(
        header(&resp, "range").as_deref(),
        Some(format!("0-{}", TOTAL - 1).as_str())
    );
    let location = registry.location(&resp);
    let resp = registry
        .http()
        .put(with_query(&location, "digest", &digest))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "redo PUT: {}", describe(resp));
    let resp = registry.head_blob("team/big", &digest);
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length"), Some(TOTAL.to_string()));
    let mut resp = registry.get_blob("team/big", &digest);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; MIB as usize];
    let mut read = 0u64;
    loop {
        let n = resp.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        read += n as u64;
        hasher.update(&buf[..n]);
    }
    assert_eq!(read, TOTAL);
    assert_eq!(format!("sha256:{}", hex::encode(hasher.finalize())), digest);
    registry.assert_image("team/big", "v1", &before);
}

#[test]
fn upload_session_survives_restart() {
    let mut berth = start();
    let registry = berth.registry();
    let data = random_bytes(3 * 200_000);
    let digest = sha256_digest(&data);
    let chunks: Vec<&[u8]> = data.chunks(200_000).collect();
    let patch = |location: &str, index: usize| {
        let start = index * 200_000;
        let end = start + chunks[index].len() - 1;
        let resp = registry
            .http()
            .patch(location)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{start}-{end}"))
            .body(chunks[index].to_vec())
            .send()
            .unwrap();
        assert_eq!(
            resp.status(),
            202,
            "PATCH chunk {index}: {}",
            describe(resp)
        );
        assert_eq!(header(&resp, "range"), Some(format!("0-{end}")));
        registry.location(&resp)
    };
    let expect_range = |location: &str, end: usize, when: &str| {
        let resp = registry.http().get(location).send().unwrap();
        assert_eq!(
            resp.status(),
            204,
            "GET <location> {when}: {}",
            describe(resp)
        );
        assert_eq!(
            header(&resp, "range"),
            Some(format!("0-{end}")),
            "Range {when}"
        );
    };

    let location = registry.start_upload("team/resume");
    let location = patch(&location, 0);
    berth.restart();
    expect_range(&location, 199_999, "after a clean restart");
    let location = patch(&location, 1);
    berth.kill9();
    berth.restart();
    expect_range(&location, 399_999, "after kill -9 and restart");
    let location = patch(&location, 2);
    let resp = registry
        .http()
        .put(with_query(&location, "digest", &digest))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "closing PUT: {}", describe(resp));
    let got = registry.get_blob("team/resume", &digest).bytes().unwrap();
    assert!(got.as_ref() == data.as_slice(), "resumed blob differs");
}

#[test]
fn kill9_during_concurrent_manifest_pushes() {
    kill9_during_manifest_pushes(6);
}

/// The same crash with one client: no concurrency, only the crash.
#[test]
fn kill9_during_a_stream_of_manifest_pushes() {
    kill9_during_manifest_pushes(1);
}

/// Pushes many manifests from `threads` clients, kills berth with SIGKILL
/// while they run, restarts it and checks that every acknowledged push
/// survived, nothing is torn and every tag points to what was pushed for it.
fn kill9_during_manifest_pushes(threads: usize) {
    const MANIFESTS: usize = 3000;
    let mut berth = start();
    let registry = Arc::new(berth.registry());
    let repo = "team/crash";
    let base = Image::random(1);
    for blob in base.blobs() {
        registry.push_blob(repo, blob);
    }
    // Many distinct manifests over the same blobs.
    let template: Value = serde_json::from_slice(&base.manifest.data).unwrap();
    let manifests: Arc<Vec<Blob>> = Arc::new(
        (0..MANIFESTS)
            .map(|i| {
                let mut m = template.clone();
                m["annotations"] = serde_json::json!({"org.example.n": i.to_string()});
                Blob::new(to_json(&m), OCI_MANIFEST)
            })
            .collect(),
    );
    let acked = Arc::new(Mutex::new(Vec::new()));
    let attempted = Arc::new(Mutex::new(Vec::new()));
    let ack_count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let failure: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (registry, manifests) = (registry.clone(), manifests.clone());
            let (acked, attempted) = (acked.clone(), attempted.clone());
            let (ack_count, stop) = (ack_count.clone(), stop.clone());
            let failure = failure.clone();
            std::thread::spawn(move || {
                for i in (t..MANIFESTS).step_by(threads) {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    attempted.lock().unwrap().push(i);
                    let m = &manifests[i];
                    // Alternate between a tag of its own and a shared,
                    // moving tag.
                    let tag = if i % 3 == 0 {
                        "moving".to_string()
                    } else {
                        format!("m{i}")
                    };
                    let sent = registry
                        .http()
                        .put(registry.url(&format!("/v2/{repo}/manifests/{tag}")))
                        .header("content-type", OCI_MANIFEST)
                        .body(m.data.clone())
                        .send();
                    match sent {
                        Ok(resp) if resp.status() == 201 => {
                            acked.lock().unwrap().push(i);
                            ack_count.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(resp) => {
                            let what = format!(
                                "manifest PUT {i} ({tag}) before the kill: {}",
                                describe(resp)
                            );
                            failure.lock().unwrap().get_or_insert(what);
                            return;
                        }
                        Err(_) => return, // The server is gone.
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ack_count.load(Ordering::SeqCst) < 50 {
        let failed = failure.lock().unwrap().clone();
        if let Some(failure) = failed {
            panic!("{failure}");
        }
        assert!(
            Instant::now() < deadline,
            "manifest pushes did not progress"
        );
        std::thread::sleep(POLL / 4);
    }
    berth.kill9();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let failed = failure.lock().unwrap().clone();
    if let Some(failure) = failed {
        panic!("{failure}");
    }
    let acked = acked.lock().unwrap().clone();
    let attempted = attempted.lock().unwrap().clone();
    assert!(
        acked.len() < MANIFESTS,
        "all {MANIFESTS} pushes finished before the kill: the crash hit nothing"
    );
    berth.restart();

    // Every acknowledged push survived, byte for byte.
    for &i in &acked {
        registry.assert_manifest(repo, &manifests[i].digest, &manifests[i]);
        if i % 3 != 0 {
            registry.assert_manifest(repo, &format!("m{i}"), &manifests[i]);
        }
    }
    // Every attempted one is either absent or whole.
    for &i in &attempted {
        let resp = registry.get_manifest(repo, &manifests[i].digest);
        match resp.status().as_u16() {
            404 => {}
            200 => {
                let body = resp.bytes().unwrap();
                assert!(
                    body.as_ref() == manifests[i].data.as_slice(),
                    "manifest {i} is torn"
                );
            }
            other => panic!("manifest {i} after the crash: {other}"),
        }
    }
    // Every tag points to a readable manifest with the bytes pushed for it.
    for tag in registry.tags(repo) {
        let resp = registry.get_manifest(repo, &tag);
        assert_eq!(resp.status(), 200, "tag {tag} points to nothing readable");
        let digest = header(&resp, "docker-content-digest").unwrap();
        let body = resp.bytes().unwrap();
        assert_eq!(
            sha256_digest(&body),
            digest,
            "tag {tag}: body vs its digest"
        );
        let i = manifests
            .iter()
            .position(|m| m.digest == digest)
            .unwrap_or_else(|| panic!("tag {tag} points to {digest}, which was never pushed"));
        if tag == "moving" {
            assert_eq!(i % 3, 0, "moving tag on manifest {i}");
        } else {
            assert_eq!(tag, format!("m{i}"), "tag {tag} points to manifest {i}");
        }
    }
    // And the registry takes new pushes.
    let fresh = Image::random(1);
    registry.push_image(repo, "after", &fresh);
    registry.assert_image(repo, "after", &fresh);
}
