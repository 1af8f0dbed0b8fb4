//! Shared harness of berth's end-to-end tests.
//!
//! The tests in `tests/` start the real `berth` binary on a free port with a
//! fresh data directory and drive it with real clients (reqwest, curl,
//! skopeo, podman, the `oci-client` crate, docker). This crate gives them:
//!
//! - [`cluster`]: several instances behind haproxy.
//! - [`postgres`]: a PostgreSQL server for the tests, one database per berth.
//! - [`garage`]: an S3-compatible object store (Garage) for the tests, one
//!   key prefix per berth.
//! - [`server`]: start, stop, kill -9 and restart a `berth` process, and show
//!   its log when a test fails.
//! - [`content`]: random tar.gz layers, image configs, OCI and Docker
//!   manifests and indexes, digests.
//! - [`registry`]: a thin blocking HTTP client for the distribution API and
//!   assertions on its responses (OCI error bodies, headers).
//! - [`tar`]: a minimal ustar writer, so layers are real archives.
//! - [`users`]: local users through the `berth user` command line.
//! - [`browser`]: headless Chromium over WebDriver (chromedriver) for the
//!   portal tests, screenshots, and a cookie-keeping form client.
//! - [`api`]: the management API (`/api/v2.0`): projects, users, members
//!   and robot accounts.
//! - [`tokens`]: `WWW-Authenticate` challenges and the token service.
//! - [`jwt`]: decode, verify and forge the token service's JWTs.
//! - [`tools`]: podman, skopeo and docker with login state of their own,
//!   and OCI image layouts on disk.
//! - [`upstream`]: upstream registries for the pull-through cache and
//!   fronting tests (Debian's docker-registry, and a corrupt one).
//! - [`odd_upstream`]: an in-memory registry with the habits of hosted ones
//!   (blob GETs redirected to object storage, upload ids that are not
//!   UUIDs, a token realm elsewhere), recording where credentials went.
//! - [`receiver`]: a webhook receiver that records what it is sent and can
//!   be taken down and brought back.
//! - [`smtp`]: a real SMTP server (aiosmtpd) that keeps every mail it
//!   accepts, with a login, STARTTLS or TLS when asked.
//!
//! Not for: anything the server itself uses; no test logic lives here.

pub mod api;
pub mod browser;
pub mod cluster;
pub mod content;
pub mod garage;
pub mod jwt;
pub mod odd_upstream;
pub mod postgres;
pub mod receiver;
pub mod registry;
pub mod server;
pub mod smtp;
pub mod tar;
pub mod tokens;
pub mod tools;
pub mod upstream;
pub mod users;

pub use api::Api;
pub use content::{Blob, Image, Layer};
pub use registry::Registry;
pub use server::Berth;
