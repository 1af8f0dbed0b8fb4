//! `/api/v2.0/configurations` (Harbor's `configure` API): the settings in
//! force, each with whether it can change here. Read-only mode, who may
//! create projects, token lifetime and new projects' storage limit change
//! at run time (`crate::runtime`), unless the config file sets them; the
//! rest (authentication, LDAP, mail) is the config file's, shown and
//! never changed here (secrets are not shown at all).

use std::collections::BTreeMap;

use berth_conf::{AuthMode, EmailSecurity, LdapScope};
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
use crate::runtime::Setting;

#[derive(OpenApi)]
#[openapi(paths(get, put), components(schemas(ConfigItem)))]
pub struct Doc;

/// Harbor's `BoolConfigItem`, `StringConfigItem` and `IntegerConfigItem`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConfigItem {
    pub value: Value,
    pub editable: bool,
}

/// Settings the config file owns, Harbor's name first, as shown; the
/// config key second, for the message that refuses a change.
pub(crate) fn from_file(app: &App) -> Vec<(&'static str, Value, &'static str)> {
    let c = &app.file_settings;
    let mut out = vec![
        (
            "auth_mode",
            Value::from(match c.auth_mode {
                AuthMode::Db => "db_auth",
                AuthMode::Ldap => "ldap_auth",
            }),
            "auth.mode",
        ),
        ("self_registration", Value::Bool(false), "(not supported)"),
        ("notification_enable", Value::Bool(true), "(always on)"),
        ("quota_per_project_enable", Value::Bool(true), "(always on)"),
    ];
    if let Some(l) = &c.ldap {
        let text = |v: &Option<String>| Value::from(v.clone().unwrap_or_default());
        out.extend([
            ("ldap_url", Value::from(l.url.clone()), "ldap.url"),
            (
                "ldap_base_dn",
                Value::from(l.base_dn.clone()),
                "ldap.base_dn",
            ),
            ("ldap_search_dn", text(&l.search_dn), "ldap.search_dn"),
            ("ldap_filter", text(&l.filter), "ldap.filter"),
            ("ldap_uid", Value::from(l.uid.clone()), "ldap.uid"),
            (
                "ldap_scope",
                Value::from(match l.scope {
                    LdapScope::Base => 0,
                    LdapScope::OneLevel => 1,
                    LdapScope::Subtree => 2,
                }),
                "ldap.scope",
            ),
            (
                "ldap_timeout",
                Value::from(l.timeout.as_secs()),
                "ldap.timeout",
            ),
            (
                "ldap_verify_cert",
                Value::Bool(l.verify_cert),
                "ldap.verify_cert",
            ),
            (
                "ldap_group_base_dn",
                text(&l.group_base_dn),
                "ldap.group_base_dn",
            ),
            (
                "ldap_group_search_filter",
                text(&l.group_filter),
                "ldap.group_filter",
            ),
            (
                "ldap_group_attribute_name",
                text(&l.group_gid),
                "ldap.group_gid",
            ),
            (
                "ldap_group_admin_dn",
                text(&l.group_admin_dn),
                "ldap.group_admin_dn",
            ),
            (
                "ldap_group_membership_attribute",
                text(&l.group_membership_attribute),
                "ldap.group_membership_attribute",
            ),
        ]);
    }
    if let Some(e) = &c.email {
        out.extend([
            ("email_host", Value::from(e.server.clone()), "email.server"),
            ("email_port", Value::from(e.port), "email.port"),
            (
                "email_username",
                Value::from(e.username.clone().unwrap_or_default()),
                "email.username",
            ),
            ("email_from", Value::from(e.from.clone()), "email.from"),
            (
                "email_ssl",
                Value::Bool(e.security == EmailSecurity::Tls),
                "email.ssl",
            ),
            (
                "email_starttls",
                Value::Bool(e.security == EmailSecurity::StartTls),
                "email.starttls",
            ),
            ("email_insecure", Value::Bool(e.insecure), "email.insecure"),
        ]);
    }
    out
}

/// Write-only settings of the file (never shown, never changed here).
const SECRETS: &[(&str, &str)] = &[
    ("ldap_search_password", "ldap.search_password"),
    ("email_password", "email.password"),
];

fn current(app: &App) -> BTreeMap<String, ConfigItem> {
    let mut all: BTreeMap<String, ConfigItem> = from_file(app)
        .into_iter()
        .map(|(k, value, _)| {
            (
                k.to_owned(),
                ConfigItem {
                    value,
                    editable: false,
                },
            )
        })
        .collect();
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
    let changes = changes(app, body)?;
    if changes.is_empty() {
        return Ok(());
    }
    let stored: Vec<(String, String)> = changes
        .iter()
        .map(|s| (s.key().to_owned(), s.value().to_string()))
        .collect();
    let done = app.registry.meta().set_configuration(&stored).await;
    let what: Vec<String> = changes
        .iter()
        .map(|s| format!("{}={}", s.key(), s.value()))
        .collect();
    req.audit(
        app,
        "update",
        "configuration",
        &what.join(", "),
        None,
        done.is_ok(),
    );
    done?;
    // Read back rather than applying what this PUT stored: a PUT beside
    // it may have committed after it.
    app.runtime.reload(app.registry.meta()).await?;
    // Every instance applies the change before the answer (a push right
    // after turning read-only on must be refused wherever it lands).
    app.registry.settle().await;
    Ok(())
}

/// The settings a PUT changes, parsed; a setting the file owns may be
/// sent back unchanged (clients send what GET gave them).
fn changes(app: &App, body: &BTreeMap<String, Value>) -> Result<Vec<Setting>, GatewayError> {
    let file = from_file(app);
    let runtime = app.runtime.current();
    let mut out = Vec::new();
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
                let file_key = Setting::file_key(key).unwrap_or("the config file");
                return Err(GatewayError::BadRequest(format!(
                    "`{key}` is set by the config file ({file_key}); change it there and restart berth"
                )));
            }
            let wanted = Setting::parse(key, value).map_err(GatewayError::BadRequest)?;
            if wanted != *now {
                out.push(wanted);
            }
        } else if let Some((_, shown, file_key)) = file.iter().find(|(k, _, _)| k == key) {
            if shown != value {
                return Err(GatewayError::BadRequest(format!(
                    "`{key}` comes from the config file ({file_key}); change it there and restart berth"
                )));
            }
        } else if let Some((_, file_key)) = SECRETS.iter().find(|(k, _)| k == key) {
            return Err(GatewayError::BadRequest(format!(
                "`{key}` comes from the config file ({file_key}); change it there and restart berth"
            )));
        } else {
            return Err(GatewayError::BadRequest(format!(
                "`{key}` is not a setting berth knows; GET /api/v2.0/configurations lists them"
            )));
        }
    }
    Ok(out)
}
