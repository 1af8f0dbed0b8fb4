//! The Docker token flow against the real server: 401 challenges on /v2,
//! `GET` and `POST /service/token`, what tokens grant, the JWKS, and
//! tokens that must be refused (forged, expired, tampered, `alg: none`).
#![allow(clippy::unwrap_used)]

use berth_tests::jwt::{self, b64url};
use berth_tests::registry::{assert_error, assert_error_body, describe};
use berth_tests::tokens::{
    bearer, fetch_token, parse_rfc3339, plain_client, token_body, token_get, token_post,
    BearerClient, Challenge,
};
use berth_tests::users::{add_user, disable_user, enable_user};
use berth_tests::{Api, Berth, Image, Registry};
use reqwest::blocking::Response;
use serde_json::{json, Value};

const ISSUER: &str = "berth-token-service";
const SERVICE: &str = "berth";

/// berth with the private project `team` these tests use: pushes to a
/// missing project are refused.
fn start() -> Berth {
    let berth = Berth::start();
    Api::admin(&berth).create_projects(&["team"]);
    berth
}

/// Asserts a 401 with an OCI UNAUTHORIZED body and a Bearer challenge
/// naming this server's realm and service; returns the challenge.
fn assert_challenge(berth: &Berth, resp: Response) -> Challenge {
    let challenge = Challenge::of(&resp);
    let what = format!("{} {}", resp.status(), resp.url());
    assert_error(resp, 401, &["UNAUTHORIZED"]);
    assert!(
        challenge.scheme.eq_ignore_ascii_case("bearer"),
        "{what}: challenge scheme {challenge:?}"
    );
    assert_eq!(
        challenge.get("realm"),
        Some(format!("{}/service/token", berth.url()).as_str()),
        "{what}: realm"
    );
    assert_eq!(challenge.get("service"), Some(SERVICE), "{what}: service");
    challenge
}

/// The `access` claim of a token, as (type, name, sorted actions).
fn access(token: &str) -> Vec<(String, String, Vec<String>)> {
    let claims = jwt::claims(token);
    let mut out: Vec<(String, String, Vec<String>)> = claims["access"]
        .as_array()
        .unwrap_or_else(|| panic!("no access array in {claims}"))
        .iter()
        .map(|entry| {
            let mut actions: Vec<String> = entry["actions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            actions.sort();
            (
                entry["type"].as_str().unwrap().to_string(),
                entry["name"].as_str().unwrap().to_string(),
                actions,
            )
        })
        .collect();
    out.sort();
    out
}

fn repo_access(name: &str, actions: &[&str]) -> (String, String, Vec<String>) {
    (
        "repository".to_string(),
        name.to_string(),
        actions.iter().map(|a| a.to_string()).collect(),
    )
}

#[test]
fn v2_challenges_name_realm_service_and_scope() {
    let berth = start();
    let http = plain_client();

    let c = assert_challenge(&berth, http.get(berth.url() + "/v2/").send().unwrap());
    assert_eq!(c.get("scope"), None, "GET /v2/ implies no scope: {c:?}");

    let resp = http
        .get(berth.url() + "/v2/team/app/manifests/latest")
        .send()
        .unwrap();
    let c = assert_challenge(&berth, resp);
    assert_eq!(c.get("scope"), Some("repository:team/app:pull"), "{c:?}");
    assert_eq!(c.get("error"), None, "{c:?}");

    // HEAD too (docker checks manifests with HEAD): no body, same header.
    let resp = http
        .head(berth.url() + "/v2/team/app/manifests/latest")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    let c = Challenge::of(&resp);
    assert_eq!(c.get("scope"), Some("repository:team/app:pull"), "{c:?}");
    assert_eq!(c.get("service"), Some(SERVICE), "{c:?}");

    let resp = http
        .post(berth.url() + "/v2/team/app/blobs/uploads/")
        .send()
        .unwrap();
    let c = assert_challenge(&berth, resp);
    assert_eq!(
        c.get("scope"),
        Some("repository:team/app:pull,push"),
        "{c:?}"
    );

    let resp = http
        .put(berth.url() + "/v2/team/app/manifests/v1")
        .header("content-type", berth_tests::content::OCI_MANIFEST)
        .body("{}")
        .send()
        .unwrap();
    let c = assert_challenge(&berth, resp);
    assert_eq!(
        c.get("scope"),
        Some("repository:team/app:pull,push"),
        "{c:?}"
    );

    // Wrong Basic credentials on /v2 are a 401 with a challenge too.
    let resp = berth_tests::registry::http_client(Some(("admin", "wrong-password")))
        .get(berth.url() + "/v2/")
        .send()
        .unwrap();
    assert_challenge(&berth, resp);
}

/// A mount sent with a token for the target only (clients that reuse
/// their push token, as the OCI conformance suite does) is challenged for
/// a token that covers the source too, one scope parameter or two; with
/// it the blob is mounted. A source the caller may not read is not
/// challenged for: the client uploads, as if it were not there.
#[test]
fn a_mount_with_a_token_for_the_target_only_asks_for_the_source_too() {
    let berth = start();
    Api::admin(&berth).create_projects(&["secret"]);
    let registry = berth.registry();
    let blob = berth_tests::content::random_layer(1, 4096).blob;
    registry.push_blob("team/source", &blob);
    registry.push_blob("secret/source", &blob);
    let admin = berth.admin_credentials();
    let mount = |token: &str, from: &str| {
        plain_client()
            .post(format!(
                "{}/v2/team/target/blobs/uploads/?mount={}&from={from}",
                berth.url(),
                blob.digest
            ))
            .header("authorization", bearer(token))
            .send()
            .unwrap()
    };

    let push_only = fetch_token(
        &berth.url(),
        Some(admin),
        &["repository:team/target:pull,push"],
    );
    let c = assert_challenge(&berth, mount(&push_only, "team/source"));
    assert_eq!(c.get("error"), Some("insufficient_scope"), "{c:?}");
    let scope = c.get("scope").unwrap().to_owned();
    assert_eq!(
        scope,
        "repository:team/target:pull,push repository:team/source:pull"
    );
    // The challenge's scope sent back as it came, in one parameter.
    let both = fetch_token(&berth.url(), Some(admin), &[scope.as_str()]);
    let resp = mount(&both, "team/source");
    assert_eq!(resp.status(), 201, "{}", describe(resp));
    assert_eq!(
        registry.head_blob("team/target", &blob.digest).status(),
        200
    );

    // alice may push to team but not read `secret`: she uploads.
    berth_tests::users::add_user(&berth, "alice", "Alice-pw-12345", false);
    Api::admin(&berth).add_member("team", "alice", 2);
    let alice = fetch_token(
        &berth.url(),
        Some(("alice", "Alice-pw-12345")),
        &["repository:team/target:pull,push"],
    );
    let resp = mount(&alice, "secret/source");
    assert_eq!(resp.status(), 202, "{}", describe(resp));
}

#[test]
fn token_get_with_basic_grants_the_scopes_asked_for() {
    let berth = start();
    add_user(&berth, "dave", "dave-password-1", false);
    // A Maintainer may pull, push and delete: every scope asked for below.
    Api::admin(&berth).add_member("team", "dave", 4);
    let resp = token_get(
        &berth.url(),
        Some(("dave", "dave-password-1")),
        &[
            ("service", SERVICE),
            ("account", "dave"),
            ("client_id", "berth-tests"),
            ("scope", "repository:team/app:pull,push"),
            ("scope", "repository:team/other:pull"),
            ("offline_token", "true"),
        ],
    );
    let body = token_body(resp);
    let token = body["token"].as_str().unwrap();
    assert_eq!(body["access_token"], body["token"], "access_token == token");
    let expires_in = body["expires_in"].as_i64().unwrap();
    assert!(expires_in >= 60, "expires_in {expires_in}");
    let issued = body["issued_at"].as_str().unwrap();
    let issued_at =
        parse_rfc3339(issued).unwrap_or_else(|| panic!("issued_at {issued:?} is not RFC 3339"));
    assert!(
        (issued_at - jwt::now()).abs() < 120,
        "issued_at {issued} is not now"
    );
    let refresh = body["refresh_token"].as_str().unwrap();
    assert!(!refresh.is_empty());

    let (header, claims) = jwt::decode(token);
    assert_eq!(header["alg"], "ES256");
    assert!(header["kid"].as_str().is_some_and(|k| !k.is_empty()));
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], SERVICE);
    assert_eq!(claims["sub"], "dave");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let (iat, nbf, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["nbf"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!(nbf <= iat + 1 && exp - iat == expires_in, "{claims}");
    assert_eq!(
        access(token),
        vec![
            repo_access("team/app", &["pull", "push"]),
            repo_access("team/other", &["pull"]),
        ]
    );

    // The token works for what it grants...
    let client = BearerClient::new(&berth.url(), token);
    let image = Image::random(2);
    client.push_image("team/app", "v1", &image);
    let resp = client.get("/v2/team/app/manifests/v1");
    assert_eq!(resp.status(), 200, "{}", describe(resp));
    berth.registry().assert_image("team/app", "v1", &image);
    let resp = client.get("/v2/team/other/manifests/v1");
    assert_eq!(resp.status(), 404, "pull is granted on team/other");

    // ...and nothing else: insufficient_scope, naming what is missing.
    let c = assert_challenge(&berth, client.start_upload("team/other"));
    assert_eq!(c.get("error"), Some("insufficient_scope"), "{c:?}");
    assert_eq!(
        c.get("scope"),
        Some("repository:team/other:pull,push"),
        "{c:?}"
    );
    let c = assert_challenge(&berth, client.get("/v2/team/third/tags/list"));
    assert_eq!(c.get("error"), Some("insufficient_scope"), "{c:?}");
    assert_eq!(c.get("scope"), Some("repository:team/third:pull"), "{c:?}");
    let resp = client
        .http()
        .delete(client.url(&format!("/v2/team/app/manifests/{}", image.manifest.digest)))
        .send()
        .unwrap();
    let c = assert_challenge(&berth, resp);
    assert_eq!(c.get("error"), Some("insufficient_scope"), "{c:?}");

    // The refresh token from the GET serves the OAuth2 refresh grant, as
    // the docker CLI uses it after `docker login`.
    let body = token_body(token_post(
        &berth.url(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("service", SERVICE),
            ("client_id", "docker"),
            ("scope", "repository:team/app:pull"),
        ],
    ));
    let refreshed = body["access_token"].as_str().unwrap();
    assert_eq!(jwt::claims(refreshed)["sub"], "dave");
    assert_eq!(access(refreshed), vec![repo_access("team/app", &["pull"])]);

    // A scope with several actions in one parameter, space-separated
    // scopes in one parameter, and no refresh token unless asked.
    let body = token_body(token_get(
        &berth.url(),
        Some(("dave", "dave-password-1")),
        &[("scope", "repository:team/a:pull repository:team/b:delete")],
    ));
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(
        access(body["token"].as_str().unwrap()),
        vec![
            repo_access("team/a", &["pull"]),
            repo_access("team/b", &["delete"])
        ]
    );

    // Wrong password at the token endpoint: 401 with the message.
    let resp = token_get(
        &berth.url(),
        Some(("dave", "not-the-password")),
        &[("scope", "repository:team/app:pull")],
    );
    let body = assert_error(resp, 401, &["UNAUTHORIZED"]);
    assert!(
        body.to_string().contains("invalid username or password"),
        "{body}"
    );
}

#[test]
fn anonymous_tokens_grant_pull_on_public_projects_only() {
    let berth = start();
    let body = token_body(token_get(
        &berth.url(),
        None,
        &[
            ("service", SERVICE),
            ("scope", "repository:library/x:pull,push"),
            ("scope", "repository:team/app:pull"),
            ("scope", "registry:catalog:*"),
            ("offline_token", "true"),
        ],
    ));
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token for anonymous: {body}"
    );
    let token = body["token"].as_str().unwrap();
    assert_eq!(access(token), vec![repo_access("library/x", &["pull"])]);
    assert_eq!(jwt::claims(token)["sub"], "");

    let client = BearerClient::new(&berth.url(), token);
    let c = assert_challenge(&berth, client.start_upload("library/x"));
    assert_eq!(c.get("error"), Some("insufficient_scope"), "{c:?}");
    assert_eq!(c.get("scope"), Some("repository:library/x:pull,push"));
    let resp = client.get("/v2/library/x/manifests/latest");
    assert_eq!(resp.status(), 404, "pull is granted: {}", describe(resp));

    // Without any token, a push to the public project is challenged.
    let resp = plain_client()
        .post(berth.url() + "/v2/library/x/blobs/uploads/")
        .send()
        .unwrap();
    let c = assert_challenge(&berth, resp);
    assert_eq!(c.get("scope"), Some("repository:library/x:pull,push"));
    assert_eq!(c.get("error"), None);
}

#[test]
fn anonymous_pulls_public_images_without_a_token() {
    let berth = start();
    let admin = berth.registry();
    let public = Image::random(2);
    let private = Image::random(1);
    admin.push_image("library/pub", "1", &public);
    admin.push_image("team/priv", "1", &private);

    let anonymous = Registry::new(&berth.url());
    anonymous.assert_image("library/pub", "1", &public);
    assert_eq!(anonymous.tags("library/pub"), vec!["1"]);

    let c = assert_challenge(&berth, anonymous.get_manifest("team/priv", "1"));
    assert_eq!(c.get("scope"), Some("repository:team/priv:pull"));
    let c = assert_challenge(
        &berth,
        anonymous.get_blob("team/priv", &private.config.digest),
    );
    assert_eq!(c.get("scope"), Some("repository:team/priv:pull"));
    // Blobs of the public image are not readable through the private repo.
    let resp = anonymous.get_blob("team/priv", &public.config.digest);
    assert_eq!(resp.status(), 401);
}

#[test]
fn only_administrators_get_the_catalog() {
    let berth = start();
    berth
        .registry()
        .push_image("team/app", "1", &Image::random(1));
    add_user(&berth, "frank", "frank-password", false);
    add_user(&berth, "grace", "grace-password", true);

    for (user, password) in [berth.admin_credentials(), ("grace", "grace-password")] {
        let token = fetch_token(
            &berth.url(),
            Some((user, password)),
            &["registry:catalog:*"],
        );
        assert_eq!(
            access(&token),
            vec![(
                "registry".to_string(),
                "catalog".to_string(),
                vec!["*".to_string()]
            )],
            "{user}"
        );
        let resp = BearerClient::new(&berth.url(), &token).get("/v2/_catalog");
        assert_eq!(resp.status(), 200, "{user}: {}", describe(resp));
        let body: Value = resp.json().unwrap();
        assert_eq!(body["repositories"], json!(["team/app"]), "{user}");
    }

    let token = fetch_token(
        &berth.url(),
        Some(("frank", "frank-password")),
        &["registry:catalog:*"],
    );
    assert_eq!(access(&token), vec![], "frank's catalog grant");
    let resp = BearerClient::new(&berth.url(), &token).get("/v2/_catalog");
    let status = resp.status().as_u16();
    assert!(
        status == 401 || status == 403,
        "non-admin token on the catalog: {}",
        describe(resp)
    );
    let resp = Registry::with_basic_auth(&berth.url(), "frank", "frank-password")
        .http()
        .get(berth.url() + "/v2/_catalog")
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    assert!(
        status == 401 || status == 403,
        "non-admin Basic on the catalog: {}",
        describe(resp)
    );
    let resp = plain_client()
        .get(berth.url() + "/v2/_catalog")
        .send()
        .unwrap();
    let c = assert_challenge(&berth, resp);
    assert_eq!(c.get("scope"), Some("registry:catalog:*"));
}

#[test]
fn oauth2_password_and_refresh_token_grants() {
    let berth = start();
    add_user(&berth, "erin", "erin-password", false);
    // A Developer, to pull and push.
    Api::admin(&berth).add_member("team", "erin", 2);
    let base = berth.url();
    let body = token_body(token_post(
        &base,
        &[
            ("grant_type", "password"),
            ("username", "erin"),
            ("password", "erin-password"),
            ("service", SERVICE),
            ("client_id", "docker"),
            ("access_type", "offline"),
            ("scope", "repository:team/app:pull repository:team/app:push"),
        ],
    ));
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    let token = body["access_token"].as_str().unwrap();
    assert!(body["expires_in"].as_i64().unwrap() >= 60);
    assert!(parse_rfc3339(body["issued_at"].as_str().unwrap()).is_some());
    assert_eq!(
        access(token),
        vec![repo_access("team/app", &["pull", "push"])]
    );
    let image = Image::random(1);
    BearerClient::new(&base, token).push_image("team/app", "v1", &image);

    // Without access_type=offline: no refresh token.
    let body = token_body(token_post(
        &base,
        &[
            ("grant_type", "password"),
            ("username", "erin"),
            ("password", "erin-password"),
            ("service", SERVICE),
            ("client_id", "docker"),
        ],
    ));
    assert!(body.get("refresh_token").is_none(), "{body}");

    // The refresh grant, as the docker CLI does on every later request.
    let refreshed = |scope: &str| {
        token_post(
            &base,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("service", SERVICE),
                ("client_id", "docker"),
                ("scope", scope),
            ],
        )
    };
    let body = token_body(refreshed("repository:team/app:pull"));
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(access(token), vec![repo_access("team/app", &["pull"])]);
    assert_eq!(jwt::claims(token)["sub"], "erin");
    let resp = BearerClient::new(&base, token).get("/v2/team/app/manifests/v1");
    assert_eq!(resp.status(), 200, "{}", describe(resp));

    // A refresh token is not an access token.
    let resp = BearerClient::new(&base, &refresh).get("/v2/team/app/manifests/v1");
    assert_challenge(&berth, resp);
    // An access token is not a refresh token.
    let resp = token_post(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("service", SERVICE),
            ("scope", "repository:team/app:pull"),
        ],
    );
    assert_error(resp, 401, &["UNAUTHORIZED"]);
    // Wrong password with the password grant.
    let resp = token_post(
        &base,
        &[
            ("grant_type", "password"),
            ("username", "erin"),
            ("password", "wrong-password"),
            ("service", SERVICE),
        ],
    );
    let body = assert_error(resp, 401, &["UNAUTHORIZED"]);
    assert!(body.to_string().contains("invalid username or password"));
    // An unknown grant type.
    let resp = token_post(&base, &[("grant_type", "client_credentials")]);
    assert_eq!(resp.status(), 400, "{}", describe(resp));

    // Disabled after the login: the refresh token stops working.
    disable_user(&berth, "erin");
    let body = assert_error(
        refreshed("repository:team/app:pull"),
        401,
        &["UNAUTHORIZED"],
    );
    assert!(body.to_string().contains("disabled"), "{body}");
    enable_user(&berth, "erin");
    token_body(refreshed("repository:team/app:pull"));
}

#[test]
fn jwks_publishes_the_key_that_signs_tokens() {
    let berth = start();
    let resp = plain_client()
        .get(berth.url() + "/service/jwks")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let jwks: Value = resp.json().unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    let jwk = &keys[0];
    let public = jwt::jwk_key(jwk);
    assert_eq!(
        jwk["kid"].as_str().unwrap(),
        jwt::thumbprint(jwk),
        "kid is the RFC 7638 thumbprint"
    );
    assert!(
        jwk.get("d").is_none(),
        "the JWKS must not contain the private key"
    );

    let token = fetch_token(
        &berth.url(),
        Some(berth.admin_credentials()),
        &["repository:team/app:pull"],
    );
    let (header, _) = jwt::decode(&token);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], jwk["kid"], "token kid vs JWKS kid");
    assert!(
        jwt::verifies(&token, &public),
        "token verifies with the JWKS key"
    );
    assert!(
        !jwt::verifies(&token, jwt::random_key().verifying_key()),
        "and not with another key"
    );
    // The key file holds the same key, readable by its owner only.
    let key = jwt::server_key(berth.data_dir());
    assert_eq!(*key.verifying_key(), public);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(berth.data_dir().join(jwt::KEY_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "key file mode");
}

#[test]
fn forged_and_altered_tokens_are_refused() {
    let berth = start();
    let image = Image::random(1);
    berth.registry().push_image("team/app", "v1", &image);
    let path = "/v2/team/app/manifests/v1";
    let server_key = jwt::server_key(berth.data_dir());
    let real = fetch_token(
        &berth.url(),
        Some(berth.admin_credentials()),
        &["repository:team/app:pull"],
    );
    let (header, _) = jwt::decode(&real);
    let now = jwt::now();
    let claims = |iss: &str, aud: &str, nbf: i64, exp: i64| {
        json!({
            "iss": iss, "sub": "admin", "aud": aud, "exp": exp, "nbf": nbf, "iat": nbf,
            "jti": format!("forged-{nbf}-{exp}-{iss}-{aud}"),
            "access": [{"type": "repository", "name": "team/app", "actions": ["pull"]}],
        })
    };

    // Baseline: the server's key and valid claims make a token that works,
    // so each refusal below is down to the one thing changed.
    let good = jwt::sign(
        &server_key,
        &header,
        &claims(ISSUER, SERVICE, now, now + 300),
    );
    let resp = BearerClient::new(&berth.url(), &good).get(path);
    assert_eq!(resp.status(), 200, "well-formed token: {}", describe(resp));
    let resp = BearerClient::new(&berth.url(), &real).get(path);
    assert_eq!(resp.status(), 200, "issued token: {}", describe(resp));

    let tampered = {
        let parts: Vec<&str> = real.split('.').collect();
        let mut c = jwt::claims(&real);
        c["access"][0]["actions"] = json!(["pull", "push", "delete"]);
        format!(
            "{}.{}.{}",
            parts[0],
            b64url(c.to_string().as_bytes()),
            parts[2]
        )
    };
    let alg_none = {
        let mut h = header.clone();
        h["alg"] = json!("none");
        let c = claims(ISSUER, SERVICE, now, now + 300);
        format!(
            "{}.{}.",
            b64url(h.to_string().as_bytes()),
            b64url(c.to_string().as_bytes())
        )
    };
    let hs256 = {
        // Algorithm confusion: HMAC keyed with the public key's text.
        let mut h = header.clone();
        h["alg"] = json!("HS256");
        let c = claims(ISSUER, SERVICE, now, now + 300);
        let signed = format!(
            "{}.{}",
            b64url(h.to_string().as_bytes()),
            b64url(c.to_string().as_bytes())
        );
        format!("{signed}.{}", b64url(&[0u8; 32]))
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            jwt::sign(
                &server_key,
                &header,
                &claims(ISSUER, SERVICE, now - 900, now - 600),
            ),
        ),
        (
            "not yet valid",
            jwt::sign(
                &server_key,
                &header,
                &claims(ISSUER, SERVICE, now + 600, now + 900),
            ),
        ),
        (
            "wrong audience",
            jwt::sign(
                &server_key,
                &header,
                &claims(ISSUER, "other-registry", now, now + 300),
            ),
        ),
        (
            "wrong issuer",
            jwt::sign(
                &server_key,
                &header,
                &claims("evil-issuer", SERVICE, now, now + 300),
            ),
        ),
        (
            "signed by another key",
            jwt::sign(
                &jwt::random_key(),
                &header,
                &claims(ISSUER, SERVICE, now, now + 300),
            ),
        ),
        ("tampered payload", tampered),
        ("alg none", alg_none),
        ("alg HS256", hs256),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (name, token) in &cases {
        let resp = plain_client()
            .get(berth.url() + path)
            .header("authorization", bearer(token))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 401, "{name}: {}", describe(resp));
        let c = Challenge::of(&resp);
        assert_eq!(
            c.get("realm"),
            Some(format!("{}/service/token", berth.url()).as_str()),
            "{name}"
        );
        let text = resp.text().unwrap();
        let body = assert_error_body(&text, name);
        assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED", "{name}");
    }
}

#[test]
fn forged_refresh_tokens_are_refused() {
    let berth = start();
    let server_key = jwt::server_key(berth.data_dir());
    let real = fetch_token(&berth.url(), Some(berth.admin_credentials()), &[]);
    let (header, _) = jwt::decode(&real);
    let now = jwt::now();
    // The credential fingerprint of the admin's password, from a real
    // refresh token (a forged token without it is refused anyway).
    let issued = token_body(token_get(
        &berth.url(),
        Some(berth.admin_credentials()),
        &[("service", SERVICE), ("offline_token", "true")],
    ));
    let cred = jwt::claims(issued["refresh_token"].as_str().unwrap())["cred"].clone();
    let refresh = |iss: &str, aud: &str, nbf: i64, exp: i64| {
        json!({
            "iss": iss, "sub": "admin", "aud": aud, "exp": exp, "nbf": nbf, "iat": nbf,
            "jti": format!("forged-{nbf}-{exp}-{iss}-{aud}"), "typ": "refresh", "cred": cred,
        })
    };
    let grant = |token: &str| {
        token_post(
            &berth.url(),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
                ("service", SERVICE),
                ("scope", "registry:catalog:*"),
            ],
        )
    };
    // Baseline: well-formed and signed by the server's key, it works.
    let good = jwt::sign(
        &server_key,
        &header,
        &refresh(ISSUER, SERVICE, now, now + 300),
    );
    let body = token_body(grant(&good));
    assert_eq!(jwt::claims(body["token"].as_str().unwrap())["sub"], "admin");

    let alg_none = {
        let mut h = header.clone();
        h["alg"] = json!("none");
        let c = refresh(ISSUER, SERVICE, now, now + 300);
        format!(
            "{}.{}.",
            b64url(h.to_string().as_bytes()),
            b64url(c.to_string().as_bytes())
        )
    };
    let cases = [
        (
            "expired",
            jwt::sign(
                &server_key,
                &header,
                &refresh(ISSUER, SERVICE, now - 900, now - 600),
            ),
        ),
        (
            "wrong audience",
            jwt::sign(
                &server_key,
                &header,
                &refresh(ISSUER, "other", now, now + 300),
            ),
        ),
        (
            "wrong issuer",
            jwt::sign(
                &server_key,
                &header,
                &refresh("evil", SERVICE, now, now + 300),
            ),
        ),
        (
            "signed by another key",
            jwt::sign(
                &jwt::random_key(),
                &header,
                &refresh(ISSUER, SERVICE, now, now + 300),
            ),
        ),
        ("alg none", alg_none),
        ("an access token", real.clone()),
    ];
    for (name, token) in &cases {
        let resp = grant(token);
        assert_eq!(resp.status(), 401, "{name}: {}", describe(resp));
    }
}
