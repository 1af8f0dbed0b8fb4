//! The gateway's error type and the one place where every error becomes an
//! OCI error code, an HTTP status and a message that says what to do.

use berth_auth::AuthError;
use berth_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// No credentials where they are needed.
    #[error("authentication required: log in (docker login / podman login) or send a bearer token from the realm in WWW-Authenticate")]
    Unauthenticated { scope: Option<String> },
    /// A valid token that does not grant this request.
    #[error("the token does not grant {}; request a token for that scope", .scope.as_deref().unwrap_or("this request"))]
    InsufficientScope { scope: Option<String> },
    /// A Range header the blob cannot satisfy.
    #[error("requested range is not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("{0}")]
    BadRequest(String),
    #[error(
        "Content-Range `{0}` is malformed; send `<start>-<end>` (inclusive, no `bytes=` prefix)"
    )]
    ContentRangeInvalid(String),
    #[error("a digest query parameter is required to complete an upload: PUT <location>?digest=<algorithm>:<hex>")]
    DigestRequired,
    #[error("request body is larger than the {limit}-byte limit for this endpoint")]
    BodyTooLarge { limit: usize },
    #[error("{method} is not supported on this endpoint")]
    MethodNotAllowed { method: String },
    #[error("no such endpoint: {0}; the registry API is under /v2/")]
    NotFound(String),
    /// The request body could not be read (the client went away, or sent
    /// a malformed chunked encoding); reported as the error of the
    /// endpoint the body was for. The connection is closed after the
    /// answer: where the body ends cannot be known.
    #[error("the request body could not be read: {detail}")]
    BodyUnreadable { of: BodyOf, detail: String },
    #[error("{0}")]
    Denied(String),
    /// The caller may not learn whether this exists: 404 on the management
    /// API, DENIED (naming it) on /v2.
    #[error("{0}")]
    Hidden(String),
    /// A portal form without its session's CSRF token (a stale page, or a
    /// request forged by another site).
    #[error("the form's CSRF token is missing or stale; reload the page and submit it again")]
    CsrfRejected,
    /// `/metrics` on the main listener without credentials.
    #[error("the metrics are for administrators: scrape with HTTP Basic credentials (Prometheus `basic_auth`), or set [metrics] listen for an internal listener")]
    MetricsLogin,
    /// A management API object that does not exist.
    #[error("{0}")]
    ApiNotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Harbor's 412: the request is valid but the object's state forbids it
    /// (deleting a project that still has repositories).
    #[error("{0}")]
    Precondition(String),
    /// An upstream registry (of a proxy-cache or passthrough project)
    /// could not be reached or timed out, and nothing cached can answer.
    #[error("the upstream registry `{registry}` is unreachable ({detail}) and berth has no cached copy of {what}; try again when it is back, or ask an administrator to check the registry endpoint")]
    UpstreamUnreachable {
        registry: String,
        detail: String,
        what: String,
    },
    /// The upstream answered 429 and nothing cached can answer.
    #[error("the upstream registry `{registry}` is rate-limiting berth and berth has no cached copy of {what}; retry later{}", .retry_after.as_deref().map(|s| format!(" (after {s} s)")).unwrap_or_default())]
    UpstreamRateLimited {
        registry: String,
        what: String,
        retry_after: Option<String>,
    },
    /// The upstream refused berth's credentials for the endpoint.
    #[error("the upstream registry `{registry}` refused berth's credentials ({detail}); an administrator should fix the registry endpoint's credential")]
    UpstreamRefused { registry: String, detail: String },
    /// The upstream answered in a way berth cannot use (an error status,
    /// an answer too large or malformed); the detail says which.
    #[error("the registry `{registry}` {detail}")]
    UpstreamFailed { registry: String, detail: String },
    /// The upstream sent content whose digest is not the one asked for;
    /// nothing was cached.
    #[error("the upstream registry `{registry}` sent content for {digest} that does not match that digest; nothing was cached, the upstream may be corrupt")]
    UpstreamCorrupt { registry: String, digest: String },
    /// A request body that fell behind `server.body_min_rate`; what
    /// arrived was kept (`location`: where to resume) or, for a monolithic
    /// upload, the session was dropped.
    #[error("the request body arrived too slowly: {received} bytes in {elapsed_s} s, below the {min_rate} bytes/s this registry requires after the first {timeout_s} s; {}", match .location { Some(_) => format!("the upload keeps the {kept} bytes received: resume at byte {kept}"), None => "nothing was kept: upload again, or in chunks".to_owned() })]
    BodyTooSlow {
        received: u64,
        elapsed_s: u64,
        min_rate: u64,
        timeout_s: u64,
        kept: u64,
        location: Option<String>,
    },
    /// The mail server refused or could not be reached; the detail says
    /// which (never a password).
    #[error("the mail server failed: {0}; check the [email] settings and the server's log")]
    MailFailed(String),
    /// The LDAP directory failed an administrator's search or import; the
    /// detail is the directory's (never a password).
    #[error("{0}; check the [ldap] settings and the directory's log")]
    DirectoryFailed(String),
    /// A feature the configuration leaves off; the message says which
    /// setting turns it on.
    #[error("{0}")]
    NotConfigured(String),
    /// Read-only mode is on (`/configurations`).
    #[error("the registry is in read-only mode for maintenance: pushes, deletions, garbage collection, retention and replication are refused until an administrator turns it off (PUT /api/v2.0/configurations {{\"read_only\": false}}); pulls work")]
    ReadOnly,
    /// The request line and headers exceed `server.max_header_size`.
    #[error("the request's headers are larger than this registry's limit of {limit} bytes (server.max_header_size); send fewer or smaller headers (cookies, tokens)")]
    HeadersTooLarge { limit: usize },
    /// Too many requests from one client; the message says when to retry.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// An out-of-order chunk; the reply says where the upload stands.
    #[error(
        "chunk starts at byte {got} but the upload has {expected} bytes; resume at byte {expected}"
    )]
    UploadOffset {
        expected: u64,
        got: u64,
        location: String,
    },
}

/// How an error is presented: status, OCI code, message and whether it is
/// the server's fault (logged with its cause chain).
pub struct Presented {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub internal: bool,
}

impl GatewayError {
    /// For 401s: the scope to name in the challenge and the bearer error.
    pub fn challenge(&self) -> Option<(Option<&str>, Option<&'static str>)> {
        match self {
            GatewayError::Unauthenticated { scope } => Some((scope.as_deref(), None)),
            GatewayError::InsufficientScope { scope } => {
                Some((scope.as_deref(), Some("insufficient_scope")))
            }
            GatewayError::Auth(AuthError::TokenInvalid(_)) => Some((None, Some("invalid_token"))),
            GatewayError::Auth(
                AuthError::InvalidCredentials
                | AuthError::UserDisabled(_)
                | AuthError::RobotExpired(_),
            ) => Some((None, None)),
            _ => None,
        }
    }

    /// Headers that belong with the error response.
    pub fn extra_headers(&self) -> Vec<(&'static str, String)> {
        match self {
            GatewayError::RangeNotSatisfiable { size } => {
                vec![("Content-Range", format!("bytes */{size}"))]
            }
            GatewayError::MetricsLogin => {
                vec![(
                    "WWW-Authenticate",
                    "Basic realm=\"berth metrics\"".to_owned(),
                )]
            }
            GatewayError::UpstreamRateLimited {
                retry_after: Some(s),
                ..
            } => vec![("Retry-After", s.clone())],
            GatewayError::Auth(AuthError::TooManyAttempts {
                retry_after_secs, ..
            }) => vec![("Retry-After", retry_after_secs.to_string())],
            GatewayError::TooManyRequests {
                retry_after_secs, ..
            } => vec![("Retry-After", retry_after_secs.to_string())],
            GatewayError::BodyTooSlow {
                kept,
                location: Some(location),
                ..
            } => vec![
                ("Location", location.clone()),
                ("Range", format!("0-{}", kept.saturating_sub(1))),
            ],
            GatewayError::UploadOffset {
                expected, location, ..
            } => vec![
                ("Location", location.clone()),
                ("Range", format!("0-{}", expected.saturating_sub(1))),
            ],
            _ => Vec::new(),
        }
    }
}

/// What a request body is, for the error when it cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyOf {
    /// Blob bytes for an upload.
    Upload,
    /// A manifest being pushed.
    Manifest,
    /// Anything else: a form, a JSON document.
    Request,
}

impl GatewayError {
    pub fn present(&self) -> Presented {
        let p = |status, code| Presented {
            status,
            code,
            message: self.to_string(),
            internal: false,
        };
        match self {
            // The disk is full: not the client's fault, and not a bug of
            // berth's either; logged (with the path) all the same.
            GatewayError::Storage(e) if e.is_storage_full() => Presented {
                status: 507,
                code: "UNAVAILABLE",
                message: "the registry's storage is full: nothing was stored. Ask its \
                          administrator to free space (delete what is not needed and run garbage \
                          collection) or grow the volume, then retry"
                    .into(),
                internal: true,
            },
            GatewayError::Storage(e) => match e {
                StorageError::NameInvalid(_) => p(400, "NAME_INVALID"),
                StorageError::TextInvalid => p(400, "UNSUPPORTED"),
                StorageError::TagInvalid(_) => p(400, "TAG_INVALID"),
                StorageError::DigestInvalid(_) => p(400, "DIGEST_INVALID"),
                StorageError::NameUnknown(_) => p(404, "NAME_UNKNOWN"),
                StorageError::BlobUnknown(_) => p(404, "BLOB_UNKNOWN"),
                StorageError::UploadUnknown => p(404, "BLOB_UPLOAD_UNKNOWN"),
                StorageError::UploadOffsetMismatch { .. } => p(416, "BLOB_UPLOAD_INVALID"),
                StorageError::UploadBusy => p(409, "BLOB_UPLOAD_INVALID"),
                StorageError::TooManyUploads { .. } => p(429, "TOOMANYREQUESTS"),
                StorageError::DigestMismatch { .. } => p(400, "DIGEST_INVALID"),
                StorageError::ManifestUnknown(_) => p(404, "MANIFEST_UNKNOWN"),
                StorageError::ManifestInvalid(_) => p(400, "MANIFEST_INVALID"),
                StorageError::ManifestBlobUnknown(_) => p(400, "MANIFEST_BLOB_UNKNOWN"),
                StorageError::ManifestTooLarge { .. } => p(413, "SIZE_INVALID"),
                StorageError::ManifestSchema1Unsupported => p(400, "MANIFEST_INVALID"),
                StorageError::QuotaExceeded(_) | StorageError::TagImmutable { .. } => {
                    p(403, "DENIED")
                }
                StorageError::GcRunning { .. } => p(409, "CONFLICT"),
                StorageError::GcLockLost
                | StorageError::Io { .. }
                | StorageError::Object { .. }
                | StorageError::Db(_)
                | StorageError::Migrate(_)
                | StorageError::MigrationRefused(_)
                | StorageError::Secrets(_)
                | StorageError::BackupRefused(_)
                | StorageError::Corrupt(_) => Presented {
                    status: 500,
                    code: "UNKNOWN",
                    message: "internal server error; the registry log has the cause".into(),
                    internal: true,
                },
            },
            GatewayError::Auth(e) => match e {
                AuthError::InvalidCredentials
                | AuthError::UserDisabled(_)
                | AuthError::RobotExpired(_)
                | AuthError::TokenInvalid(_) => p(401, "UNAUTHORIZED"),
                AuthError::DirectoryUnavailable(_) | AuthError::DirectoryMisconfigured(_) => {
                    p(503, "UNAVAILABLE")
                }
                AuthError::TooManyAttempts { .. } => p(429, "TOOMANYREQUESTS"),
                AuthError::ScopeInvalid(_) => p(400, "UNSUPPORTED"),
                // Credentials with a NUL cannot be anyone's.
                AuthError::Storage(StorageError::TextInvalid) => p(401, "UNAUTHORIZED"),
                AuthError::Key { .. } | AuthError::PasswordHash(_) | AuthError::Storage(_) => {
                    Presented {
                        status: 500,
                        code: "UNKNOWN",
                        message: "internal server error; the registry log has the cause".into(),
                        internal: true,
                    }
                }
            },
            GatewayError::Unauthenticated { .. } => p(401, "UNAUTHORIZED"),
            GatewayError::InsufficientScope { .. } => p(401, "UNAUTHORIZED"),
            GatewayError::RangeNotSatisfiable { .. } => p(416, "BLOB_UNKNOWN"),
            GatewayError::BadRequest(_) => p(400, "UNSUPPORTED"),
            GatewayError::ContentRangeInvalid(_) => p(400, "BLOB_UPLOAD_INVALID"),
            GatewayError::DigestRequired => p(400, "DIGEST_INVALID"),
            GatewayError::BodyTooLarge { .. } => p(413, "SIZE_INVALID"),
            GatewayError::MethodNotAllowed { .. } => p(405, "UNSUPPORTED"),
            GatewayError::NotFound(_) => p(404, "NOT_FOUND"),
            GatewayError::BodyUnreadable { of, .. } => match of {
                BodyOf::Upload => p(400, "BLOB_UPLOAD_INVALID"),
                BodyOf::Manifest => p(400, "MANIFEST_INVALID"),
                BodyOf::Request => p(400, "UNSUPPORTED"),
            },
            GatewayError::Denied(_) | GatewayError::Hidden(_) => p(403, "DENIED"),
            GatewayError::ApiNotFound(_) => p(404, "NOT_FOUND"),
            GatewayError::MetricsLogin => p(401, "UNAUTHORIZED"),
            GatewayError::CsrfRejected => p(403, "DENIED"),
            GatewayError::Conflict(_) => p(409, "CONFLICT"),
            GatewayError::Precondition(_) => p(412, "PRECONDITION"),
            GatewayError::UploadOffset { .. } => p(416, "BLOB_UPLOAD_INVALID"),
            GatewayError::BodyTooSlow { .. } => p(408, "BLOB_UPLOAD_INVALID"),
            GatewayError::UpstreamUnreachable { .. } => p(503, "UNAVAILABLE"),
            GatewayError::MailFailed(_) | GatewayError::DirectoryFailed(_) => p(502, "UNAVAILABLE"),
            GatewayError::NotConfigured(_) => p(503, "UNAVAILABLE"),
            GatewayError::TooManyRequests { .. } => p(429, "TOOMANYREQUESTS"),
            GatewayError::HeadersTooLarge { .. } => p(431, "SIZE_INVALID"),
            GatewayError::ReadOnly => p(403, "DENIED"),
            GatewayError::UpstreamRateLimited { .. } => p(429, "TOOMANYREQUESTS"),
            GatewayError::UpstreamRefused { .. }
            | GatewayError::UpstreamCorrupt { .. }
            | GatewayError::UpstreamFailed { .. } => p(502, "UNAVAILABLE"),
        }
    }
}

impl GatewayError {
    /// The management API's presentation: Harbor's codes, named after the
    /// status, and 404 for what the caller may not see.
    pub fn present_api(&self) -> Presented {
        let mut p = self.present();
        p.message = match self {
            // Harbor's message for missing credentials.
            GatewayError::Unauthenticated { .. } => {
                "unauthorized: log in with HTTP Basic credentials (a user or a robot account)"
                    .into()
            }
            GatewayError::NotFound(path) => {
                format!("no such endpoint: {path}; the management API is described at /api/v2.0/openapi.json")
            }
            _ => p.message,
        };
        if matches!(self, GatewayError::Hidden(_)) {
            p.status = 404;
        }
        p.code = match p.status {
            400 => "BAD_REQUEST",
            401 => "UNAUTHORIZED",
            403 => "FORBIDDEN",
            404 => "NOT_FOUND",
            405 => "METHOD_NOT_ALLOWED",
            408 => "REQUEST_TIMEOUT",
            409 => "CONFLICT",
            412 => "PRECONDITION",
            413 => "REQUEST_ENTITY_TOO_LARGE",
            416 => "BAD_REQUEST",
            429 => "TOO_MANY_REQUESTS",
            431 => "REQUEST_HEADER_FIELDS_TOO_LARGE",
            502 => "BAD_GATEWAY",
            503 => "SERVICE_UNAVAILABLE",
            507 => "INSUFFICIENT_STORAGE",
            _ => "INTERNAL_SERVER_ERROR",
        };
        p
    }
}

/// Harbor's error body: `{"errors":[{"code","message"}]}`.
pub fn harbor_body(code: &str, message: &str) -> Vec<u8> {
    serde_json::json!({ "errors": [{ "code": code, "message": message }] })
        .to_string()
        .into_bytes()
}

/// The OCI error body: `{"errors":[{"code","message","detail"}]}`.
pub fn oci_body(code: &str, message: &str) -> Vec<u8> {
    serde_json::json!({
        "errors": [{ "code": code, "message": message, "detail": null }]
    })
    .to_string()
    .into_bytes()
}

/// Walks an error's sources for the log line.
pub fn cause_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
