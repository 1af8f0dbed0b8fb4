//! Labels in the portal, in headless Chromium against the real binary:
//! the repository listing and the artifact page show what an artifact
//! carries (names escaped, colors applied), a Developer puts a label on
//! and takes it off, and a Guest sees them with no forms and has a forged
//! form refused.
#![allow(clippy::unwrap_used)]

use berth_tests::browser::{Browser, FormClient};
use berth_tests::{Api, Berth, Image};
use serde_json::json;

const GUEST: i64 = 3;
const DEVELOPER: i64 = 2;

fn label_id(api: &Api, body: serde_json::Value) -> i64 {
    api.post_created("/labels", &body)
}

fn label_names(api: &Api, reference: &str) -> Vec<String> {
    let (status, _, a) = api.get(&format!(
        "/projects/shop/repositories/app/artifacts/{reference}?with_label=true"
    ));
    assert_eq!(status, 200, "{a}");
    a["labels"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|l| l["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn labels_are_shown_put_on_and_taken_off_in_the_browser() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let pid = api.create_project("shop", false);
    let image = Image::random(1);
    berth.registry().push_image("shop/app", "v1", &image);
    let approved = label_id(
        &api,
        json!({"name": "approved", "color": "#2a2", "scope": "g"}),
    );
    let hot = label_id(
        &api,
        json!({"name": "<i>hot</i>", "scope": "p", "project_id": pid, "description": "\"quoted\""}),
    );
    // Another project's label is never offered.
    let other = api.create_project("other", false);
    let foreign = label_id(
        &api,
        json!({"name": "foreign", "scope": "p", "project_id": other}),
    );
    api.create_user("dave", "dave-pw-1");
    api.add_member("shop", "dave", DEVELOPER);
    api.create_user("gina", "gina-pw-1");
    api.add_member("shop", "gina", GUEST);

    let page = format!(
        "/projects/shop/repositories/app/artifacts/{}",
        image.manifest.digest
    );
    let dave = Browser::start(&berth.url());
    dave.sign_in("dave", "dave-pw-1");
    dave.goto(&page);
    dave.wait_for("form#add-label");
    let offered: Vec<Option<String>> = dave.attrs("form#add-label select option", "value");
    assert!(offered.contains(&Some(approved.to_string())), "{offered:?}");
    assert!(offered.contains(&Some(hot.to_string())), "{offered:?}");
    assert!(!offered.contains(&Some(foreign.to_string())), "{offered:?}");

    for id in [hot, approved] {
        dave.goto(&page);
        dave.wait_for("form#add-label");
        dave.select("form#add-label select", &id.to_string());
        dave.submit("form#add-label");
    }
    dave.goto(&page);
    let hot_chip = format!("ul#labels li[data-label=\"{hot}\"] span.label");
    dave.wait_for(&hot_chip);
    // The name is text, not markup; the description a title.
    assert_eq!(dave.text(&hot_chip), "<i>hot</i>");
    assert!(
        !dave.exists("ul#labels i"),
        "a label name was rendered as markup"
    );
    assert_eq!(dave.attr(&hot_chip, "title").as_deref(), Some("\"quoted\""));
    // The color is applied by the page's script (no inline style).
    let color = dave.execute(
        &format!(
            "return getComputedStyle(document.querySelector('ul#labels li[data-label=\"{approved}\"] span.label')).borderLeftColor"
        ),
        vec![],
    );
    assert_eq!(color, "rgb(34, 170, 34)");
    // Both carried: nothing more to offer but each is offered no more.
    assert!(!dave.exists(&format!("form#add-label option[value=\"{hot}\"]")));
    let mut names = label_names(&api, "v1");
    names.sort();
    assert_eq!(names, ["<i>hot</i>", "approved"]);

    // The repository's listing shows them too.
    dave.goto("/projects/shop/repositories/app");
    let row = format!(
        "table#artifacts tr[data-digest=\"{}\"]",
        image.manifest.digest
    );
    dave.wait_for(&row);
    let mut shown = dave.texts(&format!("{row} span.label"));
    shown.sort();
    assert_eq!(shown, ["<i>hot</i>", "approved"]);

    // gina (Guest) sees them, gets no forms, and a forged one is refused.
    let gina = Browser::start(&berth.url());
    gina.sign_in("gina", "gina-pw-1");
    gina.goto(&page);
    gina.wait_for(&hot_chip);
    assert!(!gina.exists("form#add-label") && !gina.exists("form.remove-label"));
    let csrf = gina.csrf();
    let mut http = FormClient::new(&berth.url(), None);
    for cookie in gina.cookies() {
        http.set_cookie(&cookie.name, &cookie.value);
    }
    let forged = http.post_form(
        &format!("{page}/labels/{hot}/delete"),
        &[("csrf", csrf.as_str())],
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    let forged = http.post_form(
        &format!("{page}/labels"),
        &[("csrf", csrf.as_str()), ("label", &foreign.to_string())],
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(label_names(&api, "v1").len(), 2);

    // dave takes one off.
    dave.goto(&page);
    dave.submit(&format!(
        "ul#labels li[data-label=\"{hot}\"] form.remove-label"
    ));
    dave.goto(&page);
    dave.wait_for(&format!("ul#labels li[data-label=\"{approved}\"]"));
    assert!(!dave.exists(&hot_chip));
    assert_eq!(label_names(&api, "v1"), ["approved"]);
}
