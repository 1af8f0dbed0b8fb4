//! What the registry holds, for metrics: bytes stored per project and the
//! state of the database connection pool.

use sqlx::Row;

use crate::error::StorageError;
use crate::meta::Meta;

/// Connections of the database pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConnections {
    pub idle: u32,
    pub in_use: u32,
}

impl Meta {
    /// Open connections of the pool, idle and in use. No query.
    pub fn pool_connections(&self) -> PoolConnections {
        let size = self.pool().size();
        let idle = u32::try_from(self.pool().num_idle()).unwrap_or(size);
        PoolConnections {
            idle,
            in_use: size.saturating_sub(idle),
        }
    }

    /// Every project with the bytes of the distinct blobs its
    /// repositories hold (a layer shared by two repositories of a project
    /// counts once), by project name. One query.
    pub async fn project_storage_bytes(&self) -> Result<Vec<(String, i64)>, StorageError> {
        let rows = sqlx::query(
            "SELECT p.name, CAST(COALESCE(SUM(b.size), 0) AS BIGINT) AS bytes FROM projects p \
             LEFT JOIN (SELECT DISTINCT CASE WHEN instr(r.name, '/') > 0 \
                          THEN substr(r.name, 1, instr(r.name, '/') - 1) ELSE r.name END \
                          AS project, rb.digest \
                        FROM repo_blobs rb JOIN repositories r ON r.id = rb.repo_id) u \
               ON u.project = p.name \
             LEFT JOIN blobs b ON b.digest = u.digest \
             GROUP BY p.name ORDER BY p.name",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("name")?, row.try_get("bytes")?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::oci::{Algorithm, Digest, RepoName};

    #[tokio::test]
    async fn project_bytes_count_each_blob_once_per_project() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta::connect(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        for project in ["team", "other", "empty"] {
            meta.ensure_project(project, false).await.unwrap();
        }
        let shared = Digest::compute(Algorithm::Sha256, b"shared");
        let own = Digest::compute(Algorithm::Sha256, b"own");
        let a: RepoName = "team/a".parse().unwrap();
        let b: RepoName = "team/b/c".parse().unwrap();
        let other: RepoName = "other".parse().unwrap();
        meta.link_blob(&a, &shared, 1000).await.unwrap();
        meta.link_blob(&b, &shared, 1000).await.unwrap();
        meta.link_blob(&b, &own, 10).await.unwrap();
        meta.link_blob(&other, &shared, 1000).await.unwrap();
        let bytes = meta.project_storage_bytes().await.unwrap();
        assert_eq!(
            bytes,
            [
                ("empty".to_owned(), 0),
                ("other".to_owned(), 1000),
                ("team".to_owned(), 1010)
            ]
        );
        let pool = meta.pool_connections();
        assert!(pool.idle + pool.in_use >= 1, "{pool:?}");
    }
}
