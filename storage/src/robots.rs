//! Robot accounts: machine identities with a secret and a fixed set of
//! permissions. Permissions are stored as Harbor's JSON; the auth crate
//! turns them into policy terms.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::StorageError;
use crate::meta::{now, Meta};

#[derive(Clone, PartialEq)]
pub struct RobotRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// SHA-256 of the secret, hex; never the secret.
    pub secret_hash: String,
    /// `system` or `project`.
    pub level: String,
    pub project_id: Option<i64>,
    /// Days of validity from creation or the last refresh; -1: never expires.
    pub duration: i64,
    /// Unix seconds; -1: never.
    pub expires_at: i64,
    pub disabled: bool,
    /// Harbor's `permissions` array, as JSON.
    pub permissions: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for RobotRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RobotRow")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("level", &self.level)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A robot to create.
#[derive(Debug, Clone)]
pub struct NewRobot<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub secret_hash: &'a str,
    pub level: &'a str,
    pub project_id: Option<i64>,
    pub duration: i64,
    pub expires_at: i64,
    pub disabled: bool,
    pub permissions: &'a str,
}

fn robot_from_row(row: AnyRow) -> Result<RobotRow, StorageError> {
    Ok(RobotRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        secret_hash: row.try_get("secret_hash")?,
        level: row.try_get("level")?,
        project_id: row.try_get("project_id")?,
        duration: row.try_get("duration")?,
        expires_at: row.try_get("expires_at")?,
        disabled: crate::meta::flag(&row, "disabled")?,
        permissions: row.try_get("permissions")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Meta {
    /// Creates a robot; `None` when the name is taken.
    pub async fn create_robot(&self, r: &NewRobot<'_>) -> Result<Option<i64>, StorageError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO robots (name, description, secret_hash, level, project_id, duration, \
             expires_at, disabled, permissions, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(r.name)
        .bind(r.description)
        .bind(r.secret_hash)
        .bind(r.level)
        .bind(r.project_id)
        .bind(r.duration)
        .bind(r.expires_at)
        .bind(i64::from(r.disabled))
        .bind(r.permissions)
        .bind(now())
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn robot(&self, id: i64) -> Result<Option<RobotRow>, StorageError> {
        let row = sqlx::query("SELECT * FROM robots WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(robot_from_row).transpose()
    }

    pub async fn robot_by_name(&self, name: &str) -> Result<Option<RobotRow>, StorageError> {
        let row = sqlx::query("SELECT * FROM robots WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.map(robot_from_row).transpose()
    }

    /// One page of robots, optionally of one level and project, or whose
    /// name contains `name_contains`; and the total.
    pub async fn list_robots(
        &self,
        level: Option<&str>,
        project_id: Option<i64>,
        name_contains: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<RobotRow>, i64), StorageError> {
        let cond = "($1 IS NULL OR level = $1) AND ($2 IS NULL OR project_id = $2) \
                    AND ($3 IS NULL OR instr(name, $3) > 0)";
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM robots WHERE {cond}"))
            .bind(level)
            .bind(project_id)
            .bind(name_contains)
            .fetch_one(self.pool())
            .await?;
        let rows = sqlx::query(&format!(
            "SELECT * FROM robots WHERE {cond} ORDER BY id LIMIT $4 OFFSET $5"
        ))
        .bind(level)
        .bind(project_id)
        .bind(name_contains)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let robots = rows
            .into_iter()
            .map(robot_from_row)
            .collect::<Result<_, _>>()?;
        Ok((robots, total))
    }

    /// Replaces a robot's editable fields.
    pub async fn update_robot(
        &self,
        id: i64,
        description: &str,
        duration: i64,
        expires_at: i64,
        disabled: bool,
        permissions: &str,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE robots SET description = $2, duration = $3, expires_at = $4, disabled = $5, \
             permissions = $6, updated_at = $7 WHERE id = $1",
        )
        .bind(id)
        .bind(description)
        .bind(duration)
        .bind(expires_at)
        .bind(i64::from(disabled))
        .bind(permissions)
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn set_robot_secret(&self, id: i64, secret_hash: &str) -> Result<bool, StorageError> {
        let done = sqlx::query("UPDATE robots SET secret_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(secret_hash)
            .bind(now())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn delete_robot(&self, id: i64) -> Result<bool, StorageError> {
        let done = sqlx::query("DELETE FROM robots WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
