//! The cost of authentication on berth's hot path (issue 3): blob HEAD
//! requests/s on a public repository, anonymous (no credentials at all)
//! against the same requests carrying a bearer token, which berth verifies
//! on every request (the signature check is cached).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Barrier;

use crate::bench::Plan;
use crate::client::{Registry, Repo};
use crate::scenarios::{percentile, push_small_image};
use crate::servers::{Binaries, Kind, Server};

const MAX_REQUESTS_PER_CONN: u64 = 5_000_000;

struct Rate {
    rps: f64,
    p99_ms: f64,
}

async fn head_loop(
    reg: &Registry,
    repo: Arc<Repo>,
    blob: Arc<String>,
    conns: usize,
    duration: Duration,
) -> anyhow::Result<Rate> {
    let barrier = Arc::new(Barrier::new(conns + 1));
    let mut tasks = Vec::with_capacity(conns);
    for _ in 0..conns {
        let mut conn = reg.conn().await?;
        repo.head_blob(&mut conn, &blob).await?;
        let (repo, blob, barrier) = (repo.clone(), blob.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let deadline = Instant::now() + duration;
            let mut lat = Vec::with_capacity(1 << 16);
            while Instant::now() < deadline && (lat.len() as u64) < MAX_REQUESTS_PER_CONN {
                let t = Instant::now();
                repo.head_blob(&mut conn, &blob).await?;
                lat.push(t.elapsed().as_nanos() as u64);
            }
            anyhow::Ok((lat, Instant::now()))
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut all = Vec::new();
    let mut finished = started;
    for t in tasks {
        let (lat, end) = t.await??;
        all.extend(lat);
        finished = finished.max(end);
    }
    all.sort_unstable();
    Ok(Rate {
        rps: all.len() as f64 / (finished - started).as_secs_f64(),
        p99_ms: percentile(&all, 99.0) as f64 / 1e6,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs the comparison `plan.runs` times (alternating which goes first)
/// and returns a Markdown table of medians.
pub async fn run(plan: &Plan) -> anyhow::Result<String> {
    let work = tempfile::Builder::new()
        .prefix("berth-authcost-")
        .tempdir()?;
    let bins = Binaries::locate()?.snapshot_berth(work.path())?;
    let server = Server::start(Kind::Berth, &bins, work.path()).await?;
    let reg = Registry::new(server.addr, server.creds.clone());
    let name = "library/authcost";
    let with_token = Arc::new(reg.repo(name).await?);
    anyhow::ensure!(with_token.uses_token(), "berth did not ask for a token");
    let blob = Arc::new(push_small_image(&reg, &with_token, rand::random()).await?);
    let anonymous = Arc::new(Repo::anonymous(name));
    let (mut anon, mut token) = (Vec::new(), Vec::new());
    for run in 0..plan.runs {
        let order = if run % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for bearer in order {
            let repo = if bearer {
                with_token.clone()
            } else {
                anonymous.clone()
            };
            let r = head_loop(&reg, repo, blob.clone(), plan.conns, plan.small_duration).await?;
            eprintln!(
                "   run {}: {} {:.0} req/s p99 {:.3} ms",
                run + 1,
                if bearer { "bearer" } else { "anonymous" },
                r.rps,
                r.p99_ms
            );
            if bearer { &mut token } else { &mut anon }.push((r.rps, r.p99_ms));
        }
    }
    let a_rps = median(anon.iter().map(|r| r.0).collect());
    let t_rps = median(token.iter().map(|r| r.0).collect());
    let a_p99 = median(anon.iter().map(|r| r.1).collect());
    let t_p99 = median(token.iter().map(|r| r.1).collect());
    Ok(format!(
        "## Cost of authentication on the hot path\n\n\
         berth only; {} connections doing blob HEAD on the public repository `{name}` for {} s, \
         {} run(s), medians.\n\n\
         | | anonymous (no credentials) | bearer token | token/anonymous |\n\
         |---|--:|--:|--:|\n\
         | requests/s | {a_rps:.0} | {t_rps:.0} | {:.2}× |\n\
         | p99 (ms) | {a_p99:.3} | {t_p99:.3} | {:.2}× |\n",
        plan.conns,
        plan.small_duration.as_secs(),
        plan.runs,
        t_rps / a_rps,
        t_p99 / a_p99,
    ))
}
