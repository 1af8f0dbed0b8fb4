//! What a replication policy copies and where it lands: Harbor's filters
//! (doublestar patterns on the repository name and the tags, the resource
//! type, the labels an artifact of this registry carries) and its destination namespace with the flattening level. Pure:
//! no I/O.

use serde::{Deserialize, Serialize};

use crate::selector::{doublestar, Decoration, Selector};

/// Which part of a resource a filter looks at (Harbor's filter `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterKind {
    /// The repository's whole name, project included.
    Name,
    Tag,
    Label,
    /// `image` or `artifact` (anything that is not a container image).
    Resource,
}

impl FilterKind {
    pub fn parse(word: &str) -> Option<FilterKind> {
        match word {
            "name" => Some(FilterKind::Name),
            "tag" => Some(FilterKind::Tag),
            "label" => Some(FilterKind::Label),
            "resource" => Some(FilterKind::Resource),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FilterKind::Name => "name",
            FilterKind::Tag => "tag",
            FilterKind::Label => "label",
            FilterKind::Resource => "resource",
        }
    }
}

/// One filter, checked when the policy was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    pub kind: FilterKind,
    pub value: String,
    /// Whether a match selects (`matches`) or rejects (`excludes`).
    pub excludes: bool,
    /// A label filter's label names: it matches an artifact that carries
    /// every one of them (Harbor's semantics).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// The resource types a `resource` filter names.
pub const RESOURCE_TYPES: &[&str] = &["image", "artifact"];

impl Filter {
    /// Checks a filter from the API.
    pub fn new(kind: FilterKind, value: &str, decoration: &str) -> Result<Filter, String> {
        let excludes = match decoration {
            "" | "matches" => false,
            "excludes" => true,
            other => {
                return Err(format!(
                    "filter decoration `{other}` is not known; use `matches` or `excludes`"
                ))
            }
        };
        match kind {
            FilterKind::Name | FilterKind::Tag => {
                Selector::new("doublestar", Decoration::Matches, value, false)
                    .map_err(|e| format!("{} filter: {}", kind.as_str(), e.0))?;
            }
            FilterKind::Label => {
                return Err("a label filter takes a list of label names: use Filter::labels".into())
            }
            FilterKind::Resource => {
                if !RESOURCE_TYPES.contains(&value) {
                    return Err(format!(
                        "resource filter `{value}` is not known; use `image` or `artifact`"
                    ));
                }
            }
        }
        Ok(Filter {
            kind,
            value: value.to_owned(),
            excludes,
            labels: Vec::new(),
        })
    }

    /// A label filter: the names of the labels an artifact must all carry
    /// (`matches`), or must not all carry (`excludes`).
    pub fn labels(names: Vec<String>, decoration: &str) -> Result<Filter, String> {
        let excludes = match decoration {
            "" | "matches" => false,
            "excludes" => true,
            other => {
                return Err(format!(
                    "filter decoration `{other}` is not known; use `matches` or `excludes`"
                ))
            }
        };
        if names.is_empty() || names.iter().any(|n| n.is_empty()) {
            return Err("a label filter needs one or more label names".into());
        }
        Ok(Filter {
            kind: FilterKind::Label,
            value: String::new(),
            excludes,
            labels: names,
        })
    }

    fn selects(&self, text: &str) -> bool {
        doublestar(&self.value, text) != self.excludes
    }
}

/// Whether a repository (its whole name at the source) passes every name
/// filter.
pub fn selects_repository(filters: &[Filter], name: &str) -> bool {
    filters
        .iter()
        .filter(|f| f.kind == FilterKind::Name)
        .all(|f| f.selects(name))
}

/// Whether a tag passes every tag filter.
pub fn selects_tag(filters: &[Filter], tag: &str) -> bool {
    filters
        .iter()
        .filter(|f| f.kind == FilterKind::Tag)
        .all(|f| f.selects(tag))
}

/// Whether an artifact of this kind (`image` or `artifact`) passes every
/// resource filter.
pub fn selects_resource(filters: &[Filter], kind: &str) -> bool {
    filters
        .iter()
        .filter(|f| f.kind == FilterKind::Resource)
        .all(|f| (f.value == kind) != f.excludes)
}

/// Whether an artifact carrying labels named `carried` passes every label
/// filter.
pub fn selects_labels(filters: &[Filter], carried: &[String]) -> bool {
    filters
        .iter()
        .filter(|f| f.kind == FilterKind::Label)
        .all(|f| f.labels.iter().all(|l| carried.contains(l)) != f.excludes)
}

/// Whether the policy has label filters (the source's labels are then
/// read for each artifact).
pub fn has_label_filters(filters: &[Filter]) -> bool {
    filters.iter().any(|f| f.kind == FilterKind::Label)
}

/// The one repository the name filters allow, when they name it literally
/// (no pattern characters): the source need not be listed at all, which
/// spares rate-limited registries such as Docker Hub.
pub fn literal_repository(filters: &[Filter]) -> Option<&str> {
    let mut names = filters.iter().filter(|f| f.kind == FilterKind::Name);
    let only = names.next()?;
    if names.next().is_some() || only.excludes {
        return None;
    }
    let literal = !only
        .value
        .contains(['*', '?', '[', ']', '{', '}', '\\', ',']);
    literal.then_some(only.value.as_str())
}

/// The destination's name for `repository` (Harbor's
/// `dest_namespace` and `dest_namespace_replace_count`): with no
/// namespace the name is kept; `-1` keeps only the last component under
/// the namespace, `0` keeps the whole name under it, `n` drops the first
/// `n` components.
pub fn destination_name(
    repository: &str,
    namespace: &str,
    replace_count: i64,
) -> Result<String, String> {
    let namespace = namespace.trim_matches('/');
    if namespace.is_empty() {
        return Ok(repository.to_owned());
    }
    let parts: Vec<&str> = repository.split('/').collect();
    let kept = match replace_count {
        -1 => parts[parts.len() - 1..].join("/"),
        0 => repository.to_owned(),
        n if n > 0 && (n as usize) < parts.len() => parts[n as usize..].join("/"),
        n => {
            return Err(format!(
                "`{repository}` has {} path components before its last one, fewer than the \
                 destination namespace's flattening level {n}",
                parts.len() - 1
            ))
        }
    };
    Ok(format!("{namespace}/{kept}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(kind: FilterKind, value: &str, decoration: &str) -> Filter {
        Filter::new(kind, value, decoration).unwrap()
    }

    #[test]
    fn filters_select() {
        let filters = vec![
            f(FilterKind::Name, "team/**", "matches"),
            f(FilterKind::Tag, "v*", "matches"),
            f(FilterKind::Tag, "*-rc*", "excludes"),
        ];
        assert!(selects_repository(&filters, "team/app/api"));
        assert!(!selects_repository(&filters, "other/app"));
        assert!(selects_tag(&filters, "v1.2"));
        assert!(!selects_tag(&filters, "v1.2-rc1"));
        assert!(!selects_tag(&filters, "latest"));
        let resource = vec![f(FilterKind::Resource, "image", "")];
        assert!(selects_resource(&resource, "image"));
        assert!(!selects_resource(&resource, "artifact"));
        assert!(selects_resource(&[], "artifact"));
        let labels = vec![Filter::labels(vec!["prod".into(), "ok".into()], "matches").unwrap()];
        assert!(selects_labels(
            &labels,
            &["ok".into(), "prod".into(), "x".into()]
        ));
        assert!(!selects_labels(&labels, &["prod".into()]));
        assert!(!selects_labels(&labels, &[]));
        assert!(selects_labels(&[], &[]));
        let without = vec![Filter::labels(vec!["bad".into()], "excludes").unwrap()];
        assert!(selects_labels(&without, &["prod".into()]));
        assert!(!selects_labels(&without, &["bad".into()]));
    }

    #[test]
    fn bad_filters_are_refused() {
        assert!(Filter::new(FilterKind::Name, "a/{b", "matches").is_err());
        assert!(Filter::new(FilterKind::Tag, "v1", "sometimes").is_err());
        assert!(Filter::new(FilterKind::Label, "x", "matches").is_err());
        assert!(Filter::labels(vec![], "matches").is_err());
        assert!(Filter::labels(vec!["".into()], "matches").is_err());
        assert!(Filter::labels(vec!["a".into()], "sometimes").is_err());
        assert!(Filter::new(FilterKind::Resource, "chart", "matches").is_err());
    }

    #[test]
    fn literal_names_skip_listing() {
        assert_eq!(
            literal_repository(&[f(FilterKind::Name, "library/alpine", "")]),
            Some("library/alpine")
        );
        assert_eq!(
            literal_repository(&[f(FilterKind::Name, "library/*", "")]),
            None
        );
        assert_eq!(
            literal_repository(&[f(FilterKind::Name, "a/b", "excludes")]),
            None
        );
        assert_eq!(literal_repository(&[]), None);
    }

    #[test]
    fn destination_names() {
        assert_eq!(destination_name("a/b/c", "", -1).unwrap(), "a/b/c");
        assert_eq!(destination_name("a/b/c", "ns", -1).unwrap(), "ns/c");
        assert_eq!(destination_name("a/b/c", "ns", 0).unwrap(), "ns/a/b/c");
        assert_eq!(destination_name("a/b/c", "ns", 1).unwrap(), "ns/b/c");
        assert_eq!(destination_name("a/b/c", "ns/x/", 2).unwrap(), "ns/x/c");
        assert!(destination_name("a/b/c", "ns", 3).is_err());
    }
}
