//! The audit log: `/api/v2.0/audit-logs` (system administrators) and
//! `/api/v2.0/projects/{project_name_or_id}/logs` (Harbor's `auditlog` and
//! `project` log APIs), newest first.
//!
//! Filters use Harbor's `q`: `operation=push`, `resource=~app`,
//! `resource_type=artifact`, `username=alice` and
//! `op_time=[2024-01-01 00:00:00~2024-12-31 00:00:00]` (Harbor's format,
//! UTC; RFC 3339 times and plain dates are accepted too).

use std::time::{Duration, UNIX_EPOCH};

use berth_policy::{Action, Resource};
use berth_storage::audit::{AuditEntry, AuditFilter};
use berth_storage::projects::ProjectRow;
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::page::{Page, Term, Q};
use super::request::{ApiRequest, ProjectRef};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;

#[derive(OpenApi)]
#[openapi(paths(list_all, list_project), components(schemas(AuditLog)))]
pub struct Doc;

/// Harbor's `AuditLog`, with berth's `operation_result` and `client_ip`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditLog {
    pub id: i64,
    pub username: String,
    pub resource: String,
    pub resource_type: String,
    pub operation: String,
    /// RFC 3339, UTC, with milliseconds.
    pub op_time: String,
    /// Whether the operation succeeded (berth extension).
    pub operation_result: bool,
    /// The caller's address, when known (berth extension).
    pub client_ip: Option<String>,
}

fn log_json(e: &AuditEntry) -> AuditLog {
    let r = &e.record;
    let at = UNIX_EPOCH + Duration::from_millis(r.op_time.max(0) as u64);
    AuditLog {
        id: e.id,
        username: r.username.clone(),
        resource: r.resource.clone(),
        resource_type: r.resource_type.clone(),
        operation: r.operation.clone(),
        op_time: humantime::format_rfc3339_millis(at).to_string(),
        operation_result: r.success,
        client_ip: r.client_ip.clone(),
    }
}

/// `GET /api/v2.0/audit-logs` (`project` is `None`) or
/// `GET /api/v2.0/projects/{p}/logs`.
pub async fn list(
    app: &App,
    req: &ApiRequest,
    project: Option<(&Session, &str)>,
) -> Result<Reply, GatewayError> {
    match project {
        None => list_all(app, req).await,
        Some((session, p)) => list_project(app, session, req, p).await,
    }
}

#[utoipa::path(get, path = "/api/v2.0/audit-logs", tag = "auditlog",
    params(("q" = Option<String>, Query, description = "Harbor query: operation=, resource= or resource=~, resource_type=, username=, op_time=[from~to]"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, description = "Audit records, newest first", body = [AuditLog],
        headers(("X-Total-Count" = i64, description = "Total matching"), ("Link" = String, description = "prev/next pages"))),
        (status = 400, body = super::Errors), (status = 401, body = super::Errors),
        (status = 403, description = "Only system administrators", body = super::Errors)))]
pub async fn list_all(app: &App, req: &ApiRequest) -> Result<Reply, GatewayError> {
    // Refused before the query is read: a caller without the right
    // learns nothing, not even whether its query parses.
    req.require(Action::ReadAuditLogs, Resource::System)?;
    let page = Page::parse(&req.query)?;
    let filter = filter(&Q::parse(&req.query)?)?;
    let (entries, total) = all_records(app, req, filter, page).await?;
    let items: Vec<_> = entries.iter().map(log_json).collect();
    Ok(page.reply("/api/v2.0/audit-logs", &req.query, &items, total))
}

/// Every project's records (the API's list and the portal's), newest
/// first, with the total matching; system administrators only.
pub(crate) async fn all_records(
    app: &App,
    req: &ApiRequest,
    filter: AuditFilter,
    page: Page,
) -> Result<(Vec<AuditEntry>, i64), GatewayError> {
    req.require(Action::ReadAuditLogs, Resource::System)?;
    Ok(app
        .registry
        .meta()
        .list_audit(&filter, page.offset(), page.limit())
        .await?)
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/logs", tag = "project",
    params(("project_name_or_id" = String, Path, description = "Project name or id"),
        ("q" = Option<String>, Query, description = "Harbor query: operation=, resource= or resource=~, resource_type=, username=, op_time=[from~to]"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("page_size" = Option<i64>, Query, description = "Items per page, at most 100")),
    responses((status = 200, description = "The project's audit records, newest first", body = [AuditLog],
        headers(("X-Total-Count" = i64, description = "Total matching"), ("Link" = String, description = "prev/next pages"))),
        (status = 400, body = super::Errors), (status = 403, body = super::Errors),
        (status = 404, body = super::Errors),
        (status = 401, description = "Wrong credentials, or none where the project is private", body = super::Errors)))]
pub async fn list_project(
    app: &App,
    session: &Session,
    req: &ApiRequest,
    project: &str,
) -> Result<Reply, GatewayError> {
    let page = Page::parse(&req.query)?;
    let filter = filter(&Q::parse(&req.query)?)?;
    let project_ref = ProjectRef::name_or_id(session, project);
    let (_, entries, total) = project_records(app, req, project_ref, filter, page).await?;
    let items: Vec<_> = entries.iter().map(log_json).collect();
    let path = format!("/api/v2.0/projects/{project}/logs");
    Ok(page.reply(&path, &req.query, &items, total))
}

/// A project's records (the API's list and the portal's logs tab), newest
/// first, with the project and the total matching.
pub(crate) async fn project_records(
    app: &App,
    req: &ApiRequest,
    project: ProjectRef<'_>,
    mut filter: AuditFilter,
    page: Page,
) -> Result<(ProjectRow, Vec<AuditEntry>, i64), GatewayError> {
    let (row, _) = req.project(app, project, Action::ReadProjectLogs).await?;
    let since_ms = app
        .registry
        .meta()
        .project_created_ms(row.id)
        .await?
        .unwrap_or(row.created_at.saturating_mul(1000));
    // Records are kept by project name; a project deleted and created
    // again under the same name (by someone else, perhaps) must not
    // inherit its predecessor's log, client addresses included.
    filter.from_ms = Some(filter.from_ms.map_or(since_ms, |f| f.max(since_ms)));
    filter.project = Some(row.name.clone());
    let (entries, total) = app
        .registry
        .meta()
        .list_audit(&filter, page.offset(), page.limit())
        .await?;
    Ok((row, entries, total))
}

/// Harbor's `q` as an audit filter (without the project).
fn filter(q: &Q) -> Result<AuditFilter, GatewayError> {
    q.reject_unknown(&[
        "operation",
        "resource",
        "resource_type",
        "username",
        "op_time",
    ])?;
    let exact = |key: &str| -> Result<Option<String>, GatewayError> {
        match q.get(key) {
            None => Ok(None),
            Some(Term::Exact(v)) => Ok(Some(v.clone())),
            Some(_) => Err(GatewayError::BadRequest(format!(
                "`q` key `{key}` takes an exact value (`{key}=value`)"
            ))),
        }
    };
    // The log stores no separate exact resource: an exact value is
    // matched as a substring too (resources are names, so this rarely
    // widens a result).
    let resource_contains = match q.get("resource") {
        None => None,
        Some(Term::Exact(v) | Term::Fuzzy(v)) => Some(v.clone()),
        Some(Term::Range(..) | Term::List(..)) => {
            return Err(GatewayError::BadRequest(
                "`q` key `resource` takes `resource=value` or `resource=~value`".into(),
            ))
        }
    };
    let (from_ms, to_ms) = match q.get("op_time") {
        None => (None, None),
        Some(Term::Range(from, to)) => (
            from.as_deref().map(time_ms).transpose()?,
            to.as_deref().map(time_ms).transpose()?,
        ),
        Some(_) => return Err(GatewayError::BadRequest(
            "`q` key `op_time` takes a range: op_time=[2024-01-01 00:00:00~2024-12-31 23:59:59]"
                .into(),
        )),
    };
    Ok(AuditFilter {
        project: None,
        username: exact("username")?,
        operation: exact("operation")?,
        resource_type: exact("resource_type")?,
        resource_contains,
        from_ms,
        to_ms,
    })
}

/// A time bound as unix milliseconds: Harbor's `2024-01-01 00:00:00`
/// (UTC), RFC 3339 (`2024-01-01T00:00:00Z`, `...+02:00`) or a date.
pub(crate) fn time_ms(value: &str) -> Result<i64, GatewayError> {
    let v = value.trim();
    let bad = || {
        GatewayError::BadRequest(format!(
            "`op_time` bound `{v}` is not a time; use `2024-01-01 00:00:00` (UTC) or RFC 3339"
        ))
    };
    // A numeric offset: parse the local time, then shift it to UTC.
    let split = v
        .len()
        .checked_sub(6)
        .filter(|&i| v.is_char_boundary(i))
        .map(|i| v.split_at(i));
    let (local, offset_secs) = match split {
        Some((head, tail))
            if head.len() > 10
                && tail.is_ascii()
                && (tail.starts_with('+') || tail.starts_with('-'))
                && tail.as_bytes().get(3) == Some(&b':') =>
        {
            let hours: i64 = tail[1..3].parse().map_err(|_| bad())?;
            let minutes: i64 = tail[4..6].parse().map_err(|_| bad())?;
            let sign = if tail.starts_with('-') { -1 } else { 1 };
            (head.to_owned(), sign * (hours * 3600 + minutes * 60))
        }
        _ if v.len() == 10 => (format!("{v} 00:00:00"), 0),
        _ => (v.to_owned(), 0),
    };
    let t = humantime::parse_rfc3339_weak(&local).map_err(|_| bad())?;
    let ms = t.duration_since(UNIX_EPOCH).map_err(|_| bad())?.as_millis() as i64;
    Ok(ms - offset_secs * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::Query;

    #[test]
    fn time_bounds() {
        let day = 1_704_067_200_000; // 2024-01-01T00:00:00Z
        assert_eq!(time_ms("2024-01-01 00:00:00").unwrap(), day);
        assert_eq!(time_ms("2024-01-01T00:00:00Z").unwrap(), day);
        assert_eq!(time_ms("2024-01-01").unwrap(), day);
        assert_eq!(time_ms("2024-01-01T02:00:00+02:00").unwrap(), day);
        assert_eq!(time_ms("2023-12-31T19:00:00-05:00").unwrap(), day);
        assert_eq!(time_ms("2024-01-01T00:00:00.500Z").unwrap(), day + 500);
        assert!(time_ms("yesterday").is_err());
        assert!(time_ms("2024-13-01").is_err());
        assert!(time_ms("2024-01-01T00:00:00é+é").is_err());
    }

    #[test]
    fn harbor_queries() {
        let q = |s: &str| Q::parse(&Query::parse(Some(s))).unwrap();
        let f = filter(&q(
            "q=operation%3Ddelete%2Cresource%3D~app%2Cop_time%3D%5B2024-01-01%2000%3A00%3A00~%5D",
        ))
        .unwrap();
        assert_eq!(f.operation.as_deref(), Some("delete"));
        assert_eq!(f.resource_contains.as_deref(), Some("app"));
        assert_eq!((f.from_ms, f.to_ms), (Some(1_704_067_200_000), None));
        assert!(filter(&q("q=project%3Dx")).is_err());
        assert!(filter(&q("q=username%3D~al")).is_err());
        assert!(filter(&q("q=op_time%3Dtoday")).is_err());
    }
}
