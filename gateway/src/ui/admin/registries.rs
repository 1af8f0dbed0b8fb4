//! `/admin/registries`: the registry endpoints proxy-cache projects (and
//! replication) use. Create one, test a connection (a stored endpoint's,
//! or the form's settings before creating), delete one that no project
//! uses. Through the API's own functions (`api::registries`).

use askama::Template;
use berth_policy::{Action, Resource};
use pingora::proxy::Session;

use super::Flash;
use crate::api::registries::{self, RegistryCredential, RegistryReq, TYPES};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::ui::form;
use crate::ui::page::{html, human_time, redirect, Layout};
use crate::ui::visitor::Visitor;

struct EndpointLine {
    id: i64,
    name: String,
    kind: String,
    url: String,
    description: String,
    insecure: bool,
    /// The access key; the secret is never shown.
    access_key: String,
    created: String,
}

/// The creation form's values, kept after a test (but for the secret).
#[derive(Default)]
struct Draft {
    name: String,
    kind: String,
    url: String,
    description: String,
    insecure: bool,
    access_key: String,
}

#[derive(Template)]
#[template(path = "admin_registries.html")]
struct RegistriesPage {
    l: Layout,
    tab: &'static str,
    flash: Option<Flash>,
    rows: Vec<EndpointLine>,
    types: &'static [&'static str],
    draft: Draft,
}

/// The page, with the outcome of what was just done.
pub async fn list(app: &App, v: &Visitor, flash: Option<Flash>) -> Result<Reply, GatewayError> {
    page(app, v, flash, Draft::default()).await
}

async fn page(
    app: &App,
    v: &Visitor,
    flash: Option<Flash>,
    draft: Draft,
) -> Result<Reply, GatewayError> {
    v.api()
        .require(Action::ManageRegistries, Resource::System)?;
    let rows = app
        .registry
        .meta()
        .endpoints()
        .await?
        .into_iter()
        .map(|e| EndpointLine {
            id: e.id,
            kind: e.kind,
            url: e.url,
            description: e.description,
            insecure: e.insecure,
            access_key: e.credential.map(|c| c.access_key).unwrap_or_default(),
            created: human_time(e.created_at),
            name: e.name,
        })
        .collect();
    let t = v.lang.text();
    let view = RegistriesPage {
        l: Layout::new(v, t.registries, "admin"),
        tab: "registries",
        flash,
        rows,
        types: TYPES,
        draft,
    };
    html(200, &view, v)
}

/// The form's settings as the API's request.
fn request(form: &crate::route::Query) -> RegistryReq {
    let field = |k: &str| form.get(k).unwrap_or("").trim().to_owned();
    let key = field("access_key");
    let secret = form.get("access_secret").unwrap_or("").to_owned();
    RegistryReq {
        name: Some(field("name")),
        kind: Some(field("type")),
        url: Some(field("url")),
        description: Some(field("description")),
        insecure: Some(form.get("insecure") == Some("true")),
        credential: (!key.is_empty() || !secret.is_empty()).then_some(RegistryCredential {
            kind: "basic".into(),
            access_key: key,
            access_secret: secret,
        }),
        id: None,
    }
}

/// Creates the endpoint, or with the "test" button only tests the
/// settings (the form comes back filled in but for the secret).
pub async fn create(app: &App, session: &mut Session, v: &Visitor) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let req = v.api();
    let mut body = request(&form);
    if form.get("test") == Some("true") {
        // A test needs no name yet.
        body.name = body.name.filter(|n| !n.is_empty());
        let draft = Draft {
            name: body.name.clone().unwrap_or_default(),
            kind: body.kind.clone().unwrap_or_default(),
            url: body.url.clone().unwrap_or_default(),
            description: body.description.clone().unwrap_or_default(),
            insecure: body.insecure.unwrap_or(false),
            access_key: body
                .credential
                .as_ref()
                .map(|c| c.access_key.clone())
                .unwrap_or_default(),
        };
        let flash = ping(app, v, body).await?;
        return page(app, v, Some(flash), draft).await;
    }
    registries::create_endpoint(app, &req, body).await?;
    Ok(redirect("/admin/registries", v))
}

/// A ping's outcome as a message; only a refused permission is an error
/// page (a registry that does not answer is what the test is for).
async fn ping(app: &App, v: &Visitor, body: RegistryReq) -> Result<Flash, GatewayError> {
    let t = v.lang.text();
    match registries::ping_endpoint(app, &v.api(), body).await {
        Ok(()) => Ok(Flash {
            ok: true,
            text: t.connection_ok.to_owned(),
        }),
        Err(GatewayError::BadRequest(why)) => Ok(Flash {
            ok: false,
            text: format!("{}: {why}", t.connection_failed),
        }),
        Err(e) => Err(e),
    }
}

/// Tests a stored endpoint's connection.
pub async fn test(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    id: i64,
) -> Result<Reply, GatewayError> {
    form::read(session, v).await?;
    let body = RegistryReq {
        name: None,
        kind: None,
        url: None,
        description: None,
        insecure: None,
        credential: None,
        id: Some(id),
    };
    let flash = ping(app, v, body).await?;
    list(app, v, Some(flash)).await
}

pub async fn delete(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    id: i64,
) -> Result<Reply, GatewayError> {
    form::read(session, v).await?;
    registries::delete(app, &v.api(), &id.to_string()).await?;
    Ok(redirect("/admin/registries", v))
}
