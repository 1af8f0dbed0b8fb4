//! Slow uploads against everyone else's pulls (issue 19): blob-pull
//! latency on berth with and without 500 uploads whose clients declared
//! 1 MiB, sent two bytes and stalled, measured in one run. Before issue
//! 19, each stalled body held a blocking thread until the socket closed,
//! and pulls timed out once the pool was full.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

use crate::bench::Plan;
use crate::client::{Registry, Repo};
use crate::scenarios::{percentile, push_small_image};
use crate::servers::{Binaries, Kind, Server};

/// Slow uploads held open while pulls are measured.
const SLOW_UPLOADS: usize = 500;
/// Connections pulling during each measurement.
const PULLERS: usize = 16;
/// Each pull gives up after this long (the issue saw 8 s time-outs).
const PULL_TIMEOUT: Duration = Duration::from_secs(8);
/// How long the cut-off of the stalled bodies is waited for.
const CUT_WAIT: Duration = Duration::from_secs(90);

struct Latency {
    pulls: usize,
    failed: usize,
    p50_ms: f64,
    p99_ms: f64,
}

/// `PULLERS` connections pulling `blob` in a loop for `duration`.
async fn pull_latency(
    reg: &Registry,
    repo: Arc<Repo>,
    blob: Arc<String>,
    duration: Duration,
) -> anyhow::Result<Latency> {
    let barrier = Arc::new(Barrier::new(PULLERS + 1));
    let mut tasks = Vec::with_capacity(PULLERS);
    for _ in 0..PULLERS {
        let mut conn = reg.conn().await?;
        let (repo, blob, barrier) = (repo.clone(), blob.clone(), barrier.clone());
        let reg = reg.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let deadline = Instant::now() + duration;
            let (mut lat, mut failed) = (Vec::new(), 0usize);
            while Instant::now() < deadline {
                let t = Instant::now();
                match tokio::time::timeout(PULL_TIMEOUT, repo.pull_blob(&mut conn, &blob)).await {
                    Ok(Ok(_)) => lat.push(t.elapsed().as_nanos() as u64),
                    _ => {
                        failed += 1;
                        conn = reg.conn().await?;
                    }
                }
            }
            anyhow::Ok((lat, failed))
        }));
    }
    barrier.wait().await;
    let (mut all, mut failed) = (Vec::new(), 0);
    for t in tasks {
        let (lat, f) = t.await??;
        all.extend(lat);
        failed += f;
    }
    all.sort_unstable();
    Ok(Latency {
        pulls: all.len(),
        failed,
        p50_ms: percentile(&all, 50.0) as f64 / 1e6,
        p99_ms: percentile(&all, 99.0) as f64 / 1e6,
    })
}

/// Opens an upload and starts its PATCH: 1 MiB declared, two bytes sent.
/// The connection is returned mid-body.
async fn stall_upload(reg: &Registry, repo: &Repo) -> anyhow::Result<BufReader<TcpStream>> {
    let conn = TcpStream::connect(reg.addr()).await?;
    let mut conn = BufReader::new(conn);
    let auth = repo
        .authorization()
        .and_then(|v| v.to_str().ok())
        .map(|v| format!("Authorization: {v}\r\n"))
        .unwrap_or_default();
    let host = reg.addr();
    let name = repo.name();
    conn.get_mut()
        .write_all(
            format!(
                "POST /v2/{name}/blobs/uploads/ HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    let head = read_head(&mut conn).await?;
    if !head.starts_with("HTTP/1.1 202") {
        bail!("POST upload: {head}");
    }
    let location = header(&head, "location").ok_or_else(|| anyhow!("no Location: {head}"))?;
    let length: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).await?;
    let path = location
        .find("/v2/")
        .map(|i| &location[i..])
        .ok_or_else(|| anyhow!("odd Location {location}"))?;
    conn.get_mut()
        .write_all(
            format!(
                "PATCH {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/octet-stream\r\n\
                 Content-Length: 1048576\r\n\r\nab"
            )
            .as_bytes(),
        )
        .await?;
    Ok(conn)
}

async fn read_head(conn: &mut BufReader<TcpStream>) -> anyhow::Result<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).await? == 0 {
            bail!("connection closed in a response head: {head}");
        }
        if line == "\r\n" {
            return Ok(head);
        }
        head.push_str(&line);
    }
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

fn threads(server: &Server) -> usize {
    server
        .processes()
        .pids()
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
        })
        .sum()
}

/// Runs the comparison once and returns a Markdown section.
pub async fn run(plan: &Plan) -> anyhow::Result<String> {
    let work = tempfile::Builder::new()
        .prefix("berth-slowuploads-")
        .tempdir()?;
    let mut bins = Binaries::locate()?.snapshot_berth(work.path())?;
    // All the slow uploads are the admin's: lift the per-user cap on open
    // sessions, which would otherwise refuse them past 100.
    bins.berth_env
        .push(("BERTH_SERVER__MAX_UPLOADS_PER_USER".into(), "0".into()));
    let server = Server::start(Kind::Berth, &bins, work.path()).await?;
    let reg = Registry::new(server.addr, server.creds.clone());
    let repo = Arc::new(reg.repo("bench/slowuploads").await?);
    let blob = Arc::new(push_small_image(&reg, &repo, rand::random()).await?);
    let window = plan.small_duration.min(Duration::from_secs(5));

    // Warm up, then the baseline.
    pull_latency(&reg, repo.clone(), blob.clone(), Duration::from_secs(1)).await?;
    let threads_before = threads(&server);
    let without = pull_latency(&reg, repo.clone(), blob.clone(), window).await?;
    eprintln!(
        "   without: {} pulls, p50 {:.3} ms, p99 {:.3} ms",
        without.pulls, without.p50_ms, without.p99_ms
    );

    let opened = Instant::now();
    let mut stalled = Vec::with_capacity(SLOW_UPLOADS);
    for _ in 0..SLOW_UPLOADS {
        stalled.push(
            stall_upload(&reg, &repo)
                .await
                .context("starting a slow upload")?,
        );
    }
    let open_s = opened.elapsed().as_secs_f64();
    let threads_during = threads(&server);
    let with = pull_latency(&reg, repo.clone(), blob.clone(), window).await?;
    eprintln!(
        "   with {SLOW_UPLOADS} slow uploads: {} pulls ({} failed), p50 {:.3} ms, p99 {:.3} ms",
        with.pulls, with.failed, with.p50_ms, with.p99_ms
    );
    let measured_s = opened.elapsed().as_secs_f64();

    // Then berth cuts the stalled bodies off (server.body_timeout).
    let mut cut = Vec::new();
    for mut conn in stalled {
        // Read in turn: a time is when the answer was seen, at most a
        // little after it came.
        if let Ok(Ok(head)) = tokio::time::timeout(CUT_WAIT, read_head(&mut conn)).await {
            if head.starts_with("HTTP/1.1 408") {
                cut.push(opened.elapsed().as_secs_f64());
            }
        }
    }
    let cut_last = cut.iter().copied().fold(0.0, f64::max);

    Ok(format!(
        "## Pulls during {SLOW_UPLOADS} slow uploads\n\n\
         berth only, one run; {PULLERS} connections pulling a 4 KiB blob for {} s each time. \
         The slow uploads each declared 1 MiB in a PATCH, sent 2 bytes and stalled; \
         opening them took {open_s:.1} s, and all were open for the whole measurement \
         ({measured_s:.1} s after the first). Pulls give up after {} s.\n\n\
         | | pulls | failed | p50 (ms) | p99 (ms) | berth threads |\n\
         |---|--:|--:|--:|--:|--:|\n\
         | without slow uploads | {} | {} | {:.3} | {:.3} | {threads_before} |\n\
         | with {SLOW_UPLOADS} slow uploads | {} | {} | {:.3} | {:.3} | {threads_during} |\n\
         | with/without | {:.2}× | | {:.2}× | {:.2}× | |\n\n\
         {} of the {SLOW_UPLOADS} stalled bodies were then answered 408 \
         (`server.body_timeout`, default 20 s, then `server.body_min_rate`), \
         the last {cut_last:.1} s after the first was opened.\n",
        window.as_secs(),
        PULL_TIMEOUT.as_secs(),
        without.pulls,
        without.failed,
        without.p50_ms,
        without.p99_ms,
        with.pulls,
        with.failed,
        with.p50_ms,
        with.p99_ms,
        with.pulls as f64 / without.pulls.max(1) as f64,
        with.p50_ms / without.p50_ms,
        with.p99_ms / without.p99_ms,
        cut.len(),
    ))
}
