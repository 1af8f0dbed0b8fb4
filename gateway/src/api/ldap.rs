//! The LDAP directory, for administrators (Harbor's `ldap` API):
//!
//! - `/ldap/ping` POST: whether the configured directory answers the
//!   search account's bind
//! - `/ldap/users/search?username=` GET: users by `uid` (all when empty)
//! - `/ldap/users/import` POST `{"ldap_uid_list": [...]}`: record them
//!   as LDAP accounts before their first login, so they can be made
//!   project members
//! - `/ldap/groups/search?groupname=|groupdn=` GET
//!
//! Only the directory of the config file is used: a ping with other
//! settings in its body is refused rather than tried.

use std::sync::Arc;

use berth_auth::ldap::{DirectoryGroup, GroupQuery, LdapDirectory};
use berth_auth::AuthError;
use berth_conf::LdapConfig;
use berth_policy::{Action, Resource};
use pingora::http::Method;
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::request::{bounded, read_json, ApiRequest};
use super::usergroups::UserGroup;
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::runtime::live;

#[derive(OpenApi)]
#[openapi(
    paths(ping, search_users, import_users, search_groups),
    components(schemas(LdapPingResult, LdapUser, LdapImportUsers, LdapFailedImportUser))
)]
pub struct Doc;

/// Harbor's `LdapPingResult`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LdapPingResult {
    pub success: bool,
    pub message: String,
}

/// Harbor's `LdapUser`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LdapUser {
    pub username: String,
    pub realname: String,
    pub email: String,
}

/// Harbor's `LdapImportUsers`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LdapImportUsers {
    #[serde(default)]
    pub ldap_uid_list: Vec<String>,
}

/// Harbor's `LdapFailedImportUser`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LdapFailedImportUser {
    pub uid: String,
    pub error: String,
}

/// The most users one import takes.
const MAX_IMPORT: usize = 100;

fn json<T: Serialize>(status: u16, value: &T) -> Reply {
    Reply::json(status, &serde_json::to_value(value).unwrap_or_default())
}

pub async fn route(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    rest: &[&str],
) -> Result<Reply, GatewayError> {
    req.require(Action::ManageUsers, Resource::System)?;
    let m = session.req_header().method.clone();
    match rest {
        ["ping"] if m == Method::POST => ping(app, session).await,
        ["users", "search"] if m == Method::GET => search_users(app, req).await,
        ["users", "import"] if m == Method::POST => import_users(app, session, req).await,
        ["groups", "search"] if m == Method::GET => search_groups(app, req).await,
        ["ping"] | ["users", "search" | "import"] | ["groups", "search"] => {
            Err(GatewayError::MethodNotAllowed {
                method: m.to_string(),
            })
        }
        _ => Err(GatewayError::NotFound(
            session.req_header().uri.path().to_owned(),
        )),
    }
}

/// The configured directory, or a 503 saying what to set.
pub(crate) fn directory(app: &App) -> Result<Arc<LdapDirectory>, GatewayError> {
    app.login.directory().ok_or_else(|| {
        GatewayError::NotConfigured(
            "LDAP is not configured: set auth_mode to ldap_auth with ldap_url and ldap_base_dn \
             (PUT /api/v2.0/configurations), or the [ldap] section of the config file"
                .into(),
        )
    })
}

/// The directory settings a ping with a body tries (Harbor's portal tests
/// settings before saving them): the stored ones with the body's over
/// them, checked as a PUT would check them; a password left out is the
/// stored one.
async fn settings_to_try(
    app: &App,
    given: serde_json::Map<String, serde_json::Value>,
) -> Result<LdapConfig, GatewayError> {
    if app.runtime.file_owns_group(live::Group::Directory) {
        return Err(GatewayError::BadRequest(
            "the directory is the config file's ([ldap]): berth pings it only; send no body \
             (or {})"
                .into(),
        ));
    }
    let mut wanted = live::values(&app.registry.meta().configuration().await?);
    for (key, value) in given {
        // Harbor's ping names the timeout so.
        let key = if key == "ldap_connection_timeout" {
            "ldap_timeout".to_owned()
        } else {
            key
        };
        match live::lookup(&key) {
            Some(k) if k.group == live::Group::Directory && key != "auth_mode" => {
                if value.is_null() || (k.is_secret() && value.as_str() == Some("")) {
                    continue;
                }
                live::check(k, &value).map_err(GatewayError::BadRequest)?;
                wanted.insert(key, value);
            }
            _ => {
                return Err(GatewayError::BadRequest(format!(
                    "`{key}` is not an LDAP setting; send ldap_url, ldap_base_dn, ldap_search_dn, \
                     ldap_search_password, ldap_uid, ..."
                )))
            }
        }
    }
    wanted.insert("auth_mode".into(), serde_json::Value::from("ldap_auth"));
    app.runtime
        .live_from(&wanted)
        .map_err(GatewayError::BadRequest)?
        .ldap
        .ok_or_else(|| GatewayError::BadRequest("give `ldap_url` and `ldap_base_dn`".into()))
}

/// A directory failure as the API's error: the directory's own words for
/// an administrator, a 502 (it is another server's failure).
pub(crate) fn directory_error(e: AuthError) -> GatewayError {
    match e {
        AuthError::DirectoryUnavailable(_) | AuthError::DirectoryMisconfigured(_) => {
            GatewayError::DirectoryFailed(e.to_string())
        }
        other => GatewayError::Auth(other),
    }
}

#[utoipa::path(post, path = "/api/v2.0/ldap/ping", tag = "ldap",
    request_body(content = Object, description = "Settings to try (Harbor's `LdapConf`: ldap_url, ldap_search_dn, ldap_search_password, ...) over the stored ones; none: the directory in force"),
    responses((status = 200, description = "Whether the directory accepted the search account's bind; `message` says why not", body = LdapPingResult),
        (status = 400, description = "A setting in the body is not one, or the config file sets the directory", body = super::Errors),
        (status = 403, description = "Not a system administrator", body = super::Errors),
        (status = 503, description = "LDAP is not configured", body = super::Errors)))]
pub async fn ping(app: &App, session: &mut Session) -> Result<Reply, GatewayError> {
    let body = crate::http::read_body(session, super::request::MAX_JSON).await?;
    let given: serde_json::Map<String, serde_json::Value> = if body.is_empty() {
        serde_json::Map::new()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| GatewayError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let directory = if given.is_empty() {
        directory(app)?
    } else {
        Arc::new(LdapDirectory::new(&settings_to_try(app, given).await?))
    };
    let answer = match directory.ping().await {
        Ok(()) => LdapPingResult {
            success: true,
            message: "the directory accepted the search account's bind".into(),
        },
        Err(e) => LdapPingResult {
            success: false,
            message: e.to_string(),
        },
    };
    Ok(json(200, &answer))
}

#[utoipa::path(get, path = "/api/v2.0/ldap/users/search", tag = "ldap",
    params(("username" = Option<String>, Query, description = "The uid to find; all users (at most 200) when empty")),
    responses((status = 200, description = "Directory users", body = [LdapUser]),
        (status = 403, description = "Not a system administrator", body = super::Errors),
        (status = 502, description = "The directory failed; the message says how", body = super::Errors),
        (status = 503, description = "LDAP is not configured", body = super::Errors)))]
pub async fn search_users(app: &App, req: &ApiRequest) -> Result<Reply, GatewayError> {
    let username = req.query.get("username").unwrap_or("").trim();
    bounded("username", username, 255)?;
    let found = directory(app)?
        .search_users(username)
        .await
        .map_err(directory_error)?;
    let users: Vec<LdapUser> = found
        .into_iter()
        .map(|u| LdapUser {
            realname: u.display_name.unwrap_or_else(|| u.username.clone()),
            email: u.email.unwrap_or_default(),
            username: u.username,
        })
        .collect();
    Ok(json(200, &users))
}

#[utoipa::path(post, path = "/api/v2.0/ldap/users/import", tag = "ldap",
    request_body = LdapImportUsers,
    responses((status = 200, description = "Every user was recorded (or already was)"),
        (status = 400, description = "An empty or too long list", body = super::Errors),
        (status = 404, description = "Some users were not recorded: each with the reason (the others were)", body = [LdapFailedImportUser]),
        (status = 403, description = "Not a system administrator", body = super::Errors),
        (status = 502, description = "The directory failed", body = super::Errors),
        (status = 503, description = "LDAP is not configured", body = super::Errors)))]
pub async fn import_users(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
) -> Result<Reply, GatewayError> {
    let body: LdapImportUsers = read_json(session).await?;
    directory(app)?;
    if body.ldap_uid_list.is_empty() || body.ldap_uid_list.len() > MAX_IMPORT {
        return Err(GatewayError::BadRequest(format!(
            "`ldap_uid_list` lists 1 to {MAX_IMPORT} uids"
        )));
    }
    // Every uid is checked before any is recorded.
    for uid in &body.ldap_uid_list {
        bounded("ldap_uid_list", uid, 255)?;
    }
    let mut failed = Vec::new();
    for uid in &body.ldap_uid_list {
        let outcome = app.login.import_ldap_user(uid).await;
        req.audit(app, "create", "user", uid, None, outcome.is_ok());
        match outcome {
            Ok(_) => {}
            Err(AuthError::InvalidCredentials) => failed.push(LdapFailedImportUser {
                uid: uid.clone(),
                error: "not found in the directory, or a local or robot account has that name"
                    .into(),
            }),
            Err(
                e @ (AuthError::DirectoryUnavailable(_) | AuthError::DirectoryMisconfigured(_)),
            ) => return Err(directory_error(e)),
            Err(e) => return Err(GatewayError::Auth(e)),
        }
    }
    if failed.is_empty() {
        Ok(Reply::new(200))
    } else {
        Ok(json(404, &failed))
    }
}

/// A directory group as Harbor's `UserGroup` (not recorded: no id).
pub(crate) fn group_json(g: DirectoryGroup) -> UserGroup {
    UserGroup {
        id: None,
        group_name: g.name,
        group_type: berth_storage::user_groups::LDAP_GROUP,
        ldap_group_dn: g.dn,
    }
}

#[utoipa::path(get, path = "/api/v2.0/ldap/groups/search", tag = "ldap",
    params(("groupname" = Option<String>, Query, description = "Groups with this name under ldap.group_base_dn (all, at most 200, when empty)"),
        ("groupdn" = Option<String>, Query, description = "The group at this DN")),
    responses((status = 200, description = "Directory groups", body = [UserGroup]),
        (status = 403, description = "Not a system administrator", body = super::Errors),
        (status = 502, description = "The directory failed, or groups cannot be searched by name without ldap.group_base_dn", body = super::Errors),
        (status = 503, description = "LDAP is not configured", body = super::Errors)))]
pub async fn search_groups(app: &App, req: &ApiRequest) -> Result<Reply, GatewayError> {
    let name = req.query.get("groupname").unwrap_or("").trim();
    let dn = req.query.get("groupdn").unwrap_or("").trim();
    bounded("groupname", name, 255)?;
    bounded("groupdn", dn, 512)?;
    let query = if dn.is_empty() {
        GroupQuery::Named(name)
    } else {
        GroupQuery::At(dn)
    };
    let found = directory(app)?
        .search_groups(query)
        .await
        .map_err(directory_error)?;
    let groups: Vec<UserGroup> = found.into_iter().map(group_json).collect();
    Ok(json(200, &groups))
}
