//! `/configurations` for the settings Harbor's administrators change most:
//! the authentication mode with the LDAP settings (against a real
//! OpenLDAP), the mail server (against a real SMTP server), and the
//! robots' default lifetime. Each applies without a restart, survives one,
//! is refused with the key named when it would not work, and stays the
//! config file's when the file sets it. Passwords are taken, never shown
//! or logged.
#![allow(clippy::unwrap_used)]

#[path = "../../auth/tests/support/slapd.rs"]
mod slapd;

use std::time::Duration;

use berth_tests::smtp::{Smtp, SmtpOptions};
use berth_tests::{Api, Berth};
use serde_json::{json, Value};
use slapd::{Slapd, ALICE, GROUPS_DN, PEOPLE_DN, READER_DN, READER_PASSWORD};

fn message(answer: &Value) -> String {
    answer["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Whether `user` gets in with `password` (the API's basic auth).
fn gets_in(berth: &Berth, user: &str, password: &str) -> bool {
    let (status, _, answer) = Api::as_user(berth, user, password).get("/users/current");
    assert!(status == 200 || status == 401, "{status}: {answer}");
    status == 200
}

fn directory(slapd: &Slapd) -> Value {
    json!({
        "auth_mode": "ldap_auth",
        "ldap_url": slapd.url(),
        "ldap_base_dn": PEOPLE_DN,
        "ldap_search_dn": READER_DN,
        "ldap_search_password": READER_PASSWORD,
        "ldap_filter": "(objectClass=inetOrgPerson)",
        "ldap_uid": "uid",
        "ldap_scope": 2,
        "ldap_timeout": 5,
        "ldap_group_base_dn": GROUPS_DN,
        "ldap_group_search_filter": "(objectClass=groupOfNames)",
        "ldap_group_attribute_name": "cn",
        "ldap_group_membership_attribute": "memberOf",
    })
}

#[test]
fn the_directory_is_set_at_run_time_and_applies_at_once() {
    let slapd = Slapd::start();
    let mut berth = Berth::start();
    let admin = Api::admin(&berth);
    assert!(!gets_in(&berth, ALICE.uid, ALICE.password));
    let (_, _, all) = admin.get("/configurations");
    assert_eq!(
        all["auth_mode"],
        json!({"value": "db_auth", "editable": true})
    );
    assert_eq!(all["ldap_url"], json!({"value": "", "editable": true}));
    assert_eq!(admin.get("/ldap/users/search?username=alice").0, 503);

    // Refused, with Harbor's key named, and nothing applied.
    let mut no_base = directory(&slapd);
    no_base["ldap_base_dn"] = json!("");
    for (body, needle) in [
        (json!({"auth_mode": "ldap_auth"}), "ldap_url"),
        (json!({"auth_mode": "oidc_auth"}), "auth_mode"),
        (no_base, "ldap_base_dn"),
        (
            json!({"auth_mode": "ldap_auth", "ldap_url": "http://dir", "ldap_base_dn": "dc=x"}),
            "ldap_url",
        ),
        (
            json!({"ldap_url": "ldap://dir", "ldap_base_dn": "dc=x", "ldap_scope": 7}),
            "ldap_scope",
        ),
        (
            json!({"ldap_url": "ldap://dir", "ldap_base_dn": "dc=x", "ldap_timeout": "5s"}),
            "ldap_timeout",
        ),
        (json!({"ldap_verify_cert": "no"}), "ldap_verify_cert"),
        (
            json!({"ldap_url": "ldap://dir", "ldap_base_dn": "dc=x", "ldap_filter": "((((("}),
            "ldap_filter",
        ),
        (
            json!({"ldap_url": "ldap://dir", "ldap_base_dn": "dc=x", "ldap_uid": "u)(x"}),
            "ldap_uid",
        ),
    ] {
        let (status, _, answer) = admin.put("/configurations", &body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(message(&answer).contains(needle), "{body}: {answer}");
        assert!(!message(&answer).contains("ldap."), "{answer}");
    }
    assert_eq!(
        admin.get("/configurations").2["auth_mode"]["value"],
        "db_auth"
    );

    // Settings are tried before they are saved (Harbor's portal does):
    // the bind succeeds, a wrong password fails with the reason, a bad
    // URL is refused; nothing is applied.
    let mut trial = directory(&slapd);
    trial.as_object_mut().unwrap().remove("auth_mode");
    let (status, _, answer) = admin.post("/ldap/ping", &trial);
    assert_eq!(
        (status, &answer["success"]),
        (200, &json!(true)),
        "{answer}"
    );
    trial["ldap_search_password"] = json!("not-the-password");
    let (status, _, answer) = admin.post("/ldap/ping", &trial);
    assert_eq!(
        (status, &answer["success"]),
        (200, &json!(false)),
        "{answer}"
    );
    assert!(!answer.to_string().contains("not-the-password"), "{answer}");
    trial["ldap_url"] = json!("http://dir");
    assert_eq!(admin.post("/ldap/ping", &trial).0, 400);
    assert_eq!(admin.post("/ldap/ping", &json!({"email_host": "x"})).0, 400);
    assert!(!gets_in(&berth, ALICE.uid, ALICE.password));

    // Changes racing each other never together store settings that do
    // not build (each is checked whole in the transaction that stores it).
    for _ in 0..5 {
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| admin.put("/configurations", &directory(&slapd)).0);
            let b = s.spawn(|| admin.put("/configurations", &json!({"ldap_url": ""})).0);
            (a.join().unwrap(), b.join().unwrap())
        });
        assert!(a == 200 || b == 200, "{a} {b}");
        let stored = berth.sql("SELECT key || '=' || value FROM configuration ORDER BY key");
        let ldap_mode = stored.contains("auth_mode=\"ldap_auth\"");
        let no_url = stored.contains("ldap_url=\"\"");
        assert!(
            !(ldap_mode && no_url),
            "stored settings that do not build: {stored}"
        );
        let (status, _, answer) = admin.put(
            "/configurations",
            &json!({"auth_mode": "db_auth", "ldap_url": ""}),
        );
        assert_eq!(status, 200, "{answer}");
    }

    // Set: alice logs in at once, the directory answers the API.
    let (status, _, answer) = admin.put("/configurations", &directory(&slapd));
    assert_eq!(status, 200, "{answer}");
    assert!(gets_in(&berth, ALICE.uid, ALICE.password));
    assert!(!gets_in(&berth, ALICE.uid, "wrong"));
    let (status, _, answer) = admin.post("/ldap/ping", &json!({}));
    assert_eq!(
        (status, &answer["success"]),
        (200, &json!(true)),
        "{answer}"
    );
    let (status, _, answer) = admin.get("/ldap/groups/search?groupname=developers");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer.as_array().unwrap().len(), 1, "{answer}");
    let (_, _, all) = admin.get("/configurations");
    assert_eq!(
        all["auth_mode"],
        json!({"value": "ldap_auth", "editable": true})
    );
    assert_eq!(all["ldap_url"]["value"], slapd.url());
    assert_eq!(all["ldap_search_dn"]["value"], READER_DN);
    assert_eq!(all["ldap_scope"]["value"], 2);
    assert!(all.get("ldap_search_password").is_none(), "{all}");
    // The password is in no answer, no audit entry and no log line.
    assert!(!all.to_string().contains(READER_PASSWORD));
    let (_, _, logs) = admin.get("/audit-logs?page_size=100");
    assert!(
        logs.to_string().contains("ldap_search_password=(secret)"),
        "{logs}"
    );
    assert!(!logs.to_string().contains(READER_PASSWORD), "{logs}");
    assert!(!berth.log_tail(10_000).contains(READER_PASSWORD));

    // Kept across a restart (it is in the database).
    berth.restart();
    let admin = Api::admin(&berth);
    assert!(gets_in(&berth, ALICE.uid, ALICE.password));

    // Back to the database: alice's login is forgotten at once.
    let (status, _, answer) = admin.put("/configurations", &json!({"auth_mode": "db_auth"}));
    assert_eq!(status, 200, "{answer}");
    assert!(!gets_in(&berth, ALICE.uid, ALICE.password));
    assert_eq!(admin.get("/ldap/ping").0, 405);
    assert_eq!(admin.post("/ldap/ping", &json!({})).0, 503);
}

#[test]
fn the_files_directory_and_mail_stay_the_files() {
    let berth = Berth::start_with_env(&[
        ("BERTH_AUTH__MODE", "ldap"),
        ("BERTH_LDAP__URL", "ldap://127.0.0.1:9"),
        ("BERTH_LDAP__BASE_DN", PEOPLE_DN),
        ("BERTH_EMAIL__SERVER", "127.0.0.1"),
        ("BERTH_EMAIL__FROM", "berth <registry@example.org>"),
    ]);
    let admin = Api::admin(&berth);
    let (_, _, all) = admin.get("/configurations");
    assert_eq!(
        all["auth_mode"],
        json!({"value": "ldap_auth", "editable": false})
    );
    assert_eq!(
        all["ldap_url"],
        json!({"value": "ldap://127.0.0.1:9", "editable": false})
    );
    assert_eq!(
        all["email_host"],
        json!({"value": "127.0.0.1", "editable": false})
    );
    assert_eq!(
        all["robot_token_duration"],
        json!({"value": 30, "editable": true})
    );
    for (body, needle) in [
        (json!({"ldap_url": "ldap://elsewhere"}), "ldap.url"),
        (json!({"auth_mode": "db_auth"}), "auth.mode"),
        (json!({"ldap_search_password": "x"}), "ldap.search_password"),
        (json!({"email_port": 2525}), "email.port"),
    ] {
        let (status, _, answer) = admin.put("/configurations", &body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(message(&answer).contains(needle), "{body}: {answer}");
    }
    // What GET shows may be sent back.
    let (status, _, answer) = admin.put(
        "/configurations",
        &json!({"ldap_url": "ldap://127.0.0.1:9", "email_port": 25, "auth_mode": "ldap_auth"}),
    );
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn the_mail_server_is_set_at_run_time() {
    let smtp = Smtp::start(SmtpOptions {
        login: Some(("mailer".into(), "mail-secret-1".into())),
        ..SmtpOptions::default()
    });
    let berth = Berth::start();
    let admin = Api::admin(&berth);
    let ping = || admin.post("/email/ping", &json!({"email_to": "ops@example.org"}));
    let (status, _, answer) = ping();
    assert_eq!(status, 503, "{answer}");
    assert!(message(&answer).contains("email_host"), "{answer}");

    for (body, needle) in [
        (json!({"email_host": "127.0.0.1"}), "email_from"),
        (
            json!({"email_host": "127.0.0.1", "email_from": "nobody"}),
            "email_from",
        ),
        (
            json!({"email_host": "127.0.0.1", "email_from": "a@b", "email_port": 70000}),
            "email_port",
        ),
        (
            json!({"email_host": "127.0.0.1", "email_from": "a@b", "email_password": "p"}),
            "email_username",
        ),
        (
            json!({"email_host": "127.0.0.1", "email_from": "a@b", "email_ssl": true, "email_starttls": true}),
            "email_starttls",
        ),
    ] {
        let (status, _, answer) = admin.put("/configurations", &body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(message(&answer).contains(needle), "{body}: {answer}");
    }

    let (status, _, answer) = admin.put(
        "/configurations",
        &json!({
            "email_host": "127.0.0.1",
            "email_port": smtp.port(),
            "email_from": "berth <registry@example.org>",
            "email_username": "mailer",
            "email_password": "mail-secret-1",
            "email_ssl": false,
        }),
    );
    assert_eq!(status, 200, "{answer}");
    let (status, _, answer) = ping();
    assert_eq!(status, 200, "{answer}");
    let mail = &smtp.wait_for("the test mail", 1, Duration::from_secs(30), |m| {
        m.rcpt_to.iter().any(|r| r == "ops@example.org")
    })[0];
    assert!(mail
        .header("From")
        .unwrap()
        .contains("registry@example.org"));
    let (_, _, all) = admin.get("/configurations");
    assert_eq!(
        all["email_host"],
        json!({"value": "127.0.0.1", "editable": true})
    );
    assert_eq!(all["email_username"]["value"], "mailer");
    assert!(all.get("email_password").is_none(), "{all}");
    assert!(!all.to_string().contains("mail-secret-1"));
    assert!(!berth.log_tail(10_000).contains("mail-secret-1"));

    // A wrong password is the server's to refuse: the ping says so.
    let (status, _, answer) = admin.put("/configurations", &json!({"email_password": "wrong"}));
    assert_eq!(status, 200, "{answer}");
    let (status, _, answer) = ping();
    assert_eq!(status, 502, "{answer}");
    assert!(!answer.to_string().contains("wrong"), "{answer}");

    // Cleared: no mail server again.
    let (status, _, answer) = admin.put("/configurations", &json!({"email_host": ""}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(ping().0, 503);
}

#[test]
fn robots_last_the_configured_days_unless_told() {
    let berth = Berth::start();
    let admin = Api::admin(&berth);
    for bad in [json!(0), json!(36_501), json!("7")] {
        let (status, _, answer) =
            admin.put("/configurations", &json!({"robot_token_duration": bad}));
        assert_eq!(status, 400, "{answer}");
        assert!(
            message(&answer).contains("robot_token_duration"),
            "{answer}"
        );
    }
    let (status, _, answer) = admin.put("/configurations", &json!({"robot_token_duration": 7}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        admin.get("/configurations").2["robot_token_duration"],
        json!({"value": 7, "editable": true})
    );
    let robot = |name: &str, duration: Option<i64>| -> Value {
        let mut body = json!({
            "name": name, "level": "system",
            "permissions": [{"kind": "project", "namespace": "library",
                "access": [{"resource": "repository", "action": "pull"}]}],
        });
        if let Some(d) = duration {
            body["duration"] = json!(d);
        }
        let (status, _, created) = admin.post("/robots", &body);
        assert_eq!(status, 201, "{created}");
        let (status, _, robot) = admin.get(&format!("/robots/{}", created["id"]));
        assert_eq!(status, 200, "{robot}");
        robot
    };
    let days = |r: &Value| {
        let created = unix_secs(r["creation_time"].as_str().unwrap());
        (r["expires_at"].as_i64().unwrap() - created) / 86_400
    };
    let default = robot("default", None);
    assert_eq!(default["duration"], 7, "{default}");
    assert_eq!(days(&default), 7, "{default}");
    let zero = robot("zero", Some(0));
    assert_eq!(zero["duration"], 7, "{zero}");
    let told = robot("told", Some(3));
    assert_eq!((told["duration"].as_i64(), days(&told)), (Some(3), 3));
    assert_eq!(robot("forever", Some(-1))["expires_at"], -1);
}

/// Seconds since the epoch of an RFC 3339 time as berth writes it.
fn unix_secs(text: &str) -> i64 {
    humantime::parse_rfc3339(text)
        .unwrap_or_else(|e| panic!("not a time: {text}: {e}"))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The portal's system page sets the mail server and the robots' lifetime
/// through the same change; a password field is never filled in; a user
/// who is not an administrator is refused; the file's settings show
/// disabled.
#[test]
fn the_portal_sets_the_mail_server_and_the_directory_form_is_the_files() {
    use berth_tests::browser::{input_value, Browser, FormClient};
    let smtp = Smtp::start(SmtpOptions::default());
    let berth = Berth::start_with_env(&[
        ("BERTH_AUTH__MODE", "ldap"),
        ("BERTH_LDAP__URL", "ldap://127.0.0.1:9"),
        ("BERTH_LDAP__BASE_DN", PEOPLE_DN),
    ]);
    let admin = Api::admin(&berth);
    let (user, password) = berth.admin_credentials();
    let b = Browser::start(&berth.url());
    b.sign_in(user, password);
    b.goto("/admin/system");
    // The directory is the file's: shown, disabled, no button.
    assert_eq!(
        b.value("#directory-settings #ldap_url"),
        "ldap://127.0.0.1:9"
    );
    assert!(b
        .attr("#directory-settings #ldap_url", "disabled")
        .is_some());
    assert!(!b.exists("#directory-submit"));

    b.fill("#mail-settings #email_host", "127.0.0.1");
    b.fill("#mail-settings #email_port", &smtp.port().to_string());
    b.fill("#mail-settings #email_from", "berth <registry@example.org>");
    b.click_and_wait("#mail-submit");
    b.wait_for(".flash.ok");
    b.fill("#settings #robot_token_duration", "9");
    b.click_and_wait("#settings-submit");
    b.wait_for(".flash.ok");
    let (_, _, all) = admin.get("/configurations");
    assert_eq!(all["email_host"]["value"], "127.0.0.1");
    assert_eq!(all["robot_token_duration"]["value"], 9);
    let (status, _, answer) = admin.post("/email/ping", &json!({"email_to": "ops@example.org"}));
    assert_eq!(status, 200, "{answer}");
    smtp.wait_for("the test mail", 1, Duration::from_secs(30), |m| {
        m.rcpt_to.iter().any(|r| r == "ops@example.org")
    });
    // A password set through the API is never put back in the page.
    let (status, _, answer) = admin.put(
        "/configurations",
        &json!({"email_username": "u", "email_password": "page-secret-1"}),
    );
    assert_eq!(status, 200, "{answer}");
    b.goto("/admin/system");
    assert_eq!(b.value("#mail-settings #email_username"), "u");
    assert_eq!(b.value("#mail-settings #email_password"), "");
    assert!(!b.source().contains("page-secret-1"));
    // Saved again with the password left empty: the stored one stays,
    // untouched (it is sealed at rest: never in the database in clear).
    let query = "SELECT value FROM configuration WHERE key = 'email_password'";
    let before = berth.sql(query);
    assert!(before.starts_with("sealed:v1:"), "{before}");
    assert!(!before.contains("page-secret-1"), "{before}");
    b.click_and_wait("#mail-submit");
    b.wait_for(".flash.ok");
    assert_eq!(berth.sql(query), before);

    // Not for other users, whatever they post.
    admin.create_user("alice", "alice-pw-1");
    let mut form = FormClient::new(&berth.url(), None);
    form.sign_in("alice", "alice-pw-1");
    let page = form.get("/projects");
    let csrf = input_value(&page.body, "csrf").unwrap_or_default();
    let page = form.post_form(
        "/admin/system/mail",
        &[("csrf", &csrf), ("email_host", "evil.example.org")],
    );
    assert_eq!(page.status, 403, "{}", page.body);
    assert_eq!(
        admin.get("/configurations").2["email_host"]["value"],
        "127.0.0.1"
    );
}
