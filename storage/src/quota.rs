//! Per-project storage quotas (Harbor's `/quotas`).
//!
//! **Usage** of a project is the sum of the sizes of the distinct digests
//! stored in it: every blob linked into any of its repositories
//! (`repo_blobs`) and every manifest of its repositories (`manifests`),
//! each digest counted once however many repositories of the project hold
//! it. A layer shared by `team/a` and `team/b` counts once in `team`, and
//! again in another project that holds it.
//!
//! So usage grows when a blob upload (or mount) links a new blob, and when
//! a manifest lands; it shrinks when a manifest, a blob link or a whole
//! repository is deleted. Deleting an artifact removes its manifest at
//! once, but its layers stay linked until garbage collection unlinks the
//! blobs nothing references: as in Harbor, deleted images free their
//! bytes (and quota) when GC runs.
//!
//! Usage is kept in `quotas.used_storage` by SQL triggers on those two
//! tables (migration `0006_quotas.sql`), so it changes in the transaction
//! of every insert or delete, whichever code runs it (pushes, API deletes,
//! garbage collection). [`usage`] computes the same number from the
//! definition; the tests hold the two equal. A push is checked against
//! the limit ([`check_growth`]) inside the same transaction as the write
//! it guards, which holds its project's write lock (SQLite's one writer;
//! on PostgreSQL the project's advisory lock, see `locks`), so two
//! concurrent pushes cannot both see room for their last layer.

use sqlx::{AnyConnection, Row};

use crate::error::StorageError;
use crate::meta::{now, Meta};

/// A quota as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaRow {
    pub id: i64,
    pub project_id: i64,
    pub project_name: String,
    pub owner_name: Option<String>,
    /// `None`: unlimited.
    pub hard: Option<u64>,
    pub used: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What exceeding a quota looked like, for the error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    pub project: String,
    pub used: u64,
    pub limit: u64,
    pub needed: u64,
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "project `{}` would exceed its storage quota: {} used of {}, this push needs {} more; \
             delete artifacts and run garbage collection, or ask an administrator to raise the quota",
            self.project,
            human(self.used),
            human(self.limit),
            human(self.needed)
        )
    }
}

/// Bytes in binary units with one decimal (`9.5 MiB`, `10 MiB`, `812 B`).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} {}", UNITS[unit])
}

/// Repositories of the project bound as `$1`: `team` and `team/...`. The
/// range form uses the index on `repositories.name` ('0' follows '/').
const PROJECT_REPOS: &str =
    "SELECT id FROM repositories WHERE name = $1 OR (name >= $1 || '/' AND name < $1 || '0')";

/// The project's usage by the definition above, on any connection (inside
/// a transaction: as that transaction sees it).
pub(crate) async fn usage(conn: &mut AnyConnection, project: &str) -> Result<u64, StorageError> {
    let used: i64 = sqlx::query_scalar(&format!(
        "SELECT CAST(coalesce(sum(size), 0) AS BIGINT) FROM ( \
           SELECT b.digest, b.size FROM repo_blobs rb JOIN blobs b ON b.digest = rb.digest \
             WHERE rb.repo_id IN ({PROJECT_REPOS}) \
           UNION \
           SELECT m.digest, m.size FROM manifests m WHERE m.repo_id IN ({PROJECT_REPOS})) AS held"
    ))
    .bind(project)
    .fetch_one(conn)
    .await?;
    Ok(used.max(0) as u64)
}

/// Refuses a write that would add `digest` (of `size` bytes) to the
/// project of repository `repo_id` past its limit. Call inside the write's
/// transaction, before the write: a digest the project already holds adds
/// nothing.
pub(crate) async fn check_growth(
    conn: &mut AnyConnection,
    repo_id: i64,
    digest: &str,
    size: u64,
) -> Result<(), StorageError> {
    let row = sqlx::query(
        "SELECT p.name, q.hard_storage, q.used_storage FROM repositories r \
         JOIN projects p ON p.name = CASE WHEN instr(r.name, '/') > 0 \
           THEN substr(r.name, 1, instr(r.name, '/') - 1) ELSE r.name END \
         JOIN quotas q ON q.project_id = p.id WHERE r.id = $1",
    )
    .bind(repo_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(());
    };
    let project: String = row.try_get("name")?;
    let hard: i64 = row.try_get("hard_storage")?;
    if hard < 0 {
        return Ok(());
    }
    let held: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT 1 FROM repo_blobs WHERE digest = $2 AND repo_id IN ({PROJECT_REPOS}) \
         UNION ALL SELECT 1 FROM manifests WHERE digest = $2 AND repo_id IN ({PROJECT_REPOS}) LIMIT 1"
    ))
    .bind(&project)
    .bind(digest)
    .fetch_optional(&mut *conn)
    .await?;
    if held.is_some() {
        return Ok(());
    }
    let used = u64::try_from(row.try_get::<i64, _>("used_storage")?).unwrap_or(0);
    let limit = hard as u64;
    if used.saturating_add(size) > limit {
        return Err(StorageError::QuotaExceeded(Exceeded {
            project,
            used,
            limit,
            needed: size,
        }));
    }
    Ok(())
}

const QUOTA_COLUMNS: &str =
    "q.id, q.project_id, q.hard_storage, q.used_storage, q.created_at, q.updated_at, \
     p.name AS project_name, (SELECT username FROM users u WHERE u.id = p.owner_id) AS owner_name";

impl Meta {
    /// Quotas of the given projects (all when `None`), by project name.
    pub async fn list_quotas(
        &self,
        project_ids: Option<&[i64]>,
    ) -> Result<Vec<QuotaRow>, StorageError> {
        let ids = project_ids.map(|ids| serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()));
        let rows = sqlx::query(&format!(
            "SELECT {QUOTA_COLUMNS} FROM quotas q JOIN projects p ON p.id = q.project_id \
             WHERE $1 IS NULL OR q.project_id IN (SELECT CAST(value AS BIGINT) FROM json_each($1)) ORDER BY p.name"
        ))
        .bind(ids)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(quota_from_row).collect()
    }

    pub async fn quota(&self, id: i64) -> Result<Option<QuotaRow>, StorageError> {
        let row = sqlx::query(&format!(
            "SELECT {QUOTA_COLUMNS} FROM quotas q JOIN projects p ON p.id = q.project_id WHERE q.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(quota_from_row).transpose()
    }

    /// Sets a quota's limit (`None`: unlimited). A limit below the current
    /// usage is accepted, as in Harbor: it only stops further growth.
    pub async fn set_quota(&self, id: i64, hard: Option<u64>) -> Result<bool, StorageError> {
        let done =
            sqlx::query("UPDATE quotas SET hard_storage = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(hard.map_or(-1, |h| h.min(i64::MAX as u64) as i64))
                .bind(now())
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// A project's stored usage and limit (`None`: unlimited), by
    /// project id; `None` when it has no quota row.
    pub async fn project_quota(
        &self,
        project_id: i64,
    ) -> Result<Option<(u64, Option<u64>)>, StorageError> {
        let row =
            sqlx::query("SELECT used_storage, hard_storage FROM quotas WHERE project_id = $1")
                .bind(project_id)
                .fetch_optional(self.pool())
                .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let used: i64 = row.try_get("used_storage")?;
        let hard: i64 = row.try_get("hard_storage")?;
        Ok(Some((used.max(0) as u64, u64::try_from(hard).ok())))
    }

    /// A project's usage computed from the definition above (the counter
    /// the quota shows must always equal it).
    pub async fn project_usage(&self, project: &str) -> Result<u64, StorageError> {
        let mut conn = self.pool().acquire().await?;
        usage(&mut conn, project).await
    }
}

fn quota_from_row(row: &sqlx::any::AnyRow) -> Result<QuotaRow, StorageError> {
    let hard: i64 = row.try_get("hard_storage")?;
    let used: i64 = row.try_get("used_storage")?;
    Ok(QuotaRow {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        project_name: row.try_get("project_name")?,
        owner_name: row.try_get("owner_name")?,
        hard: u64::try_from(hard).ok(),
        used: u64::try_from(used).unwrap_or(0),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Sets the limit of a just-created project inside its creating
/// transaction (the trigger made the row unlimited).
pub(crate) async fn set_project_limit(
    conn: &mut AnyConnection,
    project_id: i64,
    hard: Option<u64>,
) -> Result<(), StorageError> {
    sqlx::query("UPDATE quotas SET hard_storage = $2 WHERE project_id = $1")
        .bind(project_id)
        .bind(hard.map_or(-1, |h| h.min(i64::MAX as u64) as i64))
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::oci::{manifest, Algorithm, Digest, RepoName};

    /// A fresh database on each backend: SQLite, and PostgreSQL (a real
    /// server, started once for the test process), whose quota triggers
    /// are written differently and must count the same.
    async fn backends() -> Vec<(Option<tempfile::TempDir>, Meta)> {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Meta::connect(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        let name = format!("quota_{}", uuid::Uuid::new_v4().simple());
        let url = berth_tests::postgres::shared().create_database(&name);
        let postgres = Meta::connect(&url).await.unwrap();
        vec![(Some(dir), sqlite), (None, postgres)]
    }

    fn digest(data: &[u8]) -> Digest {
        Digest::compute(Algorithm::Sha256, data)
    }

    async fn quota_id(meta: &Meta, project: &str) -> i64 {
        let quotas = meta.list_quotas(None).await.unwrap();
        quotas
            .iter()
            .find(|q| q.project_name == project)
            .unwrap()
            .id
    }

    #[test]
    fn human_units() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1024), "1 KiB");
        assert_eq!(human(10 * 1024 * 1024), "10 MiB");
        assert_eq!(human(9 * 1024 * 1024 + 512 * 1024), "9.5 MiB");
        assert_eq!(human(3 * 1024 * 1024 * 1024), "3 GiB");
    }

    #[tokio::test]
    async fn usage_counts_each_digest_once_per_project() {
        for (_dir, meta) in backends().await {
            for p in ["team", "teamx", "other"] {
                meta.ensure_project(p, false).await.unwrap();
            }
            let shared = digest(b"shared");
            let own = digest(b"own");
            meta.link_blob(&"team/a".parse().unwrap(), &shared, 1000)
                .await
                .unwrap();
            meta.link_blob(&"team/b/c".parse().unwrap(), &shared, 1000)
                .await
                .unwrap();
            meta.link_blob(&"team/b/c".parse().unwrap(), &own, 10)
                .await
                .unwrap();
            meta.link_blob(&"teamx/a".parse().unwrap(), &own, 10)
                .await
                .unwrap();
            meta.link_blob(&"other".parse().unwrap(), &shared, 1000)
                .await
                .unwrap();
            assert_eq!(meta.project_usage("team").await.unwrap(), 1010);
            assert_eq!(meta.project_usage("teamx").await.unwrap(), 10);
            assert_eq!(meta.project_usage("other").await.unwrap(), 1000);
            let repo: RepoName = "team/b/c".parse().unwrap();
            assert!(meta.unlink_blob(&repo, &own).await.unwrap());
            assert_eq!(meta.project_usage("team").await.unwrap(), 1000);
        }
    }

    /// The counter the quota shows equals the usage computed from the
    /// definition, for every project.
    async fn assert_counters(meta: &Meta) {
        for q in meta.list_quotas(None).await.unwrap() {
            let computed = meta.project_usage(&q.project_name).await.unwrap();
            assert_eq!(q.used, computed, "project {}", q.project_name);
        }
    }

    fn image(config: &Digest, layer: &Digest) -> Vec<u8> {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":1}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer}","size":1}}]}}"#
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn the_counter_follows_every_change() {
        for (_dir, meta) in backends().await {
            // A repository older than its project: the project starts with it.
            let early: RepoName = "late/app".parse().unwrap();
            meta.link_blob(&early, &digest(b"early"), 7).await.unwrap();
            meta.ensure_project("late", false).await.unwrap();
            meta.ensure_project("team", false).await.unwrap();
            assert_counters(&meta).await;
            let repos: Vec<RepoName> = ["team/a", "team/b", "team", "late/app"]
                .iter()
                .map(|r| r.parse().unwrap())
                .collect();
            let blobs: Vec<Digest> = (0..6).map(|i| digest(format!("b{i}").as_bytes())).collect();
            for (i, repo) in repos.iter().enumerate() {
                for blob in &blobs[i % 2..i % 2 + 4] {
                    meta.link_blob(repo, blob, 100 + blob.to_string().len() as u64)
                        .await
                        .unwrap();
                }
                let content = image(&blobs[i % 2], &blobs[i % 2 + 1]);
                let parsed = manifest::parse(None, &content).unwrap();
                meta.put_manifest(repo, &digest(&content), &parsed, &content, &[])
                    .await
                    .unwrap();
                assert_counters(&meta).await;
            }
            // A manifest whose digest is also linked as a blob counts once.
            let content = image(&blobs[0], &blobs[1]);
            meta.link_blob(&repos[1], &digest(&content), content.len() as u64)
                .await
                .unwrap();
            assert_counters(&meta).await;
            assert!(meta.unlink_blob(&repos[0], &blobs[2]).await.unwrap());
            assert_counters(&meta).await;
            assert!(meta
                .delete_manifest(&repos[0], &digest(&content))
                .await
                .unwrap());
            assert_counters(&meta).await;
            assert!(meta.delete_repository(&repos[1]).await.unwrap());
            assert_counters(&meta).await;
            // Rows that go with their repository by cascade, as garbage
            // collection or other code may delete them.
            sqlx::query("DELETE FROM repositories WHERE name = 'team'")
                .execute(meta.pool())
                .await
                .unwrap();
            assert_counters(&meta).await;
            sqlx::query("DELETE FROM repo_blobs WHERE digest = $1")
                .bind(blobs[3].to_string())
                .execute(meta.pool())
                .await
                .unwrap();
            assert_counters(&meta).await;
            assert_eq!(
                meta.project_usage("late").await.unwrap(),
                meta.list_quotas(None).await.unwrap()[0].used
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_links_never_overshoot() {
        for (_dir, meta) in backends().await {
            meta.ensure_project("team", false).await.unwrap();
            let id = quota_id(&meta, "team").await;
            meta.set_quota(id, Some(1000)).await.unwrap();
            let tasks: Vec<_> = (0..25)
                .map(|i| {
                    let meta = meta.clone();
                    tokio::spawn(async move {
                        let repo: RepoName = format!("team/r{}", i % 3).parse().unwrap();
                        meta.link_blob(&repo, &digest(format!("blob {i}").as_bytes()), 100)
                            .await
                    })
                })
                .collect();
            let mut linked = 0;
            for task in tasks {
                match task.await.unwrap() {
                    Ok(()) => linked += 1,
                    Err(StorageError::QuotaExceeded(_)) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(linked, 10);
            assert_eq!(meta.project_usage("team").await.unwrap(), 1000);
        }
    }

    #[tokio::test]
    async fn limit_refuses_new_digests_but_not_held_ones() {
        for (_dir, meta) in backends().await {
            meta.ensure_project("team", false).await.unwrap();
            let id = quota_id(&meta, "team").await;
            assert!(meta.set_quota(id, Some(1500)).await.unwrap());
            let a: RepoName = "team/a".parse().unwrap();
            let b: RepoName = "team/b".parse().unwrap();
            meta.link_blob(&a, &digest(b"one"), 1000).await.unwrap();
            // Already held by the project: linking it elsewhere adds nothing.
            meta.link_blob(&b, &digest(b"one"), 1000).await.unwrap();
            let err = meta.link_blob(&b, &digest(b"two"), 600).await.unwrap_err();
            let StorageError::QuotaExceeded(e) = err else {
                panic!("{err:?}");
            };
            assert_eq!(
                e,
                Exceeded {
                    project: "team".into(),
                    used: 1000,
                    limit: 1500,
                    needed: 600
                }
            );
            assert_eq!(meta.project_usage("team").await.unwrap(), 1000);
            meta.link_blob(&b, &digest(b"two"), 500).await.unwrap();
            assert_eq!(meta.project_usage("team").await.unwrap(), 1500);
            // A manifest counts too.
            let config = digest(b"one");
            let content = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":1000}},"layers":[]}}"#
            );
            let parsed = manifest::parse(None, content.as_bytes()).unwrap();
            let md = digest(content.as_bytes());
            let err = meta
                .put_manifest(&a, &md, &parsed, content.as_bytes(), &[])
                .await
                .unwrap_err();
            assert!(matches!(err, StorageError::QuotaExceeded(_)), "{err:?}");
            assert!(meta.set_quota(id, None).await.unwrap());
            meta.put_manifest(&a, &md, &parsed, content.as_bytes(), &[])
                .await
                .unwrap();
            assert_eq!(
                meta.project_usage("team").await.unwrap(),
                1500 + content.len() as u64
            );
            let q = meta.quota(id).await.unwrap().unwrap();
            assert_eq!(q.hard, None);
            assert_eq!(q.used, 1500 + content.len() as u64);
        }
    }
}
