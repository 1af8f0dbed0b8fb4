use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::upstreams::{Credential, EndpointSpec};
use crate::webhooks::{EventType, PayloadFormat, PolicySpec, Target};

const SECRET: &str = "s3cr3t-the-test-looks-for";
const HEADER_SECRET: &str = "Bearer hdr-the-test-looks-for";
const PASSWORD: &str = "\"pw-the-test-looks-for\"";

fn endpoint(url: &str) -> EndpointSpec {
    EndpointSpec {
        name: format!("up-{}", url.len()),
        kind: "docker-registry".into(),
        url: url.into(),
        description: String::new(),
        insecure: false,
        credential: Some(Credential {
            access_key: "robot".into(),
            access_secret: SECRET.into(),
        }),
    }
}

fn hook() -> PolicySpec {
    PolicySpec {
        name: "hooks".into(),
        description: String::new(),
        targets: vec![Target {
            address: "http://hooks.example/".into(),
            auth_header: HEADER_SECRET.into(),
            skip_cert_verify: false,
            payload_format: PayloadFormat::Default,
        }],
        event_types: vec![EventType::PushArtifact],
        enabled: true,
    }
}

async fn open(dir: &Path) -> Result<Meta, StorageError> {
    let mut meta = Meta::connect(&format!("sqlite://{}/t.db", dir.display())).await?;
    meta.open_secrets(&dir.join("secret.key")).await?;
    Ok(meta)
}

/// Every byte of the database files (the WAL too), for the secrets' text.
fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("t.db")
        {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn store_all(meta: &Meta) -> (i64, i64) {
    let endpoint = meta
        .create_endpoint(&endpoint("https://up.example"))
        .await
        .unwrap()
        .unwrap();
    meta.ensure_project("p", false).await.unwrap();
    let project = meta.project("p").await.unwrap().unwrap().id;
    meta.create_webhook_policy(project, &hook(), "admin")
        .await
        .unwrap()
        .unwrap();
    meta.set_configuration(
        &[
            ("email_password".into(), PASSWORD.into()),
            ("email_host".into(), "\"smtp.example\"".into()),
        ],
        |_| Ok(()),
    )
    .await
    .unwrap()
    .unwrap();
    (endpoint, project)
}

async fn read_all(meta: &Meta, endpoint: i64, project: i64) {
    let e = meta.endpoint(endpoint).await.unwrap().unwrap();
    assert_eq!(e.credential.unwrap().access_secret, SECRET);
    let (policies, _) = meta.webhook_policies(project, None, 0, 10).await.unwrap();
    assert_eq!(policies[0].spec.targets[0].auth_header, HEADER_SECRET);
    let config = meta.configuration().await.unwrap();
    assert!(config.contains(&("email_password".into(), PASSWORD.into())));
    assert!(config.contains(&("email_host".into(), "\"smtp.example\"".into())));
}

#[tokio::test]
async fn secrets_are_sealed_in_the_database_and_open_with_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let meta = open(dir.path()).await.unwrap();
    let key = dir.path().join("secret.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key file is private");
    let (endpoint, project) = store_all(&meta).await;
    read_all(&meta, endpoint, project).await;
    meta.pool().close().await;
    let bytes = database_bytes(dir.path());
    assert!(
        contains(&bytes, "smtp.example"),
        "the search sees plain values"
    );
    for secret in [SECRET, HEADER_SECRET, "pw-the-test-looks-for"] {
        assert!(
            !contains(&bytes, secret),
            "{secret} is in the database in clear"
        );
    }
    // Opened again with the same key file: every secret reads back.
    let again = open(dir.path()).await.unwrap();
    read_all(&again, endpoint, project).await;
}

#[tokio::test]
async fn another_key_file_or_none_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let meta = open(dir.path()).await.unwrap();
    store_all(&meta).await;
    meta.pool().close().await;
    let key = dir.path().join("secret.key");
    let kept = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let e = open(dir.path()).await.unwrap_err().to_string();
    assert!(e.contains("copy the key file"), "{e}");
    assert!(!key.exists(), "no new key replaces the lost one");
    Keyring::create(&key).unwrap();
    let e = open(dir.path()).await.unwrap_err().to_string();
    assert!(e.contains("does not hold"), "{e}");
    std::fs::remove_file(&key).unwrap();
    std::fs::write(&key, kept).unwrap();
    open(dir.path()).await.unwrap();
}

#[tokio::test]
async fn values_stored_in_clear_before_are_sealed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let meta = Meta::connect(&url).await.unwrap();
    meta.ensure_project("p", false).await.unwrap();
    let project = meta.project("p").await.unwrap().unwrap().id;
    // As an earlier version wrote them.
    sqlx::query(
        "INSERT INTO registries (name, type, url, description, insecure, credential_type, \
         access_key, access_secret, created_at, updated_at) \
         VALUES ('up', 'docker-registry', 'https://up.example', '', 0, 'basic', 'robot', $1, 0, 0)",
    )
    .bind(SECRET)
    .execute(meta.pool())
    .await
    .unwrap();
    let targets = serde_json::to_string(&hook().targets).unwrap();
    sqlx::query(
        "INSERT INTO webhook_policies (name, description, targets, event_types, enabled, \
         project_id, creator, created_at, updated_at) \
         VALUES ('hooks', '', $1, '[\"PUSH_ARTIFACT\"]', 1, $2, 'admin', 0, 0)",
    )
    .bind(targets)
    .bind(project)
    .execute(meta.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO configuration (key, value, updated_at) VALUES ('email_password', $1, 0), \
         ('email_host', '\"smtp.example\"', 0)",
    )
    .bind(PASSWORD)
    .execute(meta.pool())
    .await
    .unwrap();
    meta.pool().close().await;

    let meta = open(dir.path()).await.unwrap();
    let endpoint = meta.endpoint_by_name("up").await.unwrap().unwrap().id;
    read_all(&meta, endpoint, project).await;
    meta.pool().close().await;
    let bytes = database_bytes(dir.path());
    for secret in [SECRET, HEADER_SECRET, "pw-the-test-looks-for"] {
        assert!(!contains(&bytes, secret), "{secret} is still in clear");
    }
}

#[tokio::test]
async fn rotation_seals_with_a_new_key_and_running_processes_follow() {
    let dir = tempfile::tempdir().unwrap();
    let server = open(dir.path()).await.unwrap();
    let (endpoint, project) = store_all(&server).await;
    let before = server.keyring().ids();
    // `berth secrets rotate` is another process with the same files.
    let tool = open(dir.path()).await.unwrap();
    let rotated = tool.rotate_secrets().await.unwrap();
    assert_eq!(rotated.resealed, 3);
    assert_eq!(rotated.replaced, before);
    assert_ne!(rotated.key_id, before[0]);
    let file = Keyring::load(&dir.path().join("secret.key"))
        .unwrap()
        .unwrap();
    assert_eq!(
        file.ids(),
        std::slice::from_ref(&rotated.key_id),
        "the old key left the file"
    );
    // The server, which held only the old key, reads the file again.
    read_all(&server, endpoint, project).await;
    // And what it stores now is sealed with the new key.
    server
        .set_configuration(&[("ldap_search_password".into(), "\"x\"".into())], |_| {
            Ok(())
        })
        .await
        .unwrap()
        .unwrap();
    let stored: String =
        sqlx::query_scalar("SELECT value FROM configuration WHERE key = 'ldap_search_password'")
            .fetch_one(server.pool())
            .await
            .unwrap();
    assert!(
        stored.starts_with(&format!("{PREFIX}{}:", rotated.key_id)),
        "{stored}"
    );
    // A restart with the rotated file opens everything.
    server.pool().close().await;
    let restarted = open(dir.path()).await.unwrap();
    read_all(&restarted, endpoint, project).await;
}

#[tokio::test]
async fn a_sealed_value_moved_to_another_row_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let meta = open(dir.path()).await.unwrap();
    let a = meta
        .create_endpoint(&endpoint("https://up.example"))
        .await
        .unwrap()
        .unwrap();
    let b = meta
        .create_endpoint(&endpoint("https://attacker.example"))
        .await
        .unwrap()
        .unwrap();
    // Someone with write access to the database copies a's secret to b,
    // whose URL they chose: berth must not send it there.
    sqlx::query(
        "UPDATE registries SET access_secret = (SELECT access_secret FROM registries WHERE id = $1) \
         WHERE id = $2",
    )
    .bind(a)
    .bind(b)
    .execute(meta.pool())
    .await
    .unwrap();
    // It does not open there: b reads without a secret (and with it the
    // listing still works, so the secret can be set again).
    let moved = meta.endpoint(b).await.unwrap().unwrap();
    assert_eq!(moved.credential.unwrap().access_secret, "");
    let kept = meta.endpoint(a).await.unwrap().unwrap();
    assert_eq!(kept.credential.unwrap().access_secret, SECRET);
    assert_eq!(meta.endpoints().await.unwrap().len(), 2);
    // Rotation leaves it as it was and says so.
    let rotated = meta.rotate_secrets().await.unwrap();
    assert_eq!((rotated.resealed, rotated.unreadable), (1, 1));
}

#[test]
fn seal_and_open() {
    let ring = Keyring::ephemeral().unwrap();
    let id = ring.ids()[0].clone();
    let purpose = Purpose::Setting { key: "k" };
    let sealed = ring.seal(&id, purpose, "clear").unwrap();
    assert!(is_sealed(&sealed));
    assert_ne!(
        sealed,
        ring.seal(&id, purpose, "clear").unwrap(),
        "a fresh nonce each time"
    );
    assert_eq!(ring.open(purpose, &sealed).unwrap(), "clear");
    assert!(ring
        .open(Purpose::Setting { key: "other" }, &sealed)
        .is_err());
    assert_eq!(ring.open(purpose, "legacy clear").unwrap(), "legacy clear");
    for bad in [
        "sealed:v1:",
        "sealed:v1:abc",
        "sealed:v1:x:!!",
        "sealed:v1:x:AAAA",
    ] {
        assert!(ring.open(purpose, bad).is_err(), "{bad}");
    }
    let other = Keyring::ephemeral().unwrap();
    assert!(other.open(purpose, &sealed).is_err());
    assert!(Keyring::none().seal(&id, purpose, "x").is_err());
}
