//! The end-to-end suites that push and pull content, run again with blobs
//! in an object store (a real Garage this process starts, a key prefix per
//! berth) and metadata on PostgreSQL. The harness picks the backend from
//! this binary's name (`s3_`); the suites are the files the embedded run
//! uses. `gc_files` (GC's trash and upload files on disk) is not here:
//! `s3_objects` covers the object store's side of both.
#![allow(clippy::duplicate_mod)]

#[path = "api_repositories.rs"]
mod api_repositories;
#[path = "clients.rs"]
mod clients;
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
#[path = "replication.rs"]
mod replication;
#[path = "retention.rs"]
mod retention;

/// The harness really runs this binary on the object store: a pushed
/// blob is an object under the berth's prefix, and no blob file is on
/// disk.
#[test]
fn the_blobs_are_in_the_object_store() {
    use berth_tests::server::{backend, Backend};
    assert_eq!(backend(), Backend::PostgresObjects);
    let berth = berth_tests::Berth::start();
    berth_tests::Api::admin(&berth).create_projects(&["team"]);
    let blob = berth_tests::content::Blob::random(1000);
    berth.registry().push_blob("team/app", &blob);
    let prefix = berth.object_prefix().expect("an object prefix");
    let objects = berth_tests::garage::shared().list(&prefix);
    assert!(
        objects
            .iter()
            .any(|(key, size)| key.starts_with("blobs/u/") && *size == 1000),
        "{objects:?}"
    );
    assert!(!berth.data_dir().join("blobs/sha256").exists());
    assert!(!berth.data_dir().join("berth.db").exists());
}
