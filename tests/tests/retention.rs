//! Tag retention policies against the real binary: a dry run reports what
//! would go and changes nothing, a real run keeps what the rules keep, and
//! a cron schedule fires by itself and shows in the executions.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use berth_tests::server::POLL;
use berth_tests::{Api, Berth, Image, Registry};
use serde_json::{json, Value};

fn selector(decoration: &str, pattern: &str) -> Value {
    json!({"kind": "doublestar", "decoration": decoration, "pattern": pattern})
}

fn policy(project_id: i64, keep: u64, cron: &str) -> Value {
    json!({
        "algorithm": "or",
        "rules": [{
            "disabled": false,
            "action": "retain",
            "template": "latestPushedK",
            "params": {"latestPushedK": keep},
            "tag_selectors": [selector("matches", "**")],
            "scope_selectors": {"repository": [selector("repoMatches", "**")]},
        }],
        "trigger": {"kind": "Schedule", "settings": {"cron": cron}, "references": {}},
        "scope": {"level": "project", "ref": project_id},
    })
}

fn sorted_tags(registry: &Registry, repo: &str) -> Vec<String> {
    let mut tags = registry.tags(repo);
    tags.sort();
    tags
}

/// Polls `GET /retentions/{id}/executions` until one matches `done`.
fn wait_execution(api: &Api, id: i64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _, list) = api.get(&format!("/retentions/{id}/executions"));
        assert_eq!(status, 200, "{list}");
        if let Some(found) = list.as_array().unwrap().iter().find(|e| done(e)) {
            return found.clone();
        }
        assert!(Instant::now() < deadline, "no such execution: {list}");
        std::thread::sleep(POLL);
    }
}

fn location_id(headers: &reqwest::header::HeaderMap) -> i64 {
    headers["location"]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn latest_pushed_k_dry_run_then_real_run_then_schedule() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let pid = api.create_project("team", false);
    let registry = berth.registry();
    for i in 1..=5 {
        registry.push_image("team/app", &format!("v{i}"), &Image::random(1));
    }

    let (status, headers, body) = api.post("/retentions", &policy(pid, 2, ""));
    assert_eq!(status, 201, "{body}");
    let id = location_id(&headers);
    let (_, _, project) = api.get("/projects/team");
    assert_eq!(
        project["metadata"]["retention_id"],
        id.to_string(),
        "{project}"
    );
    let (status, _, stored) = api.get(&format!("/retentions/{id}"));
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["rules"][0]["params"]["latestPushedK"], 2, "{stored}");
    assert_eq!(stored["scope"]["ref"], pid);
    let (status, _, body) = api.post("/retentions", &policy(pid, 3, ""));
    assert_eq!(status, 409, "one policy per project: {body}");

    // Dry run: three candidates reported, nothing deleted.
    let (status, headers, body) = api.post(
        &format!("/retentions/{id}/executions"),
        &json!({"dry_run": true}),
    );
    assert_eq!(status, 201, "{body}");
    let dry = location_id(&headers);
    let execution = wait_execution(&api, id, |e| e["id"] == dry && e["status"] != "Running");
    assert_eq!(execution["status"], "Success", "{execution}");
    assert_eq!(execution["dry_run"], true);
    assert_eq!(execution["trigger"], "MANUAL");
    let (status, _, tasks) = api.get(&format!("/retentions/{id}/executions/{dry}/tasks"));
    assert_eq!(status, 200, "{tasks}");
    assert_eq!(tasks.as_array().unwrap().len(), 1, "{tasks}");
    assert_eq!(tasks[0]["repository"], "team/app");
    assert_eq!(tasks[0]["total"], 5, "{tasks}");
    assert_eq!(tasks[0]["retained"], 2, "{tasks}");
    let (status, _, log) = api.get(&format!(
        "/retentions/{id}/executions/{dry}/tasks/{}",
        tasks[0]["id"]
    ));
    assert_eq!(status, 200, "{log}");
    let log = log.as_str().unwrap();
    assert_eq!(log.matches("DELETE (dry run)").count(), 3, "{log}");
    for gone in ["[v1]", "[v2]", "[v3]"] {
        assert!(
            log.lines()
                .any(|l| l.contains(gone) && l.contains("DELETE")),
            "{log}"
        );
    }
    assert_eq!(
        sorted_tags(&registry, "team/app"),
        ["v1", "v2", "v3", "v4", "v5"]
    );

    // The real run leaves the two newest, and what an immutability rule
    // protects.
    let immutable = json!({
        "tag_selectors": [selector("matches", "v1")],
        "scope_selectors": {"repository": [selector("repoMatches", "**")]},
    });
    let (status, _, body) = api.post("/projects/team/immutabletagrules", &immutable);
    assert_eq!(status, 201, "{body}");
    let (status, headers, body) = api.post(
        &format!("/retentions/{id}/executions"),
        &json!({"dry_run": false}),
    );
    assert_eq!(status, 201, "{body}");
    let real = location_id(&headers);
    let execution = wait_execution(&api, id, |e| e["id"] == real && e["status"] != "Running");
    assert_eq!(execution["status"], "Success", "{execution}");
    assert_eq!(sorted_tags(&registry, "team/app"), ["v1", "v4", "v5"]);
    let (_, headers, _) = api.get("/projects/team/repositories/app/artifacts");
    assert_eq!(headers["x-total-count"], "3");
    let (_, _, tasks) = api.get(&format!("/retentions/{id}/executions/{real}/tasks"));
    assert_eq!(tasks[0]["total"], 5, "{tasks}");
    assert_eq!(tasks[0]["retained"], 3, "{tasks}");
    // Retention deletes are audited like the API's (written off the
    // request path, so poll).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, logs) = api.get("/projects/team/logs?q=operation=delete,resource_type=artifact");
        if logs.as_array().is_some_and(|l| l.len() == 2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retention deletes audited: {logs}"
        );
        std::thread::sleep(POLL);
    }

    // A schedule fires by itself: once a minute at most, so at a second
    // a few seconds from now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let cron = format!("{} * * * * *", (now + 4) % 60);
    let (status, _, body) = api.put(&format!("/retentions/{id}"), &policy(pid, 1, &cron));
    assert_eq!(status, 200, "{body}");
    registry.push_image("team/app", "v6", &Image::random(1));
    let scheduled = wait_execution(&api, id, |e| {
        e["trigger"] == "SCHEDULE" && e["status"] == "Success"
    });
    assert_eq!(scheduled["dry_run"], false);
    let deadline = Instant::now() + Duration::from_secs(30);
    while sorted_tags(&registry, "team/app") != ["v1", "v6"] {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            sorted_tags(&registry, "team/app")
        );
        std::thread::sleep(POLL);
    }
    // Back to manual runs only.
    let (status, _, body) = api.put(&format!("/retentions/{id}"), &policy(pid, 1, ""));
    assert_eq!(status, 200, "{body}");
    let (_, _, stored) = api.get(&format!("/retentions/{id}"));
    assert_eq!(stored["trigger"]["settings"]["cron"], "");
}

/// Harbor's label selectors: a rule keeps what carries its labels (every
/// one, `withLabels`) and not others (`withoutLabels`); the rest goes.
#[test]
fn label_selectors_keep_what_is_labelled() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let pid = api.create_project("team", false);
    let registry = berth.registry();
    for tag in ["v1", "v2", "v3", "v4"] {
        registry.push_image("team/app", tag, &Image::random(1));
    }
    let label = |name: &str| -> i64 {
        api.post_created(
            "/labels",
            &json!({"name": name, "scope": "p", "project_id": pid}),
        )
    };
    let (release, broken) = (label("release"), label("broken"));
    // A name a selector could not name is refused.
    let (status, _, answer) = api.post(
        "/labels",
        &json!({"name": "approved, qa", "scope": "p", "project_id": pid}),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("comma"), "{answer}");
    let put_on = |tag: &str, id: i64| {
        let (status, _, body) = api.post(
            &format!("/projects/team/repositories/app/artifacts/{tag}/labels"),
            &json!({"id": id}),
        );
        assert_eq!(status, 200, "{body}");
    };
    put_on("v1", release);
    put_on("v2", release);
    put_on("v2", broken);
    put_on("v3", broken);

    let labels = |decoration: &str, pattern: &str| json!({"kind": "label", "decoration": decoration, "pattern": pattern});
    let mut body = policy(pid, 0, "");
    body["rules"][0]["template"] = json!("always");
    body["rules"][0]["params"] = json!({});
    body["rules"][0]["tag_selectors"] = json!([
        selector("matches", "**"),
        labels("withLabels", "release"),
        labels("withoutLabels", "broken"),
    ]);
    // A label selector says what it takes.
    let mut bad = body.clone();
    bad["rules"][0]["tag_selectors"][1] = labels("matches", "release");
    let (status, _, answer) = api.post("/retentions", &bad);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("withLabels"), "{answer}");

    let (status, headers, answer) = api.post("/retentions", &body);
    assert_eq!(status, 201, "{answer}");
    let id = location_id(&headers);
    let (_, _, stored) = api.get(&format!("/retentions/{id}"));
    let kinds: Vec<&str> = stored["rules"][0]["tag_selectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["doublestar", "label", "label"], "{stored}");
    let (_, _, metadata) = api.get("/retentions/metadatas");
    assert!(
        metadata["tag_selectors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "label"
                && s["decorations"] == json!(["withLabels", "withoutLabels"])),
        "{metadata}"
    );

    let (status, headers, answer) = api.post(
        &format!("/retentions/{id}/executions"),
        &json!({"dry_run": false}),
    );
    assert_eq!(status, 201, "{answer}");
    let run = location_id(&headers);
    let execution = wait_execution(&api, id, |e| e["id"] == run && e["status"] != "Running");
    assert_eq!(execution["status"], "Success", "{execution}");
    // Only v1 carries `release` without `broken`.
    assert_eq!(sorted_tags(&registry, "team/app"), ["v1"]);
}
