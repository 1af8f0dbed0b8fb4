//! The login service: who a username and password belong to.
//!
//! Local users (argon2id hashes in the database) are checked first, then
//! the LDAP directory when one is configured. Successful logins are cached
//! for a short time under a keyed hash of the credentials (never the
//! password itself), so a `docker pull` of many layers with HTTP Basic
//! costs one password check; concurrent requests with the same
//! credentials wait for one check. Attempts are counted per user and
//! client address when they start (a success clears the count), and a
//! burst of them is refused for a while.
//!
//! Usernames: local accounts match exactly (case-sensitively). A
//! directory login is matched as the directory matches `uid` (usually
//! ignoring case) and recorded under the name the directory spells; it
//! never resolves to a local account: a directory account whose name
//! equals a local one's, ignoring case, cannot log in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use berth_policy::{RobotPermission, Subject};
use berth_storage::accounts::{LdapProfile, User, UserSource};
use berth_storage::changes::Epoch;
use berth_storage::meta::Meta;
use berth_storage::robots::RobotRow;
use sha2::{Digest, Sha256};

use crate::error::AuthError;
use crate::ldap::{LdapDirectory, LdapUser};
use crate::password::{self, Verifier};
use crate::robot;
use crate::stats::CacheStats;

/// Failed attempts allowed per user and address within `FAILURE_WINDOW`.
const MAX_FAILURES: u32 = 10;
/// Failed attempts allowed per address within `FAILURE_WINDOW`, whatever
/// the names: spelling variants of one name (`Carol`, `cArol`; a directory
/// matches them all) or made-up names (each costs a password check) do
/// not multiply the budget.
const MAX_FAILURES_PER_ADDRESS: u32 = 60;
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
    /// When a robot's login stops being valid (Unix seconds).
    pub expires_at: Option<i64>,
    /// Fingerprint of the credential behind this login (see
    /// `credential_fingerprint`): refresh tokens carry it, and a new
    /// password or secret changes it.
    pub credential: String,
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
            credential: user_fingerprint(&user),
            username: user.username,
            admin,
            groups,
            user_id: Some(user.id),
            robot: None,
            expires_at: None,
        }
    }

    fn expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|t| t >= 0 && t <= now)
    }
}

/// The name failures are counted under: folded, so that spellings a
/// directory matches alike (it ignores case) share one budget. Never
/// empty (the empty name is the per-address count).
fn failure_key(username: &str) -> String {
    format!("u:{}", username.to_lowercase())
}

/// A stable fingerprint of an account's credential: the row's id and its
/// stored password hash (local users), secret hash (robots) or DN (LDAP
/// users, whose password lives in the directory). Not secret-bearing:
/// the hashes inside are salted or of 190-bit secrets, and this is a
/// SHA-256 of them.
fn fingerprint(kind: &str, id: i64, stored: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"berth credential v1\0");
    h.update(kind.as_bytes());
    h.update(id.to_le_bytes());
    h.update(stored.as_bytes());
    hex::encode(&h.finalize()[..16])
}

fn user_fingerprint(user: &User) -> String {
    match user.source {
        UserSource::Db => fingerprint(
            "db",
            user.id,
            user.password_hash.as_deref().unwrap_or_default(),
        ),
        UserSource::Ldap => fingerprint("ldap", user.id, user.ldap_dn.as_deref().unwrap_or("")),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

struct Failures {
    count: u32,
    since: Instant,
}

type Gates = Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>;

/// A turn at checking one set of credentials; the map entry goes when the
/// last holder does, also when a login is abandoned half way (its client
/// went away).
struct InFlight<'a> {
    map: &'a Gates,
    key: [u8; 32],
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> InFlight<'a> {
    fn enter(map: &'a Gates, key: [u8; 32]) -> InFlight<'a> {
        let gate = map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .clone();
        InFlight { map, key, gate }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // The map's reference and ours: nobody else waits.
        if Arc::strong_count(&self.gate) <= 2 {
            map.remove(&self.key);
        }
    }
}

pub struct LoginService {
    meta: Meta,
    /// Swapped whole when the directory settings change at run time.
    ldap: ArcSwapOption<LdapDirectory>,
    cache: moka::sync::Cache<[u8; 32], Arc<Identity>>,
    /// Per-process secret mixed into cache keys, so the keys are useless
    /// for guessing passwords offline.
    pepper: [u8; 32],
    failures: Mutex<HashMap<(String, Option<IpAddr>), Failures>>,
    /// One check at a time per set of credentials: the others wait for
    /// its result in the cache instead of each counting as an attempt.
    in_flight: Gates,
    /// Directory users the directory confirmed within the cache TTL
    /// (a login or a lookup): refreshes within it need no new lookup.
    confirmed: moka::sync::Cache<String, ()>,
    verifier: Arc<Verifier>,
    /// A hash to check against when the user is unknown, so that an
    /// unknown name costs as long as a wrong password.
    decoy_hash: String,
    cache_stats: CacheStats,
    /// Invalidations of `cache` (see `berth_storage::changes::Epoch`).
    epoch: Epoch,
}

impl LoginService {
    pub fn new(meta: Meta, ldap: Option<LdapDirectory>, cache_ttl: Duration) -> LoginService {
        LoginService {
            meta,
            ldap: ArcSwapOption::from(ldap.map(Arc::new)),
            cache: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(cache_ttl)
                .build(),
            pepper: rand::random(),
            failures: Mutex::default(),
            in_flight: Mutex::default(),
            confirmed: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(cache_ttl)
                .build(),
            verifier: Arc::new(Verifier::new()),
            decoy_hash: password::hash(&password::generate()).unwrap_or_default(),
            cache_stats: CacheStats::default(),
            epoch: Epoch::default(),
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
        self.ldap.load().is_some()
    }

    /// The LDAP directory, when logins go to one (for health checks and
    /// its request counters).
    pub fn directory(&self) -> Option<Arc<LdapDirectory>> {
        self.ldap.load_full()
    }

    /// Sends logins to `directory` from now on (or to none), and forgets
    /// every login checked against the one before.
    pub fn set_directory(&self, directory: Option<LdapDirectory>) {
        self.ldap.store(directory.map(Arc::new));
        self.forget_logins();
        self.confirmed.invalidate_all();
    }

    /// Records a directory user as a local LDAP account before their
    /// first login (Harbor's `/ldap/users/import`), so they can be made a
    /// project member: looked up with the service account and recorded as
    /// a login would. A name held by a local account is refused
    /// (`InvalidCredentials`), as its login would be, and so are a robot's
    /// name and a name the directory does not know.
    pub async fn import_ldap_user(&self, username: &str) -> Result<User, AuthError> {
        let directory = self
            .ldap
            .load_full()
            .ok_or_else(|| AuthError::DirectoryMisconfigured("LDAP is not configured".into()))?;
        let seen = self.epoch.current();
        let found = directory.lookup(username).await?;
        // Robot names are robots': a directory entry named like one is
        // never recorded (it could not log in either).
        if crate::robot::is_robot_name(&found.username) {
            return Err(AuthError::InvalidCredentials);
        }
        self.record_ldap_user(&found, seen).await
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
        if let Some(id) = self.cached(&key) {
            return Ok(id);
        }
        // Same credentials at the same time: one check, the rest use its
        // result.
        let gate = InFlight::enter(&self.in_flight, key);
        let _turn = gate.gate.lock().await;
        match self.cached(&key) {
            Some(id) => Ok(id),
            None => self.check_counted(key, username, password, client).await,
        }
    }

    /// A cached login that is still valid (a robot may have expired since).
    fn cached(&self, key: &[u8; 32]) -> Option<Identity> {
        match self.cache.get(key) {
            Some(id) if !id.expired(unix_now()) => {
                self.cache_stats.hit();
                Some((*id).clone())
            }
            Some(_) => {
                self.cache.invalidate(key);
                None
            }
            None => None,
        }
    }

    /// Checks credentials, counting the attempt before the check starts so
    /// that concurrent attempts cannot all slip under the limit.
    async fn check_counted(
        &self,
        key: [u8; 32],
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Identity, AuthError> {
        self.cache_stats.miss();
        self.begin_attempt(username, client)?;
        let epoch = self.epoch.current();
        let result = self.check(username, password).await;
        match &result {
            Ok(id) => {
                // Checked against rows a change (here or announced by
                // another instance) made stale meanwhile: not kept.
                self.epoch
                    .fill(&self.cache, key, Arc::new(id.clone()), epoch);
                self.clear_failures(username, client);
            }
            Err(
                AuthError::InvalidCredentials
                | AuthError::UserDisabled(_)
                | AuthError::RobotExpired(_),
            ) => {}
            // The directory was down or misconfigured: not the caller's
            // failure, so the attempt does not count.
            Err(_) => self.end_attempt(username, client, true),
        }
        result
    }

    /// The identity a refresh token proves, if its account still holds the
    /// credential the token was issued for: a new password, a refreshed
    /// robot secret, a deleted or disabled account each end it. A directory
    /// user is looked up again in the directory (unless it confirmed the
    /// account within the login cache's TTL), which also brings its
    /// groups and admin status up to date.
    pub async fn refresh(&self, username: &str, credential: &str) -> Result<Identity, AuthError> {
        let id = self.identity(username).await?;
        if id.credential.is_empty() || id.credential != credential {
            return Err(AuthError::InvalidCredentials);
        }
        if id.robot.is_some() {
            return Ok(id);
        }
        let Some(user) = self.meta.user(username).await? else {
            return Err(AuthError::InvalidCredentials);
        };
        if user.source == UserSource::Db {
            return Ok(id);
        }
        let Some(ldap) = self.ldap.load_full() else {
            // The server no longer logs in against a directory.
            return Err(AuthError::InvalidCredentials);
        };
        if self.confirmed.contains_key(&user.username) {
            return Ok(id);
        }
        let seen = self.epoch.current();
        let found = ldap.lookup(&user.username).await?;
        if found.username != user.username {
            return Err(AuthError::InvalidCredentials);
        }
        let stored = self.record_ldap_user(&found, seen).await?;
        if user_fingerprint(&stored) != credential {
            // The name now belongs to another directory entry.
            return Err(AuthError::InvalidCredentials);
        }
        let admin = found.admin || stored.admin;
        Ok(Identity::user(stored, found.groups, admin))
    }

    /// Identity of an existing, enabled account, without a password: for a
    /// token's subject, whose login was checked when it was issued.
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

    /// Checks a password against a stored hash through the same bounded
    /// verifier as logins (for "prove the old password" checks).
    pub async fn verify_password(&self, password: &str, hash: &str) -> bool {
        self.verifier.verify(password, hash).await
    }

    /// Forgets cached logins, so a change to an account (disabled, new
    /// password, robot refreshed) takes effect on the next request.
    pub fn forget_logins(&self) {
        self.epoch.bump();
        self.cache.invalidate_all();
    }

    async fn check(&self, username: &str, password: &str) -> Result<Identity, AuthError> {
        if password.is_empty() {
            return Err(AuthError::InvalidCredentials);
        }
        if robot::is_robot_name(username) {
            let row = self.meta.robot_by_name(username).await?;
            // An unknown robot costs the same hash as a wrong secret.
            let stored = row.as_ref().map_or("", |r| r.secret_hash.as_str());
            if !robot::verify_secret(password, stored) {
                return Err(AuthError::InvalidCredentials);
            }
            return row.map_or(Err(AuthError::InvalidCredentials), robot_identity);
        }
        let local = self.meta.user(username).await?;
        if let Some(user) = local.as_ref().filter(|u| u.source == UserSource::Db) {
            let hash = user.password_hash.as_deref().unwrap_or_default();
            if !self.verifier.verify(password, hash).await {
                return Err(AuthError::InvalidCredentials);
            }
            if user.disabled {
                return Err(AuthError::UserDisabled(user.username.clone()));
            }
            let admin = user.admin;
            return Ok(Identity::user(user.clone(), Vec::new(), admin));
        }
        let Some(ldap) = self.ldap.load_full() else {
            // An unknown name costs as long as a wrong password, so the
            // time of the answer does not tell which names exist.
            self.verifier.verify(password, &self.decoy_hash).await;
            return Err(AuthError::InvalidCredentials);
        };
        let seen = self.epoch.current();
        let found = ldap.authenticate(username, password).await?;
        let stored = self.record_ldap_user(&found, seen).await?;
        if stored.disabled {
            return Err(AuthError::UserDisabled(stored.username));
        }
        // The directory decides LDAP admins (group_admin_dn); a local
        // administrator may also have granted it.
        let admin = found.admin || stored.admin;
        Ok(Identity::user(stored, found.groups, admin))
    }

    /// Records a directory account the directory just confirmed, and
    /// returns its row. A directory login never becomes a local account:
    /// when the name the directory gives is a local account's (ignoring
    /// case, as directories match `uid`), the login is refused.
    /// `seen`: the login epoch read before the directory was asked, so a
    /// directory switched meanwhile leaves no confirmation behind.
    async fn record_ldap_user(&self, found: &LdapUser, seen: u64) -> Result<User, AuthError> {
        let local = self.meta.users_named_ignoring_case(&found.username).await?;
        if let Some(clash) = local.iter().find(|u| u.source == UserSource::Db) {
            tracing::warn!(
                directory_user = %found.username,
                dn = %found.dn,
                local_user = %clash.username,
                "a directory account has the name of a local account; its login is refused \
                 (rename one of them)"
            );
            return Err(AuthError::InvalidCredentials);
        }
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
        if stored.source != UserSource::Ldap {
            // A local account was created under this name meanwhile.
            return Err(AuthError::InvalidCredentials);
        }
        self.epoch
            .fill(&self.confirmed, stored.username.clone(), (), seen);
        Ok(stored)
    }

    /// Counts an attempt as failed until it succeeds, or refuses it when
    /// the window's budget is spent. Check and count are one step under
    /// the lock, so concurrent attempts cannot all pass the check.
    fn begin_attempt(&self, username: &str, client: Option<IpAddr>) -> Result<(), AuthError> {
        let client = client.map(client_key);
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Keep the table bounded: forget windows that have passed.
        if failures.len() > 10_000 {
            failures.retain(|_, f| f.since.elapsed() < FAILURE_WINDOW);
        }
        let keys = [
            (failure_key(username), client, MAX_FAILURES),
            (String::new(), client, MAX_FAILURES_PER_ADDRESS),
        ];
        for (name, addr, max) in &keys {
            let f = failures.entry((name.clone(), *addr)).or_insert(Failures {
                count: 0,
                since: Instant::now(),
            });
            let elapsed = f.since.elapsed();
            if elapsed >= FAILURE_WINDOW {
                f.count = 0;
                f.since = Instant::now();
            } else if f.count >= *max {
                return Err(AuthError::TooManyAttempts {
                    user: username.to_owned(),
                    retry_after_secs: (FAILURE_WINDOW - elapsed).as_secs().max(1),
                });
            }
        }
        for (name, addr, _) in keys {
            if let Some(f) = failures.get_mut(&(name, addr)) {
                f.count += 1;
            }
        }
        Ok(())
    }

    /// Takes back an attempt that failed for the server's reasons, or the
    /// address's share of one that succeeded.
    fn end_attempt(&self, username: &str, client: Option<IpAddr>, whole: bool) {
        let client = client.map(client_key);
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys = vec![(String::new(), client)];
        if whole {
            keys.push((failure_key(username), client));
        }
        for key in keys {
            if let Some(f) = failures.get_mut(&key) {
                f.count = f.count.saturating_sub(1);
            }
        }
    }

    fn clear_failures(&self, username: &str, client: Option<IpAddr>) {
        let client = client.map(client_key);
        {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            failures.remove(&(failure_key(username), client));
        }
        self.end_attempt(username, client, false);
    }
}

/// What per-client limits count a client under: its address, an
/// IPv4-mapped IPv6 address as the IPv4 one, and any other IPv6 address
/// as its /64 (one host usually has a whole /64 to pick from).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// A robot's identity, if it may log in now.
fn robot_identity(row: RobotRow) -> Result<Identity, AuthError> {
    if row.disabled {
        return Err(AuthError::UserDisabled(row.name));
    }
    if row.expires_at >= 0 && row.expires_at <= unix_now() {
        return Err(AuthError::RobotExpired(row.name));
    }
    let permissions = robot::to_policy(&robot::parse_stored(&row.permissions));
    Ok(Identity {
        credential: fingerprint("robot", row.id, &row.secret_hash),
        username: row.name,
        admin: false,
        groups: Vec::new(),
        user_id: None,
        robot: Some(permissions),
        expires_at: Some(row.expires_at),
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
            let created = meta
                .create_user("admin", &password::hash(&pw)?, None, true)
                .await?;
            // Another process starting on the same database at the same
            // time created it first: its password is the one.
            if created.is_none() {
                return Ok(None);
            }
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

#[cfg(test)]
mod tests {
    use super::client_key;

    #[test]
    fn clients_are_counted_by_address_or_ipv6_prefix() {
        let key = |s: &str| client_key(s.parse().expect("address"));
        assert_eq!(key("192.0.2.7"), key("::ffff:192.0.2.7"));
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }
}
