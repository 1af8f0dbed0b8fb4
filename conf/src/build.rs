//! Settings become a typed [`Config`]: defaults filled in, text parsed into
//! types, and the rules that span keys checked. Each error names its key.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use crate::config::{
    AuthConfig, AuthMode, Config, DatabaseConfig, GcConfig, IpNet, LdapConfig, LdapScope,
    LogConfig, LogFormat, MetricsConfig, ProxyConfig, QuotaConfig, S3Config, SecretsConfig,
    ServerConfig, StorageConfig, StorageDriver, TlsConfig,
};
use crate::duration;
use crate::error::ConfError;
use crate::external_url::ExternalUrl;
use crate::secret::Secret;
use crate::settings::Settings;

const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5000);
const DEFAULT_DATA_DIR: &str = "./data";
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(30 * 60);
/// Docker and podman fetch a token and then use it for a whole push; a token
/// that dies within a minute fails large layers half-way.
const MIN_TOKEN_TTL: Duration = Duration::from_secs(60);
const DEFAULT_LDAP_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_LDAP_CACHE_TTL: Duration = Duration::from_secs(60);
const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(10);
const DEFAULT_UPLOAD_PURGE_AGE: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(20);
const DEFAULT_BODY_MIN_RATE: u64 = 1024;
const DEFAULT_MAX_UPLOADS_PER_USER: u32 = 100;
const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const DEFAULT_GC_GRACE_PERIOD: Duration = Duration::from_secs(3600);

pub(crate) fn build(s: &Settings) -> Result<Config, ConfError> {
    let data_dir = match s.path("data_dir")? {
        Some(dir) => dir,
        None => s.resolve("data_dir", Path::new(DEFAULT_DATA_DIR)),
    };
    let auth = auth(s)?;
    let listen = listen(s)?;
    Ok(Config {
        metrics: metrics(s, listen)?,
        proxy: proxy(s)?,
        quota: quota(s)?,
        listen,
        external_url: external_url(s)?,
        tls: tls(s)?,
        database: database(s, &data_dir)?,
        storage: storage(s, &data_dir)?,
        ldap: ldap(s, auth.mode)?,
        email: crate::email::email(s)?,
        auth,
        server: server(s)?,
        log: log(s)?,
        gc: GcConfig {
            grace_period: s
                .duration("gc.grace_period")?
                .unwrap_or(DEFAULT_GC_GRACE_PERIOD),
        },
        secrets: SecretsConfig {
            key_file: match s.path("secrets.key_file")? {
                Some(path) => path,
                None => data_dir.join("secret.key"),
            },
        },
        data_dir,
        given: crate::schema::KEYS
            .iter()
            .map(|key| key.path)
            .filter(|path| s.value(path).is_some())
            .collect(),
    })
}

fn listen(s: &Settings) -> Result<SocketAddr, ConfError> {
    let Some(text) = s.text("listen") else {
        return Ok(DEFAULT_LISTEN);
    };
    text.parse().map_err(|e| {
        s.invalid(
            "listen",
            format!(
                "invalid socket address `{text}`: {e} (expected IP:PORT, such as 0.0.0.0:5000)"
            ),
        )
    })
}

fn external_url(s: &Settings) -> Result<Option<ExternalUrl>, ConfError> {
    s.text("external_url")
        .map(|text| ExternalUrl::parse(text).map_err(|message| s.invalid("external_url", message)))
        .transpose()
}

fn tls(s: &Settings) -> Result<Option<TlsConfig>, ConfError> {
    match (s.path("tls.cert")?, s.path("tls.key")?) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(TlsConfig { cert, key })),
        (Some(_), None) => Err(s.missing("tls.key", "tls.cert is set")),
        (None, Some(_)) => Err(s.missing("tls.cert", "tls.key is set")),
    }
}

fn database(s: &Settings, data_dir: &Path) -> Result<DatabaseConfig, ConfError> {
    let url = match s.non_empty("database.url")? {
        None => format!("sqlite://{}", encode_path(&data_dir.join("berth.db"))),
        Some(url) => {
            if let Some(rest) = url.strip_prefix("sqlite://") {
                sqlite_url(rest, s.base_dir("database.url"))
            } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                url.to_owned()
            } else {
                // The value is not echoed: it may hold a password.
                return Err(s.invalid(
                    "database.url",
                    "must start with sqlite://, postgres:// or postgresql://".to_owned(),
                ));
            }
        }
    };
    Ok(DatabaseConfig {
        url: Secret::new(url),
    })
}

/// A relative SQLite file in the URL is relative to the config file, like
/// every other path. `:memory:` and absolute files are left alone, as is the
/// query (`?mode=rwc`).
fn sqlite_url(rest: &str, base: Option<&Path>) -> String {
    let (file, query) = rest.split_at(rest.find('?').unwrap_or(rest.len()));
    match base {
        Some(base) if !file.is_empty() && file != ":memory:" && !file.starts_with('/') => {
            let mut file = file;
            while let Some(shorter) = file.strip_prefix("./") {
                file = shorter;
            }
            let base = encode_path(base);
            format!("sqlite://{}/{file}{query}", base.trim_end_matches('/'))
        }
        _ => format!("sqlite://{rest}"),
    }
}

/// sqlx percent-decodes the file part of a SQLite URL and cuts it at `?`,
/// so a directory name with `%`, `?` or `#` must be escaped to survive.
fn encode_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

fn storage(s: &Settings, data_dir: &Path) -> Result<StorageConfig, ConfError> {
    let driver =
        choice(s, "storage.driver", StorageDriver::WORDS)?.unwrap_or(StorageDriver::Filesystem);
    let root = match s.path("storage.root")? {
        Some(root) => root,
        None => data_dir.join("blobs"),
    };
    let redirect = s.bool("storage.redirect").unwrap_or(false);
    let s3 = match driver {
        StorageDriver::S3 => Some(s3(s)?),
        StorageDriver::Filesystem if s.has_section("storage.s3") => return Err(s.invalid(
            "storage.driver",
            "is \"filesystem\" but [storage.s3] is set: set driver = \"s3\" to store blobs there"
                .to_owned(),
        )),
        StorageDriver::Filesystem if redirect => {
            return Err(s.invalid(
                "storage.redirect",
                "needs driver = \"s3\": only an object store can serve a pre-signed URL".to_owned(),
            ))
        }
        StorageDriver::Filesystem => None,
    };
    Ok(StorageConfig {
        driver,
        root,
        redirect,
        s3,
    })
}

/// S3's smallest part (but the last) and largest part.
const MIN_PART: u64 = 5 * 1024 * 1024;
const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
const DEFAULT_PART: u64 = 16 * 1024 * 1024;

fn s3(s: &Settings) -> Result<S3Config, ConfError> {
    let bucket = s.non_empty("storage.s3.bucket")?.ok_or_else(|| {
        s.invalid(
            "storage.s3.bucket",
            "must be set with driver = \"s3\": the bucket that holds the blobs".to_owned(),
        )
    })?;
    let endpoint = s.non_empty("storage.s3.endpoint")?;
    if let Some(url) = endpoint {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(s.invalid(
                "storage.s3.endpoint",
                format!("`{url}` is not a URL: use http://host:port or https://host"),
            ));
        }
    }
    let mut prefix = s
        .text("storage.s3.prefix")
        .unwrap_or("")
        .trim_matches('/')
        .to_owned();
    if !prefix.is_empty() {
        prefix.push('/');
    }
    let access_key = s.non_empty("storage.s3.access_key")?.map(Secret::new);
    let secret_key = s.non_empty("storage.s3.secret_key")?.map(Secret::new);
    if access_key.is_some() != secret_key.is_some() {
        return Err(s.invalid(
            "storage.s3.secret_key",
            "access_key and secret_key go together: set both, or neither to take them from the environment"
                .to_owned(),
        ));
    }
    let part_size = match s.non_empty("storage.s3.part_size")? {
        None => DEFAULT_PART,
        Some(text) => match parse_size(text) {
            Some(n) if (MIN_PART..=MAX_PART).contains(&n) => n,
            _ => {
                return Err(s.invalid(
                    "storage.s3.part_size",
                    format!(
                    "`{text}` is not a part size S3 accepts: use 5MiB to 5GiB, such as \"16MiB\""
                ),
                ))
            }
        },
    };
    Ok(S3Config {
        endpoint: endpoint.map(|e| e.trim_end_matches('/').to_owned()),
        region: s
            .non_empty("storage.s3.region")?
            .unwrap_or("us-east-1")
            .to_owned(),
        bucket: bucket.to_owned(),
        prefix,
        access_key,
        secret_key,
        path_style: s.bool("storage.s3.path_style").unwrap_or(true),
        part_size,
    })
}

pub(crate) fn auth_mode(s: &Settings) -> Result<AuthMode, ConfError> {
    Ok(choice(s, "auth.mode", AuthMode::WORDS)?.unwrap_or(AuthMode::Db))
}

fn auth(s: &Settings) -> Result<AuthConfig, ConfError> {
    let mode = auth_mode(s)?;
    let admin_password = match s.text("auth.admin_password") {
        Some("") => {
            return Err(s.invalid(
                "auth.admin_password",
                "must not be empty; leave it unset to have one generated on first start".to_owned(),
            ))
        }
        other => other.map(Secret::new),
    };
    let token_ttl = s.duration("auth.token_ttl")?.unwrap_or(DEFAULT_TOKEN_TTL);
    if token_ttl < MIN_TOKEN_TTL {
        return Err(s.invalid(
            "auth.token_ttl",
            format!(
                "must be at least {}, found {}",
                duration::format(MIN_TOKEN_TTL),
                duration::format(token_ttl)
            ),
        ));
    }
    Ok(AuthConfig {
        mode,
        admin_password,
        token_ttl,
    })
}

/// LDAP settings are required in LDAP mode, and checked whenever given so a
/// half-written `[ldap]` is caught before someone switches the mode.
pub(crate) fn ldap(s: &Settings, mode: AuthMode) -> Result<Option<LdapConfig>, ConfError> {
    let reason = match (mode, s.has_section("ldap")) {
        (AuthMode::Ldap, _) => "auth.mode = \"ldap\"",
        (AuthMode::Db, true) => "[ldap] is set",
        (AuthMode::Db, false) => return Ok(None),
    };
    let url = optional(s, "ldap.url").ok_or_else(|| s.missing("ldap.url", reason))?;
    check_ldap_url(url).map_err(|message| s.invalid("ldap.url", message))?;
    let base_dn = optional(s, "ldap.base_dn").ok_or_else(|| s.missing("ldap.base_dn", reason))?;
    let search_dn = optional(s, "ldap.search_dn");
    let search_password = optional(s, "ldap.search_password").map(Secret::new);
    if search_password.is_some() && search_dn.is_none() {
        return Err(s.missing("ldap.search_dn", "ldap.search_password is set"));
    }
    let timeout = s.duration("ldap.timeout")?.unwrap_or(DEFAULT_LDAP_TIMEOUT);
    if timeout.is_zero() {
        return Err(s.invalid("ldap.timeout", "must be greater than zero".to_owned()));
    }
    let start_tls = s.bool("ldap.start_tls").unwrap_or(false);
    if start_tls && is_ldaps(url) {
        return Err(s.invalid(
            "ldap.start_tls",
            "cannot be used with an ldaps:// url, which is TLS from the start; \
             use an ldap:// url for StartTLS"
                .to_owned(),
        ));
    }
    let cache_ttl = s
        .duration("ldap.cache_ttl")?
        .unwrap_or(DEFAULT_LDAP_CACHE_TTL);
    let owned = |key: &str| optional(s, key).map(str::to_owned);
    Ok(Some(LdapConfig {
        url: url.to_owned(),
        search_dn: search_dn.map(str::to_owned),
        search_password,
        base_dn: base_dn.to_owned(),
        filter: owned("ldap.filter"),
        uid: s.non_empty("ldap.uid")?.unwrap_or("uid").to_owned(),
        scope: choice(s, "ldap.scope", LdapScope::WORDS)?.unwrap_or(LdapScope::Subtree),
        timeout,
        verify_cert: s.bool("ldap.verify_cert").unwrap_or(true),
        start_tls,
        cache_ttl,
        group_base_dn: owned("ldap.group_base_dn"),
        group_filter: owned("ldap.group_filter"),
        group_gid: owned("ldap.group_gid"),
        group_admin_dn: owned("ldap.group_admin_dn"),
        group_membership_attribute: owned("ldap.group_membership_attribute"),
    }))
}

/// Harbor writes unset LDAP settings as empty strings; treat those as unset
/// so such files carry over.
fn optional<'s>(s: &'s Settings, key: &str) -> Option<&'s str> {
    s.text(key).filter(|text| !text.is_empty())
}

fn check_ldap_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("invalid URL `{text}`: {e}"))?;
    if !matches!(url.scheme(), "ldap" | "ldaps") {
        return Err(format!("must use ldap or ldaps, not `{}`", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{text}` has no host"));
    }
    Ok(())
}

/// Whether `text` (already checked by [`check_ldap_url`]) is TLS from the
/// first byte; the scheme is compared parsed, so `LDAPS://` counts too.
fn is_ldaps(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|url| url.scheme() == "ldaps")
}

fn server(s: &Settings) -> Result<ServerConfig, ConfError> {
    let threads = match s.integer("server.threads") {
        None => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| s.invalid("server.threads", format!("must be at least 1, found {n}")))?,
    };
    let body_min_rate = match s.non_empty("server.body_min_rate")? {
        None => DEFAULT_BODY_MIN_RATE,
        Some(text) => parse_size(text).ok_or_else(|| {
            s.invalid(
                "server.body_min_rate",
                format!("`{text}` is not a rate: use bytes per second, with a unit if you like, such as \"1KiB\" or \"100000\""),
            )
        })?,
    };
    let max_uploads_per_user = match s.integer("server.max_uploads_per_user") {
        None => DEFAULT_MAX_UPLOADS_PER_USER,
        Some(n) => u32::try_from(n).map_err(|_| {
            s.invalid(
                "server.max_uploads_per_user",
                format!("must be between 0 (no limit) and {}, found {n}", u32::MAX),
            )
        })?,
    };
    Ok(ServerConfig {
        threads,
        body_timeout: s
            .duration("server.body_timeout")?
            .unwrap_or(DEFAULT_BODY_TIMEOUT),
        body_min_rate,
        max_uploads_per_user,
        limits: crate::limits::limits(s)?,
        grace_period: s
            .duration("server.grace_period")?
            .unwrap_or(DEFAULT_GRACE_PERIOD),
        upload_purge_age: s
            .duration("server.upload_purge_age")?
            .unwrap_or(DEFAULT_UPLOAD_PURGE_AGE),
        http_redirect: match s.non_empty("server.http_redirect")? {
            None => None,
            Some(text) => Some(text.parse().map_err(|e| {
                s.invalid(
                    "server.http_redirect",
                    format!("invalid socket address `{text}`: {e} (expected IP:PORT, such as 0.0.0.0:80)"),
                )
            })?),
        },
        trusted_proxies: match s.non_empty("server.trusted_proxies")? {
            None => Vec::new(),
            Some(text) => text
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| p.trim().parse::<IpNet>().map_err(|e| s.invalid("server.trusted_proxies", e)))
                .collect::<Result<_, _>>()?,
        },
    })
}

fn log(s: &Settings) -> Result<LogConfig, ConfError> {
    Ok(LogConfig {
        format: choice(s, "log.format", LogFormat::WORDS)?.unwrap_or(LogFormat::Text),
        level: s.non_empty("log.level")?.unwrap_or("info").to_owned(),
    })
}

fn metrics(s: &Settings, main: SocketAddr) -> Result<MetricsConfig, ConfError> {
    let Some(text) = s.non_empty("metrics.listen")? else {
        return Ok(MetricsConfig { listen: None });
    };
    let addr: SocketAddr = text.parse().map_err(|e| {
        s.invalid(
            "metrics.listen",
            format!(
                "invalid socket address `{text}`: {e} (expected IP:PORT, such as 127.0.0.1:9090)"
            ),
        )
    })?;
    if addr.port() == main.port()
        && (addr.ip() == main.ip() || addr.ip().is_unspecified() || main.ip().is_unspecified())
    {
        return Err(s.invalid(
            "metrics.listen",
            format!("`{addr}` is the main listener's address ({main}); use another port, or leave it unset to serve /metrics there"),
        ));
    }
    Ok(MetricsConfig { listen: Some(addr) })
}

fn quota(s: &Settings) -> Result<QuotaConfig, ConfError> {
    let default_storage_limit = match s.integer("quota.default_storage_limit") {
        None | Some(-1) => None,
        Some(n) => Some(u64::try_from(n).map_err(|_| {
            s.invalid(
                "quota.default_storage_limit",
                format!("must be a number of bytes, or -1 for unlimited; found {n}"),
            )
        })?),
    };
    Ok(QuotaConfig {
        default_storage_limit,
    })
}

/// Reads an enum key by its config words; case is ignored because env
/// values are often written in capitals.
fn choice<T: Copy>(s: &Settings, key: &str, words: &[(&str, T)]) -> Result<Option<T>, ConfError> {
    let Some(text) = s.text(key) else {
        return Ok(None);
    };
    word(text, words).map(Some).ok_or_else(|| {
        let expected: Vec<String> = words.iter().map(|(w, _)| format!("\"{w}\"")).collect();
        s.invalid(
            key,
            format!("expected one of {}, found `{text}`", expected.join(", ")),
        )
    })
}

fn word<T: Copy>(text: &str, words: &[(&str, T)]) -> Option<T> {
    words
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(text.trim()))
        .map(|&(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_resolve_relative_files_against_the_base() {
        let base = Some(Path::new("/etc/berth"));
        assert_eq!(
            sqlite_url("./data/berth.db", base),
            "sqlite:///etc/berth/data/berth.db"
        );
        assert_eq!(
            sqlite_url("berth.db?mode=rwc", base),
            "sqlite:///etc/berth/berth.db?mode=rwc"
        );
        assert_eq!(
            sqlite_url("/var/lib/berth.db", base),
            "sqlite:///var/lib/berth.db"
        );
        assert_eq!(sqlite_url(":memory:", base), "sqlite://:memory:");
        assert_eq!(sqlite_url("?mode=memory", base), "sqlite://?mode=memory");
        assert_eq!(
            sqlite_url("./data/berth.db", None),
            "sqlite://./data/berth.db"
        );
    }

    #[test]
    fn path_characters_sqlx_would_decode_are_escaped() {
        assert_eq!(
            encode_path(Path::new("/srv/100%/a?b#c")),
            "/srv/100%25/a%3Fb%23c"
        );
        assert_eq!(encode_path(Path::new("./data/berth.db")), "./data/berth.db");
    }

    #[test]
    fn words_match_ignoring_case_and_spaces() {
        assert_eq!(word("LDAP", AuthMode::WORDS), Some(AuthMode::Ldap));
        assert_eq!(
            word(" subtree ", LdapScope::WORDS),
            Some(LdapScope::Subtree)
        );
        assert_eq!(word("sub", LdapScope::WORDS), None);
    }

    #[test]
    fn ldap_urls_need_the_ldap_scheme_and_a_host() {
        assert_eq!(check_ldap_url("ldaps://ldap.example.org"), Ok(()));
        assert_eq!(check_ldap_url("ldap://127.0.0.1:3890"), Ok(()));
        assert!(check_ldap_url("https://ldap.example.org")
            .expect_err("wrong scheme")
            .contains("must use ldap or ldaps"));
        assert!(check_ldap_url("ldap.example.org")
            .expect_err("no scheme")
            .contains("invalid URL"));
        assert!(check_ldap_url("ldap://")
            .expect_err("no host")
            .contains("no host"));
    }

    #[test]
    fn ldaps_is_recognised_by_the_parsed_scheme() {
        assert!(is_ldaps("ldaps://ldap.example.org"));
        assert!(is_ldaps("LDAPS://ldap.example.org:636"));
        assert!(!is_ldaps("ldap://ldap.example.org"));
        assert!(!is_ldaps("ldap://ldaps.example.org"));
    }
}

fn proxy(s: &Settings) -> Result<ProxyConfig, ConfError> {
    let mirror_project = s.non_empty("proxy.mirror_project")?.unwrap_or("mirror");
    let valid = !mirror_project.is_empty()
        && mirror_project
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        && mirror_project.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !valid {
        return Err(s.invalid(
            "proxy.mirror_project",
            format!("`{mirror_project}` is not a project name: lowercase letters, digits, `.`, `_` and `-`, starting with a letter or digit"),
        ));
    }
    let cache_max_size = match s.non_empty("proxy.cache_max_size")? {
        None => None,
        Some(text) => Some(parse_size(text).ok_or_else(|| {
            s.invalid(
                "proxy.cache_max_size",
                format!(
                    "`{text}` is not a size: use bytes or a unit, such as \"50GiB\" or \"500MB\""
                ),
            )
        })?),
    };
    Ok(ProxyConfig {
        mirror: s.non_empty("proxy.mirror")?.map(str::to_owned),
        mirror_project: mirror_project.to_owned(),
        cache_max_size,
        cache_ttl: s.duration("proxy.cache_ttl")?.unwrap_or(DEFAULT_CACHE_TTL),
    })
}

/// `1024`, `500MB`, `50GiB`, `1.5 TiB`: decimal and binary units.
/// A size such as `16MiB`, `10GB` or `512` (bytes); `None` if it is not one.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = number * factor;
    (bytes.is_finite() && bytes >= 1.0).then_some(bytes as u64)
}

#[cfg(test)]
mod size_tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("500MB"), Some(500_000_000));
        assert_eq!(parse_size("2 GiB"), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_size("1.5KiB"), Some(1536));
        assert_eq!(parse_size("ten"), None);
        assert_eq!(parse_size("5 parsecs"), None);
        assert_eq!(parse_size("0"), None);
    }
}

#[cfg(test)]
mod body_limit_tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use crate::load::load;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn upload_limits_have_defaults_and_env_overrides() {
        let config = load(None, &[]).unwrap();
        assert_eq!(config.server.body_timeout, Duration::from_secs(20));
        assert_eq!(config.server.body_min_rate, 1024);
        assert_eq!(config.server.max_uploads_per_user, 100);
        let config = load(
            None,
            &env(&[
                ("BERTH_SERVER__BODY_TIMEOUT", "2s"),
                ("BERTH_SERVER__BODY_MIN_RATE", "64KiB"),
                ("BERTH_SERVER__MAX_UPLOADS_PER_USER", "0"),
            ]),
        )
        .unwrap();
        assert_eq!(config.server.body_timeout, Duration::from_secs(2));
        assert_eq!(config.server.body_min_rate, 64 * 1024);
        assert_eq!(config.server.max_uploads_per_user, 0);
    }

    #[test]
    fn bad_upload_limits_name_their_key() {
        let e = load(None, &env(&[("BERTH_SERVER__BODY_MIN_RATE", "fast")]))
            .unwrap_err()
            .to_string();
        // From the environment, the error names the variable.
        assert!(e.contains("BERTH_SERVER__BODY_MIN_RATE"), "{e}");
        let e = load(None, &env(&[("BERTH_SERVER__MAX_UPLOADS_PER_USER", "-1")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("BERTH_SERVER__MAX_UPLOADS_PER_USER"), "{e}");
    }
}
