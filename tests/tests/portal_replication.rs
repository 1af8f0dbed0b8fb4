//! The replication pages in a real browser, against Debian's
//! `docker-registry` as the destination: a push policy made in the page
//! (listed in words, checked through the API) replicated with "Replicate
//! now", followed on its execution page to the task's log, and the image
//! read back from the destination; bad policies refused with the API's own
//! message and the form kept; markup in a description shown as text; the
//! pages in Chinese; and a non-administrator refused the pages and a
//! forged "replicate now".
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use berth_tests::browser::{input_value, Browser, FormClient};
use berth_tests::content::random_suffix;
use berth_tests::upstream::DockerRegistry;
use berth_tests::{Api, Berth, Image, Registry};
use serde_json::{json, Value};

/// How long a small replication may take on a busy machine.
const REPLICATION: Duration = Duration::from_secs(120);

fn admin_browser(berth: &Berth) -> Browser {
    let browser = Browser::start(&berth.url());
    assert_eq!(
        browser.sign_in("admin", berth.admin_password()),
        "/projects"
    );
    browser
}

fn push_to_berth(berth: &Berth, repo: &str, tag: &str, image: &Image) {
    let (user, password) = berth.admin_credentials();
    Registry::with_basic_auth(&berth.url(), user, password).push_image(repo, tag, image);
}

/// Every replication policy, through the API.
fn policies(api: &Api) -> Vec<Value> {
    let (status, _, list) = api.get("/replication/policies?page_size=100");
    assert_eq!(status, 200, "{list}");
    list.as_array().unwrap().clone()
}

/// The message of an API refusal of this policy (and that it is one).
fn api_refusal(api: &Api, policy: &Value) -> String {
    let (status, _, body) = api.post("/replication/policies", policy);
    assert_eq!(status, 400, "{body}");
    body["errors"][0]["message"].as_str().unwrap().to_owned()
}

/// On an execution page: reloads until the execution has ended; its
/// status.
fn wait_ended(browser: &Browser) -> String {
    browser.wait_until("the execution to end", REPLICATION, |b| {
        b.refresh();
        let status = b.text("#execution-status");
        (status != "InProgress").then_some(status)
    })
}

#[test]
fn a_push_policy_made_in_the_browser_replicates_an_image_to_docker_registry() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let upstream = DockerRegistry::start();
    let image = Image::random(2);
    push_to_berth(&berth, "library/app", "v1", &image);
    // Left out by the tag filter.
    push_to_berth(&berth, "library/app", "latest", &Image::random(1));
    let endpoint = api.create_registry("dr", "docker-registry", &upstream.url(), None);
    let browser = admin_browser(&berth);

    browser.goto("/admin");
    browser.click_and_wait("#tab-replication");
    assert_eq!(browser.current_path(), "/admin/replication");
    assert_eq!(
        browser.attr("#tab-replication", "aria-current").as_deref(),
        Some("page")
    );
    assert!(browser.exists("p.empty"), "{}", browser.text("main"));
    browser.fill("#repl-name", "to-dr");
    browser.fill("#repl-description", "mirror the library");
    browser.select("#repl-mode", "push");
    browser.select("#repl-endpoint", &endpoint.to_string());
    browser.fill("#repl-name-filter", "library/**");
    browser.fill("#repl-tag-filter", "v*");
    browser.select("#repl-resource", "image");
    browser.fill("#repl-namespace", "mirror");
    browser.select("#repl-flattening", "1");
    browser.select("#repl-trigger", "manual");
    browser.set_checked("#repl-override", true);
    assert!(
        browser.execute(
            "return document.getElementById('repl-enabled').checked;",
            vec![]
        ) == json!(true),
        "a new policy is enabled unless unticked"
    );
    browser.submit("form#create-replication");
    let row = "table#replication-policies tr[data-policy=\"to-dr\"]";
    browser.wait_for(row);
    assert!(browser.exists("#flash.ok"), "{}", browser.text("main"));
    // The policy in words.
    let mode = browser.text(&format!("{row} td.mode"));
    assert_eq!(mode, "push to dr");
    let line = browser.text(row);
    for words in [
        "mirror",
        "Flatten 1 level",
        "Manual",
        "names matching `library/**` and tags matching `v*` and images only",
        "mirror the library",
    ] {
        assert!(line.contains(words), "{words:?} missing from {line:?}");
    }
    // As the API tells it.
    let stored = policies(&api);
    assert_eq!(stored.len(), 1, "{stored:?}");
    let p = &stored[0];
    assert_eq!(p["dest_registry"]["id"], endpoint, "{p}");
    assert_eq!(p["src_registry"]["id"], 0, "{p}");
    assert_eq!(p["dest_namespace"], "mirror", "{p}");
    assert_eq!(p["dest_namespace_replace_count"], 1, "{p}");
    assert_eq!(p["trigger"]["type"], "manual", "{p}");
    assert_eq!(p["filters"].as_array().unwrap().len(), 3, "{p}");
    assert_eq!(p["override"], true, "{p}");
    assert_eq!(p["enabled"], true, "{p}");
    assert_eq!(p["speed"], -1, "{p}");
    let policy = p["id"].as_i64().unwrap();

    // Replicate now: the execution's page, followed until it succeeds.
    browser.submit(&format!("{row} form.run-policy"));
    let path = browser.current_path();
    let execution: i64 = path
        .strip_prefix("/admin/replication/executions/")
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("not an execution's page: {path}"));
    let (_, _, listed) = api.get(&format!("/replication/executions?policy_id={policy}"));
    assert_eq!(listed[0]["id"], execution, "{listed}");
    let status = wait_ended(&browser);
    assert_eq!(
        status,
        "Succeed",
        "{}\n{}",
        browser.text("main"),
        api.replication_logs(execution)
    );
    assert!(!browser.exists("#stop-execution"), "a finished execution");
    assert_eq!(browser.count("table#replication-tasks tbody tr"), 1);
    let task = browser.text("table#replication-tasks tbody tr");
    assert!(
        task.contains("library/app") && task.contains("mirror/app"),
        "{task}"
    );
    assert!(task.contains("Succeed") && task.contains("1/1"), "{task}");
    assert!(browser.text("#execution-counts").contains("Succeeded 1"));
    browser.screenshot("admin-replication-execution");

    browser.click_and_wait("table#replication-tasks a.task-log");
    let log = browser.text("pre#task-log");
    assert!(
        log.contains(&format!(
            "copied library/app:v1 ({}) to mirror/app:v1",
            image.manifest.digest
        )),
        "{log}"
    );
    assert!(
        !log.contains("latest"),
        "the tag filter let latest through: {log}"
    );
    browser.click_and_wait("#back");
    assert_eq!(
        browser.current_path(),
        format!("/admin/replication/executions/{execution}")
    );

    // The destination really holds the image, and only the selected tag.
    let destination = Registry::new(&upstream.url());
    destination.assert_image("mirror/app", "v1", &image);
    assert_eq!(destination.tags("mirror/app"), vec!["v1".to_owned()]);

    // The list shows the execution, linked to its page.
    browser.goto("/admin/replication");
    let listed = format!("table#replication-executions tr[data-execution=\"{execution}\"]");
    assert_eq!(
        browser.attr(&listed, "data-status").as_deref(),
        Some("Succeed")
    );
    assert!(browser.text(&listed).contains("to-dr"));
    browser.screenshot("admin-replication");
    browser.click_and_wait(&format!("{listed} a"));
    assert_eq!(
        browser.current_path(),
        format!("/admin/replication/executions/{execution}")
    );

    // Deleted in the page (after the confirmation), with its executions.
    browser.goto("/admin/replication");
    browser.submit(&format!("{row} form.delete-policy"));
    browser.wait_gone(row);
    assert!(browser.exists("#flash.ok"));
    assert!(policies(&api).is_empty());
    let (status, _, _) = api.get(&format!("/replication/executions/{execution}"));
    assert_eq!(status, 404);
}

#[test]
fn a_refused_policy_shows_the_apis_reason_with_the_form_kept_and_markup_stays_text() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let upstream = DockerRegistry::start();
    let endpoint = api.create_registry("dr", "docker-registry", &upstream.url(), None);
    let browser = admin_browser(&berth);
    browser.goto("/admin/replication");

    // A cron firing every second.
    let expected = api_refusal(
        &api,
        &json!({"name": "every-second", "dest_registry": {"id": endpoint},
                "trigger": {"type": "scheduled", "trigger_settings": {"cron": "* * * * * *"}}}),
    );
    browser.fill("#repl-name", "every-second");
    browser.fill("#repl-description", "kept as typed");
    browser.select("#repl-endpoint", &endpoint.to_string());
    browser.fill("#repl-namespace", "mirror");
    browser.select("#repl-flattening", "2");
    browser.fill("#repl-tag-filter", "v*");
    browser.set_checked("#repl-tag-excludes", true);
    browser.select("#repl-trigger", "scheduled");
    browser.fill("#repl-cron", "* * * * * *");
    browser.fill("#repl-speed", "512");
    browser.set_checked("#repl-single", true);
    browser.set_checked("#repl-enabled", false);
    browser.submit("form#create-replication");
    let flash = browser.text("#flash.error");
    assert!(flash.contains(&expected), "{flash:?} is not {expected:?}");
    assert!(flash.contains("more than once a minute"), "{flash}");
    // The form as it was sent.
    for (field, value) in [
        ("#repl-name", "every-second"),
        ("#repl-description", "kept as typed"),
        ("#repl-endpoint", endpoint.to_string().as_str()),
        ("#repl-namespace", "mirror"),
        ("#repl-flattening", "2"),
        ("#repl-tag-filter", "v*"),
        ("#repl-trigger", "scheduled"),
        ("#repl-cron", "* * * * * *"),
        ("#repl-speed", "512"),
    ] {
        assert_eq!(browser.value(field), value, "{field}");
    }
    let checked = |css: &str| {
        browser.execute(
            &format!("return document.querySelector('{css}').checked;"),
            vec![],
        ) == json!(true)
    };
    assert!(checked("#repl-tag-excludes") && checked("#repl-single"));
    assert!(!checked("#repl-enabled") && !checked("#repl-override"));
    assert!(policies(&api).is_empty());

    // A name filter with an unclosed brace, the form otherwise fine.
    let expected = api_refusal(
        &api,
        &json!({"name": "braces", "dest_registry": {"id": endpoint},
                "filters": [{"type": "name", "value": "a/{b"}]}),
    );
    browser.fill("#repl-name", "braces");
    browser.select("#repl-trigger", "manual");
    browser.fill("#repl-cron", "");
    browser.fill("#repl-name-filter", "a/{b");
    browser.submit("form#create-replication");
    let flash = browser.text("#flash.error");
    assert!(flash.contains(&expected), "{flash:?} is not {expected:?}");
    assert_eq!(browser.value("#repl-name-filter"), "a/{b");
    assert_eq!(browser.value("#repl-name"), "braces");
    assert!(policies(&api).is_empty());

    // A name taken (409): said so, nothing replaced.
    api.create_replication_policy(&json!({"name": "taken", "dest_registry": {"id": endpoint},
        "description": "the first"}));
    browser.goto("/admin/replication");
    browser.fill("#repl-name", "taken");
    browser.submit("form#create-replication");
    let flash = browser.text("#flash.error");
    assert!(flash.contains("`taken` exists"), "{flash}");
    assert_eq!(policies(&api).len(), 1);
    assert_eq!(policies(&api)[0]["description"], "the first");

    // Markup in a name and a description is text.
    let markup = "<script>window.__pwned = 1</script><b>bold</b>";
    browser.goto("/admin/replication");
    browser.fill("#repl-name", "<i>odd</i>");
    browser.fill("#repl-description", markup);
    browser.submit("form#create-replication");
    let row = "table#replication-policies tr[data-policy=\"<i>odd</i>\"]";
    browser.wait_for(row);
    assert_eq!(browser.text(&format!("{row} td.description")), markup);
    assert!(browser.text(row).starts_with("<i>odd</i>"));
    assert!(!browser.exists(&format!("{row} script")));
    assert!(!browser.exists(&format!("{row} b")));
    assert!(!browser.exists(&format!("{row} i")));
    assert_eq!(
        browser.execute("return window.__pwned === undefined;", vec![]),
        json!(true)
    );
    let stored = policies(&api);
    assert!(
        stored.iter().any(|p| p["description"] == markup),
        "{stored:?}"
    );

    // A disabled policy is not run: the button is off, and a forced
    // POST is refused with the API's reason.
    let disabled = api.create_replication_policy(&json!({"name": "off",
        "dest_registry": {"id": endpoint}, "enabled": false}));
    browser.goto("/admin/replication");
    let off = "table#replication-policies tr[data-policy=\"off\"]";
    assert!(browser.text(off).contains("disabled"));
    browser.execute(
        "document.querySelector(arguments[0]).disabled = false; return null;",
        vec![json!(format!("{off} form.run-policy button"))],
    );
    browser.submit(&format!("{off} form.run-policy"));
    let flash = browser.text("#flash.error");
    assert!(flash.contains("is disabled"), "{flash}");
    let (_, _, runs) = api.get(&format!("/replication/executions?policy_id={disabled}"));
    assert_eq!(runs, json!([]));
}

#[test]
fn the_replication_pages_speak_chinese() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let upstream = DockerRegistry::start();
    push_to_berth(&berth, "library/zh", "v1", &Image::random(1));
    let endpoint = api.create_registry("dr", "docker-registry", &upstream.url(), None);
    let policy = api.create_replication_policy(&json!({"name": "zh",
        "dest_registry": {"id": endpoint}, "filters": [{"type": "name", "value": "library/zh"}]}));
    let execution = api.start_replication(policy);
    let done = api.wait_replication(execution, REPLICATION);
    assert_eq!(done["status"], "Succeed", "{done}");
    let (_, _, tasks) = api.get(&format!("/replication/executions/{execution}/tasks"));
    let task = tasks[0]["id"].as_i64().unwrap();

    let browser = admin_browser(&berth);
    browser.goto("/admin/replication?lang=zh-CN");
    assert_eq!(browser.html_lang(), "zh-CN");
    assert_eq!(browser.text("h1"), "复制管理");
    assert_eq!(browser.text("#tab-replication"), "复制管理");
    assert_eq!(browser.text("section.card h2"), "新建复制策略");
    let row = "table#replication-policies tr[data-policy=\"zh\"]";
    assert_eq!(browser.text(&format!("{row} td.mode")), "推送到 dr");
    assert!(browser.text(row).contains("手动"), "{}", browser.text(row));
    assert!(browser.text("main").contains("执行记录"));
    browser.screenshot("admin-replication-zh");

    browser.goto(&format!("/admin/replication/executions/{execution}"));
    assert_eq!(browser.text("h1"), format!("复制执行记录 #{execution}"));
    assert!(browser.text("main").contains("任务"));
    browser.goto(&format!(
        "/admin/replication/executions/{execution}/tasks/{task}/log"
    ));
    assert_eq!(browser.text("h1"), format!("任务日志 #{task}"));
    assert!(browser
        .text("pre#task-log")
        .contains("copied library/zh:v1"));

    browser.goto("/admin/replication?lang=en");
    assert_eq!(browser.text("h1"), "Replication");
}

#[test]
fn a_non_administrator_is_refused_the_pages_and_a_forged_replicate_now() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let upstream = DockerRegistry::start();
    push_to_berth(&berth, "library/app", "v1", &Image::random(1));
    let endpoint = api.create_registry("dr", "docker-registry", &upstream.url(), None);
    let policy = api.create_replication_policy(&json!({"name": "guarded",
        "dest_registry": {"id": endpoint}}));
    let execution = api.start_replication(policy);
    api.wait_replication(execution, REPLICATION);
    let (_, _, tasks) = api.get(&format!("/replication/executions/{execution}/tasks"));
    let task = tasks[0]["id"].as_i64().unwrap();

    // Signed out: sent to sign in.
    let mut anonymous = FormClient::new(&berth.url(), None);
    let page = anonymous.get("/admin/replication");
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(
        page.location().unwrap().starts_with("/login"),
        "{:?}",
        page.location()
    );

    let user = format!("eve{}", random_suffix());
    api.create_user(&user, "eve-password-1");
    let mut eve = FormClient::new(&berth.url(), None);
    let signed_in = eve.sign_in(&user, "eve-password-1");
    assert_eq!(
        signed_in.location(),
        Some("/projects"),
        "{}",
        signed_in.body
    );
    for path in [
        "/admin/replication".to_owned(),
        format!("/admin/replication/executions/{execution}"),
        format!("/admin/replication/executions/{execution}/tasks/{task}/log"),
    ] {
        let page = eve.get(&path);
        assert_eq!(page.status, 403, "{path}: {}", page.body);
        assert!(!page.body.contains("guarded"), "{path}: {}", page.body);
    }
    // Her own session's token: the forms are refused all the same.
    let csrf = input_value(&eve.get("/account").body, "csrf").unwrap();
    let forged = eve.post_form(
        &format!("/admin/replication/{policy}/run"),
        &[("csrf", &csrf)],
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    for path in [
        format!("/admin/replication/{policy}/delete"),
        format!("/admin/replication/executions/{execution}/stop"),
    ] {
        let forged = eve.post_form(&path, &[("csrf", &csrf)]);
        assert_eq!(forged.status, 403, "{path}: {}", forged.body);
    }
    let created = eve.post_form(
        "/admin/replication",
        &[
            ("csrf", &csrf),
            ("name", "eves"),
            ("mode", "push"),
            ("endpoint", &endpoint.to_string()),
            ("enabled", "true"),
        ],
    );
    assert_eq!(created.status, 403, "{}", created.body);
    // Nothing started, deleted or created.
    let (_, _, runs) = api.get(&format!("/replication/executions?policy_id={policy}"));
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    let names: Vec<Value> = policies(&api).iter().map(|p| p["name"].clone()).collect();
    assert_eq!(names, vec![json!("guarded")]);

    // An administrator's forged form without the token is refused too.
    let mut admin = FormClient::new(&berth.url(), None);
    admin.sign_in("admin", berth.admin_password());
    let forged = admin.post_form(&format!("/admin/replication/{policy}/run"), &[]);
    assert_eq!(forged.status, 403, "{}", forged.body);
    let (_, _, runs) = api.get(&format!("/replication/executions?policy_id={policy}"));
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
}
