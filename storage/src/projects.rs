//! Projects and their members (users, and LDAP groups by DN). Role ids are
//! Harbor's; what a role may do is the policy crate's business.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::StorageError;
use crate::meta::{now, Meta};
use crate::upstreams::{ProjectUpstream, ProxyMode};

/// A project row with what the API shows about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectRow {
    pub id: i64,
    pub name: String,
    pub public: bool,
    pub owner_id: Option<i64>,
    pub owner_name: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub repo_count: i64,
    /// The registry endpoint a proxy-cache or passthrough project uses.
    pub upstream: Option<ProjectUpstream>,
}

/// Which projects a listing may show.
#[derive(Debug, Clone)]
pub enum Visibility {
    /// System administrators see everything.
    All,
    /// Public projects plus those the user belongs to, directly or through
    /// one of these LDAP group DNs.
    Member { user_id: i64, groups: Vec<String> },
    /// Public projects plus these ids (a robot's namespaces).
    Projects(Vec<i64>),
    /// Public projects only (anonymous callers).
    Public,
}

/// What `/statistics` counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProjectStatistics {
    pub public_projects: i64,
    pub private_projects: i64,
    pub public_repos: i64,
    pub private_repos: i64,
}

/// Filters of a project listing (Harbor's `name`, `public`, `q=name=~`).
#[derive(Debug, Clone, Default)]
pub struct ProjectFilter {
    pub exact_name: Option<String>,
    pub name_contains: Option<String>,
    pub public: Option<bool>,
}

/// A member of a project: a user or an LDAP group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    User(i64),
    Group(i64),
}

impl Entity {
    fn kind(self) -> &'static str {
        match self {
            Entity::User(_) => "u",
            Entity::Group(_) => "g",
        }
    }

    fn id(self) -> i64 {
        match self {
            Entity::User(id) | Entity::Group(id) => id,
        }
    }
}

/// Why a member was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberRefused {
    /// The user or group is a member already.
    AlreadyMember,
    /// The user or group was deleted meanwhile.
    Gone,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberRow {
    pub id: i64,
    pub project_id: i64,
    pub entity: Entity,
    /// The username, or the group's name.
    pub entity_name: String,
    pub role: i64,
}

/// What deleting a project did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectDeletion {
    Deleted { repositories: i64 },
    NotEmpty { repositories: i64 },
    NotFound,
}

/// A project's repositories are counted over a range of the names' index
/// (`team/` up to `team0`: `'0'` follows `'/'`, names compared byte by
/// byte), not by reading every repository's name.
const PROJECT_COLUMNS: &str = "p.id, p.name, p.public, p.owner_id, p.created_at, p.updated_at, \
     p.registry_id, p.proxy_mode, \
     (SELECT username FROM users u WHERE u.id = p.owner_id) AS owner_name, \
     (SELECT count(*) FROM repositories r WHERE r.name = p.name \
        OR (r.name >= p.name || '/' AND r.name < p.name || '0')) AS repo_count";

fn project_from_row(row: AnyRow) -> Result<ProjectRow, StorageError> {
    Ok(ProjectRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        public: crate::meta::flag(&row, "public")?,
        owner_id: row.try_get("owner_id")?,
        owner_name: row.try_get("owner_name")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        repo_count: row.try_get("repo_count")?,
        upstream: match row.try_get::<Option<i64>, _>("registry_id")? {
            Some(registry_id) => Some(ProjectUpstream {
                registry_id,
                mode: row
                    .try_get::<Option<String>, _>("proxy_mode")?
                    .as_deref()
                    .and_then(ProxyMode::parse)
                    .unwrap_or(ProxyMode::Cache),
            }),
            None => None,
        },
    })
}

fn member_from_row(row: AnyRow) -> Result<MemberRow, StorageError> {
    let kind: String = row.try_get("entity_type")?;
    let entity_id: i64 = row.try_get("entity_id")?;
    Ok(MemberRow {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        entity: if kind == "g" {
            Entity::Group(entity_id)
        } else {
            Entity::User(entity_id)
        },
        entity_name: row.try_get("entity_name")?,
        role: row.try_get("role")?,
    })
}

/// Members with their user's or group's name.
const MEMBERS: &str = "SELECT m.id, m.project_id, m.entity_type, m.entity_id, m.role, \
     coalesce(CASE m.entity_type WHEN 'u' THEN (SELECT username FROM users WHERE id = m.entity_id) \
     ELSE (SELECT group_name FROM user_groups WHERE id = m.entity_id) END, '') AS entity_name \
     FROM project_members m";

/// The id of the next project. SQLite would hand a deleted project's id
/// (the highest) to the next one; robot permissions, members and quotas
/// name projects by id, so an id is never given out twice: the
/// `projects_high_water` trigger remembers the highest id deleted.
const NEXT_PROJECT_ID: &str = "(SELECT CASE WHEN a > b THEN a ELSE b END + 1 FROM \
     (SELECT coalesce((SELECT max(id) FROM projects), 0) AS a, \
             coalesce((SELECT last FROM id_high_water WHERE name = 'projects'), 0) AS b) ids)";

/// The visibility clause, bound as parameters $1..$4 of the query.
const VISIBLE: &str = "($1 = 'all' OR p.public = 1 \
     OR ($1 = 'ids' AND p.id IN (SELECT CAST(value AS BIGINT) FROM json_each($4))) \
     OR ($1 = 'member' AND EXISTS (SELECT 1 FROM project_members m WHERE m.project_id = p.id AND \
        ((m.entity_type = 'u' AND m.entity_id = $2) OR (m.entity_type = 'g' AND m.entity_id IN \
          (SELECT g.id FROM user_groups g WHERE lower(g.ldap_group_dn) IN \
            (SELECT lower(value) FROM json_each($3))))))))";

fn visibility_params(v: &Visibility) -> (&'static str, i64, String, String) {
    let json = |list: &Vec<String>| serde_json::to_string(list).unwrap_or_else(|_| "[]".into());
    match v {
        Visibility::All => ("all", 0, "[]".into(), "[]".into()),
        Visibility::Public => ("public", 0, "[]".into(), "[]".into()),
        Visibility::Member { user_id, groups } => ("member", *user_id, json(groups), "[]".into()),
        Visibility::Projects(ids) => (
            "ids",
            0,
            "[]".into(),
            serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()),
        ),
    }
}

impl Meta {
    pub async fn project(&self, name: &str) -> Result<Option<ProjectRow>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.name = $1"
        ))
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.map(project_from_row).transpose()
    }

    pub async fn project_by_id(&self, id: i64) -> Result<Option<ProjectRow>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(project_from_row).transpose()
    }

    /// Creates a project, with its owner (if any) as its ProjectAdmin and
    /// its storage limit (`None`: unlimited), in one transaction. `None`
    /// when the name is taken.
    pub async fn create_project(
        &self,
        name: &str,
        public: bool,
        owner_id: Option<i64>,
        storage_limit: Option<u64>,
    ) -> Result<Option<i64>, StorageError> {
        let mut tx = self.write().await?;
        let t = now();
        let id: Option<i64> = sqlx::query_scalar(&format!(
            "INSERT INTO projects (id, name, public, owner_id, created_at, updated_at, created_ms) \
             VALUES ({NEXT_PROJECT_ID}, $1, $2, $3, $4, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING id"
        ))
        .bind(name)
        .bind(i64::from(public))
        .bind(owner_id)
        .bind(t)
        .bind(crate::audit::now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        if let (Some(pid), Some(uid)) = (id, owner_id) {
            sqlx::query(
                "INSERT INTO project_members (project_id, entity_type, entity_id, role, created_at, updated_at) \
                 VALUES ($1, 'u', $2, 1, $3, $3)",
            )
            .bind(pid)
            .bind(uid)
            .bind(t)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(pid) = id {
            crate::quota::set_project_limit(&mut tx, pid, storage_limit).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Creates a project owned by the administrator if it does not exist.
    pub async fn ensure_project(&self, name: &str, public: bool) -> Result<(), StorageError> {
        // Under the write lock, as every insert that takes NEXT_PROJECT_ID.
        let mut tx = self.write().await?;
        sqlx::query(&format!(
            "INSERT INTO projects (id, name, public, owner_id, created_at, updated_at, created_ms) \
             VALUES ({NEXT_PROJECT_ID}, $1, $2, (SELECT id FROM users WHERE username = 'admin'), $3, $3, $4) \
             ON CONFLICT (name) DO NOTHING"
        ))
        .bind(name)
        .bind(i64::from(public))
        .bind(now())
        .bind(crate::audit::now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// When project `id` was created, in Unix milliseconds (audit records
    /// of a project are those written since: an earlier project of the
    /// same name had its own).
    pub async fn project_created_ms(&self, id: i64) -> Result<Option<i64>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT created_ms FROM projects WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
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

    pub async fn set_project_public(&self, id: i64, public: bool) -> Result<bool, StorageError> {
        let done = sqlx::query("UPDATE projects SET public = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(i64::from(public))
            .bind(now())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a project. With repositories in it, only when `force`: then
    /// its repositories' manifests, tags and blob links go in the same
    /// transaction (blob bytes stay until garbage collection).
    pub async fn delete_project(
        &self,
        id: i64,
        force: bool,
    ) -> Result<ProjectDeletion, StorageError> {
        let mut tx = self.write().await?;
        let Some(name): Option<String> =
            sqlx::query_scalar("SELECT name FROM projects WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(ProjectDeletion::NotFound);
        };
        let in_project = "name = $1 OR substr(name, 1, length($1) + 1) = $1 || '/'";
        let repositories: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM repositories WHERE {in_project}"
        ))
        .bind(&name)
        .fetch_one(&mut *tx)
        .await?;
        if repositories > 0 && !force {
            return Ok(ProjectDeletion::NotEmpty { repositories });
        }
        // Tags and manifests reference each other; clear them before the
        // repositories so the cascade has nothing to order.
        for table in ["tags", "manifests", "uploads", "repo_blobs"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE repo_id IN (SELECT id FROM repositories WHERE {in_project})"
            ))
            .bind(&name)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(&format!("DELETE FROM repositories WHERE {in_project}"))
            .bind(&name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM projects WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ProjectDeletion::Deleted { repositories })
    }

    /// One page of the projects `visibility` allows, by name, and the total.
    pub async fn list_projects(
        &self,
        visibility: &Visibility,
        filter: &ProjectFilter,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<ProjectRow>, i64), StorageError> {
        let (mode, uid, groups, names) = visibility_params(visibility);
        let conditions = format!(
            "{VISIBLE} AND ($5 IS NULL OR p.name = $5) AND ($6 IS NULL OR instr(p.name, $6) > 0) \
             AND ($7 IS NULL OR p.public = $7)"
        );
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM projects p WHERE {conditions}"
        ))
        .bind(mode)
        .bind(uid)
        .bind(&groups)
        .bind(&names)
        .bind(&filter.exact_name)
        .bind(&filter.name_contains)
        .bind(filter.public.map(i64::from))
        .fetch_one(self.pool())
        .await?;
        let rows = sqlx::query(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects p WHERE {conditions} \
             ORDER BY p.name LIMIT $8 OFFSET $9"
        ))
        .bind(mode)
        .bind(uid)
        .bind(&groups)
        .bind(&names)
        .bind(&filter.exact_name)
        .bind(&filter.name_contains)
        .bind(filter.public.map(i64::from))
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let rows = rows
            .into_iter()
            .map(project_from_row)
            .collect::<Result<_, _>>()?;
        Ok((rows, total))
    }

    /// Counts of the projects `visibility` shows, public and private, and
    /// of their repositories (Harbor's `/statistics`). One query.
    pub async fn project_statistics(
        &self,
        visibility: &Visibility,
    ) -> Result<ProjectStatistics, StorageError> {
        let (mode, uid, groups, names) = visibility_params(visibility);
        let rows = sqlx::query(&format!(
            "SELECT p.public AS public, count(*) AS projects, \
               CAST(COALESCE(SUM((SELECT count(*) FROM repositories r \
                 WHERE r.name >= p.name || '/' AND r.name < p.name || '0')), 0) AS BIGINT) AS repos \
             FROM projects p WHERE {VISIBLE} GROUP BY p.public"
        ))
        .bind(mode)
        .bind(uid)
        .bind(&groups)
        .bind(&names)
        .fetch_all(self.pool())
        .await?;
        let mut out = ProjectStatistics::default();
        for row in &rows {
            let (projects, repos): (i64, i64) = (row.try_get("projects")?, row.try_get("repos")?);
            if row.try_get::<i64, _>("public")? != 0 {
                (out.public_projects, out.public_repos) = (projects, repos);
            } else {
                (out.private_projects, out.private_repos) = (projects, repos);
            }
        }
        Ok(out)
    }

    /// The bytes of every blob stored, each once.
    pub async fn stored_bytes(&self) -> Result<i64, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM blobs")
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// The role ids a user holds in a project, directly and through any of
    /// `groups` (LDAP group DNs, compared case-insensitively).
    pub async fn project_roles(
        &self,
        project_id: i64,
        user_id: Option<i64>,
        groups: &[String],
    ) -> Result<Vec<i64>, StorageError> {
        let groups = serde_json::to_string(groups).unwrap_or_else(|_| "[]".into());
        Ok(sqlx::query_scalar(
            "SELECT role FROM project_members m WHERE m.project_id = $1 AND \
             ((m.entity_type = 'u' AND m.entity_id = $2) OR (m.entity_type = 'g' AND m.entity_id IN \
               (SELECT g.id FROM user_groups g WHERE lower(g.ldap_group_dn) IN \
                 (SELECT lower(value) FROM json_each($3)))))",
        )
        .bind(project_id)
        .bind(user_id.unwrap_or(-1))
        .bind(groups)
        .fetch_all(self.pool())
        .await?)
    }

    /// One page of a project's members, optionally filtered by name.
    pub async fn list_members(
        &self,
        project_id: i64,
        name_contains: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<MemberRow>, i64), StorageError> {
        let base = format!(
            "SELECT * FROM ({MEMBERS} WHERE m.project_id = $1) AS members \
             WHERE ($2 IS NULL OR instr(entity_name, $2) > 0)"
        );
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM ({base}) AS page"))
            .bind(project_id)
            .bind(name_contains)
            .fetch_one(self.pool())
            .await?;
        let rows = sqlx::query(&format!(
            "{base} ORDER BY entity_type DESC, entity_name LIMIT $3 OFFSET $4"
        ))
        .bind(project_id)
        .bind(name_contains)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let rows = rows
            .into_iter()
            .map(member_from_row)
            .collect::<Result<_, _>>()?;
        Ok((rows, total))
    }

    pub async fn member(
        &self,
        project_id: i64,
        member_id: i64,
    ) -> Result<Option<MemberRow>, StorageError> {
        let row = sqlx::query(&format!("{MEMBERS} WHERE m.project_id = $1 AND m.id = $2"))
            .bind(project_id)
            .bind(member_id)
            .fetch_optional(self.pool())
            .await?;
        row.map(member_from_row).transpose()
    }

    /// Adds a member: its id, or why not. The user or group must still
    /// exist when the row is written: the check is part of the insert,
    /// and both run under the write lock that deleting a user or a group
    /// takes, so a membership never outlives its entity (whose id SQLite
    /// could give to the next one).
    pub async fn add_member(
        &self,
        project_id: i64,
        entity: Entity,
        role: i64,
    ) -> Result<Result<i64, MemberRefused>, StorageError> {
        let mut tx = self.write().await?;
        let exists = match entity {
            Entity::User(_) => "SELECT 1 FROM users WHERE id = $3",
            Entity::Group(_) => "SELECT 1 FROM user_groups WHERE id = $3",
        };
        let id: Option<i64> = sqlx::query_scalar(&format!(
            "INSERT INTO project_members (project_id, entity_type, entity_id, role, created_at, updated_at) \
             SELECT $1, $2, $3, $4, $5, $5 WHERE EXISTS ({exists}) \
             ON CONFLICT DO NOTHING RETURNING id"
        ))
        .bind(project_id)
        .bind(entity.kind())
        .bind(entity.id())
        .bind(role)
        .bind(now())
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match id {
            Some(id) => Ok(id),
            None => {
                let member: Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM project_members \
                     WHERE project_id = $1 AND entity_type = $2 AND entity_id = $3",
                )
                .bind(project_id)
                .bind(entity.kind())
                .bind(entity.id())
                .fetch_optional(&mut *tx)
                .await?;
                Err(if member.is_some() {
                    MemberRefused::AlreadyMember
                } else {
                    MemberRefused::Gone
                })
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    pub async fn set_member_role(
        &self,
        project_id: i64,
        member_id: i64,
        role: i64,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "UPDATE project_members SET role = $3, updated_at = $4 WHERE project_id = $1 AND id = $2",
        )
        .bind(project_id)
        .bind(member_id)
        .bind(role)
        .bind(now())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn remove_member(
        &self,
        project_id: i64,
        member_id: i64,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND id = $2")
            .bind(project_id)
            .bind(member_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The id of the LDAP group with this DN, compared ignoring ASCII
    /// case as role lookups compare it, recording it if new (under the
    /// write lock, so two callers record it once).
    pub async fn ensure_group(&self, dn: &str, name: &str) -> Result<i64, StorageError> {
        let mut tx = self.write().await?;
        let known: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM user_groups WHERE lower(ldap_group_dn) = lower($1) ORDER BY id LIMIT 1",
        )
        .bind(dn)
        .fetch_optional(&mut *tx)
        .await?;
        let id =
            match known {
                Some(id) => id,
                None => sqlx::query_scalar(
                    "INSERT INTO user_groups (group_name, group_type, ldap_group_dn, created_at) \
                     VALUES ($1, 1, $2, $3) RETURNING id",
                )
                .bind(name)
                .bind(dn)
                .bind(now())
                .fetch_one(&mut *tx)
                .await?,
            };
        tx.commit().await?;
        Ok(id)
    }

    /// How many members hold each role id.
    pub async fn member_counts(&self, project_id: i64) -> Result<Vec<(i64, i64)>, StorageError> {
        let rows = sqlx::query(
            "SELECT role, count(*) AS n FROM project_members WHERE project_id = $1 GROUP BY role",
        )
        .bind(project_id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get("role")?, r.try_get("n")?)))
            .collect()
    }
}
