//! Logins against an LDAP directory, with Harbor's `ldap_*` settings.
//!
//! A login is the classic search-then-bind: bind with the service account
//! (`search_dn`, or anonymously), find the one entry whose `uid` attribute
//! is the username, bind as that entry's DN with the password, and read the
//! user's groups. Each call opens its own connection and closes it: the
//! login service caches successful logins (`ldap.cache_ttl`), so a pool
//! would save little and add state that can go stale.
//!
//! - `conn`: the connection, timeouts, and which errors mean what.
//! - `filter`: search filters, with the username escaped (RFC 4515).
//! - `dn`: DN comparison for the admin group.
//! - `search`: users and groups listed for the management API.

mod conn;
mod dn;
mod filter;
mod search;

use std::sync::Arc;
use std::time::Instant;

use berth_conf::{LdapConfig, LdapScope};
use ldap3::{Scope, SearchEntry};

use crate::error::AuthError;
use crate::stats::LdapStats;
use conn::{describe, rc, result_error, Connection, Step};
use filter::{BadSetting, Filters};
pub use search::{DirectoryGroup, DirectoryUser, GroupQuery, MAX_RESULTS};

/// An LDAP directory as configured. Cheap to clone; `Debug` shows the
/// settings with the search password redacted.
#[derive(Debug, Clone)]
pub struct LdapDirectory {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: LdapConfig,
    /// Checked once here so a bad `ldap.filter` fails every login with the
    /// key named, without a round trip to the server.
    filters: Result<Filters, BadSetting>,
    /// Requests that reached the directory, for the metrics.
    stats: LdapStats,
}

/// Who logged in, as the directory describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapUser {
    /// The username as the directory spells it (its `uid` value), so
    /// `Alice` and `alice` become the same local user.
    pub username: String,
    pub dn: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    /// Group DNs as the directory spells them, without duplicates.
    pub groups: Vec<String>,
    /// A member of `ldap.group_admin_dn`.
    pub admin: bool,
}

/// Attributes asked for in the user search besides `uid` and the
/// membership attribute.
const MAIL: &str = "mail";
const DISPLAY_NAME: &str = "displayName";
const CN: &str = "cn";
/// "No attributes" (RFC 4511, 4.5.1.8): only the group DNs are needed.
const NO_ATTRIBUTES: &str = "1.1";

impl LdapDirectory {
    pub fn new(config: &LdapConfig) -> LdapDirectory {
        // ldap3 builds its TLS config from rustls' process-wide provider.
        // When a build links more than one provider (the test suite's HTTP
        // client brings aws-lc-rs), rustls refuses to guess and panics, so
        // pick ring explicitly. A provider installed earlier wins.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let filters = Filters::new(
            config.filter.as_deref(),
            &config.uid,
            config.group_filter.as_deref(),
        );
        LdapDirectory {
            inner: Arc::new(Inner {
                config: config.clone(),
                filters,
                stats: LdapStats::default(),
            }),
        }
    }

    /// Whether `config`'s filters and `uid` can be used, without asking
    /// any server: else the config key at fault and why.
    pub fn check_settings(config: &LdapConfig) -> Result<(), (&'static str, String)> {
        Filters::new(
            config.filter.as_deref(),
            &config.uid,
            config.group_filter.as_deref(),
        )
        .map(drop)
        .map_err(|bad| (bad.key, bad.why))
    }

    /// Checks `username` and `password` against the directory: a search
    /// with the service account for `(&<filter>(<uid>=<username>))`, then a
    /// bind as the entry found. Groups come from the membership attribute
    /// of the entry and/or a search under `group_base_dn`.
    ///
    /// Errors: unknown user, wrong or empty password -> `InvalidCredentials`
    /// (an empty password is refused here, because a bind with one is an
    /// "unauthenticated bind" that servers accept); a disabled Active
    /// Directory account -> `UserDisabled`; no answer within `ldap.timeout`
    /// for any step, or no connection -> `DirectoryUnavailable`; several
    /// entries for the user, a rejected service account, a missing base DN
    /// -> `DirectoryMisconfigured`.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<LdapUser, AuthError> {
        if username.is_empty() || password.is_empty() {
            return Err(AuthError::InvalidCredentials);
        }
        let result = self.run(username, Some(password)).await;
        match &result {
            Ok(user) => tracing::debug!(
                username = %user.username,
                dn = %user.dn,
                groups = user.groups.len(),
                admin = user.admin,
                "ldap login succeeded"
            ),
            Err(e) => tracing::debug!(username, error = %e, "ldap login failed"),
        }
        result
    }

    /// Finds `username` with the service account and reads its groups,
    /// without a password: whether an account that logged in earlier (a
    /// refresh token's) is still in the directory, and still an admin.
    /// Errors as `authenticate`; a user no longer found is
    /// `InvalidCredentials`.
    pub async fn lookup(&self, username: &str) -> Result<LdapUser, AuthError> {
        if username.is_empty() {
            return Err(AuthError::InvalidCredentials);
        }
        self.run(username, None).await
    }

    async fn run(&self, username: &str, password: Option<&str>) -> Result<LdapUser, AuthError> {
        let filters = self.filters()?;
        let started = Instant::now();
        let result = async {
            let mut conn = Connection::open(&self.inner.config).await?;
            let result = self.login(&mut conn, filters, username, password).await;
            finish(conn, &result).await;
            result
        }
        .await;
        self.inner.stats.record(&result, started.elapsed());
        result
    }

    /// Connects and binds with the service account (anonymously without
    /// `search_dn`): for health checks. A rejected service account is
    /// `DirectoryMisconfigured`, no answer `DirectoryUnavailable`.
    pub async fn ping(&self) -> Result<(), AuthError> {
        let started = Instant::now();
        let result = async {
            let mut conn = Connection::open(&self.inner.config).await?;
            let result = self.service_bind(&mut conn).await;
            finish(conn, &result).await;
            result
        }
        .await;
        self.inner.stats.record(&result, started.elapsed());
        result
    }

    /// Requests made to the directory (logins and pings), for metrics.
    pub fn stats(&self) -> &LdapStats {
        &self.inner.stats
    }

    fn filters(&self) -> Result<&Filters, AuthError> {
        self.inner
            .filters
            .as_ref()
            .map_err(|bad| AuthError::DirectoryMisconfigured(format!("{}: {}", bad.key, bad.why)))
    }

    async fn login(
        &self,
        conn: &mut Connection,
        filters: &Filters,
        username: &str,
        password: Option<&str>,
    ) -> Result<LdapUser, AuthError> {
        let config = &self.inner.config;
        self.service_bind(conn).await?;
        let entry = self.find_user(conn, &filters.user(username)).await?;
        tracing::debug!(username, dn = %entry.dn, "ldap user found");
        if let Some(password) = password {
            self.user_bind(conn, &entry.dn, username, password).await?;
        }

        let mut groups = Vec::new();
        if let Some(attribute) = config.group_membership_attribute.as_deref() {
            add_groups(&mut groups, values(&entry, attribute));
        }
        if let Some(base) = config.group_base_dn.as_deref() {
            // The connection is now bound as the user, who may not be
            // allowed to search groups: search as the service account.
            self.service_bind(conn).await?;
            let found = self
                .find_groups(conn, base, &filters.group(&entry.dn))
                .await?;
            add_groups(&mut groups, found);
        }
        let admin = config
            .group_admin_dn
            .as_deref()
            .is_some_and(|admin| groups.iter().any(|group| dn::same_dn(group, admin)));
        Ok(LdapUser {
            username: canonical_name(&entry, &config.uid, username).ok_or_else(|| {
                tracing::warn!(dn = %entry.dn, uid = %config.uid, "the directory entry has no uid value; its login is refused");
                AuthError::InvalidCredentials
            })?,
            email: first(&entry, MAIL),
            display_name: first(&entry, DISPLAY_NAME).or_else(|| first(&entry, CN)),
            dn: entry.dn,
            groups,
            admin,
        })
    }

    async fn service_bind(&self, conn: &mut Connection) -> Result<(), AuthError> {
        let config = &self.inner.config;
        let password = config
            .search_password
            .as_ref()
            .map(|secret| secret.expose())
            .filter(|password| !password.is_empty());
        let (dn, password) = match (config.search_dn.as_deref(), password) {
            (None, _) => ("", ""),
            (Some(dn), Some(password)) => (dn, password),
            (Some(dn), None) => {
                return Err(AuthError::DirectoryMisconfigured(format!(
                    "ldap.search_dn `{dn}` is set but ldap.search_password is not; a bind \
                     without a password is an unauthenticated bind, which berth does not do"
                )))
            }
        };
        let result = conn.bind(Step::ServiceBind, dn, password).await?;
        match result.rc {
            rc::SUCCESS => Ok(()),
            rc::INVALID_CREDENTIALS | rc::INAPPROPRIATE_AUTHENTICATION => {
                Err(AuthError::DirectoryMisconfigured(format!(
                    "{}: the directory rejected the search account `{dn}` ({}): check \
                     ldap.search_dn and ldap.search_password",
                    conn.url(),
                    describe(&result)
                )))
            }
            _ => Err(result_error(conn.url(), Step::ServiceBind, &result)),
        }
    }

    async fn find_user(
        &self,
        conn: &mut Connection,
        filter: &str,
    ) -> Result<SearchEntry, AuthError> {
        let config = &self.inner.config;
        let mut attributes = vec![config.uid.as_str(), MAIL, DISPLAY_NAME, CN];
        if let Some(attribute) = config.group_membership_attribute.as_deref() {
            attributes.push(attribute);
        }
        // Two are enough to know the answer is ambiguous; a broken filter
        // must not make every login fetch the whole directory.
        let (mut entries, result) = conn
            .search(
                Step::UserSearch,
                &config.base_dn,
                scope(config.scope),
                filter,
                &attributes,
                2,
            )
            .await?;
        let url = conn.url();
        match result.rc {
            rc::SUCCESS => {}
            // The server stopped at our limit of two (or its own lower one):
            // either way, more than one entry matched.
            rc::SIZE_LIMIT_EXCEEDED => return Err(ambiguous(config, filter, &entries)),
            rc::NO_SUCH_OBJECT => {
                return Err(AuthError::DirectoryMisconfigured(format!(
                    "{url}: ldap.base_dn `{}` does not exist",
                    config.base_dn
                )))
            }
            rc::REFERRAL => {
                return Err(AuthError::DirectoryMisconfigured(format!(
                    "{url}: the search under ldap.base_dn `{}` was referred to {:?}; berth does \
                     not follow referrals: point ldap.url at a server that holds that base",
                    config.base_dn, result.refs
                )))
            }
            _ => return Err(result_error(url, Step::UserSearch, &result)),
        }
        match entries.len() {
            0 => {
                tracing::debug!(filter, base = %config.base_dn, "ldap user search found no entry");
                Err(AuthError::InvalidCredentials)
            }
            1 => Ok(entries.remove(0)),
            _ => Err(ambiguous(config, filter, &entries)),
        }
    }

    async fn user_bind(
        &self,
        conn: &mut Connection,
        dn: &str,
        username: &str,
        password: &str,
    ) -> Result<(), AuthError> {
        let result = conn.bind(Step::UserBind, dn, password).await?;
        match result.rc {
            rc::SUCCESS => Ok(()),
            rc::INVALID_CREDENTIALS if is_disabled_in_active_directory(&result.text) => {
                Err(AuthError::UserDisabled(username.to_owned()))
            }
            // 48 and 53 are what servers answer for accounts that may not
            // bind at all (no password, locked by policy): to the user, a
            // login that did not work, with the reason in the debug log.
            rc::INVALID_CREDENTIALS
            | rc::INAPPROPRIATE_AUTHENTICATION
            | rc::UNWILLING_TO_PERFORM => {
                tracing::debug!(dn, result = %describe(&result), "ldap user bind rejected");
                Err(AuthError::InvalidCredentials)
            }
            _ => Err(result_error(conn.url(), Step::UserBind, &result)),
        }
    }

    async fn find_groups(
        &self,
        conn: &mut Connection,
        base: &str,
        filter: &str,
    ) -> Result<Vec<String>, AuthError> {
        let (entries, result) = conn
            .search(
                Step::GroupSearch,
                base,
                Scope::Subtree,
                filter,
                &[NO_ATTRIBUTES],
                0,
            )
            .await?;
        match result.rc {
            rc::SUCCESS => {}
            rc::NO_SUCH_OBJECT => {
                return Err(AuthError::DirectoryMisconfigured(format!(
                    "{}: ldap.group_base_dn `{base}` does not exist",
                    conn.url()
                )))
            }
            _ => return Err(result_error(conn.url(), Step::GroupSearch, &result)),
        }
        Ok(entries.into_iter().map(|entry| entry.dn).collect())
    }
}

/// Unbinds after an answer, or just drops the connection when the server
/// is not answering (an unbind would only wait for nothing).
async fn finish<T>(conn: Connection, result: &Result<T, AuthError>) {
    match result {
        Err(AuthError::DirectoryUnavailable(_)) => drop(conn),
        _ => conn.close().await,
    }
}

fn ambiguous(config: &LdapConfig, filter: &str, entries: &[SearchEntry]) -> AuthError {
    let dns: Vec<&str> = entries.iter().map(|entry| entry.dn.as_str()).collect();
    AuthError::DirectoryMisconfigured(format!(
        "the user search {filter} under `{}` matched more than one entry ({}): ldap.filter \
         and ldap.uid must select one entry per user",
        config.base_dn,
        dns.join("; ")
    ))
}

/// Active Directory answers invalidCredentials for disabled, locked and
/// expired accounts too, and tells them apart by a code in the text
/// ("... AcceptSecurityContext error, data 533, v4563").
fn is_disabled_in_active_directory(text: &str) -> bool {
    ["data 533", "data 701", "data 775"]
        .iter()
        .any(|code| text.contains(code))
}

fn scope(scope: LdapScope) -> Scope {
    match scope {
        LdapScope::Base => Scope::Base,
        LdapScope::OneLevel => Scope::OneLevel,
        LdapScope::Subtree => Scope::Subtree,
    }
}

/// An attribute's values; attribute names are case-insensitive, and the
/// server may spell them unlike the request (`memberof`, `memberOf`).
fn values(entry: &SearchEntry, attribute: &str) -> Vec<String> {
    entry
        .attrs
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(attribute))
        .flat_map(|(_, values)| values.iter().cloned())
        .collect()
}

fn first(entry: &SearchEntry, attribute: &str) -> Option<String> {
    values(entry, attribute)
        .into_iter()
        .find(|value| !value.trim().is_empty())
}

/// The entry's `uid` value that matched the login, or the name as typed if
/// none compares equal. Directories match `uid` ignoring case and extra
/// spaces, so `ALICE` and `alice ` log in as `alice`; recording the typed
/// form would make them three local users.
/// The username as the directory spells it: the entry's `uid` value the
/// typed name matches, else its first `uid` value. Never the typed name:
/// the directory may match spellings berth does not fold the same way
/// (`ſtaff` for `staff` under Unicode case folding), and each spelling
/// would become another account of the same person.
fn canonical_name(entry: &SearchEntry, uid: &str, typed: &str) -> Option<String> {
    let values = values(entry, uid);
    values
        .iter()
        .find(|value| dn::same_value(value, typed))
        .or_else(|| values.first())
        .cloned()
}

/// Adds group DNs not already present, comparing them as DNs.
fn add_groups(groups: &mut Vec<String>, found: Vec<String>) {
    for group in found {
        if !groups.iter().any(|known| dn::same_dn(known, &group)) {
            groups.push(group);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use berth_conf::Secret;

    use super::*;

    fn config() -> LdapConfig {
        LdapConfig {
            url: "ldap://127.0.0.1:1".to_owned(),
            search_dn: Some("cn=reader,dc=example,dc=org".to_owned()),
            search_password: Some(Secret::new("reader-secret")),
            base_dn: "ou=people,dc=example,dc=org".to_owned(),
            filter: Some("(objectClass=person)".to_owned()),
            uid: "uid".to_owned(),
            scope: LdapScope::Subtree,
            timeout: Duration::from_secs(1),
            verify_cert: true,
            start_tls: false,
            cache_ttl: Duration::from_secs(60),
            group_base_dn: None,
            group_filter: None,
            group_gid: None,
            group_admin_dn: None,
            group_membership_attribute: Some("memberOf".to_owned()),
        }
    }

    fn entry(attrs: &[(&str, &[&str])]) -> SearchEntry {
        SearchEntry {
            dn: "uid=alice,ou=people,dc=example,dc=org".to_owned(),
            attrs: attrs
                .iter()
                .map(|(name, values)| {
                    (
                        (*name).to_owned(),
                        values.iter().map(|v| (*v).to_owned()).collect(),
                    )
                })
                .collect::<HashMap<_, _>>(),
            bin_attrs: HashMap::new(),
        }
    }

    #[test]
    fn debug_hides_the_search_password() {
        let directory = LdapDirectory::new(&config());
        let debug = format!("{directory:?}");
        assert!(!debug.contains("reader-secret"), "{debug}");
        assert!(
            debug.contains("search_password: Some(<redacted>)"),
            "{debug}"
        );
    }

    #[test]
    fn directory_is_clone_send_sync() {
        fn check<T: Clone + Send + Sync + 'static>() {}
        check::<LdapDirectory>();
    }

    #[tokio::test]
    async fn empty_credentials_are_refused_without_a_connection() {
        // Port 1 on a config with a 1s timeout: if a connection were tried
        // the error would be DirectoryUnavailable, not InvalidCredentials.
        let directory = LdapDirectory::new(&config());
        for (user, password) in [("alice", ""), ("", "secret"), ("", "")] {
            assert!(matches!(
                directory.authenticate(user, password).await,
                Err(AuthError::InvalidCredentials)
            ));
        }
    }

    #[tokio::test]
    async fn bad_settings_are_reported_before_connecting() {
        let mut bad = config();
        bad.filter = Some("(objectClass=person".to_owned());
        match LdapDirectory::new(&bad).authenticate("alice", "pw").await {
            Err(AuthError::DirectoryMisconfigured(why)) => {
                assert!(why.starts_with("ldap.filter: "), "{why}")
            }
            other => panic!("{other:?}"),
        }
        let mut bad = config();
        bad.url = "ldap:/no-host".to_owned();
        assert!(matches!(
            LdapDirectory::new(&bad).ping().await,
            Err(AuthError::DirectoryMisconfigured(_))
        ));
    }

    #[test]
    fn attributes_are_read_case_insensitively() {
        let entry = entry(&[
            ("memberof", &["cn=a,dc=x", "cn=b,dc=x"]),
            ("MAIL", &["alice@example.org"]),
            ("cn", &["Alice Liddell"]),
            ("uid", &["Alice", "al"]),
        ]);
        assert_eq!(values(&entry, "memberOf"), ["cn=a,dc=x", "cn=b,dc=x"]);
        assert_eq!(first(&entry, "mail").as_deref(), Some("alice@example.org"));
        assert_eq!(first(&entry, DISPLAY_NAME), None);
        let name = |typed| canonical_name(&entry, "uid", typed);
        assert_eq!(name("alice").as_deref(), Some("Alice"));
        assert_eq!(name("AL").as_deref(), Some("al"));
        assert_eq!(name(" alice ").as_deref(), Some("Alice"));
        // A spelling the directory matched but berth does not fold alike
        // becomes the directory's own, never the typed one.
        assert_eq!(name("ſ-alice").as_deref(), Some("Alice"));
        assert_eq!(canonical_name(&entry, "nouid", "alice"), None);
    }

    #[test]
    fn groups_are_deduplicated_as_dns() {
        let mut groups = vec!["cn=Developers,ou=groups,dc=x".to_owned()];
        add_groups(
            &mut groups,
            vec![
                "cn=developers, ou=groups, dc=x".to_owned(),
                "cn=admins,ou=groups,dc=x".to_owned(),
            ],
        );
        assert_eq!(
            groups,
            ["cn=Developers,ou=groups,dc=x", "cn=admins,ou=groups,dc=x"]
        );
    }

    #[test]
    fn active_directory_disabled_accounts_are_recognised() {
        let text = "80090308: LdapErr: DSID-0C09042A, comment: AcceptSecurityContext error, \
                    data 533, v3839";
        assert!(is_disabled_in_active_directory(text));
        let wrong_password = "80090308: LdapErr: DSID-0C09042A, comment: \
                              AcceptSecurityContext error, data 52e, v3839";
        assert!(!is_disabled_in_active_directory(wrong_password));
        assert!(!is_disabled_in_active_directory(""));
    }
}
