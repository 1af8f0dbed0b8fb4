//! `/configurations`: settings that change at run time, stored in the
//! database and applied without a restart (read-only mode, who may create
//! projects, token lifetime, new projects' storage limit), the config
//! file's settings shown and never changed, and harborapi reading and
//! changing them through Harbor's models.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use berth_tests::tools::{skopeo_copy, skopeo_login, text, write_oci_layout};
use berth_tests::{Api, Berth, Image, Registry};
use serde_json::{json, Value};

fn authfile(berth: &Berth) -> PathBuf {
    let file = berth.scratch_dir().join("auth.json");
    let (user, password) = berth.admin_credentials();
    let out = skopeo_login(&file, &berth.host_port(), user, password);
    assert!(out.status.success(), "skopeo login: {}", text(&out));
    file
}

fn push(berth: &Berth, auth: &Path, reference: &str) -> std::process::Output {
    let dir = berth
        .scratch_dir()
        .join(format!("push-{}", berth_tests::content::random_suffix()));
    let layout = write_oci_layout(&dir, &Image::random(1), "t");
    skopeo_copy(
        auth,
        &layout,
        &format!("docker://{}/{reference}", berth.host_port()),
    )
}

fn message(answer: &Value) -> String {
    answer["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn read_only_mode_refuses_writes_and_keeps_pulls() {
    let berth = Berth::start();
    let admin = Api::admin(&berth);
    let auth = authfile(&berth);
    let out = push(&berth, &auth, "library/app:1");
    assert!(out.status.success(), "push: {}", text(&out));

    let (status, _, answer) = admin.put("/configurations", &json!({"read_only": true}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(admin.get("/systeminfo").2["read_only"], true);
    assert_eq!(
        admin.get("/configurations").2["read_only"],
        json!({"value": true, "editable": true})
    );

    // skopeo's push is refused with the reason.
    let out = push(&berth, &auth, "library/app:2");
    assert!(
        !out.status.success(),
        "a push went through in read-only mode"
    );
    assert!(text(&out).contains("read-only mode"), "{}", text(&out));
    // Pulls work.
    let pulled = berth.scratch_dir().join("pulled");
    let out = skopeo_copy(
        &auth,
        &format!("docker://{}/library/app:1", berth.host_port()),
        &format!("oci:{}:t", pulled.display()),
    );
    assert!(out.status.success(), "pull: {}", text(&out));
    // Deletes through the API and the registry, and real GC runs, too.
    let (status, _, answer) = admin.delete("/projects/library/repositories/app/artifacts/1");
    assert_eq!(status, 403, "{answer}");
    assert!(message(&answer).contains("read-only mode"), "{answer}");
    let (user, password) = berth.admin_credentials();
    let registry = Registry::with_basic_auth(&berth.url(), user, password);
    let resp = registry
        .http()
        .delete(registry.url("/v2/library/app/manifests/1"))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let manual =
        |dry: bool| json!({"schedule": {"type": "Manual"}, "parameters": {"dry_run": dry}});
    let (status, _, answer) = admin.post("/system/gc/schedule", &manual(false));
    assert_eq!(status, 403, "{answer}");
    let (status, _, answer) = admin.post("/system/gc/schedule", &manual(true));
    assert_eq!(status, 201, "a dry run changes nothing: {answer}");

    // A restart keeps it on (it is stored); turning it off lets pushes in.
    let mut berth = berth;
    berth.restart();
    let admin = Api::admin(&berth);
    assert_eq!(admin.get("/systeminfo").2["read_only"], true);
    let (status, _, answer) = admin.put("/configurations", &json!({"read_only": false}));
    assert_eq!(status, 200, "{answer}");
    let auth = authfile(&berth);
    let out = push(&berth, &auth, "library/app:2");
    assert!(out.status.success(), "push after read-only: {}", text(&out));
}

#[test]
fn settings_change_at_run_time_unless_the_file_sets_them() {
    let berth = Berth::start_with_env(&[("BERTH_AUTH__TOKEN_TTL", "10m")]);
    let admin = Api::admin(&berth);
    let (status, _, all) = admin.get("/configurations");
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        all["token_expiration"],
        json!({"value": 10, "editable": false})
    );
    // The file sets no directory: the API may (configurations_live).
    assert_eq!(
        all["auth_mode"],
        json!({"value": "db_auth", "editable": true})
    );
    assert_eq!(
        all["storage_per_project"],
        json!({"value": -1, "editable": true})
    );
    assert_eq!(
        all["project_creation_restriction"],
        json!({"value": "everyone", "editable": true})
    );

    // What the file sets is refused, by name; sent back unchanged it is
    // accepted (clients send what GET gave them).
    let (status, _, answer) = admin.put("/configurations", &json!({"token_expiration": 20}));
    assert_eq!(status, 400, "{answer}");
    assert!(message(&answer).contains("auth.token_ttl"), "{answer}");
    let (status, _, answer) = admin.put(
        "/configurations",
        &json!({"token_expiration": 10, "auth_mode": "db_auth", "read_only": null}),
    );
    assert_eq!(status, 200, "{answer}");
    for (body, needle) in [
        (json!({"auth_mode": "ldap_auth"}), "ldap_url"),
        (json!({"self_registration": true}), "always false"),
        (json!({"no_such_setting": 1}), "no_such_setting"),
        (json!({"read_only": "yes"}), "true or false"),
        (
            json!({"project_creation_restriction": "nobody"}),
            "adminonly",
        ),
        (json!({"storage_per_project": -5}), "-1 for unlimited"),
    ] {
        let (status, _, answer) = admin.put("/configurations", &body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(message(&answer).contains(needle), "{body}: {answer}");
    }
    // Nothing of a refused PUT was applied.
    let (status, _, answer) = admin.put(
        "/configurations",
        &json!({"read_only": true, "token_expiration": 30}),
    );
    assert_eq!(status, 400, "{answer}");
    assert_eq!(admin.get("/systeminfo").2["read_only"], false);

    // Administrators only.
    admin.create_user("alice", "alice-pw-1");
    let alice = Api::as_user(&berth, "alice", "alice-pw-1");
    assert_eq!(alice.get("/configurations").0, 403);
    assert_eq!(
        alice.put("/configurations", &json!({"read_only": true})).0,
        403
    );
    assert_eq!(Api::anonymous(&berth).get("/configurations").0, 401);

    // Only administrators create projects.
    let (status, _, answer) = admin.put(
        "/configurations",
        &json!({"project_creation_restriction": "adminonly"}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        admin.get("/systeminfo").2["project_creation_restriction"],
        "adminonly"
    );
    let (status, _, answer) = alice.post("/projects", &json!({"project_name": "alices"}));
    assert_eq!(status, 403, "{answer}");
    assert!(message(&answer).contains("adminonly"), "{answer}");
    assert_eq!(
        admin
            .post("/projects", &json!({"project_name": "admins"}))
            .0,
        201
    );
    admin.put(
        "/configurations",
        &json!({"project_creation_restriction": "everyone"}),
    );
    assert_eq!(
        alice
            .post("/projects", &json!({"project_name": "alices"}))
            .0,
        201
    );

    // New projects get the storage limit set here.
    let (status, _, answer) = admin.put(
        "/configurations",
        &json!({"storage_per_project": 1_048_576}),
    );
    assert_eq!(status, 200, "{answer}");
    let id = admin.create_project("limited", false);
    assert_eq!(admin.quota(id)["hard"]["storage"], 1_048_576);
}

#[test]
fn token_lifetime_changes_for_tokens_issued_after() {
    let berth = Berth::start();
    let admin = Api::admin(&berth);
    let (user, password) = berth.admin_credentials();
    let token = |b: &Berth| -> Value {
        reqwest::blocking::Client::new()
            .get(format!("{}/service/token?service=berth", b.url()))
            .basic_auth(user, Some(password))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert_eq!(token(&berth)["expires_in"], 1800);
    let (status, _, answer) = admin.put("/configurations", &json!({"token_expiration": 5}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(token(&berth)["expires_in"], 300);
    assert_eq!(
        admin.get("/configurations").2["token_expiration"],
        json!({"value": 5, "editable": true})
    );
}

/// harborapi (PyPI) reads and changes the settings through Harbor's
/// `ConfigurationsResponse` and `Configurations` models.
const HARBORAPI_SCRIPT: &str = r#"
import asyncio, json, os
from harborapi import HarborAsyncClient
from harborapi.models import Configurations

async def main():
    c = HarborAsyncClient(url=os.environ["BERTH_URL"] + "/api/v2.0",
                          username="admin", secret=os.environ["BERTH_PASSWORD"])
    before = await c.get_config()
    await c.update_config(Configurations(read_only=True, project_creation_restriction="adminonly"))
    after = await c.get_config()
    print(json.dumps({
        "auth_mode": before.auth_mode.value,
        "read_only": [before.read_only.value, after.read_only.value, after.read_only.editable],
        "creation": after.project_creation_restriction.value,
        "token": after.token_expiration.value,
    }))

asyncio.run(main())
"#;

#[test]
fn harborapi_reads_and_changes_the_configuration() {
    let berth = Berth::start();
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
        json!({"auth_mode": "db_auth", "read_only": [false, true, true],
               "creation": "adminonly", "token": 30})
    );
    assert_eq!(Api::admin(&berth).get("/systeminfo").2["read_only"], true);
}

#[test]
fn read_only_mode_serves_the_proxy_cache_without_filling_it() {
    let upstream = Berth::start();
    let (user, password) = upstream.admin_credentials();
    let up = Registry::with_basic_auth(&upstream.url(), user, password);
    let (cached, uncached) = (Image::random(1), Image::random(1));
    up.push_image("library/cached", "1", &cached);
    up.push_image("library/uncached", "1", &uncached);

    let berth = Berth::start();
    let admin = Api::admin(&berth);
    let endpoint = admin.create_registry(
        "up",
        "docker-registry",
        &upstream.url(),
        Some((user, password)),
    );
    admin.create_upstream_project("cache", endpoint, "cache");
    let (user, password) = berth.admin_credentials();
    let here = Registry::with_basic_auth(&berth.url(), user, password);
    here.assert_image("cache/library/cached", "1", &cached);

    admin.put("/configurations", &json!({"read_only": true}));
    // What is cached is served (by tag, with a warning that the upstream
    // was not asked); what is not is refused, and not stored.
    here.assert_image("cache/library/cached", "1", &cached);
    let resp = here.get_manifest("cache/library/cached", "1");
    let warning = resp
        .headers()
        .get("warning")
        .map(|w| w.to_str().unwrap_or_default().to_owned());
    assert!(warning.unwrap_or_default().contains("read-only"));
    let resp = here.get_manifest("cache/library/uncached", "1");
    assert_eq!(resp.status().as_u16(), 403);
    assert!(resp.text().unwrap().contains("read-only mode"));
    let stored =
        berth.sql("SELECT count(*) FROM repositories WHERE name = 'cache/library/uncached'");
    assert_eq!(stored.trim(), "0");

    admin.put("/configurations", &json!({"read_only": false}));
    here.assert_image("cache/library/uncached", "1", &uncached);
}

#[test]
fn the_portal_turns_read_only_mode_on_and_off() {
    use berth_tests::browser::{input_value, Browser, FormClient};
    let berth = Berth::start();
    let admin = Api::admin(&berth);
    let (user, password) = berth.admin_credentials();
    let b = Browser::start(&berth.url());
    b.sign_in(user, password);
    b.goto("/admin/system");
    b.set_checked("#read_only", true);
    b.select("#project_creation_restriction", "adminonly");
    b.click_and_wait("#settings-submit");
    b.wait_for(".flash.ok");
    assert_eq!(admin.get("/systeminfo").2["read_only"], true);
    assert_eq!(
        admin.get("/systeminfo").2["project_creation_restriction"],
        "adminonly"
    );
    b.set_checked("#read_only", false);
    b.click_and_wait("#settings-submit");
    b.wait_for(".flash.ok");
    assert_eq!(admin.get("/systeminfo").2["read_only"], false);

    // Not for other users, whatever they post.
    admin.create_user("alice", "alice-pw-1");
    let mut form = FormClient::new(&berth.url(), None);
    form.sign_in("alice", "alice-pw-1");
    let page = form.get("/projects");
    let csrf = input_value(&page.body, "csrf").unwrap_or_default();
    let page = form.post_form(
        "/admin/system/settings",
        &[("csrf", &csrf), ("read_only", "true")],
    );
    assert_eq!(page.status, 403, "{}", page.body);
    assert_eq!(admin.get("/systeminfo").2["read_only"], false);
}
