//! Robot account secrets and permissions.
//!
//! A secret is 32 random alphanumeric characters, shown once and stored as
//! its SHA-256: with that much entropy a fast hash is as safe as a slow
//! one, and robots (CI jobs) log in often.

use berth_policy::{robot_action, Namespace, RobotPermission};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Robot names start with this, as in Harbor.
pub const ROBOT_PREFIX: &str = "robot$";

pub fn is_robot_name(name: &str) -> bool {
    name.starts_with(ROBOT_PREFIX)
}

pub fn generate_secret() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares a secret with a stored hash without an early exit.
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    let got = hash_secret(secret);
    got.len() == stored_hash.len()
        && got
            .bytes()
            .zip(stored_hash.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Harbor's permission entry: `{kind, namespace, access: [{resource, action}]}`,
/// stored with the id of the project `namespace` named when it was
/// written: that id, not the name, is what the permission covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionSpec {
    pub kind: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<i64>,
    pub access: Vec<AccessSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessSpec {
    pub resource: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
}

/// Turns stored permissions into policy terms. Entries berth does not know
/// grant nothing (they were refused at creation; this is the reader's
/// deny-by-default).
pub fn to_policy(specs: &[PermissionSpec]) -> Vec<RobotPermission> {
    specs
        .iter()
        .filter(|s| s.kind == "project")
        .map(|s| {
            let mut actions: Vec<_> = s
                .access
                .iter()
                .filter(|a| a.effect.as_deref().unwrap_or("allow") == "allow")
                .filter_map(|a| robot_action(&a.resource, &a.action))
                .collect();
            actions.sort();
            actions.dedup();
            // A project entry without its id (its project was gone when
            // the ids were recorded) covers nothing.
            let namespace = match (s.namespace.as_str(), s.project_id) {
                ("*", _) => Namespace::All,
                (_, Some(id)) => Namespace::Project(id),
                (_, None) => Namespace::Gone,
            };
            RobotPermission { namespace, actions }
        })
        .collect()
}

/// Parses the stored JSON; unreadable permissions grant nothing.
pub fn parse_stored(json: &str) -> Vec<PermissionSpec> {
    serde_json::from_str(json).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_policy::Action;

    #[test]
    fn secrets() {
        let s = generate_secret();
        assert_eq!(s.len(), 32);
        assert!(verify_secret(&s, &hash_secret(&s)));
        assert!(!verify_secret("wrong", &hash_secret(&s)));
        assert_ne!(generate_secret(), s);
    }

    #[test]
    fn permissions_become_policy() {
        let json = r#"[{"kind":"project","namespace":"team","project_id":4,"access":[
            {"resource":"repository","action":"pull"},
            {"resource":"repository","action":"push"},
            {"resource":"repository","action":"fly"},
            {"resource":"artifact","action":"delete","effect":"deny"}]}]"#;
        let p = to_policy(&parse_stored(json));
        assert_eq!(
            p,
            vec![RobotPermission {
                namespace: Namespace::Project(4),
                actions: vec![Action::Pull, Action::Push],
            }]
        );
        let unresolved = r#"[{"kind":"project","namespace":"team","access":[
            {"resource":"repository","action":"pull"}]}]"#;
        assert_eq!(
            to_policy(&parse_stored(unresolved))[0].namespace,
            Namespace::Gone
        );
        assert!(to_policy(&parse_stored("not json")).is_empty());
    }
}
