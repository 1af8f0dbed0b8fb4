//! The stylesheet and script, compiled into the binary and served at
//! `/static/...` with a validator so browsers revalidate cheaply.

use crate::http::Reply;

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

/// The asset at `path`, if it is one.
pub fn get(path: &str) -> Option<Reply> {
    let (body, kind) = match path {
        "/static/style.css" => (STYLE, "text/css; charset=utf-8"),
        "/static/app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        _ => return None,
    };
    Some(
        Reply::new(200)
            .header("Content-Type", kind)
            // A release changes the files: an hour, then revalidated.
            .header("Cache-Control", "public, max-age=3600")
            .header("X-Content-Type-Options", "nosniff")
            .bytes(body.into()),
    )
}
