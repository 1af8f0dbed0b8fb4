//! Settings changed at run time (`/configurations`): a key and its value
//! as JSON text per setting changed from its default. What the keys mean
//! and which exist is the gateway's business; this stores them.

use sqlx::Row;

use crate::changes::Change;
use crate::error::StorageError;
use crate::meta::{now, Meta};
use crate::secrets::{seal_in, Purpose, SECRET_SETTINGS};

fn is_secret(key: &str) -> bool {
    SECRET_SETTINGS.contains(&key)
}

impl Meta {
    /// Every stored setting, by key, as `conn` sees them (secrets opened).
    async fn stored(
        &self,
        conn: &mut sqlx::AnyConnection,
    ) -> Result<Vec<(String, String)>, StorageError> {
        let rows = sqlx::query("SELECT key, value FROM configuration ORDER BY key")
            .fetch_all(&mut *conn)
            .await?;
        rows.into_iter()
            .map(|r| {
                let key: String = r.try_get("key")?;
                let value: String = r.try_get("value")?;
                let value = if is_secret(&key) {
                    let v = self.keyring().open_or_warn(
                        Purpose::Setting { key: &key },
                        &value,
                        "a stored setting",
                    )?;
                    // An unreadable secret reads as empty text (JSON), as
                    // if never set.
                    if v.is_empty() && !value.is_empty() {
                        "\"\"".to_owned()
                    } else {
                        v
                    }
                } else {
                    value
                };
                Ok((key, value))
            })
            .collect()
    }

    /// Every stored setting, by key.
    pub async fn configuration(&self) -> Result<Vec<(String, String)>, StorageError> {
        let mut conn = self.pool().acquire().await?;
        self.stored(&mut conn).await
    }

    /// Stores `values` (all or none) if `check` accepts the whole stored
    /// set they make, and announces that set to the other processes, less
    /// the secrets ([`SECRET_SETTINGS`], sealed in the table: any login to
    /// the database server may listen to announcements; the processes
    /// read those from the table). Returns the stored set, or why `check`
    /// refused it. The check runs in the write transaction, so two changes
    /// at once cannot together store a set neither would have.
    pub async fn set_configuration(
        &self,
        values: &[(String, String)],
        check: impl FnOnce(&[(String, String)]) -> Result<(), String>,
    ) -> Result<Result<Vec<(String, String)>, String>, StorageError> {
        let mut tx = self.write().await?;
        for (key, value) in values {
            let value = if is_secret(key) {
                seal_in(self.keyring(), &mut tx, Purpose::Setting { key }, value).await?
            } else {
                value.clone()
            };
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
        let all = self.stored(&mut tx).await?;
        if let Err(why) = check(&all) {
            tx.rollback().await?;
            return Ok(Err(why));
        }
        tx.commit().await?;
        let (withheld, told): (Vec<_>, Vec<_>) =
            all.iter().cloned().partition(|(k, _)| is_secret(k));
        self.announce_later(Change::Configuration {
            values: told,
            withheld: withheld.into_iter().map(|(k, _)| k).collect(),
        });
        Ok(Ok(all))
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
        let any = |_: &[(String, String)]| Ok(());
        meta.set_configuration(
            &[set("read_only", "true"), set("token_expiration", "10")],
            any,
        )
        .await
        .expect("store")
        .expect("accepted");
        let all = meta
            .set_configuration(&[set("read_only", "false")], any)
            .await
            .expect("store")
            .expect("accepted");
        assert_eq!(
            all,
            [set("read_only", "false"), set("token_expiration", "10")]
        );
        assert_eq!(meta.configuration().await.expect("read"), all);
        // A set the check refuses is not stored, in part or whole.
        let refused = meta
            .set_configuration(&[set("read_only", "true"), set("x", "1")], |all| {
                if all.iter().any(|(k, _)| k == "x") {
                    Err("no x".into())
                } else {
                    Ok(())
                }
            })
            .await
            .expect("store");
        assert_eq!(refused, Err("no x".to_owned()));
        assert_eq!(meta.configuration().await.expect("read"), all);
    }
}
