//! Labels on the repository and artifact pages: what an artifact carries,
//! the labels one may put on it, and the forms that put one on and take
//! one off (through the API's own functions, behind its policy checks).

use std::collections::HashMap;

use berth_policy::Action;
use berth_storage::labels::{Label, LabelQuery, LabelScope};
use berth_storage::oci::Digest;
use pingora::proxy::Session;

use super::form;
use super::page::redirect;
use super::routes::RepoPath;
use super::visitor::Visitor;
use crate::api::labels as api_labels;
use crate::api::repositories::target;
use crate::api::request::ProjectRef;
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;

/// Labels offered in the form, per scope: a project with more is labelled
/// through the API.
const CHOICES: i64 = 100;

/// One label as the pages show it.
pub struct Chip {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// Empty, or `#` and 3 or 6 hex digits (checked when the label was
    /// made), so it may be a style.
    pub color: String,
    pub global: bool,
}

impl Chip {
    fn of(l: &Label) -> Chip {
        Chip {
            id: l.id,
            name: l.name.clone(),
            description: l.description.clone(),
            color: l.color.clone(),
            global: l.scope == LabelScope::Global,
        }
    }
}

/// The labels each of `digests` carries in the repository (one query).
pub async fn carried(
    app: &App,
    repo_id: i64,
    digests: &[&Digest],
) -> Result<HashMap<Digest, Vec<Chip>>, GatewayError> {
    Ok(app
        .registry
        .meta()
        .artifact_labels(repo_id, digests)
        .await?
        .into_iter()
        .map(|(d, labels)| (d, labels.iter().map(Chip::of).collect()))
        .collect())
}

/// The global labels and the project's, less those in `carried`, for the
/// form that puts one on.
pub async fn choices(
    app: &App,
    project_id: i64,
    carried: &[Chip],
) -> Result<Vec<Chip>, GatewayError> {
    let mut out = Vec::new();
    for scope in [LabelScope::Global, LabelScope::Project(project_id)] {
        let query = LabelQuery {
            scope,
            name_contains: None,
        };
        let (labels, _) = app.registry.meta().list_labels(&query, 0, CHOICES).await?;
        out.extend(
            labels
                .iter()
                .filter(|l| !carried.iter().any(|c| c.id == l.id))
                .map(Chip::of),
        );
    }
    Ok(out)
}

pub async fn add_label(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    r: &RepoPath,
    digest: &Digest,
) -> Result<Reply, GatewayError> {
    let form = form::read(session, v).await?;
    let label_id = form
        .get("label")
        .and_then(|id| id.trim().parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| GatewayError::BadRequest("choose a label to add".into()))?;
    let req = v.api();
    let (row, name) = target(
        app,
        &req,
        ProjectRef::Name(&r.project),
        &r.name,
        Action::LabelArtifacts,
    )
    .await?;
    api_labels::attach(app, &req, &row, &name, &digest.to_string(), label_id).await?;
    Ok(redirect(&format!("{}/artifacts/{digest}", r.url()), v))
}

pub async fn remove_label(
    app: &App,
    session: &mut Session,
    v: &Visitor,
    r: &RepoPath,
    digest: &Digest,
    label_id: i64,
) -> Result<Reply, GatewayError> {
    form::read(session, v).await?;
    let req = v.api();
    api_labels::remove_from_artifact(
        app,
        &req,
        ProjectRef::Name(&r.project),
        &r.name,
        &digest.to_string(),
        &label_id.to_string(),
    )
    .await?;
    Ok(redirect(&format!("{}/artifacts/{digest}", r.url()), v))
}
