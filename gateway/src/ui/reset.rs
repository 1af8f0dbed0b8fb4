//! `/forgot-password` and `/reset-password`: a forgotten password, by a
//! link mailed to the account's address. The flow (same answer for every
//! address, throttling, single-use links) is `crate::mail::reset`'s; the
//! link is set through the same function as the API's.

use askama::Template;
use pingora::proxy::Session;

use super::form;
use super::page::{html, redirect, Layout};
use super::visitor::Visitor;
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::Query;

#[derive(Template)]
#[template(path = "forgot_password.html")]
struct ForgotPage {
    l: Layout,
    /// Mail and external_url are set.
    available: bool,
    sent: bool,
    error: Option<String>,
    email: String,
}

#[derive(Template)]
#[template(path = "reset_password.html")]
struct ResetPage {
    l: Layout,
    /// The link's token; empty when the link cannot be used.
    token: String,
    error: Option<String>,
}

pub fn forgot_form(app: &App, v: &Visitor) -> Result<Reply, GatewayError> {
    let page = ForgotPage {
        l: Layout::new(v, v.lang.text().forgot_title, ""),
        available: app.resets.available(),
        sent: false,
        error: None,
        email: String::new(),
    };
    html(200, &page, v)
}

pub async fn forgot_submit(
    app: &App,
    session: &mut Session,
    v: &mut Visitor,
) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let email = form.get("email").unwrap_or("").trim().to_owned();
    v.api().require(
        berth_policy::Action::ResetForgottenPassword,
        berth_policy::Resource::System,
    )?;
    let t = v.lang.text();
    let (status, sent, error) = match app.resets.request(&email, v.client_ip) {
        Ok(()) => (200, true, None),
        Err(
            e @ (GatewayError::BadRequest(_)
            | GatewayError::TooManyRequests { .. }
            | GatewayError::NotConfigured(_)),
        ) => {
            let status = e.present().status;
            let message = match e {
                GatewayError::BadRequest(_) => t.email_invalid.to_owned(),
                GatewayError::TooManyRequests { .. } => t.reset_too_many.to_owned(),
                _ => t.reset_unavailable.to_owned(),
            };
            (status, false, Some(message))
        }
        Err(e) => return Err(e),
    };
    let page = ForgotPage {
        l: Layout::new(v, t.forgot_title, ""),
        available: app.resets.available(),
        sent,
        error,
        email: if sent { String::new() } else { email },
    };
    html(status, &page, v)
}

pub async fn reset_form(app: &App, v: &Visitor, query: &Query) -> Result<Reply, GatewayError> {
    let token = query.get("token").unwrap_or("");
    let t = v.lang.text();
    let usable = !token.is_empty()
        && token.len() <= 128
        && app.registry.meta().password_reset_valid(token).await?;
    let page = ResetPage {
        l: Layout::new(v, t.reset_title, ""),
        token: if usable {
            token.to_owned()
        } else {
            String::new()
        },
        error: (!usable).then(|| t.reset_link_invalid.to_owned()),
    };
    html(if usable { 200 } else { 400 }, &page, v)
}

pub async fn reset_submit(
    app: &App,
    session: &mut Session,
    v: &mut Visitor,
) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let token = form.get("token").unwrap_or("").to_owned();
    let password = form.get("new_password").unwrap_or("");
    let t = v.lang.text();
    let failed = |v: &Visitor, keep: bool, message: String| {
        let page = ResetPage {
            l: Layout::new(v, t.reset_title, ""),
            token: if keep { token.clone() } else { String::new() },
            error: Some(message),
        };
        html(400, &page, v)
    };
    if password != form.get("repeat_password").unwrap_or("") {
        return failed(v, true, t.passwords_differ.to_owned());
    }
    match crate::api::mail::complete(app, &v.api(), &token, password).await {
        Ok(_) => {
            // The visitor's own session, if any, ended with the others.
            if v.session.is_some() {
                v.sign_out(app).await?;
            }
            Ok(redirect("/login?reset=1", v))
        }
        Err(GatewayError::BadRequest(m)) if m == crate::mail::reset::LINK_INVALID => {
            failed(v, false, t.reset_link_invalid.to_owned())
        }
        Err(GatewayError::BadRequest(m)) => failed(v, true, m),
        Err(e) => Err(e),
    }
}
