//! Tag immutability rules against the real binary: a protected tag cannot
//! be overwritten (skopeo says why) or deleted (skopeo, /v2, the API),
//! re-pushing the same image is fine, other tags are not affected, and a
//! disabled rule protects nothing.
#![allow(clippy::unwrap_used)]

use std::process::Output;

use berth_tests::content::random_layer;
use berth_tests::registry::describe;
use berth_tests::{Api, Berth, Image};
use serde_json::{json, Value};

fn creds(berth: &Berth) -> String {
    format!("admin:{}", berth.admin_password())
}

fn push(berth: &Berth, image: &Image, reference: &str) -> Output {
    berth_tests::tools::skopeo_push_once(
        berth.scratch_dir(),
        image,
        &berth.host_port(),
        reference,
        &creds(berth),
    )
}

fn skopeo_delete(berth: &Berth, reference: &str) -> Output {
    let dest = format!("docker://{}/{reference}", berth.host_port());
    let creds = creds(berth);
    berth_tests::tools::run(
        "skopeo",
        &["delete", "--tls-verify=false", "--creds", &creds, &dest],
        &[],
        None,
    )
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn selector(decoration: &str, pattern: &str) -> Value {
    json!({"kind": "doublestar", "decoration": decoration, "pattern": pattern})
}

fn rule(tags: &str, repos: &str, disabled: bool) -> Value {
    json!({
        "disabled": disabled,
        "action": "immutable",
        "template": "immutable_template",
        "tag_selectors": [selector("matches", tags)],
        "scope_selectors": {"repository": [selector("repoMatches", repos)]},
    })
}

fn api_message(answer: (u16, reqwest::header::HeaderMap, Value), status: u16) -> String {
    let (got, _, body) = answer;
    assert_eq!(got, status, "{body}");
    body["errors"][0]["message"].as_str().unwrap().to_owned()
}

#[test]
fn protected_tags_are_neither_overwritten_nor_deleted() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    api.create_project("team", false);
    let a = Image::with_layers(vec![random_layer(1, 4000)]);
    let b = Image::with_layers(vec![random_layer(1, 4000)]);
    let out = push(&berth, &a, "team/app:v1.0");
    assert!(out.status.success(), "{}", text(&out));

    // Developers may not add rules; maintainers (and admins) may.
    api.create_user("dev", "Passw0rd!x");
    api.add_member("team", "dev", 2);
    let dev = Api::as_user(&berth, "dev", "Passw0rd!x");
    let (status, _, body) = dev.post(
        "/projects/team/immutabletagrules",
        &rule("v1*", "**", false),
    );
    assert_eq!(status, 403, "{body}");
    let (status, headers, body) = api.post(
        "/projects/team/immutabletagrules",
        &rule("v1*", "**", false),
    );
    assert_eq!(status, 201, "{body}");
    let location = headers["location"].to_str().unwrap().to_owned();
    let id: i64 = location.rsplit('/').next().unwrap().parse().unwrap();
    // Harbor's matrix: Developers do not read immutability rules.
    assert_eq!(dev.get("/projects/team/immutabletagrules").0, 403);
    let (status, _, list) = api.get("/projects/team/immutabletagrules");
    assert_eq!(status, 200, "{list}");
    assert_eq!(list[0]["id"], id, "{list}");
    assert_eq!(list[0]["tag_selectors"][0]["pattern"], "v1*", "{list}");
    assert_eq!(
        list[0]["scope_selectors"]["repository"][0]["decoration"],
        "repoMatches"
    );

    // The same image again is fine; another one under the tag is not.
    let out = push(&berth, &a, "team/app:v1.0");
    assert!(out.status.success(), "{}", text(&out));
    let out = push(&berth, &b, "team/app:v1.0");
    assert!(!out.status.success(), "overwrote an immutable tag");
    let message = text(&out);
    assert!(
        message.contains("tag `team/app:v1.0` is immutable by rule")
            && message.contains("matching `v1*`")
            && message.contains("cannot be overwritten or deleted"),
        "{message}"
    );
    let registry = berth.registry();
    let resp = registry.get_manifest("team/app", "v1.0");
    assert_eq!(
        berth_tests::registry::header(&resp, "docker-content-digest").as_deref(),
        Some(a.manifest.digest.as_str())
    );

    // Deleting it: skopeo, /v2 by tag, the API's tag, artifact and
    // repository deletes all refuse.
    let out = skopeo_delete(&berth, "team/app:v1.0");
    assert!(!out.status.success(), "deleted an immutable tag");
    assert!(text(&out).contains("is immutable"), "{}", text(&out));
    let resp = registry
        .http()
        .delete(registry.url("/v2/team/app/manifests/v1.0"))
        .send()
        .unwrap();
    let body = describe(resp);
    assert!(body.contains("403") && body.contains("DENIED"), "{body}");
    let message = api_message(
        api.delete("/projects/team/repositories/app/artifacts/v1.0/tags/v1.0"),
        403,
    );
    assert!(message.contains("team/app:v1.0"), "{message}");
    api_message(
        api.delete("/projects/team/repositories/app/artifacts/v1.0"),
        403,
    );
    api_message(api.delete("/projects/team/repositories/app"), 403);

    // Tags the rule does not match move and go freely.
    for image in [&a, &b] {
        let out = push(&berth, image, "team/app:v2.0");
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = skopeo_delete(&berth, "team/app:v2.0");
    assert!(out.status.success(), "{}", text(&out));

    // A disabled rule protects nothing.
    let (status, _, body) = api.put(
        &format!("/projects/team/immutabletagrules/{id}"),
        &rule("v1*", "**", true),
    );
    assert_eq!(status, 200, "{body}");
    let out = push(&berth, &b, "team/app:v1.0");
    assert!(out.status.success(), "{}", text(&out));
    let (status, _, body) = api.delete("/projects/team/repositories/app/artifacts/v1.0/tags/v1.0");
    assert_eq!(status, 200, "{body}");

    let (status, _, body) = api.delete(&format!("/projects/team/immutabletagrules/{id}"));
    assert_eq!(status, 200, "{body}");
    let (_, _, list) = api.get("/projects/team/immutabletagrules");
    assert_eq!(list, json!([]));
}
