//! One LDAP connection for one login: opened with the configured transport
//! (plain, StartTLS, ldaps), every step bounded by `ldap.timeout`, and every
//! failure turned into an [`AuthError`] that says whose fault it is.
//!
//! The split that matters to the user: the directory not answering is
//! `DirectoryUnavailable` (a 503, "try again later"), the directory
//! answering in a way berth cannot use is `DirectoryMisconfigured` (an
//! administrator must act), and only a rejected user bind or a missing
//! user is `InvalidCredentials`.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use berth_conf::LdapConfig;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult};
use tokio::task::JoinHandle;

use crate::error::AuthError;

/// What the connection was doing, for error messages and for the result
/// codes whose meaning depends on it (49 on the service bind is a config
/// problem, on the user bind a wrong password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Connect,
    ServiceBind,
    UserSearch,
    UserBind,
    GroupSearch,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Connect => "connect",
            Step::ServiceBind => "bind as the search account",
            Step::UserSearch => "user search",
            Step::UserBind => "bind as the user",
            Step::GroupSearch => "group search",
        })
    }
}

/// LDAP result codes (RFC 4511, appendix A) that change what we do.
pub(crate) mod rc {
    pub(crate) const SUCCESS: u32 = 0;
    pub(crate) const TIME_LIMIT_EXCEEDED: u32 = 3;
    pub(crate) const SIZE_LIMIT_EXCEEDED: u32 = 4;
    pub(crate) const REFERRAL: u32 = 10;
    pub(crate) const CONFIDENTIALITY_REQUIRED: u32 = 13;
    pub(crate) const NO_SUCH_OBJECT: u32 = 32;
    pub(crate) const INVALID_DN_SYNTAX: u32 = 34;
    pub(crate) const INAPPROPRIATE_AUTHENTICATION: u32 = 48;
    pub(crate) const INVALID_CREDENTIALS: u32 = 49;
    pub(crate) const BUSY: u32 = 51;
    pub(crate) const UNAVAILABLE: u32 = 52;
    pub(crate) const UNWILLING_TO_PERFORM: u32 = 53;
}

/// An open connection. Dropping it stops the background task that drives
/// the socket, which closes it; [`Connection::close`] unbinds first.
pub(crate) struct Connection {
    ldap: Ldap,
    driver: JoinHandle<()>,
    url: String,
    timeout: Duration,
}

impl Connection {
    /// Connects (TCP, then StartTLS or the TLS handshake) within
    /// `config.timeout`.
    pub(crate) async fn open(config: &LdapConfig) -> Result<Connection, AuthError> {
        // ldap3 panics on a URL without a host; the config loader rejects
        // those, but an `LdapConfig` can also be built by hand.
        if !has_host(&config.url) {
            return Err(AuthError::DirectoryMisconfigured(format!(
                "ldap.url `{}` is not an ldap:// or ldaps:// URL with a host",
                config.url
            )));
        }
        let settings = LdapConnSettings::new()
            .set_starttls(config.start_tls)
            // Without a custom rustls config, ldap3 verifies against the
            // system roots (rustls-native-certs), which is what we want.
            .set_no_tls_verify(!config.verify_cert);
        let connecting = LdapConnAsync::with_settings(settings, &config.url);
        let (conn, ldap) = match tokio::time::timeout(config.timeout, connecting).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(classify(&config.url, Step::Connect, e)),
            Err(_) => return Err(no_answer(&config.url, Step::Connect, config.timeout)),
        };
        let url = config.url.clone();
        let driver = tokio::spawn({
            let url = url.clone();
            async move {
                if let Err(e) = conn.drive().await {
                    tracing::debug!(url = %url, error = %e, "ldap connection ended with an error");
                }
            }
        });
        Ok(Connection {
            ldap,
            driver,
            url,
            timeout: config.timeout,
        })
    }

    /// A simple bind. The result code is returned, not judged: what a
    /// rejection means depends on who was binding.
    pub(crate) async fn bind(
        &mut self,
        step: Step,
        dn: &str,
        password: &str,
    ) -> Result<LdapResult, AuthError> {
        let bind = self.ldap.simple_bind(dn, password);
        timed(self.timeout, &self.url, step, bind).await
    }

    /// A search returning whole entries; `limit` caps the entries the
    /// server sends (0: the server's own limit).
    pub(crate) async fn search(
        &mut self,
        step: Step,
        base: &str,
        scope: ldap3::Scope,
        filter: &str,
        attrs: &[&str],
        limit: i32,
    ) -> Result<(Vec<ldap3::SearchEntry>, LdapResult), AuthError> {
        let ldap = self
            .ldap
            .with_search_options(ldap3::SearchOptions::new().sizelimit(limit));
        let ldap3::SearchResult(entries, result) = timed(
            self.timeout,
            &self.url,
            step,
            ldap.search(base, scope, filter, attrs.to_vec()),
        )
        .await?;
        let entries = entries
            .into_iter()
            .map(ldap3::SearchEntry::construct)
            .collect();
        Ok((entries, result))
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Unbinds (best effort: the answer is already decided) and closes.
    pub(crate) async fn close(mut self) {
        let unbind = tokio::time::timeout(self.timeout, self.ldap.unbind()).await;
        if let Ok(Err(e)) = unbind {
            tracing::debug!(url = %self.url, error = %e, "ldap unbind failed");
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // After an unbind the driver has already finished; after a timeout
        // it may still be waiting on a silent server, and must not outlive
        // the login that started it.
        self.driver.abort();
    }
}

/// Whether `url` is `ldap://` or `ldaps://` followed by a host.
fn has_host(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("ldap://")
        .or_else(|| lower.strip_prefix("ldaps://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !authority.is_empty() && !authority.starts_with(':')
}

/// Runs one operation within `timeout`.
async fn timed<T>(
    timeout: Duration,
    url: &str,
    step: Step,
    operation: impl Future<Output = ldap3::result::Result<T>>,
) -> Result<T, AuthError> {
    match tokio::time::timeout(timeout, operation).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(classify(url, step, e)),
        Err(_) => Err(no_answer(url, step, timeout)),
    }
}

fn no_answer(url: &str, step: Step, timeout: Duration) -> AuthError {
    AuthError::DirectoryUnavailable(format!(
        "{url}: no answer within {} ms ({step})",
        timeout.as_millis()
    ))
}

/// Maps an ldap3 error (transport trouble or a result code) to whose fault
/// it is. Result codes that mean something particular for a step are
/// handled by the caller before this; here each code has one meaning.
pub(crate) fn classify(url: &str, step: Step, error: LdapError) -> AuthError {
    match error {
        LdapError::LdapResult { result } => result_error(url, step, &result),
        // The socket failed, closed, or the TLS handshake did not complete
        // (rustls reports certificate problems as I/O errors): the server
        // is not reachable as configured, which the user cannot fix.
        LdapError::Io { .. } | LdapError::Timeout { .. } | LdapError::Rustls { .. } => {
            AuthError::DirectoryUnavailable(format!("{url}: {step}: {error}"))
        }
        // ldap3's words for these ("result recv error: channel closed")
        // do not say what happened: the socket closed under the request,
        // as when a plain ldap:// client talks to an ldaps:// port.
        LdapError::OpSend { .. }
        | LdapError::ResultRecv { .. }
        | LdapError::IdScrubSend { .. }
        | LdapError::EndOfStream => AuthError::DirectoryUnavailable(format!(
            "{url}: {step}: the server closed the connection ({error})"
        )),
        other => AuthError::DirectoryMisconfigured(format!("{url}: {step}: {other}")),
    }
}

/// The error for a result code that is not success.
pub(crate) fn result_error(url: &str, step: Step, result: &LdapResult) -> AuthError {
    let what = describe(result);
    if step == Step::Connect {
        // The only request made while connecting is StartTLS.
        return AuthError::DirectoryMisconfigured(format!(
            "{url}: the server refused StartTLS ({what}); use an ldaps:// url or \
             ldap.start_tls = false"
        ));
    }
    match result.rc {
        rc::BUSY | rc::UNAVAILABLE | rc::TIME_LIMIT_EXCEEDED => {
            AuthError::DirectoryUnavailable(format!("{url}: {step}: {what}"))
        }
        rc::CONFIDENTIALITY_REQUIRED => AuthError::DirectoryMisconfigured(format!(
            "{url}: {step}: {what}; the directory requires TLS: use an ldaps:// url or \
             ldap.start_tls = true"
        )),
        _ => AuthError::DirectoryMisconfigured(format!("{url}: {step}: {what}")),
    }
}

/// `invalidCredentials (49): <server text>`, for messages.
pub(crate) fn describe(result: &LdapResult) -> String {
    let name = match result.rc {
        1 => "operationsError",
        2 => "protocolError",
        rc::TIME_LIMIT_EXCEEDED => "timeLimitExceeded",
        rc::SIZE_LIMIT_EXCEEDED => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        rc::REFERRAL => "referral",
        rc::CONFIDENTIALITY_REQUIRED => "confidentialityRequired",
        rc::NO_SUCH_OBJECT => "noSuchObject",
        34 => "invalidDNSyntax",
        rc::INAPPROPRIATE_AUTHENTICATION => "inappropriateAuthentication",
        rc::INVALID_CREDENTIALS => "invalidCredentials",
        50 => "insufficientAccessRights",
        rc::BUSY => "busy",
        rc::UNAVAILABLE => "unavailable",
        rc::UNWILLING_TO_PERFORM => "unwillingToPerform",
        80 => "other",
        _ => "result",
    };
    let text = result.text.trim();
    if text.is_empty() {
        format!("{name} ({})", result.rc)
    } else {
        format!("{name} ({}): {text}", result.rc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(rc: u32, text: &str) -> LdapResult {
        LdapResult {
            rc,
            matched: String::new(),
            text: text.to_owned(),
            refs: Vec::new(),
            ctrls: Vec::new(),
        }
    }

    #[test]
    fn result_codes_map_to_whose_fault_it_is() {
        let url = "ldap://h";
        assert!(matches!(
            result_error(url, Step::UserSearch, &result(rc::BUSY, "")),
            AuthError::DirectoryUnavailable(_)
        ));
        assert!(matches!(
            result_error(url, Step::ServiceBind, &result(rc::UNAVAILABLE, "")),
            AuthError::DirectoryUnavailable(_)
        ));
        match result_error(url, Step::UserSearch, &result(50, "no read access")) {
            AuthError::DirectoryMisconfigured(why) => assert_eq!(
                why,
                "ldap://h: user search: insufficientAccessRights (50): no read access"
            ),
            other => panic!("{other:?}"),
        }
        match result_error(
            url,
            Step::Connect,
            &result(2, "unsupported extended operation"),
        ) {
            AuthError::DirectoryMisconfigured(why) => assert_eq!(
                why,
                "ldap://h: the server refused StartTLS (protocolError (2): unsupported \
                 extended operation); use an ldaps:// url or ldap.start_tls = false"
            ),
            other => panic!("{other:?}"),
        }
        match result_error(
            url,
            Step::ServiceBind,
            &result(rc::CONFIDENTIALITY_REQUIRED, ""),
        ) {
            AuthError::DirectoryMisconfigured(why) => {
                assert!(why.contains("start_tls"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn transport_errors_are_unavailable() {
        let refused = LdapError::Io {
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        match classify("ldap://h:1", Step::Connect, refused) {
            AuthError::DirectoryUnavailable(why) => {
                assert!(why.starts_with("ldap://h:1: connect: I/O error"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        match classify("ldap://h", Step::UserBind, LdapError::EndOfStream) {
            AuthError::DirectoryUnavailable(why) => {
                assert!(why.contains("the server closed the connection"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify("ldap://h", Step::UserSearch, LdapError::FilterParsing),
            AuthError::DirectoryMisconfigured(_)
        ));
    }

    #[test]
    fn urls_need_a_host() {
        assert!(has_host("ldap://127.0.0.1:389"));
        assert!(has_host("LDAPS://ldap.example.org/"));
        assert!(!has_host("ldap://"));
        assert!(!has_host("ldap://:389"));
        assert!(!has_host("ldap:/x"));
        assert!(!has_host("https://ldap.example.org"));
    }

    #[test]
    fn descriptions_name_the_code() {
        assert_eq!(
            describe(&result(rc::INVALID_CREDENTIALS, "")),
            "invalidCredentials (49)"
        );
        assert_eq!(describe(&result(99, " odd ")), "result (99): odd");
    }
}
