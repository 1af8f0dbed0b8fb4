//! Blob upload endpoints: `POST /v2/<name>/blobs/uploads/` (start, mount or
//! monolithic), `PATCH`/`PUT`/`GET`/`DELETE` on the upload's location.

use std::time::Instant;

use tokio::time::timeout_at;

use berth_policy::Action;
use berth_storage::oci::{Digest, RepoName};
use berth_storage::{ChunkWriter, StorageError, UploadId};
use pingora::proxy::Session;

use crate::app::App;
use crate::auth::{check, Caller};
use crate::error::{BodyOf, GatewayError};
use crate::http::{continue_if_expected, header, Reply};
use crate::route::Query;
use crate::v2::pace::BodyPace;

fn upload_location(app: &App, repo: &RepoName, id: UploadId) -> String {
    app.url(&format!("/v2/{repo}/blobs/uploads/{id}"))
}

/// `Range: 0-<last byte>` as registries report upload progress.
fn range_header(len: u64) -> String {
    format!("0-{}", len.saturating_sub(1))
}

fn in_progress(app: &App, status: u16, repo: &RepoName, id: UploadId, len: u64) -> Reply {
    Reply::new(status)
        .header("Location", upload_location(app, repo, id))
        .header("Range", range_header(len))
        .header("Docker-Upload-UUID", id.to_string())
}

fn created(app: &App, repo: &RepoName, digest: &Digest) -> Reply {
    Reply::new(201)
        .header("Location", app.url(&format!("/v2/{repo}/blobs/{digest}")))
        .header("Docker-Content-Digest", digest.to_string())
}

fn parse_digest_param(query: &Query, key: &str) -> Result<Option<Digest>, GatewayError> {
    query
        .get(key)
        .map(|d| d.parse::<Digest>().map_err(GatewayError::from))
        .transpose()
}

/// POST: a mount (`?mount=&from=`), a monolithic upload (`?digest=`), or a
/// new session.
pub async fn start(
    app: &App,
    session: &mut Session,
    caller: &Caller,
    repo: &RepoName,
    query: &Query,
) -> Result<Reply, GatewayError> {
    if let Some(digest) = parse_digest_param(query, "mount")? {
        if mount(app, caller, repo, &digest, query.get("from")).await? {
            return Ok(created(app, repo, &digest));
        }
        // Not mountable: fall back to a regular upload, as the spec says.
    }
    let id = app.registry.start_upload_as(repo, caller.name()).await?;
    match parse_digest_param(query, "digest")? {
        Some(digest) => {
            let writer = app.registry.append(repo, id, None).await?;
            let writer = match pump(app, session, writer).await? {
                Pumped::Done(writer) => writer,
                Pumped::TooSlow(writer, slow) => {
                    // The client never learnt this session's location, so
                    // it cannot resume: the session goes.
                    drop(writer);
                    app.registry.cancel_upload(repo, id).await?;
                    return Err(slow.error(0, None));
                }
            };
            complete(app, repo, id, writer, &digest).await?;
            Ok(created(app, repo, &digest))
        }
        None => Ok(in_progress(app, 202, repo, id, 0)),
    }
}

/// Links `digest` into `repo` from `from`, or, without `from`, from any
/// repository holding it that the caller may pull from.
async fn mount(
    app: &App,
    caller: &Caller,
    repo: &RepoName,
    digest: &Digest,
    from: Option<&str>,
) -> Result<bool, GatewayError> {
    let candidates = match from {
        Some(from) => match from.parse::<RepoName>() {
            Ok(name) => vec![name],
            // A bad `from` cannot be mounted from; the client uploads instead.
            Err(_) => return Ok(false),
        },
        None => app.registry.repos_with_blob(digest).await?,
    };
    for source in candidates {
        match check(app, caller, Action::Pull, Some(&source)).await {
            Ok(()) => {
                if app.registry.mount_blob(repo, digest, &source).await? {
                    return Ok(true);
                }
            }
            // A token issued without the named source, which its holder
            // may read (a client that reuses its push token): ask for one
            // that covers both, as distribution does, rather than have
            // the client upload what is already here.
            Err(GatewayError::InsufficientScope { .. }) if from.is_some() => {
                return Err(GatewayError::InsufficientScope {
                    scope: Some(format!(
                        "{} repository:{source}:pull",
                        crate::auth::scope_for(Some(repo), Action::Push)
                    )),
                });
            }
            // Not readable: as if it were not there.
            Err(_) => {}
        }
    }
    Ok(false)
}

/// How a body ended that did not fail.
enum Pumped {
    Done(ChunkWriter),
    /// Cut off for falling behind `server.body_min_rate`; what arrived is
    /// in the writer.
    TooSlow(ChunkWriter, Slow),
}

/// The figures of a body cut off for its slowness, for the error.
struct Slow {
    received: u64,
    elapsed_s: u64,
    pace: BodyPace,
}

impl Slow {
    fn error(&self, kept: u64, location: Option<String>) -> GatewayError {
        GatewayError::BodyTooSlow {
            received: self.received,
            elapsed_s: self.elapsed_s,
            min_rate: self.pace.min_rate,
            timeout_s: self.pace.timeout.as_secs(),
            kept,
            location,
        }
    }
}

/// Streams the request body into the upload, as long as it keeps the pace
/// of `server.body_min_rate`.
async fn pump(
    app: &App,
    session: &mut Session,
    mut writer: ChunkWriter,
) -> Result<Pumped, GatewayError> {
    continue_if_expected(session).await?;
    let pace = app.body_pace;
    let started = Instant::now();
    let mut received = 0u64;
    loop {
        let deadline = pace.deadline(started, received);
        match timeout_at(deadline.into(), session.read_request_body()).await {
            Ok(Ok(Some(chunk))) => {
                received += chunk.len() as u64;
                writer.write(chunk).await;
            }
            Ok(Ok(None)) => return Ok(Pumped::Done(writer)),
            // Dropping the writer keeps what arrived; the client may resume.
            Ok(Err(e)) => {
                return Err(GatewayError::BodyUnreadable {
                    of: BodyOf::Upload,
                    detail: e.to_string(),
                })
            }
            Err(_) => {
                let slow = Slow {
                    received,
                    elapsed_s: started.elapsed().as_secs(),
                    pace,
                };
                return Ok(Pumped::TooSlow(writer, slow));
            }
        }
    }
}

/// Pumps a chunk's body; a body too slow is written as far as it came and
/// answered with where to resume.
async fn pump_chunk(
    app: &App,
    session: &mut Session,
    repo: &RepoName,
    id: UploadId,
    writer: ChunkWriter,
) -> Result<ChunkWriter, GatewayError> {
    match pump(app, session, writer).await? {
        Pumped::Done(writer) => Ok(writer),
        Pumped::TooSlow(writer, slow) => {
            let kept = app.registry.end_chunk(id, writer).await?;
            Err(slow.error(kept, Some(upload_location(app, repo, id))))
        }
    }
}

/// Parses `Content-Range: <start>-<end>`; checks it against Content-Length.
fn content_range(session: &Session) -> Result<Option<u64>, GatewayError> {
    let Some(raw) = header(session, "content-range") else {
        return Ok(None);
    };
    parse_content_range(raw, header(session, "content-length")).map(Some)
}

/// [`content_range`]'s parsing of the header values: the chunk's start.
pub fn parse_content_range(raw: &str, content_length: Option<&str>) -> Result<u64, GatewayError> {
    let spec = raw
        .trim()
        .trim_start_matches("bytes=")
        .trim_start_matches("bytes ");
    let spec = spec.split('/').next().unwrap_or(spec);
    let (a, b) = spec
        .split_once('-')
        .ok_or_else(|| GatewayError::ContentRangeInvalid(raw.to_owned()))?;
    let (start, end) = match (a.trim().parse::<u64>(), b.trim().parse::<u64>()) {
        (Ok(s), Ok(e)) if e >= s => (s, e),
        _ => return Err(GatewayError::ContentRangeInvalid(raw.to_owned())),
    };
    // `0-18446744073709551615` covers 2^64 bytes: more than any
    // Content-Length says (and than `end - start + 1` holds).
    let covers = u128::from(end - start) + 1;
    if let Some(len) = content_length.and_then(|v| v.parse::<u64>().ok()) {
        if u128::from(len) != covers {
            return Err(GatewayError::ContentRangeInvalid(format!(
                "{raw} (covers {covers} bytes, but Content-Length is {len})"
            )));
        }
    }
    Ok(start)
}

/// Answers an out-of-order chunk with 416 and where the upload stands.
fn offset_error(app: &App, repo: &RepoName, id: UploadId, e: GatewayError) -> GatewayError {
    match e {
        GatewayError::Storage(StorageError::UploadOffsetMismatch { expected, got }) => {
            GatewayError::UploadOffset {
                expected,
                got,
                location: upload_location(app, repo, id),
            }
        }
        other => other,
    }
}

/// PATCH: appends a chunk (with Content-Range) or a stream (without).
pub async fn patch(
    app: &App,
    session: &mut Session,
    repo: &RepoName,
    id: UploadId,
) -> Result<Reply, GatewayError> {
    let start = content_range(session)?;
    let writer = app
        .registry
        .append(repo, id, start)
        .await
        .map_err(|e| offset_error(app, repo, id, e.into()))?;
    let writer = pump_chunk(app, session, repo, id, writer).await?;
    let len = app.registry.end_chunk(id, writer).await?;
    Ok(in_progress(app, 202, repo, id, len))
}

/// PUT `?digest=`: the final (possibly empty) chunk, then verify and commit.
pub async fn put(
    app: &App,
    session: &mut Session,
    repo: &RepoName,
    id: UploadId,
    query: &Query,
) -> Result<Reply, GatewayError> {
    let digest = parse_digest_param(query, "digest")?.ok_or(GatewayError::DigestRequired)?;
    let start = content_range(session)?;
    let writer = app
        .registry
        .append(repo, id, start)
        .await
        .map_err(|e| offset_error(app, repo, id, e.into()))?;
    let writer = pump_chunk(app, session, repo, id, writer).await?;
    complete(app, repo, id, writer, &digest).await?;
    Ok(created(app, repo, &digest))
}

/// Verifies the digest and commits the blob; a completed upload is timed
/// for the `berth_upload_duration_seconds` histogram.
async fn complete(
    app: &App,
    repo: &RepoName,
    id: UploadId,
    writer: ChunkWriter,
    digest: &Digest,
) -> Result<(), GatewayError> {
    let started = Instant::now();
    app.registry
        .complete_upload(repo, id, writer, digest)
        .await?;
    app.metrics.upload_completed(started.elapsed());
    Ok(())
}

/// GET: where the upload stands (204 with Range).
pub async fn status(app: &App, repo: &RepoName, id: UploadId) -> Result<Reply, GatewayError> {
    let len = app.registry.upload_len(repo, id).await?;
    Ok(in_progress(app, 204, repo, id, len))
}

/// DELETE: cancels the upload.
pub async fn cancel(app: &App, repo: &RepoName, id: UploadId) -> Result<Reply, GatewayError> {
    app.registry.cancel_upload(repo, id).await?;
    Ok(Reply::new(204))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("0-99", Some("100")).unwrap(), 0);
        assert_eq!(parse_content_range("bytes 100-199/*", None).unwrap(), 100);
        assert!(parse_content_range("5-4", None).is_err());
        assert!(parse_content_range("10-19", Some("5")).is_err());
        // 2^64 bytes: `end - start + 1` overflowed (a panic with overflow
        // checks; with Content-Length 0, accepted as an empty chunk).
        assert!(parse_content_range("0-18446744073709551615", Some("0")).is_err());
        assert!(
            parse_content_range("0-18446744073709551615", Some("18446744073709551615")).is_err()
        );
    }
}
