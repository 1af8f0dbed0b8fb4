//! The typed configuration the rest of berth reads. Every field is already
//! validated and defaulted; paths are already resolved.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::email::EmailConfig;
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
    /// Set when `[email]` is: password resets and test mails.
    pub email: Option<EmailConfig>,
    pub server: ServerConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub gc: GcConfig,
    pub secrets: SecretsConfig,
    pub quota: QuotaConfig,
    pub proxy: ProxyConfig,
    /// The keys the file or the environment set (the rest are defaults):
    /// settings that can also change at run time (`/configurations`) are
    /// left to the file when it sets them.
    pub given: Vec<&'static str>,
}

impl Config {
    /// Whether the file or the environment set `key` (`"auth.token_ttl"`).
    pub fn is_given(&self, key: &str) -> bool {
        self.given.contains(&key)
    }
}

/// Pull-through caching and mirror mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The registry endpoint (by name) that requests for names that are
    /// not projects are pulled from, as a registry mirror. Default: none.
    pub mirror: Option<String>,
    /// The proxy-cache project that holds the mirror's content. Default
    /// `mirror`.
    pub mirror_project: String,
    /// Bytes that proxy-cache projects may hold together before the least
    /// recently pulled images are evicted. Default: no limit.
    pub cache_max_size: Option<u64>,
    /// A cached image not pulled for this long may be evicted. Default 7 days.
    pub cache_ttl: Duration,
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

/// Where the key that seals stored secrets lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsConfig {
    /// Default `<data_dir>/secret.key`; every instance sharing a database
    /// needs the same file.
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    pub driver: StorageDriver,
    /// Default `<data_dir>/blobs`. With the s3 driver it holds scratch
    /// files only (blobs being fetched for a proxy cache).
    pub root: PathBuf,
    /// s3 driver: blob GETs answer 307 to a pre-signed URL. Default false.
    pub redirect: bool,
    /// Set exactly when `driver` is s3.
    pub s3: Option<S3Config>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageDriver {
    Filesystem,
    S3,
}

/// An S3-compatible object store (`[storage.s3]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `http(s)://host:port`; unset means AWS S3 of `region`.
    pub endpoint: Option<String>,
    /// Default `us-east-1`.
    pub region: String,
    pub bucket: String,
    /// Key prefix inside the bucket, empty or ending in `/`.
    pub prefix: String,
    /// Unset: from the environment as AWS SDKs read it
    /// (`AWS_ACCESS_KEY_ID`, ...).
    pub access_key: Option<Secret>,
    pub secret_key: Option<Secret>,
    /// Path-style addressing (`endpoint/bucket/key`). Default true.
    pub path_style: bool,
    /// Multipart part size, 5 MiB to 5 GiB. Default 16 MiB.
    pub part_size: u64,
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
    /// A plain-HTTP listener that redirects every request to HTTPS
    /// (only with TLS). Default: none.
    pub http_redirect: Option<SocketAddr>,
    /// Peers whose `X-Forwarded-Proto`/`X-Forwarded-Host` are believed
    /// (a proxy in front of berth). Default: none.
    pub trusted_proxies: Vec<IpNet>,
    /// How long a request body (a blob upload) may take before
    /// `body_min_rate` applies. Default 20s.
    pub body_timeout: Duration,
    /// Bytes per second a request body must average after `body_timeout`;
    /// slower bodies are cut off. Default 1 KiB/s.
    pub body_min_rate: u64,
    /// Upload sessions one user may hold open at once; 0: no limit.
    /// Default 100.
    pub max_uploads_per_user: u32,
    /// Manifest and header sizes, per-client request rates.
    pub limits: crate::limits::Limits,
}

/// An address block such as `10.0.0.0/8` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer may arrive as an IPv4-mapped IPv6 address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<IpNet, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR block (e.g. 10.0.0.0/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(IpNet { addr, prefix })
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuotaConfig {
    /// The storage limit, in bytes, of projects created from now on;
    /// `None` (the file's -1, the default) is unlimited.
    pub default_storage_limit: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcConfig {
    /// How long an unreferenced blob (or untagged manifest) stays after it
    /// was last pushed, mounted or linked, so that a push whose manifest
    /// has not arrived yet never loses its layers. Default 1h.
    pub grace_period: Duration,
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
    StorageDriver { Filesystem => "filesystem", S3 => "s3" }
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

#[cfg(test)]
mod ip_net_tests {
    use super::IpNet;

    #[test]
    fn ip_blocks() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(
            net.contains("::ffff:10.9.9.9".parse().unwrap()),
            "IPv4-mapped peers"
        );
        let one: IpNet = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("proxy.local".parse::<IpNet>().is_err());
    }
}
