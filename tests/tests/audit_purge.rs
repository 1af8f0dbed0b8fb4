//! Purging the audit log (`/system/purgeaudit`): old entries of the types
//! chosen go, now (a dry run first) or on a schedule; newer ones and other
//! types stay; each run is kept with its count and log; only system
//! administrators may; harborapi drives it through Harbor's models.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use berth_tests::tools::text;
use berth_tests::{Api, Berth, Image};
use serde_json::{json, Value};

const HOUR_MS: i64 = 3_600_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Writes `count` entries of `operation` on `resource_type`, `hours_ago`.
fn old_entries(berth: &Berth, count: usize, operation: &str, resource_type: &str, hours_ago: i64) {
    let at = now_ms() - hours_ago * HOUR_MS;
    berth.sql(&format!(
        "INSERT INTO audit_logs (op_time, username, operation, resource_type, resource, project, success, client_ip) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
         SELECT {at} + i, 'old', '{operation}', '{resource_type}', 'team/app', 'team', 1, NULL FROM n;"
    ));
}

fn count(berth: &Berth, filter: &str) -> i64 {
    berth
        .sql(&format!("SELECT count(*) FROM audit_logs WHERE {filter};"))
        .trim()
        .parse()
        .unwrap()
}

/// Waits for a run to end; its history entry.
fn finished(api: &Api, location: &str) -> Value {
    let path = location.trim_start_matches("/api/v2.0");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, _, run) = api.get(path);
        assert_eq!(status, 200, "{run}");
        if run["job_status"] != "Running" {
            return run;
        }
        assert!(Instant::now() < deadline, "still running: {run}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start(api: &Api, parameters: Value) -> String {
    let (status, headers, answer) = api.post(
        "/system/purgeaudit/schedule",
        &json!({"schedule": {"type": "Manual"}, "parameters": parameters}),
    );
    assert_eq!(status, 201, "{answer}");
    headers["location"].to_str().unwrap().to_owned()
}

#[test]
fn old_entries_are_purged_now_or_on_a_schedule() {
    let berth = Berth::start();
    let admin = Api::admin(&berth);
    admin.create_project("team", false);
    berth
        .registry()
        .push_image("team/app", "1", &Image::random(1));
    old_entries(&berth, 2500, "pull", "artifact", 48);
    old_entries(&berth, 5, "create", "project", 48);
    old_entries(&berth, 7, "pull", "artifact", 2);
    let old_pulls = "operation = 'pull' AND username = 'old' AND op_time < ";
    let day_ago = now_ms() - 24 * HOUR_MS;

    // Only system administrators.
    admin.create_user("alice", "Passw0rd-1");
    let alice = Api::as_user(&berth, "alice", "Passw0rd-1");
    assert_eq!(alice.get("/system/purgeaudit").0, 403);
    assert_eq!(Api::anonymous(&berth).get("/system/purgeaudit").0, 401);
    let (status, _, answer) = alice.post(
        "/system/purgeaudit/schedule",
        &json!({"schedule": {"type": "Manual"}, "parameters": {"audit_retention_hour": 1}}),
    );
    assert_eq!(status, 403, "{answer}");

    // Bad requests, each explained.
    for (body, words) in [
        (
            json!({"schedule": {"type": "Manual"}, "parameters": {"audit_retention_hour": 0}}),
            "audit_retention_hour",
        ),
        (
            json!({"schedule": {"type": "Manual"}}),
            "audit_retention_hour",
        ),
        (
            json!({"schedule": {"type": "Sometimes"}, "parameters": {"audit_retention_hour": 1}}),
            "schedule.type",
        ),
        (
            json!({"schedule": {"type": "Custom"}, "parameters": {"audit_retention_hour": 1}}),
            "cron",
        ),
        (
            json!({"schedule": {"type": "Custom", "cron": "every day"}, "parameters": {"audit_retention_hour": 1}}),
            "cron",
        ),
        (
            json!({"parameters": {"audit_retention_hour": 1}}),
            "schedule",
        ),
    ] {
        let (status, _, answer) = admin.post("/system/purgeaudit/schedule", &body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.to_string().contains(words), "{body}: {answer}");
    }

    // A dry run counts and deletes nothing.
    let dry = finished(
        &admin,
        &start(
            &admin,
            json!({"audit_retention_hour": 24, "include_event_types": "pull_artifact", "dry_run": true}),
        ),
    );
    assert_eq!(dry["job_status"], "Success", "{dry}");
    assert_eq!(dry["purged"], 2500, "{dry}");
    assert_eq!(dry["job_name"], "PURGE_AUDIT", "{dry}");
    assert_eq!(count(&berth, &format!("{old_pulls}{day_ago}")), 2500);

    // The real run: old pulls go; old creations and newer pulls stay.
    let location = start(
        &admin,
        json!({"audit_retention_hour": 24, "include_event_types": "pull_artifact,delete_artifact"}),
    );
    let run = finished(&admin, &location);
    assert_eq!(run["job_status"], "Success", "{run}");
    assert_eq!(run["purged"], 2500, "{run}");
    assert_eq!(count(&berth, &format!("{old_pulls}{day_ago}")), 0);
    assert_eq!(count(&berth, "username = 'old' AND operation = 'pull'"), 7);
    assert_eq!(
        count(&berth, "username = 'old' AND operation = 'create'"),
        5
    );
    assert!(count(&berth, "username = 'admin'") > 0);
    let params: Value = serde_json::from_str(run["job_parameters"].as_str().unwrap()).unwrap();
    assert_eq!(params["audit_retention_hour"], 24, "{params}");
    let path = location.trim_start_matches("/api/v2.0");
    let (status, _, log) = admin.get(&format!("{path}/log"));
    assert_eq!(status, 200);
    assert!(
        log.as_str().unwrap().contains("2500 entries purged"),
        "{log}"
    );
    let (status, headers, runs) = admin.get("/system/purgeaudit?page_size=1");
    assert_eq!(status, 200, "{runs}");
    assert_eq!(headers["x-total-count"], "2");
    assert_eq!(runs[0]["id"], run["id"], "newest first: {runs}");
    // Nothing to stop once ended; no such run.
    assert_eq!(admin.put(path, &json!({})).0, 409);
    assert_eq!(admin.get("/system/purgeaudit/999999").0, 404);

    // On a schedule: every second, creations older than a day.
    let (status, _, answer) = admin.put(
        "/system/purgeaudit/schedule",
        &json!({"schedule": {"type": "Custom", "cron": "* * * * * *"},
                "parameters": {"audit_retention_hour": 24, "include_operations": "create"}}),
    );
    assert_eq!(status, 200, "{answer}");
    let (_, _, schedule) = admin.get("/system/purgeaudit/schedule");
    assert_eq!(schedule["schedule"]["type"], "Custom", "{schedule}");
    assert!(
        schedule["schedule"]["next_scheduled_time"].is_string(),
        "{schedule}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&berth, "username = 'old' AND operation = 'create'") > 0 {
        assert!(Instant::now() < deadline, "the schedule never fired");
        std::thread::sleep(Duration::from_millis(300));
    }
    let (status, _, answer) = admin.put(
        "/system/purgeaudit/schedule",
        &json!({"schedule": {"type": "None"}}),
    );
    assert_eq!(status, 200, "{answer}");
    let (_, _, runs) = admin.get("/system/purgeaudit?page_size=100");
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .any(|r| r["job_kind"] == "SCHEDULE" && r["purged"].as_i64() >= Some(5)),
        "{runs}"
    );
    assert_eq!(count(&berth, "username = 'old' AND operation = 'pull'"), 7);
}

/// harborapi (PyPI) starts a purge, reads it, its log and the history, and
/// sets the schedule, through Harbor's `Schedule` and `ExecHistory`.
const HARBORAPI_SCRIPT: &str = r#"
import asyncio, json, os, time
from harborapi import HarborAsyncClient
from harborapi.models import Schedule, ScheduleObj

async def main():
    c = HarborAsyncClient(url=os.environ["BERTH_URL"] + "/api/v2.0",
                          username="admin", secret=os.environ["BERTH_PASSWORD"])
    location = await c.create_purge_job_schedule(Schedule(
        parameters={"audit_retention_hour": 24, "include_event_types": "pull_artifact"},
        schedule=ScheduleObj(type="Manual")))
    purge_id = int(location.rsplit("/", 1)[1])
    for _ in range(100):
        job = await c.get_purge_job(purge_id)
        if job.job_status != "Running":
            break
        time.sleep(0.1)
    log = await c.get_purge_job_log(purge_id)
    history = await c.get_purge_job_history()
    await c.update_purge_job_schedule(Schedule(
        parameters={"audit_retention_hour": 168, "include_operations": "create,delete,pull"},
        schedule=ScheduleObj(type="Daily")))
    schedule = await c.get_purge_job_schedule()
    print(json.dumps({
        "status": job.job_status, "name": job.job_name, "kind": job.job_kind,
        "log": "12 entries purged" in log,
        "history": [h.id for h in history] == [purge_id],
        "schedule": [getattr(schedule.schedule.type, "value", schedule.schedule.type), json.loads(schedule.job_parameters)["audit_retention_hour"],
                     schedule.schedule.next_scheduled_time is not None],
    }))

asyncio.run(main())
"#;

#[test]
fn harborapi_purges_the_audit_log_through_harbors_models() {
    let berth = Berth::start();
    old_entries(&berth, 12, "pull", "artifact", 30);
    let out = std::process::Command::new("python3")
        .args(["-c", HARBORAPI_SCRIPT])
        .env("BERTH_URL", berth.url())
        .env("BERTH_PASSWORD", berth.admin_password())
        .output()
        .unwrap();
    assert!(out.status.success(), "harborapi: {}", text(&out));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        got,
        json!({"status": "Success", "name": "PURGE_AUDIT", "kind": "MANUAL", "log": true,
               "history": true, "schedule": ["Daily", 168, true]})
    );
    assert_eq!(count(&berth, "username = 'old'"), 0);
}
