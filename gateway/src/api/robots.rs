//! Robot accounts: `/api/v2.0/robots` and `/robots/{robot_id}` (Harbor's
//! `robot` API, v2 shapes). System robots (admins only) may cover several
//! projects or `*`; project robots cover their one project and are
//! managed by its project admins. The secret is shown once, at creation
//! or refresh, and stored hashed.

use berth_auth::robot::{self as secrets, AccessSpec, PermissionSpec};
use berth_policy::{robot_action, Action, Resource, ROBOT_ACCESS};
use berth_storage::oci::ProjectName;
use berth_storage::projects::ProjectRow;
use berth_storage::robots::{NewRobot, RobotRow};
use pingora::http::Method;
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::page::{Page, Term, Q};
use super::request::{bounded, path_id, read_json, time, ApiRequest, ProjectRef};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;

#[derive(OpenApi)]
#[openapi(
    paths(list, create, get, update, refresh, delete),
    components(schemas(Robot, RobotCreate, RobotCreated, RobotSec, RobotPermission, Access))
)]
pub struct Doc;

const DAY: i64 = 24 * 60 * 60;

/// Harbor's `Robot`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Robot {
    #[serde(default)]
    pub id: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `system` or `project`.
    pub level: String,
    /// Days of validity; -1: never expires.
    pub duration: i64,
    #[serde(default)]
    pub editable: bool,
    #[serde(default)]
    pub disable: bool,
    /// Unix seconds; -1: never.
    #[serde(default)]
    pub expires_at: i64,
    pub permissions: Vec<RobotPermission>,
    #[serde(default)]
    pub creation_time: String,
    #[serde(default)]
    pub update_time: String,
}

/// Harbor's `RobotCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RobotCreate {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub level: String,
    #[serde(default)]
    pub disable: bool,
    /// Days; -1: never expires; left out or 0: `robot_token_duration`.
    #[serde(default)]
    pub duration: i64,
    pub permissions: Vec<RobotPermission>,
}

/// Harbor's `RobotCreated`: the only time the secret is shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RobotCreated {
    pub id: i64,
    pub name: String,
    pub secret: String,
    pub creation_time: String,
    pub expires_at: i64,
}

/// Harbor's `RobotSec`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct RobotSec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Harbor's `RobotPermission`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RobotPermission {
    /// `project`.
    pub kind: String,
    /// A project name, or `*` for all projects (system robots).
    pub namespace: String,
    pub access: Vec<Access>,
}

/// Harbor's `Access`: resource and action, e.g. repository/pull.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Access {
    pub resource: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
}

fn robot_json(r: &RobotRow) -> Robot {
    let specs = secrets::parse_stored(&r.permissions);
    Robot {
        id: r.id,
        name: r.name.clone(),
        description: r.description.clone(),
        level: r.level.clone(),
        duration: r.duration,
        editable: true,
        disable: r.disabled,
        expires_at: r.expires_at,
        permissions: specs
            .into_iter()
            .map(|s| RobotPermission {
                kind: s.kind,
                namespace: s.namespace,
                access: s
                    .access
                    .into_iter()
                    .map(|a| Access {
                        resource: a.resource,
                        action: a.action,
                        effect: a.effect,
                    })
                    .collect(),
            })
            .collect(),
        creation_time: time(r.created_at),
        update_time: time(r.updated_at),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn expires_at(created_at: i64, duration: i64) -> Result<i64, GatewayError> {
    match duration {
        -1 => Ok(-1),
        d if (1..=365 * 100).contains(&d) => Ok(created_at + d * DAY),
        d => Err(GatewayError::BadRequest(format!(
            "`duration` is in days: -1 (never expires) or 1 to 36500, not {d}"
        ))),
    }
}

/// The project a project-level robot belongs to, from its permissions.
fn project_of(level: &str, perms: &[RobotPermission]) -> Result<Option<String>, GatewayError> {
    match level {
        "system" => Ok(None),
        "project" => match perms {
            [one] if one.namespace != "*" => Ok(Some(one.namespace.clone())),
            _ => Err(GatewayError::BadRequest(
                "a project robot has exactly one permission entry, whose `namespace` is its project"
                    .into(),
            )),
        },
        other => Err(GatewayError::BadRequest(format!(
            "`level` must be `system` or `project`, not `{other}`"
        ))),
    }
}

/// Checks every permission entry and turns it into the stored shape.
async fn check_permissions(
    app: &App,
    level: &str,
    perms: &[RobotPermission],
) -> Result<Vec<PermissionSpec>, GatewayError> {
    if perms.is_empty() || perms.iter().all(|p| p.access.is_empty()) {
        return Err(GatewayError::BadRequest(
            "`permissions` is empty: a robot needs at least one access, e.g. \
             {\"kind\":\"project\",\"namespace\":\"team\",\"access\":[{\"resource\":\"repository\",\"action\":\"pull\"}]}"
                .into(),
        ));
    }
    let known = || {
        ROBOT_ACCESS
            .iter()
            .map(|(r, a, _)| format!("{r}/{a}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = Vec::with_capacity(perms.len());
    for (i, p) in perms.iter().enumerate() {
        let mut project_id = None;
        if p.kind != "project" {
            return Err(GatewayError::BadRequest(format!(
                "`permissions[{i}].kind` must be `project`, not `{}`",
                p.kind
            )));
        }
        if p.namespace == "*" {
            if level != "system" {
                return Err(GatewayError::BadRequest(format!(
                    "`permissions[{i}].namespace` `*` is only for system robots"
                )));
            }
        } else {
            let name: ProjectName = p.namespace.parse().map_err(|_| {
                GatewayError::BadRequest(format!(
                    "`permissions[{i}].namespace` `{}` is not a project name",
                    p.namespace
                ))
            })?;
            // A namespace is a project name, always (never an id).
            let Some(row) = app.registry.meta().project(name.as_str()).await? else {
                return Err(GatewayError::BadRequest(format!(
                    "`permissions[{i}].namespace`: project `{name}` does not exist"
                )));
            };
            project_id = Some(row.id);
        }
        for (j, a) in p.access.iter().enumerate() {
            let action = robot_action(&a.resource, &a.action).ok_or_else(|| {
                GatewayError::BadRequest(format!(
                    "`permissions[{i}].access[{j}]` {}/{} is not supported; use one of: {}",
                    a.resource,
                    a.action,
                    known()
                ))
            })?;
            if action == Action::Catalog && p.namespace != "*" {
                return Err(GatewayError::BadRequest(format!(
                    "`permissions[{i}].access[{j}]` catalog/list needs namespace `*`"
                )));
            }
            if a.effect
                .as_deref()
                .is_some_and(|e| e != "allow" && e != "deny")
            {
                return Err(GatewayError::BadRequest(format!(
                    "`permissions[{i}].access[{j}].effect` must be `allow` or `deny`"
                )));
            }
        }
        out.push(PermissionSpec {
            kind: p.kind.clone(),
            namespace: p.namespace.clone(),
            project_id,
            access: p
                .access
                .iter()
                .map(|a| AccessSpec {
                    resource: a.resource.clone(),
                    action: a.action.clone(),
                    effect: a.effect.clone(),
                })
                .collect(),
        });
    }
    Ok(out)
}

/// Who may manage (or read, with `read`) a robot of this level/project.
async fn authorize(
    app: &App,
    req: &ApiRequest,
    project: Option<ProjectRef<'_>>,
    read: bool,
) -> Result<Option<ProjectRow>, GatewayError> {
    match project {
        None => req
            .require(Action::ManageSystemRobots, Resource::System)
            .map(|()| None),
        Some(p) => {
            let action = if read {
                Action::ReadRobots
            } else {
                Action::ManageRobots
            };
            let (row, _) = req.project(app, p, action).await?;
            Ok(Some(row))
        }
    }
}

/// Loads a robot and checks the caller may see (or manage) it; robots the
/// caller may not see are 404.
async fn load(app: &App, req: &ApiRequest, id: &str, read: bool) -> Result<RobotRow, GatewayError> {
    let id = path_id(id, "robot_id")?;
    let not_found = || GatewayError::ApiNotFound(format!("robot {id} not found"));
    let row = app.registry.meta().robot(id).await?.ok_or_else(not_found)?;
    // A project robot is judged in the project its row belongs to, by id.
    match authorize(app, req, row.project_id.map(ProjectRef::Id), read).await {
        Err(GatewayError::Denied(_) | GatewayError::Hidden(_) | GatewayError::ApiNotFound(_))
            if read =>
        {
            Err(not_found())
        }
        r => r.map(|_| row),
    }
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
        [id] if m == Method::GET => get(app, req, id).await,
        [id] if m == Method::PUT => update(app, session, req, id).await,
        [id] if m == Method::PATCH => refresh(app, session, req, id).await,
        [id] if m == Method::DELETE => delete(app, req, id).await,
        [] | [_] => Err(GatewayError::MethodNotAllowed {
            method: m.to_string(),
        }),
        _ => Err(GatewayError::NotFound(
            session.req_header().uri.path().to_owned(),
        )),
    }
}

#[utoipa::path(get, path = "/api/v2.0/robots", tag = "robot",
    params(("q" = Option<String>, Query, description = "Level=system|project, ProjectID=<id>, name=~<substring>"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, body = [Robot],
        headers(("X-Total-Count" = i64, description = "Total matching"), ("Link" = String, description = "prev/next pages"))),
        (status = 403, body = super::Errors)))]
pub async fn list(app: &App, req: &ApiRequest) -> Result<Reply, GatewayError> {
    let page = Page::parse(&req.query)?;
    let q = Q::parse(&req.query)?;
    q.reject_unknown(&["Level", "level", "ProjectID", "project_id", "name"])?;
    let exact = |k1: &str, k2: &str| match q.get(k1).or_else(|| q.get(k2)) {
        Some(Term::Exact(v)) => Some(v.clone()),
        _ => None,
    };
    let level = exact("Level", "level");
    let project_id = match exact("ProjectID", "project_id") {
        Some(v) => Some(v.parse::<i64>().map_err(|_| {
            GatewayError::BadRequest(format!("`ProjectID` must be a number, not `{v}`"))
        })?),
        None => None,
    };
    let (_, contains) = q.name_filter("name");
    // Project admins list their project's robots; all robots only admins.
    match project_id {
        Some(pid) => {
            req.project(app, ProjectRef::Id(pid), Action::ReadRobots)
                .await?;
        }
        None => req.require(Action::ManageSystemRobots, Resource::System)?,
    }
    let (rows, total) = app
        .registry
        .meta()
        .list_robots(
            level.as_deref(),
            project_id,
            contains.as_deref(),
            page.offset(),
            page.limit(),
        )
        .await?;
    let items: Vec<_> = rows.iter().map(robot_json).collect();
    Ok(page.reply("/api/v2.0/robots", &req.query, &items, total))
}

#[utoipa::path(post, path = "/api/v2.0/robots", tag = "robot", request_body = RobotCreate,
    responses((status = 201, body = RobotCreated, headers(("Location" = String, description = "/api/v2.0/robots/{id}"))),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 409, body = super::Errors)))]
pub async fn create(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
) -> Result<Reply, GatewayError> {
    let body: RobotCreate = read_json(session).await?;
    let created = create_robot(app, req, &body).await?;
    let id = created.id;
    Ok(
        Reply::json(201, &serde_json::to_value(created).unwrap_or_default())
            .header("Location", format!("/api/v2.0/robots/{id}")),
    )
}

/// Creates a robot (the API's POST and the portal's form); the answer
/// holds the secret, the only time it is shown.
pub(crate) async fn create_robot(
    app: &App,
    req: &ApiRequest,
    body: &RobotCreate,
) -> Result<RobotCreated, GatewayError> {
    let project = project_of(&body.level, &body.permissions)?;
    let project_row = authorize(app, req, project.as_deref().map(ProjectRef::Name), false).await?;
    if body.name.is_empty()
        || !body
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err(GatewayError::BadRequest(format!(
            "`name` `{}` must be lowercase letters, digits, `.`, `_` or `-`",
            body.name
        )));
    }
    bounded("name", &body.name, 128)?;
    bounded("description", &body.description, 1024)?;
    let specs = check_permissions(app, &body.level, &body.permissions).await?;
    let full_name = match &project_row {
        Some(p) => format!("{}{}+{}", secrets::ROBOT_PREFIX, p.name, body.name),
        None => format!("{}{}", secrets::ROBOT_PREFIX, body.name),
    };
    let project_id = project_row.as_ref().map(|r| r.id);
    if project_id.is_some() && specs.first().and_then(|s| s.project_id) != project_id {
        // The project was deleted and created again meanwhile.
        return Err(GatewayError::Conflict(
            "the robot's project changed while it was being created; try again".into(),
        ));
    }
    let created_at = now();
    // Harbor's: no duration, the configured default lifetime.
    let duration = match body.duration {
        0 => app.runtime.robot_days(),
        d => d,
    };
    let expires = expires_at(created_at, duration)?;
    let secret = secrets::generate_secret();
    let permissions = serde_json::to_string(&specs).unwrap_or_else(|_| "[]".into());
    let id = app
        .registry
        .meta()
        .create_robot(&NewRobot {
            name: &full_name,
            description: &body.description,
            secret_hash: &secrets::hash_secret(&secret),
            level: &body.level,
            project_id,
            duration,
            expires_at: expires,
            disabled: body.disable,
            permissions: &permissions,
        })
        .await?;
    req.audit(
        app,
        "create",
        "robot",
        &full_name,
        project.as_deref(),
        id.is_some(),
    );
    let id =
        id.ok_or_else(|| GatewayError::Conflict(format!("robot `{full_name}` already exists")))?;
    Ok(RobotCreated {
        id,
        name: full_name,
        secret,
        creation_time: time(created_at),
        expires_at: expires,
    })
}

#[utoipa::path(get, path = "/api/v2.0/robots/{robot_id}", tag = "robot",
    params(("robot_id" = i64, Path, description = "Robot id")),
    responses((status = 200, body = Robot), (status = 404, body = super::Errors)))]
pub async fn get(app: &App, req: &ApiRequest, id: &str) -> Result<Reply, GatewayError> {
    let row = load(app, req, id, true).await?;
    Ok(Reply::json(
        200,
        &serde_json::to_value(robot_json(&row)).unwrap_or_default(),
    ))
}

#[utoipa::path(put, path = "/api/v2.0/robots/{robot_id}", tag = "robot",
    params(("robot_id" = i64, Path, description = "Robot id")), request_body = Robot,
    responses((status = 200, description = "Updated"), (status = 400, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn update(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    id: &str,
) -> Result<Reply, GatewayError> {
    let row = load(app, req, id, false).await?;
    let body: Robot = read_json(session).await?;
    if body.level != row.level {
        return Err(GatewayError::BadRequest(format!(
            "`level` cannot change (it is `{}`); create a new robot instead",
            row.level
        )));
    }
    if !body.name.is_empty() && body.name != row.name {
        return Err(GatewayError::BadRequest(format!(
            "`name` cannot change (it is `{}`)",
            row.name
        )));
    }
    let project = project_of(&body.level, &body.permissions)?;
    bounded("description", &body.description, 1024)?;
    let specs = check_permissions(app, &body.level, &body.permissions).await?;
    if row.project_id.is_some() && specs.first().and_then(|s| s.project_id) != row.project_id {
        // A project robot stays in its project (the one its row names, by
        // id: a namespace that names another project, or the same name
        // created again, is refused).
        return Err(GatewayError::BadRequest(
            "a project robot's `namespace` cannot change".into(),
        ));
    }
    let expires = expires_at(row.created_at, body.duration)?;
    let done = app
        .registry
        .meta()
        .update_robot(
            row.id,
            &body.description,
            body.duration,
            expires,
            body.disable,
            &serde_json::to_string(&specs).unwrap_or_else(|_| "[]".into()),
        )
        .await?;
    req.audit(app, "update", "robot", &row.name, project.as_deref(), done);
    app.forget_access().await;
    Ok(Reply::new(200))
}

#[utoipa::path(patch, path = "/api/v2.0/robots/{robot_id}", tag = "robot",
    params(("robot_id" = i64, Path, description = "Robot id")), request_body = RobotSec,
    responses((status = 200, description = "The new secret (shown once)", body = RobotSec),
        (status = 400, body = super::Errors), (status = 404, body = super::Errors)))]
pub async fn refresh(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    id: &str,
) -> Result<Reply, GatewayError> {
    let row = load(app, req, id, false).await?;
    let body = read_json::<RobotSec>(session).await.unwrap_or_default();
    let secret = match body.secret {
        Some(s) => {
            let strong = s.len() >= 8
                && s.len() <= 128
                && s.bytes().any(|b| b.is_ascii_uppercase())
                && s.bytes().any(|b| b.is_ascii_lowercase())
                && s.bytes().any(|b| b.is_ascii_digit());
            if !strong {
                return Err(GatewayError::BadRequest(
                    "`secret` must be 8 to 128 characters with an uppercase letter, a lowercase letter and a digit; or omit it to generate one".into(),
                ));
            }
            s
        }
        None => secrets::generate_secret(),
    };
    let done = app
        .registry
        .meta()
        .set_robot_secret(row.id, &secrets::hash_secret(&secret))
        .await?;
    req.audit(
        app,
        "update",
        "robot",
        &format!("{}:secret", row.name),
        None,
        done,
    );
    app.forget_access().await;
    Ok(Reply::json(
        200,
        &serde_json::to_value(RobotSec {
            secret: Some(secret),
        })
        .unwrap_or_default(),
    ))
}

#[utoipa::path(delete, path = "/api/v2.0/robots/{robot_id}", tag = "robot",
    params(("robot_id" = i64, Path, description = "Robot id")),
    responses((status = 200, description = "Deleted"), (status = 404, body = super::Errors)))]
pub async fn delete(app: &App, req: &ApiRequest, id: &str) -> Result<Reply, GatewayError> {
    let row = load(app, req, id, false).await?;
    let done = app.registry.meta().delete_robot(row.id).await?;
    req.audit(app, "delete", "robot", &row.name, None, done);
    app.forget_access().await;
    Ok(Reply::new(200))
}
