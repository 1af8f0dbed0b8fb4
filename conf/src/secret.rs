//! A string that must never reach a log line or an error message.

use std::fmt;

/// What `Debug`, `Display` and [`crate::Config::redacted`] print instead of a
/// secret.
pub(crate) const REDACTED: &str = "<redacted>";

/// A password or a URL that may carry one. `Debug` and `Display` print
/// `<redacted>` so that logging a whole `Config` is safe; the value is only
/// reachable through [`Secret::expose`], which makes each use greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it (a bind, a hash, a
    /// connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some(<redacted>)");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn equality_compares_the_value() {
        assert_eq!(Secret::new("a"), Secret::from("a".to_owned()));
        assert_ne!(Secret::new("a"), Secret::new("b"));
    }
}
