//! Settings that change while berth runs (`/configurations`): read-only
//! mode, who may create projects, how long tokens and robots last, new
//! projects' storage limit, and (`live`) the directory and mail server.
//! Each has a default (or the config file's value); the
//! database keeps those changed through the API, and every instance
//! applies them as it hears of the change (`Change::Configuration`, which
//! carries them) and reads them again now and then in case it missed one.
//!
//! A setting the config file (or its environment variable) sets stays the
//! file's: the API shows it as not editable.

pub mod live;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_auth::ldap::LdapDirectory;
use berth_auth::{LoginService, TokenService};
use berth_conf::{AuthMode, Config, LiveSettings};
use berth_storage::meta::Meta;
use serde_json::Value;

use crate::error::GatewayError;
use crate::mail::{Mailer, MailerSlot};

/// The settings the API may change, by Harbor's names.
pub const READ_ONLY: &str = "read_only";
pub const PROJECT_CREATION: &str = "project_creation_restriction";
pub const TOKEN_EXPIRATION: &str = "token_expiration";
pub const STORAGE_PER_PROJECT: &str = "storage_per_project";
pub const ROBOT_DAYS: &str = "robot_token_duration";

/// How often every instance reads the stored settings again (changes are
/// announced at once; this bounds a missed announcement).
const REREAD: Duration = Duration::from_secs(30);
/// Bounds of `token_expiration`, in minutes: a token must outlast a push's
/// start (see `auth.token_ttl`), and a month is plenty.
const TOKEN_MINUTES: std::ops::RangeInclusive<i64> = 1..=43_200;
/// Bounds of `robot_token_duration`, in days (as a robot's `duration`).
const ROBOT_DAYS_RANGE: std::ops::RangeInclusive<i64> = 1..=36_500;
/// Harbor's default robot lifetime.
const DEFAULT_ROBOT_DAYS: i64 = 30;

/// One setting, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    ReadOnly(bool),
    /// Only administrators create projects (`adminonly`), else anyone
    /// signed in (`everyone`).
    AdminOnlyProjects(bool),
    TokenMinutes(i64),
    /// Bytes; `None`: unlimited (`-1`).
    StoragePerProject(Option<u64>),
    /// A new robot's lifetime when its `duration` is left out (or 0).
    RobotDays(i64),
}

impl Setting {
    /// Parses `value` for `key`; the error names the key and what it takes.
    pub fn parse(key: &str, value: &Value) -> Result<Setting, String> {
        match key {
            READ_ONLY => value
                .as_bool()
                .map(Setting::ReadOnly)
                .ok_or_else(|| format!("`{READ_ONLY}` takes true or false")),
            PROJECT_CREATION => match value.as_str() {
                Some("everyone") => Ok(Setting::AdminOnlyProjects(false)),
                Some("adminonly") => Ok(Setting::AdminOnlyProjects(true)),
                _ => Err(format!(
                    "`{PROJECT_CREATION}` takes \"everyone\" or \"adminonly\""
                )),
            },
            TOKEN_EXPIRATION => value
                .as_i64()
                .filter(|m| TOKEN_MINUTES.contains(m))
                .map(Setting::TokenMinutes)
                .ok_or_else(|| {
                    format!(
                        "`{TOKEN_EXPIRATION}` takes minutes, {} to {}",
                        TOKEN_MINUTES.start(),
                        TOKEN_MINUTES.end()
                    )
                }),
            STORAGE_PER_PROJECT => match value.as_i64() {
                Some(-1) => Ok(Setting::StoragePerProject(None)),
                Some(n) if n >= 0 => Ok(Setting::StoragePerProject(Some(n as u64))),
                _ => Err(format!(
                    "`{STORAGE_PER_PROJECT}` takes a number of bytes, or -1 for unlimited"
                )),
            },
            ROBOT_DAYS => value
                .as_i64()
                .filter(|d| ROBOT_DAYS_RANGE.contains(d))
                .map(Setting::RobotDays)
                .ok_or_else(|| {
                    format!(
                        "`{ROBOT_DAYS}` takes days, {} to {}",
                        ROBOT_DAYS_RANGE.start(),
                        ROBOT_DAYS_RANGE.end()
                    )
                }),
            other => Err(format!(
                "`{other}` is not a setting berth changes at run time"
            )),
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Setting::ReadOnly(_) => READ_ONLY,
            Setting::AdminOnlyProjects(_) => PROJECT_CREATION,
            Setting::TokenMinutes(_) => TOKEN_EXPIRATION,
            Setting::StoragePerProject(_) => STORAGE_PER_PROJECT,
            Setting::RobotDays(_) => ROBOT_DAYS,
        }
    }

    pub fn value(self) -> Value {
        match self {
            Setting::ReadOnly(on) => Value::Bool(on),
            Setting::AdminOnlyProjects(true) => Value::from("adminonly"),
            Setting::AdminOnlyProjects(false) => Value::from("everyone"),
            Setting::TokenMinutes(m) => Value::from(m),
            Setting::StoragePerProject(limit) => {
                Value::from(limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX)))
            }
            Setting::RobotDays(d) => Value::from(d),
        }
    }

    /// The config key that, when the file sets it, owns this setting.
    pub fn file_key(key: &str) -> Option<&'static str> {
        match key {
            TOKEN_EXPIRATION => Some("auth.token_ttl"),
            STORAGE_PER_PROJECT => Some("quota.default_storage_limit"),
            _ => None,
        }
    }
}

/// The settings in force in this process.
pub struct Runtime {
    read_only: AtomicBool,
    admin_only_projects: AtomicBool,
    /// Bytes, -1 unlimited.
    storage_per_project: AtomicI64,
    robot_days: AtomicI64,
    /// The file's (or default) values, and which settings the file owns.
    file_token_ttl: Duration,
    file_storage: Option<u64>,
    file_owns: Vec<&'static str>,
    /// The directory and mail server: the file's, for a group it owns.
    file_live: LiveSettings,
    file_owns_groups: Vec<live::Group>,
    /// The directory and mail settings in force, and where they apply.
    live: Mutex<LiveSettings>,
    /// The stored secrets as last read from the table (announcements
    /// carry none).
    secrets: Mutex<Vec<(String, String)>>,
    login: Arc<LoginService>,
    mailer: MailerSlot,
    tokens: Arc<TokenService>,
    reloading: tokio::sync::Mutex<()>,
}

impl Runtime {
    /// `login` and `mailer` already use the file's directory and mail
    /// server (if any).
    pub fn new(
        config: &Config,
        tokens: Arc<TokenService>,
        login: Arc<LoginService>,
        mailer: MailerSlot,
    ) -> Runtime {
        let file_owns = [TOKEN_EXPIRATION, STORAGE_PER_PROJECT]
            .into_iter()
            .filter(|k| Setting::file_key(k).is_some_and(|f| config.is_given(f)))
            .collect();
        let file_live = LiveSettings {
            mode: config.auth.mode,
            ldap: config.ldap.clone(),
            email: config.email.clone(),
        };
        let r = Runtime {
            read_only: AtomicBool::new(false),
            admin_only_projects: AtomicBool::new(false),
            storage_per_project: AtomicI64::new(-1),
            robot_days: AtomicI64::new(DEFAULT_ROBOT_DAYS),
            file_token_ttl: config.auth.token_ttl,
            file_storage: config.quota.default_storage_limit,
            file_owns,
            live: Mutex::new(file_live.clone()),
            secrets: Mutex::new(Vec::new()),
            file_live,
            file_owns_groups: [live::Group::Directory, live::Group::Mail]
                .into_iter()
                .filter(|g| live::file_owns(config, *g))
                .collect(),
            login,
            mailer,
            tokens,
            reloading: tokio::sync::Mutex::new(()),
        };
        r.apply(&[]);
        r
    }

    /// A new robot's lifetime in days when its request leaves it out.
    pub fn robot_days(&self) -> i64 {
        self.robot_days.load(Ordering::Relaxed)
    }

    /// The directory and mail settings in force.
    pub fn live(&self) -> LiveSettings {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the config file owns `group` (the API may not change it).
    pub fn file_owns_group(&self, group: live::Group) -> bool {
        self.file_owns_groups.contains(&group)
    }

    /// The directory and mail settings `stored` would put in force: the
    /// file's for a group it owns. An error names the setting at fault.
    pub fn live_from(&self, stored: &BTreeMap<String, Value>) -> Result<LiveSettings, String> {
        let own: BTreeMap<String, Value> = stored
            .iter()
            .filter(|(k, _)| live::lookup(k).is_some_and(|k| !self.file_owns_group(k.group)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let built = live::build(&own)?;
        let file = &self.file_live;
        let (mode, ldap) = if self.file_owns_group(live::Group::Directory) {
            (file.mode, file.ldap.clone())
        } else {
            if let Some(l) = &built.ldap {
                LdapDirectory::check_settings(l)
                    .map_err(|(key, why)| format!("{} {why}", live::harbor_name(key)))?;
            }
            (built.mode, built.ldap)
        };
        let email = if self.file_owns_group(live::Group::Mail) {
            file.email.clone()
        } else {
            built.email
        };
        if let Some(e) = &email {
            // The sender must parse as a mailbox; the file's was checked
            // at start the same way.
            Mailer::new(e).map_err(|why| live::harbor_text(&why))?;
        }
        Ok(LiveSettings { mode, ldap, email })
    }

    /// Puts `wanted` in force: a new directory or mail server replaces the
    /// old one whole (and cached logins go with the old directory).
    fn put_live(&self, wanted: LiveSettings) {
        let mut now = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if (now.mode, &now.ldap) != (wanted.mode, &wanted.ldap) {
            let directory = match (wanted.mode, &wanted.ldap) {
                (AuthMode::Ldap, Some(l)) => Some(LdapDirectory::new(l)),
                _ => None,
            };
            tracing::info!(
                ldap = directory.is_some(),
                "directory settings changed: logins use them from now on"
            );
            self.login.set_directory(directory);
        }
        if now.email != wanted.email {
            if let Some(e) = &wanted.email {
                Mailer::warn_if_unencrypted(e);
            }
            let mailer = match wanted.email.as_ref().map(Mailer::new) {
                Some(Ok(m)) => Some(Arc::new(m)),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "mail settings not applied");
                    None
                }
                None => None,
            };
            tracing::info!(mail = mailer.is_some(), "mail settings changed");
            self.mailer.store(mailer);
        }
        *now = wanted;
    }

    pub fn read_only(&self) -> bool {
        self.read_only.load(Ordering::Relaxed)
    }

    pub fn admin_only_projects(&self) -> bool {
        self.admin_only_projects.load(Ordering::Relaxed)
    }

    /// New projects' storage limit (`None`: unlimited).
    pub fn storage_per_project(&self) -> Option<u64> {
        u64::try_from(self.storage_per_project.load(Ordering::Relaxed)).ok()
    }

    /// Whether the config file owns `key` (the API may not change it).
    pub fn file_owns(&self, key: &str) -> bool {
        self.file_owns.contains(&key)
    }

    /// The settings in force, as the API shows them.
    pub fn current(&self) -> Vec<Setting> {
        vec![
            Setting::ReadOnly(self.read_only()),
            Setting::AdminOnlyProjects(self.admin_only_projects()),
            Setting::TokenMinutes((self.tokens.ttl().as_secs() / 60) as i64),
            Setting::StoragePerProject(self.storage_per_project()),
            Setting::RobotDays(self.robot_days()),
        ]
    }

    /// Applies the stored settings: each one not stored (or not readable)
    /// goes back to its default, and a setting the file owns stays the
    /// file's.
    pub fn apply(&self, stored: &[(String, String)]) {
        self.apply_with(stored, true);
    }

    fn apply_with(&self, stored: &[(String, String)], live_too: bool) {
        *self.secrets.lock().unwrap_or_else(|p| p.into_inner()) = stored
            .iter()
            .filter(|(k, _)| live::lookup(k).is_some_and(|k| k.is_secret()))
            .cloned()
            .collect();
        let mut read_only = false;
        let mut admin_only = false;
        let mut token_ttl = self.file_token_ttl;
        let mut storage = self.file_storage;
        let mut robot_days = DEFAULT_ROBOT_DAYS;
        let mut live_values = BTreeMap::new();
        for (key, text) in stored {
            if self.file_owns(key) {
                continue;
            }
            let value = match serde_json::from_str::<Value>(text) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(key, error = %e, "stored setting ignored");
                    continue;
                }
            };
            if live::lookup(key).is_some() {
                live_values.insert(key.clone(), value);
                continue;
            }
            match Setting::parse(key, &value) {
                Ok(Setting::ReadOnly(on)) => read_only = on,
                Ok(Setting::AdminOnlyProjects(on)) => admin_only = on,
                Ok(Setting::TokenMinutes(m)) => token_ttl = Duration::from_secs(m as u64 * 60),
                Ok(Setting::StoragePerProject(limit)) => storage = limit,
                Ok(Setting::RobotDays(d)) => robot_days = d,
                // A newer berth's setting, or a value it stored: not ours.
                Err(e) => tracing::warn!(key, error = %e, "stored setting ignored"),
            }
        }
        if live_too {
            match self.live_from(&live_values) {
                Ok(wanted) => self.put_live(wanted),
                // Checked in the transaction that stored them; a value an
                // older or newer berth stored may still not build here:
                // the ones in force stay.
                Err(e) => {
                    tracing::warn!(error = %e, "stored directory or mail settings not applied")
                }
            }
        }
        self.robot_days.store(robot_days, Ordering::Relaxed);
        self.read_only.store(read_only, Ordering::Relaxed);
        self.admin_only_projects
            .store(admin_only, Ordering::Relaxed);
        self.tokens.set_ttl(token_ttl);
        self.storage_per_project.store(
            storage.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX)),
            Ordering::Relaxed,
        );
    }

    /// Applies an announcement: `values` with the secrets it names taken
    /// from the last read of the table. The caller reads the table again
    /// afterwards when it names any.
    pub fn apply_announced(&self, values: &[(String, String)], withheld: &[String]) {
        let mut all = values.to_vec();
        let known = self
            .secrets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        all.extend(known.into_iter().filter(|(k, _)| withheld.contains(k)));
        // With a secret withheld, the directory and mail server wait for
        // the read that follows (the secret known here may be the old
        // one); the other settings apply now.
        self.apply_with(&all, withheld.is_empty());
    }

    /// Reads the stored settings and applies them. One reload at a time:
    /// of two, the later reads what the earlier read or newer, so what
    /// stays applied is never older than the last change committed.
    pub async fn reload(&self, meta: &Meta) -> Result<(), GatewayError> {
        let _one = self.reloading.lock().await;
        let stored = meta.configuration().await?;
        self.apply(&stored);
        Ok(())
    }

    /// Reads the stored settings again every [`REREAD`], forever.
    pub fn start(self: &Arc<Self>, meta: Meta) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REREAD);
            loop {
                tick.tick().await;
                if let Err(e) = me.reload(&meta).await {
                    tracing::warn!(error = %e, "reading the run-time settings failed");
                }
            }
        });
    }

    /// The error a write gets while read-only mode is on.
    pub fn refuse_writes(&self) -> Result<(), GatewayError> {
        if self.read_only() {
            Err(GatewayError::ReadOnly)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_parse_and_say_what_they_take() {
        assert_eq!(
            Setting::parse(READ_ONLY, &json!(true)),
            Ok(Setting::ReadOnly(true))
        );
        assert_eq!(
            Setting::parse(PROJECT_CREATION, &json!("adminonly")),
            Ok(Setting::AdminOnlyProjects(true))
        );
        assert_eq!(
            Setting::parse(STORAGE_PER_PROJECT, &json!(-1)),
            Ok(Setting::StoragePerProject(None))
        );
        assert_eq!(
            Setting::parse(TOKEN_EXPIRATION, &json!(30)),
            Ok(Setting::TokenMinutes(30))
        );
        for (key, bad) in [
            (READ_ONLY, json!("yes")),
            (PROJECT_CREATION, json!("admins")),
            (TOKEN_EXPIRATION, json!(0)),
            (TOKEN_EXPIRATION, json!(10_000_000)),
            (STORAGE_PER_PROJECT, json!(-2)),
            (ROBOT_DAYS, json!(0)),
            ("ldap_url", json!("ldap://x")),
        ] {
            let e = Setting::parse(key, &bad).expect_err("refused");
            assert!(e.contains(key), "{e}");
        }
        for s in [
            Setting::ReadOnly(true),
            Setting::AdminOnlyProjects(false),
            Setting::TokenMinutes(5),
            Setting::StoragePerProject(Some(10)),
            Setting::RobotDays(30),
        ] {
            assert_eq!(Setting::parse(s.key(), &s.value()), Ok(s));
        }
    }
}
