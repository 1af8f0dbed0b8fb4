//! Commits that are on disk before GC destroys bytes.
//!
//! The database runs with `synchronous = NORMAL`: in WAL mode a commit is
//! then safe from a crash of the process (kill -9) but not from a power
//! loss or an OS crash, which may roll back the last commits. For most
//! writes that is the right trade: a push that rolls back is pushed again.
//! A GC delete is different: it is followed by unlinking the blob's file,
//! and if the delete were rolled back after the unlink, the rows would
//! come back without their file; HEAD would answer 200 and a manifest
//! referencing the blob would be accepted, with no bytes behind it.
//!
//! So a GC delete commits on a connection switched to `synchronous =
//! FULL`, where SQLite fsyncs the WAL before the commit returns, and the
//! file is unlinked only after that. It also follows that another
//! connection never *sees* such a delete before it is durable (SQLite
//! publishes a commit in the WAL index only after the fsync), so the trash
//! reconciliation, which removes a trash file when its row is absent,
//! only ever acts on durable deletes: GC's deletes are the only ones of
//! `blobs` rows.
//!
//! On PostgreSQL every commit is durable when it returns (unless its
//! administrator set `synchronous_commit = off`), so nothing is switched.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::Any;

use crate::error::StorageError;
use crate::meta::{Backend, Meta};

/// A pooled connection whose commits are durable when they return. It
/// goes back to the pool in the normal mode after `release`; dropped
/// without it (on an error), it is closed rather than returned in FULL
/// mode.
pub(crate) struct DurableConn {
    conn: PoolConnection<Any>,
    sqlite: bool,
    released: bool,
}

impl DurableConn {
    pub(crate) async fn acquire(meta: &Meta) -> Result<DurableConn, StorageError> {
        let mut conn = meta.pool().acquire().await?;
        let sqlite = meta.backend() == Backend::Sqlite;
        if sqlite {
            sqlx::query("PRAGMA synchronous = FULL")
                .execute(&mut *conn)
                .await?;
        }
        Ok(DurableConn {
            conn,
            sqlite,
            released: false,
        })
    }

    /// Back to the pool's normal mode.
    pub(crate) async fn release(mut self) -> Result<(), StorageError> {
        if self.sqlite {
            sqlx::query("PRAGMA synchronous = NORMAL")
                .execute(&mut *self.conn)
                .await?;
        }
        self.released = true;
        Ok(())
    }
}

impl Deref for DurableConn {
    type Target = PoolConnection<Any>;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl DerefMut for DurableConn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

impl Drop for DurableConn {
    fn drop(&mut self) {
        if !self.released {
            self.conn.close_on_drop();
        }
    }
}
