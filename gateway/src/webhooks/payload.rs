//! What a target receives, in Harbor's shapes: its own JSON (`Default`)
//! or a CloudEvents 1.0 structured event, both carrying the same
//! `event_data`.

use berth_storage::webhooks::{EventType, PayloadFormat};
use serde_json::{json, Value};

/// Something that happened in a project, before a policy's payload format
/// shapes it.
#[derive(Debug, Clone)]
pub struct Occurrence {
    pub event: EventType,
    pub project_id: i64,
    /// Who did it (a username, `robot$…`, or the trigger of a background
    /// job such as `SCHEDULE`).
    pub operator: String,
    /// Unix seconds.
    pub occur_at: i64,
    /// Harbor's `event_data`.
    pub data: Value,
}

/// The bytes sent for `o` to a target of policy `policy_id`, and their
/// content type.
pub fn render(o: &Occurrence, format: PayloadFormat, policy_id: i64) -> String {
    let body = match format {
        PayloadFormat::Default => json!({
            "type": o.event.as_str(),
            "occur_at": o.occur_at,
            "operator": o.operator,
            "event_data": o.data,
        }),
        PayloadFormat::CloudEvents => json!({
            "specversion": "1.0",
            "id": uuid::Uuid::new_v4().to_string(),
            "requestid": uuid::Uuid::new_v4().to_string(),
            "source": format!("/projects/{}/webhook/policies/{policy_id}", o.project_id),
            "type": o.event.cloud_event_type(),
            "datacontenttype": "application/json",
            "time": crate::api::request::time(o.occur_at).replace(".000Z", "Z"),
            "operator": o.operator,
            "data": o.data,
        }),
    };
    body.to_string()
}

/// The `Content-Type` of a payload format.
pub fn content_type(format: PayloadFormat) -> &'static str {
    match format {
        PayloadFormat::Default => "application/json",
        PayloadFormat::CloudEvents => "application/cloudevents+json",
    }
}

/// Harbor's `repository` object of artifact and quota events.
pub fn repository(repo: &str, public: bool, date_created: i64) -> Value {
    let (namespace, name) = repo.split_once('/').unwrap_or(("", repo));
    json!({
        "date_created": date_created,
        "name": name,
        "namespace": namespace,
        "repo_full_name": repo,
        "repo_type": if public { "public" } else { "private" },
    })
}

/// One `resources` entry: an artifact, by tag when it has one.
/// `host` is the registry's host as clients name it (may be empty for
/// events without a request when `external_url` is unset).
pub fn resource(host: &str, repo: &str, digest: &str, tag: Option<&str>) -> Value {
    let url = match tag {
        Some(t) => format!("{host}/{repo}:{t}"),
        None => format!("{host}/{repo}@{digest}"),
    };
    let url = url.trim_start_matches('/').to_owned();
    let mut r = json!({ "digest": digest, "resource_url": url });
    if let Some(t) = tag {
        r["tag"] = json!(t);
    }
    r
}

/// A host from a base URL (`https://r.example.org` → `r.example.org`).
pub fn host_of(base_url: &str) -> String {
    base_url
        .split_once("://")
        .map_or(base_url, |(_, rest)| rest)
        .trim_end_matches('/')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pushed() -> Occurrence {
        Occurrence {
            event: EventType::PushArtifact,
            project_id: 3,
            operator: "alice".into(),
            occur_at: 1_700_000_000,
            data: json!({
                "resources": [resource("r.example.org", "team/app", "sha256:ab", Some("v1"))],
                "repository": repository("team/app", false, 1_600_000_000),
            }),
        }
    }

    #[test]
    fn harbor_default_payload() {
        let v: Value = serde_json::from_str(&render(&pushed(), PayloadFormat::Default, 9)).unwrap();
        assert_eq!(v["type"], "PUSH_ARTIFACT");
        assert_eq!(v["occur_at"], 1_700_000_000);
        assert_eq!(v["operator"], "alice");
        let r = &v["event_data"]["resources"][0];
        assert_eq!(r["tag"], "v1");
        assert_eq!(r["resource_url"], "r.example.org/team/app:v1");
        let repo = &v["event_data"]["repository"];
        assert_eq!(repo["namespace"], "team");
        assert_eq!(repo["name"], "app");
        assert_eq!(repo["repo_type"], "private");
    }

    #[test]
    fn cloud_events_payload() {
        let v: Value =
            serde_json::from_str(&render(&pushed(), PayloadFormat::CloudEvents, 9)).unwrap();
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], "harbor.artifact.pushed");
        assert_eq!(v["source"], "/projects/3/webhook/policies/9");
        assert_eq!(v["time"], "2023-11-14T22:13:20Z");
        assert_eq!(v["data"]["resources"][0]["digest"], "sha256:ab");
    }

    #[test]
    fn resource_urls() {
        assert_eq!(
            resource("", "a/b", "sha256:1", None)["resource_url"],
            "a/b@sha256:1"
        );
        assert_eq!(host_of("https://r.example.org:8443/"), "r.example.org:8443");
        assert_eq!(host_of("r.example.org"), "r.example.org");
    }
}
