//! What every handler needs: the registry, the auth services, and how to
//! build URLs for Location headers and the token realm.

use std::sync::Arc;

use berth_auth::{Identity, LoginService, TokenService};
use berth_conf::IpNet;
use berth_policy::Role;
use berth_storage::audit::AuditLog;
use berth_storage::changes::{Change, Epoch};
use berth_storage::Registry;
use pingora::proxy::Session;

use crate::bufpool::BufPool;
use crate::error::GatewayError;
use crate::http::header;
use crate::metrics::Metrics;
use crate::upstream::Upstreams;

pub struct App {
    pub registry: Arc<Registry>,
    pub tokens: Arc<TokenService>,
    pub login: Arc<LoginService>,
    /// `external_url` without a trailing slash; Location headers are
    /// relative paths when it is unset (clients resolve them).
    pub external_url: Option<String>,
    /// Whether this listener speaks TLS (for URLs derived from Host).
    pub tls: bool,
    /// Proxies whose X-Forwarded-Proto/-Host are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Buffers for streaming blobs to clients.
    pub read_pool: Arc<BufPool>,
    /// The audit log and pull statistics (written off the request path).
    pub audit: AuditLog,
    /// Callers' roles per project, so Basic-auth requests on the data path
    /// do not query memberships each time. Cleared when members change.
    pub roles: moka::sync::Cache<(i64, String), Option<Role>>,
    /// Invalidations of `roles` (see `berth_storage::changes::Epoch`).
    pub roles_epoch: Epoch,
    /// The Prometheus registry and the handles requests record into.
    pub metrics: Metrics,
    /// Upstream registries: the pull-through cache, mirror and fronting.
    pub upstreams: Arc<Upstreams>,
    /// Settings changed at run time: read-only mode, who creates
    /// projects, token lifetime, new projects' limit.
    pub runtime: Arc<crate::runtime::Runtime>,
    /// What the config file sets that `/configurations` shows.
    pub file_settings: FileSettings,
    /// Starts tag retention runs.
    pub retention: crate::retention::Runner,
    /// Starts replication executions.
    pub replication: Arc<crate::replication::Replicator>,
    /// Queues the projects' events for their webhooks.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// The mail server, when one is set (`[email]` or `/configurations`).
    pub mailer: crate::mail::MailerSlot,
    /// Password resets by mail.
    pub resets: Arc<crate::mail::PasswordResets>,
    /// The side runtime, for work that outlives a request (a GC run).
    pub side: tokio::runtime::Handle,
    /// `server.max_header_size` and the per-client request rate.
    pub limits: crate::limits::Limits,
    /// `server.body_timeout` and `server.body_min_rate`, for upload bodies.
    pub body_pace: crate::v2::pace::BodyPace,
    /// The effective configuration as TOML, secrets redacted, for the
    /// portal's system page.
    pub config_text: String,
}

/// What the config file sets that the API reports.
pub struct FileSettings {
    /// Where blobs live on the filesystem driver (`None`: object storage).
    pub blob_root: Option<std::path::PathBuf>,
    /// The data directory (SQLite, keys).
    pub data_dir: std::path::PathBuf,
}

/// How long a cached role may lag a membership change when the change's
/// announcement is lost (changes made here, and on PostgreSQL those
/// announced by the other instances, clear the cache at once).
pub const ROLE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

impl App {
    /// The strongest role `id` holds in a project, directly or through
    /// its LDAP groups.
    pub async fn role_in(
        &self,
        project_id: i64,
        id: &Identity,
    ) -> Result<Option<Role>, GatewayError> {
        let key = (project_id, id.username.clone());
        if let Some(role) = self.roles.get(&key) {
            return Ok(role);
        }
        let epoch = self.roles_epoch.current();
        let ids = self
            .registry
            .meta()
            .project_roles(project_id, id.user_id, &id.groups)
            .await?;
        let role = ids
            .into_iter()
            .filter_map(Role::from_id)
            .fold(None, |best, r| Role::strongest(best, Some(r)));
        // Read before a membership change that was applied meanwhile: not kept.
        self.roles_epoch.fill(&self.roles, key, role, epoch);
        Ok(role)
    }

    /// Forgets cached roles and logins after an account or membership
    /// changed, here and in the other processes sharing the database.
    /// Returns once every instance has applied it (see `Registry::settle`).
    pub async fn forget_access(&self) {
        self.registry.meta().announce_later(Change::Access);
        self.apply_change(&Change::Access);
        self.registry.settle().await;
    }

    /// Forgets a registry endpoint after it changed or went, here and in
    /// the other processes; returns once every instance has applied it.
    pub async fn forget_endpoint(&self, id: i64) {
        self.registry.meta().announce_later(Change::Endpoint { id });
        self.apply_change(&Change::Endpoint { id });
        self.registry.settle().await;
    }

    /// Has every process read the replication policies again before its
    /// next event.
    pub fn forget_replication_policies(&self) {
        self.registry
            .meta()
            .announce_later(Change::ReplicationPolicies);
        self.apply_change(&Change::ReplicationPolicies);
    }

    /// Has every process read the webhook policies again.
    pub fn forget_webhook_policies(&self) {
        self.registry.meta().announce_later(Change::WebhookPolicies);
        self.apply_change(&Change::WebhookPolicies);
    }

    /// Drops what a change (announced by any process) makes stale in this
    /// process's caches.
    pub fn apply_change(&self, change: &Change) {
        self.registry.apply_change(change);
        match change {
            Change::Access => {
                self.roles_epoch.bump();
                self.roles.invalidate_all();
                self.login.forget_logins();
            }
            Change::Endpoint { id } => self.upstreams.forget_endpoint(*id),
            Change::Content => self.upstreams.forget_local_repos(),
            Change::Keys => self.tokens.reload_keys(std::time::Duration::ZERO),
            Change::ReplicationPolicies => self.replication.policies_changed(),
            Change::WebhookPolicies => self.webhooks.policies_changed(),
            Change::Configuration { values, withheld } => {
                self.runtime.apply_announced(values, withheld);
                // The secrets are read from the table, never announced.
                if !withheld.is_empty() {
                    self.reload_settings();
                }
            }
            Change::Everything => {
                self.reload_settings();
                self.replication.policies_changed();
                self.webhooks.policies_changed();
                self.roles_epoch.bump();
                self.roles.invalidate_all();
                self.login.forget_logins();
                self.upstreams.forget_everything();
                self.tokens.reload_keys(std::time::Duration::ZERO);
            }
            Change::Tag { .. }
            | Change::AnyTag
            | Change::Manifest { .. }
            | Change::BlobLink { .. }
            | Change::Project { .. } => {}
        }
    }

    /// Reads the run-time settings again, off the caller's task.
    fn reload_settings(&self) {
        let (runtime, meta) = (self.runtime.clone(), self.registry.meta().clone());
        self.side.spawn(async move {
            if let Err(e) = runtime.reload(&meta).await {
                tracing::warn!(error = %e, "reading the run-time settings failed");
            }
        });
    }

    pub fn url(&self, path: &str) -> String {
        match &self.external_url {
            Some(base) => format!("{base}{path}"),
            None => path.to_owned(),
        }
    }

    /// The registry's base URL as the client sees it: `external_url`, or
    /// derived from the request's Host header.
    pub fn base_url(&self, session: &Session) -> String {
        if let Some(base) = &self.external_url {
            return base.clone();
        }
        // Behind a proxy berth trusts, the client's scheme and host are the
        // proxy's X-Forwarded-* headers; from anyone else they are ignored.
        let forwarded = crate::auth::peer_ip(session)
            .is_some_and(|ip| self.trusted_proxies.iter().any(|net| net.contains(ip)));
        let first = |name: &str| {
            header(session, name)
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_owned())
        };
        let host = forwarded
            .then(|| first("x-forwarded-host"))
            .flatten()
            .filter(|h| valid_host(h))
            .or_else(|| header(session, "host").map(str::to_owned))
            .or_else(|| session.req_header().uri.authority().map(|a| a.to_string()))
            .filter(|h| valid_host(h))
            .unwrap_or_else(|| "localhost".to_owned());
        let scheme = match forwarded.then(|| first("x-forwarded-proto")).flatten() {
            Some(p) if p.eq_ignore_ascii_case("https") => "https",
            Some(p) if p.eq_ignore_ascii_case("http") => "http",
            _ if self.tls => "https",
            _ => "http",
        };
        format!("{scheme}://{host}")
    }
}

/// The value ends up inside a quoted header parameter: allow only what a
/// host[:port] can contain.
pub(crate) fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}
