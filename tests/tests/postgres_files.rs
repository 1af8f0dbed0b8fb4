//! The end-to-end suites that touch stored data, run again with metadata
//! on PostgreSQL (a real server this process starts, one database per
//! berth) and blobs on files. The harness picks the backend from this
//! binary's name (`berth_tests::server::backend`); the suites are the same
//! files the embedded run uses, so neither backend drifts.
// Several suites bring the same support module (slapd) of their own, as
// they do as separate binaries.
#![allow(clippy::duplicate_mod)]

#[path = "api_openapi.rs"]
mod api_openapi;
#[path = "api_repositories.rs"]
mod api_repositories;
#[path = "audit_log.rs"]
mod audit_log;
#[path = "audit_purge.rs"]
mod audit_purge;
#[path = "auth_logins.rs"]
mod auth_logins;
#[path = "auth_tokens.rs"]
mod auth_tokens;
#[path = "configurations.rs"]
mod configurations;
#[path = "configurations_live.rs"]
mod configurations_live;
#[path = "durability.rs"]
mod durability;
#[path = "fronting.rs"]
mod fronting;
#[path = "fronting_hosted.rs"]
mod fronting_hosted;
#[path = "gc.rs"]
mod gc;
#[path = "gc_files.rs"]
mod gc_files;
#[path = "immutable.rs"]
mod immutable;
#[path = "labels.rs"]
mod labels;
#[path = "ldap_groups.rs"]
mod ldap_groups;
#[path = "mail.rs"]
mod mail;
#[path = "projects_roles.rs"]
mod projects_roles;
#[path = "protocol_blobs.rs"]
mod protocol_blobs;
#[path = "protocol_listing.rs"]
mod protocol_listing;
#[path = "protocol_manifests.rs"]
mod protocol_manifests;
#[path = "protocol_referrers.rs"]
mod protocol_referrers;
#[path = "proxy_cache.rs"]
mod proxy_cache;
#[path = "quotas.rs"]
mod quotas;
#[path = "replication.rs"]
mod replication;
#[path = "retention.rs"]
mod retention;
#[path = "review_auth.rs"]
mod review_auth;
#[path = "review_authz.rs"]
mod review_authz;
#[path = "upload_limits.rs"]
mod upload_limits;
#[path = "webhooks.rs"]
mod webhooks;

/// The harness really runs this binary on PostgreSQL: a berth's data
/// directory holds no SQLite database, and its database is on the server.
#[test]
fn the_metadata_is_on_postgresql() {
    use berth_tests::server::{backend, Backend};
    assert_eq!(backend(), Backend::Postgres);
    let berth = berth_tests::Berth::start();
    assert!(!berth.data_dir().join("berth.db").exists());
    let projects = berth.sql("SELECT name FROM projects ORDER BY name;");
    assert!(projects.lines().any(|l| l == "library"), "{projects}");
    let version = berth.sql("SELECT version();");
    assert!(version.starts_with("PostgreSQL"), "{version}");
}

/// PostgreSQL cannot store a NUL character in text: input holding one is
/// the client's mistake (400, or 401 for credentials), never a 500.
#[test]
fn nul_characters_are_client_errors() {
    use berth_tests::registry::http_client;
    let berth = berth_tests::Berth::start();
    let (user, pw) = berth.admin_credentials();
    let admin = http_client(Some((user, pw)));
    for path in [
        "/api/v2.0/projects?name=%00",
        "/api/v2.0/users/search?username=a%00b",
        "/api/v2.0/audit-logs?q=username%3Da%00b",
    ] {
        let resp = admin.get(format!("{}{path}", berth.url())).send().unwrap();
        assert_eq!(resp.status(), 400, "{path}");
    }
    let anonymous = http_client(None);
    let resp = anonymous
        .get(format!("{}/api/v2.0/projects?name=%00", berth.url()))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    let nul_user = http_client(Some(("a\0b", "whatever-pw")));
    for path in ["/service/token?service=berth", "/v2/"] {
        let resp = nul_user
            .get(format!("{}{path}", berth.url()))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 401, "{path}");
    }
    let problems = berth.log_problems(5);
    assert!(!problems.contains("ERROR"), "{problems}");
}
