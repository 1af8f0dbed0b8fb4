//! Manifest endpoints: `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use berth_storage::oci::{Reference, RepoName, Tag};
use pingora::proxy::Session;

use crate::app::App;
use crate::auth::Caller;
use crate::error::{BodyOf, GatewayError};
use crate::events;
use crate::http::{header, read_body_of, Reply};
use crate::route::Query;

/// GET and HEAD: the exact bytes stored, with their media type. Manifests
/// are served as pushed; berth does not convert between formats. A GET
/// (not a HEAD) counts as a pull in the repository's statistics.
pub async fn get(
    app: &App,
    caller: &Caller,
    repo: &RepoName,
    reference: &Reference,
    is_pull: bool,
) -> Result<Reply, GatewayError> {
    let m = app.registry.get_manifest(repo, reference).await?;
    if is_pull {
        app.audit.pulled(repo.as_str(), &m.digest.to_string());
        let tag = match reference {
            Reference::Tag(t) => Some(t.as_str()),
            Reference::Digest(_) => None,
        };
        events::pulled(app, caller.name(), repo, &m.digest, tag).await;
    }
    Ok(Reply::new(200)
        .header("Content-Type", m.media_type.clone())
        .header("Docker-Content-Digest", m.digest.to_string())
        .header("ETag", format!("\"{}\"", m.digest))
        .bytes(m.content.clone()))
}

/// PUT: stores a manifest by tag or digest; `?tag=` adds tags (one
/// `OCI-Tag` header each in the reply).
pub async fn put(
    app: &App,
    session: &mut Session,
    caller: &Caller,
    repo: &RepoName,
    reference: &Reference,
    query: &Query,
) -> Result<Reply, GatewayError> {
    let tags = query
        .all("tag")
        .map(|t| t.parse::<Tag>())
        .collect::<Result<Vec<_>, _>>()?;
    let content_type = header(session, "content-type").map(str::to_owned);
    let body = read_body_of(session, app.registry.max_manifest_size(), BodyOf::Manifest).await?;
    let (digest, subject) = app
        .registry
        .put_manifest(repo, reference, content_type.as_deref(), &body, &tags)
        .await?;
    let mut reply = Reply::new(201)
        .header(
            "Location",
            app.url(&format!("/v2/{repo}/manifests/{digest}")),
        )
        .header("Docker-Content-Digest", digest.to_string());
    if let Some(subject) = subject {
        reply = reply.header("OCI-Subject", subject.to_string());
    }
    for tag in &tags {
        reply = reply.header("OCI-Tag", tag.to_string());
    }
    // Event-based replication copies what was tagged; webhooks hear of
    // each tag (or of the digest, untagged).
    let mut named: Vec<&str> = tags.iter().map(|t| t.as_str()).collect();
    if let Reference::Tag(t) = reference {
        named.insert(0, t.as_str());
    }
    events::pushed(app, caller.name(), repo, &digest, &named).await;
    Ok(reply)
}

/// DELETE by digest removes the manifest and its tags; by tag, the tag.
pub async fn delete(
    app: &App,
    caller: &Caller,
    repo: &RepoName,
    reference: &Reference,
) -> Result<Reply, GatewayError> {
    // What the reference was, for replication's deletes (a tag that moved
    // at the destination is not deleted there).
    let digest = match reference {
        Reference::Digest(d) => Some(d.clone()),
        Reference::Tag(_) => app
            .registry
            .get_manifest(repo, reference)
            .await
            .ok()
            .map(|m| m.digest.clone()),
    };
    app.registry.delete_manifest(repo, reference).await?;
    match (reference, digest) {
        (Reference::Tag(t), Some(digest)) => events::tag_deleted(app, repo, t.as_str(), &digest),
        (Reference::Digest(_), Some(digest)) => {
            events::artifact_deleted(app, caller.name(), repo, &digest).await
        }
        (_, None) => {}
    }
    Ok(Reply::new(202))
}
