//! [`load`]: the one entry point, which runs the stages in order.

use std::path::Path;

use toml::Table;

use crate::build;
use crate::config::Config;
use crate::env;
use crate::error::{ConfError, Location};
use crate::schema::{self, Problem};
use crate::settings::Settings;

/// Reads the config file at `path` (if any), applies the `BERTH_*`
/// variables among `env` over it, and returns the validated [`Config`].
///
/// `env` is handed in rather than read so that callers decide what the
/// environment is (`std::env::vars().collect::<Vec<_>>()` in `main`, a
/// literal list in tests). Without a file, defaults plus `env` apply. A
/// file that is named but missing is an error: silently running with
/// defaults would hide a typo in `--config`.
pub fn load(path: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfError> {
    let mut table = match path {
        Some(path) => read(path)?,
        None => Table::new(),
    };
    let overrides = env::overrides(env)?;
    env::apply(&mut table, &overrides);
    build::build(&Settings::new(table, path, &overrides))
}

/// [`load`] with the file's text already read: what `load` does with the
/// text of the file at `path` (which is not read). For the fuzz targets.
#[doc(hidden)]
pub fn load_text(path: &Path, text: &str, env: &[(String, String)]) -> Result<Config, ConfError> {
    let mut table = parse(path, text)?;
    let overrides = env::overrides(env)?;
    env::apply(&mut table, &overrides);
    build::build(&Settings::new(table, Some(path), &overrides))
}

fn read(path: &Path) -> Result<Table, ConfError> {
    let text = std::fs::read_to_string(path).map_err(|cause| ConfError::Read {
        path: path.to_path_buf(),
        cause,
    })?;
    parse(path, &text)
}

fn parse(path: &Path, text: &str) -> Result<Table, ConfError> {
    let table: Table = toml::from_str(text).map_err(|e| {
        let (line, column) = line_column(text, e.span().map_or(0, |span| span.start));
        ConfError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            // toml's messages may span lines; keep the error on one.
            message: e.message().trim().replace('\n', "; "),
        }
    })?;
    // Checked before env is applied, so a problem is blamed on the file.
    schema::check(&table).map_err(|problem| match problem {
        Problem::Unknown { key } => ConfError::UnknownKey {
            file: path.to_path_buf(),
            key,
        },
        Problem::WrongType {
            key,
            expected,
            found,
        } => ConfError::WrongType {
            at: Location::File {
                file: path.to_path_buf(),
                key,
            },
            expected,
            found: found.to_owned(),
        },
    })?;
    Ok(table)
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::time::Duration;

    use tempfile::TempDir;

    use super::*;
    use crate::config::{AuthMode, LdapScope, LogFormat, StorageDriver};
    use crate::secret::Secret;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// A temp dir holding `berth.toml` with `text`; keep the dir alive.
    fn config_file(text: &str) -> (TempDir, PathBuf) {
        let dir = TempDir::new().expect("temp dir");
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, text).expect("write config");
        (dir, path)
    }

    fn file_error(text: &str) -> (String, PathBuf, TempDir) {
        let (dir, path) = config_file(text);
        let message = load(Some(&path), &[])
            .expect_err("config must be rejected")
            .to_string();
        (message, path, dir)
    }

    fn env_error(pairs: &[(&str, &str)]) -> String {
        load(None, &env(pairs))
            .expect_err("env must be rejected")
            .to_string()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn defaults_without_file_or_env() {
        let config = load(None, &[]).expect("defaults are valid");
        assert_eq!(
            config.listen,
            "0.0.0.0:5000".parse::<SocketAddr>().expect("addr")
        );
        assert_eq!(config.external_url, None);
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.tls, None);
        assert_eq!(config.database.url.expose(), "sqlite://./data/berth.db");
        assert_eq!(config.storage.driver, StorageDriver::Filesystem);
        assert_eq!(config.storage.root, PathBuf::from("./data/blobs"));
        assert_eq!(config.auth.mode, AuthMode::Db);
        assert_eq!(config.auth.admin_password, None);
        assert_eq!(config.auth.token_ttl, secs(30 * 60));
        assert_eq!(config.ldap, None);
        assert!(config.server.threads >= 1);
        assert_eq!(config.server.grace_period, secs(10));
        assert_eq!(config.server.upload_purge_age, secs(24 * 3600));
        assert_eq!(config.log.format, LogFormat::Text);
        assert_eq!(config.log.level, "info");
        assert_eq!(config.metrics.listen, None);
        assert_eq!(config.gc.grace_period, secs(3600));
        assert_eq!(config.secrets.key_file, PathBuf::from("./data/secret.key"));
        assert_eq!(config.quota.default_storage_limit, None);
        assert!(config.given.is_empty());
    }

    #[test]
    fn given_keys_are_those_the_file_or_env_set() {
        let (_dir, path) = config_file("[auth]\ntoken_ttl = \"10m\"\n");
        let config = load(
            Some(&path),
            &env(&[("BERTH_QUOTA__DEFAULT_STORAGE_LIMIT", "1000")]),
        )
        .expect("valid");
        assert!(config.is_given("auth.token_ttl"));
        assert!(config.is_given("quota.default_storage_limit"));
        assert!(!config.is_given("auth.mode"));
        assert!(!config.is_given("listen"));
    }

    #[test]
    fn quota_default_from_file_and_env() {
        let from_env = |value: &str| {
            load(
                None,
                &[("BERTH_QUOTA__DEFAULT_STORAGE_LIMIT".into(), value.into())],
            )
        };
        let config = from_env("1048576").expect("a byte count");
        assert_eq!(config.quota.default_storage_limit, Some(1_048_576));
        let config = from_env("-1").expect("unlimited");
        assert_eq!(config.quota.default_storage_limit, None);
        let message = from_env("-5").expect_err("negative").to_string();
        assert!(
            message.contains("BERTH_QUOTA__DEFAULT_STORAGE_LIMIT")
                && message.contains("-1 for unlimited"),
            "{message}"
        );
    }

    const FULL: &str = r#"
listen = "127.0.0.1:6000"
external_url = "https://registry.example.org/"
data_dir = "/srv/berth"

[tls]
cert = "/etc/berth/tls.crt"
key = "/etc/berth/tls.key"

[database]
url = "postgres://berth:s3cret@db.example.org/berth"

[storage]
driver = "filesystem"
root = "/srv/blobs"

[auth]
mode = "ldap"
admin_password = "hunter2"
token_ttl = "1h30m"

[ldap]
url = "ldaps://ldap.example.org"
search_dn = "cn=reader,dc=example,dc=org"
search_password = "ldap-pw"
base_dn = "ou=people,dc=example,dc=org"
filter = "(objectClass=person)"
uid = "cn"
scope = "onelevel"
timeout = "2s"
verify_cert = false
cache_ttl = "5m"
group_base_dn = "ou=groups,dc=example,dc=org"
group_filter = "(objectClass=groupOfNames)"
group_gid = "cn"
group_admin_dn = "cn=registry-admins,ou=groups,dc=example,dc=org"
group_membership_attribute = "memberOf"

[server]
threads = 3
grace_period = "500ms"
upload_purge_age = "2h"

[log]
format = "json"
level = "info,berth=debug"

[metrics]
listen = "127.0.0.1:9090"
"#;

    #[test]
    fn every_key_of_a_full_file_is_read() {
        let (_dir, path) = config_file(FULL);
        let config = load(Some(&path), &[]).expect("full config is valid");
        assert_eq!(
            config.listen,
            "127.0.0.1:6000".parse::<SocketAddr>().expect("addr")
        );
        assert_eq!(
            config.external_url.as_ref().map(|url| url.as_str()),
            Some("https://registry.example.org")
        );
        assert_eq!(config.data_dir, PathBuf::from("/srv/berth"));
        let tls = config.tls.as_ref().expect("tls set");
        assert_eq!(tls.cert, PathBuf::from("/etc/berth/tls.crt"));
        assert_eq!(tls.key, PathBuf::from("/etc/berth/tls.key"));
        assert_eq!(
            config.database.url.expose(),
            "postgres://berth:s3cret@db.example.org/berth"
        );
        assert_eq!(config.storage.root, PathBuf::from("/srv/blobs"));
        assert_eq!(config.auth.mode, AuthMode::Ldap);
        assert_eq!(config.auth.admin_password, Some(Secret::new("hunter2")));
        assert_eq!(config.auth.token_ttl, secs(5400));
        let ldap = config.ldap.as_ref().expect("ldap set");
        assert_eq!(ldap.url, "ldaps://ldap.example.org");
        assert_eq!(
            ldap.search_dn.as_deref(),
            Some("cn=reader,dc=example,dc=org")
        );
        assert_eq!(ldap.search_password, Some(Secret::new("ldap-pw")));
        assert_eq!(ldap.base_dn, "ou=people,dc=example,dc=org");
        assert_eq!(ldap.filter.as_deref(), Some("(objectClass=person)"));
        assert_eq!(ldap.uid, "cn");
        assert_eq!(ldap.scope, LdapScope::OneLevel);
        assert_eq!(ldap.timeout, secs(2));
        assert!(!ldap.verify_cert);
        assert!(!ldap.start_tls);
        assert_eq!(ldap.cache_ttl, secs(300));
        assert_eq!(
            ldap.group_base_dn.as_deref(),
            Some("ou=groups,dc=example,dc=org")
        );
        assert_eq!(
            ldap.group_filter.as_deref(),
            Some("(objectClass=groupOfNames)")
        );
        assert_eq!(ldap.group_gid.as_deref(), Some("cn"));
        assert_eq!(
            ldap.group_admin_dn.as_deref(),
            Some("cn=registry-admins,ou=groups,dc=example,dc=org")
        );
        assert_eq!(ldap.group_membership_attribute.as_deref(), Some("memberOf"));
        assert_eq!(config.server.threads, 3);
        assert_eq!(config.server.grace_period, Duration::from_millis(500));
        assert_eq!(config.server.upload_purge_age, secs(7200));
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.log.level, "info,berth=debug");
        assert_eq!(
            config.metrics.listen,
            Some("127.0.0.1:9090".parse::<SocketAddr>().expect("addr"))
        );
    }

    #[test]
    fn env_overrides_each_kind_of_key_and_wins_over_the_file() {
        let (_dir, path) = config_file(FULL);
        let config = load(
            Some(&path),
            &env(&[
                ("BERTH_LISTEN", "127.0.0.1:5001"),
                ("BERTH_AUTH__MODE", "db"),
                ("BERTH_AUTH__TOKEN_TTL", "10m"),
                ("BERTH_ADMIN_PASSWORD", "1234"),
                ("BERTH_LDAP__VERIFY_CERT", "true"),
                ("BERTH_LDAP__SCOPE", "BASE"),
                ("BERTH_SERVER__THREADS", "4"),
                ("BERTH_LOG__FORMAT", "text"),
                ("BERTH_DATABASE__URL", "postgresql://other/db"),
                ("berth_external_url", "http://localhost:5001"),
                ("BERTH_METRICS__LISTEN", "[::1]:9100"),
                ("BERTH_GC__GRACE_PERIOD", "90s"),
                ("BERTH_SECRETS__KEY_FILE", "/run/secrets/berth.key"),
            ]),
        )
        .expect("overrides are valid");
        assert_eq!(config.gc.grace_period, secs(90));
        assert_eq!(
            config.secrets.key_file,
            PathBuf::from("/run/secrets/berth.key")
        );
        assert_eq!(
            config.listen,
            "127.0.0.1:5001".parse::<SocketAddr>().expect("addr")
        );
        assert_eq!(config.auth.mode, AuthMode::Db);
        assert_eq!(config.auth.token_ttl, secs(600));
        assert_eq!(config.auth.admin_password, Some(Secret::new("1234")));
        let ldap = config.ldap.as_ref().expect("[ldap] still set in the file");
        assert!(ldap.verify_cert);
        assert_eq!(ldap.scope, LdapScope::Base);
        assert_eq!(config.server.threads, 4);
        assert_eq!(config.log.format, LogFormat::Text);
        assert_eq!(config.database.url.expose(), "postgresql://other/db");
        assert_eq!(
            config.external_url.as_ref().map(|url| url.as_str()),
            Some("http://localhost:5001")
        );
        assert_eq!(
            config.metrics.listen,
            Some("[::1]:9100".parse::<SocketAddr>().expect("addr"))
        );
        // Untouched keys keep the file's values.
        assert_eq!(config.data_dir, PathBuf::from("/srv/berth"));
    }

    #[test]
    fn env_alone_can_configure_ldap() {
        let config = load(
            None,
            &env(&[
                ("BERTH_AUTH__MODE", "ldap"),
                ("BERTH_LDAP__URL", "ldap://127.0.0.1:3890"),
                ("BERTH_LDAP__BASE_DN", "dc=test"),
                ("BERTH_LDAP__TIMEOUT", "250ms"),
            ]),
        )
        .expect("ldap from env");
        let ldap = config.ldap.expect("ldap set");
        assert_eq!(ldap.url, "ldap://127.0.0.1:3890");
        assert_eq!(ldap.base_dn, "dc=test");
        assert_eq!(ldap.timeout, Duration::from_millis(250));
        assert_eq!(ldap.uid, "uid");
        assert_eq!(ldap.scope, LdapScope::Subtree);
        assert!(ldap.verify_cert);
        assert_eq!(ldap.filter, None);
    }

    #[test]
    fn ldap_start_tls_and_cache_ttl_default_and_override() {
        let base = [
            ("BERTH_AUTH__MODE", "ldap"),
            ("BERTH_LDAP__URL", "ldap://ldap.example.org"),
            ("BERTH_LDAP__BASE_DN", "dc=example,dc=org"),
        ];
        let ldap = load(None, &env(&base))
            .expect("defaults")
            .ldap
            .expect("ldap set");
        assert!(!ldap.start_tls);
        assert_eq!(ldap.cache_ttl, secs(60));

        let mut pairs = base.to_vec();
        pairs.extend([
            ("BERTH_LDAP__START_TLS", "TRUE"),
            ("BERTH_LDAP__CACHE_TTL", "1m30s"),
        ]);
        let ldap = load(None, &env(&pairs))
            .expect("overrides")
            .ldap
            .expect("ldap set");
        assert!(ldap.start_tls);
        assert_eq!(ldap.cache_ttl, secs(90));

        // Zero is allowed: it turns the bind cache off.
        let (_dir, path) = config_file(
            "[ldap]\nurl = \"ldap://h\"\nbase_dn = \"dc=x\"\n\
             start_tls = true\ncache_ttl = \"0s\"\n",
        );
        let ldap = load(Some(&path), &[])
            .expect("valid")
            .ldap
            .expect("ldap set");
        assert!(ldap.start_tls);
        assert_eq!(ldap.cache_ttl, Duration::ZERO);
        let redacted = load(Some(&path), &[]).expect("valid").redacted();
        assert!(
            redacted.contains("start_tls = true\ncache_ttl = \"0s\"\n"),
            "{redacted}"
        );
    }

    #[test]
    fn ldap_start_tls_and_cache_ttl_errors_name_the_key() {
        let (message, path, _dir) = file_error(
            "[ldap]\nurl = \"ldaps://ldap.example.org\"\nbase_dn = \"dc=x\"\nstart_tls = true\n",
        );
        assert!(
            message.starts_with(&format!(
                "{}: ldap.start_tls: cannot be used with an ldaps:// url",
                path.display()
            )),
            "{message}"
        );
        let message = env_error(&[
            ("BERTH_LDAP__URL", "LDAPS://ldap.example.org"),
            ("BERTH_LDAP__BASE_DN", "dc=x"),
            ("BERTH_LDAP__START_TLS", "true"),
        ]);
        assert!(
            message.starts_with("env BERTH_LDAP__START_TLS: cannot be used with an ldaps:// url"),
            "{message}"
        );
        let message = env_error(&[
            ("BERTH_LDAP__URL", "ldap://h"),
            ("BERTH_LDAP__BASE_DN", "dc=x"),
            ("BERTH_LDAP__START_TLS", "yes"),
        ]);
        assert_eq!(
            message,
            "env BERTH_LDAP__START_TLS: expected a boolean (true or false), found `yes`"
        );
        let (message, path, _dir) =
            file_error("[ldap]\nurl = \"ldap://h\"\nbase_dn = \"dc=x\"\ncache_ttl = \"60\"\n");
        assert!(
            message.starts_with(&format!(
                "{}: ldap.cache_ttl: invalid duration `60`",
                path.display()
            )),
            "{message}"
        );
        let (message, path, _dir) =
            file_error("[ldap]\nurl = \"ldap://h\"\nbase_dn = \"dc=x\"\ncache_ttl = 60\n");
        assert_eq!(
            message,
            format!(
                "{}: ldap.cache_ttl: expected a duration string such as \"30m\", found an integer",
                path.display()
            )
        );
    }

    #[test]
    fn reserved_berth_variables_are_ignored() {
        let config = load(
            None,
            &env(&[("BERTH_BIN", "/x/berth"), ("BERTH_CONFIG", "/x/berth.toml")]),
        )
        .expect("reserved variables are not settings");
        assert_eq!(config, load(None, &[]).expect("defaults"));
    }

    #[test]
    fn unknown_keys_in_the_file_are_named_by_path() {
        let (message, path, _dir) = file_error("[auth]\nmodee = \"db\"\n");
        assert_eq!(
            message,
            format!("{}: unknown key `auth.modee`", path.display())
        );
        let (message, path, _dir) = file_error("[tls]\ncertt = \"c\"\n");
        assert_eq!(
            message,
            format!("{}: unknown key `tls.certt`", path.display())
        );
        let (message, path, _dir) = file_error("listenn = \"0.0.0.0:1\"\n");
        assert_eq!(
            message,
            format!("{}: unknown key `listenn`", path.display())
        );
    }

    #[test]
    fn unknown_env_variables_are_named() {
        let message = env_error(&[("BERTH_AUTH__MODEE", "db")]);
        assert!(
            message.starts_with("env BERTH_AUTH__MODEE: no such setting"),
            "{message}"
        );
        let message = env_error(&[("BERTH_LISTEN_ADDR", "0.0.0.0:1")]);
        assert!(message.starts_with("env BERTH_LISTEN_ADDR: "), "{message}");
    }

    #[test]
    fn wrong_types_name_the_key_and_never_the_value() {
        let (message, path, _dir) = file_error("[server]\nthreads = \"four\"\n");
        assert_eq!(
            message,
            format!(
                "{}: server.threads: expected an integer, found a string",
                path.display()
            )
        );
        let (message, _path, _dir) = file_error("[auth]\nadmin_password = 12345678\n");
        assert!(message.contains("auth.admin_password: expected a string, found an integer"));
        assert!(!message.contains("12345678"));
        let (message, _path, _dir) = file_error("auth = 1\n");
        assert!(message.contains(": auth: expected a table"), "{message}");
        let message = env_error(&[("BERTH_SERVER__THREADS", "four")]);
        assert_eq!(
            message,
            "env BERTH_SERVER__THREADS: expected an integer, found `four`"
        );
    }

    #[test]
    fn bad_durations_name_the_key() {
        let (message, path, _dir) = file_error("[auth]\ntoken_ttl = \"30 minutes\"\n");
        assert!(
            message.starts_with(&format!(
                "{}: auth.token_ttl: invalid duration `30 minutes`",
                path.display()
            )),
            "{message}"
        );
        let message = env_error(&[("BERTH_SERVER__GRACE_PERIOD", "10")]);
        assert!(
            message.starts_with("env BERTH_SERVER__GRACE_PERIOD: invalid duration `10`"),
            "{message}"
        );
        let message = env_error(&[("BERTH_AUTH__TOKEN_TTL", "30s")]);
        assert_eq!(
            message,
            "env BERTH_AUTH__TOKEN_TTL: must be at least 1m, found 30s"
        );
    }

    #[test]
    fn relative_paths_are_relative_to_the_config_file() {
        let (dir, path) = config_file(
            "data_dir = \"state\"\n\
             [tls]\ncert = \"tls/cert.pem\"\nkey = \"./tls/key.pem\"\n\
             [database]\nurl = \"sqlite://db/berth.db?mode=rwc\"\n",
        );
        let base = dir.path();
        let config = load(Some(&path), &[]).expect("valid");
        assert_eq!(config.data_dir, base.join("state"));
        let tls = config.tls.expect("tls set");
        assert_eq!(tls.cert, base.join("tls/cert.pem"));
        assert_eq!(tls.key, base.join("tls/key.pem"));
        assert_eq!(
            config.database.url.expose(),
            format!("sqlite://{}/db/berth.db?mode=rwc", base.display())
        );
        // Not set, so derived from the resolved data_dir.
        assert_eq!(config.storage.root, base.join("state/blobs"));
    }

    #[test]
    fn defaults_follow_data_dir_and_the_file() {
        let (dir, path) = config_file("");
        let config = load(Some(&path), &[]).expect("empty file is valid");
        assert_eq!(config.data_dir, dir.path().join("data"));
        assert_eq!(config.storage.root, dir.path().join("data/blobs"));
        assert_eq!(
            config.database.url.expose(),
            format!("sqlite://{}/data/berth.db", dir.path().display())
        );

        let config = load(None, &env(&[("BERTH_DATA_DIR", "/var/lib/berth")])).expect("valid");
        assert_eq!(config.storage.root, PathBuf::from("/var/lib/berth/blobs"));
        assert_eq!(
            config.database.url.expose(),
            "sqlite:///var/lib/berth/berth.db"
        );
    }

    #[test]
    fn relative_paths_from_env_stay_relative_to_the_working_directory() {
        let (_dir, path) = config_file("");
        let config = load(
            Some(&path),
            &env(&[
                ("BERTH_DATA_DIR", "./here"),
                ("BERTH_TLS__CERT", "c.pem"),
                ("BERTH_TLS__KEY", "k.pem"),
            ]),
        )
        .expect("valid");
        assert_eq!(config.data_dir, PathBuf::from("./here"));
        assert_eq!(config.database.url.expose(), "sqlite://./here/berth.db");
        assert_eq!(config.tls.map(|tls| tls.cert), Some(PathBuf::from("c.pem")));
    }

    #[test]
    fn secrets_stay_out_of_debug_and_redacted_output() {
        let (_dir, path) = config_file(FULL);
        let config = load(Some(&path), &[]).expect("valid");
        let debug = format!("{config:?}");
        let redacted = config.redacted();
        for secret in ["hunter2", "ldap-pw", "s3cret", "postgres://"] {
            assert!(!debug.contains(secret), "Debug shows {secret}: {debug}");
            assert!(
                !redacted.contains(secret),
                "redacted() shows {secret}: {redacted}"
            );
        }
        assert!(debug.contains("admin_password: Some(<redacted>)"));
        assert!(redacted.contains("admin_password = \"<redacted>\""));
        assert!(redacted.contains("search_password = \"<redacted>\""));
        assert!(redacted.contains("[database]\nurl = \"<redacted>\""));
    }

    #[test]
    fn redacted_output_loads_back_to_the_same_config() {
        let (dir, path) = config_file(FULL);
        let config = load(Some(&path), &[]).expect("valid");
        // The database URL is the one secret a config cannot do without.
        let text = config.redacted().replace(
            "[database]\nurl = \"<redacted>\"",
            &format!("[database]\nurl = \"{}\"", config.database.url.expose()),
        );
        let again_path = dir.path().join("again.toml");
        std::fs::write(&again_path, &text).expect("write");
        let again = load(Some(&again_path), &[]).expect("redacted output is a valid config");
        let mut expected = config.clone();
        // The redacted output spells out every default.
        expected.given = again.given.clone();
        expected.auth.admin_password = Some(Secret::new("<redacted>"));
        if let Some(ldap) = expected.ldap.as_mut() {
            ldap.search_password = Some(Secret::new("<redacted>"));
        }
        assert_eq!(again, expected);
    }

    #[test]
    fn redacted_output_of_defaults_explains_unset_keys() {
        let text = load(None, &[]).expect("defaults").redacted();
        assert!(text.starts_with("listen = \"0.0.0.0:5000\"\n"), "{text}");
        assert!(text.contains("# external_url is not set"));
        assert!(text.contains("# [tls] is not set"));
        assert!(text.contains("# [ldap] is not set"));
        assert!(text.contains("# admin_password is not set: generated on first start"));
        assert!(text.contains("token_ttl = \"30m\""));
        assert!(text.contains("upload_purge_age = \"24h\""));
        assert!(text.contains("# [metrics] is not set"));
        let table: Table = toml::from_str(&text).expect("redacted output is TOML");
        assert_eq!(schema::check(&table), Ok(()));
    }

    #[test]
    fn ldap_mode_requires_url_and_base_dn() {
        let message = env_error(&[("BERTH_AUTH__MODE", "ldap")]);
        assert_eq!(message, "ldap.url: required when auth.mode = \"ldap\"");

        let (message, path, _dir) =
            file_error("[auth]\nmode = \"ldap\"\n[ldap]\nurl = \"ldap://localhost\"\n");
        assert_eq!(
            message,
            format!(
                "{}: ldap.base_dn: required when auth.mode = \"ldap\"",
                path.display()
            )
        );

        // A half-written [ldap] is caught even before the mode is switched.
        let (message, path, _dir) = file_error("[ldap]\nurl = \"ldap://localhost\"\n");
        assert_eq!(
            message,
            format!(
                "{}: ldap.base_dn: required when [ldap] is set",
                path.display()
            )
        );

        // An empty [ldap] header in db mode is no LDAP at all.
        let (_dir, path) = config_file("[ldap]\n");
        assert_eq!(load(Some(&path), &[]).expect("valid").ldap, None);
    }

    #[test]
    fn value_checks_name_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("BERTH_LISTEN", "abc")],
                "env BERTH_LISTEN: invalid socket address `abc`",
            ),
            (
                &[("BERTH_EXTERNAL_URL", "ftp://example.org")],
                "env BERTH_EXTERNAL_URL: invalid URL: must use http or https",
            ),
            (
                &[("BERTH_STORAGE__DRIVER", "swift")],
                "env BERTH_STORAGE__DRIVER: expected one of \"filesystem\", \"s3\", found `swift`",
            ),
            (
                &[("BERTH_STORAGE__DRIVER", "s3")],
                "storage.s3.bucket: must be set with driver = \"s3\"",
            ),
            (
                &[
                    ("BERTH_STORAGE__DRIVER", "s3"),
                    ("BERTH_STORAGE__S3__BUCKET", "b"),
                    ("BERTH_STORAGE__S3__PART_SIZE", "1MiB"),
                ],
                "env BERTH_STORAGE__S3__PART_SIZE: `1MiB` is not a part size S3 accepts",
            ),
            (
                &[
                    ("BERTH_STORAGE__DRIVER", "s3"),
                    ("BERTH_STORAGE__S3__BUCKET", "b"),
                    ("BERTH_STORAGE__S3__ACCESS_KEY", "GK1"),
                ],
                "storage.s3.secret_key: access_key and secret_key go together",
            ),
            (
                &[("BERTH_STORAGE__REDIRECT", "true")],
                "env BERTH_STORAGE__REDIRECT: needs driver = \"s3\"",
            ),
            (
                &[("BERTH_TLS__CERT", "/c.pem")],
                "tls.key: required when tls.cert is set",
            ),
            (
                &[("BERTH_TLS__KEY", "/k.pem")],
                "tls.cert: required when tls.key is set",
            ),
            (
                &[("BERTH_SERVER__THREADS", "0")],
                "env BERTH_SERVER__THREADS: must be at least 1, found 0",
            ),
            (
                &[("BERTH_AUTH__MODE", "kerberos")],
                "env BERTH_AUTH__MODE: expected one of \"db\", \"ldap\", found `kerberos`",
            ),
            (
                &[("BERTH_LOG__FORMAT", "xml")],
                "env BERTH_LOG__FORMAT: expected one of \"text\", \"json\", found `xml`",
            ),
            (
                &[("BERTH_ADMIN_PASSWORD", "")],
                "env BERTH_ADMIN_PASSWORD: must not be empty",
            ),
            (
                &[("BERTH_DATA_DIR", "")],
                "env BERTH_DATA_DIR: must not be empty",
            ),
            (
                &[("BERTH_METRICS__LISTEN", "localhost")],
                "env BERTH_METRICS__LISTEN: invalid socket address `localhost`",
            ),
            (
                &[("BERTH_METRICS__LISTEN", "")],
                "env BERTH_METRICS__LISTEN: must not be empty",
            ),
            (
                &[
                    ("BERTH_LISTEN", "127.0.0.1:5000"),
                    ("BERTH_METRICS__LISTEN", "0.0.0.0:5000"),
                ],
                "env BERTH_METRICS__LISTEN: `0.0.0.0:5000` is the main listener's address",
            ),
            (
                &[
                    ("BERTH_AUTH__MODE", "ldap"),
                    ("BERTH_LDAP__URL", "ldap://h"),
                    ("BERTH_LDAP__BASE_DN", "dc=x"),
                    ("BERTH_LDAP__SEARCH_PASSWORD", "pw"),
                ],
                "ldap.search_dn: required when ldap.search_password is set",
            ),
        ];
        for (pairs, expected) in cases {
            let message = env_error(pairs);
            assert!(message.starts_with(expected), "{pairs:?}: {message}");
        }
    }

    #[test]
    fn database_url_errors_do_not_echo_the_url() {
        let message = env_error(&[("BERTH_DATABASE__URL", "mysql://root:topsecret@db/x")]);
        assert_eq!(
            message,
            "env BERTH_DATABASE__URL: must start with sqlite://, postgres:// or postgresql://"
        );
    }

    #[test]
    fn a_named_but_missing_file_is_an_error() {
        let dir = TempDir::new().expect("temp dir");
        let path = dir.path().join("nope.toml");
        let message = load(Some(&path), &[])
            .expect_err("missing file")
            .to_string();
        assert!(
            message.starts_with(&format!("{}: cannot read config file", path.display())),
            "{message}"
        );
    }

    #[test]
    fn toml_syntax_errors_give_file_line_and_column() {
        let (message, path, _dir) = file_error("listen = \"0.0.0.0:1\"\n[auth\nmode = \"db\"\n");
        assert!(
            message.starts_with(&format!(
                "{}: invalid TOML at line 2, column",
                path.display()
            )),
            "{message}"
        );
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("ab", 99), (1, 3));
    }
}
