//! A project's policies tab: tag retention (`retention`) and tag
//! immutability (`immutable`). Each part shows only to those who may read
//! it, and its forms only to those who may change it; the forms' POSTs
//! are checked again by the API's functions they call.

use askama::Template;
use berth_policy::Action;
use berth_storage::selector::{Decoration, Selector};

use super::i18n::Text;
use super::immutable::{self, ImmutableView};
use super::page::{html, Layout};
use super::projects::{allowed, ProjectView};
use super::retention::{self, RetentionView};
use super::visitor::Visitor;
use crate::api::request::ProjectRef;
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::Query;

#[derive(Template)]
#[template(path = "policies.html")]
struct PoliciesPage {
    l: Layout,
    project: ProjectView,
    tab: &'static str,
    /// `None`: the visitor may not read the retention policy.
    retention: Option<RetentionView>,
    immutable: Option<ImmutableView>,
}

/// Selectors in words: "matching `**`", "excluding `tmp/**`", joined
/// with "and".
pub fn selectors_text(t: &Text, selectors: &[Selector]) -> String {
    selectors
        .iter()
        .map(|s| {
            let verb = match s.decoration {
                Decoration::Matches | Decoration::RepoMatches => t.matching,
                Decoration::Excludes | Decoration::RepoExcludes => t.excluding,
            };
            format!("{verb} `{}`", s.pattern)
        })
        .collect::<Vec<_>>()
        .join(t.and)
}

pub async fn show(
    app: &App,
    v: &Visitor,
    name: &str,
    query: &Query,
) -> Result<Reply, GatewayError> {
    let req = v.api();
    let (row, facts) = req
        .project(app, ProjectRef::Name(name), Action::ReadProject)
        .await?;
    let project = ProjectView::of(&row);
    let path = format!("{}/policies", project.url);
    let retention = match allowed(&req, Action::ReadRetention, &facts) {
        true => Some(retention::view(app, v, &row, &facts, query, &path).await?),
        false => None,
    };
    let immutable = match allowed(&req, Action::ReadImmutableRules, &facts) {
        true => Some(immutable::view(app, v, &row, &facts).await?),
        false => None,
    };
    let page = PoliciesPage {
        l: Layout::new(v, row.name.clone(), "projects"),
        project,
        tab: "policies",
        retention,
        immutable,
    };
    html(200, &page, v)
}
