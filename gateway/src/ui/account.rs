//! `/account`: the signed-in user's profile and password. A new password
//! ends every other session of the account (their credential changed);
//! this one is reopened under the new credential.

use askama::Template;
use berth_storage::accounts::UserSource;
use pingora::proxy::Session;

use super::form;
use super::page::{html, redirect, Layout};
use super::visitor::Visitor;
use crate::api::users::{self, PasswordReq};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::Query;

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    l: Layout,
    username: String,
    email: String,
    realname: String,
    source: &'static str,
    admin: bool,
    ldap: bool,
    done: bool,
}

/// The signed-in user's id, or a 401 (which sends the visitor to sign in).
fn user_id(v: &Visitor) -> Result<i64, GatewayError> {
    v.identity
        .as_ref()
        .and_then(|i| i.user_id)
        .ok_or(GatewayError::Unauthenticated { scope: None })
}

pub async fn show(app: &App, v: &Visitor, query: &Query) -> Result<Reply, GatewayError> {
    let id = user_id(v)?;
    let user = app
        .registry
        .meta()
        .user_by_id(id)
        .await?
        .ok_or(GatewayError::Unauthenticated { scope: None })?;
    let t = v.lang.text();
    let ldap = user.source == UserSource::Ldap;
    let page = AccountPage {
        l: Layout::new(v, t.account, ""),
        username: user.username,
        email: user.email.unwrap_or_default(),
        realname: user.realname.unwrap_or_default(),
        source: if ldap { "LDAP" } else { "berth" },
        admin: v.is_admin(),
        ldap,
        done: query.get("changed") == Some("1"),
    };
    html(200, &page, v)
}

pub async fn change_password(
    app: &App,
    session: &mut Session,
    v: &mut Visitor,
) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let id = user_id(v)?;
    let body = PasswordReq {
        old_password: form.get("old_password").map(str::to_owned),
        new_password: form.get("new_password").unwrap_or("").to_owned(),
    };
    users::change_password(app, &v.api(), id, &body).await?;
    let username = v.username().unwrap_or_default().to_owned();
    let identity = app.login.identity(&username).await?;
    v.sign_in(app, identity).await?;
    Ok(redirect("/account?changed=1", v))
}
