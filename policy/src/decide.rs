//! The decision function and its vocabulary.

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Anonymous,
    User { name: String, admin: bool },
}

/// What they want to do, in the registry's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Pull,
    Push,
    Delete,
    /// List all repositories (`/v2/_catalog`).
    Catalog,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
            Action::Catalog => "*",
        }
    }
}

/// What they want to do it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// A repository; `public` is whether its project may be pulled
    /// anonymously (false when the project does not exist).
    Repository { name: &'a str, public: bool },
    /// The registry as a whole (the catalog).
    Registry,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Denied to an anonymous caller: logging in may help.
    NeedsLogin,
    /// Denied to an authenticated caller, with the reason to show.
    Deny(String),
}

/// Decides whether `subject` may perform `action` on `resource`. Anything
/// not explicitly allowed is denied.
pub fn authorize(subject: &Subject, action: Action, resource: Resource<'_>) -> Decision {
    match (subject, action, resource) {
        (Subject::User { admin: true, .. }, _, _) => Decision::Allow,
        (Subject::Anonymous, Action::Pull, Resource::Repository { public: true, .. }) => {
            Decision::Allow
        }
        (Subject::Anonymous, _, _) => Decision::NeedsLogin,
        (
            Subject::User { .. },
            Action::Pull | Action::Push | Action::Delete,
            Resource::Repository { .. },
        ) => Decision::Allow,
        (Subject::User { name, .. }, Action::Catalog, _)
        | (Subject::User { name, .. }, _, Resource::Registry) => Decision::Deny(format!(
            "user `{name}` may not list the catalog; only administrators may"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_table() {
        let anon = Subject::Anonymous;
        let user = Subject::User {
            name: "alice".into(),
            admin: false,
        };
        let admin = Subject::User {
            name: "admin".into(),
            admin: true,
        };
        let private = Resource::Repository {
            name: "team/app",
            public: false,
        };
        let public = Resource::Repository {
            name: "library/alpine",
            public: true,
        };
        use Action::{Catalog, Delete, Pull, Push};
        let cases: &[(&Subject, Action, Resource, bool)] = &[
            (&anon, Pull, public, true),
            (&anon, Push, public, false),
            (&anon, Delete, public, false),
            (&anon, Pull, private, false),
            (&anon, Push, private, false),
            (&anon, Catalog, Resource::Registry, false),
            (&user, Pull, private, true),
            (&user, Push, private, true),
            (&user, Delete, private, true),
            (&user, Pull, public, true),
            (&user, Catalog, Resource::Registry, false),
            (&admin, Catalog, Resource::Registry, true),
            (&admin, Push, private, true),
            (&admin, Delete, public, true),
        ];
        for (subject, action, resource, allowed) in cases {
            let d = authorize(subject, *action, *resource);
            assert_eq!(
                d == Decision::Allow,
                *allowed,
                "{subject:?} {action:?} {resource:?} -> {d:?}"
            );
        }
    }

    #[test]
    fn anonymous_is_asked_to_log_in() {
        let private = Resource::Repository {
            name: "team/app",
            public: false,
        };
        assert_eq!(
            authorize(&Subject::Anonymous, Action::Push, private),
            Decision::NeedsLogin
        );
        let user = Subject::User {
            name: "bob".into(),
            admin: false,
        };
        assert!(matches!(
            authorize(&user, Action::Catalog, Resource::Registry),
            Decision::Deny(m) if m.contains("bob")
        ));
    }
}
