//! A project's audit log (`/projects/<p>/logs`): the records
//! `GET /api/v2.0/projects/{p}/logs` answers, through the same function
//! and policy check, with the API's filters as form fields.
//!
//! The table is its own include (`audit_table.html`, rows of
//! [`AuditLine`]) so that a log of all projects can show it too.

use askama::Template;
use berth_storage::audit::{AuditEntry, AuditFilter};

use super::page::{html, Layout, Pager};
use super::projects::{listing, ProjectView};
use super::visitor::Visitor;
use crate::api::logs::{project_records, time_ms};
use crate::api::request::ProjectRef;
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::Query;

/// One audit record as the table shows it.
pub struct AuditLine {
    pub time: String,
    pub username: String,
    pub operation: String,
    pub resource_type: String,
    pub resource: String,
    pub success: bool,
    pub client_ip: String,
}

impl AuditLine {
    pub fn of(e: &AuditEntry) -> AuditLine {
        let r = &e.record;
        AuditLine {
            time: seconds(r.op_time),
            username: r.username.clone(),
            operation: r.operation.clone(),
            resource_type: r.resource_type.clone(),
            resource: r.resource.clone(),
            success: r.success,
            client_ip: r.client_ip.clone().unwrap_or_default(),
        }
    }
}

/// Unix milliseconds for people, in UTC to the second (a log is read by
/// the second, unlike the minutes of the other pages).
fn seconds(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    match (s.get(..10), s.get(11..19)) {
        (Some(day), Some(hms)) => format!("{day} {hms} UTC"),
        _ => s,
    }
}

/// The filter fields as the visitor typed them, to show them back.
#[derive(Default)]
pub struct AuditFields {
    pub username: String,
    pub operation: String,
    pub resource: String,
    pub resource_type: String,
    pub from: String,
    pub to: String,
}

impl AuditFields {
    pub fn read(query: &Query) -> AuditFields {
        let get = |k: &str| query.get(k).unwrap_or("").trim().to_owned();
        AuditFields {
            username: get("username"),
            operation: get("operation"),
            resource: get("resource"),
            resource_type: get("resource_type"),
            from: get("from"),
            to: get("to"),
        }
    }

    /// The API's filter: exact user, operation and resource type, a
    /// resource containing the text, and times as the API's `op_time`
    /// bounds take them (a plain `to` date includes that whole day).
    pub fn filter(&self) -> Result<AuditFilter, GatewayError> {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let bound = |s: &str| some(s).as_deref().map(time_ms).transpose();
        let mut to_ms = bound(&self.to)?;
        if self.to.len() == 10 {
            to_ms = to_ms.map(|t| t + 86_400_000 - 1);
        }
        Ok(AuditFilter {
            project: None,
            username: some(&self.username),
            operation: some(&self.operation),
            resource_type: some(&self.resource_type),
            resource_contains: some(&self.resource),
            from_ms: bound(&self.from)?,
            to_ms,
        })
    }
}

#[derive(Template)]
#[template(path = "project_logs.html")]
struct LogsPage {
    l: Layout,
    project: ProjectView,
    tab: &'static str,
    action: String,
    f: AuditFields,
    rows: Vec<AuditLine>,
    pager: Pager,
}

pub async fn project_logs(
    app: &App,
    v: &Visitor,
    name: &str,
    query: &Query,
) -> Result<Reply, GatewayError> {
    let f = AuditFields::read(query);
    let page = listing(query)?;
    let (row, entries, total) =
        project_records(app, &v.api(), ProjectRef::Name(name), f.filter()?, page).await?;
    let project = ProjectView::of(&row);
    let action = format!("{}/logs", project.url);
    let page_view = LogsPage {
        l: Layout::new(v, row.name.clone(), "projects"),
        pager: Pager::new(&action, query, page, total),
        project,
        tab: "logs",
        action,
        f,
        rows: entries.iter().map(AuditLine::of).collect(),
    };
    html(200, &page_view, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_become_the_api_filter() {
        let q = Query::parse(Some(
            "operation=push&resource=app&from=2024-01-01&to=2024-01-01&username=",
        ));
        let f = AuditFields::read(&q).filter().unwrap();
        assert_eq!(f.operation.as_deref(), Some("push"));
        assert_eq!(f.resource_contains.as_deref(), Some("app"));
        assert_eq!(f.username, None);
        assert_eq!(f.from_ms, Some(1_704_067_200_000));
        // The whole of the `to` day.
        assert_eq!(f.to_ms, Some(1_704_067_200_000 + 86_400_000 - 1));
        let q = Query::parse(Some("from=yesterday"));
        assert!(AuditFields::read(&q).filter().is_err());
        assert_eq!(seconds(1_704_067_201_500), "2024-01-01 00:00:01 UTC");
    }
}
