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
const MAX_JSON: usize = 1024 * 1024;

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
        let ip = client_ip(session);
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
                (Some(perms), _) => Visibility::Named(
                    perms
                        .iter()
                        .map(|p| p.namespace.as_str().to_owned())
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

    /// Loads a project by name or id (Harbor's `project_name_or_id`; with
    /// `X-Is-Resource-Name: true` the value is always a name) and checks
    /// `action` on it. A project the caller may not see is a 404, exactly
    /// like one that does not exist.
    pub async fn project(
        &self,
        app: &App,
        session: &Session,
        name_or_id: &str,
        action: Action,
    ) -> Result<(ProjectRow, ProjectFacts), GatewayError> {
        let by_name = header(session, "x-is-resource-name").is_some_and(|v| v == "true");
        let meta = app.registry.meta();
        let row = match name_or_id.parse::<i64>() {
            Ok(id) if !by_name => meta.project_by_id(id).await?,
            _ => meta.project(name_or_id).await?,
        };
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
