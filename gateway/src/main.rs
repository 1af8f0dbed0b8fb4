//! The `berth` binary: parse the command line, load config, build, run.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use berth_conf::{Config, LogFormat};
use berth_gateway::app::App;
use berth_gateway::server::{self, ServerSettings};
use berth_policy::Mode;
use berth_storage::{Registry, Settings};
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
        Command::Serve { config } => match berth_conf::load(config.as_deref(), &env) {
            Ok(c) => serve(c),
            Err(e) => {
                eprintln!("berth: invalid configuration: {e}");
                ExitCode::FAILURE
            }
        },
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
    let settings = Settings {
        blob_root: config.storage.root.clone(),
        database_url: config.database.url.expose().to_owned(),
    };
    let registry = match runtime.block_on(Registry::open(&settings)) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            eprintln!("berth: cannot open the registry store: {e}");
            return ExitCode::FAILURE;
        }
    };
    let app = Arc::new(App {
        registry,
        policy_mode: Mode::Open,
        external_url: config.external_url.as_ref().map(|u| u.as_str().to_owned()),
    });
    tracing::info!(listen = %config.listen, data_dir = %config.data_dir.display(), "berth starting");
    server::run(
        &ServerSettings {
            listen: config.listen,
            threads: config.server.threads,
            grace_period_secs: config.server.grace_period.as_secs(),
        },
        app,
        Box::new(UnixShutdownSignalWatch),
    );
    drop(runtime);
    ExitCode::SUCCESS
}
