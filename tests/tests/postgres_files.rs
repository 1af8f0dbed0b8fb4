//! The end-to-end suites that touch stored data, run again with metadata
//! on PostgreSQL (a real server this process starts, one database per
//! berth) and blobs on files. The harness picks the backend from this
//! binary's name (`berth_tests::server::backend`); the suites are the same
//! files the embedded run uses, so neither backend drifts.

#[path = "api_repositories.rs"]
mod api_repositories;
#[path = "audit_log.rs"]
mod audit_log;
#[path = "durability.rs"]
mod durability;
#[path = "gc.rs"]
mod gc;
#[path = "immutable.rs"]
mod immutable;
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
#[path = "retention.rs"]
mod retention;

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
