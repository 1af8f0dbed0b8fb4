//! Webhooks against a receiver the test runs: skopeo's push and pull and
//! the API's delete each arrive once in Harbor's payload; a receiver that
//! is down gets its events once it is back, also across a kill -9 of
//! berth; quota, retention and replication events; who may manage them;
//! and harborapi reading them through Harbor's models.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_tests::content::random_layer;
use berth_tests::receiver::{Received, Receiver};
use berth_tests::tools::{layout_digest, skopeo_copy, skopeo_login, text, write_oci_layout};
use berth_tests::{Api, Berth, Image, Registry};
use serde_json::{json, Value};

const WITHIN: Duration = Duration::from_secs(30);

fn admin_authfile(berth: &Berth) -> PathBuf {
    let file = berth.scratch_dir().join("auth.json");
    let (user, password) = berth.admin_credentials();
    let out = skopeo_login(&file, &berth.host_port(), user, password);
    assert!(out.status.success(), "skopeo login: {}", text(&out));
    file
}

fn skopeo_push(berth: &Berth, auth: &Path, image: &Image, reference: &str) {
    let dir = berth
        .scratch_dir()
        .join(format!("push-{}", berth_tests::content::random_suffix()));
    let layout = write_oci_layout(&dir, image, "t");
    let out = skopeo_copy(
        auth,
        &layout,
        &format!("docker://{}/{reference}", berth.host_port()),
    );
    assert!(
        out.status.success(),
        "skopeo push {reference}: {}",
        text(&out)
    );
}

fn of_type<'a>(kind: &'a str) -> impl Fn(&Received) -> bool + 'a {
    move |r| r.json()["type"] == kind
}

fn create_policy(api: &Api, project: &str, body: &Value) -> i64 {
    api.post_created(&format!("/projects/{project}/webhook/policies"), body)
}

fn policy(name: &str, address: &str, events: &[&str], format: &str) -> Value {
    json!({
        "name": name,
        "description": "to the test's receiver",
        "targets": [{
            "type": "http",
            "address": address,
            "auth_header": "Bearer hook-secret-7",
            "skip_cert_verify": false,
            "payload_format": format
        }],
        "event_types": events,
        "enabled": true
    })
}

/// The log of the first task of each of a policy's executions, joined.
fn delivery_logs(api: &Api, project: &str, policy: i64) -> String {
    let base = format!("/projects/{project}/webhook/policies/{policy}/executions");
    let (status, _, executions) = api.get(&format!("{base}?page_size=100"));
    assert_eq!(status, 200, "{executions}");
    let mut out = String::new();
    for e in executions.as_array().unwrap() {
        let (status, _, tasks) = api.get(&format!("{base}/{}/tasks", e["id"]));
        assert_eq!(status, 200, "{tasks}");
        for t in tasks.as_array().unwrap() {
            let (status, _, log) = api.get(&format!("{base}/{}/tasks/{}/log", e["id"], t["id"]));
            assert_eq!(status, 200, "{log}");
            out.push_str(log.as_str().unwrap_or_default());
        }
    }
    out
}

#[test]
fn push_pull_and_delete_each_arrive_once_in_harbors_payload() {
    let receiver = Receiver::start();
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let project_id = api.create_project("hooks", false);
    let id = create_policy(
        &api,
        "hooks",
        &policy(
            "all",
            &receiver.url(),
            &["PUSH_ARTIFACT", "PULL_ARTIFACT", "DELETE_ARTIFACT"],
            "Default",
        ),
    );

    // The policy reads back in Harbor's shape, without its secret.
    let (status, _, got) = api.get(&format!("/projects/hooks/webhook/policies/{id}"));
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["name"], "all", "{got}");
    assert_eq!(got["project_id"], project_id, "{got}");
    assert_eq!(got["creator"], "admin", "{got}");
    assert_eq!(got["targets"][0]["address"], receiver.url(), "{got}");
    assert!(got["targets"][0].get("auth_header").is_none(), "{got}");
    assert!(!got.to_string().contains("hook-secret-7"), "{got}");

    let auth = admin_authfile(&berth);
    let image = Image::random(2);
    skopeo_push(&berth, &auth, &image, "hooks/app:v1");
    let pushes = receiver.wait_for("the push event", 1, WITHIN, of_type("PUSH_ARTIFACT"));
    let push = pushes[0].json();
    assert_eq!(push["operator"], "admin", "{push}");
    assert!(push["occur_at"].as_i64().unwrap() > 1_700_000_000, "{push}");
    let resource = &push["event_data"]["resources"][0];
    assert_eq!(resource["digest"], image.manifest.digest, "{push}");
    assert_eq!(resource["tag"], "v1", "{push}");
    // Without `external_url` no host is named (a request's Host header is
    // the client's to choose).
    assert_eq!(resource["resource_url"], "hooks/app:v1", "{push}");
    let repository = &push["event_data"]["repository"];
    assert_eq!(repository["repo_full_name"], "hooks/app", "{push}");
    assert_eq!(repository["namespace"], "hooks", "{push}");
    assert_eq!(repository["name"], "app", "{push}");
    assert_eq!(repository["repo_type"], "private", "{push}");
    assert_eq!(
        pushes[0].headers["authorization"], "Bearer hook-secret-7",
        "the target's auth header is sent"
    );
    assert_eq!(pushes[0].headers["content-type"], "application/json");
    assert_eq!(pushes[0].method, "POST");
    assert_eq!(pushes[0].path, "/hook");

    // A pull by skopeo (one manifest GET).
    let pulled = berth.scratch_dir().join("pulled");
    let out = skopeo_copy(
        &auth,
        &format!("docker://{}/hooks/app:v1", berth.host_port()),
        &format!("oci:{}:t", pulled.display()),
    );
    assert!(out.status.success(), "skopeo pull: {}", text(&out));
    assert_eq!(layout_digest(&pulled, "t"), image.manifest.digest);
    let pulls = receiver.wait_for("the pull event", 1, WITHIN, of_type("PULL_ARTIFACT"));
    assert_eq!(
        pulls[0].json()["event_data"]["resources"][0]["digest"],
        image.manifest.digest
    );

    // A delete through the API.
    let (status, _, answer) = api.delete(&format!(
        "/projects/hooks/repositories/app/artifacts/{}",
        image.manifest.digest
    ));
    assert_eq!(status, 200, "{answer}");
    let deletes = receiver.wait_for("the delete event", 1, WITHIN, of_type("DELETE_ARTIFACT"));
    assert_eq!(
        deletes[0].json()["event_data"]["resources"][0]["digest"],
        image.manifest.digest
    );

    // Each arrived once: nothing more comes.
    std::thread::sleep(Duration::from_secs(3));
    let kinds: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["PUSH_ARTIFACT", "PULL_ARTIFACT", "DELETE_ARTIFACT"],
        "what the receiver got"
    );

    // Every attempt is on record, with the receiver's status.
    let base = format!("/projects/hooks/webhook/policies/{id}/executions");
    let (status, headers, executions) = api.get(&base);
    assert_eq!(status, 200, "{executions}");
    assert_eq!(headers["x-total-count"], "3", "{executions}");
    for e in executions.as_array().unwrap() {
        assert_eq!(e["status"], "Success", "{e}");
        assert_eq!(e["vendor_type"], "WEBHOOK", "{e}");
        assert_eq!(e["vendor_id"], id, "{e}");
    }
    let logs = delivery_logs(&api, "hooks", id);
    assert_eq!(logs.matches("delivered: 200 OK").count(), 3, "{logs}");
    assert!(!logs.contains("hook-secret-7"), "{logs}");
    let (status, _, last) = api.get("/projects/hooks/webhook/lasttrigger");
    assert_eq!(status, 200, "{last}");
    assert_eq!(last.as_array().unwrap().len(), 3, "{last}");
    let (status, _, events) = api.get("/projects/hooks/webhook/events");
    assert_eq!(status, 200, "{events}");
    assert!(
        events["event_type"]
            .as_array()
            .unwrap()
            .contains(&json!("QUOTA_WARNING")),
        "{events}"
    );

    // A disabled policy hears nothing; a PUT without the auth header keeps it.
    let mut body = policy("all", &receiver.url(), &["PUSH_ARTIFACT"], "Default");
    body["targets"][0]
        .as_object_mut()
        .unwrap()
        .remove("auth_header");
    body["enabled"] = json!(false);
    let (status, _, answer) = api.put(&format!("/projects/hooks/webhook/policies/{id}"), &body);
    assert_eq!(status, 200, "{answer}");
    skopeo_push(&berth, &auth, &Image::random(1), "hooks/app:v2");
    body["enabled"] = json!(true);
    let (status, _, answer) = api.put(&format!("/projects/hooks/webhook/policies/{id}"), &body);
    assert_eq!(status, 200, "{answer}");
    skopeo_push(&berth, &auth, &Image::random(1), "hooks/app:v3");
    let pushes = receiver.wait_for(
        "the push after re-enabling",
        2,
        WITHIN,
        of_type("PUSH_ARTIFACT"),
    );
    assert_eq!(pushes[1].json()["event_data"]["resources"][0]["tag"], "v3");
    assert_eq!(pushes[1].headers["authorization"], "Bearer hook-secret-7");
    assert_eq!(
        receiver
            .received()
            .iter()
            .filter(|r| r.json()["event_data"]["resources"][0]["tag"] == "v2")
            .count(),
        0,
        "a push while the policy was disabled was sent"
    );
}

#[test]
fn a_receiver_that_is_down_gets_its_events_once_back_also_across_a_kill_9() {
    let mut receiver = Receiver::start();
    receiver.down();
    let mut berth = Berth::start();
    let api = Api::admin(&berth);
    let project = api.create_project("late", true);
    let id = create_policy(
        &api,
        "late",
        &policy("ce", &receiver.url(), &["PUSH_ARTIFACT"], "CloudEvents"),
    );
    let reg = {
        let (user, password) = berth.admin_credentials();
        Registry::with_basic_auth(&berth.url(), user, password)
    };

    // Queued before the push answered: a kill -9 right after loses nothing.
    let first = Image::random(1);
    reg.push_image("late/app", "1", &first);
    berth.kill9();
    berth.restart();

    // Attempts fail while the receiver is down, and say so. (A delivery
    // the killed process had claimed waits for its claim to run out, and
    // the receiver's other deliveries wait behind it: one at a time.)
    let second = Image::random(1);
    reg.push_image("late/app", "2", &second);
    let api = Api::admin(&berth);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let logs = delivery_logs(&api, "late", id);
        if logs.matches("not delivered").count() >= 2 {
            assert!(logs.contains("next attempt in"), "{logs}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failed attempt logged: {logs}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(receiver.received().is_empty());

    receiver.up();
    let got = receiver.wait_for("both queued events", 2, Duration::from_secs(90), |r| {
        r.json()["type"] == "harbor.artifact.pushed"
    });
    let mut digests: Vec<String> = got
        .iter()
        .map(|r| {
            let v = r.json();
            assert_eq!(v["specversion"], "1.0", "{v}");
            assert_eq!(
                v["source"],
                format!("/projects/{project}/webhook/policies/{id}"),
                "{v}"
            );
            assert_eq!(r.headers["content-type"], "application/cloudevents+json");
            assert_eq!(v["data"]["repository"]["repo_type"], "public", "{v}");
            v["data"]["resources"][0]["digest"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    digests.sort();
    let mut want = vec![
        first.manifest.digest.clone(),
        second.manifest.digest.clone(),
    ];
    want.sort();
    assert_eq!(digests, want);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(receiver.received().len(), 2, "an event arrived twice");
    let (status, _, jobs) = api.get(&format!("/projects/late/webhook/jobs?policy_id={id}"));
    assert_eq!(status, 200, "{jobs}");
    assert_eq!(jobs.as_array().unwrap().len(), 2, "{jobs}");
    for job in jobs.as_array().unwrap() {
        assert_eq!(job["status"], "Success", "{job}");
    }
}

#[test]
fn quota_retention_and_replication_events() {
    let receiver = Receiver::start();
    let berth = Berth::start();
    let api = Api::admin(&berth);
    api.create_project_with_quota("small", 40_000);
    let ops = api.create_project("ops", false);
    for project in ["small", "ops"] {
        create_policy(
            &api,
            project,
            &policy(
                "ops",
                &receiver.url(),
                &[
                    "QUOTA_EXCEED",
                    "QUOTA_WARNING",
                    "TAG_RETENTION",
                    "REPLICATION",
                ],
                "Default",
            ),
        );
    }
    let auth = admin_authfile(&berth);

    // About 37 KB of 40: past 85%, a warning.
    let big = Image::with_layers(vec![random_layer(1, 36_000)]);
    skopeo_push(&berth, &auth, &big, "small/app:1");
    let warnings = receiver.wait_for("the quota warning", 1, WITHIN, of_type("QUOTA_WARNING"));
    let details = warnings[0].json()["event_data"]["custom_attributes"]["Details"].clone();
    assert!(details.as_str().unwrap().contains("85%"), "{details}");
    // Past the limit: refused, and said.
    let more = Image::with_layers(vec![random_layer(1, 20_000)]);
    let dir = berth.scratch_dir().join("more");
    let layout = write_oci_layout(&dir, &more, "t");
    let out = skopeo_copy(
        &auth,
        &layout,
        &format!("docker://{}/small/app:2", berth.host_port()),
    );
    assert!(
        !out.status.success(),
        "the push past the quota was accepted"
    );
    let exceeded = receiver.wait_for("the quota event", 1, WITHIN, of_type("QUOTA_EXCEED"));
    let details = exceeded[0].json()["event_data"]["custom_attributes"]["Details"].clone();
    assert!(
        details.as_str().unwrap().contains("storage quota"),
        "{details}"
    );

    // A retention run that keeps `keep` and deletes `old`.
    let old = Image::random(1);
    skopeo_push(&berth, &auth, &old, "ops/app:old");
    skopeo_push(&berth, &auth, &Image::random(1), "ops/app:keep");
    let (status, headers, answer) = api.post(
        "/retentions",
        &json!({
            "algorithm": "or",
            "scope": {"level": "project", "ref": ops},
            "trigger": {"kind": "Schedule", "settings": {"cron": ""}, "references": {}},
            "rules": [{
                "disabled": false, "action": "retain", "template": "always", "params": {},
                "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "keep"}],
                "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]}
            }]
        }),
    );
    assert_eq!(status, 201, "{answer}");
    let retention = headers["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let (status, _, answer) = api.post(
        &format!("/retentions/{retention}/executions"),
        &json!({"dry_run": false}),
    );
    assert_eq!(status, 201, "{answer}");
    let runs = receiver.wait_for("the retention event", 1, WITHIN, of_type("TAG_RETENTION"));
    let r = runs[0].json();
    let summary = &r["event_data"]["retention"];
    assert_eq!(summary["project_name"], "ops", "{r}");
    assert_eq!(summary["result"], "SUCCESS", "{r}");
    assert_eq!(summary["total"], 2, "{r}");
    assert_eq!(summary["retained"], 1, "{r}");
    assert_eq!(summary["deleted_artifacts"][0]["tag"], "old", "{r}");
    assert_eq!(
        summary["deleted_artifacts"][0]["digest"], old.manifest.digest,
        "{r}"
    );
    assert_eq!(summary["deleted_artifacts"][0]["repository"], "app", "{r}");

    // A replication from the project tells its webhooks when a task ends.
    let other = Berth::start();
    let (ou, op) = other.admin_credentials();
    let endpoint = api.create_registry("other", "berth", &other.url(), Some((ou, op)));
    let replication = api.create_replication_policy(&json!({
        "name": "out",
        "dest_registry": {"id": endpoint},
        "filters": [{"type": "name", "value": "ops/**"}],
        "trigger": {"type": "manual"},
        "enabled": true
    }));
    let execution = api.start_replication(replication);
    let done = api.wait_replication(execution, Duration::from_secs(60));
    assert_eq!(done["status"], "Succeed", "{done}");
    let told = receiver.wait_for("the replication event", 1, WITHIN, of_type("REPLICATION"));
    let r = told[0].json();
    assert_eq!(
        r["event_data"]["replication"]["job_status"], "Succeed",
        "{r}"
    );
    assert_eq!(
        r["event_data"]["replication"]["src_resource"]["repository"], "ops/app",
        "{r}"
    );
}

#[test]
fn who_may_read_and_manage_webhooks_and_bad_policies_are_refused() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    api.create_project("guarded", false);
    api.create_project("elsewhere", false);
    for (user, role) in [("maint", 4), ("dev", 2)] {
        api.create_user(user, "Passw0rd-webhooks");
        api.add_member("guarded", user, role);
    }
    let body = policy("p", "https://hooks.example.org/in", &["PUSH_ARTIFACT"], "");
    let id = create_policy(&api, "guarded", &body);
    let maint = Api::as_user(&berth, "maint", "Passw0rd-webhooks");
    let dev = Api::as_user(&berth, "dev", "Passw0rd-webhooks");

    let (status, _, list) = maint.get("/projects/guarded/webhook/policies");
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let (status, _, answer) = maint.post("/projects/guarded/webhook/policies", &body);
    assert_eq!(status, 403, "{answer}");
    let (status, _, answer) = maint.delete(&format!("/projects/guarded/webhook/policies/{id}"));
    assert_eq!(status, 403, "{answer}");
    let (status, _, answer) = dev.get("/projects/guarded/webhook/policies");
    assert_eq!(status, 403, "{answer}");
    // Another project's policy is not reached through this one.
    let (status, _, answer) = api.get(&format!("/projects/elsewhere/webhook/policies/{id}"));
    assert_eq!(status, 404, "{answer}");
    let (status, _, answer) = api.delete(&format!("/projects/elsewhere/webhook/policies/{id}"));
    assert_eq!(status, 404, "{answer}");

    // Bad policies: a 400 that says what to fix; nothing stored.
    let bad = [
        (
            json!({"name": "x", "targets": [], "event_types": ["PUSH_ARTIFACT"]}),
            "targets",
        ),
        (
            json!({"name": "x", "targets": [{"address": "ftp://h/x"}], "event_types": ["PUSH_ARTIFACT"]}),
            "http",
        ),
        (
            json!({"name": "x", "targets": [{"address": "https://u:p@h/x"}], "event_types": ["PUSH_ARTIFACT"]}),
            "auth_header",
        ),
        (
            json!({"name": "x", "targets": [{"address": "https://h/x"}], "event_types": ["PUSHED"]}),
            "PUSH_ARTIFACT",
        ),
        (
            json!({"name": "x", "targets": [{"address": "https://h/x", "auth_header": "a\r\nX-Evil: 1"}], "event_types": ["PUSH_ARTIFACT"]}),
            "line breaks",
        ),
        (
            json!({"name": "x", "targets": [{"address": "https://h/x", "payload_format": "xml"}], "event_types": ["PUSH_ARTIFACT"]}),
            "CloudEvents",
        ),
        (
            json!({"name": "", "targets": [{"address": "https://h/x"}], "event_types": ["PUSH_ARTIFACT"]}),
            "name",
        ),
        (
            json!({"name": "p", "targets": [{"address": "https://h/x"}], "event_types": ["PUSH_ARTIFACT"]}),
            "choose another name",
        ),
        (
            json!({"name": "x", "targets": [{"address": "https://h/x"}, {"address": "https://h/x"}], "event_types": ["PUSH_ARTIFACT"]}),
            "twice",
        ),
        (
            json!({"name": "x", "targets": [{"address": "https://h/x\r\nX-Evil: 1"}], "event_types": ["PUSH_ARTIFACT"]}),
            "control characters",
        ),
    ];
    for (body, says) in bad {
        let (status, _, answer) = api.post("/projects/guarded/webhook/policies", &body);
        assert!(status == 400 || status == 409, "{body}: {status} {answer}");
        assert!(answer.to_string().contains(says), "{body}: {answer}");
    }
    let (_, headers, _) = api.get("/projects/guarded/webhook/policies");
    assert_eq!(headers["x-total-count"], "1");
    let (status, _, answer) = api.get("/projects/guarded/webhook/jobs");
    assert_eq!(status, 400, "{answer}");
    let (status, _, answer) = api.get("/projects/guarded/webhook/policies/abc");
    assert_eq!(status, 400, "{answer}");

    // Deleting the project takes its policies along.
    let (status, _, answer) = api.delete(&format!("/projects/guarded/webhook/policies/{id}"));
    assert_eq!(status, 200, "{answer}");
    let (status, _, answer) = api.get(&format!("/projects/guarded/webhook/policies/{id}"));
    assert_eq!(status, 404, "{answer}");
}

/// harborapi (PyPI) creates, reads and lists webhook policies and their
/// jobs, parsing berth's answers with Harbor's models.
const HARBORAPI_SCRIPT: &str = r#"
import asyncio, json, os
from harborapi import HarborAsyncClient
from harborapi.models import WebhookPolicy, WebhookTargetObject

async def main():
    c = HarborAsyncClient(url=os.environ["BERTH_URL"] + "/api/v2.0",
                          username="admin", secret=os.environ["BERTH_PASSWORD"])
    location = await c.create_webhook_policy("library", WebhookPolicy(
        name="via-harborapi", enabled=True, event_types=["PUSH_ARTIFACT", "DELETE_ARTIFACT"],
        targets=[WebhookTargetObject(type="http", address=os.environ["RECEIVER"],
                                     skip_cert_verify=False, payload_format="Default")]))
    policy_id = int(location.rsplit("/", 1)[1])
    policy = await c.get_webhook_policy("library", policy_id)
    policies = await c.get_webhook_policies("library")
    events = await c.get_webhook_supported_events("library")
    value = lambda e: getattr(e, "root", e)
    print(json.dumps({"id": policy_id, "name": policy.name,
        "events": [value(e) for e in policy.event_types],
        "address": policy.targets[0].address, "policies": [p.name for p in policies],
        "supported": [value(e) for e in events.event_type]}), flush=True)
    input()
    jobs = await c.get_webhook_jobs("library", policy_id)
    last = await c.get_webhook_policy_last_trigger("library")
    print(json.dumps({"jobs": [[value(j.event_type), j.status] for j in jobs],
        "last": [[t.policy_name, value(t.event_type)] for t in last]}))

asyncio.run(main())
"#;

#[test]
fn harborapi_manages_webhook_policies_through_harbors_models() {
    let receiver = Receiver::start();
    let berth = Berth::start();
    let mut child = std::process::Command::new("python3")
        .args(["-c", HARBORAPI_SCRIPT])
        .env("BERTH_URL", berth.url())
        .env("BERTH_PASSWORD", berth.admin_password())
        .env("RECEIVER", receiver.url())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let first: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        panic!("harborapi: {e}: {line}\n{err}")
    });
    assert_eq!(first["name"], "via-harborapi", "{first}");
    assert_eq!(first["address"], receiver.url(), "{first}");
    assert_eq!(first["policies"], json!(["via-harborapi"]), "{first}");
    assert_eq!(
        first["events"],
        json!(["PUSH_ARTIFACT", "DELETE_ARTIFACT"]),
        "{first}"
    );
    assert_eq!(first["supported"].as_array().unwrap().len(), 7, "{first}");

    let (user, password) = berth.admin_credentials();
    Registry::with_basic_auth(&berth.url(), user, password).push_image(
        "library/hello",
        "1",
        &Image::random(1),
    );
    receiver.wait_for("the push", 1, WITHIN, of_type("PUSH_ARTIFACT"));
    // Wait for the delivery to be recorded, then let the script list it.
    let api = Api::admin(&berth);
    let deadline = std::time::Instant::now() + WITHIN;
    while !delivery_logs(&api, "library", first["id"].as_i64().unwrap()).contains("delivered") {
        assert!(std::time::Instant::now() < deadline, "no delivery recorded");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(
        out.status.success(),
        "harborapi: {rest}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second: Value = serde_json::from_str(rest.trim()).unwrap();
    assert_eq!(
        second["jobs"],
        json!([["PUSH_ARTIFACT", "Success"]]),
        "{second}"
    );
    assert_eq!(
        second["last"],
        json!([["via-harborapi", "PUSH_ARTIFACT"]]),
        "{second}"
    );
}
