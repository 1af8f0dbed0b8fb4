//! Blob endpoints: `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.

use berth_storage::oci::{Digest, RepoName};
use pingora::proxy::Session;

use crate::app::App;
use crate::error::GatewayError;
use crate::http::{header, Body, Reply};

/// GET and HEAD: the blob's bytes, whole or one `Range`; or, from an
/// object store with `redirect` on, a 307 to a pre-signed URL for a GET.
pub async fn get(
    app: &App,
    session: &Session,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Reply, GatewayError> {
    let blob = app.registry.open_blob(repo, digest).await?;
    let size = blob.size;
    let head = session.req_header().method == http::Method::HEAD;
    if !head {
        if let Some(url) = blob.redirect().await? {
            return Ok(Reply::new(307)
                .header("Location", url)
                .header("Docker-Content-Digest", digest.to_string()));
        }
    }
    let range = match header(session, "range") {
        Some(r) => parse_range(r, size)?,
        None => None,
    };
    let base = |status| {
        Reply::new(status)
            .header("Content-Type", "application/octet-stream")
            .header("Docker-Content-Digest", digest.to_string())
            .header("ETag", format!("\"{digest}\""))
            .header("Accept-Ranges", "bytes")
    };
    let (reply, offset, len) = match range {
        None => (base(200), 0, size),
        Some((start, end)) => (
            base(206).header("Content-Range", format!("bytes {start}-{end}/{size}")),
            start,
            end - start + 1,
        ),
    };
    Ok(reply.body(Body::Blob {
        bytes: blob.bytes(offset, len),
        len,
    }))
}

/// DELETE: unlinks the blob from the repository; bytes go at GC.
pub async fn delete(app: &App, repo: &RepoName, digest: &Digest) -> Result<Reply, GatewayError> {
    app.registry.delete_blob(repo, digest).await?;
    Ok(Reply::new(202).header("Docker-Content-Digest", digest.to_string()))
}

/// Parses a single `bytes=` range against a blob of `size` bytes; returns
/// the inclusive byte span. Multi-range requests are served whole.
pub fn parse_range(value: &str, size: u64) -> Result<Option<(u64, u64)>, GatewayError> {
    let unsatisfiable = GatewayError::RangeNotSatisfiable { size };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Err(unsatisfiable);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec
        .split_once('-')
        .ok_or(GatewayError::RangeNotSatisfiable { size })?;
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| GatewayError::RangeNotSatisfiable { size })
    };
    let (start, end) = if a.is_empty() {
        // Suffix: the last N bytes.
        let n = num(b)?;
        if n == 0 || size == 0 {
            return Err(unsatisfiable);
        }
        (size - n.min(size), size - 1)
    } else {
        let start = num(a)?;
        let end = if b.is_empty() { u64::MAX } else { num(b)? };
        if start > end || start >= size {
            return Err(unsatisfiable);
        }
        (start, end.min(size - 1))
    };
    Ok(Some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range("bytes=-1000", 100).unwrap(), Some((0, 99)));
        assert_eq!(parse_range("bytes=50-5000", 100).unwrap(), Some((50, 99)));
        assert_eq!(parse_range("bytes=0-1,5-6", 100).unwrap(), None);
        for bad in [
            "bytes=50-0",
            "bytes=100-200",
            "bytes=-0",
            "items=0-1",
            "bytes=x-1",
        ] {
            assert!(
                matches!(
                    parse_range(bad, 100),
                    Err(GatewayError::RangeNotSatisfiable { size: 100 })
                ),
                "{bad}"
            );
        }
        assert!(parse_range("bytes=0-0", 0).is_err());
    }
}
