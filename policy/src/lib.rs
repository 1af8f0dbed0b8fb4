//! berth-policy: pure authorization.
//!
//! `authorize(subject, action, resource) -> Decision`, with no I/O and no
//! async: every decision the registry makes about who may do what is a
//! function of its arguments, tested as a table of cases. Callers gather
//! the facts (does the project exist, is it public, what is the caller's
//! role there) and policy decides.
//!
//! - `role`: Harbor's project roles and their permission matrix.
//! - `robot`: robot account permissions.
//! - `decide`: subjects, actions, resources and the decision function.
//! - `access`: what a token grants (the intersection of what was asked and
//!   what policy allows) and whether a grant covers a request.
//!
//! Not here: looking anything up, or saying it in HTTP.

mod access;
mod decide;
mod robot;
mod role;
#[cfg(test)]
mod tests;

pub use access::{covers, grant, Access, Target};
pub use decide::{allowed_when_read_only, authorize, Action, Decision, Project, Resource, Subject};
pub use robot::{robot_action, Namespace, RobotPermission, ROBOT_ACCESS};
pub use role::Role;
