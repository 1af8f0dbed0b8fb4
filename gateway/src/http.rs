//! Request and response plumbing over Pingora's session: reading bodies,
//! building replies, streaming files.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use std::sync::Arc;

use berth_storage::{BlobBytes, StorageError};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{BoxStream, StreamExt};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use tokio::sync::mpsc;

use crate::bufpool::BufPool;
use crate::error::{BodyOf, GatewayError};
use crate::upstream::fetch::Fetch;

/// Blob reads go to the socket in pieces of this size (from a pool): large
/// enough that per-call costs vanish, small enough that 100 concurrent
/// pulls hold only tens of MiB.
pub const READ_CHUNK: usize = 512 * 1024;
/// Idle read buffers kept for reuse (64 MiB at most).
pub const POOL_IDLE: usize = 128;
/// Chunks queued ahead of the socket (one more is being read, one more
/// being written).
const READ_AHEAD: usize = 1;

pub const API_VERSION: (&str, &str) = ("Docker-Distribution-API-Version", "registry/2.0");

/// What a handler answers.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

pub enum Body {
    Empty,
    Bytes(Bytes),
    /// `len` bytes of a stored blob, as its store hands them out.
    Blob {
        bytes: BlobBytes,
        len: u64,
    },
    /// `len` bytes from `offset` of a blob being fetched from an upstream,
    /// sent as they arrive.
    Fetch {
        fetch: Arc<Fetch>,
        offset: u64,
        len: u64,
    },
    /// Only the length is known: for HEAD answers about content that is
    /// not here yet.
    Length(u64),
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply::new(status)
            .header("Content-Type", "application/json")
            .bytes(Bytes::from(value.to_string()))
    }

    pub fn body(mut self, body: Body) -> Reply {
        self.body = body;
        self
    }

    pub fn bytes(mut self, b: Bytes) -> Reply {
        self.body = Body::Bytes(b);
        self
    }

    fn body_len(&self) -> u64 {
        match &self.body {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::Blob { len, .. } | Body::Fetch { len, .. } | Body::Length(len) => *len,
        }
    }
}

/// Writes a reply. For HEAD the headers (Content-Length included) are those
/// of the GET, with no body.
pub async fn send(
    session: &mut Session,
    reply: Reply,
    head: bool,
    pool: &Arc<BufPool>,
) -> pingora::Result<()> {
    let len = reply.body_len();
    let mut resp = ResponseHeader::build(reply.status, Some(reply.headers.len() + 2))?;
    for (name, value) in &reply.headers {
        resp.append_header(*name, value.as_str())?;
    }
    resp.insert_header("Content-Length", len.to_string())?;
    let no_body = head || len == 0;
    session
        .write_response_header(Box::new(resp), no_body)
        .await?;
    if no_body {
        return Ok(());
    }
    match reply.body {
        Body::Empty | Body::Length(_) => Ok(()),
        Body::Bytes(b) => session.write_response_body(Some(b), true).await,
        Body::Blob {
            bytes: BlobBytes::File { file, offset, len },
            ..
        } => stream_file(session, pool, file, offset, len).await,
        Body::Blob {
            bytes: BlobBytes::Stream(stream),
            len,
        } => stream_object(session, stream, len).await,
        Body::Fetch { fetch, offset, len } => {
            stream_fetch(session, pool, &fetch, offset, len).await
        }
    }
}

/// Streams part of a blob while the upstream fetch writes it. A failed
/// fetch ends the response early, which every client treats as an error.
async fn stream_fetch(
    session: &mut Session,
    pool: &Arc<BufPool>,
    fetch: &Fetch,
    offset: u64,
    len: u64,
) -> pingora::Result<()> {
    let end = offset + len;
    let mut pos = offset;
    while pos < end {
        match fetch.read(pos, end, pool).await {
            Ok(Some(chunk)) => {
                pos += chunk.len() as u64;
                session.write_response_body(Some(chunk), pos == end).await?;
            }
            Ok(None) => break,
            Err(failure) => {
                tracing::warn!(digest = %fetch.digest, ?failure, "upstream fetch failed while streaming");
                return Err(pingora::Error::explain(
                    pingora::ErrorType::ReadError,
                    "upstream fetch failed",
                ));
            }
        }
    }
    Ok(())
}

/// Streams a blob from an object store to the client, as its chunks
/// arrive. A failure ends the response early, which clients treat as an
/// error (and retry with a Range).
async fn stream_object(
    session: &mut Session,
    mut stream: BoxStream<'static, Result<Bytes, StorageError>>,
    len: u64,
) -> pingora::Result<()> {
    let mut sent = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            tracing::warn!(error = %e, "object store read failed while streaming a blob");
            pingora::Error::explain(
                pingora::ErrorType::ReadError,
                "reading blob from object store",
            )
        })?;
        sent += chunk.len() as u64;
        session
            .write_response_body(Some(chunk), sent >= len)
            .await?;
    }
    if sent != len {
        return Err(pingora::Error::explain(
            pingora::ErrorType::ReadError,
            "blob object shorter than its recorded size",
        ));
    }
    Ok(())
}

/// Streams a file region to the client. A blocking thread reads ahead in
/// large pieces while the socket drains, so disk and network overlap.
async fn stream_file(
    session: &mut Session,
    pool: &Arc<BufPool>,
    mut file: File,
    offset: u64,
    len: u64,
) -> pingora::Result<()> {
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Bytes>>(READ_AHEAD);
    let pool = pool.clone();
    let reader = tokio::task::spawn_blocking(move || {
        if let Err(e) = file.seek(SeekFrom::Start(offset)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = len;
        while left > 0 {
            let want = left.min(pool.size() as u64) as usize;
            let mut buf = pool.take();
            let result = file
                .read_exact(&mut buf[..want])
                .map(|_| pool.freeze(buf, want));
            let failed = result.is_err();
            if tx.blocking_send(result).is_err() || failed {
                return;
            }
            left -= want as u64;
        }
    });
    let mut sent = 0u64;
    while let Some(chunk) = rx.recv().await {
        let chunk = chunk.map_err(|e| {
            pingora::Error::because(pingora::ErrorType::ReadError, "reading blob file", e)
        })?;
        sent += chunk.len() as u64;
        session
            .write_response_body(Some(chunk), sent == len)
            .await?;
    }
    drop(rx);
    let _ = reader.await;
    if sent != len {
        return Err(pingora::Error::explain(
            pingora::ErrorType::ReadError,
            "blob file shorter than its recorded size",
        ));
    }
    Ok(())
}

/// A request header as a string, if present and valid UTF-8.
pub fn header<'a>(session: &'a Session, name: &str) -> Option<&'a str> {
    session
        .req_header()
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
}

/// Tells a client that sent `Expect: 100-continue` to go ahead. Curl waits
/// a second for this before sending a large body.
pub async fn continue_if_expected(session: &mut Session) -> Result<(), GatewayError> {
    let expects = header(session, "expect")
        .map(|v| v.eq_ignore_ascii_case("100-continue"))
        .unwrap_or(false);
    if expects {
        session
            .as_downstream_mut()
            .write_continue_response()
            .await
            .map_err(|e| GatewayError::BodyUnreadable {
                of: BodyOf::Request,
                detail: e.to_string(),
            })?;
    }
    Ok(())
}

/// Reads a whole (small) request body, refusing more than `limit` bytes.
pub async fn read_body(session: &mut Session, limit: usize) -> Result<Bytes, GatewayError> {
    read_body_of(session, limit, BodyOf::Request).await
}

/// `read_body` for a body that is `of` something, which names the error
/// when it cannot be read.
pub async fn read_body_of(
    session: &mut Session,
    limit: usize,
    of: BodyOf,
) -> Result<Bytes, GatewayError> {
    continue_if_expected(session).await?;
    if let Some(len) = header(session, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        if len > limit {
            return Err(GatewayError::BodyTooLarge { limit });
        }
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) =
        session
            .read_request_body()
            .await
            .map_err(|e| GatewayError::BodyUnreadable {
                of,
                detail: e.to_string(),
            })?
    {
        if buf.len() + chunk.len() > limit {
            return Err(GatewayError::BodyTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
