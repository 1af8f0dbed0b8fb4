//! A project's robot accounts in the portal: created in the browser, the
//! secret shown once and then never again, the robot pushing with skopeo,
//! and deleted in the browser, after which its secret no longer works.
#![allow(clippy::unwrap_used)]

use berth_tests::browser::Browser;
use berth_tests::content::random_suffix;
use berth_tests::tools::{skopeo_push_once, text};
use berth_tests::{Api, Berth, Image};

#[test]
fn a_robot_created_in_the_browser_pushes_with_its_secret_shown_once_until_deleted() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let host = berth.host_port();
    let project = format!("rb{}", random_suffix());
    api.create_project(&project, false);
    let browser = Browser::start(&berth.url());
    assert_eq!(
        browser.sign_in("admin", berth.admin_password()),
        "/projects"
    );

    browser.goto(&format!("/projects/{project}"));
    browser.click_and_wait("a#tab-robots");
    assert_eq!(
        browser.current_path(),
        format!("/projects/{project}/robots")
    );
    browser.wait_for("form#create-robot");
    browser.fill("form#create-robot input[name=name]", "ci");
    browser.fill("form#create-robot input[name=description]", "<b>builds</b>");
    browser.set_checked("form#create-robot input[name=pull]", true);
    browser.set_checked("form#create-robot input[name=push]", true);
    browser.submit("form#create-robot");
    browser.wait_for("#robot-created");
    let name = browser.value("input#robot-name");
    let secret = browser.value("input#robot-secret");
    assert_eq!(name, format!("robot${project}+ci"));
    assert!(secret.len() >= 16, "the secret shown: {secret:?}");
    // The secret is on the page that answered the form, never in its URL.
    assert!(!browser.current_url().contains(&secret));
    let row = format!("table#robots tr[data-robot=\"{name}\"]");
    assert!(browser.exists(&row), "the new robot is listed");
    assert!(
        browser.text(&row).contains("repository:push"),
        "{}",
        browser.text(&row)
    );
    // Markup in its description is text.
    assert!(browser.text(&row).contains("<b>builds</b>"));
    browser.screenshot("robots");

    // The robot pushes with its secret.
    let image = Image::random(1);
    let out = skopeo_push_once(
        berth.scratch_dir(),
        &image,
        &host,
        &format!("{project}/app:v1"),
        &format!("{name}:{secret}"),
    );
    assert!(out.status.success(), "push as the robot: {}", text(&out));
    let (status, _, tags) = api.get(&format!(
        "/projects/{project}/repositories/app/artifacts/v1/tags"
    ));
    assert_eq!(status, 200, "{tags}");

    // Shown once: the tab no longer has it.
    browser.goto(&format!("/projects/{project}/robots"));
    browser.wait_for(&row);
    assert!(!browser.exists("#robot-created"));
    assert!(
        !browser.source().contains(&secret),
        "the secret shown again"
    );

    // Deleted in the browser: gone, and its secret no longer pushes.
    browser.submit(&format!("{row} form.delete-robot"));
    browser.wait_gone(&row);
    let (_, _, robots) = api.get(&format!("/robots?q=name%3D~{project}"));
    assert_eq!(robots.as_array().map(Vec::len), Some(0), "{robots}");
    let out = skopeo_push_once(
        berth.scratch_dir(),
        &Image::random(1),
        &host,
        &format!("{project}/app:v2"),
        &format!("{name}:{secret}"),
    );
    assert!(!out.status.success(), "the deleted robot still pushes");
}
