//! berth-policy: pure authorization.
//!
//! `authorize(subject, action, resource) -> Decision`, with no I/O and no
//! async: every decision the registry makes about who may do what is a
//! function of its arguments, tested as a table of cases.
//!
//! - `decide`: the subjects, actions, resources and the decision function.
//! - `access`: what a token grants (the intersection of what was asked and
//!   what policy allows) and whether a grant covers a request.
//!
//! Until projects carry roles, authenticated users may do everything to
//! repositories, anonymous callers may pull from public projects, and only
//! administrators may list the catalog.

mod access;
mod decide;

pub use access::{covers, grant, Access, Target};
pub use decide::{authorize, Action, Decision, Resource, Subject};
