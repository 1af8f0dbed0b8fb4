//! Tag immutability rules on a project's policies tab: the list, and the
//! forms that add, enable, disable and delete rules through the API's own
//! functions (`api::immutable`), which check policy.

use berth_policy::Action;
use berth_storage::projects::ProjectRow;
use pingora::proxy::Session;

use super::form;
use super::page::{encode_path, redirect};
use super::policies::selectors_text;
use super::projects::allowed;
use super::visitor::Visitor;
use crate::api::immutable::{
    create_rule, delete_rule, update_rule, ImmutableRule, RuleSelector, ScopeSelectors,
};
use crate::api::request::ProjectRef;
use crate::app::App;
use crate::auth::ProjectFacts;
use crate::error::GatewayError;
use crate::http::Reply;

pub struct ImmutableLine {
    pub id: i64,
    pub repositories: String,
    pub tags: String,
    pub disabled: bool,
}

/// The immutability part of the policies tab.
pub struct ImmutableView {
    pub rules: Vec<ImmutableLine>,
    pub may_manage: bool,
}

/// The immutability part of the page (the visitor may read the rules).
pub async fn view(
    app: &App,
    v: &Visitor,
    row: &ProjectRow,
    facts: &ProjectFacts,
) -> Result<ImmutableView, GatewayError> {
    let t = v.lang.text();
    let rules = app.registry.meta().immutable_rules(row.id).await?;
    Ok(ImmutableView {
        rules: rules
            .iter()
            .map(|r| ImmutableLine {
                id: r.id,
                repositories: selectors_text(t, &r.repository_selectors),
                tags: selectors_text(t, &r.tag_selectors),
                disabled: r.disabled,
            })
            .collect(),
        may_manage: allowed(&v.api(), Action::ManageImmutableRules, facts),
    })
}

fn back(name: &str) -> String {
    format!("/projects/{}/policies", encode_path(name))
}

fn selector(pattern: Option<&str>, excludes: bool, repository: bool) -> RuleSelector {
    let decoration = match (repository, excludes) {
        (true, false) => "repoMatches",
        (true, true) => "repoExcludes",
        (false, false) => "matches",
        (false, true) => "excludes",
    };
    RuleSelector {
        kind: "doublestar".into(),
        decoration: decoration.into(),
        pattern: pattern
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .unwrap_or("**")
            .into(),
        extras: None,
    }
}

pub async fn add(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    name: &str,
) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let body = ImmutableRule {
        id: None,
        priority: 0,
        disabled: false,
        action: Some("immutable".into()),
        template: Some("immutable_template".into()),
        tag_selectors: vec![selector(
            form.get("tag_pattern"),
            form.get("tag_decoration") == Some("excludes"),
            false,
        )],
        scope_selectors: ScopeSelectors {
            repository: vec![selector(
                form.get("repo_pattern"),
                form.get("repo_decoration") == Some("excludes"),
                true,
            )],
        },
    };
    create_rule(app, &v.api(), ProjectRef::Name(name), &body).await?;
    Ok(redirect(&back(name), v))
}

/// Enables or disables a rule, keeping its selectors and priority.
pub async fn enable(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    name: &str,
    id: i64,
    enabled: bool,
) -> Result<Reply, GatewayError> {
    form::read(session, v).await?;
    let req = v.api();
    let project = ProjectRef::Name(name);
    // The rule's priority is kept, so it is read first; only someone who
    // may change the rules gets that far.
    let (row, _) = req
        .project(app, project, Action::ManageImmutableRules)
        .await?;
    let current = app
        .registry
        .meta()
        .immutable_rule(row.id, id)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("immutable rule {id} not found")))?;
    let body = ImmutableRule {
        id: Some(id),
        priority: current.priority,
        disabled: !enabled,
        action: None,
        template: None,
        tag_selectors: Vec::new(),
        scope_selectors: ScopeSelectors::default(),
    };
    update_rule(app, &req, project, id, &body).await?;
    Ok(redirect(&back(name), v))
}

pub async fn delete(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    name: &str,
    id: i64,
) -> Result<Reply, GatewayError> {
    form::read(session, v).await?;
    delete_rule(app, &v.api(), ProjectRef::Name(name), id).await?;
    Ok(redirect(&back(name), v))
}
