//! berth-conf: `berth.toml` plus `BERTH_*` environment variables in, a typed
//! and validated [`Config`] out.
//!
//! [`load`] is the whole entry point. It reads the one file it is given and
//! the environment pairs the caller hands it, and nothing else: it never calls
//! `std::env`, never touches the TLS files or the data directory it names, and
//! never prints. Every error is a [`ConfError`] that names the file (or the
//! variable) and the key path, so `berth serve` can print it and exit.
//!
//! The stages, each in its own module:
//!
//! - `schema`: the single list of keys and the TOML type each holds; the file
//!   is walked against it so unknown keys and wrong types are named by path.
//! - `env`: `BERTH_<KEY>` / `BERTH_<SECTION>__<KEY>` overrides, typed by the
//!   same schema and merged over the file.
//! - `settings`: the merged table plus where each value came from, which
//!   errors and relative-path resolution need.
//! - `build`: turns settings into [`Config`], applying defaults and checks.
//! - `redact`: [`Config::redacted`], the effective settings as TOML with
//!   secrets hidden, for `berth check-config`.
//! - `email`: the `[email]` section (its own module: it has its own rules).
//! - `limits`: `[server]` limits against abuse (sizes, request rates).
//! - `live`: `auth.mode`, `[ldap]` and `[email]` set at run time (the API),
//!   built by the same rules.
//! - `duration`, `secret`, `external_url`: the small value types.

mod build;
mod config;
mod duration;
mod email;
mod env;
mod error;
mod external_url;
mod limits;
mod live;
mod load;
mod redact;
mod schema;
mod secret;
mod settings;

pub use build::parse_size;
pub use config::{
    AuthConfig, AuthMode, Config, DatabaseConfig, GcConfig, IpNet, LdapConfig, LdapScope,
    LogConfig, LogFormat, MetricsConfig, ProxyConfig, QuotaConfig, S3Config, SecretsConfig,
    ServerConfig, StorageConfig, StorageDriver, TlsConfig,
};
pub use email::{EmailConfig, EmailSecurity};
pub use error::{ConfError, Location};
pub use external_url::ExternalUrl;
pub use limits::Limits;
pub use live::{is_live_key, live_settings, LiveSettings};
pub use load::load;
#[doc(hidden)]
pub use load::load_text;
pub use secret::Secret;
