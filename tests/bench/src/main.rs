//! `berth-bench`: berth, distribution and nginx+distribution side by side
//! on loopback, measured with the same client; prints a Markdown table.
//!
//! `cargo run --release -p berth-bench -- [--runs N] [--quick] [--out FILE]`
//! (or `--auth-cost`, `--pull-through`, `--slow-uploads`, `--listing`,
//! `--replication` for one scenario)

mod authcost;
mod bench;
mod client;
mod data;
mod image;
mod limits;
mod listing;
mod machine;
mod portal;
mod procfs;
mod pullthrough;
mod replication;
mod report;
mod scenarios;
mod servers;
mod slowuploads;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "berth-bench",
    about = "Benchmark berth against distribution and nginx+distribution"
)]
struct Args {
    /// Runs of the whole benchmark; the table shows medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=20))]
    runs: u16,
    /// Smaller blobs and a 3 s small-request run, for a quick look.
    #[arg(long)]
    quick: bool,
    /// Also write the Markdown to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Only measure the cost of authentication on berth's hot path (blob
    /// HEAD, anonymous vs bearer token, public repository).
    #[arg(long)]
    auth_cost: bool,
    /// Only measure the pull-through cache: berth's proxy-cache project
    /// against distribution's proxy mode, in front of one upstream.
    #[arg(long)]
    pull_through: bool,
    /// Only measure blob-pull latency on berth with and without 500 slow
    /// uploads (clients that stall mid-body), in one run.
    #[arg(long)]
    slow_uploads: bool,
    /// Only measure the management API's listings and the portal's pages
    /// with 100,000 artifacts in one repository, 10,000 repositories and
    /// 1,000 projects (a tenth with --quick), on berth, berth+postgres and
    /// distribution (its tags/list and _catalog).
    #[arg(long)]
    listing: bool,
    /// Only measure replication: 50 images sharing base layers (about 2
    /// GiB of distinct blobs, a tenth with --quick) copied from berth to an
    /// empty docker-registry by berth's replication and by `skopeo sync`:
    /// wall time and bytes sent to the destination.
    #[arg(long)]
    replication: bool,
    /// Measure only these servers (comma-separated: berth, berth+postgres,
    /// 3xberth+haproxy, berth+s3, berth+s3+redirect, distribution,
    /// nginx+distribution, distribution+s3, distribution+s3+redirect); for profiling
    /// one of them, or comparing berth's metadata backends and instances.
    #[arg(long, value_delimiter = ',', value_parser = parse_kind)]
    servers: Vec<servers::Kind>,
}

fn parse_kind(s: &str) -> Result<servers::Kind, String> {
    servers::Kind::EVERY
        .into_iter()
        .find(|k| k.label() == s)
        .ok_or_else(|| {
            format!(
                "unknown server {s}: berth, berth+postgres, 3xberth+haproxy, berth+s3, \
                 berth+s3+redirect, distribution, nginx+distribution, distribution+s3 or \
                 distribution+s3+redirect"
            )
        })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut plan = bench::Plan::new(usize::from(args.runs), args.quick);
    if !args.servers.is_empty() {
        plan.servers = args.servers.clone();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let meta = machine::describe(plan.runs);
    // On Ctrl-C the benchmark future is dropped, which stops the servers.
    let outcome = runtime.block_on(async {
        let work = async {
            if args.auth_cost {
                authcost::run(&plan).await
            } else if args.pull_through {
                pullthrough::run(&plan).await
            } else if args.slow_uploads {
                slowuploads::run(&plan).await
            } else if args.listing {
                listing::run(&plan).await
            } else if args.replication {
                replication::run(&plan).await
            } else {
                bench::run(&plan, meta).await
            }
        };
        tokio::select! {
            r = work => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match outcome {
        Ok(markdown) => {
            println!("{markdown}");
            if let Some(path) = args.out {
                if let Err(e) = std::fs::write(&path, &markdown) {
                    eprintln!("berth-bench: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("berth-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
