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
}

pub async fn show(app: &App, v: &Visitor) -> Result<Reply, GatewayError> {
    v.api()
        .require(Action::ReadConfiguration, Resource::System)?;
    let health = health_status(app).await;
    let t = v.lang.text();
    let view = SystemPage {
        l: Layout::new(v, t.system, "admin"),
        tab: "system",
        flash: None,
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
    };
    html(200, &view, v)
}
