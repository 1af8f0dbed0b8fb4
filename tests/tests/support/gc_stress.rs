//! The GC stress test: skopeo pushers and an HTTP pusher that mounts across
//! repositories push images sharing base layers, while images are deleted
//! and GC runs again and again with a one-second grace window. Afterwards
//! every image whose push was acknowledged pulls whole, every blob row has
//! its file, and once the grace window has passed a last GC leaves exactly
//! the referenced blobs on disk.
//!
//! The same test runs against one instance (`gc`) and against a cluster
//! (`postgres_cluster`, `s3_cluster`), where the pushes go through the load
//! balancer and GC runs on one instance while the others push.
//!
//! `BERTH_GC_SOAK_ITERATIONS` sets the rounds; a soak runs many with
//! `--nocapture` and reads the figures printed at the end.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use berth_tests::content::random_layer;
use berth_tests::registry::{header, with_query};
use berth_tests::tools::{skopeo_copy, skopeo_login, text, write_oci_layout};
use berth_tests::{Api, Berth, Image, Registry};

use super::gc_support::{
    assert_rows_have_files, blob_files, gc, referenced_blobs, start_gc, wait_gc,
};

const SKOPEO_PUSHERS: usize = 3;
const IMAGES_PER_PUSHER: usize = 2;
const ATTEMPTS: usize = 6;

struct Figures {
    pushed: AtomicUsize,
    retries: AtomicUsize,
    gc_runs: AtomicUsize,
}

/// Pushes with the HTTP API, mounting the base layer from another
/// repository when it can; false when a manifest was refused because GC
/// took a blob between the client's check and its manifest (then retried).
fn http_push(r: &Registry, repo: &str, tag: &str, image: &Image, from: &str) -> bool {
    for blob in image.blobs() {
        let head = r.head_blob(repo, &blob.digest);
        if head.status() == 200 {
            continue;
        }
        let mount = r
            .http()
            .post(r.url(&format!(
                "/v2/{repo}/blobs/uploads/?mount={}&from={from}",
                blob.digest
            )))
            .send()
            .unwrap();
        if mount.status() == 201 {
            continue;
        }
        assert_eq!(mount.status(), 202, "mount fallback starts an upload");
        let location = r.location(&mount);
        let put = r
            .http()
            .put(with_query(&location, "digest", &blob.digest))
            .header("content-type", "application/octet-stream")
            .body(blob.data.clone())
            .send()
            .unwrap();
        assert_eq!(put.status(), 201, "upload {}", blob.digest);
    }
    let resp = r.put_manifest(repo, tag, &image.manifest.media_type, &image.manifest.data);
    match resp.status().as_u16() {
        201 => {
            assert_eq!(
                header(&resp, "docker-content-digest").as_deref(),
                Some(image.manifest.digest.as_str())
            );
            true
        }
        400 => {
            let body = resp.text().unwrap();
            assert!(
                body.contains("MANIFEST_BLOB_UNKNOWN"),
                "manifest refused: {body}"
            );
            false
        }
        other => panic!("manifest PUT answered {other}: {}", resp.text().unwrap()),
    }
}

/// The environment the instances under test need: GC's one-second grace
/// window.
pub const ENV: &[(&str, &str)] = &[("BERTH_GC__GRACE_PERIOD", "1s")];

/// Where the stress test sends its traffic.
pub struct Target<'a> {
    /// Whose database and store are looked at (any instance of a cluster
    /// shares them) and whose scratch directory clients use.
    pub berth: &'a Berth,
    /// `host:port` that the pushes, mounts and deletes go through.
    pub front: String,
    /// The instance GC runs on.
    pub gc_on: &'a Berth,
    /// Rounds, unless `BERTH_GC_SOAK_ITERATIONS` says otherwise.
    pub iterations: usize,
}

/// Runs the stress test against `target` (started with [`ENV`]).
pub fn run(target: Target) {
    let iterations: usize = std::env::var("BERTH_GC_SOAK_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(target.iterations);
    let berth = target.berth;
    let api = Api::admin(target.gc_on);
    api.create_project("team", false);
    let host = target.front.clone();
    let auth = berth.scratch_dir().join("auth.json");
    let (user, password) = berth.admin_credentials();
    assert!(skopeo_login(&auth, &host, user, password).status.success());
    let front = || Registry::with_basic_auth(&format!("http://{host}"), user, password);
    let bases: Vec<_> = (0..3).map(|_| random_layer(2, 32 * 1024)).collect();
    let figures = Arc::new(Figures {
        pushed: AtomicUsize::new(0),
        retries: AtomicUsize::new(0),
        gc_runs: AtomicUsize::new(0),
    });
    // (repository, tag, image) of every acknowledged push still expected.
    let expected: Arc<Mutex<Vec<(String, String, Image)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();

    let collector = {
        let (stop, figures) = (stop.clone(), figures.clone());
        let api = Api::admin(target.gc_on);
        thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if let Ok(id) = start_gc(&api, false, n % 2 == 0) {
                    let run = wait_gc(&api, id);
                    assert_eq!(run["job_status"], "Success", "{run}");
                    figures.gc_runs.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    for iteration in 0..iterations {
        let mut workers = Vec::new();
        for p in 0..SKOPEO_PUSHERS {
            let (auth, host, expected, figures) = (
                auth.clone(),
                host.clone(),
                expected.clone(),
                figures.clone(),
            );
            let scratch = berth.scratch_dir().join(format!("layouts-{iteration}-{p}"));
            let bases = bases.clone();
            workers.push(thread::spawn(move || {
                for k in 0..IMAGES_PER_PUSHER {
                    let image = Image::with_layers(vec![
                        bases[(p + k) % bases.len()].clone(),
                        random_layer(1, 8 * 1024),
                    ]);
                    let tag = format!("i{iteration}-{k}");
                    let layout = write_oci_layout(&scratch.join(&tag), &image, &tag);
                    let repo = format!("team/s{p}");
                    let dest = format!("docker://{host}/{repo}:{tag}");
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        let out = skopeo_copy(&auth, &layout, &dest);
                        if out.status.success() {
                            break;
                        }
                        let why = text(&out);
                        let raced = why.to_lowercase().contains("blob unknown")
                            || why.contains("MANIFEST_BLOB_UNKNOWN");
                        assert!(
                            attempt < ATTEMPTS && raced,
                            "skopeo push {dest} failed for another reason (attempt {attempt}): {why}"
                        );
                        figures.retries.fetch_add(1, Ordering::Relaxed);
                    }
                    figures.pushed.fetch_add(1, Ordering::Relaxed);
                    expected.lock().unwrap().push((repo, tag, image));
                }
            }));
        }
        {
            let (r, expected, figures) = (front(), expected.clone(), figures.clone());
            let bases = bases.clone();
            workers.push(thread::spawn(move || {
                for k in 0..IMAGES_PER_PUSHER {
                    let image = Image::with_layers(vec![
                        bases[k % bases.len()].clone(),
                        random_layer(1, 4096),
                    ]);
                    let tag = format!("h{iteration}-{k}");
                    let mut attempt = 0;
                    while !http_push(&r, "team/h", &tag, &image, "team/s0") {
                        attempt += 1;
                        assert!(
                            attempt < ATTEMPTS,
                            "HTTP push {tag} refused {attempt} times"
                        );
                        figures.retries.fetch_add(1, Ordering::Relaxed);
                    }
                    figures.pushed.fetch_add(1, Ordering::Relaxed);
                    expected.lock().unwrap().push(("team/h".into(), tag, image));
                }
            }));
        }
        // Meanwhile, delete the previous round's first images: their own
        // layers become garbage while their bases are pushed again.
        if iteration > 0 {
            let r = front();
            let doomed: Vec<(String, String, Image)> = {
                let mut list = expected.lock().unwrap();
                let first = [
                    format!("i{}-0", iteration - 1),
                    format!("h{}-0", iteration - 1),
                ];
                let (gone, kept): (Vec<_>, Vec<_>) =
                    list.drain(..).partition(|(_, tag, _)| first.contains(tag));
                *list = kept;
                gone
            };
            for (repo, _, image) in doomed {
                let resp = r
                    .http()
                    .delete(r.url(&format!("/v2/{repo}/manifests/{}", image.manifest.digest)))
                    .send()
                    .unwrap();
                assert_eq!(
                    resp.status(),
                    202,
                    "delete {repo}@{}",
                    image.manifest.digest
                );
            }
        }
        for w in workers {
            w.join().unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    collector.join().unwrap();

    let r = front();
    let expected = expected.lock().unwrap();
    let mut blobs_checked = 0;
    for (repo, tag, image) in expected.iter() {
        r.assert_image(repo, tag, image);
        blobs_checked += image.blobs().len();
    }
    let rows = assert_rows_have_files(berth);
    // Past the grace window, a last GC leaves exactly what is referenced.
    thread::sleep(Duration::from_millis(1100));
    gc(&api, false, false);
    let files: std::collections::BTreeSet<String> = blob_files(berth).into_keys().collect();
    assert_eq!(files, referenced_blobs(berth));
    for (repo, tag, image) in expected.iter() {
        r.assert_image(repo, tag, image);
    }
    eprintln!(
        "gc stress: {iterations} iterations, {} images pushed ({} still tagged, {} push retries), \
         {} GC runs, {blobs_checked} blobs checked, {rows} blob rows with files, 0 lost, in {:.1}s",
        figures.pushed.load(Ordering::Relaxed),
        expected.len(),
        figures.retries.load(Ordering::Relaxed),
        figures.gc_runs.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}
