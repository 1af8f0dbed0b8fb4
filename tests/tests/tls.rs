//! The TLS endpoint: `berth cert init` then `berth serve`, and real clients
//! that verify the certificate (no --tls-verify=false anywhere here).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_tests::server::{berth_bin, cert_init};
use berth_tests::tools::{
    docker_unavailable, rootfs_tarball, run, text, write_oci_layout, DockerImages, Podman,
};
use berth_tests::{Berth, Image};

/// A containers-style cert dir (`ca.crt` inside) for skopeo and podman.
fn cert_dir(berth: &Berth) -> std::path::PathBuf {
    let dir = berth.scratch_dir().join("certs.d");
    std::fs::create_dir_all(&dir).expect("cert dir");
    std::fs::copy(berth.tls_ca().expect("TLS"), dir.join("ca.crt")).expect("copy CA");
    dir
}

fn ok(what: &str, out: &std::process::Output) {
    assert!(out.status.success(), "{what} failed:\n{}", text(out));
}

#[test]
fn clients_verify_the_certificate_from_cert_init() {
    let berth = Berth::start_tls();
    let certs = cert_dir(&berth);
    let certs = certs.to_str().expect("utf-8 path");
    let host = format!("localhost:{}", berth.port());
    let (user, password) = berth.admin_credentials();
    let creds = format!("{user}:{password}");

    // skopeo: push an image and read it back, verifying the server.
    let image = Image::random(2);
    let layout = write_oci_layout(&berth.scratch_dir().join("layout"), &image, "v1");
    let dest = format!("docker://{host}/library/tls:v1");
    let out = run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--dest-cert-dir",
            certs,
            "--dest-creds",
            &creds,
            &layout,
            &dest,
        ],
        &[],
        None,
    );
    ok("skopeo copy over TLS", &out);
    let out = run(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--cert-dir",
            certs,
            "--creds",
            &creds,
            &dest,
        ],
        &[],
        None,
    );
    ok("skopeo inspect over TLS", &out);
    assert_eq!(out.stdout, image.manifest.data, "manifest bytes round trip");
    berth.registry().assert_image("library/tls", "v1", &image);

    // Without the CA, verification fails: the certificate is really checked.
    let out = run("skopeo", &["inspect", "--creds", &creds, &dest], &[], None);
    assert!(!out.status.success(), "skopeo without the CA must fail");
    assert!(
        text(&out).contains("certificate"),
        "the failure is about the certificate:\n{}",
        text(&out)
    );

    // podman: log in, push and pull with the CA.
    let podman = Podman::new(&berth.scratch_dir().join("podman"));
    let cert_flag = format!("--cert-dir={certs}");
    ok(
        "podman login",
        &podman.run(
            &["login", &cert_flag, "-u", user, "--password-stdin", &host],
            Some(password),
        ),
    );
    let tarball = rootfs_tarball(berth.scratch_dir());
    let name = format!("{host}/library/podman-tls:1");
    ok(
        "podman import",
        &podman.run(&["import", tarball.to_str().expect("utf-8"), &name], None),
    );
    ok(
        "podman push",
        &podman.run(&["push", &cert_flag, &name], None),
    );
    ok("podman rmi", &podman.run(&["rmi", &name], None));
    ok(
        "podman pull",
        &podman.run(&["pull", &cert_flag, &name], None),
    );

    // curl negotiates HTTP/2 by ALPN.
    let out = Command::new("curl")
        .args(["-s", "--http2", "--cacert"])
        .arg(berth.tls_ca().expect("TLS"))
        .args([
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            "-u",
            &creds,
        ])
        .arg(format!("https://{host}/v2/library/tls/tags/list"))
        .output()
        .expect("run curl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2 200",
        "{}",
        text(&out)
    );

    // docker, where an engine runs: the CA goes in /etc/docker/certs.d.
    match docker_unavailable() {
        Some(why) => println!("skipping the docker part: {why}"),
        None => docker_over_tls(&berth, &host),
    }
}

fn docker_over_tls(berth: &Berth, host: &str) {
    let dir = Path::new("/etc/docker/certs.d").join(host);
    if std::fs::create_dir_all(&dir).is_err() {
        println!("skipping the docker part: cannot write {}", dir.display());
        return;
    }
    std::fs::copy(berth.tls_ca().expect("TLS"), dir.join("ca.crt")).expect("copy CA for docker");
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(dir);
    let (user, password) = berth.admin_credentials();
    let config = berth.scratch_dir().join("docker-config");
    std::fs::create_dir_all(&config).expect("docker config dir");
    let cfg = config.to_str().expect("utf-8");
    ok(
        "docker login over TLS",
        &run(
            "docker",
            &[
                "--config",
                cfg,
                "login",
                "-u",
                user,
                "--password-stdin",
                host,
            ],
            &[],
            Some(password),
        ),
    );
    let name = format!("{host}/library/docker-tls:1");
    let _images = DockerImages(vec![name.clone()]);
    let tarball = rootfs_tarball(berth.scratch_dir());
    ok(
        "docker import",
        &run(
            "docker",
            &["import", tarball.to_str().expect("utf-8"), &name],
            &[],
            None,
        ),
    );
    ok(
        "docker push over TLS",
        &run("docker", &["--config", cfg, "push", &name], &[], None),
    );
    ok("docker rmi", &run("docker", &["rmi", &name], &[], None));
    ok(
        "docker pull over TLS",
        &run("docker", &["--config", cfg, "pull", &name], &[], None),
    );
}

/// The SHA-256 fingerprint of the certificate a new connection sees.
fn served_fingerprint(port: u16) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername localhost </dev/null 2>/dev/null \
             | openssl x509 -noout -fingerprint -sha256"
        ))
        .output()
        .expect("run openssl");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn file_fingerprint(path: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(path)
        .output()
        .expect("run openssl");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn sighup_swaps_the_certificate_for_new_connections() {
    let mut berth = Berth::start_tls();
    let cert = berth.data_dir().join("tls/server.crt");
    let before = file_fingerprint(&cert);
    assert_eq!(served_fingerprint(berth.port()), before);
    assert_eq!(
        berth.registry().get_manifest("library/none", "x").status(),
        404
    );

    cert_init(berth.data_dir(), &["--force"]);
    let after = file_fingerprint(&cert);
    assert_ne!(before, after, "cert init --force made a new certificate");
    berth.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_fingerprint(berth.port()) != after {
        assert!(
            Instant::now() < deadline,
            "new connections still see the old certificate"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(berth.is_running(), "SIGHUP must not stop berth");
    // A client trusting the new CA (berth.registry() reads ca.crt afresh)
    // is served.
    assert_eq!(
        berth.registry().get_manifest("library/none", "x").status(),
        404
    );
}

#[test]
fn a_bad_certificate_fails_at_start_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    cert_init(&data, &[]);
    let key = data.join("tls/server.key");
    let ca = data.join("tls/ca.crt");
    let cases: &[(&Path, &Path, &str)] = &[
        (
            Path::new("/nonexistent/berth.crt"),
            &key,
            "cannot read the TLS certificate /nonexistent/berth.crt",
        ),
        (&key, &key, "holds no certificate"),
        (&ca, &key, "does not belong to the certificate"),
    ];
    for (cert, key, message) in cases {
        let out = Command::new(berth_bin())
            .arg("serve")
            .env("BERTH_DATA_DIR", &data)
            .env("BERTH_LISTEN", "127.0.0.1:0")
            .env("BERTH_ADMIN_PASSWORD", "a-long-password")
            .env("BERTH_TLS__CERT", cert)
            .env("BERTH_TLS__KEY", key)
            .output()
            .expect("run berth serve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(message),
            "expected {message:?} in: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn the_plain_http_listener_redirects_to_https() {
    let plain = berth_tests::server::free_port();
    let berth = Berth::start_tls_with_env(&[(
        "BERTH_SERVER__HTTP_REDIRECT",
        &format!("127.0.0.1:{plain}"),
    )]);
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .arg(format!(
            "http://127.0.0.1:{plain}/v2/library/app/tags/list?n=5"
        ))
        .output()
        .expect("run curl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "308 https://127.0.0.1:{}/v2/library/app/tags/list?n=5",
            berth.port()
        )
    );
    // Following it with the CA works end to end.
    let out = Command::new("curl")
        .args([
            "-s",
            "-L",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
        ])
        .arg(berth.tls_ca().expect("TLS"))
        .arg(format!("http://localhost:{plain}/v2/"))
        .output()
        .expect("run curl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "401",
        "the HTTPS endpoint answered"
    );
}

/// The token realm a 401 names, for a request with these headers.
fn realm(berth: &Berth, headers: &[&str]) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-D", "-", "--cacert"])
        .arg(berth.tls_ca().expect("TLS"));
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd
        .arg(format!("https://localhost:{}/v2/", berth.port()))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("www-authenticate"))
        .unwrap_or_else(|| panic!("no challenge in {text}"));
    line.split("realm=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("realm")
        .to_owned()
}

#[test]
fn forwarded_headers_count_only_from_trusted_proxies() {
    let forwarded = [
        "X-Forwarded-Proto: https",
        "X-Forwarded-Host: registry.example.org",
    ];
    let trusting =
        Berth::start_tls_with_env(&[("BERTH_SERVER__TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")]);
    assert_eq!(
        realm(&trusting, &forwarded),
        "https://registry.example.org/service/token"
    );
    let host = format!("localhost:{}", trusting.port());
    assert_eq!(
        realm(&trusting, &[]),
        format!("https://{host}/service/token")
    );
    let other = Berth::start_tls_with_env(&[("BERTH_SERVER__TRUSTED_PROXIES", "10.0.0.0/8")]);
    let host = format!("localhost:{}", other.port());
    assert_eq!(
        realm(&other, &forwarded),
        format!("https://{host}/service/token"),
        "a peer outside trusted_proxies cannot set the realm"
    );
}
