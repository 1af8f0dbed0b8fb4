//! The management API, `/api/v2.0/...`, in Harbor's v2.0 shapes: the same
//! paths, JSON field names, role ids, pagination and error bodies, so
//! Harbor's users and tools feel at home. Handlers are thin: parse, ask
//! policy, call storage, answer.
//!
//! - `request`: the caller, the query, JSON bodies, policy checks.
//! - `page`: pagination and the `q` query language.
//! - `projects`, `members`, `users`, `robots`: accounts and projects.
//! - `repositories`: repositories, artifacts and tags of a project.
//! - `artifacts`: a project's artifacts across its repositories.
//! - `labels`: global and project labels, and the artifacts carrying them.
//! - `quotas`, `immutable`, `retention`: storage quotas, tag immutability
//!   rules and tag retention policies.
//! - `logs`: the audit log.
//! - `metadata`: a project's settings as Harbor's map of strings.
//! - `permissions`: what the caller may do, in Harbor's words.
//! - `mail`: the test mail and password resets by mail.
//! - `ldap`, `usergroups`: the directory's users and groups, searched and
//!   imported, and LDAP groups recorded to be made members.
//! - `registries`: upstream registry endpoints.
//! - `replication`: replication policies, executions and tasks.
//! - `webhooks`: a project's webhook policies and their deliveries.
//! - `system`: systeminfo, health, ping, search.
//! - `configurations`: the settings in force; those that change at run
//!   time (read-only mode and others) change here.
//! - `gc`: garbage collection runs, logs and schedule.
//! - `purge`: audit log purges, their logs and schedule.
//! - `openapi`: the OpenAPI document, generated from the handlers.

pub(crate) mod artifacts;
pub(crate) mod configurations;
pub(crate) mod gc;
pub(crate) mod immutable;
pub(crate) mod labels;
pub(crate) mod ldap;
pub(crate) mod logs;
pub(crate) mod mail;
pub(crate) mod members;
pub(crate) mod metadata;
mod openapi;
#[doc(hidden)]
pub mod page;
pub(crate) mod permissions;
pub(crate) mod projects;
pub(crate) mod purge;
pub(crate) mod quotas;
pub(crate) mod registries;
pub(crate) mod replication;
pub(crate) mod repositories;
pub(crate) mod request;
pub(crate) mod retention;
pub(crate) mod robots;
pub(crate) mod system;
pub(crate) mod usergroups;
pub(crate) mod users;
pub(crate) mod webhooks;

use pingora::http::Method;
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use request::ApiRequest;

/// The prefix every route below sits under.
pub const PREFIX: &str = "/api/v2.0";

/// Harbor's error body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Errors {
    pub errors: Vec<ErrorItem>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorItem {
    pub code: String,
    pub message: String,
}

/// Splits the path after the prefix into decoded segments. Harbor's
/// clients encode a repository name's slashes once (`%2F`) or twice
/// (`%252F`); both decode to `/` inside one segment.
fn segments(path: &str) -> Vec<String> {
    path.strip_prefix(PREFIX)
        .unwrap_or("")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let once = percent_encoding::percent_decode_str(s).decode_utf8_lossy();
            if once.contains("%2F") || once.contains("%2f") {
                percent_encoding::percent_decode_str(&once)
                    .decode_utf8_lossy()
                    .into_owned()
            } else {
                once.into_owned()
            }
        })
        .collect()
}

/// Handles one `/api/v2.0` request.
pub async fn handle(app: &App, session: &mut Session) -> Result<Reply, GatewayError> {
    let path = session.req_header().uri.path().to_owned();
    let method = session.req_header().method.clone();
    let segs = segments(&path);
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    // Public endpoints answer without looking at credentials.
    match (&method, segs.as_slice()) {
        (&Method::GET, ["ping"]) => return Ok(system::ping()),
        (&Method::GET, ["openapi.json"]) => return Ok(openapi::document()),
        _ => {}
    }
    let req = ApiRequest::new(app, session).await?;
    let m = &method;
    match segs.as_slice() {
        ["health"] if m == Method::GET => system::health(app).await,
        ["systeminfo", "volumes"] if m == Method::GET => system::volumes(app, &req).await,
        ["systeminfo"] if m == Method::GET => system::systeminfo(app, &req).await,
        ["search"] if m == Method::GET => system::search(app, &req).await,
        ["statistics"] if m == Method::GET => system::statistics(app, &req).await,
        ["audit-logs"] if m == Method::GET => logs::list(app, &req, None).await,
        ["projects"] if m == Method::GET => projects::list(app, &req).await,
        ["projects"] if m == Method::HEAD => projects::head(app, &req).await,
        ["projects"] if m == Method::POST => projects::create(app, session, &req).await,
        ["projects", p] if m == Method::GET => projects::get(app, session, &req, p).await,
        ["projects", p] if m == Method::PUT => projects::update(app, session, &req, p).await,
        ["projects", p] if m == Method::DELETE => projects::delete(app, session, &req, p).await,
        ["projects", p, "metadatas", rest @ ..] => {
            metadata::route(app, session, &req, p, rest).await
        }
        ["projects", p, "_deletable"] if m == Method::GET => {
            projects::deletable(app, session, &req, p).await
        }
        ["projects", p, "summary"] if m == Method::GET => {
            projects::summary(app, session, &req, p).await
        }
        ["projects", p, "logs"] if m == Method::GET => {
            logs::list(app, &req, Some((session, *p))).await
        }
        ["projects", p, "members"] if m == Method::GET => {
            members::list(app, session, &req, p).await
        }
        ["projects", p, "members"] if m == Method::POST => {
            members::create(app, session, &req, p).await
        }
        ["projects", p, "members", mid] if m == Method::GET => {
            members::get(app, session, &req, p, mid).await
        }
        ["projects", p, "members", mid] if m == Method::PUT => {
            members::update(app, session, &req, p, mid).await
        }
        ["projects", p, "members", mid] if m == Method::DELETE => {
            members::delete(app, session, &req, p, mid).await
        }
        ["projects", p, "artifacts"] if m == Method::GET => {
            artifacts::list_in_project(app, &req, request::ProjectRef::name_or_id(session, p)).await
        }
        ["projects", p, "repositories", rest @ ..] => {
            repositories::route(app, session, &req, p, rest).await
        }
        ["projects", p, "immutabletagrules", rest @ ..] => {
            immutable::route(app, session, &req, p, rest).await
        }
        ["projects", p, "webhook", rest @ ..] => webhooks::route(app, session, &req, p, rest).await,
        ["quotas", rest @ ..] => quotas::route(app, session, &req, rest).await,
        ["labels", rest @ ..] => labels::route(app, session, &req, rest).await,
        ["retentions", rest @ ..] => retention::route(app, session, &req, rest).await,
        ["system", "gc", rest @ ..] => gc::route(app, session, &req, rest).await,
        ["system", "purgeaudit", rest @ ..] => purge::route(app, session, &req, rest).await,
        ["configurations", rest @ ..] => configurations::route(app, session, &req, rest).await,
        ["email", "ping"] if m == Method::POST => mail::ping(app, session, &req).await,
        ["users", "current", "permissions"] if m == Method::GET => {
            permissions::current(app, session, &req).await
        }
        ["users", "password-reset"] if m == Method::POST => {
            mail::request_reset(app, session, &req).await
        }
        ["users", "password-reset"] if m == Method::PUT => {
            mail::complete_reset(app, session, &req).await
        }
        ["users", rest @ ..] => users::route(app, session, &req, rest).await,
        ["ldap", rest @ ..] => ldap::route(app, session, &req, rest).await,
        ["usergroups", rest @ ..] => usergroups::route(app, session, &req, rest).await,
        ["robots", rest @ ..] => robots::route(app, session, &req, rest).await,
        ["registries", rest @ ..] => registries::route(app, session, &req, rest).await,
        ["replication", rest @ ..] => replication::route(app, session, &req, rest).await,
        _ if known_path(&segs) => Err(GatewayError::MethodNotAllowed {
            method: method.to_string(),
        }),
        _ => Err(GatewayError::NotFound(path)),
    }
}

/// Paths that exist with other methods (for a 405 rather than a 404).
fn known_path(segs: &[&str]) -> bool {
    matches!(
        segs,
        ["health" | "systeminfo" | "search" | "audit-logs" | "projects" | "ping"]
            | ["projects", _]
            | ["projects", _, "summary" | "logs" | "members" | "artifacts"]
            | ["projects", _, "members", _]
            | ["email", "ping"]
            | ["users", "password-reset"]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_repository_names() {
        assert_eq!(
            segments("/api/v2.0/projects/team/repositories/a%2Fb/artifacts"),
            ["projects", "team", "repositories", "a/b", "artifacts"]
        );
        assert_eq!(
            segments("/api/v2.0/projects/team/repositories/a%252Fb"),
            ["projects", "team", "repositories", "a/b"]
        );
        assert_eq!(segments("/api/v2.0/"), Vec::<String>::new());
    }
}
