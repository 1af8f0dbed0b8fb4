//! A repository's artifacts, one artifact, its tags and labels. Reads use the
//! storage listings the API uses, behind the same policy check
//! (`ApiRequest::project`); tag and artifact changes call the API's own
//! functions.

use askama::Template;
use berth_policy::Action;
use berth_storage::artifacts::{ArtifactOrder, ArtifactRow, Platform, TagFilter};
use berth_storage::oci::{Digest, Reference, RepoName, Tag};
use pingora::proxy::Session;
use serde_json::Value;

use super::form;
use super::labels::{carried, choices, Chip};
use super::page::{encode_path, html, human_size, human_time, redirect, Layout, Pager};
use super::projects::{allowed, host_of};
use super::routes::RepoPath;
use super::visitor::{cookie, cookie_value, Visitor};
use crate::api::page::{Page, MAX_PAGE_SIZE};
use crate::api::repositories::{self as api_repos, artifact_order, NewTag};
use crate::api::request::{ApiRequest, ProjectRef};
use crate::app::App;
use crate::auth::ProjectFacts;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::Query;

/// Page sizes offered; the choice is remembered in a cookie.
const SIZES: [i64; 4] = [10, 25, 50, 100];
const PAGE_SIZE_COOKIE: &str = "berth_page_size";
/// What the artifact page shows of an image is bounded, whatever the
/// image holds: a pushed image must not make each view of it cost
/// megabytes (anyone may view a public one). Configs larger than this are
/// not read; manifests larger than this show no layers.
const MAX_CONFIG: u64 = 256 * 1024;
const MAX_MANIFEST: usize = 256 * 1024;
/// Layers listed, and characters of one value shown.
const MAX_LAYERS: usize = 100;
const MAX_VALUE: usize = 1024;

/// A value cut to `MAX_VALUE` characters, marked when cut.
fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_VALUE) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

/// Pull commands for one reference, per client.
struct Pull {
    docker: String,
    podman: String,
    nerdctl: String,
    ctr: String,
}

impl Pull {
    fn new(v: &Visitor, full: &str, reference: &str) -> Pull {
        let image = format!("{}/{full}{reference}", host_of(v));
        // ctr speaks TLS unless told otherwise.
        let plain = if v.base_url.starts_with("http://") {
            " --plain-http"
        } else {
            ""
        };
        Pull {
            docker: format!("docker pull {image}"),
            podman: format!("podman pull {image}"),
            nerdctl: format!("nerdctl pull {image}"),
            ctr: format!("ctr images pull{plain} {image}"),
        }
    }
}

struct ArtifactLine {
    digest: String,
    short: String,
    url: String,
    tags: Vec<String>,
    size: String,
    platforms: String,
    pushed: String,
    pulled: String,
    labels: Vec<Chip>,
}

#[derive(Template)]
#[template(path = "repository.html")]
struct RepositoryPage {
    l: Layout,
    project: String,
    project_url: String,
    full: String,
    url: String,
    pull: Pull,
    tag: String,
    sizes: [i64; 4],
    page_size: i64,
    /// The order (Harbor's `sort` word), and the column headers' links
    /// and `aria-sort` for it.
    sort: &'static str,
    push_sort: SortLink,
    pull_sort: SortLink,
    rows: Vec<ArtifactLine>,
    pager: Pager,
    may_delete: bool,
}

/// A sortable column's header: where clicking it goes, and how the
/// listing is sorted by it now (`ascending`, `descending` or `none`).
struct SortLink {
    url: String,
    aria: &'static str,
}

impl SortLink {
    /// The header of a column sorted by `desc` or `asc`: a click sorts
    /// by it newest first, or turns an order by it around.
    fn new(
        url: &str,
        tag: &str,
        now: ArtifactOrder,
        desc: ArtifactOrder,
        asc: ArtifactOrder,
    ) -> SortLink {
        let (next, aria) = if now == desc {
            (asc, "descending")
        } else if now == asc {
            (desc, "ascending")
        } else {
            (desc, "none")
        };
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("sort", next.as_str());
        if !tag.is_empty() {
            q.append_pair("tag", tag);
        }
        SortLink {
            url: format!("{url}?{}", q.finish()),
            aria,
        }
    }
}

struct TagLine {
    name: String,
}

struct ChildLine {
    platform: String,
    digest: String,
    url: Option<String>,
}

struct LayerLine {
    digest: String,
    short: String,
    size: String,
    created_by: String,
}

struct ReferrerLine {
    kind: String,
    digest: String,
    url: String,
}

#[derive(Template)]
#[template(path = "artifact.html")]
struct ArtifactPage {
    l: Layout,
    project: String,
    project_url: String,
    full: String,
    repo_url: String,
    url: String,
    digest: String,
    media_type: String,
    artifact_type: Option<String>,
    size: String,
    pushed: String,
    pulled: String,
    pull: String,
    tags: Vec<TagLine>,
    children: Vec<ChildLine>,
    layers: Vec<LayerLine>,
    /// Set when only the first layers are listed.
    layers_note: Option<String>,
    config: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
    referrers: Vec<ReferrerLine>,
    labels: Vec<Chip>,
    /// Labels the visitor may put on it (empty when they may not).
    label_choices: Vec<Chip>,
    may_label: bool,
    may_delete: bool,
    may_tag: bool,
}

/// The project (checked for `action`), the repository's name and id (not
/// its row: the pages count the artifacts they list themselves, and the
/// row's artifact count would count them a second time).
async fn target(
    app: &App,
    req: &ApiRequest,
    r: &RepoPath,
    action: Action,
) -> Result<(ProjectFacts, RepoName, i64), GatewayError> {
    let (project, facts) = req
        .project(app, ProjectRef::Name(&r.project), action)
        .await?;
    // The repository of the project that was checked, by its own name.
    let name: RepoName = format!("{}/{}", project.name, r.name).parse()?;
    let id = app
        .registry
        .meta()
        .repository_id(&name)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("repository `{name}` not found")))?;
    Ok((facts, name, id))
}

fn short(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.chars().take(12).collect()
}

/// `os/architecture[/variant]`.
fn platform_text(p: &Platform) -> String {
    match &p.variant {
        Some(variant) => format!("{}/{}/{variant}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

fn platforms(a: &ArtifactRow) -> String {
    let mut list: Vec<String> = a
        .children
        .iter()
        .filter_map(|c| c.platform.as_ref())
        .map(platform_text)
        .collect();
    list.dedup();
    list.join(", ")
}

/// The page size: asked for (and then remembered), else remembered, else 25.
fn page_size(session: &Session, v: &mut Visitor, query: &Query) -> i64 {
    let asked = query
        .get("page_size")
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|n| (1..=MAX_PAGE_SIZE).contains(n));
    if let Some(n) = asked {
        v.set_cookies.push(cookie(
            PAGE_SIZE_COOKIE,
            &n.to_string(),
            Some(365 * 24 * 3600),
            v.secure,
        ));
        return n;
    }
    cookie_value(session, PAGE_SIZE_COOKIE)
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
        .unwrap_or(25)
}

pub async fn artifacts(
    app: &App,
    session: &Session,
    v: &mut Visitor,
    r: &RepoPath,
    query: &Query,
) -> Result<Reply, GatewayError> {
    let req = v.api();
    let (facts, name, repo_id) = target(app, &req, r, Action::Pull).await?;
    let mut page = Page::parse(query)?;
    page.size = page_size(session, v, query);
    let tag = query.get("tag").unwrap_or("").trim().to_owned();
    let filter = match tag.as_str() {
        "" => TagFilter::Any,
        t => TagFilter::Contains(t.to_owned()),
    }
    .into();
    let order = artifact_order(query.get("sort"))?;
    let (list, total) = app
        .registry
        .meta()
        .list_artifacts(repo_id, &filter, order, page.offset(), page.limit())
        .await?;
    let url = r.url();
    let t = v.lang.text();
    let full = name.to_string();
    // The pull command names the newest tag on this page, else a digest.
    let reference = list
        .iter()
        .find_map(|a| a.tags.first().map(|t| format!(":{}", t.name)))
        .or_else(|| list.first().map(|a| format!("@{}", a.digest)))
        .unwrap_or_else(|| ":latest".to_owned());
    let digests: Vec<&Digest> = list.iter().map(|a| &a.digest).collect();
    let mut labels = carried(app, repo_id, &digests).await?;
    let rows = list
        .iter()
        .map(|a| {
            let digest = a.digest.to_string();
            ArtifactLine {
                labels: labels.remove(&a.digest).unwrap_or_default(),
                short: short(&digest),
                url: format!("{url}/artifacts/{digest}"),
                tags: a.tags.iter().map(|t| t.name.to_string()).collect(),
                size: human_size(a.size),
                platforms: platforms(a),
                pushed: human_time(a.pushed_at),
                pulled: a.pulled_at.map_or_else(|| t.never.to_owned(), human_time),
                digest,
            }
        })
        .collect();
    let page_view = RepositoryPage {
        l: Layout::new(v, full.clone(), "projects"),
        project: r.project.clone(),
        project_url: format!("/projects/{}", encode_path(&r.project)),
        pull: Pull::new(v, &full, &reference),
        full,
        pager: Pager::new(&url, query, page, total),
        sort: order.as_str(),
        push_sort: SortLink::new(
            &url,
            &tag,
            order,
            ArtifactOrder::NewestPush,
            ArtifactOrder::OldestPush,
        ),
        pull_sort: SortLink::new(
            &url,
            &tag,
            order,
            ArtifactOrder::LatestPull,
            ArtifactOrder::EarliestPull,
        ),
        url,
        tag,
        sizes: SIZES,
        page_size: page.size,
        rows,
        may_delete: allowed(&req, Action::Delete, &facts),
    };
    html(200, &page_view, v)
}

pub async fn artifact(
    app: &App,
    v: &Visitor,
    r: &RepoPath,
    digest: &Digest,
) -> Result<Reply, GatewayError> {
    let req = v.api();
    let (facts, name, repo_id) = target(app, &req, r, Action::Pull).await?;
    let a = app
        .registry
        .meta()
        .artifact(repo_id, digest)
        .await?
        .ok_or_else(|| {
            GatewayError::ApiNotFound(format!("artifact `{name}@{digest}` not found"))
        })?;
    let t = v.lang.text();
    let repo_url = r.url();
    let url = format!("{repo_url}/artifacts/{digest}");
    let (layers, layer_total, config) = image_details(app, &name, digest, t.platform).await?;
    let layers_note = (layer_total > layers.len()).then(|| {
        t.layers_shown
            .replace("{shown}", &layers.len().to_string())
            .replace("{total}", &layer_total.to_string())
    });
    let referrers = app
        .registry
        .referrers(&name, digest, None)
        .await?
        .into_iter()
        .map(|x| ReferrerLine {
            kind: x.artifact_type.unwrap_or(x.media_type),
            url: format!("{repo_url}/artifacts/{}", x.digest),
            digest: x.digest.to_string(),
        })
        .collect();
    let children = a
        .children
        .iter()
        .map(|c| ChildLine {
            platform: c.platform.as_ref().map_or_else(String::new, platform_text),
            url: c.id.map(|_| format!("{repo_url}/artifacts/{}", c.digest)),
            digest: c.digest.to_string(),
        })
        .collect();
    let full = name.to_string();
    let labels = carried(app, repo_id, &[digest])
        .await?
        .remove(digest)
        .unwrap_or_default();
    let may_label = allowed(&req, Action::LabelArtifacts, &facts);
    let label_choices = match facts.info.as_ref() {
        Some(info) if may_label => choices(app, info.id, &labels).await?,
        _ => Vec::new(),
    };
    let page = ArtifactPage {
        l: Layout::new(
            v,
            format!("{full}@{}", short(&digest.to_string())),
            "projects",
        ),
        project: r.project.clone(),
        project_url: format!("/projects/{}", encode_path(&r.project)),
        pull: Pull::new(
            v,
            &full,
            &a.tags
                .first()
                .map_or_else(|| format!("@{digest}"), |t| format!(":{}", t.name)),
        )
        .docker,
        full,
        repo_url,
        url,
        digest: digest.to_string(),
        media_type: a.manifest_media_type.clone(),
        artifact_type: a.artifact_type.clone(),
        size: human_size(a.size),
        pushed: human_time(a.pushed_at),
        pulled: a.pulled_at.map_or_else(|| t.never.to_owned(), human_time),
        tags: a
            .tags
            .iter()
            .map(|t| TagLine {
                name: t.name.to_string(),
            })
            .collect(),
        children,
        layers,
        layers_note,
        config,
        annotations: a.annotations.clone(),
        referrers,
        labels,
        label_choices,
        may_label,
        may_delete: allowed(&req, Action::Delete, &facts),
        may_tag: allowed(&req, Action::Push, &facts),
    };
    html(200, &page, v)
}

/// An image's layers (with the history line that made each) and the
/// parts of its config people look for. Anything else shows none.
async fn image_details(
    app: &App,
    name: &RepoName,
    digest: &Digest,
    platform: &str,
) -> Result<(Vec<LayerLine>, usize, Vec<(String, String)>), GatewayError> {
    let manifest = app
        .registry
        .get_manifest(name, &Reference::Digest(digest.clone()))
        .await?;
    if manifest.content.len() > MAX_MANIFEST {
        return Ok((Vec::new(), 0, Vec::new()));
    }
    let Ok(m) = serde_json::from_slice::<Value>(&manifest.content) else {
        return Ok((Vec::new(), 0, Vec::new()));
    };
    let config = match m["config"]["digest"].as_str().map(str::parse::<Digest>) {
        Some(Ok(d)) => match app.registry.open_blob(name, &d).await {
            Ok(blob) => blob
                .read_small(MAX_CONFIG)
                .await?
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok()),
            Err(_) => None,
        },
        _ => None,
    };
    let history: Vec<String> = config
        .as_ref()
        .and_then(|c| c["history"].as_array())
        .map(|h| {
            h.iter()
                .filter(|e| !e["empty_layer"].as_bool().unwrap_or(false))
                .take(MAX_LAYERS)
                .map(|e| clip(e["created_by"].as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    let layer_total = m["layers"].as_array().map_or(0, Vec::len);
    let layers = m["layers"]
        .as_array()
        .map(|list| {
            list.iter()
                .take(MAX_LAYERS)
                .enumerate()
                .map(|(i, l)| {
                    let digest = l["digest"].as_str().unwrap_or("").to_owned();
                    LayerLine {
                        short: short(&digest),
                        digest,
                        size: human_size(l["size"].as_i64().unwrap_or(0)),
                        created_by: history.get(i).cloned().unwrap_or_default(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let mut facts = Vec::new();
    if let Some(c) = &config {
        // One environment variable per line; a command's words on one.
        let text = |v: &Value, sep: &str| match v {
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(sep),
            Value::Object(o) => o
                .iter()
                .map(|(k, x)| match x.as_str() {
                    Some(s) => format!("{k}={s}"),
                    None => k.clone(),
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        if let (Some(os), Some(arch)) = (c["os"].as_str(), c["architecture"].as_str()) {
            facts.push((platform.to_owned(), format!("{os}/{arch}")));
        }
        for key in [
            "Entrypoint",
            "Cmd",
            "Env",
            "WorkingDir",
            "User",
            "ExposedPorts",
            "Labels",
        ] {
            let sep = if key == "Env" { "\n" } else { " " };
            let value = text(&c["config"][key], sep);
            if !value.is_empty() {
                facts.push((key.to_owned(), clip(&value)));
            }
        }
    }
    Ok((layers, layer_total, facts))
}

pub async fn delete(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    r: &RepoPath,
) -> Result<Reply, GatewayError> {
    form::read(session, v).await?;
    let req = v.api();
    api_repos::delete(app, &req, ProjectRef::Name(&r.project), &r.name).await?;
    Ok(redirect(
        &format!("/projects/{}/repositories", encode_path(&r.project)),
        v,
    ))
}

pub async fn delete_artifact(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    r: &RepoPath,
    digest: &Digest,
) -> Result<Reply, GatewayError> {
    form::read(session, v).await?;
    let req = v.api();
    api_repos::delete_artifact(
        app,
        &req,
        ProjectRef::Name(&r.project),
        &r.name,
        &digest.to_string(),
    )
    .await?;
    Ok(redirect(&r.url(), v))
}

pub async fn add_tag(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    r: &RepoPath,
    digest: &Digest,
) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let body = NewTag {
        name: form.get("tag").map(|t| t.trim().to_owned()),
    };
    let req = v.api();
    api_repos::add_tag(
        app,
        &req,
        ProjectRef::Name(&r.project),
        &r.name,
        &digest.to_string(),
        &body,
    )
    .await?;
    Ok(redirect(&format!("{}/artifacts/{digest}", r.url()), v))
}

pub async fn delete_tag(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    r: &RepoPath,
    digest: &Digest,
    tag: &Tag,
) -> Result<Reply, GatewayError> {
    form::read(session, v).await?;
    let req = v.api();
    api_repos::delete_tag(
        app,
        &req,
        ProjectRef::Name(&r.project),
        &r.name,
        &digest.to_string(),
        tag.as_str(),
    )
    .await?;
    Ok(redirect(&format!("{}/artifacts/{digest}", r.url()), v))
}
