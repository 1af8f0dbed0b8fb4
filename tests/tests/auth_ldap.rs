//! berth in LDAP mode against a real OpenLDAP (`slapd`, started by the
//! fixture with users alice, bob and carol; alice is in the admin group):
//! logins with podman and skopeo, pushes and pulls, admins by group, the
//! local `admin`, a directory that is down or never answers, and how many
//! binds a many-layer pull costs.
#![allow(clippy::unwrap_used)]

#[path = "../../auth/tests/support/slapd.rs"]
mod slapd;

use std::time::{Duration, Instant};

use berth_tests::content::random_layer;
use berth_tests::registry::{assert_error, describe, http_client};
use berth_tests::server::POLL;
use berth_tests::tokens::{fetch_token, token_get, BearerClient};
use berth_tests::tools::{
    assert_login_refused, layout_digest, run, skopeo_copy, skopeo_login, text, write_oci_layout,
    Podman,
};
use berth_tests::{Api, Berth, Image, Registry};
use serde_json::Value;
use slapd::{
    SilentServer, Slapd, User, ADMINS_DN, ALICE, BOB, CAROL, DEVELOPERS_DN, PEOPLE_DN, READER_DN,
};

const INVALID: &str = "invalid username or password";

/// berth in LDAP mode against the directory at `url`, groups read from
/// `memberOf`, the fixture's registry-admins group as admins; with the
/// private project `team`, whose Developers are the developers group
/// (alice and bob): pushes go to existing projects only, and only members
/// may use a private one.
fn berth_with_ldap(url: &str, timeout: &str) -> Berth {
    let berth = Berth::start_with_env(&[
        ("BERTH_AUTH__MODE", "ldap"),
        ("BERTH_LDAP__URL", url),
        ("BERTH_LDAP__SEARCH_DN", READER_DN),
        ("BERTH_LDAP__SEARCH_PASSWORD", slapd::READER_PASSWORD),
        ("BERTH_LDAP__BASE_DN", PEOPLE_DN),
        ("BERTH_LDAP__FILTER", "(objectClass=inetOrgPerson)"),
        ("BERTH_LDAP__UID", "uid"),
        ("BERTH_LDAP__SCOPE", "subtree"),
        ("BERTH_LDAP__TIMEOUT", timeout),
        ("BERTH_LDAP__CACHE_TTL", "60s"),
        ("BERTH_LDAP__GROUP_MEMBERSHIP_ATTRIBUTE", "memberOf"),
        ("BERTH_LDAP__GROUP_ADMIN_DN", ADMINS_DN),
    ]);
    let api = Api::admin(&berth);
    api.create_project("team", false);
    api.add_group_member("team", DEVELOPERS_DN, 2);
    berth
}

fn creds(user: User) -> (&'static str, &'static str) {
    (user.uid, user.password)
}

/// Waits until slapd has logged `n` binds as `dn` (its log is written as
/// it goes); returns the count at the deadline otherwise.
fn wait_for_binds(slapd: &Slapd, dn: &str, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let count = slapd.bind_count(dn);
        if count >= n || Instant::now() > deadline {
            return count;
        }
        std::thread::sleep(POLL);
    }
}

#[test]
fn ldap_users_log_in_push_and_pull_with_podman_and_skopeo() {
    let slapd = Slapd::start();
    let berth = berth_with_ldap(&slapd.url(), "5s");
    let host = berth.host_port();

    for user in [ALICE, BOB] {
        let podman = Podman::new(&berth.scratch_dir().join(format!("podman-{}", user.uid)));
        let out = podman.login(&host, user.uid, user.password);
        assert!(
            out.status.success(),
            "podman login {}: {}",
            user.uid,
            text(&out)
        );
        assert!(text(&out).contains("Login Succeeded"), "{}", text(&out));
    }
    let alice_auth = berth.scratch_dir().join("alice-auth.json");
    let bob_auth = berth.scratch_dir().join("bob-auth.json");
    for (user, authfile) in [(ALICE, &alice_auth), (BOB, &bob_auth)] {
        let out = skopeo_login(authfile, &host, user.uid, user.password);
        assert!(
            out.status.success(),
            "skopeo login {}: {}",
            user.uid,
            text(&out)
        );
    }

    // alice pushes, bob pulls; bob pushes, alice pulls.
    for (pusher, puller, repo) in [
        (&alice_auth, &bob_auth, "team/from-alice"),
        (&bob_auth, &alice_auth, "team/from-bob"),
    ] {
        let image = Image::with_layers((0..2).map(|_| random_layer(2, 4096)).collect());
        let layout = berth
            .scratch_dir()
            .join(format!("src-{}", repo.replace('/', "-")));
        let src = write_oci_layout(&layout, &image, "v1");
        let dest = format!("docker://{host}/{repo}:v1");
        let out = skopeo_copy(pusher, &src, &dest);
        assert!(out.status.success(), "push to {repo}: {}", text(&out));
        berth.registry().assert_image(repo, "v1", &image);
        let back = berth
            .scratch_dir()
            .join(format!("back-{}", repo.replace('/', "-")));
        let out = skopeo_copy(puller, &dest, &format!("oci:{}:v1", back.display()));
        assert!(out.status.success(), "pull of {repo}: {}", text(&out));
        assert_eq!(layout_digest(&back, "v1"), image.manifest.digest);
    }

    // Wrong password and unknown user: refused, and said so.
    let refused = |user: &str, password: &str| {
        assert_login_refused(&host, berth.scratch_dir(), user, password, INVALID)
    };
    refused("bob", "not-bobs-password");
    refused("mallory", "mallory-secret");
    let resp = token_get(&berth.url(), Some(("bob", "not-bobs-password")), &[]);
    let body = assert_error(resp, 401, &["UNAUTHORIZED"]);
    assert!(body.to_string().contains(INVALID), "{body}");

    // The local administrator still logs in in LDAP mode.
    let podman = Podman::new(&berth.scratch_dir().join("podman-admin"));
    let out = podman.login(&host, "admin", berth.admin_password());
    assert!(out.status.success(), "podman login admin: {}", text(&out));
    let out = skopeo_login(
        &berth.scratch_dir().join("admin-auth.json"),
        &host,
        "admin",
        berth.admin_password(),
    );
    assert!(out.status.success(), "skopeo login admin: {}", text(&out));
}

#[test]
fn ldap_admin_group_members_get_the_catalog() {
    let slapd = Slapd::start();
    let berth = berth_with_ldap(&slapd.url(), "5s");
    // Public, so that carol (in no group, so no member) may pull too.
    let (status, _, body) = Api::admin(&berth).put(
        "/projects/team",
        &serde_json::json!({"metadata": {"public": "true"}}),
    );
    assert_eq!(status, 200, "make team public: {body}");
    berth
        .registry()
        .push_image("team/app", "1", &Image::random(1));

    let alice = fetch_token(&berth.url(), Some(creds(ALICE)), &["registry:catalog:*"]);
    let resp = BearerClient::new(&berth.url(), &alice).get("/v2/_catalog");
    assert_eq!(
        resp.status(),
        200,
        "alice (admin group): {}",
        describe(resp)
    );
    let body: Value = resp.json().unwrap();
    assert_eq!(body["repositories"], serde_json::json!(["team/app"]));

    for user in [BOB, CAROL] {
        let token = fetch_token(&berth.url(), Some(creds(user)), &["registry:catalog:*"]);
        let access = &berth_tests::jwt::claims(&token)["access"];
        assert_eq!(access, &serde_json::json!([]), "{}'s grant", user.uid);
        let resp = BearerClient::new(&berth.url(), &token).get("/v2/_catalog");
        let status = resp.status().as_u16();
        assert!(
            status == 401 || status == 403,
            "{} on the catalog: {}",
            user.uid,
            describe(resp)
        );
        // Both may still pull (bob as a Developer through his group,
        // carol from the public project).
        let token = fetch_token(
            &berth.url(),
            Some(creds(user)),
            &["repository:team/app:pull,push"],
        );
        let resp = BearerClient::new(&berth.url(), &token).get("/v2/team/app/manifests/1");
        assert_eq!(resp.status(), 200, "{} pulls: {}", user.uid, describe(resp));
    }
    let resp = Registry::with_basic_auth(&berth.url(), ALICE.uid, ALICE.password)
        .http()
        .get(berth.url() + "/v2/_catalog")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "alice with Basic: {}", describe(resp));
}

#[test]
fn directory_down_new_logins_fail_with_503_cached_logins_work() {
    let mut slapd = Slapd::start();
    let berth = berth_with_ldap(&slapd.url(), "5s");
    let v2 = berth.url() + "/v2/";
    let alice = http_client(Some(creds(ALICE)));
    let resp = alice.get(&v2).send().unwrap();
    assert_eq!(resp.status(), 200, "alice before: {}", describe(resp));

    slapd.stop();
    assert!(!slapd.is_running());

    // carol never logged in: the directory is needed, and it is gone.
    for what in ["token", "basic"] {
        let resp = match what {
            "token" => token_get(
                &berth.url(),
                Some(creds(CAROL)),
                &[("scope", "repository:team/app:pull")],
            ),
            _ => http_client(Some(creds(CAROL))).get(&v2).send().unwrap(),
        };
        let body = assert_error(resp, 503, &["UNAVAILABLE"]);
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("unreachable"),
            "carol via {what}: {message}"
        );
        assert!(!message.contains(INVALID), "carol via {what}: {message}");
    }
    // podman shows the status (it prints no body for a failed token
    // request).
    let podman = Podman::new(&berth.scratch_dir().join("podman"));
    let out = podman.login(&berth.host_port(), CAROL.uid, CAROL.password);
    assert!(!out.status.success(), "podman login carol: {}", text(&out));
    assert!(
        text(&out).contains("503"),
        "podman login carol: {}",
        text(&out)
    );
    assert!(!text(&out).contains("invalid username"), "{}", text(&out));

    // alice logged in within cache_ttl: still works, Basic and tokens.
    let resp = alice.get(&v2).send().unwrap();
    assert_eq!(resp.status(), 200, "alice after: {}", describe(resp));
    let token = fetch_token(
        &berth.url(),
        Some(creds(ALICE)),
        &["repository:team/app:pull,push"],
    );
    BearerClient::new(&berth.url(), &token).push_image("team/app", "1", &Image::random(1));
    // But not with another password: that needs the directory.
    let resp = http_client(Some((ALICE.uid, "guessing")))
        .get(&v2)
        .send()
        .unwrap();
    assert_error(resp, 503, &["UNAVAILABLE"]);
    // The local administrator does not need the directory.
    let resp = berth.registry().http().get(&v2).send().unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn directory_that_never_answers_times_out_as_unreachable() {
    let silent = SilentServer::start();
    let berth = berth_with_ldap(&silent.url(), "2s");

    let started = Instant::now();
    let resp = token_get(
        &berth.url(),
        Some(creds(CAROL)),
        &[("scope", "repository:team/app:pull")],
    );
    let took = started.elapsed();
    let body = assert_error(resp, 503, &["UNAVAILABLE"]);
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("unreachable"), "{message}");
    assert!(!message.contains(INVALID), "{message}");
    assert!(
        took >= Duration::from_millis(1900) && took <= Duration::from_secs(6),
        "the login took {took:?}; ldap.timeout is 2s"
    );

    let started = Instant::now();
    let out = run(
        "skopeo",
        &[
            "login",
            "--tls-verify=false",
            "--authfile",
            berth.scratch_dir().join("auth.json").to_str().unwrap(),
            "--username",
            BOB.uid,
            "--password-stdin",
            &berth.host_port(),
        ],
        &[],
        Some(BOB.password),
    );
    let took = started.elapsed();
    assert!(!out.status.success(), "skopeo login: {}", text(&out));
    assert!(text(&out).contains("503"), "skopeo login: {}", text(&out));
    assert!(!text(&out).contains("invalid username"), "{}", text(&out));
    assert!(
        took <= Duration::from_secs(15),
        "skopeo login took {took:?}"
    );
    // The local administrator does not wait for the directory.
    let started = Instant::now();
    let resp = berth
        .registry()
        .http()
        .get(berth.url() + "/v2/")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() < Duration::from_millis(1500));
}

#[test]
fn a_pull_of_many_layers_costs_one_bind() {
    let slapd = Slapd::start();
    let berth = berth_with_ldap(&slapd.url(), "5s");
    let image = Image::with_layers((0..12).map(|_| random_layer(1, 2048)).collect());
    // The local admin pushes: no directory involved.
    berth.registry().push_image("team/many", "v1", &image);
    assert_eq!(slapd.bind_count(BOB.dn), 0, "no bind as bob yet");

    let dest = berth.scratch_dir().join("pulled");
    let out = run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            &format!("{}:{}", BOB.uid, BOB.password),
            &format!("docker://{}/team/many:v1", berth.host_port()),
            &format!("dir:{}", dest.display()),
        ],
        &[],
        None,
    );
    assert!(out.status.success(), "skopeo copy: {}", text(&out));
    for layer in &image.layers {
        let hex = layer.blob.digest.strip_prefix("sha256:").unwrap();
        let data = std::fs::read(dest.join(hex)).unwrap();
        assert!(
            data == layer.blob.data,
            "layer {} pulled",
            layer.blob.digest
        );
    }
    assert_eq!(
        wait_for_binds(&slapd, BOB.dn, 1),
        1,
        "binds as bob after skopeo"
    );

    // HTTP Basic on every request (manifest and each of 13 blobs): the
    // login cache still answers.
    let bob = Registry::with_basic_auth(&berth.url(), BOB.uid, BOB.password);
    bob.assert_image("team/many", "v1", &image);
    assert_eq!(
        slapd.bind_count(BOB.dn),
        1,
        "binds as bob after Basic pulls"
    );
}
