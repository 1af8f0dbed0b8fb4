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
pub fn token_get(
    base: &str,
    credentials: Option<(&str, &str)>,
    query: &[(&str, &str)],
) -> Response {
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

/// A distribution API client that sends one bearer token with every
/// request.
pub struct BearerClient {
    base: String,
    http: Client,
}

impl BearerClient {
    pub fn new(base: &str, token: &str) -> BearerClient {
        let mut headers = reqwest::header::HeaderMap::new();
        let mut value =
            reqwest::header::HeaderValue::from_str(&bearer(token)).expect("ASCII token");
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
        let http = Client::builder()
            .no_proxy()
            .default_headers(headers)
            .timeout(std::time::Duration::from_secs(300))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("build http client");
        BearerClient {
            base: base.trim_end_matches('/').to_string(),
            http,
        }
    }

    pub fn http(&self) -> &Client {
        &self.http
    }

    /// `base` + `path` (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn get(&self, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .header("accept", crate::registry::ALL_MANIFEST_TYPES)
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `POST /v2/<repo>/blobs/uploads/` (no body): the first step of a push.
    pub fn start_upload(&self, repo: &str) -> Response {
        self.http
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/")))
            .send()
            .expect("POST upload")
    }

    /// Pushes every blob (POST + monolithic PUT) and the manifest under
    /// `tag`, asserting each step.
    pub fn push_image(&self, repo: &str, tag: &str, image: &crate::Image) {
        for blob in image.blobs() {
            let resp = self.start_upload(repo);
            assert_eq!(
                resp.status(),
                202,
                "POST upload to {repo}: {}",
                describe(resp)
            );
            let location = header(&resp, "location").expect("upload Location");
            let location = if location.starts_with('/') {
                self.url(&location)
            } else {
                location
            };
            let resp = self
                .http
                .put(crate::registry::with_query(
                    &location,
                    "digest",
                    &blob.digest,
                ))
                .header("content-type", "application/octet-stream")
                .body(blob.data.clone())
                .send()
                .expect("PUT upload");
            assert_eq!(resp.status(), 201, "PUT blob to {repo}: {}", describe(resp));
        }
        let resp = self
            .http
            .put(self.url(&format!("/v2/{repo}/manifests/{tag}")))
            .header("content-type", &image.manifest.media_type)
            .body(image.manifest.data.clone())
            .send()
            .expect("PUT manifest");
        assert_eq!(
            resp.status(),
            201,
            "PUT manifest {repo}:{tag}: {}",
            describe(resp)
        );
    }
}

/// Seconds since the epoch of an RFC 3339 date-time
/// (`2024-05-06T07:08:09Z`, `...09.123+02:00`); `None` if malformed.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = text.get(from..from + len)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let h: i64 = rest[1..3].parse().ok()?;
            let m: i64 = rest[4..6].parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:01Z"), Some(951_868_801));
        assert_eq!(
            parse_rfc3339("2000-03-01T02:00:01.5+02:00"),
            Some(951_868_801)
        );
        assert_eq!(parse_rfc3339("2000-03-01 00:00:01"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn challenges() {
        let c = Challenge::parse(
            r#"Bearer realm="http://h/service/token",service="berth",scope="repository:a/b:pull,push",error="insufficient_scope""#,
        );
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.get("realm"), Some("http://h/service/token"));
        assert_eq!(c.get("scope"), Some("repository:a/b:pull,push"));
        assert_eq!(c.get("error"), Some("insufficient_scope"));
    }
}
