//! The decision function and its vocabulary.

use crate::robot::RobotPermission;
use crate::role::Role;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Anonymous,
    User {
        name: String,
        admin: bool,
    },
    /// A robot account acts only within its permissions.
    Robot {
        name: String,
        permissions: Vec<RobotPermission>,
    },
}

impl Subject {
    pub fn name(&self) -> &str {
        match self {
            Subject::Anonymous => "anonymous",
            Subject::User { name, .. } | Subject::Robot { name, .. } => name,
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Subject::User { admin: true, .. })
    }
}

/// Whether `action` may go ahead while the registry is in read-only mode
/// (maintenance, migrations): what changes stored content may not.
pub fn allowed_when_read_only(action: Action) -> bool {
    !matches!(
        action,
        Action::Push | Action::Delete | Action::DeleteProject
    )
}

/// What they want to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    // The registry (`/v2`), on a repository of a project.
    Pull,
    Push,
    /// Delete artifacts, tags and repositories.
    Delete,
    /// List all repositories (`/v2/_catalog`).
    Catalog,
    // A project, through the management API.
    ReadProject,
    UpdateProject,
    DeleteProject,
    ListMembers,
    ManageMembers,
    ReadProjectLogs,
    ReadRobots,
    ManageRobots,
    /// Read the project's storage quota and usage.
    ReadQuota,
    /// Read the project's tag immutability rules.
    ReadImmutableRules,
    /// Read the project's retention policy and its runs.
    ReadRetention,
    ManageImmutableRules,
    /// Change the retention policy and run it.
    ManageRetention,
    /// See the project's webhook policies and their deliveries.
    ReadWebhooks,
    /// Create, change and delete them (their targets receive the
    /// project's events, and their auth headers are secrets).
    ManageWebhooks,
    /// List the project's own labels.
    ReadLabels,
    /// Create, change and delete the project's own labels.
    ManageLabels,
    /// Put labels on the project's artifacts and take them off.
    LabelArtifacts,
    // The system.
    CreateProject,
    ListUsers,
    ManageUsers,
    /// Find recorded user groups by name (to make one a member): anyone
    /// signed in, as Harbor.
    SearchUserGroups,
    ReadAuditLogs,
    /// Purge old audit log entries, now or on a schedule, and see the
    /// purges.
    PurgeAuditLogs,
    ManageSystemRobots,
    /// Scrape `/metrics` on the main listener (it names projects).
    ReadMetrics,
    /// Registry endpoints (upstreams with their credentials) and the
    /// projects that cache or front them.
    ManageRegistries,
    /// Set storage quotas (raising one is an administrator's call).
    ManageQuotas,
    /// Run garbage collection, see its history and set its schedule.
    ManageGc,
    /// List global labels (any signed-in caller: they are offered on
    /// every project's artifacts).
    ReadGlobalLabels,
    /// Create, change and delete global labels.
    ManageGlobalLabels,
    /// Counts of the projects and repositories the caller may see
    /// (Harbor's `/statistics`): anyone signed in.
    ReadStatistics,
    /// The bytes the whole registry stores.
    ReadStorageTotal,
    /// The effective configuration (secrets redacted) and the health of
    /// the components behind it.
    ReadConfiguration,
    /// Change run-time settings and send test mails through the
    /// configured mail server.
    ManageConfiguration,
    /// Ask for a password-reset mail, and set a new password with its
    /// link: open to anyone not signed in as a robot (the link is the
    /// credential).
    ResetForgottenPassword,
    /// Replication policies and executions: they read and write any
    /// project with a registry endpoint's credentials.
    ManageReplication,
    // A user account (own or someone else's).
    ReadAccount,
    UpdateAccount,
}

impl Action {
    /// The action's name in token scopes and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
            Action::Catalog => "*",
            Action::ReadProject => "read the project",
            Action::UpdateProject => "update the project",
            Action::DeleteProject => "delete the project",
            Action::ListMembers => "list members",
            Action::ManageMembers => "manage members",
            Action::ReadProjectLogs => "read the project's audit log",
            Action::ReadRobots => "list robot accounts",
            Action::ManageRobots => "manage robot accounts",
            Action::CreateProject => "create projects",
            Action::ListUsers => "list users",
            Action::ManageUsers => "manage users",
            Action::SearchUserGroups => "search user groups",
            Action::ReadAuditLogs => "read the audit log",
            Action::PurgeAuditLogs => "purge the audit log",
            Action::ManageSystemRobots => "manage system robot accounts",
            Action::ReadMetrics => "read the metrics",
            Action::ManageRegistries => "manage registry endpoints",
            Action::ReadQuota => "read the project's quota",
            Action::ReadImmutableRules => "read the tag immutability rules",
            Action::ReadRetention => "read the tag retention policy",
            Action::ManageImmutableRules => "manage tag immutability rules",
            Action::ManageRetention => "manage and run tag retention",
            Action::ReadWebhooks => "read the webhook policies",
            Action::ManageWebhooks => "manage webhook policies",
            Action::ReadLabels => "list the project's labels",
            Action::ManageLabels => "manage the project's labels",
            Action::LabelArtifacts => "add or remove labels on artifacts",
            Action::ReadGlobalLabels => "list global labels",
            Action::ManageGlobalLabels => "manage global labels",
            Action::ManageQuotas => "change storage quotas",
            Action::ManageGc => "run or schedule garbage collection",
            Action::ReadStatistics => "read the statistics",
            Action::ReadStorageTotal => "read the registry's total storage",
            Action::ReadConfiguration => "read the configuration",
            Action::ManageConfiguration => "change the configuration",
            Action::ResetForgottenPassword => "reset a forgotten password",
            Action::ManageReplication => "manage replication",
            Action::ReadAccount => "read this account",
            Action::UpdateAccount => "change this account",
        }
    }

    fn on_project(self) -> bool {
        matches!(
            self,
            Action::Pull
                | Action::Push
                | Action::Delete
                | Action::ReadProject
                | Action::UpdateProject
                | Action::DeleteProject
                | Action::ListMembers
                | Action::ManageMembers
                | Action::ReadProjectLogs
                | Action::ReadRobots
                | Action::ManageRobots
                | Action::ReadQuota
                | Action::ReadImmutableRules
                | Action::ReadRetention
                | Action::ManageImmutableRules
                | Action::ManageRetention
                | Action::ReadWebhooks
                | Action::ManageWebhooks
                | Action::ReadLabels
                | Action::ManageLabels
                | Action::LabelArtifacts
        )
    }
}

/// What policy needs to know about a project: whether it exists (and its
/// id), whether it is public, and the caller's strongest role in it
/// (directly or through an LDAP group). Gathered by the caller, decided
/// here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Project<'a> {
    pub name: &'a str,
    /// The stored project's id (`None` when it does not exist).
    pub id: Option<i64>,
    pub exists: bool,
    pub public: bool,
    pub role: Option<Role>,
    /// The name is not a project: in mirror mode the mirror project stands
    /// in for it, for pulls only (the facts above are the mirror's).
    pub stand_in: bool,
}

impl<'a> Project<'a> {
    /// A project name that is not in the database.
    pub fn missing(name: &'a str) -> Project<'a> {
        Project {
            name,
            id: None,
            exists: false,
            public: false,
            role: None,
            stand_in: false,
        }
    }
}

/// What they want to do it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// A project, or a repository in it.
    Project(Project<'a>),
    /// The registry as a whole: the catalog, users, the audit log.
    System,
    /// A user account; `own` when it is the caller's.
    Account { own: bool },
    /// A project to be created; `admin_only` when the configuration keeps
    /// that to administrators (Harbor's `project_creation_restriction`).
    NewProject { admin_only: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Denied to an anonymous caller: logging in may help.
    NeedsLogin,
    /// Denied to a caller who may know the resource exists, with the
    /// reason to show (403).
    Deny(String),
    /// The caller may not learn whether the project exists (404 on the
    /// API); the message still names it and says what to do.
    Hidden(String),
}

/// Decides whether `subject` may perform `action` on `resource`. Anything
/// not explicitly allowed is denied.
pub fn authorize(subject: &Subject, action: Action, resource: Resource<'_>) -> Decision {
    match resource {
        Resource::Project(p) if action.on_project() => on_project(subject, action, p),
        Resource::Project(p) => Decision::Deny(format!(
            "`{}` is not an action on project `{}`",
            action.as_str(),
            p.name
        )),
        Resource::System => on_system(subject, action),
        Resource::Account { own } => on_account(subject, action, own),
        Resource::NewProject { admin_only } => match (subject, action) {
            (Subject::User { admin: false, name }, Action::CreateProject) if admin_only => {
                Decision::Deny(format!(
                    "`{name}` may not create projects: this registry keeps that to system \
                     administrators (project_creation_restriction is adminonly)"
                ))
            }
            (s, Action::CreateProject) => on_system(s, Action::CreateProject),
            (_, a) => Decision::Deny(format!(
                "`{}` is not an action on a new project",
                a.as_str()
            )),
        },
    }
}

/// Whether this subject could create the project it is told is missing:
/// the message differs (Harbor's default lets every user create projects).
fn may_create_projects(subject: &Subject) -> bool {
    on_system(subject, Action::CreateProject) == Decision::Allow
}

fn missing_project(subject: &Subject, name: &str) -> Decision {
    if may_create_projects(subject) {
        Decision::Hidden(format!(
            "project `{name}` does not exist; create it first (POST /api/v2.0/projects \
             with {{\"project_name\":\"{name}\"}}) or push to an existing project"
        ))
    } else {
        not_found_or_denied(name)
    }
}

fn not_found_or_denied(name: &str) -> Decision {
    Decision::Hidden(format!(
        "project `{name}` was not found or you have no access to it; \
         check the name, or ask a project admin to add you as a member"
    ))
}

fn on_project(subject: &Subject, action: Action, p: Project<'_>) -> Decision {
    // A mirror stand-in serves pulls of what the upstream has; anything
    // else would write into (or read the settings of) a project that does
    // not exist, under the mirror's roles.
    if p.stand_in && action != Action::Pull {
        return match subject {
            Subject::Anonymous => Decision::NeedsLogin,
            _ => missing_project(subject, p.name),
        };
    }
    let public_read = p.exists && p.public && matches!(action, Action::Pull | Action::ReadProject);
    match subject {
        Subject::Anonymous if public_read => Decision::Allow,
        Subject::Anonymous => Decision::NeedsLogin,
        Subject::User { admin: true, .. } if p.exists => Decision::Allow,
        _ if !p.exists => missing_project(subject, p.name),
        Subject::User { name, .. } => match p.role {
            Some(role) if role.allows(action) => Decision::Allow,
            Some(role) => Decision::Deny(format!(
                "user `{name}` has the {role} role in project `{}`, which may not {}; \
                 ask a project admin for a role that may",
                p.name,
                action.as_str()
            )),
            None if public_read => Decision::Allow,
            None if p.public => Decision::Deny(format!(
                "user `{name}` is not a member of project `{}` and may only pull from it; \
                 ask a project admin to add you",
                p.name
            )),
            None => not_found_or_denied(p.name),
        },
        Subject::Robot { name, permissions } => {
            let mine: Vec<&RobotPermission> = permissions
                .iter()
                .filter(|perm| perm.namespace.covers(&p))
                .collect();
            let granted = mine.iter().any(|perm| perm.actions.contains(&action))
                || (action == Action::ReadProject && !mine.is_empty());
            if granted || public_read {
                Decision::Allow
            } else if mine.is_empty() && !p.public {
                not_found_or_denied(p.name)
            } else {
                Decision::Deny(format!(
                    "robot account `{name}` has no `{}` permission on project `{}`",
                    action.as_str(),
                    p.name
                ))
            }
        }
    }
}

fn on_system(subject: &Subject, action: Action) -> Decision {
    match (subject, action) {
        (Subject::Anonymous | Subject::User { .. }, Action::ResetForgottenPassword) => {
            Decision::Allow
        }
        (Subject::Anonymous, _) => Decision::NeedsLogin,
        (Subject::User { admin: true, .. }, a) if !a.on_project() => Decision::Allow,
        (Subject::User { .. } | Subject::Robot { .. }, Action::ReadGlobalLabels) => Decision::Allow,
        (Subject::User { .. }, Action::SearchUserGroups) => Decision::Allow,
        (Subject::User { .. } | Subject::Robot { .. }, Action::ReadStatistics) => Decision::Allow,
        (Subject::User { .. }, Action::CreateProject) => Decision::Allow,
        (Subject::Robot { permissions, .. }, Action::Catalog)
            if permissions.iter().any(|p| {
                p.namespace == crate::robot::Namespace::All && p.actions.contains(&Action::Catalog)
            }) =>
        {
            Decision::Allow
        }
        (s, Action::Catalog) => Decision::Deny(format!(
            "`{}` may not list the catalog; only administrators (and system robots with the \
             catalog permission) may",
            s.name()
        )),
        (s, a) => Decision::Deny(format!(
            "`{}` may not {}; only system administrators may",
            s.name(),
            a.as_str()
        )),
    }
}

fn on_account(subject: &Subject, action: Action, own: bool) -> Decision {
    match (subject, action) {
        (Subject::Anonymous, _) => Decision::NeedsLogin,
        (Subject::User { admin: true, .. }, Action::ReadAccount | Action::UpdateAccount) => {
            Decision::Allow
        }
        (Subject::User { .. }, Action::ReadAccount | Action::UpdateAccount) if own => {
            Decision::Allow
        }
        (s, a) => Decision::Deny(format!(
            "`{}` may not {}; only the account's owner and system administrators may",
            s.name(),
            a.as_str()
        )),
    }
}
