//! Repositories, artifacts and tags as the management API shows them
//! (Harbor's repository, artifact and tag views over the registry's
//! tables), and the changes it makes to them: deleting a repository or an
//! artifact, adding and removing tags.
//!
//! An artifact is a manifest. The top-level artifacts of a repository are
//! the manifests that no index in it lists as a child: an index's
//! per-platform images appear as its references, not on their own.
//! Deletions remove metadata only; blob bytes stay until garbage
//! collection.

use std::collections::BTreeSet;

use serde::Deserialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::error::StorageError;
use crate::meta::Backend;
use crate::meta::{now, Meta};
use crate::oci::manifest::{DOCKER_MANIFEST_LIST, OCI_INDEX};
use crate::oci::{Digest, RepoName, Tag};

/// A repository with the counts the API reports.
#[derive(Debug, Clone, PartialEq)]
pub struct RepositoryRow {
    pub id: i64,
    pub name: RepoName,
    /// Top-level artifacts.
    pub artifact_count: i64,
    pub pull_count: i64,
    pub created_at: i64,
    /// The latest of its creation, its last push and its last tag change.
    pub updated_at: i64,
}

/// Filters of a repository listing (Harbor's `q=name=...`, on full names).
#[derive(Debug, Clone, Default)]
pub struct RepositoryFilter {
    pub exact_name: Option<String>,
    pub name_contains: Option<String>,
}

/// A repository found by a search, with its project.
#[derive(Debug, Clone, PartialEq)]
pub struct RepositoryHit {
    pub repository: RepositoryRow,
    pub project_id: i64,
    pub project_name: String,
    pub project_public: bool,
}

/// A manifest as an artifact.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactRow {
    /// Stable for the manifest's lifetime (its row id).
    pub id: i64,
    pub repo_id: i64,
    pub digest: Digest,
    pub manifest_media_type: String,
    /// The config's media type (image manifests).
    pub config_media_type: Option<String>,
    /// `artifactType`, or the config's media type, as recorded at push.
    pub artifact_type: Option<String>,
    /// The manifest, the blobs it references and, for an index, its
    /// children with theirs; each blob counted once.
    pub size: i64,
    pub pushed_at: i64,
    /// `None`: never pulled.
    pub pulled_at: Option<i64>,
    pub annotations: Vec<(String, String)>,
    /// The manifests an index lists, in its order.
    pub children: Vec<ChildRef>,
    pub tags: Vec<TagRow>,
}

impl ArtifactRow {
    pub fn is_index(&self) -> bool {
        matches!(
            self.manifest_media_type.as_str(),
            OCI_INDEX | DOCKER_MANIFEST_LIST
        )
    }
}

/// A child manifest of an index.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildRef {
    /// `None` if the child is not stored in the repository.
    pub id: Option<i64>,
    pub digest: Digest,
    pub platform: Option<Platform>,
}

/// An index entry's `platform`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, rename = "os.version")]
    pub os_version: Option<String>,
    #[serde(default, rename = "os.features")]
    pub os_features: Option<Vec<String>>,
    #[serde(default)]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TagRow {
    pub id: i64,
    pub repo_id: i64,
    pub artifact_id: i64,
    pub name: Tag,
    /// When the tag was last set.
    pub pushed_at: i64,
    /// When its artifact was last pulled.
    pub pulled_at: Option<i64>,
}

/// Which artifacts a listing shows, by their tags (Harbor's `q=tags=...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TagFilter {
    #[default]
    Any,
    /// `tags=*`
    Tagged,
    /// `tags=nil`
    Untagged,
    /// `tags=v1`
    Exact(String),
    /// `tags=~v`
    Contains(String),
}

/// Which artifacts a listing shows: by their tags, and carrying every one
/// of `labels` (label ids; Harbor's `q=labels=(1 2)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArtifactFilter {
    pub tags: TagFilter,
    pub labels: Vec<i64>,
}

impl From<TagFilter> for ArtifactFilter {
    fn from(tags: TagFilter) -> ArtifactFilter {
        ArtifactFilter {
            tags,
            labels: Vec::new(),
        }
    }
}

/// The order of an artifact listing, as Harbor's `sort` names it
/// (`-push_time`, the default, is newest push first). Never-pulled
/// artifacts come last by latest pull, first by earliest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ArtifactOrder {
    #[default]
    NewestPush,
    OldestPush,
    LatestPull,
    EarliestPull,
}

impl ArtifactOrder {
    const NAMES: [(&'static str, ArtifactOrder); 4] = [
        ("-push_time", ArtifactOrder::NewestPush),
        ("push_time", ArtifactOrder::OldestPush),
        ("-pull_time", ArtifactOrder::LatestPull),
        ("pull_time", ArtifactOrder::EarliestPull),
    ];

    /// Harbor's `sort` value; `None` for one berth does not sort by. An
    /// artifact's `creation_time` is its push time (Harbor's clients sort
    /// by either).
    pub fn parse(sort: &str) -> Option<ArtifactOrder> {
        let sort = match sort.trim() {
            "creation_time" => "push_time",
            "-creation_time" => "-push_time",
            other => other,
        };
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == sort)
            .map(|(_, o)| *o)
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, o)| *o == self)
            .map_or("-push_time", |(n, _)| n)
    }

    /// The values `parse` takes, for error messages.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Self::NAMES.iter().map(|(n, _)| *n)
    }
}

/// What deleting an artifact did.
#[derive(Debug, Clone, PartialEq)]
pub enum ArtifactDeletion {
    /// The artifact, and the children of an index that nothing else uses
    /// (untagged, in no other index), with the tags that pointed at them.
    Deleted {
        manifests: Vec<Digest>,
        tags: Vec<Tag>,
    },
    /// An index lists it: delete the index instead.
    Referenced {
        by: Digest,
    },
    NotFound,
}

/// What adding a tag did.
#[derive(Debug, Clone, PartialEq)]
pub enum TagAddition {
    Added {
        id: i64,
    },
    /// The repository already has this tag, on this artifact.
    Exists {
        on: Digest,
    },
    /// The artifact is gone.
    NoArtifact,
}

/// A repository row; `updated_at` is its last push, tagging or change.
/// Each figure is read from an index: the last push is the later of the
/// last top-level one and the last other one (`manifests_top_level` and
/// `manifests_below`), and the artifacts are the entries of the first.
fn repository_columns(backend: Backend) -> String {
    let latest = backend.pick("max", "GREATEST");
    format!(
        "r.id, r.name, r.pull_count, r.created_at, \
         {latest}(r.created_at, r.updated_at, \
           coalesce((SELECT max(m.created_at) FROM manifests m WHERE m.repo_id = r.id AND m.parents = 0), 0), \
           coalesce((SELECT max(m.created_at) FROM manifests m WHERE m.repo_id = r.id AND m.parents > 0), 0), \
           coalesce((SELECT max(t.updated_at) FROM tags t WHERE t.repo_id = r.id), 0)) AS updated_at, \
         (SELECT count(*) FROM manifests m WHERE m.repo_id = r.id AND m.parents = 0) AS artifact_count"
    )
}

/// Repositories of the project bound as `$1`: `team` and `team/...`.
/// A range of the names' index: `team/` up to `team0` (`'0'` follows
/// `'/'`), names compared byte by byte.
const IN_PROJECT: &str = "(r.name = $1 OR (r.name >= $1 || '/' AND r.name < $1 || '0'))";

fn repository_from_row(row: &AnyRow) -> Result<RepositoryRow, StorageError> {
    Ok(RepositoryRow {
        id: row.try_get("id")?,
        name: row.try_get::<String, _>("name")?.parse()?,
        artifact_count: row.try_get("artifact_count")?,
        pull_count: row.try_get("pull_count")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn tag_from_row(row: &AnyRow) -> Result<TagRow, StorageError> {
    Ok(TagRow {
        id: row.try_get("id")?,
        repo_id: row.try_get("repo_id")?,
        artifact_id: row.try_get("artifact_id")?,
        name: row.try_get::<String, _>("name")?.parse()?,
        pushed_at: row.try_get("updated_at")?,
        pulled_at: row.try_get("pulled_at")?,
    })
}

const TAG_COLUMNS: &str = "t.rowid AS id, t.repo_id, t.name, t.manifest_digest, t.updated_at, \
     m.rowid AS artifact_id, m.pulled_at";

impl Meta {
    /// A trivial query: whether the database answers.
    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(self.pool())
            .await?;
        Ok(())
    }

    // ---- repositories ----

    /// One page of a project's repositories, by name, and the total.
    pub async fn list_repositories(
        &self,
        project: &str,
        filter: &RepositoryFilter,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<RepositoryRow>, i64), StorageError> {
        let conditions =
            format!("{IN_PROJECT} AND ($2 IS NULL OR r.name = $2) AND ($3 IS NULL OR instr(r.name, $3) > 0)");
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM repositories r WHERE {conditions}"
        ))
        .bind(project)
        .bind(&filter.exact_name)
        .bind(&filter.name_contains)
        .fetch_one(self.pool())
        .await?;
        let rows = sqlx::query(&format!(
            "SELECT {} FROM repositories r WHERE {conditions} ORDER BY r.name LIMIT $4 OFFSET $5",
            repository_columns(self.backend())
        ))
        .bind(project)
        .bind(&filter.exact_name)
        .bind(&filter.name_contains)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let rows = rows
            .iter()
            .map(repository_from_row)
            .collect::<Result<_, _>>()?;
        Ok((rows, total))
    }

    /// A repository's id, without the figures of [`Meta::repository`]:
    /// for the artifact views, which count what they list themselves
    /// (the artifact count alone reads one index entry per artifact).
    pub async fn repository_id(&self, name: &RepoName) -> Result<Option<i64>, StorageError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
                .bind(name.as_str())
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// The names of the repositories with these ids (those that exist).
    pub async fn repository_names(
        &self,
        ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, RepoName>, StorageError> {
        if ids.is_empty() {
            return Ok(std::collections::HashMap::new());
        }
        let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        let rows = sqlx::query(
            "SELECT id, name FROM repositories \
             WHERE id IN (SELECT CAST(value AS BIGINT) FROM json_each($1))",
        )
        .bind(list)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("id")?,
                    row.try_get::<String, _>("name")?.parse()?,
                ))
            })
            .collect()
    }

    pub async fn repository(&self, name: &RepoName) -> Result<Option<RepositoryRow>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {} FROM repositories r WHERE r.name = $1",
            repository_columns(self.backend())
        ))
        .bind(name.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(repository_from_row).transpose()
    }

    /// Repositories whose name contains `needle`, by name after `after`,
    /// at most `limit`, with their projects. Callers filter by who may see
    /// them.
    pub async fn search_repositories(
        &self,
        needle: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<RepositoryHit>, StorageError> {
        let rows = sqlx::query(&format!(
            "SELECT {}, p.id AS project_id, p.name AS project_name, p.public AS project_public \
             FROM repositories r JOIN projects p ON p.name = CASE WHEN instr(r.name, '/') > 0 \
               THEN substr(r.name, 1, instr(r.name, '/') - 1) ELSE r.name END \
             WHERE instr(r.name, $1) > 0 AND r.name > $2 ORDER BY r.name LIMIT $3",
            repository_columns(self.backend())
        ))
        .bind(needle)
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RepositoryHit {
                    repository: repository_from_row(row)?,
                    project_id: row.try_get("project_id")?,
                    project_name: row.try_get("project_name")?,
                    project_public: crate::meta::flag(row, "project_public")?,
                })
            })
            .collect()
    }

    /// Deletes a repository with its manifests, tags, blob links and
    /// upload sessions, in one transaction. Blob bytes stay until garbage
    /// collection; so do the bytes of cancelled uploads. False when there
    /// is no such repository.
    pub async fn delete_repository(&self, name: &RepoName) -> Result<bool, StorageError> {
        let mut tx = self.write().await?;
        let Some(id): Option<i64> =
            sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
                .bind(name.as_str())
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(false);
        };
        crate::immutable::guard_repository(&mut tx, id).await?;
        // Tags reference manifests, and references hang off manifests:
        // clear them in that order before the repository itself.
        for table in [
            "tags",
            "manifest_refs",
            "manifests",
            "uploads",
            "repo_blobs",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE repo_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM repositories WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    // ---- artifacts ----

    /// Whether the repository has this manifest.
    pub async fn has_artifact(&self, repo_id: i64, digest: &Digest) -> Result<bool, StorageError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM manifests WHERE repo_id = $1 AND digest = $2")
                .bind(repo_id)
                .bind(digest.to_string())
                .fetch_optional(self.pool())
                .await?;
        Ok(found.is_some())
    }

    /// The digest a tag points at.
    pub async fn tagged_digest(
        &self,
        repo_id: i64,
        tag: &Tag,
    ) -> Result<Option<Digest>, StorageError> {
        let digest: Option<String> =
            sqlx::query_scalar("SELECT manifest_digest FROM tags WHERE repo_id = $1 AND name = $2")
                .bind(repo_id)
                .bind(tag.as_str())
                .fetch_optional(self.pool())
                .await?;
        digest.map(|d| d.parse()).transpose()
    }

    /// Deletes an artifact and its tags in one transaction. An index takes
    /// along the children nothing else uses (untagged, listed by no other
    /// index), as Harbor does. An artifact an index lists is refused.
    pub async fn delete_artifact(
        &self,
        repo_id: i64,
        digest: &Digest,
    ) -> Result<ArtifactDeletion, StorageError> {
        let mut tx = self.write().await?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM manifests WHERE repo_id = $1 AND digest = $2")
                .bind(repo_id)
                .bind(digest.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Ok(ArtifactDeletion::NotFound);
        }
        if let Some(parent) = parent_index(&mut tx, repo_id, &digest.to_string(), &[]).await? {
            return Ok(ArtifactDeletion::Referenced {
                by: parent.parse()?,
            });
        }
        // Breadth first through the index tree: a child goes too when it
        // has no tags and every index listing it is going.
        let mut doomed: Vec<String> = vec![digest.to_string()];
        let mut next = 0;
        while next < doomed.len() {
            let children: Vec<String> = sqlx::query_scalar(
                "SELECT child_digest FROM manifest_refs WHERE repo_id = $1 AND manifest_digest = $2 \
                 AND is_manifest = 1 AND child_digest IN (SELECT digest FROM manifests WHERE repo_id = $1)",
            )
            .bind(repo_id)
            .bind(&doomed[next])
            .fetch_all(&mut *tx)
            .await?;
            next += 1;
            for child in children {
                if doomed.contains(&child) {
                    continue;
                }
                let tagged: Option<i64> = sqlx::query_scalar(
                    "SELECT 1 FROM tags WHERE repo_id = $1 AND manifest_digest = $2 LIMIT 1",
                )
                .bind(repo_id)
                .bind(&child)
                .fetch_optional(&mut *tx)
                .await?;
                if tagged.is_none()
                    && parent_index(&mut tx, repo_id, &child, &doomed)
                        .await?
                        .is_none()
                {
                    doomed.push(child);
                }
            }
        }
        crate::immutable::guard_manifests(&mut tx, repo_id, &doomed).await?;
        let doomed_json = serde_json::to_string(&doomed).unwrap_or_else(|_| "[]".into());
        let tags: Vec<String> = sqlx::query_scalar(
            "DELETE FROM tags WHERE repo_id = $1 AND manifest_digest IN (SELECT value FROM json_each($2)) \
             RETURNING name",
        )
        .bind(repo_id)
        .bind(&doomed_json)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM manifests WHERE repo_id = $1 AND digest IN (SELECT value FROM json_each($2))",
        )
        .bind(repo_id)
        .bind(&doomed_json)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut tags = tags
            .into_iter()
            .map(|t| t.parse())
            .collect::<Result<Vec<Tag>, _>>()?;
        tags.sort();
        Ok(ArtifactDeletion::Deleted {
            manifests: doomed.iter().map(|d| d.parse()).collect::<Result<_, _>>()?,
            tags,
        })
    }

    // ---- tags ----

    /// One page of an artifact's tags (newest first), optionally filtered
    /// by name, and the total.
    pub async fn list_artifact_tags(
        &self,
        repo_id: i64,
        digest: &Digest,
        exact: Option<&str>,
        contains: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<TagRow>, i64), StorageError> {
        let conditions =
            "t.repo_id = $1 AND t.manifest_digest = $2 AND ($3 IS NULL OR t.name = $3) \
             AND ($4 IS NULL OR instr(t.name, $4) > 0)";
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM tags t WHERE {conditions}"))
                .bind(repo_id)
                .bind(digest.to_string())
                .bind(exact)
                .bind(contains)
                .fetch_one(self.pool())
                .await?;
        let rows = sqlx::query(&format!(
            "SELECT {TAG_COLUMNS} FROM tags t JOIN manifests m \
               ON m.repo_id = t.repo_id AND m.digest = t.manifest_digest \
             WHERE {conditions} ORDER BY t.updated_at DESC, t.name LIMIT $5 OFFSET $6"
        ))
        .bind(repo_id)
        .bind(digest.to_string())
        .bind(exact)
        .bind(contains)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let rows = rows.iter().map(tag_from_row).collect::<Result<_, _>>()?;
        Ok((rows, total))
    }

    /// Tags an artifact. A tag the repository already has is not moved.
    pub async fn add_tag(
        &self,
        repo_id: i64,
        digest: &Digest,
        tag: &Tag,
    ) -> Result<TagAddition, StorageError> {
        let mut tx = self.write().await?;
        let existing: Option<String> =
            sqlx::query_scalar("SELECT manifest_digest FROM tags WHERE repo_id = $1 AND name = $2")
                .bind(repo_id)
                .bind(tag.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(on) = existing {
            return Ok(TagAddition::Exists { on: on.parse()? });
        }
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO tags (repo_id, name, manifest_digest, updated_at) \
             SELECT $1, $2, $3, $4 WHERE EXISTS \
               (SELECT 1 FROM manifests WHERE repo_id = $1 AND digest = $3) \
             RETURNING rowid",
        )
        .bind(repo_id)
        .bind(tag.as_str())
        .bind(digest.to_string())
        .bind(now())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(match id {
            Some(id) => TagAddition::Added { id },
            None => TagAddition::NoArtifact,
        })
    }

    /// Removes a tag if it points at this artifact.
    pub async fn remove_artifact_tag(
        &self,
        repo_id: i64,
        digest: &Digest,
        tag: &Tag,
    ) -> Result<bool, StorageError> {
        let mut tx = self.write().await?;
        crate::immutable::guard_tag(&mut tx, repo_id, tag.as_str()).await?;
        let done = sqlx::query(
            "DELETE FROM tags WHERE repo_id = $1 AND manifest_digest = $2 AND name = $3",
        )
        .bind(repo_id)
        .bind(digest.to_string())
        .bind(tag.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}

/// An index (not among `except`) that lists `digest`.
async fn parent_index(
    tx: &mut Transaction<'_, Any>,
    repo_id: i64,
    digest: &str,
    except: &[String],
) -> Result<Option<String>, StorageError> {
    let except: BTreeSet<&str> = except.iter().map(String::as_str).collect();
    let parents: Vec<String> = sqlx::query_scalar(
        "SELECT manifest_digest FROM manifest_refs WHERE repo_id = $1 AND child_digest = $2 \
         AND is_manifest = 1 ORDER BY manifest_digest",
    )
    .bind(repo_id)
    .bind(digest)
    .fetch_all(&mut **tx)
    .await?;
    Ok(parents.into_iter().find(|p| !except.contains(p.as_str())))
}

mod listing;
#[cfg(test)]
mod tests;
