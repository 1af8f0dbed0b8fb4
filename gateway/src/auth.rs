//! Who is calling a `/v2` endpoint, and whether they may: credentials are
//! parsed from the Authorization header, checked through the auth crate's
//! caches, and every decision is the policy crate's.

use std::net::IpAddr;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use berth_auth::token::Verified;
use berth_auth::{AuthError, Identity};
use berth_policy::{authorize, covers, Action, Decision, Resource, Subject, Target};
use berth_storage::oci::RepoName;
use pingora::proxy::Session;

use crate::app::App;
use crate::error::GatewayError;
use crate::http::header;

/// The authenticated caller of a request.
pub enum Caller {
    Anonymous,
    /// HTTP Basic, checked against users (cached).
    User(Identity),
    /// A bearer token from `/service/token` (verified, cached).
    Token(Arc<Verified>),
}

impl Caller {
    pub fn subject(&self) -> Subject {
        match self {
            Caller::User(id) => Subject::User {
                name: id.username.clone(),
                admin: id.admin,
            },
            Caller::Anonymous | Caller::Token(_) => Subject::Anonymous,
        }
    }
}

pub fn client_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// Splits `Basic base64(user:password)`.
pub fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// Reads the Authorization header. Bad credentials are an error (401);
/// no credentials is `Anonymous`.
pub async fn authenticate(app: &App, session: &Session) -> Result<Caller, GatewayError> {
    let Some(value) = header(session, "authorization") else {
        return Ok(Caller::Anonymous);
    };
    if let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    {
        return Ok(Caller::Token(app.tokens.verify(token.trim())?));
    }
    match basic_credentials(value) {
        Some((user, password)) => Ok(Caller::User(
            app.login
                .login(&user, &password, client_ip(session))
                .await?,
        )),
        None => Err(AuthError::InvalidCredentials.into()),
    }
}

/// Whether the project of `repo` may be pulled anonymously.
async fn is_public(app: &App, repo: &RepoName) -> Result<bool, GatewayError> {
    Ok(app
        .registry
        .project_public(repo.project())
        .await?
        .unwrap_or(false))
}

/// Decides whether `caller` may do `action` on `repo` (or the registry).
pub async fn check(
    app: &App,
    caller: &Caller,
    action: Action,
    repo: Option<&RepoName>,
) -> Result<(), GatewayError> {
    let target = match repo {
        Some(r) => Target::Repository(r.to_string()),
        None => Target::Catalog,
    };
    match caller {
        Caller::Token(v) => {
            if covers(&v.access, action, &target) {
                Ok(())
            } else {
                Err(GatewayError::InsufficientScope {
                    scope: Some(scope_for(repo, action)),
                })
            }
        }
        // Without credentials, whatever policy allows anonymous callers
        // (pulls from public projects) is served directly, so curl and
        // scripts need no token; anything else gets the challenge.
        Caller::Anonymous | Caller::User(_) => {
            let public = match repo {
                Some(r) => is_public(app, r).await?,
                None => false,
            };
            let resource = match repo {
                Some(r) => Resource::Repository {
                    name: r.as_str(),
                    public,
                },
                None => Resource::Registry,
            };
            match authorize(&caller.subject(), action, resource) {
                Decision::Allow => Ok(()),
                Decision::NeedsLogin => Err(GatewayError::Unauthenticated {
                    scope: Some(scope_for(repo, action)),
                }),
                Decision::Deny(why) => Err(GatewayError::Denied(why)),
            }
        }
    }
}

/// The scope a client should ask the token service for.
pub fn scope_for(repo: Option<&RepoName>, action: Action) -> String {
    match (repo, action) {
        (None, _) | (_, Action::Catalog) => "registry:catalog:*".to_owned(),
        // Docker asks for pull and push together when pushing.
        (Some(r), Action::Push) => format!("repository:{r}:pull,push"),
        (Some(r), a) => format!("repository:{r}:{}", a.as_str()),
    }
}

/// `WWW-Authenticate` for a 401.
pub fn challenge(app: &App, session: &Session, scope: Option<&str>, error: Option<&str>) -> String {
    let mut c = format!(
        "Bearer realm=\"{}\",service=\"{}\"",
        app.base_url(session) + "/service/token",
        app.tokens.service()
    );
    if let Some(s) = scope {
        c.push_str(&format!(",scope=\"{s}\""));
    }
    if let Some(e) = error {
        c.push_str(&format!(",error=\"{e}\""));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header() {
        let v = format!("Basic {}", STANDARD.encode("alice:pa:ss"));
        assert_eq!(
            basic_credentials(&v),
            Some(("alice".into(), "pa:ss".into()))
        );
        assert_eq!(basic_credentials("Basic !!!"), None);
        assert_eq!(basic_credentials("Digest abc"), None);
    }

    #[test]
    fn scopes() {
        let r: RepoName = "team/app".parse().unwrap();
        assert_eq!(
            scope_for(Some(&r), Action::Pull),
            "repository:team/app:pull"
        );
        assert_eq!(
            scope_for(Some(&r), Action::Push),
            "repository:team/app:pull,push"
        );
        assert_eq!(scope_for(None, Action::Catalog), "registry:catalog:*");
    }
}
