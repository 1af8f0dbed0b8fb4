//! Fronted projects against an upstream with the habits of hosted
//! registries (see `odd_upstream`): blob GETs redirected to object
//! storage, upload ids that are not UUIDs, a token realm elsewhere; and
//! names and mount sources that must never reach it.
#![allow(clippy::unwrap_used)]

use berth_tests::odd_upstream::OddUpstream;
use berth_tests::registry::{assert_error, header};
use berth_tests::tools::{layout_digest, skopeo_copy, skopeo_login, text, write_oci_layout};
use berth_tests::{Api, Berth, Image};

/// berth with a passthrough project `front` of `upstream`, whose endpoint
/// has a Basic credential.
fn fronting(upstream: &OddUpstream) -> Berth {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let id = api.create_registry(
        "hosted",
        "docker-registry",
        &upstream.url(),
        Some(("front", "Front-secret-9")),
    );
    api.create_upstream_project("front", id, "passthrough");
    berth
}

/// A blocking client with the admin's Basic credentials that does not
/// follow redirects.
fn admin_client(berth: &Berth) -> reqwest::blocking::Client {
    let (user, password) = berth.admin_credentials();
    let auth = format!(
        "Basic {}",
        berth_tests::registry::base64(format!("{user}:{password}").as_bytes())
    );
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", auth.parse().unwrap());
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

#[test]
fn a_fronted_upstream_may_redirect_blobs_elsewhere_and_name_uploads_its_own_way() {
    let upstream = OddUpstream::start();
    let berth = fronting(&upstream);
    let scratch = berth.scratch_dir().to_path_buf();
    let host = berth.host_port();
    let authfile = scratch.join("auth.json");
    let (user, password) = berth.admin_credentials();
    let out = skopeo_login(&authfile, &host, user, password);
    assert!(out.status.success(), "{}", text(&out));

    // skopeo pushes through berth: the upstream's uploads are `up-N`.
    let image = Image::random(2);
    let layout = scratch.join("img");
    let src = write_oci_layout(&layout, &image, "1");
    let digest = layout_digest(&layout, "1");
    let out = skopeo_copy(
        &authfile,
        &src,
        &format!("docker://{host}/front/team/app:1"),
    );
    assert!(out.status.success(), "push through: {}", text(&out));
    let layer = &image.layers[0].blob.digest;
    assert!(upstream.has_blob(layer));

    // A blob GET is redirected to the object store, untouched.
    let http = admin_client(&berth);
    let resp = http
        .get(format!("{}/v2/front/team/app/blobs/{layer}", berth.url()))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 307);
    let location = header(&resp, "location").unwrap();
    let hex = layer.strip_prefix("sha256:").unwrap();
    assert_eq!(
        location,
        format!(
            "http://127.0.0.1:{}/bucket/{hex}?X-Signature=s1",
            upstream.object_port
        )
    );

    // skopeo pulls back through berth, following the redirects itself.
    let back = scratch.join("back");
    let out = skopeo_copy(
        &authfile,
        &format!("docker://{host}/front/team/app:1"),
        &format!("oci:{}:x", back.display()),
    );
    assert!(out.status.success(), "pull through: {}", text(&out));
    assert_eq!(layout_digest(&back, "x"), digest);

    // The object store was asked, and never with a credential.
    let objects = upstream.object_requests();
    assert!(!objects.is_empty());
    assert!(
        objects.iter().all(|s| s.authorization.is_none()),
        "{objects:?}"
    );
}

#[test]
fn encoded_names_and_bad_mount_sources_never_reach_a_fronted_upstream() {
    let upstream = OddUpstream::start();
    let berth = fronting(&upstream);
    let http = admin_client(&berth);
    let base = berth.url();

    // `front%2Fapp` would be authorized as `front/app` and forwarded as
    // something else.
    let resp = http
        .get(format!("{base}/v2/front%2Fapp/manifests/t"))
        .send()
        .unwrap();
    assert_error(resp, 400, &["NAME_INVALID"]);

    let resp = http
        .post(format!(
            "{base}/v2/front/app/blobs/uploads/?mount=sha256:{}&from=front/../../x",
            "a".repeat(64)
        ))
        .send()
        .unwrap();
    assert_error(resp, 400, &["NAME_INVALID"]);

    let seen = upstream.registry_requests();
    assert!(
        seen.iter().all(|s| s.target == "/v2/" && s.method == "GET"),
        "requests reached the upstream: {seen:?}"
    );
}

#[test]
fn the_credential_goes_to_a_plain_http_token_realm_only_on_the_endpoints_own_host() {
    let upstream = OddUpstream::start_with_token_realm();
    let berth = fronting(&upstream);
    let http = admin_client(&berth);
    let resp = http
        .get(format!("{}/v2/front/team/app/manifests/1", berth.url()))
        .send()
        .unwrap();
    // The upstream has no such manifest: its answer, after the token dance.
    assert_eq!(resp.status().as_u16(), 404);
    let tokens = upstream.token_requests();
    assert!(!tokens.is_empty(), "no token was asked for");
    assert!(
        tokens.iter().all(|s| s.authorization.is_none()),
        "the endpoint's credential went to a plain-HTTP realm on another port: {tokens:?}"
    );
    let seen = upstream.registry_requests();
    assert!(
        seen.iter().any(|s| s.target == "/v2/team/app/manifests/1"
            && s.authorization.as_deref() == Some("Bearer odd-token")),
        "{seen:?}"
    );
}
