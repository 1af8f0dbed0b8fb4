//! Robot account permissions: Harbor's `{kind, namespace, access:
//! [{resource, action}]}` entries, turned into the actions policy checks.

use crate::decide::Action;

/// Which projects a robot permission covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    /// `*`: every project (system robots only).
    All,
    Project(String),
}

impl Namespace {
    pub fn parse(s: &str) -> Namespace {
        if s == "*" {
            Namespace::All
        } else {
            Namespace::Project(s.to_owned())
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Namespace::All => "*",
            Namespace::Project(p) => p,
        }
    }

    pub fn covers(&self, project: &str) -> bool {
        match self {
            Namespace::All => true,
            Namespace::Project(p) => p == project,
        }
    }
}

/// What a robot may do in a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotPermission {
    pub namespace: Namespace,
    pub actions: Vec<Action>,
}

/// The `(resource, action)` pairs a robot permission may list, and the
/// registry action each grants. Harbor's UI offers more resources; these
/// are the ones berth enforces, and anything else is refused at creation
/// rather than silently ignored.
pub const ROBOT_ACCESS: &[(&str, &str, Action)] = &[
    ("repository", "pull", Action::Pull),
    ("repository", "push", Action::Push),
    ("repository", "delete", Action::Delete),
    ("artifact", "delete", Action::Delete),
    ("tag", "delete", Action::Delete),
    ("tag", "create", Action::Push),
    ("catalog", "list", Action::Catalog),
];

/// The action a `(resource, action)` pair grants, if berth knows it.
pub fn robot_action(resource: &str, action: &str) -> Option<Action> {
    ROBOT_ACCESS
        .iter()
        .find(|(r, a, _)| *r == resource && *a == action)
        .map(|(_, _, act)| *act)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_pairs() {
        assert_eq!(robot_action("repository", "pull"), Some(Action::Pull));
        assert_eq!(robot_action("repository", "push"), Some(Action::Push));
        assert_eq!(robot_action("artifact", "delete"), Some(Action::Delete));
        assert_eq!(robot_action("catalog", "list"), Some(Action::Catalog));
        assert_eq!(robot_action("repository", "fly"), None);
        assert_eq!(robot_action("helm-chart", "pull"), None);
    }

    #[test]
    fn namespaces() {
        assert!(Namespace::parse("*").covers("anything"));
        assert!(Namespace::parse("team").covers("team"));
        assert!(!Namespace::parse("team").covers("other"));
        assert_eq!(Namespace::parse("*").as_str(), "*");
    }
}
