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
