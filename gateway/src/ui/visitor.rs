//! Who is looking at the portal: the signed-in session (from its cookie,
//! checked against the database and the account on every request), the
//! CSRF token forms must carry, and the language.
//!
//! - The session cookie is `HttpOnly`, `SameSite=Lax`, `Secure` when the
//!   client reached berth over TLS, and a fresh random value at every
//!   sign-in; the database keeps only its hash.
//! - A session ends after [`IDLE`] without a request, [`LIFETIME`] after
//!   sign-in, at sign-out, and as soon as the account's credential changes
//!   (new password, disabled, deleted, gone from the directory).
//! - Signed in, forms carry the session's CSRF token. The sign-in form
//!   itself carries a token from a separate cookie (double submit): a
//!   forged sign-in would otherwise log the victim into the attacker's
//!   account.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_auth::{AuthError, Identity};
use berth_storage::sessions::{NewSession, SessionRow};
use pingora::proxy::Session;

use super::i18n::{Lang, LANG_COOKIE};
use crate::api::request::ApiRequest;
use crate::app::App;
use crate::auth::{client_ip, random_token};
use crate::error::GatewayError;
use crate::http::header;
use crate::route::Query;

pub const SESSION_COOKIE: &str = "berth_session";
/// The sign-in form's token, before there is a session.
pub const LOGIN_CSRF_COOKIE: &str = "berth_csrf";
/// A session ends after this long without a request.
pub const IDLE: i64 = 60 * 60;
/// And this long after sign-in, whatever happens.
pub const LIFETIME: i64 = 12 * 60 * 60;
/// Activity is written back at most this often.
const TOUCH_EVERY: i64 = 60;

pub struct Visitor {
    /// `None`: anonymous.
    pub identity: Option<Identity>,
    /// The session cookie's value, when it names a live session.
    pub cookie: Option<String>,
    pub session: Option<SessionRow>,
    /// The token this visitor's forms carry.
    pub csrf: String,
    pub lang: Lang,
    /// Whether the client reached berth over TLS (cookies get `Secure`).
    pub secure: bool,
    /// The registry's base URL as this client reaches it.
    pub base_url: String,
    pub client_ip: Option<IpAddr>,
    /// Cookies to set on the answer.
    pub set_cookies: Vec<String>,
}

impl Visitor {
    /// Reads the cookies; a session that ended is dropped (and its
    /// cookie cleared).
    pub async fn new(app: &App, session: &Session, query: &Query) -> Result<Visitor, GatewayError> {
        let cookies = cookies(session);
        let base_url = app.base_url(session);
        let secure = base_url.starts_with("https://");
        let mut set_cookies = Vec::new();
        let lang = match query.get("lang").and_then(Lang::parse) {
            Some(lang) => {
                set_cookies.push(cookie(
                    LANG_COOKIE,
                    lang.code(),
                    Some(365 * 24 * 3600),
                    secure,
                ));
                lang
            }
            None => cookies
                .iter()
                .find(|(k, _)| k == LANG_COOKIE)
                .and_then(|(_, v)| Lang::parse(v))
                .or_else(|| header(session, "accept-language").and_then(Lang::negotiate))
                .unwrap_or(Lang::En),
        };
        let mut visitor = Visitor {
            identity: None,
            cookie: None,
            session: None,
            csrf: String::new(),
            lang,
            secure,
            base_url,
            client_ip: client_ip(app, session),
            set_cookies,
        };
        if let Some(value) = find(&cookies, SESSION_COOKIE) {
            visitor.resume(app, value).await?;
        }
        if visitor.session.is_none() {
            visitor.csrf = match find(&cookies, LOGIN_CSRF_COOKIE) {
                Some(v) if v.len() == 43 => v.to_owned(),
                _ => {
                    let token = random_token();
                    visitor
                        .set_cookies
                        .push(cookie(LOGIN_CSRF_COOKIE, &token, None, secure));
                    token
                }
            };
        }
        Ok(visitor)
    }

    async fn resume(&mut self, app: &App, value: &str) -> Result<(), GatewayError> {
        let meta = app.registry.meta();
        let Some(row) = meta.session(value).await? else {
            self.set_cookies
                .push(cookie(SESSION_COOKIE, "", Some(0), self.secure));
            return Ok(());
        };
        // The account as it is now: a new password, a disabled or deleted
        // account, or a directory entry that changed ends the session.
        let identity = match app.login.refresh(&row.username, &row.credential).await {
            Ok(id) if id.robot.is_none() => id,
            // Not knowing is not a verdict: the session stays for when the
            // directory or database answers again.
            Err(e @ (AuthError::DirectoryUnavailable(_) | AuthError::Storage(_))) => {
                return Err(e.into())
            }
            Ok(_) | Err(_) => {
                meta.delete_session(value).await?;
                self.set_cookies
                    .push(cookie(SESSION_COOKIE, "", Some(0), self.secure));
                return Ok(());
            }
        };
        let now = unix_now();
        if now - row.seen_at >= TOUCH_EVERY {
            let expires = (now + IDLE).min(row.created_at + LIFETIME);
            meta.touch_session(value, expires).await?;
        }
        self.csrf = row.csrf.clone();
        self.identity = Some(identity);
        self.cookie = Some(value.to_owned());
        self.session = Some(row);
        Ok(())
    }

    /// Opens a session for a checked login, replacing any the client had:
    /// the old cookie value (which may have been planted) never becomes a
    /// signed-in session.
    pub async fn sign_in(&mut self, app: &App, identity: Identity) -> Result<(), GatewayError> {
        let meta = app.registry.meta();
        if let Some(old) = self.cookie.take() {
            meta.delete_session(&old).await?;
        }
        let value = random_token();
        let csrf = random_token();
        meta.create_session(&NewSession {
            cookie: &value,
            username: &identity.username,
            credential: &identity.credential,
            csrf: &csrf,
            expires_at: unix_now() + IDLE,
        })
        .await?;
        self.set_cookies
            .push(cookie(SESSION_COOKIE, &value, None, self.secure));
        self.set_cookies
            .push(cookie(LOGIN_CSRF_COOKIE, "", Some(0), self.secure));
        self.csrf = csrf;
        self.identity = Some(identity);
        self.cookie = Some(value);
        Ok(())
    }

    /// Ends this visitor's session.
    pub async fn sign_out(&mut self, app: &App) -> Result<(), GatewayError> {
        if let Some(value) = self.cookie.take() {
            app.registry.meta().delete_session(&value).await?;
        }
        self.set_cookies
            .push(cookie(SESSION_COOKIE, "", Some(0), self.secure));
        self.identity = None;
        self.session = None;
        Ok(())
    }

    /// Checks a form's CSRF token.
    pub fn check_csrf(&self, form: &Query) -> Result<(), GatewayError> {
        let sent = form.get("csrf").unwrap_or("");
        if !self.csrf.is_empty() && constant_time_eq(sent.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(GatewayError::CsrfRejected)
        }
    }

    /// The caller as the management API sees it, so that the portal asks
    /// policy exactly as the API does.
    pub fn api(&self) -> ApiRequest {
        ApiRequest {
            identity: self.identity.clone(),
            query: Query::parse(None),
            client_ip: self.client_ip,
        }
    }

    pub fn username(&self) -> Option<&str> {
        self.identity.as_ref().map(|i| i.username.as_str())
    }

    pub fn is_admin(&self) -> bool {
        self.identity.as_ref().is_some_and(|i| i.admin)
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A `Set-Cookie` value. `max_age` `None` is a browser-session cookie;
/// `Some(0)` deletes it.
pub fn cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// The request's cookies, in order.
fn cookies(session: &Session) -> Vec<(String, String)> {
    session
        .req_header()
        .headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

/// One cookie of the request.
pub fn cookie_value(session: &Session, name: &str) -> Option<String> {
    find(&cookies(session), name).map(str::to_owned)
}

fn find<'a>(cookies: &'a [(String, String)], name: &str) -> Option<&'a str> {
    cookies
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_carry_their_flags() {
        assert_eq!(
            cookie("a", "b", None, true),
            "a=b; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        assert_eq!(
            cookie("a", "", Some(0), false),
            "a=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
        );
    }

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(constant_time_eq(a.as_bytes(), a.as_bytes()));
        assert!(!constant_time_eq(a.as_bytes(), b.as_bytes()));
        assert!(!constant_time_eq(a.as_bytes(), &a.as_bytes()[..42]));
    }
}
