//! Token scopes as the Docker token protocol writes them:
//! `repository:team/app:pull,push`, `registry:catalog:*`.

use berth_policy::{Access, Action, Target};
use berth_storage::oci::RepoName;

use crate::error::AuthError;

/// Parses one scope into the target and the actions asked for. Unknown
/// resource types and actions are dropped (granting nothing), as the
/// protocol expects; a malformed scope or repository name is an error.
pub fn parse(scope: &str) -> Result<Option<(Target, Vec<Action>)>, AuthError> {
    let bad = || AuthError::ScopeInvalid(scope.to_owned());
    let (kind, rest) = scope.split_once(':').ok_or_else(bad)?;
    let (name, actions) = rest.rsplit_once(':').ok_or_else(bad)?;
    // `repository(plugin)` and friends carry a class we do not use.
    let kind = kind.split('(').next().unwrap_or(kind);
    let actions: Vec<&str> = actions.split(',').map(str::trim).collect();
    match kind {
        "repository" => {
            let repo: RepoName = name.parse().map_err(|_| bad())?;
            let mut out = Vec::new();
            for a in actions {
                match a {
                    "pull" => out.push(Action::Pull),
                    "push" => out.push(Action::Push),
                    "delete" => out.push(Action::Delete),
                    "*" => out.extend([Action::Pull, Action::Push, Action::Delete]),
                    _ => {}
                }
            }
            Ok(Some((Target::Repository(repo.to_string()), out)))
        }
        "registry" if name == "catalog" => {
            let wants = actions.contains(&"*");
            Ok(Some((
                Target::Catalog,
                if wants {
                    vec![Action::Catalog]
                } else {
                    Vec::new()
                },
            )))
        }
        _ => Ok(None),
    }
}

/// Writes a grant back in the token claim's shape.
pub fn claim_entry(access: &Access) -> serde_json::Value {
    let (kind, name) = match &access.target {
        Target::Repository(n) => ("repository", n.as_str()),
        Target::Catalog => ("registry", "catalog"),
    };
    serde_json::json!({
        "type": kind,
        "name": name,
        "actions": access.actions.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
    })
}

/// Reads a token claim's access entry.
pub fn from_claim_entry(v: &serde_json::Value) -> Option<Access> {
    let kind = v.get("type")?.as_str()?;
    let name = v.get("name")?.as_str()?;
    let actions = v.get("actions")?.as_array()?;
    let target = match (kind, name) {
        ("repository", n) => Target::Repository(n.to_owned()),
        ("registry", "catalog") => Target::Catalog,
        _ => return None,
    };
    let actions = actions
        .iter()
        .filter_map(|a| a.as_str())
        .filter_map(|a| match (&target, a) {
            (Target::Catalog, "*") => Some(Action::Catalog),
            (Target::Repository(_), "pull") => Some(Action::Pull),
            (Target::Repository(_), "push") => Some(Action::Push),
            (Target::Repository(_), "delete") => Some(Action::Delete),
            _ => None,
        })
        .collect();
    Some(Access { target, actions })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scopes() {
        let (t, a) = parse("repository:team/app/api:pull,push").unwrap().unwrap();
        assert_eq!(t, Target::Repository("team/app/api".into()));
        assert_eq!(a, vec![Action::Pull, Action::Push]);
        let (_, a) = parse("repository:x:*").unwrap().unwrap();
        assert_eq!(a, vec![Action::Pull, Action::Push, Action::Delete]);
        let (t, a) = parse("registry:catalog:*").unwrap().unwrap();
        assert_eq!((t, a), (Target::Catalog, vec![Action::Catalog]));
        let (_, a) = parse("repository(plugin):x:pull,frobnicate")
            .unwrap()
            .unwrap();
        assert_eq!(a, vec![Action::Pull]);
        assert!(parse("other:thing:pull").unwrap().is_none());
        for bad in ["repository", "repository:x", "repository:UPPER:pull"] {
            assert!(
                matches!(parse(bad), Err(AuthError::ScopeInvalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn claim_round_trip() {
        let a = Access {
            target: Target::Repository("team/app".into()),
            actions: vec![Action::Pull, Action::Delete],
        };
        let v = claim_entry(&a);
        assert_eq!(v["actions"], serde_json::json!(["pull", "delete"]));
        assert_eq!(from_claim_entry(&v), Some(a));
        let c = Access {
            target: Target::Catalog,
            actions: vec![Action::Catalog],
        };
        assert_eq!(from_claim_entry(&claim_entry(&c)), Some(c));
    }
}
