//! The directory and mail settings when they are set at run time (Harbor's
//! `/configurations`) rather than in the file: `auth.mode`, `[ldap]` and
//! `[email]` built from (key, value) pairs by the very rules the file's
//! are built by, so the API accepts exactly what the file would.

use toml::{Table, Value};

use crate::build;
use crate::config::{AuthMode, LdapConfig};
use crate::email::{self, EmailConfig};
use crate::error::{ConfError, Location};
use crate::schema::{self, Problem};
use crate::settings::Settings;

/// The settings `live_settings` builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSettings {
    pub mode: AuthMode,
    pub ldap: Option<LdapConfig>,
    pub email: Option<EmailConfig>,
}

/// Whether `key` (`"ldap.url"`) is one the API may set at run time.
pub fn is_live_key(key: &str) -> bool {
    key == "auth.mode" || key.starts_with("ldap.") || key.starts_with("email.")
}

/// Builds the settings from `values` by config key (`("ldap.url",
/// "ldap://...")`); every error names its key with [`Location::Key`].
pub fn live_settings(values: &[(&str, Value)]) -> Result<LiveSettings, ConfError> {
    let mut table = Table::new();
    for (key, value) in values {
        if !is_live_key(key) {
            return Err(ConfError::Invalid {
                at: Location::Key {
                    key: (*key).to_owned(),
                },
                message: "is set in the config file only".to_owned(),
            });
        }
        let Some((section, name)) = key.split_once('.') else {
            continue;
        };
        let at = table
            .entry(section)
            .or_insert_with(|| Value::Table(Table::new()));
        if let Value::Table(t) = at {
            t.insert(name.to_owned(), value.clone());
        }
    }
    schema::check(&table).map_err(|problem| match problem {
        Problem::Unknown { key } => ConfError::Invalid {
            at: Location::Key { key },
            message: "is not a setting".to_owned(),
        },
        Problem::WrongType {
            key,
            expected,
            found,
        } => ConfError::WrongType {
            at: Location::Key { key },
            expected,
            found: found.to_owned(),
        },
    })?;
    let s = Settings::new(table, None, &[]);
    let mode = build::auth_mode(&s)?;
    Ok(LiveSettings {
        mode,
        ldap: build::ldap(&s, mode)?,
        email: email::email(&s)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LdapScope;

    fn text(v: &str) -> Value {
        Value::String(v.to_owned())
    }

    #[test]
    fn builds_by_the_files_rules() {
        let live = live_settings(&[
            ("auth.mode", text("ldap")),
            ("ldap.url", text("ldap://dir.example.org")),
            ("ldap.base_dn", text("dc=example,dc=org")),
            ("ldap.scope", text("onelevel")),
            ("email.server", text("smtp.example.org")),
            ("email.from", text("berth <r@example.org>")),
            ("email.port", Value::Integer(587)),
            ("email.starttls", Value::Boolean(true)),
        ])
        .expect("valid");
        assert_eq!(live.mode, AuthMode::Ldap);
        let ldap = live.ldap.expect("ldap");
        assert_eq!(ldap.scope, LdapScope::OneLevel);
        assert_eq!(ldap.uid, "uid");
        assert_eq!(live.email.expect("email").port, 587);
        let none = live_settings(&[]).expect("empty");
        assert_eq!(
            (none.mode, none.ldap, none.email),
            (AuthMode::Db, None, None)
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases: [(&[(&str, Value)], &str); 5] = [
            (&[("auth.mode", text("ldap"))], "ldap.url"),
            (
                &[
                    ("ldap.url", text("http://x")),
                    ("ldap.base_dn", text("dc=x")),
                ],
                "ldap.url",
            ),
            (&[("email.server", text("smtp"))], "email.from"),
            (&[("ldap.timeout", Value::Integer(3))], "ldap.timeout"),
            (&[("listen", text("0.0.0.0:1"))], "listen"),
        ];
        for (values, key) in cases {
            let e = live_settings(values).expect_err("refused");
            assert!(e.to_string().starts_with(key), "{key}: {e}");
        }
    }
}
