//! Robot account permissions: Harbor's `{kind, namespace, access:
//! [{resource, action}]}` entries, turned into the actions policy checks.

use crate::decide::{Action, Project};

/// Which projects a robot permission covers.
///
/// A project is named by its id, as Harbor records robot scope: a project
/// deleted and created again under the same name is another project, and
/// a robot of the old one has no access to it. Project ids are never
/// reused (storage keeps a high-water mark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    /// `*`: every project (system robots only).
    All,
    /// The project with this id.
    Project(i64),
    /// A project that no longer exists: covers nothing.
    Gone,
}

impl Namespace {
    pub fn covers(&self, project: &Project<'_>) -> bool {
        match self {
            Namespace::All => true,
            Namespace::Project(id) => project.id == Some(*id),
            Namespace::Gone => false,
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
        let team = Project {
            id: Some(7),
            ..Project::missing("team")
        };
        // The same name under another id is another project.
        let again = Project {
            id: Some(8),
            ..Project::missing("team")
        };
        assert!(Namespace::All.covers(&team));
        assert!(Namespace::Project(7).covers(&team));
        assert!(!Namespace::Project(7).covers(&again));
        assert!(!Namespace::Project(7).covers(&Project::missing("team")));
        assert!(!Namespace::Gone.covers(&team));
    }
}
