//! `/admin/logs`: the audit log of the whole registry (every project's
//! records and the system's), through the API's `all_records` and its
//! policy check, with the filters and table of a project's log tab.

use askama::Template;

use super::Flash;
use crate::api::logs::all_records;
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::Query;
use crate::ui::logs::{AuditFields, AuditLine};
use crate::ui::page::{html, Layout, Pager};
use crate::ui::projects::listing;
use crate::ui::visitor::Visitor;

#[derive(Template)]
#[template(path = "admin_logs.html")]
struct AdminLogsPage {
    l: Layout,
    tab: &'static str,
    flash: Option<Flash>,
    action: String,
    f: AuditFields,
    rows: Vec<AuditLine>,
    pager: Pager,
}

pub async fn list(app: &App, v: &Visitor, query: &Query) -> Result<Reply, GatewayError> {
    let f = AuditFields::read(query);
    let page = listing(query)?;
    let (entries, total) = all_records(app, &v.api(), f.filter()?, page).await?;
    let action = "/admin/logs".to_owned();
    let view = AdminLogsPage {
        l: Layout::new(v, v.lang.text().audit_log, "admin"),
        tab: "logs",
        flash: None,
        pager: Pager::new(&action, query, page, total),
        action,
        f,
        rows: entries.iter().map(AuditLine::of).collect(),
    };
    html(200, &view, v)
}
