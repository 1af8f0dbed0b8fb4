//! The directory and mail settings at run time: Harbor's `auth_mode`,
//! `ldap_*` and `email_*` keys. Each maps to its config key; values are
//! checked for their type here, then built into the file's own types by
//! the file's own rules (`berth_conf::live_settings`), so the API accepts
//! exactly what `berth.toml` would.
//!
//! The file owns a group whole: `auth.mode` or any `[ldap]` key given
//! makes the directory the file's, any `[email]` key the mail server.

use std::collections::BTreeMap;
use std::time::Duration;

use berth_conf::{
    AuthMode, ConfError, EmailSecurity, LdapConfig, LdapScope, LiveSettings, Location,
};
use serde_json::Value;

/// Which settings a key belongs to; the file owns each whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// `auth_mode` and `ldap_*`.
    Directory,
    /// `email_*`.
    Mail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    /// Write-only: never shown.
    Secret,
    Bool,
    Port,
    /// Whole seconds (Harbor's `ldap_timeout`).
    Seconds,
    /// Harbor's 0, 1, 2.
    Scope,
    /// Harbor's `db_auth`, `ldap_auth`.
    Mode,
}

/// One key: Harbor's name, the config key, its type and group.
#[derive(Debug)]
pub struct Key {
    pub harbor: &'static str,
    conf: &'static str,
    kind: Kind,
    pub group: Group,
}

const fn key(harbor: &'static str, conf: &'static str, kind: Kind, group: Group) -> Key {
    Key {
        harbor,
        conf,
        kind,
        group,
    }
}

use Group::{Directory, Mail};
use Kind::{Bool, Mode, Port, Scope, Seconds, Secret, Text};

const KEYS: &[Key] = &[
    key("auth_mode", "auth.mode", Mode, Directory),
    key("ldap_url", "ldap.url", Text, Directory),
    key("ldap_base_dn", "ldap.base_dn", Text, Directory),
    key("ldap_search_dn", "ldap.search_dn", Text, Directory),
    key(
        "ldap_search_password",
        "ldap.search_password",
        Secret,
        Directory,
    ),
    key("ldap_filter", "ldap.filter", Text, Directory),
    key("ldap_uid", "ldap.uid", Text, Directory),
    key("ldap_scope", "ldap.scope", Scope, Directory),
    key("ldap_timeout", "ldap.timeout", Seconds, Directory),
    key("ldap_verify_cert", "ldap.verify_cert", Bool, Directory),
    key("ldap_start_tls", "ldap.start_tls", Bool, Directory),
    key("ldap_group_base_dn", "ldap.group_base_dn", Text, Directory),
    key(
        "ldap_group_search_filter",
        "ldap.group_filter",
        Text,
        Directory,
    ),
    key(
        "ldap_group_attribute_name",
        "ldap.group_gid",
        Text,
        Directory,
    ),
    key(
        "ldap_group_admin_dn",
        "ldap.group_admin_dn",
        Text,
        Directory,
    ),
    key(
        "ldap_group_membership_attribute",
        "ldap.group_membership_attribute",
        Text,
        Directory,
    ),
    key("email_host", "email.server", Text, Mail),
    key("email_port", "email.port", Port, Mail),
    key("email_username", "email.username", Text, Mail),
    key("email_password", "email.password", Secret, Mail),
    key("email_from", "email.from", Text, Mail),
    key("email_ssl", "email.ssl", Bool, Mail),
    key("email_starttls", "email.starttls", Bool, Mail),
    key("email_insecure", "email.insecure", Bool, Mail),
];

/// The key named `harbor` (`"ldap_url"`), if it is one of these.
pub fn lookup(harbor: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.harbor == harbor)
}

/// Harbor's name of a config key (`ldap.filter` -> `ldap_filter`).
pub fn harbor_name(conf: &str) -> &str {
    KEYS.iter()
        .find(|k| k.conf == conf)
        .map_or(conf, |k| k.harbor)
}

/// The directory and mail settings among stored (key, JSON text) pairs,
/// parsed; a value that is not JSON is left out (building then says what
/// is missing).
pub fn values(stored: &[(String, String)]) -> BTreeMap<String, Value> {
    stored
        .iter()
        .filter(|(k, _)| lookup(k).is_some())
        .filter_map(|(k, text)| Some((k.clone(), serde_json::from_str(text).ok()?)))
        .collect()
}

/// The keys of `group`, in the order forms show them.
pub fn keys(group: Group) -> impl Iterator<Item = &'static Key> {
    KEYS.iter().filter(move |k| k.group == group)
}

/// How a form asks for a key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Text,
    Password,
    Checkbox,
    Number,
    /// `auth_mode`: `db_auth` or `ldap_auth`.
    Mode,
}

impl Key {
    pub fn is_secret(&self) -> bool {
        self.kind == Secret
    }

    pub fn input(&self) -> Input {
        match self.kind {
            Text => Input::Text,
            Secret => Input::Password,
            Bool => Input::Checkbox,
            Port | Seconds | Scope => Input::Number,
            Mode => Input::Mode,
        }
    }

    /// The value as the config file would hold it, its type checked;
    /// `None` when unset (Harbor sends unset text as "").
    fn to_conf(&self, value: &Value) -> Result<Option<toml::Value>, String> {
        let name = self.harbor;
        let wrong = |what: &str| format!("`{name}` takes {what}");
        Ok(Some(match self.kind {
            Text | Secret => match value.as_str() {
                Some("") => return Ok(None),
                Some(t) => toml::Value::String(t.to_owned()),
                None => return Err(wrong("a string")),
            },
            Bool => toml::Value::Boolean(value.as_bool().ok_or_else(|| wrong("true or false"))?),
            Port => toml::Value::Integer(
                value
                    .as_i64()
                    .filter(|p| (1..=65_535).contains(p))
                    .ok_or_else(|| wrong("a port, 1 to 65535"))?,
            ),
            Seconds => toml::Value::String(format!(
                "{}s",
                value
                    .as_i64()
                    .filter(|s| (1..=300).contains(s))
                    .ok_or_else(|| wrong("seconds, 1 to 300"))?
            )),
            Scope => toml::Value::String(
                match value.as_i64() {
                    Some(0) => "base",
                    Some(1) => "onelevel",
                    Some(2) => "subtree",
                    _ => return Err(wrong("0 (base), 1 (one level) or 2 (subtree)")),
                }
                .to_owned(),
            ),
            Mode => toml::Value::String(
                match value.as_str() {
                    Some("db_auth") => "db",
                    Some("ldap_auth") => "ldap",
                    _ => return Err(wrong("\"db_auth\" or \"ldap_auth\"")),
                }
                .to_owned(),
            ),
        }))
    }
}

/// Checks `value`'s type for `key` (the API's PUT, before anything is
/// stored).
pub fn check(key: &Key, value: &Value) -> Result<(), String> {
    key.to_conf(value).map(drop)
}

/// Builds the settings from values by Harbor's key. The LDAP keys count
/// only in LDAP mode or with `ldap_url` set, and the mail keys only with
/// `email_host` set: Harbor's clients send every key, the unused ones at
/// their defaults. Errors name Harbor's keys.
pub fn build(values: &BTreeMap<String, Value>) -> Result<LiveSettings, String> {
    let is_set = |k: &str| {
        values
            .get(k)
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty())
    };
    let ldap_wanted =
        values.get("auth_mode").and_then(Value::as_str) == Some("ldap_auth") || is_set("ldap_url");
    let mail_wanted = is_set("email_host");
    let mut pairs = Vec::new();
    for k in KEYS {
        let wanted = match (k.group, k.harbor) {
            (Directory, "auth_mode") => true,
            (Directory, _) => ldap_wanted,
            (Mail, _) => mail_wanted,
        };
        if let (true, Some(v)) = (wanted, values.get(k.harbor)) {
            if let Some(conf) = k.to_conf(v)? {
                pairs.push((k.conf, conf));
            }
        }
    }
    berth_conf::live_settings(&pairs).map_err(harbor_words)
}

/// A config error as the API says it: Harbor's key names, not the file's.
fn harbor_words(e: ConfError) -> String {
    let text = match &e {
        ConfError::Invalid {
            at: Location::Key { key },
            message,
        } => format!("{key} {message}"),
        ConfError::Missing {
            at: Location::Key { key },
            reason,
        } => format!("{key} is required when {reason}"),
        other => other.to_string(),
    };
    harbor_text(&text)
        .replace("\"ldap\"", "ldap_auth")
        .replace("[email] is set", "email_host is set")
        .replace("[ldap] is set", "an ldap_ setting is set")
}

/// `text` with every config key in it spelled as Harbor's key.
pub fn harbor_text(text: &str) -> String {
    let mut text = text.to_owned();
    // Longest first, so `ldap.group_base_dn` is not taken for `ldap.group`...
    let mut keys: Vec<&Key> = KEYS.iter().collect();
    keys.sort_by_key(|k| std::cmp::Reverse(k.conf.len()));
    for k in keys {
        text = text.replace(k.conf, k.harbor);
    }
    text
}

/// The values `GET /configurations` shows for `live` (secrets left out;
/// defaults where a section is not set).
pub fn shown(live: &LiveSettings) -> Vec<(&'static str, Value)> {
    let defaults = LdapConfig {
        url: String::new(),
        search_dn: None,
        search_password: None,
        base_dn: String::new(),
        filter: None,
        uid: "uid".into(),
        scope: LdapScope::Subtree,
        timeout: Duration::from_secs(5),
        verify_cert: true,
        start_tls: false,
        cache_ttl: Duration::ZERO,
        group_base_dn: None,
        group_filter: None,
        group_gid: None,
        group_admin_dn: None,
        group_membership_attribute: None,
    };
    let l = live.ldap.as_ref().unwrap_or(&defaults);
    let text = |v: &Option<String>| Value::from(v.clone().unwrap_or_default());
    let mut out = vec![
        (
            "auth_mode",
            Value::from(match live.mode {
                AuthMode::Db => "db_auth",
                AuthMode::Ldap => "ldap_auth",
            }),
        ),
        ("ldap_url", Value::from(l.url.clone())),
        ("ldap_base_dn", Value::from(l.base_dn.clone())),
        ("ldap_search_dn", text(&l.search_dn)),
        ("ldap_filter", text(&l.filter)),
        ("ldap_uid", Value::from(l.uid.clone())),
        (
            "ldap_scope",
            Value::from(match l.scope {
                LdapScope::Base => 0,
                LdapScope::OneLevel => 1,
                LdapScope::Subtree => 2,
            }),
        ),
        ("ldap_timeout", Value::from(l.timeout.as_secs())),
        ("ldap_verify_cert", Value::Bool(l.verify_cert)),
        ("ldap_start_tls", Value::Bool(l.start_tls)),
        ("ldap_group_base_dn", text(&l.group_base_dn)),
        ("ldap_group_search_filter", text(&l.group_filter)),
        ("ldap_group_attribute_name", text(&l.group_gid)),
        ("ldap_group_admin_dn", text(&l.group_admin_dn)),
        (
            "ldap_group_membership_attribute",
            text(&l.group_membership_attribute),
        ),
    ];
    let e = live.email.as_ref();
    let security = e.map(|e| e.security);
    out.extend([
        (
            "email_host",
            Value::from(e.map(|e| e.server.clone()).unwrap_or_default()),
        ),
        ("email_port", Value::from(e.map_or(25, |e| e.port))),
        (
            "email_username",
            Value::from(e.and_then(|e| e.username.clone()).unwrap_or_default()),
        ),
        (
            "email_from",
            Value::from(e.map(|e| e.from.clone()).unwrap_or_default()),
        ),
        (
            "email_ssl",
            Value::Bool(security == Some(EmailSecurity::Tls)),
        ),
        (
            "email_starttls",
            Value::Bool(security == Some(EmailSecurity::StartTls)),
        ),
        ("email_insecure", Value::Bool(e.is_some_and(|e| e.insecure))),
    ]);
    out
}

/// The value shown for `harbor` in `live`, if it is shown at all.
pub fn shown_value(live: &LiveSettings, harbor: &str) -> Option<Value> {
    shown(live)
        .into_iter()
        .find(|(k, _)| *k == harbor)
        .map(|(_, v)| v)
}

/// Whether the file owns `group`, from the config keys it gives.
pub fn file_owns(config: &berth_conf::Config, group: Group) -> bool {
    config.given.iter().any(|k| match group {
        Directory => *k == "auth.mode" || k.starts_with("ldap."),
        Mail => k.starts_with("email."),
    })
}

/// The config key of a Harbor key, for messages.
pub fn conf_key(harbor: &str) -> Option<&'static str> {
    lookup(harbor).map(|k| k.conf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_secret_keys_are_those_storage_seals() {
        let mut secret: Vec<&str> = KEYS
            .iter()
            .filter(|k| k.is_secret())
            .map(|k| k.harbor)
            .collect();
        let mut sealed = berth_storage::secrets::SECRET_SETTINGS.to_vec();
        secret.sort_unstable();
        sealed.sort_unstable();
        assert_eq!(secret, sealed);
    }

    fn values(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn builds_what_harbors_clients_send() {
        // Every key, the unused ones at Harbor's defaults: db mode, no
        // mail host, so neither LDAP nor mail is built (nor refused).
        let idle = values(&[
            ("auth_mode", json!("db_auth")),
            ("ldap_url", json!("")),
            ("ldap_scope", json!(2)),
            ("ldap_timeout", json!(5)),
            ("email_host", json!("")),
            ("email_port", json!(25)),
            ("email_ssl", json!(false)),
        ]);
        let live = build(&idle).expect("idle settings");
        assert_eq!(
            (live.mode, live.ldap, live.email),
            (AuthMode::Db, None, None)
        );
        let set = values(&[
            ("auth_mode", json!("ldap_auth")),
            ("ldap_url", json!("ldap://dir:389")),
            ("ldap_base_dn", json!("dc=example,dc=org")),
            ("ldap_scope", json!(1)),
            ("ldap_timeout", json!(7)),
            ("email_host", json!("smtp.example.org")),
            ("email_from", json!("r@example.org")),
            ("email_port", json!(465)),
            ("email_ssl", json!(true)),
        ]);
        let live = build(&set).expect("settings");
        let ldap = live.ldap.clone().expect("ldap");
        assert_eq!(
            (ldap.scope, ldap.timeout),
            (LdapScope::OneLevel, Duration::from_secs(7))
        );
        assert_eq!(
            live.email.as_ref().map(|e| e.security),
            Some(EmailSecurity::Tls)
        );
        // What GET shows builds the same settings again.
        let again: BTreeMap<String, Value> = shown(&live)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(build(&again).expect("shown values"), live);
    }

    #[test]
    fn refusals_name_harbors_keys() {
        for (pairs, key) in [
            (vec![("auth_mode", json!("ldap_auth"))], "ldap_url"),
            (vec![("auth_mode", json!("oidc_auth"))], "auth_mode"),
            (
                vec![
                    ("ldap_url", json!("http://x")),
                    ("ldap_base_dn", json!("dc=x")),
                ],
                "ldap_url",
            ),
            (vec![("email_host", json!("smtp"))], "email_from"),
            (
                vec![
                    ("email_host", json!("smtp")),
                    ("email_from", json!("a@b")),
                    ("email_password", json!("p")),
                ],
                "email_username",
            ),
            (
                vec![("email_host", json!("smtp")), ("email_port", json!(0))],
                "email_port",
            ),
            (
                vec![
                    ("ldap_url", json!("ldap://x")),
                    ("ldap_timeout", json!("5s")),
                ],
                "ldap_timeout",
            ),
            (
                vec![("ldap_url", json!("ldap://x")), ("ldap_scope", json!(3))],
                "ldap_scope",
            ),
        ] {
            let e = build(&values(&pairs)).expect_err("refused");
            assert!(e.contains(key), "{key}: {e}");
            assert!(!e.contains("email.") && !e.contains("ldap."), "{e}");
        }
    }

    #[test]
    fn secrets_are_never_shown() {
        let live = build(&values(&[
            ("auth_mode", json!("ldap_auth")),
            ("ldap_url", json!("ldap://x")),
            ("ldap_base_dn", json!("dc=x")),
            ("ldap_search_dn", json!("cn=admin,dc=x")),
            ("ldap_search_password", json!("s3cret-bind")),
            ("email_host", json!("smtp")),
            ("email_from", json!("a@b")),
            ("email_username", json!("u")),
            ("email_password", json!("s3cret-mail")),
        ]))
        .expect("settings");
        let text = serde_json::to_string(&shown(&live)).expect("json");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(KEYS
            .iter()
            .filter(|k| k.is_secret())
            .all(|k| shown_value(&live, k.harbor).is_none()));
    }
}
