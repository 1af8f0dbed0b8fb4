//! Discovery endpoints: tags list, catalog, referrers.

use berth_storage::oci::manifest::OCI_INDEX;
use berth_storage::oci::{Digest, RepoName};
use serde_json::{json, Value};

use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::Query;

/// Largest page served; also the page size when the client gives no `n`.
const MAX_PAGE: i64 = 10_000;

fn page_size(query: &Query) -> Result<i64, GatewayError> {
    match query.get("n") {
        None => Ok(MAX_PAGE),
        Some(n) => n
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| n.min(MAX_PAGE))
            .ok_or_else(|| {
                GatewayError::BadRequest(format!(
                    "`n={n}` is not a valid page size; use a non-negative integer"
                ))
            }),
    }
}

/// Cuts a fetched page (asked for n+1) to n and builds the `Link` header.
/// An empty page (`n=0`) has no next page: a `Link` there would point at
/// the same empty page, and a client that follows links would never stop.
fn paginate(mut items: Vec<String>, n: i64, path: &str) -> (Vec<String>, Option<String>) {
    if n == 0 {
        return (Vec::new(), None);
    }
    if items.len() as i64 > n {
        items.truncate(n as usize);
        let last = items.last().cloned().unwrap_or_default();
        let link = format!(
            "<{path}?n={n}&last={}>; rel=\"next\"",
            form_urlencoded::byte_serialize(last.as_bytes()).collect::<String>()
        );
        (items, Some(link))
    } else {
        (items, None)
    }
}

/// `GET /v2/<name>/tags/list`
pub async fn tags(app: &App, repo: &RepoName, query: &Query) -> Result<Reply, GatewayError> {
    let n = page_size(query)?;
    let found = app
        .registry
        .list_tags(repo, query.get("last"), n + 1)
        .await?;
    let (tags, link) = paginate(found, n, &format!("/v2/{repo}/tags/list"));
    let mut reply = Reply::json(200, &json!({ "name": repo.as_str(), "tags": tags }));
    if let Some(link) = link {
        reply = reply.header("Link", link);
    }
    Ok(reply)
}

/// `GET /v2/_catalog`
pub async fn catalog(app: &App, query: &Query) -> Result<Reply, GatewayError> {
    let n = page_size(query)?;
    let found = app.registry.catalog(query.get("last"), n + 1).await?;
    let (repos, link) = paginate(found, n, "/v2/_catalog");
    let mut reply = Reply::json(200, &json!({ "repositories": repos }));
    if let Some(link) = link {
        reply = reply.header("Link", link);
    }
    Ok(reply)
}

/// `GET /v2/<name>/referrers/<digest>`: always an index, empty when
/// nothing refers to the digest.
pub async fn referrers(
    app: &App,
    repo: &RepoName,
    subject: &Digest,
    query: &Query,
) -> Result<Reply, GatewayError> {
    let filter = query.get("artifactType").filter(|s| !s.is_empty());
    let found = app.registry.referrers(repo, subject, filter).await?;
    let manifests: Vec<Value> = found
        .into_iter()
        .map(|r| {
            let mut d = json!({
                "mediaType": r.media_type,
                "digest": r.digest.to_string(),
                "size": r.size,
            });
            if let Some(t) = r.artifact_type {
                d["artifactType"] = Value::String(t);
            }
            if let Some(a) = r
                .annotations
                .and_then(|a| serde_json::from_str::<Value>(&a).ok())
            {
                d["annotations"] = a;
            }
            d
        })
        .collect();
    let body = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    let mut reply = Reply::new(200)
        .header("Content-Type", OCI_INDEX)
        .bytes(body.to_string().into());
    if filter.is_some() {
        reply = reply.header("OCI-Filters-Applied", "artifactType");
    }
    Ok(reply)
}
