//! The keys `berth.toml` accepts and the TOML type each holds.
//!
//! This list is the single source of truth: the file walk (unknown keys,
//! wrong types) and the environment overrides (which type `"false"` becomes)
//! both read it, so they cannot disagree. serde's `deny_unknown_fields` would
//! reject the same keys but without naming the path, hence the walk.

use toml::{Table, Value};

/// The TOML type of a key. Durations are strings to the file, but a separate
/// kind so a wrong type says what a duration looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Duration,
    Bool,
    Integer,
}

impl Kind {
    pub(crate) fn expected(self) -> &'static str {
        match self {
            Kind::Text => "a string",
            Kind::Duration => "a duration string such as \"30m\"",
            Kind::Bool => "a boolean (true or false)",
            Kind::Integer => "an integer",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        matches!(
            (self, value),
            (Kind::Text | Kind::Duration, Value::String(_))
                | (Kind::Bool, Value::Boolean(_))
                | (Kind::Integer, Value::Integer(_))
        )
    }
}

/// One key, by its dotted path (`"listen"`, `"auth.mode"`).
#[derive(Debug)]
pub(crate) struct Key {
    pub(crate) path: &'static str,
    pub(crate) kind: Kind,
}

const fn key(path: &'static str, kind: Kind) -> Key {
    Key { path, kind }
}

/// Every key, in the order of the documented example file. A section is
/// every dotted prefix of a key (`storage`, `storage.s3`).
pub(crate) const KEYS: &[Key] = &[
    key("listen", Kind::Text),
    key("external_url", Kind::Text),
    key("data_dir", Kind::Text),
    key("tls.cert", Kind::Text),
    key("tls.key", Kind::Text),
    key("database.url", Kind::Text),
    key("storage.driver", Kind::Text),
    key("storage.root", Kind::Text),
    key("storage.redirect", Kind::Bool),
    key("storage.s3.endpoint", Kind::Text),
    key("storage.s3.region", Kind::Text),
    key("storage.s3.bucket", Kind::Text),
    key("storage.s3.prefix", Kind::Text),
    key("storage.s3.access_key", Kind::Text),
    key("storage.s3.secret_key", Kind::Text),
    key("storage.s3.path_style", Kind::Bool),
    key("storage.s3.part_size", Kind::Text),
    key("email.server", Kind::Text),
    key("email.port", Kind::Integer),
    key("email.username", Kind::Text),
    key("email.password", Kind::Text),
    key("email.from", Kind::Text),
    key("email.ssl", Kind::Bool),
    key("email.starttls", Kind::Bool),
    key("email.insecure", Kind::Bool),
    key("auth.mode", Kind::Text),
    key("auth.admin_password", Kind::Text),
    key("auth.token_ttl", Kind::Duration),
    key("ldap.url", Kind::Text),
    key("ldap.search_dn", Kind::Text),
    key("ldap.search_password", Kind::Text),
    key("ldap.base_dn", Kind::Text),
    key("ldap.filter", Kind::Text),
    key("ldap.uid", Kind::Text),
    key("ldap.scope", Kind::Text),
    key("ldap.timeout", Kind::Duration),
    key("ldap.verify_cert", Kind::Bool),
    key("ldap.start_tls", Kind::Bool),
    key("ldap.cache_ttl", Kind::Duration),
    key("ldap.group_base_dn", Kind::Text),
    key("ldap.group_filter", Kind::Text),
    key("ldap.group_gid", Kind::Text),
    key("ldap.group_admin_dn", Kind::Text),
    key("ldap.group_membership_attribute", Kind::Text),
    key("server.threads", Kind::Integer),
    key("server.grace_period", Kind::Duration),
    key("server.upload_purge_age", Kind::Duration),
    key("server.http_redirect", Kind::Text),
    key("server.trusted_proxies", Kind::Text),
    key("server.body_timeout", Kind::Duration),
    key("server.body_min_rate", Kind::Text),
    key("server.max_uploads_per_user", Kind::Integer),
    key("server.max_manifest_size", Kind::Text),
    key("server.max_header_size", Kind::Text),
    key("server.rate_limit", Kind::Integer),
    key("server.rate_burst", Kind::Integer),
    key("log.format", Kind::Text),
    key("log.level", Kind::Text),
    key("metrics.listen", Kind::Text),
    key("proxy.mirror", Kind::Text),
    key("proxy.mirror_project", Kind::Text),
    key("proxy.cache_max_size", Kind::Text),
    key("proxy.cache_ttl", Kind::Duration),
    key("quota.default_storage_limit", Kind::Integer),
    key("gc.grace_period", Kind::Duration),
    key("secrets.key_file", Kind::Text),
];

pub(crate) fn lookup(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.path == path)
}

fn is_section(name: &str) -> bool {
    KEYS.iter().any(|key| {
        key.path
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// Why a table does not fit the schema; the caller adds the file name.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Problem {
    Unknown {
        key: String,
    },
    WrongType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
}

/// Walks `table` against [`KEYS`] and reports the first key (in sorted
/// order, so the answer is stable) that is unknown or of the wrong type.
pub(crate) fn check(table: &Table) -> Result<(), Problem> {
    check_in("", table)
}

fn check_in(prefix: &str, table: &Table) -> Result<(), Problem> {
    for (name, value) in table {
        let path = format!("{prefix}{name}");
        if !is_section(&path) {
            check_value(&path, value)?;
            continue;
        }
        let Value::Table(section) = value else {
            return Err(Problem::WrongType {
                key: path,
                expected: "a table (a [section])",
                found: describe(value),
            });
        };
        check_in(&format!("{path}."), section)?;
    }
    Ok(())
}

fn check_value(path: &str, value: &Value) -> Result<(), Problem> {
    let Some(key) = lookup(path) else {
        return Err(Problem::Unknown {
            key: path.to_owned(),
        });
    };
    if key.kind.accepts(value) {
        Ok(())
    } else {
        Err(Problem::WrongType {
            key: path.to_owned(),
            expected: key.kind.expected(),
            found: describe(value),
        })
    }
}

/// The type of a value, never the value itself: it may be a password.
pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        text.parse().expect("test TOML parses")
    }

    #[test]
    fn accepts_known_keys_of_the_right_type() {
        let ok = table(
            "listen = \"0.0.0.0:5000\"\n\
             [auth]\nmode = \"db\"\ntoken_ttl = \"30m\"\n\
             [ldap]\nverify_cert = false\n\
             [server]\nthreads = 4\n",
        );
        assert_eq!(check(&ok), Ok(()));
        assert_eq!(check(&Table::new()), Ok(()));
    }

    #[test]
    fn names_unknown_keys_by_full_path() {
        let unknown = |text: &str| match check(&table(text)) {
            Err(Problem::Unknown { key }) => key,
            other => panic!("expected unknown key for {text:?}, got {other:?}"),
        };
        assert_eq!(unknown("listenn = \"x\""), "listenn");
        assert_eq!(unknown("[tls]\ncertt = \"x\""), "tls.certt");
        assert_eq!(unknown("[auth]\nmodee = \"db\""), "auth.modee");
        assert_eq!(unknown("[nope]\na = 1"), "nope");
        assert_eq!(unknown("[tls.extra]\na = 1"), "tls.extra");
        assert_eq!(
            unknown("[storage.s3]\nbuckett = \"b\""),
            "storage.s3.buckett"
        );
        assert_eq!(unknown("[storage.s4]\nbucket = \"b\""), "storage.s4");
    }

    #[test]
    fn names_wrong_types_by_full_path() {
        let wrong = |text: &str| match check(&table(text)) {
            Err(Problem::WrongType {
                key,
                expected,
                found,
            }) => (key, expected, found),
            other => panic!("expected wrong type for {text:?}, got {other:?}"),
        };
        assert_eq!(
            wrong("[server]\nthreads = \"4\""),
            ("server.threads".to_owned(), "an integer", "a string")
        );
        assert_eq!(
            wrong("[ldap]\nverify_cert = \"no\""),
            (
                "ldap.verify_cert".to_owned(),
                "a boolean (true or false)",
                "a string"
            )
        );
        assert_eq!(
            wrong("[auth]\ntoken_ttl = 30"),
            (
                "auth.token_ttl".to_owned(),
                "a duration string such as \"30m\"",
                "an integer"
            )
        );
        assert_eq!(
            wrong("tls = \"yes\""),
            ("tls".to_owned(), "a table (a [section])", "a string")
        );
        assert_eq!(
            wrong("[auth]\nadmin_password = 1234"),
            ("auth.admin_password".to_owned(), "a string", "an integer")
        );
    }

    #[test]
    fn every_key_is_unique_and_no_key_is_a_section() {
        for (index, key) in KEYS.iter().enumerate() {
            assert!(!is_section(key.path), "{} is a key and a section", key.path);
            assert!(
                KEYS[index + 1..].iter().all(|other| other.path != key.path),
                "duplicate key {}",
                key.path
            );
        }
    }
}
