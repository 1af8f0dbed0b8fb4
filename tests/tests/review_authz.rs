//! Authorization defects found in review, each reproduced against the real
//! binary: a project named by digits is a name, never an id (robots);
//! robot scope and project logs belong to a project's id, not its name;
//! the mirror's stand-in is for pulls only; Harbor's role matrix for tag
//! rules, robots, quotas and the summary.
#![allow(clippy::unwrap_used)]

use berth_tests::content::random_layer;
use berth_tests::registry::{http_client, Registry};
use berth_tests::tokens::fetch_token;
use berth_tests::upstream::DockerRegistry;
use berth_tests::{Api, Berth, Image};
use serde_json::{json, Value};

fn project_robot(name: &str, project: &str, actions: &[&str]) -> Value {
    json!({
        "name": name,
        "level": "project",
        "duration": -1,
        "permissions": [{
            "kind": "project",
            "namespace": project,
            "access": actions.iter().map(|a| json!({"resource": "repository", "action": a})).collect::<Vec<_>>(),
        }],
    })
}

fn system_robot(name: &str, project: &str, actions: &[&str]) -> Value {
    let mut r = project_robot(name, project, actions);
    r["level"] = json!("system");
    r
}

fn small_image() -> Image {
    Image::with_layers(vec![random_layer(1, 2048)])
}

/// Item 1 of the review: admin's private project `3` has id 2; mallory's
/// own project has id 3. A namespace `"3"` must mean the project named
/// `3` everywhere: mallory may neither create robots in it nor touch its
/// robots, whatever the id behind the digits.
#[test]
fn an_all_digit_project_name_is_never_read_as_an_id() {
    let berth = Berth::start();
    let admin = Api::admin(&berth);
    let three = admin.create_project("3", false);
    admin.create_user("mallory", "Mallory-pw-1");
    let mallory = Api::as_user(&berth, "mallory", "Mallory-pw-1");
    let (status, _, body) = mallory.post(
        "/projects",
        &json!({"project_name": "mal", "metadata": {"public": "false"}}),
    );
    assert_eq!(status, 201, "{body}");
    let mal = mallory.get("/projects/mal").2["project_id"]
        .as_i64()
        .unwrap();
    assert_eq!(mal, 3, "the test needs mallory's project to have id 3");
    assert_ne!(three, 3);

    // The admin's robot in project `3`.
    let (deploy_id, _, deploy_secret) =
        admin.create_robot_with_id(&project_robot("deploy", "3", &["pull", "push"]));

    // mallory, admin of project id 3, asks for a robot in namespace "3".
    let (status, _, body) = mallory.post("/robots", &project_robot("x", "3", &["pull", "push"]));
    assert!(
        status == 403 || status == 404,
        "a robot in another's project `3`: {status} {body}"
    );
    // ... and cannot refresh, read, change or delete the admin's robot.
    let (status, _, body) = mallory.patch(&format!("/robots/{deploy_id}"), &json!({}));
    assert_eq!(status, 404, "refresh of robot$3+deploy: {body}");
    assert!(body.get("secret").is_none(), "{body}");
    assert_eq!(mallory.get(&format!("/robots/{deploy_id}")).0, 404);
    assert_eq!(mallory.delete(&format!("/robots/{deploy_id}")).0, 404);
    // Listing by the private project's id is not hers either.
    let (status, _, body) = mallory.get(&format!("/robots?q=ProjectID={three}"));
    assert!(status == 403 || status == 404, "{status} {body}");
    // Her own project's robots she manages (namespace = her project name).
    let (status, _, body) = mallory.post("/robots", &project_robot("ci", "mal", &["push"]));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "robot$mal+ci");
    let (status, _, listed) = mallory.get(&format!("/robots?q=ProjectID={mal}"));
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // The admin's robot still works with its original secret.
    let robot = Registry::with_basic_auth(&berth.url(), "robot$3+deploy", &deploy_secret);
    robot.push_image("3/app", "v1", &small_image());
    // The member API by name: `X-Is-Resource-Name` is how `3` is a name.
    let by_name = http_client(Some(berth.admin_credentials()))
        .get(format!("{}/api/v2.0/projects/3", berth.url()))
        .header("X-Is-Resource-Name", "true")
        .send()
        .unwrap();
    assert_eq!(by_name.status(), 200);
    let body: Value = by_name.json().unwrap();
    assert_eq!(body["name"], "3");
    // Without it, digits are an id (Harbor's `project_name_or_id`).
    assert_eq!(admin.get("/projects/3").2["name"], "mal");
}

/// Item 5b: a system robot's access to `oldteam` does not pass to the
/// project someone else creates later under that name, and neither does
/// the old project's audit log.
#[test]
fn robot_scope_and_logs_stay_with_the_project_not_its_name() {
    let berth = Berth::start();
    let admin = Api::admin(&berth);
    admin.create_project("oldteam", false);
    let (robot, secret) = admin.create_robot(&system_robot("reader", "oldteam", &["pull"]));
    let registry = Registry::with_basic_auth(
        &berth.url(),
        berth.admin_credentials().0,
        berth.admin_credentials().1,
    );
    registry.push_image("oldteam/app", "v1", &small_image());
    let reader = Registry::with_basic_auth(&berth.url(), &robot, &secret);
    assert_eq!(reader.get_manifest("oldteam/app", "v1").status(), 200);
    let old_logs = admin.get("/projects/oldteam/logs").2;
    assert!(
        !old_logs.as_array().unwrap().is_empty(),
        "the old project has a log: {old_logs}"
    );

    let (status, _, body) = admin.delete("/projects/oldteam?force=true");
    assert_eq!(status, 200, "{body}");
    admin.create_user("newowner", "Newowner-pw-1");
    let owner = Api::as_user(&berth, "newowner", "Newowner-pw-1");
    let (status, _, body) = owner.post(
        "/projects",
        &json!({"project_name": "oldteam", "metadata": {"public": "false"}}),
    );
    assert_eq!(status, 201, "{body}");
    let pusher = Registry::with_basic_auth(&berth.url(), "newowner", "Newowner-pw-1");
    let secret_image = small_image();
    pusher.push_image("oldteam/app", "v1", &secret_image);

    // The robot's old permission covers nothing now.
    let resp = reader.get_manifest("oldteam/app", "v1");
    assert!(
        resp.status() == 401 || resp.status() == 403 || resp.status() == 404,
        "robot of the deleted project pulls the new one: {}",
        resp.status()
    );
    let token = http_client(Some((robot.as_str(), secret.as_str())))
        .get(format!("{}/service/token", berth.url()))
        .query(&[
            ("service", "berth"),
            ("scope", "repository:oldteam/app:pull"),
        ])
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    let claims = berth_tests::jwt::claims(token["token"].as_str().unwrap());
    assert!(
        claims["access"].as_array().is_none_or(|a| a.is_empty()),
        "token grants: {claims}"
    );
    // The robot's listing shows the namespace as it was written.
    let listed = admin.get("/robots?q=Level=system").2;
    assert_eq!(listed[0]["permissions"][0]["namespace"], "oldteam");

    // The new owner sees her project's log, not the old one's.
    let logs = owner.get("/projects/oldteam/logs").2;
    let entries = logs.as_array().unwrap();
    // (The robot's refused pull above is the new project's own record.)
    assert!(
        entries.iter().all(|e| e["username"] != "admin"
            && !(e["username"] == robot.as_str() && e["operation_result"] == true)),
        "the old project's log leaked: {logs}"
    );
    assert!(
        entries.iter().any(|e| e["username"] == "newowner"),
        "her own push is there: {logs}"
    );
}

/// Item 5a: in mirror mode a Developer of the mirror project may pull a
/// name that is not a project, but not push to it.
#[test]
fn the_mirror_stand_in_is_for_pulls_only() {
    let upstream = DockerRegistry::start();
    let berth = Berth::start_with_env(&[("BERTH_PROXY__MIRROR", "hub")]);
    let admin = Api::admin(&berth);
    admin.create_registry("hub", "docker-registry", &upstream.url(), None);
    // The mirror project appears on first use.
    let anon = http_client(None)
        .get(format!("{}/v2/tools/jq/tags/list", berth.url()))
        .send()
        .unwrap();
    assert!(anon.status().as_u16() < 500, "{}", anon.status());
    admin.create_user("dev", "Dev-pw-123");
    admin.add_member("mirror", "dev", 2);

    let dev = Registry::with_basic_auth(&berth.url(), "dev", "Dev-pw-123");
    let start = dev
        .http()
        .post(dev.url("/v2/phantom/app/blobs/uploads/"))
        .send()
        .unwrap();
    assert!(
        start.status() == 403 || start.status() == 404 || start.status() == 401,
        "push into a project that does not exist: {}",
        start.status()
    );
    // Through the token service the same: no push grant.
    let token = fetch_token(
        &berth.url(),
        Some(("dev", "Dev-pw-123")),
        &["repository:phantom/app:pull,push"],
    );
    let claims = berth_tests::jwt::claims(&token);
    let actions: Vec<String> = claims["access"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["actions"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    assert!(!actions.contains(&"push".to_owned()), "{claims}");
    assert!(actions.contains(&"pull".to_owned()), "{claims}");
    // Nothing landed.
    let catalog = Api::admin(&berth);
    let (_, _, repos) = catalog.get("/projects/mirror/repositories");
    assert!(
        repos
            .as_array()
            .unwrap()
            .iter()
            .all(|r| !r["name"].as_str().unwrap_or("").contains("phantom")),
        "{repos}"
    );
}

/// Item 5c: Harbor's matrix. Developers and Guests do not read
/// immutability rules; Guests and Developers read robots; LimitedGuests
/// read the quota; member counts only for those who may list members;
/// robots may check whether a project exists.
#[test]
fn roles_follow_harbors_matrix() {
    let berth = Berth::start();
    let admin = Api::admin(&berth);
    admin.create_project("team", false);
    for (user, role) in [("dev", 2), ("guest", 3), ("limited", 5), ("keeper", 4)] {
        admin.create_user(user, "Role-pw-123");
        admin.add_member("team", user, role);
    }
    let as_ = |u: &str| Api::as_user(&berth, u, "Role-pw-123");
    let pid = admin.get("/projects/team").2["project_id"]
        .as_i64()
        .unwrap();

    for (user, expected) in [("dev", 403), ("guest", 403), ("keeper", 200)] {
        let (status, _, body) = as_(user).get("/projects/team/immutabletagrules");
        assert_eq!(status, expected, "{user} reads immutability rules: {body}");
    }
    for (user, expected) in [("dev", 200), ("guest", 200), ("limited", 403)] {
        let (status, _, body) = as_(user).get(&format!("/robots?q=ProjectID={pid}"));
        let status = if status == 404 { 403 } else { status };
        assert_eq!(status, expected, "{user} lists robots: {body}");
    }
    let (status, _, body) =
        as_("limited").get(&format!("/quotas?reference=project&reference_id={pid}"));
    assert_eq!(status, 200, "LimitedGuest reads the quota: {body}");
    assert_eq!(body.as_array().map(Vec::len), Some(1), "{body}");

    let summary = as_("limited").get("/projects/team/summary").2;
    assert!(summary.get("guest_count").is_none(), "{summary}");
    assert!(summary.get("project_admin_count").is_none(), "{summary}");
    let summary = as_("guest").get("/projects/team/summary").2;
    assert_eq!(summary["guest_count"], 1, "{summary}");

    let (robot, secret) = admin.create_robot(&project_robot("ci", "team", &["pull"]));
    let bot = Api::as_user(&berth, &robot, &secret);
    assert_eq!(bot.head("/projects?project_name=team").0, 200);
    assert_eq!(bot.head("/projects?project_name=nope").0, 404);
    assert_eq!(
        Api::anonymous(&berth).head("/projects?project_name=team").0,
        401
    );
}
