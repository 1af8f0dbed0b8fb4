//! Garbage collection on the filesystem store: the purge of abandoned
//! upload files, and kill -9 in the middle of a run (the trash GC moves
//! files through). `s3_objects` has the object store's side of both.
#![allow(clippy::unwrap_used)]

#[path = "support/gc.rs"]
mod gc_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use berth_tests::content::{random_bytes, sha256_digest};
use berth_tests::registry::{assert_error, describe};
use berth_tests::server::POLL;
use berth_tests::{Api, Berth, Image};
use gc_support::{
    assert_rows_have_files, blob_files, gc, gc_log, referenced_blobs, sql, start_gc, wait_gc,
};

/// Polls `f` until it is true, for at most `limit`.
fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(POLL);
    }
}

#[test]
fn abandoned_uploads_are_purged_and_active_ones_are_not() {
    let berth = Berth::start_with_env(&[("BERTH_SERVER__UPLOAD_PURGE_AGE", "3s")]);
    let api = Api::admin(&berth);
    api.create_project("team", false);
    let r = berth.registry();
    let abandoned = r.start_upload("team/app");
    let active = r.start_upload("team/app");
    let uploads = berth.data_dir().join("blobs/_uploads");
    let file_of = |location: &str| {
        let id = location
            .split('?')
            .next()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        uploads.join(id)
    };
    assert!(file_of(&abandoned).exists());
    let data = random_bytes(4096);
    let mut location = active.clone();
    let mut sent = 0;
    wait_until(
        Duration::from_secs(30),
        "the abandoned upload's purge",
        || {
            // The active upload gets a chunk now and then.
            let chunk = &data[sent..sent + 64];
            let resp = r
                .http()
                .patch(&location)
                .header("content-type", "application/octet-stream")
                .body(chunk.to_vec())
                .send()
                .unwrap();
            assert_eq!(
                resp.status(),
                202,
                "PATCH the active upload: {}",
                describe(resp)
            );
            location = r.location(&resp);
            sent += 64;
            std::thread::sleep(Duration::from_millis(300));
            !file_of(&abandoned).exists()
        },
    );
    assert_error(
        r.http().get(&abandoned).send().unwrap(),
        404,
        &["BLOB_UPLOAD_UNKNOWN"],
    );
    let done = r
        .http()
        .put(berth_tests::registry::with_query(
            &location,
            "digest",
            &sha256_digest(&data[..sent]),
        ))
        .send()
        .unwrap();
    assert_eq!(
        done.status(),
        201,
        "completing the active upload: {}",
        describe(done)
    );
    assert!(!file_of(&active).exists());
}

#[test]
fn kill_9_during_gc_loses_nothing_and_the_next_gc_completes() {
    let mut berth = Berth::start_with_env(&[("BERTH_GC__GRACE_PERIOD", "0s")]);
    let api = Api::admin(&berth);
    api.create_project("team", false);
    let r = berth.registry();
    let kept: Vec<Image> = (0..3).map(|_| Image::random(2)).collect();
    for (i, image) in kept.iter().enumerate() {
        r.push_image("team/app", &format!("v{i}"), image);
    }
    // Lots of garbage, made quickly: rows and files of blobs nothing uses.
    let garbage = 4000;
    let root = berth.data_dir().join("blobs/sha256");
    let mut values = Vec::new();
    for i in 0..garbage {
        let data = format!("garbage {i} {}", random_bytes(8)[0]);
        let digest = sha256_digest(data.as_bytes());
        let hex = digest.strip_prefix("sha256:").unwrap();
        std::fs::create_dir_all(root.join(&hex[..2])).unwrap();
        std::fs::write(root.join(&hex[..2]).join(hex), &data).unwrap();
        values.push(format!("('{digest}', {}, 0, 0)", data.len()));
    }
    sql(
        &berth,
        &format!(
            "INSERT INTO blobs (digest, size, created_at, touched_ms) VALUES {};",
            values.join(",")
        ),
    );
    let total = blob_files(&berth).len();
    let id = start_gc(&api, false, false).unwrap();
    wait_until(Duration::from_secs(60), "GC to be half-way", || {
        blob_files(&berth).len() < total - 100
    });
    berth.kill9();
    let left = blob_files(&berth).len();
    assert!(
        left > kept.len() * 3,
        "GC finished before the kill ({left} files left)"
    );

    berth.restart();
    assert_rows_have_files(&berth);
    for (i, image) in kept.iter().enumerate() {
        r.assert_image("team/app", &format!("v{i}"), image);
    }
    let killed = wait_gc(&api, id);
    assert_eq!(killed["job_status"], "Error", "{killed}");
    assert!(gc_log(&api, id).contains("interrupted"));
    // The stale lock does not block: the next GC runs and finishes the job.
    let run = gc(&api, false, false);
    assert!(run["blobs_deleted"].as_u64().unwrap() > 0, "{run}");
    let files: BTreeSet<String> = blob_files(&berth).into_keys().collect();
    assert_eq!(files, referenced_blobs(&berth));
    assert!(
        std::fs::read_dir(berth.data_dir().join("blobs/_trash"))
            .map(|mut d| d.next().is_none())
            .unwrap_or(true),
        "the trash is empty"
    );
    for (i, image) in kept.iter().enumerate() {
        r.assert_image("team/app", &format!("v{i}"), image);
    }
}
