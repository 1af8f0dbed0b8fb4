//! Mail through the management API: `/email/ping` (a test mail, as
//! Harbor's configuration page sends) and `/users/password-reset` (ask
//! for a link; set a new password with it). The flow itself is
//! `crate::mail::reset`'s; the portal's pages call the same functions.

use berth_policy::{Action, Resource};
use berth_storage::accounts::User;
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::request::{read_json, ApiRequest};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::mail::reset::{LINK_INVALID, REQUESTED};

#[derive(OpenApi)]
#[openapi(
    paths(ping, request_reset, complete_reset),
    components(schemas(EmailPingReq, ResetRequestReq, ResetReq, Message))
)]
pub struct Doc;

/// Where the test mail goes; the caller's own address when left out.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct EmailPingReq {
    #[serde(default)]
    pub email_to: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResetRequestReq {
    pub email: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResetReq {
    /// The `token` of the mailed link.
    pub token: String,
    pub new_password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Message {
    pub message: String,
}

fn message(status: u16, text: &str) -> Reply {
    Reply::json(status, &serde_json::json!({ "message": text }))
}

#[utoipa::path(post, path = "/api/v2.0/email/ping", tag = "configure",
    request_body = EmailPingReq,
    responses((status = 200, body = Message, description = "The test mail was accepted by the server"),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 502, body = super::Errors, description = "The mail server failed"),
        (status = 503, body = super::Errors, description = "[email] is not set")))]
pub async fn ping(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
) -> Result<Reply, GatewayError> {
    req.require(Action::ManageConfiguration, Resource::System)?;
    let body = crate::http::read_body(session, super::request::MAX_JSON).await?;
    let body: EmailPingReq = if body.is_empty() {
        EmailPingReq::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| GatewayError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let Some(mailer) = app.mailer.load_full() else {
        return Err(GatewayError::NotConfigured(
            "no mail server is configured: set email_host and email_from (PUT \
             /api/v2.0/configurations), or [email] server and from in berth.toml"
                .into(),
        ));
    };
    let to = match body.email_to.filter(|t| !t.trim().is_empty()) {
        Some(to) => to.trim().to_owned(),
        None => {
            let own = match req.identity.as_ref().and_then(|i| i.user_id) {
                Some(id) => app.registry.meta().user_by_id(id).await?,
                None => None,
            };
            own.and_then(|u| u.email)
                .filter(|e| !e.is_empty())
                .ok_or_else(|| {
                    GatewayError::BadRequest(
                        "give `email_to`, or set an email address on your account".into(),
                    )
                })?
        }
    };
    let sent = mailer
        .send(
            &to,
            "berth test mail / berth 测试邮件",
            "This is a test mail from berth: its [email] settings work.\n\
             这是 berth 发送的测试邮件：邮件设置可用。\n"
                .into(),
        )
        .await;
    req.audit(
        app,
        "create",
        "email",
        &format!("test mail to {to}"),
        None,
        sent.is_ok(),
    );
    sent?;
    Ok(message(
        200,
        &format!("a test mail to {to} was accepted by the mail server"),
    ))
}

#[utoipa::path(post, path = "/api/v2.0/users/password-reset", tag = "user",
    request_body = ResetRequestReq,
    responses((status = 202, body = Message, description = "The same answer whether or not an account has the address"),
        (status = 400, body = super::Errors), (status = 429, body = super::Errors),
        (status = 503, body = super::Errors, description = "Mail or external_url is not set")))]
pub async fn request_reset(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
) -> Result<Reply, GatewayError> {
    req.require(Action::ResetForgottenPassword, Resource::System)?;
    let body: ResetRequestReq = read_json(session).await?;
    app.resets.request(&body.email, req.client_ip)?;
    Ok(message(202, REQUESTED))
}

#[utoipa::path(put, path = "/api/v2.0/users/password-reset", tag = "user",
    request_body = ResetReq,
    responses((status = 200, body = Message, description = "The password is set; the account's sessions ended"),
        (status = 400, body = super::Errors, description = "A bad password, or a link used, replaced or expired")))]
pub async fn complete_reset(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
) -> Result<Reply, GatewayError> {
    let body: ResetReq = read_json(session).await?;
    complete(app, req, &body.token, &body.new_password).await?;
    Ok(message(200, "the password is set; sign in with it"))
}

/// Sets the password a link is for (the API's PUT and the portal's form).
pub(crate) async fn complete(
    app: &App,
    req: &ApiRequest,
    token: &str,
    new_password: &str,
) -> Result<User, GatewayError> {
    req.require(Action::ResetForgottenPassword, Resource::System)?;
    // Tokens are 43 characters: anything far longer is not one.
    if token.is_empty() || token.len() > 128 {
        return Err(GatewayError::BadRequest(LINK_INVALID.into()));
    }
    super::users::check_password("new_password", new_password)?;
    // The cheap check first: a made-up token costs no hashing.
    if !app.registry.meta().password_reset_valid(token).await? {
        return Err(GatewayError::BadRequest(LINK_INVALID.into()));
    }
    let hash = app.resets.hash(token, new_password).await?;
    let user = app.registry.meta().reset_password(token, &hash).await?;
    let Some(user) = user else {
        return Err(GatewayError::BadRequest(LINK_INVALID.into()));
    };
    app.audit.record(berth_storage::audit::AuditRecord {
        op_time: berth_storage::audit::now_ms(),
        username: user.username.clone(),
        operation: "update".into(),
        resource_type: "user".into(),
        resource: format!("{}:password (reset by mail)", user.username),
        project: None,
        success: true,
        client_ip: req.client_ip.map(|ip| ip.to_string()),
    });
    // Logins remembered with the old password end here and on every
    // instance.
    app.forget_access().await;
    Ok(user)
}
