//! Project storage quotas against the real binary, pushed to by skopeo:
//! concurrent pushes never take usage past the limit, usage is exactly the
//! distinct blobs and manifests the project holds (after pushes, deletes
//! and a restart), the refusal names the project, its usage and its limit,
//! raising the limit lets the push through, and the configured default
//! applies to new projects.
#![allow(clippy::unwrap_used)]

use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use berth_tests::content::random_layer;
use berth_tests::server::POLL;
use berth_tests::{Api, Berth, Image};
use serde_json::json;

const MIB: u64 = 1024 * 1024;

/// `skopeo copy` of `image` to `repo:tag` as admin, without retries.
fn skopeo_push(berth: &Berth, image: &Image, repo: &str, tag: &str) -> Output {
    berth_tests::tools::skopeo_push_once(
        berth.scratch_dir(),
        image,
        &berth.host_port(),
        &format!("{repo}:{tag}"),
        &format!("admin:{}", berth.admin_password()),
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn project_id(api: &Api, name: &str) -> i64 {
    let (status, _, body) = api.get(&format!("/projects/{name}"));
    assert_eq!(status, 200, "{body}");
    body["project_id"].as_i64().unwrap()
}

#[test]
fn concurrent_pushes_stay_under_the_limit_and_usage_is_exact() {
    let mut berth = Berth::start();
    let api = Api::admin(&berth);
    let limit = MIB;
    let (status, _, body) = api.post(
        "/projects",
        &json!({"project_name": "team", "storage_limit": limit}),
    );
    assert_eq!(status, 201, "{body}");
    let pid = project_id(&api, "team");
    let q = api.quota(pid);
    assert_eq!(q["hard"]["storage"], limit, "{q}");
    assert_eq!(q["used"]["storage"], 0, "{q}");
    assert_eq!(q["ref"]["name"], "team", "{q}");

    // Six images of ~300 KiB against 1 MiB: about three fit. Two
    // repositories, so blobs are counted per project, not per repository.
    let images: Vec<(String, Image)> = (0..6)
        .map(|i| {
            (
                format!("team/app{}", i % 2),
                Image::with_layers(vec![random_layer(1, 300_000)]),
            )
        })
        .collect();
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let watching = watching.clone();
        let (user, password) = berth.admin_credentials();
        let api = Api::as_user(&berth, user, password);
        std::thread::spawn(move || {
            let mut max = 0;
            while watching.load(Ordering::SeqCst) {
                max = max.max(api.used_storage(pid));
                std::thread::sleep(POLL);
            }
            max
        })
    };
    let outcomes: Vec<Output> = std::thread::scope(|s| {
        let handles: Vec<_> = images
            .iter()
            .map(|(repo, image)| s.spawn(|| skopeo_push(&berth, image, repo, "v1")))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    watching.store(false, Ordering::SeqCst);
    let max_seen = watcher.join().unwrap();
    assert!(max_seen <= limit, "usage reached {max_seen} over {limit}");

    let ok = outcomes.iter().filter(|o| o.status.success()).count();
    assert!(ok >= 1, "no push fitted: {}", stderr(&outcomes[0]));
    let refused: Vec<&Output> = outcomes.iter().filter(|o| !o.status.success()).collect();
    assert!(!refused.is_empty(), "all six pushes fitted under 1 MiB");
    for out in &refused {
        let text = stderr(out);
        assert!(
            text.contains("project `team` would exceed its storage quota")
                && text.contains("used of 1 MiB")
                && text.contains("more; delete artifacts and run garbage collection"),
            "skopeo's error names project, usage and limit: {text}"
        );
    }

    let registry = berth.registry();
    let expected: u64 = registry.held(&images).values().sum();
    let usage = api.used_storage(pid);
    assert_eq!(usage, expected, "usage is the distinct digests held");
    assert!(usage <= limit);

    // Raising the limit lets a refused push through.
    let failed = outcomes.iter().position(|o| !o.status.success()).unwrap();
    let qid = api.quota(pid)["id"].as_i64().unwrap();
    let (status, _, body) = api.put(
        &format!("/quotas/{qid}"),
        &json!({"hard": {"storage": 10 * MIB}}),
    );
    assert_eq!(status, 200, "{body}");
    let (repo, image) = &images[failed];
    let out = skopeo_push(&berth, image, repo, "v1");
    assert!(out.status.success(), "{}", stderr(&out));
    let (status, _, body) = api.get(&format!("/quotas/{qid}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["hard"]["storage"], 10 * MIB, "{body}");
    let expected: u64 = registry.held(&images).values().sum();
    assert_eq!(api.used_storage(pid), expected);

    // Deleting a repository frees what only it held.
    let (status, _, body) = api.delete("/projects/team/repositories/app1");
    assert_eq!(status, 200, "{body}");
    let after_delete: u64 = registry.held(&images).values().sum();
    assert!(after_delete < expected);
    assert_eq!(api.used_storage(pid), after_delete);

    // Deleting an artifact frees its manifest at once; its layers stay
    // linked (and counted) until garbage collection unlinks them.
    let kept = images
        .iter()
        .find(|(repo, image)| {
            repo == "team/app0"
                && registry.get_manifest(repo, &image.manifest.digest).status() == 200
        })
        .unwrap();
    let (status, _, body) = api.delete(&format!(
        "/projects/team/repositories/app0/artifacts/{}",
        kept.1.manifest.digest
    ));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        api.used_storage(pid),
        after_delete - kept.1.manifest.size(),
        "an artifact delete frees its manifest bytes"
    );
    let before_restart = api.used_storage(pid);
    assert_eq!(before_restart, registry.held(&images).values().sum::<u64>());

    berth.restart();
    let api = Api::admin(&berth);
    assert_eq!(
        api.used_storage(pid),
        before_restart,
        "usage survives a restart"
    );
    assert_eq!(api.quota(pid)["hard"]["storage"], 10 * MIB);
}

#[test]
fn the_configured_default_limit_applies_to_new_projects() {
    let berth = Berth::start_with_env(&[("BERTH_QUOTA__DEFAULT_STORAGE_LIMIT", "4096")]);
    let api = Api::admin(&berth);
    let pid = api.create_project("small", false);
    assert_eq!(api.quota(pid)["hard"]["storage"], 4096);
    // Projects that existed before keep theirs: `library` is unlimited.
    let library = project_id(&api, "library");
    assert_eq!(api.quota(library)["hard"]["storage"], -1);

    let image = Image::with_layers(vec![random_layer(1, 20_000)]);
    let out = skopeo_push(&berth, &image, "small/app", "v1");
    assert!(!out.status.success(), "a 20 kB layer fits in 4 KiB?");
    let text = stderr(&out);
    assert!(
        text.contains("project `small` would exceed its storage quota")
            && text.contains("used of 4 KiB"),
        "{text}"
    );

    // Only administrators choose another limit; members read theirs.
    api.create_user("alice", "Passw0rd!x");
    let alice = Api::as_user(&berth, "alice", "Passw0rd!x");
    let (status, _, body) = alice.post(
        "/projects",
        &json!({"project_name": "big", "storage_limit": -1}),
    );
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = alice.post("/projects", &json!({"project_name": "mine"}));
    assert_eq!(status, 201, "{body}");
    let mine = project_id(&alice, "mine");
    assert_eq!(alice.quota(mine)["hard"]["storage"], 4096);
    let qid = alice.quota(mine)["id"].as_i64().unwrap();
    let (status, _, body) = alice.put(&format!("/quotas/{qid}"), &json!({"hard": {"storage": -1}}));
    assert_eq!(status, 403, "{body}");
    // Quotas of projects alice is not a member of are not hers to see.
    let (status, _, body) = alice.get("/quotas");
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["ref"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mine"]);
    let small_qid = api.quota(pid)["id"].as_i64().unwrap();
    let (status, _, _) = alice.get(&format!("/quotas/{small_qid}"));
    assert_eq!(status, 404);
}
