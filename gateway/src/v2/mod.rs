//! The OCI distribution API (`/v2/...`): dispatch by route and method,
//! authorization through the policy crate, then the endpoint's handler.

mod blobs;
mod listing;
mod manifests;
mod uploads;

use berth_policy::Action;
use berth_storage::oci::RepoName;
use pingora::http::Method;
use pingora::proxy::Session;

use crate::app::App;
use crate::auth::{authenticate, check, Caller};
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::{self, Query, Route};

/// Handles one `/v2` request; the caller writes the reply or the error.
pub async fn handle(app: &App, session: &mut Session) -> Result<Reply, GatewayError> {
    let route = route::parse(session.req_header().uri.path())?;
    let query = Query::parse(session.req_header().uri.query());
    let method = session.req_header().method.clone();
    let action = required_action(&route, &method)?;
    let caller = authenticate(app, session).await?;
    match action {
        Some(action) => check(app, &caller, action, route.repo())
            .await
            .map_err(|e| with_mount_scope(e, &route, &query))?,
        // The version check tells clients where to log in.
        None if matches!(caller, Caller::Anonymous) => {
            return Err(GatewayError::Unauthenticated { scope: None })
        }
        None => {}
    }
    match (route, method) {
        // GET /v2/: the API version check.
        (Route::Base, Method::GET | Method::HEAD) => Ok(Reply::json(200, &serde_json::json!({}))),
        (Route::Catalog, _) => listing::catalog(app, &query).await,
        (Route::Tags(repo), _) => listing::tags(app, &repo, &query).await,
        (Route::Referrers(repo, digest), _) => {
            listing::referrers(app, &repo, &digest, &query).await
        }
        (Route::Blob(repo, digest), Method::DELETE) => blobs::delete(app, &repo, &digest).await,
        (Route::Blob(repo, digest), _) => blobs::get(app, session, &repo, &digest).await,
        (Route::Manifest(repo, r), Method::PUT) => {
            manifests::put(app, session, &repo, &r, &query).await
        }
        (Route::Manifest(repo, r), Method::DELETE) => manifests::delete(app, &repo, &r).await,
        (Route::Manifest(repo, r), _) => manifests::get(app, &repo, &r).await,
        (Route::UploadStart(repo), _) => uploads::start(app, session, &caller, &repo, &query).await,
        (Route::Upload(repo, id), Method::PATCH) => uploads::patch(app, session, &repo, id).await,
        (Route::Upload(repo, id), Method::PUT) => {
            uploads::put(app, session, &repo, id, &query).await
        }
        (Route::Upload(repo, id), Method::DELETE) => uploads::cancel(app, &repo, id).await,
        (Route::Upload(repo, id), _) => uploads::status(app, &repo, id).await,
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
