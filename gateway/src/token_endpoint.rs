//! The token service (distribution's token auth spec):
//! `GET /service/token` (HTTP Basic or anonymous; `scope`, `service`,
//! `account`, `offline_token`), `POST /service/token` (OAuth2 password and
//! refresh_token grants), and `GET /service/jwks` (the public keys).

use berth_auth::{AuthError, Identity};
use berth_policy::{grant, Access, Subject, Target};
use berth_storage::audit::{now_ms, AuditRecord};
use pingora::http::Method;
use pingora::proxy::Session;
use serde_json::{json, Value};

use crate::app::App;
use crate::auth::{basic_credentials, client_ip, project_facts, ProjectFacts};
use crate::error::GatewayError;
use crate::http::{header, read_body, Reply};
use crate::route::Query;

/// Largest token request form accepted.
const MAX_FORM: usize = 64 * 1024;

pub async fn handle(app: &App, session: &mut Session) -> Result<Reply, GatewayError> {
    let path = session.req_header().uri.path().to_owned();
    let method = session.req_header().method.clone();
    match (path.as_str(), method) {
        ("/service/jwks", Method::GET | Method::HEAD) => Ok(Reply::json(200, &app.tokens.jwks())),
        ("/service/token", Method::GET) => get(app, session).await,
        ("/service/token", Method::POST) => post(app, session).await,
        ("/service/token" | "/service/jwks", m) => Err(GatewayError::MethodNotAllowed {
            method: m.to_string(),
        }),
        _ => Err(GatewayError::NotFound(path)),
    }
}

/// `GET /service/token`: the docker CLI's first call after a 401.
async fn get(app: &App, session: &mut Session) -> Result<Reply, GatewayError> {
    let query = Query::parse(session.req_header().uri.query());
    let identity = match header(session, "authorization") {
        Some(value) => {
            let (user, password) = basic_credentials(value).ok_or(AuthError::InvalidCredentials)?;
            Some(login(app, session, &user, &password).await?)
        }
        None => None,
    };
    let scopes = query_scopes(&query);
    let offline = query.get("offline_token") == Some("true");
    let mut body = issue(app, identity.as_ref(), &scopes).await?;
    if let (true, Some(id)) = (offline, &identity) {
        body["refresh_token"] = json!(app.tokens.issue_refresh(&id.username, &id.credential));
    }
    Ok(Reply::json(200, &body))
}

/// Checks a login and records it in the audit log, whatever the outcome
/// (a directory outage is not a failed login, and is not recorded).
async fn login(
    app: &App,
    session: &Session,
    user: &str,
    password: &str,
) -> Result<Identity, GatewayError> {
    let ip = client_ip(app, session);
    let result = app.login.login(user, password, ip).await;
    let success = match &result {
        Ok(_) => true,
        Err(
            AuthError::InvalidCredentials
            | AuthError::UserDisabled(_)
            | AuthError::RobotExpired(_)
            | AuthError::TooManyAttempts { .. },
        ) => false,
        Err(_) => return result.map_err(GatewayError::from),
    };
    let name: String = user.chars().take(255).collect();
    app.audit.record(AuditRecord {
        op_time: now_ms(),
        username: name.clone(),
        operation: "login".into(),
        resource_type: "user".into(),
        resource: name,
        project: None,
        success,
        client_ip: ip.map(|i| i.to_string()),
    });
    result.map_err(GatewayError::from)
}

/// `POST /service/token`: OAuth2 form, as docker uses after `login`.
async fn post(app: &App, session: &mut Session) -> Result<Reply, GatewayError> {
    let form = read_body(session, MAX_FORM).await?;
    let form = parse_form(&form);
    let scopes = form_scopes(&form);
    let (identity, refresh) = match form.get("grant_type") {
        Some("password") => {
            let user = form.get("username").unwrap_or("");
            let password = form.get("password").unwrap_or("");
            let id = login(app, session, user, password).await?;
            let refresh = (form.get("access_type") == Some("offline"))
                .then(|| app.tokens.issue_refresh(&id.username, &id.credential));
            (id, refresh)
        }
        Some("refresh_token") => {
            let token = form.get("refresh_token").unwrap_or("");
            let (user, credential) = app.tokens.verify_refresh(token)?;
            // The account may have been disabled, deleted, given a new
            // password or secret, or left the directory since.
            let id = app.login.refresh(&user, &credential).await?;
            (id, Some(token.to_owned()))
        }
        other => {
            return Err(GatewayError::BadRequest(format!(
                "unsupported grant_type `{}`; use `password` or `refresh_token`",
                other.unwrap_or("")
            )))
        }
    };
    let mut body = issue(app, Some(&identity), &scopes).await?;
    body["scope"] = json!(scopes.join(" "));
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r);
    }
    Ok(Reply::json(200, &body))
}

/// The scopes a `GET /service/token` asks for: every `scope` parameter,
/// each a space-separated list.
#[doc(hidden)]
pub fn query_scopes(query: &Query) -> Vec<&str> {
    query
        .all("scope")
        .flat_map(|s| s.split(' '))
        .filter(|s| !s.is_empty())
        .collect()
}

/// A `POST /service/token` body, read as a form.
#[doc(hidden)]
pub fn parse_form(body: &[u8]) -> Query {
    Query::parse(Some(&String::from_utf8_lossy(body)))
}

/// The scopes a `POST /service/token` form asks for: its `scope`, a
/// space-separated list.
#[doc(hidden)]
pub fn form_scopes(form: &Query) -> Vec<&str> {
    form.get("scope")
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect()
}

/// Grants, per requested scope, what policy allows; signs the token.
async fn issue(
    app: &App,
    identity: Option<&Identity>,
    scopes: &[&str],
) -> Result<Value, GatewayError> {
    let subject = identity.map_or(Subject::Anonymous, Identity::subject);
    let mut access: Vec<Access> = Vec::new();
    for scope in scopes {
        let Some((target, requested)) = berth_auth::scope::parse(scope)? else {
            continue;
        };
        let facts = match &target {
            Target::Repository(name) => {
                let project = name.split('/').next().unwrap_or(name);
                project_facts(app, identity, project).await?
            }
            Target::Catalog => ProjectFacts {
                name: String::new(),
                info: None,
                role: None,
                stand_in: false,
            },
        };
        let actions = grant(&subject, &target, facts.view(), &requested);
        if actions.is_empty() {
            continue;
        }
        match access.iter_mut().find(|a| a.target == target) {
            Some(existing) => {
                existing.actions.extend(actions);
                existing.actions.sort();
                existing.actions.dedup();
            }
            None => access.push(Access { target, actions }),
        }
    }
    let name = identity.map(|i| i.username.as_str()).unwrap_or("");
    let t = app
        .tokens
        .issue_until(name, &access, identity.and_then(|i| i.expires_at));
    Ok(json!({
        "token": t.token,
        "access_token": t.token,
        "expires_in": t.expires_in,
        "issued_at": t.issued_at,
    }))
}
