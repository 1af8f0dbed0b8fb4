//! `BERTH_*` environment overrides. `BERTH_LISTEN` sets `listen`,
//! `BERTH_AUTH__MODE` sets `auth.mode`; names are case-insensitive. Values
//! are typed by the schema, so `"false"` becomes a boolean only for a boolean
//! key and a password of `"1234"` stays a string.

use toml::{Table, Value};

use crate::error::{ConfError, Location};
use crate::schema::{self, Key, Kind};

const PREFIX: &str = "BERTH_";

/// Variables that share the prefix but are not settings: scripts and the
/// end-to-end tests use them to find the binary and the config file.
const NOT_SETTINGS: &[&str] = &["BERTH_BIN", "BERTH_CONFIG"];

/// Short names the docs promise, mapped to the key they set.
const ALIASES: &[(&str, &str)] = &[("BERTH_ADMIN_PASSWORD", "auth.admin_password")];

/// One variable that sets one key.
#[derive(Debug)]
pub(crate) struct Override {
    /// The variable as the caller spelled it, for messages.
    pub(crate) var: String,
    pub(crate) key: &'static Key,
    pub(crate) value: Value,
}

/// Picks the `BERTH_*` variables out of `env` and types their values. Any
/// other `BERTH_*` variable is an error: a typo must not be silently ignored.
pub(crate) fn overrides(env: &[(String, String)]) -> Result<Vec<Override>, ConfError> {
    let mut found: Vec<Override> = Vec::new();
    for (var, text) in env {
        let upper = var.to_ascii_uppercase();
        if !upper.starts_with(PREFIX) || NOT_SETTINGS.contains(&upper.as_str()) {
            continue;
        }
        let key = key_for(&upper).ok_or_else(|| ConfError::UnknownEnv {
            var: var.clone(),
            suggestion: suggest(&upper),
        })?;
        let value = typed(key.kind, text).ok_or_else(|| ConfError::WrongType {
            at: Location::Env { var: var.clone() },
            expected: key.kind.expected(),
            // Only booleans and integers fail here, and those are no secret.
            found: format!("`{text}`"),
        })?;
        // An alias and its long form (or two spellings of one name) may both
        // be set; env order is not meaningful, so only agreement is accepted.
        if let Some(earlier) = found.iter().find(|o| o.key.path == key.path) {
            if earlier.value != value {
                return Err(ConfError::EnvConflict {
                    first: earlier.var.clone(),
                    second: var.clone(),
                    key: key.path.to_owned(),
                });
            }
            continue;
        }
        found.push(Override {
            var: var.clone(),
            key,
            value,
        });
    }
    Ok(found)
}

/// Writes the overrides into `table`, over whatever the file said.
pub(crate) fn apply(table: &mut Table, overrides: &[Override]) {
    for o in overrides {
        insert(table, o.key.path, o.value.clone());
    }
}

/// Sets the dotted `path` in `table`, creating the sections on the way.
fn insert(table: &mut Table, path: &str, value: Value) {
    let Some((section, rest)) = path.split_once('.') else {
        table.insert(path.to_owned(), value);
        return;
    };
    let entry = table
        .entry(section)
        .or_insert_with(|| Value::Table(Table::new()));
    // The schema check has already rejected a section that is not a
    // table, so there is nothing else to handle here.
    if let Value::Table(inner) = entry {
        insert(inner, rest, value);
    }
}

/// `BERTH_AUTH__MODE` -> the `auth.mode` key, from the upper-cased name.
fn key_for(upper: &str) -> Option<&'static Key> {
    if let Some((_, path)) = ALIASES.iter().find(|(alias, _)| *alias == upper) {
        return schema::lookup(path);
    }
    let rest = upper.strip_prefix(PREFIX)?.to_ascii_lowercase();
    // A dot would let `BERTH_TLS.CERT` reach `tls.cert` by another spelling.
    if rest.contains('.') {
        return None;
    }
    schema::lookup(&rest.replace("__", "."))
}

/// The commonest slip is one underscore where two belong
/// (`BERTH_AUTH_MODE`); offer the spelling that names a key.
fn suggest(upper: &str) -> Option<String> {
    let rest = upper.strip_prefix(PREFIX)?;
    rest.match_indices('_').find_map(|(at, _)| {
        let candidate = format!("{PREFIX}{}__{}", &rest[..at], &rest[at + 1..]);
        key_for(&candidate).map(|_| candidate)
    })
}

fn typed(kind: Kind, text: &str) -> Option<Value> {
    match kind {
        Kind::Text | Kind::Duration => Some(Value::String(text.to_owned())),
        Kind::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "true" => Some(Value::Boolean(true)),
            "false" => Some(Value::Boolean(false)),
            _ => None,
        },
        Kind::Integer => text.trim().parse().ok().map(Value::Integer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn one(var: &str, text: &str) -> Result<(&'static str, Value), ConfError> {
        let mut found = overrides(&env(&[(var, text)]))?;
        let o = found.pop().expect("one override");
        Ok((o.key.path, o.value))
    }

    #[test]
    fn maps_names_to_keys() {
        let text = |s: &str| Value::String(s.to_owned());
        assert_eq!(
            one("BERTH_LISTEN", "127.0.0.1:5001").ok(),
            Some(("listen", text("127.0.0.1:5001")))
        );
        assert_eq!(
            one("BERTH_AUTH__MODE", "ldap").ok(),
            Some(("auth.mode", text("ldap")))
        );
        assert_eq!(
            one("BERTH_STORAGE__S3__ACCESS_KEY", "GK1").ok(),
            Some(("storage.s3.access_key", text("GK1")))
        );
        assert_eq!(
            one("BERTH_LDAP__GROUP_BASE_DN", "ou=g").ok(),
            Some(("ldap.group_base_dn", text("ou=g")))
        );
        assert_eq!(
            one("berth_auth__token_ttl", "1h").ok(),
            Some(("auth.token_ttl", text("1h")))
        );
        assert_eq!(
            one("BERTH_ADMIN_PASSWORD", "1234").ok(),
            Some(("auth.admin_password", text("1234")))
        );
    }

    #[test]
    fn types_values_by_the_schema() {
        assert_eq!(
            one("BERTH_LDAP__VERIFY_CERT", "false").ok(),
            Some(("ldap.verify_cert", Value::Boolean(false)))
        );
        assert_eq!(
            one("BERTH_LDAP__VERIFY_CERT", "TRUE").ok(),
            Some(("ldap.verify_cert", Value::Boolean(true)))
        );
        assert_eq!(
            one("BERTH_LDAP__START_TLS", "true").ok(),
            Some(("ldap.start_tls", Value::Boolean(true)))
        );
        assert_eq!(
            one("BERTH_LDAP__CACHE_TTL", "2m").ok(),
            Some(("ldap.cache_ttl", Value::String("2m".to_owned())))
        );
        assert_eq!(
            one("BERTH_SERVER__THREADS", "4").ok(),
            Some(("server.threads", Value::Integer(4)))
        );
        // A string key keeps digits and "false" as text.
        assert_eq!(
            one("BERTH_AUTH__ADMIN_PASSWORD", "false").ok(),
            Some(("auth.admin_password", Value::String("false".to_owned())))
        );
    }

    #[test]
    fn rejects_values_of_the_wrong_type() {
        let err = one("BERTH_SERVER__THREADS", "many").expect_err("not an integer");
        assert_eq!(
            err.to_string(),
            "env BERTH_SERVER__THREADS: expected an integer, found `many`"
        );
        let err = one("BERTH_LDAP__VERIFY_CERT", "yes").expect_err("not a boolean");
        assert_eq!(
            err.to_string(),
            "env BERTH_LDAP__VERIFY_CERT: expected a boolean (true or false), found `yes`"
        );
    }

    #[test]
    fn rejects_unknown_berth_variables_by_name() {
        let err = one("BERTH_LISTN", "x").expect_err("unknown");
        assert!(err
            .to_string()
            .starts_with("env BERTH_LISTN: no such setting"));
        let err = one("BERTH_TLS__CERTT", "x").expect_err("unknown");
        assert!(err.to_string().contains("BERTH_TLS__CERTT"));
        let err = one("BERTH_TLS", "x").expect_err("a section is not a key");
        assert!(err.to_string().contains("BERTH_TLS"));
        assert!(one("BERTH_TLS.CERT", "x").is_err());
        assert!(one("BERTH_AUTH__MODE__X", "x").is_err());
        let err = one("BERTH_AUTH_MODE", "ldap").expect_err("single underscore");
        assert!(
            err.to_string().contains("did you mean BERTH_AUTH__MODE?"),
            "{err}"
        );
    }

    #[test]
    fn ignores_other_variables_and_the_reserved_ones() {
        let found = overrides(&env(&[
            ("PATH", "/bin"),
            ("RUST_LOG", "debug"),
            ("BERTH_BIN", "/target/release/berth"),
            ("BERTH_CONFIG", "/etc/berth.toml"),
            ("BERTHA", "x"),
        ]))
        .expect("nothing to reject");
        assert!(found.is_empty());
    }

    #[test]
    fn alias_and_long_form_must_agree() {
        let same = overrides(&env(&[
            ("BERTH_ADMIN_PASSWORD", "pw"),
            ("BERTH_AUTH__ADMIN_PASSWORD", "pw"),
        ]))
        .expect("agreeing values");
        assert_eq!(same.len(), 1);
        let err = overrides(&env(&[
            ("BERTH_ADMIN_PASSWORD", "pw"),
            ("BERTH_AUTH__ADMIN_PASSWORD", "other"),
        ]))
        .expect_err("disagreeing values");
        assert_eq!(
            err.to_string(),
            "env BERTH_ADMIN_PASSWORD and env BERTH_AUTH__ADMIN_PASSWORD both set \
             `auth.admin_password`, to different values"
        );
    }

    #[test]
    fn apply_overrides_file_values_and_creates_sections() {
        let mut table: Table = "listen = \"0.0.0.0:1\"\n[auth]\nmode = \"db\"\n"
            .parse()
            .expect("test TOML parses");
        let found = overrides(&env(&[
            ("BERTH_LISTEN", "0.0.0.0:2"),
            ("BERTH_AUTH__MODE", "ldap"),
            ("BERTH_SERVER__THREADS", "3"),
        ]))
        .expect("valid overrides");
        apply(&mut table, &found);
        assert_eq!(table["listen"].as_str(), Some("0.0.0.0:2"));
        assert_eq!(table["auth"]["mode"].as_str(), Some("ldap"));
        assert_eq!(table["server"]["threads"].as_integer(), Some(3));
    }
}
