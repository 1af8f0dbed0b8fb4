//! berth-storage: all registry state.
//!
//! - [`oci`]: the protocol's types (digests, names, tags, references,
//!   manifests), parsed once at the edge.
//! - [`blobs`]: the content-addressed filesystem blob store, and blobs
//!   opened for reading on either store.
//! - [`objects`]: blobs on an S3-compatible object store instead.
//! - [`meta`]: the metadata database (SQLite through sqlx).
//! - `locks`: what each write transaction keeps other writers (of every
//!   instance) out of.
//! - [`accounts`]: local and LDAP users.
//! - [`projects`]: projects and their members.
//! - [`user_groups`]: LDAP groups recorded by DN, to be made members.
//! - [`robots`]: robot accounts.
//! - [`sessions`]: portal sign-ins.
//! - [`password_resets`]: single-use password-reset links sent by mail.
//! - [`audit`]: the audit log and pull statistics, written in batches.
//! - [`audit_purge`]: old audit entries purged, now or on a schedule.
//! - [`artifacts`]: repositories, artifacts and tags as the management API shows them.
//! - [`labels`]: global and project labels, and the artifacts carrying them.
//! - `cache`: in-memory caches in front of the database (caches only).
//! - [`changes`]: what each process drops from its caches, announced to
//!   the others sharing a PostgreSQL database.
//! - [`configuration`]: settings changed at run time (`/configurations`).
//! - [`secrets`]: what must be given back in clear (endpoint credentials,
//!   webhook headers, directory and mail passwords), sealed at rest with a
//!   key kept outside the database; its rotation.
//! - [`migrate`]: `berth migrate`, an installation copied to PostgreSQL.
//! - [`backup`]: `berth backup` and `berth restore` of the embedded
//!   installation (a consistent snapshot while running, blobs verified).
//! - [`registry`]: the operations the gateway calls, keeping both in step.
//! - `owner`: which process owns files left on disk, and whether it is gone.
//! - `passes`: background passes run once per period for the cluster.
//! - `settle`: requests that wait until every instance applied their
//!   changes, and the signatures on what instances announce.
//! - [`gc`]: online garbage collection, its lock, history and schedule,
//!   and the purge of abandoned uploads.
//! - [`usage`]: bytes stored per project and pool state, for metrics.
//! - [`upstreams`]: registry endpoints that projects cache or front.
//! - [`proxy_cache`]: what a pull-through cache stores (manifests without
//!   their blobs, fetched blobs committed after verification).
//! - [`quota`]: per-project storage limits, checked in the pushing transaction.
//! - [`cron`]: Harbor's six-field cron, the one dialect of every schedule.
//! - [`selector`]: doublestar repository and tag selectors of rules.
//! - [`immutable`]: tag immutability rules and the guards that enforce them.
//! - [`retention`]: tag retention policies, their evaluation and executions.
//! - [`replication`]: replication policies, their filters, executions and
//!   tasks (the gateway's replicator copies).
//! - [`webhooks`]: webhook policies of projects and the durable queue of
//!   their deliveries (the gateway sends them).
//!
//! It is the only crate that runs SQL or touches blob bytes. It knows
//! nothing of HTTP or of who is asking: authorization happens before a call
//! gets here.

pub mod accounts;
pub mod artifacts;
pub mod audit;
pub mod audit_purge;
pub mod backup;
pub mod blobs;
mod cache;
pub mod changes;
pub mod configuration;
pub mod cron;
pub mod error;
pub mod gc;
pub mod immutable;
pub mod labels;
mod locks;
pub mod meta;
pub mod migrate;
pub mod objects;
pub mod oci;
mod owner;
mod passes;
pub mod password_resets;
pub mod projects;
pub mod proxy_cache;
pub mod quota;
pub mod registry;
pub mod replication;
pub mod retention;
pub mod robots;
pub mod secrets;
pub mod selector;
pub mod sessions;
mod settle;
mod uploads;
pub mod upstreams;
pub mod usage;
pub mod user_groups;
pub mod webhooks;

pub use blobs::{BlobBytes, OpenBlob};
pub use error::StorageError;
pub use objects::ObjectSettings;
pub use registry::{ProjectInfo, Registry, Role, Settings, UploadId};
pub use uploads::ChunkWriter;
