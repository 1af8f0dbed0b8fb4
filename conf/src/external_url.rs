//! The registry's public base URL, checked once here so the gateway can
//! append paths to it without thinking.

use std::fmt;

/// `http(s)://host[:port][/path]`, without a trailing slash, so
/// `format!("{}/v2/", url.as_str())` is always right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalUrl(String);

impl ExternalUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Accepts what a client could be redirected to: an http or https URL
    /// with a host, no credentials, no query and no fragment.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text).map_err(|e| format!("invalid URL `{text}`: {e}"))?;
        let problem = if !matches!(url.scheme(), "http" | "https") {
            Some(format!("must use http or https, not `{}`", url.scheme()))
        } else if url.host_str().is_none_or(str::is_empty) {
            Some("has no host".to_owned())
        } else if !url.username().is_empty() || url.password().is_some() {
            Some("must not contain a user name or password".to_owned())
        } else if url.query().is_some() || url.fragment().is_some() {
            Some("must not have a query or fragment".to_owned())
        } else {
            None
        };
        match problem {
            // Not echoed: a URL with a user name may also carry a password.
            Some(problem) => Err(format!("invalid URL: {problem}")),
            None => Ok(ExternalUrl(url.as_str().trim_end_matches('/').to_owned())),
        }
    }
}

impl fmt::Display for ExternalUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> String {
        ExternalUrl::parse(text)
            .map(|url| url.as_str().to_owned())
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn stores_without_trailing_slash() {
        assert_eq!(
            ok("https://registry.example.org"),
            "https://registry.example.org"
        );
        assert_eq!(
            ok("https://registry.example.org/"),
            "https://registry.example.org"
        );
        assert_eq!(ok("http://localhost:5000/"), "http://localhost:5000");
        assert_eq!(
            ok("https://example.org/berth/"),
            "https://example.org/berth"
        );
        assert_eq!(ok("http://[::1]:8080"), "http://[::1]:8080");
        assert_eq!(ok("HTTPS://Example.ORG"), "https://example.org");
    }

    #[test]
    fn rejects_what_a_client_cannot_be_sent_to() {
        let err = |text: &str| ExternalUrl::parse(text).expect_err(text);
        assert!(err("registry.example.org").starts_with("invalid URL `registry.example.org`"));
        assert!(err("ftp://example.org").contains("must use http or https, not `ftp`"));
        assert!(err("http://").contains("invalid URL"));
        assert!(err("https://example.org/?a=b").contains("query or fragment"));
        assert!(err("https://example.org/#top").contains("query or fragment"));
        let with_password = err("https://user:pw@example.org");
        assert!(with_password.contains("user name or password"));
        assert!(!with_password.contains("pw@"));
    }
}
