//! `/users/current/permissions` (Harbor's): what the caller may do, in
//! Harbor's resource and action words, on the system (`scope=/`) or on a
//! project (`scope=/project/{id or name}`). Each answer is policy's: the
//! table maps Harbor's words to berth's actions and asks
//! `berth_policy::authorize` about each.

use berth_policy::{authorize, Action, Decision, Resource};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::request::{ApiRequest, ProjectRef};
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;

/// Harbor's `Permission`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Permission {
    pub resource: String,
    pub action: String,
}

/// Harbor's project resources and actions, and berth's action for each.
const PROJECT: &[(&str, &str, Action)] = &[
    ("project", "read", Action::ReadProject),
    ("project", "update", Action::UpdateProject),
    ("project", "delete", Action::DeleteProject),
    ("repository", "list", Action::ReadProject),
    ("repository", "pull", Action::Pull),
    ("repository", "push", Action::Push),
    ("repository", "delete", Action::Delete),
    ("artifact", "read", Action::Pull),
    ("artifact", "list", Action::Pull),
    ("artifact", "delete", Action::Delete),
    ("tag", "list", Action::Pull),
    ("tag", "create", Action::Push),
    ("tag", "delete", Action::Delete),
    ("member", "list", Action::ListMembers),
    ("member", "create", Action::ManageMembers),
    ("member", "update", Action::ManageMembers),
    ("member", "delete", Action::ManageMembers),
    ("log", "list", Action::ReadProjectLogs),
    ("robot", "list", Action::ReadRobots),
    ("robot", "read", Action::ReadRobots),
    ("robot", "create", Action::ManageRobots),
    ("robot", "update", Action::ManageRobots),
    ("robot", "delete", Action::ManageRobots),
    ("quota", "read", Action::ReadQuota),
    ("immutable-tag", "list", Action::ReadImmutableRules),
    ("immutable-tag", "create", Action::ManageImmutableRules),
    ("immutable-tag", "update", Action::ManageImmutableRules),
    ("immutable-tag", "delete", Action::ManageImmutableRules),
    ("tag-retention", "read", Action::ReadRetention),
    ("tag-retention", "list", Action::ReadRetention),
    ("tag-retention", "create", Action::ManageRetention),
    ("tag-retention", "update", Action::ManageRetention),
    ("tag-retention", "delete", Action::ManageRetention),
    ("tag-retention", "operate", Action::ManageRetention),
    ("notification-policy", "read", Action::ReadWebhooks),
    ("notification-policy", "list", Action::ReadWebhooks),
    ("notification-policy", "create", Action::ManageWebhooks),
    ("notification-policy", "update", Action::ManageWebhooks),
    ("notification-policy", "delete", Action::ManageWebhooks),
    ("label", "read", Action::ReadLabels),
    ("label", "list", Action::ReadLabels),
    ("label", "create", Action::ManageLabels),
    ("label", "update", Action::ManageLabels),
    ("label", "delete", Action::ManageLabels),
    ("artifact-label", "create", Action::LabelArtifacts),
    ("artifact-label", "delete", Action::LabelArtifacts),
];

/// Harbor's system resources and actions, and berth's action for each.
const SYSTEM: &[(&str, &str, Action)] = &[
    ("catalog", "read", Action::Catalog),
    ("label", "read", Action::ReadGlobalLabels),
    ("label", "list", Action::ReadGlobalLabels),
    ("label", "create", Action::ManageGlobalLabels),
    ("label", "update", Action::ManageGlobalLabels),
    ("label", "delete", Action::ManageGlobalLabels),
    ("user", "list", Action::ListUsers),
    ("user", "create", Action::ManageUsers),
    ("user", "update", Action::ManageUsers),
    ("user", "delete", Action::ManageUsers),
    ("user-group", "list", Action::ManageUsers),
    ("user-group", "read", Action::ManageUsers),
    ("user-group", "create", Action::ManageUsers),
    ("user-group", "update", Action::ManageUsers),
    ("user-group", "delete", Action::ManageUsers),
    ("ldap-user", "list", Action::ManageUsers),
    ("ldap-user", "create", Action::ManageUsers),
    ("audit-log", "list", Action::ReadAuditLogs),
    ("purge-audit", "create", Action::PurgeAuditLogs),
    ("purge-audit", "read", Action::PurgeAuditLogs),
    ("purge-audit", "list", Action::PurgeAuditLogs),
    ("purge-audit", "stop", Action::PurgeAuditLogs),
    ("robot", "list", Action::ManageSystemRobots),
    ("robot", "create", Action::ManageSystemRobots),
    ("robot", "update", Action::ManageSystemRobots),
    ("robot", "delete", Action::ManageSystemRobots),
    ("registry", "list", Action::ManageRegistries),
    ("registry", "create", Action::ManageRegistries),
    ("registry", "update", Action::ManageRegistries),
    ("registry", "delete", Action::ManageRegistries),
    ("replication", "list", Action::ManageReplication),
    ("replication", "create", Action::ManageReplication),
    ("replication-policy", "list", Action::ManageReplication),
    ("replication-policy", "create", Action::ManageReplication),
    ("replication-policy", "update", Action::ManageReplication),
    ("replication-policy", "delete", Action::ManageReplication),
    ("garbage-collection", "list", Action::ManageGc),
    ("garbage-collection", "create", Action::ManageGc),
    ("garbage-collection", "update", Action::ManageGc),
    ("quota", "update", Action::ManageQuotas),
    ("configuration", "read", Action::ReadConfiguration),
    ("configuration", "update", Action::ManageConfiguration),
    ("metrics", "read", Action::ReadMetrics),
];

#[utoipa::path(get, path = "/api/v2.0/users/current/permissions", tag = "user",
    params(("scope" = Option<String>, Query, description = "`/` (the system, the default) or `/project/{id or name}`"),
        ("relative" = Option<bool>, Query, description = "Resources without the scope in front")),
    responses((status = 200, body = Vec<Permission>), (status = 400, body = super::Errors),
        (status = 404, body = super::Errors)))]
pub async fn current(
    app: &App,
    session: &pingora::proxy::Session,
    req: &ApiRequest,
) -> Result<Reply, GatewayError> {
    if req.identity.is_none() {
        return Err(GatewayError::Unauthenticated { scope: None });
    }
    let scope = req
        .query
        .get("scope")
        .unwrap_or("/")
        .trim_end_matches('/')
        .to_owned();
    let relative = req.query.get("relative") == Some("true");
    let subject = req.subject();
    let granted: Vec<(&str, &str)> = if scope.is_empty() {
        SYSTEM
            .iter()
            .filter(|(_, _, a)| authorize(&subject, *a, Resource::System) == Decision::Allow)
            .map(|(r, a, _)| (*r, *a))
            .chain(
                (authorize(
                    &subject,
                    Action::CreateProject,
                    Resource::NewProject {
                        admin_only: app.runtime.admin_only_projects(),
                    },
                ) == Decision::Allow)
                    .then_some(("project", "create")),
            )
            .collect()
    } else {
        let name = scope.strip_prefix("/project/").ok_or_else(|| {
            GatewayError::BadRequest(format!(
                "`scope` `{scope}` is neither `/` nor `/project/{{id or name}}`"
            ))
        })?;
        let (_, facts) = req
            .project(
                app,
                ProjectRef::name_or_id(session, name),
                Action::ReadProject,
            )
            .await?;
        PROJECT
            .iter()
            .filter(|(_, _, a)| {
                authorize(&subject, *a, Resource::Project(facts.view())) == Decision::Allow
            })
            .map(|(r, a, _)| (*r, *a))
            .collect()
    };
    let list: Vec<Permission> = granted
        .into_iter()
        .map(|(resource, action)| Permission {
            resource: if relative || scope.is_empty() {
                resource.to_owned()
            } else {
                format!("{scope}/{resource}")
            },
            action: action.to_owned(),
        })
        .collect();
    Ok(Reply::json(
        200,
        &serde_json::to_value(list).unwrap_or_default(),
    ))
}
