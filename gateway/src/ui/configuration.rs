//! A project's configuration tab: the public flag, changed through the
//! API's own project update (and so its policy check), and the proxy
//! cache settings, which are fixed when a project is created and only
//! shown here.

use askama::Template;
use berth_policy::Action;
use berth_storage::upstreams::ProxyMode;
use pingora::proxy::Session;

use super::form;
use super::page::{encode_path, html, redirect, Layout};
use super::projects::{allowed, ProjectView};
use super::visitor::Visitor;
use crate::api::projects::{update_project, ProjectMetadata, ProjectReq};
use crate::api::request::ProjectRef;
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;

/// The registry endpoint a project caches or fronts; never its
/// credential. Its name and URL only for those who may manage endpoints
/// (as in the API, where only they read `/registries`): a URL can name
/// internal hosts.
struct UpstreamView {
    name: Option<String>,
    kind: String,
    url: Option<String>,
    mode: &'static str,
}

#[derive(Template)]
#[template(path = "configuration.html")]
struct ConfigurationPage {
    l: Layout,
    project: ProjectView,
    tab: &'static str,
    may_update: bool,
    /// `None`: not a proxy-cache project.
    upstream: Option<UpstreamView>,
    /// A proxy-cache project whose endpoint has since been deleted.
    upstream_missing: bool,
}

pub async fn show(app: &App, v: &Visitor, name: &str) -> Result<Reply, GatewayError> {
    let req = v.api();
    let (row, facts) = req
        .project(app, ProjectRef::Name(name), Action::ReadProject)
        .await?;
    let t = v.lang.text();
    let meta = app.registry.meta();
    let mut upstream_missing = false;
    let endpoints_visible = req
        .require(Action::ManageRegistries, berth_policy::Resource::System)
        .is_ok();
    let upstream = match meta.project_upstream(row.id).await? {
        None => None,
        Some(u) => match meta.endpoint(u.registry_id).await? {
            Some(e) => Some(UpstreamView {
                name: endpoints_visible.then_some(e.name),
                kind: e.kind,
                url: endpoints_visible.then_some(e.url),
                mode: match u.mode {
                    ProxyMode::Passthrough => t.proxy_passthrough,
                    ProxyMode::Cache => t.proxy_cache_mode,
                },
            }),
            None => {
                upstream_missing = true;
                None
            }
        },
    };
    let page = ConfigurationPage {
        l: Layout::new(v, row.name.clone(), "projects"),
        project: ProjectView::of(&row),
        tab: "configuration",
        may_update: allowed(&req, Action::UpdateProject, &facts),
        upstream,
        upstream_missing,
    };
    html(200, &page, v)
}

/// The public flag, from the form's checkbox (absent: private).
pub async fn update(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    name: &str,
) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let body = ProjectReq {
        project_name: None,
        public: None,
        metadata: Some(ProjectMetadata {
            public: Some((form.get("public") == Some("true")).to_string()),
            proxy_mode: None,
            retention_id: None,
        }),
        storage_limit: None,
        registry_id: None,
    };
    update_project(app, &v.api(), ProjectRef::Name(name), &body).await?;
    Ok(redirect(
        &format!("/projects/{}/configuration", encode_path(name)),
        v,
    ))
}
