//! Labels (Harbor's `/labels`): global ones, which every project may put
//! on its artifacts, and a project's own. Artifacts carry labels by their
//! repository and digest, so deleting an artifact (or its repository, or
//! the label) takes the attachment with it, through foreign keys, whatever
//! code deletes the rows.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::StorageError;
use crate::meta::{now, Meta};
use crate::oci::{Digest, RepoName};

/// Harbor's limit on a label's name, in bytes.
pub const NAME_MAX: usize = 128;
/// berth's limit on a description, in characters.
pub const DESCRIPTION_MAX: usize = 1024;
/// berth's limit on the labels one artifact carries: listings embed them,
/// so it bounds what a page of artifacts can weigh.
pub const PER_ARTIFACT: i64 = 32;

/// Where a label may be used (Harbor's `scope`, `g` or `p`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelScope {
    Global,
    /// A project's own, by project id.
    Project(i64),
}

impl LabelScope {
    /// Harbor's scope letter.
    pub fn letter(self) -> &'static str {
        match self {
            LabelScope::Global => "g",
            LabelScope::Project(_) => "p",
        }
    }

    fn project_id(self) -> Option<i64> {
        match self {
            LabelScope::Global => None,
            LabelScope::Project(id) => Some(id),
        }
    }
}

/// A stored label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub color: String,
    pub scope: LabelScope,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A label's fields as a caller sets them, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSpec {
    name: String,
    description: String,
    color: String,
}

impl LabelSpec {
    /// The name: 1 to 128 bytes, no control characters, not blank, no
    /// comma and no space at either end (retention's label selectors name
    /// labels in one comma-separated, trimmed list, as Harbor). The
    /// color: empty or `#` and 3 or 6 hex digits (the portal shows it as a
    /// style, so nothing else may get there).
    pub fn new(name: &str, description: &str, color: &str) -> Result<LabelSpec, String> {
        if name.trim().is_empty() {
            return Err("a label needs a name".into());
        }
        if name.len() > NAME_MAX {
            return Err(format!(
                "a label's name is at most {NAME_MAX} bytes; this one has {}",
                name.len()
            ));
        }
        if name.contains(',') || name.trim() != name {
            return Err(format!(
                "a label's name may not contain a comma or start or end with a space \
                 (retention rules list labels by name, separated by commas): `{name}`"
            ));
        }
        if name.chars().any(char::is_control) || description.contains('\0') {
            return Err("a label's name and description may not contain control characters".into());
        }
        if description.chars().count() > DESCRIPTION_MAX {
            return Err(format!(
                "a label's description is at most {DESCRIPTION_MAX} characters"
            ));
        }
        let hex = color.strip_prefix('#').unwrap_or("");
        let color_ok = color.is_empty()
            || (matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit()));
        if !color_ok {
            return Err(format!(
                "color `{color}` is not a color; use `#` and 3 or 6 hex digits, like #0065AB"
            ));
        }
        Ok(LabelSpec {
            name: name.to_owned(),
            description: description.to_owned(),
            color: color.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Which labels a listing shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelQuery {
    pub scope: LabelScope,
    /// Names containing this (Harbor's `name`, a fuzzy match).
    pub name_contains: Option<String>,
}

/// Why a label was not created or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelRefused {
    /// Its scope already has a label of that name.
    NameTaken,
    /// The label (or, on creation, its project) is gone.
    NotFound,
}

/// What putting a label on an artifact did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Labeling {
    Added,
    /// The artifact already had it.
    AlreadyThere,
    NoArtifact,
    NoLabel,
    /// The artifact carries [`PER_ARTIFACT`] labels already.
    Full,
    /// The label is another project's.
    OtherProject,
}

const COLUMNS: &str = "id, name, description, color, project_id, created_at, updated_at";

fn label_from_row(row: &AnyRow) -> Result<Label, StorageError> {
    let project: Option<i64> = row.try_get("project_id")?;
    Ok(Label {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        color: row.try_get("color")?,
        scope: project.map_or(LabelScope::Global, LabelScope::Project),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Whether another label of the scope has the name (`$1` name, `$2`
/// project id or NULL, `$3` the label's own id or 0).
const NAME_TAKEN: &str = "SELECT id FROM labels WHERE name = $1 \
     AND ((project_id IS NULL AND $2 IS NULL) OR project_id = $2) AND id <> $3";

impl Meta {
    pub async fn create_label(
        &self,
        scope: LabelScope,
        spec: &LabelSpec,
    ) -> Result<Result<i64, LabelRefused>, StorageError> {
        let mut tx = self.write().await?;
        if let LabelScope::Project(id) = scope {
            let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM projects WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Ok(Err(LabelRefused::NotFound));
            }
        }
        let taken: Option<i64> = sqlx::query_scalar(NAME_TAKEN)
            .bind(&spec.name)
            .bind(scope.project_id())
            .bind(0_i64)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Ok(Err(LabelRefused::NameTaken));
        }
        let at = now();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO labels (name, description, color, project_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
        )
        .bind(&spec.name)
        .bind(&spec.description)
        .bind(&spec.color)
        .bind(scope.project_id())
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(id))
    }

    pub async fn label(&self, id: i64) -> Result<Option<Label>, StorageError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM labels WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(label_from_row).transpose()
    }

    /// One page of a scope's labels by name, and the total.
    pub async fn list_labels(
        &self,
        query: &LabelQuery,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Label>, i64), StorageError> {
        let filter = "((project_id IS NULL AND $1 IS NULL) OR project_id = $1) \
                      AND ($2 IS NULL OR instr(name, $2) > 0)";
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM labels WHERE {filter}"))
            .bind(query.scope.project_id())
            .bind(query.name_contains.as_deref())
            .fetch_one(self.pool())
            .await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM labels WHERE {filter} ORDER BY name, id LIMIT $3 OFFSET $4"
        ))
        .bind(query.scope.project_id())
        .bind(query.name_contains.as_deref())
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let labels = rows
            .iter()
            .map(label_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((labels, total))
    }

    pub async fn update_label(
        &self,
        id: i64,
        spec: &LabelSpec,
    ) -> Result<Result<(), LabelRefused>, StorageError> {
        let mut tx = self.write().await?;
        let project: Option<Option<i64>> =
            sqlx::query_scalar("SELECT project_id FROM labels WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(project) = project else {
            return Ok(Err(LabelRefused::NotFound));
        };
        let taken: Option<i64> = sqlx::query_scalar(NAME_TAKEN)
            .bind(&spec.name)
            .bind(project)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Ok(Err(LabelRefused::NameTaken));
        }
        sqlx::query(
            "UPDATE labels SET name = $2, description = $3, color = $4, updated_at = $5 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(&spec.name)
        .bind(&spec.description)
        .bind(&spec.color)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Deletes a label, and takes it off every artifact.
    pub async fn delete_label(&self, id: i64) -> Result<bool, StorageError> {
        let mut tx = self.write().await?;
        let done = sqlx::query("DELETE FROM labels WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Puts label `label_id` on the artifact `digest` of repository
    /// `repo` in project `project_id`: a global label, or one of that
    /// project's. Inside the project's write lock, so the artifact cannot
    /// be deleted between the check and the insert.
    pub async fn add_artifact_label(
        &self,
        project_id: i64,
        repo: &RepoName,
        digest: &Digest,
        label_id: i64,
    ) -> Result<Labeling, StorageError> {
        let mut tx = self.write_in(crate::locks::Scope::Project(repo)).await?;
        let label: Option<Option<i64>> =
            sqlx::query_scalar("SELECT project_id FROM labels WHERE id = $1")
                .bind(label_id)
                .fetch_optional(&mut *tx)
                .await?;
        match label {
            None => return Ok(Labeling::NoLabel),
            Some(Some(owner)) if owner != project_id => return Ok(Labeling::OtherProject),
            Some(_) => {}
        }
        let repo_id: Option<i64> = sqlx::query_scalar(
            "SELECT r.id FROM repositories r JOIN manifests m ON m.repo_id = r.id \
             WHERE r.name = $1 AND m.digest = $2",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(repo_id) = repo_id else {
            return Ok(Labeling::NoArtifact);
        };
        let carried: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM artifact_labels WHERE repo_id = $1 AND manifest_digest = $2",
        )
        .bind(repo_id)
        .bind(digest.to_string())
        .fetch_one(&mut *tx)
        .await?;
        if carried >= PER_ARTIFACT {
            let has: Option<i64> = sqlx::query_scalar(
                "SELECT label_id FROM artifact_labels WHERE repo_id = $1 \
                 AND manifest_digest = $2 AND label_id = $3",
            )
            .bind(repo_id)
            .bind(digest.to_string())
            .bind(label_id)
            .fetch_optional(&mut *tx)
            .await?;
            return Ok(if has.is_some() {
                Labeling::AlreadyThere
            } else {
                Labeling::Full
            });
        }
        let done = sqlx::query(
            "INSERT INTO artifact_labels (repo_id, manifest_digest, label_id, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(repo_id)
        .bind(digest.to_string())
        .bind(label_id)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(if done.rows_affected() > 0 {
            Labeling::Added
        } else {
            Labeling::AlreadyThere
        })
    }

    /// Takes a label off an artifact; false if it did not have it.
    pub async fn remove_artifact_label(
        &self,
        repo_id: i64,
        digest: &Digest,
        label_id: i64,
    ) -> Result<bool, StorageError> {
        let done = sqlx::query(
            "DELETE FROM artifact_labels WHERE repo_id = $1 AND manifest_digest = $2 \
             AND label_id = $3",
        )
        .bind(repo_id)
        .bind(digest.to_string())
        .bind(label_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The labels of each of `digests` in the repository (one query), by
    /// name; digests without labels are absent.
    pub async fn artifact_labels(
        &self,
        repo_id: i64,
        digests: &[&Digest],
    ) -> Result<HashMap<Digest, Vec<Label>>, StorageError> {
        if digests.is_empty() {
            return Ok(HashMap::new());
        }
        let list: Vec<String> = digests.iter().map(ToString::to_string).collect();
        let rows = sqlx::query(
            "SELECT a.manifest_digest, l.id, l.name, l.description, l.color, l.project_id, \
               l.created_at, l.updated_at \
             FROM artifact_labels a JOIN labels l ON l.id = a.label_id \
             WHERE a.repo_id = $1 AND a.manifest_digest IN (SELECT value FROM json_each($2)) \
             ORDER BY l.name, l.id",
        )
        .bind(repo_id)
        .bind(serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()))
        .fetch_all(self.pool())
        .await?;
        let mut out: HashMap<Digest, Vec<Label>> = HashMap::new();
        for row in &rows {
            let digest: Digest = row.try_get::<String, _>("manifest_digest")?.parse()?;
            out.entry(digest).or_default().push(label_from_row(row)?);
        }
        Ok(out)
    }

    /// The names of the labels on an artifact, by repository name (what
    /// replication's label filters test).
    pub async fn artifact_label_names(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Vec<String>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT l.name FROM artifact_labels a JOIN labels l ON l.id = a.label_id \
             JOIN repositories r ON r.id = a.repo_id \
             WHERE r.name = $1 AND a.manifest_digest = $2 ORDER BY l.name",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_all(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn specs_are_checked() {
        assert!(LabelSpec::new("prod", "", "#0065AB").is_ok());
        assert!(LabelSpec::new("prod", "in use", "").is_ok());
        assert!(LabelSpec::new("prod", "", "#abc").is_ok());
        assert!(LabelSpec::new("", "", "").is_err());
        assert!(LabelSpec::new("  ", "", "").is_err());
        assert!(LabelSpec::new(&"x".repeat(129), "", "").is_err());
        assert!(LabelSpec::new(&"x".repeat(128), "", "").is_ok());
        assert!(LabelSpec::new("a\nb", "", "").is_err());
        assert!(LabelSpec::new("a", "nul\0", "").is_err());
        assert!(LabelSpec::new("approved, qa", "", "").is_err());
        assert!(LabelSpec::new(" qa", "", "").is_err());
        assert!(LabelSpec::new("qa ", "", "").is_err());
        assert!(LabelSpec::new("q a", "", "").is_ok());
        assert!(LabelSpec::new("a", &"d".repeat(1025), "").is_err());
        assert!(LabelSpec::new("a", "", "red").is_err());
        assert!(LabelSpec::new("a", "", "#12345").is_err());
        assert!(LabelSpec::new("a", "", "#fff;background:url(x)").is_err());
    }
}
