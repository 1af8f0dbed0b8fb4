//! `/search`: projects and repositories whose names contain the words,
//! among those the visitor may see (the API's search).

use askama::Template;

use super::page::{encode_path, html, Layout};
use super::visitor::Visitor;
use crate::api::system;
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::Query;

struct ProjectHit {
    name: String,
    url: String,
    public: bool,
}

struct RepositoryHit {
    name: String,
    url: String,
    artifact_count: i64,
    pull_count: i64,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    l: Layout,
    q: String,
    projects: Vec<ProjectHit>,
    repositories: Vec<RepositoryHit>,
}

pub async fn search(app: &App, v: &Visitor, query: &Query) -> Result<Reply, GatewayError> {
    let q = query.get("q").unwrap_or("").trim().to_owned();
    let (mut projects, mut repositories) = (Vec::new(), Vec::new());
    if !q.is_empty() {
        let found = system::find(app, &v.api(), &q).await?;
        projects = found
            .project
            .into_iter()
            .map(|p| ProjectHit {
                url: format!("/projects/{}", encode_path(&p.name)),
                public: p.metadata.public.as_deref() == Some("true"),
                name: p.name,
            })
            .collect();
        repositories = found
            .repository
            .into_iter()
            .map(|r| {
                let short = r
                    .repository_name
                    .strip_prefix(&format!("{}/", r.project_name))
                    .unwrap_or(&r.repository_name)
                    .to_owned();
                RepositoryHit {
                    url: format!(
                        "/projects/{}/repositories/{}",
                        encode_path(&r.project_name),
                        encode_path(&short)
                    ),
                    name: r.repository_name,
                    artifact_count: r.artifact_count,
                    pull_count: r.pull_count,
                }
            })
            .collect();
    }
    let page = SearchPage {
        l: Layout::new(v, v.lang.text().search, ""),
        q,
        projects,
        repositories,
    };
    html(200, &page, v)
}
