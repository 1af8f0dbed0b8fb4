//! The typed configuration the rest of berth reads. Every field is already
//! validated and defaulted; paths are already resolved.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::external_url::ExternalUrl;
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Plain HTTP unless `tls` is set. Default `0.0.0.0:5000`.
    pub listen: SocketAddr,
    /// Base for token realms and `Location` headers; when unset, the gateway
    /// derives it from each request's `Host`.
    pub external_url: Option<ExternalUrl>,
    /// SQLite database, blobs and signing keys live here. Default `./data`.
    pub data_dir: PathBuf,
    pub tls: Option<TlsConfig>,
    pub database: DatabaseConfig,
    pub storage: StorageConfig,
    pub auth: AuthConfig,
    /// Set when `auth.mode` is `ldap`, or whenever an `[ldap]` key is given.
    pub ldap: Option<LdapConfig>,
    pub server: ServerConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
}

/// Paths only: reading and parsing the PEM files is the gateway's job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// `sqlite://...` or `postgres://...`. A secret because a PostgreSQL URL
    /// usually carries the password. Default `sqlite://<data_dir>/berth.db`.
    pub url: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    pub driver: StorageDriver,
    /// Default `<data_dir>/blobs`.
    pub root: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageDriver {
    Filesystem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// None: generate one on first start (there is no default password).
    pub admin_password: Option<Secret>,
    /// Lifetime of issued bearer tokens. Default 30m, at least 1m.
    pub token_ttl: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Users and password hashes in berth's own database.
    Db,
    /// Passwords checked by binding to an LDAP server; see [`LdapConfig`].
    Ldap,
}

/// Harbor's `ldap_*` settings, with the same meanings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapConfig {
    /// `ldap://` or `ldaps://`.
    pub url: String,
    pub search_dn: Option<String>,
    pub search_password: Option<Secret>,
    pub base_dn: String,
    pub filter: Option<String>,
    /// Attribute that holds the user name. Default `uid`.
    pub uid: String,
    /// Default subtree.
    pub scope: LdapScope,
    /// Default 5s.
    pub timeout: Duration,
    /// Default true.
    pub verify_cert: bool,
    /// Upgrade an `ldap://` connection with StartTLS. Default false; never
    /// set together with an `ldaps://` url (which is TLS from the start).
    pub start_tls: bool,
    /// How long a successful bind is remembered, so a pull of many layers
    /// costs one bind. Default 60s; zero disables the cache.
    pub cache_ttl: Duration,
    pub group_base_dn: Option<String>,
    pub group_filter: Option<String>,
    pub group_gid: Option<String>,
    pub group_admin_dn: Option<String>,
    pub group_membership_attribute: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LdapScope {
    Base,
    OneLevel,
    Subtree,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Worker threads. Default: the number of CPUs, at least 1.
    pub threads: usize,
    /// How long shutdown waits for requests in flight. Default 10s.
    pub grace_period: Duration,
    /// Unfinished uploads older than this are removed. Default 24h.
    pub upload_purge_age: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter directive such as `info` or `info,berth=debug`.
    /// Default `info`.
    pub level: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// A separate address for `/metrics` (plain HTTP), so scrapes can stay
    /// on an internal interface; when set, the main listener answers 404
    /// there. Default: unset, `/metrics` is served on the main listener.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The words the config file uses for each enum, shared by parsing and by
/// [`Config::redacted`] so the two cannot drift.
macro_rules! config_words {
    ($($ty:ident { $($variant:ident => $word:literal),+ $(,)? })+) => {$(
        impl $ty {
            pub(crate) const WORDS: &'static [(&'static str, $ty)] = &[$(($word, $ty::$variant)),+];

            pub(crate) fn word(self) -> &'static str {
                match self { $($ty::$variant => $word),+ }
            }
        }
    )+};
}

config_words! {
    StorageDriver { Filesystem => "filesystem" }
    AuthMode { Db => "db", Ldap => "ldap" }
    LdapScope { Base => "base", OneLevel => "onelevel", Subtree => "subtree" }
    LogFormat { Text => "text", Json => "json" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_variants_agree() {
        for &(word, mode) in AuthMode::WORDS {
            assert_eq!(mode.word(), word);
        }
        for &(word, scope) in LdapScope::WORDS {
            assert_eq!(scope.word(), word);
        }
        for &(word, format) in LogFormat::WORDS {
            assert_eq!(format.word(), word);
        }
        assert_eq!(StorageDriver::Filesystem.word(), "filesystem");
    }
}
