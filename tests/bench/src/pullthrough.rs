//! The pull-through cache: berth's proxy-cache project against
//! distribution's own proxy mode (what Harbor's proxy cache runs), both in
//! front of the same upstream distribution, measured with the same client.
//!
//! Per run and fresh blob: the upstream pulled directly (its time to first
//! byte and rate), then through each cache a miss (first byte: streamed or
//! stored first?) and a hit (local speed?), and berth's local pull of the
//! same size for reference. Then 20 concurrent clients ask each cache for
//! a blob it does not have, and the upstream's access log tells how many
//! GETs reached it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Barrier;

use crate::bench::Plan;
use crate::client::{Registry, Repo, ReqBody};
use crate::data::Content;
use crate::servers::{Binaries, Kind, Server};

const CONCURRENT: usize = 20;

#[derive(Default)]
struct Samples {
    ttfb_ms: Vec<f64>,
    mb_s: Vec<f64>,
}

impl Samples {
    fn add(&mut self, ttfb: Duration, total: Duration, bytes: u64) {
        self.ttfb_ms.push(ttfb.as_secs_f64() * 1e3);
        self.mb_s.push(bytes as f64 / total.as_secs_f64() / 1e6);
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Pushes `len` pseudo-random bytes as a blob of `repo`; returns its digest.
async fn push(reg: &Registry, repo: &Repo, seed: u64, len: u64) -> anyhow::Result<String> {
    let content = Content::new(seed, len).await?;
    let mut conn = reg.conn().await?;
    repo.push_blob(
        &mut conn,
        ReqBody::Stream(content.pieces()),
        &content.digest,
    )
    .await
    .context("seeding a blob")?;
    Ok(content.digest)
}

async fn timed(
    reg: &Registry,
    repo: &Repo,
    digest: &str,
    len: u64,
) -> anyhow::Result<(Duration, Duration, u64)> {
    let mut conn = reg.conn().await?;
    let (ttfb, total, n) = repo.pull_blob_timed(&mut conn, digest).await?;
    anyhow::ensure!(n == len, "got {n} of {len} bytes");
    Ok((ttfb, total, n))
}

/// `CONCURRENT` simultaneous GETs of one blob; all must get every byte.
async fn concurrent(
    reg: &Registry,
    repo: &Repo,
    digest: &str,
    len: u64,
) -> anyhow::Result<Duration> {
    let barrier = Arc::new(Barrier::new(CONCURRENT));
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENT {
        let (reg, repo, digest, barrier) = (
            reg.clone(),
            repo.clone(),
            digest.to_owned(),
            barrier.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut conn = reg.conn().await?;
            barrier.wait().await;
            repo.pull_blob(&mut conn, &digest).await
        }));
    }
    for t in tasks {
        let n = t.await??;
        anyhow::ensure!(n == len, "a concurrent pull got {n} of {len} bytes");
    }
    Ok(started.elapsed())
}

pub async fn run(plan: &Plan) -> anyhow::Result<String> {
    let work = tempfile::Builder::new()
        .prefix("berth-pullthrough-")
        .tempdir()?;
    let bins = Binaries::locate()?.snapshot_berth(work.path())?;
    let upstream = Server::start_distribution_with(&bins, work.path(), "").await?;
    let proxy = Server::start_distribution_with(
        &bins,
        work.path(),
        &format!("proxy:\n  remoteurl: http://{}\n", upstream.addr),
    )
    .await?;
    let berth = Server::start(Kind::Berth, &bins, work.path()).await?;
    let admin = Registry::new(berth.addr, berth.creds.clone());
    let headers = admin
        .api_post(
            "/api/v2.0/registries",
            &serde_json::json!({"name": "upstream", "type": "docker-registry", "url": format!("http://{}", upstream.addr)}),
        )
        .await?;
    let id: i64 = headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .and_then(|l| l.rsplit('/').next())
        .and_then(|id| id.parse().ok())
        .context("registry id from Location")?;
    admin
        .api_post(
            "/api/v2.0/projects",
            &serde_json::json!({"project_name": "cache", "registry_id": id}),
        )
        .await?;
    admin.create_project("local").await?;

    let up_reg = Registry::new(upstream.addr, None);
    let up_repo = up_reg.repo("up/app").await?;
    let proxy_reg = Registry::new(proxy.addr, None);
    let proxy_repo = proxy_reg.repo("up/app").await?;
    let berth_repo = admin.repo("cache/up/app").await?;
    let local_repo = admin.repo("local/app").await?;

    let len = plan.big;
    let (mut direct, mut b_miss, mut b_hit, mut p_miss, mut p_hit, mut local) = Default::default();
    let mut conc = Vec::new();
    for run in 0..plan.runs {
        eprintln!("== pull-through run {}/{}", run + 1, plan.runs);
        let seed: u64 = rand::random();
        let digest = push(&up_reg, &up_repo, seed, len).await?;
        // Warm the upstream's page cache, then time it directly.
        timed(&up_reg, &up_repo, &digest, len).await?;
        let t = timed(&up_reg, &up_repo, &digest, len).await?;
        let d: &mut Samples = &mut direct;
        d.add(t.0, t.1, t.2);
        // Alternate which cache goes first.
        for berth_first in [run % 2 == 0, run % 2 != 0] {
            if berth_first {
                let t = timed(&admin, &berth_repo, &digest, len).await?;
                let s: &mut Samples = &mut b_miss;
                s.add(t.0, t.1, t.2);
                let t = timed(&admin, &berth_repo, &digest, len).await?;
                let s: &mut Samples = &mut b_hit;
                s.add(t.0, t.1, t.2);
            } else {
                let t = timed(&proxy_reg, &proxy_repo, &digest, len).await?;
                let s: &mut Samples = &mut p_miss;
                s.add(t.0, t.1, t.2);
                let t = timed(&proxy_reg, &proxy_repo, &digest, len).await?;
                let s: &mut Samples = &mut p_hit;
                s.add(t.0, t.1, t.2);
            }
        }
        // berth's own pull of a pushed blob of the same size (warm).
        let own = push(&admin, &local_repo, seed ^ 1, len).await?;
        timed(&admin, &local_repo, &own, len).await?;
        let t = timed(&admin, &local_repo, &own, len).await?;
        let s: &mut Samples = &mut local;
        s.add(t.0, t.1, t.2);

        // Concurrent misses: a fresh blob each.
        let small = plan.conc_blob.max(16 << 20);
        let fresh = push(&up_reg, &up_repo, seed ^ 2, small).await?;
        let berth_time = concurrent(&admin, &berth_repo, &fresh, small).await?;
        let fresh2 = push(&up_reg, &up_repo, seed ^ 3, small).await?;
        let proxy_time = concurrent(&proxy_reg, &proxy_repo, &fresh2, small).await?;
        // Let distribution's log lines land.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let berth_gets = upstream.access_count(&format!("\"GET /v2/up/app/blobs/{fresh} "));
        let proxy_gets = upstream.access_count(&format!("\"GET /v2/up/app/blobs/{fresh2} "));
        eprintln!(
            "   {CONCURRENT} concurrent misses: berth {berth_gets} upstream GET(s) in {:.0} ms, distribution proxy {proxy_gets} in {:.0} ms",
            berth_time.as_secs_f64() * 1e3,
            proxy_time.as_secs_f64() * 1e3
        );
        conc.push((berth_gets, berth_time, proxy_gets, proxy_time));
    }
    let row = |name: &str, s: &Samples| {
        format!(
            "| {name} | {:.1} | {:.0} |\n",
            median(&s.ttfb_ms),
            median(&s.mb_s)
        )
    };
    let mut out = format!(
        "## Pull-through cache\n\n\
         One {} MiB blob per run, {} run(s), medians. Upstream: distribution on loopback. \
         \"distribution proxy\" is distribution's `proxy.remoteurl` mode, the cache under Harbor's proxy-cache projects.\n\n\
         | | first byte (ms) | MB/s |\n|---|--:|--:|\n",
        len >> 20,
        plan.runs
    );
    out.push_str(&row("upstream, direct", &direct));
    out.push_str(&row("berth miss", &b_miss));
    out.push_str(&row("distribution proxy miss", &p_miss));
    out.push_str(&row("berth hit", &b_hit));
    out.push_str(&row("distribution proxy hit", &p_hit));
    out.push_str(&row("berth, own project (reference)", &local));
    out.push_str(&format!(
        "\nberth's miss reaches the client's first byte {:.1} ms after the upstream's direct first byte; \
         distribution's proxy {:.1} ms. berth's hit runs at {:.2}× its own local pull.\n",
        median(&b_miss.ttfb_ms) - median(&direct.ttfb_ms),
        median(&p_miss.ttfb_ms) - median(&direct.ttfb_ms),
        median(&b_hit.mb_s) / median(&local.mb_s),
    ));
    out.push_str(&format!(
        "\n{CONCURRENT} concurrent pulls of one uncached blob ({} MiB), upstream GETs per run:\n\n\
         | run | berth GETs | berth ms | distribution proxy GETs | distribution proxy ms |\n|--:|--:|--:|--:|--:|\n",
        plan.conc_blob.max(16 << 20) >> 20
    ));
    for (i, (bg, bt, pg, pt)) in conc.iter().enumerate() {
        out.push_str(&format!(
            "| {} | {bg} | {:.0} | {pg} | {:.0} |\n",
            i + 1,
            bt.as_secs_f64() * 1e3,
            pt.as_secs_f64() * 1e3
        ));
    }
    drop(berth);
    drop(proxy);
    drop(upstream);
    Ok(out)
}
