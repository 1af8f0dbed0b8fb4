//! Login defects found in review, reproduced against the real binary (and
//! OpenLDAP's slapd): a directory login never becomes a local account;
//! refresh tokens end with the credential they were issued for; expired
//! robots stop at once; unknown names cost a password check; concurrent
//! wrong passwords are throttled and bounded in memory.
#![allow(clippy::unwrap_used)]

#[path = "../../auth/tests/support/slapd.rs"]
mod slapd;

use std::time::{Duration, Instant};

use berth_tests::registry::http_client;
use berth_tests::server::POLL;
use berth_tests::tokens::{token_body, token_post};
use berth_tests::users::set_password;
use berth_tests::{Api, Berth};
use serde_json::{json, Value};
use slapd::{Slapd, ADMINS_DN, CAROL, PEOPLE_DN, READER_DN};

fn berth_with_ldap(slapd: &Slapd, cache_ttl: &str) -> Berth {
    Berth::start_with_env(&[
        ("BERTH_AUTH__MODE", "ldap"),
        ("BERTH_LDAP__URL", &slapd.url()),
        ("BERTH_LDAP__SEARCH_DN", READER_DN),
        ("BERTH_LDAP__SEARCH_PASSWORD", slapd::READER_PASSWORD),
        ("BERTH_LDAP__BASE_DN", PEOPLE_DN),
        ("BERTH_LDAP__FILTER", "(objectClass=inetOrgPerson)"),
        ("BERTH_LDAP__UID", "uid"),
        ("BERTH_LDAP__TIMEOUT", "5s"),
        ("BERTH_LDAP__CACHE_TTL", cache_ttl),
        ("BERTH_LDAP__GROUP_MEMBERSHIP_ATTRIBUTE", "memberOf"),
        ("BERTH_LDAP__GROUP_ADMIN_DN", ADMINS_DN),
    ])
}

/// `GET /api/v2.0/users/current` with HTTP Basic: status and body.
fn current(berth: &Berth, user: &str, password: &str) -> (u16, Value) {
    let resp = http_client(Some((user, password)))
        .get(format!("{}/api/v2.0/users/current", berth.url()))
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// A refresh token from the OAuth2 password grant (docker login's).
fn refresh_token(berth: &Berth, user: &str, password: &str) -> String {
    let body = token_body(token_post(
        &berth.url(),
        &[
            ("grant_type", "password"),
            ("username", user),
            ("password", password),
            ("access_type", "offline"),
            ("service", "berth"),
            ("client_id", "test"),
        ],
    ));
    body["refresh_token"].as_str().unwrap().to_owned()
}

fn refresh(berth: &Berth, token: &str) -> u16 {
    token_post(
        &berth.url(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("service", "berth"),
            ("client_id", "test"),
            ("scope", "repository:library/app:pull"),
        ],
    )
    .status()
    .as_u16()
}

/// Review item 2: slapd holds a plain `uid=admin`. `Admin` (or `admin`)
/// with the directory's password must not become berth's local admin.
#[test]
fn a_directory_account_never_logs_in_as_the_local_account_of_its_name() {
    let slapd = Slapd::start();
    slapd.add(&format!(
        "dn: uid=admin,{PEOPLE_DN}\nobjectClass: inetOrgPerson\nuid: admin\ncn: Admin\nsn: Admin\n\
         userPassword: directory-admin-pw\n"
    ));
    let berth = berth_with_ldap(&slapd, "60s");
    for name in ["Admin", "ADMIN", "admin"] {
        let (status, body) = current(&berth, name, "directory-admin-pw");
        assert_eq!(status, 401, "{name} with the directory's password: {body}");
    }
    let (admin_user, admin_pw) = berth.admin_credentials();
    let (status, body) = current(&berth, admin_user, admin_pw);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sysadmin_flag"], true);
    // Directory users still log in ignoring case, as the directory matches.
    let (status, body) = current(&berth, "CAROL", CAROL.password);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], "carol");
    assert_eq!(body["sysadmin_flag"], false);
    assert!(
        berth
            .log_tail(200)
            .contains("has the name of a local account"),
        "the refusal is logged"
    );
}

/// Review item 3: a refresh token ends with a password reset and with a
/// robot's secret refresh.
#[test]
fn refresh_tokens_end_with_the_credential() {
    let berth = Berth::start();
    let admin = Api::admin(&berth);
    let id = admin.create_user("alice", "Alice-pw-1");
    let token = refresh_token(&berth, "alice", "Alice-pw-1");
    assert_eq!(refresh(&berth, &token), 200);
    // An administrator resets the password (the API), ...
    let (status, _, body) = admin.put(
        &format!("/users/{id}/password"),
        &json!({"new_password": "Alice-pw-2"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(current(&berth, "alice", "Alice-pw-1").0, 401);
    assert_eq!(
        refresh(&berth, &token),
        401,
        "refresh after a password reset"
    );
    let fresh = refresh_token(&berth, "alice", "Alice-pw-2");
    assert_eq!(refresh(&berth, &fresh), 200);
    // ... or the command line does, beside the running server.
    set_password(&berth, "alice", "Alice-pw-3");
    assert_eq!(
        refresh(&berth, &fresh),
        401,
        "refresh after `berth user passwd`"
    );

    let (id, robot, secret) = admin.create_robot_with_id(&json!({
        "name": "ci", "level": "system", "duration": -1,
        "permissions": [{"kind": "project", "namespace": "library",
            "access": [{"resource": "repository", "action": "pull"}]}],
    }));
    let token = refresh_token(&berth, &robot, &secret);
    assert_eq!(refresh(&berth, &token), 200);
    let (status, _, body) = admin.patch(&format!("/robots/{id}"), &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        refresh(&berth, &token),
        401,
        "refresh after a secret refresh"
    );
}

/// Review item 3, LDAP: after `ldapdelete`, refreshing stops once the
/// login cache's TTL has passed (here 1 s).
#[test]
fn a_directory_refresh_token_ends_when_the_entry_goes() {
    let slapd = Slapd::start();
    let berth = berth_with_ldap(&slapd, "1s");
    let token = refresh_token(&berth, CAROL.uid, CAROL.password);
    assert_eq!(refresh(&berth, &token), 200);
    slapd.delete(&format!("uid=carol,{PEOPLE_DN}"));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = refresh(&berth, &token);
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            Instant::now() < deadline,
            "a deleted directory user still refreshes tokens"
        );
        std::thread::sleep(POLL);
    }
}

/// Review item 4: a robot whose expiry passes stops then, although its
/// login is cached for 60 s.
#[test]
fn an_expired_robot_stops_at_once() {
    let berth = Berth::start();
    let admin = Api::admin(&berth);
    admin.create_project("team", false);
    let (robot, secret) = admin.create_robot(&json!({
        "name": "short", "level": "system", "duration": 1,
        "permissions": [{"kind": "project", "namespace": "team",
            "access": [{"resource": "repository", "action": "pull"}]}],
    }));
    // Durations are in days: move this one's end to 3 s from now, before
    // its first login, so the cached login carries it.
    let expires = berth_tests::jwt::now() + 3;
    berth.sql(&format!(
        "UPDATE robots SET expires_at = {expires} WHERE name = '{robot}';"
    ));
    let tags = || {
        http_client(Some((robot.as_str(), secret.as_str())))
            .get(format!("{}/v2/team/none/tags/list", berth.url()))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(tags(), 404, "the robot may read `team` until it expires");
    // Well within the 60 s the login stays cached.
    let deadline = Instant::now() + Duration::from_secs(15);
    while tags() != 401 {
        assert!(
            Instant::now() < deadline,
            "the robot still works after its expiry"
        );
        std::thread::sleep(POLL);
    }
    assert!(berth_tests::jwt::now() >= expires);
    // Tokens issued to it end with it too: none outlives the robot.
    let (status, body) = {
        let resp = http_client(Some((robot.as_str(), secret.as_str())))
            .get(format!("{}/service/token?service=berth", berth.url()))
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.text().unwrap())
    };
    assert_eq!(status, 401, "{body}");
}

/// Review item 4: an unknown username takes about as long as a wrong
/// password (an argon2 check), so timing does not tell which exist.
#[test]
fn an_unknown_username_costs_a_password_check() {
    let berth = Berth::start();
    Api::admin(&berth).create_user("known", "Known-pw-1");
    let median = |user: &dyn Fn(usize) -> String| {
        let mut times: Vec<Duration> = (0..5)
            .map(|i| {
                let started = Instant::now();
                assert_eq!(current(&berth, &user(i), &format!("wrong-{i}")).0, 401);
                started.elapsed()
            })
            .collect();
        times.sort();
        times[2]
    };
    let known = median(&|_| "known".to_owned());
    let unknown = median(&|i| format!("nobody{i}"));
    assert!(
        unknown.as_secs_f64() >= known.as_secs_f64() * 0.3,
        "unknown {unknown:?} vs wrong password {known:?}"
    );
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Review (resource exhaustion) item 3: 40 concurrent wrong passwords for
/// `admin` from one address: at most the budget (10) are checked, the
/// rest are 429 at once, and memory stays bounded.
#[test]
fn concurrent_wrong_passwords_are_throttled_and_bounded() {
    let berth = Berth::start();
    // One check first, so the peak includes a verifier's work area.
    assert_eq!(current(&berth, "nobody", "x").0, 401);
    let pid = berth.pid().unwrap();
    let before = peak_rss_kib(pid);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..40)
            .map(|i| {
                let berth = &berth;
                s.spawn(move || current(berth, "admin", &format!("wrong-{i}")).0)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(unauthorized + throttled, 40, "{statuses:?}");
    assert!(unauthorized <= 10, "{unauthorized} checked: {statuses:?}");
    let grown_mib = peak_rss_kib(pid).saturating_sub(before) / 1024;
    assert!(grown_mib < 150, "peak memory grew by {grown_mib} MiB");
    // The next guess from this address waits for the window, and is told
    // how long.
    let resp = http_client(Some(("admin", "one-more-guess")))
        .get(format!("{}/api/v2.0/users/current", berth.url()))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert!(resp.headers().get("retry-after").is_some());
}

/// Review finding: a spelling the directory matches but berth does not
/// fold alike (`ſ`, U+017F, is `s` to OpenLDAP) is the same account, not
/// a new one: disabled in berth, it stays disabled.
#[test]
fn unicode_spellings_of_a_directory_name_are_one_account() {
    let slapd = Slapd::start();
    slapd.add(&format!(
        "dn: uid=staff,{PEOPLE_DN}\nobjectClass: inetOrgPerson\nuid: staff\ncn: Staff\nsn: Staff\n\
         userPassword: staff-secret\n"
    ));
    let berth = berth_with_ldap(&slapd, "1s");
    assert_eq!(current(&berth, "staff", "staff-secret").0, 200);
    let (status, body) = current(&berth, "\u{17f}taff", "staff-secret");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], "staff", "{body}");
    berth_tests::users::disable_user(&berth, "staff");
    // Logins stay cached for the TTL (1 s here); then every spelling is
    // the disabled account.
    for spelling in ["staff", "\u{17f}taff", "\u{17f}TAFF"] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while current(&berth, spelling, "staff-secret").0 != 401 {
            assert!(Instant::now() < deadline, "{spelling} still logs in");
            std::thread::sleep(POLL);
        }
    }
    let users = Api::admin(&berth).get("/users?page_size=100").2;
    let staff = users
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| {
            u["username"]
                .as_str()
                .unwrap_or("")
                .to_lowercase()
                .ends_with("taff")
        })
        .count();
    assert_eq!(staff, 1, "{users}");
}

/// Review finding: spellings of one directory name share its budget of
/// failed logins (the directory matches them all).
#[test]
fn case_variants_share_the_failed_login_budget() {
    let slapd = Slapd::start();
    let berth = berth_with_ldap(&slapd, "60s");
    for i in 0..10 {
        assert_eq!(current(&berth, "carol", &format!("wrong-{i}")).0, 401);
    }
    for name in ["Carol", "cArol", "CAROL"] {
        assert_eq!(current(&berth, name, CAROL.password).0, 429, "{name}");
    }
}
