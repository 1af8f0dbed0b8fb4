//! User groups (Harbor's `/usergroups`): LDAP groups recorded by DN, so
//! they can be made project members. A member's role through a group is
//! looked up by the group DNs a login brings (`projects`); DNs are
//! compared ignoring ASCII case there and here.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::StorageError;
use crate::meta::{now, Meta};

/// Harbor's group type of an LDAP group (the only kind berth has).
pub const LDAP_GROUP: i64 = 1;

/// A recorded group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserGroup {
    pub id: i64,
    pub name: String,
    pub group_type: i64,
    pub ldap_group_dn: String,
    pub created_at: i64,
}

/// Which groups a listing shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupFilter {
    /// Names containing this.
    pub name_contains: Option<String>,
    /// This DN, ignoring ASCII case.
    pub dn: Option<String>,
}

/// Why a group was not recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRefused {
    /// A group with that DN (ignoring case) is recorded: its id.
    Exists(i64),
}

const COLUMNS: &str = "id, group_name, group_type, ldap_group_dn, created_at";

fn group_from_row(row: &AnyRow) -> Result<UserGroup, StorageError> {
    Ok(UserGroup {
        id: row.try_get("id")?,
        name: row.try_get("group_name")?,
        group_type: row.try_get("group_type")?,
        ldap_group_dn: row.try_get("ldap_group_dn")?,
        created_at: row.try_get("created_at")?,
    })
}

const FILTER: &str = "($1 IS NULL OR instr(group_name, $1) > 0) \
     AND ($2 IS NULL OR lower(ldap_group_dn) = lower($2))";

impl Meta {
    /// Records an LDAP group, unless one with that DN is recorded.
    pub async fn create_user_group(
        &self,
        name: &str,
        dn: &str,
    ) -> Result<Result<i64, GroupRefused>, StorageError> {
        let mut tx = self.write().await?;
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT id FROM user_groups WHERE lower(ldap_group_dn) = lower($1)")
                .bind(dn)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(id) = existing {
            return Ok(Err(GroupRefused::Exists(id)));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO user_groups (group_name, group_type, ldap_group_dn, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(name)
        .bind(LDAP_GROUP)
        .bind(dn)
        .bind(now())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(id))
    }

    pub async fn user_group(&self, id: i64) -> Result<Option<UserGroup>, StorageError> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM user_groups WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(group_from_row)
            .transpose()
    }

    /// One page of groups by name, and the total.
    pub async fn list_user_groups(
        &self,
        filter: &GroupFilter,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<UserGroup>, i64), StorageError> {
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM user_groups WHERE {FILTER}"))
                .bind(filter.name_contains.as_deref())
                .bind(filter.dn.as_deref())
                .fetch_one(self.pool())
                .await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM user_groups WHERE {FILTER} \
             ORDER BY group_name, id LIMIT $3 OFFSET $4"
        ))
        .bind(filter.name_contains.as_deref())
        .bind(filter.dn.as_deref())
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let groups = rows.iter().map(group_from_row).collect::<Result<_, _>>()?;
        Ok((groups, total))
    }

    pub async fn rename_user_group(&self, id: i64, name: &str) -> Result<bool, StorageError> {
        let done = sqlx::query("UPDATE user_groups SET group_name = $2 WHERE id = $1")
            .bind(id)
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a group and its project memberships, in one transaction:
    /// a group recorded later (SQLite may give it the same id) starts with
    /// none.
    pub async fn delete_user_group(&self, id: i64) -> Result<bool, StorageError> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM project_members WHERE entity_type = 'g' AND entity_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM user_groups WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn groups_are_recorded_once_by_dn_and_take_their_memberships_along() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta::connect(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        let dn = "cn=devs,ou=groups,dc=example,dc=org";
        let devs = meta.create_user_group("devs", dn).await.unwrap().unwrap();
        assert_eq!(
            meta.create_user_group("again", &dn.to_uppercase())
                .await
                .unwrap(),
            Err(GroupRefused::Exists(devs))
        );
        let ops = meta
            .create_user_group("ops", "cn=ops,ou=groups,dc=example,dc=org")
            .await
            .unwrap()
            .unwrap();
        let filter = GroupFilter {
            name_contains: Some("dev".into()),
            dn: None,
        };
        let (found, total) = meta.list_user_groups(&filter, 0, 10).await.unwrap();
        assert_eq!((found.len(), total, found[0].id), (1, 1, devs));
        let by_dn = GroupFilter {
            name_contains: None,
            dn: Some("CN=OPS,ou=groups,dc=example,dc=org".into()),
        };
        assert_eq!(
            meta.list_user_groups(&by_dn, 0, 10).await.unwrap().0[0].id,
            ops
        );
        assert!(meta.rename_user_group(ops, "operations").await.unwrap());
        assert_eq!(
            meta.user_group(ops).await.unwrap().unwrap().name,
            "operations"
        );

        // A membership goes with its group; a group recorded afterwards
        // (with the same id on SQLite) has none.
        let project = meta
            .create_project("team", false, None, None)
            .await
            .unwrap()
            .unwrap();
        sqlx::query(
            "INSERT INTO project_members (project_id, entity_type, entity_id, role, created_at, updated_at) \
             VALUES ($1, 'g', $2, 1, 0, 0)",
        )
        .bind(project)
        .bind(ops)
        .execute(meta.pool())
        .await
        .unwrap();
        assert!(meta.delete_user_group(ops).await.unwrap());
        assert!(!meta.delete_user_group(ops).await.unwrap());
        let again = meta
            .create_user_group("newcomers", "cn=new,ou=groups,dc=example,dc=org")
            .await
            .unwrap()
            .unwrap();
        let members: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM project_members WHERE entity_type = 'g' AND entity_id = $1",
        )
        .bind(again)
        .fetch_one(meta.pool())
        .await
        .unwrap();
        assert_eq!(members, 0);
    }
}
