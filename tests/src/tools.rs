//! Real command-line clients (skopeo, podman, docker) run by the tests, each
//! with its own auth file or config directory so that tests share no login
//! state; and an OCI image layout on disk for skopeo to copy.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

use crate::content::{random_bytes, random_suffix, to_json, OCI_INDEX};
use crate::tar::{archive, Entry};
use crate::Image;

/// Runs `program` with `args`, extra environment and optional standard
/// input; returns its output whatever the exit status.
pub fn run(program: &str, args: &[&str], envs: &[(&str, &OsStr)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args).env("NO_PROXY", "*");
    for (key, value) in envs {
        cmd.env(key, value);
    }
    output(&mut cmd, stdin)
}

/// Runs a prepared command with optional standard input; returns its
/// output whatever the exit status.
pub fn output(cmd: &mut Command, stdin: Option<&str>) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for command")
}

/// [`run`], asserting success; returns the output.
pub fn run_ok(
    program: &str,
    args: &[&str],
    envs: &[(&str, &OsStr)],
    stdin: Option<&str>,
) -> Output {
    let out = run(program, args, envs, stdin);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{}",
        out.status,
        text(&out)
    );
    out
}

/// [`run`], asserting failure; returns stdout and stderr together.
pub fn run_failing(
    program: &str,
    args: &[&str],
    envs: &[(&str, &OsStr)],
    stdin: Option<&str>,
) -> String {
    let out = run(program, args, envs, stdin);
    assert!(
        !out.status.success(),
        "{program} {args:?} should have failed but succeeded:\n{}",
        text(&out)
    );
    text(&out)
}

/// stdout and stderr of a command, for messages and `contains` checks.
pub fn text(out: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// podman with storage, run root and temp dirs of its own (vfs driver), and
/// an auth file of its own.
pub struct Podman {
    global: Vec<String>,
    pub authfile: PathBuf,
}

impl Podman {
    /// A podman whose state lives under `dir`.
    pub fn new(dir: &Path) -> Podman {
        for d in ["root", "runroot", "tmp"] {
            std::fs::create_dir_all(dir.join(d)).expect("create podman dirs");
        }
        Podman {
            global: vec![
                format!("--root={}", dir.join("root").display()),
                format!("--runroot={}", dir.join("runroot").display()),
                format!("--tmpdir={}", dir.join("tmp").display()),
                "--storage-driver=vfs".to_string(),
                "--events-backend=file".to_string(),
            ],
            authfile: dir.join("auth.json"),
        }
    }

    /// Runs `podman <global flags> <args>` (stdin optional).
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut all: Vec<&str> = self.global.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        let auth = self.authfile.as_os_str();
        run("podman", &all, &[("REGISTRY_AUTH_FILE", auth)], stdin)
    }

    /// [`Podman::run`] with extra environment (`CONTAINERS_REGISTRIES_CONF`...).
    pub fn run_with_env(&self, args: &[&str], envs: &[(&str, &OsStr)]) -> Output {
        let mut all: Vec<&str> = self.global.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        let mut env: Vec<(&str, &OsStr)> = vec![("REGISTRY_AUTH_FILE", self.authfile.as_os_str())];
        env.extend_from_slice(envs);
        run("podman", &all, &env, None)
    }

    /// `podman login --tls-verify=false --authfile F -u USER --password-stdin HOST`.
    pub fn login(&self, host: &str, user: &str, password: &str) -> Output {
        self.login_with(&[], host, user, password)
    }

    /// [`Podman::login`] with `--log-level=debug`: podman prints its own
    /// fixed text for a refused login, and the registry's message only in
    /// the debug log.
    pub fn login_debug(&self, host: &str, user: &str, password: &str) -> Output {
        self.login_with(&["--log-level=debug"], host, user, password)
    }

    fn login_with(&self, flags: &[&str], host: &str, user: &str, password: &str) -> Output {
        let authfile = self.authfile.to_string_lossy().into_owned();
        let mut args = flags.to_vec();
        args.extend_from_slice(&[
            "login",
            "--tls-verify=false",
            "--authfile",
            &authfile,
            "--username",
            user,
            "--password-stdin",
            host,
        ]);
        self.run(&args, Some(password))
    }
}

/// `skopeo login --tls-verify=false --authfile F -u USER --password-stdin HOST`.
pub fn skopeo_login(authfile: &Path, host: &str, user: &str, password: &str) -> Output {
    skopeo_login_with(&[], authfile, host, user, password)
}

/// [`skopeo_login`] with `--debug` (see [`Podman::login_debug`]).
pub fn skopeo_login_debug(authfile: &Path, host: &str, user: &str, password: &str) -> Output {
    skopeo_login_with(&["--debug"], authfile, host, user, password)
}

fn skopeo_login_with(
    flags: &[&str],
    authfile: &Path,
    host: &str,
    user: &str,
    password: &str,
) -> Output {
    let authfile = authfile.to_string_lossy().into_owned();
    let mut args = flags.to_vec();
    args.extend_from_slice(&[
        "login",
        "--tls-verify=false",
        "--authfile",
        &authfile,
        "--username",
        user,
        "--password-stdin",
        host,
    ]);
    run("skopeo", &args, &[], Some(password))
}

/// `skopeo copy` between two transports with the logins in `authfile`.
pub fn skopeo_copy(authfile: &Path, src: &str, dest: &str) -> Output {
    let authfile = authfile.to_string_lossy().into_owned();
    run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--authfile",
            &authfile,
            src,
            dest,
        ],
        &[],
        None,
    )
}

/// One `skopeo copy` of `image` (written as an OCI layout under
/// `scratch`) to `docker://<host>/<reference>` with `creds` (`user:pw`),
/// without retries: what a refused push answers is the point.
pub fn skopeo_push_once(
    scratch: &Path,
    image: &Image,
    host: &str,
    reference: &str,
    creds: &str,
) -> Output {
    let dir = scratch.join(format!("layout-{}", &image.manifest.digest[7..19]));
    let src = write_oci_layout(&dir, image, "t");
    let dest = format!("docker://{host}/{reference}");
    run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--retry-times=0",
            "--dest-tls-verify=false",
            "--dest-creds",
            creds,
            &src,
            &dest,
        ],
        &[],
        None,
    )
}

/// Writes an OCI image layout at `dir` holding `image` under `tag`;
/// returns `oci:<dir>:<tag>` for skopeo.
pub fn write_oci_layout(dir: &Path, image: &Image, tag: &str) -> String {
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("create layout dir");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("write oci-layout");
    for blob in image.blobs().into_iter().chain([&image.manifest]) {
        let hex = blob.digest.strip_prefix("sha256:").expect("sha256 digest");
        std::fs::write(dir.join("blobs/sha256").join(hex), &blob.data).expect("write blob");
    }
    let mut descriptor = image.manifest.descriptor();
    descriptor["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor]});
    std::fs::write(dir.join("index.json"), to_json(&index)).expect("write index.json");
    format!("oci:{}:{tag}", dir.display())
}

/// The manifest digest that an OCI layout's index.json names `tag`.
pub fn layout_digest(dir: &Path, tag: &str) -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("read index.json"))
            .expect("index.json is JSON");
    index["manifests"]
        .as_array()
        .expect("manifests array")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {index}"))["digest"]
        .as_str()
        .expect("digest string")
        .to_string()
}

/// `skopeo copy` of `image` (written as an OCI layout under `scratch`) to
/// `docker://<host>/<reference>` with the logins in `authfile`.
pub fn skopeo_push(
    host: &str,
    scratch: &Path,
    authfile: &Path,
    image: &Image,
    reference: &str,
) -> Output {
    let dir = scratch.join(format!("push-{}", crate::content::random_suffix()));
    let layout = write_oci_layout(&dir, image, "t");
    skopeo_copy(authfile, &layout, &format!("docker://{host}/{reference}"))
}

/// Pulls `docker://<host>/<reference>` into an OCI layout under `scratch`
/// with skopeo; the manifest digest it got.
pub fn skopeo_pull_digest(host: &str, scratch: &Path, authfile: &Path, reference: &str) -> String {
    let dir = scratch.join(format!("pull-{}", crate::content::random_suffix()));
    let out = skopeo_copy(
        authfile,
        &format!("docker://{host}/{reference}"),
        &format!("oci:{}:t", dir.display()),
    );
    assert!(out.status.success(), "pull {reference}: {}", text(&out));
    layout_digest(&dir, "t")
}

/// A rootfs tarball with a few files, for `podman import` / `docker import`.
pub fn rootfs_tarball(dir: &Path) -> PathBuf {
    let hello = format!("hello from berth {}\n", random_suffix());
    let payload = random_bytes(20_000);
    let tar = archive(&[
        Entry {
            path: "etc/",
            data: None,
        },
        Entry {
            path: "etc/hello",
            data: Some(hello.as_bytes()),
        },
        Entry {
            path: "opt/",
            data: None,
        },
        Entry {
            path: "opt/payload.bin",
            data: Some(&payload),
        },
    ]);
    let path = dir.join(format!("rootfs-{}.tar", random_suffix()));
    std::fs::write(&path, tar).expect("write rootfs tarball");
    path
}

/// Why the docker CLI cannot be used here, or `None` when `docker info`
/// works (tests skip with that reason printed).
pub fn docker_unavailable() -> Option<String> {
    match Command::new("docker").arg("info").output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "docker info failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run docker: {e}")),
    }
}

/// docker (with a config directory of its own under `scratch`, so the
/// login stays out of ~/.docker) logs in to `host`, imports a small image,
/// pushes it, removes it, and pulls it back: the manifest `registry`
/// serves is the one docker pushed, and the pulled image is the same.
pub fn docker_push_and_pull(
    host: &str,
    user: &str,
    password: &str,
    scratch: &Path,
    registry: &crate::Registry,
) {
    let config = scratch.join("docker-config");
    std::fs::create_dir_all(&config).expect("create docker config dir");
    let envs = [("DOCKER_CONFIG", config.as_os_str())];
    let docker = |args: &[&str], stdin: Option<&str>| {
        let out = run("docker", args, &envs, stdin);
        assert!(out.status.success(), "docker {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    docker(
        &["login", "--username", user, "--password-stdin", host],
        Some(password),
    );
    let repo = format!("library/x{}", random_suffix());
    let reference = format!("{host}/{repo}:1");
    let _cleanup = DockerImages(vec![reference.clone()]);
    let tarball = rootfs_tarball(scratch);
    docker(&["import", &tarball.to_string_lossy(), &reference], None);
    let id = docker(&["image", "inspect", "-f", "{{.Id}}", &reference], None);
    let pushed = pushed_digest(&docker(&["push", &reference], None));
    let resp = registry.get_manifest(&repo, "1");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        crate::content::sha256_digest(&resp.bytes().expect("manifest body")),
        pushed,
        "stored manifest vs docker's digest"
    );

    docker(&["rmi", &reference], None);
    let gone = run("docker", &["image", "inspect", &reference], &[], None);
    assert!(
        !gone.status.success(),
        "the image is still present locally after rmi"
    );
    docker(&["pull", &reference], None);
    let pulled = docker(&["image", "inspect", "-f", "{{.Id}}", &reference], None);
    assert_eq!(pulled, id, "image id after pull");
    let digests = docker(
        &[
            "image",
            "inspect",
            "-f",
            "{{json .RepoDigests}}",
            &reference,
        ],
        None,
    );
    assert!(
        digests.contains(&pushed),
        "RepoDigests {digests} lack {pushed}"
    );
}

/// The manifest digest `docker push` printed (`... digest: sha256:... size: N`).
pub fn pushed_digest(push_output: &str) -> String {
    push_output
        .split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .unwrap_or_else(|| panic!("no digest in docker push output: {push_output}"))
        .to_string()
}

/// Removes docker images when a test ends, passing or failing.
pub struct DockerImages(pub Vec<String>);

impl Drop for DockerImages {
    fn drop(&mut self) {
        for image in &self.0 {
            let _ = Command::new("docker")
                .args(["rmi", "--force", image])
                .output();
        }
    }
}

/// What podman and skopeo print for any 401 from the token service.
pub const CLIENT_REFUSED: &str = "invalid username/password";

/// Asserts that podman and skopeo logins to `host` are refused (each with
/// state of its own under `scratch`). Both print their own fixed
/// [`CLIENT_REFUSED`] for any 401 from the token service and show the
/// registry's message only in their debug log, so that is where `message`
/// must appear.
pub fn assert_login_refused(host: &str, scratch: &Path, user: &str, password: &str, message: &str) {
    let dir = scratch.join(format!("refused-{}", random_suffix()));
    let podman = Podman::new(&dir);
    let authfile = dir.join("skopeo-auth.json");
    let attempts = [
        ("podman login", podman.login(host, user, password)),
        (
            "skopeo login",
            skopeo_login(&authfile, host, user, password),
        ),
        (
            "podman --log-level=debug login",
            podman.login_debug(host, user, password),
        ),
        (
            "skopeo --debug login",
            skopeo_login_debug(&authfile, host, user, password),
        ),
    ];
    for (i, (what, out)) in attempts.iter().enumerate() {
        let output = text(out);
        assert!(!out.status.success(), "{what} as {user}: {output}");
        let expected = if i < 2 { CLIENT_REFUSED } else { message };
        assert!(
            output.contains(expected),
            "{what} as {user}: expected {expected:?} in\n{output}"
        );
    }
    for file in [&podman.authfile, &authfile] {
        let saved = std::fs::read_to_string(file).unwrap_or_default();
        assert!(
            !saved.contains(host),
            "a refused login was saved in {}: {saved}",
            file.display()
        );
    }
}
