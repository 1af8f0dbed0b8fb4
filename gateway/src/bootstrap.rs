//! Builds the shared state from a validated config: the store, the auth
//! services, the `admin` user and the public `library` project.

use std::sync::Arc;
use std::time::Duration;

use berth_auth::ldap::LdapDirectory;
use berth_auth::login::bootstrap_admin;
use berth_auth::{LoginService, TokenService};
use berth_conf::{AuthMode, Config};
use berth_storage::audit::AuditLog;
use berth_storage::{ObjectSettings, Registry, Role, Settings};

use crate::app::{App, ROLE_TTL};
use crate::bufpool::BufPool;
use crate::http::{POOL_IDLE, READ_CHUNK};
use crate::metrics::{Metrics, Sampled};
use crate::upstream::mirror::Mirror;
use crate::upstream::Upstreams;

/// Token issuer and audience (`service`) names.
pub const ISSUER: &str = "berth-token-service";
pub const SERVICE: &str = "berth";

/// What starting produced, for `main` to report.
pub struct Built {
    pub app: Arc<App>,
    /// The admin password generated on the very first start, to be shown
    /// once.
    pub generated_admin_password: Option<String>,
}

pub fn storage_settings(config: &Config) -> Settings {
    Settings {
        blob_root: config.storage.root.clone(),
        objects: config.storage.s3.as_ref().map(|s3| ObjectSettings {
            endpoint: s3.endpoint.clone(),
            region: s3.region.clone(),
            bucket: s3.bucket.clone(),
            prefix: s3.prefix.clone(),
            credentials: s3
                .access_key
                .as_ref()
                .zip(s3.secret_key.as_ref())
                .map(|(k, s)| (k.expose().to_owned(), s.expose().to_owned())),
            path_style: s3.path_style,
            part_size: s3.part_size,
            redirect: config.storage.redirect,
        }),
        database_url: config.database.url.expose().to_owned(),
        secret_key_file: config.secrets.key_file.clone(),
        gc_grace: config.gc.grace_period,
        upload_purge_age: config.server.upload_purge_age,
        role: Role::Server,
    }
}

/// The store's settings for a command run beside the server (`berth gc`,
/// `berth user`): it leaves the server's uploads and fetches alone.
pub fn tool_settings(config: &Config) -> Settings {
    Settings {
        role: Role::Tool,
        ..storage_settings(config)
    }
}

/// Creates the data directory, readable only by berth: it holds password
/// hashes and the token signing key.
pub fn make_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Opens the store and sets up authentication. Each error says which part
/// failed.
pub async fn build(config: &Config) -> Result<Built, String> {
    let registry = Registry::open(&storage_settings(config))
        .await
        .map_err(|e| format!("cannot open the registry store: {e}"))?
        .with_max_uploads_per_user(config.server.max_uploads_per_user)
        .with_max_manifest_size(config.server.limits.max_manifest_size);
    let tokens = TokenService::open(&config.data_dir, ISSUER, SERVICE, config.auth.token_ttl)
        .map_err(|e| format!("cannot set up tokens: {e}"))?;
    let ldap = match (&config.auth.mode, &config.ldap) {
        (AuthMode::Ldap, Some(l)) => Some(LdapDirectory::new(l)),
        _ => None,
    };
    let cache_ttl = config
        .ldap
        .as_ref()
        .map(|l| l.cache_ttl)
        .unwrap_or(Duration::from_secs(60));
    let meta = registry.meta();
    let admin_password = config.auth.admin_password.as_ref().map(|s| s.expose());
    let generated_admin_password = bootstrap_admin(meta, admin_password, &config.data_dir)
        .await
        .map_err(|e| format!("cannot create the admin user: {e}"))?;
    meta.ensure_project("library", true)
        .await
        .map_err(|e| format!("cannot create the library project: {e}"))?;
    let login = Arc::new(LoginService::new(meta.clone(), ldap, cache_ttl));
    let audit = AuditLog::start(meta.clone());
    let registry = Arc::new(registry);
    let tokens = Arc::new(tokens);
    let metrics = Sampled::new(tokens.clone(), login.clone(), registry.clone())
        .and_then(|sampled| Metrics::new(config.metrics.listen.is_none(), sampled))
        .map_err(|e| format!("cannot set up metrics: {e}"))?;
    let mirror = config.proxy.mirror.as_ref().map(|registry| Mirror {
        registry: registry.clone(),
        project: config.proxy.mirror_project.clone(),
    });
    let upstreams = Arc::new(Upstreams::new(mirror).map_err(|e| e.to_string())?);
    let mailer: crate::mail::MailerSlot =
        Arc::new(arc_swap::ArcSwapOption::from(match &config.email {
            Some(email) => {
                crate::mail::Mailer::warn_if_unencrypted(email);
                Some(Arc::new(crate::mail::Mailer::new(email)?))
            }
            None => None,
        }));
    let runtime = Arc::new(crate::runtime::Runtime::new(
        config,
        tokens.clone(),
        login.clone(),
        mailer.clone(),
    ));
    let meta = registry.meta();
    runtime
        .reload(meta)
        .await
        .map_err(|e| format!("cannot read the run-time settings: {e}"))?;
    runtime.start(meta.clone());
    let webhooks = Arc::new(crate::webhooks::Webhooks::new(
        registry.clone(),
        config.external_url.as_ref().map(|u| u.as_str()),
    ));
    webhooks.start();
    let retention =
        crate::retention::Runner::new(registry.clone(), audit.clone(), webhooks.clone());
    let replication = Arc::new(crate::replication::Replicator::new(
        registry.clone(),
        upstreams.clone(),
        audit.clone(),
        runtime.clone(),
        metrics.replication.clone(),
        webhooks.clone(),
    ));
    replication.start_events();
    // The one scheduler, on the runtime that builds the app: the side
    // runtime when serving.
    tokio::spawn(crate::jobs::run(
        runtime.clone(),
        vec![
            Arc::new(crate::jobs::gc::GcJob::new(registry.clone())),
            Arc::new(crate::jobs::history::HistoryJob::new(registry.clone())),
            Arc::new(crate::jobs::purge::PurgeJob::new(registry.clone())),
            Arc::new(retention.clone()),
            Arc::new(crate::replication::ReplicationJob::new(replication.clone())),
        ],
    ));
    let resets = Arc::new(crate::mail::PasswordResets::new(
        registry.clone(),
        mailer.clone(),
        config.external_url.as_ref().map(|u| u.as_str()),
    ));
    resets.start();
    let app = Arc::new(App {
        registry,
        tokens,
        login,
        external_url: config.external_url.as_ref().map(|u| u.as_str().to_owned()),
        tls: config.tls.is_some(),
        trusted_proxies: config.server.trusted_proxies.clone(),
        read_pool: BufPool::new(READ_CHUNK, POOL_IDLE),
        audit,
        roles: moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(ROLE_TTL)
            .build(),
        roles_epoch: Default::default(),
        metrics,
        upstreams,
        runtime,
        file_settings: crate::app::FileSettings {
            blob_root: (config.storage.driver == berth_conf::StorageDriver::Filesystem)
                .then(|| config.storage.root.clone()),
            data_dir: config.data_dir.clone(),
        },
        retention,
        replication,
        webhooks,
        mailer,
        resets,
        side: tokio::runtime::Handle::current(),
        limits: crate::limits::Limits::new(&config.server.limits),
        body_pace: crate::v2::pace::BodyPace {
            timeout: config.server.body_timeout,
            min_rate: config.server.body_min_rate,
        },
        config_text: config.redacted(),
    });
    // Changes announced by the other processes sharing the database (and
    // this one's own, which are already applied here: a no-op).
    let listening = Arc::downgrade(&app);
    app.registry.meta().listen(move |change| {
        if let Some(app) = listening.upgrade() {
            app.apply_change(&change);
        }
    });
    Ok(Built {
        app,
        generated_admin_password,
    })
}
