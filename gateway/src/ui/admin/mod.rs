//! Administration pages, for system administrators. Every page checks the
//! system action it shows with the policy crate, and every change calls
//! the management API's own function, so a page and its API call behave
//! alike.
//!
//! - `users`: create, grant or revoke administration, reset a password,
//!   disable, delete.
//! - `registries`: registry endpoints: create, test the connection,
//!   delete.
//! - `replication`: replication policies: create, replicate now, delete;
//!   the latest executions. `replication_runs`: an execution with its
//!   tasks (stop while it runs), a task's log.
//! - `quotas`: every project's storage use and limit.
//! - `gc`: garbage collection: run, dry run, schedule, history, logs.
//! - `logs`: the audit log of the whole registry, with filters.
//! - `system`: the effective configuration (secrets redacted) and the
//!   health of the database, the blob store and LDAP.
//!
//! System robot accounts live with the project ones in `super::robots`.

pub mod gc;
pub mod logs;
pub mod quotas;
pub mod registries;
pub mod replication;
pub mod replication_runs;
pub mod system;
pub mod users;

/// A finished action's outcome, shown at the top of the page it returns
/// to: whether it went well, and what to say.
pub struct Flash {
    pub ok: bool,
    pub text: String,
}
