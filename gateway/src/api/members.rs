//! Project members: `/api/v2.0/projects/{project_name_or_id}/members` and
//! `.../members/{mid}` (Harbor's `member` API). Members are users or LDAP
//! groups (by DN); a group member's role applies to everyone the
//! directory lists in that group at login.

use berth_policy::{Action, Role};
use berth_storage::projects::{Entity, MemberRefused, MemberRow};
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::page::Page;
use super::request::{bounded, path_id, read_json, ApiRequest, ProjectRef};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;

/// Harbor's `ProjectMemberEntity`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProjectMemberEntity {
    pub id: i64,
    pub project_id: i64,
    pub entity_name: String,
    pub role_name: String,
    pub role_id: i64,
    pub entity_id: i64,
    /// `u` for a user, `g` for a group.
    pub entity_type: String,
}

/// Harbor's `ProjectMember` (create).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ProjectMember {
    pub role_id: i64,
    #[serde(default)]
    pub member_user: Option<UserEntity>,
    #[serde(default)]
    pub member_group: Option<UserGroup>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UserEntity {
    #[serde(default)]
    pub user_id: Option<i64>,
    #[serde(default)]
    pub username: Option<String>,
}

/// Harbor's `UserGroup`; berth supports LDAP groups (`group_type` 1),
/// named by a recorded group's `id` (`/usergroups`) or by DN.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserGroup {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub group_name: Option<String>,
    #[serde(default)]
    pub group_type: Option<i64>,
    #[serde(default)]
    pub ldap_group_dn: Option<String>,
}

/// Harbor's `RoleRequest` (update).
#[derive(Debug, Deserialize, ToSchema)]
pub struct RoleRequest {
    pub role_id: i64,
}

fn role(id: i64) -> Result<Role, GatewayError> {
    Role::from_id(id).ok_or_else(|| {
        GatewayError::BadRequest(format!(
            "`role_id` {id} is not a role; use 1 (ProjectAdmin), 2 (Developer), 3 (Guest), \
             4 (Maintainer) or 5 (LimitedGuest)"
        ))
    })
}

fn member_json(m: &MemberRow) -> ProjectMemberEntity {
    let (entity_type, entity_id) = match m.entity {
        Entity::User(id) => ("u", id),
        Entity::Group(id) => ("g", id),
    };
    ProjectMemberEntity {
        id: m.id,
        project_id: m.project_id,
        entity_name: m.entity_name.clone(),
        role_name: Role::from_id(m.role).map_or("unknown", Role::name).into(),
        role_id: m.role,
        entity_id,
        entity_type: entity_type.into(),
    }
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/members", tag = "member",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("entityname" = Option<String>, Query, description = "Members whose name contains this"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, body = [ProjectMemberEntity]), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn list(
    app: &App,
    session: &Session,
    req: &ApiRequest,
    project: &str,
) -> Result<Reply, GatewayError> {
    let (row, _) = req
        .project(
            app,
            ProjectRef::name_or_id(session, project),
            Action::ListMembers,
        )
        .await?;
    let page = Page::parse(&req.query)?;
    let name = req.query.get("entityname").filter(|n| !n.is_empty());
    let (members, total) = app
        .registry
        .meta()
        .list_members(row.id, name, page.offset(), page.limit())
        .await?;
    let items: Vec<_> = members.iter().map(member_json).collect();
    let path = format!("/api/v2.0/projects/{project}/members");
    Ok(page.reply(&path, &req.query, &items, total))
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/members/{mid}", tag = "member",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("mid" = i64, Path, description = "Member id")),
    responses((status = 200, body = ProjectMemberEntity), (status = 404, body = super::Errors)))]
pub async fn get(
    app: &App,
    session: &Session,
    req: &ApiRequest,
    project: &str,
    mid: &str,
) -> Result<Reply, GatewayError> {
    let (row, _) = req
        .project(
            app,
            ProjectRef::name_or_id(session, project),
            Action::ListMembers,
        )
        .await?;
    let mid = path_id(mid, "mid")?;
    let member = app
        .registry
        .meta()
        .member(row.id, mid)
        .await?
        .ok_or_else(|| {
            GatewayError::ApiNotFound(format!("member {mid} not found in project `{}`", row.name))
        })?;
    Ok(Reply::json(
        200,
        &serde_json::to_value(member_json(&member)).unwrap_or_default(),
    ))
}

#[utoipa::path(post, path = "/api/v2.0/projects/{project_name_or_id}/members", tag = "member",
    params(("project_name_or_id" = String, Path, description = "Project name or id")),
    request_body = ProjectMember,
    responses((status = 201, description = "Added; Location names the membership",
        headers(("Location" = String, description = ".../members/{mid}"))),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors), (status = 409, body = super::Errors)))]
pub async fn create(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    project: &str,
) -> Result<Reply, GatewayError> {
    let project = ProjectRef::name_or_id(session, project);
    // The project is checked before the body is read.
    let (row, _) = req.project(app, project, Action::ManageMembers).await?;
    let body: ProjectMember = read_json(session).await?;
    let mid = add(app, req, ProjectRef::Id(row.id), &body).await?;
    Ok(Reply::new(201).header(
        "Location",
        format!("/api/v2.0/projects/{}/members/{mid}", row.id),
    ))
}

/// Adds a member (the API's POST and the portal's form); returns its id.
pub(crate) async fn add(
    app: &App,
    req: &ApiRequest,
    project: ProjectRef<'_>,
    body: &ProjectMember,
) -> Result<i64, GatewayError> {
    let (row, _) = req.project(app, project, Action::ManageMembers).await?;
    let role = role(body.role_id)?;
    let meta = app.registry.meta();
    let (entity, name) = match (&body.member_user, &body.member_group) {
        (Some(u), None) => {
            let user = match (u.user_id, u.username.as_deref()) {
                (Some(id), _) => meta.user_by_id(id).await?,
                (None, Some(name)) => meta.user(name).await?,
                (None, None) => {
                    return Err(GatewayError::BadRequest(
                        "`member_user` needs `username` or `user_id`".into(),
                    ))
                }
            };
            let user = user.ok_or_else(|| {
                GatewayError::ApiNotFound(
                    "user not found; create it first (LDAP users are known after their first login), \
                     or add their LDAP group with `member_group`"
                        .into(),
                )
            })?;
            (Entity::User(user.id), user.username)
        }
        (None, Some(g)) if g.id.is_some_and(|id| id != 0) => {
            let id = g.id.unwrap_or(0);
            let group = meta.user_group(id).await?.ok_or_else(|| {
                GatewayError::ApiNotFound(format!(
                    "user group {id} not found; record it under /api/v2.0/usergroups, or name \
                     it by `ldap_group_dn`"
                ))
            })?;
            (Entity::Group(group.id), group.name)
        }
        (None, Some(g)) => {
            if g.group_type.is_some_and(|t| t != 1) {
                return Err(GatewayError::BadRequest(
                    "`member_group.group_type` must be 1 (LDAP group); other group types are not supported"
                        .into(),
                ));
            }
            let dn = g
                .ldap_group_dn
                .as_deref()
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .ok_or_else(|| {
                    GatewayError::BadRequest("`member_group.ldap_group_dn` is required".into())
                })?;
            bounded("member_group.ldap_group_dn", dn, 512)?;
            if !dn.contains('=') {
                return Err(GatewayError::BadRequest(format!(
                    "`member_group.ldap_group_dn` `{dn}` is not a DN (e.g. cn=devs,ou=groups,dc=example,dc=org)"
                )));
            }
            let name = g
                .group_name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| dn.to_owned());
            bounded("member_group.group_name", &name, 255)?;
            (Entity::Group(meta.ensure_group(dn, &name).await?), name)
        }
        _ => {
            return Err(GatewayError::BadRequest(
                "send exactly one of `member_user` and `member_group`".into(),
            ))
        }
    };
    let added = meta.add_member(row.id, entity, role.id()).await?;
    req.audit(
        app,
        "create",
        "member",
        &format!("{}:{name}", row.name),
        Some(&row.name),
        added.is_ok(),
    );
    let mid = added.map_err(|why| match why {
        MemberRefused::AlreadyMember => GatewayError::Conflict(format!(
            "`{name}` is already a member of project `{}`; change its role with PUT",
            row.name
        )),
        MemberRefused::Gone => {
            GatewayError::ApiNotFound(format!("`{name}` was deleted meanwhile; nothing was added"))
        }
    })?;
    app.forget_access().await;
    Ok(mid)
}

#[utoipa::path(put, path = "/api/v2.0/projects/{project_name_or_id}/members/{mid}", tag = "member",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("mid" = i64, Path, description = "Member id")),
    request_body = RoleRequest,
    responses((status = 200, description = "Role changed"), (status = 400, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn update(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    project: &str,
    mid: &str,
) -> Result<Reply, GatewayError> {
    let (row, _) = req
        .project(
            app,
            ProjectRef::name_or_id(session, project),
            Action::ManageMembers,
        )
        .await?;
    let mid = path_id(mid, "mid")?;
    let body: RoleRequest = read_json(session).await?;
    let role = role(body.role_id)?;
    let done = app
        .registry
        .meta()
        .set_member_role(row.id, mid, role.id())
        .await?;
    req.audit(
        app,
        "update",
        "member",
        &format!("{}:{mid}", row.name),
        Some(&row.name),
        done,
    );
    if !done {
        return Err(GatewayError::ApiNotFound(format!(
            "member {mid} not found in project `{}`",
            row.name
        )));
    }
    app.forget_access().await;
    Ok(Reply::new(200))
}

#[utoipa::path(delete, path = "/api/v2.0/projects/{project_name_or_id}/members/{mid}", tag = "member",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("mid" = i64, Path, description = "Member id")),
    responses((status = 200, description = "Removed"), (status = 404, body = super::Errors)))]
pub async fn delete(
    app: &App,
    session: &Session,
    req: &ApiRequest,
    project: &str,
    mid: &str,
) -> Result<Reply, GatewayError> {
    let project = ProjectRef::name_or_id(session, project);
    remove(app, req, project, path_id(mid, "mid")?).await?;
    Ok(Reply::new(200))
}

/// Removes a member (the API's DELETE and the portal's form).
pub(crate) async fn remove(
    app: &App,
    req: &ApiRequest,
    project: ProjectRef<'_>,
    mid: i64,
) -> Result<(), GatewayError> {
    let (row, _) = req.project(app, project, Action::ManageMembers).await?;
    let done = app.registry.meta().remove_member(row.id, mid).await?;
    req.audit(
        app,
        "delete",
        "member",
        &format!("{}:{mid}", row.name),
        Some(&row.name),
        done,
    );
    if !done {
        return Err(GatewayError::ApiNotFound(format!(
            "member {mid} not found in project `{}`",
            row.name
        )));
    }
    app.forget_access().await;
    Ok(())
}
