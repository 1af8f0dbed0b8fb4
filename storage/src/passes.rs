//! Background passes that run once per period for the whole cluster, not
//! once per instance: every instance ticks, and the one that claims the
//! pass's row for the period runs it. Two evictions of the pull-through
//! cache at once would each remove images to get under the limit, and
//! together remove too many; two purges would race over the same uploads.
//!
//! A claim lasts nine tenths of the period, so the instance that ran the
//! last pass usually claims the next one too; if it is gone, another
//! instance takes over at its next tick.

use std::time::Duration;

use crate::audit::now_ms;
use crate::error::StorageError;
use crate::meta::Meta;

impl Meta {
    /// Claims pass `name` for `holder` (a process) for most of `period`:
    /// true for one caller per period among all sharing the database.
    pub async fn claim_pass(
        &self,
        name: &str,
        holder: &str,
        period: Duration,
    ) -> Result<bool, StorageError> {
        let now = now_ms();
        let hold = i64::try_from(period.as_millis() * 9 / 10).unwrap_or(i64::MAX);
        let mut tx = self.write().await?;
        let claimed = sqlx::query(
            "INSERT INTO passes (name, holder, until_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
             WHERE passes.until_ms <= $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now.saturating_add(hold))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(claimed.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn one_holder_per_period_on_both_backends() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Meta::connect(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        let name = format!("passes_{}", uuid::Uuid::new_v4().simple());
        let url = berth_tests::postgres::shared().create_database(&name);
        let postgres = Meta::connect(&url).await.unwrap();
        for meta in [sqlite, postgres] {
            let period = Duration::from_millis(300);
            assert!(meta.claim_pass("evict", "a", period).await.unwrap());
            assert!(!meta.claim_pass("evict", "b", period).await.unwrap());
            assert!(!meta.claim_pass("evict", "a", period).await.unwrap());
            // Another pass is claimed on its own.
            assert!(meta.claim_pass("purge", "b", period).await.unwrap());
            tokio::time::sleep(period).await;
            assert!(meta.claim_pass("evict", "b", period).await.unwrap());
            assert!(!meta.claim_pass("evict", "a", period).await.unwrap());
        }
    }
}
