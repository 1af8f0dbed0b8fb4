//! The administration pages in a real browser: users (created, promoted,
//! disabled, reset, deleted), registry endpoints (tested and created),
//! quotas, the GC schedule, system robot accounts, and the system page
//! (health, configuration without secrets). Each change is checked where
//! it matters: through the API, a login, or a push with skopeo; and a
//! non-administrator is refused the pages and a forged form.
#![allow(clippy::unwrap_used)]

use berth_tests::browser::{input_value, Browser, FormClient};
use berth_tests::content::random_suffix;
use berth_tests::tools::{skopeo_push_once, text};
use berth_tests::upstream::DockerRegistry;
use berth_tests::{Api, Berth, Image};
use std::time::Duration;

fn admin_browser(berth: &Berth) -> Browser {
    let browser = Browser::start(&berth.url());
    assert_eq!(
        browser.sign_in("admin", berth.admin_password()),
        "/projects"
    );
    browser
}

fn user_id(api: &Api, name: &str) -> Option<i64> {
    let (status, _, users) = api.get(&format!("/users?q=username%3D{name}"));
    assert_eq!(status, 200, "{users}");
    users
        .as_array()
        .unwrap()
        .first()
        .map(|u| u["user_id"].as_i64().unwrap())
}

#[test]
fn users_are_created_promoted_disabled_reset_and_deleted_in_the_browser() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let browser = admin_browser(&berth);
    let carol = format!("carol{}", random_suffix());

    browser.goto("/admin");
    assert_eq!(browser.current_path(), "/admin/users");
    // Two different passwords: refused, nobody created.
    browser.fill("#new-username", &carol);
    browser.fill("#new-password", "first-password-1");
    browser.fill("#new-password2", "other-password-2");
    browser.submit("form#create-user");
    assert!(
        browser.source().contains("differ"),
        "{}",
        browser.text("main")
    );
    assert_eq!(user_id(&api, &carol), None);

    browser.goto("/admin/users");
    browser.fill("#new-username", &carol);
    browser.fill("#new-realname", "<i>Carol</i>");
    browser.fill("#new-email", &format!("{carol}@example.org"));
    browser.fill("#new-password", "carol-password-1");
    browser.fill("#new-password2", "carol-password-1");
    browser.submit("form#create-user");
    let row = format!("table#users tr[data-user=\"{carol}\"]");
    browser.wait_for(&row);
    assert!(browser.exists("#flash"));
    assert!(
        browser.text(&row).contains("<i>Carol</i>"),
        "markup is text"
    );
    let id = user_id(&api, &carol).expect("created");
    browser.screenshot("admin-users");
    // The built-in administrator cannot be deleted or demoted here.
    assert!(!browser.exists("tr[data-user=\"admin\"] form.delete-user"));
    assert!(!browser.exists("tr[data-user=\"admin\"] form.set-admin"));

    // Carol signs in; the administration pages and a forged form are refused.
    let mut carol_web = FormClient::new(&berth.url(), None);
    let signed_in = carol_web.sign_in(&carol, "carol-password-1");
    assert_eq!(
        signed_in.location(),
        Some("/projects"),
        "{}",
        signed_in.body
    );
    assert_eq!(carol_web.get("/admin/users").status, 403);
    assert_eq!(carol_web.get("/admin/system").status, 403);
    let csrf = input_value(&carol_web.get("/account").body, "csrf").unwrap();
    let forged = carol_web.post_form(
        &format!("/admin/users/{id}/sysadmin"),
        &[("csrf", &csrf), ("sysadmin", "true")],
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    let (_, _, me) = api.get(&format!("/users/{id}"));
    assert_eq!(me["sysadmin_flag"], false);

    // Made administrator in the page: the pages open for her.
    browser.submit(&format!("{row} form.set-admin"));
    browser.wait_for(&format!("{row} .badge"));
    let (_, _, me) = api.get(&format!("/users/{id}"));
    assert_eq!(me["sysadmin_flag"], true, "{me}");
    assert_eq!(carol_web.get("/admin/users").status, 200);
    // An administrator cannot revoke their own rights, page or no page.
    let csrf = input_value(&carol_web.get("/admin/users").body, "csrf").unwrap();
    let own = carol_web.post_form(
        &format!("/admin/users/{id}/sysadmin"),
        &[("csrf", &csrf), ("sysadmin", "false")],
    );
    assert_eq!(own.status, 403, "{}", own.body);
    assert_eq!(api.get(&format!("/users/{id}")).2["sysadmin_flag"], true);
    browser.submit(&format!("{row} form.set-admin"));
    let (_, _, me) = api.get(&format!("/users/{id}"));
    assert_eq!(me["sysadmin_flag"], false, "{me}");

    // Disabled: her session and her password stop working; enabled again.
    browser.submit(&format!("{row} form.set-disabled"));
    browser.wait_for(&format!("{row} .badge.dim"));
    let after = carol_web.get("/account");
    assert_ne!(after.status, 200, "a disabled user's session still works");
    let as_carol = Api::as_user(&berth, &carol, "carol-password-1");
    assert_eq!(as_carol.get("/users/current").0, 401);
    browser.submit(&format!("{row} form.set-disabled"));
    assert_eq!(as_carol.get("/users/current").0, 200);

    // The password reset in the page: the old one stops, the new one works.
    browser.click(&format!("{row} details.reset-password summary"));
    browser.fill(&format!("#pw-{id}"), "carol-password-2");
    browser.fill(&format!("#pw2-{id}"), "carol-password-2");
    browser.submit(&format!("{row} details.reset-password form"));
    assert_eq!(as_carol.get("/users/current").0, 401);
    let renewed = Api::as_user(&berth, &carol, "carol-password-2");
    assert_eq!(renewed.get("/users/current").0, 200);

    // Deleted.
    browser.submit(&format!("{row} form.delete-user"));
    browser.wait_gone(&row);
    assert_eq!(user_id(&api, &carol), None);
    assert_eq!(renewed.get("/users/current").0, 401);

    // Every change is in the audit log, filtered by resource type; a
    // non-administrator may not read it.
    browser.goto("/admin/logs");
    browser.fill("#f-resource-type", "user");
    browser.submit("form#audit-filter");
    assert_eq!(browser.value("#f-resource-type"), "user");
    // Records are written behind the requests: reload until the last is in.
    let log = browser.wait_until(
        "the user's deletion in the log",
        Duration::from_secs(10),
        |b| {
            b.refresh();
            b.exists("table#audit-log tr[data-operation=delete]")
                .then(|| b.text("table#audit-log tbody"))
        },
    );
    for expected in [
        format!("{carol}:sysadmin=true"),
        format!("{carol}:disabled=true"),
        format!("{carol}:password"),
    ] {
        assert!(log.contains(&expected), "{expected} missing from:\n{log}");
    }
    assert_eq!(
        browser.count("table#audit-log tr[data-operation=delete]"),
        1,
        "{log}"
    );
    assert!(
        !log.contains("push"),
        "the filter let other records through"
    );
    let dave = format!("dave{}", random_suffix());
    api.create_user(&dave, "dave-password-1");
    let mut dave_web = FormClient::new(&berth.url(), None);
    dave_web.sign_in(&dave, "dave-password-1");
    assert_eq!(dave_web.get("/admin/logs").status, 403);
}

#[test]
fn a_registry_endpoint_is_tested_created_and_deleted_in_the_browser() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let upstream = DockerRegistry::start();
    let browser = admin_browser(&berth);
    let name = format!("hub{}", random_suffix());

    browser.goto("/admin/registries");
    // A test of an address where nothing listens fails, and says so.
    browser.select("#reg-type", "docker-registry");
    browser.fill("#reg-name", &name);
    browser.fill("#reg-url", "http://127.0.0.1:9");
    browser.click_and_wait("#reg-test");
    assert!(browser.exists("#flash.error"), "{}", browser.text("main"));
    // The form comes back as it was.
    assert_eq!(browser.value("#reg-name"), name);

    browser.fill("#reg-url", &upstream.url());
    browser.click_and_wait("#reg-test");
    assert!(browser.exists("#flash.ok"), "{}", browser.text("main"));
    browser.click_and_wait("#reg-create");
    let row = format!("table#registries tr[data-registry=\"{name}\"]");
    browser.wait_for(&row);
    let (_, _, list) = api.get("/registries");
    let id = list.as_array().unwrap()[0]["id"].as_i64().unwrap();
    assert_eq!(list[0]["url"], upstream.url().trim_end_matches('/'));
    browser.screenshot("admin-registries");

    // The stored endpoint's test.
    browser.submit(&format!("{row} form.test-registry"));
    assert!(browser.exists("#flash.ok"), "{}", browser.text("main"));

    // A stored endpoint's secret is not sent to another URL by a test, and
    // a URL may not carry credentials.
    let guarded = api.create_registry(
        "guarded",
        "docker-registry",
        &upstream.url(),
        Some(("robot", "stored-secret-1")),
    );
    let (status, _, answer) = api.post(
        "/registries/ping",
        &serde_json::json!({"id": guarded, "url": "http://127.0.0.1:9"}),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.to_string().contains("access secret again"),
        "{answer}"
    );
    assert_eq!(api.delete(&format!("/registries/{guarded}")).0, 200);
    let (status, _, answer) = api.post(
        "/registries",
        &serde_json::json!({"name": "inline", "url": "http://u:secret@127.0.0.1:9"}),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(!answer.to_string().contains("secret"), "{answer}");

    // In use by a proxy-cache project: the delete is refused with the reason.
    let cache = format!("cache{}", random_suffix());
    api.create_upstream_project(&cache, id, "cache");
    // Its configuration tab shows the endpoint's URL to administrators
    // only, even when the project is public.
    let (status, _, answer) = api.put(
        &format!("/projects/{cache}"),
        &serde_json::json!({"metadata": {"public": "true"}}),
    );
    assert_eq!(status, 200, "{answer}");
    let mut anonymous = FormClient::new(&berth.url(), None);
    let page = anonymous.get(&format!("/projects/{cache}/configuration"));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("docker-registry"), "{}", page.body);
    let url = upstream.url().trim_end_matches('/').to_owned();
    assert!(!page.body.contains(&url), "{}", page.body);
    browser.goto(&format!("/projects/{cache}/configuration"));
    assert!(browser.source().contains(&url));
    browser.goto("/admin/registries");
    browser.submit(&format!("{row} form.delete-registry"));
    assert!(
        browser.source().contains(&cache),
        "{}",
        browser.text("main")
    );
    assert_eq!(api.get("/registries").2.as_array().unwrap().len(), 1);
    assert_eq!(api.delete(&format!("/projects/{cache}")).0, 200);
    browser.goto("/admin/registries");
    browser.submit(&format!("{row} form.delete-registry"));
    browser.wait_gone(&row);
    assert_eq!(api.get("/registries").2.as_array().unwrap().len(), 0);
}

#[test]
fn a_quota_set_in_the_browser_stops_a_push_and_lifting_it_lets_it_through() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let project = format!("q{}", random_suffix());
    let project_id = api.create_project(&project, false);
    let browser = admin_browser(&berth);
    let (user, password) = berth.admin_credentials();
    let creds = format!("{user}:{password}");

    browser.goto(&format!("/admin/quotas?q={project}"));
    let row = format!("table#quotas tr[data-project=\"{project}\"]");
    browser.wait_for(&row);
    browser.fill(&format!("{row} input[name=storage_limit]"), "2KiB");
    browser.submit(&format!("{row} form.set-quota"));
    assert!(browser.exists("#flash.ok"));
    assert_eq!(api.quota(project_id)["hard"]["storage"], 2048);
    // A size that is not one: a clear refusal, the limit unchanged.
    browser.fill(&format!("{row} input[name=storage_limit]"), "lots");
    browser.submit(&format!("{row} form.set-quota"));
    assert!(
        browser.source().contains("is not a size"),
        "{}",
        browser.text("main")
    );
    assert_eq!(api.quota(project_id)["hard"]["storage"], 2048);

    let image = Image::random(2);
    let refused = skopeo_push_once(
        berth.scratch_dir(),
        &image,
        &berth.host_port(),
        &format!("{project}/app:v1"),
        &creds,
    );
    assert!(
        !refused.status.success(),
        "a push over the quota went through"
    );

    browser.goto(&format!("/admin/quotas?q={project}"));
    browser.fill(&format!("{row} input[name=storage_limit]"), "");
    browser.submit(&format!("{row} form.set-quota"));
    assert_eq!(api.quota(project_id)["hard"]["storage"], -1);
    let pushed = skopeo_push_once(
        berth.scratch_dir(),
        &image,
        &berth.host_port(),
        &format!("{project}/app:v1"),
        &creds,
    );
    assert!(pushed.status.success(), "{}", text(&pushed));
}

#[test]
fn the_gc_schedule_is_set_and_removed_in_the_browser() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let browser = admin_browser(&berth);
    browser.goto("/admin/gc");
    browser.select("#gc-type", "Daily");
    browser.set_checked("form#gc-schedule input[name=delete_untagged]", true);
    browser.submit("form#gc-schedule");
    browser.wait_for("#gc-next");
    let (_, _, schedule) = api.get("/system/gc/schedule");
    assert_eq!(schedule["schedule"]["type"], "Daily", "{schedule}");
    assert_eq!(schedule["parameters"]["delete_untagged"], true);
    // A custom schedule with a bad cron: refused with the reason.
    browser.select("#gc-type", "Custom");
    browser.fill("#gc-cron", "every day");
    browser.submit("form#gc-schedule");
    // The answer is the error page with the cron's fault, not the GC page
    // (which has a cron field of its own).
    assert_eq!(browser.current_path(), "/admin/gc/schedule");
    let why = browser.text("main .flash.error");
    assert!(why.contains("every day"), "{why}");
    assert_eq!(
        api.get("/system/gc/schedule").2["schedule"]["type"],
        "Daily"
    );
    browser.goto("/admin/gc");
    browser.select("#gc-type", "None");
    browser.submit("form#gc-schedule");
    assert!(!browser.exists("#gc-next"));
    assert_eq!(api.get("/system/gc/schedule").2["schedule"]["type"], "None");
}

#[test]
fn a_system_robot_made_in_the_browser_pushes_to_its_projects_only() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let s = random_suffix();
    let (one, two, other) = (format!("one{s}"), format!("two{s}"), format!("other{s}"));
    api.create_projects(&[&one, &two, &other]);
    let browser = admin_browser(&berth);
    browser.goto("/admin/robots");
    browser.fill("form#create-robot input[name=name]", "deployer");
    browser.click("form#create-robot input[name=scope][value=listed]");
    browser.fill("#robot-projects", &format!("{one}, {two}"));
    browser.set_checked("form#create-robot input[name=push]", true);
    browser.submit("form#create-robot");
    browser.wait_for("#robot-created");
    let name = browser.value("input#robot-name");
    let secret = browser.value("input#robot-secret");
    assert_eq!(name, "robot$deployer");
    let row = format!("table#robots tr[data-robot=\"{name}\"]");
    assert!(browser.text(&row).contains(&one) && browser.text(&row).contains(&two));

    let creds = format!("{name}:{secret}");
    for (project, allowed) in [(&one, true), (&two, true), (&other, false)] {
        let out = skopeo_push_once(
            berth.scratch_dir(),
            &Image::random(1),
            &berth.host_port(),
            &format!("{project}/app:v1"),
            &creds,
        );
        assert_eq!(out.status.success(), allowed, "{project}: {}", text(&out));
    }

    browser.goto("/admin/robots");
    browser.submit(&format!("{row} form.delete-robot"));
    browser.wait_gone(&row);
    let out = skopeo_push_once(
        berth.scratch_dir(),
        &Image::random(1),
        &berth.host_port(),
        &format!("{one}/app:v2"),
        &creds,
    );
    assert!(!out.status.success(), "the deleted robot still pushes");
}

#[test]
fn the_system_page_shows_health_and_the_configuration_without_secrets() {
    let berth = Berth::start();
    let browser = admin_browser(&berth);
    browser.goto("/admin/system");
    for component in ["database", "storage"] {
        let row = format!("table#health tr[data-component={component}]");
        assert!(
            browser.text(&row).contains("healthy"),
            "{}",
            browser.text(&row)
        );
    }
    assert!(browser.exists("#health-overall.ok"));
    let config = browser.text("#config");
    assert!(config.contains("data_dir"), "{config}");
    assert!(
        config.contains("admin_password = \"<redacted>\""),
        "{config}"
    );
    assert!(!browser.source().contains(berth.admin_password()));
    browser.screenshot("admin-system");
    browser.goto("/admin/system?lang=zh-CN");
    assert_eq!(browser.text("h1"), "系统");
}
