//! Who is calling a `/v2` endpoint, and whether they may: credentials are
//! parsed from the Authorization header, checked through the auth crate's
//! caches, and every decision is the policy crate's.

use std::net::IpAddr;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use berth_auth::token::Verified;
use berth_auth::{AuthError, Identity};
use berth_policy::{authorize, covers, Action, Decision, Project, Resource, Role, Subject, Target};
use berth_storage::oci::RepoName;
use berth_storage::ProjectInfo;
use pingora::proxy::Session;

use crate::app::App;
use crate::error::GatewayError;
use crate::http::header;

/// The authenticated caller of a request.
pub enum Caller {
    Anonymous,
    /// HTTP Basic: a user or a robot (checked through the login cache).
    User(Identity),
    /// A bearer token from `/service/token` (verified, cached).
    Token(Arc<Verified>),
}

impl Caller {
    /// The name recorded in the audit log.
    pub fn name(&self) -> &str {
        match self {
            Caller::Anonymous => "anonymous",
            Caller::User(id) => &id.username,
            Caller::Token(v) if v.subject.is_empty() => "anonymous",
            Caller::Token(v) => &v.subject,
        }
    }
}

/// What policy needs to know about a project, gathered for one caller.
pub struct ProjectFacts {
    pub name: String,
    pub info: Option<ProjectInfo>,
    pub role: Option<Role>,
    /// `info` is the mirror project's, standing in for a name that is not
    /// a project (mirror mode): for pulls only.
    pub stand_in: bool,
}

impl ProjectFacts {
    pub fn view(&self) -> Project<'_> {
        Project {
            name: &self.name,
            id: self.info.map(|i| i.id),
            exists: self.info.is_some(),
            public: self.info.is_some_and(|i| i.public),
            role: self.role,
            stand_in: self.stand_in,
        }
    }
}

/// Looks up a project and the caller's strongest role in it (directly or
/// through an LDAP group); robots and anonymous callers have no role.
pub async fn project_facts(
    app: &App,
    identity: Option<&Identity>,
    project: &str,
) -> Result<ProjectFacts, GatewayError> {
    let (info, stand_in) = match app.registry.project_info(project).await? {
        Some(info) => (Some(info), false),
        // In mirror mode a name that is not a project is the mirror's.
        None => {
            let info = crate::upstream::mirror::stand_in(app, project).await?;
            (info, info.is_some())
        }
    };
    let role = match (info, identity) {
        (Some(info), Some(id)) if id.robot.is_none() => app.role_in(info.id, id).await?,
        _ => None,
    };
    Ok(ProjectFacts {
        name: project.to_owned(),
        info,
        role,
        stand_in,
    })
}

/// The connection's peer: the client, or a proxy in front of berth.
pub fn peer_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// The client's address: the peer, or behind proxies berth trusts
/// (`server.trusted_proxies`), the nearest address in X-Forwarded-For
/// that is not one of them. Per-client limits and the audit log use it:
/// keyed on the proxy, every client behind it would share one limit.
pub fn client_ip(app: &App, session: &Session) -> Option<IpAddr> {
    let peer = peer_ip(session)?;
    let trusted = |ip: IpAddr| app.trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(peer) {
        return Some(peer);
    }
    let mut client = peer;
    let values: Vec<_> = session
        .req_header()
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .collect();
    for value in values.into_iter().rev() {
        let Ok(text) = value.to_str() else {
            return Some(client);
        };
        // Rightmost first: each proxy appends the address it saw.
        for part in text.rsplit(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) if trusted(ip) => client = ip,
                Ok(ip) => return Some(ip),
                Err(_) => return Some(client),
            }
        }
    }
    Some(client)
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
                .login(&user, &password, client_ip(app, session))
                .await?,
        )),
        None => Err(AuthError::InvalidCredentials.into()),
    }
}

/// Decides whether `caller` may do `action` on `repo` (or the registry).
pub async fn check(
    app: &App,
    caller: &Caller,
    action: Action,
    repo: Option<&RepoName>,
) -> Result<(), GatewayError> {
    match caller {
        Caller::Token(v) => {
            let target = match repo {
                Some(r) => Target::Repository(r.to_string()),
                None => Target::Catalog,
            };
            if covers(&v.access, action, &target) {
                return Ok(());
            }
            explain_missing_scope(app, v, action, repo).await
        }
        // Without credentials, whatever policy allows anonymous callers
        // (pulls from public projects) is served directly, so curl and
        // scripts need no token; anything else gets the challenge.
        Caller::Anonymous => decide(app, None, action, repo).await,
        Caller::User(id) => decide(app, Some(id), action, repo).await,
    }
}

/// Asks policy, with the facts about the repository's project.
async fn decide(
    app: &App,
    identity: Option<&Identity>,
    action: Action,
    repo: Option<&RepoName>,
) -> Result<(), GatewayError> {
    let subject = identity.map_or(Subject::Anonymous, Identity::subject);
    let decision = match repo {
        Some(r) => {
            let facts = project_facts(app, identity, r.project()).await?;
            authorize(&subject, action, Resource::Project(facts.view()))
        }
        None => authorize(&subject, action, Resource::System),
    };
    match decision {
        Decision::Allow => Ok(()),
        Decision::NeedsLogin => Err(GatewayError::Unauthenticated {
            scope: Some(scope_for(repo, action)),
        }),
        Decision::Deny(why) => Err(GatewayError::Denied(why)),
        // On /v2 a hidden project is denied with the message that names
        // it (docker and podman print it, and it says what to do).
        Decision::Hidden(why) => Err(GatewayError::Hidden(why)),
    }
}

/// A token that does not cover the request. When policy would not allow
/// it either, say why (a client would only fetch the same token again);
/// otherwise the client should fetch a token for the scope.
async fn explain_missing_scope(
    app: &App,
    token: &Verified,
    action: Action,
    repo: Option<&RepoName>,
) -> Result<(), GatewayError> {
    let insufficient = GatewayError::InsufficientScope {
        scope: Some(scope_for(repo, action)),
    };
    // An account deleted, disabled or expired since the token was issued
    // gets that error rather than an explanation.
    let identity = if token.subject.is_empty() {
        None
    } else {
        Some(app.login.identity(&token.subject).await?)
    };
    match decide(app, identity.as_ref(), action, repo).await {
        Ok(()) | Err(GatewayError::Unauthenticated { .. }) => Err(insufficient),
        Err(e) => Err(e),
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

/// 32 random bytes, URL-safe base64 (43 characters): session cookies,
/// CSRF tokens, password-reset links.
pub fn random_token() -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
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
