//! What happens to artifacts here, told to whoever listens: event-based
//! replication policies and the projects' webhooks. Handlers call these
//! after a change committed; nothing here fails the request.

use berth_storage::oci::{Digest, RepoName};
use berth_storage::webhooks::EventType;
use serde_json::json;

use crate::app::App;
use crate::webhooks::payload::{repository, resource};
use crate::webhooks::Occurrence;

/// A manifest was pushed (by digest, or with `tags`).
pub async fn pushed(app: &App, operator: &str, repo: &RepoName, digest: &Digest, tags: &[&str]) {
    for tag in tags {
        app.replication.pushed(repo.as_str(), tag);
    }
    let tags: Vec<Option<&str>> = if tags.is_empty() {
        vec![None]
    } else {
        tags.iter().map(|t| Some(*t)).collect()
    };
    artifact_event(app, operator, EventType::PushArtifact, repo, digest, &tags).await;
    quota_warning(app, operator, repo, digest).await;
}

/// Share of a quota past which each push warns (Harbor's default, 85%).
const QUOTA_WARNING_PERCENT: u64 = 85;

/// After a push: a warning when the project uses more than
/// `QUOTA_WARNING_PERCENT` of its quota.
async fn quota_warning(app: &App, operator: &str, repo: &RepoName, digest: &Digest) {
    let Some(project) = project(app, repo).await else {
        return;
    };
    if !app.webhooks.wants(project.0, EventType::QuotaWarning).await {
        return;
    }
    let Ok(Some((used, Some(limit)))) = app.registry.meta().project_quota(project.0).await else {
        return;
    };
    if u128::from(used) * 100 < u128::from(limit) * u128::from(QUOTA_WARNING_PERCENT) {
        return;
    }
    let human = berth_storage::quota::human;
    let data = json!({
        "resources": [resource(&app.webhooks.host(), repo.as_str(), &digest.to_string(), None)],
        "repository": repository(repo.as_str(), project.1, 0),
        "custom_attributes": {
            "Details": format!(
                "quota usage reach {QUOTA_WARNING_PERCENT}%: resource storage used {} of {}",
                human(used),
                human(limit)
            ),
        },
    });
    notify(app, operator, EventType::QuotaWarning, project, data).await;
}

/// A manifest was pulled (a GET, not a HEAD), by `tag` if it was named by
/// one.
pub async fn pulled(
    app: &App,
    operator: &str,
    repo: &RepoName,
    digest: &Digest,
    tag: Option<&str>,
) {
    artifact_event(app, operator, EventType::PullArtifact, repo, digest, &[tag]).await;
}

/// An artifact was deleted (with its tags).
pub async fn artifact_deleted(app: &App, operator: &str, repo: &RepoName, digest: &Digest) {
    app.replication
        .deleted(repo.as_str(), &digest.to_string(), digest);
    artifact_event(
        app,
        operator,
        EventType::DeleteArtifact,
        repo,
        digest,
        &[None],
    )
    .await;
}

/// A tag was added to an artifact through the API.
pub fn tag_added(app: &App, repo: &RepoName, tag: &str) {
    app.replication.pushed(repo.as_str(), tag);
}

/// A tag alone was deleted; it pointed at `digest`. (Harbor has no
/// webhook event for it.)
pub fn tag_deleted(app: &App, repo: &RepoName, tag: &str, digest: &Digest) {
    app.replication.deleted(repo.as_str(), tag, digest);
}

/// A push was refused because it would exceed the project's quota.
pub async fn quota_exceeded(app: &App, operator: &str, repo: &RepoName, details: &str) {
    let Some(project) = project(app, repo).await else {
        return;
    };
    if !app.webhooks.wants(project.0, EventType::QuotaExceed).await {
        return;
    }
    let data = json!({
        "resources": [],
        "repository": repository(repo.as_str(), project.1, 0),
        "custom_attributes": { "Details": details },
    });
    notify(app, operator, EventType::QuotaExceed, project, data).await;
}

/// The project's id and whether it is public.
async fn project(app: &App, repo: &RepoName) -> Option<(i64, bool)> {
    match app.registry.project_info(repo.project()).await {
        Ok(Some(p)) => Some((p.id, p.public)),
        _ => None,
    }
}

async fn artifact_event(
    app: &App,
    operator: &str,
    event: EventType,
    repo: &RepoName,
    digest: &Digest,
    tags: &[Option<&str>],
) {
    let Some(project) = project(app, repo).await else {
        return;
    };
    // Most projects have no webhooks: nothing more is read for them.
    if !app.webhooks.wants(project.0, event).await {
        return;
    }
    let host = app.webhooks.host();
    let created = app
        .registry
        .meta()
        .repository_created(repo)
        .await
        .ok()
        .flatten()
        .unwrap_or(0);
    let digest = digest.to_string();
    let resources: Vec<_> = tags
        .iter()
        .map(|t| resource(&host, repo.as_str(), &digest, *t))
        .collect();
    let data = json!({
        "resources": resources,
        "repository": repository(repo.as_str(), project.1, created),
    });
    notify(app, operator, event, project, data).await;
}

async fn notify(
    app: &App,
    operator: &str,
    event: EventType,
    project: (i64, bool),
    data: serde_json::Value,
) {
    app.webhooks
        .notify(&Occurrence {
            event,
            project_id: project.0,
            operator: operator.to_owned(),
            occur_at: berth_storage::audit::now_ms() / 1000,
            data,
        })
        .await;
}
