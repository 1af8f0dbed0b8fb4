//! Token grants: what a token may do, decided when it is issued and
//! checked on every request.

use crate::decide::{authorize, Action, Decision, Project, Resource, Subject};

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
/// the intersection of what is asked and what is allowed. `project` holds
/// the facts about the repository's project (ignored for the catalog).
pub fn grant(
    subject: &Subject,
    target: &Target,
    project: Project<'_>,
    requested: &[Action],
) -> Vec<Action> {
    let resource = match target {
        Target::Repository(_) => Resource::Project(project),
        Target::Catalog => Resource::System,
    };
    let mut out: Vec<Action> = requested
        .iter()
        .copied()
        .filter(|a| match (target, a) {
            // Catalog access only makes sense on the catalog target, and
            // only registry actions on repositories.
            (Target::Catalog, Action::Catalog) => true,
            (Target::Repository(_), Action::Pull | Action::Push | Action::Delete) => true,
            _ => false,
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
