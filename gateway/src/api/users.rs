//! Users: `/api/v2.0/users`, `/users/{user_id}`, `/users/current`,
//! `/users/search`, `/users/{user_id}/password` and `/sysadmin` (Harbor's
//! `user` API). Local users are managed here; LDAP users appear at their
//! first login and their passwords stay in the directory.

use berth_auth::{password, robot};
use berth_policy::{Action, Resource};
use berth_storage::accounts::{User, UserSource};
use pingora::http::Method;
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::page::Page;
use super::page::Q;
use super::request::{bounded, path_id, read_json, time, ApiRequest};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;

#[derive(OpenApi)]
#[openapi(
    paths(
        list,
        create,
        current,
        search,
        get,
        update,
        delete,
        set_password,
        set_sysadmin
    ),
    components(schemas(
        UserResp,
        UserCreationReq,
        UserProfile,
        PasswordReq,
        SysAdminFlag,
        UserSearchRespItem
    ))
)]
pub struct Doc;

/// Harbor's `UserResp`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserResp {
    pub user_id: i64,
    pub username: String,
    pub email: String,
    pub realname: String,
    pub comment: String,
    pub sysadmin_flag: bool,
    /// Admin because the directory says so (LDAP `group_admin_dn`).
    pub admin_role_in_auth: bool,
    pub creation_time: String,
    pub update_time: String,
}

/// Harbor's `UserCreationReq`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserCreationReq {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub realname: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// Harbor's `UserProfile`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserProfile {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub realname: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// Harbor's `PasswordReq`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordReq {
    #[serde(default)]
    pub old_password: Option<String>,
    pub new_password: String,
}

/// Harbor's `SysAdminFlag`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SysAdminFlag {
    pub sysadmin_flag: bool,
}

/// Harbor's `UserSearchRespItem`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserSearchRespItem {
    pub user_id: i64,
    pub username: String,
}

fn user_json(u: &User) -> UserResp {
    UserResp {
        user_id: u.id,
        username: u.username.clone(),
        email: u.email.clone().unwrap_or_default(),
        realname: u.realname.clone().unwrap_or_default(),
        comment: u.comment.clone().unwrap_or_default(),
        sysadmin_flag: u.admin,
        admin_role_in_auth: u.source == UserSource::Ldap && u.admin,
        creation_time: time(u.created_at),
        update_time: time(u.updated_at),
    }
}

fn json(value: impl Serialize) -> Reply {
    Reply::json(200, &serde_json::to_value(value).unwrap_or_default())
}

/// Usernames go into Basic credentials and token subjects: no `:`, no
/// whitespace or control characters, and the robot prefix is reserved.
fn check_username(name: &str) -> Result<(), GatewayError> {
    let bad = |why: &str| Err(GatewayError::BadRequest(format!("`username` {why}")));
    if name.is_empty() {
        return bad("is required");
    }
    bounded("username", name, 255)?;
    if robot::is_robot_name(name) {
        return bad("may not start with `robot$`; that prefix is for robot accounts");
    }
    if name
        .chars()
        .any(|c| c == ':' || c.is_whitespace() || c.is_control() || "\"',~#%$".contains(c))
    {
        return bad("may not contain `:`, whitespace or any of \" ' , ~ # % $");
    }
    Ok(())
}

pub(crate) fn check_password(field: &str, pw: &str) -> Result<(), GatewayError> {
    let n = pw.chars().count();
    if !(8..=128).contains(&n) {
        return Err(GatewayError::BadRequest(format!(
            "`{field}` must be 8 to 128 characters long"
        )));
    }
    Ok(())
}

fn check_profile(
    email: Option<&str>,
    realname: Option<&str>,
    comment: Option<&str>,
) -> Result<(), GatewayError> {
    if let Some(e) = email {
        bounded("email", e, 255)?;
        if !e.is_empty() && !e.contains('@') {
            return Err(GatewayError::BadRequest(format!(
                "`email` `{e}` is not an email address"
            )));
        }
    }
    if let Some(r) = realname {
        bounded("realname", r, 255)?;
    }
    if let Some(c) = comment {
        bounded("comment", c, 1024)?;
    }
    Ok(())
}

pub(crate) async fn hash(pw: String) -> Result<String, GatewayError> {
    // argon2 takes tens of milliseconds: keep it off the worker thread.
    tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(|e| GatewayError::BadRequest(format!("password hashing failed: {e}")))?
        .map_err(GatewayError::from)
}

async fn load(app: &App, id: i64) -> Result<User, GatewayError> {
    app.registry
        .meta()
        .user_by_id(id)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("user {id} not found")))
}

/// Checks an action on the account `id`, answering 404 to callers who may
/// not see other accounts (so ids cannot be probed).
async fn account(
    app: &App,
    req: &ApiRequest,
    id: i64,
    action: Action,
) -> Result<User, GatewayError> {
    let own = req.identity.as_ref().is_some_and(|i| i.user_id == Some(id));
    if let Err(e) = req.require(action, Resource::Account { own }) {
        return Err(match e {
            GatewayError::Denied(_) => GatewayError::ApiNotFound(format!("user {id} not found")),
            other => other,
        });
    }
    load(app, id).await
}

pub async fn route(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    rest: &[&str],
) -> Result<Reply, GatewayError> {
    let m = session.req_header().method.clone();
    match rest {
        [] if m == Method::GET => list(app, req).await,
        [] if m == Method::POST => create(app, session, req).await,
        ["current"] if m == Method::GET => current(app, req).await,
        ["search"] if m == Method::GET => search(app, req).await,
        [id] if m == Method::GET => get(app, req, id).await,
        [id] if m == Method::PUT => update(app, session, req, id).await,
        [id] if m == Method::DELETE => delete(app, req, id).await,
        [id, "password"] if m == Method::PUT => set_password(app, session, req, id).await,
        [id, "sysadmin"] if m == Method::PUT => set_sysadmin(app, session, req, id).await,
        [] | [_] | [_, "password" | "sysadmin"] => Err(GatewayError::MethodNotAllowed {
            method: m.to_string(),
        }),
        _ => Err(GatewayError::NotFound(
            session.req_header().uri.path().to_owned(),
        )),
    }
}

#[utoipa::path(get, path = "/api/v2.0/users", tag = "user",
    params(("q" = Option<String>, Query, description = "username=<exact> or username=~<substring>"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, body = [UserResp],
        headers(("X-Total-Count" = i64, description = "Total matching"), ("Link" = String, description = "prev/next pages"))),
        (status = 401, body = super::Errors), (status = 403, body = super::Errors)))]
pub async fn list(app: &App, req: &ApiRequest) -> Result<Reply, GatewayError> {
    req.require(Action::ListUsers, Resource::System)?;
    let page = Page::parse(&req.query)?;
    let q = Q::parse(&req.query)?;
    q.reject_unknown(&["username"])?;
    let (exact, contains) = q.name_filter("username");
    let (users, total) = app
        .registry
        .meta()
        .list_users(
            exact.as_deref(),
            contains.as_deref(),
            page.offset(),
            page.limit(),
        )
        .await?;
    let items: Vec<_> = users.iter().map(user_json).collect();
    Ok(page.reply("/api/v2.0/users", &req.query, &items, total))
}

#[utoipa::path(post, path = "/api/v2.0/users", tag = "user", request_body = UserCreationReq,
    responses((status = 201, description = "Created", headers(("Location" = String, description = "/api/v2.0/users/{id}"))),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 409, body = super::Errors)))]
pub async fn create(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
) -> Result<Reply, GatewayError> {
    // Refused before the body is read.
    req.require(Action::ManageUsers, Resource::System)?;
    let body: UserCreationReq = read_json(session).await?;
    let id = create_user(app, req, &body).await?;
    Ok(Reply::new(201).header("Location", format!("/api/v2.0/users/{id}")))
}

/// Creates a database user (the API's POST and the portal's form).
pub(crate) async fn create_user(
    app: &App,
    req: &ApiRequest,
    body: &UserCreationReq,
) -> Result<i64, GatewayError> {
    req.require(Action::ManageUsers, Resource::System)?;
    check_username(&body.username)?;
    check_password("password", &body.password)?;
    check_profile(
        body.email.as_deref(),
        body.realname.as_deref(),
        body.comment.as_deref(),
    )?;
    let meta = app.registry.meta();
    let created = meta
        .create_user(
            &body.username,
            &hash(body.password.clone()).await?,
            body.email.as_deref(),
            false,
        )
        .await?;
    req.audit(
        app,
        "create",
        "user",
        &body.username,
        None,
        created.is_some(),
    );
    let id = created.ok_or_else(|| {
        GatewayError::Conflict(format!("user `{}` already exists", body.username))
    })?;
    if body.realname.is_some() || body.comment.is_some() {
        meta.update_user_profile(id, None, body.realname.as_deref(), body.comment.as_deref())
            .await?;
    }
    Ok(id)
}

#[utoipa::path(get, path = "/api/v2.0/users/current", tag = "user",
    responses((status = 200, body = UserResp), (status = 401, body = super::Errors)))]
pub async fn current(app: &App, req: &ApiRequest) -> Result<Reply, GatewayError> {
    let Some(id) = req.identity.as_ref() else {
        return Err(GatewayError::Unauthenticated { scope: None });
    };
    let Some(user_id) = id.user_id else {
        return Err(GatewayError::Denied(format!(
            "`{}` is a robot account; /users/current describes users",
            id.username
        )));
    };
    Ok(json(user_json(&load(app, user_id).await?)))
}

#[utoipa::path(get, path = "/api/v2.0/users/search", tag = "user",
    params(("username" = String, Query, description = "Substring of the username"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, body = [UserSearchRespItem]), (status = 401, body = super::Errors)))]
pub async fn search(app: &App, req: &ApiRequest) -> Result<Reply, GatewayError> {
    // Any user may look up names (to add members); robots and anonymous
    // callers may not.
    match &req.identity {
        None => return Err(GatewayError::Unauthenticated { scope: None }),
        Some(i) if i.robot.is_some() => {
            return Err(GatewayError::Denied(
                "robot accounts may not search users".into(),
            ))
        }
        Some(_) => {}
    }
    let page = Page::parse(&req.query)?;
    let name = req.query.get("username").unwrap_or("");
    let (users, total) = app
        .registry
        .meta()
        .list_users(None, Some(name), page.offset(), page.limit())
        .await?;
    let items: Vec<_> = users
        .iter()
        .map(|u| UserSearchRespItem {
            user_id: u.id,
            username: u.username.clone(),
        })
        .collect();
    Ok(page.reply("/api/v2.0/users/search", &req.query, &items, total))
}

#[utoipa::path(get, path = "/api/v2.0/users/{user_id}", tag = "user",
    params(("user_id" = i64, Path, description = "User id")),
    responses((status = 200, body = UserResp), (status = 404, body = super::Errors)))]
pub async fn get(app: &App, req: &ApiRequest, id: &str) -> Result<Reply, GatewayError> {
    let id = path_id(id, "user_id")?;
    Ok(json(user_json(
        &account(app, req, id, Action::ReadAccount).await?,
    )))
}

#[utoipa::path(put, path = "/api/v2.0/users/{user_id}", tag = "user",
    params(("user_id" = i64, Path, description = "User id")), request_body = UserProfile,
    responses((status = 200, description = "Updated"), (status = 400, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn update(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    id: &str,
) -> Result<Reply, GatewayError> {
    let id = path_id(id, "user_id")?;
    let user = account(app, req, id, Action::UpdateAccount).await?;
    let body: UserProfile = read_json(session).await?;
    check_profile(
        body.email.as_deref(),
        body.realname.as_deref(),
        body.comment.as_deref(),
    )?;
    app.registry
        .meta()
        .update_user_profile(
            id,
            body.email.as_deref(),
            body.realname.as_deref(),
            body.comment.as_deref(),
        )
        .await?;
    req.audit(app, "update", "user", &user.username, None, true);
    Ok(Reply::new(200))
}

#[utoipa::path(delete, path = "/api/v2.0/users/{user_id}", tag = "user",
    params(("user_id" = i64, Path, description = "User id")),
    responses((status = 200, description = "Deleted"), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn delete(app: &App, req: &ApiRequest, id: &str) -> Result<Reply, GatewayError> {
    delete_user(app, req, path_id(id, "user_id")?).await?;
    Ok(Reply::new(200))
}

/// The built-in administrator and the caller are kept: deleting or
/// disabling either would lock the installation or the caller out.
fn check_not_protected(req: &ApiRequest, user: &User, what: &str) -> Result<(), GatewayError> {
    if user.username == "admin"
        || req
            .identity
            .as_ref()
            .is_some_and(|i| i.user_id == Some(user.id))
    {
        return Err(GatewayError::Denied(format!(
            "user `{}` cannot be {what}: it is the built-in administrator or yourself",
            user.username
        )));
    }
    Ok(())
}

/// Deletes a user (the API's DELETE and the portal's button).
pub(crate) async fn delete_user(app: &App, req: &ApiRequest, id: i64) -> Result<(), GatewayError> {
    req.require(Action::ManageUsers, Resource::System)?;
    let user = load(app, id).await?;
    check_not_protected(req, &user, "deleted")?;
    let done = app.registry.meta().delete_user(id).await?;
    req.audit(app, "delete", "user", &user.username, None, done);
    app.forget_access().await;
    Ok(())
}

/// Disables or enables a user (the portal's button; `berth user disable`
/// does the same from the command line; Harbor's API has no such call).
/// A disabled user's portal sessions and Basic credentials stop working
/// at once; bearer tokens already issued last until they expire
/// (`auth.token_ttl`).
pub(crate) async fn set_disabled(
    app: &App,
    req: &ApiRequest,
    id: i64,
    disabled: bool,
) -> Result<(), GatewayError> {
    req.require(Action::ManageUsers, Resource::System)?;
    let user = load(app, id).await?;
    check_not_protected(req, &user, if disabled { "disabled" } else { "enabled" })?;
    let done = app
        .registry
        .meta()
        .set_user_disabled(&user.username, disabled)
        .await?;
    req.audit(
        app,
        "update",
        "user",
        &format!("{}:disabled={disabled}", user.username),
        None,
        done,
    );
    app.forget_access().await;
    Ok(())
}

#[utoipa::path(put, path = "/api/v2.0/users/{user_id}/password", tag = "user",
    params(("user_id" = i64, Path, description = "User id")), request_body = PasswordReq,
    responses((status = 200, description = "Changed"), (status = 400, body = super::Errors),
        (status = 403, body = super::Errors), (status = 404, body = super::Errors)))]
pub async fn set_password(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    id: &str,
) -> Result<Reply, GatewayError> {
    let id = path_id(id, "user_id")?;
    account(app, req, id, Action::UpdateAccount).await?;
    let body: PasswordReq = read_json(session).await?;
    change_password(app, req, id, &body).await?;
    Ok(Reply::new(200))
}

/// Sets a user's password (the API's PUT and the portal's form). Users
/// changing their own prove the old one.
pub(crate) async fn change_password(
    app: &App,
    req: &ApiRequest,
    id: i64,
    body: &PasswordReq,
) -> Result<(), GatewayError> {
    let user = account(app, req, id, Action::UpdateAccount).await?;
    if user.source == UserSource::Ldap {
        return Err(GatewayError::Denied(format!(
            "`{}` logs in through LDAP; change the password in the directory",
            user.username
        )));
    }
    check_password("new_password", &body.new_password)?;
    // Users changing their own password prove they know the old one;
    // administrators resetting someone else's do not need to.
    let own = req.identity.as_ref().is_some_and(|i| i.user_id == Some(id));
    if own || !req.is_admin() {
        let old = body.old_password.clone().unwrap_or_default();
        let stored = user.password_hash.clone().unwrap_or_default();
        if !app.login.verify_password(&old, &stored).await {
            return Err(GatewayError::BadRequest("`old_password` is wrong".into()));
        }
    }
    let done = app
        .registry
        .meta()
        .set_password_hash(&user.username, &hash(body.new_password.clone()).await?)
        .await?;
    req.audit(
        app,
        "update",
        "user",
        &format!("{}:password", user.username),
        None,
        done,
    );
    app.forget_access().await;
    Ok(())
}

#[utoipa::path(put, path = "/api/v2.0/users/{user_id}/sysadmin", tag = "user",
    params(("user_id" = i64, Path, description = "User id")), request_body = SysAdminFlag,
    responses((status = 200, description = "Changed"), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn set_sysadmin(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    id: &str,
) -> Result<Reply, GatewayError> {
    req.require(Action::ManageUsers, Resource::System)?;
    let id = path_id(id, "user_id")?;
    let body: SysAdminFlag = read_json(session).await?;
    set_sysadmin_flag(app, req, id, body.sysadmin_flag).await?;
    Ok(Reply::new(200))
}

/// Grants or revokes system administration (the API's PUT and the
/// portal's button).
pub(crate) async fn set_sysadmin_flag(
    app: &App,
    req: &ApiRequest,
    id: i64,
    flag: bool,
) -> Result<(), GatewayError> {
    req.require(Action::ManageUsers, Resource::System)?;
    let user = load(app, id).await?;
    if user.username == "admin" && !flag {
        return Err(GatewayError::Denied(
            "the built-in `admin` user stays a system administrator".into(),
        ));
    }
    // Revoking one's own rights could leave nobody to give them back.
    if !flag && req.identity.as_ref().is_some_and(|i| i.user_id == Some(id)) {
        return Err(GatewayError::Denied(
            "you cannot revoke your own system administrator rights; ask another administrator"
                .into(),
        ));
    }
    let done = app.registry.meta().set_user_admin(id, flag).await?;
    req.audit(
        app,
        "update",
        "user",
        &format!("{}:sysadmin={flag}", user.username),
        None,
        done,
    );
    app.forget_access().await;
    Ok(())
}
