//! Harbor's pagination (`page`, `page_size`, `X-Total-Count`, `Link`) and
//! its `q` query language (`q=name=~foo,public=true`).

use serde::Serialize;

use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::Query;

/// Largest `page_size` accepted, as Harbor.
pub const MAX_PAGE_SIZE: i64 = 100;
const DEFAULT_PAGE_SIZE: i64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: i64,
    pub size: i64,
}

impl Page {
    pub fn parse(query: &Query) -> Result<Page, GatewayError> {
        let number = |key: &str, default: i64, max: i64| -> Result<i64, GatewayError> {
            match query.get(key) {
                None | Some("") => Ok(default),
                Some(v) => match v.parse::<i64>() {
                    Ok(n) if (1..=max).contains(&n) => Ok(n),
                    _ => Err(GatewayError::BadRequest(format!(
                        "`{key}` must be a whole number from 1 to {max}, not `{v}`"
                    ))),
                },
            }
        };
        Ok(Page {
            page: number("page", 1, i64::from(i32::MAX))?,
            size: number("page_size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?,
        })
    }

    pub fn offset(self) -> i64 {
        (self.page - 1).saturating_mul(self.size)
    }

    pub fn limit(self) -> i64 {
        self.size
    }

    /// A JSON array reply with `X-Total-Count` and `Link` (`prev`/`next`),
    /// keeping the request's other query parameters in the links.
    pub fn reply<T: Serialize>(self, path: &str, query: &Query, items: &[T], total: i64) -> Reply {
        let link = |page: i64| {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in query.pairs() {
                if k != "page" && k != "page_size" {
                    q.append_pair(k, v);
                }
            }
            q.append_pair("page", &page.to_string());
            q.append_pair("page_size", &self.size.to_string());
            format!("<{path}?{}>", q.finish())
        };
        let mut links = Vec::new();
        if self.page > 1 {
            links.push(format!("{}; rel=\"prev\"", link(self.page - 1)));
        }
        if self.offset() + (items.len() as i64) < total {
            links.push(format!("{}; rel=\"next\"", link(self.page + 1)));
        }
        let body = serde_json::to_value(items).unwrap_or_default();
        let mut reply = Reply::json(200, &body).header("X-Total-Count", total.to_string());
        if !links.is_empty() {
            reply = reply.header("Link", links.join(" , "));
        }
        reply
    }
}

/// Harbor's `q`: comma-separated `key=value` (exact), `key=~value`
/// (fuzzy), `key=[a~b]` (range).
#[derive(Debug, Default)]
pub struct Q {
    terms: Vec<(String, Term)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    Exact(String),
    Fuzzy(String),
    Range(Option<String>, Option<String>),
    /// `key=(a b)`: every one of these (Harbor's "and" list).
    List(Vec<String>),
}

impl Q {
    pub fn parse(query: &Query) -> Result<Q, GatewayError> {
        let Some(raw) = query.get("q").filter(|q| !q.is_empty()) else {
            return Ok(Q::default());
        };
        let mut terms = Vec::new();
        for part in raw.split(',') {
            let (key, value) = part.split_once('=').ok_or_else(|| {
                GatewayError::BadRequest(format!(
                    "`q` term `{part}` is not `key=value`, `key=~value` or `key=[from~to]`"
                ))
            })?;
            let term = if let Some(v) = value.strip_prefix('~') {
                Term::Fuzzy(v.to_owned())
            } else if let Some(inner) = value.strip_prefix('(').and_then(|v| v.strip_suffix(')')) {
                Term::List(inner.split_whitespace().map(str::to_owned).collect())
            } else if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
                let (a, b) = inner.split_once('~').unwrap_or((inner, ""));
                let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
                Term::Range(opt(a), opt(b))
            } else {
                Term::Exact(value.to_owned())
            };
            terms.push((key.trim().to_owned(), term));
        }
        Ok(Q { terms })
    }

    pub fn get(&self, key: &str) -> Option<&Term> {
        self.terms.iter().find(|(k, _)| k == key).map(|(_, t)| t)
    }

    /// The value of an exact term, or of a fuzzy one as a substring filter:
    /// `(exact, contains)`.
    pub fn name_filter(&self, key: &str) -> (Option<String>, Option<String>) {
        match self.get(key) {
            Some(Term::Exact(v)) => (Some(v.clone()), None),
            Some(Term::Fuzzy(v)) => (None, Some(v.clone())),
            _ => (None, None),
        }
    }

    /// Keys present that the endpoint does not know, for a clear 400.
    pub fn reject_unknown(&self, known: &[&str]) -> Result<(), GatewayError> {
        match self
            .terms
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            Some((k, _)) => Err(GatewayError::BadRequest(format!(
                "`q` key `{k}` is not supported here; use one of: {}",
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        let q = Query::parse(Some("page=3&page_size=20&name=x"));
        let p = Page::parse(&q).unwrap();
        assert_eq!((p.offset(), p.limit()), (40, 20));
        assert_eq!(Page::parse(&Query::parse(None)).unwrap().size, 10);
        assert!(Page::parse(&Query::parse(Some("page_size=101"))).is_err());
        assert!(Page::parse(&Query::parse(Some("page=0"))).is_err());
        assert!(Page::parse(&Query::parse(Some("page=x"))).is_err());
        let r = p.reply("/api/v2.0/projects", &q, &[1, 2], 100);
        let link = r
            .headers
            .iter()
            .find(|(k, _)| *k == "Link")
            .unwrap()
            .1
            .clone();
        assert!(link.contains("rel=\"prev\""), "{link}");
        assert!(link.contains("page=4"), "{link}");
        assert!(link.contains("name=x"), "{link}");
    }

    #[test]
    fn q_terms() {
        let q = Q::parse(&Query::parse(Some(
            "q=name%3D~app%2Cpublic%3Dtrue%2Cop_time%3D%5B1~2%5D",
        )))
        .unwrap();
        assert_eq!(q.get("name"), Some(&Term::Fuzzy("app".into())));
        assert_eq!(q.get("public"), Some(&Term::Exact("true".into())));
        assert_eq!(
            q.get("op_time"),
            Some(&Term::Range(Some("1".into()), Some("2".into())))
        );
        assert!(q.reject_unknown(&["name", "public", "op_time"]).is_ok());
        assert!(q.reject_unknown(&["name"]).is_err());
        assert!(Q::parse(&Query::parse(Some("q=bad"))).is_err());
        let q = Q::parse(&Query::parse(Some("q=labels%3D(1%202)"))).unwrap();
        assert_eq!(
            q.get("labels"),
            Some(&Term::List(vec!["1".into(), "2".into()]))
        );
    }
}
