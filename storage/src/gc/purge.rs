//! Purging abandoned uploads: sessions (row and file) idle for longer than
//! `server.upload_purge_age`, and files in `_uploads` that no session owns.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

use crate::blobs::read_dir;
use crate::error::StorageError;
use crate::meta::now;
use crate::objects::{upload, Objects};
use crate::registry::Registry;

impl Registry {
    /// Removes upload sessions started and last written more than the
    /// purge age ago; returns their ids. A session still being written
    /// (its file changed recently) stays.
    pub async fn purge_uploads(&self) -> Result<Vec<String>, StorageError> {
        let age = self.upload_purge_age;
        let cutoff = SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let cutoff_s = now().saturating_sub(i64::try_from(age.as_secs()).unwrap_or(i64::MAX));
        let old: Vec<String> = sqlx::query_scalar("SELECT id FROM uploads WHERE created_at <= $1")
            .bind(cutoff_s)
            .fetch_all(self.meta.pool())
            .await?;
        if let Some(objects) = &self.objects {
            return self.purge_object_uploads(objects, cutoff, cutoff_s).await;
        }
        let mut purged = Vec::new();
        for id in old {
            let Ok(uuid) = Uuid::parse_str(&id) else {
                continue;
            };
            let path = self.sessions.path(uuid);
            if modified(&path).is_some_and(|t| t > cutoff) {
                continue;
            }
            // Waits for a chunk being written to end; the next request
            // for this session then finds it gone.
            let guard = self.sessions.lock(uuid).await;
            self.meta.delete_upload(&id).await?;
            self.sessions.forget(uuid);
            drop(guard);
            purged.push(id);
        }
        // Files without a session: left by a crash between creating the
        // file and recording the session, or by a health probe.
        let live: HashSet<String> = sqlx::query_scalar("SELECT id FROM uploads")
            .fetch_all(self.meta.pool())
            .await?
            .into_iter()
            .collect();
        for entry in read_dir(&self.blobs.uploads_dir())? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if live.contains(&name) || modified(&entry.path()).is_none_or(|t| t > cutoff) {
                continue;
            }
            if std::fs::remove_file(entry.path()).is_ok() {
                purged.push(name);
            }
        }
        Ok(purged)
    }
}

impl Registry {
    /// `purge_uploads` on an object store: sessions whose row has not
    /// moved since the cutoff go with their multipart upload and pieces,
    /// and pieces of sessions that no longer exist go once old.
    async fn purge_object_uploads(
        &self,
        objects: &Objects,
        cutoff: SystemTime,
        cutoff_s: i64,
    ) -> Result<Vec<String>, StorageError> {
        let old: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM uploads WHERE created_at <= $1 AND touched_at <= $1",
        )
        .bind(cutoff_s)
        .fetch_all(self.meta.pool())
        .await?;
        let mut purged = Vec::new();
        for id in old {
            let Ok(uuid) = Uuid::parse_str(&id) else {
                continue;
            };
            // Waits for a request of this process writing it to end; one
            // on another instance finds the row gone when it saves.
            let guard = self.sessions.lock(uuid).await;
            // Claimed ones too: a final PUT that failed or was killed.
            let state = match upload::load_any(&self.meta, &id).await {
                Ok((_, state)) => state,
                Err(StorageError::UploadUnknown) => continue,
                Err(e) => return Err(e),
            };
            // Only if still idle and nobody holds it (checked in the
            // delete itself: a request elsewhere may have begun since).
            if !upload::delete_if_idle(&self.meta, &id, cutoff_s).await? {
                continue;
            }
            upload::discard(objects, &id, Some(&state)).await?;
            self.sessions.forget(uuid);
            drop(guard);
            purged.push(id);
        }
        let live: HashSet<String> = sqlx::query_scalar("SELECT id FROM uploads")
            .fetch_all(self.meta.pool())
            .await?
            .into_iter()
            .collect();
        let mut stale = HashSet::new();
        for (key, _, modified) in objects.list("uploads").await? {
            let Some((id, _)) = key.split_once('/') else {
                continue;
            };
            if !live.contains(id) && modified < cutoff {
                stale.insert(id.to_owned());
            }
        }
        for id in stale {
            upload::discard(objects, &id, None).await?;
            purged.push(id);
        }
        Ok(purged)
    }
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// How often the server purges uploads: often enough that a session is
/// gone soon after it reaches the purge age, at most every five minutes.
pub fn purge_interval(age: Duration) -> Duration {
    (age / 2).clamp(Duration::from_secs(1), Duration::from_secs(300))
}
