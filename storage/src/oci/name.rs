//! Repository names, tags and references, checked against the OCI
//! distribution spec's grammar.

use std::fmt;
use std::str::FromStr;

use crate::error::StorageError;
use crate::oci::digest::{truncate, Digest};

/// Longest repository name accepted; distribution uses the same bound and
/// clients build URLs from it.
const MAX_NAME_LEN: usize = 255;

/// A repository name such as `team/app/api`:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first path segment: the project in Harbor's terms.
    pub fn project(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }

    /// The name inside its project (`app/api` in `team/app/api`); `None`
    /// for a one-segment name.
    pub fn in_project(&self) -> Option<&str> {
        self.0.split_once('/').map(|(_, rest)| rest)
    }

    /// This name under `project` (`mirror/library/alpine`), for a mirror
    /// that keeps upstream names inside one project.
    pub fn under(&self, project: &str) -> Result<RepoName, StorageError> {
        format!("{project}/{}", self.0).parse()
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RepoName {
    type Err = StorageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |why: &str| StorageError::NameInvalid(format!("`{}`: {why}", truncate(s)));
        if s.is_empty() {
            return Err(invalid("a repository name cannot be empty"));
        }
        if s.len() > MAX_NAME_LEN {
            return Err(invalid("a repository name is at most 255 characters"));
        }
        for component in s.split('/') {
            if !valid_component(component) {
                return Err(invalid(
                    "each path component must be lowercase letters and digits, \
                     separated by `.`, `_`, `__` or dashes (e.g. `team/my-app`)",
                ));
            }
        }
        Ok(RepoName(s.to_owned()))
    }
}

/// A project name: one path component of a repository name, at most 255
/// characters (`team` in `team/app`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectName(String);

impl ProjectName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ProjectName {
    type Err = StorageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > MAX_NAME_LEN || !valid_component(s) {
            return Err(StorageError::NameInvalid(format!(
                "`{}`: a project name is 1 to 255 lowercase letters and digits, separated by \
                 `.`, `_`, `__` or dashes, with no `/` (e.g. `team-a`)",
                truncate(s)
            )));
        }
        Ok(ProjectName(s.to_owned()))
    }
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !alnum(b[i]) {
            return false;
        }
    }
    true
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Tag {
    type Err = StorageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let first_ok = b
            .first()
            .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_');
        let rest_ok = b
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if !first_ok || !rest_ok || b.len() > 128 {
            return Err(StorageError::TagInvalid(format!(
                "`{}`: a tag is 1 to 128 characters of letters, digits, `_`, `.` and `-`, \
                 and does not start with `.` or `-`",
                truncate(s)
            )));
        }
        Ok(Tag(s.to_owned()))
    }
}

/// What a manifest URL names: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

impl FromStr for Reference {
    type Err = StorageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Tags cannot contain ':', digests always do.
        if s.contains(':') {
            s.parse().map(Reference::Digest)
        } else {
            s.parse().map(Reference::Tag)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_spec_names() {
        for ok in [
            "a",
            "library/alpine",
            "team/app/api",
            "a/b/c/d/e/f/g/h/i/j",
            "my-app",
            "my--app",
            "my_app",
            "my__app",
            "my.app",
            "0/1",
        ] {
            assert!(ok.parse::<RepoName>().is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "", "A", "team/App", "a//b", "/a", "a/", "a/../b", "..", "a___b", "a_-b", "-a", "a-",
            "a.", "a b", "a:b",
        ] {
            assert!(
                matches!(bad.parse::<RepoName>(), Err(StorageError::NameInvalid(_))),
                "{bad}"
            );
        }
        assert!("a".repeat(256).parse::<RepoName>().is_err());
    }

    #[test]
    fn project_is_first_segment() {
        let n: RepoName = "team/app/api".parse().unwrap();
        assert_eq!(n.project(), "team");
    }

    #[test]
    fn tags() {
        for ok in ["latest", "v1.0", "_x", "A-b_c.d", &"a".repeat(128)] {
            assert!(ok.parse::<Tag>().is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", &"a".repeat(129)] {
            assert!(bad.parse::<Tag>().is_err(), "{bad}");
        }
    }

    #[test]
    fn references() {
        assert!(matches!(
            "latest".parse::<Reference>().unwrap(),
            Reference::Tag(_)
        ));
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(matches!(
            d.parse::<Reference>().unwrap(),
            Reference::Digest(_)
        ));
        assert!(matches!(
            "sha256:abc".parse::<Reference>(),
            Err(StorageError::DigestInvalid(_))
        ));
    }
}
