//! `/admin/replication`: the replication policies in words (push to or
//! pull from which endpoint, where the copies land, when, what the filters
//! select), the form that creates one, "replicate now" and delete per
//! policy, and the latest executions. Every change is the API's own
//! function (`api::replication`), so the page and `/api/v2.0/replication`
//! behave alike. An execution's page and its tasks' logs are in
//! `super::replication_runs`.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use askama::Template;
use berth_policy::{Action, Resource};
use berth_storage::replication::{ExecutionQuery, Filter, FilterKind, Policy, Trigger};
use pingora::proxy::Session;

use super::Flash;
use crate::api::page::Page;
use crate::api::replication::{
    self, RegistryRef, ReplicationFilter, ReplicationPolicy, ReplicationTrigger, TriggerSettings,
    ADAPTERS,
};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::Query;
use crate::ui::form;
use crate::ui::i18n::Text;
use crate::ui::page::{html, human_time, redirect, Layout, Pager};
use crate::ui::visitor::Visitor;

/// The page's path.
pub const PATH: &str = "/admin/replication";
const POLICIES_PER_PAGE: i64 = 50;
const EXECUTIONS_PER_PAGE: i64 = 20;
/// The policies' page number (`page` is the executions').
const POLICY_PAGE: &str = "policies_page";
/// The flattening levels the form offers (the API takes up to 100).
const FLATTENING: [i64; 5] = [-1, 0, 1, 2, 3];

/// One choice of a `<select>`.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Choice {
    fn new(value: impl ToString, label: impl Into<String>, current: &str) -> Choice {
        let value = value.to_string();
        Choice {
            selected: value == current,
            value,
            label: label.into(),
        }
    }
}

struct PolicyLine {
    id: i64,
    name: String,
    description: String,
    push: bool,
    endpoint: String,
    namespace: String,
    flattening: String,
    trigger: &'static str,
    cron: String,
    enabled: bool,
    filters: String,
}

/// An execution in the list (also on its own page).
pub struct ExecutionLine {
    pub id: i64,
    pub policy: String,
    pub status: String,
    pub trigger: &'static str,
    pub start: String,
    pub end: String,
    pub succeed: i64,
    pub failed: i64,
    pub in_progress: i64,
    pub stopped: i64,
    pub total: i64,
}

impl ExecutionLine {
    pub fn of(t: &Text, e: &berth_storage::replication::Execution, policy: String) -> Self {
        ExecutionLine {
            id: e.id,
            policy,
            status: e.status.clone(),
            trigger: trigger_words(t, &e.trigger),
            start: human_time(e.start_time),
            end: e.end_time.map(human_time).unwrap_or_default(),
            succeed: e.succeed,
            failed: e.failed,
            in_progress: e.in_progress,
            stopped: e.stopped,
            total: e.total,
        }
    }
}

/// The creation form's values: empty at first, as sent after a refusal.
struct Draft {
    name: String,
    description: String,
    push: bool,
    /// The endpoint's id; 0 when none is chosen.
    endpoint: i64,
    namespace: String,
    replace_count: String,
    name_filter: String,
    tag_filter: String,
    tag_excludes: bool,
    /// `image`, `artifact`, or empty for both.
    resource: String,
    trigger: String,
    cron: String,
    override_existing: bool,
    replicate_deletion: bool,
    enabled: bool,
    /// KiB/s as typed; empty is unlimited.
    speed: String,
    copy_by_chunk: bool,
    single_active: bool,
}

impl Default for Draft {
    fn default() -> Draft {
        Draft {
            name: String::new(),
            description: String::new(),
            push: true,
            endpoint: 0,
            namespace: String::new(),
            replace_count: "-1".into(),
            name_filter: String::new(),
            tag_filter: String::new(),
            tag_excludes: false,
            resource: String::new(),
            trigger: "manual".into(),
            cron: String::new(),
            override_existing: false,
            replicate_deletion: false,
            enabled: true,
            speed: String::new(),
            copy_by_chunk: false,
            single_active: false,
        }
    }
}

impl Draft {
    fn read(form: &Query) -> Draft {
        let field = |k: &str| form.get(k).unwrap_or("").trim().to_owned();
        let flag = |k: &str| form.get(k) == Some("true");
        Draft {
            name: field("name"),
            description: field("description"),
            push: form.get("mode") != Some("pull"),
            endpoint: field("endpoint").parse().unwrap_or(0),
            namespace: field("dest_namespace"),
            replace_count: field("replace_count"),
            name_filter: field("name_filter"),
            tag_filter: field("tag_filter"),
            tag_excludes: flag("tag_excludes"),
            resource: field("resource"),
            trigger: field("trigger"),
            cron: field("cron"),
            override_existing: flag("override"),
            replicate_deletion: flag("replicate_deletion"),
            enabled: flag("enabled"),
            speed: field("speed"),
            copy_by_chunk: flag("copy_by_chunk"),
            single_active: flag("single_active"),
        }
    }

    /// The form as the API's request; the API checks the rest.
    fn policy(&self) -> Result<ReplicationPolicy, GatewayError> {
        let number = |text: &str, what: &str| -> Result<i64, GatewayError> {
            text.parse().map_err(|_| {
                GatewayError::BadRequest(format!("{what} `{text}` is not a whole number"))
            })
        };
        let speed = match self.speed.as_str() {
            "" => -1,
            s => number(s, "the bandwidth (KiB/s)")?,
        };
        let replace_count = match self.replace_count.as_str() {
            "" => None,
            s => Some(number(s, "the flattening level")?),
        };
        let endpoint = Some(RegistryRef {
            id: Some(self.endpoint),
            name: None,
            kind: None,
            url: None,
            description: None,
            insecure: None,
            status: None,
            credential: None,
            creation_time: None,
            update_time: None,
        });
        let (src_registry, dest_registry) = match self.push {
            true => (None, endpoint),
            false => (endpoint, None),
        };
        let filter = |kind: &str, value: &str, excludes: bool| ReplicationFilter {
            kind: Some(kind.to_owned()),
            value: serde_json::Value::String(value.to_owned()),
            decoration: Some(if excludes { "excludes" } else { "matches" }.to_owned()),
        };
        let filters = [
            filter("name", &self.name_filter, false),
            filter("tag", &self.tag_filter, self.tag_excludes),
            filter("resource", &self.resource, false),
        ]
        .into_iter()
        // The API skips empty filters too; leaving them out says so here.
        .filter(|f| f.value.as_str().is_some_and(|v| !v.is_empty()))
        .collect();
        Ok(ReplicationPolicy {
            id: None,
            name: Some(self.name.clone()),
            description: Some(self.description.clone()),
            src_registry,
            dest_registry,
            dest_namespace: Some(self.namespace.clone()),
            dest_namespace_replace_count: replace_count,
            trigger: Some(ReplicationTrigger {
                kind: Some(self.trigger.clone()),
                trigger_settings: Some(TriggerSettings {
                    cron: Some(self.cron.clone()),
                }),
            }),
            filters: Some(filters),
            replicate_deletion: Some(self.replicate_deletion),
            deletion: None,
            override_existing: Some(self.override_existing),
            enabled: Some(self.enabled),
            creation_time: None,
            update_time: None,
            speed: Some(speed),
            copy_by_chunk: Some(self.copy_by_chunk),
            single_active_replication: Some(self.single_active),
        })
    }
}

#[derive(Template)]
#[template(path = "admin_replication.html")]
struct ReplicationPage {
    l: Layout,
    tab: &'static str,
    flash: Option<Flash>,
    rows: Vec<PolicyLine>,
    policies_pager: Pager,
    executions: Vec<ExecutionLine>,
    pager: Pager,
    draft: Draft,
    modes: Vec<Choice>,
    endpoints: Vec<Choice>,
    flattenings: Vec<Choice>,
    resources: Vec<Choice>,
    triggers: Vec<Choice>,
}

/// A trigger (`manual`, `scheduled`, `event_based`) in words.
pub fn trigger_words(t: &Text, trigger: &str) -> &'static str {
    match trigger {
        "scheduled" => t.trigger_scheduled,
        "event_based" => t.trigger_event_based,
        _ => t.trigger_manual,
    }
}

/// A flattening level in words.
fn flattening_words(t: &Text, n: i64) -> String {
    match n {
        -1 => t.flatten_all.to_owned(),
        0 => t.flatten_none.to_owned(),
        n => t.flatten_levels.replace("{n}", &n.to_string()),
    }
}

/// A policy's filters in words: "names matching `library/**` and tags
/// excluding `*-rc` and images only".
fn filters_words(t: &Text, filters: &[Filter]) -> String {
    if filters.is_empty() {
        return t.repl_everything.to_owned();
    }
    filters
        .iter()
        .map(|f| {
            let verb = if f.excludes { t.excluding } else { t.matching };
            match f.kind {
                FilterKind::Name => format!("{} {verb} `{}`", t.repl_filter_name_words, f.value),
                FilterKind::Tag => format!("{} {verb} `{}`", t.repl_filter_tag_words, f.value),
                FilterKind::Resource => {
                    let what = match f.value.as_str() {
                        "image" => t.resource_image,
                        "artifact" => t.resource_artifact,
                        other => other,
                    };
                    if f.excludes {
                        format!("{verb} {what}")
                    } else {
                        what.to_owned()
                    }
                }
                FilterKind::Label => format!("label {verb} `{}`", f.labels.join("`, `")),
            }
        })
        .collect::<Vec<_>>()
        .join(t.and)
}

/// A refusal the API explains (a bad field, a taken name, a state that
/// forbids it) becomes a message on the page, in the status the API
/// would answer; anything else (a refused permission, a fault) stays an
/// error page.
pub fn refusal(e: GatewayError) -> Result<(u16, Flash), GatewayError> {
    let status = e.present_api().status;
    match e {
        GatewayError::BadRequest(text)
        | GatewayError::Conflict(text)
        | GatewayError::Precondition(text) => Ok((status, Flash { ok: false, text })),
        other => Err(other),
    }
}

/// A page number other than `page`'s, checked as `Page::parse` does.
fn page_number(query: &Query, key: &str) -> Result<i64, GatewayError> {
    match query.get(key) {
        None | Some("") => Ok(1),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=i64::from(i32::MAX)).contains(n))
            .ok_or_else(|| {
                GatewayError::BadRequest(format!(
                    "`{key}` must be a whole number from 1 to {}, not `{v}`",
                    i32::MAX
                ))
            }),
    }
}

/// Policies' names by id, for executions: those of `known`, the others
/// looked up.
pub async fn policy_names(
    app: &App,
    known: &[Policy],
    ids: impl Iterator<Item = i64>,
) -> Result<BTreeMap<i64, String>, GatewayError> {
    let mut names: BTreeMap<i64, String> =
        known.iter().map(|p| (p.id, p.spec.name.clone())).collect();
    for id in ids {
        if let Entry::Vacant(slot) = names.entry(id) {
            slot.insert(match app.registry.meta().replication_policy(id).await? {
                Some(p) => p.spec.name,
                None => format!("#{id}"),
            });
        }
    }
    Ok(names)
}

/// The page, with the outcome of what was just done.
pub async fn list(app: &App, v: &Visitor, query: &Query) -> Result<Reply, GatewayError> {
    let t = v.lang.text();
    let flash = match query.get("done") {
        Some("created") => Some(t.repl_policy_created),
        Some("deleted") => Some(t.repl_policy_deleted),
        _ => None,
    }
    .map(|text| Flash {
        ok: true,
        text: text.to_owned(),
    });
    page(app, v, query, 200, flash, Draft::default()).await
}

async fn page(
    app: &App,
    v: &Visitor,
    query: &Query,
    status: u16,
    flash: Option<Flash>,
    draft: Draft,
) -> Result<Reply, GatewayError> {
    v.api()
        .require(Action::ManageReplication, Resource::System)?;
    let t = v.lang.text();
    let meta = app.registry.meta();
    let endpoints = meta.endpoints().await?;
    let endpoint_name = |id: i64| {
        endpoints
            .iter()
            .find(|e| e.id == id)
            .map_or_else(|| format!("#{id}"), |e| e.name.clone())
    };
    let policy_page = Page {
        page: page_number(query, POLICY_PAGE)?,
        size: POLICIES_PER_PAGE,
    };
    let (policies, policy_total) = meta
        .replication_policies(None, policy_page.offset(), policy_page.limit())
        .await?;
    let rows = policies
        .iter()
        .map(|p| {
            let s = &p.spec;
            PolicyLine {
                id: p.id,
                name: s.name.clone(),
                description: s.description.clone(),
                push: s.src_registry.is_none(),
                endpoint: s
                    .src_registry
                    .or(s.dest_registry)
                    .map(endpoint_name)
                    .unwrap_or_default(),
                namespace: s.dest_namespace.clone(),
                flattening: flattening_words(t, s.dest_namespace_replace_count),
                trigger: trigger_words(t, s.trigger.as_str()),
                cron: match &s.trigger {
                    Trigger::Scheduled { cron } => cron.clone(),
                    _ => String::new(),
                },
                enabled: s.enabled,
                filters: filters_words(t, &s.filters),
            }
        })
        .collect();
    let mut execution_page = Page::parse(query)?;
    execution_page.size = EXECUTIONS_PER_PAGE;
    let (executions, execution_total) = meta
        .replication_executions(
            &ExecutionQuery::default(),
            execution_page.offset(),
            execution_page.limit(),
        )
        .await?;
    let names = policy_names(app, &policies, executions.iter().map(|e| e.policy_id)).await?;
    let executions = executions
        .iter()
        .map(|e| {
            let name = names.get(&e.policy_id).cloned().unwrap_or_default();
            ExecutionLine::of(t, e, name)
        })
        .collect();
    let endpoint = draft.endpoint.to_string();
    let view = ReplicationPage {
        l: Layout::new(v, t.replication, "admin"),
        tab: "replication",
        flash,
        rows,
        policies_pager: Pager::keyed(PATH, query, POLICY_PAGE, policy_page, policy_total),
        executions,
        pager: Pager::new(PATH, query, execution_page, execution_total),
        modes: vec![
            Choice::new(
                "push",
                t.repl_push,
                if draft.push { "push" } else { "pull" },
            ),
            Choice::new(
                "pull",
                t.repl_pull,
                if draft.push { "push" } else { "pull" },
            ),
        ],
        endpoints: endpoints
            .iter()
            .filter(|e| ADAPTERS.contains(&e.kind.as_str()))
            .map(|e| {
                Choice::new(
                    e.id,
                    format!("{} ({}, {})", e.name, e.kind, e.url),
                    &endpoint,
                )
            })
            .collect(),
        flattenings: FLATTENING
            .iter()
            .map(|n| Choice::new(n, flattening_words(t, *n), &draft.replace_count))
            .collect(),
        resources: [
            ("", t.resource_any),
            ("image", t.resource_image),
            ("artifact", t.resource_artifact),
        ]
        .into_iter()
        .map(|(value, label)| Choice::new(value, label, &draft.resource))
        .collect(),
        triggers: ["manual", "scheduled", "event_based"]
            .into_iter()
            .map(|k| Choice::new(k, trigger_words(t, k), &draft.trigger))
            .collect(),
        draft,
    };
    html(status, &view, v)
}

/// Creates a policy; a refusal comes back on the page with the form
/// filled in as sent.
pub async fn create(app: &App, session: &mut Session, v: &Visitor) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let req = v.api();
    req.require(Action::ManageReplication, Resource::System)?;
    let draft = Draft::read(&form);
    let created = match draft.policy() {
        Ok(body) => replication::create_policy(app, &req, body).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(_) => Ok(redirect(&format!("{PATH}?done=created"), v)),
        Err(e) => {
            let (status, flash) = refusal(e)?;
            page(app, v, &Query::parse(None), status, Some(flash), draft).await
        }
    }
}

/// "Replicate now": starts the policy and shows its execution.
pub async fn run(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    id: i64,
) -> Result<Reply, GatewayError> {
    form::read(session, v).await?;
    let req = v.api();
    req.require(Action::ManageReplication, Resource::System)?;
    let policy = replication::load(app, &id.to_string()).await?;
    match replication::start_policy(app, &req, policy).await {
        Ok(execution) => Ok(redirect(&format!("{PATH}/executions/{execution}"), v)),
        Err(e) => {
            let (status, flash) = refusal(e)?;
            page(
                app,
                v,
                &Query::parse(None),
                status,
                Some(flash),
                Draft::default(),
            )
            .await
        }
    }
}

/// Deletes a policy with its executions (refused while one runs).
pub async fn delete(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    id: i64,
) -> Result<Reply, GatewayError> {
    form::read(session, v).await?;
    let req = v.api();
    req.require(Action::ManageReplication, Resource::System)?;
    match replication::delete(app, &req, &id.to_string()).await {
        Ok(_) => Ok(redirect(&format!("{PATH}?done=deleted"), v)),
        Err(e) => {
            let (status, flash) = refusal(e)?;
            page(
                app,
                v,
                &Query::parse(None),
                status,
                Some(flash),
                Draft::default(),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::i18n::Lang;

    #[test]
    fn filters_and_flattening_in_words() {
        let en = Lang::En.text();
        let filters = [
            Filter::new(FilterKind::Name, "library/**", "").unwrap(),
            Filter::new(FilterKind::Tag, "*-rc", "excludes").unwrap(),
            Filter::new(FilterKind::Resource, "image", "").unwrap(),
        ];
        assert_eq!(
            filters_words(en, &filters),
            "names matching `library/**` and tags excluding `*-rc` and images only"
        );
        assert_eq!(filters_words(en, &[]), "everything");
        assert!(flattening_words(en, 2).starts_with("Flatten 2 level"));
        assert!(flattening_words(en, -1).starts_with("Flatten all"));
    }

    #[test]
    fn the_form_becomes_the_apis_request() {
        let form = Query::parse(Some(
            "name=p&mode=pull&endpoint=4&dest_namespace=mirror&replace_count=1\
             &name_filter=a%2F**&tag_filter=v*&tag_excludes=true&resource=\
             &trigger=scheduled&cron=0+0+2+*+*+*&enabled=true&speed=",
        ));
        let body = Draft::read(&form).policy().unwrap();
        assert_eq!(body.src_registry.and_then(|r| r.id), Some(4));
        assert!(body.dest_registry.is_none());
        assert_eq!(body.dest_namespace_replace_count, Some(1));
        assert_eq!(body.speed, Some(-1));
        assert_eq!(body.enabled, Some(true));
        assert_eq!(body.override_existing, Some(false));
        let filters = body.filters.unwrap();
        assert_eq!(filters.len(), 2, "the empty resource filter is left out");
        assert_eq!(filters[1].decoration.as_deref(), Some("excludes"));
        let cron = body
            .trigger
            .and_then(|t| t.trigger_settings)
            .and_then(|s| s.cron);
        assert_eq!(cron.as_deref(), Some("0 0 2 * * *"));
        // Unchecked boxes are absent from a form: off, enabled included.
        let bare = Draft::read(&Query::parse(Some("name=p&speed=fast")));
        assert!(!bare.enabled && bare.push);
        assert!(matches!(bare.policy(), Err(GatewayError::BadRequest(m)) if m.contains("fast")));
    }
}
