//! berth-auth: who is asking.
//!
//! - [`scope`]: token scopes (`repository:team/app:pull,push`).
//! - [`password`]: argon2id password hashes.
//! - [`keys`]: the token signing key (ES256, created on first start) and
//!   its JWKS.
//! - [`token`]: issuing and verifying registry tokens (JWT), with a cache
//!   so the hot path does no crypto on repeat requests.
//! - [`ldap`]: logins against an LDAP directory.
//! - [`robot`]: robot account secrets and permissions.
//! - [`login`]: the login service: local users, robots, LDAP, login
//!   caching and rate limiting of failures.
//! - [`stats`]: cache and directory counters (plain atomics) that the
//!   gateway reads for its metrics.
//!
//! It knows nothing of HTTP: the gateway parses headers and forms, this
//! crate answers who the caller is and what a token grants.

pub mod error;
pub mod keys;
pub mod ldap;
pub mod login;
pub mod password;
pub mod robot;
pub mod scope;
pub mod stats;
pub mod token;

pub use error::AuthError;
pub use login::{Identity, LoginService};
pub use token::TokenService;
