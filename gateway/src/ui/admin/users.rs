//! `/admin/users`: the user list (search, pages), creating a database
//! user, and per user: grant or revoke administration, reset the
//! password, disable or enable, delete. Each change is the API's own
//! function (`api::users`), which checks policy and keeps the built-in
//! `admin` and the caller from locking themselves out.

use askama::Template;
use berth_policy::{Action, Resource};
use berth_storage::accounts::UserSource;
use pingora::proxy::Session;

use super::Flash;
use crate::api::users::{self, PasswordReq, UserCreationReq};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::Query;
use crate::ui::form;
use crate::ui::page::{encode_component, html, human_time, redirect, Layout, Pager};
use crate::ui::projects::listing;
use crate::ui::visitor::Visitor;

struct UserLine {
    id: i64,
    username: String,
    email: String,
    realname: String,
    ldap: bool,
    admin: bool,
    disabled: bool,
    /// The built-in `admin` or the visitor: not to be deleted, disabled
    /// or demoted from here.
    protected: bool,
    created: String,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    l: Layout,
    tab: &'static str,
    flash: Option<Flash>,
    q: String,
    /// This page, for the forms to come back to.
    back: String,
    rows: Vec<UserLine>,
    pager: Pager,
}

pub async fn list(app: &App, v: &Visitor, query: &Query) -> Result<Reply, GatewayError> {
    let req = v.api();
    req.require(Action::ListUsers, Resource::System)?;
    let page = listing(query)?;
    let q = query.get("q").unwrap_or("").trim().to_owned();
    let (users, total) = app
        .registry
        .meta()
        .list_users(
            None,
            (!q.is_empty()).then_some(q.as_str()),
            page.offset(),
            page.limit(),
        )
        .await?;
    let me = req.identity.as_ref().and_then(|i| i.user_id);
    let rows = users
        .into_iter()
        .map(|u| UserLine {
            protected: u.username == "admin" || Some(u.id) == me,
            id: u.id,
            email: u.email.unwrap_or_default(),
            realname: u.realname.unwrap_or_default(),
            ldap: u.source == UserSource::Ldap,
            admin: u.admin,
            disabled: u.disabled,
            created: human_time(u.created_at),
            username: u.username,
        })
        .collect();
    let t = v.lang.text();
    let flash = match query.get("done") {
        Some("created") => Some(t.user_created),
        Some("changed") => Some(t.saved),
        Some("deleted") => Some(t.user_deleted),
        _ => None,
    }
    .map(|text| Flash {
        ok: true,
        text: text.to_owned(),
    });
    let page_view = UsersPage {
        l: Layout::new(v, t.users, "admin"),
        tab: "users",
        flash,
        pager: Pager::new("/admin/users", query, page, total),
        back: format!("/admin/users?q={}&page={}", encode_component(&q), page.page),
        q,
        rows,
    };
    html(200, &page_view, v)
}

/// The two password fields must agree: a typo would lock the user out.
fn new_password(form: &Query, field: &str, confirm: &str) -> Result<String, GatewayError> {
    let pw = form.get(field).unwrap_or("");
    if pw != form.get(confirm).unwrap_or("") {
        return Err(GatewayError::BadRequest(
            "the two passwords differ; type the same password twice".into(),
        ));
    }
    Ok(pw.to_owned())
}

fn optional(form: &Query, field: &str) -> Option<String> {
    form.get(field)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

pub async fn create(app: &App, session: &mut Session, v: &Visitor) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let body = UserCreationReq {
        username: form.get("username").unwrap_or("").trim().to_owned(),
        password: new_password(&form, "password", "password2")?,
        email: optional(&form, "email"),
        realname: optional(&form, "realname"),
        comment: None,
    };
    users::create_user(app, &v.api(), &body).await?;
    Ok(redirect(
        &format!(
            "/admin/users?done=created&q={}",
            encode_component(&body.username)
        ),
        v,
    ))
}

/// What a per-user form asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserChange {
    /// Grant (`sysadmin=true`) or revoke administration.
    Admin,
    /// Disable (`disabled=true`) or enable.
    Disable,
    Password,
    Delete,
}

pub async fn change(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    id: i64,
    what: UserChange,
) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let req = v.api();
    let flag = |field: &str| form.get(field) == Some("true");
    let done = match what {
        UserChange::Admin => {
            users::set_sysadmin_flag(app, &req, id, flag("sysadmin")).await?;
            "changed"
        }
        UserChange::Disable => {
            users::set_disabled(app, &req, id, flag("disabled")).await?;
            "changed"
        }
        UserChange::Password => {
            // `change_password` asks for the old password when the
            // visitor changes their own (the account page's job).
            let body = PasswordReq {
                old_password: None,
                new_password: new_password(&form, "new_password", "new_password2")?,
            };
            users::change_password(app, &req, id, &body).await?;
            "changed"
        }
        UserChange::Delete => {
            users::delete_user(app, &req, id).await?;
            "deleted"
        }
    };
    // Back to the same search and page.
    Ok(redirect(&form::back_to(&form, "/admin/users", done), v))
}
