//! The portal in a real browser: headless Chromium over WebDriver, against
//! the real `berth` binary. Sign-in (a database user and an LDAP user
//! against slapd), a project created in the browser and pushed to with
//! skopeo, the pull command copied from the page and run with podman, a
//! Guest member who sees but cannot delete, tags deleted and added, a GC
//! dry run, Chinese, and a 360 px wide screen. The screenshots of the main
//! pages are written here (see [`berth_tests::browser::screenshot_dir`]).
#![allow(clippy::unwrap_used)]

#[path = "../../auth/tests/support/slapd.rs"]
mod slapd;

use std::time::Duration;

use berth_tests::browser::{Browser, FormClient, Options};
use berth_tests::content::random_suffix;
use berth_tests::tools::{skopeo_push_once, text, Podman};
use berth_tests::{Api, Berth, Image};
use serde_json::{json, Value};

const GUEST: i64 = 3;

/// A browser signed in as the administrator, on `/projects`.
fn admin_browser(berth: &Berth) -> Browser {
    let browser = Browser::start(&berth.url());
    let landed = browser.sign_in("admin", berth.admin_password());
    assert_eq!(landed, "/projects", "where the administrator lands");
    browser
}

/// The rows of a table that hold cells (not its header).
fn body_rows(table: &str) -> String {
    format!("{table} tr:has(td)")
}

/// True when `text` holds a CJK ideograph.
fn has_chinese(text: &str) -> bool {
    text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// Pushes `image` under each of `tags` through /v2 as the administrator.
fn push_tags(berth: &Berth, repo: &str, image: &Image, tags: &[&str]) {
    let registry = berth.registry();
    registry.push_image(repo, tags[0], image);
    for tag in &tags[1..] {
        registry.push_manifest(repo, tag, &image.manifest);
    }
}

#[test]
fn admin_signs_in_and_out_and_a_wrong_password_is_refused() {
    let berth = Berth::start();
    let browser = Browser::start(&berth.url());

    browser.goto("/login");
    assert_eq!(
        browser
            .attr("form#login-form", "method")
            .unwrap()
            .to_lowercase(),
        "post"
    );
    assert_eq!(
        browser.attr("form#login-form", "action").as_deref(),
        Some("/login")
    );
    assert_eq!(
        browser.attr("input#username", "name").as_deref(),
        Some("username")
    );
    assert_eq!(
        browser.attr("input#password", "name").as_deref(),
        Some("password")
    );
    assert_eq!(
        browser.attr("input#password", "type").as_deref(),
        Some("password")
    );
    assert!(!browser.csrf().is_empty(), "an empty csrf field");
    assert!(!browser.exists("#user-menu"), "a user menu before sign-in");
    browser.screenshot("login");

    // A wrong password: the login page again, with the error.
    browser.fill_login("admin", "not-the-password");
    assert!(
        browser.current_path().starts_with("/login"),
        "after a wrong password: {}",
        browser.current_path()
    );
    let error = browser.wait_for(".flash.error");
    let message = browser.block_on(error.text()).unwrap();
    assert!(!message.trim().is_empty(), "an empty error message");
    assert!(
        !browser.exists("#user-menu"),
        "signed in with a wrong password"
    );

    // The right one.
    browser.fill_login("admin", berth.admin_password());
    assert_eq!(browser.current_path(), "/projects");
    let menu = browser.text("#user-menu");
    assert!(menu.contains("admin"), "user menu: {menu:?}");
    assert!(!browser.exists(".flash.error"), "an error after signing in");
    let session = browser.cookie("berth_session").expect("a session cookie");
    assert!(session.http_only, "{session:?}");
    assert!(!session.secure, "Secure over plain HTTP: {session:?}");
    assert_eq!(session.same_site.as_deref(), Some("Lax"), "{session:?}");
    assert_eq!(session.path.as_deref(), Some("/"), "{session:?}");
    assert_eq!(
        browser.attr("form#logout-form", "action").as_deref(),
        Some("/logout")
    );
    assert_eq!(
        browser
            .attr("form#logout-form", "method")
            .unwrap()
            .to_lowercase(),
        "post"
    );
    assert!(browser.exists("form#logout-form input[name=csrf]"));

    // Sign out: the menu is gone and the session with it.
    browser.sign_out();
    assert!(
        !browser.exists("#user-menu"),
        "still signed in after sign-out"
    );
    browser.goto("/admin/gc");
    let path = browser.current_path();
    assert!(
        path.starts_with("/login?next="),
        "an anonymous visit to /admin/gc went to {path}"
    );
    // The way back: `next` is carried through the form.
    assert_eq!(
        browser
            .attr("form#login-form input[name=next]", "value")
            .as_deref(),
        Some("/admin/gc")
    );
    browser.fill_login("admin", berth.admin_password());
    assert_eq!(browser.current_path(), "/admin/gc");
    assert!(browser.exists("#user-menu"));

    // The status of a refused sign-in, which a browser does not show.
    let mut http = FormClient::new(&berth.url(), None);
    let page = http.sign_in("admin", "not-the-password");
    assert_eq!(page.status, 401, "wrong password: {}", page.body);
    assert!(page.body.contains("login-form"), "{}", page.body);
}

#[test]
fn an_ldap_user_signs_in_with_the_directory_password() {
    let slapd = slapd::Slapd::start();
    let berth = Berth::start_with_env(&[
        ("BERTH_AUTH__MODE", "ldap"),
        ("BERTH_LDAP__URL", &slapd.url()),
        ("BERTH_LDAP__SEARCH_DN", slapd::READER_DN),
        ("BERTH_LDAP__SEARCH_PASSWORD", slapd::READER_PASSWORD),
        ("BERTH_LDAP__BASE_DN", slapd::PEOPLE_DN),
        ("BERTH_LDAP__FILTER", "(objectClass=inetOrgPerson)"),
        ("BERTH_LDAP__UID", "uid"),
        ("BERTH_LDAP__SCOPE", "subtree"),
        ("BERTH_LDAP__GROUP_MEMBERSHIP_ATTRIBUTE", "memberOf"),
        ("BERTH_LDAP__GROUP_ADMIN_DN", slapd::ADMINS_DN),
    ]);
    let api = Api::admin(&berth);
    api.create_project("team", false);
    api.create_project("secret", false);

    // The administrator makes bob's LDAP group a member in the page.
    let admin = admin_browser(&berth);
    admin.goto("/projects/team/members");
    admin.fill("#member-group-dn", slapd::DEVELOPERS_DN);
    admin.select("#group-role", "2");
    admin.submit("form#add-group");
    assert_eq!(admin.current_path(), "/projects/team/members");
    let (_, _, members) = api.get("/projects/team/members");
    let group = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["entity_type"] == "g")
        .unwrap_or_else(|| panic!("no group member: {members}"));
    assert_eq!(group["role_id"], 2, "{group}");
    assert!(admin.exists("table#members"), "{}", admin.text("main"));

    let browser = Browser::start(&berth.url());
    browser.goto("/login");
    browser.fill_login(slapd::BOB.uid, "not-bobs-password");
    assert!(browser.current_path().starts_with("/login"));
    browser.wait_for(".flash.error");
    assert!(!browser.exists("#user-menu"));

    browser.fill_login(slapd::BOB.uid, slapd::BOB.password);
    assert_eq!(browser.current_path(), "/projects");
    let menu = browser.text("#user-menu");
    assert!(menu.contains("bob"), "user menu: {menu:?}");
    // bob sees the project his LDAP group is a member of, not the other
    // private one.
    browser.wait_for("table#projects tr[data-project=\"team\"]");
    assert!(!browser.exists("tr[data-project=\"secret\"]"));
    browser.sign_out();
    assert!(!browser.exists("#user-menu"));
}

#[test]
fn a_project_created_in_the_browser_takes_a_push_and_its_pull_command_works_in_podman() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let host = berth.host_port();
    let project = format!("web{}", random_suffix());
    let browser = admin_browser(&berth);

    // Create: private, with a quota.
    browser.wait_for("form#create-project");
    browser.fill("form#create-project input[name=project_name]", &project);
    browser.set_checked("form#create-project input[name=public]", false);
    browser.fill("form#create-project input[name=storage_limit]", "1GiB");
    browser.submit("form#create-project");
    let (status, _, created) = api.get(&format!("/projects/{project}"));
    assert_eq!(status, 200, "the project after the form: {created}");
    assert_eq!(created["metadata"]["public"], "false", "{created}");
    let id = created["project_id"].as_i64().unwrap();
    assert_eq!(
        api.quota(id)["hard"]["storage"],
        json!(1u64 << 30),
        "the quota typed as 1GiB"
    );

    // It is listed, and the search finds it alone.
    browser.goto("/projects");
    let row = format!("table#projects tr[data-project=\"{project}\"]");
    browser.wait_for(&row);
    assert!(browser.exists(&format!("{row} a[href=\"/projects/{project}\"]")));
    assert!(browser.exists("table#projects tr[data-project=\"library\"]"));
    browser.screenshot("projects");
    browser.fill("form#project-search input[name=q]", &project);
    browser.submit("form#project-search");
    assert!(
        browser.current_path().contains("q="),
        "{}",
        browser.current_path()
    );
    assert_eq!(
        browser.attrs("table#projects tr[data-project]", "data-project"),
        vec![Some(project.clone())],
        "the search for {project}"
    );

    // skopeo pushes into it.
    let image = Image::random(2);
    let out = skopeo_push_once(
        berth.scratch_dir(),
        &image,
        &host,
        &format!("{project}/app:v1"),
        &format!("admin:{}", berth.admin_password()),
    );
    assert!(out.status.success(), "skopeo push: {}", text(&out));

    // Summary, then the repositories tab, then the repository.
    browser.goto(&format!("/projects/{project}"));
    assert_eq!(
        browser.attr("a#tab-summary", "href").as_deref(),
        Some(format!("/projects/{project}").as_str())
    );
    assert_eq!(
        browser.attr("a#tab-members", "href").as_deref(),
        Some(format!("/projects/{project}/members").as_str())
    );
    browser.screenshot("project-summary");
    browser.click_and_wait("a#tab-repositories");
    assert_eq!(
        browser.current_path(),
        format!("/projects/{project}/repositories")
    );
    let repo_row = format!("table#repositories tr[data-repository=\"{project}/app\"]");
    browser.wait_for(&repo_row);
    browser.click_and_wait(&format!(
        "{repo_row} a[href=\"/projects/{project}/repositories/app\"]"
    ));
    let artifact = format!(
        "table#artifacts tr[data-digest=\"{}\"]",
        image.manifest.digest
    );
    browser.wait_for(&artifact);
    assert_eq!(browser.texts(&format!("{artifact} span.tag")), vec!["v1"]);
    browser.screenshot("repository");

    // The pull command, in its docker and podman variants.
    assert!(
        browser.attr("input#pull-command", "readonly").is_some(),
        "the pull command box is not read-only"
    );
    assert!(browser.exists("button#copy-pull"), "no copy button");
    let reference = format!("{host}/{project}/app:v1");
    assert_eq!(
        browser.value("input#pull-command"),
        format!("docker pull {reference}")
    );
    for variant in ["docker", "podman", "nerdctl", "ctr"] {
        assert!(
            browser.exists(&format!("button[data-variant=\"{variant}\"]")),
            "no {variant} variant"
        );
    }
    browser.click("button[data-variant=\"podman\"]");
    let command = browser.wait_until("the podman pull command", Duration::from_secs(10), |b| {
        let value = b.value("input#pull-command");
        value.starts_with("podman ").then_some(value)
    });
    assert_eq!(command, format!("podman pull {reference}"));

    // Run it: podman logs in (the project is private) and pulls over
    // plain HTTP, so it is told not to insist on TLS.
    let podman = Podman::new(&berth.scratch_dir().join("podman"));
    let out = podman.login(&host, "admin", berth.admin_password());
    assert!(out.status.success(), "podman login: {}", text(&out));
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(&words[..2], ["podman", "pull"], "{command}");
    let mut args = vec!["pull", "--tls-verify=false"];
    args.extend_from_slice(&words[2..]);
    let out = podman.run(&args, None);
    assert!(out.status.success(), "{command}: {}", text(&out));
    let out = podman.run(
        &["image", "inspect", "--format", "{{.Digest}}", &reference],
        None,
    );
    assert!(out.status.success(), "podman image inspect: {}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        image.manifest.digest,
        "the digest podman pulled"
    );
}

#[test]
fn a_guest_member_sees_the_project_but_no_delete_and_a_forged_delete_is_refused() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    api.create_project("guarded", false);
    api.create_project("hidden", false);
    let image = Image::random(2);
    push_tags(&berth, "guarded/app", &image, &["v1"]);
    let guest_password = "Guest-Pass-123";
    api.create_user("gina", guest_password);

    // The administrator adds gina as a Guest in the members tab.
    let admin = admin_browser(&berth);
    admin.goto("/projects/guarded");
    admin.click_and_wait("a#tab-members");
    assert_eq!(admin.current_path(), "/projects/guarded/members");
    admin.fill("form#add-member input[name=username]", "gina");
    admin.select("form#add-member select[name=role]", &GUEST.to_string());
    admin.submit("form#add-member");
    admin.wait_for("table#members tr[data-member=\"gina\"]");
    admin.screenshot("members");
    let (_, _, members) = api.get("/projects/guarded/members");
    let gina = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["entity_name"] == "gina")
        .unwrap_or_else(|| panic!("gina is not a member: {members}"));
    assert_eq!(gina["role_id"], GUEST, "{gina}");
    assert!(admin.exists("table#members tr[data-member=\"gina\"] form.delete-member"));

    // What the administrator may delete, and how the page asks for it.
    let artifact_page = format!(
        "/projects/guarded/repositories/app/artifacts/{}",
        image.manifest.digest
    );
    admin.goto(&artifact_page);
    let delete_tag = "ul#tags li[data-tag=\"v1\"] form.delete-tag";
    admin.wait_for(delete_tag);
    assert!(admin.exists("table#layers"));
    admin.screenshot("artifact");
    let tag_form = form_fields(&admin, delete_tag);
    admin.goto("/projects/guarded");
    let project_form = form_fields(&admin, "form#delete-project");

    // gina, in a browser of her own, sees the project and its repository,
    // and no delete button.
    let guest = Browser::start(&berth.url());
    assert_eq!(guest.sign_in("gina", guest_password), "/projects");
    guest.wait_for("table#projects tr[data-project=\"guarded\"]");
    assert!(
        !guest.exists("tr[data-project=\"hidden\"]"),
        "a project gina is not in"
    );
    guest.goto("/projects/guarded");
    assert!(
        !guest.exists("form#delete-project"),
        "a Guest is offered to delete the project"
    );
    guest.click_and_wait("a#tab-repositories");
    guest.wait_for("table#repositories tr[data-repository=\"guarded/app\"]");
    guest.goto(&artifact_page);
    guest.wait_for("ul#tags li[data-tag=\"v1\"]");
    assert!(
        !guest.exists("form.delete-tag"),
        "a Guest is offered to delete a tag"
    );
    guest.goto("/projects/guarded/members");
    guest.wait_for("table#members tr[data-member=\"gina\"]");
    assert!(
        !guest.exists("form.delete-member"),
        "a Guest is offered to remove members"
    );

    // gina forges the administrator's requests with her own session and a
    // valid csrf token of hers: refused, and nothing changes.
    guest.goto(&artifact_page);
    let csrf = guest.csrf();
    assert!(
        guest.cookie("berth_session").is_some(),
        "gina has no session cookie"
    );
    let mut http = FormClient::new(&berth.url(), None);
    for cookie in guest.cookies() {
        http.set_cookie(&cookie.name, &cookie.value);
    }
    for (what, (action, fields)) in [("tag delete", &tag_form), ("project delete", &project_form)] {
        let fields: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    if k == "csrf" {
                        csrf.as_str()
                    } else {
                        v.as_str()
                    },
                )
            })
            .collect();
        let page = http.post_form(action, &fields);
        assert_eq!(
            page.status, 403,
            "gina's forged {what} to {action}: {}",
            page.body
        );
    }
    assert_eq!(berth.registry().tags("guarded/app"), vec!["v1"]);
    assert_eq!(api.get("/projects/guarded").0, 200, "the project is gone");
    // The token was good: the same session and token may sign out.
    let page = http.post_form("/logout", &[("csrf", &csrf)]);
    assert_eq!(
        page.status, 303,
        "gina's sign-out with her token: {}",
        page.body
    );
}

/// The `action` of the form at `css` and its fields' names and values.
fn form_fields(browser: &Browser, css: &str) -> (String, Vec<(String, String)>) {
    let form = browser.find(css);
    let value = browser.execute(
        "const f = arguments[0]; \
         return [f.getAttribute('action'), \
                 Array.from(new FormData(f).entries()).map(([k, v]) => [k, String(v)])];",
        vec![serde_json::to_value(&form).unwrap()],
    );
    let action = value[0]
        .as_str()
        .unwrap_or_else(|| panic!("{css} has no action: {value}"));
    let fields = value[1]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            (
                kv[0].as_str().unwrap().to_owned(),
                kv[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (action.to_owned(), fields)
}

#[test]
fn the_administrator_deletes_and_adds_tags_and_deletes_a_project_in_the_browser() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    api.create_project("shop", false);
    let repo = "shop/team/web";
    let image = Image::random(1);
    push_tags(&berth, repo, &image, &["v1", "v2"]);
    let registry = berth.registry();
    assert_eq!(registry.tags(repo), vec!["v1", "v2"]);

    let browser = admin_browser(&berth);
    // A repository name with a slash, reached by its links.
    browser.goto("/projects/shop/repositories");
    browser.click_and_wait(
        "table#repositories tr[data-repository=\"shop/team/web\"] \
         a[href=\"/projects/shop/repositories/team/web\"]",
    );
    let page = format!(
        "/projects/shop/repositories/team/web/artifacts/{}",
        image.manifest.digest
    );
    browser.goto(&page);
    browser.wait_for("ul#tags li[data-tag=\"v2\"]");
    browser.submit("ul#tags li[data-tag=\"v2\"] form.delete-tag");
    browser.goto(&page);
    browser.wait_for("ul#tags li[data-tag=\"v1\"]");
    assert!(
        !browser.exists("ul#tags li[data-tag=\"v2\"]"),
        "v2 still listed"
    );
    assert_eq!(
        registry.tags(repo),
        vec!["v1"],
        "the registry after the delete"
    );

    browser.fill("form#add-tag input[name=tag]", "v3");
    browser.submit("form#add-tag");
    browser.goto(&page);
    browser.wait_for("ul#tags li[data-tag=\"v3\"]");
    assert_eq!(
        registry.tags(repo),
        vec!["v1", "v3"],
        "the registry after the add"
    );
    let resp = registry.get_manifest(repo, "v3");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        berth_tests::content::sha256_digest(&resp.bytes().unwrap()),
        image.manifest.digest
    );

    // An empty project goes with its delete button (after the confirm
    // dialog, which the browser accepts).
    api.create_project("doomed", false);
    browser.goto("/projects/doomed");
    browser.submit("form#delete-project");
    assert_eq!(
        api.get("/projects/doomed").0,
        404,
        "the project is still there"
    );
    browser.goto("/projects");
    browser.wait_for("table#projects tr[data-project=\"shop\"]");
    assert!(!browser.exists("tr[data-project=\"doomed\"]"));
}

#[test]
fn a_gc_dry_run_from_the_browser_shows_in_the_history() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let browser = admin_browser(&berth);
    browser.goto("/admin/gc");
    browser.wait_for("form#gc-run");
    let rows = body_rows("table#gc-history");
    let before = browser.count(&rows);
    let (_, _, history) = api.get("/system/gc");
    let runs_before = history.as_array().map_or(0, Vec::len);

    browser.set_checked("form#gc-run input[name=dry_run]", true);
    browser.submit("form#gc-run");
    browser.wait_until("a new row in #gc-history", Duration::from_secs(60), |b| {
        if b.count(&rows) > before {
            return Some(());
        }
        if !b.current_path().starts_with("/admin/gc") {
            b.goto("/admin/gc");
        } else {
            b.refresh();
        }
        None
    });
    assert_eq!(browser.count(&rows), before + 1);
    browser.screenshot("gc");

    let (_, _, history) = api.get("/system/gc");
    let runs = history.as_array().unwrap();
    assert_eq!(runs.len(), runs_before + 1, "{history}");
    let parameters: Value =
        serde_json::from_str(runs[0]["job_parameters"].as_str().unwrap()).unwrap();
    assert_eq!(
        parameters["dry_run"], true,
        "the run the form started: {history}"
    );

    // Not for other users.
    api.create_user("nora", "Nora-Pass-123");
    let other = Browser::start(&berth.url());
    other.sign_in("nora", "Nora-Pass-123");
    other.goto("/admin/gc");
    assert!(
        !other.exists("form#gc-run"),
        "a user who is no admin may run GC"
    );
}

#[test]
fn the_portal_speaks_chinese_by_choice_and_by_accept_language() {
    let berth = Berth::start();
    let browser = admin_browser(&berth);
    browser.goto("/projects");
    assert_eq!(browser.html_lang(), "en");
    let heading = browser.text("h1");
    assert!(!has_chinese(&heading), "English heading: {heading}");
    let href = browser.attr("a#lang-zh-CN", "href").unwrap();
    assert!(href.contains("lang=zh-CN"), "{href}");
    assert!(browser
        .attr("a#lang-en", "href")
        .unwrap()
        .contains("lang=en"));

    browser.click_and_wait("a#lang-zh-CN");
    assert_eq!(browser.html_lang(), "zh-CN");
    let heading = browser.text("h1");
    assert!(
        has_chinese(&heading),
        "the projects heading in Chinese: {heading}"
    );
    assert_eq!(
        browser.cookie("berth_lang").map(|c| c.value).as_deref(),
        Some("zh-CN")
    );
    browser.screenshot("projects-zh-CN");
    // The choice is kept from page to page.
    browser.goto("/admin/gc");
    assert_eq!(browser.html_lang(), "zh-CN");
    browser.click_and_wait("a#lang-en");
    assert_eq!(browser.html_lang(), "en");
    browser.goto("/projects");
    assert_eq!(browser.html_lang(), "en");

    // A browser whose user prefers Chinese gets it without asking.
    let chinese = Browser::start_with(&berth.url(), Options::new().lang("zh-CN"));
    chinese.goto("/login");
    assert_eq!(chinese.html_lang(), "zh-CN");
    assert!(
        chinese.cookie("berth_lang").is_none(),
        "a language cookie unasked"
    );
    let button = chinese.text("button#login-submit");
    assert!(has_chinese(&button), "the sign-in button: {button}");
    chinese.fill_login("admin", berth.admin_password());
    assert_eq!(chinese.current_path(), "/projects");
    assert_eq!(chinese.html_lang(), "zh-CN");
    assert!(has_chinese(&chinese.text("h1")));
}

#[test]
fn the_projects_page_fits_a_360px_screen() {
    let berth = Berth::start();
    Api::admin(&berth).create_project("a-project-with-a-rather-long-name", true);
    let browser = Browser::start_with(&berth.url(), Options::new().window(360, 740));
    assert_eq!(
        browser.sign_in("admin", berth.admin_password()),
        "/projects"
    );
    browser.wait_for("table#projects tr[data-project=\"a-project-with-a-rather-long-name\"]");
    browser.screenshot("projects-360");
    // Nothing sticks out sideways: the page does not scroll horizontally.
    let widths = browser.execute(
        "return [document.documentElement.scrollWidth, window.innerWidth];",
        vec![],
    );
    assert!(
        widths[0].as_u64() <= widths[1].as_u64(),
        "the page is wider than the screen (scrollWidth, innerWidth) = {widths}"
    );
}

#[test]
fn artifacts_are_paged_the_page_size_is_remembered_and_tags_are_searched() {
    let berth = Berth::start();
    Api::admin(&berth).create_project("paged", false);
    let registry = berth.registry();
    registry.push_image("paged/app", "t00", &Image::random(1));
    let browser = admin_browser(&berth);
    let page = "/projects/paged/repositories/app";
    browser.goto(page);
    let rows = "table#artifacts tr[data-digest]";
    assert_eq!(browser.count(rows), 1);
    // Enough artifacts for two pages of the smallest size offered.
    let smallest = browser
        .attrs("select#page-size option", "value")
        .into_iter()
        .filter_map(|v| v?.parse::<usize>().ok())
        .min()
        .expect("page sizes to choose from");
    for i in 1..smallest + 2 {
        registry.push_image("paged/app", &format!("t{i:02}"), &Image::random(1));
    }
    browser.refresh();
    assert!(
        browser.count(rows) > smallest,
        "the default page size is the smallest"
    );
    assert!(!browser.exists("a#next-page"));

    // Choosing a size shows that many, and the next page the rest.
    // (The page's script applies the size as soon as it is chosen.)
    browser.mark_page();
    browser.select("select#page-size", &smallest.to_string());
    browser.wait_new_page("the page after choosing a page size");
    assert_eq!(browser.count(rows), smallest);
    assert!(!browser.exists("a#prev-page"));
    browser.click_and_wait("a#next-page");
    assert_eq!(browser.count(rows), 2);
    assert!(!browser.exists("a#next-page"));
    browser.click_and_wait("a#prev-page");
    assert_eq!(browser.count(rows), smallest);

    // The size is remembered: the repository opened afresh uses it.
    browser.goto(page);
    assert_eq!(browser.count(rows), smallest);
    assert_eq!(browser.value("select#page-size"), smallest.to_string());

    // The tag search asks the server.
    browser.fill("form#tag-search input[name=tag]", "t03");
    browser.submit("form#tag-search");
    assert!(
        browser.current_path().contains("tag=t03"),
        "{}",
        browser.current_path()
    );
    assert_eq!(browser.count(rows), 1);
    assert_eq!(browser.texts("table#artifacts span.tag"), vec!["t03"]);
}
