//! `berth_auth::ldap` against a real OpenLDAP (see `support/slapd.rs` for
//! the directory's users and groups), and against servers that are down or
//! never answer.

mod support;

use std::time::{Duration, Instant};

use berth_auth::ldap::{LdapDirectory, LdapUser};
use berth_auth::AuthError;
use berth_conf::{LdapConfig, LdapScope, Secret};
use support::slapd::{
    free_port, SilentServer, Slapd, User, ALICE, BASE_DN, BOB, CAROL, GROUPS_DN, PEOPLE_DN,
    READER_DN, READER_PASSWORD,
};

/// Groups read from `memberOf` on the user entry (the common setup).
fn config(url: &str) -> LdapConfig {
    LdapConfig {
        url: url.to_owned(),
        search_dn: Some(READER_DN.to_owned()),
        search_password: Some(Secret::new(READER_PASSWORD)),
        base_dn: PEOPLE_DN.to_owned(),
        filter: Some("(objectClass=inetOrgPerson)".to_owned()),
        uid: "uid".to_owned(),
        scope: LdapScope::Subtree,
        timeout: Duration::from_secs(5),
        verify_cert: true,
        start_tls: false,
        cache_ttl: Duration::from_secs(60),
        group_base_dn: None,
        group_filter: None,
        group_gid: Some("cn".to_owned()),
        // Spelled differently from the directory on purpose: DNs compare
        // case-insensitively.
        group_admin_dn: Some("CN=Registry-Admins, OU=Groups, DC=Example, DC=Org".to_owned()),
        group_membership_attribute: Some("memberOf".to_owned()),
    }
}

/// Groups found by searching `ou=groups` for `(member=<user dn>)`.
fn group_search_config(url: &str) -> LdapConfig {
    LdapConfig {
        group_base_dn: Some(GROUPS_DN.to_owned()),
        group_filter: Some("(objectClass=groupOfNames)".to_owned()),
        group_membership_attribute: None,
        ..config(url)
    }
}

fn sorted_lowercase(groups: &[impl AsRef<str>]) -> Vec<String> {
    let mut groups: Vec<String> = groups
        .iter()
        .map(|group| group.as_ref().to_ascii_lowercase())
        .collect();
    groups.sort();
    groups
}

fn assert_is(user: &LdapUser, expected: User, admin: bool) {
    assert_eq!(user.username, expected.uid);
    assert_eq!(user.dn, expected.dn);
    assert_eq!(user.email.as_deref(), Some(expected.mail));
    assert_eq!(user.display_name.as_deref(), Some(expected.display_name));
    assert_eq!(
        sorted_lowercase(&user.groups),
        sorted_lowercase(expected.groups),
        "groups of {}",
        expected.uid
    );
    assert_eq!(user.admin, admin, "admin flag of {}", expected.uid);
}

async fn login(directory: &LdapDirectory, user: User) -> LdapUser {
    directory
        .authenticate(user.uid, user.password)
        .await
        .unwrap_or_else(|e| panic!("{} should log in: {e}", user.uid))
}

fn assert_invalid(result: Result<LdapUser, AuthError>, what: &str) {
    match result {
        Err(AuthError::InvalidCredentials) => {}
        other => panic!("{what}: expected InvalidCredentials, got {other:?}"),
    }
}

fn unavailable<T: std::fmt::Debug>(result: Result<T, AuthError>, what: &str) -> String {
    match result {
        Err(AuthError::DirectoryUnavailable(why)) => why,
        other => panic!("{what}: expected DirectoryUnavailable, got {other:?}"),
    }
}

fn misconfigured<T: std::fmt::Debug>(result: Result<T, AuthError>, what: &str) -> String {
    match result {
        Err(AuthError::DirectoryMisconfigured(why)) => why,
        other => panic!("{what}: expected DirectoryMisconfigured, got {other:?}"),
    }
}

#[tokio::test]
async fn users_log_in_with_their_groups_from_member_of() {
    let slapd = Slapd::start();
    let directory = LdapDirectory::new(&config(&slapd.url()));
    // The fixture's own readiness probes and ldapadd connected before us;
    // slapd may log the last of their closes a moment later, so wait for
    // them before taking the baseline.
    let deadline = Instant::now() + Duration::from_secs(5);
    while slapd.closed_count() < slapd.connection_count() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let connections_before = slapd.connection_count();
    let closed_before = slapd.closed_count();

    assert_is(&login(&directory, ALICE).await, ALICE, true);
    assert_is(&login(&directory, BOB).await, BOB, false);
    assert_is(&login(&directory, CAROL).await, CAROL, false);

    // One bind as the user per login, one connection per login, and each
    // connection unbound and closed.
    assert_eq!(slapd.bind_count(ALICE.dn), 1, "{}", slapd.log());
    assert_eq!(slapd.bind_count(READER_DN), 3, "{}", slapd.log());
    assert_eq!(slapd.connection_count() - connections_before, 3);
    let deadline = Instant::now() + Duration::from_secs(5);
    while slapd.closed_count() - closed_before < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(slapd.closed_count() - closed_before, 3, "{}", slapd.log());
}

#[tokio::test]
async fn group_search_gives_the_same_groups() {
    let slapd = Slapd::start();
    let directory = LdapDirectory::new(&group_search_config(&slapd.url()));
    assert_is(&login(&directory, ALICE).await, ALICE, true);
    assert_is(&login(&directory, BOB).await, BOB, false);
    assert_is(&login(&directory, CAROL).await, CAROL, false);

    // Both sources at once: the union, without duplicates.
    let both = LdapDirectory::new(&LdapConfig {
        group_membership_attribute: Some("memberOf".to_owned()),
        ..group_search_config(&slapd.url())
    });
    assert_is(&login(&both, ALICE).await, ALICE, true);
}

#[tokio::test]
async fn anonymous_search_and_username_case() {
    let slapd = Slapd::start();
    let directory = LdapDirectory::new(&LdapConfig {
        search_dn: None,
        search_password: None,
        // Harbor-style filter without parentheses.
        filter: Some("objectClass=person".to_owned()),
        ..config(&slapd.url())
    });
    assert_is(&login(&directory, BOB).await, BOB, false);
    // uid matching is case-insensitive; the directory's spelling is kept.
    for typed in ["ALICE", "Alice ", " alice"] {
        let user = directory
            .authenticate(typed, ALICE.password)
            .await
            .unwrap_or_else(|e| panic!("{typed:?} logs in as alice: {e}"));
        assert_is(&user, ALICE, true);
    }
    assert_eq!(slapd.bind_count(READER_DN), 0);
}

#[tokio::test]
async fn wrong_unknown_and_empty_credentials_are_invalid() {
    let slapd = Slapd::start();
    let directory = LdapDirectory::new(&config(&slapd.url()));
    assert_invalid(
        directory.authenticate("alice", "bob-secret").await,
        "wrong password",
    );
    assert_invalid(
        directory.authenticate("mallory", "mallory-secret").await,
        "unknown user",
    );
    assert_invalid(
        directory.authenticate("mallory", ALICE.password).await,
        "unknown user with a real password",
    );
    let binds_before = slapd.bind_count(ALICE.dn);
    let connections_before = slapd.connection_count();
    assert_invalid(directory.authenticate("alice", "").await, "empty password");
    assert_eq!(slapd.bind_count(ALICE.dn), binds_before);
    assert_eq!(
        slapd.connection_count(),
        connections_before,
        "an empty password must not reach the server"
    );
    // Case matters for passwords.
    assert_invalid(
        directory.authenticate("alice", "ALICE-SECRET").await,
        "password in the wrong case",
    );
}

#[tokio::test]
async fn filter_metacharacters_in_usernames_match_nothing() {
    let slapd = Slapd::start();
    let directory = LdapDirectory::new(&config(&slapd.url()));
    for name in [
        "*)(uid=*",
        "*",
        "al*",
        "alice)(|(uid=*",
        "*)(|(objectClass=*",
        "alice\\",
        "alice\0",
    ] {
        for password in [ALICE.password, "x"] {
            assert_invalid(
                directory.authenticate(name, password).await,
                &format!("username {name:?}"),
            );
        }
    }
    // Only the reader ever bound: no injected filter found an entry.
    assert_eq!(slapd.bind_count(ALICE.dn), 0, "{}", slapd.log());
    // slapd received the metacharacters as escaped values.
    assert!(
        slapd.log().contains("(uid=\\2A\\29\\28uid=\\2A)"),
        "{}",
        slapd.log()
    );
}

#[tokio::test]
async fn a_filter_matching_several_entries_is_a_misconfiguration() {
    let slapd = Slapd::start();
    // `objectClass` as the username attribute makes "inetOrgPerson" match
    // all three people.
    let directory = LdapDirectory::new(&LdapConfig {
        uid: "objectClass".to_owned(),
        ..config(&slapd.url())
    });
    let why = misconfigured(
        directory.authenticate("inetOrgPerson", "x").await,
        "ambiguous user",
    );
    assert!(why.contains("more than one entry"), "{why}");
}

#[tokio::test]
async fn directory_side_mistakes_are_misconfigurations() {
    let slapd = Slapd::start();
    let url = slapd.url();

    let wrong_reader = LdapDirectory::new(&LdapConfig {
        search_password: Some(Secret::new("not-the-password")),
        ..config(&url)
    });
    // The user typed the right password: this must not read as theirs.
    let why = misconfigured(
        wrong_reader.authenticate(ALICE.uid, ALICE.password).await,
        "service account rejected",
    );
    assert!(why.contains("search account"), "{why}");
    assert!(!why.contains("not-the-password"), "{why}");
    let why = misconfigured(wrong_reader.ping().await, "ping with a wrong password");
    assert!(why.contains("ldap.search_password"), "{why}");

    let no_base = LdapDirectory::new(&LdapConfig {
        base_dn: format!("ou=nobody,{BASE_DN}"),
        ..config(&url)
    });
    let why = misconfigured(
        no_base.authenticate(ALICE.uid, ALICE.password).await,
        "missing base",
    );
    assert!(why.contains("ldap.base_dn"), "{why}");

    let no_group_base = LdapDirectory::new(&LdapConfig {
        group_base_dn: Some(format!("ou=nothing,{BASE_DN}")),
        ..group_search_config(&url)
    });
    let why = misconfigured(
        no_group_base.authenticate(ALICE.uid, ALICE.password).await,
        "missing group base",
    );
    assert!(why.contains("ldap.group_base_dn"), "{why}");

    let no_password = LdapDirectory::new(&LdapConfig {
        search_password: None,
        ..config(&url)
    });
    misconfigured(no_password.ping().await, "search_dn without a password");
}

#[tokio::test]
async fn ping_checks_the_service_account() {
    let slapd = Slapd::start();
    let directory = LdapDirectory::new(&config(&slapd.url()));
    directory.ping().await.expect("ping");
    assert_eq!(slapd.bind_count(READER_DN), 1);
    let anonymous = LdapDirectory::new(&LdapConfig {
        search_dn: None,
        search_password: None,
        ..config(&slapd.url())
    });
    anonymous.ping().await.expect("anonymous ping");
}

#[tokio::test]
async fn a_stopped_directory_is_unavailable_at_once() {
    let mut slapd = Slapd::start();
    let directory = LdapDirectory::new(&config(&slapd.url()));
    login(&directory, BOB).await;
    slapd.stop();

    let started = Instant::now();
    let why = unavailable(
        directory.authenticate(BOB.uid, BOB.password).await,
        "stopped slapd",
    );
    assert!(why.contains(&slapd.url()), "{why}");
    unavailable(directory.ping().await, "ping of a stopped slapd");
    // Connection refused: nowhere near the 5s timeout.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let nothing = LdapDirectory::new(&config(&format!("ldap://127.0.0.1:{}", free_port())));
    unavailable(
        nothing.authenticate(ALICE.uid, ALICE.password).await,
        "nothing listening",
    );
}

#[tokio::test]
async fn a_silent_directory_times_out() {
    let silent = SilentServer::start();
    let timeout = Duration::from_millis(500);
    let plain = LdapConfig {
        timeout,
        ..config(&silent.url())
    };
    let cases = [
        ("plain bind", plain.clone()),
        // Hangs in the StartTLS request, inside the connect step.
        (
            "StartTLS",
            LdapConfig {
                start_tls: true,
                ..plain.clone()
            },
        ),
        // Hangs in the TLS handshake.
        (
            "ldaps",
            LdapConfig {
                url: format!("ldaps://{}", silent.address()),
                ..plain.clone()
            },
        ),
    ];
    for (what, config) in cases {
        let directory = LdapDirectory::new(&config);
        let started = Instant::now();
        let why = unavailable(
            directory.authenticate(ALICE.uid, ALICE.password).await,
            what,
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_secs(2),
            "{what}: gave up after {took:?}"
        );
        assert!(why.contains("no answer within 500 ms"), "{what}: {why}");

        let started = Instant::now();
        unavailable(directory.ping().await, what);
        assert!(started.elapsed() < Duration::from_secs(2), "{what}: ping");
    }
}

#[tokio::test]
async fn start_tls_and_ldaps() {
    let slapd = Slapd::start_with_tls();
    let ldaps = slapd.ldaps_url().expect("ldaps url");
    let unverified = |url: &str, start_tls: bool| LdapConfig {
        start_tls,
        verify_cert: false,
        ..config(url)
    };

    let start_tls = LdapDirectory::new(&unverified(&slapd.url(), true));
    assert_is(&login(&start_tls, ALICE).await, ALICE, true);
    start_tls.ping().await.expect("ping over StartTLS");

    let over_ldaps = LdapDirectory::new(&unverified(&ldaps, false));
    assert_is(&login(&over_ldaps, BOB).await, BOB, false);
    over_ldaps.ping().await.expect("ping over ldaps");

    // The certificate is self-signed, so the system roots reject it.
    for (what, config) in [
        ("ldaps", config(&ldaps)),
        (
            "StartTLS",
            LdapConfig {
                start_tls: true,
                ..config(&slapd.url())
            },
        ),
    ] {
        let directory = LdapDirectory::new(&config);
        let why = unavailable(
            directory.authenticate(ALICE.uid, ALICE.password).await,
            what,
        );
        assert!(
            why.contains("invalid peer certificate: UnknownIssuer"),
            "{what}: {why}"
        );
    }
    // Wrong password over TLS is still just a wrong password.
    assert_invalid(
        over_ldaps.authenticate(ALICE.uid, "nope").await,
        "wrong password over ldaps",
    );
}

#[tokio::test]
async fn start_tls_against_a_server_without_tls_fails_clearly() {
    let slapd = Slapd::start();
    let directory = LdapDirectory::new(&LdapConfig {
        start_tls: true,
        verify_cert: false,
        ..config(&slapd.url())
    });
    let why = misconfigured(
        directory.authenticate(ALICE.uid, ALICE.password).await,
        "StartTLS to a server without TLS",
    );
    assert!(why.contains("refused StartTLS"), "{why}");
    misconfigured(directory.ping().await, "ping with StartTLS");
}
