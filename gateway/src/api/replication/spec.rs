//! A replication policy from the API checked into storage's
//! `PolicySpec`; each refusal names the field and what to send instead.

use berth_storage::cron::Cron;
use berth_storage::oci::RepoName;
use berth_storage::replication::{Filter, FilterKind, PolicySpec, Trigger};

use super::super::request::bounded;
use super::models::{RegistryRef, ReplicationFilter, ReplicationPolicy, ADAPTERS};
use crate::app::App;
use crate::error::GatewayError;

/// The fastest `speed` (KiB/s) a policy may name: 1 TiB/s.
const MAX_SPEED_KIB: i64 = 1 << 30;

/// Checks a policy from the API; each refusal names the field.
pub(crate) async fn spec(app: &App, body: ReplicationPolicy) -> Result<PolicySpec, GatewayError> {
    let bad = |m: String| GatewayError::BadRequest(m);
    let name = body.name.as_deref().unwrap_or("").trim().to_owned();
    if name.is_empty() {
        return Err(bad("`name` is required".into()));
    }
    bounded("name", &name, 255)?;
    let description = body.description.unwrap_or_default();
    bounded("description", &description, 1024)?;
    let endpoint = |r: Option<RegistryRef>| r.and_then(|r| r.id).filter(|id| *id != 0);
    let src = endpoint(body.src_registry);
    let dest = endpoint(body.dest_registry);
    let remote = match (src, dest) {
        (Some(_), Some(_)) => return Err(bad(
            "one of `src_registry` and `dest_registry` must be this registry (absent or id 0): \
                 berth replicates between itself and an endpoint"
                .into(),
        )),
        (None, None) => {
            return Err(bad(
                "`src_registry` (pull mode) or `dest_registry` (push mode) must name a registry \
                 endpoint by id"
                    .into(),
            ))
        }
        (Some(id), None) | (None, Some(id)) => id,
    };
    let ep = app.registry.meta().endpoint(remote).await?.ok_or_else(|| {
        bad(format!(
            "registry endpoint {remote} does not exist; create it under /api/v2.0/registries"
        ))
    })?;
    if !ADAPTERS.contains(&ep.kind.as_str()) {
        return Err(bad(format!(
            "registry endpoint `{}` is of type `{}`, which berth does not replicate with; use one of {}",
            ep.name,
            ep.kind,
            ADAPTERS.join(", ")
        )));
    }
    let namespace = body
        .dest_namespace
        .as_deref()
        .unwrap_or("")
        .trim()
        .trim_matches('/')
        .to_owned();
    if !namespace.is_empty() && format!("{namespace}/x").parse::<RepoName>().is_err() {
        return Err(bad(format!(
            "`dest_namespace` `{namespace}` is not a valid start of a repository name (lowercase \
             letters, digits, `.`, `_`, `-`, separated by `/`)"
        )));
    }
    let replace_count = body.dest_namespace_replace_count.unwrap_or(-1);
    if !(-1..=100).contains(&replace_count) {
        return Err(bad(format!(
            "`dest_namespace_replace_count` must be -1, 0 or a number of leading path components, not {replace_count}"
        )));
    }
    let trigger = match body.trigger {
        None => Trigger::Manual,
        Some(t) => {
            match t.kind.as_deref().unwrap_or("") {
                "" | "manual" => Trigger::Manual,
                "event_based" if src.is_some() => return Err(bad(
                    "an `event_based` trigger reacts to pushes and deletes here: it needs this \
                     registry as the source (push mode)"
                        .into(),
                )),
                "event_based" => Trigger::EventBased,
                "scheduled" => {
                    let cron = t.trigger_settings.and_then(|s| s.cron).unwrap_or_default();
                    let parsed: Cron = cron.trim().parse().map_err(bad)?;
                    if !parsed.at_most_once_a_minute() {
                        return Err(bad(format!(
                        "cron `{cron}` fires more than once a minute; give the seconds field one value, such as `0 */5 * * * *`"
                    )));
                    }
                    Trigger::Scheduled {
                        cron: cron.trim().to_owned(),
                    }
                }
                other => {
                    return Err(bad(format!(
                "trigger type `{other}` is not known; use `manual`, `scheduled` or `event_based`"
            )))
                }
            }
        }
    };
    let mut filters = Vec::new();
    for f in body.filters.unwrap_or_default() {
        let word = f.kind.as_deref().unwrap_or("");
        let kind = FilterKind::parse(word).ok_or_else(|| {
            bad(format!(
                "filter type `{word}` is not known; use `name`, `tag`, `label` or `resource`"
            ))
        })?;
        if kind == FilterKind::Label {
            if let Some(filter) = label_filter(&f, src.is_some())? {
                filters.push(filter);
            }
            continue;
        }
        let value = match &f.value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => {
                return Err(bad(format!(
                    "the {word} filter's value must be a string, not {other}"
                )))
            }
        };
        bounded("filter value", &value, 255)?;
        if value.is_empty() {
            // Harbor's portal sends empty filters for fields left blank.
            continue;
        }
        let decoration = f.decoration.as_deref().unwrap_or("");
        filters.push(Filter::new(kind, &value, decoration).map_err(bad)?);
    }
    let speed_kib = match body.speed.unwrap_or(-1) {
        -1 | 0 => None,
        // Up to 1 TiB/s: beyond, the bytes-per-second figure overflows.
        n if (1..=MAX_SPEED_KIB).contains(&n) => Some(n as u64),
        n => {
            return Err(bad(format!(
                "`speed` must be -1 (unlimited) or KiB/s from 1 to {MAX_SPEED_KIB}, not {n}"
            )))
        }
    };
    Ok(PolicySpec {
        name,
        description,
        src_registry: src,
        dest_registry: dest,
        dest_namespace: namespace,
        dest_namespace_replace_count: replace_count,
        trigger,
        filters,
        replicate_deletion: body.replicate_deletion.unwrap_or(false)
            || body.deletion.unwrap_or(false),
        override_existing: body.override_existing.unwrap_or(false),
        enabled: body.enabled.unwrap_or(true),
        speed_kib,
        copy_by_chunk: body.copy_by_chunk.unwrap_or(false),
        single_active: body.single_active_replication.unwrap_or(false),
    })
}

/// A label filter from Harbor's body: `value` is a list of label names
/// (a single name is taken too). `None` for an empty one, which Harbor's
/// portal sends for a field left blank. Labels are this registry's: in
/// pull mode (`pulling`) the source's labels are not known.
fn label_filter(f: &ReplicationFilter, pulling: bool) -> Result<Option<Filter>, GatewayError> {
    let bad = |m: String| GatewayError::BadRequest(m);
    let names: Vec<String> = match &f.value {
        serde_json::Value::Null => Vec::new(),
        serde_json::Value::String(s) => vec![s.clone()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    bad(format!("a label filter's value lists label names, not {v}"))
                })
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(bad(format!(
                "a label filter's value is a list of label names, not {other}"
            )))
        }
    };
    if names.is_empty() {
        return Ok(None);
    }
    if pulling {
        return Err(bad(
            "label filters select artifacts by this registry's labels, so they apply in push \
             mode only (dest_registry set); in pull mode, filter by name, tag or resource"
                .into(),
        ));
    }
    if names.len() > 10 {
        return Err(bad("a label filter names at most 10 labels".into()));
    }
    for name in &names {
        bounded("label name", name, 128)?;
    }
    let decoration = f.decoration.as_deref().unwrap_or("");
    Filter::labels(names, decoration).map(Some).map_err(bad)
}
