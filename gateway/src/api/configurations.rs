//! `/api/v2.0/configurations` (Harbor's `configure` API): the settings in
//! force, each with whether it can change here. Read-only mode, who may
//! create projects, token and robot lifetimes, new projects' storage
//! limit, the authentication mode with the LDAP settings, and the mail
//! server change at run time (`crate::runtime`), unless the config file
//! sets them. Passwords may be set here and are never shown.

use std::collections::BTreeMap;

use berth_policy::{Action, Resource};
use pingora::http::Method;
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

use super::request::{read_json, ApiRequest};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::runtime::{live, Setting};

#[derive(OpenApi)]
#[openapi(paths(get, put), components(schemas(ConfigItem)))]
pub struct Doc;

/// Harbor's `BoolConfigItem`, `StringConfigItem` and `IntegerConfigItem`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConfigItem {
    pub value: Value,
    pub editable: bool,
}

/// Settings berth has no switch for, shown as Harbor clients expect.
const FIXED: &[(&str, bool)] = &[
    ("self_registration", false),
    ("notification_enable", true),
    ("quota_per_project_enable", true),
];

fn current(app: &App) -> BTreeMap<String, ConfigItem> {
    let mut all: BTreeMap<String, ConfigItem> = FIXED
        .iter()
        .map(|(k, on)| {
            (
                (*k).to_owned(),
                ConfigItem {
                    value: Value::Bool(*on),
                    editable: false,
                },
            )
        })
        .collect();
    for (k, value) in live::shown(&app.runtime.live()) {
        let editable = live::lookup(k).is_some_and(|k| !app.runtime.file_owns_group(k.group));
        all.insert(k.to_owned(), ConfigItem { value, editable });
    }
    for s in app.runtime.current() {
        all.insert(
            s.key().to_owned(),
            ConfigItem {
                value: s.value(),
                editable: !app.runtime.file_owns(s.key()),
            },
        );
    }
    all
}

pub async fn route(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
    rest: &[&str],
) -> Result<Reply, GatewayError> {
    let m = session.req_header().method.clone();
    match rest {
        [] if m == Method::GET => get(app, req).await,
        [] if m == Method::PUT => put(app, session, req).await,
        [] => Err(GatewayError::MethodNotAllowed {
            method: m.to_string(),
        }),
        _ => Err(GatewayError::NotFound(format!(
            "/api/v2.0/configurations/{}",
            rest.join("/")
        ))),
    }
}

#[utoipa::path(get, path = "/api/v2.0/configurations", tag = "configure",
    responses((status = 200, body = BTreeMap<String, ConfigItem>,
        description = "Each setting in force and whether PUT may change it"),
        (status = 403, body = super::Errors)))]
pub async fn get(app: &App, req: &ApiRequest) -> Result<Reply, GatewayError> {
    req.require(Action::ReadConfiguration, Resource::System)?;
    Ok(Reply::json(
        200,
        &serde_json::to_value(current(app)).unwrap_or_default(),
    ))
}

#[utoipa::path(put, path = "/api/v2.0/configurations", tag = "configure",
    request_body(content = BTreeMap<String, Object>,
        description = "Settings to change, by name, as GET names them"),
    responses((status = 200, description = "Changed on every instance"),
        (status = 400, body = super::Errors,
            description = "An unknown setting, a bad value, or one the config file owns"),
        (status = 403, body = super::Errors)))]
pub async fn put(
    app: &App,
    session: &mut Session,
    req: &ApiRequest,
) -> Result<Reply, GatewayError> {
    req.require(Action::ManageConfiguration, Resource::System)?;
    let body: BTreeMap<String, Value> = read_json(session).await?;
    change(app, req, &body).await?;
    Ok(Reply::new(200))
}

/// Changes settings (the API's PUT and the portal's form): all of `body`
/// or, on any error, none of it.
pub(crate) async fn change(
    app: &App,
    req: &ApiRequest,
    body: &BTreeMap<String, Value>,
) -> Result<(), GatewayError> {
    req.require(Action::ManageConfiguration, Resource::System)?;
    let (settings, live_changes) = changes(app, body)?;
    if settings.is_empty() && live_changes.is_empty() {
        return Ok(());
    }
    let mut stored: Vec<(String, String)> = settings
        .iter()
        .map(|s| (s.key().to_owned(), s.value().to_string()))
        .collect();
    stored.extend(live_changes.iter().map(|(k, v)| (k.clone(), v.to_string())));
    // The directory and mail settings are checked whole, as they would be
    // in force: what is stored with these over it, in the transaction
    // that stores them.
    let done = app
        .registry
        .meta()
        .set_configuration(&stored, |all| {
            app.runtime.live_from(&live::values(all)).map(drop)
        })
        .await;
    // Secrets are named, never shown.
    let what: Vec<String> = settings
        .iter()
        .map(|s| format!("{}={}", s.key(), s.value()))
        .chain(live_changes.iter().map(|(k, v)| match live::lookup(k) {
            Some(key) if key.is_secret() => format!("{k}=(secret)"),
            _ => format!("{k}={v}"),
        }))
        .collect();
    req.audit(
        app,
        "update",
        "configuration",
        &what.join(", "),
        None,
        matches!(done, Ok(Ok(_))),
    );
    done?.map_err(GatewayError::BadRequest)?;
    // Read back rather than applying what this PUT stored: a PUT beside
    // it may have committed after it.
    app.runtime.reload(app.registry.meta()).await?;
    // Every instance applies the change before the answer (a push right
    // after turning read-only on must be refused wherever it lands).
    app.registry.settle().await;
    Ok(())
}

/// What a PUT changes: the scalar settings parsed, and the directory and
/// mail values with their types checked. A setting the file owns may be
/// sent back unchanged (clients send what GET gave them).
#[allow(clippy::type_complexity)]
fn changes(
    app: &App,
    body: &BTreeMap<String, Value>,
) -> Result<(Vec<Setting>, Vec<(String, Value)>), GatewayError> {
    let runtime = app.runtime.current();
    let in_force = app.runtime.live();
    let mut out = Vec::new();
    let mut live_out = Vec::new();
    let from_file = |key: &str, file_key: &str| {
        GatewayError::BadRequest(format!(
            "`{key}` is set by the config file ({file_key}); change it there and restart berth"
        ))
    };
    for (key, value) in body {
        // Harbor's clients send unset fields as null.
        if value.is_null() {
            continue;
        }
        if let Some(now) = runtime.iter().find(|s| s.key() == key) {
            if app.runtime.file_owns(key) {
                // Compared as shown: the file's value need not be one the
                // API would accept.
                if now.value() == *value {
                    continue;
                }
                return Err(from_file(
                    key,
                    Setting::file_key(key).unwrap_or("the config file"),
                ));
            }
            let wanted = Setting::parse(key, value).map_err(GatewayError::BadRequest)?;
            if wanted != *now {
                out.push(wanted);
            }
        } else if let Some(k) = live::lookup(key) {
            let shown = live::shown_value(&in_force, key);
            if app.runtime.file_owns_group(k.group) {
                if shown.as_ref() == Some(value) {
                    continue;
                }
                return Err(from_file(
                    key,
                    live::conf_key(key).unwrap_or("the config file"),
                ));
            }
            live::check(k, value).map_err(GatewayError::BadRequest)?;
            live_out.push((key.clone(), value.clone()));
        } else if let Some((_, on)) = FIXED.iter().find(|(k, _)| k == key) {
            if *value != Value::Bool(*on) {
                return Err(GatewayError::BadRequest(format!(
                    "`{key}` is always {on} in berth"
                )));
            }
        } else {
            return Err(GatewayError::BadRequest(format!(
                "`{key}` is not a setting berth knows; GET /api/v2.0/configurations lists them"
            )));
        }
    }
    Ok((out, live_out))
}
