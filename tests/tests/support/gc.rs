//! What the GC tests share: running GC through the API and the command
//! line, and looking at the blob store and the database from outside.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use berth_tests::server::POLL;
use berth_tests::{Api, Berth};
use serde_json::{json, Value};

/// How long one GC may take in these tests.
pub const GC_DEADLINE: Duration = Duration::from_secs(120);

/// Every blob in the store, file or object: digest -> size. An object no
/// row names is listed as `object:<key>`.
pub fn blob_files(berth: &Berth) -> BTreeMap<String, u64> {
    match berth.object_prefix() {
        Some(prefix) => blob_objects(berth, &prefix),
        None => blob_files_in(berth.data_dir()),
    }
}

fn blob_objects(berth: &Berth, prefix: &str) -> BTreeMap<String, u64> {
    // Keys of rows: their location, or their content address.
    let named: BTreeMap<String, String> = sql(berth, "SELECT digest, location FROM blobs;")
        .into_iter()
        .map(|line| {
            let (digest, location) = line.split_once('|').unwrap_or((&line, ""));
            let key = if location.is_empty() {
                digest.replacen(':', "/", 1)
            } else {
                location.to_owned()
            };
            (key, digest.to_owned())
        })
        .collect();
    berth_tests::garage::shared()
        .list(prefix)
        .into_iter()
        .filter_map(|(key, size)| {
            let key = key.strip_prefix("blobs/")?.to_owned();
            Some(match named.get(&key) {
                Some(digest) => (digest.clone(), size),
                None => (format!("object:{key}"), size),
            })
        })
        .collect()
}

fn blob_files_in(data_dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let root = data_dir.join("blobs");
    let Ok(algs) = std::fs::read_dir(&root) else {
        return out;
    };
    for alg in algs.flatten() {
        let alg_name = alg.file_name().to_string_lossy().into_owned();
        if alg_name.starts_with('_') {
            continue;
        }
        for prefix in std::fs::read_dir(alg.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            for file in std::fs::read_dir(prefix.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(meta) = file.metadata() {
                    let name = file.file_name().to_string_lossy().into_owned();
                    out.insert(format!("{alg_name}:{name}"), meta.len());
                }
            }
        }
    }
    out
}

/// Runs one SQL statement on berth's database (SQLite or PostgreSQL);
/// its output lines.
pub fn sql(berth: &Berth, statement: &str) -> Vec<String> {
    berth
        .sql(statement)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

/// Blob digests the database has rows for.
pub fn blob_rows(berth: &Berth) -> BTreeSet<String> {
    sql(berth, "SELECT digest FROM blobs;")
        .into_iter()
        .collect()
}

/// Blob digests some manifest references (config or layer).
pub fn referenced_blobs(berth: &Berth) -> BTreeSet<String> {
    sql(
        berth,
        "SELECT DISTINCT child_digest FROM manifest_refs WHERE is_manifest = 0;",
    )
    .into_iter()
    .collect()
}

/// Asserts the invariant GC keeps: every blob row has its file.
pub fn assert_rows_have_files(berth: &Berth) -> usize {
    let files = blob_files(berth);
    let rows = blob_rows(berth);
    let missing: Vec<&String> = rows.iter().filter(|d| !files.contains_key(*d)).collect();
    assert!(missing.is_empty(), "blob rows without files: {missing:?}");
    rows.len()
}

/// POST /system/gc/schedule with type Manual: the run's id, or the
/// status when it was refused (409 while another GC runs).
pub fn start_gc(api: &Api, dry_run: bool, delete_untagged: bool) -> Result<i64, (u16, Value)> {
    let (status, headers, body) = api.post(
        "/system/gc/schedule",
        &json!({"schedule": {"type": "Manual"},
                "parameters": {"dry_run": dry_run, "delete_untagged": delete_untagged}}),
    );
    if status != 201 {
        return Err((status, body));
    }
    let location = headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("Location of the GC run");
    let id = location
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("Location {location} names no run"));
    assert_eq!(location, format!("/api/v2.0/system/gc/{id}"));
    Ok(id)
}

/// Waits for a run to leave `Running`; its history entry.
pub fn wait_gc(api: &Api, id: i64) -> Value {
    let deadline = Instant::now() + GC_DEADLINE;
    loop {
        let (status, _, body) = api.get(&format!("/system/gc/{id}"));
        assert_eq!(status, 200, "GET /system/gc/{id}: {body}");
        if body["job_status"] != "Running" {
            return body;
        }
        assert!(Instant::now() < deadline, "GC {id} still running: {body}");
        std::thread::sleep(POLL * 5);
    }
}

/// Runs a GC through the API to the end, waiting while another one runs;
/// asserts it succeeded and returns its history entry.
pub fn gc(api: &Api, dry_run: bool, delete_untagged: bool) -> Value {
    let deadline = Instant::now() + GC_DEADLINE;
    let id = loop {
        match start_gc(api, dry_run, delete_untagged) {
            Ok(id) => break id,
            Err((409, _)) if Instant::now() < deadline => std::thread::sleep(POLL * 5),
            Err((status, body)) => panic!("starting GC: {status} {body}"),
        }
    };
    let run = wait_gc(api, id);
    assert_eq!(run["job_status"], "Success", "GC {id}: {run}");
    run
}

/// The text log of a run.
pub fn gc_log(api: &Api, id: i64) -> String {
    let (status, _, body) = api.get(&format!("/system/gc/{id}/log"));
    assert_eq!(status, 200, "GET /system/gc/{id}/log: {body}");
    body.as_str().unwrap_or_default().to_owned()
}

/// Runs `berth gc <args>` on `berth`'s data directory.
pub fn berth_gc(berth: &Berth, args: &[&str]) -> Output {
    let mut cmd = berth.command(&["gc"]);
    cmd.args(args)
        .env("BERTH_GC__GRACE_PERIOD", "0s")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.output().expect("run berth gc")
}
