//! Tag immutability rules of a project (Harbor's `immutable` API):
//!
//! - `/projects/{project_name_or_id}/immutabletagrules` GET, POST
//! - `.../immutabletagrules/{immutable_rule_id}` PUT, DELETE
//!
//! Members read the rules; project admins and maintainers manage them.
//! Enforcement is in storage, inside the transactions of the writes.

use berth_policy::Action;
use berth_storage::immutable::{ImmutableRule as StoredRule, RuleSpec};
use berth_storage::selector::{Decoration, Selector};
use pingora::http::Method;
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::page::Page;
use super::request::{path_id, read_json, ApiRequest, ProjectRef};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;

#[derive(OpenApi)]
#[openapi(
    paths(list, create, update, delete),
    components(schemas(ImmutableRule, RuleSelector, ScopeSelectors))
)]
pub struct Doc;

/// Harbor's `ImmutableRule`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImmutableRule {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub disabled: bool,
    /// Always `immutable`.
    #[serde(default)]
    pub action: Option<String>,
    /// Always `immutable_template`.
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub tag_selectors: Vec<RuleSelector>,
    #[serde(default)]
    pub scope_selectors: ScopeSelectors,
}

/// Harbor's `ImmutableSelector` / `RetentionSelector`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RuleSelector {
    /// `doublestar`.
    pub kind: String,
    /// Tags: `matches` or `excludes`; repositories: `repoMatches` or
    /// `repoExcludes`.
    pub decoration: String,
    /// A doublestar pattern: `**`, `v1*`, `{a,b}`...
    pub pattern: String,
    /// Retention tag selectors: `{"untagged":true}` selects untagged
    /// artifacts too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extras: Option<String>,
}

/// Selectors by scope; only `repository` exists.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ScopeSelectors {
    #[serde(default)]
    pub repository: Vec<RuleSelector>,
}

/// An API selector as storage's, or a 400 naming the problem.
pub fn to_selector(s: &RuleSelector, repository: bool) -> Result<Selector, GatewayError> {
    let decoration = match (s.decoration.as_str(), repository) {
        ("matches", false) => Decoration::Matches,
        ("excludes", false) => Decoration::Excludes,
        ("repoMatches" | "matches", true) => Decoration::RepoMatches,
        ("repoExcludes" | "excludes", true) => Decoration::RepoExcludes,
        (other, _) => {
            return Err(GatewayError::BadRequest(format!(
                "selector decoration `{other}` is not supported; use {}",
                if repository {
                    "`repoMatches` or `repoExcludes`"
                } else {
                    "`matches` or `excludes`"
                }
            )))
        }
    };
    let untagged = match s.extras.as_deref().filter(|e| !e.trim().is_empty()) {
        None => false,
        Some(extras) => serde_json::from_str::<serde_json::Value>(extras)
            .ok()
            .and_then(|v| v.as_object().map(|o| o.get("untagged").and_then(|u| u.as_bool())))
            .ok_or_else(|| {
                GatewayError::BadRequest(format!(
                    "selector `extras` must be a JSON object such as {{\"untagged\":true}}, not `{extras}`"
                ))
            })?
            .unwrap_or(false),
    };
    Selector::new(&s.kind, decoration, &s.pattern, untagged)
        .map_err(|e| GatewayError::BadRequest(e.0))
}

pub fn from_selector(s: &Selector) -> RuleSelector {
    let decoration = match s.decoration {
        Decoration::Matches => "matches",
        Decoration::Excludes => "excludes",
        Decoration::RepoMatches => "repoMatches",
        Decoration::RepoExcludes => "repoExcludes",
    };
    RuleSelector {
        kind: "doublestar".into(),
        decoration: decoration.into(),
        pattern: s.pattern.clone(),
        extras: s.untagged.then(|| "{\"untagged\":true}".to_owned()),
    }
}

/// Both kinds of selectors, validated; a rule needs at least one of each.
pub fn selectors(
    tags: &[RuleSelector],
    scope: &ScopeSelectors,
) -> Result<(Vec<Selector>, Vec<Selector>), GatewayError> {
    if tags.is_empty() || scope.repository.is_empty() {
        return Err(GatewayError::BadRequest(
            "a rule needs `tag_selectors` and `scope_selectors.repository`, such as \
             [{\"kind\":\"doublestar\",\"decoration\":\"matches\",\"pattern\":\"**\"}]"
                .into(),
        ));
    }
    let tag_selectors = tags
        .iter()
        .map(|s| to_selector(s, false))
        .collect::<Result<_, _>>()?;
    let repository_selectors = scope
        .repository
        .iter()
        .map(|s| to_selector(s, true))
        .collect::<Result<_, _>>()?;
    Ok((tag_selectors, repository_selectors))
}

fn rule_json(r: &StoredRule) -> ImmutableRule {
    ImmutableRule {
        id: Some(r.id),
        priority: r.priority,
        disabled: r.disabled,
        action: Some("immutable".into()),
        template: Some("immutable_template".into()),
        tag_selectors: r.tag_selectors.iter().map(from_selector).collect(),
        scope_selectors: ScopeSelectors {
            repository: r.repository_selectors.iter().map(from_selector).collect(),
        },
    }
}

fn spec(body: &ImmutableRule) -> Result<RuleSpec, GatewayError> {
    if let Some(action) = body.action.as_deref().filter(|a| *a != "immutable") {
        return Err(GatewayError::BadRequest(format!(
            "`action` must be `immutable`, not `{action}`"
        )));
    }
    let (tag_selectors, repository_selectors) =
        selectors(&body.tag_selectors, &body.scope_selectors)?;
    Ok(RuleSpec {
        priority: body.priority,
        disabled: body.disabled,
        tag_selectors,
        repository_selectors,
    })
}

pub async fn route(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    project: &str,
    rest: &[&str],
) -> Result<Reply, GatewayError> {
    let method = session.req_header().method.clone();
    match rest {
        [] if method == Method::GET => list(app, session, req, project).await,
        [] if method == Method::POST => create(app, session, req, project).await,
        [id] if method == Method::PUT => update(app, session, req, project, id).await,
        [id] if method == Method::DELETE => delete(app, session, req, project, id).await,
        [] | [_] => Err(GatewayError::MethodNotAllowed {
            method: method.to_string(),
        }),
        _ => Err(GatewayError::NotFound(
            session.req_header().uri.path().to_owned(),
        )),
    }
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/immutabletagrules", tag = "immutable",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, description = "The project's rules, by priority", body = [ImmutableRule],
        headers(("X-Total-Count" = i64, description = "Total"), ("Link" = String, description = "prev/next pages"))),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors)))]
pub async fn list(
    app: &App,
    session: &Session,
    req: &ApiRequest,
    project: &str,
) -> Result<Reply, GatewayError> {
    let (row, _) = req
        .project(
            app,
            ProjectRef::name_or_id(session, project),
            Action::ReadImmutableRules,
        )
        .await?;
    let page = Page::parse(&req.query)?;
    let rules = app.registry.meta().immutable_rules(row.id).await?;
    let items: Vec<ImmutableRule> = rules
        .iter()
        .skip(page.offset() as usize)
        .take(page.limit() as usize)
        .map(rule_json)
        .collect();
    let path = format!("/api/v2.0/projects/{project}/immutabletagrules");
    Ok(page.reply(&path, &req.query, &items, rules.len() as i64))
}

#[utoipa::path(post, path = "/api/v2.0/projects/{project_name_or_id}/immutabletagrules", tag = "immutable",
    params(("project_name_or_id" = String, Path, description = "Project name or id")),
    request_body = ImmutableRule,
    responses((status = 201, description = "Created; Location names the rule",
        headers(("Location" = String, description = ".../immutabletagrules/{id}"))),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn create(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    project: &str,
) -> Result<Reply, GatewayError> {
    let project = ProjectRef::name_or_id(session, project);
    req.project(app, project, Action::ManageImmutableRules)
        .await?;
    let body: ImmutableRule = read_json(session).await?;
    let (project_id, id) = create_rule(app, req, project, &body).await?;
    Ok(Reply::new(201).header(
        "Location",
        format!("/api/v2.0/projects/{project_id}/immutabletagrules/{id}"),
    ))
}

/// Adds a rule (the API's POST and the portal's form); returns the
/// project's and the rule's ids.
pub(crate) async fn create_rule(
    app: &App,
    req: &ApiRequest,
    project: ProjectRef<'_>,
    body: &ImmutableRule,
) -> Result<(i64, i64), GatewayError> {
    let (row, _) = req
        .project(app, project, Action::ManageImmutableRules)
        .await?;
    let spec = spec(body)?;
    let id = app
        .registry
        .meta()
        .create_immutable_rule(row.id, &spec)
        .await?;
    req.audit(
        app,
        "create",
        "immutable_rule",
        &id.to_string(),
        Some(&row.name),
        true,
    );
    Ok((row.id, id))
}

#[utoipa::path(put, path = "/api/v2.0/projects/{project_name_or_id}/immutabletagrules/{immutable_rule_id}", tag = "immutable",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("immutable_rule_id" = i64, Path, description = "Rule id")),
    request_body = ImmutableRule,
    responses((status = 200, description = "Updated (also how a rule is disabled)"),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn update(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    project: &str,
    id: &str,
) -> Result<Reply, GatewayError> {
    let project = ProjectRef::name_or_id(session, project);
    req.project(app, project, Action::ManageImmutableRules)
        .await?;
    let id = path_id(id, "immutable_rule_id")?;
    let body: ImmutableRule = read_json(session).await?;
    update_rule(app, req, project, id, &body).await?;
    Ok(Reply::new(200))
}

/// Changes a rule (the API's PUT and the portal's enable and disable
/// buttons); a body without selectors keeps the stored ones.
pub(crate) async fn update_rule(
    app: &App,
    req: &ApiRequest,
    project: ProjectRef<'_>,
    id: i64,
    body: &ImmutableRule,
) -> Result<(), GatewayError> {
    let (row, _) = req
        .project(app, project, Action::ManageImmutableRules)
        .await?;
    let meta = app.registry.meta();
    // Harbor's UI toggles `disabled` with a body that may carry only that:
    // keep the stored selectors when none are sent.
    let current = meta
        .immutable_rule(row.id, id)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("immutable rule {id} not found")))?;
    let spec = if body.tag_selectors.is_empty() && body.scope_selectors.repository.is_empty() {
        RuleSpec {
            priority: body.priority,
            disabled: body.disabled,
            tag_selectors: current.tag_selectors,
            repository_selectors: current.repository_selectors,
        }
    } else {
        spec(body)?
    };
    let updated = meta.update_immutable_rule(row.id, id, &spec).await?;
    req.audit(
        app,
        "update",
        "immutable_rule",
        &id.to_string(),
        Some(&row.name),
        updated,
    );
    if !updated {
        return Err(GatewayError::ApiNotFound(format!(
            "immutable rule {id} not found"
        )));
    }
    Ok(())
}

#[utoipa::path(delete, path = "/api/v2.0/projects/{project_name_or_id}/immutabletagrules/{immutable_rule_id}", tag = "immutable",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("immutable_rule_id" = i64, Path, description = "Rule id")),
    responses((status = 200, description = "Deleted"), (status = 400, body = super::Errors),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors)))]
pub async fn delete(
    app: &App,
    session: &Session,
    req: &ApiRequest,
    project: &str,
    id: &str,
) -> Result<Reply, GatewayError> {
    let id = path_id(id, "immutable_rule_id")?;
    delete_rule(app, req, ProjectRef::name_or_id(session, project), id).await?;
    Ok(Reply::new(200))
}

/// Deletes a rule (the API's DELETE and the portal's button).
pub(crate) async fn delete_rule(
    app: &App,
    req: &ApiRequest,
    project: ProjectRef<'_>,
    id: i64,
) -> Result<(), GatewayError> {
    let (row, _) = req
        .project(app, project, Action::ManageImmutableRules)
        .await?;
    let deleted = app
        .registry
        .meta()
        .delete_immutable_rule(row.id, id)
        .await?;
    req.audit(
        app,
        "delete",
        "immutable_rule",
        &id.to_string(),
        Some(&row.name),
        deleted,
    );
    if !deleted {
        return Err(GatewayError::ApiNotFound(format!(
            "immutable rule {id} not found"
        )));
    }
    Ok(())
}
