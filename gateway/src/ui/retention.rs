//! Tag retention on a project's policies tab: the policy's rules in
//! words, its schedule, its executions with their tasks, and the forms
//! that add and delete rules, set the schedule and run the policy. Every
//! change goes through the API's own functions (`api::retention`), which
//! check policy; the page only decides which forms to show.

use berth_policy::Action;
use berth_storage::oci::{Algorithm, Digest};
use berth_storage::projects::ProjectRow;
use berth_storage::retention::{Policy, Rule, Template, Trigger};
use pingora::proxy::Session;

use super::form;
use super::i18n::Text;
use super::page::{encode_path, human_time, redirect, Pager};
use super::policies::selectors_text;
use super::projects::allowed;
use super::visitor::Visitor;
use crate::api::immutable::{RuleSelector, ScopeSelectors};
use crate::api::page::Page;
use crate::api::request::{ApiRequest, ProjectRef};
use crate::api::retention::{
    create_policy, delete_policy, policy, policy_json, run_policy, task_log_text, update_policy,
    RetentionPolicy, RetentionRule, RetentionScope, RetentionTrigger,
};
use crate::app::App;
use crate::auth::ProjectFacts;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::Query;

/// Executions shown per page of the history.
const EXECUTIONS_PER_PAGE: i64 = 10;
/// Tasks (repositories) shown per execution.
const TASKS_SHOWN: i64 = 100;

pub struct RuleLine {
    /// The rule's place in the policy, from 1 (its address in the forms).
    pub n: usize,
    pub text: String,
    pub disabled: bool,
}

pub struct TaskLine {
    pub repository: String,
    pub status: String,
    pub total: i64,
    pub retained: i64,
    pub log_url: String,
}

pub struct ExecutionLine {
    pub id: i64,
    pub status: String,
    pub dry_run: bool,
    pub trigger: String,
    pub start: String,
    pub end: String,
    pub tasks: Vec<TaskLine>,
    /// Tasks beyond those shown.
    pub more_tasks: i64,
}

/// The retention part of the policies tab.
pub struct RetentionView {
    /// `None`: the project has no policy yet.
    pub policy_id: Option<i64>,
    pub rules: Vec<RuleLine>,
    /// Empty: runs only when asked.
    pub cron: String,
    pub executions: Vec<ExecutionLine>,
    pub pager: Pager,
    pub may_manage: bool,
    /// The policy as this page shows it (see [`version`]).
    pub version: String,
}

/// A fingerprint of the policy a page showed. Its forms send it back, and
/// a change is refused when the policy changed meanwhile: rules are
/// deleted by their place in the list, and each change rewrites the
/// whole policy, so a stale page would delete the wrong rule or undo
/// another editor's change.
fn version(p: &Policy) -> String {
    let json = serde_json::to_vec(&policy_json(p)).unwrap_or_default();
    let digest = Digest::compute(Algorithm::Sha256, &json).to_string();
    digest[digest.len() - 16..].to_owned()
}

/// Refuses a form made from another version of the policy.
fn check_version(form: &Query, p: &Policy) -> Result<(), GatewayError> {
    if form.get("version") == Some(version(p).as_str()) {
        return Ok(());
    }
    Err(GatewayError::Conflict(
        "the tag retention policy changed since this page was loaded; reload the page and try again"
            .into(),
    ))
}

/// A rule in words: "retain the 5 most recently pushed in repositories
/// matching `**` with tags matching `**`".
fn rule_text(t: &Text, r: &Rule) -> String {
    let n = r.template.param().unwrap_or(0).to_string();
    let what = match r.template {
        Template::LatestPushedK(_) => t.rule_latest_pushed,
        Template::LatestPulledN(_) => t.rule_latest_pulled,
        Template::NDaysSinceLastPush(_) => t.rule_days_since_push,
        Template::NDaysSinceLastPull(_) => t.rule_days_since_pull,
        Template::Always => t.rule_always,
    }
    .replace("{n}", &n);
    let mut text = format!(
        "{what}{}{}{}{}",
        t.rule_in_repositories,
        selectors_text(t, &r.repository_selectors),
        t.rule_with_tags,
        selectors_text(t, &r.tag_selectors)
    );
    if r.tag_selectors.iter().any(|s| s.untagged) {
        text.push_str(t.rule_untagged_too);
    }
    for l in &r.label_selectors {
        let names: Vec<String> = l.labels.iter().map(|n| format!("`{n}`")).collect();
        text.push_str(if l.with {
            t.rule_labelled
        } else {
            t.rule_not_labelled
        });
        text.push_str(&names.join(t.and));
    }
    text
}

/// The project's policy, if it has one and the visitor may read it.
async fn project_policy(
    app: &App,
    req: &ApiRequest,
    row: &ProjectRow,
    action: Action,
) -> Result<Option<Policy>, GatewayError> {
    match app.registry.meta().project_retention_id(row.id).await? {
        None => Ok(None),
        Some(id) => Ok(Some(policy(app, req, &id.to_string(), action).await?.0)),
    }
}

/// The retention part of the page (the visitor may read retention).
pub async fn view(
    app: &App,
    v: &Visitor,
    row: &ProjectRow,
    facts: &ProjectFacts,
    query: &Query,
    path: &str,
) -> Result<RetentionView, GatewayError> {
    let req = v.api();
    let t = v.lang.text();
    let mut page = Page::parse(query)?;
    page.size = EXECUTIONS_PER_PAGE;
    let policy = project_policy(app, &req, row, Action::ReadRetention).await?;
    let meta = app.registry.meta();
    let (mut executions, mut total) = (Vec::new(), 0);
    if let Some(p) = &policy {
        let (rows, count) = meta
            .retention_executions(p.id, page.offset(), page.limit())
            .await?;
        total = count;
        for e in rows {
            let (tasks, task_count) = meta.retention_tasks(e.id, 0, TASKS_SHOWN).await?;
            let tasks: Vec<TaskLine> = tasks
                .into_iter()
                .map(|task| TaskLine {
                    log_url: format!("{path}/retention/{}/tasks/{}/log", e.id, task.id),
                    repository: task.repository,
                    status: task.status,
                    total: task.total,
                    retained: task.retained,
                })
                .collect();
            executions.push(ExecutionLine {
                id: e.id,
                status: e.status,
                dry_run: e.dry_run,
                trigger: e.trigger,
                start: human_time(e.start_time),
                end: e.end_time.map(human_time).unwrap_or_default(),
                more_tasks: task_count - tasks.len() as i64,
                tasks,
            });
        }
    }
    Ok(RetentionView {
        policy_id: policy.as_ref().map(|p| p.id),
        rules: policy
            .as_ref()
            .map(|p| {
                p.rules
                    .iter()
                    .enumerate()
                    .map(|(i, r)| RuleLine {
                        n: i + 1,
                        text: rule_text(t, r),
                        disabled: r.disabled,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        cron: match policy.as_ref().map(|p| &p.trigger) {
            Some(Trigger::Schedule { cron }) => cron.clone(),
            _ => String::new(),
        },
        executions,
        pager: Pager::new(path, query, page, total),
        may_manage: allowed(&req, Action::ManageRetention, facts),
        version: policy.as_ref().map(version).unwrap_or_default(),
    })
}

fn back(name: &str) -> String {
    format!("/projects/{}/policies", encode_path(name))
}

/// A form's selector: a pattern (default `**`) that matches or excludes.
fn selector(form: &Query, prefix: &str, untagged: bool) -> RuleSelector {
    let pattern = form
        .get(&format!("{prefix}_pattern"))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .unwrap_or("**");
    let excludes = form.get(&format!("{prefix}_decoration")) == Some("excludes");
    let decoration = match (prefix, excludes) {
        ("repo", false) => "repoMatches",
        ("repo", true) => "repoExcludes",
        (_, false) => "matches",
        (_, true) => "excludes",
    };
    RuleSelector {
        kind: "doublestar".into(),
        decoration: decoration.into(),
        pattern: pattern.into(),
        extras: untagged.then(|| "{\"untagged\":true}".to_owned()),
    }
}

/// Adds a rule: the project's first creates its policy.
pub async fn add_rule(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    name: &str,
) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let req = v.api();
    let template = form.get("template").unwrap_or("latestPushedK").to_owned();
    let params = match form.get("count").map(str::trim) {
        Some(n) if !n.is_empty() && template != "always" => {
            [(template.clone(), serde_json::Value::from(n))]
                .into_iter()
                .collect()
        }
        _ => Default::default(),
    };
    let rule = RetentionRule {
        id: None,
        priority: 0,
        disabled: false,
        action: Some("retain".into()),
        template,
        params,
        tag_selectors: vec![selector(&form, "tag", form.get("untagged") == Some("true"))],
        scope_selectors: ScopeSelectors {
            repository: vec![selector(&form, "repo", false)],
        },
    };
    let (row, _) = req
        .project(app, ProjectRef::Name(name), Action::ReadProject)
        .await?;
    match project_policy(app, &req, &row, Action::ManageRetention).await? {
        Some(p) => {
            check_version(&form, &p)?;
            let mut body = policy_json(&p);
            body.rules.push(rule);
            update_policy(app, &req, &p.id.to_string(), &body).await?;
        }
        None => {
            let body = RetentionPolicy {
                id: None,
                algorithm: Some("or".into()),
                rules: vec![rule],
                trigger: None,
                scope: Some(RetentionScope {
                    level: "project".into(),
                    reference: row.id,
                }),
            };
            create_policy(app, &req, &body).await?;
        }
    }
    Ok(redirect(&back(name), v))
}

/// The policy, for a form that changes or runs it: there must be one.
async fn existing(app: &App, v: &Visitor, name: &str) -> Result<Policy, GatewayError> {
    let req = v.api();
    let (row, _) = req
        .project(app, ProjectRef::Name(name), Action::ReadProject)
        .await?;
    project_policy(app, &req, &row, Action::ManageRetention)
        .await?
        .ok_or_else(|| {
            GatewayError::BadRequest(format!(
                "project `{name}` has no tag retention policy yet: add a rule first"
            ))
        })
}

/// Deletes the rule at place `n`; the last one takes the policy (and its
/// history) with it, since a policy without rules is refused.
pub async fn delete_rule(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    name: &str,
    n: usize,
) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let p = existing(app, v, name).await?;
    check_version(&form, &p)?;
    let mut body = policy_json(&p);
    if n == 0 || n > body.rules.len() {
        return Err(GatewayError::ApiNotFound(format!(
            "the retention policy has no rule {n}"
        )));
    }
    body.rules.remove(n - 1);
    let req = v.api();
    if body.rules.is_empty() {
        delete_policy(app, &req, &p.id.to_string()).await?;
    } else {
        update_policy(app, &req, &p.id.to_string(), &body).await?;
    }
    Ok(redirect(&back(name), v))
}

/// Sets the schedule (empty: only when asked).
pub async fn schedule(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    name: &str,
) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let p = existing(app, v, name).await?;
    check_version(&form, &p)?;
    let mut body = policy_json(&p);
    let cron = form.get("cron").unwrap_or("").trim();
    body.trigger = Some(RetentionTrigger {
        kind: "Schedule".into(),
        settings: [("cron".to_owned(), serde_json::Value::from(cron))]
            .into_iter()
            .collect(),
        references: Default::default(),
    });
    update_policy(app, &v.api(), &p.id.to_string(), &body).await?;
    Ok(redirect(&back(name), v))
}

/// Runs the policy now, for real or as a dry run (`dry_run=true`).
pub async fn run(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    name: &str,
) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let p = existing(app, v, name).await?;
    let dry_run = form.get("dry_run") == Some("true");
    run_policy(app, &v.api(), &p.id.to_string(), dry_run).await?;
    Ok(redirect(&back(name), v))
}

/// A task's log, as text.
pub async fn task_log(
    app: &App,
    v: &Visitor,
    name: &str,
    execution: i64,
    task: i64,
) -> Result<Reply, GatewayError> {
    let req = v.api();
    let (row, _) = req
        .project(app, ProjectRef::Name(name), Action::ReadProject)
        .await?;
    let id = app
        .registry
        .meta()
        .project_retention_id(row.id)
        .await?
        .ok_or_else(|| {
            GatewayError::ApiNotFound(format!("project `{name}` has no retention policy"))
        })?;
    let text = task_log_text(
        app,
        &req,
        &id.to_string(),
        &execution.to_string(),
        &task.to_string(),
    )
    .await?;
    Ok(super::page::text(text, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_storage::selector::{Decoration, LabelSelector, Selector};

    #[test]
    fn rules_in_words() {
        let sel = |d, p: &str| Selector::new("doublestar", d, p, false).unwrap();
        let rule = Rule {
            priority: 0,
            disabled: false,
            template: Template::LatestPushedK(5),
            tag_selectors: vec![sel(Decoration::Matches, "**")],
            label_selectors: Vec::new(),
            repository_selectors: vec![sel(Decoration::RepoExcludes, "tmp/**")],
        };
        let en = super::super::i18n::Lang::En.text();
        assert_eq!(
            rule_text(en, &rule),
            "retain the 5 most recently pushed in repositories excluding `tmp/**` with tags matching `**`"
        );
        let labelled = Rule {
            label_selectors: vec![
                LabelSelector::new("withLabels", "release").unwrap(),
                LabelSelector::new("withoutLabels", "a,b").unwrap(),
            ],
            ..rule
        };
        assert!(
            rule_text(en, &labelled).ends_with(" labelled `release` without label `a` and `b`"),
            "{}",
            rule_text(en, &labelled)
        );
    }
}
