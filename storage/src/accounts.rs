//! Users and projects: the rows the auth crate and the policy's inputs
//! come from.

use sqlx::Row;

use crate::error::StorageError;
use crate::meta::{now, Meta};

/// Where a user's password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSource {
    Db,
    Ldap,
}

impl UserSource {
    fn as_str(self) -> &'static str {
        match self {
            UserSource::Db => "db",
            UserSource::Ldap => "ldap",
        }
    }
}

/// A user row. `password_hash` is a PHC string (argon2id), never a
/// password; it is left out of `Debug`.
#[derive(Clone, PartialEq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password_hash: Option<String>,
    pub email: Option<String>,
    pub admin: bool,
    pub disabled: bool,
    pub source: UserSource,
    pub ldap_dn: Option<String>,
    pub ldap_groups: Vec<String>,
    pub realname: Option<String>,
    pub comment: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("admin", &self.admin)
            .field("disabled", &self.disabled)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// What an LDAP login tells us about a user, recorded locally.
#[derive(Debug, Clone)]
pub struct LdapProfile<'a> {
    pub username: &'a str,
    pub dn: &'a str,
    pub email: Option<&'a str>,
    pub groups: &'a [String],
    pub admin: bool,
}

/// `username` equals `$1` ignoring ASCII case, on each database (the
/// PostgreSQL function is defined by its migration, with an index).
const SAME_NAME_SQLITE: &str = "username = $1 COLLATE NOCASE";
const SAME_NAME_POSTGRES: &str = "ascii_lower(username) = ascii_lower($1)";

pub(crate) fn user_from_row(row: sqlx::any::AnyRow) -> Result<User, StorageError> {
    let source: String = row.try_get("source")?;
    let groups: Option<String> = row.try_get("ldap_groups")?;
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        email: row.try_get("email")?,
        admin: crate::meta::flag(&row, "admin")?,
        disabled: crate::meta::flag(&row, "disabled")?,
        source: if source == "ldap" {
            UserSource::Ldap
        } else {
            UserSource::Db
        },
        ldap_dn: row.try_get("ldap_dn")?,
        ldap_groups: groups
            .and_then(|g| serde_json::from_str(&g).ok())
            .unwrap_or_default(),
        realname: row.try_get("realname")?,
        comment: row.try_get("comment")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Meta {
    pub async fn user(&self, username: &str) -> Result<Option<User>, StorageError> {
        let row = sqlx::query("SELECT * FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(self.pool())
            .await?;
        row.map(user_from_row).transpose()
    }

    /// Users whose name equals `username` ignoring ASCII case (directories
    /// match `uid` that way): at most a few rows.
    pub async fn users_named_ignoring_case(
        &self,
        username: &str,
    ) -> Result<Vec<User>, StorageError> {
        let same_name = self.backend().pick(SAME_NAME_SQLITE, SAME_NAME_POSTGRES);
        let rows = sqlx::query(&format!("SELECT * FROM users WHERE {same_name} LIMIT 10"))
            .bind(username)
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(user_from_row).collect()
    }

    /// Creates a local user; `None` if the name is taken, also by a user
    /// whose name differs only in case (a directory account of that name
    /// could otherwise never log in, or worse, be confused with it).
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        email: Option<&str>,
        admin: bool,
    ) -> Result<Option<i64>, StorageError> {
        let same_name = self.backend().pick(SAME_NAME_SQLITE, SAME_NAME_POSTGRES);
        // Under the write lock: on PostgreSQL two of these statements
        // would otherwise run side by side, each blind to the other's row.
        let mut tx = self.write().await?;
        let id = sqlx::query_scalar(&format!(
            "INSERT INTO users (username, password_hash, email, admin, disabled, source, created_at, updated_at) \
             SELECT $1, $2, $3, $4, 0, $5, $6, $6 \
             WHERE NOT EXISTS (SELECT 1 FROM users WHERE {same_name}) \
             ON CONFLICT (username) DO NOTHING RETURNING id"
        ))
        .bind(username)
        .bind(password_hash)
        .bind(email)
        .bind(i64::from(admin))
        .bind(UserSource::Db.as_str())
        .bind(now())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Sets a password; reset links sent before no longer work.
    pub async fn set_password_hash(
        &self,
        username: &str,
        hash: &str,
    ) -> Result<bool, StorageError> {
        let id: Option<i64> = sqlx::query_scalar(
            "UPDATE users SET password_hash = $2, updated_at = $3 WHERE username = $1 RETURNING id",
        )
        .bind(username)
        .bind(hash)
        .bind(now())
        .fetch_optional(self.pool())
        .await?;
        if let Some(id) = id {
            self.drop_password_resets(id).await?;
        }
        Ok(id.is_some())
    }

    pub async fn set_user_disabled(
        &self,
        username: &str,
        disabled: bool,
    ) -> Result<bool, StorageError> {
        let done =
            sqlx::query("UPDATE users SET disabled = $2, updated_at = $3 WHERE username = $1")
                .bind(username)
                .bind(i64::from(disabled))
                .bind(now())
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records (or refreshes) an LDAP user after a successful bind; returns
    /// the stored row, whose `disabled` flag a local admin controls. When
    /// a local user has the name ignoring case, nothing is written and
    /// that user's row is returned (the caller refuses the login): checked
    /// under the write lock, so a local user created at the same time on
    /// another instance is seen.
    pub async fn upsert_ldap_user(&self, p: &LdapProfile<'_>) -> Result<User, StorageError> {
        let groups = serde_json::to_string(p.groups).unwrap_or_else(|_| "[]".into());
        let same_name = self.backend().pick(SAME_NAME_SQLITE, SAME_NAME_POSTGRES);
        let mut tx = self.write().await?;
        let local = sqlx::query(&format!(
            "SELECT * FROM users WHERE {same_name} AND source <> 'ldap' LIMIT 1"
        ))
        .bind(p.username)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(local) = local {
            return user_from_row(local);
        }
        sqlx::query(
            "INSERT INTO users (username, email, admin, disabled, source, ldap_dn, ldap_groups, created_at, updated_at) \
             VALUES ($1, $2, $3, 0, $4, $5, $6, $7, $7) \
             ON CONFLICT (username) DO UPDATE SET email = excluded.email, admin = excluded.admin, \
             ldap_dn = excluded.ldap_dn, ldap_groups = excluded.ldap_groups, updated_at = excluded.updated_at \
             WHERE users.source = 'ldap'",
        )
        .bind(p.username)
        .bind(p.email)
        .bind(i64::from(p.admin))
        .bind(UserSource::Ldap.as_str())
        .bind(p.dn)
        .bind(groups)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query("SELECT * FROM users WHERE username = $1")
            .bind(p.username)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.map(user_from_row)
            .transpose()?
            .ok_or_else(|| StorageError::Io {
                context: format!("recording LDAP user {}", p.username),
                source: std::io::Error::other("row vanished after upsert"),
            })
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StorageError> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(user_from_row).transpose()
    }

    /// One page of users by name (optionally those whose name contains
    /// `name_contains`, or exactly `exact`), and the total.
    pub async fn list_users(
        &self,
        exact: Option<&str>,
        name_contains: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<User>, i64), StorageError> {
        let cond = "($1 IS NULL OR username = $1) AND ($2 IS NULL OR instr(username, $2) > 0)";
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM users WHERE {cond}"))
            .bind(exact)
            .bind(name_contains)
            .fetch_one(self.pool())
            .await?;
        let rows = sqlx::query(&format!(
            "SELECT * FROM users WHERE {cond} ORDER BY username LIMIT $3 OFFSET $4"
        ))
        .bind(exact)
        .bind(name_contains)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let users = rows
            .into_iter()
            .map(user_from_row)
            .collect::<Result<_, _>>()?;
        Ok((users, total))
    }

    /// Updates the profile fields that are `Some`.
    pub async fn update_user_profile(
        &self,
        id: i64,
        email: Option<&str>,
        realname: Option<&str>,
        comment: Option<&str>,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE users SET email = coalesce($2, email), realname = coalesce($3, realname), \
             comment = coalesce($4, comment), updated_at = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(email)
        .bind(realname)
        .bind(comment)
        .bind(now())
        .execute(self.pool())
        .await?;
        if email.is_some() {
            // A link mailed to the old address no longer works.
            self.drop_password_resets(id).await?;
        }
        Ok(done.rows_affected() > 0)
    }

    pub async fn set_user_admin(&self, id: i64, admin: bool) -> Result<bool, StorageError> {
        let done = sqlx::query("UPDATE users SET admin = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(i64::from(admin))
            .bind(now())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a user and their memberships in one transaction.
    pub async fn delete_user(&self, id: i64) -> Result<bool, StorageError> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM project_members WHERE entity_type = 'u' AND entity_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE projects SET owner_id = NULL WHERE owner_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Its reset links go with it: a later account could get its id.
        sqlx::query("DELETE FROM password_resets WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}
