//! Tag immutability rules (Harbor's immutable tag rules): a tag whose
//! repository and name match an enabled rule of its project cannot be
//! moved to another manifest or deleted, nor can the artifact (or
//! repository) carrying it. Re-pushing the same manifest under it is fine.
//!
//! The guards run inside the transaction of the write they protect, so a
//! rule added concurrently either applies to the write or the write came
//! first.

use sqlx::{AnyConnection, Row};

use crate::error::StorageError;
use crate::meta::{now, Meta};
use crate::oci::{Digest, Tag};
use crate::selector::Selector;

/// A rule, validated. Its selectors all have to select a tag (and its
/// repository) for the rule to protect it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImmutableRule {
    pub id: i64,
    pub project_id: i64,
    pub priority: i64,
    pub disabled: bool,
    pub tag_selectors: Vec<Selector>,
    pub repository_selectors: Vec<Selector>,
}

impl ImmutableRule {
    /// Whether the rule protects `tag` of the repository named `repo`
    /// inside its project. A disabled rule protects nothing.
    pub fn protects(&self, repo: &str, tag: &str) -> bool {
        !self.disabled
            && self.repository_selectors.iter().all(|s| s.selects(repo))
            && self.tag_selectors.iter().all(|s| s.selects(tag))
    }

    /// `rule 3 (tags matching `v1*` in repositories matching `**`)`.
    pub fn describe(&self) -> String {
        let join = |sels: &[Selector]| {
            if sels.is_empty() {
                "any".to_owned()
            } else {
                sels.iter()
                    .map(Selector::describe)
                    .collect::<Vec<_>>()
                    .join(" and ")
            }
        };
        format!(
            "rule {} (tags {} in repositories {})",
            self.id,
            join(&self.tag_selectors),
            join(&self.repository_selectors)
        )
    }
}

fn rule_from_row(row: &sqlx::any::AnyRow) -> Result<ImmutableRule, StorageError> {
    let tags: String = row.try_get("tag_selectors")?;
    let repos: String = row.try_get("scope_selectors")?;
    let bad =
        |e: serde_json::Error| StorageError::Corrupt(format!("immutable rule selectors: {e}"));
    Ok(ImmutableRule {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        priority: row.try_get("priority")?,
        disabled: crate::meta::flag(row, "disabled")?,
        tag_selectors: serde_json::from_str(&tags).map_err(bad)?,
        repository_selectors: serde_json::from_str(&repos).map_err(bad)?,
    })
}

const RULE_COLUMNS: &str = "id, project_id, priority, disabled, tag_selectors, scope_selectors";

async fn project_rules(
    conn: &mut AnyConnection,
    project_id: i64,
) -> Result<Vec<ImmutableRule>, StorageError> {
    let rows = sqlx::query(&format!(
        "SELECT {RULE_COLUMNS} FROM immutable_rules WHERE project_id = $1 ORDER BY priority, id"
    ))
    .bind(project_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(rule_from_row).collect()
}

/// Refuses the change when an enabled rule protects one of `tags` in
/// repository `repo_id`.
async fn guard(
    conn: &mut AnyConnection,
    repo_id: i64,
    tags: &[String],
) -> Result<(), StorageError> {
    if tags.is_empty() {
        return Ok(());
    }
    let row = sqlx::query(
        "SELECT r.name, p.id AS project_id FROM repositories r \
         JOIN projects p ON p.name = CASE WHEN instr(r.name, '/') > 0 \
           THEN substr(r.name, 1, instr(r.name, '/') - 1) ELSE r.name END WHERE r.id = $1",
    )
    .bind(repo_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(());
    };
    let repo: String = row.try_get("name")?;
    let rules = project_rules(conn, row.try_get("project_id")?).await?;
    let inside = repo.split_once('/').map_or("", |(_, rest)| rest);
    for tag in tags {
        if let Some(rule) = rules.iter().find(|r| r.protects(inside, tag)) {
            return Err(StorageError::TagImmutable {
                tag: format!("{repo}:{tag}"),
                rule: rule.describe(),
            });
        }
    }
    Ok(())
}

/// Before pointing `tags` at `digest`: a tag that already points
/// elsewhere must not be protected.
pub(crate) async fn guard_retag(
    conn: &mut AnyConnection,
    repo_id: i64,
    tags: &[Tag],
    digest: &Digest,
) -> Result<(), StorageError> {
    let mut moving = Vec::new();
    for tag in tags {
        let current: Option<String> =
            sqlx::query_scalar("SELECT manifest_digest FROM tags WHERE repo_id = $1 AND name = $2")
                .bind(repo_id)
                .bind(tag.as_str())
                .fetch_optional(&mut *conn)
                .await?;
        if current.is_some_and(|c| c != digest.to_string()) {
            moving.push(tag.as_str().to_owned());
        }
    }
    guard(conn, repo_id, &moving).await
}

/// Before deleting one tag.
pub(crate) async fn guard_tag(
    conn: &mut AnyConnection,
    repo_id: i64,
    tag: &str,
) -> Result<(), StorageError> {
    guard(conn, repo_id, &[tag.to_owned()]).await
}

/// Before deleting manifests (with their tags), by digest.
pub(crate) async fn guard_manifests(
    conn: &mut AnyConnection,
    repo_id: i64,
    digests: &[String],
) -> Result<(), StorageError> {
    let tags: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM tags WHERE repo_id = $1 \
         AND manifest_digest IN (SELECT value FROM json_each($2)) ORDER BY name",
    )
    .bind(repo_id)
    .bind(serde_json::to_string(digests).unwrap_or_else(|_| "[]".into()))
    .fetch_all(&mut *conn)
    .await?;
    guard(conn, repo_id, &tags).await
}

/// Before deleting a whole repository.
pub(crate) async fn guard_repository(
    conn: &mut AnyConnection,
    repo_id: i64,
) -> Result<(), StorageError> {
    let tags: Vec<String> =
        sqlx::query_scalar("SELECT name FROM tags WHERE repo_id = $1 ORDER BY name")
            .bind(repo_id)
            .fetch_all(&mut *conn)
            .await?;
    guard(conn, repo_id, &tags).await
}

/// A rule's fields as the API sets them.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    pub priority: i64,
    pub disabled: bool,
    pub tag_selectors: Vec<Selector>,
    pub repository_selectors: Vec<Selector>,
}

impl RuleSpec {
    fn json(&self) -> (String, String) {
        (
            serde_json::to_string(&self.tag_selectors).unwrap_or_else(|_| "[]".into()),
            serde_json::to_string(&self.repository_selectors).unwrap_or_else(|_| "[]".into()),
        )
    }
}

impl Meta {
    pub async fn immutable_rules(
        &self,
        project_id: i64,
    ) -> Result<Vec<ImmutableRule>, StorageError> {
        let mut conn = self.pool().acquire().await?;
        project_rules(&mut conn, project_id).await
    }

    pub async fn immutable_rule(
        &self,
        project_id: i64,
        id: i64,
    ) -> Result<Option<ImmutableRule>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM immutable_rules WHERE project_id = $1 AND id = $2"
        ))
        .bind(project_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(rule_from_row).transpose()
    }

    pub async fn create_immutable_rule(
        &self,
        project_id: i64,
        spec: &RuleSpec,
    ) -> Result<i64, StorageError> {
        let (tags, repos) = spec.json();
        Ok(sqlx::query_scalar(
            "INSERT INTO immutable_rules (project_id, priority, disabled, tag_selectors, scope_selectors, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(project_id)
        .bind(spec.priority)
        .bind(i64::from(spec.disabled))
        .bind(tags)
        .bind(repos)
        .bind(now())
        .fetch_one(self.pool())
        .await?)
    }

    pub async fn update_immutable_rule(
        &self,
        project_id: i64,
        id: i64,
        spec: &RuleSpec,
    ) -> Result<bool, StorageError> {
        let (tags, repos) = spec.json();
        let done = sqlx::query(
            "UPDATE immutable_rules SET priority = $3, disabled = $4, tag_selectors = $5, \
             scope_selectors = $6 WHERE project_id = $1 AND id = $2",
        )
        .bind(project_id)
        .bind(id)
        .bind(spec.priority)
        .bind(i64::from(spec.disabled))
        .bind(tags)
        .bind(repos)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn delete_immutable_rule(
        &self,
        project_id: i64,
        id: i64,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query("DELETE FROM immutable_rules WHERE project_id = $1 AND id = $2")
            .bind(project_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The tags of `tags` that an enabled rule protects in repository
    /// `repo` (a full name), for retention to skip.
    pub async fn protected_tags(
        &self,
        project_id: i64,
        repo: &str,
        tags: &[&str],
    ) -> Result<Vec<String>, StorageError> {
        let rules = self.immutable_rules(project_id).await?;
        let inside = repo.split_once('/').map_or("", |(_, rest)| rest);
        Ok(tags
            .iter()
            .filter(|t| rules.iter().any(|r| r.protects(inside, t)))
            .map(|t| (*t).to_owned())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::selector::Decoration;

    fn rule(tag: &str, repo: &str, disabled: bool) -> ImmutableRule {
        ImmutableRule {
            id: 1,
            project_id: 1,
            priority: 0,
            disabled,
            tag_selectors: vec![
                Selector::new("doublestar", Decoration::Matches, tag, false).unwrap()
            ],
            repository_selectors: vec![Selector::new(
                "doublestar",
                Decoration::RepoMatches,
                repo,
                false,
            )
            .unwrap()],
        }
    }

    #[test]
    fn rules_protect_matching_tags_in_matching_repositories() {
        let r = rule("v1*", "**", false);
        assert!(r.protects("app", "v1.0"));
        assert!(r.protects("app/api", "v1"));
        assert!(!r.protects("app", "v2.0"));
        assert!(!rule("v1*", "**", true).protects("app", "v1.0"));
        let scoped = rule("**", "app", false);
        assert!(scoped.protects("app", "latest"));
        assert!(!scoped.protects("other", "latest"));
        assert_eq!(
            r.describe(),
            "rule 1 (tags matching `v1*` in repositories matching `**`)"
        );
    }
}
