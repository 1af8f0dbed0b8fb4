//! The pull-through cache against a real upstream: Debian's
//! `docker-registry` (distribution 2.8), seeded with skopeo, with and
//! without htpasswd auth; another berth as a token-auth upstream; and a
//! corrupt upstream that must never poison the cache.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};

use berth_tests::content::{sha256_digest, Blob, OCI_MANIFEST};
use berth_tests::tools::{
    layout_digest, run, skopeo_copy, skopeo_login, text, write_oci_layout, Podman,
};
use berth_tests::upstream::{CorruptUpstream, DockerRegistry};
use berth_tests::{Api, Berth, Image, Registry};
use serde_json::{json, Value};

/// Creates a registry endpoint and a proxy-cache project of it; returns
/// the endpoint's id.
fn cache_project(api: &Api, project: &str, url: &str, credential: Option<(&str, &str)>) -> i64 {
    let id = api.create_registry(
        &format!("{project}-upstream"),
        "docker-registry",
        url,
        credential,
    );
    api.create_upstream_project(project, id, "cache");
    id
}

/// Seeds the upstream with a random 3-layer image through skopeo; returns
/// the image and its manifest digest.
fn seed(
    upstream: &DockerRegistry,
    scratch: &std::path::Path,
    repo: &str,
    tag: &str,
    auth: Option<(&str, &str)>,
) -> (Image, String) {
    let image = Image::random(3);
    let layout = scratch.join(format!("seed-{}", berth_tests::content::random_suffix()));
    let src = write_oci_layout(&layout, &image, tag);
    let authfile = scratch.join("upstream-auth.json");
    if let Some((user, password)) = auth {
        let out = skopeo_login(&authfile, &upstream.host_port(), user, password);
        assert!(
            out.status.success(),
            "skopeo login upstream: {}",
            text(&out)
        );
    }
    let out = skopeo_copy(
        &authfile,
        &src,
        &format!("docker://{}/{repo}:{tag}", upstream.host_port()),
    );
    assert!(out.status.success(), "seed upstream: {}", text(&out));
    let digest = layout_digest(&layout, tag);
    (image, digest)
}

fn login(berth: &Berth, scratch: &std::path::Path) -> std::path::PathBuf {
    let authfile = scratch.join(format!(
        "auth-{}.json",
        berth_tests::content::random_suffix()
    ));
    let (user, password) = berth.admin_credentials();
    let out = skopeo_login(&authfile, &berth.host_port(), user, password);
    assert!(out.status.success(), "skopeo login berth: {}", text(&out));
    authfile
}

/// skopeo copies `reference` out of berth into an OCI layout; returns the
/// manifest digest there.
fn pull(
    authfile: &std::path::Path,
    reference: &str,
    scratch: &std::path::Path,
) -> Result<String, String> {
    let dir = scratch.join(format!("pulled-{}", berth_tests::content::random_suffix()));
    let out = skopeo_copy(
        authfile,
        &format!("docker://{reference}"),
        &format!("oci:{}:t", dir.display()),
    );
    if !out.status.success() {
        return Err(text(&out));
    }
    Ok(layout_digest(&dir, "t"))
}

#[test]
fn skopeo_and_podman_pull_through_and_the_cache_outlives_the_upstream() {
    let mut upstream = DockerRegistry::start();
    let berth = Berth::start();
    let scratch = berth.scratch_dir().to_path_buf();
    let (image, digest) = seed(&upstream, &scratch, "library/app", "1", None);
    let api = Api::admin(&berth);
    let id = cache_project(&api, "cache", &upstream.url(), None);

    // The endpoint answers its ping.
    let (status, _, answer) = api.post("/registries/ping", &json!({"id": id}));
    assert_eq!(status, 200, "ping: {answer}");

    let authfile = login(&berth, &scratch);
    let host = berth.host_port();
    let got =
        pull(&authfile, &format!("{host}/cache/library/app:1"), &scratch).expect("pull through");
    assert_eq!(
        got, digest,
        "the cache serves the upstream's manifest bytes"
    );
    // Every layer came from the upstream once.
    for blob in image.blobs() {
        assert_eq!(
            upstream.requests("GET", &format!("/v2/library/app/blobs/{}", blob.digest)),
            1,
            "one upstream GET for {}",
            blob.digest
        );
    }

    // A second pull is served from the cache: no new blob GETs.
    let again =
        pull(&authfile, &format!("{host}/cache/library/app:1"), &scratch).expect("pull again");
    assert_eq!(again, digest);
    for blob in image.blobs() {
        assert_eq!(
            upstream.requests("GET", &format!("/v2/library/app/blobs/{}", blob.digest)),
            1
        );
    }

    // podman pulls the same image through the cache.
    let podman = Podman::new(&scratch.join("podman"));
    let (user, password) = berth.admin_credentials();
    let out = podman.login(&host, user, password);
    assert!(out.status.success(), "podman login: {}", text(&out));
    let out = podman.run(
        &[
            "pull",
            "--tls-verify=false",
            &format!("{host}/cache/library/app:1"),
        ],
        None,
    );
    assert!(out.status.success(), "podman pull: {}", text(&out));

    // The cache is read-only.
    let layout = scratch.join("push-attempt");
    let src = write_oci_layout(&layout, &Image::random(1), "x");
    let out = skopeo_copy(
        &authfile,
        &src,
        &format!("docker://{host}/cache/library/mine:1"),
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("read-only"), "{}", text(&out));

    // The upstream goes away: by tag (its last known digest) and by digest
    // the cache still serves, and says it is stale.
    upstream.stop();
    let stale = pull(&authfile, &format!("{host}/cache/library/app:1"), &scratch)
        .expect("pull with the upstream down");
    assert_eq!(stale, digest);
    let by_digest = pull(
        &authfile,
        &format!("{host}/cache/library/app@{digest}"),
        &scratch,
    )
    .expect("pull by digest, upstream down");
    assert_eq!(by_digest, digest);
    let reg = Registry::with_basic_auth(&berth.url(), user, password);
    let resp = reg
        .http()
        .get(reg.url("/v2/cache/library/app/manifests/1"))
        .header("Accept", OCI_MANIFEST)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let warning = resp
        .headers()
        .get("warning")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        warning.as_deref().is_some_and(|w| w.starts_with("110 ")),
        "Warning header: {warning:?}"
    );

    // Nothing cached for this one: a clear error naming the upstream.
    let resp = reg
        .http()
        .get(reg.url("/v2/cache/library/other/manifests/1"))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("cache-upstream") && message.contains("unreachable"),
        "{message}"
    );

    // The upstream comes back with a new image under the same tag: the
    // cache follows it.
    upstream.resume();
    let (_, new_digest) = seed(&upstream, &scratch, "library/app", "1", None);
    assert_ne!(new_digest, digest);
    let fresh = pull(&authfile, &format!("{host}/cache/library/app:1"), &scratch)
        .expect("pull the new tag");
    assert_eq!(fresh, new_digest, "a moved tag is fetched again");
}

#[test]
fn an_htpasswd_upstream_needs_the_endpoint_credential() {
    let upstream = DockerRegistry::start_with_htpasswd("mirror", "s3cret-upstream");
    let berth = Berth::start();
    let scratch = berth.scratch_dir().to_path_buf();
    let (_, digest) = seed(
        &upstream,
        &scratch,
        "team/tool",
        "2.0",
        Some(("mirror", "s3cret-upstream")),
    );
    let api = Api::admin(&berth);

    // Wrong secret: ping says so, a pull says whose credential is refused.
    let (status, _, answer) = api.post(
        "/registries/ping",
        &json!({"type": "docker-registry", "url": upstream.url(), "credential": {"type": "basic", "access_key": "mirror", "access_secret": "wrong"}}),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("credential"), "{answer}");

    let bad = cache_project(&api, "badcreds", &upstream.url(), Some(("mirror", "wrong")));
    let authfile = login(&berth, &scratch);
    let host = berth.host_port();
    pull(
        &authfile,
        &format!("{host}/badcreds/team/tool:2.0"),
        &scratch,
    )
    .expect_err("bad credential");
    // skopeo prints only the status of a 502; the body says what is wrong.
    let (user, password) = berth.admin_credentials();
    let reg = Registry::with_basic_auth(&berth.url(), user, password);
    let resp = reg
        .http()
        .get(reg.url("/v2/badcreds/team/tool/manifests/2.0"))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 502);
    let body: Value = resp.json().unwrap();
    let message = body["errors"][0]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("refused berth's credentials"), "{message}");

    // The secret is never shown back.
    let (_, _, shown) = api.get(&format!("/registries/{bad}"));
    assert_eq!(shown["credential"]["access_secret"], "*****");
    assert_eq!(shown["credential"]["access_key"], "mirror");

    // Fixed through the API, the same project works.
    let (status, _, answer) = api.put(
        &format!("/registries/{bad}"),
        &json!({"credential": {"type": "basic", "access_key": "mirror", "access_secret": "s3cret-upstream"}}),
    );
    assert_eq!(status, 200, "{answer}");
    let got = pull(
        &authfile,
        &format!("{host}/badcreds/team/tool:2.0"),
        &scratch,
    )
    .expect("pull with the right credential");
    assert_eq!(got, digest);

    // An endpoint in use cannot be deleted.
    let (status, _, answer) = api.delete(&format!("/registries/{bad}"));
    assert_eq!(status, 412, "{answer}");
}

#[test]
fn a_token_auth_upstream_is_logged_into_with_the_bearer_dance() {
    // Another berth is the upstream: it answers 401 with a Bearer
    // challenge and issues tokens from its realm.
    let origin = Berth::start();
    let origin_api = Api::admin(&origin);
    origin_api.create_project("private", false);
    origin_api.create_user("puller", "Puller-pass-1");
    origin_api.add_member("private", "puller", 3);
    let scratch = origin.scratch_dir().to_path_buf();
    let image = Image::random(2);
    let layout = scratch.join("img");
    let src = write_oci_layout(&layout, &image, "v1");
    let origin_auth = login(&origin, &scratch);
    let out = skopeo_copy(
        &origin_auth,
        &src,
        &format!("docker://{}/private/app:v1", origin.host_port()),
    );
    assert!(out.status.success(), "seed origin: {}", text(&out));
    let digest = layout_digest(&layout, "v1");

    let berth = Berth::start();
    let api = Api::admin(&berth);
    let id = api.create_registry(
        "origin",
        "berth",
        &origin.url(),
        Some(("puller", "Puller-pass-1")),
    );
    // No `proxy_mode`: a project with a registry is a cache by default.
    let (status, _, answer) = api.post(
        "/projects",
        &json!({"project_name": "edge", "registry_id": id}),
    );
    assert_eq!(status, 201, "{answer}");
    let authfile = login(&berth, &scratch);
    let got = pull(
        &authfile,
        &format!("{}/edge/private/app:v1", berth.host_port()),
        &scratch,
    )
    .expect("pull through a token-auth upstream");
    assert_eq!(got, digest);
    // The listing shows the proxy project's endpoint.
    let (_, _, project) = api.get("/projects/edge");
    assert_eq!(project["registry_id"], id);
    assert_eq!(project["metadata"]["proxy_mode"], "cache");
}

#[test]
fn a_corrupt_upstream_never_poisons_the_cache() {
    let (layer, config, manifest) = one_layer_image();
    let upstream = CorruptUpstream::start(
        "bad/app",
        "1",
        manifest,
        OCI_MANIFEST,
        (config.digest.clone(), config.data.clone()),
        (layer.digest.clone(), layer.data.len()),
    );
    let berth = Berth::start();
    let api = Api::admin(&berth);
    cache_project(&api, "cache", &upstream.url(), None);
    let (user, password) = berth.admin_credentials();
    let reg = Registry::with_basic_auth(&berth.url(), user, password);

    // The manifest is honest and cached.
    let resp = reg
        .http()
        .get(reg.url("/v2/cache/bad/app/manifests/1"))
        .header("Accept", OCI_MANIFEST)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    // The layer's bytes are wrong: the client never receives a complete
    // body, and nothing is stored.
    for attempt in 1..=2 {
        let result = reg
            .http()
            .get(reg.url(&format!("/v2/cache/bad/app/blobs/{}", layer.digest)))
            .send()
            .and_then(|r| r.bytes());
        // Cut off (an error) is the expected outcome; a body that did
        // arrive must be short of the whole.
        if let Ok(bytes) = result {
            assert!(
                bytes.len() < layer.data.len(),
                "attempt {attempt}: a whole body of {} bytes was sent",
                bytes.len()
            );
        }
    }
    // Each attempt went upstream again: nothing was cached.
    assert!(upstream.layer_gets.load(Ordering::SeqCst) >= 2);
    let hex = layer.digest.strip_prefix("sha256:").unwrap();
    let stored = berth
        .data_dir()
        .join("blobs/sha256")
        .join(&hex[..2])
        .join(hex);
    assert!(
        !stored.exists(),
        "a corrupt blob was committed at {}",
        stored.display()
    );
    // skopeo, pulling the image, fails.
    let scratch = berth.scratch_dir().to_path_buf();
    let authfile = login(&berth, &scratch);
    pull(
        &authfile,
        &format!("{}/cache/bad/app:1", berth.host_port()),
        &scratch,
    )
    .expect_err("a corrupt layer fails the pull");
}

/// A one-layer image for the hand-made upstreams: its 300 KB layer, its
/// config and its manifest.
fn one_layer_image() -> (Blob, Blob, Vec<u8>) {
    let layer = Blob::random(300_000);
    let config = Blob::new(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec(),
        "application/vnd.oci.image.config.v1+json",
    );
    let manifest = berth_tests::content::image_manifest(&config, std::slice::from_ref(&layer));
    (layer, config, manifest)
}

/// A corrupt upstream held mid-layer, its manifest cached in berth's
/// `cache` project; returns the upstream, berth, a client and the layer.
fn held_corrupt_upstream() -> (CorruptUpstream, Berth, Registry, Blob) {
    let (layer, config, manifest) = one_layer_image();
    let upstream = CorruptUpstream::start(
        "bad/app",
        "1",
        manifest,
        OCI_MANIFEST,
        (config.digest.clone(), config.data.clone()),
        (layer.digest.clone(), layer.data.len()),
    );
    upstream.hold_layers();
    let berth = Berth::start();
    let api = Api::admin(&berth);
    cache_project(&api, "cache", &upstream.url(), None);
    let (user, password) = berth.admin_credentials();
    let reg = Registry::with_basic_auth(&berth.url(), user, password);
    let resp = reg
        .http()
        .get(reg.url("/v2/cache/bad/app/manifests/1"))
        .header("Accept", OCI_MANIFEST)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    (upstream, berth, reg, layer)
}

#[test]
fn a_range_of_a_corrupt_blob_in_flight_never_completes() {
    let (upstream, berth, reg, layer) = held_corrupt_upstream();
    // A whole-blob GET starts the fetch; the upstream sends half the
    // (wrong) bytes and waits, so the first 10 bytes are in berth's temp
    // file long before the digest can be checked.
    let url = reg.url(&format!("/v2/cache/bad/app/blobs/{}", layer.digest));
    let whole = {
        let (http, url) = (reg.http().clone(), url.clone());
        std::thread::spawn(move || http.get(url).send().and_then(|r| r.bytes()))
    };
    wait_for("the upstream to send half the layer", || {
        upstream.layers_waiting() >= 1
    });
    let fetch_dir = berth.data_dir().join("blobs/_fetch");
    wait_for("berth to write the first bytes of the fetch", || {
        largest_file(&fetch_dir) >= 10
    });
    // A range inside what arrived: its headers come at once, but its last
    // byte must wait for the verification, which fails.
    let resp = reg
        .http()
        .get(&url)
        .header("Range", "bytes=0-9")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 206);
    upstream.release_layers();
    // Cut off (an error in every client) is the expected outcome.
    if let Ok(bytes) = resp.bytes() {
        assert!(
            bytes.len() < 10,
            "a complete 206 of unverified bytes was sent: {bytes:?}"
        );
    }
    if let Ok(bytes) = whole.join().unwrap() {
        assert!(
            bytes.len() < layer.data.len(),
            "a whole wrong body was sent"
        );
    }
    // Nothing was kept.
    let hex = layer.digest.strip_prefix("sha256:").unwrap();
    assert!(!berth
        .data_dir()
        .join("blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .exists());
}

/// `berth gc` and `berth user` are run beside a server, as the README
/// allows: they must leave the server's in-flight downloads and uploads
/// alone.
#[test]
fn commands_beside_the_server_leave_its_fetches_and_uploads_alone() {
    let (layer, config, manifest) = one_layer_image();
    // An honest upstream that stops halfway through the layer until told.
    let upstream = CorruptUpstream::serving(
        "slow/app",
        "1",
        manifest,
        OCI_MANIFEST,
        (config.digest.clone(), config.data.clone()),
        (layer.digest.clone(), layer.data.clone()),
    );
    upstream.hold_layers();
    let berth = Berth::start();
    let api = Api::admin(&berth);
    cache_project(&api, "cache", &upstream.url(), None);
    api.create_project("team", false);
    let (user, password) = berth.admin_credentials();
    let reg = Registry::with_basic_auth(&berth.url(), user, password);
    let resp = reg
        .http()
        .get(reg.url("/v2/cache/slow/app/manifests/1"))
        .header("Accept", OCI_MANIFEST)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);

    // An upload the server holds open, and a download it is in the middle of.
    let upload = reg.start_upload("team/app");
    let url = reg.url(&format!("/v2/cache/slow/app/blobs/{}", layer.digest));
    let pull = {
        let (http, url) = (reg.http().clone(), url.clone());
        std::thread::spawn(move || http.get(url).send().and_then(|r| r.bytes()))
    };
    wait_for("the upstream to send half the layer", || {
        upstream.layers_waiting() >= 1
    });
    let fetch_dir = berth.data_dir().join("blobs/_fetch");
    wait_for("berth to write the first bytes of the fetch", || {
        largest_file(&fetch_dir) > 0
    });

    // The commands, with a purge age that would call the upload abandoned.
    let out = berth_command(&berth, &["gc"], None);
    assert!(out.status.success(), "berth gc: {}", text(&out));
    let out = berth_command(&berth, &["user", "add", "ops"], Some("Ops-pass-123\n"));
    assert!(out.status.success(), "berth user add: {}", text(&out));

    upstream.release_layers();
    let pulled = pull.join().unwrap().expect("the pull completes");
    assert_eq!(sha256_digest(&pulled), layer.digest);
    // It was verified and kept: the next pull is served from the store.
    let before = upstream.layer_gets.load(Ordering::SeqCst);
    let again = reg.get_blob("cache/slow/app", &layer.digest);
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(sha256_digest(&again.bytes().unwrap()), layer.digest);
    assert_eq!(upstream.layer_gets.load(Ordering::SeqCst), before);

    // The upload is still the server's to complete.
    let data = b"pushed after the commands ran".to_vec();
    let resp = reg
        .http()
        .put(berth_tests::registry::with_query(
            &upload,
            "digest",
            &sha256_digest(&data),
        ))
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        201,
        "{}",
        berth_tests::registry::describe(resp)
    );
}

/// Runs `berth <args>` on `berth`'s data directory, as an operator would
/// beside the server; its upload purge age calls every upload abandoned.
fn berth_command(berth: &Berth, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut cmd = berth.command(args);
    cmd.env("BERTH_GC__GRACE_PERIOD", "0s")
        .env("BERTH_SERVER__UPLOAD_PURGE_AGE", "0s");
    berth_tests::tools::output(&mut cmd, stdin)
}

/// The size of the largest file under `dir` (recursively), 0 if none.
fn largest_file(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => largest_file(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn twenty_concurrent_pulls_of_a_missing_blob_make_one_upstream_get() {
    let upstream = DockerRegistry::start();
    let seeder = Registry::new(&upstream.url());
    let big = Blob::random(48 * 1024 * 1024);
    seeder.push_blob("big/app", &big);
    let config = Blob::new(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec(),
        "application/vnd.oci.image.config.v1+json",
    );
    seeder.push_blob("big/app", &config);
    let manifest = Blob::new(
        berth_tests::content::image_manifest(&config, std::slice::from_ref(&big)),
        OCI_MANIFEST,
    );
    seeder.push_manifest("big/app", "1", &manifest);

    let berth = Berth::start();
    let api = Api::admin(&berth);
    cache_project(&api, "cache", &upstream.url(), None);
    let (user, password) = berth.admin_credentials();
    let base = berth.url();
    let path = format!("/v2/cache/big/app/blobs/{}", big.digest);
    let barrier = Arc::new(Barrier::new(20));
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let barrier = barrier.clone();
            let reg = Registry::with_basic_auth(&base, user, password);
            let path = path.clone();
            std::thread::spawn(move || {
                barrier.wait();
                // Half ask for a range: served from the fetch in flight.
                let req = reg.http().get(reg.url(&path));
                let req = if i % 2 == 1 {
                    req.header("Range", "bytes=1000-2000999")
                } else {
                    req
                };
                let resp = req.send().expect("GET blob");
                let status = resp.status().as_u16();
                (i, status, resp.bytes().expect("body").to_vec())
            })
        })
        .collect();
    for t in threads {
        let (i, status, bytes) = t.join().unwrap();
        if i % 2 == 1 {
            assert_eq!(status, 206, "range request {i}");
            assert_eq!(
                bytes,
                big.data[1000..=2000999].to_vec(),
                "range bytes of request {i}"
            );
        } else {
            assert_eq!(status, 200, "request {i}");
            assert_eq!(sha256_digest(&bytes), big.digest, "body of request {i}");
        }
    }
    assert_eq!(
        upstream.requests("GET", &format!("/v2/big/app/blobs/{}", big.digest)),
        1,
        "exactly one upstream GET for the blob"
    );
    // Cached now: a Range request on the stored blob.
    let reg = Registry::with_basic_auth(&base, user, password);
    let resp = reg
        .http()
        .get(reg.url(&path))
        .header("Range", "bytes=-10")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(
        resp.bytes().unwrap().to_vec(),
        big.data[big.data.len() - 10..].to_vec()
    );
    // curl sees the same through HEAD, from the store.
    let out = run(
        "curl",
        &[
            "-sS",
            "-I",
            "-u",
            &format!("{user}:{password}"),
            &format!("{base}{path}"),
        ],
        &[],
        None,
    );
    assert!(
        text(&out)
            .to_ascii_lowercase()
            .contains(&format!("content-length: {}", big.data.len())),
        "{}",
        text(&out)
    );
}

/// Seeds `repo:1` on the upstream with one random layer of `len` bytes.
fn seed_blob_image(upstream: &DockerRegistry, repo: &str, len: usize) -> Blob {
    let seeder = Registry::new(&upstream.url());
    let layer = Blob::random(len);
    let config = Blob::new(
        format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"n":"{}"}}"#, berth_tests::content::random_suffix()).into_bytes(),
        "application/vnd.oci.image.config.v1+json",
    );
    seeder.push_blob(repo, &layer);
    seeder.push_blob(repo, &config);
    let manifest = Blob::new(
        berth_tests::content::image_manifest(&config, std::slice::from_ref(&layer)),
        OCI_MANIFEST,
    );
    seeder.push_manifest(repo, "1", &manifest);
    manifest
}

/// Pulls `repo:1` through the cache (manifest and every blob).
fn pull_all(reg: &Registry, repo: &str) {
    let resp = reg
        .http()
        .get(reg.url(&format!("/v2/cache/{repo}/manifests/1")))
        .header("Accept", OCI_MANIFEST)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let manifest: Value = resp.json().unwrap();
    let mut digests = vec![manifest["config"]["digest"].as_str().unwrap().to_owned()];
    for l in manifest["layers"].as_array().unwrap() {
        digests.push(l["digest"].as_str().unwrap().to_owned());
    }
    for d in digests {
        let resp = reg
            .http()
            .get(reg.url(&format!("/v2/cache/{repo}/blobs/{d}")))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(sha256_digest(&resp.bytes().unwrap()), d);
    }
}

/// Artifacts the management API lists in a cache repository.
fn cached_artifacts(api: &Api, repo: &str) -> usize {
    let (status, _, list) = api.get(&format!(
        "/projects/cache/repositories/{}/artifacts",
        repo.replace('/', "%2F")
    ));
    match status {
        200 => list.as_array().map_or(0, Vec::len),
        404 => 0,
        other => panic!("artifacts of {repo}: {other} {list}"),
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn the_least_recently_pulled_image_is_evicted_beyond_the_size_limit() {
    let upstream = DockerRegistry::start();
    seed_blob_image(&upstream, "old/app", 700_000);
    seed_blob_image(&upstream, "new/app", 700_000);
    let berth = Berth::start_with_env(&[("BERTH_PROXY__CACHE_MAX_SIZE", "1MB")]);
    let api = Api::admin(&berth);
    cache_project(&api, "cache", &upstream.url(), None);
    let (user, password) = berth.admin_credentials();
    let reg = Registry::with_basic_auth(&berth.url(), user, password);
    pull_all(&reg, "old/app");
    assert_eq!(cached_artifacts(&api, "old/app"), 1);
    // Pulled later, so more recently used.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    pull_all(&reg, "new/app");
    // 1.4 MB cached against a 1 MB limit: the older image goes.
    wait_for("the older image's eviction", || {
        cached_artifacts(&api, "old/app") == 0
    });
    assert_eq!(
        cached_artifacts(&api, "new/app"),
        1,
        "the newer image stays"
    );
    // Evicted content is fetched again on the next pull.
    pull_all(&reg, "old/app");
    assert_eq!(cached_artifacts(&api, "old/app"), 1);
}

#[test]
fn an_image_not_pulled_within_the_ttl_is_evicted() {
    let upstream = DockerRegistry::start();
    let manifest = seed_blob_image(&upstream, "ttl/app", 10_000);
    let berth = Berth::start_with_env(&[("BERTH_PROXY__CACHE_TTL", "2s")]);
    let api = Api::admin(&berth);
    cache_project(&api, "cache", &upstream.url(), None);
    let (user, password) = berth.admin_credentials();
    let reg = Registry::with_basic_auth(&berth.url(), user, password);
    pull_all(&reg, "ttl/app");
    assert_eq!(cached_artifacts(&api, "ttl/app"), 1);
    let before = upstream.requests("GET", &format!("/v2/ttl/app/manifests/{}", manifest.digest));
    wait_for("the unused image's eviction", || {
        cached_artifacts(&api, "ttl/app") == 0
    });
    // By digest it is no longer local: the upstream is asked again.
    let resp = reg
        .http()
        .get(reg.url(&format!("/v2/cache/ttl/app/manifests/{}", manifest.digest)))
        .header("Accept", OCI_MANIFEST)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        upstream.requests("GET", &format!("/v2/ttl/app/manifests/{}", manifest.digest)),
        before + 1
    );
}
