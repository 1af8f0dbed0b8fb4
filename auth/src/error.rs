//! The auth crate's one error type. The gateway maps each variant to a
//! status, an OCI or Harbor error code, and a message.

use berth_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown user or wrong password: deliberately indistinguishable.
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("account `{0}` is disabled; ask an administrator to enable it")]
    UserDisabled(String),
    #[error("robot account `{0}` has expired; refresh its secret or extend its duration")]
    RobotExpired(String),
    /// The directory could not be reached or did not answer in time.
    #[error("the LDAP directory is unreachable ({0}); try again later or ask an administrator")]
    DirectoryUnavailable(String),
    /// The directory answered, but not in a way berth can use
    /// (misconfigured search, several entries for one user).
    #[error("LDAP lookup failed: {0}")]
    DirectoryMisconfigured(String),
    #[error("too many failed logins for `{user}`; wait {retry_after_secs} s and try again")]
    TooManyAttempts { user: String, retry_after_secs: u64 },
    #[error("invalid token: {0}")]
    TokenInvalid(String),
    #[error("invalid scope `{0}`: expected `repository:<name>:<actions>` or `registry:catalog:*`")]
    ScopeInvalid(String),
    #[error("signing key {path}: {why}")]
    Key { path: String, why: String },
    #[error("password hashing: {0}")]
    PasswordHash(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}
