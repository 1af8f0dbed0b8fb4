//! Decision tables: every rule of the policy as rows of cases.

use crate::{
    allowed_when_read_only, authorize, covers, grant, Access, Action, Decision, Namespace, Project,
    Resource, RobotPermission, Role, Subject, Target,
};

fn user(name: &str) -> Subject {
    Subject::User {
        name: name.into(),
        admin: false,
    }
}

fn admin() -> Subject {
    Subject::User {
        name: "admin".into(),
        admin: true,
    }
}

fn robot(perms: &[(&str, &[Action])]) -> Subject {
    Subject::Robot {
        name: "robot$ci".into(),
        permissions: perms
            .iter()
            .map(|(ns, actions)| RobotPermission {
                namespace: match *ns {
                    "*" => Namespace::All,
                    name => Namespace::Project(id_of(name)),
                },
                actions: actions.to_vec(),
            })
            .collect(),
    }
}

/// The id the tables' projects are stored under.
fn id_of(name: &str) -> i64 {
    name.bytes().fold(0, |acc, b| acc * 31 + i64::from(b))
}

fn project(name: &str, public: bool, role: Option<Role>) -> Resource<'_> {
    Resource::Project(Project {
        name,
        id: Some(id_of(name)),
        exists: true,
        public,
        role,
        stand_in: false,
    })
}

/// What a decision looks like in a table: A(llow), L(ogin), D(eny),
/// H(idden).
fn kind(d: &Decision) -> char {
    match d {
        Decision::Allow => 'A',
        Decision::NeedsLogin => 'L',
        Decision::Deny(_) => 'D',
        Decision::Hidden(_) => 'H',
    }
}

#[test]
fn project_decisions() {
    use Action::*;
    let anon = Subject::Anonymous;
    let alice = user("alice");
    let boss = admin();
    let ci = robot(&[("team", &[Pull, Push])]);
    let sys = robot(&[("*", &[Pull])]);
    let private = |role| project("team", false, role);
    let public = |role| project("library", true, role);
    let missing = Resource::Project(Project::missing("nope"));
    let recreated = Resource::Project(Project {
        name: "team",
        id: Some(id_of("team") + 1),
        exists: true,
        public: false,
        role: None,
        stand_in: false,
    });
    let stand_in = Resource::Project(Project {
        name: "phantom",
        id: Some(id_of("mirror")),
        exists: true,
        public: true,
        role: Some(Role::Developer),
        stand_in: true,
    });
    let cases: &[(&Subject, Action, Resource, char)] = &[
        // Anonymous: pull and read public projects, log in for the rest.
        (&anon, Pull, public(None), 'A'),
        (&anon, ReadProject, public(None), 'A'),
        (&anon, Push, public(None), 'L'),
        (&anon, Pull, private(None), 'L'),
        (&anon, Pull, missing, 'L'),
        // Users by role.
        (&alice, Pull, private(Some(Role::LimitedGuest)), 'A'),
        (&alice, Pull, private(Some(Role::Guest)), 'A'),
        (&alice, Push, private(Some(Role::Guest)), 'D'),
        (&alice, Push, private(Some(Role::Developer)), 'A'),
        (&alice, Delete, private(Some(Role::Developer)), 'D'),
        (&alice, Delete, private(Some(Role::Maintainer)), 'A'),
        (&alice, ManageMembers, private(Some(Role::Maintainer)), 'D'),
        (
            &alice,
            ManageMembers,
            private(Some(Role::ProjectAdmin)),
            'A',
        ),
        (&alice, ListMembers, private(Some(Role::LimitedGuest)), 'D'),
        (
            &alice,
            ReadProjectLogs,
            private(Some(Role::LimitedGuest)),
            'D',
        ),
        (&alice, ReadProjectLogs, private(Some(Role::Guest)), 'A'),
        (
            &alice,
            DeleteProject,
            private(Some(Role::ProjectAdmin)),
            'A',
        ),
        // Non-members: a private project is hidden; a public one readable.
        (&alice, Pull, private(None), 'H'),
        (&alice, ReadProject, private(None), 'H'),
        (&alice, Pull, public(None), 'A'),
        (&alice, Push, public(None), 'D'),
        (&alice, Push, missing, 'H'),
        // System admins may do anything to projects that exist.
        (&boss, Push, private(None), 'A'),
        (&boss, DeleteProject, private(None), 'A'),
        (&boss, Push, missing, 'H'),
        // Robots: exactly their permissions, in their namespaces.
        (&ci, Pull, private(None), 'A'),
        (&ci, Push, private(None), 'A'),
        (&ci, Delete, private(None), 'D'),
        (&ci, ReadProject, private(None), 'A'),
        (&ci, ManageMembers, private(None), 'D'),
        (&ci, Push, project("other", false, None), 'H'),
        (&ci, Push, project("other", true, None), 'D'),
        (&ci, Pull, project("other", true, None), 'A'),
        (&ci, Push, missing, 'H'),
        (&sys, Pull, project("any", false, None), 'A'),
        (&sys, Push, project("any", false, None), 'D'),
        // A project created again under the name of a robot's deleted one
        // is another project (another id).
        (&ci, Pull, recreated, 'H'),
        (&ci, Push, recreated, 'H'),
        // A mirror stand-in (a name that is not a project, in mirror
        // mode) is for pulls only, whatever the role in the mirror.
        (&alice, Pull, stand_in, 'A'),
        (&alice, Push, stand_in, 'H'),
        (&alice, Delete, stand_in, 'H'),
        (&alice, ReadProject, stand_in, 'H'),
        (&anon, Push, stand_in, 'L'),
        (&boss, Push, stand_in, 'H'),
        // System actions are not project actions.
        (&boss, Catalog, private(None), 'D'),
        (&boss, ManageQuotas, private(None), 'D'),
        // Quotas: members read them; tag rules: admins and maintainers.
        (&alice, ReadQuota, private(Some(Role::Guest)), 'A'),
        (&alice, ReadQuota, private(Some(Role::LimitedGuest)), 'A'),
        (&alice, ReadQuota, private(None), 'H'),
        (&anon, ReadQuota, public(None), 'L'),
        (
            &alice,
            ReadImmutableRules,
            private(Some(Role::Developer)),
            'D',
        ),
        (
            &alice,
            ReadImmutableRules,
            private(Some(Role::Maintainer)),
            'A',
        ),
        (&alice, ReadRetention, private(Some(Role::Developer)), 'A'),
        (&alice, ReadRetention, private(Some(Role::Guest)), 'D'),
        (
            &alice,
            ManageImmutableRules,
            private(Some(Role::Maintainer)),
            'A',
        ),
        (
            &alice,
            ManageImmutableRules,
            private(Some(Role::Developer)),
            'D',
        ),
        (
            &alice,
            ManageRetention,
            private(Some(Role::ProjectAdmin)),
            'A',
        ),
        (&alice, ManageRetention, private(Some(Role::Guest)), 'D'),
        (&boss, ManageRetention, private(None), 'A'),
        (&ci, ManageRetention, private(None), 'D'),
        (&alice, ReadWebhooks, private(Some(Role::Maintainer)), 'A'),
        (&alice, ReadWebhooks, private(Some(Role::Developer)), 'D'),
        (&alice, ManageWebhooks, private(Some(Role::Maintainer)), 'D'),
        (
            &alice,
            ManageWebhooks,
            private(Some(Role::ProjectAdmin)),
            'A',
        ),
        (&boss, ManageWebhooks, private(None), 'A'),
        (&ci, ReadWebhooks, private(None), 'D'),
    ];
    for (subject, action, resource, expected) in cases {
        let d = authorize(subject, *action, *resource);
        assert_eq!(
            kind(&d),
            *expected,
            "{subject:?} {action:?} {resource:?} -> {d:?}"
        );
    }
}

#[test]
fn project_creation_can_be_kept_to_administrators() {
    use Action::*;
    let open = Resource::NewProject { admin_only: false };
    let closed = Resource::NewProject { admin_only: true };
    let ci = robot(&[("*", &[Push])]);
    let cases: &[(&Subject, Action, Resource, char)] = &[
        (&user("alice"), CreateProject, open, 'A'),
        (&user("alice"), CreateProject, closed, 'D'),
        (&admin(), CreateProject, closed, 'A'),
        (&Subject::Anonymous, CreateProject, open, 'L'),
        (&Subject::Anonymous, CreateProject, closed, 'L'),
        (&ci, CreateProject, open, 'D'),
        (&admin(), Push, closed, 'D'),
    ];
    for (subject, action, resource, expected) in cases {
        let d = authorize(subject, *action, *resource);
        assert_eq!(
            kind(&d),
            *expected,
            "{subject:?} {action:?} {resource:?} -> {d:?}"
        );
    }
    assert!(!allowed_when_read_only(Push));
    assert!(!allowed_when_read_only(Delete));
    assert!(!allowed_when_read_only(DeleteProject));
    assert!(allowed_when_read_only(Pull));
    assert!(allowed_when_read_only(ManageGc));
}

#[test]
fn system_and_account_decisions() {
    use Action::*;
    let anon = Subject::Anonymous;
    let alice = user("alice");
    let boss = admin();
    let cat = robot(&[("*", &[Catalog])]);
    let ci = robot(&[("team", &[Catalog, Pull])]);
    let own = Resource::Account { own: true };
    let other = Resource::Account { own: false };
    let cases: &[(&Subject, Action, Resource, char)] = &[
        (&anon, CreateProject, Resource::System, 'L'),
        (&alice, CreateProject, Resource::System, 'A'),
        (&ci, CreateProject, Resource::System, 'D'),
        (&boss, CreateProject, Resource::System, 'A'),
        (&anon, Catalog, Resource::System, 'L'),
        (&alice, Catalog, Resource::System, 'D'),
        (&boss, Catalog, Resource::System, 'A'),
        (&cat, Catalog, Resource::System, 'A'),
        // Catalog needs the permission on `*`, not on one project.
        (&ci, Catalog, Resource::System, 'D'),
        (&alice, ListUsers, Resource::System, 'D'),
        (&alice, ManageUsers, Resource::System, 'D'),
        (&alice, SearchUserGroups, Resource::System, 'A'),
        (&anon, SearchUserGroups, Resource::System, 'L'),
        (&cat, SearchUserGroups, Resource::System, 'D'),
        (&alice, ReadStatistics, Resource::System, 'A'),
        (&cat, ReadStatistics, Resource::System, 'A'),
        (&anon, ReadStatistics, Resource::System, 'L'),
        (&alice, ReadStorageTotal, Resource::System, 'D'),
        (&cat, ReadStorageTotal, Resource::System, 'D'),
        (&boss, ReadStorageTotal, Resource::System, 'A'),
        (&alice, ReadAuditLogs, Resource::System, 'D'),
        (&alice, ManageSystemRobots, Resource::System, 'D'),
        (&boss, ManageUsers, Resource::System, 'A'),
        (&boss, ReadAuditLogs, Resource::System, 'A'),
        (&boss, PurgeAuditLogs, Resource::System, 'A'),
        (&alice, PurgeAuditLogs, Resource::System, 'D'),
        (&cat, PurgeAuditLogs, Resource::System, 'D'),
        (&anon, PurgeAuditLogs, Resource::System, 'L'),
        (&boss, ManageSystemRobots, Resource::System, 'A'),
        (&boss, ReadMetrics, Resource::System, 'A'),
        (&alice, ReadMetrics, Resource::System, 'D'),
        (&anon, ReadMetrics, Resource::System, 'L'),
        (&cat, ReadMetrics, Resource::System, 'D'),
        (&boss, ManageRegistries, Resource::System, 'A'),
        (&alice, ManageRegistries, Resource::System, 'D'),
        (&anon, ManageRegistries, Resource::System, 'L'),
        (&cat, ManageRegistries, Resource::System, 'D'),
        (&ci, ManageRegistries, Resource::System, 'D'),
        (&boss, ManageQuotas, Resource::System, 'A'),
        (&alice, ManageQuotas, Resource::System, 'D'),
        (&anon, ManageQuotas, Resource::System, 'L'),
        // Global labels: listed by anyone signed in, managed by
        // administrators.
        (&boss, ReadGlobalLabels, Resource::System, 'A'),
        (&alice, ReadGlobalLabels, Resource::System, 'A'),
        (&ci, ReadGlobalLabels, Resource::System, 'A'),
        (&anon, ReadGlobalLabels, Resource::System, 'L'),
        (&boss, ManageGlobalLabels, Resource::System, 'A'),
        (&alice, ManageGlobalLabels, Resource::System, 'D'),
        (&cat, ManageGlobalLabels, Resource::System, 'D'),
        (&anon, ManageGlobalLabels, Resource::System, 'L'),
        // Garbage collection: system administrators only.
        (&boss, ManageGc, Resource::System, 'A'),
        (&alice, ManageGc, Resource::System, 'D'),
        (&anon, ManageGc, Resource::System, 'L'),
        (&cat, ManageGc, Resource::System, 'D'),
        (&ci, ManageGc, Resource::System, 'D'),
        // The configuration: system administrators only.
        (&boss, ReadConfiguration, Resource::System, 'A'),
        (&alice, ReadConfiguration, Resource::System, 'D'),
        (&anon, ReadConfiguration, Resource::System, 'L'),
        (&cat, ReadConfiguration, Resource::System, 'D'),
        (&ci, ReadConfiguration, Resource::System, 'D'),
        (&boss, ManageConfiguration, Resource::System, 'A'),
        (&alice, ManageConfiguration, Resource::System, 'D'),
        (&anon, ManageConfiguration, Resource::System, 'L'),
        (&cat, ManageConfiguration, Resource::System, 'D'),
        // A forgotten password: anyone but a robot may ask (the mail goes
        // to the account's own address), and only on the system.
        (&anon, ResetForgottenPassword, Resource::System, 'A'),
        (&alice, ResetForgottenPassword, Resource::System, 'A'),
        (&boss, ResetForgottenPassword, Resource::System, 'A'),
        (&ci, ResetForgottenPassword, Resource::System, 'D'),
        (&cat, ResetForgottenPassword, Resource::System, 'D'),
        (&anon, ResetForgottenPassword, own, 'L'),
        (&boss, ManageReplication, Resource::System, 'A'),
        (&alice, ManageReplication, Resource::System, 'D'),
        (&anon, ManageReplication, Resource::System, 'L'),
        (&ci, ManageReplication, Resource::System, 'D'),
        (&cat, ManageUsers, Resource::System, 'D'),
        (&anon, ReadAccount, own, 'L'),
        (&alice, ReadAccount, own, 'A'),
        (&alice, UpdateAccount, own, 'A'),
        (&alice, ReadAccount, other, 'D'),
        (&alice, UpdateAccount, other, 'D'),
        (&boss, UpdateAccount, other, 'A'),
        (&ci, ReadAccount, own, 'D'),
    ];
    for (subject, action, resource, expected) in cases {
        let d = authorize(subject, *action, *resource);
        assert_eq!(
            kind(&d),
            *expected,
            "{subject:?} {action:?} {resource:?} -> {d:?}"
        );
    }
}

#[test]
fn messages_name_the_project_and_what_to_do() {
    let alice = user("alice");
    let ci = robot(&[("team", &[Action::Pull])]);
    let missing = Resource::Project(Project::missing("nope"));
    match authorize(&alice, Action::Push, missing) {
        Decision::Hidden(m) => {
            assert!(m.contains("`nope` does not exist"), "{m}");
            assert!(m.contains("create it"), "{m}");
        }
        d => panic!("{d:?}"),
    }
    // A robot cannot create projects: it is told "not found or no access".
    match authorize(&ci, Action::Push, missing) {
        Decision::Hidden(m) => {
            assert!(
                m.contains("`nope` was not found or you have no access"),
                "{m}"
            );
        }
        d => panic!("{d:?}"),
    }
    match authorize(
        &alice,
        Action::Push,
        project("team", false, Some(Role::Guest)),
    ) {
        Decision::Deny(m) => assert!(m.contains("Guest role in project `team`"), "{m}"),
        d => panic!("{d:?}"),
    }
}

#[test]
fn grants_the_intersection() {
    use Action::*;
    let anon = Subject::Anonymous;
    let dev = user("dev");
    let boss = admin();
    let all = [Pull, Push, Delete];
    let public = Project {
        name: "library",
        id: Some(id_of("library")),
        exists: true,
        public: true,
        role: None,
        stand_in: false,
    };
    let as_dev = Project {
        name: "team",
        id: Some(id_of("team")),
        exists: true,
        public: false,
        role: Some(Role::Developer),
        stand_in: false,
    };
    let missing = Project::missing("nope");
    let repo = |n: &str| Target::Repository(n.into());
    type Case<'a> = (&'a Subject, Target, Project<'a>, &'a [Action], &'a [Action]);
    let cases: &[Case] = &[
        (&anon, repo("library/a"), public, &all, &[Pull]),
        (&anon, repo("team/a"), as_dev, &all, &[]),
        (&dev, repo("team/a"), as_dev, &all, &[Pull, Push]),
        (&dev, repo("nope/a"), missing, &all, &[]),
        (&dev, Target::Catalog, missing, &[Catalog], &[]),
        (&boss, Target::Catalog, missing, &[Catalog], &[Catalog]),
        (&boss, repo("team/a"), as_dev, &[Catalog], &[]),
        (&boss, Target::Catalog, missing, &[Pull], &[]),
        (&boss, repo("team/a"), as_dev, &all, &all),
    ];
    for (subject, target, project, requested, expected) in cases {
        assert_eq!(
            &grant(subject, target, *project, requested),
            expected,
            "{subject:?} {target:?} {requested:?}"
        );
    }
}

#[test]
fn covers_only_the_granted_repository_and_actions() {
    let repo = |n: &str| Target::Repository(n.into());
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
