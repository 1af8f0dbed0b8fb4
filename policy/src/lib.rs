//! berth-policy: pure authorization.
//!
//! `authorize(subject, action, resource) -> Decision`, with no I/O and no
//! async: every decision the registry makes about who may do what is a
//! function of its arguments, tested as a table of cases.
//!
//! This version knows the registry's actions and one access mode (open:
//! the registry runs without authentication, as distribution does by
//! default). Roles, projects and tokens extend it in later issues.

mod decide;

pub use decide::{authorize, Action, Decision, Mode, Resource, Subject};
