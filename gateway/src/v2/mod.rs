//! The OCI distribution API (`/v2/...`): dispatch by route and method,
//! authorization through the policy crate, then the endpoint's handler.

pub(crate) mod blobs;
mod listing;
mod manifests;
pub mod pace;
mod uploads;

// Reachable for the fuzz targets (tests/fuzz); not an API.
#[doc(hidden)]
pub use blobs::parse_range;
#[doc(hidden)]
pub use uploads::parse_content_range;

use berth_policy::Action;
use berth_storage::audit::{now_ms, AuditRecord};
use berth_storage::oci::{Reference, RepoName};
use berth_storage::StorageError;
use pingora::http::Method;
use pingora::proxy::Session;

use berth_storage::upstreams::{ProjectUpstream, ProxyMode};

use crate::app::App;
use crate::auth::{authenticate, check, client_ip, Caller};
use crate::error::GatewayError;
use crate::http::{continue_if_expected, Reply};
use crate::route::{self, Query, Route};
use crate::upstream::passthrough::{self, Forward};
use crate::upstream::{cache, mirror};

/// What a `/v2` request gets: a reply from here, or forwarding to the
/// upstream of a fronted project.
pub enum Answer {
    Reply(Reply),
    Forward(Box<Forward>),
}

/// Handles one `/v2` request; the caller writes the reply or the error,
/// or forwards it.
pub async fn handle(app: &App, session: &mut Session) -> Result<Answer, GatewayError> {
    let route = route::parse(session.req_header().uri.path())?;
    let query = Query::parse(session.req_header().uri.query());
    let method = session.req_header().method.clone();
    let action = required_action(&route, &method)?;
    let caller = authenticate(app, session).await?;
    let mirrored = mirror::resolve(app, &route, &method, &query).await?;
    match action {
        Some(action) => {
            if let Err(e) = check(app, &caller, action, route.repo()).await {
                audit(app, session, &caller, &route, &method, Err(&e));
                return Err(match (e, route.repo()) {
                    // A HEAD answer has no body to carry the message. Say
                    // "not here" instead (true, and no more than a missing
                    // project tells): podman and skopeo then go on to the
                    // upload POST, whose DENIED message they print.
                    (GatewayError::Hidden(_), Some(repo)) if method == Method::HEAD => {
                        StorageError::NameUnknown(repo.clone()).into()
                    }
                    (e, _) => with_mount_scope(e, &route, &query),
                });
            }
            if !berth_policy::allowed_when_read_only(action) {
                app.runtime.refuse_writes()?;
            }
        }
        // The version check tells clients where to log in.
        None if matches!(caller, Caller::Anonymous) => {
            return Err(GatewayError::Unauthenticated { scope: None })
        }
        None => {}
    }
    // Policy decided on the name the client used; the mirror's content
    // lives in its own project.
    let route = match mirrored {
        Some(repo) => route.with_repo(repo),
        None => route,
    };
    let upstream = match route.repo() {
        Some(repo) => app
            .registry
            .project_info(repo.project())
            .await?
            .and_then(|p| p.upstream),
        None => None,
    };
    let result = match upstream {
        Some(u) if u.mode == ProxyMode::Passthrough => {
            let forward = forward(app, session, &caller, &route, &method, &query, u).await;
            if let Err(e) = &forward {
                audit(app, session, &caller, &route, &method, Err(e));
            }
            return forward.map(|f| Answer::Forward(Box::new(f)));
        }
        Some(u) => cached(app, session, &caller, &route, &method, &query, u).await,
        None => dispatch(app, session, &caller, &route, &method, &query).await,
    };
    if let (Err(GatewayError::Storage(StorageError::QuotaExceeded(q))), Some(repo)) =
        (&result, route.repo())
    {
        crate::events::quota_exceeded(app, caller.name(), repo, &q.to_string()).await;
    }
    audit(
        app,
        session,
        &caller,
        &route,
        &method,
        result.as_ref().map(|_| ()),
    );
    result.map(Answer::Reply)
}

/// A request to a proxy-cache project: pulls through the cache, deletes
/// of cached content locally, writes refused.
async fn cached(
    app: &App,
    session: &mut Session,
    caller: &Caller,
    route: &Route,
    method: &Method,
    query: &Query,
    upstream: ProjectUpstream,
) -> Result<Reply, GatewayError> {
    let read = matches!(*method, Method::GET | Method::HEAD);
    let cached_content = matches!(route, Route::Manifest(..) | Route::Blob(..)) && read;
    let write = matches!(
        route,
        Route::UploadStart(_) | Route::Upload(..) | Route::Manifest(..)
    ) && *method != Method::DELETE;
    if !cached_content && !write {
        // Listings, and deletes of cached content, are local.
        return dispatch(app, session, caller, route, method, query).await;
    }
    let ep = app
        .upstreams
        .endpoint(&app.registry, upstream.registry_id)
        .await?;
    match route {
        Route::Manifest(repo, r) if read => {
            cache::manifest(app, session, &ep, repo, r, *method == Method::GET).await
        }
        Route::Blob(repo, d) => {
            cache::blob(app, session, &ep, repo, d, *method == Method::HEAD).await
        }
        _ => Err(GatewayError::Denied(format!(
            "project `{}` is a pull-through cache of the registry `{}` and is read-only; push to a regular project",
            route.repo().map_or("", |r| r.project()),
            ep.name
        ))),
    }
}

/// Prepares forwarding to a fronted project's upstream (after policy
/// allowed the request).
async fn forward(
    app: &App,
    session: &mut Session,
    caller: &Caller,
    route: &Route,
    method: &Method,
    query: &Query,
    upstream: ProjectUpstream,
) -> Result<Forward, GatewayError> {
    let Some(repo) = route.repo() else {
        return Err(GatewayError::NotFound(
            session.req_header().uri.path().to_owned(),
        ));
    };
    let ep = app
        .upstreams
        .endpoint(&app.registry, upstream.registry_id)
        .await?;
    let actions = match *method {
        Method::GET | Method::HEAD => "pull",
        Method::DELETE => "pull,push,delete",
        _ => "pull,push",
    };
    let path = session.req_header().uri.path().to_owned();
    let mut plan = passthrough::plan(app, ep, repo, &path, query, actions).await?;
    plan.audit = audit_record(app, session, caller, route, method);
    continue_if_expected(session).await?;
    Ok(plan)
}

/// Records pushes, pulls and deletes of manifests (and blob deletes) in
/// the audit log, successful or refused; the token dance's expected 401s
/// are not events. A manifest GET also counts as a pull.
fn audit(
    app: &App,
    session: &Session,
    caller: &Caller,
    route: &Route,
    method: &Method,
    outcome: Result<(), &GatewayError>,
) {
    if matches!(
        outcome,
        Err(GatewayError::Unauthenticated { .. } | GatewayError::InsufficientScope { .. })
    ) {
        return;
    }
    if let Some(mut record) = audit_record(app, session, caller, route, method) {
        record.success = outcome.is_ok();
        app.audit.record(record);
    }
}

/// The audit record of a request, if it is an event worth recording
/// (marked successful; the caller corrects that).
pub fn audit_record(
    app: &App,
    session: &Session,
    caller: &Caller,
    route: &Route,
    method: &Method,
) -> Option<AuditRecord> {
    let (operation, resource_type, resource, repo) = match (route, method) {
        (Route::Manifest(repo, r), &Method::GET) => ("pull", "artifact", reference(repo, r), repo),
        (Route::Manifest(repo, r), &Method::PUT) => ("push", "artifact", reference(repo, r), repo),
        (Route::Manifest(repo, r @ Reference::Tag(_)), &Method::DELETE) => {
            ("delete", "tag", reference(repo, r), repo)
        }
        (Route::Manifest(repo, r), &Method::DELETE) => {
            ("delete", "artifact", reference(repo, r), repo)
        }
        (Route::Blob(repo, d), &Method::DELETE) => ("delete", "blob", format!("{repo}@{d}"), repo),
        _ => return None,
    };
    Some(AuditRecord {
        op_time: now_ms(),
        username: caller.name().to_owned(),
        operation: operation.to_owned(),
        resource_type: resource_type.to_owned(),
        resource,
        project: Some(repo.project().to_owned()),
        success: true,
        client_ip: client_ip(app, session).map(|ip| ip.to_string()),
    })
}

fn reference(repo: &RepoName, r: &Reference) -> String {
    match r {
        Reference::Tag(t) => format!("{repo}:{t}"),
        Reference::Digest(d) => format!("{repo}@{d}"),
    }
}

async fn dispatch(
    app: &App,
    session: &mut Session,
    caller: &Caller,
    route: &Route,
    method: &Method,
    query: &Query,
) -> Result<Reply, GatewayError> {
    match (route, method) {
        // GET /v2/: the API version check.
        (Route::Base, &Method::GET | &Method::HEAD) => Ok(Reply::json(200, &serde_json::json!({}))),
        (Route::Catalog, _) => listing::catalog(app, query).await,
        (Route::Tags(repo), _) => listing::tags(app, repo, query).await,
        (Route::Referrers(repo, digest), _) => listing::referrers(app, repo, digest, query).await,
        (Route::Blob(repo, digest), &Method::DELETE) => blobs::delete(app, repo, digest).await,
        (Route::Blob(repo, digest), _) => blobs::get(app, session, repo, digest).await,
        (Route::Manifest(repo, r), &Method::PUT) => {
            manifests::put(app, session, caller, repo, r, query).await
        }
        (Route::Manifest(repo, r), &Method::DELETE) => {
            manifests::delete(app, caller, repo, r).await
        }
        (Route::Manifest(repo, r), m) => {
            manifests::get(app, caller, repo, r, *m == Method::GET).await
        }
        (Route::UploadStart(repo), _) => uploads::start(app, session, caller, repo, query).await,
        (Route::Upload(repo, id), &Method::PATCH) => {
            uploads::patch(app, session, repo, id.local()?).await
        }
        (Route::Upload(repo, id), &Method::PUT) => {
            uploads::put(app, session, repo, id.local()?, query).await
        }
        (Route::Upload(repo, id), &Method::DELETE) => uploads::cancel(app, repo, id.local()?).await,
        (Route::Upload(repo, id), _) => uploads::status(app, repo, id.local()?).await,
        (Route::Base, m) => Err(GatewayError::MethodNotAllowed {
            method: m.to_string(),
        }),
    }
}

/// The action a request needs, or an error for methods the endpoint does
/// not support. `None`: no authorization needed (the version check).
fn required_action(route: &Route, method: &Method) -> Result<Option<Action>, GatewayError> {
    let read = matches!(*method, Method::GET | Method::HEAD);
    let action = match route {
        Route::Base => None,
        Route::Catalog if read => Some(Action::Catalog),
        Route::Tags(_) | Route::Referrers(..) if read => Some(Action::Pull),
        Route::Blob(..) | Route::Manifest(..) if read => Some(Action::Pull),
        Route::Blob(..) | Route::Manifest(..) if *method == Method::DELETE => Some(Action::Delete),
        Route::Manifest(..) if *method == Method::PUT => Some(Action::Push),
        Route::UploadStart(_) if *method == Method::POST => Some(Action::Push),
        Route::Upload(..)
            if matches!(
                *method,
                Method::GET | Method::PATCH | Method::PUT | Method::DELETE
            ) =>
        {
            Some(Action::Push)
        }
        _ => {
            return Err(GatewayError::MethodNotAllowed {
                method: method.to_string(),
            })
        }
    };
    Ok(action)
}

/// A cross-repository mount also needs pull on the source: name it in the
/// challenge so the client fetches one token that covers both.
fn with_mount_scope(e: GatewayError, route: &Route, query: &Query) -> GatewayError {
    let from = match (route, query.get("mount"), query.get("from")) {
        (Route::UploadStart(_), Some(_), Some(from)) => from.parse::<RepoName>().ok(),
        _ => None,
    };
    let Some(from) = from else { return e };
    let extend = |scope: Option<String>| {
        Some(match scope {
            Some(s) => format!("{s} repository:{from}:pull"),
            None => format!("repository:{from}:pull"),
        })
    };
    match e {
        GatewayError::Unauthenticated { scope } => GatewayError::Unauthenticated {
            scope: extend(scope),
        },
        GatewayError::InsufficientScope { scope } => GatewayError::InsufficientScope {
            scope: extend(scope),
        },
        other => other,
    }
}
