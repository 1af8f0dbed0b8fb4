//! Portal paths, parsed once. Repository names contain slashes, so a
//! repository path is read from the right: an artifact is the segment
//! after the last `artifacts` that holds a `:` (a digest; names never
//! do), and a form's action (`delete`, `tags`) is the path's last word on
//! a POST only, so a repository may itself be called `…/delete`.

use berth_storage::oci::{Digest, Tag};

use super::admin::users::UserChange;
use crate::error::GatewayError;

/// A repository: its project, and its name inside the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPath {
    pub project: String,
    /// Without the project (`app/api` of `team/app/api`).
    pub name: String,
}

impl RepoPath {
    /// The repository page's path.
    pub fn url(&self) -> String {
        format!(
            "/projects/{}/repositories/{}",
            super::page::encode_path(&self.project),
            super::page::encode_path(&self.name)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortalRoute {
    Home,
    Login,
    /// Asking for a password-reset mail.
    ForgotPassword,
    /// Setting a new password with a mailed link.
    ResetPassword,
    Logout,
    Projects,
    Project(String),
    ProjectDelete(String),
    Repositories(String),
    Members(String),
    MemberDelete(String, i64),
    Robots(String),
    RobotDelete(String, i64),
    /// The project's audit log.
    Logs(String),
    /// Tag retention and immutability.
    Policies(String),
    /// Adding a retention rule (POST).
    RetentionRules(String),
    /// Deleting a retention rule, by its place in the policy (POST).
    RetentionRuleDelete(String, usize),
    /// Setting the retention schedule (POST).
    RetentionSchedule(String),
    /// Running the retention policy, for real or dry (POST).
    RetentionRun(String),
    /// A retention task's log: the execution and the task.
    RetentionTaskLog(String, i64, i64),
    /// Adding an immutability rule (POST).
    ImmutableRules(String),
    /// Enabling (`true`) or disabling an immutability rule (POST).
    ImmutableEnable(String, i64, bool),
    ImmutableDelete(String, i64),
    /// The public flag and the proxy cache settings.
    Configuration(String),
    Repository(RepoPath),
    RepositoryDelete(RepoPath),
    Artifact(RepoPath, Digest),
    ArtifactDelete(RepoPath, Digest),
    /// Adding a tag (POST).
    Tags(RepoPath, Digest),
    TagDelete(RepoPath, Digest, Tag),
    /// Putting a label on the artifact (POST), and taking one off.
    Labels(RepoPath, Digest),
    LabelRemove(RepoPath, Digest, i64),
    Search,
    Account,
    /// Changing one's password (POST).
    Password,
    Admin,
    Users,
    /// A change to one user (POST).
    User(i64, UserChange),
    SystemRobots,
    SystemRobotDelete(i64),
    Registries,
    RegistryPing(i64),
    RegistryDelete(i64),
    /// Replication policies (GET), or creating one (POST).
    Replication,
    /// "Replicate now" (POST): the policy's id.
    ReplicationRun(i64),
    ReplicationDelete(i64),
    /// An execution's page: its id.
    ReplicationExecution(i64),
    /// Stopping an execution (POST).
    ReplicationStop(i64),
    /// A task's log: the execution and the task.
    ReplicationTaskLog(i64, i64),
    Quotas,
    /// Setting a project's limit, by quota id (POST).
    Quota(i64),
    Gc,
    GcSchedule,
    GcLog(i64),
    AuditLog,
    System,
    /// The run-time settings form (POST).
    SystemSettings,
    /// The directory's and the mail server's forms (POST).
    SystemDirectory,
    SystemMail,
}

/// Whether a path is the portal's.
pub fn owns(path: &str) -> bool {
    matches!(
        path,
        "/" | "/login"
            | "/logout"
            | "/forgot-password"
            | "/reset-password"
            | "/projects"
            | "/admin"
            | "/search"
            | "/account"
    ) || ["/projects/", "/admin/", "/static/", "/account/"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// Parses a portal path; `post` says whether a trailing action word is one.
pub fn parse(path: &str, post: bool) -> Result<PortalRoute, GatewayError> {
    let not_found = || GatewayError::NotFound(path.to_owned());
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let number = |id: &str| id.parse::<i64>().map_err(|_| not_found());
    Ok(match s.as_slice() {
        [] => PortalRoute::Home,
        ["login"] => PortalRoute::Login,
        ["forgot-password"] => PortalRoute::ForgotPassword,
        ["reset-password"] => PortalRoute::ResetPassword,
        ["logout"] => PortalRoute::Logout,
        ["projects"] => PortalRoute::Projects,
        ["search"] => PortalRoute::Search,
        ["account"] => PortalRoute::Account,
        ["account", "password"] if post => PortalRoute::Password,
        ["admin"] => PortalRoute::Admin,
        ["admin", "gc"] => PortalRoute::Gc,
        ["admin", "gc", "schedule"] if post => PortalRoute::GcSchedule,
        ["admin", "gc", id, "log"] => PortalRoute::GcLog(number(id)?),
        ["admin", "users"] => PortalRoute::Users,
        ["admin", "users", id, action] if post => {
            let change = match *action {
                "sysadmin" => UserChange::Admin,
                "disable" => UserChange::Disable,
                "password" => UserChange::Password,
                "delete" => UserChange::Delete,
                _ => return Err(not_found()),
            };
            PortalRoute::User(number(id)?, change)
        }
        ["admin", "robots"] => PortalRoute::SystemRobots,
        ["admin", "robots", id, "delete"] if post => PortalRoute::SystemRobotDelete(number(id)?),
        ["admin", "registries"] => PortalRoute::Registries,
        ["admin", "registries", id, "ping"] if post => PortalRoute::RegistryPing(number(id)?),
        ["admin", "registries", id, "delete"] if post => PortalRoute::RegistryDelete(number(id)?),
        ["admin", "replication"] => PortalRoute::Replication,
        // Executions before a policy's actions: `executions` is no id.
        ["admin", "replication", "executions", id] => {
            PortalRoute::ReplicationExecution(number(id)?)
        }
        ["admin", "replication", "executions", id, "stop"] if post => {
            PortalRoute::ReplicationStop(number(id)?)
        }
        ["admin", "replication", "executions", id, "tasks", task, "log"] if !post => {
            PortalRoute::ReplicationTaskLog(number(id)?, number(task)?)
        }
        ["admin", "replication", id, "run"] if post => PortalRoute::ReplicationRun(number(id)?),
        ["admin", "replication", id, "delete"] if post => {
            PortalRoute::ReplicationDelete(number(id)?)
        }
        ["admin", "quotas"] => PortalRoute::Quotas,
        ["admin", "quotas", id] if post => PortalRoute::Quota(number(id)?),
        ["admin", "logs"] => PortalRoute::AuditLog,
        ["admin", "system"] => PortalRoute::System,
        ["admin", "system", "settings"] if post => PortalRoute::SystemSettings,
        ["admin", "system", "directory"] if post => PortalRoute::SystemDirectory,
        ["admin", "system", "mail"] if post => PortalRoute::SystemMail,
        ["projects", p] => PortalRoute::Project((*p).to_owned()),
        ["projects", p, "delete"] if post => PortalRoute::ProjectDelete((*p).to_owned()),
        ["projects", p, "repositories"] => PortalRoute::Repositories((*p).to_owned()),
        ["projects", p, "members"] => PortalRoute::Members((*p).to_owned()),
        ["projects", p, "members", mid, "delete"] if post => {
            let mid = mid.parse::<i64>().map_err(|_| not_found())?;
            PortalRoute::MemberDelete((*p).to_owned(), mid)
        }
        ["projects", p, "robots"] => PortalRoute::Robots((*p).to_owned()),
        ["projects", p, "robots", id, "delete"] if post => {
            let id = id.parse::<i64>().map_err(|_| not_found())?;
            PortalRoute::RobotDelete((*p).to_owned(), id)
        }
        ["projects", p, "logs"] => PortalRoute::Logs((*p).to_owned()),
        ["projects", p, "configuration"] => PortalRoute::Configuration((*p).to_owned()),
        ["projects", p, "policies", rest @ ..] => {
            policies_route(p, rest, post).ok_or_else(not_found)?
        }
        ["projects", p, "repositories", rest @ ..] if !rest.is_empty() => {
            repository_route(p, rest, post).ok_or_else(not_found)??
        }
        _ => return Err(not_found()),
    })
}

/// `/projects/<p>/policies/...`: the page, its forms (POST only) and the
/// retention task logs.
fn policies_route(project: &str, rest: &[&str], post: bool) -> Option<PortalRoute> {
    let p = project.to_owned();
    let id = |s: &str| s.parse::<i64>().ok();
    Some(match rest {
        [] => PortalRoute::Policies(p),
        ["retention", "rules"] if post => PortalRoute::RetentionRules(p),
        ["retention", "rules", n, "delete"] if post => {
            PortalRoute::RetentionRuleDelete(p, n.parse().ok()?)
        }
        ["retention", "schedule"] if post => PortalRoute::RetentionSchedule(p),
        ["retention", "run"] if post => PortalRoute::RetentionRun(p),
        ["retention", eid, "tasks", tid, "log"] if !post => {
            PortalRoute::RetentionTaskLog(p, id(eid)?, id(tid)?)
        }
        ["immutable"] if post => PortalRoute::ImmutableRules(p),
        ["immutable", rule, "enable"] if post => PortalRoute::ImmutableEnable(p, id(rule)?, true),
        ["immutable", rule, "disable"] if post => PortalRoute::ImmutableEnable(p, id(rule)?, false),
        ["immutable", rule, "delete"] if post => PortalRoute::ImmutableDelete(p, id(rule)?),
        _ => return None,
    })
}

fn repository_route(
    project: &str,
    rest: &[&str],
    post: bool,
) -> Option<Result<PortalRoute, GatewayError>> {
    let repo = |upto: usize| {
        (upto > 0).then(|| RepoPath {
            project: project.to_owned(),
            name: rest[..upto].join("/"),
        })
    };
    // The last `artifacts/<digest>` pair, if any.
    let at = (0..rest.len().saturating_sub(1))
        .rev()
        .find(|&i| rest[i] == "artifacts" && rest[i + 1].contains(':'));
    let Some(i) = at else {
        let n = rest.len();
        return Some(Ok(match rest.last() {
            Some(&"delete") if post => PortalRoute::RepositoryDelete(repo(n - 1)?),
            _ => PortalRoute::Repository(repo(n)?),
        }));
    };
    let r = repo(i)?;
    let digest = match rest[i + 1].parse::<Digest>() {
        Ok(d) => d,
        Err(e) => return Some(Err(e.into())),
    };
    Some(Ok(match &rest[i + 2..] {
        [] => PortalRoute::Artifact(r, digest),
        ["delete"] if post => PortalRoute::ArtifactDelete(r, digest),
        ["tags"] if post => PortalRoute::Tags(r, digest),
        ["tags", tag, "delete"] if post => match tag.parse::<Tag>() {
            Ok(t) => PortalRoute::TagDelete(r, digest, t),
            Err(e) => return Some(Err(e.into())),
        },
        ["labels"] if post => PortalRoute::Labels(r, digest),
        ["labels", label, "delete"] if post => {
            PortalRoute::LabelRemove(r, digest, label.parse::<i64>().ok()?)
        }
        _ => return None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn repo(name: &str) -> RepoPath {
        RepoPath {
            project: "team".into(),
            name: name.into(),
        }
    }

    #[test]
    fn reads_repository_paths_from_the_right() {
        let digest: Digest = D.parse().unwrap();
        assert_eq!(
            parse("/projects/team/repositories/a/b/c", false).unwrap(),
            PortalRoute::Repository(repo("a/b/c"))
        );
        // A repository called `…/delete` is a page; on a POST the word is
        // the action.
        assert_eq!(
            parse("/projects/team/repositories/a/delete", false).unwrap(),
            PortalRoute::Repository(repo("a/delete"))
        );
        assert_eq!(
            parse("/projects/team/repositories/a/delete", true).unwrap(),
            PortalRoute::RepositoryDelete(repo("a"))
        );
        // A repository may be called `artifacts`.
        assert_eq!(
            parse(
                &format!("/projects/team/repositories/artifacts/artifacts/{D}"),
                false
            )
            .unwrap(),
            PortalRoute::Artifact(repo("artifacts"), digest.clone())
        );
        assert_eq!(
            parse(
                &format!("/projects/team/repositories/x/artifacts/{D}/tags/v1/delete"),
                true
            )
            .unwrap(),
            PortalRoute::TagDelete(repo("x"), digest.clone(), "v1".parse().unwrap())
        );
        assert_eq!(
            parse(
                &format!("/projects/team/repositories/x/artifacts/{D}/labels/12/delete"),
                true
            )
            .unwrap(),
            PortalRoute::LabelRemove(repo("x"), digest.clone(), 12)
        );
        assert_eq!(
            parse(
                &format!("/projects/team/repositories/x/artifacts/{D}/labels"),
                true
            )
            .unwrap(),
            PortalRoute::Labels(repo("x"), digest.clone())
        );
        assert_eq!(
            parse(
                &format!(
                    "/projects/team/repositories/x/artifacts/{}",
                    D.replace(':', "%3A")
                ),
                false
            )
            .unwrap(),
            PortalRoute::Artifact(repo("x"), digest)
        );
    }

    #[test]
    fn reads_policy_paths() {
        let t = || "team".to_owned();
        for (path, post, route) in [
            ("/projects/team/logs", false, PortalRoute::Logs(t())),
            ("/projects/team/policies", false, PortalRoute::Policies(t())),
            (
                "/projects/team/configuration",
                true,
                PortalRoute::Configuration(t()),
            ),
            (
                "/projects/team/policies/retention/rules",
                true,
                PortalRoute::RetentionRules(t()),
            ),
            (
                "/projects/team/policies/retention/rules/2/delete",
                true,
                PortalRoute::RetentionRuleDelete(t(), 2),
            ),
            (
                "/projects/team/policies/retention/run",
                true,
                PortalRoute::RetentionRun(t()),
            ),
            (
                "/projects/team/policies/retention/7/tasks/9/log",
                false,
                PortalRoute::RetentionTaskLog(t(), 7, 9),
            ),
            (
                "/projects/team/policies/immutable/3/disable",
                true,
                PortalRoute::ImmutableEnable(t(), 3, false),
            ),
            (
                "/projects/team/policies/immutable/3/delete",
                true,
                PortalRoute::ImmutableDelete(t(), 3),
            ),
        ] {
            assert_eq!(parse(path, post).unwrap(), route, "{path}");
        }
        for (path, post) in [
            // Forms are POSTs only; a log is a GET only.
            ("/projects/team/policies/retention/run", false),
            ("/projects/team/policies/immutable/3/delete", false),
            ("/projects/team/policies/retention/7/tasks/9/log", true),
            ("/projects/team/policies/retention/rules/x/delete", true),
            ("/projects/team/policies/immutable/x/enable", true),
            ("/projects/team/policies/nope", false),
        ] {
            assert!(parse(path, post).is_err(), "{path}");
        }
    }

    #[test]
    fn reads_replication_paths() {
        for (path, post, route) in [
            ("/admin/replication", false, PortalRoute::Replication),
            ("/admin/replication", true, PortalRoute::Replication),
            (
                "/admin/replication/4/run",
                true,
                PortalRoute::ReplicationRun(4),
            ),
            (
                "/admin/replication/4/delete",
                true,
                PortalRoute::ReplicationDelete(4),
            ),
            (
                "/admin/replication/executions/7",
                false,
                PortalRoute::ReplicationExecution(7),
            ),
            (
                "/admin/replication/executions/7/stop",
                true,
                PortalRoute::ReplicationStop(7),
            ),
            (
                "/admin/replication/executions/7/tasks/9/log",
                false,
                PortalRoute::ReplicationTaskLog(7, 9),
            ),
        ] {
            assert_eq!(parse(path, post).unwrap(), route, "{path}");
        }
        for (path, post) in [
            // Forms are POSTs only; a log is a GET only.
            ("/admin/replication/4/run", false),
            ("/admin/replication/4/delete", false),
            ("/admin/replication/executions/7/stop", false),
            ("/admin/replication/executions/7/tasks/9/log", true),
            ("/admin/replication/x/run", true),
            ("/admin/replication/executions/run", true),
            ("/admin/replication/executions/x", false),
            ("/admin/replication/executions/7/tasks/x/log", false),
            ("/admin/replication/4/start", true),
            ("/admin/replication/executions", false),
        ] {
            assert!(parse(path, post).is_err(), "{path}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_page() {
        for (path, post) in [
            ("/projects/team/delete", false),
            ("/projects/team/repositories/x/artifacts/sha256:zz", false),
            (&format!("/projects/team/repositories/artifacts/{D}"), false),
            (
                &format!("/projects/team/repositories/x/artifacts/{D}/tags"),
                false,
            ),
            (
                &format!("/projects/team/repositories/x/artifacts/{D}/labels/x/delete"),
                true,
            ),
            (
                &format!("/projects/team/repositories/x/artifacts/{D}/labels"),
                false,
            ),
            ("/projects/team/members/x/delete", true),
            ("/admin/users/1/delete", false),
            ("/admin/users/1/promote", true),
            ("/admin/users/x/delete", true),
            ("/admin/quotas/1", false),
            ("/admin/gc/schedule", false),
            ("/nope", false),
        ] {
            assert!(parse(path, post).is_err(), "{path}");
        }
        assert!(owns("/projects/x") && owns("/") && owns("/static/app.js"));
        assert_eq!(
            parse("/admin/users/7/sysadmin", true).unwrap(),
            PortalRoute::User(7, UserChange::Admin)
        );
        assert_eq!(
            parse("/admin/quotas/3", true).unwrap(),
            PortalRoute::Quota(3)
        );
        assert!(!owns("/v2/") && !owns("/api/v2.0/projects") && !owns("/projectsx"));
    }
}
