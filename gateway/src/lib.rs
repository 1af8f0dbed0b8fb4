//! berth-gateway: the only crate that speaks HTTP.
//!
//! - [`server`]: the Pingora server and its listeners.
//! - [`proxy`]: the `ProxyHttp` request phases.
//! - [`route`]: paths parsed once into typed routes.
//! - [`v2`]: the OCI distribution API handlers.
//! - [`api`]: the management API (`/api/v2.0`) in Harbor's shapes.
//! - [`ui`]: the web portal at `/`.
//! - [`auth`]: who is calling `/v2`, and the policy decision.
//! - [`token_endpoint`]: `/service/token` and `/service/jwks`.
//! - [`users_cli`]: `berth user ...` commands.
//! - [`cert_cli`]: `berth cert init`, a local CA and server certificate.
//! - [`gc_cli`]: `berth gc`, one garbage collection from the command line.
//! - [`keys_cli`]: `berth token-key rotate`, a new token signing key.
//! - [`migrate_cli`]: `berth migrate`, an installation copied to PostgreSQL.
//! - [`backup_cli`]: `berth backup` and `berth restore`.
//! - [`secrets_cli`]: `berth secrets rotate`, a new key for stored secrets.
//! - [`jobs`]: the one scheduler: scheduled GC, retention and replication,
//!   the purge of abandoned uploads.
//! - [`tls`]: certificate files checked at start and reloaded while running.
//! - [`redirect`]: the optional plain-HTTP listener that redirects to HTTPS.
//! - [`http`]: reading bodies, writing replies, streaming blobs.
//! - [`disk`]: free space on the local volumes berth writes to.
//! - [`limits`]: request-head size and per-client request rates.
//! - [`bufpool`]: reused read buffers for streaming blobs.
//! - [`error`]: every error mapped to its OCI code and status, in one place.
//! - [`metrics`]: Prometheus metrics, `/metrics` and its own listener.
//! - [`upstream`]: upstream registries: pull-through cache, mirror, fronting.
//! - [`runtime`]: settings changed at run time (`/configurations`).
//! - [`app`]: the shared state handlers receive.
//! - [`bootstrap`]: builds that state from the config.
//! - [`retention`]: runs tag retention policies, on request and on schedule.
//! - [`replication`]: replication policies run against registry endpoints.
//! - [`webhooks`]: projects' events queued and sent to their HTTP targets.
//! - [`mail`]: the `[email]` server and password resets by mail.
//! - [`events`]: what happens to artifacts, told to replication and webhooks.

pub mod api;
pub mod app;
pub mod auth;
pub mod backup_cli;
pub mod bootstrap;
pub mod bufpool;
pub mod cert_cli;
pub mod disk;
pub mod error;
pub mod events;
pub mod gc_cli;
pub mod http;
pub mod jobs;
pub mod keys_cli;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod migrate_cli;
pub mod proxy;
pub mod redirect;
pub mod replication;
pub mod retention;
pub mod route;
pub mod runtime;
pub mod secrets_cli;
pub mod server;
pub mod tls;
pub mod token_endpoint;
pub mod ui;
pub mod upstream;
pub mod users_cli;
pub mod v2;
pub mod webhooks;
