//! Fronted (passthrough) projects and mirror mode, against Debian's
//! `docker-registry` as the upstream.
#![allow(clippy::unwrap_used)]

use berth_tests::tools::{
    layout_digest, run, skopeo_copy, skopeo_login, text, write_oci_layout, Podman,
};
use berth_tests::upstream::DockerRegistry;
use berth_tests::{Api, Berth, Image};

fn login(berth: &Berth, user: &str, password: &str) -> std::path::PathBuf {
    let authfile = berth.scratch_dir().join(format!("auth-{user}.json"));
    let out = skopeo_login(&authfile, &berth.host_port(), user, password);
    assert!(out.status.success(), "skopeo login {user}: {}", text(&out));
    authfile
}

#[test]
fn pushes_and_pulls_go_through_a_fronted_project_to_the_upstream() {
    let upstream = DockerRegistry::start_with_htpasswd("front", "Front-secret-9");
    let berth = Berth::start();
    let api = Api::admin(&berth);
    let id = api.create_registry(
        "legacy",
        "docker-registry",
        &upstream.url(),
        Some(("front", "Front-secret-9")),
    );
    api.create_upstream_project("legacy", id, "passthrough");
    api.create_user("dev", "Dev-pass-123");
    api.create_user("guest", "Guest-pass-123");
    api.add_member("legacy", "dev", 2);
    api.add_member("legacy", "guest", 3);

    let scratch = berth.scratch_dir().to_path_buf();
    let image = Image::random(3);
    let layout = scratch.join("img");
    let src = write_oci_layout(&layout, &image, "1.0");
    let digest = layout_digest(&layout, "1.0");
    let host = berth.host_port();

    // A developer pushes through berth: the upstream holds the image under
    // its own name.
    let dev = login(&berth, "dev", "Dev-pass-123");
    let out = skopeo_copy(&dev, &src, &format!("docker://{host}/legacy/team/app:1.0"));
    assert!(out.status.success(), "push through: {}", text(&out));
    let upstream_auth = scratch.join("upstream.json");
    let out = skopeo_login(
        &upstream_auth,
        &upstream.host_port(),
        "front",
        "Front-secret-9",
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = run(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--authfile",
            upstream_auth.to_str().unwrap(),
            &format!("docker://{}/team/app:1.0", upstream.host_port()),
        ],
        &[],
        None,
    );
    assert!(
        out.status.success(),
        "the upstream has the image: {}",
        text(&out)
    );
    assert_eq!(berth_tests::content::sha256_digest(&out.stdout), digest);

    // A guest pulls it back through berth, byte for byte.
    let guest = login(&berth, "guest", "Guest-pass-123");
    let back = scratch.join("back");
    let out = skopeo_copy(
        &guest,
        &format!("docker://{host}/legacy/team/app:1.0"),
        &format!("oci:{}:x", back.display()),
    );
    assert!(out.status.success(), "pull through: {}", text(&out));
    assert_eq!(layout_digest(&back, "x"), digest);

    // A guest cannot push through, and the upstream never sees the attempt.
    let before = upstream.requests("POST", "/v2/team/other/blobs/uploads/");
    let out = skopeo_copy(
        &guest,
        &src,
        &format!("docker://{host}/legacy/team/other:1"),
    );
    assert!(!out.status.success(), "a guest pushed");
    assert!(text(&out).contains("Guest"), "{}", text(&out));
    assert_eq!(
        upstream.requests("POST", "/v2/team/other/blobs/uploads/"),
        before
    );

    // Anonymous callers get nothing from the private project.
    let anon = berth.scratch_dir().join("anon.json");
    std::fs::write(&anon, "{}").unwrap();
    let out = skopeo_copy(
        &anon,
        &format!("docker://{host}/legacy/team/app:1.0"),
        &format!("oci:{}:y", scratch.join("anon").display()),
    );
    assert!(
        !out.status.success(),
        "anonymous pull of a private fronted project"
    );

    // podman pushes through too (chunked uploads, Location rewriting).
    let podman = Podman::new(&scratch.join("podman"));
    let out = podman.login(&host, "dev", "Dev-pass-123");
    assert!(out.status.success(), "{}", text(&out));
    let out = podman.run(
        &[
            "pull",
            "--tls-verify=false",
            &format!("{host}/legacy/team/app:1.0"),
        ],
        None,
    );
    assert!(out.status.success(), "podman pull through: {}", text(&out));
    let out = podman.run(
        &[
            "tag",
            &format!("{host}/legacy/team/app:1.0"),
            &format!("{host}/legacy/team/copy:2"),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = podman.run(
        &[
            "push",
            "--tls-verify=false",
            &format!("{host}/legacy/team/copy:2"),
        ],
        None,
    );
    assert!(out.status.success(), "podman push through: {}", text(&out));
    assert!(upstream.requests("PUT", "/v2/team/copy/manifests/2") >= 1);

    // The audit log names the user and the fronted repository.
    let (_, _, logs) = api.get("/audit-logs?q=operation%3Dpush");
    let text_logs = logs.to_string();
    assert!(
        text_logs.contains("legacy/team/app:1.0") && text_logs.contains("\"dev\""),
        "{text_logs}"
    );
}

#[test]
fn podman_uses_berth_as_a_registry_mirror() {
    let upstream = DockerRegistry::start();
    let scratch = tempfile::tempdir().unwrap();
    let image = Image::random(2);
    let layout = scratch.path().join("img");
    let src = write_oci_layout(&layout, &image, "3");
    let digest = layout_digest(&layout, "3");
    let none = scratch.path().join("none.json");
    std::fs::write(&none, "{}").unwrap();
    let out = skopeo_copy(
        &none,
        &src,
        &format!("docker://{}/tools/jq:3", upstream.host_port()),
    );
    assert!(out.status.success(), "seed: {}", text(&out));

    let berth = Berth::start_with_env(&[("BERTH_PROXY__MIRROR", "hub")]);
    let api = Api::admin(&berth);
    api.create_registry("hub", "docker-registry", &upstream.url(), None);

    // containerd names the mirrored registry in `ns`; another one is not
    // mirrored.
    let base = berth.url();
    let ok = run(
        "curl",
        &[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{base}/v2/tools/jq/manifests/3?ns={}", upstream.host_port()),
        ],
        &[],
        None,
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "200", "{}", text(&ok));
    let other = run(
        "curl",
        &[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{base}/v2/tools/jq/manifests/3?ns=quay.io"),
        ],
        &[],
        None,
    );
    assert_ne!(String::from_utf8_lossy(&other.stdout), "200");

    // podman, told that berth mirrors the upstream, pulls from berth.
    let conf = scratch.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nlocation = \"{up}\"\ninsecure = true\n\n[[registry.mirror]]\nlocation = \"{mirror}\"\ninsecure = true\n",
            up = upstream.host_port(),
            mirror = berth.host_port()
        ),
    )
    .unwrap();
    // Requests for the image that reached the upstream from anyone but
    // berth (its access log names the user agent; skopeo seeded it).
    let direct = || {
        upstream
            .log_text()
            .lines()
            .filter(|l| l.contains("/v2/tools/jq/") && l.contains(" HTTP/1.1\""))
            .filter(|l| !l.contains("\"berth/") && !l.contains("\"skopeo/"))
            .count()
    };
    let before = direct();
    let podman = Podman::new(&scratch.path().join("podman"));
    // Anonymous: an empty auth file.
    std::fs::write(&podman.authfile, "{}").unwrap();
    let out = podman.run_with_env(
        &[
            "--log-level=debug",
            "pull",
            &format!("{}/tools/jq:3", upstream.host_port()),
        ],
        &[("CONTAINERS_REGISTRIES_CONF", conf.as_os_str())],
    );
    assert!(
        out.status.success(),
        "podman pull via the mirror: {}",
        text(&out)
    );
    assert!(
        text(&out).contains(&format!(
            "GET http://{}/v2/tools/jq/manifests/3",
            berth.host_port()
        )),
        "podman did not try the mirror: {}",
        text(&out)
    );
    // berth's mirror project now holds the image, fetched by berth: no
    // request from podman reached the upstream.
    let (status, _, repos) = api.get("/projects/mirror/repositories");
    assert_eq!(status, 200, "{repos}");
    assert!(repos.to_string().contains("mirror/tools/jq"), "{repos}");
    assert_eq!(direct(), before, "podman went to the upstream directly");
    let head = run(
        "curl",
        &[
            "-sS",
            "-I",
            &format!("{}/v2/tools/jq/manifests/3", berth.url()),
        ],
        &[],
        None,
    );
    assert!(
        text(&head).contains(&digest),
        "the mirror serves the upstream's digest: {}",
        text(&head)
    );
    assert!(
        upstream.requests("GET", "/v2/tools/jq/manifests/3") >= 1,
        "berth fetched the manifest from the upstream"
    );
}
