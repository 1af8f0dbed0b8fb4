//! The audit log and pull statistics, written off the request path.
//!
//! Handlers hand records to [`AuditLog::record`] (a channel send, no I/O);
//! one writer task commits them in batches, one transaction per batch.
//! [`AuditLog::flush`] waits until everything sent before it is committed:
//! the server calls it on shutdown so a clean stop loses nothing.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::AnyRow;
use sqlx::Row;
use tokio::sync::{mpsc, oneshot};

use crate::error::StorageError;
use crate::meta::Meta;

/// Records per transaction at most.
const BATCH: usize = 4096;

/// One audit record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Unix milliseconds.
    pub op_time: i64,
    pub username: String,
    /// `push`, `pull`, `delete`, `create`, `update`, `login`, ...
    pub operation: String,
    /// `artifact`, `tag`, `repository`, `project`, `user`, `member`, `robot`, ...
    pub resource_type: String,
    pub resource: String,
    pub project: Option<String>,
    pub success: bool,
    pub client_ip: Option<String>,
}

/// A stored audit record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: i64,
    pub record: AuditRecord,
}

/// Filters of an audit log query; `None` matches anything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub project: Option<String>,
    pub username: Option<String>,
    pub operation: Option<String>,
    pub resource_type: Option<String>,
    pub resource_contains: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

enum Event {
    Audit(AuditRecord),
    Pull {
        repo: String,
        digest: String,
        at: i64,
    },
    Flush(oneshot::Sender<()>),
}

/// The sending side; cheap to share.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::UnboundedSender<Event>,
}

impl AuditLog {
    /// Starts the writer task on the current tokio runtime.
    pub fn start(meta: Meta) -> AuditLog {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(meta, rx));
        AuditLog { tx }
    }

    pub fn record(&self, record: AuditRecord) {
        // The writer outlives every sender; a failed send means the
        // runtime is going away, when nothing can be written anyway.
        let _ = self.tx.send(Event::Audit(record));
    }

    /// Counts a manifest pull (the repository's pull count and the
    /// artifact's last pull time).
    pub fn pulled(&self, repo: &str, digest: &str) {
        let _ = self.tx.send(Event::Pull {
            repo: repo.to_owned(),
            digest: digest.to_owned(),
            at: now_ms() / 1000,
        });
    }

    /// Waits until every record sent before this call is committed.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Event::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn writer(meta: Meta, mut rx: mpsc::UnboundedReceiver<Event>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(event) = next.take() {
            match event {
                Event::Flush(done) => waiting.push(done),
                e => batch.push(e),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        // A failed batch is retried: losing audit records is worse than
        // writing them late.
        let mut attempt = 0u32;
        while !batch.is_empty() {
            match write_batch(&meta, &batch).await {
                Ok(()) => batch.clear(),
                Err(e) => {
                    attempt += 1;
                    tracing::error!(error = %e, attempt, records = batch.len(), "writing audit records failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt.min(25))))
                        .await;
                }
            }
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Audit rows per INSERT statement (8 parameters each).
const ROWS_PER_INSERT: usize = 64;

async fn write_batch(meta: &Meta, batch: &[Event]) -> Result<(), StorageError> {
    // A pull storm sends one event per manifest GET: counts are summed per
    // repository and artifact first, so the batch costs one UPDATE per
    // distinct target rather than per pull, and records go in multi-row
    // INSERTs. This keeps the writer ahead of the request path.
    let mut repo_pulls: HashMap<&str, i64> = HashMap::new();
    let mut last_pull: HashMap<(&str, &str), i64> = HashMap::new();
    let mut records: Vec<&AuditRecord> = Vec::new();
    for event in batch {
        match event {
            Event::Audit(r) => records.push(r),
            Event::Pull { repo, digest, at } => {
                *repo_pulls.entry(repo).or_default() += 1;
                let t = last_pull.entry((repo, digest)).or_default();
                *t = (*t).max(*at);
            }
            Event::Flush(_) => {}
        }
    }
    let mut tx = meta.write().await?;
    for chunk in records.chunks(ROWS_PER_INSERT) {
        let values = (0..chunk.len())
            .map(|i| {
                let b = i * 8;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7,
                    b + 8
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO audit_logs (op_time, username, operation, resource_type, resource, \
             project, success, client_ip) VALUES {values}"
        );
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q
                .bind(r.op_time)
                .bind(&r.username)
                .bind(&r.operation)
                .bind(&r.resource_type)
                .bind(&r.resource)
                .bind(&r.project)
                .bind(i64::from(r.success))
                .bind(&r.client_ip);
        }
        q.execute(&mut *tx).await?;
    }
    for (repo, n) in repo_pulls {
        sqlx::query("UPDATE repositories SET pull_count = pull_count + $2 WHERE name = $1")
            .bind(repo)
            .bind(n)
            .execute(&mut *tx)
            .await?;
    }
    for ((repo, digest), at) in last_pull {
        sqlx::query(
            "UPDATE manifests SET pulled_at = $3 WHERE digest = $2 \
             AND repo_id = (SELECT id FROM repositories WHERE name = $1)",
        )
        .bind(repo)
        .bind(digest)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn entry_from_row(row: AnyRow) -> Result<AuditEntry, StorageError> {
    Ok(AuditEntry {
        id: row.try_get("id")?,
        record: AuditRecord {
            op_time: row.try_get("op_time")?,
            username: row.try_get("username")?,
            operation: row.try_get("operation")?,
            resource_type: row.try_get("resource_type")?,
            resource: row.try_get("resource")?,
            project: row.try_get("project")?,
            success: crate::meta::flag(&row, "success")?,
            client_ip: row.try_get("client_ip")?,
        },
    })
}

impl Meta {
    /// One page of audit records, newest first, and the total.
    pub async fn list_audit(
        &self,
        f: &AuditFilter,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<AuditEntry>, i64), StorageError> {
        let cond = "($1 IS NULL OR project = $1) AND ($2 IS NULL OR username = $2) \
             AND ($3 IS NULL OR operation = $3) AND ($4 IS NULL OR resource_type = $4) \
             AND ($5 IS NULL OR instr(resource, $5) > 0) AND ($6 IS NULL OR op_time >= $6) \
             AND ($7 IS NULL OR op_time <= $7)";
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM audit_logs WHERE {cond}"))
                .bind(&f.project)
                .bind(&f.username)
                .bind(&f.operation)
                .bind(&f.resource_type)
                .bind(&f.resource_contains)
                .bind(f.from_ms)
                .bind(f.to_ms)
                .fetch_one(self.pool())
                .await?;
        let rows = sqlx::query(&format!(
            "SELECT * FROM audit_logs WHERE {cond} ORDER BY op_time DESC, id DESC LIMIT $8 OFFSET $9"
        ))
        .bind(&f.project)
        .bind(&f.username)
        .bind(&f.operation)
        .bind(&f.resource_type)
        .bind(&f.resource_contains)
        .bind(f.from_ms)
        .bind(f.to_ms)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        let entries = rows
            .into_iter()
            .map(entry_from_row)
            .collect::<Result<_, _>>()?;
        Ok((entries, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn flush_commits_everything_sent_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let meta = Meta::connect(&url).await.unwrap();
        let log = AuditLog::start(meta.clone());
        for i in 0..1500 {
            log.record(AuditRecord {
                op_time: i,
                username: "alice".into(),
                operation: if i % 2 == 0 { "push" } else { "pull" }.into(),
                resource_type: "artifact".into(),
                resource: format!("team/app:{i}"),
                project: Some("team".into()),
                success: true,
                client_ip: None,
            });
        }
        log.flush().await;
        let (page, total) = meta
            .list_audit(&AuditFilter::default(), 0, 10)
            .await
            .unwrap();
        assert_eq!(total, 1500);
        assert_eq!(page.len(), 10);
        assert_eq!(page[0].record.op_time, 1499, "newest first");
        let pushes = AuditFilter {
            operation: Some("push".into()),
            resource_contains: Some("app:14".into()),
            ..AuditFilter::default()
        };
        let (_, n) = meta.list_audit(&pushes, 0, 100).await.unwrap();
        // app:14, app:140..149 (even only), app:1400..1499 (even only)
        assert_eq!(n, 1 + 5 + 50);
    }
}
