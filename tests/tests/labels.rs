//! Labels: global and project labels with Harbor's roles, put on
//! artifacts and taken off, shown and filtered in the repository's and
//! the project's artifact listings, gone with the artifact or the label,
//! a replication label filter choosing what Debian's `docker-registry`
//! receives, and harborapi driving it all through Harbor's models.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use berth_tests::tools::text;
use berth_tests::upstream::DockerRegistry;
use berth_tests::{Api, Berth, Image, Registry};
use serde_json::{json, Value};

fn admin_registry(berth: &Berth) -> Registry {
    let (user, password) = berth.admin_credentials();
    Registry::with_basic_auth(&berth.url(), user, password)
}

/// Creates a label; its id from the Location header.
fn create(api: &Api, body: &Value) -> i64 {
    let (status, headers, answer) = api.post("/labels", body);
    assert_eq!(status, 201, "{body}: {answer}");
    let location = headers["location"].to_str().unwrap();
    assert!(location.starts_with("/api/v2.0/labels/"), "{location}");
    location.rsplit('/').next().unwrap().parse().unwrap()
}

fn message(answer: &Value) -> String {
    answer["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The digests a listing answered, and the names of each one's labels.
fn listed(api: &Api, path: &str) -> (Vec<(String, String, Vec<String>)>, i64) {
    let (status, headers, answer) = api.get(path);
    assert_eq!(status, 200, "{path}: {answer}");
    let total = headers["x-total-count"].to_str().unwrap().parse().unwrap();
    let rows = answer
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let labels = a["labels"]
                .as_array()
                .map(|ls| {
                    ls.iter()
                        .map(|l| l["name"].as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            (
                a["repository_name"].as_str().unwrap().to_owned(),
                a["digest"].as_str().unwrap().to_owned(),
                labels,
            )
        })
        .collect();
    (rows, total)
}

#[test]
fn labels_with_roles_on_artifacts_in_listings_and_filters() {
    let berth = Berth::start();
    let admin = Api::admin(&berth);
    let team = admin.create_project("team", false);
    let other = admin.create_project("other", false);
    for (user, role) in [("maint", 4), ("dev", 2), ("guest", 3)] {
        admin.create_user(user, "Passw0rd-1");
        admin.add_member("team", user, role);
    }
    admin.create_user("outsider", "Passw0rd-1");
    let as_user = |name: &str| Api::as_user(&berth, name, "Passw0rd-1");
    let (maint, dev, guest, outsider) = (
        as_user("maint"),
        as_user("dev"),
        as_user("guest"),
        as_user("outsider"),
    );
    let reg = admin_registry(&berth);
    let (one, two, web) = (Image::random(1), Image::random(1), Image::random(1));
    reg.push_image("team/app", "1", &one);
    reg.push_image("team/app", "2", &two);
    reg.push_image("team/web", "1", &web);

    // Global labels: administrators only.
    let prod = create(
        &admin,
        &json!({"name": "prod", "scope": "g", "color": "#0065AB", "description": "in use"}),
    );
    let (status, _, answer) = maint.post("/labels", &json!({"name": "x", "scope": "g"}));
    assert_eq!(status, 403, "{answer}");
    // Project labels: the project's admins and maintainers.
    let qa = create(
        &maint,
        &json!({"name": "qa", "scope": "p", "project_id": team}),
    );
    let (status, _, answer) = dev.post(
        "/labels",
        &json!({"name": "y", "scope": "p", "project_id": team}),
    );
    assert_eq!(status, 403, "{answer}");
    let (status, _, answer) = outsider.post(
        "/labels",
        &json!({"name": "y", "scope": "p", "project_id": team}),
    );
    assert_eq!(status, 404, "{answer}");
    let elsewhere = create(
        &admin,
        &json!({"name": "qa", "scope": "p", "project_id": other}),
    );
    // A name is unique in its scope only.
    let (status, _, answer) = maint.post(
        "/labels",
        &json!({"name": "qa", "scope": "p", "project_id": team}),
    );
    assert_eq!(status, 409, "{answer}");
    create(
        &maint,
        &json!({"name": "prod", "scope": "p", "project_id": team}),
    );
    // Bad input, each refused with the field named.
    for (body, words) in [
        (json!({"name": "z", "scope": "g", "color": "red"}), "color"),
        (json!({"name": "z"}), "scope"),
        (json!({"name": "z", "scope": "p"}), "project_id"),
        (json!({"name": "z".repeat(129), "scope": "g"}), "128"),
        (json!({"scope": "g"}), "name"),
        (json!({"name": "a\u{1}b", "scope": "g"}), "control"),
    ] {
        let (status, _, answer) = admin.post("/labels", &body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(message(&answer).contains(words), "{body}: {answer}");
    }

    // Listing: global labels to anyone signed in, a project's to its
    // members; another project's label reads as missing.
    let (status, _, answer) = dev.get("/labels?scope=g");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer[0]["name"], "prod", "{answer}");
    assert_eq!(answer[0]["color"], "#0065AB", "{answer}");
    assert_eq!(answer[0]["project_id"], 0, "{answer}");
    assert_eq!(Api::anonymous(&berth).get("/labels?scope=g").0, 401);
    let (status, headers, answer) = guest.get(&format!("/labels?scope=p&project_id={team}"));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(headers["x-total-count"], "2", "{answer}");
    let (status, _, answer) = guest.get(&format!("/labels?scope=p&project_id={team}&name=q"));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer.as_array().unwrap().len(), 1, "{answer}");
    assert_eq!(answer[0]["scope"], "p", "{answer}");
    let (status, _, answer) = outsider.get(&format!("/labels?scope=p&project_id={team}"));
    assert_eq!(status, 404, "{answer}");
    assert_eq!(dev.get(&format!("/labels/{elsewhere}")).0, 404);
    // Anonymous callers cannot tell which ids exist.
    let anonymous = Api::anonymous(&berth);
    assert_eq!(anonymous.get(&format!("/labels/{qa}")).0, 401);
    assert_eq!(anonymous.get("/labels/999999").0, 401);
    assert_eq!(anonymous.delete("/labels/999999").0, 401);
    assert_eq!(dev.get(&format!("/labels/{qa}")).0, 200);
    assert_eq!(dev.get("/labels?scope=x").0, 400);

    // Developers put labels on artifacts; guests may not.
    let app1 = "/projects/team/repositories/app/artifacts/1/labels";
    let (status, _, answer) = dev.post(app1, &json!({"id": prod}));
    assert_eq!(status, 200, "{answer}");
    let (status, _, answer) = dev.post(app1, &json!({"id": prod}));
    assert_eq!(status, 409, "{answer}");
    let (status, _, answer) = guest.post(app1, &json!({"id": qa}));
    assert_eq!(status, 403, "{answer}");
    let (status, _, answer) = dev.post(app1, &json!({"id": elsewhere}));
    assert_eq!(status, 404, "{answer}");
    let (status, _, answer) = dev.post(app1, &json!({"id": 999_999}));
    assert_eq!(status, 404, "{answer}");
    let (status, _, answer) = dev.post(
        "/projects/team/repositories/app/artifacts/9/labels",
        &json!({"id": prod}),
    );
    assert_eq!(status, 404, "{answer}");
    assert_eq!(dev.post(app1, &json!({"id": qa})).0, 200);
    let app2 = "/projects/team/repositories/app/artifacts/2/labels";
    assert_eq!(dev.post(app2, &json!({"id": qa})).0, 200);
    let web1 = "/projects/team/repositories/web/artifacts/1/labels";
    assert_eq!(dev.post(web1, &json!({"id": prod})).0, 200);

    // The repository's listing shows them when asked, and filters by them.
    let repo = "/projects/team/repositories/app/artifacts";
    let (rows, total) = listed(&guest, &format!("{repo}?with_label=true"));
    assert_eq!(total, 2);
    let by_digest = |d: &str| rows.iter().find(|r| r.1 == d).unwrap().2.clone();
    assert_eq!(by_digest(&one.manifest.digest), ["prod", "qa"]);
    assert_eq!(by_digest(&two.manifest.digest), ["qa"]);
    let (status, _, answer) = guest.get(repo);
    assert_eq!(status, 200);
    assert!(answer[0].get("labels").is_none(), "{answer}");
    let (rows, total) = listed(&guest, &format!("{repo}?q=labels%3D{prod}"));
    assert_eq!((rows.len(), total), (1, 1));
    assert_eq!(rows[0].1, one.manifest.digest);
    let (rows, total) = listed(&guest, &format!("{repo}?q=labels%3D({qa}%20{prod})"));
    assert_eq!((rows.len(), total), (1, 1));
    assert_eq!(rows[0].1, one.manifest.digest);
    let (rows, total) = listed(&guest, &format!("{repo}?q=labels%3D{qa}%2Ctags%3D2"));
    assert_eq!((rows.len(), total), (1, 1));
    assert_eq!(rows[0].1, two.manifest.digest);
    let (rows, _) = listed(
        &guest,
        &format!("{repo}?q=tags%3D~1%2Clabels%3D({qa}%20{prod})"),
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(guest.get(&format!("{repo}?q=labels%3Dx")).0, 400);
    let (status, _, answer) =
        guest.get("/projects/team/repositories/app/artifacts/1?with_label=true");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["labels"].as_array().unwrap().len(), 2, "{answer}");

    // The project's listing covers every repository.
    let (rows, total) = listed(&guest, "/projects/team/artifacts?with_label=true");
    assert_eq!(total, 3);
    let mut names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["team/app", "team/app", "team/web"]);
    let (rows, total) = listed(
        &guest,
        &format!("/projects/team/artifacts?q=labels%3D{prod}"),
    );
    assert_eq!(total, 2);
    let mut hits: Vec<(String, String)> = rows.into_iter().map(|r| (r.0, r.1)).collect();
    hits.sort();
    let mut want = vec![
        ("team/app".to_owned(), one.manifest.digest.clone()),
        ("team/web".to_owned(), web.manifest.digest.clone()),
    ];
    want.sort();
    assert_eq!(hits, want);
    let (rows, total) = listed(&guest, "/projects/team/artifacts?q=tags%3D1&page_size=1");
    assert_eq!((rows.len(), total), (1, 2));
    assert_eq!(outsider.get("/projects/team/artifacts").0, 404);

    // Renamed by a maintainer; taken off by a developer.
    let (status, _, answer) = maint.put(&format!("/labels/{qa}"), &json!({"name": "qa-ok"}));
    assert_eq!(status, 200, "{answer}");
    let (status, _, answer) = maint.put(&format!("/labels/{prod}"), &json!({"name": "p"}));
    assert_eq!(status, 403, "{answer}");
    let (status, _, answer) = dev.delete(&format!("{app2}/{qa}"));
    assert_eq!(status, 200, "{answer}");
    let (status, _, answer) = dev.delete(&format!("{app2}/{qa}"));
    assert_eq!(status, 404, "{answer}");
    let (rows, _) = listed(&guest, &format!("{repo}?with_label=true"));
    assert_eq!(by_digest_in(&rows, &one.manifest.digest), ["prod", "qa-ok"]);
    assert!(by_digest_in(&rows, &two.manifest.digest).is_empty());

    // Deleting the artifact takes its labels: pushed again, it has none.
    assert_eq!(
        admin
            .delete("/projects/team/repositories/app/artifacts/1")
            .0,
        200
    );
    reg.push_image("team/app", "1", &one);
    let (rows, _) = listed(&guest, &format!("{repo}?with_label=true"));
    assert!(by_digest_in(&rows, &one.manifest.digest).is_empty());
    // Deleting a label takes it off every artifact.
    assert_eq!(admin.delete(&format!("/labels/{prod}")).0, 200);
    assert_eq!(admin.get(&format!("/labels/{prod}")).0, 404);
    let (rows, _) = listed(&guest, "/projects/team/artifacts?with_label=true");
    assert!(rows.iter().all(|r| r.2.is_empty()), "{rows:?}");
}

fn by_digest_in(rows: &[(String, String, Vec<String>)], digest: &str) -> Vec<String> {
    rows.iter().find(|r| r.1 == digest).unwrap().2.clone()
}

#[test]
fn a_label_filter_chooses_what_replication_pushes() {
    let upstream = DockerRegistry::start();
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let reg = admin_registry(&berth);
    let (chosen, left) = (Image::random(1), Image::random(1));
    reg.push_image("library/app", "chosen", &chosen);
    reg.push_image("library/app", "left", &left);
    let release = create(&api, &json!({"name": "release", "scope": "g"}));
    let (status, _, answer) = api.post(
        "/projects/library/repositories/app/artifacts/chosen/labels",
        &json!({"id": release}),
    );
    assert_eq!(status, 200, "{answer}");
    let endpoint = api.create_registry("dr", "docker-registry", &upstream.url(), None);
    // Labels are this registry's: refused in pull mode.
    let (status, _, answer) = api.post(
        "/replication/policies",
        &json!({"name": "pull", "src_registry": {"id": endpoint},
                "filters": [{"type": "label", "value": ["release"]}]}),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(message(&answer).contains("push mode"), "{answer}");
    let policy = api.create_replication_policy(&json!({
        "name": "releases",
        "dest_registry": {"id": endpoint},
        "trigger": {"type": "manual"},
        "filters": [{"type": "name", "value": "library/**"},
                    {"type": "label", "value": ["release"], "decoration": "matches"}],
        "enabled": true
    }));
    let (_, _, got) = api.get(&format!("/replication/policies/{policy}"));
    let label = got["filters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "label")
        .cloned();
    assert_eq!(
        label,
        Some(json!({"type": "label", "value": ["release"], "decoration": "matches"})),
        "{got}"
    );
    let execution = api.start_replication(policy);
    let done = api.wait_replication(execution, Duration::from_secs(120));
    assert_eq!(done["status"], "Succeed", "{done}");
    let there = Registry::new(&upstream.url());
    assert_eq!(there.tags("library/app"), ["chosen"]);
    let logs = api.replication_logs(execution);
    assert!(logs.contains("does not pass the label filters"), "{logs}");
}

/// harborapi (PyPI) creates, lists, reads and changes labels, puts one on
/// an artifact and finds it in both listings, through Harbor's models.
const HARBORAPI_SCRIPT: &str = r##"
import asyncio, json, os
from harborapi import HarborAsyncClient
from harborapi.models import Label

async def main():
    c = HarborAsyncClient(url=os.environ["BERTH_URL"] + "/api/v2.0",
                          username="admin", secret=os.environ["BERTH_PASSWORD"])
    location = await c.create_label(Label(name="stable", scope="g", color="#00AA00"))
    label_id = int(location.rsplit("/", 1)[1])
    await c.update_label(label_id, Label(name="stable", description="tested"))
    label = await c.get_label(label_id)
    listed = await c.get_labels(scope="g")
    await c.add_artifact_label("library", "app", "1", Label(id=label_id))
    artifacts = await c.get_artifacts("library", "app", with_label=True)
    project = await c.get_project_artifacts("library", with_label=True, with_tag=True)
    await c.delete_artifact_label("library", "app", "1", label_id)
    after = await c.get_artifacts("library", "app", with_label=True)
    await c.delete_label(label_id)
    print(json.dumps({
        "label": [label.name, label.description, label.scope, label.color],
        "listed": [l.name for l in listed],
        "artifact": [l.name for l in artifacts[0].labels],
        "project": [[a.repository_name, [t.name for t in a.tags], [l.name for l in a.labels]]
                    for a in project],
        "after": [l.name for l in (after[0].labels or [])],
    }))

asyncio.run(main())
"##;

#[test]
fn harborapi_drives_labels_through_harbors_models() {
    let berth = Berth::start();
    admin_registry(&berth).push_image("library/app", "1", &Image::random(1));
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
        json!({
            "label": ["stable", "tested", "g", "#00AA00"],
            "listed": ["stable"],
            "artifact": ["stable"],
            "project": [["library/app", ["1"], ["stable"]]],
            "after": [],
        })
    );
}
