//! Artifact pages. Which manifests a page shows is read from indexes in
//! listing order (`manifests.parents`, kept exact by triggers, says which
//! are top-level; migration 0012); their sizes, children and tags then
//! take one query each for the whole page. An offset skips index entries,
//! not manifests. What stays in proportion to the repository: a filter on
//! tag names reads the repository's tags (one index entry each), and a
//! page of tagged or untagged artifacts looks up the tags of each manifest
//! it passes (the totals are counted from indexes).

use std::collections::HashMap;

use futures_util::{StreamExt, TryStreamExt};

use serde::Deserialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{
    tag_from_row, ArtifactFilter, ArtifactOrder, ArtifactRow, ChildRef, Platform, TagFilter,
    TagRow, TAG_COLUMNS,
};
use crate::error::StorageError;
use crate::meta::{Backend, Meta};
use crate::oci::Digest;

/// The columns of an artifact row. The config's media type is read from
/// the stored manifest (SQLite keeps it as a BLOB, PostgreSQL as bytea).
fn artifact_columns(backend: Backend) -> String {
    let config_media_type = backend.pick(
        "CASE WHEN json_valid(CAST(m.content AS TEXT)) \
           THEN json_extract(CAST(m.content AS TEXT), '$.config.mediaType') END",
        "json_extract(convert_from(m.content, 'UTF8'), '$.config.mediaType')",
    );
    format!(
        "m.rowid AS id, m.repo_id, m.digest, m.media_type, m.artifact_type, \
         m.annotations, m.created_at, m.pulled_at, {config_media_type} AS config_media_type, \
         CASE WHEN m.media_type IN ('application/vnd.oci.image.index.v1+json', \
           'application/vnd.docker.distribution.manifest.list.v2+json') THEN m.content END AS index_content"
    )
}

/// What `$1` of a listing is.
#[derive(Debug, Clone, Copy)]
enum Key<'a> {
    Repository(i64),
    Project(&'a str),
}

/// Where a listing looks: one repository (its id bound as `$1`) or every
/// repository of a project (its name bound as `$1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Within {
    Repository,
    Project,
}

impl Within {
    /// `column` (a repository id) is one the listing covers.
    fn repos(self, column: &str) -> String {
        match self {
            Within::Repository => format!("{column} = $1"),
            Within::Project => format!(
                "{column} IN (SELECT r.id FROM repositories r WHERE {})",
                super::IN_PROJECT
            ),
        }
    }

    /// For a single repository, `column` pinned to it as well (the join
    /// already ties it to a covered repository; the pin keeps SQLite's
    /// plan to one range of the index).
    fn pin(self, column: &str) -> String {
        match self {
            Within::Repository => format!(" AND {column} = $1"),
            Within::Project => String::new(),
        }
    }
}

impl TagFilter {
    /// The top-level manifests (`m`) the filter lets through, as a FROM
    /// clause, and the value it binds as `$2`. Without a filter on tag
    /// names this is a range of the `manifests_top_level` index (tagged
    /// or not: each manifest's tags looked up as the page is read, so the
    /// first pages are quick and the deepest read the repository); with
    /// one, the matching tags come first and their manifests are looked
    /// up by digest (CROSS JOIN keeps SQLite to that order, rather than
    /// probing the tags for each manifest).
    ///
    /// On PostgreSQL a substring search looks each matching digest up in
    /// a LATERAL subquery: PostgreSQL estimates `instr(...) > 0` to keep a
    /// third of the tags (its default for a function's result), so a
    /// plain join became a hash join with every manifest of the
    /// repository. The `LIMIT 1` (the primary key makes it one row
    /// anyway) keeps the planner from flattening the subquery back into
    /// that join, so each hit costs one primary-key lookup. SQLite has no
    /// LATERAL and needs none: its CROSS JOIN already fixes the order.
    fn source(&self, backend: Backend, within: Within) -> (String, Option<&str>) {
        let top = format!(
            "manifests m WHERE {} AND m.parents = 0",
            within.repos("m.repo_id")
        );
        let tagged = "EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id \
                      AND t.manifest_digest = m.digest)";
        let tags = within.repos("t.repo_id");
        let pin = within.pin("m.repo_id");
        match self {
            TagFilter::Any => (top, None),
            TagFilter::Untagged => (format!("{top} AND NOT {tagged}"), None),
            TagFilter::Tagged => (format!("{top} AND {tagged}"), None),
            TagFilter::Exact(name) => (
                format!(
                    "(SELECT DISTINCT t.repo_id, t.manifest_digest FROM tags t \
                       WHERE {tags} AND t.name = $2) x \
                     CROSS JOIN manifests m \
                     WHERE m.repo_id = x.repo_id{pin} AND m.digest = x.manifest_digest \
                       AND m.parents = 0"
                ),
                Some(name),
            ),
            TagFilter::Contains(part) => (
                match backend {
                    Backend::Sqlite => format!(
                        "(SELECT DISTINCT t.repo_id, t.manifest_digest FROM tags t \
                           WHERE {tags} AND instr(t.name, $2) > 0) x \
                         CROSS JOIN manifests m \
                         WHERE m.repo_id = x.repo_id{pin} AND m.digest = x.manifest_digest \
                           AND m.parents = 0"
                    ),
                    Backend::Postgres => format!(
                        "(SELECT DISTINCT t.repo_id, t.manifest_digest FROM tags t \
                           WHERE {tags} AND instr(t.name, $2) > 0) x \
                         CROSS JOIN LATERAL (SELECT mm.rowid, mm.repo_id, mm.digest, \
                           mm.created_at, mm.pulled_at \
                           FROM manifests mm WHERE mm.repo_id = x.repo_id{} \
                           AND mm.digest = x.manifest_digest AND mm.parents = 0 LIMIT 1) m",
                        within.pin("mm.repo_id")
                    ),
                },
                Some(part),
            ),
        }
    }

    /// The statement that counts what [`TagFilter::source`] lets through,
    /// with the same parameters. In a repository, tagged and untagged
    /// manifests are counted by difference, from indexes, rather than one
    /// by one: the tagged manifests (one entry of `tags_manifest` each)
    /// less the tagged ones an index lists (few, read from
    /// `manifests_below`).
    fn total(&self, backend: Backend, within: Within) -> String {
        let tagged_top_level = "(SELECT count(DISTINCT t.manifest_digest) FROM tags t \
               WHERE t.repo_id = $1) \
             - (SELECT count(*) FROM manifests m WHERE m.repo_id = $1 AND m.parents > 0 \
                AND EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id \
                  AND t.manifest_digest = m.digest))";
        match (self, within) {
            (TagFilter::Tagged, Within::Repository) => format!("SELECT {tagged_top_level}"),
            (TagFilter::Untagged, Within::Repository) => format!(
                "SELECT (SELECT count(*) FROM manifests m WHERE m.repo_id = $1 AND m.parents = 0) \
                 - ({tagged_top_level})"
            ),
            _ => format!("SELECT count(*) FROM {}", self.source(backend, within).0),
        }
    }
}

impl ArtifactFilter {
    /// The FROM clause of the manifests (`m`) the filter lets through, the
    /// value it binds as `$2`, and the statement counting them. Without
    /// labels, the tag filter's. With labels and no tag filter, the first
    /// label's artifacts are read from `artifact_labels_label` and each
    /// further label is a lookup per artifact; with a tag filter too, the
    /// tag filter's artifacts are tested for each label. Label ids are
    /// numbers, written into the statement.
    fn source(&self, backend: Backend, within: Within) -> (String, Option<&str>, String) {
        let (tags, value) = self.tags.source(backend, within);
        let Some((first, rest)) = self.labels.split_first() else {
            return (tags, value, self.tags.total(backend, within));
        };
        let carries = |id: &i64| {
            format!(
                " AND EXISTS (SELECT 1 FROM artifact_labels a WHERE a.repo_id = m.repo_id \
                 AND a.manifest_digest = m.digest AND a.label_id = {id})"
            )
        };
        let source = if self.tags == TagFilter::Any {
            let mut s = format!(
                "(SELECT a.repo_id, a.manifest_digest FROM artifact_labels a \
                   WHERE a.label_id = {first} AND {}) x \
                 CROSS JOIN manifests m \
                 WHERE m.repo_id = x.repo_id{} AND m.digest = x.manifest_digest AND m.parents = 0",
                within.repos("a.repo_id"),
                within.pin("m.repo_id")
            );
            s.extend(rest.iter().map(carries));
            s
        } else {
            let mut s = format!(
                "(SELECT m.rowid AS rowid, m.repo_id, m.digest, m.created_at, m.pulled_at \
                   FROM {tags}) m WHERE 1 = 1"
            );
            s.extend(self.labels.iter().map(carries));
            s
        };
        let total = format!("SELECT count(*) FROM {source}");
        (source, value, total)
    }
}

impl ArtifactOrder {
    /// The ORDER BY of a page, served by `manifests_top_level` (push
    /// time) or `manifests_top_level_pulled` (pull time; migrations
    /// 0014 and 0008). PostgreSQL sorts NULLs high, SQLite low: both are
    /// told where a never-pulled artifact goes, as SQLite has it.
    fn order_by(self, backend: Backend) -> &'static str {
        match self {
            ArtifactOrder::NewestPush => "m.created_at DESC, m.rowid DESC",
            ArtifactOrder::OldestPush => "m.created_at ASC, m.rowid ASC",
            ArtifactOrder::LatestPull => backend.pick(
                "m.pulled_at DESC, m.rowid DESC",
                "m.pulled_at DESC NULLS LAST, m.rowid DESC",
            ),
            ArtifactOrder::EarliestPull => backend.pick(
                "m.pulled_at ASC, m.rowid ASC",
                "m.pulled_at ASC NULLS FIRST, m.rowid ASC",
            ),
        }
    }
}

/// The parts of stored manifest bytes the artifact view shows.
#[derive(Deserialize)]
struct IndexShape {
    #[serde(default)]
    manifests: Vec<IndexEntry>,
}

#[derive(Deserialize)]
struct IndexEntry {
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
}

/// An artifact row without its size, children and tags, and the index
/// bytes to find its children in.
struct Partial {
    row: ArtifactRow,
    index_content: Option<Vec<u8>>,
}

fn partial_from_row(row: &AnyRow) -> Result<Partial, StorageError> {
    let annotations: Option<String> = row.try_get("annotations")?;
    let annotations = annotations
        .and_then(|a| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&a).ok())
        .map(|map| {
            map.into_iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Partial {
        row: ArtifactRow {
            id: row.try_get("id")?,
            repo_id: row.try_get("repo_id")?,
            digest: row.try_get::<String, _>("digest")?.parse()?,
            manifest_media_type: row.try_get("media_type")?,
            config_media_type: row.try_get("config_media_type")?,
            artifact_type: row.try_get("artifact_type")?,
            size: 0,
            pushed_at: row.try_get("created_at")?,
            pulled_at: row.try_get("pulled_at")?,
            annotations,
            children: Vec::new(),
            tags: Vec::new(),
        },
        index_content: row.try_get("index_content")?,
    })
}

/// A JSON array of strings, as `json_each` reads it.
fn json_list<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    serde_json::to_string(&items).unwrap_or_else(|_| "[]".into())
}

// The statements below are not kept prepared (`persistent(false)`):
// PostgreSQL would soon plan them once for any repository, from the
// average repository (a dozen manifests), and hash whole tables for a
// repository of 100,000; planned with the repository and the page's
// digests at hand, each reads only what it needs.
impl Meta {
    /// One page of a repository's top-level artifacts in `order`, with
    /// their tags, and the total.
    pub async fn list_artifacts(
        &self,
        repo_id: i64,
        filter: &ArtifactFilter,
        order: ArtifactOrder,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<ArtifactRow>, i64), StorageError> {
        let (partials, total) = self
            .artifact_page(Key::Repository(repo_id), filter, order, offset, limit)
            .await?;
        Ok((self.complete(repo_id, partials).await?, total))
    }

    /// One page of the top-level artifacts of every repository of the
    /// project named `project`, in `order`, with their tags, and the
    /// total. Each row's `repo_id` says which repository it is in.
    pub async fn list_project_artifacts(
        &self,
        project: &str,
        filter: &ArtifactFilter,
        order: ArtifactOrder,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<ArtifactRow>, i64), StorageError> {
        let (partials, total) = self
            .artifact_page(Key::Project(project), filter, order, offset, limit)
            .await?;
        // Completed a repository at a time (one query each for sizes,
        // children and tags), four repositories at once, then put back in
        // the page's order.
        let mut by_repo: Vec<(i64, Vec<Partial>)> = Vec::new();
        let mut order_of = Vec::with_capacity(partials.len());
        for p in partials {
            order_of.push((p.row.repo_id, p.row.digest.clone()));
            match by_repo.iter_mut().find(|(id, _)| *id == p.row.repo_id) {
                Some((_, group)) => group.push(p),
                None => by_repo.push((p.row.repo_id, vec![p])),
            }
        }
        let completed: Vec<Vec<ArtifactRow>> = futures_util::stream::iter(
            by_repo
                .into_iter()
                .map(|(repo_id, group)| self.complete(repo_id, group)),
        )
        .buffer_unordered(4)
        .try_collect()
        .await?;
        let mut done: HashMap<(i64, Digest), ArtifactRow> = HashMap::new();
        for row in completed.into_iter().flatten() {
            done.insert((row.repo_id, row.digest.clone()), row);
        }
        let rows = order_of
            .into_iter()
            .filter_map(|key| done.remove(&key))
            .collect();
        Ok((rows, total))
    }

    /// A page of artifact rows without sizes, children and tags, and the
    /// total.
    async fn artifact_page(
        &self,
        key: Key<'_>,
        filter: &ArtifactFilter,
        order: ArtifactOrder,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Partial>, i64), StorageError> {
        let within = match key {
            Key::Repository(_) => Within::Repository,
            Key::Project(_) => Within::Project,
        };
        let (source, value, total_sql) = filter.source(self.backend(), within);
        let count = sqlx::query_scalar(&total_sql).persistent(false);
        let mut count = match key {
            Key::Repository(id) => count.bind(id),
            Key::Project(name) => count.bind(name),
        };
        if let Some(value) = value {
            count = count.bind(value);
        }
        let total: i64 = count.fetch_one(self.pool()).await?;
        // The page's row ids first, from the index alone, then only
        // those rows: an offset skips index entries, not manifests.
        let next = if value.is_some() { 3 } else { 2 };
        let columns = artifact_columns(self.backend());
        let order = order.order_by(self.backend());
        let sql = format!(
            "SELECT {columns} FROM manifests m WHERE m.rowid IN \
               (SELECT m.rowid FROM {source} ORDER BY {order} \
                LIMIT ${next} OFFSET ${}) \
             ORDER BY {order}",
            next + 1
        );
        let page = sqlx::query(&sql).persistent(false);
        let mut page = match key {
            Key::Repository(id) => page.bind(id),
            Key::Project(name) => page.bind(name),
        };
        if let Some(value) = value {
            page = page.bind(value);
        }
        let rows = page.bind(limit).bind(offset).fetch_all(self.pool()).await?;
        let partials = rows
            .iter()
            .map(partial_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((partials, total))
    }

    /// One artifact by digest (top-level or not).
    pub async fn artifact(
        &self,
        repo_id: i64,
        digest: &Digest,
    ) -> Result<Option<ArtifactRow>, StorageError> {
        let columns = artifact_columns(self.backend());
        let row = sqlx::query(&format!(
            "SELECT {columns} FROM manifests m WHERE m.repo_id = $1 AND m.digest = $2"
        ))
        .bind(repo_id)
        .bind(digest.to_string())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let partial = partial_from_row(&row)?;
        Ok(self.complete(repo_id, vec![partial]).await?.pop())
    }

    /// Adds sizes, children and tags to artifact rows: one query for
    /// each, whatever the number of rows.
    async fn complete(
        &self,
        repo_id: i64,
        partials: Vec<Partial>,
    ) -> Result<Vec<ArtifactRow>, StorageError> {
        if partials.is_empty() {
            return Ok(Vec::new());
        }
        let digests: Vec<String> = partials.iter().map(|p| p.row.digest.to_string()).collect();
        let mut tags: HashMap<String, Vec<TagRow>> = HashMap::new();
        let rows = sqlx::query(&format!(
            "SELECT {TAG_COLUMNS} FROM tags t JOIN manifests m \
               ON m.repo_id = t.repo_id AND m.digest = t.manifest_digest \
             WHERE t.repo_id = $1 AND t.manifest_digest IN (SELECT value FROM json_each($2)) \
             ORDER BY t.updated_at DESC, t.name"
        ))
        .persistent(false)
        .bind(repo_id)
        .bind(json_list(&digests))
        .fetch_all(self.pool())
        .await?;
        for row in &rows {
            let digest: String = row.try_get("manifest_digest")?;
            tags.entry(digest).or_default().push(tag_from_row(row)?);
        }
        let mut sizes = self.artifact_sizes(repo_id, &digests).await?;
        // Stored manifests were validated at push; an unreadable index
        // shows no children rather than failing the listing.
        let shapes: Vec<Option<IndexShape>> = partials
            .iter()
            .map(|p| {
                p.index_content
                    .as_deref()
                    .and_then(|c| serde_json::from_slice::<IndexShape>(c).ok())
            })
            .collect();
        let children: Vec<&str> = shapes
            .iter()
            .flatten()
            .flat_map(|s| s.manifests.iter().map(|e| e.digest.as_str()))
            .collect();
        let ids = self.manifest_ids(repo_id, &children).await?;
        let mut out = Vec::with_capacity(partials.len());
        for (Partial { mut row, .. }, shape) in partials.into_iter().zip(shapes) {
            let digest = row.digest.to_string();
            row.size = sizes.remove(&digest).unwrap_or(0);
            row.tags = tags.remove(&digest).unwrap_or_default();
            if let Some(shape) = shape {
                row.children = shape
                    .manifests
                    .into_iter()
                    .filter_map(|e| {
                        let digest = e.digest.parse().ok()?;
                        Some(ChildRef {
                            id: ids.get(&e.digest).copied(),
                            digest,
                            platform: e.platform,
                        })
                    })
                    .collect();
            }
            out.push(row);
        }
        Ok(out)
    }

    /// Each manifest's size with everything it references: itself, the
    /// manifests below it (an index's children) and the blobs they all
    /// reference, each blob once. CROSS JOIN keeps SQLite walking from
    /// the page's digests (it would otherwise read every reference of the
    /// repository and probe the tree with each), and the blobs' `CASE`
    /// keeps `is_manifest` out of the lookup's terms: with it there,
    /// SQLite builds an automatic index over every blob reference of the
    /// database for each call, since the primary key does not cover it.
    async fn artifact_sizes(
        &self,
        repo_id: i64,
        digests: &[String],
    ) -> Result<HashMap<String, i64>, StorageError> {
        let rows = sqlx::query(
            "WITH RECURSIVE tree(root, digest) AS ( \
               SELECT value, value FROM json_each($2) \
               UNION \
               SELECT tree.root, r.child_digest FROM tree CROSS JOIN manifest_refs r \
               WHERE r.repo_id = $1 AND r.manifest_digest = tree.digest AND r.is_manifest = 1) \
             SELECT root, CAST(sum(size) AS BIGINT) AS size FROM ( \
               SELECT tree.root, m.size FROM tree CROSS JOIN manifests m \
               WHERE m.repo_id = $1 AND m.digest = tree.digest \
               UNION ALL \
               SELECT used.root, b.size FROM \
                 (SELECT DISTINCT tree.root, \
                    CASE WHEN r.is_manifest = 0 THEN r.child_digest END AS blob \
                  FROM tree CROSS JOIN manifest_refs r \
                  WHERE r.repo_id = $1 AND r.manifest_digest = tree.digest) used \
                 CROSS JOIN blobs b WHERE b.digest = used.blob) sizes \
             GROUP BY root",
        )
        .persistent(false)
        .bind(repo_id)
        .bind(json_list(digests))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("root")?, row.try_get("size")?)))
            .collect()
    }

    /// The row ids of those of `digests` stored in the repository.
    async fn manifest_ids(
        &self,
        repo_id: i64,
        digests: &[&str],
    ) -> Result<HashMap<String, i64>, StorageError> {
        if digests.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query(
            "SELECT digest, rowid AS id FROM manifests WHERE repo_id = $1 \
             AND digest IN (SELECT value FROM json_each($2))",
        )
        .persistent(false)
        .bind(repo_id)
        .bind(json_list(digests))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("digest")?, row.try_get("id")?)))
            .collect()
    }
}
