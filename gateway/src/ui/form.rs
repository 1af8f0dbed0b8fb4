//! Reading a posted form (`application/x-www-form-urlencoded`) and
//! checking its CSRF token before anything else looks at it.

use pingora::proxy::Session;

use super::visitor::Visitor;
use crate::error::GatewayError;
use crate::http::read_body;
use crate::route::Query;

/// The portal's forms are a few fields; anything bigger is not one.
const MAX_FORM: usize = 64 * 1024;

/// Reads the form and checks its token: a form without the visitor's
/// token is refused before it can change anything.
pub async fn read(session: &mut Session, v: &Visitor) -> Result<Query, GatewayError> {
    let body = read_body(session, MAX_FORM).await?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| GatewayError::BadRequest("the form is not valid UTF-8".into()))?;
    let form = Query::parse(Some(text));
    v.check_csrf(&form)?;
    Ok(form)
}

/// A storage limit typed in a form: bytes or a size such as `10GiB`, `-1`
/// for unlimited; `None` when left empty.
pub fn storage_limit(text: &str) -> Result<Option<i64>, GatewayError> {
    match text.trim() {
        "" => Ok(None),
        "-1" => Ok(Some(-1)),
        t => berth_conf::parse_size(t)
            .and_then(|n| i64::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                GatewayError::BadRequest(format!(
                    "storage limit `{t}` is not a size: use a number of bytes or a size such as 10GiB, or -1 for unlimited"
                ))
            }),
    }
}

/// Where a form on a listing page goes back to: its `back` field (the page
/// with its search and page number) when it is one of `page`'s own URLs
/// of printable characters, else `page`; with `done=<outcome>` added.
pub fn back_to(form: &Query, page: &str, done: &str) -> String {
    let back = form
        .get("back")
        .filter(|b| b.starts_with(page) && b.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or(page);
    let sep = if back.contains('?') { '&' } else { '?' };
    format!("{back}{sep}done={done}")
}
