//! The OpenAPI 3 document of the management API, generated from the
//! handlers' annotations and the JSON types (not written by hand), served
//! at `/api/v2.0/openapi.json`.

use utoipa::OpenApi;

use super::{
    artifacts, configurations, gc, immutable, labels, ldap, logs, mail, members, metadata,
    permissions, projects, purge, quotas, registries, replication, repositories, retention, robots,
    system, usergroups, users, webhooks, ErrorItem, Errors,
};
use crate::http::Reply;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "berth management API",
        description = "Harbor v2.0-compatible management API of the berth registry. Authenticate with HTTP Basic (users and robot accounts)."
    ),
    paths(
        projects::list,
        projects::head,
        projects::create,
        projects::get,
        projects::update,
        projects::delete,
        projects::summary,
        projects::deletable,
        permissions::current,
        members::list,
        members::get,
        members::create,
        members::update,
        members::delete,
    ),
    components(schemas(Errors, ErrorItem, projects::ProjectDeletable, permissions::Permission))
)]
pub struct ApiDoc;

/// The whole document: this one and each resource module's.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(users::Doc::openapi());
    doc.merge(ldap::Doc::openapi());
    doc.merge(usergroups::Doc::openapi());
    doc.merge(mail::Doc::openapi());
    doc.merge(configurations::Doc::openapi());
    doc.merge(metadata::Doc::openapi());
    doc.merge(robots::Doc::openapi());
    doc.merge(repositories::Doc::openapi());
    doc.merge(labels::Doc::openapi());
    doc.merge(artifacts::Doc::openapi());
    doc.merge(logs::Doc::openapi());
    doc.merge(system::Doc::openapi());
    doc.merge(registries::Doc::openapi());
    doc.merge(quotas::Doc::openapi());
    doc.merge(immutable::Doc::openapi());
    doc.merge(webhooks::Doc::openapi());
    doc.merge(retention::Doc::openapi());
    doc.merge(gc::Doc::openapi());
    doc.merge(purge::Doc::openapi());
    doc.merge(replication::Doc::openapi());
    add_unauthorized(&mut doc);
    doc
}

/// Endpoints that answer without looking at credentials.
const PUBLIC: &[&str] = &["/api/v2.0/ping", "/api/v2.0/health"];

/// Every other operation may answer 401 (bad credentials, or none where
/// they are needed): documented once here rather than on each handler.
fn add_unauthorized(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let response = ResponseBuilder::new()
        .description("Missing or invalid credentials")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Errors")))
                .build(),
        )
        .build();
    for (path, item) in doc.paths.paths.iter_mut() {
        if PUBLIC.contains(&path.as_str()) {
            continue;
        }
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.head,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            op.responses
                .responses
                .entry("401".into())
                .or_insert_with(|| response.clone().into());
        }
    }
}

pub fn document() -> Reply {
    let doc = openapi();
    Reply::json(200, &serde_json::to_value(doc).unwrap_or_default())
}
