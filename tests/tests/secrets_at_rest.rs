//! Secrets at rest: a registry endpoint's credential, a webhook's
//! `Authorization` header and the mail server's password are sealed in the
//! database with the key file; a copy of the database without the key
//! file holds none of them (the bytes are searched). Each still works
//! (the webhook receiver and a real SMTP server with AUTH see them) after
//! `berth secrets rotate` run beside the server and after a restart; a
//! start without the key file, or with another one, is refused with what
//! to do.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use berth_tests::receiver::Receiver;
use berth_tests::smtp::{Smtp, SmtpOptions};
use berth_tests::tools::{output, skopeo_login, skopeo_push, text};
use berth_tests::{Api, Berth, Image};
use serde_json::json;

const ENDPOINT_SECRET: &str = "endpoint-secret-e7f1c2";
const HOOK_HEADER: &str = "Bearer hook-secret-9b3d41";
const MAIL_PASSWORD: &str = "mail-secret-5a0c77";
const WITHIN: Duration = Duration::from_secs(30);

/// Every byte of the SQLite database, its WAL included.
fn database_bytes(data: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(data).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("berth.db") {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(!all.is_empty(), "no database under {}", data.display());
    all
}

fn holds(bytes: &[u8], secret: &str) -> bool {
    bytes.windows(secret.len()).any(|w| w == secret.as_bytes())
}

fn push(berth: &Berth, auth: &Path, reference: &str) {
    let image = Image::random(1);
    let out = skopeo_push(
        &berth.host_port(),
        berth.scratch_dir(),
        auth,
        &image,
        reference,
    );
    assert!(out.status.success(), "push {reference}: {}", text(&out));
}

/// Pushes, then waits for the push event to reach the receiver carrying
/// the webhook's header.
fn header_arrives(berth: &Berth, receiver: &Receiver, reference: &str) {
    let file = berth.scratch_dir().join("auth.json");
    let (user, password) = berth.admin_credentials();
    assert!(skopeo_login(&file, &berth.host_port(), user, password)
        .status
        .success());
    let before = receiver.received().len();
    push(berth, &file, reference);
    let got = receiver.wait_for("the push event", before + 1, WITHIN, |r| {
        r.json()["type"] == "PUSH_ARTIFACT"
    });
    let last = got.last().unwrap();
    assert_eq!(
        last.headers.get("authorization").map(String::as_str),
        Some(HOOK_HEADER),
        "{:?}",
        last.headers
    );
}

fn mail_works(api: &Api, smtp: &Smtp, to: &str) {
    let (status, _, answer) = api.post("/email/ping", &json!({"email_to": to}));
    assert_eq!(status, 200, "{answer}");
    smtp.wait_for("the test mail", 1, WITHIN, |m| {
        m.rcpt_to.iter().any(|r| r == to)
    });
}

#[test]
fn secrets_are_sealed_and_survive_rotation_and_restart() {
    let receiver = Receiver::start();
    let smtp = Smtp::start(SmtpOptions {
        login: Some(("mailer".into(), MAIL_PASSWORD.into())),
        ..SmtpOptions::default()
    });
    let mut berth = Berth::start();
    let data = berth.data_dir().to_owned();
    let key = data.join("secret.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the key file is readable by berth alone"
    );

    let api = Api::admin(&berth);
    let endpoint = api.create_registry(
        "sealed",
        "docker-registry",
        "http://127.0.0.1:9",
        Some(("robot", ENDPOINT_SECRET)),
    );
    api.create_project("hooks", false);
    let (status, _, answer) = api.post(
        "/projects/hooks/webhook/policies",
        &json!({
            "name": "sealed",
            "targets": [{"type": "http", "address": receiver.url(), "auth_header": HOOK_HEADER}],
            "event_types": ["PUSH_ARTIFACT"],
            "enabled": true
        }),
    );
    assert_eq!(status, 201, "{answer}");
    let (status, _, answer) = api.put(
        "/configurations",
        &json!({
            "email_host": "127.0.0.1",
            "email_port": smtp.port(),
            "email_from": "berth <registry@example.org>",
            "email_username": "mailer",
            "email_password": MAIL_PASSWORD,
        }),
    );
    assert_eq!(status, 200, "{answer}");
    header_arrives(&berth, &receiver, "hooks/app:1");
    mail_works(&api, &smtp, "first@example.org");

    // The database as a thief copies it: without the key file, no secret.
    let bytes = database_bytes(&data);
    assert!(holds(&bytes, "robot"), "the search sees what is not secret");
    for secret in [ENDPOINT_SECRET, HOOK_HEADER, MAIL_PASSWORD] {
        assert!(
            !holds(&bytes, secret),
            "{secret} is in the database in clear"
        );
    }
    let sealed = berth.sql(&format!(
        "SELECT access_secret FROM registries WHERE id = {endpoint}"
    ));
    assert!(sealed.starts_with("sealed:v1:"), "{sealed}");

    // Rotated beside the running server, which follows at once.
    let out = output(&mut berth.command(&["secrets", "rotate"]), None);
    assert!(out.status.success(), "rotate: {}", text(&out));
    assert!(text(&out).contains("3 stored secrets"), "{}", text(&out));
    let old_id = sealed.split(':').nth(2).unwrap().to_owned();
    let resealed = berth.sql(&format!(
        "SELECT access_secret FROM registries WHERE id = {endpoint}"
    ));
    assert!(!resealed.contains(&old_id), "{resealed}");
    assert!(!std::fs::read_to_string(&key).unwrap().is_empty());
    header_arrives(&berth, &receiver, "hooks/app:2");
    mail_works(&api, &smtp, "second@example.org");
    // The endpoint's credential opens: an update keeps it (and seals it
    // again for the same URL).
    let (status, _, answer) = api.put(
        &format!("/registries/{endpoint}"),
        &json!({"description": "still sealed"}),
    );
    assert_eq!(status, 200, "{answer}");

    // A restart reads the rotated file.
    berth.restart();
    let api = Api::admin(&berth);
    header_arrives(&berth, &receiver, "hooks/app:3");
    mail_works(&api, &smtp, "third@example.org");
    let bytes = database_bytes(&data);
    for secret in [ENDPOINT_SECRET, HOOK_HEADER, MAIL_PASSWORD] {
        assert!(
            !holds(&bytes, secret),
            "{secret} is in the database in clear"
        );
    }

    // Without the key file, or with another, berth refuses to start.
    berth.stop();
    let kept = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let out = output(&mut berth.command(&["user", "enable", "admin"]), None);
    assert!(!out.status.success());
    assert!(text(&out).contains("copy the key file"), "{}", text(&out));
    assert!(!key.exists(), "a lost key is not replaced by a new one");
    let other = berth.scratch_dir().join("other.key");
    // A key of 32 zero bytes, in the file's format.
    std::fs::write(&other, format!("v1 {}\n", "A".repeat(43))).unwrap();
    let out = output(
        berth
            .command(&["user", "enable", "admin"])
            .env("BERTH_SECRETS__KEY_FILE", &other),
        None,
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("does not hold"), "{}", text(&out));
    std::fs::write(&key, kept).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    berth.restart();
    mail_works(&Api::admin(&berth), &smtp, "fourth@example.org");
}
