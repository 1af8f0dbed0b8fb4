//! `/admin/system`: the run-time settings (with the directory and the
//! mail server, through the API's own change), the health of the
//! database, the blob store and LDAP (the checks `/api/v2.0/health`
//! runs), what this berth is, and its effective configuration with every
//! secret redacted.

use askama::Template;
use berth_policy::{Action, Resource};

use crate::api::system::{health_status, ComponentHealthStatus};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::runtime::live::{self, Group, Input};
use crate::ui::page::{html, Layout};
use crate::ui::visitor::Visitor;

#[derive(Template)]
#[template(path = "admin_system.html")]
struct SystemPage {
    l: Layout,
    tab: &'static str,
    flash: Option<super::Flash>,
    healthy: bool,
    components: Vec<ComponentHealthStatus>,
    version: String,
    auth_mode: &'static str,
    external_url: String,
    /// TOML, secrets shown as `<redacted>`.
    config: String,
    read_only: bool,
    admin_only_projects: bool,
    token_minutes: i64,
    /// The config file sets the token lifetime (not changed here).
    token_fixed: bool,
    robot_days: i64,
    /// The directory's, then the mail server's.
    sections: Vec<Section>,
}

/// The directory's or the mail server's settings, as a form.
struct Section {
    /// `directory` or `mail`: the form's id and where it posts.
    id: &'static str,
    title: &'static str,
    /// The config file sets them: shown, not changed here.
    fixed: bool,
    fields: Vec<Field>,
}

/// One setting, by Harbor's name (also the form field's name).
struct Field {
    key: &'static str,
    /// `text`, `password`, `checkbox`, `number` or `mode`.
    input: &'static str,
    value: String,
}

fn section(app: &App, group: Group, title: &'static str) -> Section {
    let in_force = app.runtime.live();
    Section {
        id: match group {
            Group::Directory => "directory",
            Group::Mail => "mail",
        },
        title,
        fixed: app.runtime.file_owns_group(group),
        fields: live::keys(group)
            .map(|k| Field {
                key: k.harbor,
                input: match k.input() {
                    Input::Text => "text",
                    Input::Password => "password",
                    Input::Checkbox => "checkbox",
                    Input::Number => "number",
                    Input::Mode => "mode",
                },
                // Passwords are never shown.
                value: match live::shown_value(&in_force, k.harbor) {
                    Some(serde_json::Value::String(s)) => s,
                    Some(serde_json::Value::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                },
            })
            .collect(),
    }
}

pub async fn show(
    app: &App,
    v: &Visitor,
    query: &crate::route::Query,
) -> Result<Reply, GatewayError> {
    v.api()
        .require(Action::ReadConfiguration, Resource::System)?;
    let health = health_status(app).await;
    let t = v.lang.text();
    let view = SystemPage {
        l: Layout::new(v, t.system, "admin"),
        tab: "system",
        flash: (query.get("done") == Some("saved")).then(|| super::Flash {
            ok: true,
            text: t.settings_saved.to_owned(),
        }),
        healthy: health.status == "healthy",
        components: health.components,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        auth_mode: if app.login.uses_directory() {
            "LDAP"
        } else {
            t.database
        },
        external_url: app.external_url.clone().unwrap_or_default(),
        config: app.config_text.clone(),
        read_only: app.runtime.read_only(),
        admin_only_projects: app.runtime.admin_only_projects(),
        token_minutes: (app.tokens.ttl().as_secs() / 60) as i64,
        token_fixed: app.runtime.file_owns(crate::runtime::TOKEN_EXPIRATION),
        robot_days: app.runtime.robot_days(),
        sections: vec![
            section(app, Group::Directory, t.authentication),
            section(app, Group::Mail, t.mail_server),
        ],
    };
    html(200, &view, v)
}

/// The run-time settings form: the same change as the API's PUT.
pub async fn settings(
    app: &App,
    session: &mut pingora::proxy::Session,
    v: &Visitor,
) -> Result<Reply, GatewayError> {
    let form = crate::ui::form::read(session, v).await?;
    let mut body = std::collections::BTreeMap::new();
    body.insert(
        crate::runtime::READ_ONLY.to_owned(),
        serde_json::Value::Bool(form.get("read_only") == Some("true")),
    );
    body.insert(
        crate::runtime::PROJECT_CREATION.to_owned(),
        serde_json::Value::from(
            form.get("project_creation_restriction")
                .unwrap_or("everyone"),
        ),
    );
    if let Some(minutes) = form.get("token_expiration") {
        let minutes: i64 = minutes.trim().parse().map_err(|_| {
            GatewayError::BadRequest(format!(
                "token lifetime `{minutes}` is not a number of minutes"
            ))
        })?;
        body.insert(
            crate::runtime::TOKEN_EXPIRATION.to_owned(),
            serde_json::Value::from(minutes),
        );
    }
    if let Some(days) = form.get("robot_token_duration") {
        let days: i64 = days.trim().parse().map_err(|_| {
            GatewayError::BadRequest(format!("robot lifetime `{days}` is not a number of days"))
        })?;
        body.insert(
            crate::runtime::ROBOT_DAYS.to_owned(),
            serde_json::Value::from(days),
        );
    }
    crate::api::configurations::change(app, &v.api(), &body).await?;
    Ok(crate::ui::page::redirect("/admin/system?done=saved", v))
}

/// The directory's or the mail server's form: the same change as the
/// API's PUT. An empty password field keeps the stored password.
pub async fn live_settings(
    app: &App,
    session: &mut pingora::proxy::Session,
    v: &Visitor,
    group: Group,
) -> Result<Reply, GatewayError> {
    let form = crate::ui::form::read(session, v).await?;
    let mut body = std::collections::BTreeMap::new();
    for k in live::keys(group) {
        let given = form.get(k.harbor).map(str::trim);
        let value = match (k.input(), given) {
            (Input::Checkbox, given) => serde_json::Value::Bool(given == Some("true")),
            (Input::Password, None | Some("")) | (Input::Number, None | Some("")) => continue,
            (Input::Number, Some(n)) => {
                serde_json::Value::from(n.parse::<i64>().map_err(|_| {
                    GatewayError::BadRequest(format!("`{}` takes a number, not `{n}`", k.harbor))
                })?)
            }
            (_, given) => serde_json::Value::from(given.unwrap_or("")),
        };
        body.insert(k.harbor.to_owned(), value);
    }
    crate::api::configurations::change(app, &v.api(), &body).await?;
    Ok(crate::ui::page::redirect("/admin/system?done=saved", v))
}
