//! `/admin/quotas`: every project's storage use against its limit, and
//! changing a limit (through the API's `quotas::set_limit`).

use askama::Template;
use berth_policy::{Action, Resource};
use pingora::proxy::Session;

use super::Flash;
use crate::api::quotas::{self, storage_limit};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::Query;
use crate::ui::form;
use crate::ui::page::{encode_component, encode_path, html, redirect, Layout, Pager};
use crate::ui::projects::{listing, quota_view};
use crate::ui::visitor::Visitor;

struct QuotaLine {
    id: i64,
    project: String,
    url: String,
    text: String,
    percent: Option<i64>,
    /// The limit as the form shows it: exact bytes, empty when unlimited.
    limit: String,
}

#[derive(Template)]
#[template(path = "admin_quotas.html")]
struct QuotasPage {
    l: Layout,
    tab: &'static str,
    flash: Option<Flash>,
    q: String,
    back: String,
    rows: Vec<QuotaLine>,
    pager: Pager,
}

pub async fn list(app: &App, v: &Visitor, query: &Query) -> Result<Reply, GatewayError> {
    v.api().require(Action::ManageQuotas, Resource::System)?;
    let page = listing(query)?;
    let q = query.get("q").unwrap_or("").trim().to_owned();
    // One row per project: a few thousand at most, filtered here.
    let all = app.registry.meta().list_quotas(None).await?;
    let matching: Vec<_> = all
        .iter()
        .filter(|r| r.project_name.contains(q.as_str()))
        .collect();
    let total = matching.len() as i64;
    let rows = matching
        .into_iter()
        .skip(usize::try_from(page.offset()).unwrap_or(usize::MAX))
        .take(usize::try_from(page.limit()).unwrap_or(0))
        .map(|r| {
            let view = quota_view(v, r);
            QuotaLine {
                id: r.id,
                project: r.project_name.clone(),
                url: format!("/projects/{}", encode_path(&r.project_name)),
                text: view.text,
                percent: view.percent,
                limit: r.hard.map(|h| h.to_string()).unwrap_or_default(),
            }
        })
        .collect();
    let t = v.lang.text();
    let flash = (query.get("done") == Some("saved")).then(|| Flash {
        ok: true,
        text: t.saved.to_owned(),
    });
    let view = QuotasPage {
        l: Layout::new(v, t.quotas, "admin"),
        tab: "quotas",
        flash,
        pager: Pager::new("/admin/quotas", query, page, total),
        back: format!(
            "/admin/quotas?q={}&page={}",
            encode_component(&q),
            page.page
        ),
        q,
        rows,
    };
    html(200, &view, v)
}

/// Sets one project's limit; an empty field means unlimited.
pub async fn set(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    id: i64,
) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let bytes = form::storage_limit(form.get("storage_limit").unwrap_or(""))?.unwrap_or(-1);
    let limit = storage_limit(bytes, "storage limit")?;
    quotas::set_limit(app, &v.api(), id, limit).await?;
    Ok(redirect(&form::back_to(&form, "/admin/quotas", "saved"), v))
}
