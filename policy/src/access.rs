//! Token grants: what a token may do, decided when it is issued and
//! checked on every request.

use crate::decide::{authorize, Action, Decision, Resource, Subject};

/// What a grant applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Repository(String),
    /// `registry:catalog:*`
    Catalog,
}

/// One entry of a token's access list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub target: Target,
    pub actions: Vec<Action>,
}

/// The subset of `requested` that policy allows: the token service grants
/// the intersection of what is asked and what is allowed.
pub fn grant(
    subject: &Subject,
    target: &Target,
    public: bool,
    requested: &[Action],
) -> Vec<Action> {
    let resource = match target {
        Target::Repository(name) => Resource::Repository { name, public },
        Target::Catalog => Resource::Registry,
    };
    let mut out: Vec<Action> = requested
        .iter()
        .copied()
        .filter(|a| match (target, a) {
            // Catalog access only makes sense on the catalog target, and
            // repository actions only on repositories.
            (Target::Catalog, Action::Catalog) => true,
            (Target::Catalog, _) | (Target::Repository(_), Action::Catalog) => false,
            _ => true,
        })
        .filter(|a| authorize(subject, *a, resource) == Decision::Allow)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether a token's access list covers `action` on `target`.
pub fn covers(access: &[Access], action: Action, target: &Target) -> bool {
    access
        .iter()
        .any(|a| &a.target == target && a.actions.contains(&action))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(n: &str) -> Target {
        Target::Repository(n.into())
    }

    #[test]
    fn grants_the_intersection() {
        let anon = Subject::Anonymous;
        let user = Subject::User {
            name: "alice".into(),
            admin: false,
        };
        let admin = Subject::User {
            name: "admin".into(),
            admin: true,
        };
        let all = [Action::Pull, Action::Push, Action::Delete];
        // (subject, target, public, requested, expected grant)
        type Case<'a> = (&'a Subject, Target, bool, &'a [Action], &'a [Action]);
        let cases: &[Case] = &[
            (&anon, repo("library/a"), true, &all, &[Action::Pull]),
            (&anon, repo("team/a"), false, &all, &[]),
            (
                &user,
                repo("team/a"),
                false,
                &[Action::Pull, Action::Push],
                &[Action::Pull, Action::Push],
            ),
            (&user, Target::Catalog, false, &[Action::Catalog], &[]),
            (
                &admin,
                Target::Catalog,
                false,
                &[Action::Catalog],
                &[Action::Catalog],
            ),
            (&admin, repo("team/a"), false, &[Action::Catalog], &[]),
            (&admin, Target::Catalog, false, &[Action::Pull], &[]),
        ];
        for (subject, target, public, requested, expected) in cases {
            assert_eq!(
                &grant(subject, target, *public, requested),
                expected,
                "{subject:?} {target:?} {requested:?}"
            );
        }
    }

    #[test]
    fn covers_only_the_granted_repository_and_actions() {
        let access = vec![Access {
            target: repo("team/a"),
            actions: vec![Action::Pull],
        }];
        assert!(covers(&access, Action::Pull, &repo("team/a")));
        assert!(!covers(&access, Action::Push, &repo("team/a")));
        assert!(!covers(&access, Action::Pull, &repo("team/b")));
        assert!(!covers(&access, Action::Catalog, &Target::Catalog));
        assert!(!covers(&[], Action::Pull, &repo("team/a")));
    }
}
