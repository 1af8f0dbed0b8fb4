//! Harbor's projects and roles through the clients people use (skopeo,
//! podman, docker where a Docker engine runs): what a Guest, Developer and
//! Maintainer may do, outsiders and anonymous callers on private and public
//! projects, robot accounts (confined to their project, disabled, expired),
//! roles given to an LDAP group, and what each client shows for a push to a
//! project that does not exist.
#![allow(clippy::unwrap_used)]

#[path = "../../auth/tests/support/slapd.rs"]
mod slapd;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use berth_tests::content::{random_suffix, sha256_digest, OCI_MANIFEST};
use berth_tests::registry::curl;
use berth_tests::tools::{
    assert_login_refused, docker_unavailable, layout_digest, rootfs_tarball, run, skopeo_copy,
    skopeo_login, text, write_oci_layout, DockerImages, Podman,
};
use berth_tests::{Api, Berth, Image};
use serde_json::{json, Value};
use slapd::{Slapd, BOB, CAROL, DEVELOPERS_DN, PEOPLE_DN, READER_DN};

// Harbor's role ids.
const PROJECT_ADMIN: i64 = 1;
const DEVELOPER: i64 = 2;
const GUEST: i64 = 3;
const MAINTAINER: i64 = 4;

/// What berth says when a private project is hidden from the caller.
const NO_ACCESS: &str = "was not found or you have no access to it";

/// What a client prints when a push to a project the caller may not see
/// is refused. skopeo and podman (containers/image) start with a blob
/// HEAD, whose answer has no body: berth answers it 404 (the blob is not
/// there for this caller), so they go on to the upload POST and print the
/// DENIED message it carries.
fn hidden_push(repo: &str) -> [String; 2] {
    let project = repo.split('/').next().unwrap_or(repo);
    [format!("project `{project}`"), NO_ACCESS.to_owned()]
}

/// One identity's skopeo auth file and podman (storage and auth file of its
/// own), logged in to berth unless anonymous.
struct Client {
    host: String,
    dir: PathBuf,
    authfile: PathBuf,
    podman: Podman,
}

impl Client {
    /// Logs `user` in with skopeo and podman; both must succeed.
    fn login(berth: &Berth, user: &str, password: &str) -> Client {
        let client = Client::anonymous(berth, user);
        let out = skopeo_login(&client.authfile, &client.host, user, password);
        assert!(out.status.success(), "skopeo login {user}: {}", text(&out));
        let out = client.podman.login(&client.host, user, password);
        assert!(out.status.success(), "podman login {user}: {}", text(&out));
        client
    }

    /// No login: empty auth files (podman refuses one that does not
    /// exist).
    fn anonymous(berth: &Berth, label: &str) -> Client {
        let dir = berth.scratch_dir().join(format!(
            "client-{}-{}",
            label.replace('$', "_"),
            random_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let client = Client {
            host: berth.host_port(),
            authfile: dir.join("skopeo-auth.json"),
            // podman refuses a run root path longer than 50 characters.
            podman: Podman::new(&berth.scratch_dir().join(format!("p{}", random_suffix()))),
            dir,
        };
        for file in [&client.authfile, &client.podman.authfile] {
            std::fs::write(file, r#"{"auths":{}}"#).unwrap();
        }
        client
    }

    fn docker_ref(&self, reference: &str) -> String {
        format!("docker://{}/{reference}", self.host)
    }

    /// `skopeo copy` of a new random image to `reference` (`repo:tag`).
    fn skopeo_push(&self, reference: &str) -> (Output, Image) {
        let image = Image::random(1);
        let layout = self.dir.join(format!("src-{}", random_suffix()));
        let src = write_oci_layout(&layout, &image, "v1");
        let out = skopeo_copy(&self.authfile, &src, &self.docker_ref(reference));
        (out, image)
    }

    /// `skopeo copy` of `reference` into an OCI layout; the manifest digest
    /// on success.
    fn skopeo_pull(&self, reference: &str) -> (Output, Option<String>) {
        let layout = self.dir.join(format!("pulled-{}", random_suffix()));
        let dest = format!("oci:{}:v1", layout.display());
        let out = skopeo_copy(&self.authfile, &self.docker_ref(reference), &dest);
        let digest = out.status.success().then(|| layout_digest(&layout, "v1"));
        (out, digest)
    }

    fn skopeo_delete(&self, reference: &str) -> Output {
        let authfile = self.authfile.to_string_lossy().into_owned();
        run(
            "skopeo",
            &[
                "delete",
                "--tls-verify=false",
                "--authfile",
                &authfile,
                &self.docker_ref(reference),
            ],
            &[],
            None,
        )
    }

    /// `podman pull host/reference`.
    fn podman_pull(&self, reference: &str) -> Output {
        let full = format!("{}/{reference}", self.host);
        self.podman
            .run(&["pull", "--tls-verify=false", &full], None)
    }

    /// `podman import` of a small rootfs as `host/reference`, then `podman
    /// push` of it.
    fn podman_push(&self, reference: &str) -> Output {
        let full = format!("{}/{reference}", self.host);
        let tarball = rootfs_tarball(&self.dir);
        let out = self
            .podman
            .run(&["import", tarball.to_str().unwrap(), &full], None);
        assert!(out.status.success(), "podman import: {}", text(&out));
        self.podman
            .run(&["push", "--tls-verify=false", &full], None)
    }
}

/// Asserts that a client command succeeded.
fn ok(what: &str, out: &Output) {
    assert!(out.status.success(), "{what}: {}", text(out));
}

/// Asserts that a client command failed and that its output holds every
/// one of `needles`; returns the output.
fn refused(what: &str, out: &Output, needles: &[&str]) -> String {
    let output = text(out);
    assert!(
        !out.status.success(),
        "{what} should have failed:\n{output}"
    );
    for needle in needles {
        assert!(
            output.contains(needle),
            "{what}: expected {needle:?} in\n{output}"
        );
    }
    output
}

/// A docker CLI with a config directory of its own.
struct Docker {
    config: PathBuf,
}

impl Docker {
    fn new(berth: &Berth, label: &str) -> Docker {
        let config = berth.scratch_dir().join(format!("docker-{label}"));
        std::fs::create_dir_all(&config).unwrap();
        Docker { config }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let env: [(&str, &OsStr); 1] = [("DOCKER_CONFIG", self.config.as_os_str())];
        run("docker", args, &env, stdin)
    }

    fn login(&self, host: &str, user: &str, password: &str) {
        let out = self.run(
            &["login", "--username", user, "--password-stdin", host],
            Some(password),
        );
        ok(&format!("docker login {user}"), &out);
    }

    /// `docker import` of a small rootfs as `full`, then `docker push`.
    fn import_and_push(&self, dir: &Path, full: &str) -> Output {
        let tarball = rootfs_tarball(dir);
        let out = self.run(&["import", tarball.to_str().unwrap(), full], None);
        ok("docker import", &out);
        self.run(&["push", full], None)
    }
}

#[test]
fn guest_pulls_developer_pushes_maintainer_deletes() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    api.create_project("team", false);
    for (user, role) in [("gus", GUEST), ("dana", DEVELOPER), ("max", MAINTAINER)] {
        api.create_user(user, &format!("{user}-password"));
        api.add_member("team", user, role);
    }
    let base = Image::random(2);
    berth.registry().push_image("team/app", "v1", &base);

    // Guest: pulls with skopeo and podman; pushes are refused, saying why.
    let gus = Client::login(&berth, "gus", "gus-password");
    let (out, digest) = gus.skopeo_pull("team/app:v1");
    ok("guest: skopeo pull", &out);
    assert_eq!(digest.as_deref(), Some(base.manifest.digest.as_str()));
    ok("guest: podman pull", &gus.podman_pull("team/app:v1"));
    let denial = ["denied", "`gus` has the Guest role", "may not push"];
    let (out, _) = gus.skopeo_push("team/app:guest");
    refused("guest: skopeo push", &out, &denial);
    refused(
        "guest: podman push",
        &gus.podman_push("team/app:guest-podman"),
        &denial,
    );
    assert_eq!(berth.registry().tags("team/app"), vec!["v1"]);

    // Developer: pushes with both; deletes are refused.
    let dana = Client::login(&berth, "dana", "dana-password");
    let (out, pushed) = dana.skopeo_push("team/app:dev");
    ok("developer: skopeo push", &out);
    berth.registry().assert_image("team/app", "dev", &pushed);
    ok(
        "developer: podman push",
        &dana.podman_push("team/app:dev-podman"),
    );
    refused(
        "developer: skopeo delete",
        &dana.skopeo_delete("team/app:dev"),
        // skopeo shows the error body of the DELETE as it came.
        &["DENIED", "`dana` has the Developer role", "may not delete"],
    );
    berth.registry().assert_image("team/app", "dev", &pushed);

    // Maintainer: deletes.
    let max = Client::login(&berth, "max", "max-password");
    ok(
        "maintainer: skopeo delete",
        &max.skopeo_delete("team/app:dev"),
    );
    let resp = berth.registry().get_manifest("team/app", "dev");
    assert_eq!(resp.status(), 404, "team/app:dev after the delete");
    let (out, _) = gus.skopeo_pull("team/app:dev");
    assert!(!out.status.success(), "pull after delete: {}", text(&out));

    match docker_unavailable() {
        Some(why) => println!("skipping the docker part: {why}"),
        None => {
            let host = berth.host_port();
            let docker = Docker::new(&berth, "gus");
            docker.login(&host, "gus", "gus-password");
            let pulled = format!("{host}/team/app:v1");
            let pushed = format!("{host}/team/app:guest-docker-{}", random_suffix());
            let _cleanup = DockerImages(vec![pulled.clone(), pushed.clone()]);
            ok("guest: docker pull", &docker.run(&["pull", &pulled], None));
            let out = docker.import_and_push(berth.scratch_dir(), &pushed);
            // docker prints the registry's message after "denied: ".
            refused("guest: docker push", &out, &denial);
        }
    }
}

#[test]
fn outsiders_and_anonymous_callers_see_only_public_projects() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    api.create_project("secret", false);
    api.create_project("open", true);
    let (status, _, project) = api.get("/projects/open");
    assert_eq!(status, 200, "{project}");
    assert_eq!(project["metadata"]["public"], "true", "{project}");
    let private = Image::random(1);
    let public = Image::random(1);
    berth.registry().push_image("secret/app", "v1", &private);
    berth.registry().push_image("open/app", "v1", &public);
    api.create_user("olga", "olga-password");

    // A logged-in user who is no member: the private project is hidden,
    // the public one is pull-only.
    let olga = Client::login(&berth, "olga", "olga-password");
    let (out, _) = olga.skopeo_pull("secret/app:v1");
    refused("outsider: skopeo pull", &out, &["secret", NO_ACCESS]);
    refused(
        "outsider: podman pull",
        &olga.podman_pull("secret/app:v1"),
        &[NO_ACCESS],
    );
    let (out, digest) = olga.skopeo_pull("open/app:v1");
    ok("outsider: skopeo pull of the public project", &out);
    assert_eq!(digest.as_deref(), Some(public.manifest.digest.as_str()));
    let (out, _) = olga.skopeo_push("open/app:olga");
    refused(
        "outsider: skopeo push to the public project",
        &out,
        &["denied", "not a member of project `open`"],
    );

    // Anonymous: skopeo with --src-no-creds, podman without a login, curl.
    let anonymous_copy = |reference: &str| {
        let layout = berth
            .scratch_dir()
            .join(format!("anon-{}", random_suffix()));
        let out = run(
            "skopeo",
            &[
                "--insecure-policy",
                "copy",
                "--src-tls-verify=false",
                "--src-no-creds",
                &format!("docker://{}/{reference}", berth.host_port()),
                &format!("oci:{}:v1", layout.display()),
            ],
            &[],
            None,
        );
        let digest = out.status.success().then(|| layout_digest(&layout, "v1"));
        (out, digest)
    };
    let (out, digest) = anonymous_copy("open/app:v1");
    ok("anonymous: skopeo pull of the public project", &out);
    assert_eq!(digest.as_deref(), Some(public.manifest.digest.as_str()));
    let (out, _) = anonymous_copy("secret/app:v1");
    // The anonymous token grants nothing on a private project: skopeo
    // shows the 401 of the manifest GET.
    refused(
        "anonymous: skopeo pull of the private project",
        &out,
        &["unauthorized"],
    );
    let nobody = Client::anonymous(&berth, "nobody");
    ok(
        "anonymous: podman pull of the public project",
        &nobody.podman_pull("open/app:v1"),
    );
    let out = nobody.podman_pull("secret/app:v1");
    assert!(!out.status.success(), "anonymous podman: {}", text(&out));

    let anonymous_curl = |path: &str| {
        let resp = curl(&[
            "-H",
            &format!("Accept: {OCI_MANIFEST}"),
            &format!("{}{path}", berth.url()),
        ]);
        let body = String::from_utf8_lossy(&resp.body).into_owned();
        (resp.status, body)
    };
    let (status, body) = anonymous_curl("/v2/open/app/manifests/v1");
    assert_eq!(status, 200, "{body}");
    assert_eq!(sha256_digest(body.as_bytes()), public.manifest.digest);
    for path in ["/v2/secret/app/manifests/v1", "/v2/secret/app/tags/list"] {
        let (status, body) = anonymous_curl(path);
        assert_eq!(status, 401, "anonymous curl {path}: {body}");
        assert!(body.contains("UNAUTHORIZED"), "{body}");
    }
}

/// Harbor's `RobotCreate` for a project robot of `project` with these
/// repository actions.
fn project_robot(name: &str, project: &str, actions: &[&str], duration: i64) -> Value {
    let access: Vec<Value> = actions
        .iter()
        .map(|a| json!({"resource": "repository", "action": a}))
        .collect();
    json!({
        "name": name,
        "level": "project",
        "duration": duration,
        "disable": false,
        "description": "",
        "permissions": [{"kind": "project", "namespace": project, "access": access}],
    })
}

#[test]
fn robots_stay_in_their_project_and_disabled_or_expired_ones_cannot_log_in() {
    let mut berth = Berth::start();
    let api = Api::admin(&berth);
    api.create_project("alpha", false);
    api.create_project("beta", false);
    berth
        .registry()
        .push_image("beta/app", "v1", &Image::random(1));

    let (name, secret) = api.create_robot(&project_robot("ci", "alpha", &["pull", "push"], -1));
    assert_eq!(name, "robot$alpha+ci");
    let robot = Client::login(&berth, &name, &secret);
    let (out, image) = robot.skopeo_push("alpha/app:1");
    ok("robot: skopeo push to its project", &out);
    berth.registry().assert_image("alpha/app", "1", &image);
    ok(
        "robot: podman push to its project",
        &robot.podman_push("alpha/app:2"),
    );
    let (out, _) = robot.skopeo_push("beta/app:robot");
    refused(
        "robot: skopeo push to beta",
        &out,
        &hidden_push("beta/app").each_ref().map(String::as_str),
    );
    let (out, _) = robot.skopeo_pull("beta/app:v1");
    refused("robot: skopeo pull from beta", &out, &["beta", NO_ACCESS]);
    refused(
        "robot: podman push to beta",
        &robot.podman_push("beta/app:robot-podman"),
        &hidden_push("beta/app").each_ref().map(String::as_str),
    );
    assert_eq!(berth.registry().tags("beta/app"), vec!["v1"]);

    // Disabled after it logged in: its next login is refused.
    let off = project_robot("off", "alpha", &["pull", "push"], -1);
    let (id, name, secret) = api.create_robot_with_id(&off);
    Client::login(&berth, &name, &secret);
    let mut disabled = off.clone();
    disabled["name"] = json!(name);
    disabled["disable"] = json!(true);
    api.update_robot(id, &disabled);
    let (status, _, got) = api.get(&format!("/robots/{id}"));
    assert_eq!((status, &got["disable"]), (200, &json!(true)), "{got}");
    assert_login_refused(
        &berth.host_port(),
        berth.scratch_dir(),
        &name,
        &secret,
        "is disabled",
    );

    // Expired: the API only takes whole days from now, so the robot's
    // expiry is moved into the past in the database while berth is
    // stopped, as if it had been created long ago.
    let (id, name, secret) = api.create_robot_with_id(&project_robot("old", "alpha", &["pull"], 1));
    let (_, _, got) = api.get(&format!("/robots/{id}"));
    assert!(got["expires_at"].as_i64().unwrap() > 0, "{got}");
    Client::login(&berth, &name, &secret);
    berth.stop();
    let past = berth_tests::jwt::now() - 60;
    berth.sql(&format!(
        "UPDATE robots SET expires_at = {past} WHERE id = {id};"
    ));
    berth.restart();
    assert_login_refused(
        &berth.host_port(),
        berth.scratch_dir(),
        &name,
        &secret,
        "has expired",
    );
    // The robot that neither expired nor was disabled still logs in.
    let (name, secret) = api.create_robot(&project_robot("fresh", "alpha", &["pull"], -1));
    Client::login(&berth, &name, &secret);
}

#[test]
fn ldap_group_members_get_the_groups_role() {
    let slapd = Slapd::start();
    let berth = Berth::start_with_env(&[
        ("BERTH_AUTH__MODE", "ldap"),
        ("BERTH_LDAP__URL", &slapd.url()),
        ("BERTH_LDAP__SEARCH_DN", READER_DN),
        ("BERTH_LDAP__SEARCH_PASSWORD", slapd::READER_PASSWORD),
        ("BERTH_LDAP__BASE_DN", PEOPLE_DN),
        ("BERTH_LDAP__FILTER", "(objectClass=inetOrgPerson)"),
        ("BERTH_LDAP__UID", "uid"),
        ("BERTH_LDAP__SCOPE", "subtree"),
        ("BERTH_LDAP__TIMEOUT", "5s"),
        ("BERTH_LDAP__GROUP_MEMBERSHIP_ATTRIBUTE", "memberOf"),
    ]);
    let api = Api::admin(&berth);
    api.create_project("devs", false);
    let mid = api.add_group_member("devs", DEVELOPERS_DN, DEVELOPER);
    let (status, _, member) = api.get(&format!("/projects/devs/members/{mid}"));
    assert_eq!(status, 200, "{member}");
    assert_eq!(
        (
            &member["entity_name"],
            &member["entity_type"],
            &member["role_id"]
        ),
        (&json!("developers"), &json!("g"), &json!(DEVELOPER)),
        "{member}"
    );

    // bob is in the developers group: a Developer of devs.
    let bob = Client::login(&berth, BOB.uid, BOB.password);
    let (out, image) = bob.skopeo_push("devs/app:1");
    ok("bob (developers group): skopeo push", &out);
    berth.registry().assert_image("devs/app", "1", &image);
    let (out, digest) = bob.skopeo_pull("devs/app:1");
    ok("bob: skopeo pull", &out);
    assert_eq!(digest.as_deref(), Some(image.manifest.digest.as_str()));
    refused(
        "bob (Developer): skopeo delete",
        &bob.skopeo_delete("devs/app:1"),
        &["DENIED", "`bob` has the Developer role", "may not delete"],
    );

    // carol is in no group: the private project is hidden from her.
    let carol = Client::login(&berth, CAROL.uid, CAROL.password);
    let (out, _) = carol.skopeo_push("devs/app:carol");
    refused(
        "carol (no group): skopeo push",
        &out,
        &hidden_push("devs/app").each_ref().map(String::as_str),
    );
    let (out, _) = carol.skopeo_pull("devs/app:1");
    refused("carol: skopeo pull", &out, &[NO_ACCESS]);

    // The group's role can change: as ProjectAdmin, bob may delete.
    let (status, _, body) = api.put(
        &format!("/projects/devs/members/{mid}"),
        &json!({"role_id": PROJECT_ADMIN}),
    );
    assert_eq!(status, 200, "{body}");
    ok(
        "bob (ProjectAdmin): skopeo delete",
        &bob.skopeo_delete("devs/app:1"),
    );
}

#[test]
fn a_push_to_a_missing_project_names_it_in_every_client() {
    let berth = Berth::start();
    let host = berth.host_port();
    let (user, password) = berth.admin_credentials();
    let admin = Client::login(&berth, user, password);

    let (out, _) = admin.skopeo_push("nope/app:1");
    println!("skopeo printed:\n{}\n", text(&out));
    let podman = admin.podman_push("nope/app:1");
    println!("podman printed:\n{}\n", text(&podman));
    let docker = match docker_unavailable() {
        Some(why) => {
            println!("skipping the docker part: {why}");
            None
        }
        None => {
            let docker = Docker::new(&berth, "admin");
            docker.login(&host, user, password);
            let full = format!("{host}/nope/app:{}", random_suffix());
            let _cleanup = DockerImages(vec![full.clone()]);
            let out = docker.import_and_push(berth.scratch_dir(), &full);
            println!("docker printed:\n{}\n", text(&out));
            Some(out)
        }
    };
    // skopeo 1.9.3 printed (stderr):
    //   level=fatal msg="writing blob: initiating layer upload to
    //   /v2/nope/app/blobs/uploads/ in 127.0.0.1:PORT: denied: project `nope`
    //   does not exist; create it first (POST /api/v2.0/projects with
    //   {\"project_name\":\"nope\"}) or push to an existing project"
    // podman 4.3.1 prints the same through containers/image (see
    // hidden_push for why the message reaches them).
    let missing = [
        "project `nope` does not exist",
        "create it first (POST /api/v2.0/projects",
    ];
    refused("skopeo push to nope", &out, &missing);
    refused("podman push to nope", &podman, &missing);
    // docker 28.2 (engine 20.10) printed (stderr):
    //   denied: project `nope` does not exist; create it first (POST
    //   /api/v2.0/projects with {"project_name":"nope"}) or push to an
    //   existing project
    if let Some(out) = docker {
        refused(
            "docker push to nope",
            &out,
            &[
                "denied: project `nope` does not exist",
                "create it first (POST /api/v2.0/projects",
            ],
        );
    }
    let resp = berth.registry().get_manifest("nope/app", "1");
    assert_eq!(resp.status(), 403, "nothing was created under nope");
}

/// Harbor's `/statistics`: counts of what the caller may see; the bytes
/// stored for administrators only; harborapi parses it.
#[test]
fn statistics_count_what_the_caller_may_see() {
    let berth = Berth::start();
    let admin = Api::admin(&berth);
    admin.create_project("open", true);
    admin.create_project("closed", false);
    admin.create_project("other", false);
    let registry = berth.registry();
    for repo in ["open/a", "closed/b", "closed/c/d", "other/e"] {
        registry.push_image(repo, "v1", &Image::random(1));
    }
    admin.create_user("alice", "alice-pw-1");
    admin.add_member("closed", "alice", GUEST);
    let alice = Api::as_user(&berth, "alice", "alice-pw-1");
    let counts = |s: &Value| {
        [
            "public_project_count",
            "private_project_count",
            "public_repo_count",
            "private_repo_count",
            "total_project_count",
            "total_repo_count",
        ]
        .map(|k| s[k].as_i64().unwrap())
    };
    // `library` is public and empty.
    let (status, _, all) = admin.get("/statistics");
    assert_eq!(status, 200, "{all}");
    assert_eq!(counts(&all), [2, 2, 1, 3, 4, 4], "{all}");
    assert!(
        all["total_storage_consumption"].as_i64().unwrap() > 0,
        "{all}"
    );
    let (status, _, mine) = alice.get("/statistics");
    assert_eq!(status, 200, "{mine}");
    assert_eq!(counts(&mine), [2, 1, 1, 2, 3, 3], "{mine}");
    assert_eq!(mine["total_storage_consumption"], 0);
    assert_eq!(Api::anonymous(&berth).get("/statistics").0, 401);

    let script = r#"
import asyncio, os
from harborapi import HarborAsyncClient
async def main():
    c = HarborAsyncClient(url=os.environ["BERTH_URL"] + "/api/v2.0",
                          username="alice", secret="alice-pw-1")
    s = await c.get_statistics()
    print(s.private_project_count, s.private_repo_count, s.total_repo_count)
asyncio.run(main())
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .env("BERTH_URL", berth.url())
        .output()
        .unwrap();
    assert!(out.status.success(), "harborapi: {}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1 2 3");
}
