//! `berth backup` of a running berth while skopeo pushes to it, and
//! `berth restore` into a fresh data directory: every image the backup
//! holds pulls back with identical digests, a rerun copies only what is
//! new, stored secrets still open (the key travels with the backup, the
//! database copy holds none in clear), and a blob damaged in the backup is
//! reported by restore, which then puts nothing in place.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;

use berth_tests::tools::{output, skopeo_login, skopeo_pull_digest, skopeo_push, text};
use berth_tests::{Api, Berth, Image};
use serde_json::json;

const SECRET: &str = "endpoint-secret-4d2a90";

fn login(berth: &Berth) -> std::path::PathBuf {
    let auth = berth.scratch_dir().join("auth.json");
    let (user, password) = berth.admin_credentials();
    let out = skopeo_login(&auth, &berth.host_port(), user, password);
    assert!(out.status.success(), "{}", text(&out));
    auth
}

fn push(host: &str, scratch: &Path, auth: &Path, image: &Image, reference: &str) {
    let out = skopeo_push(host, scratch, auth, image, reference);
    assert!(out.status.success(), "push {reference}: {}", text(&out));
}

fn pull_digest(berth: &Berth, auth: &Path, reference: &str) -> String {
    skopeo_pull_digest(&berth.host_port(), berth.scratch_dir(), auth, reference)
}

/// `berth restore --from DIR` into `data` (a new data directory).
fn restore(berth: &Berth, from: &Path, data: &Path) -> Output {
    output(
        berth
            .command(&["restore", "--from", &from.to_string_lossy()])
            .env("BERTH_DATA_DIR", data),
        None,
    )
}

/// Starts berth on a restored data directory and checks that each tag it
/// lists pulls with the digest pushed; returns the tags.
fn check_restored(data: &Path, images: &[(String, Image)]) -> Vec<String> {
    let berth = Berth::start_in(data);
    let auth = login(&berth);
    let (status, _, tags) = Api::admin(&berth)
        .get("/projects/team/repositories/app/artifacts?page_size=100&with_tag=true");
    assert_eq!(status, 200, "{tags}");
    let mut found = Vec::new();
    for artifact in tags.as_array().unwrap() {
        for tag in artifact["tags"].as_array().unwrap() {
            let name = tag["name"].as_str().unwrap().to_owned();
            let (_, image) = images.iter().find(|(t, _)| *t == name).unwrap();
            assert_eq!(
                pull_digest(&berth, &auth, &format!("team/app:{name}")),
                image.manifest.digest,
                "{name}"
            );
            found.push(name);
        }
    }
    found.sort();
    found
}

#[test]
fn a_backup_taken_during_pushes_restores_every_image_it_holds() {
    let berth = Berth::start();
    let api = Api::admin(&berth);
    api.create_project("team", false);
    let endpoint = api.create_registry(
        "up",
        "docker-registry",
        "http://127.0.0.1:9",
        Some(("robot", SECRET)),
    );
    let auth = login(&berth);
    let images: Vec<(String, Image)> = (1..=8)
        .map(|i| (format!("v{i}"), Image::random(2)))
        .collect();
    for (tag, image) in &images[..3] {
        push(
            &berth.host_port(),
            berth.scratch_dir(),
            &auth,
            image,
            &format!("team/app:{tag}"),
        );
    }

    // Pushes go on while the backup runs.
    let root = tempfile::tempdir().unwrap();
    let backup = root.path().join("backup");
    let pushing = {
        let (host, scratch, auth) = (
            berth.host_port(),
            berth.scratch_dir().to_owned(),
            auth.clone(),
        );
        let rest: Vec<(String, Image)> = images[3..].to_vec();
        std::thread::spawn(move || {
            for (tag, image) in &rest {
                push(&host, &scratch, &auth, image, &format!("team/app:{tag}"));
            }
        })
    };
    let out = output(
        &mut berth.command(&["backup", "--to", &backup.to_string_lossy()]),
        None,
    );
    assert!(out.status.success(), "backup: {}", text(&out));
    pushing.join().unwrap();
    let during = root.path().join("during");
    let cp = std::process::Command::new("cp")
        .args(["-a", &backup.to_string_lossy(), &during.to_string_lossy()])
        .status()
        .unwrap();
    assert!(cp.success());

    // The backup's database holds no secret in clear; the folder, the
    // database and the key are berth's alone.
    let db = std::fs::read(backup.join("berth.db")).unwrap();
    assert!(!db.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(&backup), 0o700);
    assert_eq!(mode(&backup.join("blobs")), 0o700);
    assert_eq!(mode(&backup.join("berth.db")), 0o600);
    assert_eq!(mode(&backup.join("secret.key")), 0o600);

    // A folder that is or overlaps the installation's own is refused (the
    // snapshot would replace the live database, or live blobs be dropped).
    let data = berth.data_dir().to_owned();
    for inside in [
        data.clone(),
        data.join("blobs"),
        data.join("blobs/sha256/x"),
    ] {
        let out = output(
            &mut berth.command(&["backup", "--to", &inside.to_string_lossy()]),
            None,
        );
        assert!(!out.status.success(), "{}", inside.display());
        assert!(text(&out).contains("of its own"), "{}", text(&out));
    }
    assert_eq!(
        Api::admin(&berth).get("/projects/team").0,
        200,
        "the live installation is unharmed"
    );

    // A rerun after the pushes copies what is new only.
    let out = output(
        &mut berth.command(&["backup", "--to", &backup.to_string_lossy()]),
        None,
    );
    assert!(out.status.success(), "backup again: {}", text(&out));
    let out = output(
        &mut berth.command(&["backup", "--to", &backup.to_string_lossy()]),
        None,
    );
    assert!(
        text(&out).contains(" 0 blobs (0 bytes) copied this time"),
        "{}",
        text(&out)
    );

    // The backup taken during pushes restores whole: each image it holds
    // pulls back identical (and the first three are certainly there).
    let data = root.path().join("restored-during");
    let out = restore(&berth, &during, &data);
    assert!(out.status.success(), "restore: {}", text(&out));
    let held = check_restored(&data, &images);
    for tag in ["v1", "v2", "v3"] {
        assert!(held.iter().any(|t| t == tag), "{held:?}");
    }

    // The last backup holds everything, secrets included.
    let data = root.path().join("restored");
    let out = restore(&berth, &backup, &data);
    assert!(out.status.success(), "restore: {}", text(&out));
    let held = check_restored(&data, &images);
    assert_eq!(held.len(), images.len(), "{held:?}");
    let restored = Berth::start_in(&data);
    let (status, _, answer) = Api::admin(&restored).put(
        &format!("/registries/{endpoint}"),
        &json!({"description": "its secret still opens"}),
    );
    assert_eq!(status, 200, "{answer}");
    drop(restored);

    // Restoring over an installation is refused.
    let out = restore(&berth, &backup, &data);
    assert!(!out.status.success());
    assert!(text(&out).contains("new data directory"), "{}", text(&out));

    // A backup whose key file does not open its database is refused
    // before anything is put in place.
    let wrong_key = root.path().join("wrong-key");
    let cp = std::process::Command::new("cp")
        .args([
            "-a",
            &backup.to_string_lossy(),
            &wrong_key.to_string_lossy(),
        ])
        .status()
        .unwrap();
    assert!(cp.success());
    std::fs::write(
        wrong_key.join("secret.key"),
        format!("v1 {}\n", "A".repeat(43)),
    )
    .unwrap();
    let data = root.path().join("restored-wrong-key");
    let out = restore(&berth, &wrong_key, &data);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("does not hold key"), "{}", text(&out));
    assert!(!data.join("berth.db").exists());

    // A damaged blob in the backup is reported, and nothing is put in place.
    let victim = &images[0].1.layers[0].blob.digest;
    let hex = victim.strip_prefix("sha256:").unwrap();
    let file = backup.join("blobs/sha256").join(&hex[..2]).join(hex);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let data = root.path().join("restored-damaged");
    let out = restore(&berth, &backup, &data);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(victim.as_str()), "{}", text(&out));
    assert!(text(&out).contains("damaged"), "{}", text(&out));
    assert!(
        !data.join("berth.db").exists(),
        "a damaged backup put a database in place"
    );
}
