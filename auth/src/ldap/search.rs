//! Searching the directory for the management API (Harbor's
//! `/ldap/users/search` and `/ldap/groups/search`): users by their `uid`,
//! groups by name under `ldap.group_base_dn` or by DN, each as the service
//! account, at most [`MAX_RESULTS`] entries. What is typed is escaped
//! (`filter`), so a search never widens past what it names.

use ldap3::{Scope, SearchEntry};

use super::conn::{rc, result_error, Connection, Step};
use super::{finish, first, scope, LdapDirectory, CN, DISPLAY_NAME, MAIL};
use crate::error::AuthError;

/// The most entries a search returns.
pub const MAX_RESULTS: i32 = 200;

/// A user the directory lists (Harbor's `LdapUser`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// The first value of `ldap.uid`.
    pub username: String,
    pub dn: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
}

/// A group the directory lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryGroup {
    /// The first value of `ldap.group_gid` (`cn` by default), else the DN.
    pub name: String,
    pub dn: String,
}

/// What a group search looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupQuery<'a> {
    /// Groups under `ldap.group_base_dn` with this name (all when empty).
    Named(&'a str),
    /// The group at this DN.
    At(&'a str),
}

impl LdapDirectory {
    /// Users whose `uid` is `username`, or every user when it is empty.
    pub async fn search_users(&self, username: &str) -> Result<Vec<DirectoryUser>, AuthError> {
        let filters = self.filters()?;
        let config = &self.inner.config;
        let filter = filters.users(username);
        let uid = config.uid.as_str();
        self.with_service_account(|mut conn| async move {
            let result = conn
                .search(
                    Step::UserSearch,
                    &config.base_dn,
                    scope(config.scope),
                    &filter,
                    &[uid, MAIL, DISPLAY_NAME, CN],
                    MAX_RESULTS,
                )
                .await;
            let entries = entries(&conn, Step::UserSearch, &config.base_dn, result);
            (conn, entries)
        })
        .await
        .map(|entries| {
            entries
                .into_iter()
                .filter_map(|entry| {
                    Some(DirectoryUser {
                        username: first(&entry, uid)?,
                        email: first(&entry, MAIL),
                        display_name: first(&entry, DISPLAY_NAME).or_else(|| first(&entry, CN)),
                        dn: entry.dn,
                    })
                })
                .collect()
        })
    }

    /// Groups by name under `ldap.group_base_dn`, or the group at a DN.
    /// Without `ldap.group_base_dn`, a search by name is refused with the
    /// key named.
    pub async fn search_groups(
        &self,
        query: GroupQuery<'_>,
    ) -> Result<Vec<DirectoryGroup>, AuthError> {
        let filters = self.filters()?;
        let config = &self.inner.config;
        let name_attribute = config.group_gid.as_deref().unwrap_or(CN);
        let (base, scope, filter) = match query {
            GroupQuery::Named(name) => {
                let base = config.group_base_dn.as_deref().ok_or_else(|| {
                    AuthError::DirectoryMisconfigured(
                        "searching groups by name needs ldap.group_base_dn, where the groups are"
                            .into(),
                    )
                })?;
                let filter = filters.groups_named(name_attribute, name).map_err(|bad| {
                    AuthError::DirectoryMisconfigured(format!("{}: {}", bad.key, bad.why))
                })?;
                (base, Scope::Subtree, filter)
            }
            GroupQuery::At(dn) => (dn, Scope::Base, filters.any_group()),
        };
        let found = self
            .with_service_account(|mut conn| async move {
                let result = conn
                    .search(
                        Step::GroupSearch,
                        base,
                        scope,
                        &filter,
                        &[name_attribute],
                        MAX_RESULTS,
                    )
                    .await;
                let entries = match (query, result) {
                    // A DN that names nothing (or is no DN at all) is an
                    // empty answer, not a misconfiguration.
                    (GroupQuery::At(_), Ok((_, r)))
                        if matches!(r.rc, rc::NO_SUCH_OBJECT | rc::INVALID_DN_SYNTAX) =>
                    {
                        Ok(Vec::new())
                    }
                    (_, result) => entries(&conn, Step::GroupSearch, base, result),
                };
                (conn, entries)
            })
            .await?;
        Ok(found
            .into_iter()
            .map(|entry| DirectoryGroup {
                name: first(&entry, name_attribute).unwrap_or_else(|| entry.dn.clone()),
                dn: entry.dn,
            })
            .collect())
    }

    /// Opens a connection, binds as the service account, runs `search`
    /// and closes, recording the request for the metrics.
    async fn with_service_account<F, Fut>(&self, search: F) -> Result<Vec<SearchEntry>, AuthError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: std::future::Future<Output = (Connection, Result<Vec<SearchEntry>, AuthError>)>,
    {
        let started = std::time::Instant::now();
        let result = async {
            let mut conn = Connection::open(&self.inner.config).await?;
            let bound = self.service_bind(&mut conn).await;
            if bound.is_err() {
                finish(conn, &bound).await;
                return bound.map(|()| Vec::new());
            }
            let (conn, result) = search(conn).await;
            finish(conn, &result).await;
            result
        }
        .await;
        self.inner.stats.record(&result, started.elapsed());
        result
    }
}

/// A search's entries, or what its result code means. A size limit
/// reached keeps the entries found.
fn entries(
    conn: &Connection,
    step: Step,
    base: &str,
    result: Result<(Vec<SearchEntry>, ldap3::LdapResult), AuthError>,
) -> Result<Vec<SearchEntry>, AuthError> {
    let (entries, result) = result?;
    match result.rc {
        rc::SUCCESS | rc::SIZE_LIMIT_EXCEEDED => Ok(entries),
        rc::NO_SUCH_OBJECT => Err(AuthError::DirectoryMisconfigured(format!(
            "{}: the search base `{base}` does not exist",
            conn.url()
        ))),
        _ => Err(result_error(conn.url(), step, &result)),
    }
}
