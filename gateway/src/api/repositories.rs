//! Repositories, artifacts and tags of a project (Harbor's `repository`,
//! `artifact` and `tag` APIs):
//!
//! - `/projects/{project_name_or_id}/repositories` GET
//! - `.../repositories/{repository_name}` GET, DELETE
//! - `.../repositories/{repository_name}/artifacts` GET
//! - `.../artifacts/{reference}` GET, DELETE
//! - `.../artifacts/{reference}/tags` GET, POST
//! - `.../artifacts/{reference}/tags/{tag_name}` DELETE
//! - `.../artifacts/{reference}/labels[/{label_id}]` (in `labels`)
//!
//! `repository_name` is the name without the project (`app/api` in
//! `team/app/api`). As in Harbor, its slashes must be encoded (`%2F`, or
//! `%252F`): an unencoded slash starts a new path segment, and the path
//! then names no endpoint (404, with a hint).
//!
//! Every change drops the /v2 caches, so the registry API does not serve
//! what was deleted or miss what was tagged.

use std::collections::BTreeMap;

use berth_policy::Action;
use berth_storage::artifacts::{
    ArtifactDeletion, ArtifactOrder, ArtifactRow, RepositoryFilter, RepositoryRow, TagAddition,
    TagRow,
};
use berth_storage::oci;
use berth_storage::projects::ProjectRow;
use pingora::http::Method;
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::page::{Page, Q};
use super::request::{read_json, time, ApiRequest, ProjectRef};
use crate::app::App;
use crate::error::GatewayError;
use crate::events;
use crate::http::Reply;

#[derive(OpenApi)]
#[openapi(
    paths(
        list,
        get,
        delete,
        list_artifacts,
        get_artifact,
        delete_artifact,
        list_tags,
        create_tag,
        delete_tag
    ),
    components(schemas(Repository, Artifact, Tag, Reference, Platform, NewTag))
)]
pub struct Doc;

/// Harbor's `Repository`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Repository {
    pub id: i64,
    pub project_id: i64,
    /// The full name, project included (`team/app`).
    pub name: String,
    pub description: String,
    /// Top-level artifacts (an index's children are not counted).
    pub artifact_count: i64,
    pub pull_count: i64,
    pub creation_time: String,
    pub update_time: String,
}

/// Harbor's `Artifact`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Artifact {
    pub id: i64,
    /// `IMAGE` for container images and image indexes, otherwise `UNKNOWN`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The config's media type (image manifests), else the manifest's.
    pub media_type: String,
    pub manifest_media_type: String,
    /// `artifactType`, or the config's media type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub project_id: i64,
    pub repository_id: i64,
    pub repository_name: String,
    pub digest: String,
    /// Bytes: the manifest and everything it references, each blob once.
    pub size: i64,
    pub push_time: String,
    /// `0001-01-01T00:00:00.000Z` when never pulled, as Harbor.
    pub pull_time: String,
    /// `null` when listed with `with_tag=false`.
    pub tags: Option<Vec<Tag>>,
    /// The manifests of an index.
    pub references: Vec<Reference>,
    pub annotations: BTreeMap<String, String>,
    #[schema(value_type = Object)]
    pub extra_attrs: serde_json::Map<String, serde_json::Value>,
    /// With `with_label=true` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<super::labels::Label>>,
}

/// Harbor's `Tag`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Tag {
    pub id: i64,
    pub repository_id: i64,
    pub artifact_id: i64,
    pub name: String,
    pub push_time: String,
    pub pull_time: String,
    /// Immutability rules are not supported: always false.
    pub immutable: bool,
}

/// Harbor's `Reference`: a child of an index.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Reference {
    pub parent_id: i64,
    /// 0 when the child is not stored in the repository.
    pub child_id: i64,
    pub child_digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// Harbor's `Platform`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(rename = "os.version", skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", skip_serializing_if = "Option::is_none")]
    pub os_features: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// Harbor's `NewTag`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewTag {
    #[serde(default)]
    pub name: Option<String>,
}

/// What Harbor shows for a time that never happened.
const NEVER: &str = "0001-01-01T00:00:00.000Z";

/// Config media types of container images.
const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

fn pull_time(at: Option<i64>) -> String {
    at.map_or_else(|| NEVER.to_owned(), time)
}

fn repository_json(project: &ProjectRow, r: &RepositoryRow) -> Repository {
    Repository {
        id: r.id,
        project_id: project.id,
        name: r.name.to_string(),
        description: String::new(),
        artifact_count: r.artifact_count,
        pull_count: r.pull_count,
        creation_time: time(r.created_at),
        update_time: time(r.updated_at),
    }
}

fn tag_json(t: &TagRow) -> Tag {
    Tag {
        id: t.id,
        repository_id: t.repo_id,
        artifact_id: t.artifact_id,
        name: t.name.to_string(),
        push_time: time(t.pushed_at),
        pull_time: pull_time(t.pulled_at),
        immutable: false,
    }
}

pub(crate) fn artifact_json(
    project: &ProjectRow,
    repo_id: i64,
    repo_name: &oci::RepoName,
    a: &ArtifactRow,
    with_tags: bool,
) -> Artifact {
    let image = a.is_index()
        || a.artifact_type
            .as_deref()
            .is_some_and(|t| IMAGE_CONFIGS.contains(&t));
    Artifact {
        id: a.id,
        kind: if image { "IMAGE" } else { "UNKNOWN" }.to_owned(),
        media_type: a
            .config_media_type
            .clone()
            .unwrap_or_else(|| a.manifest_media_type.clone()),
        manifest_media_type: a.manifest_media_type.clone(),
        artifact_type: a.artifact_type.clone(),
        project_id: project.id,
        repository_id: repo_id,
        repository_name: repo_name.to_string(),
        digest: a.digest.to_string(),
        size: a.size,
        push_time: time(a.pushed_at),
        pull_time: pull_time(a.pulled_at),
        tags: with_tags.then(|| a.tags.iter().map(tag_json).collect()),
        references: a
            .children
            .iter()
            .map(|c| Reference {
                parent_id: a.id,
                child_id: c.id.unwrap_or(0),
                child_digest: c.digest.to_string(),
                platform: c.platform.as_ref().map(|p| Platform {
                    architecture: p.architecture.clone(),
                    os: p.os.clone(),
                    os_version: p.os_version.clone(),
                    os_features: p.os_features.clone(),
                    variant: p.variant.clone(),
                }),
            })
            .collect(),
        annotations: a.annotations.iter().cloned().collect(),
        extra_attrs: serde_json::Map::new(),
        labels: None,
    }
}

fn json_reply<T: Serialize>(status: u16, value: &T) -> Reply {
    Reply::json(status, &serde_json::to_value(value).unwrap_or_default())
}

/// A boolean query parameter, or a 400 naming it.
pub(crate) fn flag(req: &ApiRequest, key: &str, default: bool) -> Result<bool, GatewayError> {
    match req.query.get(key) {
        None | Some("") => Ok(default),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(GatewayError::BadRequest(format!(
            "`{key}` must be true or false, not `{other}`"
        ))),
    }
}

/// Routes `/projects/{p}/repositories/...`; `rest` is what follows
/// `repositories`, with encoded slashes already decoded.
pub async fn route(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    project: &str,
    rest: &[&str],
) -> Result<Reply, GatewayError> {
    let method = session.req_header().method.clone();
    let m = &method;
    let project = ProjectRef::name_or_id(session, project);
    match rest {
        [] if m == Method::GET => list(app, req, project).await,
        [repo] if m == Method::GET => get(app, req, project, repo).await,
        [repo] if m == Method::DELETE => delete(app, req, project, repo).await,
        [repo, "artifacts"] if m == Method::GET => list_artifacts(app, req, project, repo).await,
        [repo, "artifacts", r] if m == Method::GET => {
            get_artifact(app, req, project, repo, r).await
        }
        [repo, "artifacts", r] if m == Method::DELETE => {
            delete_artifact(app, req, project, repo, r).await
        }
        [repo, "artifacts", r, "tags"] if m == Method::GET => {
            list_tags(app, req, project, repo, r).await
        }
        [repo, "artifacts", r, "tags"] if m == Method::POST => {
            create_tag(app, session, req, project, repo, r).await
        }
        [repo, "artifacts", r, "tags", tag] if m == Method::DELETE => {
            delete_tag(app, req, project, repo, r, tag).await
        }
        [repo, "artifacts", r, "labels"] if m == Method::POST => {
            super::labels::add_to_artifact(app, session, req, project, repo, r).await
        }
        [repo, "artifacts", r, "labels", id] if m == Method::DELETE => {
            super::labels::remove_from_artifact(app, req, project, repo, r, id).await
        }
        []
        | [_]
        | [_, "artifacts"]
        | [_, "artifacts", _]
        | [_, "artifacts", _, "tags"]
        | [_, "artifacts", _, "tags", _]
        | [_, "artifacts", _, "labels"]
        | [_, "artifacts", _, "labels", _] => Err(GatewayError::MethodNotAllowed {
            method: method.to_string(),
        }),
        _ => Err(GatewayError::ApiNotFound(format!(
            "no such endpoint: {}; a repository name's slashes must be encoded as %2F \
             (e.g. /api/v2.0/projects/team/repositories/app%2Fapi/artifacts)",
            session.req_header().uri.path()
        ))),
    }
}

/// The project (checked for `action`) and the repository's full name.
pub(crate) async fn target(
    app: &App,
    req: &ApiRequest,
    project: ProjectRef<'_>,
    repo: &str,
    action: Action,
) -> Result<(ProjectRow, oci::RepoName), GatewayError> {
    let (row, _) = req.project(app, project, action).await?;
    let name: oci::RepoName = format!("{}/{repo}", row.name).parse()?;
    Ok((row, name))
}

pub(crate) async fn repository(
    app: &App,
    name: &oci::RepoName,
) -> Result<RepositoryRow, GatewayError> {
    app.registry
        .meta()
        .repository(name)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("repository `{name}` not found")))
}

/// The repository and the digest a reference names in it, if the
/// repository has that artifact.
pub(crate) async fn artifact_in(
    app: &App,
    name: &oci::RepoName,
    reference: &str,
) -> Result<(RepositoryRow, oci::Digest), GatewayError> {
    let repo = repository(app, name).await?;
    let digest = resolve(app, &repo, reference).await?;
    Ok((repo, digest))
}

/// The digest a reference names, if the repository has that artifact.
async fn resolve(
    app: &App,
    repo: &RepositoryRow,
    reference: &str,
) -> Result<oci::Digest, GatewayError> {
    let reference: oci::Reference = reference.parse()?;
    let meta = app.registry.meta();
    let found = match &reference {
        oci::Reference::Digest(d) => meta.has_artifact(repo.id, d).await?.then(|| d.clone()),
        oci::Reference::Tag(t) => meta.tagged_digest(repo.id, t).await?,
    };
    found.ok_or_else(|| {
        let sep = if matches!(reference, oci::Reference::Digest(_)) {
            "@"
        } else {
            ":"
        };
        GatewayError::ApiNotFound(format!(
            "artifact `{}{sep}{reference}` not found",
            repo.name
        ))
    })
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/repositories", tag = "repository",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("q" = Option<String>, Query, description = "Harbor query on the full name: name=<exact>, name=~<substring>"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, description = "The project's repositories, by name", body = [Repository],
        headers(("X-Total-Count" = i64, description = "Total matching"), ("Link" = String, description = "prev/next pages"))),
        (status = 400, body = super::Errors), (status = 404, body = super::Errors),
        (status = 401, description = "Wrong credentials, or none where the project is private", body = super::Errors),
        (status = 403, description = "The caller's role does not allow this", body = super::Errors)))]
pub async fn list(
    app: &App,
    req: &ApiRequest,
    project: ProjectRef<'_>,
) -> Result<Reply, GatewayError> {
    let (row, _) = req.project(app, project, Action::Pull).await?;
    let page = Page::parse(&req.query)?;
    let q = Q::parse(&req.query)?;
    q.reject_unknown(&["name"])?;
    let (exact_name, name_contains) = q.name_filter("name");
    let filter = RepositoryFilter {
        exact_name,
        name_contains,
    };
    let (rows, total) = app
        .registry
        .meta()
        .list_repositories(&row.name, &filter, page.offset(), page.limit())
        .await?;
    let items: Vec<_> = rows.iter().map(|r| repository_json(&row, r)).collect();
    let path = format!("/api/v2.0/projects/{project}/repositories");
    Ok(page.reply(&path, &req.query, &items, total))
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/repositories/{repository_name}", tag = "repository",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("repository_name" = String, Path, description = "Name without the project; encode `/` as %2F")),
    responses((status = 200, body = Repository), (status = 400, body = super::Errors),
        (status = 404, body = super::Errors),
        (status = 401, description = "Wrong credentials, or none where the project is private", body = super::Errors),
        (status = 403, description = "The caller's role does not allow this", body = super::Errors)))]
pub async fn get(
    app: &App,
    req: &ApiRequest,
    project: ProjectRef<'_>,
    repo: &str,
) -> Result<Reply, GatewayError> {
    let (row, name) = target(app, req, project, repo, Action::Pull).await?;
    let r = repository(app, &name).await?;
    Ok(json_reply(200, &repository_json(&row, &r)))
}

#[utoipa::path(delete, path = "/api/v2.0/projects/{project_name_or_id}/repositories/{repository_name}", tag = "repository",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("repository_name" = String, Path, description = "Name without the project; encode `/` as %2F")),
    responses((status = 200, description = "Deleted with its artifacts, tags and blob links; blob bytes stay until garbage collection"),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors),
        (status = 400, description = "Invalid name, reference, query or body", body = super::Errors),
        (status = 401, description = "Wrong credentials, or none where the project is private", body = super::Errors)))]
pub async fn delete(
    app: &App,
    req: &ApiRequest,
    project: ProjectRef<'_>,
    repo: &str,
) -> Result<Reply, GatewayError> {
    let (row, name) = target(app, req, project, repo, Action::Delete).await?;
    let deleted = app.registry.meta().delete_repository(&name).await?;
    req.audit(
        app,
        "delete",
        "repository",
        name.as_str(),
        Some(&row.name),
        deleted,
    );
    if !deleted {
        return Err(GatewayError::ApiNotFound(format!(
            "repository `{name}` not found"
        )));
    }
    app.registry.forget_content().await;
    Ok(Reply::new(200))
}

/// Harbor's `sort` of an artifact listing (absent: newest push first).
pub fn artifact_order(sort: Option<&str>) -> Result<ArtifactOrder, GatewayError> {
    let Some(sort) = sort else {
        return Ok(ArtifactOrder::default());
    };
    ArtifactOrder::parse(sort).ok_or_else(|| {
        GatewayError::BadRequest(format!(
            "`sort` `{sort}` is not supported for artifacts; use one of {}",
            ArtifactOrder::names().collect::<Vec<_>>().join(", ")
        ))
    })
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/repositories/{repository_name}/artifacts", tag = "artifact",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("repository_name" = String, Path, description = "Name without the project; encode `/` as %2F"),
        ("q" = Option<String>, Query, description = "Harbor query: tags=* (tagged), tags=nil (untagged), tags=<exact>, tags=~<substring>; labels=<id> or labels=(<id> <id>) for artifacts carrying every one"),
        ("with_tag" = Option<bool>, Query, description = "Include the tags (default true)"),
        ("with_label" = Option<bool>, Query, description = "Include the labels (default false)"),
        ("sort" = Option<String>, Query, description = "-push_time (default), push_time, -pull_time or pull_time"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, description = "Top-level artifacts (not an index's children), newest push first unless `sort` says otherwise", body = [Artifact],
        headers(("X-Total-Count" = i64, description = "Total matching"), ("Link" = String, description = "prev/next pages"))),
        (status = 400, body = super::Errors), (status = 404, body = super::Errors),
        (status = 401, description = "Wrong credentials, or none where the project is private", body = super::Errors),
        (status = 403, description = "The caller's role does not allow this", body = super::Errors)))]
pub async fn list_artifacts(
    app: &App,
    req: &ApiRequest,
    project: ProjectRef<'_>,
    repo: &str,
) -> Result<Reply, GatewayError> {
    let (row, name) = target(app, req, project, repo, Action::Pull).await?;
    let page = Page::parse(&req.query)?;
    let with_tags = flag(req, "with_tag", true)?;
    let with_labels = flag(req, "with_label", false)?;
    let q = Q::parse(&req.query)?;
    q.reject_unknown(&["tags", "labels"])?;
    let filter = super::artifacts::filter(&q)?;
    let order = artifact_order(req.query.get("sort"))?;
    // The id alone: the repository's artifact count would count the
    // same index entries as the page's total, a second time.
    let repo_id = app
        .registry
        .meta()
        .repository_id(&name)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("repository `{name}` not found")))?;
    let (rows, total) = app
        .registry
        .meta()
        .list_artifacts(repo_id, &filter, order, page.offset(), page.limit())
        .await?;
    let mut items: Vec<_> = rows
        .iter()
        .map(|a| artifact_json(&row, repo_id, &name, a, with_tags))
        .collect();
    if with_labels {
        super::artifacts::add_labels(app, &rows, &mut items).await?;
    }
    let path = format!(
        "/api/v2.0/projects/{project}/repositories/{}/artifacts",
        encode(repo)
    );
    Ok(page.reply(&path, &req.query, &items, total))
}

/// A repository name as one path segment.
fn encode(repo: &str) -> String {
    repo.replace('/', "%2F")
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/repositories/{repository_name}/artifacts/{reference}", tag = "artifact",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("repository_name" = String, Path, description = "Name without the project; encode `/` as %2F"),
        ("reference" = String, Path, description = "Digest or tag"),
        ("with_tag" = Option<bool>, Query, description = "Include the tags (default true)"),
        ("with_label" = Option<bool>, Query, description = "Include the labels (default false)")),
    responses((status = 200, body = Artifact), (status = 400, body = super::Errors),
        (status = 404, body = super::Errors),
        (status = 401, description = "Wrong credentials, or none where the project is private", body = super::Errors),
        (status = 403, description = "The caller's role does not allow this", body = super::Errors)))]
pub async fn get_artifact(
    app: &App,
    req: &ApiRequest,
    project: ProjectRef<'_>,
    repo: &str,
    reference: &str,
) -> Result<Reply, GatewayError> {
    let (row, name) = target(app, req, project, repo, Action::Pull).await?;
    let with_tags = flag(req, "with_tag", true)?;
    let with_labels = flag(req, "with_label", false)?;
    let (r, digest) = artifact_in(app, &name, reference).await?;
    let artifact = app
        .registry
        .meta()
        .artifact(r.id, &digest)
        .await?
        .ok_or_else(|| {
            GatewayError::ApiNotFound(format!("artifact `{name}@{digest}` not found"))
        })?;
    let mut item = [artifact_json(&row, r.id, &r.name, &artifact, with_tags)];
    if with_labels {
        super::artifacts::add_labels(app, std::slice::from_ref(&artifact), &mut item).await?;
    }
    let [item] = item;
    Ok(json_reply(200, &item))
}

#[utoipa::path(delete, path = "/api/v2.0/projects/{project_name_or_id}/repositories/{repository_name}/artifacts/{reference}", tag = "artifact",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("repository_name" = String, Path, description = "Name without the project; encode `/` as %2F"),
        ("reference" = String, Path, description = "Digest or tag; a tag deletes the artifact it points at")),
    responses((status = 200, description = "Deleted with its tags (an index also with the children nothing else uses)"),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors),
        (status = 412, description = "An index lists this artifact; delete the index", body = super::Errors),
        (status = 400, description = "Invalid name, reference, query or body", body = super::Errors),
        (status = 401, description = "Wrong credentials, or none where the project is private", body = super::Errors)))]
pub async fn delete_artifact(
    app: &App,
    req: &ApiRequest,
    project: ProjectRef<'_>,
    repo: &str,
    reference: &str,
) -> Result<Reply, GatewayError> {
    let (row, name) = target(app, req, project, repo, Action::Delete).await?;
    let (r, digest) = artifact_in(app, &name, reference).await?;
    let outcome = app.registry.meta().delete_artifact(r.id, &digest).await?;
    let deleted = matches!(outcome, ArtifactDeletion::Deleted { .. });
    req.audit(
        app,
        "delete",
        "artifact",
        &format!("{name}@{digest}"),
        Some(&row.name),
        deleted,
    );
    match outcome {
        ArtifactDeletion::Deleted { .. } => {
            app.registry.forget_content().await;
            events::artifact_deleted(app, req.username(), &name, &digest).await;
            Ok(Reply::new(200))
        }
        ArtifactDeletion::Referenced { by } => Err(GatewayError::Precondition(format!(
            "artifact `{name}@{digest}` is part of the index {by}; delete the index instead"
        ))),
        ArtifactDeletion::NotFound => Err(GatewayError::ApiNotFound(format!(
            "artifact `{name}@{digest}` not found"
        ))),
    }
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/repositories/{repository_name}/artifacts/{reference}/tags", tag = "artifact",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("repository_name" = String, Path, description = "Name without the project; encode `/` as %2F"),
        ("reference" = String, Path, description = "Digest or tag"),
        ("q" = Option<String>, Query, description = "Harbor query: name=<exact>, name=~<substring>"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, description = "The artifact's tags, newest first", body = [Tag],
        headers(("X-Total-Count" = i64, description = "Total matching"), ("Link" = String, description = "prev/next pages"))),
        (status = 400, body = super::Errors), (status = 404, body = super::Errors),
        (status = 401, description = "Wrong credentials, or none where the project is private", body = super::Errors),
        (status = 403, description = "The caller's role does not allow this", body = super::Errors)))]
pub async fn list_tags(
    app: &App,
    req: &ApiRequest,
    project: ProjectRef<'_>,
    repo: &str,
    reference: &str,
) -> Result<Reply, GatewayError> {
    let (_, name) = target(app, req, project, repo, Action::Pull).await?;
    let page = Page::parse(&req.query)?;
    let q = Q::parse(&req.query)?;
    q.reject_unknown(&["name"])?;
    let (exact, contains) = q.name_filter("name");
    let (r, digest) = artifact_in(app, &name, reference).await?;
    let (rows, total) = app
        .registry
        .meta()
        .list_artifact_tags(
            r.id,
            &digest,
            exact.as_deref(),
            contains.as_deref(),
            page.offset(),
            page.limit(),
        )
        .await?;
    let items: Vec<_> = rows.iter().map(tag_json).collect();
    let path = format!(
        "/api/v2.0/projects/{project}/repositories/{}/artifacts/{reference}/tags",
        encode(repo)
    );
    Ok(page.reply(&path, &req.query, &items, total))
}

#[utoipa::path(post, path = "/api/v2.0/projects/{project_name_or_id}/repositories/{repository_name}/artifacts/{reference}/tags", tag = "artifact",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("repository_name" = String, Path, description = "Name without the project; encode `/` as %2F"),
        ("reference" = String, Path, description = "Digest or tag of the artifact to tag")),
    request_body = NewTag,
    responses((status = 201, description = "Tagged; Location names the tag",
        headers(("Location" = String, description = ".../artifacts/{digest}/tags/{name}"))),
        (status = 400, description = "Missing or invalid tag name", body = super::Errors),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors),
        (status = 409, description = "The repository already has this tag (tags are not moved this way)", body = super::Errors),
        (status = 401, description = "Wrong credentials, or none where the project is private", body = super::Errors)))]
pub async fn create_tag(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    project: ProjectRef<'_>,
    repo: &str,
    reference: &str,
) -> Result<Reply, GatewayError> {
    // The project is checked before the body is read.
    let (row, _) = target(app, req, project, repo, Action::Push).await?;
    let body: NewTag = read_json(session).await?;
    let (digest, tag) = add_tag(app, req, project, repo, reference, &body).await?;
    Ok(Reply::new(201).header(
        "Location",
        format!(
            "/api/v2.0/projects/{}/repositories/{}/artifacts/{digest}/tags/{tag}",
            row.name,
            encode(repo)
        ),
    ))
}

/// Tags an artifact (the API's POST and the portal's form).
pub(crate) async fn add_tag(
    app: &App,
    req: &ApiRequest,
    project: ProjectRef<'_>,
    repo: &str,
    reference: &str,
    body: &NewTag,
) -> Result<(oci::Digest, oci::Tag), GatewayError> {
    let (row, name) = target(app, req, project, repo, Action::Push).await?;
    let tag: oci::Tag = body
        .name
        .as_deref()
        .ok_or_else(|| GatewayError::BadRequest("`name` is required".into()))?
        .parse()?;
    let (r, digest) = artifact_in(app, &name, reference).await?;
    let outcome = app.registry.meta().add_tag(r.id, &digest, &tag).await?;
    let added = matches!(outcome, TagAddition::Added { .. });
    req.audit(
        app,
        "create",
        "tag",
        &format!("{name}:{tag}"),
        Some(&row.name),
        added,
    );
    match outcome {
        TagAddition::Added { .. } => {
            app.registry.forget_content().await;
            events::tag_added(app, &name, tag.as_str());
            Ok((digest, tag))
        }
        TagAddition::Exists { on } if on == digest => Err(GatewayError::Conflict(format!(
            "`{name}:{tag}` already points at this artifact"
        ))),
        TagAddition::Exists { on } => Err(GatewayError::Conflict(format!(
            "`{name}:{tag}` already points at {on}; delete it there first to move it"
        ))),
        TagAddition::NoArtifact => Err(GatewayError::ApiNotFound(format!(
            "artifact `{name}@{digest}` not found"
        ))),
    }
}

#[utoipa::path(delete, path = "/api/v2.0/projects/{project_name_or_id}/repositories/{repository_name}/artifacts/{reference}/tags/{tag_name}", tag = "artifact",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("repository_name" = String, Path, description = "Name without the project; encode `/` as %2F"),
        ("reference" = String, Path, description = "Digest or tag of the artifact"),
        ("tag_name" = String, Path, description = "The tag to remove")),
    responses((status = 200, description = "Removed; the artifact stays"),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, description = "No such artifact, or the tag is not on it", body = super::Errors),
        (status = 401, description = "Wrong credentials, or none where the project is private", body = super::Errors)))]
pub async fn delete_tag(
    app: &App,
    req: &ApiRequest,
    project: ProjectRef<'_>,
    repo: &str,
    reference: &str,
    tag: &str,
) -> Result<Reply, GatewayError> {
    let (row, name) = target(app, req, project, repo, Action::Delete).await?;
    let tag: oci::Tag = tag.parse()?;
    let (r, digest) = artifact_in(app, &name, reference).await?;
    let removed = app
        .registry
        .meta()
        .remove_artifact_tag(r.id, &digest, &tag)
        .await?;
    req.audit(
        app,
        "delete",
        "tag",
        &format!("{name}:{tag}"),
        Some(&row.name),
        removed,
    );
    if !removed {
        return Err(GatewayError::ApiNotFound(format!(
            "tag `{tag}` is not on artifact `{name}@{digest}`"
        )));
    }
    app.registry.forget_content().await;
    events::tag_deleted(app, &name, tag.as_str(), &digest);
    Ok(Reply::new(200))
}
