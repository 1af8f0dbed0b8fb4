//! The decision function and its vocabulary.

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Anonymous,
    User { name: String, admin: bool },
}

/// What they want to do, in the registry's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pull,
    Push,
    Delete,
    /// List all repositories (`/v2/_catalog`).
    Catalog,
}

/// What they want to do it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// A repository, by its project (first path segment) and full name.
    Repository {
        project: &'a str,
        name: &'a str,
    },
    Registry,
}

/// How the registry is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No authentication configured: everyone may do everything.
    Open,
    /// Authentication required: anonymous subjects are denied everything,
    /// users may use repositories, only admins may list the catalog.
    Authenticated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Denied; the subject should authenticate first.
    NeedsLogin,
    /// Denied for an authenticated subject, with the reason to show.
    Deny(String),
}

/// Decides whether `subject` may perform `action` on `resource`.
pub fn authorize(
    mode: Mode,
    subject: &Subject,
    action: Action,
    resource: Resource<'_>,
) -> Decision {
    match (mode, subject) {
        (Mode::Open, _) => Decision::Allow,
        (Mode::Authenticated, Subject::Anonymous) => Decision::NeedsLogin,
        (Mode::Authenticated, Subject::User { admin: true, .. }) => Decision::Allow,
        (Mode::Authenticated, Subject::User { name, admin: false }) => match (action, resource) {
            (Action::Catalog, _) | (_, Resource::Registry) => Decision::Deny(format!(
                "user {name} may not list the catalog; only administrators may"
            )),
            (Action::Pull | Action::Push | Action::Delete, Resource::Repository { .. }) => {
                Decision::Allow
            }
        },
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
        let repo = Resource::Repository {
            project: "team",
            name: "team/app",
        };
        let cases: &[(Mode, &Subject, Action, Resource, bool)] = &[
            (Mode::Open, &anon, Action::Pull, repo, true),
            (Mode::Open, &anon, Action::Push, repo, true),
            (Mode::Open, &anon, Action::Delete, repo, true),
            (Mode::Open, &anon, Action::Catalog, Resource::Registry, true),
            (Mode::Authenticated, &anon, Action::Pull, repo, false),
            (Mode::Authenticated, &anon, Action::Push, repo, false),
            (
                Mode::Authenticated,
                &anon,
                Action::Catalog,
                Resource::Registry,
                false,
            ),
            (Mode::Authenticated, &user, Action::Pull, repo, true),
            (Mode::Authenticated, &user, Action::Push, repo, true),
            (Mode::Authenticated, &user, Action::Delete, repo, true),
            (
                Mode::Authenticated,
                &user,
                Action::Catalog,
                Resource::Registry,
                false,
            ),
            (
                Mode::Authenticated,
                &admin,
                Action::Catalog,
                Resource::Registry,
                true,
            ),
            (Mode::Authenticated, &admin, Action::Delete, repo, true),
        ];
        for (mode, subject, action, resource, allowed) in cases {
            let d = authorize(*mode, subject, *action, *resource);
            assert_eq!(
                d == Decision::Allow,
                *allowed,
                "{mode:?} {subject:?} {action:?} {resource:?} -> {d:?}"
            );
        }
    }

    #[test]
    fn anonymous_is_asked_to_log_in() {
        let d = authorize(
            Mode::Authenticated,
            &Subject::Anonymous,
            Action::Pull,
            Resource::Registry,
        );
        assert_eq!(d, Decision::NeedsLogin);
    }
}
