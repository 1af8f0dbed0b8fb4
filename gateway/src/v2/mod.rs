//! The OCI distribution API (`/v2/...`): dispatch by route and method,
//! authorization through the policy crate, then the endpoint's handler.

mod blobs;
mod listing;
mod manifests;
mod uploads;

use berth_policy::{authorize, Action, Decision, Resource, Subject};
use pingora::http::Method;
use pingora::proxy::Session;

use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::{self, Query, Route};

/// Handles one `/v2` request; the caller writes the reply or the error.
pub async fn handle(app: &App, session: &mut Session) -> Result<Reply, GatewayError> {
    let route = route::parse(session.req_header().uri.path())?;
    let query = Query::parse(session.req_header().uri.query());
    let method = session.req_header().method.clone();
    let action = required_action(&route, &method)?;
    if let Some(action) = action {
        check(app, &Subject::Anonymous, action, &route)?;
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
        (Route::UploadStart(repo), _) => uploads::start(app, session, &repo, &query).await,
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

/// Asks the policy crate; maps a refusal to the protocol's error.
pub(crate) fn check(
    app: &App,
    subject: &Subject,
    action: Action,
    route: &Route,
) -> Result<(), GatewayError> {
    let resource = match route.repo() {
        Some(repo) => Resource::Repository {
            project: repo.project(),
            name: repo.as_str(),
        },
        None => Resource::Registry,
    };
    match authorize(app.policy_mode, subject, action, resource) {
        Decision::Allow => Ok(()),
        Decision::NeedsLogin => Err(GatewayError::Denied(
            "authentication required; log in first (docker login)".into(),
        )),
        Decision::Deny(why) => Err(GatewayError::Denied(why)),
    }
}
