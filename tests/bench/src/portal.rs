//! The portal's pages in the listings benchmark (issue 14: "each portal
//! page and each management API listing it uses answers in under 50 ms"):
//! the pages a user opens on the data [`crate::listing`] filled, signed in
//! once as the admin through the login form, as a browser does, and timed
//! as the API's listings are. Each answer is checked to be the page asked
//! for (its rows and total), not the login form it would be redirected to
//! when the session is missing.

use std::time::Instant;

use anyhow::{bail, ensure, Context};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Request, StatusCode};

use crate::client::{percent_encode, Conn, Registry, ReqBody};
use crate::listing::{Timing, SAMPLES, WARM_UP};
use crate::scenarios::percentile;

/// Rows per page asked of every listing page, as of the API (the portal
/// offers 10 to 100 and remembers the choice; 100 is the most work).
pub const PAGE_SIZE: usize = 100;

/// One page and what it must show.
pub struct PortalPage {
    pub label: &'static str,
    pub path: String,
    pub shows: Shows,
}

pub enum Shows {
    /// A listing: `min(total, PAGE_SIZE)` rows carrying `marker`, and a
    /// pager over `total`.
    Rows { marker: &'static str, total: usize },
    /// A page holding each of these strings.
    Text(Vec<String>),
}

/// The session cookie of the admin, signed in through the form: `GET
/// /login` for the form's CSRF token and its cookie, `POST /login`.
pub async fn sign_in(reg: &Registry) -> anyhow::Result<HeaderValue> {
    let creds = reg
        .credentials()
        .context("the portal needs the admin credentials")?;
    let mut conn = reg.conn().await?;
    let (status, headers, body) = conn
        .exchange(Request::get("/login").body(ReqBody::Empty)?)
        .await?;
    ensure!(status == StatusCode::OK, "GET /login answered {status}");
    let csrf_cookie = set_cookie(&headers, "berth_csrf").context("GET /login: no CSRF cookie")?;
    let html = std::str::from_utf8(&body).context("GET /login: not UTF-8")?;
    let csrf = hidden_field(html, "csrf").context("GET /login: no csrf field")?;
    let form = format!(
        "csrf={}&next=%2Fprojects&username={}&password={}",
        percent_encode(csrf),
        percent_encode(&creds.user),
        percent_encode(&creds.password)
    );
    let req = Request::post("/login")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(COOKIE, format!("berth_csrf={csrf_cookie}"))
        .body(ReqBody::Full(Bytes::from(form)))?;
    let (status, headers, body) = conn.exchange(req).await?;
    if status != StatusCode::SEE_OTHER {
        bail!(
            "POST /login answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
    }
    let session = set_cookie(&headers, "berth_session").context("POST /login: no session")?;
    Ok(HeaderValue::from_str(&format!("berth_session={session}"))?)
}

/// The value a `Set-Cookie` of the answer gives `name`, if not empty.
fn set_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(k, v)| k.trim() == name && !v.is_empty())
        .map(|(_, v)| v.trim())
}

/// The value of the first hidden field `name` of a page.
fn hidden_field<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    let start = html.find(&format!("name=\"{name}\" value=\""))? + name.len() + 15;
    let len = html[start..].find('"')?;
    Some(&html[start..start + len])
}

/// Median and p99 of one page, asked like the API's listings: on one
/// connection, after untimed requests; the first answer checked.
pub async fn time(
    reg: &Registry,
    session: &HeaderValue,
    page: &PortalPage,
) -> anyhow::Result<Timing> {
    let mut conn = reg.conn().await?;
    let mut all = Vec::with_capacity(SAMPLES);
    let mut answer = String::new();
    for i in 0..WARM_UP + SAMPLES {
        let t = Instant::now();
        let (status, headers, body) = get(&mut conn, session, &page.path).await?;
        let took = t.elapsed().as_nanos() as u64;
        if i == 0 {
            answer = check(page, status, &headers, &body)?;
        }
        if i >= WARM_UP {
            all.push(took);
        }
    }
    all.sort_unstable();
    Ok(Timing {
        label: page.label,
        answer,
        p50_ms: percentile(&all, 50.0) as f64 / 1e6,
        p99_ms: percentile(&all, 99.0) as f64 / 1e6,
    })
}

async fn get(
    conn: &mut Conn,
    session: &HeaderValue,
    path: &str,
) -> anyhow::Result<(StatusCode, HeaderMap, Bytes)> {
    let req = Request::get(path)
        .header(COOKIE, session.clone())
        .body(ReqBody::Empty)?;
    conn.exchange(req).await
}

/// The answer is the page asked for; what it showed.
fn check(
    page: &PortalPage,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> anyhow::Result<String> {
    let label = page.label;
    let html = String::from_utf8_lossy(body);
    if status != StatusCode::OK {
        bail!(
            "{label}: {} answered {status}: {}",
            page.path,
            &html[..html.len().min(300)]
        );
    }
    let html_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    ensure!(html_type, "{label}: not HTML");
    ensure!(
        !html.contains("id=\"login-form\""),
        "{label}: the login form, not the page (session lost?)"
    );
    match &page.shows {
        Shows::Rows { marker, total } => {
            let rows = html.matches(marker).count();
            let want = (*total).min(PAGE_SIZE);
            ensure!(rows == want, "{label}: {rows} rows, expected {want}");
            // The pager's "<pages> · <total>", in any language.
            let pages = total.div_ceil(PAGE_SIZE).max(1);
            ensure!(
                html.contains(&format!(" {pages} · {total} ")),
                "{label}: no pager over {total}"
            );
            Ok(format!("{rows} rows of {total}"))
        }
        Shows::Text(needles) => {
            for needle in needles {
                ensure!(html.contains(needle.as_str()), "{label}: no `{needle}`");
            }
            Ok(format!("{} kB page", body.len() / 1000))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_login_form() {
        let html = r#"<form><input type="hidden" name="csrf" value="a-B_9"><input name="next" value="/x"></form>"#;
        assert_eq!(hidden_field(html, "csrf"), Some("a-B_9"));
        assert_eq!(hidden_field(html, "other"), None);
        let mut headers = HeaderMap::new();
        headers.append(
            SET_COOKIE,
            HeaderValue::from_static("berth_csrf=; Max-Age=0"),
        );
        headers.append(
            SET_COOKIE,
            HeaderValue::from_static("berth_session=s3cr3t; Path=/; HttpOnly"),
        );
        assert_eq!(set_cookie(&headers, "berth_session"), Some("s3cr3t"));
        assert_eq!(set_cookie(&headers, "berth_csrf"), None);
    }
}
