//! Settings changed at run time (`/configurations`): a key and its value
//! as JSON text per setting changed from its default. What the keys mean
//! and which exist is the gateway's business; this stores them.

use sqlx::Row;

use crate::changes::Change;
use crate::error::StorageError;
use crate::meta::{now, Meta};

/// Every stored setting, by key, as `conn` sees them.
async fn stored(conn: &mut sqlx::AnyConnection) -> Result<Vec<(String, String)>, StorageError> {
    let rows = sqlx::query("SELECT key, value FROM configuration ORDER BY key")
        .fetch_all(&mut *conn)
        .await?;
    rows.into_iter()
        .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
        .collect()
}

impl Meta {
    /// Every stored setting, by key.
    pub async fn configuration(&self) -> Result<Vec<(String, String)>, StorageError> {
        let mut conn = self.pool().acquire().await?;
        stored(&mut conn).await
    }

    /// Stores `values` (all or none) and announces the whole stored set to
    /// the other processes; returns that set.
    pub async fn set_configuration(
        &self,
        values: &[(String, String)],
    ) -> Result<Vec<(String, String)>, StorageError> {
        let mut tx = self.write().await?;
        for (key, value) in values {
            sqlx::query(
                "INSERT INTO configuration (key, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                 updated_at = excluded.updated_at",
            )
            .bind(key)
            .bind(value)
            .bind(now())
            .execute(&mut *tx)
            .await?;
        }
        let all = stored(&mut tx).await?;
        tx.commit().await?;
        self.announce_later(Change::Configuration {
            values: all.clone(),
        });
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settings_are_stored_and_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let meta = Meta::connect(&url).await.expect("connect");
        assert!(meta.configuration().await.expect("read").is_empty());
        let set = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        meta.set_configuration(&[set("read_only", "true"), set("token_expiration", "10")])
            .await
            .expect("store");
        let all = meta
            .set_configuration(&[set("read_only", "false")])
            .await
            .expect("store");
        assert_eq!(
            all,
            [set("read_only", "false"), set("token_expiration", "10")]
        );
        assert_eq!(meta.configuration().await.expect("read"), all);
    }
}
