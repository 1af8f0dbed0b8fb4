//! Portal sign-ins, kept in the database so that any instance behind a
//! load balancer knows them. A session is found by the SHA-256 of its
//! cookie value (the value itself is never stored) and carries the
//! fingerprint of the credential it was opened with: the gateway ends it
//! when the account's password, status or directory entry changes.

use sha2::{Digest as _, Sha256};
use sqlx::Row;

use crate::error::StorageError;
use crate::meta::{now, Meta};

/// Live sessions one user may hold; a sign-in beyond it ends the oldest,
/// so signing in again and again cannot grow the table without bound.
pub const MAX_PER_USER: i64 = 20;

/// A signed-in portal session.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub username: String,
    /// The credential fingerprint of the login that opened it.
    pub credential: String,
    /// The token every form of this session must carry.
    pub csrf: String,
    pub created_at: i64,
    pub seen_at: i64,
    pub expires_at: i64,
}

impl std::fmt::Debug for SessionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRow")
            .field("username", &self.username)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A session to open.
pub struct NewSession<'a> {
    /// The cookie's value.
    pub cookie: &'a str,
    pub username: &'a str,
    pub credential: &'a str,
    pub csrf: &'a str,
    pub expires_at: i64,
}

fn id_hash(cookie: &str) -> String {
    hex::encode(Sha256::digest(cookie.as_bytes()))
}

impl Meta {
    /// Opens a session, and drops the expired ones of every user and the
    /// oldest of this user's beyond [`MAX_PER_USER`].
    pub async fn create_session(&self, s: &NewSession<'_>) -> Result<(), StorageError> {
        let at = now();
        sqlx::query("DELETE FROM portal_sessions WHERE expires_at <= $1")
            .bind(at)
            .execute(self.pool())
            .await?;
        sqlx::query(
            "INSERT INTO portal_sessions (id_hash, username, credential, csrf, created_at, \
             seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $5, $6)",
        )
        .bind(id_hash(s.cookie))
        .bind(s.username)
        .bind(s.credential)
        .bind(s.csrf)
        .bind(at)
        .bind(s.expires_at)
        .execute(self.pool())
        .await?;
        sqlx::query(
            "DELETE FROM portal_sessions WHERE username = $1 AND id_hash NOT IN \
             (SELECT id_hash FROM portal_sessions WHERE username = $1 \
              ORDER BY CASE WHEN id_hash = $2 THEN 0 ELSE 1 END, created_at DESC, seen_at DESC \
              LIMIT $3)",
        )
        .bind(s.username)
        .bind(id_hash(s.cookie))
        .bind(MAX_PER_USER)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The unexpired session a cookie value names.
    pub async fn session(&self, cookie: &str) -> Result<Option<SessionRow>, StorageError> {
        let row = sqlx::query(
            "SELECT username, credential, csrf, created_at, seen_at, expires_at \
             FROM portal_sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash(cookie))
        .bind(now())
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(SessionRow {
                username: row.try_get("username")?,
                credential: row.try_get("credential")?,
                csrf: row.try_get("csrf")?,
                created_at: row.try_get("created_at")?,
                seen_at: row.try_get("seen_at")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Records activity: the session now lasts until `expires_at`.
    pub async fn touch_session(&self, cookie: &str, expires_at: i64) -> Result<(), StorageError> {
        sqlx::query("UPDATE portal_sessions SET seen_at = $2, expires_at = $3 WHERE id_hash = $1")
            .bind(id_hash(cookie))
            .bind(now())
            .bind(expires_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Ends one session (sign-out, or the one a new sign-in replaces).
    pub async fn delete_session(&self, cookie: &str) -> Result<(), StorageError> {
        sqlx::query("DELETE FROM portal_sessions WHERE id_hash = $1")
            .bind(id_hash(cookie))
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn meta() -> (tempfile::TempDir, Meta) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        (dir, Meta::connect(&url).await.unwrap())
    }

    fn new<'a>(cookie: &'a str, user: &'a str, expires_at: i64) -> NewSession<'a> {
        NewSession {
            cookie,
            username: user,
            credential: "cred",
            csrf: "token",
            expires_at,
        }
    }

    #[tokio::test]
    async fn sessions_are_found_by_cookie_until_they_end() {
        let (_dir, meta) = meta().await;
        let later = now() + 3600;
        meta.create_session(&new("c1", "alice", later))
            .await
            .unwrap();
        meta.create_session(&new("c2", "alice", later))
            .await
            .unwrap();
        meta.create_session(&new("c3", "bob", later)).await.unwrap();
        let s = meta.session("c1").await.unwrap().unwrap();
        assert_eq!((s.username.as_str(), s.csrf.as_str()), ("alice", "token"));
        assert!(meta.session("c4").await.unwrap().is_none());
        // The cookie's value is not what is stored.
        let stored: Vec<String> = sqlx::query_scalar("SELECT id_hash FROM portal_sessions")
            .fetch_all(meta.pool())
            .await
            .unwrap();
        assert!(stored.iter().all(|h| h.len() == 64 && h != "c1"));
        // Expired: not found, and swept at the next sign-in.
        meta.touch_session("c2", now() - 1).await.unwrap();
        assert!(meta.session("c2").await.unwrap().is_none());
        meta.create_session(&new("c5", "carol", later))
            .await
            .unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM portal_sessions")
            .fetch_one(meta.pool())
            .await
            .unwrap();
        assert_eq!(left, 3);
        meta.delete_session("c1").await.unwrap();
        assert!(meta.session("c1").await.unwrap().is_none());
        assert!(meta.session("c3").await.unwrap().is_some());
        assert!(meta.session("c5").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_user_holds_a_bounded_number_of_sessions() {
        let (_dir, meta) = meta().await;
        let later = now() + 3600;
        let cookies: Vec<String> = (0..MAX_PER_USER + 5).map(|i| format!("c{i}")).collect();
        for c in &cookies {
            meta.create_session(&new(c, "dave", later)).await.unwrap();
        }
        meta.create_session(&new("other", "erin", later))
            .await
            .unwrap();
        let held: i64 =
            sqlx::query_scalar("SELECT count(*) FROM portal_sessions WHERE username = 'dave'")
                .fetch_one(meta.pool())
                .await
                .unwrap();
        assert_eq!(held, MAX_PER_USER);
        // The newest always survives; another user's are untouched.
        assert!(meta
            .session(cookies.last().unwrap())
            .await
            .unwrap()
            .is_some());
        assert!(meta.session("other").await.unwrap().is_some());
    }
}
