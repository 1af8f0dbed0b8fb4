//! What every management API handler starts from: who is calling, the
//! query, the body, and the policy checks in the API's terms.

use std::net::IpAddr;

use berth_auth::{AuthError, Identity};
use berth_policy::{authorize, Action, Decision, Namespace, Resource, Subject};
use berth_storage::audit::{now_ms, AuditRecord};
use berth_storage::projects::{ProjectRow, Visibility};
use pingora::proxy::Session;
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::auth::{basic_credentials, client_ip, project_facts, ProjectFacts};
use crate::error::GatewayError;
use crate::http::{header, read_body};
use crate::route::Query;

/// Largest JSON body the API reads.
pub(crate) const MAX_JSON: usize = 1024 * 1024;

pub struct ApiRequest {
    /// `None`: anonymous.
    pub identity: Option<Identity>,
    pub query: Query,
    pub client_ip: Option<IpAddr>,
}

impl ApiRequest {
    /// Authenticates the caller: HTTP Basic for users and robots; no
    /// credentials is anonymous; wrong ones are a 401.
    pub async fn new(app: &App, session: &Session) -> Result<ApiRequest, GatewayError> {
        let ip = client_ip(app, session);
        let identity = match header(session, "authorization") {
            None => None,
            Some(value) => {
                let (user, password) =
                    basic_credentials(value).ok_or(AuthError::InvalidCredentials)?;
                Some(app.login.login(&user, &password, ip).await?)
            }
        };
        Ok(ApiRequest {
            identity,
            query: Query::parse(session.req_header().uri.query()),
            client_ip: ip,
        })
    }

    pub fn subject(&self) -> Subject {
        self.identity
            .as_ref()
            .map_or(Subject::Anonymous, Identity::subject)
    }

    pub fn username(&self) -> &str {
        self.identity
            .as_ref()
            .map_or("anonymous", |i| i.username.as_str())
    }

    pub fn is_admin(&self) -> bool {
        self.subject().is_admin()
    }

    /// Which projects listings may show this caller: everything to system
    /// administrators (and robots on `*`), public projects plus their own
    /// to members and robots, public projects to anonymous callers.
    pub fn visibility(&self) -> Visibility {
        match &self.identity {
            None => Visibility::Public,
            Some(_) if self.is_admin() => Visibility::All,
            Some(id) => match (&id.robot, id.user_id) {
                (Some(perms), _) if perms.iter().any(|p| p.namespace == Namespace::All) => {
                    Visibility::All
                }
                (Some(perms), _) => Visibility::Projects(
                    perms
                        .iter()
                        .filter_map(|p| match p.namespace {
                            Namespace::Project(id) => Some(id),
                            Namespace::All | Namespace::Gone => None,
                        })
                        .collect(),
                ),
                (None, Some(user_id)) => Visibility::Member {
                    user_id,
                    groups: id.groups.clone(),
                },
                (None, None) => Visibility::Public,
            },
        }
    }

    /// Policy's decision, as the API's error.
    pub fn require(&self, action: Action, resource: Resource<'_>) -> Result<(), GatewayError> {
        decision_to_result(authorize(&self.subject(), action, resource))
    }

    /// Loads the project `which` names and checks `action` on it. A
    /// project the caller may not see is a 404, exactly like one that does
    /// not exist.
    pub async fn project(
        &self,
        app: &App,
        which: ProjectRef<'_>,
        action: Action,
    ) -> Result<(ProjectRow, ProjectFacts), GatewayError> {
        let meta = app.registry.meta();
        let row = match which {
            ProjectRef::Id(id) => meta.project_by_id(id).await?,
            ProjectRef::Name(name) => meta.project(name).await?,
        };
        let name_or_id = which.to_string();
        let Some(row) = row else {
            // Anonymous callers get the same answer for a missing project
            // as for a private one, so existence does not leak.
            if self.identity.is_none() {
                return Err(GatewayError::Unauthenticated { scope: None });
            }
            return Err(GatewayError::ApiNotFound(format!(
                "project `{name_or_id}` not found"
            )));
        };
        let facts = project_facts(app, self.identity.as_ref(), &row.name).await?;
        match authorize(&self.subject(), action, Resource::Project(facts.view())) {
            // Hidden projects read as missing, by the name asked for.
            Decision::Hidden(_) => Err(GatewayError::ApiNotFound(format!(
                "project `{name_or_id}` not found"
            ))),
            d => decision_to_result(d),
        }?;
        if !berth_policy::allowed_when_read_only(action) {
            app.runtime.refuse_writes()?;
        }
        Ok((row, facts))
    }

    /// Records an audit entry for this caller (off the request path).
    pub fn audit(
        &self,
        app: &App,
        operation: &str,
        resource_type: &str,
        resource: &str,
        project: Option<&str>,
        success: bool,
    ) {
        app.audit.record(AuditRecord {
            op_time: now_ms(),
            username: self.username().to_owned(),
            operation: operation.to_owned(),
            resource_type: resource_type.to_owned(),
            resource: resource.to_owned(),
            project: project.map(str::to_owned),
            success,
            client_ip: self.client_ip.map(|ip| ip.to_string()),
        });
    }
}

/// Which project a request names. Harbor's `{project_name_or_id}` path
/// parameter reads an all-digit value as an id unless `X-Is-Resource-Name:
/// true` is sent; every other place that takes a project (`{project_name}`
/// paths, a robot's `namespace`, a body's `project_name`) names it. The
/// two are kept apart in the type so that the project a handler checks is
/// always the one it then acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectRef<'a> {
    Id(i64),
    Name(&'a str),
}

impl<'a> ProjectRef<'a> {
    /// Harbor's `{project_name_or_id}`.
    pub fn name_or_id(session: &Session, value: &'a str) -> ProjectRef<'a> {
        let by_name = header(session, "x-is-resource-name").is_some_and(|v| v == "true");
        match value.parse::<i64>() {
            Ok(id) if !by_name => ProjectRef::Id(id),
            _ => ProjectRef::Name(value),
        }
    }
}

impl std::fmt::Display for ProjectRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProjectRef::Id(id) => write!(f, "{id}"),
            ProjectRef::Name(name) => f.write_str(name),
        }
    }
}

pub fn decision_to_result(d: Decision) -> Result<(), GatewayError> {
    match d {
        Decision::Allow => Ok(()),
        Decision::NeedsLogin => Err(GatewayError::Unauthenticated { scope: None }),
        Decision::Deny(why) => Err(GatewayError::Denied(why)),
        Decision::Hidden(why) => Err(GatewayError::Hidden(why)),
    }
}

/// Reads a JSON body into `T`; the error names the field at fault.
pub async fn read_json<T: DeserializeOwned>(session: &mut Session) -> Result<T, GatewayError> {
    let body = read_body(session, MAX_JSON).await?;
    if body.is_empty() {
        return Err(GatewayError::BadRequest(
            "the request needs a JSON body".into(),
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|e| GatewayError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Harbor's timestamps: RFC 3339 in UTC with milliseconds.
pub fn time(unix_secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_secs.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// A path id (`/users/{user_id}`), or a 400 naming the parameter.
pub fn path_id(value: &str, what: &str) -> Result<i64, GatewayError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            GatewayError::BadRequest(format!(
                "`{what}` must be a positive integer, not `{value}`"
            ))
        })
}

/// Checks a free-text field's length, naming the field.
pub fn bounded(field: &str, value: &str, max: usize) -> Result<(), GatewayError> {
    if value.chars().count() > max {
        return Err(GatewayError::BadRequest(format!(
            "`{field}` is longer than {max} characters"
        )));
    }
    Ok(())
}
