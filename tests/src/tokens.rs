//! The token service seen from a client: `WWW-Authenticate` challenges,
//! `GET` and `POST /service/token`, and requests with a bearer token.

use std::collections::BTreeMap;

use reqwest::blocking::{Client, Response};
use serde_json::Value;

use crate::registry::{describe, header, http_client};

/// A parsed `WWW-Authenticate: Bearer k="v",...` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// Parses `Scheme k="v",k2="v2"` (quoted values may hold commas and
    /// spaces, as a scope list does).
    pub fn parse(value: &str) -> Challenge {
        let value = value.trim();
        let (scheme, mut rest) = value.split_once(' ').unwrap_or((value, ""));
        let mut params = BTreeMap::new();
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            let Some((key, after)) = rest.split_once('=') else {
                break;
            };
            let (val, after) = match after.strip_prefix('"') {
                Some(quoted) => {
                    let end = quoted
                        .find('"')
                        .unwrap_or_else(|| panic!("unterminated quote in {value:?}"));
                    (&quoted[..end], &quoted[end + 1..])
                }
                None => after.split_once(',').unwrap_or((after, "")),
            };
            params.insert(key.trim().to_ascii_lowercase(), val.to_string());
            rest = after;
        }
        Challenge {
            scheme: scheme.to_string(),
            params,
        }
    }

    /// The challenge of a response (which must have one).
    pub fn of(resp: &Response) -> Challenge {
        let value = header(resp, "www-authenticate").unwrap_or_else(|| {
            panic!(
                "{} {} has no WWW-Authenticate header",
                resp.status(),
                resp.url()
            )
        });
        Challenge::parse(&value)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }
}

/// `GET <base>/service/token` with these query parameters, with HTTP Basic
/// when `credentials` are given.
pub fn token_get(base: &str, credentials: Option<(&str, &str)>, query: &[(&str, &str)]) -> Response {
    http_client(credentials)
        .get(format!("{base}/service/token"))
        .query(query)
        .send()
        .expect("GET /service/token")
}

/// `POST <base>/service/token` with this form (OAuth2).
pub fn token_post(base: &str, form: &[(&str, &str)]) -> Response {
    http_client(None)
        .post(format!("{base}/service/token"))
        .form(form)
        .send()
        .expect("POST /service/token")
}

/// Asserts a 200 token response and returns its JSON body.
pub fn token_body(resp: Response) -> Value {
    let status = resp.status();
    let url = resp.url().to_string();
    assert_eq!(status, 200, "token request {url}: {}", describe(resp));
    resp.json().expect("token response JSON")
}

/// A token for `scopes` (`service=berth`), as `user` or anonymously.
pub fn fetch_token(base: &str, credentials: Option<(&str, &str)>, scopes: &[&str]) -> String {
    let mut query = vec![("service", "berth")];
    query.extend(scopes.iter().map(|s| ("scope", *s)));
    let body = token_body(token_get(base, credentials, &query));
    body["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {body}"))
        .to_string()
}

/// A client without credentials; add [`bearer`] headers per request.
pub fn plain_client() -> Client {
    http_client(None)
}

/// `Bearer <token>` for an Authorization header.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}
