//! A project's logs, policies and configuration tabs in a real browser,
//! each change checked with real clients: the audit log shows a skopeo
//! push and narrows by operation; a retention rule added in the page, a
//! dry run that names the tag it would delete and deletes nothing, then a
//! real run that deletes it; an immutability rule that makes skopeo's
//! re-push fail until it is disabled or deleted; the public flag that lets
//! anonymous skopeo pull; a proxy-cache project created in the page; a
//! Guest who sees no form and whose forged posts are refused; and the
//! policies page in Chinese.
#![allow(clippy::unwrap_used)]

use std::process::Output;
use std::time::Duration;

use berth_tests::browser::{input_value, Browser, FormClient};
use berth_tests::content::random_suffix;
use berth_tests::tools::{run, skopeo_push_once, text};
use berth_tests::{Api, Berth, Image};
use serde_json::Value;

const GUEST: i64 = 3;

/// A browser signed in as the administrator.
fn admin_browser(berth: &Berth) -> Browser {
    let browser = Browser::start(&berth.url());
    assert_eq!(
        browser.sign_in("admin", berth.admin_password()),
        "/projects"
    );
    browser
}

fn admin_creds(berth: &Berth) -> String {
    format!("admin:{}", berth.admin_password())
}

/// Pushes a new random image to `reference` (`project/repo:tag`) with
/// skopeo as the administrator, and asserts it worked.
fn push(berth: &Berth, reference: &str) {
    let out = try_push(berth, reference, &admin_creds(berth));
    assert!(out.status.success(), "push {reference}: {}", text(&out));
}

fn try_push(berth: &Berth, reference: &str, creds: &str) -> Output {
    skopeo_push_once(
        berth.scratch_dir(),
        &Image::random(1),
        &berth.host_port(),
        reference,
        creds,
    )
}

/// `skopeo list-tags` of `project/repo`, with `creds` or anonymously.
fn list_tags(berth: &Berth, repo: &str, creds: Option<&str>) -> Vec<String> {
    let dest = format!("docker://{}/{repo}", berth.host_port());
    let mut args = vec!["list-tags", "--tls-verify=false", "--retry-times=0"];
    match creds {
        Some(c) => args.extend(["--creds", c]),
        None => args.push("--no-creds"),
    }
    args.push(&dest);
    let out = run("skopeo", &args, &[], None);
    assert!(out.status.success(), "list-tags {repo}: {}", text(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut tags: Vec<String> = json["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    tags.sort();
    tags
}

/// `skopeo inspect` of `reference` with `creds` or anonymously: whether
/// it pulled the manifest.
fn pull(berth: &Berth, reference: &str, creds: Option<&str>) -> bool {
    let src = format!("docker://{}/{reference}", berth.host_port());
    let mut args = vec!["inspect", "--raw", "--tls-verify=false", "--retry-times=0"];
    match creds {
        Some(c) => args.extend(["--creds", c]),
        None => args.push("--no-creds"),
    }
    args.push(&src);
    run("skopeo", &args, &[], None).status.success()
}

/// The operations of the audit table's rows.
fn operations(browser: &Browser) -> Vec<String> {
    browser
        .attrs("table#audit-log tbody tr", "data-operation")
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect()
}

#[test]
fn the_logs_tab_shows_a_skopeo_push_and_filters_by_operation() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let project = format!("lg{}", random_suffix());
    api.create_project(&project, false);
    let reference = format!("{project}/app:v1");
    push(&berth, &reference);
    assert!(pull(&berth, &reference, Some(&admin_creds(&berth))));
    let browser = admin_browser(&berth);

    browser.goto(&format!("/projects/{project}"));
    browser.click_and_wait("a#tab-logs");
    assert_eq!(browser.current_path(), format!("/projects/{project}/logs"));
    let all = operations(&browser);
    assert!(all.iter().any(|o| o == "push"), "no push in {all:?}");
    assert!(all.iter().any(|o| o != "push"), "only pushes in {all:?}");
    let push_row = browser.text("table#audit-log tr[data-operation=push]");
    assert!(push_row.contains(&format!("{project}/app")), "{push_row}");
    assert!(push_row.contains("admin"), "{push_row}");

    // Narrowed to pushes by the filter form, which keeps what was typed.
    browser.fill("form#audit-filter input[name=operation]", "push");
    browser.submit("form#audit-filter");
    let pushes = operations(&browser);
    assert!(
        !pushes.is_empty() && pushes.iter().all(|o| o == "push"),
        "{pushes:?}"
    );
    assert!(pushes.len() < all.len());
    assert_eq!(browser.value("input#f-operation"), "push");
    assert!(browser.current_url().contains("operation=push"));
    // A date range that ends before the project: nothing.
    browser.goto(&format!(
        "/projects/{project}/logs?operation=push&to=2001-01-01"
    ));
    assert!(!browser.exists("table#audit-log"));
    // A bad date is the API's 400, as a page.
    browser.goto(&format!("/projects/{project}/logs?from=yesterday"));
    assert!(browser.source().contains("op_time"), "{}", browser.source());
}

/// Waits until the newest retention execution on the policies page has
/// ended; returns its row's selector.
fn wait_for_execution(browser: &Browser, project: &str, count: usize) -> String {
    browser.wait_until("the retention run ends", Duration::from_secs(30), |b| {
        b.goto(&format!("/projects/{project}/policies"));
        let rows = b.attrs("table#retention-history tbody tr", "data-status");
        (rows.len() == count && rows[0].as_deref() != Some("Running")).then_some(())
    });
    let status = browser.attr("table#retention-history tbody tr", "data-status");
    assert_eq!(status.as_deref(), Some("Success"));
    "table#retention-history tbody tr:first-child".to_owned()
}

#[test]
fn a_retention_rule_added_in_the_page_dry_runs_then_deletes_the_older_tag() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let project = format!("rt{}", random_suffix());
    api.create_project(&project, false);
    let repo = format!("{project}/app");
    push(&berth, &format!("{repo}:old"));
    // Push times are what the rule orders by.
    std::thread::sleep(Duration::from_millis(1100));
    push(&berth, &format!("{repo}:new"));
    let creds = admin_creds(&berth);
    assert_eq!(list_tags(&berth, &repo, Some(&creds)), ["new", "old"]);
    let browser = admin_browser(&berth);

    browser.goto(&format!("/projects/{project}"));
    browser.click_and_wait("a#tab-policies");
    assert!(
        browser.exists("#retention .empty"),
        "a policy before any rule"
    );
    browser.select(
        "form#add-retention-rule select[name=template]",
        "latestPushedK",
    );
    browser.fill("form#add-retention-rule input[name=count]", "1");
    browser.submit("form#add-retention-rule");
    let rule = browser.text("ol#retention-rules li");
    assert!(
        rule.contains("retain the 1 most recently pushed in repositories matching `**` with tags matching `**`"),
        "{rule}"
    );
    let (_, _, project_json) = api.get(&format!("/projects/{project}"));
    let policy_id = project_json["metadata"]["retention_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, _, policy) = api.get(&format!("/retentions/{policy_id}"));
    assert_eq!(policy["rules"][0]["params"]["latestPushedK"], 1, "{policy}");

    // A page that is out of date changes nothing: here the API adds a
    // second rule meanwhile, and the page's delete (of the rule it showed
    // first) is refused rather than applied to the list as it now is.
    let mut changed = policy.clone();
    let mut second = policy["rules"][0].clone();
    second["params"]["latestPushedK"] = 7.into();
    changed["rules"].as_array_mut().unwrap().insert(0, second);
    let (status, _, answer) = api.put(&format!("/retentions/{policy_id}"), &changed);
    assert_eq!(status, 200, "{answer}");
    browser.submit("ol#retention-rules li form.delete-rule");
    assert!(
        browser
            .source()
            .contains("changed since this page was loaded"),
        "{}",
        browser.text("main")
    );
    let (_, _, now) = api.get(&format!("/retentions/{policy_id}"));
    assert_eq!(now["rules"].as_array().unwrap().len(), 2, "{now}");
    // Reloaded, the page deletes the rule it shows.
    browser.goto(&format!("/projects/{project}/policies"));
    browser.submit("ol#retention-rules li form.delete-rule");
    let (_, _, now) = api.get(&format!("/retentions/{policy_id}"));
    assert_eq!(now["rules"].as_array().unwrap().len(), 1, "{now}");
    assert_eq!(now["rules"][0]["params"]["latestPushedK"], 1, "{now}");

    // A schedule, then none again.
    browser.fill(
        "form#retention-schedule-form input[name=cron]",
        "0 0 3 * * *",
    );
    browser.submit("form#retention-schedule-form");
    assert!(browser.text("#retention-schedule").contains("0 0 3 * * *"));
    let (_, _, policy) = api.get(&format!("/retentions/{policy_id}"));
    assert_eq!(
        policy["trigger"]["settings"]["cron"], "0 0 3 * * *",
        "{policy}"
    );
    browser.fill(
        "form#retention-schedule-form input[name=cron]",
        "not a cron",
    );
    browser.submit("form#retention-schedule-form");
    // The error page says what is wrong with it (the policies page has a
    // cron field of its own, so the word alone proves nothing).
    let why = browser.text("main .flash.error");
    assert!(why.contains("not a cron"), "a bad cron is explained: {why}");
    // Every second would fill the history: at most once a minute.
    browser.goto(&format!("/projects/{project}/policies"));
    browser.fill(
        "form#retention-schedule-form input[name=cron]",
        "* * * * * *",
    );
    browser.submit("form#retention-schedule-form");
    assert!(
        browser.source().contains("more than once a minute"),
        "{}",
        browser.text("main")
    );
    let (_, _, policy) = api.get(&format!("/retentions/{policy_id}"));
    assert_eq!(
        policy["trigger"]["settings"]["cron"], "0 0 3 * * *",
        "{policy}"
    );
    browser.goto(&format!("/projects/{project}/policies"));
    browser.fill("form#retention-schedule-form input[name=cron]", "");
    browser.submit("form#retention-schedule-form");
    let (_, _, policy) = api.get(&format!("/retentions/{policy_id}"));
    assert_eq!(policy["trigger"]["settings"]["cron"], "", "{policy}");

    // The dry run names the tag it would delete, and deletes nothing.
    browser.submit("form#retention-dry-run");
    let row = wait_for_execution(&browser, &project, 1);
    assert!(browser.text(&row).contains("app"), "{}", browser.text(&row));
    let log_url = browser.attr(&format!("{row} a.task-log"), "href").unwrap();
    browser.goto(&log_url);
    let log = browser.text("body");
    let old_line = log
        .lines()
        .find(|l| l.contains("old"))
        .unwrap_or_default()
        .to_owned();
    assert!(old_line.contains("DELETE (dry run)"), "{log}");
    let new_line = log
        .lines()
        .find(|l| l.contains("new"))
        .unwrap_or_default()
        .to_owned();
    assert!(new_line.contains("RETAIN"), "{log}");
    assert_eq!(list_tags(&berth, &repo, Some(&creds)), ["new", "old"]);

    // Run now deletes it.
    browser.goto(&format!("/projects/{project}/policies"));
    browser.submit("form#retention-run");
    let row = wait_for_execution(&browser, &project, 2);
    assert_eq!(
        browser.text(&format!("{row} td:nth-child(3)")),
        "no",
        "a dry run"
    );
    assert_eq!(list_tags(&berth, &repo, Some(&creds)), ["new"]);

    // The page in Chinese.
    browser.goto(&format!("/projects/{project}/policies?lang=zh-CN"));
    assert_eq!(browser.html_lang(), "zh-CN");
    let rule = browser.text("ol#retention-rules li");
    assert!(rule.contains("保留最近推送的 1 个制品"), "{rule}");
    assert!(browser.text("#retention h2").contains("保留"));
    browser.screenshot("policies-zh-CN");
    browser.goto(&format!("/projects/{project}/policies?lang=en"));
    browser.screenshot("policies");

    // Deleting the last rule deletes the policy.
    browser.submit("ol#retention-rules li form.delete-rule");
    assert!(browser.exists("#retention .empty"));
    let (status, _, _) = api.get(&format!("/retentions/{policy_id}"));
    assert_eq!(status, 404);
}

#[test]
fn an_immutability_rule_added_in_the_page_stops_a_repush_until_disabled_or_deleted() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let project = format!("im{}", random_suffix());
    api.create_project(&project, false);
    let reference = format!("{project}/app:v1");
    push(&berth, &reference);
    let creds = admin_creds(&berth);
    let browser = admin_browser(&berth);

    browser.goto(&format!("/projects/{project}/policies"));
    assert!(!browser.exists("table#immutable-rules"));
    browser.fill("form#add-immutable-rule input[name=tag_pattern]", "v1");
    browser.submit("form#add-immutable-rule");
    let row = "table#immutable-rules tbody tr";
    let text_of_rule = browser.text(row);
    assert!(
        text_of_rule.contains("matching `**`") && text_of_rule.contains("matching `v1`"),
        "{text_of_rule}"
    );
    let (_, _, rules) = api.get(&format!("/projects/{project}/immutabletagrules"));
    assert_eq!(rules[0]["tag_selectors"][0]["pattern"], "v1", "{rules}");

    let out = try_push(&berth, &reference, &creds);
    assert!(
        !out.status.success(),
        "re-push of an immutable tag succeeded"
    );
    // Another tag is not protected.
    push(&berth, &format!("{project}/app:v2"));

    // Disabled: the re-push goes through; enabled again: refused.
    browser.submit(&format!("{row} form.disable-rule"));
    assert!(browser.exists(&format!("{row} form.enable-rule")));
    let (_, _, rules) = api.get(&format!("/projects/{project}/immutabletagrules"));
    assert_eq!(rules[0]["disabled"], true, "{rules}");
    assert_eq!(
        rules[0]["tag_selectors"][0]["pattern"], "v1",
        "selectors kept: {rules}"
    );
    push(&berth, &reference);
    browser.submit(&format!("{row} form.enable-rule"));
    let out = try_push(&berth, &reference, &creds);
    assert!(!out.status.success(), "re-push after enabling succeeded");

    // The artifact page respects the rule too: the tag cannot be deleted
    // there, nor moved onto another artifact by adding it (refused
    // already because adding never moves a tag, as in Harbor).
    let digest_of = |tag: &str| {
        let (status, _, a) = api.get(&format!(
            "/projects/{project}/repositories/app/artifacts/{tag}"
        ));
        assert_eq!(status, 200, "{a}");
        a["digest"].as_str().unwrap().to_owned()
    };
    let (v1, v2) = (digest_of("v1"), digest_of("v2"));
    let artifact = |d: &str| format!("/projects/{project}/repositories/app/artifacts/{d}");
    browser.goto(&artifact(&v1));
    browser.submit("li[data-tag=\"v1\"] form.delete-tag");
    assert!(
        browser.source().to_lowercase().contains("immutable"),
        "{}",
        browser.text("main")
    );
    assert_eq!(digest_of("v1"), v1, "the immutable tag was deleted");
    if v1 != v2 {
        browser.goto(&artifact(&v2));
        browser.fill("#new-tag", "v1");
        browser.submit("form#add-tag");
        assert!(
            browser.source().contains("already points at"),
            "{}",
            browser.text("main")
        );
        assert_eq!(digest_of("v1"), v1, "the immutable tag was moved");
    }
    browser.goto(&format!("/projects/{project}/policies"));

    // Deleted: the re-push goes through.
    browser.submit(&format!("{row} form.delete-rule"));
    assert!(!browser.exists("table#immutable-rules"));
    let (_, _, rules) = api.get(&format!("/projects/{project}/immutabletagrules"));
    assert_eq!(rules.as_array().map(Vec::len), Some(0), "{rules}");
    push(&berth, &reference);
}

#[test]
fn the_configuration_tab_makes_a_project_public_and_private_again() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let project = format!("cf{}", random_suffix());
    api.create_project(&project, false);
    let reference = format!("{project}/app:v1");
    push(&berth, &reference);
    assert!(!pull(&berth, &reference, None), "private, yet pulled");
    let browser = admin_browser(&berth);

    browser.goto(&format!("/projects/{project}"));
    browser.click_and_wait("a#tab-configuration");
    assert!(browser.exists("#proxy-cache p.muted"));
    assert!(!browser.exists("#proxy-cache dl"), "not a proxy cache");
    browser.set_checked("form#project-public input[name=public]", true);
    browser.submit("form#project-public");
    assert_eq!(
        browser.current_path(),
        format!("/projects/{project}/configuration")
    );
    let checked = browser.execute("return document.getElementById('public').checked;", vec![]);
    assert_eq!(checked, Value::Bool(true));
    assert!(
        pull(&berth, &reference, None),
        "public, yet not pulled anonymously"
    );
    let tags = list_tags(&berth, &format!("{project}/app"), None);
    assert_eq!(tags, ["v1"]);

    browser.set_checked("form#project-public input[name=public]", false);
    browser.submit("form#project-public");
    assert!(!pull(&berth, &reference, None), "private again, yet pulled");

    // A proxy-cache project created in the page: the endpoint is shown in
    // its configuration tab.
    let endpoint = format!("hub{}", random_suffix());
    let registry_id = api.create_registry(&endpoint, "docker-registry", "http://127.0.0.1:9", None);
    browser.goto("/projects");
    let cache = format!("pc{}", random_suffix());
    browser.fill("form#create-project input[name=project_name]", &cache);
    browser.select(
        "form#create-project select[name=registry_id]",
        &registry_id.to_string(),
    );
    browser.submit("form#create-project");
    assert_eq!(browser.current_path(), format!("/projects/{cache}"));
    let (_, _, json) = api.get(&format!("/projects/{cache}"));
    assert_eq!(json["registry_id"], registry_id, "{json}");
    browser.click_and_wait("a#tab-configuration");
    let shown = browser.text("#proxy-cache dl");
    assert!(
        shown.contains(&endpoint) && shown.contains("http://127.0.0.1:9"),
        "{shown}"
    );
}

#[test]
fn a_guest_sees_no_policy_forms_and_its_forged_posts_are_refused() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let project = format!("gs{}", random_suffix());
    api.create_project(&project, false);
    push(&berth, &format!("{project}/app:v1"));
    api.create_user("gwen", "Gwen-Pass-123");
    api.add_member(&project, "gwen", GUEST);
    // What the guest might try to change: a rule of each kind (made by
    // the administrator in the page).
    let admin = admin_browser(&berth);
    admin.goto(&format!("/projects/{project}/policies"));
    admin.fill("form#add-retention-rule input[name=count]", "1");
    admin.submit("form#add-retention-rule");
    admin.fill("form#add-immutable-rule input[name=tag_pattern]", "v1");
    admin.submit("form#add-immutable-rule");
    let rule_id = admin
        .attr("table#immutable-rules tbody tr", "data-rule")
        .unwrap();
    let (_, _, project_json) = api.get(&format!("/projects/{project}"));
    let policy_id = project_json["metadata"]["retention_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let snapshot = |api: &Api| {
        (
            api.get(&format!("/retentions/{policy_id}")).2,
            api.get(&format!("/retentions/{policy_id}/executions")).2,
            api.get(&format!("/projects/{project}/immutabletagrules")).2,
            api.get(&format!("/projects/{project}")).2["metadata"]["public"].clone(),
        )
    };
    let before = snapshot(&api);

    let guest = Browser::start(&berth.url());
    guest.sign_in("gwen", "Gwen-Pass-123");
    // No proxy-cache choice for someone who is not an administrator.
    guest.goto("/projects");
    assert!(!guest.exists("select#registry_id"));
    for tab in ["policies", "configuration", "logs"] {
        guest.goto(&format!("/projects/{project}/{tab}"));
        assert_eq!(guest.count("main form[method=post]"), 0, "a form on {tab}");
    }
    guest.goto(&format!("/projects/{project}/policies"));
    assert!(guest.exists("#retention") && guest.exists("#immutability"));
    guest.goto(&format!("/projects/{project}/logs"));
    assert!(guest.exists("table#audit-log"), "a guest reads the log");

    // Forged posts, with the guest's own valid CSRF token.
    let mut http = FormClient::new(&berth.url(), None);
    assert_eq!(http.sign_in("gwen", "Gwen-Pass-123").status, 303);
    let page = http.get(&format!("/projects/{project}/policies"));
    let csrf = input_value(&page.body, "csrf").unwrap();
    let base = format!("/projects/{project}");
    let forged: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            format!("{base}/policies/retention/rules"),
            vec![("template", "always")],
        ),
        (format!("{base}/policies/retention/rules/1/delete"), vec![]),
        (
            format!("{base}/policies/retention/schedule"),
            vec![("cron", "0 * * * * *")],
        ),
        (
            format!("{base}/policies/retention/run"),
            vec![("dry_run", "false")],
        ),
        (
            format!("{base}/policies/immutable"),
            vec![("tag_pattern", "**")],
        ),
        (
            format!("{base}/policies/immutable/{rule_id}/disable"),
            vec![],
        ),
        (
            format!("{base}/policies/immutable/{rule_id}/delete"),
            vec![],
        ),
        (format!("{base}/configuration"), vec![("public", "true")]),
    ];
    for (path, mut fields) in forged {
        fields.push(("csrf", &csrf));
        let page = http.post_form(&path, &fields);
        assert_eq!(page.status, 403, "POST {path}: {}", page.body);
    }
    assert_eq!(snapshot(&api), before, "a refused post changed something");
    // The token was good: the refusals were policy's, not the CSRF check's.
    let page = http.post_form("/logout", &[("csrf", &csrf)]);
    assert_eq!(page.status, 303, "{}", page.body);
}
