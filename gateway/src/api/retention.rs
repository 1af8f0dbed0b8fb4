//! Tag retention (Harbor's `retention` API):
//!
//! - `/retentions` POST (one policy per project)
//! - `/retentions/metadatas` GET (the templates and selectors on offer)
//! - `/retentions/{id}` GET, PUT, DELETE
//! - `/retentions/{id}/executions` GET, POST (`{"dry_run": true}`)
//! - `/retentions/{id}/executions/{eid}/tasks` GET
//! - `/retentions/{id}/executions/{eid}/tasks/{tid}` GET (the task's log)
//!
//! Members read policies and executions; project admins and maintainers
//! change and run them. What rules keep is `berth_storage::retention`'s;
//! the deleting is `crate::retention`'s.

use std::collections::BTreeMap;

use berth_policy::Action;
use berth_storage::projects::ProjectRow;
use berth_storage::retention::{ExecutionRow, Policy, Rule, TaskRow, Template, Trigger};
use berth_storage::selector::LabelSelector;
use pingora::http::Method;
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::immutable::{from_selector, selectors, RuleSelector, ScopeSelectors};
use super::page::Page;
use super::quotas::require_on;
use super::request::{path_id, read_json, time, ApiRequest};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;

#[derive(OpenApi)]
#[openapi(
    paths(
        metadatas, create, get, update, delete, run, executions, tasks, task_log
    ),
    components(schemas(
        RetentionPolicy,
        RetentionRule,
        RetentionTrigger,
        RetentionScope,
        RetentionExecution,
        RetentionExecutionTask,
        RunRequest,
        RetentionMetadata,
        TemplateMetadata,
        TemplateParam,
        SelectorMetadata
    ))
)]
pub struct Doc;

/// Harbor's `RetentionPolicy`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetentionPolicy {
    #[serde(default)]
    pub id: Option<i64>,
    /// `or`: an artifact is kept when any rule keeps it.
    #[serde(default)]
    pub algorithm: Option<String>,
    #[serde(default)]
    pub rules: Vec<RetentionRule>,
    #[serde(default)]
    pub trigger: Option<RetentionTrigger>,
    #[serde(default)]
    pub scope: Option<RetentionScope>,
}

/// Harbor's `RetentionRule`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetentionRule {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub disabled: bool,
    /// `retain`.
    #[serde(default)]
    pub action: Option<String>,
    /// `latestPushedK`, `latestPulledN`, `nDaysSinceLastPush`,
    /// `nDaysSinceLastPull` or `always`.
    pub template: String,
    /// The template's parameter under its name: `{"latestPushedK": 3}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub tag_selectors: Vec<RuleSelector>,
    #[serde(default)]
    pub scope_selectors: ScopeSelectors,
}

/// Harbor's `RetentionRuleTrigger`: `{"kind":"Schedule","settings":{"cron":"0 0 * * * *"}}`;
/// an empty cron runs only on request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetentionTrigger {
    pub kind: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub settings: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub references: BTreeMap<String, serde_json::Value>,
}

/// Harbor's `RetentionPolicyScope`: the project.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetentionScope {
    /// `project`.
    pub level: String,
    /// The project's id.
    #[serde(rename = "ref")]
    pub reference: i64,
}

/// Harbor's `RetentionExecution`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetentionExecution {
    pub id: i64,
    pub policy_id: i64,
    pub start_time: String,
    pub end_time: Option<String>,
    /// `Running`, `Success` or `Error`.
    pub status: String,
    /// `MANUAL` or `SCHEDULE`.
    pub trigger: String,
    pub dry_run: bool,
}

/// Harbor's `RetentionExecutionTask`: one repository of an execution.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetentionExecutionTask {
    pub id: i64,
    pub execution_id: i64,
    pub repository: String,
    pub job_id: String,
    pub status: String,
    pub status_code: i64,
    pub start_time: String,
    pub end_time: Option<String>,
    /// Artifacts looked at.
    pub total: i64,
    /// Artifacts kept; the rest were deleted (or would be, in a dry run).
    pub retained: i64,
}

/// The body of `POST /retentions/{id}/executions`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RunRequest {
    #[serde(default)]
    pub dry_run: bool,
}

/// Harbor's `RetentionMetadata`: what a policy may use.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetentionMetadata {
    pub templates: Vec<TemplateMetadata>,
    pub scope_selectors: Vec<SelectorMetadata>,
    pub tag_selectors: Vec<SelectorMetadata>,
}

/// Harbor's `RetentionRuleMetadata`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TemplateMetadata {
    pub rule_template: String,
    pub display_text: String,
    pub action: String,
    pub params: Vec<TemplateParam>,
}

/// Harbor's `RetentionRuleParamMetadata`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TemplateParam {
    #[serde(rename = "type")]
    pub kind: String,
    pub unit: String,
    pub required: bool,
}

/// Harbor's `RetentionSelectorMetadata`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SelectorMetadata {
    pub display_text: String,
    pub kind: String,
    pub decorations: Vec<String>,
}

#[utoipa::path(get, path = "/api/v2.0/retentions/metadatas", tag = "retention",
    responses((status = 200, body = RetentionMetadata)))]
pub fn metadatas(req: &ApiRequest) -> Result<Reply, GatewayError> {
    if req.identity.is_none() {
        return Err(GatewayError::Unauthenticated { scope: None });
    }
    let template = |id: &str, text: &str, unit: Option<&str>| TemplateMetadata {
        rule_template: id.into(),
        display_text: text.into(),
        action: "retain".into(),
        params: unit
            .map(|unit| TemplateParam {
                kind: "int".into(),
                unit: unit.into(),
                required: true,
            })
            .into_iter()
            .collect(),
    };
    let selector = |text: &str, kind: &str, decorations: [&str; 2]| SelectorMetadata {
        display_text: text.into(),
        kind: kind.into(),
        decorations: decorations.map(String::from).to_vec(),
    };
    Ok(json_reply(&RetentionMetadata {
        templates: vec![
            template(
                "latestPushedK",
                "the most recently pushed # artifacts",
                Some("count"),
            ),
            template(
                "latestPulledN",
                "the most recently pulled # artifacts",
                Some("count"),
            ),
            template(
                "nDaysSinceLastPush",
                "pushed within the last # days",
                Some("days"),
            ),
            template(
                "nDaysSinceLastPull",
                "pulled within the last # days",
                Some("days"),
            ),
            template("always", "always", None),
        ],
        scope_selectors: vec![selector(
            "Repositories",
            "doublestar",
            ["repoMatches", "repoExcludes"],
        )],
        tag_selectors: vec![
            selector("Tags", "doublestar", ["matches", "excludes"]),
            selector("Labels", "label", ["withLabels", "withoutLabels"]),
        ],
    }))
}

fn param(rule: &RetentionRule) -> Result<Option<u64>, GatewayError> {
    match rule.params.get(&rule.template) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .map(Some)
            .ok_or_else(|| {
                GatewayError::BadRequest(format!(
                    "`params.{}` must be a non-negative number, not {v}",
                    rule.template
                ))
            }),
    }
}

fn to_rules(rules: &[RetentionRule]) -> Result<Vec<Rule>, GatewayError> {
    if rules.is_empty() || rules.len() > 15 {
        return Err(GatewayError::BadRequest(
            "a retention policy needs 1 to 15 rules".into(),
        ));
    }
    rules
        .iter()
        .map(|r| {
            if let Some(action) = r.action.as_deref().filter(|a| *a != "retain") {
                return Err(GatewayError::BadRequest(format!(
                    "rule `action` must be `retain`, not `{action}`"
                )));
            }
            let template =
                Template::from_id(&r.template, param(r)?).map_err(GatewayError::BadRequest)?;
            // Harbor lists label selectors among the tag selectors.
            let (labels, tags): (Vec<&RuleSelector>, Vec<&RuleSelector>) =
                r.tag_selectors.iter().partition(|s| s.kind == "label");
            let tags: Vec<RuleSelector> = tags.into_iter().cloned().collect();
            let (tag_selectors, repository_selectors) = selectors(&tags, &r.scope_selectors)?;
            let label_selectors = labels
                .into_iter()
                .map(|s| {
                    LabelSelector::new(&s.decoration, &s.pattern)
                        .map_err(|e| GatewayError::BadRequest(e.0))
                })
                .collect::<Result<_, _>>()?;
            Ok(Rule {
                priority: r.priority,
                disabled: r.disabled,
                template,
                tag_selectors,
                label_selectors,
                repository_selectors,
            })
        })
        .collect()
}

fn to_trigger(t: Option<&RetentionTrigger>) -> Result<Trigger, GatewayError> {
    let Some(t) = t else {
        return Ok(Trigger::Manual);
    };
    let cron = t
        .settings
        .get("cron")
        .and_then(|c| c.as_str())
        .map(str::trim)
        .unwrap_or("");
    match t.kind.as_str() {
        "Schedule" if !cron.is_empty() => {
            let parsed = cron
                .parse::<berth_storage::retention::Cron>()
                .map_err(GatewayError::BadRequest)?;
            if !parsed.at_most_once_a_minute() {
                return Err(GatewayError::BadRequest(format!(
                    "cron `{cron}` fires more than once a minute; tag retention runs at most \
                     once a minute: give one second, such as `0 */5 * * * *`"
                )));
            }
            Ok(Trigger::Schedule { cron: cron.into() })
        }
        "Schedule" | "Manual" => Ok(Trigger::Manual),
        other => Err(GatewayError::BadRequest(format!(
            "trigger kind `{other}` is not supported; use `Schedule` with settings.cron"
        ))),
    }
}

pub(crate) fn policy_json(p: &Policy) -> RetentionPolicy {
    let cron = match &p.trigger {
        Trigger::Manual => String::new(),
        Trigger::Schedule { cron } => cron.clone(),
    };
    RetentionPolicy {
        id: Some(p.id),
        algorithm: Some("or".into()),
        rules: p
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| RetentionRule {
                id: Some(i as i64 + 1),
                priority: r.priority,
                disabled: r.disabled,
                action: Some("retain".into()),
                template: r.template.id().into(),
                params: r
                    .template
                    .param()
                    .map(|v| (r.template.id().to_owned(), serde_json::Value::from(v)))
                    .into_iter()
                    .collect(),
                tag_selectors: r
                    .tag_selectors
                    .iter()
                    .map(from_selector)
                    .chain(r.label_selectors.iter().map(|l| RuleSelector {
                        kind: "label".into(),
                        decoration: l.decoration().into(),
                        pattern: l.pattern(),
                        extras: None,
                    }))
                    .collect(),
                scope_selectors: ScopeSelectors {
                    repository: r.repository_selectors.iter().map(from_selector).collect(),
                },
            })
            .collect(),
        trigger: Some(RetentionTrigger {
            kind: "Schedule".into(),
            settings: [("cron".to_owned(), serde_json::Value::from(cron))]
                .into_iter()
                .collect(),
            references: BTreeMap::new(),
        }),
        scope: Some(RetentionScope {
            level: "project".into(),
            reference: p.project_id,
        }),
    }
}

fn execution_json(e: &ExecutionRow) -> RetentionExecution {
    RetentionExecution {
        id: e.id,
        policy_id: e.policy_id,
        start_time: time(e.start_time),
        end_time: e.end_time.map(time),
        status: e.status.clone(),
        trigger: e.trigger.clone(),
        dry_run: e.dry_run,
    }
}

fn task_json(t: &TaskRow) -> RetentionExecutionTask {
    RetentionExecutionTask {
        id: t.id,
        execution_id: t.execution_id,
        repository: t.repository.clone(),
        job_id: format!("retention-{}-{}", t.execution_id, t.id),
        status: t.status.clone(),
        status_code: if t.status == "Success" { 3 } else { 4 },
        start_time: time(t.start_time),
        end_time: t.end_time.map(time),
        total: t.total,
        retained: t.retained,
    }
}

fn json_reply<T: Serialize>(value: &T) -> Reply {
    Reply::json(200, &serde_json::to_value(value).unwrap_or_default())
}

pub async fn route(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    rest: &[&str],
) -> Result<Reply, GatewayError> {
    let m = session.req_header().method.clone();
    match rest {
        [] if m == Method::POST => create(app, session, req).await,
        ["metadatas"] if m == Method::GET => metadatas(req),
        [id] if m == Method::GET => get(app, req, id).await,
        [id] if m == Method::PUT => update(app, session, req, id).await,
        [id] if m == Method::DELETE => delete(app, req, id).await,
        [id, "executions"] if m == Method::GET => executions(app, req, id).await,
        [id, "executions"] if m == Method::POST => run(app, session, req, id).await,
        [id, "executions", eid, "tasks"] if m == Method::GET => tasks(app, req, id, eid).await,
        [id, "executions", eid, "tasks", tid] if m == Method::GET => {
            task_log(app, req, id, eid, tid).await
        }
        []
        | [_]
        | [_, "executions"]
        | [_, "executions", _, "tasks"]
        | [_, "executions", _, "tasks", _] => Err(GatewayError::MethodNotAllowed {
            method: m.to_string(),
        }),
        _ => Err(GatewayError::NotFound(
            session.req_header().uri.path().to_owned(),
        )),
    }
}

/// The policy `id` and its project, if the caller may do `action` there.
pub(crate) async fn policy(
    app: &App,
    req: &ApiRequest,
    id: &str,
    action: Action,
) -> Result<(Policy, ProjectRow), GatewayError> {
    let id = path_id(id, "id")?;
    let not_found = || GatewayError::ApiNotFound(format!("retention policy {id} not found"));
    let policy = app
        .registry
        .meta()
        .retention_policy(id)
        .await?
        .ok_or_else(not_found)?;
    let row = app
        .registry
        .meta()
        .project_by_id(policy.project_id)
        .await?
        .ok_or_else(not_found)?;
    require_on(app, req, &row.name, action, not_found).await?;
    Ok((policy, row))
}

#[utoipa::path(post, path = "/api/v2.0/retentions", tag = "retention",
    request_body = RetentionPolicy,
    responses((status = 201, description = "Created; Location names the policy",
        headers(("Location" = String, description = "/api/v2.0/retentions/{id}"))),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors),
        (status = 409, description = "The project already has a policy", body = super::Errors)))]
pub async fn create(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
) -> Result<Reply, GatewayError> {
    let body: RetentionPolicy = read_json(session).await?;
    let id = create_policy(app, req, &body).await?;
    Ok(Reply::new(201).header("Location", format!("/api/v2.0/retentions/{id}")))
}

/// Creates a project's policy (the API's POST and the portal's first
/// rule); returns its id.
pub(crate) async fn create_policy(
    app: &App,
    req: &ApiRequest,
    body: &RetentionPolicy,
) -> Result<i64, GatewayError> {
    let scope = body
        .scope
        .as_ref()
        .filter(|s| s.level == "project")
        .ok_or_else(|| {
            GatewayError::BadRequest(
                "`scope` must name the project: {\"level\":\"project\",\"ref\":<project id>}"
                    .into(),
            )
        })?;
    let not_found = || GatewayError::ApiNotFound(format!("project {} not found", scope.reference));
    let row = app
        .registry
        .meta()
        .project_by_id(scope.reference)
        .await?
        .ok_or_else(not_found)?;
    require_on(app, req, &row.name, Action::ManageRetention, not_found).await?;
    let rules = to_rules(&body.rules)?;
    let trigger = to_trigger(body.trigger.as_ref())?;
    let created = app
        .registry
        .meta()
        .create_retention_policy(row.id, &rules, &trigger)
        .await?;
    req.audit(
        app,
        "create",
        "retention",
        &row.name,
        Some(&row.name),
        created.is_some(),
    );
    let Some(id) = created else {
        let existing = app.registry.meta().project_retention_id(row.id).await?;
        return Err(GatewayError::Conflict(format!(
            "project `{}` already has retention policy {}; change it with PUT /api/v2.0/retentions/{0}",
            row.name,
            existing.unwrap_or_default()
        )));
    };
    Ok(id)
}

#[utoipa::path(get, path = "/api/v2.0/retentions/{id}", tag = "retention",
    params(("id" = i64, Path, description = "Policy id")),
    responses((status = 200, body = RetentionPolicy), (status = 400, body = super::Errors),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors)))]
pub async fn get(app: &App, req: &ApiRequest, id: &str) -> Result<Reply, GatewayError> {
    let (policy, _) = policy(app, req, id, Action::ReadRetention).await?;
    Ok(json_reply(&policy_json(&policy)))
}

#[utoipa::path(put, path = "/api/v2.0/retentions/{id}", tag = "retention",
    params(("id" = i64, Path, description = "Policy id")),
    request_body = RetentionPolicy,
    responses((status = 200, description = "Updated"), (status = 400, body = super::Errors),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors)))]
pub async fn update(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    id: &str,
) -> Result<Reply, GatewayError> {
    // A caller who may not change the policy is refused before its body
    // is read.
    policy(app, req, id, Action::ManageRetention).await?;
    let body: RetentionPolicy = read_json(session).await?;
    update_policy(app, req, id, &body).await?;
    Ok(Reply::new(200))
}

/// Replaces a policy's rules and trigger (the API's PUT and the portal's
/// rule and schedule forms).
pub(crate) async fn update_policy(
    app: &App,
    req: &ApiRequest,
    id: &str,
    body: &RetentionPolicy,
) -> Result<(), GatewayError> {
    let (policy, row) = policy(app, req, id, Action::ManageRetention).await?;
    let rules = to_rules(&body.rules)?;
    let trigger = to_trigger(body.trigger.as_ref())?;
    let updated = app
        .registry
        .meta()
        .update_retention_policy(policy.id, &rules, &trigger)
        .await?;
    req.audit(
        app,
        "update",
        "retention",
        &row.name,
        Some(&row.name),
        updated,
    );
    Ok(())
}

#[utoipa::path(delete, path = "/api/v2.0/retentions/{id}", tag = "retention",
    params(("id" = i64, Path, description = "Policy id")),
    responses((status = 200, description = "Deleted with its executions"),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn delete(app: &App, req: &ApiRequest, id: &str) -> Result<Reply, GatewayError> {
    delete_policy(app, req, id).await?;
    Ok(Reply::new(200))
}

/// Deletes a policy with its executions (the API's DELETE and the
/// portal's removal of the last rule).
pub(crate) async fn delete_policy(
    app: &App,
    req: &ApiRequest,
    id: &str,
) -> Result<(), GatewayError> {
    let (policy, row) = policy(app, req, id, Action::ManageRetention).await?;
    let deleted = app
        .registry
        .meta()
        .delete_retention_policy(policy.id)
        .await?;
    req.audit(
        app,
        "delete",
        "retention",
        &row.name,
        Some(&row.name),
        deleted,
    );
    Ok(())
}

#[utoipa::path(post, path = "/api/v2.0/retentions/{id}/executions", tag = "retention",
    params(("id" = i64, Path, description = "Policy id")),
    request_body = RunRequest,
    responses((status = 201, description = "Started; Location names the execution",
        headers(("Location" = String, description = "/api/v2.0/retentions/{id}/executions/{eid}"))),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn run(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    id: &str,
) -> Result<Reply, GatewayError> {
    policy(app, req, id, Action::ManageRetention).await?;
    let body: RunRequest = read_json(session).await?;
    let (policy_id, execution) = run_policy(app, req, id, body.dry_run).await?;
    Ok(Reply::new(201).header(
        "Location",
        format!("/api/v2.0/retentions/{policy_id}/executions/{execution}"),
    ))
}

/// Starts a run of a policy (the API's POST and the portal's buttons);
/// returns the policy's and the execution's ids.
pub(crate) async fn run_policy(
    app: &App,
    req: &ApiRequest,
    id: &str,
    dry_run: bool,
) -> Result<(i64, i64), GatewayError> {
    let (policy, row) = policy(app, req, id, Action::ManageRetention).await?;
    if !dry_run {
        app.runtime.refuse_writes()?;
    }
    let policy_id = policy.id;
    let execution = app
        .retention
        .start(policy, "MANUAL", dry_run, req.username().to_owned())
        .await?;
    req.audit(
        app,
        "create",
        "retention_execution",
        &execution.to_string(),
        Some(&row.name),
        true,
    );
    Ok((policy_id, execution))
}

#[utoipa::path(get, path = "/api/v2.0/retentions/{id}/executions", tag = "retention",
    params(("id" = i64, Path, description = "Policy id"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, description = "Executions, newest first", body = [RetentionExecution],
        headers(("X-Total-Count" = i64, description = "Total"), ("Link" = String, description = "prev/next pages"))),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn executions(app: &App, req: &ApiRequest, id: &str) -> Result<Reply, GatewayError> {
    let (policy, _) = policy(app, req, id, Action::ReadRetention).await?;
    let page = Page::parse(&req.query)?;
    let (rows, total) = app
        .registry
        .meta()
        .retention_executions(policy.id, page.offset(), page.limit())
        .await?;
    let items: Vec<_> = rows.iter().map(execution_json).collect();
    let path = format!("/api/v2.0/retentions/{}/executions", policy.id);
    Ok(page.reply(&path, &req.query, &items, total))
}

async fn execution(app: &App, policy: &Policy, eid: &str) -> Result<ExecutionRow, GatewayError> {
    let eid = path_id(eid, "eid")?;
    app.registry
        .meta()
        .retention_execution(policy.id, eid)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("retention execution {eid} not found")))
}

#[utoipa::path(get, path = "/api/v2.0/retentions/{id}/executions/{eid}/tasks", tag = "retention",
    params(("id" = i64, Path, description = "Policy id"), ("eid" = i64, Path, description = "Execution id"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, description = "One task per repository the policy applied to", body = [RetentionExecutionTask],
        headers(("X-Total-Count" = i64, description = "Total"), ("Link" = String, description = "prev/next pages"))),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn tasks(
    app: &App,
    req: &ApiRequest,
    id: &str,
    eid: &str,
) -> Result<Reply, GatewayError> {
    let (policy, _) = policy(app, req, id, Action::ReadRetention).await?;
    let execution = execution(app, &policy, eid).await?;
    let page = Page::parse(&req.query)?;
    let (rows, total) = app
        .registry
        .meta()
        .retention_tasks(execution.id, page.offset(), page.limit())
        .await?;
    let items: Vec<_> = rows.iter().map(task_json).collect();
    let path = format!(
        "/api/v2.0/retentions/{}/executions/{}/tasks",
        policy.id, execution.id
    );
    Ok(page.reply(&path, &req.query, &items, total))
}

#[utoipa::path(get, path = "/api/v2.0/retentions/{id}/executions/{eid}/tasks/{tid}", tag = "retention",
    params(("id" = i64, Path, description = "Policy id"), ("eid" = i64, Path, description = "Execution id"),
        ("tid" = i64, Path, description = "Task id")),
    responses((status = 200, description = "The task's log: one line per artifact, `<digest> [<tags>] <RETAIN|DELETE|DELETE (dry run)|RETAIN (immutable)>`",
        body = String, content_type = "text/plain"),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn task_log(
    app: &App,
    req: &ApiRequest,
    id: &str,
    eid: &str,
    tid: &str,
) -> Result<Reply, GatewayError> {
    let log = task_log_text(app, req, id, eid, tid).await?;
    Ok(Reply::new(200)
        .header("Content-Type", "text/plain; charset=utf-8")
        .bytes(bytes::Bytes::from(log)))
}

/// A task's log (the API's and the portal's).
pub(crate) async fn task_log_text(
    app: &App,
    req: &ApiRequest,
    id: &str,
    eid: &str,
    tid: &str,
) -> Result<String, GatewayError> {
    let (policy, _) = policy(app, req, id, Action::ReadRetention).await?;
    let execution = execution(app, &policy, eid).await?;
    let tid = path_id(tid, "tid")?;
    app.registry
        .meta()
        .retention_task_log(execution.id, tid)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("retention task {tid} not found")))
}
