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

fn user_from_row(row: sqlx::sqlite::SqliteRow) -> Result<User, StorageError> {
    let source: String = row.try_get("source")?;
    let groups: Option<String> = row.try_get("ldap_groups")?;
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        email: row.try_get("email")?,
        admin: row.try_get("admin")?,
        disabled: row.try_get("disabled")?,
        source: if source == "ldap" {
            UserSource::Ldap
        } else {
            UserSource::Db
        },
        ldap_dn: row.try_get("ldap_dn")?,
        ldap_groups: groups
            .and_then(|g| serde_json::from_str(&g).ok())
            .unwrap_or_default(),
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

    /// Creates a local user; false if the name is taken.
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        email: Option<&str>,
        admin: bool,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "INSERT INTO users (username, password_hash, email, admin, disabled, source, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 0, $5, $6, $6) ON CONFLICT (username) DO NOTHING",
        )
        .bind(username)
        .bind(password_hash)
        .bind(email)
        .bind(admin)
        .bind(UserSource::Db.as_str())
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn set_password_hash(
        &self,
        username: &str,
        hash: &str,
    ) -> Result<bool, StorageError> {
        let done =
            sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE username = $1")
                .bind(username)
                .bind(hash)
                .bind(now())
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn set_user_disabled(
        &self,
        username: &str,
        disabled: bool,
    ) -> Result<bool, StorageError> {
        let done =
            sqlx::query("UPDATE users SET disabled = $2, updated_at = $3 WHERE username = $1")
                .bind(username)
                .bind(disabled)
                .bind(now())
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records (or refreshes) an LDAP user after a successful bind; returns
    /// the stored row, whose `disabled` flag a local admin controls.
    pub async fn upsert_ldap_user(&self, p: &LdapProfile<'_>) -> Result<User, StorageError> {
        let groups = serde_json::to_string(p.groups).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "INSERT INTO users (username, email, admin, disabled, source, ldap_dn, ldap_groups, created_at, updated_at) \
             VALUES ($1, $2, $3, 0, $4, $5, $6, $7, $7) \
             ON CONFLICT (username) DO UPDATE SET email = excluded.email, admin = excluded.admin, \
             ldap_dn = excluded.ldap_dn, ldap_groups = excluded.ldap_groups, updated_at = excluded.updated_at \
             WHERE users.source = 'ldap'",
        )
        .bind(p.username)
        .bind(p.email)
        .bind(p.admin)
        .bind(UserSource::Ldap.as_str())
        .bind(p.dn)
        .bind(groups)
        .bind(now())
        .execute(self.pool())
        .await?;
        self.user(p.username)
            .await?
            .ok_or_else(|| StorageError::Io {
                context: format!("recording LDAP user {}", p.username),
                source: std::io::Error::other("row vanished after upsert"),
            })
    }

    /// Creates a project if it does not exist.
    pub async fn ensure_project(&self, name: &str, public: bool) -> Result<(), StorageError> {
        sqlx::query(
            "INSERT INTO projects (name, public, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(public)
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Whether a project exists and is public (`None`: no such project).
    pub async fn project_public(&self, name: &str) -> Result<Option<bool>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT public FROM projects WHERE name = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await?,
        )
    }
}
