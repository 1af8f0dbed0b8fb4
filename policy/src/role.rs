//! Project roles with Harbor's ids, and what each may do in its project.

use crate::decide::Action;

/// A member's role in a project. The discriminants are Harbor's role ids,
/// which the API and stored rows use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    ProjectAdmin = 1,
    Developer = 2,
    Guest = 3,
    Maintainer = 4,
    LimitedGuest = 5,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::ProjectAdmin,
        Role::Maintainer,
        Role::Developer,
        Role::Guest,
        Role::LimitedGuest,
    ];

    pub fn id(self) -> i64 {
        self as i64
    }

    pub fn from_id(id: i64) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.id() == id)
    }

    /// Harbor's `role_name`.
    pub fn name(self) -> &'static str {
        match self {
            Role::ProjectAdmin => "projectAdmin",
            Role::Maintainer => "maintainer",
            Role::Developer => "developer",
            Role::Guest => "guest",
            Role::LimitedGuest => "limitedGuest",
        }
    }

    /// How much the role may do; a user with several memberships (directly
    /// and through groups) acts with the strongest.
    pub fn rank(self) -> u8 {
        match self {
            Role::ProjectAdmin => 5,
            Role::Maintainer => 4,
            Role::Developer => 3,
            Role::Guest => 2,
            Role::LimitedGuest => 1,
        }
    }

    /// The strongest of two optional roles.
    pub fn strongest(a: Option<Role>, b: Option<Role>) -> Option<Role> {
        match (a, b) {
            (Some(x), Some(y)) => Some(if x.rank() >= y.rank() { x } else { y }),
            (x, None) => x,
            (None, y) => y,
        }
    }

    /// Harbor's permission matrix for project-scoped actions.
    pub fn allows(self, action: Action) -> bool {
        use Action::*;
        use Role::*;
        match action {
            // Harbor grants LimitedGuest quota reads too.
            Pull | ReadProject | ReadQuota => true,
            Push => matches!(self, ProjectAdmin | Maintainer | Developer),
            Delete => matches!(self, ProjectAdmin | Maintainer),
            // Harbor: robot read/list for every role but LimitedGuest (the
            // secrets are never shown back).
            // Harbor: labels are listed by every role but LimitedGuest.
            ListMembers | ReadProjectLogs | ReadRobots | ReadLabels => {
                !matches!(self, LimitedGuest)
            }
            // Harbor: project admins and maintainers manage the project's
            // labels; developers may also put them on artifacts.
            ManageLabels => matches!(self, ProjectAdmin | Maintainer),
            LabelArtifacts => matches!(self, ProjectAdmin | Maintainer | Developer),
            // Harbor: immutable tag rules are listed by project admins and
            // maintainers only; retention is read by developers too.
            ReadImmutableRules => matches!(self, ProjectAdmin | Maintainer),
            ReadRetention => matches!(self, ProjectAdmin | Maintainer | Developer),
            // Harbor: project admins and maintainers manage immutable tag
            // rules. Harbor also lets developers change and run retention;
            // berth keeps that to the roles that may delete artifacts,
            // since a retention run deletes them.
            ManageImmutableRules | ManageRetention => matches!(self, ProjectAdmin | Maintainer),
            // Harbor: maintainers list and read webhook policies; only
            // project admins change them.
            ReadWebhooks => matches!(self, ProjectAdmin | Maintainer),
            UpdateProject | DeleteProject | ManageMembers | ManageRobots | ManageWebhooks => {
                self == ProjectAdmin
            }
            // System-wide actions are not granted by a project role.
            Catalog
            | CreateProject
            | ListUsers
            | ManageUsers
            | SearchUserGroups
            | ReadStatistics
            | ReadStorageTotal
            | ReadAuditLogs
            | PurgeAuditLogs
            | ManageSystemRobots
            | ReadMetrics
            | ManageRegistries
            | ManageQuotas
            | ManageGc
            | ReadGlobalLabels
            | ManageGlobalLabels
            | ReadConfiguration
            | ManageConfiguration
            | ResetForgottenPassword
            | ManageReplication
            | ReadAccount
            | UpdateAccount => false,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::ProjectAdmin => "ProjectAdmin",
            Role::Maintainer => "Maintainer",
            Role::Developer => "Developer",
            Role::Guest => "Guest",
            Role::LimitedGuest => "LimitedGuest",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::from_id(r.id()), Some(r));
        }
        assert_eq!(Role::from_id(0), None);
        assert_eq!(Role::from_id(6), None);
        assert_eq!(Role::ProjectAdmin.id(), 1);
        assert_eq!(Role::Developer.id(), 2);
        assert_eq!(Role::Guest.id(), 3);
        assert_eq!(Role::Maintainer.id(), 4);
        assert_eq!(Role::LimitedGuest.id(), 5);
    }

    #[test]
    fn strongest_role_wins() {
        use Role::*;
        assert_eq!(
            Role::strongest(Some(Guest), Some(Maintainer)),
            Some(Maintainer)
        );
        assert_eq!(Role::strongest(Some(Developer), None), Some(Developer));
        assert_eq!(
            Role::strongest(None, Some(LimitedGuest)),
            Some(LimitedGuest)
        );
        assert_eq!(Role::strongest(None, None), None);
        assert_eq!(
            Role::strongest(Some(ProjectAdmin), Some(Maintainer)),
            Some(ProjectAdmin)
        );
    }

    /// Harbor's matrix, one row per action: which of
    /// [ProjectAdmin, Maintainer, Developer, Guest, LimitedGuest] may.
    #[test]
    fn permission_matrix() {
        use Action::*;
        let rows: &[(Action, [bool; 5])] = &[
            (Pull, [true, true, true, true, true]),
            (ReadProject, [true, true, true, true, true]),
            (Push, [true, true, true, false, false]),
            (Delete, [true, true, false, false, false]),
            (ReadRobots, [true, true, true, true, false]),
            (ListMembers, [true, true, true, true, false]),
            (ReadProjectLogs, [true, true, true, true, false]),
            (UpdateProject, [true, false, false, false, false]),
            (DeleteProject, [true, false, false, false, false]),
            (ManageMembers, [true, false, false, false, false]),
            (ManageRobots, [true, false, false, false, false]),
            (ReadQuota, [true, true, true, true, true]),
            (ReadImmutableRules, [true, true, false, false, false]),
            (ReadRetention, [true, true, true, false, false]),
            (ManageImmutableRules, [true, true, false, false, false]),
            (ManageRetention, [true, true, false, false, false]),
            (ReadWebhooks, [true, true, false, false, false]),
            (ManageWebhooks, [true, false, false, false, false]),
            (ReadLabels, [true, true, true, true, false]),
            (ManageLabels, [true, true, false, false, false]),
            (LabelArtifacts, [true, true, true, false, false]),
            (ManageGlobalLabels, [false; 5]),
            (ManageQuotas, [false; 5]),
            (Catalog, [false; 5]),
            (CreateProject, [false; 5]),
            (ManageUsers, [false; 5]),
            (ReadAuditLogs, [false; 5]),
        ];
        for (action, expected) in rows {
            for (role, allowed) in Role::ALL.iter().zip(expected) {
                assert_eq!(role.allows(*action), *allowed, "{role} {action:?}");
            }
        }
    }
}
