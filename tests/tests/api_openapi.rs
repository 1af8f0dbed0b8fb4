//! The served OpenAPI document describes what the server really answers:
//! every response below is checked against the document's schema for its
//! path, method and status (and that status must be documented at all).

use berth_tests::{Berth, Image, Registry};
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::Method;
use serde_json::{json, Value};

struct Spec {
    doc: Value,
}

impl Spec {
    fn fetch(berth: &Berth) -> Spec {
        let resp = Client::new()
            .get(format!("{}/api/v2.0/openapi.json", berth.url()))
            .send()
            .expect("openapi.json");
        assert_eq!(resp.status(), 200);
        let doc: Value = resp.json().expect("openapi.json is JSON");
        assert!(
            doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
            "not an OpenAPI 3 document: {}",
            doc["openapi"]
        );
        Spec { doc }
    }

    /// The document's path template matching a concrete path.
    fn template(&self, path: &str) -> Option<String> {
        let want: Vec<&str> = path.split('/').collect();
        let paths = self.doc["paths"].as_object()?;
        paths
            .keys()
            .find(|t| {
                let segs: Vec<&str> = t.split('/').collect();
                segs.len() == want.len()
                    && segs
                        .iter()
                        .zip(&want)
                        .all(|(s, w)| s == w || (s.starts_with('{') && s.ends_with('}')))
            })
            .cloned()
    }

    /// Checks a response against the document and returns its body.
    fn check(&self, method: &Method, path: &str, status: u16, body: &str) -> Value {
        let template = self
            .template(path)
            .unwrap_or_else(|| panic!("{method} {path}: no such path in the OpenAPI document"));
        let op = &self.doc["paths"][&template][method.as_str().to_lowercase()];
        assert!(
            op.is_object(),
            "{method} {template}: method not in the OpenAPI document"
        );
        let resp = &op["responses"][status.to_string()];
        assert!(
            resp.is_object(),
            "{method} {template}: status {status} is not documented (body: {body})"
        );
        let value: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()))
        };
        if let Some(schema) = resp["content"]["application/json"]["schema"].as_object() {
            let root = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "allOf": [Value::Object(schema.clone())],
                "components": self.doc["components"].clone(),
            });
            let validator = jsonschema::validator_for(&root)
                .unwrap_or_else(|e| panic!("{method} {template}: schema does not compile: {e}"));
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| format!("{} at {}", e, e.instance_path))
                .collect();
            assert!(
                errors.is_empty(),
                "{method} {path} -> {status}: body does not match the documented schema:\n{}\nbody: {body}",
                errors.join("\n")
            );
        }
        value
    }
}

struct Caller<'a> {
    berth: &'a Berth,
    spec: &'a Spec,
    http: Client,
    auth: Option<(String, String)>,
}

impl Caller<'_> {
    fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.berth.url());
        let mut req: RequestBuilder = self.http.request(method.clone(), url);
        if let Some((u, p)) = &self.auth {
            req = req.basic_auth(u, Some(p));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        let bare = path.split('?').next().unwrap_or(path);
        let value = self.spec.check(&method, bare, status, &text);
        (status, value)
    }

    fn expect(&self, method: Method, path: &str, body: Option<Value>, status: u16) -> Value {
        let (got, value) = self.call(method.clone(), path, body);
        assert_eq!(got, status, "{method} {path}: {value}");
        value
    }
}

#[test]
fn real_responses_match_the_served_openapi_document() {
    let berth = Berth::start();
    let spec = Spec::fetch(&berth);
    let admin = Caller {
        berth: &berth,
        spec: &spec,
        http: Client::new(),
        auth: Some(("admin".into(), berth.admin_password().into())),
    };
    let anon = Caller {
        auth: None,
        http: Client::new(),
        ..admin
    };
    use Method as M;

    // Projects and members.
    admin.expect(
        M::POST,
        "/api/v2.0/projects",
        Some(json!({"project_name": "team", "metadata": {"public": "false"}})),
        201,
    );
    admin.expect(
        M::POST,
        "/api/v2.0/projects",
        Some(json!({"project_name": "team"})),
        409,
    );
    admin.expect(
        M::POST,
        "/api/v2.0/projects",
        Some(json!({"project_name": "Bad Name"})),
        400,
    );
    admin.expect(M::POST, "/api/v2.0/projects", Some(json!({"nope": 1})), 400);
    let list = admin.expect(M::GET, "/api/v2.0/projects?page=1&page_size=1", None, 200);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let team = admin.expect(M::GET, "/api/v2.0/projects/team", None, 200);
    let team_id = team["project_id"].as_i64().expect("project_id");
    admin.expect(M::GET, &format!("/api/v2.0/projects/{team_id}"), None, 200);
    admin.expect(M::GET, "/api/v2.0/projects/team/summary", None, 200);
    admin.expect(
        M::PUT,
        "/api/v2.0/projects/team",
        Some(json!({"metadata": {"public": "maybe"}})),
        400,
    );
    admin.expect(M::GET, "/api/v2.0/projects/nothing-here", None, 404);
    // Anonymous callers cannot tell a private project from a missing one.
    anon.expect(M::GET, "/api/v2.0/projects/team", None, 401);
    anon.expect(M::GET, "/api/v2.0/projects/nothing-here", None, 401);
    anon.expect(M::GET, "/api/v2.0/projects", None, 200);

    // Users.
    admin.expect(M::POST, "/api/v2.0/users", Some(json!({"username": "alice", "password": "alice-pass-1", "email": "alice@example.org", "realname": "Alice"})), 201);
    admin.expect(
        M::POST,
        "/api/v2.0/users",
        Some(json!({"username": "alice", "password": "alice-pass-1"})),
        409,
    );
    admin.expect(
        M::POST,
        "/api/v2.0/users",
        Some(json!({"username": "bob", "password": "short"})),
        400,
    );
    let users = admin.expect(M::GET, "/api/v2.0/users?q=username%3D~ali", None, 200);
    let alice_id = users[0]["user_id"].as_i64().expect("user_id");
    admin.expect(M::GET, &format!("/api/v2.0/users/{alice_id}"), None, 200);
    admin.expect(M::GET, "/api/v2.0/users/current", None, 200);
    admin.expect(M::GET, "/api/v2.0/users/search?username=al", None, 200);
    admin.expect(
        M::PUT,
        &format!("/api/v2.0/users/{alice_id}"),
        Some(json!({"realname": "Alice A."})),
        200,
    );
    anon.expect(M::GET, "/api/v2.0/users", None, 401);
    let alice = Caller {
        auth: Some(("alice".into(), "alice-pass-1".into())),
        http: Client::new(),
        ..admin
    };
    alice.expect(M::GET, "/api/v2.0/users", None, 403);
    alice.expect(M::GET, "/api/v2.0/users/current", None, 200);
    alice.expect(M::GET, "/api/v2.0/projects/team", None, 404);

    let member = admin.expect(
        M::POST,
        "/api/v2.0/projects/team/members",
        Some(json!({"role_id": 2, "member_user": {"username": "alice"}})),
        201,
    );
    assert_eq!(member, Value::Null);
    admin.expect(
        M::POST,
        "/api/v2.0/projects/team/members",
        Some(json!({"role_id": 9, "member_user": {"username": "alice"}})),
        400,
    );
    let members = admin.expect(M::GET, "/api/v2.0/projects/team/members", None, 200);
    let mid = members
        .as_array()
        .and_then(|m| m.iter().find(|m| m["entity_name"] == "alice"))
        .and_then(|m| m["id"].as_i64())
        .expect("alice is a member");
    admin.expect(
        M::GET,
        &format!("/api/v2.0/projects/team/members/{mid}"),
        None,
        200,
    );
    admin.expect(
        M::PUT,
        &format!("/api/v2.0/projects/team/members/{mid}"),
        Some(json!({"role_id": 4})),
        200,
    );
    let seen = alice.expect(M::GET, "/api/v2.0/projects/team", None, 200);
    assert_eq!(seen["current_user_role_id"], 4);

    // Robots.
    let robot = admin.expect(M::POST, "/api/v2.0/robots", Some(json!({
        "name": "ci", "level": "project", "duration": -1, "disable": false, "description": "",
        "permissions": [{"kind": "project", "namespace": "team", "access": [{"resource": "repository", "action": "pull"}]}]
    })), 201);
    assert_eq!(robot["name"], "robot$team+ci");
    let robot_id = robot["id"].as_i64().expect("robot id");
    admin.expect(
        M::POST,
        "/api/v2.0/robots",
        Some(json!({"name": "empty", "level": "system", "duration": -1, "permissions": []})),
        400,
    );
    let got = admin.expect(M::GET, &format!("/api/v2.0/robots/{robot_id}"), None, 200);
    assert!(
        got.get("secret").is_none(),
        "the secret is never shown again"
    );
    admin.expect(M::GET, "/api/v2.0/robots", None, 200);
    admin.expect(
        M::PATCH,
        &format!("/api/v2.0/robots/{robot_id}"),
        Some(json!({})),
        200,
    );
    admin.expect(M::GET, "/api/v2.0/robots/999", None, 404);

    // Repositories, artifacts and tags of a pushed image.
    let reg = Registry::with_basic_auth(&berth.url(), "admin", berth.admin_password());
    reg.push_image("team/app", "v1", &Image::random(2));
    admin.expect(M::GET, "/api/v2.0/projects/team/repositories", None, 200);
    admin.expect(
        M::GET,
        "/api/v2.0/projects/team/repositories/app",
        None,
        200,
    );
    let arts = admin.expect(
        M::GET,
        "/api/v2.0/projects/team/repositories/app/artifacts",
        None,
        200,
    );
    let digest = arts[0]["digest"]
        .as_str()
        .expect("artifact digest")
        .to_owned();
    admin.expect(
        M::GET,
        &format!("/api/v2.0/projects/team/repositories/app/artifacts/{digest}"),
        None,
        200,
    );
    admin.expect(
        M::GET,
        "/api/v2.0/projects/team/repositories/app/artifacts/v1/tags",
        None,
        200,
    );
    admin.expect(
        M::POST,
        "/api/v2.0/projects/team/repositories/app/artifacts/v1/tags",
        Some(json!({"name": "v1-copy"})),
        201,
    );
    admin.expect(
        M::DELETE,
        "/api/v2.0/projects/team/repositories/app/artifacts/v1/tags/v1-copy",
        None,
        200,
    );
    admin.expect(
        M::GET,
        "/api/v2.0/projects/team/repositories/nothing/artifacts",
        None,
        404,
    );

    // Logs and system endpoints.
    admin.expect(M::GET, "/api/v2.0/audit-logs", None, 200);
    admin.expect(M::GET, "/api/v2.0/projects/team/logs", None, 200);
    alice.expect(M::GET, "/api/v2.0/audit-logs", None, 403);
    anon.expect(M::GET, "/api/v2.0/systeminfo", None, 200);
    anon.expect(M::GET, "/api/v2.0/health", None, 200);
    admin.expect(M::GET, "/api/v2.0/search?q=te", None, 200);

    // Registry endpoints and a proxy-cache project of one.
    admin.expect(
        M::POST,
        "/api/v2.0/registries",
        Some(
            json!({"name": "up", "type": "docker-registry", "url": "http://127.0.0.1:1",
            "credential": {"type": "basic", "access_key": "k", "access_secret": "s"}}),
        ),
        201,
    );
    admin.expect(
        M::POST,
        "/api/v2.0/registries",
        Some(json!({"name": "up", "url": "http://127.0.0.1:1"})),
        409,
    );
    admin.expect(
        M::POST,
        "/api/v2.0/registries",
        Some(json!({"name": "bad", "url": "ftp://x"})),
        400,
    );
    let registries = admin.expect(M::GET, "/api/v2.0/registries", None, 200);
    let reg_id = registries[0]["id"].as_i64().expect("registry id");
    assert_eq!(registries[0]["credential"]["access_secret"], "*****");
    admin.expect(M::GET, &format!("/api/v2.0/registries/{reg_id}"), None, 200);
    admin.expect(M::GET, "/api/v2.0/registries/999", None, 404);
    admin.expect(
        M::PUT,
        &format!("/api/v2.0/registries/{reg_id}"),
        Some(json!({"description": "nothing listens here"})),
        200,
    );
    admin.expect(
        M::POST,
        "/api/v2.0/registries/ping",
        Some(json!({"id": reg_id})),
        400,
    );
    alice.expect(M::GET, "/api/v2.0/registries", None, 403);
    anon.expect(M::GET, "/api/v2.0/registries", None, 401);

    // Replication.
    admin.expect(
        M::GET,
        &format!("/api/v2.0/registries/{reg_id}/info"),
        None,
        200,
    );
    let policy = json!({"name": "push", "dest_registry": {"id": reg_id},
        "filters": [{"type": "name", "value": "team/**"}],
        "trigger": {"type": "manual"}});
    admin.expect(
        M::POST,
        "/api/v2.0/replication/policies",
        Some(policy.clone()),
        201,
    );
    admin.expect(
        M::POST,
        "/api/v2.0/replication/policies",
        Some(policy.clone()),
        409,
    );
    admin.expect(
        M::POST,
        "/api/v2.0/replication/policies",
        Some(json!({"name": "x", "dest_registry": {"id": reg_id}, "speed": -7})),
        400,
    );
    let policies = admin.expect(
        M::GET,
        "/api/v2.0/replication/policies?q=name%3D~pu",
        None,
        200,
    );
    let policy_id = policies[0]["id"].as_i64().expect("policy id");
    admin.expect(
        M::GET,
        &format!("/api/v2.0/replication/policies/{policy_id}"),
        None,
        200,
    );
    admin.expect(M::GET, "/api/v2.0/replication/policies/999", None, 404);
    admin.expect(
        M::PUT,
        &format!("/api/v2.0/replication/policies/{policy_id}"),
        Some(policy),
        200,
    );
    admin.expect(
        M::POST,
        "/api/v2.0/replication/executions",
        Some(json!({"policy_id": policy_id})),
        201,
    );
    let executions = admin.expect(
        M::GET,
        &format!("/api/v2.0/replication/executions?policy_id={policy_id}"),
        None,
        200,
    );
    let execution = executions[0]["id"].as_i64().expect("execution id");
    // Nothing listens at the endpoint: retries with backoff, stopped here.
    admin.expect(
        M::PUT,
        &format!("/api/v2.0/replication/executions/{execution}"),
        None,
        200,
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while admin.expect(
        M::GET,
        &format!("/api/v2.0/replication/executions/{execution}"),
        None,
        200,
    )["status"]
        == "InProgress"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the execution did not end"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    admin.expect(
        M::GET,
        &format!("/api/v2.0/replication/executions/{execution}/tasks"),
        None,
        200,
    );
    admin.expect(
        M::PUT,
        &format!("/api/v2.0/replication/executions/{execution}"),
        None,
        412,
    );
    admin.expect(
        M::GET,
        "/api/v2.0/replication/executions/999/tasks/1/log",
        None,
        404,
    );
    admin.expect(M::GET, "/api/v2.0/replication/adapters", None, 200);
    admin.expect(M::GET, "/api/v2.0/replication/adapterinfos", None, 200);
    alice.expect(M::GET, "/api/v2.0/replication/policies", None, 403);
    anon.expect(M::GET, "/api/v2.0/replication/executions", None, 401);
    admin.expect(
        M::DELETE,
        &format!("/api/v2.0/replication/policies/{policy_id}"),
        None,
        200,
    );
    admin.expect(
        M::POST,
        "/api/v2.0/projects",
        Some(json!({"project_name": "cache", "registry_id": reg_id})),
        201,
    );
    admin.expect(
        M::POST,
        "/api/v2.0/projects",
        Some(json!({"project_name": "nope", "registry_id": 999})),
        400,
    );
    let cache = admin.expect(M::GET, "/api/v2.0/projects/cache", None, 200);
    assert_eq!(cache["registry_id"], reg_id);
    admin.expect(
        M::DELETE,
        &format!("/api/v2.0/registries/{reg_id}"),
        None,
        412,
    );
    admin.expect(M::DELETE, "/api/v2.0/projects/cache", None, 200);
    admin.expect(
        M::DELETE,
        &format!("/api/v2.0/registries/{reg_id}"),
        None,
        200,
    );
    // Quotas: members read their project's, administrators change them.
    let quotas = admin.expect(
        M::GET,
        &format!("/api/v2.0/quotas?reference=project&reference_id={team_id}"),
        None,
        200,
    );
    let qid = quotas[0]["id"].as_i64().expect("quota id");
    admin.expect(M::GET, "/api/v2.0/quotas", None, 200);
    alice.expect(M::GET, &format!("/api/v2.0/quotas/{qid}"), None, 200);
    let storage = |n: i64| Some(json!({"hard": {"storage": n}}));
    alice.expect(M::PUT, &format!("/api/v2.0/quotas/{qid}"), storage(-1), 403);
    admin.expect(
        M::PUT,
        &format!("/api/v2.0/quotas/{qid}"),
        storage(1 << 30),
        200,
    );
    admin.expect(M::PUT, &format!("/api/v2.0/quotas/{qid}"), storage(-7), 400);
    admin.expect(M::GET, "/api/v2.0/quotas/99999", None, 404);
    let summary = alice.expect(M::GET, "/api/v2.0/projects/team/summary", None, 200);
    assert_eq!(summary["quota"]["hard"]["storage"], 1 << 30, "{summary}");

    // Tag immutability rules.
    let sel = |d: &str, p: &str| json!({"kind": "doublestar", "decoration": d, "pattern": p});
    let rule = |disabled: bool| {
        json!({"disabled": disabled, "action": "immutable", "template": "immutable_template",
            "tag_selectors": [sel("matches", "v1*")],
            "scope_selectors": {"repository": [sel("repoMatches", "**")]}})
    };
    let rules_path = "/api/v2.0/projects/team/immutabletagrules";
    admin.expect(M::POST, rules_path, Some(rule(false)), 201);
    admin.expect(M::POST, rules_path, Some(json!({"tag_selectors": []})), 400);
    let rules = alice.expect(M::GET, rules_path, None, 200);
    let rid = rules[0]["id"].as_i64().expect("rule id");
    admin.expect(
        M::PUT,
        &format!("{rules_path}/{rid}"),
        Some(rule(true)),
        200,
    );
    admin.expect(M::DELETE, &format!("{rules_path}/{rid}"), None, 200);
    admin.expect(M::DELETE, &format!("{rules_path}/{rid}"), None, 404);

    // Webhook policies and their deliveries.
    let hooks = "/api/v2.0/projects/team/webhook";
    let hook = json!({"name": "ci", "targets": [{"type": "http",
        "address": "http://127.0.0.1:9/hook", "auth_header": "Bearer x", "payload_format": "CloudEvents"}],
        "event_types": ["PUSH_ARTIFACT", "QUOTA_WARNING"], "enabled": true});
    admin.expect(
        M::POST,
        &format!("{hooks}/policies"),
        Some(hook.clone()),
        201,
    );
    admin.expect(
        M::POST,
        &format!("{hooks}/policies"),
        Some(hook.clone()),
        409,
    );
    admin.expect(
        M::POST,
        &format!("{hooks}/policies"),
        Some(json!({"name": "bad", "targets": [], "event_types": []})),
        400,
    );
    let listed = admin.expect(M::GET, &format!("{hooks}/policies?q=name%3D~c"), None, 200);
    let hid = listed[0]["id"].as_i64().expect("webhook policy id");
    admin.expect(M::GET, &format!("{hooks}/policies/{hid}"), None, 200);
    admin.expect(M::PUT, &format!("{hooks}/policies/{hid}"), Some(hook), 200);
    admin.expect(
        M::GET,
        &format!("{hooks}/policies/{hid}/executions"),
        None,
        200,
    );
    admin.expect(
        M::GET,
        &format!("{hooks}/policies/{hid}/executions/999/tasks"),
        None,
        404,
    );
    admin.expect(
        M::GET,
        &format!("{hooks}/policies/{hid}/executions/999/tasks/1/log"),
        None,
        404,
    );
    admin.expect(M::GET, &format!("{hooks}/jobs?policy_id={hid}"), None, 200);
    admin.expect(M::GET, &format!("{hooks}/lasttrigger"), None, 200);
    admin.expect(M::GET, &format!("{hooks}/events"), None, 200);
    anon.expect(M::GET, &format!("{hooks}/policies"), None, 401);
    admin.expect(M::DELETE, &format!("{hooks}/policies/{hid}"), None, 200);
    admin.expect(M::DELETE, &format!("{hooks}/policies/{hid}"), None, 404);

    // Tag retention: a policy, a dry run, its tasks and their log.
    let policy = |cron: &str| {
        json!({"algorithm": "or", "rules": [{"action": "retain", "template": "latestPushedK",
            "params": {"latestPushedK": 1}, "tag_selectors": [sel("matches", "**")],
            "scope_selectors": {"repository": [sel("repoMatches", "**")]}}],
            "trigger": {"kind": "Schedule", "settings": {"cron": cron}},
            "scope": {"level": "project", "ref": team_id}})
    };
    admin.expect(
        M::POST,
        "/api/v2.0/retentions",
        Some(json!({"rules": []})),
        400,
    );
    let meta = alice.expect(M::GET, "/api/v2.0/retentions/metadatas", None, 200);
    assert_eq!(meta["templates"][0]["rule_template"], "latestPushedK");
    admin.expect(M::POST, "/api/v2.0/retentions", Some(policy("")), 201);
    admin.expect(M::POST, "/api/v2.0/retentions", Some(policy("")), 409);
    let team = admin.expect(M::GET, "/api/v2.0/projects/team", None, 200);
    let pol: i64 = team["metadata"]["retention_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("retention_id");
    alice.expect(M::GET, &format!("/api/v2.0/retentions/{pol}"), None, 200);
    admin.expect(
        M::PUT,
        &format!("/api/v2.0/retentions/{pol}"),
        Some(policy("0 0 * * * *")),
        200,
    );
    admin.expect(
        M::PUT,
        &format!("/api/v2.0/retentions/{pol}"),
        Some(policy("bad cron")),
        400,
    );
    admin.expect(M::GET, "/api/v2.0/retentions/99999", None, 404);
    let runs = format!("/api/v2.0/retentions/{pol}/executions");
    admin.expect(M::POST, &runs, Some(json!({"dry_run": true})), 201);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let eid = loop {
        let list = admin.expect(M::GET, &runs, None, 200);
        if list[0]["status"] != "Running" {
            break list[0]["id"].as_i64().expect("execution id");
        }
        assert!(std::time::Instant::now() < deadline, "{list}");
        std::thread::sleep(berth_tests::server::POLL);
    };
    let tasks = admin.expect(M::GET, &format!("{runs}/{eid}/tasks"), None, 200);
    let tid = tasks[0]["id"].as_i64().expect("task id");
    admin.expect(M::GET, &format!("{runs}/{eid}/tasks/{tid}"), None, 200);
    admin.expect(M::GET, &format!("{runs}/{eid}/tasks/99999"), None, 404);
    admin.expect(M::DELETE, &format!("/api/v2.0/retentions/{pol}"), None, 200);
    // Garbage collection: history, runs, logs, schedule.
    alice.expect(M::GET, "/api/v2.0/system/gc", None, 403);
    admin.expect(M::GET, "/api/v2.0/system/gc/schedule", None, 200);
    let daily = json!({"schedule": {"type": "Daily"}, "parameters": {"delete_untagged": true}});
    admin.expect(M::PUT, "/api/v2.0/system/gc/schedule", Some(daily), 200);
    admin.expect(M::GET, "/api/v2.0/system/gc/schedule", None, 200);
    let bad = json!({"schedule": {"type": "Custom", "cron": "every day"}});
    admin.expect(M::POST, "/api/v2.0/system/gc/schedule", Some(bad), 400);
    let manual = json!({"schedule": {"type": "Manual"}, "parameters": {"dry_run": true}});
    admin.expect(M::POST, "/api/v2.0/system/gc/schedule", Some(manual), 201);
    let runs = admin.expect(M::GET, "/api/v2.0/system/gc", None, 200);
    let gc_id = runs[0]["id"].as_i64().expect("a GC run");
    admin.expect(M::GET, &format!("/api/v2.0/system/gc/{gc_id}"), None, 200);
    admin.expect(
        M::GET,
        &format!("/api/v2.0/system/gc/{gc_id}/log"),
        None,
        200,
    );
    admin.expect(M::GET, "/api/v2.0/system/gc/999999", None, 404);

    // Mail: this berth has no [email], so resets and test mails are off
    // (tests/tests/mail.rs covers them against a real SMTP server).
    let reset = "/api/v2.0/users/password-reset";
    anon.expect(M::POST, reset, Some(json!({"email": "a@example.org"})), 503);
    anon.expect(
        M::PUT,
        reset,
        Some(json!({"token": "nothing", "new_password": "long-enough"})),
        400,
    );
    admin.expect(M::POST, "/api/v2.0/email/ping", Some(json!({})), 503);
    alice.expect(M::POST, "/api/v2.0/email/ping", Some(json!({})), 403);

    // Run-time settings.
    admin.expect(M::GET, "/api/v2.0/configurations", None, 200);
    admin.expect(
        M::PUT,
        "/api/v2.0/configurations",
        Some(json!({"storage_per_project": -1})),
        200,
    );
    admin.expect(
        M::PUT,
        "/api/v2.0/configurations",
        Some(json!({"no_such_setting": true})),
        400,
    );
    alice.expect(M::GET, "/api/v2.0/configurations", None, 403);

    // Harbor's everyday extras: deletable, volumes, permissions, metadata.
    let del = admin.expect(M::GET, "/api/v2.0/projects/team/_deletable", None, 200);
    assert_eq!(del["deletable"], false, "{del}");
    let vols = admin.expect(M::GET, "/api/v2.0/systeminfo/volumes", None, 200);
    assert!(
        vols["storage"][0]["total"].as_u64().unwrap_or(0) > 0,
        "{vols}"
    );
    alice.expect(M::GET, "/api/v2.0/systeminfo/volumes", None, 403);
    let stats = admin.expect(M::GET, "/api/v2.0/statistics", None, 200);
    assert!(
        stats["total_storage_consumption"].as_i64().unwrap_or(0) > 0,
        "{stats}"
    );
    let stats = alice.expect(M::GET, "/api/v2.0/statistics", None, 200);
    assert_eq!(stats["total_storage_consumption"], 0, "{stats}");
    let mine = alice.expect(
        M::GET,
        "/api/v2.0/users/current/permissions?scope=/project/team&relative=true",
        None,
        200,
    );
    assert!(
        mine.as_array()
            .unwrap()
            .contains(&json!({"resource": "repository", "action": "pull"})),
        "{mine}"
    );
    let system = admin.expect(M::GET, "/api/v2.0/users/current/permissions", None, 200);
    assert!(
        system
            .as_array()
            .unwrap()
            .contains(&json!({"resource": "configuration", "action": "update"})),
        "{system}"
    );
    anon.expect(M::GET, "/api/v2.0/users/current/permissions", None, 401);
    let metas = "/api/v2.0/projects/team/metadatas";
    admin.expect(M::GET, metas, None, 200);
    admin.expect(
        M::PUT,
        &format!("{metas}/public"),
        Some(json!({"public": "true"})),
        200,
    );
    let public = admin.expect(M::GET, &format!("{metas}/public"), None, 200);
    assert_eq!(public, json!({"public": "true"}));
    admin.expect(M::POST, metas, Some(json!({"auto_scan": "true"})), 400);
    admin.expect(
        M::POST,
        metas,
        Some(json!({"public": "false", "auto_scan": "false"})),
        200,
    );
    admin.expect(M::DELETE, &format!("{metas}/public"), None, 400);
    admin.expect(M::GET, &format!("{metas}/nothing"), None, 404);

    // Labels, on an artifact and in both listings.
    admin.expect(
        M::POST,
        "/api/v2.0/labels",
        Some(json!({"name": "doc", "scope": "g", "color": "#123456"})),
        201,
    );
    admin.expect(
        M::POST,
        "/api/v2.0/labels",
        Some(json!({"name": "doc"})),
        400,
    );
    admin.expect(
        M::POST,
        "/api/v2.0/labels",
        Some(json!({"name": "doc", "scope": "g"})),
        409,
    );
    let labels = admin.expect(M::GET, "/api/v2.0/labels?scope=g", None, 200);
    let label = labels[0]["id"].as_i64().unwrap();
    admin.expect(M::GET, &format!("/api/v2.0/labels/{label}"), None, 200);
    admin.expect(
        M::PUT,
        &format!("/api/v2.0/labels/{label}"),
        Some(json!({"description": "documented"})),
        200,
    );
    admin.expect(M::GET, "/api/v2.0/labels/999999", None, 404);
    let on_v1 = "/api/v2.0/projects/team/repositories/app/artifacts/v1/labels";
    admin.expect(M::POST, on_v1, Some(json!({"id": label})), 200);
    admin.expect(M::POST, on_v1, Some(json!({"id": label})), 409);
    admin.expect(
        M::GET,
        "/api/v2.0/projects/team/repositories/app/artifacts?with_label=true",
        None,
        200,
    );
    let all = admin.expect(
        M::GET,
        "/api/v2.0/projects/team/artifacts?with_label=true",
        None,
        200,
    );
    assert!(all[0]["labels"].is_array(), "{all}");
    admin.expect(M::DELETE, &format!("{on_v1}/{label}"), None, 200);
    admin.expect(M::DELETE, &format!("{on_v1}/{label}"), None, 404);
    admin.expect(M::DELETE, &format!("/api/v2.0/labels/{label}"), None, 200);

    // Audit log purges: a dry run, its log, the history, the schedule.
    let purge = "/api/v2.0/system/purgeaudit";
    admin.expect(
        M::POST,
        &format!("{purge}/schedule"),
        Some(json!({"schedule": {"type": "Manual"},
                    "parameters": {"audit_retention_hour": 24, "include_event_types": "pull_artifact", "dry_run": true}})),
        201,
    );
    admin.expect(
        M::PUT,
        &format!("{purge}/schedule"),
        Some(json!({"schedule": {"type": "Daily"}, "parameters": {"audit_retention_hour": 168}})),
        200,
    );
    admin.expect(
        M::POST,
        &format!("{purge}/schedule"),
        Some(json!({"schedule": {"type": "Daily"}})),
        400,
    );
    admin.expect(M::GET, &format!("{purge}/schedule"), None, 200);
    let runs = admin.expect(M::GET, purge, None, 200);
    let run = runs[0]["id"].as_i64().unwrap();
    admin.expect(M::GET, &format!("{purge}/{run}"), None, 200);
    admin.expect(M::GET, &format!("{purge}/{run}/log"), None, 200);
    admin.expect(M::GET, &format!("{purge}/999999"), None, 404);
    alice.expect(M::GET, purge, None, 403);

    // User groups and the directory (no LDAP here: 503 for the directory).
    admin.expect(M::GET, "/api/v2.0/usergroups", None, 200);
    admin.expect(M::GET, "/api/v2.0/usergroups/999999", None, 404);
    alice.expect(M::GET, "/api/v2.0/usergroups/search?groupname=x", None, 200);
    alice.expect(M::GET, "/api/v2.0/usergroups/search", None, 400);
    admin.expect(
        M::POST,
        "/api/v2.0/usergroups",
        Some(json!({"group_type": 1, "ldap_group_dn": "cn=x,dc=example,dc=org"})),
        503,
    );
    admin.expect(M::POST, "/api/v2.0/ldap/ping", Some(json!({})), 503);
    admin.expect(M::GET, "/api/v2.0/ldap/users/search?username=a", None, 503);
    admin.expect(
        M::GET,
        "/api/v2.0/ldap/groups/search?groupname=a",
        None,
        503,
    );
    alice.expect(M::GET, "/api/v2.0/ldap/users/search", None, 403);

    // Deletions last.
    admin.expect(
        M::DELETE,
        &format!("/api/v2.0/robots/{robot_id}"),
        None,
        200,
    );
    admin.expect(
        M::DELETE,
        &format!("/api/v2.0/projects/team/members/{mid}"),
        None,
        200,
    );
    admin.expect(M::DELETE, "/api/v2.0/projects/team", None, 412);
    admin.expect(
        M::DELETE,
        "/api/v2.0/projects/team/repositories/app",
        None,
        200,
    );
    admin.expect(M::DELETE, "/api/v2.0/projects/team", None, 200);
    admin.expect(M::DELETE, &format!("/api/v2.0/users/{alice_id}"), None, 200);
}
