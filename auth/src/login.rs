//! The login service: who a username and password belong to.
//!
//! Local users (argon2id hashes in the database) are checked first, then
//! the LDAP directory when one is configured. Successful logins are cached
//! for a short time under a keyed hash of the credentials (never the
//! password itself), so a `docker pull` of many layers with HTTP Basic
//! costs one password check. Failures are counted per user and client
//! address, and a burst of them is refused for a while.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_policy::{RobotPermission, Subject};
use berth_storage::accounts::{LdapProfile, User, UserSource};
use berth_storage::meta::Meta;
use berth_storage::robots::RobotRow;
use sha2::{Digest, Sha256};

use crate::error::AuthError;
use crate::ldap::LdapDirectory;
use crate::password;
use crate::robot;
use crate::stats::CacheStats;

/// Failed attempts allowed per user and address within `FAILURE_WINDOW`.
const MAX_FAILURES: u32 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// A logged-in caller: a user or a robot account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub username: String,
    pub admin: bool,
    /// LDAP group DNs read at login (empty for local users).
    pub groups: Vec<String>,
    /// The users row (`None` for robots).
    pub user_id: Option<i64>,
    /// A robot's permissions (`None` for users).
    pub robot: Option<Vec<RobotPermission>>,
}

impl Identity {
    /// Who this is, in policy's terms.
    pub fn subject(&self) -> Subject {
        match &self.robot {
            Some(permissions) => Subject::Robot {
                name: self.username.clone(),
                permissions: permissions.clone(),
            },
            None => Subject::User {
                name: self.username.clone(),
                admin: self.admin,
            },
        }
    }

    fn user(user: User, groups: Vec<String>, admin: bool) -> Identity {
        Identity {
            username: user.username,
            admin,
            groups,
            user_id: Some(user.id),
            robot: None,
        }
    }
}

struct Failures {
    count: u32,
    since: Instant,
}

pub struct LoginService {
    meta: Meta,
    ldap: Option<LdapDirectory>,
    cache: moka::sync::Cache<[u8; 32], Arc<Identity>>,
    /// Per-process secret mixed into cache keys, so the keys are useless
    /// for guessing passwords offline.
    pepper: [u8; 32],
    failures: Mutex<HashMap<(String, Option<IpAddr>), Failures>>,
    cache_stats: CacheStats,
}

impl LoginService {
    pub fn new(meta: Meta, ldap: Option<LdapDirectory>, cache_ttl: Duration) -> LoginService {
        LoginService {
            meta,
            ldap,
            cache: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(cache_ttl)
                .build(),
            pepper: rand::random(),
            failures: Mutex::default(),
            cache_stats: CacheStats::default(),
        }
    }

    fn cache_key(&self, username: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.pepper);
        h.update((username.len() as u64).to_le_bytes());
        h.update(username.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// Whether logins go to an LDAP directory (after local users).
    pub fn uses_directory(&self) -> bool {
        self.ldap.is_some()
    }

    /// The LDAP directory, when logins go to one (for health checks and
    /// its request counters).
    pub fn directory(&self) -> Option<&LdapDirectory> {
        self.ldap.as_ref()
    }

    /// Hits and misses of the login cache.
    pub fn cache_stats(&self) -> &CacheStats {
        &self.cache_stats
    }

    /// Checks a username and password.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Identity, AuthError> {
        let key = self.cache_key(username, password);
        if let Some(id) = self.cache.get(&key) {
            self.cache_stats.hit();
            return Ok((*id).clone());
        }
        self.cache_stats.miss();
        self.check_rate(username, client)?;
        match self.check(username, password).await {
            Ok(id) => {
                self.cache.insert(key, Arc::new(id.clone()));
                self.clear_failures(username, client);
                Ok(id)
            }
            Err(e @ AuthError::InvalidCredentials) => {
                self.record_failure(username, client);
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Identity of an existing, enabled user, without a password: used for
    /// refresh tokens, which prove an earlier login.
    pub async fn identity(&self, username: &str) -> Result<Identity, AuthError> {
        if robot::is_robot_name(username) {
            let row = self
                .meta
                .robot_by_name(username)
                .await?
                .ok_or(AuthError::InvalidCredentials)?;
            return robot_identity(row);
        }
        let user = self
            .meta
            .user(username)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        if user.disabled {
            return Err(AuthError::UserDisabled(user.username));
        }
        let (groups, admin) = (user.ldap_groups.clone(), user.admin);
        Ok(Identity::user(user, groups, admin))
    }

    /// Forgets cached logins, so a change to an account (disabled, new
    /// password, robot refreshed) takes effect on the next request.
    pub fn forget_logins(&self) {
        self.cache.invalidate_all();
    }

    async fn check(&self, username: &str, password: &str) -> Result<Identity, AuthError> {
        if password.is_empty() {
            return Err(AuthError::InvalidCredentials);
        }
        if robot::is_robot_name(username) {
            let row = self
                .meta
                .robot_by_name(username)
                .await?
                .ok_or(AuthError::InvalidCredentials)?;
            if !robot::verify_secret(password, &row.secret_hash) {
                return Err(AuthError::InvalidCredentials);
            }
            return robot_identity(row);
        }
        let local = self.meta.user(username).await?;
        if let Some(user) = local.as_ref().filter(|u| u.source == UserSource::Db) {
            let hash = user.password_hash.clone().unwrap_or_default();
            let pw = password.to_owned();
            let ok = tokio::task::spawn_blocking(move || password::verify(&pw, &hash))
                .await
                .unwrap_or(false);
            if !ok {
                return Err(AuthError::InvalidCredentials);
            }
            if user.disabled {
                return Err(AuthError::UserDisabled(user.username.clone()));
            }
            let admin = user.admin;
            return Ok(Identity::user(user.clone(), Vec::new(), admin));
        }
        let Some(ldap) = &self.ldap else {
            return Err(AuthError::InvalidCredentials);
        };
        let found = ldap.authenticate(username, password).await?;
        let stored = self
            .meta
            .upsert_ldap_user(&LdapProfile {
                username: &found.username,
                dn: &found.dn,
                email: found.email.as_deref(),
                groups: &found.groups,
                admin: found.admin,
            })
            .await?;
        if stored.disabled {
            return Err(AuthError::UserDisabled(stored.username));
        }
        // The directory decides LDAP admins (group_admin_dn); a local
        // administrator may also have granted it.
        let admin = found.admin || stored.admin;
        Ok(Identity::user(stored, found.groups, admin))
    }

    fn check_rate(&self, username: &str, client: Option<IpAddr>) -> Result<(), AuthError> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = failures.get(&(username.to_owned(), client)) {
            let elapsed = f.since.elapsed();
            if f.count >= MAX_FAILURES && elapsed < FAILURE_WINDOW {
                return Err(AuthError::TooManyAttempts {
                    user: username.to_owned(),
                    retry_after_secs: (FAILURE_WINDOW - elapsed).as_secs().max(1),
                });
            }
        }
        Ok(())
    }

    fn record_failure(&self, username: &str, client: Option<IpAddr>) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Keep the table bounded: forget windows that have passed.
        if failures.len() > 10_000 {
            failures.retain(|_, f| f.since.elapsed() < FAILURE_WINDOW);
        }
        let f = failures
            .entry((username.to_owned(), client))
            .or_insert(Failures {
                count: 0,
                since: Instant::now(),
            });
        if f.since.elapsed() >= FAILURE_WINDOW {
            f.count = 0;
            f.since = Instant::now();
        }
        f.count += 1;
    }

    fn clear_failures(&self, username: &str, client: Option<IpAddr>) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(&(username.to_owned(), client));
    }
}

/// A robot's identity, if it may log in now.
fn robot_identity(row: RobotRow) -> Result<Identity, AuthError> {
    if row.disabled {
        return Err(AuthError::UserDisabled(row.name));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if row.expires_at >= 0 && row.expires_at <= now {
        return Err(AuthError::RobotExpired(row.name));
    }
    let permissions = robot::to_policy(&robot::parse_stored(&row.permissions));
    Ok(Identity {
        username: row.name,
        admin: false,
        groups: Vec::new(),
        user_id: None,
        robot: Some(permissions),
    })
}

/// Makes sure the `admin` user exists. Its password is the configured one;
/// without one, a random password is generated on first start, written to
/// `<data_dir>/initial-admin-password` (0600) and returned so the caller
/// can print it once. A configured password also replaces a stored one
/// that no longer matches it.
pub async fn bootstrap_admin(
    meta: &Meta,
    configured: Option<&str>,
    data_dir: &std::path::Path,
) -> Result<Option<String>, AuthError> {
    match meta.user("admin").await? {
        None => {
            let (pw, generated) = match configured {
                Some(p) => (p.to_owned(), false),
                None => (password::generate(), true),
            };
            meta.create_user("admin", &password::hash(&pw)?, None, true)
                .await?;
            if generated {
                write_secret_file(&data_dir.join("initial-admin-password"), &pw)?;
                return Ok(Some(pw));
            }
            Ok(None)
        }
        Some(user) => {
            if let Some(p) = configured {
                let current = user.password_hash.unwrap_or_default();
                if !password::verify(p, &current) {
                    meta.set_password_hash("admin", &password::hash(p)?).await?;
                }
            }
            Ok(None)
        }
    }
}

fn write_secret_file(path: &std::path::Path, content: &str) -> Result<(), AuthError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| AuthError::Key {
        path: path.display().to_string(),
        why: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(content.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .map_err(err)
}
