//! Garbage collection end to end: what it frees and what it keeps, dry
//! runs, the API and its permissions, the command line, the schedule, and
//! pushes racing GC (the stress test; `BERTH_GC_SOAK_ITERATIONS` makes it
//! a soak), on whichever store holds the blobs. What only the filesystem
//! store has (its trash, its upload files) is in `gc_files`.
#![allow(clippy::unwrap_used)]

#[path = "support/gc.rs"]
mod gc_support;
#[path = "support/gc_stress.rs"]
mod stress;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use berth_tests::content::{random_bytes, random_layer, sha256_digest};
use berth_tests::registry::{assert_error, describe};
use berth_tests::server::POLL;
use berth_tests::tools::{layout_digest, skopeo_copy, skopeo_login, text, write_oci_layout};
use berth_tests::{Api, Berth, Image};
use gc_support::{assert_rows_have_files, berth_gc, blob_files, gc, gc_log, sql};
use serde_json::json;

/// Polls `f` until it is true, for at most `limit`.
fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(POLL * 5);
    }
}

#[test]
fn pushes_mounts_and_deletes_racing_gc_lose_nothing() {
    let berth = Berth::start_with_env(stress::ENV);
    stress::run(stress::Target {
        berth: &berth,
        front: berth.host_port(),
        gc_on: &berth,
        iterations: 10,
    });
}

#[test]
fn gc_frees_a_deleted_images_own_blobs_and_keeps_the_shared_base() {
    let berth = Berth::start_with_env(&[("BERTH_GC__GRACE_PERIOD", "0s")]);
    let api = Api::admin(&berth);
    api.create_project("team", false);
    let host = berth.host_port();
    let auth = berth.scratch_dir().join("auth.json");
    let (user, password) = berth.admin_credentials();
    assert!(skopeo_login(&auth, &host, user, password).status.success());

    let base = random_layer(4, 64 * 1024);
    let keep = Image::with_layers(vec![base.clone(), random_layer(2, 16 * 1024)]);
    let drop = Image::with_layers(vec![base.clone(), random_layer(3, 32 * 1024)]);
    for (image, tag) in [(&keep, "keep"), (&drop, "drop")] {
        let layout = write_oci_layout(&berth.scratch_dir().join(tag), image, tag);
        let out = skopeo_copy(&auth, &layout, &format!("docker://{host}/team/app:{tag}"));
        assert!(out.status.success(), "skopeo push {tag}: {}", text(&out));
    }
    let r = berth.registry();
    let resp = r
        .http()
        .delete(r.url(&format!("/v2/team/app/manifests/{}", drop.manifest.digest)))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202, "delete by digest: {}", describe(resp));

    // The dry run reports, and changes nothing.
    let before = blob_files(&berth);
    let dry = gc(&api, true, false);
    assert_eq!(dry["job_kind"], "MANUAL");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(dry["job_parameters"].as_str().unwrap()).unwrap(),
        json!({"delete_untagged": false, "dry_run": true})
    );
    assert_eq!(blob_files(&berth), before, "a dry run deleted files");
    let dry_log = gc_log(&api, dry["id"].as_i64().unwrap());
    assert!(dry_log.contains("would delete blob"), "{dry_log}");

    let run = gc(&api, false, false);
    let after = blob_files(&berth);
    let removed: Vec<(&String, &u64)> = before
        .iter()
        .filter(|(d, _)| !after.contains_key(*d))
        .collect();
    let removed_bytes: u64 = removed.iter().map(|(_, s)| **s).sum();
    let own: BTreeSet<String> = [&drop.layers[1].blob.digest, &drop.config.digest]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(
        removed
            .iter()
            .map(|(d, _)| (*d).clone())
            .collect::<BTreeSet<_>>(),
        own
    );
    assert_eq!(run["freed_bytes"].as_u64(), Some(removed_bytes), "{run}");
    assert_eq!(run["blobs_deleted"].as_u64(), Some(2));
    // The dry run said the same.
    assert_eq!(dry["freed_bytes"], run["freed_bytes"]);
    assert_eq!(dry["blobs_deleted"], run["blobs_deleted"]);
    let log = gc_log(&api, run["id"].as_i64().unwrap());
    for digest in &own {
        assert!(log.contains(&format!("deleted blob {digest}")), "{log}");
        assert_error(r.get_blob("team/app", digest), 404, &["BLOB_UNKNOWN"]);
    }
    assert!(
        log.contains(&format!("{removed_bytes} bytes freed")),
        "{log}"
    );

    // The kept image pulls whole with skopeo, the shared base included.
    r.assert_image("team/app", "keep", &keep);
    let back = berth.scratch_dir().join("back");
    let out = skopeo_copy(
        &auth,
        &format!("docker://{host}/team/app:keep"),
        &format!("oci:{}:keep", back.display()),
    );
    assert!(out.status.success(), "skopeo pull: {}", text(&out));
    assert_eq!(layout_digest(&back, "keep"), keep.manifest.digest);
    for blob in keep.blobs() {
        let hex = blob.digest.strip_prefix("sha256:").unwrap();
        assert_eq!(
            std::fs::read(back.join("blobs/sha256").join(hex)).unwrap(),
            blob.data
        );
    }
    assert_rows_have_files(&berth);

    // History: newest first, with its total.
    let (status, headers, list) = api.get("/system/gc");
    assert_eq!(status, 200);
    assert_eq!(headers["x-total-count"], "2");
    assert_eq!(list[0]["id"], run["id"]);
    assert_eq!(list[0]["job_name"], "GARBAGE_COLLECTION");
    assert_eq!(list[1]["id"], dry["id"]);
    assert_eq!(api.get("/system/gc/999").0, 404);
}

#[test]
fn untagged_manifests_go_with_delete_untagged_and_a_fresh_push_is_protected() {
    let berth = Berth::start_with_env(&[("BERTH_GC__GRACE_PERIOD", "2s")]);
    let api = Api::admin(&berth);
    api.create_project("team", false);
    let r = berth.registry();
    let tagged = Image::random(1);
    let untagged = Image::random(1);
    r.push_image("team/app", "v1", &tagged);
    r.push_image("team/app", &untagged.manifest.digest, &untagged);
    // A layer pushed but whose manifest has not come yet.
    let pending = random_bytes(5000);
    r.push_bytes("team/app", &pending, &sha256_digest(&pending));
    let run = gc(&api, false, true);
    assert_eq!(
        run["manifests_deleted"].as_u64(),
        Some(0),
        "inside the grace window: {run}"
    );
    // Past the window (manifests record whole seconds: one more).
    std::thread::sleep(Duration::from_millis(3100));
    let run = gc(&api, false, true);
    assert_eq!(run["manifests_deleted"].as_u64(), Some(1), "{run}");
    assert_eq!(run["blobs_deleted"].as_u64(), Some(3), "{run}");
    assert_eq!(
        r.get_manifest("team/app", &untagged.manifest.digest)
            .status(),
        404
    );
    r.assert_image("team/app", "v1", &tagged);
    assert_rows_have_files(&berth);
}

#[test]
fn only_system_administrators_may_run_or_schedule_gc() {
    let berth = Berth::start();
    let admin = Api::admin(&berth);
    admin.create_user("alice", "alice-password-1");
    let alice = Api::as_user(&berth, "alice", "alice-password-1");
    let anonymous = Api::anonymous(&berth);
    let manual = json!({"schedule": {"type": "Manual"}});
    for (api, status) in [(&alice, 403), (&anonymous, 401)] {
        assert_eq!(api.get("/system/gc").0, status);
        assert_eq!(api.get("/system/gc/schedule").0, status);
        assert_eq!(api.post("/system/gc/schedule", &manual).0, status);
        assert_eq!(api.put("/system/gc/schedule", &manual).0, status);
    }
    assert_eq!(admin.get("/system/gc").2, json!([]));
    let bad = |body| admin.put("/system/gc/schedule", &body).0;
    assert_eq!(bad(json!({"schedule": {"type": "Sometimes"}})), 400);
    assert_eq!(bad(json!({"schedule": {"type": "Custom"}})), 400);
    assert_eq!(
        bad(json!({"schedule": {"type": "Custom", "cron": "61 * * * * *"}})),
        400
    );
}

#[test]
fn the_command_line_runs_gc_and_refuses_while_another_one_holds_the_lock() {
    let mut berth = Berth::start_with_env(&[("BERTH_GC__GRACE_PERIOD", "0s")]);
    let api = Api::admin(&berth);
    api.create_project("team", false);
    let r = berth.registry();
    let image = Image::random(2);
    r.push_image("team/app", "v1", &image);
    r.http()
        .delete(r.url(&format!("/v2/team/app/manifests/{}", image.manifest.digest)))
        .send()
        .unwrap();
    let before = blob_files(&berth);

    let out = berth_gc(&berth, &["--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("(dry run): would delete 0 manifests, 3 blobs"),
        "{stdout}"
    );
    let size: u64 = image.blobs().iter().map(|b| b.size()).sum();
    assert!(
        stdout.contains(&format!("bytes to free: {size}")),
        "{stdout}"
    );
    assert_eq!(blob_files(&berth), before);

    // Another GC holds the lock: a live process of this machine (this
    // test's), as `boot/host/pid/nonce`.
    let read = |path: &str| std::fs::read_to_string(path).unwrap().trim().to_owned();
    let holder = format!(
        "{}/{}/{}/test",
        read("/proc/sys/kernel/random/boot_id"),
        read("/proc/sys/kernel/hostname"),
        std::process::id()
    );
    sql(
        &berth,
        &format!(
            "INSERT INTO gc_lock (id, holder, run_id, expires_ms) VALUES (1, '{holder}', 1, 99999999999999);"
        ),
    );
    let out = berth_gc(&berth, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("another garbage collection (run 1) is running"),
        "{}",
        text(&out)
    );
    let (status, _, body) = api.post(
        "/system/gc/schedule",
        &json!({"schedule": {"type": "Manual"}}),
    );
    assert_eq!(status, 409, "{body}");
    sql(&berth, "DELETE FROM gc_lock;");

    let out = berth_gc(&berth, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("bytes freed: {size}")), "{stdout}");
    for blob in image.blobs() {
        assert_error(r.get_blob("team/app", &blob.digest), 404, &["BLOB_UNKNOWN"]);
    }
    assert!(blob_files(&berth).is_empty());
    // The server's history shows the command line's runs too.
    let (_, _, list) = api.get("/system/gc");
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    berth.stop();
}

#[test]
fn a_custom_schedule_runs_gc_and_none_stops_it() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let every_two_seconds = json!({
        "schedule": {"type": "Custom", "cron": "*/2 * * * * *"},
        "parameters": {"delete_untagged": true, "dry_run": false},
    });
    let (status, _, body) = api.put("/system/gc/schedule", &every_two_seconds);
    assert_eq!(status, 200, "{body}");
    let (_, _, schedule) = api.get("/system/gc/schedule");
    assert_eq!(schedule["schedule"]["type"], "Custom");
    assert_eq!(schedule["schedule"]["cron"], "*/2 * * * * *");
    assert!(
        schedule["schedule"]["next_scheduled_time"].is_string(),
        "{schedule}"
    );
    assert_eq!(schedule["parameters"]["delete_untagged"], true);
    wait_until(Duration::from_secs(30), "a scheduled run", || {
        let (_, _, list) = api.get("/system/gc");
        list.as_array().unwrap().iter().any(|run| {
            run["job_kind"] == "SCHEDULE"
                && run["job_status"] == "Success"
                && run["job_parameters"]
                    .as_str()
                    .unwrap()
                    .contains("\"delete_untagged\":true")
        })
    });
    let (status, _, _) = api.put(
        "/system/gc/schedule",
        &json!({"schedule": {"type": "None"}}),
    );
    assert_eq!(status, 200);
    assert_eq!(api.get("/system/gc/schedule").2["schedule"]["type"], "None");
    // Let a run that had started finish, then nothing more comes.
    std::thread::sleep(Duration::from_millis(500));
    let count = |api: &Api| {
        api.get("/system/gc").1["x-total-count"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let settled = count(&api);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(&api), settled);
}
