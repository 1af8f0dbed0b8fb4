//! A small blocking client for berth's management API (`/api/v2.0`, Harbor's
//! shapes) with HTTP Basic on every request: projects, users, members and
//! robot accounts, the setup that registry tests need before they push.

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

use crate::registry::http_client;
use crate::server::Berth;

const PREFIX: &str = "/api/v2.0";

/// A status, the headers and the body of an answer; the body is JSON, or
/// the text as a JSON string when it is not JSON, or `null` when empty.
pub type Answer = (u16, HeaderMap, Value);

pub struct Api {
    base: String,
    http: Client,
}

impl Api {
    /// As the system administrator `admin`.
    pub fn admin(berth: &Berth) -> Api {
        let (user, password) = berth.admin_credentials();
        Api::as_user(berth, user, password)
    }

    /// As any account, robots included (`robot$...`).
    pub fn as_user(berth: &Berth, user: &str, password: &str) -> Api {
        Api {
            base: format!("{}{PREFIX}", berth.url()),
            http: http_client(Some((user, password))),
        }
    }

    /// As any account, at any base URL (a load balancer in front of
    /// several instances).
    pub fn at(base: &str, user: &str, password: &str) -> Api {
        Api {
            base: format!("{base}{PREFIX}"),
            http: http_client(Some((user, password))),
        }
    }

    /// Without credentials.
    pub fn anonymous(berth: &Berth) -> Api {
        Api {
            base: format!("{}{PREFIX}", berth.url()),
            http: http_client(None),
        }
    }

    /// `path` is relative to `/api/v2.0` and starts with `/`.
    pub fn get(&self, path: &str) -> Answer {
        send(self.http.get(self.url(path)))
    }

    pub fn post(&self, path: &str, body: &Value) -> Answer {
        send(self.http.post(self.url(path)).json(body))
    }

    /// POSTs `body`, expects 201, and returns the id its `Location` ends
    /// with.
    pub fn post_created(&self, path: &str, body: &Value) -> i64 {
        created(self.post(path, body), path)
    }

    pub fn put(&self, path: &str, body: &Value) -> Answer {
        send(self.http.put(self.url(path)).json(body))
    }

    pub fn patch(&self, path: &str, body: &Value) -> Answer {
        send(self.http.patch(self.url(path)).json(body))
    }

    /// `HEAD`; the answer has no body.
    pub fn head(&self, path: &str) -> Answer {
        send(self.http.head(self.url(path)))
    }

    pub fn delete(&self, path: &str) -> Answer {
        send(self.http.delete(self.url(path)))
    }

    /// Creates a project; returns its id.
    pub fn create_project(&self, name: &str, public: bool) -> i64 {
        let body = json!({"project_name": name, "metadata": {"public": public.to_string()}});
        created(self.post("/projects", &body), &format!("project {name}"))
    }

    /// Creates a private project with a storage quota of `limit` bytes;
    /// returns its id.
    pub fn create_project_with_quota(&self, name: &str, limit: u64) -> i64 {
        let body = json!({"project_name": name, "storage_limit": limit});
        created(self.post("/projects", &body), &format!("project {name}"))
    }

    /// The project's quota as `GET /quotas?reference_id=` shows it.
    pub fn quota(&self, project_id: i64) -> Value {
        let (status, _, body) = self.get(&format!(
            "/quotas?reference=project&reference_id={project_id}"
        ));
        assert_eq!(status, 200, "{body}");
        let list = body.as_array().expect("a list of quotas");
        assert_eq!(list.len(), 1, "{body}");
        list[0].clone()
    }

    /// The bytes the project's quota counts as used.
    pub fn used_storage(&self, project_id: i64) -> u64 {
        self.quota(project_id)["used"]["storage"]
            .as_u64()
            .expect("used storage")
    }

    /// Creates a registry endpoint (`type` docker-registry unless `kind`
    /// says otherwise) with an optional Basic credential; returns its id.
    pub fn create_registry(
        &self,
        name: &str,
        kind: &str,
        url: &str,
        credential: Option<(&str, &str)>,
    ) -> i64 {
        let mut body = json!({"name": name, "type": kind, "url": url});
        if let Some((key, secret)) = credential {
            body["credential"] =
                json!({"type": "basic", "access_key": key, "access_secret": secret});
        }
        created(self.post("/registries", &body), &format!("registry {name}"))
    }

    /// Creates a private project that caches (`proxy_mode` `cache`) or
    /// fronts (`passthrough`) registry endpoint `registry_id`; returns its id.
    pub fn create_upstream_project(&self, name: &str, registry_id: i64, proxy_mode: &str) -> i64 {
        let body = json!({
            "project_name": name,
            "registry_id": registry_id,
            "metadata": {"public": "false", "proxy_mode": proxy_mode},
        });
        created(self.post("/projects", &body), &format!("project {name}"))
    }

    /// Creates private projects (Harbor's default) for tests that only need
    /// them to exist.
    pub fn create_projects(&self, names: &[&str]) {
        for name in names {
            self.create_project(name, false);
        }
    }

    /// Creates a local user (not an administrator); returns its id.
    pub fn create_user(&self, name: &str, password: &str) -> i64 {
        let body = json!({
            "username": name,
            "password": password,
            "email": format!("{name}@example.org"),
            "realname": name,
        });
        created(self.post("/users", &body), &format!("user {name}"))
    }

    /// Makes `username` a member of `project` with Harbor's `role_id`
    /// (1 ProjectAdmin, 2 Developer, 3 Guest, 4 Maintainer, 5 LimitedGuest);
    /// returns the membership id.
    pub fn add_member(&self, project: &str, username: &str, role_id: i64) -> i64 {
        let body = json!({"role_id": role_id, "member_user": {"username": username}});
        created(
            self.post(&format!("/projects/{project}/members"), &body),
            &format!("member {username} of {project}"),
        )
    }

    /// Makes the LDAP group `group_dn` a member of `project`; returns the
    /// membership id.
    pub fn add_group_member(&self, project: &str, group_dn: &str, role_id: i64) -> i64 {
        // The group's name: the value of the DN's first RDN (`cn=devs,...`).
        let name = group_dn
            .split(',')
            .next()
            .and_then(|rdn| rdn.split_once('='))
            .map_or(group_dn, |(_, value)| value);
        let body = json!({
            "role_id": role_id,
            "member_group": {"ldap_group_dn": group_dn, "group_type": 1, "group_name": name},
        });
        created(
            self.post(&format!("/projects/{project}/members"), &body),
            &format!("group member {group_dn} of {project}"),
        )
    }

    /// Creates a robot account from Harbor's `RobotCreate` JSON; returns its
    /// full name (`robot$...`) and secret.
    pub fn create_robot(&self, robot: &Value) -> (String, String) {
        let (_, name, secret) = self.create_robot_with_id(robot);
        (name, secret)
    }

    /// [`Api::create_robot`], also returning the robot's id.
    pub fn create_robot_with_id(&self, robot: &Value) -> (i64, String, String) {
        let (status, _, body) = self.post("/robots", robot);
        assert_eq!(status, 201, "create robot {robot}: {body}");
        let field = |key: &str| {
            body[key]
                .as_str()
                .unwrap_or_else(|| panic!("no {key} in {body}"))
                .to_string()
        };
        let id = body["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no id in {body}"));
        (id, field("name"), field("secret"))
    }

    /// Replaces a robot account with Harbor's full `Robot` JSON.
    pub fn update_robot(&self, id: i64, robot: &Value) {
        let (status, _, body) = self.put(&format!("/robots/{id}"), robot);
        assert_eq!(status, 200, "update robot {id} with {robot}: {body}");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

fn send(request: RequestBuilder) -> Answer {
    let resp = request.send().expect("management API request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().expect("read management API answer");
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, headers, body)
}

/// Asserts a 201 and returns the id at the end of its Location.
impl Api {
    /// Creates a replication policy from Harbor's JSON; returns its id.
    pub fn create_replication_policy(&self, body: &Value) -> i64 {
        created(
            self.post("/replication/policies", body),
            &format!("replication policy {}", body["name"]),
        )
    }

    /// Starts a policy by hand; returns the execution's id.
    pub fn start_replication(&self, policy_id: i64) -> i64 {
        created(
            self.post(
                "/replication/executions",
                &json!({ "policy_id": policy_id }),
            ),
            &format!("execution of policy {policy_id}"),
        )
    }

    /// Waits until an execution is no longer in progress; returns it.
    pub fn wait_replication(&self, execution: i64, within: std::time::Duration) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let (status, _, body) = self.get(&format!("/replication/executions/{execution}"));
            assert_eq!(status, 200, "execution {execution}: {body}");
            if body["status"] != "InProgress" {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "execution {execution} still in progress after {within:?}: {body}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// The logs of an execution's tasks, joined.
    pub fn replication_logs(&self, execution: i64) -> String {
        let (status, _, tasks) = self.get(&format!(
            "/replication/executions/{execution}/tasks?page_size=100"
        ));
        assert_eq!(status, 200, "tasks of {execution}: {tasks}");
        let mut out = String::new();
        for task in tasks.as_array().expect("tasks array") {
            let (status, _, log) = self.get(&format!(
                "/replication/executions/{execution}/tasks/{}/log",
                task["id"]
            ));
            assert_eq!(status, 200, "log of task {}: {log}", task["id"]);
            out.push_str(log.as_str().unwrap_or_default());
        }
        out
    }
}

fn created((status, headers, body): Answer, what: &str) -> i64 {
    assert_eq!(status, 201, "create {what}: {body}");
    let location = headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("create {what}: no Location header"));
    location
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("create {what}: no id at the end of Location {location}"))
}
