//! A full disk: berth's data directory (SQLite and blobs) on a 48 MiB
//! tmpfs the test mounts. A push that runs out of space fails with a
//! clear error and a log line naming the path, leaves no partial upload
//! behind, and pulls of what is stored go on; `/readyz` and
//! `/api/v2.0/health` report it; once space is freed the same push
//! succeeds and the store is consistent (every blob row has its file, no
//! upload left over). A database write that runs out of space is refused
//! the same way.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_tests::content::random_layer;
use berth_tests::registry::{assert_error, with_query};
use berth_tests::tools::{skopeo_login, skopeo_pull_digest, skopeo_push, text};
use berth_tests::{Api, Berth, Image};
use serde_json::json;

/// A size-limited tmpfs, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs (the test runs as root, as CI does): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk {
            path: path.to_owned(),
        }
    }

    /// Bytes an unprivileged writer may still use.
    fn available(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Fills the disk until `leave` bytes remain, with a file of its own.
    fn fill(&self, leave: u64) -> PathBuf {
        let filler = self.path.join("filler");
        let _ = std::fs::remove_file(&filler);
        let size = self.available().saturating_sub(leave);
        let file = std::fs::File::create(&filler).unwrap();
        // tmpfs allocates what is written, not what is set: write it.
        let chunk = vec![7u8; 1 << 20];
        let mut w = std::io::BufWriter::new(file);
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if std::io::Write::write_all(&mut w, &chunk[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
        let _ = std::io::Write::flush(&mut w);
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn push(berth: &Berth, auth: &Path, image: &Image, reference: &str) -> std::process::Output {
    skopeo_push(
        &berth.host_port(),
        berth.scratch_dir(),
        auth,
        image,
        reference,
    )
}

fn pull_digest(berth: &Berth, auth: &Path, reference: &str) -> String {
    skopeo_pull_digest(&berth.host_port(), berth.scratch_dir(), auth, reference)
}

/// Every blob row has its file, of its size; no upload is left over.
fn assert_consistent(berth: &Berth, blobs: &Path) {
    let rows = berth.sql("SELECT digest || ' ' || size FROM blobs");
    for line in rows.lines().filter(|l| !l.is_empty()) {
        let (digest, size) = line.split_once(' ').unwrap();
        let hex = digest.strip_prefix("sha256:").unwrap();
        // The store's layout: <alg>/<first two hex>/<hex>.
        let file = blobs.join("sha256").join(&hex[..2]).join(hex);
        let len = std::fs::metadata(&file)
            .unwrap_or_else(|e| panic!("blob {digest} has no file ({e})"))
            .len();
        assert_eq!(len.to_string(), size, "blob {digest}");
    }
    let uploads: Vec<_> = std::fs::read_dir(blobs.join("_uploads"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(uploads.is_empty(), "uploads left over: {uploads:?}");
    assert_eq!(berth.sql("SELECT count(*) FROM uploads").trim(), "0");
}

#[test]
fn a_push_that_fills_the_disk_fails_cleanly_and_works_once_space_is_freed() {
    let root = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&root.path().join("disk"), "48m");
    let data = disk.path.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut berth = Berth::start_in(&data);
    let api = Api::admin(&berth);
    api.create_project("team", false);
    let auth = berth.scratch_dir().join("auth.json");
    let (user, password) = berth.admin_credentials();
    let (user, password) = (user.to_owned(), password.to_owned());
    assert!(skopeo_login(&auth, &berth.host_port(), &user, &password)
        .status
        .success());

    let small = Image::random(1);
    let out = push(&berth, &auth, &small, "team/small:1");
    assert!(out.status.success(), "{}", text(&out));

    // 20 MiB of random bytes where 12 MiB are left.
    let filler = disk.fill(12 << 20);
    let big = Image::with_layers(vec![random_layer(1, 20 << 20)]);
    let out = push(&berth, &auth, &big, "team/big:1");
    assert!(!out.status.success(), "the push fit: {}", text(&out));
    assert!(
        text(&out).contains("507 Insufficient Storage"),
        "the client is told why: {}",
        text(&out)
    );
    // The answer's body says it in words (skopeo shows only the status).
    let registry = berth.registry();
    let location = registry.start_upload("team/big");
    let resp = registry
        .http()
        .put(with_query(
            &registry.resolve(&location),
            "digest",
            &big.layers[0].blob.digest,
        ))
        .body(big.layers[0].blob.data.clone())
        .send()
        .unwrap();
    let body = assert_error(resp, 507, &["UNAVAILABLE"]);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("storage is full"),
        "{body}"
    );
    let log = berth.log_tail(200);
    assert!(
        log.contains(&data.display().to_string()),
        "a log line names the path: {log}"
    );
    assert!(!log.contains("panicked"), "{log}");

    // What is stored still pulls, and the store holds nothing partial.
    assert_eq!(
        pull_digest(&berth, &auth, "team/small:1"),
        small.manifest.digest
    );
    assert_consistent(&berth, &data.join("blobs"));
    assert!(
        disk.available() > 8 << 20,
        "the failed upload's bytes were freed"
    );

    // Low space is reported, and the instance stays ready for pulls.
    let http = berth.registry().http().clone();
    // (The filler is written again, leaving 1 MiB.)
    disk.fill(1 << 20);
    let resp = http.get(berth.registry().url("/readyz")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.text().unwrap();
    assert!(
        body.contains("low on space") || body.contains("full"),
        "{body}"
    );
    let health: serde_json::Value = http
        .get(berth.registry().url("/api/v2.0/health"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let storage = health["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "storage")
        .unwrap()
        .clone();
    assert_eq!(storage["status"], "unhealthy", "{health}");
    assert!(
        storage["error"].as_str().unwrap().contains("space")
            || storage["error"].as_str().unwrap().contains("full"),
        "{health}"
    );

    // The database is on the full disk too: a write there is refused as
    // clearly, and nothing half-written remains.
    disk.fill(0);
    let mut refused = None;
    for i in 0..200 {
        let (status, _, answer) = api.post(
            "/projects",
            &json!({"project_name": format!("filling-{i}-{}", "x".repeat(200)), "metadata": {"public": "false"}}),
        );
        if status != 201 {
            refused = Some((status, answer));
            break;
        }
    }
    let (status, answer) = refused.expect("the database never filled the disk");
    assert_eq!(status, 507, "{answer}");
    assert!(answer.to_string().contains("storage is full"), "{answer}");
    assert_eq!(
        pull_digest(&berth, &auth, "team/small:1"),
        small.manifest.digest
    );
    // Restarted on the full disk, berth still serves pulls (the first pull
    // of a blob in a process renews its GC grace, a write that must not
    // fail the pull).
    berth.restart();
    let auth = berth.scratch_dir().join("auth-again.json");
    assert!(skopeo_login(&auth, &berth.host_port(), &user, &password)
        .status
        .success());
    assert_eq!(
        pull_digest(&berth, &auth, "team/small:1"),
        small.manifest.digest
    );

    // Space freed: the same push succeeds and pulls back identical.
    std::fs::remove_file(&filler).unwrap();
    let out = push(&berth, &auth, &big, "team/big:1");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        pull_digest(&berth, &auth, "team/big:1"),
        big.manifest.digest
    );
    let resp = http.get(berth.registry().url("/readyz")).send().unwrap();
    assert_eq!(resp.text().unwrap(), "ok\n");
    assert_consistent(&berth, &data.join("blobs"));
}
