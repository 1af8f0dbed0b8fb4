//! Replication against real registries: berth pushing to Debian's
//! `docker-registry` (htpasswd), pulling from it, and berth to berth with
//! token auth both ways; filters, namespaces, indexes, override, events
//! with deletion, stop, kill -9 and a destination killed mid-blob. skopeo
//! reads both ends and compares digests.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_tests::content::{
    config_blob, image_index, image_manifest, random_layer, sha256_digest, Blob, OCI_INDEX,
    OCI_LAYER_GZIP, OCI_MANIFEST,
};
use berth_tests::tools::{layout_digest, run, skopeo_copy, skopeo_login, text, write_oci_layout};
use berth_tests::upstream::DockerRegistry;
use berth_tests::{Api, Berth, Image, Registry};
use serde_json::{json, Value};

const USER: &str = "repl";
const PASSWORD: &str = "repl-secret-1";

/// An authfile logged in to each `(host, user, password)`.
fn authfile(scratch: &Path, logins: &[(&str, &str, &str)]) -> PathBuf {
    let file = scratch.join(format!(
        "auth-{}.json",
        berth_tests::content::random_suffix()
    ));
    for (host, user, password) in logins {
        let out = skopeo_login(&file, host, user, password);
        assert!(out.status.success(), "skopeo login {host}: {}", text(&out));
    }
    file
}

/// The digest of `reference`'s manifest as skopeo reads it (raw bytes).
fn raw_digest(authfile: &Path, reference: &str) -> Option<String> {
    let authfile = authfile.to_string_lossy().into_owned();
    let out = run(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--authfile",
            &authfile,
            &format!("docker://{reference}"),
        ],
        &[],
        None,
    );
    out.status.success().then(|| sha256_digest(&out.stdout))
}

/// skopeo copies `reference` into an OCI layout (every blob verified);
/// the manifest digest there.
fn pulled_digest(authfile: &Path, reference: &str, scratch: &Path) -> String {
    let dir = scratch.join(format!("pulled-{}", berth_tests::content::random_suffix()));
    let out = skopeo_copy(
        authfile,
        &format!("docker://{reference}"),
        &format!("oci:{}:t", dir.display()),
    );
    assert!(
        out.status.success(),
        "skopeo copy {reference}: {}",
        text(&out)
    );
    layout_digest(&dir, "t")
}

fn poll<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn admin_registry(berth: &Berth) -> Registry {
    let (user, password) = berth.admin_credentials();
    Registry::with_basic_auth(&berth.url(), user, password)
}

/// Two images sharing their first layer.
fn sharing_images() -> (Image, Image) {
    let base = random_layer(3, 4096);
    let a = Image::with_layers(vec![base.clone(), random_layer(2, 2048)]);
    let b = Image::with_layers(vec![base, random_layer(2, 2048)]);
    (a, b)
}

#[test]
fn push_mode_to_docker_registry_with_filters_namespace_and_shared_blobs_sent_once() {
    let upstream = DockerRegistry::start_with_htpasswd(USER, PASSWORD);
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let reg = admin_registry(&berth);
    api.create_project("team", false);
    let (app, other) = sharing_images();
    let rc = Image::random(1);
    reg.push_image("library/app", "v1", &app);
    reg.push_image("library/app", "v2-rc", &rc);
    reg.push_image("library/other", "v1", &other);
    reg.push_image("library/other", "latest", &other);
    reg.push_image("team/app", "v1", &Image::random(1));

    let endpoint = api.create_registry(
        "dr",
        "docker-registry",
        &upstream.url(),
        Some((USER, PASSWORD)),
    );
    let (status, _, info) = api.get(&format!("/registries/{endpoint}/info"));
    assert_eq!(status, 200, "{info}");
    assert!(
        info["supported_triggers"]
            .as_array()
            .unwrap()
            .contains(&json!("manual")),
        "{info}"
    );
    let policy = api.create_replication_policy(&json!({
        "name": "to-dr",
        "dest_registry": {"id": endpoint},
        "dest_namespace": "mirror",
        "dest_namespace_replace_count": 1,
        "trigger": {"type": "manual"},
        "filters": [
            {"type": "name", "value": "library/**"},
            {"type": "tag", "value": "v*"},
            {"type": "tag", "value": "*-rc", "decoration": "excludes"}
        ],
        "override": true,
        "enabled": true
    }));
    let (status, _, got) = api.get(&format!("/replication/policies/{policy}"));
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["dest_registry"]["id"], endpoint, "{got}");
    assert_eq!(got["src_registry"]["id"], 0, "{got}");
    assert_eq!(got["filters"].as_array().unwrap().len(), 3, "{got}");

    let execution = api.start_replication(policy);
    let done = api.wait_replication(execution, Duration::from_secs(120));
    assert_eq!(
        done["status"],
        "Succeed",
        "{done}\n{}",
        api.replication_logs(execution)
    );
    assert_eq!(done["total"], 2, "two repositories selected: {done}");
    assert_eq!(done["succeed"], 2, "{done}");

    let scratch = berth.scratch_dir().to_path_buf();
    let (user, password) = berth.admin_credentials();
    let auth = authfile(
        &scratch,
        &[
            (&upstream.host_port(), USER, PASSWORD),
            (&berth.host_port(), user, password),
        ],
    );
    let up = upstream.host_port();
    let here = berth.host_port();
    for (src, dst) in [
        ("library/app:v1", "mirror/app:v1"),
        ("library/other:v1", "mirror/other:v1"),
    ] {
        assert_eq!(
            pulled_digest(&auth, &format!("{up}/{dst}"), &scratch),
            pulled_digest(&auth, &format!("{here}/{src}"), &scratch),
            "{dst} at the destination is {src}"
        );
    }
    // Excluded by the filters: the rc tag, `latest`, the team project.
    assert_eq!(raw_digest(&auth, &format!("{up}/mirror/app:v2-rc")), None);
    assert_eq!(
        raw_digest(&auth, &format!("{up}/mirror/other:latest")),
        None
    );
    let (user_up, pw_up) = (USER, PASSWORD);
    let catalog: Value = Registry::with_basic_auth(&upstream.url(), user_up, pw_up)
        .http()
        .get(format!("{}/v2/_catalog", upstream.url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        catalog["repositories"],
        json!(["mirror/app", "mirror/other"]),
        "{catalog}"
    );

    // The shared base layer crossed the network once: the second
    // repository mounted it.
    let shared = app.layers[0]
        .blob
        .digest
        .trim_start_matches("sha256:")
        .to_owned();
    let log = upstream.log_text();
    let uploads = log
        .lines()
        .filter(|l| l.contains("\"PUT /v2/mirror/") && l.contains(&shared))
        .count();
    assert_eq!(uploads, 1, "the shared layer was uploaded {uploads} times");

    // A second run finds everything in place and sends nothing.
    let puts_before = log.lines().filter(|l| l.contains("\"PUT /v2/")).count();
    let again = api.start_replication(policy);
    let done = api.wait_replication(again, Duration::from_secs(60));
    assert_eq!(done["status"], "Succeed", "{done}");
    let logs = api.replication_logs(again);
    assert!(logs.contains("is already sha256:"), "{logs}");
    let puts_after = upstream
        .log_text()
        .lines()
        .filter(|l| l.contains("\"PUT /v2/"))
        .count();
    assert_eq!(
        puts_before, puts_after,
        "a second run wrote to the destination"
    );

    // The executions list, filtered by policy; the endpoint in use cannot go.
    let (status, headers, list) = api.get(&format!("/replication/executions?policy_id={policy}"));
    assert_eq!(status, 200, "{list}");
    assert_eq!(headers["x-total-count"], "2");
    let (status, _, refused) = api.delete(&format!("/registries/{endpoint}"));
    assert_eq!(status, 412, "{refused}");
    assert!(
        refused.to_string().contains("replication policy to-dr"),
        "{refused}"
    );
}

#[test]
fn pull_mode_from_docker_registry_copies_indexes_whole_and_honours_override() {
    let upstream = DockerRegistry::start();
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let up = Registry::new(&upstream.url());
    let app = Image::random(2);
    up.push_image("lib/app", "1", &app);
    let changed = Image::random(1);
    up.push_image("lib/app", "2", &changed);
    // An index of two platforms.
    let (amd, arm) = (Image::random(1), Image::random(1));
    up.push_image("lib/multi", "amd64", &amd);
    up.push_image("lib/multi", "arm64", &arm);
    let index = Blob::new(
        image_index(
            OCI_INDEX,
            &[&amd.manifest, &arm.manifest],
            &["amd64", "arm64"],
        ),
        OCI_INDEX,
    );
    up.push_manifest("lib/multi", "1", &index);

    // A different artifact already sits where `lib/app:2` lands.
    api.create_project("pulled", false);
    let reg = admin_registry(&berth);
    let local = Image::random(1);
    reg.push_image("pulled/lib/app", "2", &local);

    let endpoint = api.create_registry("src", "docker-registry", &upstream.url(), None);
    let body = json!({
        "name": "from-dr",
        "src_registry": {"id": endpoint},
        "dest_namespace": "pulled",
        "dest_namespace_replace_count": 0,
        "filters": [{"type": "name", "value": "lib/*"}, {"type": "tag", "value": "{1,2}"}],
        "override": false
    });
    let policy = api.create_replication_policy(&body);
    let execution = api.start_replication(policy);
    let done = api.wait_replication(execution, Duration::from_secs(120));
    assert_eq!(
        done["status"],
        "Succeed",
        "{done}\n{}",
        api.replication_logs(execution)
    );

    let scratch = berth.scratch_dir().to_path_buf();
    let (user, password) = berth.admin_credentials();
    let auth = authfile(&scratch, &[(&berth.host_port(), user, password)]);
    let here = berth.host_port();
    let there = upstream.host_port();
    assert_eq!(
        pulled_digest(&auth, &format!("{here}/pulled/lib/app:1"), &scratch),
        app.manifest.digest
    );
    // The index whole, with both platforms' manifests and blobs.
    assert_eq!(
        raw_digest(&auth, &format!("{here}/pulled/lib/multi:1")),
        Some(index.digest.clone())
    );
    reg.assert_image("pulled/lib/multi", &amd.manifest.digest, &amd);
    reg.assert_image("pulled/lib/multi", &arm.manifest.digest, &arm);
    // override off: the differing tag was left alone, and the log says so.
    assert_eq!(
        raw_digest(&auth, &format!("{here}/pulled/lib/app:2")),
        Some(local.manifest.digest.clone())
    );
    let logs = api.replication_logs(execution);
    assert!(logs.contains("override is off"), "{logs}");
    assert_eq!(
        raw_digest(&auth, &format!("{there}/lib/app:2")),
        Some(changed.manifest.digest.clone())
    );

    // With override on, it is replaced.
    let mut body = body;
    body["override"] = json!(true);
    let (status, _, answer) = api.put(&format!("/replication/policies/{policy}"), &body);
    assert_eq!(status, 200, "{answer}");
    let again = api.start_replication(policy);
    let done = api.wait_replication(again, Duration::from_secs(60));
    assert_eq!(done["status"], "Succeed", "{done}");
    assert_eq!(
        pulled_digest(&auth, &format!("{here}/pulled/lib/app:2"), &scratch),
        changed.manifest.digest
    );

    // Who did it is in the audit log.
    let (status, _, logs) = api.get("/audit-logs?q=username=replication&page_size=100");
    assert_eq!(status, 200, "{logs}");
    assert!(
        logs.as_array()
            .unwrap()
            .iter()
            .any(|l| l["operation"] == "push"),
        "{logs}"
    );
}

#[test]
fn berth_to_berth_with_tokens_on_push_and_delete_events_and_back_by_pull() {
    let source = Berth::start();
    let dest = Berth::start();
    let api = Api::admin(&source);
    let dest_api = Api::admin(&dest);
    api.create_project("src", false);
    let (dest_user, dest_password) = dest.admin_credentials();
    let endpoint = api.create_registry(
        "dest",
        "berth",
        &dest.url(),
        Some((dest_user, dest_password)),
    );
    let policy = api.create_replication_policy(&json!({
        "name": "events",
        "dest_registry": {"id": endpoint},
        "dest_namespace": "dst",
        "dest_namespace_replace_count": 1,
        "trigger": {"type": "event_based"},
        "filters": [{"type": "name", "value": "src/**"}],
        "replicate_deletion": true
    }));

    // A skopeo push to the source arrives at the destination by itself,
    // and the destination's project is created on the way.
    let scratch = source.scratch_dir().to_path_buf();
    let (user, password) = source.admin_credentials();
    let auth = authfile(
        &scratch,
        &[
            (&source.host_port(), user, password),
            (&dest.host_port(), dest_user, dest_password),
        ],
    );
    let image = Image::random(2);
    let layout = write_oci_layout(&scratch.join("push"), &image, "1");
    let out = skopeo_copy(
        &auth,
        &layout,
        &format!("docker://{}/src/app:1", source.host_port()),
    );
    assert!(out.status.success(), "push: {}", text(&out));
    let there = format!("{}/dst/app:1", dest.host_port());
    poll(
        "the pushed image at the destination",
        Duration::from_secs(30),
        || raw_digest(&auth, &there).filter(|d| *d == image.manifest.digest),
    );
    assert_eq!(
        pulled_digest(&auth, &there, &scratch),
        image.manifest.digest
    );
    let (status, _, executions) = api.get(&format!(
        "/replication/executions?policy_id={policy}&trigger=event_based"
    ));
    assert_eq!(status, 200, "{executions}");
    assert!(!executions.as_array().unwrap().is_empty(), "{executions}");
    let (status, _, project) = dest_api.get("/projects/dst");
    assert_eq!(
        status, 200,
        "the destination project was created: {project}"
    );

    // A tag added through the API follows; a tag deleted goes alone: the
    // artifact and its other tag stay at the destination.
    let (status, _, answer) = api.post(
        &format!(
            "/projects/src/repositories/app/artifacts/{}/tags",
            image.manifest.digest
        ),
        &json!({"name": "2"}),
    );
    assert_eq!(status, 201, "{answer}");
    let second = format!("{}/dst/app:2", dest.host_port());
    poll(
        "the added tag at the destination",
        Duration::from_secs(30),
        || raw_digest(&auth, &second).filter(|d| *d == image.manifest.digest),
    );
    let (status, _, answer) = api.delete(&format!(
        "/projects/src/repositories/app/artifacts/{}/tags/1",
        image.manifest.digest
    ));
    assert_eq!(status, 200, "{answer}");
    poll(
        "the deleted tag gone at the destination",
        Duration::from_secs(30),
        || raw_digest(&auth, &there).is_none().then_some(()),
    );
    assert_eq!(
        raw_digest(&auth, &second),
        Some(image.manifest.digest.clone()),
        "deleting a tag deleted more than the tag"
    );

    // An artifact deleted at the source is deleted at the destination.
    let (status, _, answer) = api.delete(&format!(
        "/projects/src/repositories/app/artifacts/{}",
        image.manifest.digest
    ));
    assert_eq!(status, 200, "{answer}");
    poll(
        "the deleted image gone at the destination",
        Duration::from_secs(30),
        || raw_digest(&auth, &second).is_none().then_some(()),
    );

    // Pull mode the other way: an image pushed to the destination comes
    // back under the same name.
    let back = Image::random(1);
    admin_registry(&dest).push_image("dst/other", "7", &back);
    let pull = api.create_replication_policy(&json!({
        "name": "back",
        "src_registry": {"id": endpoint},
        "filters": [{"type": "name", "value": "dst/other"}]
    }));
    let execution = api.start_replication(pull);
    let done = api.wait_replication(execution, Duration::from_secs(60));
    assert_eq!(
        done["status"],
        "Succeed",
        "{done}\n{}",
        api.replication_logs(execution)
    );
    assert_eq!(
        pulled_digest(
            &auth,
            &format!("{}/dst/other:7", source.host_port()),
            &scratch
        ),
        back.manifest.digest
    );
}

/// An image with one large random layer (`size` bytes).
fn big_image(size: usize) -> Image {
    let layer = Blob::new(berth_tests::content::random_bytes(size), OCI_LAYER_GZIP);
    let config = config_blob(std::slice::from_ref(&layer.digest));
    let manifest = Blob::new(
        image_manifest(&config, std::slice::from_ref(&layer)),
        OCI_MANIFEST,
    );
    Image {
        layers: vec![berth_tests::content::Layer {
            diff_id: layer.digest.clone(),
            blob: layer,
        }],
        config,
        manifest,
    }
}

fn running_task(api: &Api, execution: i64) -> Option<Value> {
    let (_, _, tasks) = api.get(&format!("/replication/executions/{execution}/tasks"));
    tasks.as_array()?.first().cloned()
}

#[test]
fn stop_within_seconds_and_kill_9_leaves_no_execution_running() {
    let upstream = DockerRegistry::start();
    let mut berth = Berth::start();
    let api = Api::admin(&berth);
    admin_registry(&berth).push_image("library/slow", "1", &big_image(8 << 20));
    let endpoint = api.create_registry("dr", "docker-registry", &upstream.url(), None);
    // 256 KiB/s: the 8 MiB layer takes half a minute.
    let policy = api.create_replication_policy(&json!({
        "name": "slow",
        "dest_registry": {"id": endpoint},
        "filters": [{"type": "name", "value": "library/slow"}],
        "speed": 256,
        "single_active_replication": true
    }));
    let execution = api.start_replication(policy);
    poll("bytes moving", Duration::from_secs(30), || {
        running_task(&api, execution).filter(|t| t["bytes"].as_i64().unwrap_or(0) > 0)
    });
    // One at a time.
    let (status, _, refused) = api.post("/replication/executions", &json!({"policy_id": policy}));
    assert_eq!(status, 409, "{refused}");
    let (status, _, answer) = api.put(&format!("/replication/executions/{execution}"), &json!({}));
    assert_eq!(status, 200, "{answer}");
    let done = api.wait_replication(execution, Duration::from_secs(10));
    assert_eq!(done["status"], "Stopped", "{done}");
    assert_eq!(running_task(&api, execution).unwrap()["status"], "Stopped");

    // kill -9 in the middle of the next one: after the restart it is not
    // left running.
    let execution = api.start_replication(policy);
    poll("bytes moving again", Duration::from_secs(30), || {
        running_task(&api, execution).filter(|t| t["bytes"].as_i64().unwrap_or(0) > 0)
    });
    berth.kill9();
    berth.restart();
    let api = Api::admin(&berth);
    let done = api.wait_replication(execution, Duration::from_secs(60));
    assert_eq!(done["status"], "Failed", "{done}");
    assert!(
        done["status_text"].as_str().unwrap().contains("killed"),
        "{done}"
    );
    assert_eq!(running_task(&api, execution).unwrap()["status"], "Failed");
}

/// docker-registry cannot resume an upload whose last chunk was cut
/// (its upload state then disagrees with the bytes it kept), so the
/// destination here is another berth, whose upload status reports the
/// bytes it actually holds.
#[test]
fn a_200_mib_blob_resumes_by_chunk_after_the_destination_is_killed() {
    let source = Berth::start();
    let mut dest = Berth::start();
    let api = Api::admin(&source);
    let image = big_image(200 << 20);
    admin_registry(&source).push_image("library/big", "1", &image);
    let (user, password) = dest.admin_credentials();
    let (user, password) = (user.to_owned(), password.to_owned());
    let endpoint = api.create_registry("far", "berth", &dest.url(), Some((&user, &password)));
    // 20 MiB/s: about ten seconds, time to cut it in the middle.
    let policy = api.create_replication_policy(&json!({
        "name": "big",
        "dest_registry": {"id": endpoint},
        "filters": [{"type": "name", "value": "library/big"}],
        "copy_by_chunk": true,
        "speed": 20480
    }));
    let execution = api.start_replication(policy);
    poll("a third of the blob sent", Duration::from_secs(60), || {
        running_task(&api, execution).filter(|t| t["bytes"].as_i64().unwrap_or(0) > 70 << 20)
    });
    dest.kill9();
    poll("the cut noticed", Duration::from_secs(30), || {
        api.replication_logs(execution)
            .contains("attempt 1 failed")
            .then_some(())
    });
    dest.restart();
    let done = api.wait_replication(execution, Duration::from_secs(120));
    let logs = api.replication_logs(execution);
    assert_eq!(done["status"], "Succeed", "{done}\n{logs}");
    let resumed_at: u64 = logs
        .lines()
        .find_map(|l| {
            l.split_once("at byte ")
                .and_then(|(_, n)| n.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("resumed, not restarted: {logs}"));
    assert!(resumed_at >= 16 << 20, "resumed at {resumed_at}: {logs}");
    // The destination verified the digest on completion; it serves the
    // image with the source's digest and the layer's full size.
    let far = Registry::with_basic_auth(&dest.url(), &user, &password);
    let head = far.head_blob("library/big", &image.layers[0].blob.digest);
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        (200u64 << 20).to_string().as_str()
    );
    let scratch = source.scratch_dir().to_path_buf();
    let auth = authfile(&scratch, &[(&dest.host_port(), &user, &password)]);
    assert_eq!(
        raw_digest(&auth, &format!("{}/library/big:1", dest.host_port())),
        Some(image.manifest.digest.clone())
    );
}

#[test]
fn bad_policies_are_refused_with_the_field_named() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let endpoint = api.create_registry("dr", "docker-registry", "http://127.0.0.1:9", None);
    let cases = [
        (json!({"name": "x"}), "src_registry"),
        (
            json!({"name": "x", "src_registry": {"id": endpoint}, "dest_registry": {"id": endpoint}}),
            "this registry",
        ),
        (
            json!({"name": "x", "dest_registry": {"id": 999}}),
            "does not exist",
        ),
        (
            json!({"name": "", "dest_registry": {"id": endpoint}}),
            "name",
        ),
        (
            json!({"name": "x", "src_registry": {"id": endpoint}, "trigger": {"type": "event_based"}}),
            "push mode",
        ),
        (
            json!({"name": "x", "dest_registry": {"id": endpoint}, "trigger": {"type": "scheduled", "trigger_settings": {"cron": "* * * * * *"}}}),
            "more than once a minute",
        ),
        (
            json!({"name": "x", "dest_registry": {"id": endpoint}, "trigger": {"type": "scheduled", "trigger_settings": {"cron": "nope"}}}),
            "cron",
        ),
        (
            json!({"name": "x", "src_registry": {"id": endpoint}, "filters": [{"type": "label", "value": ["a"]}]}),
            "push mode",
        ),
        (
            json!({"name": "x", "dest_registry": {"id": endpoint}, "filters": [{"type": "name", "value": "a/{b"}]}),
            "name filter",
        ),
        (
            json!({"name": "x", "dest_registry": {"id": endpoint}, "dest_namespace": "UPPER"}),
            "dest_namespace",
        ),
        (
            json!({"name": "x", "dest_registry": {"id": endpoint}, "speed": -5}),
            "speed",
        ),
    ];
    for (body, needle) in cases {
        let (status, _, answer) = api.post("/replication/policies", &body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer.to_string().contains(needle),
            "{body}: `{needle}` not in {answer}"
        );
    }
    let ok = json!({"name": "x", "dest_registry": {"id": endpoint}});
    api.create_replication_policy(&ok);
    let (status, _, answer) = api.post("/replication/policies", &ok);
    assert_eq!(status, 409, "{answer}");
    let (status, _, answer) = api.get("/replication/executions/12345");
    assert_eq!(status, 404, "{answer}");
    // Not for project users.
    api.create_user("alice", "Alice-pw-123");
    let alice = Api::as_user(&berth, "alice", "Alice-pw-123");
    let (status, _, answer) = alice.get("/replication/policies");
    assert_eq!(status, 403, "{answer}");
    let (status, _, answer) = api.get("/replication/adapters");
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer
            .as_array()
            .unwrap()
            .contains(&json!("docker-registry")),
        "{answer}"
    );
}

/// harborapi (PyPI), an async client of Harbor's API that validates every
/// answer against Harbor's models, drives a replication from policy to log.
const HARBORAPI_SCRIPT: &str = r#"
import asyncio, json, os
from harborapi import HarborAsyncClient
from harborapi.models import ReplicationFilter, ReplicationPolicy, ReplicationTrigger, Registry

async def main():
    c = HarborAsyncClient(url=os.environ["BERTH_URL"] + "/api/v2.0",
                          username="admin", secret=os.environ["BERTH_PASSWORD"])
    endpoint = int(os.environ["ENDPOINT"])
    created = await c.create_replication_policy(ReplicationPolicy(
        name="via-harborapi", dest_registry=Registry(id=endpoint),
        filters=[ReplicationFilter(type="name", value="library/**")],
        trigger=ReplicationTrigger(type="manual"), enabled=True, override=True))
    policy_id = int(created.rsplit("/", 1)[1])
    policy = await c.get_replication_policy(policy_id)
    started = await c.start_replication(policy_id)
    execution_id = int(started.rsplit("/", 1)[1])
    for _ in range(600):
        execution = await c.get_replication(execution_id)
        if execution.status != "InProgress":
            break
        await asyncio.sleep(0.2)
    executions = await c.get_replications(policy_id=policy_id)
    tasks = await c.get_replication_tasks(execution_id)
    log = await c.get_replication_task_log(execution_id, tasks[0].id)
    policies = await c.get_replication_policies()
    print(json.dumps({
        "name": policy.name, "dest": policy.dest_registry.id, "src": policy.src_registry.name,
        "status": execution.status, "executions": [e.id for e in executions],
        "tasks": [[t.src_resource, t.dst_resource, t.status] for t in tasks],
        "log": log, "policies": [p.name for p in policies]}))

asyncio.run(main())
"#;

#[test]
fn harborapi_creates_starts_and_reads_a_replication_through_harbors_models() {
    let upstream = DockerRegistry::start();
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let image = Image::random(1);
    admin_registry(&berth).push_image("library/hello", "1", &image);
    let endpoint = api.create_registry("dr", "docker-registry", &upstream.url(), None);
    let endpoint = endpoint.to_string();
    let out = run(
        "python3",
        &["-c", HARBORAPI_SCRIPT],
        &[
            ("BERTH_URL", berth.url().as_ref()),
            ("BERTH_PASSWORD", berth.admin_password().as_ref()),
            ("ENDPOINT", endpoint.as_ref()),
        ],
        None,
    );
    assert!(out.status.success(), "harborapi: {}", text(&out));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["name"], "via-harborapi", "{got}");
    assert_eq!(got["dest"].to_string(), endpoint, "{got}");
    assert_eq!(got["src"], "Local", "{got}");
    assert_eq!(got["status"], "Succeed", "{got}");
    assert_eq!(got["executions"].as_array().unwrap().len(), 1, "{got}");
    assert_eq!(
        got["tasks"],
        json!([["library/hello", "library/hello", "Succeed"]]),
        "{got}"
    );
    assert!(
        got["log"]
            .as_str()
            .unwrap()
            .contains("copied library/hello:1"),
        "{got}"
    );
    assert_eq!(got["policies"], json!(["via-harborapi"]), "{got}");
    let up = Registry::new(&upstream.url());
    up.assert_image("library/hello", "1", &image);
}

/// A registry that lies, for the tests of what a hostile source can do:
/// `endless` lists a catalog whose every page links to one more;
/// `borrowed` serves a manifest whose layer it does not have (a digest it
/// learnt from elsewhere). Prints its port, then serves until killed.
const FAKE_REGISTRY: &str = r#"
import http.server, json, sys
mode, layer, config = sys.argv[1], sys.argv[2], sys.argv[3]
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 10}]}).encode()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def answer(self, code, body=b"", ctype="application/json", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra: self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD": self.wfile.write(body)
    def do_HEAD(self): self.do_GET()
    def do_GET(self):
        p = self.path
        if p == "/v2/": return self.answer(200, b"{}")
        if mode == "offsite" and p.startswith("/v2/_catalog"):
            return self.answer(200, json.dumps({"repositories": ["evil/a"]}).encode(),
                extra=[("Link", '<http://127.0.0.1:9/v2/_catalog?n=1>; rel="next"')])
        if mode == "liar" and "/tags/list" in p:
            return self.answer(200, json.dumps({"name": "evil/x", "tags": ["1", "v" + "1." * 500000]}).encode())
        if mode == "liar" and p.endswith("/blobs/" + layer):
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 30))
            self.end_headers()
            try:
                for _ in range(1 << 14): self.wfile.write(bytes(65536))
            except Exception: pass
            return
        if p.startswith("/v2/_catalog"):
            n = int(p.split("last=x")[1]) if "last=x" in p else 0
            names = ["evil/r%07d" % (n * 1000 + i) for i in range(1000)]
            return self.answer(200, json.dumps({"repositories": names}).encode(),
                extra=[("Link", '</v2/_catalog?n=1000&last=x%d>; rel="next"' % (n + 1))])
        if "/tags/list" in p: return self.answer(200, json.dumps({"name": "evil/x", "tags": ["1"]}).encode())
        if "/manifests/" in p: return self.answer(200, manifest, "application/vnd.oci.image.manifest.v1+json")
        if p.endswith("/blobs/" + config): return self.answer(200, b"{}", "application/octet-stream")
        return self.answer(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"no"}]}')
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

struct Fake(std::process::Child, u16);

impl Fake {
    fn start(mode: &str, layer: &str, config: &str) -> Fake {
        use std::io::BufRead;
        let mut child = std::process::Command::new("python3")
            .args(["-c", FAKE_REGISTRY, mode, layer, config])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Fake(child, line.trim().parse().unwrap())
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.1)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_hostile_source_neither_exhausts_berth_nor_borrows_another_projects_blobs() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    // A private project holds a layer the hostile source learnt the
    // digest of.
    api.create_project("secret", false);
    let private = Image::random(1);
    admin_registry(&berth).push_image("secret/app", "1", &private);
    let layer = private.layers[0].blob.digest.clone();
    let config = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    // Its catalog never ends: the execution fails once it passed the
    // limit, instead of listing until memory runs out.
    let endless = Fake::start("endless", &layer, config);
    let endpoint = api.create_registry("endless", "docker-registry", &endless.url(), None);
    let policy = api.create_replication_policy(&json!({
        "name": "endless", "src_registry": {"id": endpoint}, "dest_namespace": "mirror"
    }));
    let execution = api.start_replication(policy);
    let done = api.wait_replication(execution, Duration::from_secs(120));
    assert_eq!(done["status"], "Failed", "{done}");
    assert!(
        done["status_text"]
            .as_str()
            .unwrap()
            .contains("more than 100000 names"),
        "{done}"
    );

    // Its manifest names the private layer, which it does not serve: the
    // copy fails, and the layer is not readable through the public mirror.
    let borrowed = Fake::start("borrowed", &layer, config);
    let endpoint = api.create_registry("borrowed", "docker-registry", &borrowed.url(), None);
    api.create_project("mirror", true);
    let policy = api.create_replication_policy(&json!({
        "name": "borrowed", "src_registry": {"id": endpoint},
        "filters": [{"type": "name", "value": "evil/x"}], "dest_namespace": "mirror"
    }));
    let execution = api.start_replication(policy);
    let done = api.wait_replication(execution, Duration::from_secs(120));
    assert_eq!(
        done["status"],
        "Failed",
        "{done}\n{}",
        api.replication_logs(execution)
    );
    let anonymous = Registry::new(&berth.url());
    assert_eq!(anonymous.head_blob("mirror/x", &layer).status(), 404);
    assert_eq!(anonymous.get_manifest("mirror/x", "1").status(), 404);

    // Its next catalog page is on another host: refused, not fetched.
    let offsite = Fake::start("offsite", &layer, config);
    let endpoint = api.create_registry("offsite", "docker-registry", &offsite.url(), None);
    let policy = api.create_replication_policy(&json!({
        "name": "offsite", "src_registry": {"id": endpoint}, "dest_namespace": "mirror"
    }));
    let execution = api.start_replication(policy);
    let done = api.wait_replication(execution, Duration::from_secs(60));
    assert_eq!(done["status"], "Failed", "{done}");
    assert!(
        done["status_text"]
            .as_str()
            .unwrap()
            .contains("the next page is on another host"),
        "{done}"
    );

    // It lists a megabyte-long "tag" (left out: it never reaches the
    // matcher) and serves the layer its manifest says is 10 bytes as a
    // gigabyte: refused before anything is written.
    let liar = Fake::start("liar", &layer, config);
    let endpoint = api.create_registry("liar", "docker-registry", &liar.url(), None);
    let policy = api.create_replication_policy(&json!({
        "name": "liar", "src_registry": {"id": endpoint}, "dest_namespace": "mirror",
        "filters": [{"type": "name", "value": "evil/x"}, {"type": "tag", "value": "{1,v*.*-alpine}"}]
    }));
    let execution = api.start_replication(policy);
    let done = api.wait_replication(execution, Duration::from_secs(120));
    let logs = api.replication_logs(execution);
    assert_eq!(done["status"], "Failed", "{done}\n{logs}");
    assert!(logs.contains("1 tag(s) of evil/x selected"), "{logs}");
    assert!(logs.contains("but its manifest says 10"), "{logs}");
    assert!(!logs.contains("1.1.1.1.1."), "the long tag was logged");
    fn bytes_under(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| match e.metadata() {
                        Ok(m) if m.is_dir() => bytes_under(&e.path()),
                        Ok(m) => m.len(),
                        Err(_) => 0,
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    let stored = bytes_under(berth.data_dir());
    assert!(stored < 64 << 20, "{stored} bytes under the data directory");
}

#[test]
fn a_speed_limited_upload_longer_than_a_request_timeout_completes() {
    let upstream = DockerRegistry::start();
    let berth = Berth::start();
    let api = Api::admin(&berth);
    // About 26 s at 50 KiB/s: longer than any per-read limit.
    let image = Image::with_layers(vec![random_layer(1, 1_300_000)]);
    admin_registry(&berth).push_image("library/slow", "1", &image);
    let endpoint = api.create_registry("dr", "docker-registry", &upstream.url(), None);
    let policy = api.create_replication_policy(&json!({
        "name": "slow", "dest_registry": {"id": endpoint},
        "filters": [{"type": "name", "value": "library/slow"}],
        "speed": 50, "enabled": true
    }));
    let execution = api.start_replication(policy);
    let done = api.wait_replication(execution, Duration::from_secs(180));
    assert_eq!(
        done["status"],
        "Succeed",
        "{done}\n{}",
        api.replication_logs(execution)
    );
    Registry::new(&upstream.url()).assert_image("library/slow", "1", &image);
}

#[test]
fn a_scheduled_policy_fires_by_its_cron_and_counts_in_metrics() {
    let upstream = DockerRegistry::start();
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let image = Image::random(2);
    admin_registry(&berth).push_image("library/nightly", "1", &image);
    let endpoint = api.create_registry("dr", "docker-registry", &upstream.url(), None);
    // At a second a few seconds from now, every minute.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let cron = format!("{} * * * * *", (now + 5) % 60);
    let policy = api.create_replication_policy(&json!({
        "name": "nightly",
        "dest_registry": {"id": endpoint},
        "filters": [{"type": "name", "value": "library/nightly"}],
        "trigger": {"type": "scheduled", "trigger_settings": {"cron": cron}}
    }));
    let execution = poll("a scheduled execution", Duration::from_secs(90), || {
        let (_, _, list) = api.get(&format!(
            "/replication/executions?policy_id={policy}&trigger=scheduled"
        ));
        list.as_array()?.first()?["id"].as_i64()
    });
    let done = api.wait_replication(execution, Duration::from_secs(60));
    assert_eq!(done["status"], "Succeed", "{done}");
    Registry::new(&upstream.url()).assert_image("library/nightly", "1", &image);

    // What it moved is in /metrics, by policy.
    let (user, password) = berth.admin_credentials();
    let text = berth_tests::registry::http_client(Some((user, password)))
        .get(format!("{}/metrics", berth.url()))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{policy=\"nightly\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} for the policy not in /metrics:\n{text}"))
    };
    let blobs: u64 = image.blobs().iter().map(|b| b.size()).sum();
    assert_eq!(value("berth_replication_bytes_total") as u64, blobs);
    assert_eq!(value("berth_replication_artifacts_total"), 1.0);
    // The audit log names the execution.
    let (_, _, logs) = api.get("/audit-logs?q=resource_type=replication_execution&page_size=100");
    assert!(
        logs.as_array().unwrap().iter().any(|l| l["resource"]
            .as_str()
            .unwrap_or("")
            .starts_with("nightly #")),
        "{logs}"
    );
}
