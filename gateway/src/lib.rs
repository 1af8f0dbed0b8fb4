//! berth-gateway: the only crate that speaks HTTP.
//!
//! - [`server`]: the Pingora server and its listeners.
//! - [`proxy`]: the `ProxyHttp` request phases.
//! - [`route`]: paths parsed once into typed routes.
//! - [`v2`]: the OCI distribution API handlers.
//! - [`http`]: reading bodies, writing replies, streaming blobs.
//! - [`error`]: every error mapped to its OCI code and status, in one place.
//! - [`app`]: the shared state handlers receive.

pub mod app;
pub mod error;
pub mod http;
pub mod proxy;
pub mod route;
pub mod server;
pub mod v2;
