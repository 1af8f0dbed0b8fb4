//! The `berth` binary: parse the command line, load config, build, run.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use berth_conf::{Config, LogFormat};
use berth_gateway::bootstrap;
use berth_gateway::server::{self, ServerSettings};
use berth_gateway::users_cli::{self, UserCommand};
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
    /// Manage local users.
    User {
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: UserCommand,
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
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(async {
                let registry = Registry::open(&bootstrap::storage_settings(&config))
                    .await
                    .map_err(|e| e.to_string())?;
                users_cli::run(registry.meta(), command, || {
                    std::io::read_to_string(std::io::stdin())
                })
                .await
            })
        });
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

fn serve(config: Config) -> ExitCode {
    init_logging(&config);
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
    tracing::info!(listen = %config.listen, data_dir = %config.data_dir.display(), "berth starting");
    server::run(
        &ServerSettings {
            listen: config.listen,
            threads: config.server.threads,
            grace_period_secs: config.server.grace_period.as_secs(),
        },
        built.app.clone(),
        Box::new(UnixShutdownSignalWatch),
    );
    // In-flight requests have finished: commit the audit records they
    // left before exiting.
    runtime.block_on(built.app.audit.flush());
    drop(runtime);
    ExitCode::SUCCESS
}
