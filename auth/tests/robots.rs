//! Robot account logins against a real (SQLite) database: the secret,
//! disabling and expiry, and the permissions the identity carries.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_auth::robot::{generate_secret, hash_secret};
use berth_auth::{AuthError, LoginService};
use berth_policy::{Action, Namespace, RobotPermission, Subject};
use berth_storage::meta::Meta;
use berth_storage::robots::NewRobot;

const PERMS: &str = r#"[{"kind":"project","namespace":"team","project_id":7,"access":[
    {"resource":"repository","action":"pull"},{"resource":"repository","action":"push"}]}]"#;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("test setup")
        .as_secs() as i64
}

async fn setup() -> (tempfile::TempDir, Meta, LoginService) {
    let dir = tempfile::tempdir().expect("test setup");
    let meta = Meta::connect(&format!("sqlite://{}/db.sqlite", dir.path().display()))
        .await
        .expect("test setup");
    let login = LoginService::new(meta.clone(), None, Duration::from_secs(60));
    (dir, meta, login)
}

async fn robot(meta: &Meta, name: &str, secret: &str, expires_at: i64, disabled: bool) -> i64 {
    meta.create_robot(&NewRobot {
        name,
        description: "",
        secret_hash: &hash_secret(secret),
        level: "system",
        project_id: None,
        duration: -1,
        expires_at,
        disabled,
        permissions: PERMS,
    })
    .await
    .expect("test setup")
    .expect("created")
}

#[tokio::test]
async fn a_robot_logs_in_with_its_secret_and_carries_its_permissions() {
    let (_dir, meta, login) = setup().await;
    let secret = generate_secret();
    robot(&meta, "robot$ci", &secret, -1, false).await;
    let id = login
        .login("robot$ci", &secret, None)
        .await
        .expect("test setup");
    assert_eq!(
        id.subject(),
        Subject::Robot {
            name: "robot$ci".into(),
            permissions: vec![RobotPermission {
                namespace: Namespace::Project(7),
                actions: vec![Action::Pull, Action::Push],
            }],
        }
    );
    assert!(matches!(
        login.login("robot$ci", "wrong-secret", None).await,
        Err(AuthError::InvalidCredentials)
    ));
    assert!(matches!(
        login.login("robot$nobody", &secret, None).await,
        Err(AuthError::InvalidCredentials)
    ));
    // Refresh tokens resolve robots too.
    assert_eq!(
        login
            .identity("robot$ci")
            .await
            .expect("test setup")
            .username,
        "robot$ci"
    );
}

#[tokio::test]
async fn expired_and_disabled_robots_cannot_log_in() {
    let (_dir, meta, login) = setup().await;
    let secret = generate_secret();
    robot(&meta, "robot$old", &secret, now() - 1, false).await;
    robot(&meta, "robot$off", &secret, -1, true).await;
    robot(&meta, "robot$later", &secret, now() + 3600, false).await;
    assert!(matches!(
        login.login("robot$old", &secret, None).await,
        Err(AuthError::RobotExpired(n)) if n == "robot$old"
    ));
    assert!(matches!(
        login.login("robot$off", &secret, None).await,
        Err(AuthError::UserDisabled(n)) if n == "robot$off"
    ));
    assert!(matches!(
        login.identity("robot$old").await,
        Err(AuthError::RobotExpired(_))
    ));
    assert!(login.login("robot$later", &secret, None).await.is_ok());
}

#[tokio::test]
async fn disabling_takes_effect_once_cached_logins_are_forgotten() {
    let (_dir, meta, login) = setup().await;
    let secret = generate_secret();
    let id = robot(&meta, "robot$ci", &secret, -1, false).await;
    assert!(login.login("robot$ci", &secret, None).await.is_ok());
    meta.update_robot(id, "", -1, -1, true, PERMS)
        .await
        .expect("test setup");
    // The management API clears the cache after every account change.
    login.forget_logins();
    assert!(matches!(
        login.login("robot$ci", &secret, None).await,
        Err(AuthError::UserDisabled(_))
    ));
}
