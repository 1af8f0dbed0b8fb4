//! What every page shares: the layout's data, the security headers, HTML
//! replies, redirects after a form, and errors as pages.

use askama::Template;

use super::i18n::{Lang, Text};
use super::visitor::Visitor;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::Query;

/// No inline script or style anywhere: the pages load `/static/app.js`
/// and `/static/style.css` only, and nothing may frame them.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The layout's data (`base.html`).
pub struct Layout {
    pub lang: Lang,
    pub t: &'static Text,
    pub title: String,
    /// The top navigation entry to mark: `projects` or `admin`.
    pub section: &'static str,
    pub user: Option<String>,
    pub admin: bool,
    pub csrf: String,
}

impl Layout {
    pub fn new(v: &Visitor, title: impl Into<String>, section: &'static str) -> Layout {
        Layout {
            lang: v.lang,
            t: v.lang.text(),
            title: title.into(),
            section,
            user: v.username().map(str::to_owned),
            admin: v.is_admin(),
            csrf: v.csrf.clone(),
        }
    }
}

/// Headers every portal answer carries.
fn secured(mut reply: Reply, v: &Visitor) -> Reply {
    reply = reply
        .header("Content-Security-Policy", CSP)
        .header("X-Frame-Options", "DENY")
        .header("X-Content-Type-Options", "nosniff")
        .header("Referrer-Policy", "same-origin")
        .header("Cache-Control", "no-store")
        .header("Vary", "Cookie, Accept-Language");
    for c in &v.set_cookies {
        reply = reply.header("Set-Cookie", c.clone());
    }
    reply
}

/// A rendered page.
pub fn html<T: Template>(status: u16, page: &T, v: &Visitor) -> Result<Reply, GatewayError> {
    let body = page.render().map_err(|e| {
        // A template that cannot render is berth's bug, not the caller's.
        GatewayError::Storage(berth_storage::StorageError::Corrupt(format!(
            "portal template: {e}"
        )))
    })?;
    Ok(secured(
        Reply::new(status)
            .header("Content-Type", "text/html; charset=utf-8")
            .bytes(body.into()),
        v,
    ))
}

/// Plain text (a log), never interpreted as HTML.
pub fn text(body: String, v: &Visitor) -> Reply {
    secured(
        Reply::new(200)
            .header("Content-Type", "text/plain; charset=utf-8")
            .bytes(body.into()),
        v,
    )
}

/// 303 to `location` (a local path), as after every successful form.
pub fn redirect(location: &str, v: &Visitor) -> Reply {
    secured(Reply::new(303).header("Location", location.to_owned()), v)
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    l: Layout,
    message: String,
    back: String,
}

/// An error as a page, in the status the API would answer. Signed-out
/// callers who need to sign in are sent to the sign-in page instead.
pub fn error(e: &GatewayError, v: &Visitor, path: &str, back: &str) -> Reply {
    let p = e.present_api();
    if p.internal {
        tracing::error!(error = %crate::error::cause_chain(e), path, "portal request failed");
    }
    if p.status == 401 && v.identity.is_none() {
        return redirect(&format!("/login?next={}", encode_component(path)), v);
    }
    let message = match e {
        GatewayError::CsrfRejected => v.lang.text().csrf_failed.to_owned(),
        _ => p.message,
    };
    let page = ErrorPage {
        l: Layout::new(v, v.lang.text().error_title, ""),
        message,
        back: back.to_owned(),
    };
    html(p.status, &page, v).unwrap_or_else(|_| Reply::new(p.status))
}

/// Percent-encodes a query parameter's value.
pub fn encode_component(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// What a path segment keeps as is: names, tags and digests read plainly.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':');

/// Percent-encodes a path (slashes kept: repository names are paths).
pub fn encode_path(s: &str) -> String {
    s.split('/')
        .map(|seg| percent_encoding::utf8_percent_encode(seg, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// Bytes for people: `1.5 MiB`.
pub fn human_size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A Unix time for people, in UTC to the minute.
pub fn human_time(unix_secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_secs.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    // 2026-12-05T21:56:19Z -> 2026-12-05 21:56 UTC
    match (s.get(..10), s.get(11..16)) {
        (Some(day), Some(hm)) => format!("{day} {hm} UTC"),
        _ => s,
    }
}

/// Pagination for a listing page: links keep the other query parameters
/// (but for the language, remembered in a cookie, and a form's outcome).
pub struct Pager {
    pub page: i64,
    pub pages: i64,
    pub total: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    pub fn new(path: &str, query: &Query, page: crate::api::page::Page, total: i64) -> Pager {
        Pager::keyed(path, query, "page", page, total)
    }

    /// A pager whose page number is the query parameter `key`, for a page
    /// with two listings (each keeps the other's page in its links).
    pub fn keyed(
        path: &str,
        query: &Query,
        key: &str,
        page: crate::api::page::Page,
        total: i64,
    ) -> Pager {
        let pages = ((total + page.size - 1) / page.size).max(1);
        let link = |n: i64| {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in query.pairs() {
                // `done` is a finished form's flash: not for other pages.
                if k != key && k != "lang" && k != "done" {
                    q.append_pair(k, v);
                }
            }
            q.append_pair(key, &n.to_string());
            format!("{path}?{}", q.finish())
        };
        Pager {
            page: page.page,
            pages,
            total,
            prev: (page.page > 1).then(|| link((page.page - 1).min(pages))),
            next: (page.page < pages).then(|| link(page.page + 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_paths() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(encode_path("team/app-1/x_y"), "team/app-1/x_y");
        assert_eq!(encode_path("a b/<c>"), "a%20b/%3Cc%3E");
        assert_eq!(encode_component("/projects/a b"), "%2Fprojects%2Fa+b");
        assert_eq!(human_time(0), "1970-01-01 00:00 UTC");
    }
}
