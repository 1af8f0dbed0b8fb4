//! `/admin/system`: the health of the database, the blob store and LDAP
//! (the checks `/api/v2.0/health` runs), what this berth is, and its
//! effective configuration with every secret redacted.

use askama::Template;
use berth_policy::{Action, Resource};

use crate::api::system::{health_status, ComponentHealthStatus};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
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
    crate::api::configurations::change(app, &v.api(), &body).await?;
    Ok(crate::ui::page::redirect("/admin/system?done=saved", v))
}
