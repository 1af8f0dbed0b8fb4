//! User groups (Harbor's `usergroup` API): LDAP groups recorded by DN so
//! they can be made project members.
//!
//! - `/usergroups` GET (`group_name`, `ldap_group_dn` filters), POST
//!   (the DN must name a group in the directory)
//! - `/usergroups/{group_id}` GET, PUT (the name only), DELETE (and its
//!   project memberships)
//! - `/usergroups/search?groupname=` GET: for anyone signed in, to find a
//!   group to add as a member
//!
//! Everything else is for system administrators.

use berth_auth::ldap::GroupQuery;
use berth_policy::{Action, Resource};
use berth_storage::user_groups::{GroupFilter, GroupRefused, UserGroup as Stored, LDAP_GROUP};
use pingora::http::Method;
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::ldap::{directory, directory_error};
use super::page::Page;
use super::request::{bounded, path_id, read_json, ApiRequest};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;

#[derive(OpenApi)]
#[openapi(
    paths(list, create, get, update, delete, search),
    components(schemas(UserGroup, UserGroupSearchItem))
)]
pub struct Doc;

/// Harbor's `UserGroup`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct UserGroup {
    /// Absent for a group the directory lists but berth has not recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(default)]
    pub group_name: String,
    /// 1: an LDAP group (the only kind berth has).
    #[serde(default)]
    pub group_type: i64,
    #[serde(default)]
    pub ldap_group_dn: String,
}

/// Harbor's `UserGroupSearchItem`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserGroupSearchItem {
    pub id: i64,
    pub group_name: String,
    pub group_type: i64,
}

fn group_json(g: &Stored) -> UserGroup {
    UserGroup {
        id: Some(g.id),
        group_name: g.name.clone(),
        group_type: g.group_type,
        ldap_group_dn: g.ldap_group_dn.clone(),
    }
}

fn json<T: Serialize>(status: u16, value: &T) -> Reply {
    Reply::json(status, &serde_json::to_value(value).unwrap_or_default())
}

pub async fn route(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    rest: &[&str],
) -> Result<Reply, GatewayError> {
    let m = session.req_header().method.clone();
    if let ["search"] = rest {
        if m != Method::GET {
            return Err(GatewayError::MethodNotAllowed {
                method: m.to_string(),
            });
        }
        return search(app, req).await;
    }
    req.require(Action::ManageUsers, Resource::System)?;
    match rest {
        [] if m == Method::GET => list(app, req).await,
        [] if m == Method::POST => create(app, session, req).await,
        [id] if m == Method::GET => get(app, id).await,
        [id] if m == Method::PUT => update(app, session, req, id).await,
        [id] if m == Method::DELETE => delete(app, req, id).await,
        [] | [_] => Err(GatewayError::MethodNotAllowed {
            method: m.to_string(),
        }),
        _ => Err(GatewayError::NotFound(
            session.req_header().uri.path().to_owned(),
        )),
    }
}

#[utoipa::path(get, path = "/api/v2.0/usergroups", tag = "usergroup",
    params(("group_name" = Option<String>, Query, description = "Names containing this"),
        ("ldap_group_dn" = Option<String>, Query, description = "This DN (ignoring case)"),
        ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "Recorded groups by name", body = [UserGroup],
        headers(("X-Total-Count" = i64, description = "Total matching"), ("Link" = String, description = "prev/next pages"))),
        (status = 403, description = "Not a system administrator", body = super::Errors)))]
pub async fn list(app: &App, req: &ApiRequest) -> Result<Reply, GatewayError> {
    let page = Page::parse(&req.query)?;
    let text = |key: &str| {
        req.query
            .get(key)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let filter = GroupFilter {
        name_contains: text("group_name"),
        dn: text("ldap_group_dn"),
    };
    let (groups, total) = app
        .registry
        .meta()
        .list_user_groups(&filter, page.offset(), page.limit())
        .await?;
    let items: Vec<UserGroup> = groups.iter().map(group_json).collect();
    Ok(page.reply("/api/v2.0/usergroups", &req.query, &items, total))
}

#[utoipa::path(post, path = "/api/v2.0/usergroups", tag = "usergroup", request_body = UserGroup,
    responses((status = 201, description = "Recorded; Location names it",
        headers(("Location" = String, description = "/api/v2.0/usergroups/{group_id}"))),
        (status = 400, description = "No DN, a group type other than 1, or a DN the directory does not have", body = super::Errors),
        (status = 409, description = "A group with that DN is recorded", body = super::Errors),
        (status = 403, description = "Not a system administrator", body = super::Errors),
        (status = 502, description = "The directory failed", body = super::Errors),
        (status = 503, description = "LDAP is not configured", body = super::Errors)))]
pub async fn create(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
) -> Result<Reply, GatewayError> {
    let body: UserGroup = read_json(session).await?;
    if body.group_type != LDAP_GROUP {
        return Err(GatewayError::BadRequest(format!(
            "`group_type` must be 1 (an LDAP group), not {}; berth has no other kind",
            body.group_type
        )));
    }
    let dn = body.ldap_group_dn.trim();
    if dn.is_empty() {
        return Err(GatewayError::BadRequest(
            "`ldap_group_dn` is required (e.g. cn=devs,ou=groups,dc=example,dc=org)".into(),
        ));
    }
    bounded("ldap_group_dn", dn, 512)?;
    bounded("group_name", &body.group_name, 255)?;
    // Only a group the directory has: its DN as the directory spells it,
    // and its name when none is given.
    let found = directory(app)?
        .search_groups(GroupQuery::At(dn))
        .await
        .map_err(directory_error)?;
    let Some(group) = found.into_iter().next() else {
        return Err(GatewayError::BadRequest(format!(
            "the directory has no group at `{dn}`; find it with GET /api/v2.0/ldap/groups/search"
        )));
    };
    let name = match body.group_name.trim() {
        "" => group.name.as_str(),
        given => given,
    };
    let outcome = app
        .registry
        .meta()
        .create_user_group(name, &group.dn)
        .await?;
    req.audit(
        app,
        "create",
        "user-group",
        &group.dn,
        None,
        outcome.is_ok(),
    );
    match outcome {
        Ok(id) => Ok(Reply::new(201).header("Location", format!("/api/v2.0/usergroups/{id}"))),
        Err(GroupRefused::Exists(id)) => Err(GatewayError::Conflict(format!(
            "group `{}` is recorded already, as user group {id}",
            group.dn
        ))),
    }
}

async fn stored(app: &App, id: &str) -> Result<Stored, GatewayError> {
    let id = path_id(id, "group_id")?;
    app.registry
        .meta()
        .user_group(id)
        .await?
        .ok_or_else(|| GatewayError::ApiNotFound(format!("user group {id} not found")))
}

#[utoipa::path(get, path = "/api/v2.0/usergroups/{group_id}", tag = "usergroup",
    params(("group_id" = i64, Path)),
    responses((status = 200, body = UserGroup), (status = 404, body = super::Errors),
        (status = 403, description = "Not a system administrator", body = super::Errors)))]
pub async fn get(app: &App, id: &str) -> Result<Reply, GatewayError> {
    Ok(json(200, &group_json(&stored(app, id).await?)))
}

#[utoipa::path(put, path = "/api/v2.0/usergroups/{group_id}", tag = "usergroup",
    params(("group_id" = i64, Path)), request_body = UserGroup,
    responses((status = 200, description = "Renamed (the DN and type never change)"),
        (status = 400, body = super::Errors), (status = 404, body = super::Errors),
        (status = 403, description = "Not a system administrator", body = super::Errors)))]
pub async fn update(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    id: &str,
) -> Result<Reply, GatewayError> {
    let group = stored(app, id).await?;
    let body: UserGroup = read_json(session).await?;
    let name = body.group_name.trim();
    if name.is_empty() {
        return Err(GatewayError::BadRequest("`group_name` is required".into()));
    }
    bounded("group_name", name, 255)?;
    let renamed = app
        .registry
        .meta()
        .rename_user_group(group.id, name)
        .await?;
    req.audit(
        app,
        "update",
        "user-group",
        &group.ldap_group_dn,
        None,
        renamed,
    );
    if !renamed {
        return Err(GatewayError::ApiNotFound(format!(
            "user group {} not found",
            group.id
        )));
    }
    Ok(Reply::new(200))
}

#[utoipa::path(delete, path = "/api/v2.0/usergroups/{group_id}", tag = "usergroup",
    params(("group_id" = i64, Path)),
    responses((status = 200, description = "Deleted, with its project memberships"),
        (status = 400, body = super::Errors), (status = 404, body = super::Errors),
        (status = 403, description = "Not a system administrator", body = super::Errors)))]
pub async fn delete(app: &App, req: &ApiRequest, id: &str) -> Result<Reply, GatewayError> {
    let group = stored(app, id).await?;
    let deleted = app.registry.meta().delete_user_group(group.id).await?;
    req.audit(
        app,
        "delete",
        "user-group",
        &group.ldap_group_dn,
        None,
        deleted,
    );
    if !deleted {
        return Err(GatewayError::ApiNotFound(format!(
            "user group {} not found",
            group.id
        )));
    }
    // Its members' roles came through the memberships just deleted.
    app.forget_access().await;
    Ok(Reply::new(200))
}

#[utoipa::path(get, path = "/api/v2.0/usergroups/search", tag = "usergroup",
    params(("groupname" = String, Query, description = "Names containing this"),
        ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "Recorded groups by name", body = [UserGroupSearchItem],
        headers(("X-Total-Count" = i64, description = "Total matching"), ("Link" = String, description = "prev/next pages"))),
        (status = 400, description = "No group name", body = super::Errors),
        (status = 401, description = "Not signed in", body = super::Errors),
        (status = 403, description = "Robots may not", body = super::Errors)))]
pub async fn search(app: &App, req: &ApiRequest) -> Result<Reply, GatewayError> {
    req.require(Action::SearchUserGroups, Resource::System)?;
    let name = req.query.get("groupname").unwrap_or("").trim();
    if name.is_empty() {
        return Err(GatewayError::BadRequest(
            "`groupname` is required: part of the group's name".into(),
        ));
    }
    bounded("groupname", name, 255)?;
    let page = Page::parse(&req.query)?;
    let filter = GroupFilter {
        name_contains: Some(name.to_owned()),
        dn: None,
    };
    let (groups, total) = app
        .registry
        .meta()
        .list_user_groups(&filter, page.offset(), page.limit())
        .await?;
    let items: Vec<UserGroupSearchItem> = groups
        .iter()
        .map(|g| UserGroupSearchItem {
            id: g.id,
            group_name: g.name.clone(),
            group_type: g.group_type,
        })
        .collect();
    Ok(page.reply("/api/v2.0/usergroups/search", &req.query, &items, total))
}
