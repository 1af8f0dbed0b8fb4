//! The one error type. Every message says where to look: the file and key
//! path, or the environment variable. Secret values are never echoed.

use std::fmt;
use std::path::PathBuf;

/// Where a setting lives, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A key of the config file. Also used for a required key the file lacks,
    /// since the file is where the user will add it.
    File { file: PathBuf, key: String },
    /// An environment variable; its name already says which key it sets.
    Env { var: String },
    /// A key when no config file is in play (defaults plus environment).
    Key { key: String },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { file, key } => write!(f, "{}: {key}", file.display()),
            Location::Env { var } => write!(f, "env {var}"),
            Location::Key { key } => f.write_str(key),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    /// The config file was named but could not be read. The I/O error is part
    /// of the message (not a `source`) because `berth serve` prints only the
    /// top-level message.
    #[error("{}: cannot read config file: {cause}", path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error("{}: invalid TOML at line {line}, column {column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    #[error("{}: unknown key `{key}`", file.display())]
    UnknownKey { file: PathBuf, key: String },

    #[error(
        "env {var}: no such setting; use BERTH_<KEY> or BERTH_<SECTION>__<KEY>{}",
        suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default()
    )]
    UnknownEnv {
        var: String,
        suggestion: Option<String>,
    },

    #[error("env {first} and env {second} both set `{key}`, to different values")]
    EnvConflict {
        first: String,
        second: String,
        key: String,
    },

    #[error("{at}: expected {expected}, found {found}")]
    WrongType {
        at: Location,
        expected: &'static str,
        found: String,
    },

    #[error("{at}: {message}")]
    Invalid { at: Location, message: String },

    #[error("{at}: required when {reason}")]
    Missing { at: Location, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_name_file_and_key_or_variable() {
        let file = Location::File {
            file: PathBuf::from("berth.toml"),
            key: "auth.mode".to_owned(),
        };
        assert_eq!(file.to_string(), "berth.toml: auth.mode");
        let env = Location::Env {
            var: "BERTH_LISTEN".to_owned(),
        };
        assert_eq!(env.to_string(), "env BERTH_LISTEN");
        let key = Location::Key {
            key: "ldap.url".to_owned(),
        };
        assert_eq!(key.to_string(), "ldap.url");
    }

    #[test]
    fn unknown_env_offers_a_suggestion_only_when_there_is_one() {
        let with = ConfError::UnknownEnv {
            var: "BERTH_AUTH_MODE".to_owned(),
            suggestion: Some("BERTH_AUTH__MODE".to_owned()),
        };
        assert!(with
            .to_string()
            .ends_with("(did you mean BERTH_AUTH__MODE?)"));
        let without = ConfError::UnknownEnv {
            var: "BERTH_NOPE".to_owned(),
            suggestion: None,
        };
        assert!(!without.to_string().contains("did you mean"));
        assert!(without
            .to_string()
            .starts_with("env BERTH_NOPE: no such setting"));
    }
}
