//! Password-reset links: a token mailed to an account's own address that
//! sets its password once. Only the token's SHA-256 is stored; a newer
//! link replaces the older ones; using one ends every portal session of
//! the account in the same transaction.

use sha2::{Digest as _, Sha256};

use crate::accounts::User;
use crate::error::StorageError;
use crate::meta::{now, Meta};

/// What asking for a link did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetRequest {
    /// Stored (older links of the account no longer work).
    Created,
    /// A link was sent less than `min_interval` ago: nothing stored, so
    /// asking again and again does not flood the account's mailbox.
    TooSoon,
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Meta {
    /// Local users (at most 10) whose address equals `email` ignoring
    /// ASCII case. The caller mails each at the address stored here,
    /// never at the one it was given.
    pub async fn users_with_email(&self, email: &str) -> Result<Vec<User>, StorageError> {
        let same = self.backend().pick(
            "email = $1 COLLATE NOCASE",
            "ascii_lower(email) = ascii_lower($1)",
        );
        let rows = sqlx::query(&format!(
            "SELECT * FROM users WHERE {same} ORDER BY id LIMIT 10"
        ))
        .bind(email)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(crate::accounts::user_from_row)
            .collect()
    }

    /// Stores a link for `user_id` lasting `ttl` seconds, unless one was
    /// made less than `min_interval` seconds ago. Expired links of every
    /// account go at the same time.
    pub async fn create_password_reset(
        &self,
        user_id: i64,
        token: &str,
        ttl: i64,
        min_interval: i64,
    ) -> Result<ResetRequest, StorageError> {
        let at = now();
        // Under the write lock: two requests at once on two instances
        // must not both find "none recently" and both mail a link.
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM password_resets WHERE expires_at <= $1")
            .bind(at)
            .execute(&mut *tx)
            .await?;
        let recent: Option<i64> =
            sqlx::query_scalar("SELECT max(created_at) FROM password_resets WHERE user_id = $1")
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await?;
        if recent.is_some_and(|r| r > at - min_interval) {
            return Ok(ResetRequest::TooSoon);
        }
        sqlx::query("DELETE FROM password_resets WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash(token))
        .bind(user_id)
        .bind(at)
        .bind(at + ttl)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ResetRequest::Created)
    }

    /// Ends every link of an account (its password or address changed).
    pub async fn drop_password_resets(&self, user_id: i64) -> Result<(), StorageError> {
        sqlx::query("DELETE FROM password_resets WHERE user_id = $1")
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Whether `token` names an unexpired link (the reset page asks before
    /// showing its form).
    pub async fn password_reset_valid(&self, token: &str) -> Result<bool, StorageError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT user_id FROM password_resets WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash(token))
        .bind(now())
        .fetch_optional(self.pool())
        .await?;
        Ok(found.is_some())
    }

    /// Uses a link: sets the account's password to `password_hash`, drops
    /// every link of the account and ends its portal sessions, all or
    /// nothing. `None` when the token is unknown, used or expired, or the
    /// account is no longer a local, enabled one.
    pub async fn reset_password(
        &self,
        token: &str,
        password_hash: &str,
    ) -> Result<Option<User>, StorageError> {
        let at = now();
        let mut tx = self.write().await?;
        // Deleted, not marked: of two uses at once, one finds no row.
        let link = sqlx::query(
            "DELETE FROM password_resets WHERE token_hash = $1 AND expires_at > $2 \
             RETURNING user_id, created_at",
        )
        .bind(token_hash(token))
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(link) = link else {
            return Ok(None);
        };
        let user_id: i64 = sqlx::Row::try_get(&link, "user_id")?;
        let sent_at: i64 = sqlx::Row::try_get(&link, "created_at")?;
        sqlx::query("DELETE FROM password_resets WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(
            "UPDATE users SET password_hash = $2, updated_at = $3 \
             WHERE id = $1 AND source = 'db' AND disabled = 0 AND created_at <= $4 RETURNING *",
        )
        .bind(user_id)
        .bind(password_hash)
        .bind(at)
        // Only the account the link was sent for: not one made since
        // under a reused id.
        .bind(sent_at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            // The link is spent either way: an account made an LDAP one or
            // disabled since keeps no way back in through it.
            tx.commit().await?;
            return Ok(None);
        };
        let user = crate::accounts::user_from_row(row)?;
        sqlx::query("DELETE FROM portal_sessions WHERE username = $1")
            .bind(&user.username)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::NewSession;

    async fn meta() -> (tempfile::TempDir, Meta) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/t.db", dir.path().display());
        (dir, Meta::connect(&url).await.expect("connect"))
    }

    async fn user(meta: &Meta, name: &str, email: &str) -> i64 {
        meta.create_user(name, "old-hash", Some(email), false)
            .await
            .expect("create")
            .expect("new name")
    }

    #[tokio::test]
    async fn a_link_works_once_and_ends_sessions() {
        let (_dir, meta) = meta().await;
        let alice = user(&meta, "alice", "Alice@Example.org").await;
        let found = meta
            .users_with_email("alice@example.ORG")
            .await
            .expect("find");
        assert_eq!(found.iter().map(|u| u.id).collect::<Vec<_>>(), [alice]);
        assert!(meta
            .users_with_email("alice@example.net")
            .await
            .expect("find")
            .is_empty());
        meta.create_session(&NewSession {
            cookie: "c",
            username: "alice",
            credential: "f",
            csrf: "x",
            expires_at: now() + 600,
        })
        .await
        .expect("session");

        let made = meta.create_password_reset(alice, "tok", 1800, 60).await;
        assert_eq!(made.expect("create"), ResetRequest::Created);
        assert!(meta.password_reset_valid("tok").await.expect("valid"));
        assert!(!meta.password_reset_valid("other").await.expect("valid"));
        let done = meta.reset_password("tok", "new-hash").await.expect("reset");
        assert_eq!(done.map(|u| u.id), Some(alice));
        let stored = meta.user("alice").await.expect("read").expect("exists");
        assert_eq!(stored.password_hash.as_deref(), Some("new-hash"));
        assert!(meta.session("c").await.expect("read").is_none());
        // Once only.
        assert!(meta
            .reset_password("tok", "again")
            .await
            .expect("reset")
            .is_none());
        assert!(!meta.password_reset_valid("tok").await.expect("valid"));
    }

    #[tokio::test]
    async fn newer_links_replace_older_and_requests_are_spaced() {
        let (_dir, meta) = meta().await;
        let bob = user(&meta, "bob", "bob@example.org").await;
        assert_eq!(
            meta.create_password_reset(bob, "first", 1800, 0)
                .await
                .expect("create"),
            ResetRequest::Created
        );
        assert_eq!(
            meta.create_password_reset(bob, "second", 1800, 60)
                .await
                .expect("create"),
            ResetRequest::TooSoon
        );
        assert!(!meta.password_reset_valid("second").await.expect("valid"));
        assert_eq!(
            meta.create_password_reset(bob, "third", 1800, 0)
                .await
                .expect("create"),
            ResetRequest::Created
        );
        assert!(meta
            .reset_password("first", "h")
            .await
            .expect("reset")
            .is_none());
        assert!(meta
            .reset_password("third", "h")
            .await
            .expect("reset")
            .is_some());
    }

    #[tokio::test]
    async fn links_end_with_the_account_its_password_or_its_address() {
        let (_dir, meta) = meta().await;
        let dave = user(&meta, "dave", "dave@example.org").await;
        meta.create_password_reset(dave, "a", 1800, 0)
            .await
            .expect("create");
        meta.set_password_hash("dave", "changed")
            .await
            .expect("set");
        assert!(!meta.password_reset_valid("a").await.expect("valid"));
        meta.create_password_reset(dave, "b", 1800, 0)
            .await
            .expect("create");
        meta.update_user_profile(dave, Some("new@example.org"), None, None)
            .await
            .expect("update");
        assert!(!meta.password_reset_valid("b").await.expect("valid"));
        meta.create_password_reset(dave, "c", 1800, 0)
            .await
            .expect("create");
        assert!(meta.delete_user(dave).await.expect("delete"));
        // SQLite hands the highest id out again.
        let again = user(&meta, "erin", "erin@example.org").await;
        assert_eq!(again, dave);
        assert!(meta
            .reset_password("c", "h")
            .await
            .expect("reset")
            .is_none());
        // Even a link left behind does not reach an account made after it.
        sqlx::query("INSERT INTO password_resets VALUES ($1, $2, 0, $3)")
            .bind(token_hash("d"))
            .bind(again)
            .bind(now() + 600)
            .execute(meta.pool())
            .await
            .expect("insert");
        assert!(meta
            .reset_password("d", "h")
            .await
            .expect("reset")
            .is_none());
    }

    #[tokio::test]
    async fn expired_links_and_disabled_accounts_reset_nothing() {
        let (_dir, meta) = meta().await;
        let carol = user(&meta, "carol", "carol@example.org").await;
        meta.create_password_reset(carol, "old", -1, 0)
            .await
            .expect("create");
        assert!(!meta.password_reset_valid("old").await.expect("valid"));
        assert!(meta
            .reset_password("old", "h")
            .await
            .expect("reset")
            .is_none());

        meta.create_password_reset(carol, "live", 1800, 0)
            .await
            .expect("create");
        meta.set_user_disabled("carol", true)
            .await
            .expect("disable");
        assert!(meta
            .reset_password("live", "h")
            .await
            .expect("reset")
            .is_none());
        let stored = meta.user("carol").await.expect("read").expect("exists");
        assert_eq!(stored.password_hash.as_deref(), Some("old-hash"));
        // Spent all the same.
        meta.set_user_disabled("carol", false)
            .await
            .expect("enable");
        assert!(meta
            .reset_password("live", "h")
            .await
            .expect("reset")
            .is_none());
    }
}
