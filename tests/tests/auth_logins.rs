//! Logins of database users (made with `berth user ...`) through the
//! clients people use: podman, skopeo, docker and curl; wrong, unknown and
//! disabled users; the rate limit on failed attempts.
#![allow(clippy::unwrap_used)]

use std::ffi::OsStr;
use std::path::Path;

use berth_tests::content::{random_layer, random_suffix, sha256_digest};
use berth_tests::registry::{assert_error, describe, http_client};
use berth_tests::tokens::{token_get, Challenge};
use berth_tests::tools::{
    assert_login_refused, layout_digest, rootfs_tarball, run, run_failing, run_ok, skopeo_copy,
    skopeo_login, text, write_oci_layout, Podman,
};
use berth_tests::users::{add_user, disable_user};
use berth_tests::{Api, Berth, Image, Registry};
use serde_json::Value;

/// What berth answers for a wrong password or an unknown user.
const INVALID: &str = "invalid username or password";

/// berth with the private project `team` these tests push to: pushes to a
/// missing project are refused.
fn start() -> Berth {
    let berth = Berth::start();
    Api::admin(&berth).create_projects(&["team"]);
    berth
}

/// The hosts an auth file holds logins for.
fn logged_in_hosts(authfile: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(authfile) else {
        return Vec::new();
    };
    let json: Value = serde_json::from_str(&text).unwrap();
    json["auths"]
        .as_object()
        .map(|auths| auths.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn podman_and_skopeo_log_in_then_push_and_pull_as_a_database_user() {
    let berth = start();
    let host = berth.host_port();
    add_user(&berth, "henry", "henry-password", false);
    // A Developer of `team`, to push and pull there.
    Api::admin(&berth).add_member("team", "henry", 2);

    let podman = Podman::new(&berth.scratch_dir().join("podman"));
    let out = podman.login(&host, "henry", "henry-password");
    assert!(out.status.success(), "podman login: {}", text(&out));
    assert!(text(&out).contains("Login Succeeded"), "{}", text(&out));
    assert_eq!(logged_in_hosts(&podman.authfile), vec![host.clone()]);

    let authfile = berth.scratch_dir().join("skopeo-auth.json");
    let out = skopeo_login(&authfile, &host, "henry", "henry-password");
    assert!(out.status.success(), "skopeo login: {}", text(&out));
    assert_eq!(logged_in_hosts(&authfile), vec![host.clone()]);

    // Push with skopeo's login, read back with the admin, pull with both.
    let image = Image::with_layers((0..3).map(|i| random_layer(2, 5_000 * (i + 1))).collect());
    let src = write_oci_layout(&berth.scratch_dir().join("src"), &image, "v1");
    let reference = format!("{host}/team/henry:v1");
    let out = skopeo_copy(&authfile, &src, &format!("docker://{reference}"));
    assert!(out.status.success(), "skopeo push: {}", text(&out));
    berth.registry().assert_image("team/henry", "v1", &image);

    let back = berth.scratch_dir().join("back");
    let out = skopeo_copy(
        &authfile,
        &format!("docker://{reference}"),
        &format!("oci:{}:v1", back.display()),
    );
    assert!(out.status.success(), "skopeo pull: {}", text(&out));
    assert_eq!(layout_digest(&back, "v1"), image.manifest.digest);

    let out = podman.run(&["pull", "--tls-verify=false", &reference], None);
    assert!(out.status.success(), "podman pull: {}", text(&out));
    let out = podman.run(
        &["image", "inspect", "--format", "{{.Digest}}", &reference],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        image.manifest.digest,
        "digest of the pulled image: {}",
        text(&out)
    );
    // And a push of what podman pulled, under another tag.
    let other = format!("{host}/team/henry:v2");
    podman.run(&["tag", &reference, &other], None);
    let out = podman.run(&["push", "--tls-verify=false", &other], None);
    assert!(out.status.success(), "podman push: {}", text(&out));
    let mut tags = berth.registry().tags("team/henry");
    tags.sort();
    assert_eq!(tags, vec!["v1", "v2"]);

    // Without the login, the same pull is refused.
    let out = skopeo_copy(
        &berth.scratch_dir().join("no-auth.json"),
        &format!("docker://{host}/team/henry:v1"),
        &format!("oci:{}:v1", berth.scratch_dir().join("anon").display()),
    );
    assert!(
        !out.status.success(),
        "anonymous pull of a private repo succeeded"
    );
    podman.run(&["rmi", "--all", "--force"], None);
}

#[test]
fn wrong_unknown_and_disabled_users_cannot_log_in() {
    let berth = start();
    add_user(&berth, "iris", "iris-password", false);
    add_user(&berth, "jack", "jack-password", false);
    disable_user(&berth, "jack");

    let refused = |user: &str, password: &str, message: &str| {
        assert_login_refused(
            &berth.host_port(),
            berth.scratch_dir(),
            user,
            password,
            message,
        )
    };
    refused("iris", "not-her-password", INVALID);
    refused("nobody", "nobody-password", INVALID);
    refused("jack", "jack-password", "account `jack` is disabled");
    // A disabled user with a wrong password learns nothing more.
    refused("jack", "wrong-password", INVALID);

    // The token service says the same to any client.
    let scope = [("scope", "repository:team/app:pull")];
    for (user, password, message) in [
        ("iris", "not-her-password", INVALID),
        ("nobody", "nobody-password", INVALID),
        ("jack", "jack-password", "disabled"),
    ] {
        let resp = token_get(&berth.url(), Some((user, password)), &scope);
        let body = assert_error(resp, 401, &["UNAUTHORIZED"]);
        assert!(body.to_string().contains(message), "{user}: {body}");
    }

    // The right password still works after all that.
    let podman = Podman::new(&berth.scratch_dir().join("podman"));
    let out = podman.login(&berth.host_port(), "iris", "iris-password");
    assert!(out.status.success(), "podman login: {}", text(&out));
    let authfile = berth.scratch_dir().join("skopeo-auth.json");
    let out = skopeo_login(&authfile, &berth.host_port(), "iris", "iris-password");
    assert!(out.status.success(), "skopeo login: {}", text(&out));
}

#[test]
fn http_basic_on_v2_works_for_curl() {
    let berth = start();
    add_user(&berth, "kate", "kate-password", false);
    // A Developer of `team`, to push and pull there.
    Api::admin(&berth).add_member("team", "kate", 2);
    let image = Image::random(1);
    berth.registry().push_image("team/app", "1", &image);

    let kate = Registry::with_basic_auth(&berth.url(), "kate", "kate-password");
    let resp = kate.curl(&[&format!("{}/v2/", berth.url())]);
    assert_eq!(resp.status, 200);
    let resp = kate.curl(&[
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &format!("{}/v2/team/app/manifests/1", berth.url()),
    ]);
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(sha256_digest(&resp.body), image.manifest.digest);
    let resp = kate.curl(&[&format!(
        "{}/v2/team/app/blobs/{}",
        berth.url(),
        image.config.digest
    )]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, image.config.data);
    // Pushes with Basic work too (the reqwest client sends Basic).
    kate.push_image("team/kate", "1", &Image::random(1));

    let wrong = Registry::with_basic_auth(&berth.url(), "kate", "wrong-password");
    let resp = wrong.curl(&[&format!("{}/v2/team/app/manifests/1", berth.url())]);
    assert_eq!(resp.status, 401);
    let body = String::from_utf8_lossy(&resp.body);
    assert!(body.contains(INVALID), "{body}");
    assert!(resp.header("www-authenticate").is_some());
}

#[test]
fn failed_logins_are_rate_limited_per_user() {
    let berth = start();
    add_user(&berth, "liam", "liam-password", false);
    add_user(&berth, "mona", "mona-password", false);
    let scope = [("scope", "repository:team/app:pull")];
    for attempt in 1..=10 {
        let resp = token_get(&berth.url(), Some(("liam", "wrong-password")), &scope);
        let body = assert_error(resp, 401, &["UNAUTHORIZED"]);
        assert!(
            body.to_string().contains(INVALID),
            "attempt {attempt}: {body}"
        );
    }
    let resp = token_get(&berth.url(), Some(("liam", "wrong-password")), &scope);
    let body = assert_error(resp, 429, &["TOOMANYREQUESTS"]);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too many failed logins"),
        "{body}"
    );
    // Basic on /v2 goes through the same limit.
    let resp = http_client(Some(("liam", "another-wrong-one")))
        .get(berth.url() + "/v2/")
        .send()
        .unwrap();
    assert_error(resp, 429, &["TOOMANYREQUESTS"]);
    // Another user from the same address is not affected.
    let resp = token_get(&berth.url(), Some(("mona", "mona-password")), &scope);
    assert_eq!(resp.status(), 200, "{}", describe(resp));
    let resp = token_get(&berth.url(), Some(("mona", "wrong-password")), &scope);
    assert_error(resp, 401, &["UNAUTHORIZED"]);
}

#[test]
fn docker_logs_in_pushes_and_pulls_as_a_database_user() {
    if let Some(why) = berth_tests::tools::docker_unavailable() {
        println!("skipping docker test: {why}");
        return;
    }
    let berth = start();
    let host = berth.host_port();
    add_user(&berth, "nora", "nora-password", false);
    // A Developer of `team`, to push and pull there.
    Api::admin(&berth).add_member("team", "nora", 2);
    let config = berth.scratch_dir().join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    let env: [(&str, &OsStr); 1] = [("DOCKER_CONFIG", config.as_os_str())];
    let login = |password: &str| {
        run(
            "docker",
            &["login", "--username", "nora", "--password-stdin", &host],
            &env,
            Some(password),
        )
    };

    let message = {
        let out = login("wrong-password");
        assert!(!out.status.success(), "docker login with a wrong password");
        text(&out)
    };
    assert!(message.contains(INVALID), "docker login: {message}");
    let out = login("nora-password");
    assert!(out.status.success(), "docker login: {}", text(&out));
    // docker keeps the refresh token berth issued (and not the password),
    // so the pushes and pulls below use the OAuth2 refresh grant.
    let saved: Value =
        serde_json::from_slice(&std::fs::read(config.join("config.json")).unwrap()).unwrap();
    let identity = saved["auths"][&host]["identitytoken"].as_str();
    assert!(
        identity.is_some_and(|t| t.split('.').count() == 3),
        "docker config after login: {saved}"
    );

    let repo = format!("team/nora{}", random_suffix());
    let reference = format!("{host}/{repo}:1");
    let _cleanup = berth_tests::tools::DockerImages(vec![reference.clone()]);
    let tarball = rootfs_tarball(berth.scratch_dir());
    run_ok(
        "docker",
        &["import", tarball.to_str().unwrap(), &reference],
        &env,
        None,
    );
    let inspect = |what: &str| {
        let out = run_ok(
            "docker",
            &["image", "inspect", "-f", what, &reference],
            &env,
            None,
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let id = inspect("{{.Id}}");
    let push = text(&run_ok("docker", &["push", &reference], &env, None));
    let pushed = berth_tests::tools::pushed_digest(&push);
    let resp = berth.registry().get_manifest(&repo, "1");
    assert_eq!(resp.status(), 200);
    assert_eq!(sha256_digest(&resp.bytes().unwrap()), pushed);

    run_ok("docker", &["rmi", &reference], &env, None);
    run_failing("docker", &["image", "inspect", &reference], &env, None);
    run_ok("docker", &["pull", &reference], &env, None);
    assert_eq!(inspect("{{.Id}}"), id, "image id after pull");

    // Logged out, the pull of the private repository is refused.
    run_ok("docker", &["logout", &host], &env, None);
    run_ok("docker", &["rmi", &reference], &env, None);
    let message = run_failing("docker", &["pull", &reference], &env, None);
    assert!(
        message.contains("denied")
            || message.contains("unauthorized")
            || message.contains("authentication required"),
        "anonymous docker pull: {message}"
    );
    let c = {
        let resp = http_client(None)
            .get(format!("{}/v2/{repo}/manifests/1", berth.url()))
            .send()
            .unwrap();
        Challenge::of(&resp)
    };
    assert_eq!(
        c.get("scope"),
        Some(format!("repository:{repo}:pull").as_str())
    );
}
