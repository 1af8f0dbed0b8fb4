//! The `berth` binary: parse the command line, load config, build, run.

use std::net::{IpAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;

use berth_conf::{Config, LogFormat, TlsConfig};
use berth_gateway::server::{self, ServerSettings};
use berth_gateway::tls::{CertFiles, ReloadingCert};
use berth_gateway::users_cli::{self, UserCommand};
use berth_gateway::{backup_cli, bootstrap, cert_cli, gc_cli, keys_cli, migrate_cli, secrets_cli};
use berth_storage::gc::GcOptions;
use berth_storage::Registry;
use clap::{Parser, Subcommand};
use pingora::server::UnixShutdownSignalWatch;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "An enterprise container registry in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry (the default).
    Serve {
        /// Config file (TOML); every key can also be set by BERTH_* env vars.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate the config and print the effective settings, secrets redacted.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Create a local CA and a server certificate for this registry's
    /// names (written to <data_dir>/tls; `serve` then uses them).
    Cert {
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Run one garbage collection: delete unreferenced blobs (and, with
    /// --delete-untagged, untagged manifests). Safe while the server runs.
    Gc {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Report what would be deleted and the bytes it would free; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also delete manifests that no tag, index or kept subject references.
        #[arg(long)]
        delete_untagged: bool,
    },
    /// Copy this installation (database and blobs, each blob's digest
    /// verified) into the one NEW.toml describes, on PostgreSQL. Rerun it
    /// to pick up what changed since the last run.
    Migrate {
        #[arg(long)]
        config: Option<PathBuf>,
        /// The destination's config file, read as written (environment
        /// overrides apply to the source only).
        #[arg(long, value_name = "NEW.toml")]
        to_config: PathBuf,
    },
    /// Copy this installation (SQLite and blobs on files) into DIR while
    /// it runs: a consistent database snapshot, the blobs it references
    /// (each digest checked) and the secret key. Rerun to update it.
    Backup {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
    /// Rebuild an installation from a backup into this config's (new)
    /// data directory, checking every blob's digest.
    Restore {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
    },
    /// Manage the token signing key.
    TokenKey {
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: TokenKeyCommand,
    },
    /// Manage the key that seals stored secrets (registry credentials,
    /// webhook headers, directory and mail passwords).
    Secrets {
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Manage local users.
    User {
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum TokenKeyCommand {
    /// Sign tokens with a new key from now on; the old key keeps verifying
    /// the tokens it signed until they expire.
    Rotate,
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Seal every stored secret with a new key and drop the old one from
    /// the key file. Safe while the server runs.
    Rotate,
}

#[derive(Subcommand)]
enum CertCommand {
    /// Write ca.crt, server.crt and server.key and print how to trust them.
    Init {
        /// A DNS name clients use for the registry (repeatable).
        #[arg(long = "hostname")]
        hostnames: Vec<String>,
        /// An IP address clients use for the registry (repeatable).
        #[arg(long = "ip")]
        ips: Vec<IpAddr>,
        /// Replace an existing CA (clients must trust the new one).
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: Vec<(String, String)> = std::env::vars().collect();
    match cli.command.unwrap_or(Command::Serve { config: None }) {
        Command::CheckConfig { config } => match berth_conf::load(config.as_deref(), &env) {
            Ok(c) => {
                println!("{}", c.redacted());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("berth: invalid configuration: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Cert {
            config,
            command:
                CertCommand::Init {
                    hostnames,
                    ips,
                    force,
                },
        } => match berth_conf::load(config.as_deref(), &env) {
            Ok(c) => match cert_cli::init(&c.data_dir, &hostnames, &ips, c.listen.port(), force) {
                Ok(msg) => {
                    println!("{msg}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("berth: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(e) => {
                eprintln!("berth: invalid configuration: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Gc {
            config,
            dry_run,
            delete_untagged,
        } => match berth_conf::load(config.as_deref(), &env) {
            Ok(c) => gc_command(
                c,
                GcOptions {
                    dry_run,
                    delete_untagged,
                },
            ),
            Err(e) => {
                eprintln!("berth: invalid configuration: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Migrate { config, to_config } => {
            let from = match berth_conf::load(config.as_deref(), &env) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("berth: invalid configuration: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match berth_conf::load(Some(&to_config), &[]) {
                Ok(to) => tool(async move { migrate_cli::run(&from, &to).await }),
                Err(e) => {
                    eprintln!(
                        "berth: invalid destination configuration {}: {e}",
                        to_config.display()
                    );
                    ExitCode::FAILURE
                }
            }
        }
        Command::TokenKey {
            config,
            command: TokenKeyCommand::Rotate,
        } => match berth_conf::load(config.as_deref(), &env) {
            Ok(c) => tool(async move {
                let registry = Registry::open(&bootstrap::tool_settings(&c))
                    .await
                    .map_err(|e| e.to_string())?;
                keys_cli::rotate(&c.data_dir, registry.meta()).await
            }),
            Err(e) => {
                eprintln!("berth: invalid configuration: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Backup { config, to } => match berth_conf::load(config.as_deref(), &env) {
            Ok(c) => tool(async move { backup_cli::backup(&c, &to).await }),
            Err(e) => {
                eprintln!("berth: invalid configuration: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Restore { config, from } => match berth_conf::load(config.as_deref(), &env) {
            Ok(c) => tool(async move { backup_cli::restore(&c, &from).await }),
            Err(e) => {
                eprintln!("berth: invalid configuration: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Secrets {
            config,
            command: SecretsCommand::Rotate,
        } => match berth_conf::load(config.as_deref(), &env) {
            Ok(c) => tool(async move {
                let registry = Registry::open(&bootstrap::tool_settings(&c))
                    .await
                    .map_err(|e| e.to_string())?;
                secrets_cli::rotate(registry.meta()).await
            }),
            Err(e) => {
                eprintln!("berth: invalid configuration: {e}");
                ExitCode::FAILURE
            }
        },
        Command::User { config, command } => match berth_conf::load(config.as_deref(), &env) {
            Ok(c) => user_command(c, command),
            Err(e) => {
                eprintln!("berth: invalid configuration: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Serve { config } => match berth_conf::load(config.as_deref(), &env) {
            Ok(c) => serve(c),
            Err(e) => {
                eprintln!("berth: invalid configuration: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn user_command(config: Config, command: UserCommand) -> ExitCode {
    tool(async move {
        let registry = Registry::open(&bootstrap::tool_settings(&config))
            .await
            .map_err(|e| e.to_string())?;
        users_cli::run(registry.meta(), command, || {
            std::io::read_to_string(std::io::stdin())
        })
        .await
    })
}

fn gc_command(config: Config, options: GcOptions) -> ExitCode {
    tool(async move {
        let registry = Registry::open(&bootstrap::tool_settings(&config))
            .await
            .map_err(|e| e.to_string())?;
        gc_cli::run(&registry, options).await
    })
}

/// Runs a command's work on a runtime of its own; prints its message and
/// exits 0, or prints why it failed and exits 1.
fn tool(work: impl std::future::Future<Output = Result<String, String>>) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(work));
    match result {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("berth: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn serve(mut config: Config) -> ExitCode {
    init_logging(&config);
    // Without [tls], the files `berth cert init` writes are used if present.
    if config.tls.is_none() {
        let (cert, key) = cert_cli::default_files(&config.data_dir);
        if cert.exists() && key.exists() {
            tracing::info!(cert = %cert.display(), "serving HTTPS with the certificate from `berth cert init`");
            config.tls = Some(TlsConfig { cert, key });
        }
    }
    // Checked before anything starts: Pingora would panic on a bad file.
    let tls = match &config.tls {
        Some(t) => match ReloadingCert::open(CertFiles {
            cert: t.cert.clone(),
            key: t.key.clone(),
        }) {
            Ok(cert) => Some(cert),
            Err(e) => {
                eprintln!("berth: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    // Pingora binds later and only logs a failure; check now so that a busy
    // port is a clear error and a non-zero exit.
    if let Err(e) = TcpListener::bind(config.listen) {
        eprintln!("berth: cannot listen on {}: {e}", config.listen);
        return ExitCode::FAILURE;
    }
    // The data directory holds password hashes and the signing key.
    if let Err(e) = bootstrap::make_private_dir(&config.data_dir) {
        eprintln!(
            "berth: cannot create data directory {}: {e}",
            config.data_dir.display()
        );
        return ExitCode::FAILURE;
    }
    // A side runtime for the database pool and other background work;
    // Pingora runs its own runtimes for the request path.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("berth-side")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let built = match runtime.block_on(bootstrap::build(&config)) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("berth: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(pw) = &built.generated_admin_password {
        // Shown once, on the first start; also kept in a 0600 file.
        println!(
            "berth: created user `admin` with password: {pw}\n\
             berth: (also written to {}; change it, then delete that file)",
            config.data_dir.join("initial-admin-password").display()
        );
    }
    if let Some(cert) = &tls {
        cert.watch(runtime.handle());
    }
    berth_gateway::upstream::evict::spawn(
        runtime.handle(),
        built.app.registry.clone(),
        berth_gateway::upstream::evict::Limits {
            max_bytes: config.proxy.cache_max_size,
            ttl: config.proxy.cache_ttl,
        },
    );
    tracing::info!(listen = %config.listen, tls = tls.is_some(), data_dir = %config.data_dir.display(), "berth starting");
    let ran = server::run(
        &ServerSettings {
            listen: config.listen,
            threads: config.server.threads,
            grace_period_secs: config.server.grace_period.as_secs(),
            tls,
            http_redirect: config.server.http_redirect,
            metrics_listen: config.metrics.listen.map(|a| a.to_string()),
        },
        built.app.clone(),
        Box::new(UnixShutdownSignalWatch),
    );
    if let Err(e) = ran {
        eprintln!("berth: {e}");
        return ExitCode::FAILURE;
    }
    // In-flight requests have finished: commit the audit records they
    // left before exiting.
    runtime.block_on(built.app.audit.flush());
    drop(runtime);
    ExitCode::SUCCESS
}
