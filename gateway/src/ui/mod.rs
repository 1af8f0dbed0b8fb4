//! The web portal at `/`: server-rendered pages in English and Simplified
//! Chinese, each a real URL, all of it working without JavaScript.
//!
//! Pages ask policy and change state through the same functions as the
//! management API (`crate::api`), with the visitor standing in for the
//! API's caller; the portal has no SQL and no rules of its own.
//!
//! - `routes`: portal paths parsed once into typed routes.
//! - `visitor`: sessions, cookies, CSRF tokens, the language.
//! - `i18n`: every string of the portal, in both languages.
//! - `page`: the layout, security headers, redirects, error pages.
//! - `form`: reading a posted form.
//! - `signin`: `/login` and `/logout`.
//! - `reset`: a forgotten password, by a mailed link.
//! - `projects`: the project list, a project's summary, repositories and
//!   members.
//! - `robots`: robot accounts, a project's and the system's.
//! - `logs`: a project's audit log (its table shared as an include).
//! - `policies`: a project's policies tab, made of `retention` (tag
//!   retention) and `immutable` (tag immutability rules).
//! - `configuration`: a project's public flag and proxy cache settings.
//! - `repository`: a repository's artifacts, an artifact, its tags.
//! - `search`: projects and repositories by name.
//! - `account`: the signed-in user's profile and password.
//! - `admin`: administration: users, registry endpoints, replication,
//!   quotas, garbage collection, the configuration and health.
//! - `assets`: the stylesheet and script, compiled in.

mod account;
mod admin;
mod assets;
mod configuration;
mod form;
mod i18n;
mod immutable;
mod labels;
mod logs;
mod page;
mod policies;
mod projects;
mod repository;
mod reset;
mod retention;
mod robots;
mod routes;
mod search;
mod signin;
mod visitor;

use pingora::http::Method;
use pingora::proxy::Session;

use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;
use crate::route::Query;
use crate::runtime::live::Group;
use routes::PortalRoute;
use visitor::Visitor;

/// Whether a path is the portal's.
pub fn owns(path: &str) -> bool {
    routes::owns(path)
}

/// Answers one portal request. Errors become pages here, never the API's
/// JSON.
pub async fn handle(app: &App, session: &mut Session) -> Reply {
    let path = session.req_header().uri.path().to_owned();
    if let Some(asset) = assets::get(&path) {
        return asset;
    }
    let query = Query::parse(session.req_header().uri.query());
    let mut v = match Visitor::new(app, session, &query).await {
        Ok(v) => v,
        Err(e) => return fallback(&e),
    };
    let method = session.req_header().method.clone();
    let result = match routes::parse(&path, method == Method::POST) {
        Ok(route) => dispatch(app, session, &mut v, &method, route, &query).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(reply) => reply,
        Err(e) => {
            let back = session
                .req_header()
                .headers
                .get("referer")
                .and_then(|r| r.to_str().ok())
                .and_then(local_path)
                .unwrap_or("/projects")
                .to_owned();
            page::error(&e, &v, &path, &back)
        }
    }
}

async fn dispatch(
    app: &App,
    session: &mut Session,
    v: &mut Visitor,
    method: &Method,
    route: PortalRoute,
    query: &Query,
) -> Result<Reply, GatewayError> {
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    match route {
        PortalRoute::Home if get => Ok(page::redirect("/projects", v)),
        PortalRoute::Login if get => signin::form(app, v, query),
        PortalRoute::ForgotPassword if get => reset::forgot_form(app, v),
        PortalRoute::ForgotPassword if post => reset::forgot_submit(app, session, v).await,
        PortalRoute::ResetPassword if get => reset::reset_form(app, v, query).await,
        PortalRoute::ResetPassword if post => reset::reset_submit(app, session, v).await,
        PortalRoute::Login if post => signin::submit(app, session, v).await,
        PortalRoute::Logout if get => signin::confirm_logout(v),
        PortalRoute::Logout if post => signin::logout(app, session, v).await,
        PortalRoute::Projects if get => projects::list(app, v, query).await,
        PortalRoute::Projects if post => projects::create(app, session, v).await,
        PortalRoute::Project(p) if get => projects::summary(app, v, &p).await,
        PortalRoute::ProjectDelete(p) if post => projects::delete(app, session, v, &p).await,
        PortalRoute::Repositories(p) if get => projects::repositories(app, v, &p, query).await,
        PortalRoute::Members(p) if get => projects::members(app, v, &p, query).await,
        PortalRoute::Members(p) if post => projects::add_member(app, session, v, &p).await,
        PortalRoute::MemberDelete(p, mid) if post => {
            projects::remove_member(app, session, v, &p, mid).await
        }
        PortalRoute::Robots(p) if get => robots::list(app, v, &p, query, None).await,
        PortalRoute::Robots(p) if post => robots::create(app, session, v, &p).await,
        PortalRoute::RobotDelete(p, id) if post => robots::delete(app, session, v, &p, id).await,
        PortalRoute::Logs(p) if get => logs::project_logs(app, v, &p, query).await,
        PortalRoute::Policies(p) if get => policies::show(app, v, &p, query).await,
        PortalRoute::RetentionRules(p) if post => retention::add_rule(app, session, v, &p).await,
        PortalRoute::RetentionRuleDelete(p, n) if post => {
            retention::delete_rule(app, session, v, &p, n).await
        }
        PortalRoute::RetentionSchedule(p) if post => retention::schedule(app, session, v, &p).await,
        PortalRoute::RetentionRun(p) if post => retention::run(app, session, v, &p).await,
        PortalRoute::RetentionTaskLog(p, e, t) if get => {
            retention::task_log(app, v, &p, e, t).await
        }
        PortalRoute::ImmutableRules(p) if post => immutable::add(app, session, v, &p).await,
        PortalRoute::ImmutableEnable(p, id, on) if post => {
            immutable::enable(app, session, v, &p, id, on).await
        }
        PortalRoute::ImmutableDelete(p, id) if post => {
            immutable::delete(app, session, v, &p, id).await
        }
        PortalRoute::Configuration(p) if get => configuration::show(app, v, &p).await,
        PortalRoute::Configuration(p) if post => configuration::update(app, session, v, &p).await,
        PortalRoute::Repository(r) if get => {
            repository::artifacts(app, session, v, &r, query).await
        }
        PortalRoute::RepositoryDelete(r) if post => repository::delete(app, session, v, &r).await,
        PortalRoute::Artifact(r, d) if get => repository::artifact(app, v, &r, &d).await,
        PortalRoute::ArtifactDelete(r, d) if post => {
            repository::delete_artifact(app, session, v, &r, &d).await
        }
        PortalRoute::Tags(r, d) if post => repository::add_tag(app, session, v, &r, &d).await,
        PortalRoute::TagDelete(r, d, t) if post => {
            repository::delete_tag(app, session, v, &r, &d, &t).await
        }
        PortalRoute::Labels(r, d) if post => labels::add_label(app, session, v, &r, &d).await,
        PortalRoute::LabelRemove(r, d, id) if post => {
            labels::remove_label(app, session, v, &r, &d, id).await
        }
        PortalRoute::Search if get => search::search(app, v, query).await,
        PortalRoute::Account if get => account::show(app, v, query).await,
        PortalRoute::Password if post => account::change_password(app, session, v).await,
        PortalRoute::Admin if get => Ok(page::redirect("/admin/users", v)),
        PortalRoute::Users if get => admin::users::list(app, v, query).await,
        PortalRoute::Users if post => admin::users::create(app, session, v).await,
        PortalRoute::User(id, what) if post => {
            admin::users::change(app, session, v, id, what).await
        }
        PortalRoute::SystemRobots if get => robots::system_list(app, v, query, None).await,
        PortalRoute::SystemRobots if post => robots::system_create(app, session, v).await,
        PortalRoute::SystemRobotDelete(id) if post => {
            robots::system_delete(app, session, v, id).await
        }
        PortalRoute::Registries if get => admin::registries::list(app, v, None).await,
        PortalRoute::Registries if post => admin::registries::create(app, session, v).await,
        PortalRoute::RegistryPing(id) if post => admin::registries::test(app, session, v, id).await,
        PortalRoute::RegistryDelete(id) if post => {
            admin::registries::delete(app, session, v, id).await
        }
        PortalRoute::Replication if get => admin::replication::list(app, v, query).await,
        PortalRoute::Replication if post => admin::replication::create(app, session, v).await,
        PortalRoute::ReplicationRun(id) if post => {
            admin::replication::run(app, session, v, id).await
        }
        PortalRoute::ReplicationDelete(id) if post => {
            admin::replication::delete(app, session, v, id).await
        }
        PortalRoute::ReplicationExecution(id) if get => {
            admin::replication_runs::show(app, v, id, query).await
        }
        PortalRoute::ReplicationStop(id) if post => {
            admin::replication_runs::stop(app, session, v, id).await
        }
        PortalRoute::ReplicationTaskLog(id, task) if get => {
            admin::replication_runs::task_log(app, v, id, task).await
        }
        PortalRoute::Quotas if get => admin::quotas::list(app, v, query).await,
        PortalRoute::Quota(id) if post => admin::quotas::set(app, session, v, id).await,
        PortalRoute::Gc if get => admin::gc::gc(app, v, query).await,
        PortalRoute::Gc if post => admin::gc::run_gc(app, session, v).await,
        PortalRoute::GcSchedule if post => admin::gc::set_schedule(app, session, v).await,
        PortalRoute::GcLog(id) if get => admin::gc::gc_log(app, v, id).await,
        PortalRoute::AuditLog if get => admin::logs::list(app, v, query).await,
        PortalRoute::System if get => admin::system::show(app, v, query).await,
        PortalRoute::SystemSettings if post => admin::system::settings(app, session, v).await,
        PortalRoute::SystemDirectory if post => {
            admin::system::live_settings(app, session, v, Group::Directory).await
        }
        PortalRoute::SystemMail if post => {
            admin::system::live_settings(app, session, v, Group::Mail).await
        }
        _ => Err(GatewayError::MethodNotAllowed {
            method: method.to_string(),
        }),
    }
}

/// The path of a same-origin URL (a Referer), for "go back" links.
fn local_path(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = &rest[rest.find('/')?..];
    (!path.starts_with("//")).then_some(path)
}

/// When not even the visitor could be read (the database is down).
fn fallback(e: &GatewayError) -> Reply {
    let p = e.present_api();
    if p.internal {
        tracing::error!(error = %crate::error::cause_chain(e), "portal request failed");
    }
    Reply::new(p.status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Cache-Control", "no-store")
        .bytes(format!("{}\n", p.message).into())
}
