//! Artifact listings across a project, and what every artifact listing
//! shares:
//!
//! - `/projects/{project_name_or_id}/artifacts` GET (Harbor's
//!   `listArtifactsOfProject`): the top-level artifacts of every
//!   repository of the project, newest push first.
//! - Harbor's `q` of a listing (`tags`, `labels`) and the labels of a
//!   page, for this listing and the repository's.

use std::collections::HashMap;

use berth_policy::Action;
use berth_storage::artifacts::{ArtifactFilter, ArtifactRow, TagFilter};
use berth_storage::oci;
use utoipa::OpenApi;

use super::page::{Page, Term, Q};
use super::repositories::{artifact_json, artifact_order, flag, Artifact};
use super::request::{ApiRequest, ProjectRef};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;

#[derive(OpenApi)]
#[openapi(paths(list_in_project))]
pub struct Doc;

/// The most label ids one `q` may name.
const MAX_LABELS: usize = 10;

/// Harbor's `q` of an artifact listing: `tags` and `labels` (label ids).
pub(crate) fn filter(q: &Q) -> Result<ArtifactFilter, GatewayError> {
    let tags = match q.get("tags") {
        None => TagFilter::Any,
        Some(Term::Exact(v)) if v == "*" => TagFilter::Tagged,
        Some(Term::Exact(v)) if v == "nil" => TagFilter::Untagged,
        Some(Term::Exact(v)) => TagFilter::Exact(v.clone()),
        Some(Term::Fuzzy(v)) => TagFilter::Contains(v.clone()),
        Some(Term::Range(..) | Term::List(..)) => {
            return Err(GatewayError::BadRequest(
                "`q` key `tags` takes *, nil, a tag or ~<substring>".into(),
            ))
        }
    };
    let ids = match q.get("labels") {
        None => Vec::new(),
        Some(Term::Exact(v)) => vec![v.clone()],
        Some(Term::List(vs)) => vs.clone(),
        Some(_) => {
            return Err(GatewayError::BadRequest(
                "`q` key `labels` takes a label id, or ids in parentheses: labels=(1 2)".into(),
            ))
        }
    };
    let labels = ids
        .iter()
        .map(|v| super::request::path_id(v, "labels"))
        .collect::<Result<Vec<i64>, _>>()?;
    if labels.len() > MAX_LABELS {
        return Err(GatewayError::BadRequest(format!(
            "`q` key `labels` takes at most {MAX_LABELS} label ids"
        )));
    }
    Ok(ArtifactFilter { tags, labels })
}

/// Fills in the labels of a page's artifacts (one query per repository
/// on the page).
pub(crate) async fn add_labels(
    app: &App,
    rows: &[ArtifactRow],
    items: &mut [Artifact],
) -> Result<(), GatewayError> {
    let mut by_repo: HashMap<i64, Vec<&oci::Digest>> = HashMap::new();
    for a in rows {
        by_repo.entry(a.repo_id).or_default().push(&a.digest);
    }
    let mut found = HashMap::new();
    for (repo_id, digests) in by_repo {
        for (digest, labels) in super::labels::of_artifacts(app, repo_id, &digests).await? {
            found.insert((repo_id, digest), labels);
        }
    }
    for (a, item) in rows.iter().zip(items.iter_mut()) {
        item.labels = Some(
            found
                .remove(&(a.repo_id, a.digest.clone()))
                .unwrap_or_default(),
        );
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/artifacts", tag = "project",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("q" = Option<String>, Query, description = "Harbor query: tags=* (tagged), tags=nil (untagged), tags=<exact>, tags=~<substring>; labels=<id> or labels=(<id> <id>) for artifacts carrying every one"),
        ("with_tag" = Option<bool>, Query, description = "Include the tags (default true)"),
        ("with_label" = Option<bool>, Query, description = "Include the labels (default false)"),
        ("sort" = Option<String>, Query, description = "-push_time (default), push_time, -pull_time or pull_time"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, description = "Top-level artifacts of every repository of the project, newest push first unless `sort` says otherwise", body = [Artifact],
        headers(("X-Total-Count" = i64, description = "Total matching"), ("Link" = String, description = "prev/next pages"))),
        (status = 400, body = super::Errors), (status = 404, body = super::Errors),
        (status = 401, description = "Wrong credentials, or none where the project is private", body = super::Errors),
        (status = 403, description = "The caller's role does not allow this", body = super::Errors)))]
pub async fn list_in_project(
    app: &App,
    req: &ApiRequest,
    project: ProjectRef<'_>,
) -> Result<Reply, GatewayError> {
    let (row, _) = req.project(app, project, Action::Pull).await?;
    let page = Page::parse(&req.query)?;
    let with_tags = flag(req, "with_tag", true)?;
    let with_labels = flag(req, "with_label", false)?;
    let q = Q::parse(&req.query)?;
    q.reject_unknown(&["tags", "labels"])?;
    let filter = filter(&q)?;
    let order = artifact_order(req.query.get("sort"))?;
    let meta = app.registry.meta();
    let (rows, total) = meta
        .list_project_artifacts(&row.name, &filter, order, page.offset(), page.limit())
        .await?;
    let mut ids: Vec<i64> = rows.iter().map(|a| a.repo_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let names = meta.repository_names(&ids).await?;
    // A repository deleted since the page was read leaves its rows out.
    let rows: Vec<ArtifactRow> = rows
        .into_iter()
        .filter(|a| names.contains_key(&a.repo_id))
        .collect();
    let mut items: Vec<Artifact> = rows
        .iter()
        .filter_map(|a| {
            let name = names.get(&a.repo_id)?;
            Some(artifact_json(&row, a.repo_id, name, a, with_tags))
        })
        .collect();
    if with_labels {
        add_labels(app, &rows, &mut items).await?;
    }
    let path = format!("/api/v2.0/projects/{project}/artifacts");
    Ok(page.reply(&path, &req.query, &items, total))
}
