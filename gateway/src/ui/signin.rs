//! `/login` and `/logout` (a forgotten password is `reset`'s). A sign-in is checked by the same login service
//! as the token service and the API, failed-login throttling included.

use askama::Template;
use berth_auth::robot::is_robot_name;
use berth_auth::AuthError;
use pingora::proxy::Session;

use super::form;
use super::page::{html, redirect, Layout};
use super::visitor::Visitor;
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::Query;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    l: Layout,
    error: Option<String>,
    next: String,
    username: String,
    /// Offer "forgot your password?" (mail is set up).
    forgot: bool,
    /// Back from setting a new password by a mailed link.
    reset_done: bool,
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage {
    l: Layout,
}

/// Where to go after signing in: a local path only, so the form cannot
/// send anyone to another site.
fn next_path(value: Option<&str>) -> String {
    match value {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control) =>
        {
            p.to_owned()
        }
        _ => "/projects".to_owned(),
    }
}

pub fn form(app: &App, v: &Visitor, query: &Query) -> Result<Reply, GatewayError> {
    let next = next_path(query.get("next"));
    if v.identity.is_some() {
        return Ok(redirect(&next, v));
    }
    let page = LoginPage {
        l: Layout::new(v, v.lang.text().sign_in, ""),
        error: None,
        next,
        username: String::new(),
        forgot: app.resets.available(),
        reset_done: query.get("reset") == Some("1"),
    };
    html(200, &page, v)
}

pub async fn submit(
    app: &App,
    session: &mut Session,
    v: &mut Visitor,
) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let username = form.get("username").unwrap_or("").trim().to_owned();
    let password = form.get("password").unwrap_or("");
    let next = next_path(form.get("next"));
    let t = v.lang.text();
    let failed = |v: &Visitor, status: u16, message: String| {
        let page = LoginPage {
            l: Layout::new(v, t.sign_in, ""),
            error: Some(message),
            next: next.clone(),
            username: username.clone(),
            forgot: app.resets.available(),
            reset_done: false,
        };
        html(status, &page, v)
    };
    if is_robot_name(&username) {
        return failed(v, 403, t.robots_cannot_sign_in.to_owned());
    }
    match app.login.login(&username, password, v.client_ip).await {
        Ok(identity) if identity.robot.is_none() => {
            v.sign_in(app, identity).await?;
            Ok(redirect(&next, v))
        }
        Ok(_) => failed(v, 403, t.robots_cannot_sign_in.to_owned()),
        Err(AuthError::InvalidCredentials) => failed(v, 401, t.login_failed.to_owned()),
        Err(AuthError::UserDisabled(_)) => failed(v, 401, t.account_disabled.to_owned()),
        Err(AuthError::TooManyAttempts {
            retry_after_secs, ..
        }) => failed(
            v,
            429,
            t.too_many_attempts
                .replace("{}", &retry_after_secs.to_string()),
        ),
        Err(AuthError::DirectoryUnavailable(_)) => {
            failed(v, 503, t.directory_unavailable.to_owned())
        }
        Err(e) => Err(e.into()),
    }
}

pub fn confirm_logout(v: &Visitor) -> Result<Reply, GatewayError> {
    if v.identity.is_none() {
        return Ok(redirect("/login", v));
    }
    html(
        200,
        &LogoutPage {
            l: Layout::new(v, v.lang.text().sign_out, ""),
        },
        v,
    )
}

pub async fn logout(
    app: &App,
    session: &mut Session,
    v: &mut Visitor,
) -> Result<Reply, GatewayError> {
    if v.session.is_none() {
        // Already signed out (the session expired meanwhile): nothing to
        // protect, and the form's token was the ended session's.
        crate::http::read_body(session, 64 * 1024).await?;
        return Ok(redirect("/login", v));
    }
    form::read(session, v).await?;
    v.sign_out(app).await?;
    Ok(redirect("/login", v))
}

#[cfg(test)]
mod tests {
    use super::next_path;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(next_path(Some("/projects/a?x=1")), "/projects/a?x=1");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "evil",
            "/a\nb",
        ] {
            assert_eq!(next_path(Some(bad)), "/projects", "{bad}");
        }
        assert_eq!(next_path(None), "/projects");
    }
}
