//! The measurements made against each server, all with the same client:
//! single-stream pull and push of a large blob (with the server's CPU
//! time), many small requests on 64 connections, and 100 concurrent pulls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use tokio::sync::Barrier;

use crate::client::{Registry, Repo, ReqBody};
use crate::data::{sha256_digest, Content, Pieces};
use crate::procfs::{clock_ticks, cpu_ticks, ProcessSet};

const GIB: f64 = (1u64 << 30) as f64;
/// Safety bound on the requests of one connection in the small-request run.
const MAX_REQUESTS_PER_CONN: u64 = 20_000_000;
/// A connection that fails this often gives up early.
const MAX_ERRORS_PER_CONN: u64 = 100;
/// No single transfer may take longer than this.
const TRANSFER_DEADLINE: Duration = Duration::from_secs(600);

/// A single-stream transfer: MB/s (10^6 bytes) and server CPU s per GiB.
#[derive(Clone, Copy, Debug)]
pub struct Transfer {
    pub mb_per_s: f64,
    pub cpu_s_per_gib: f64,
    /// This benchmark process's own CPU s per GiB: shows whether the
    /// client could be what limits the rate.
    pub client_cpu_s_per_gib: f64,
}

/// Runs `work` (which moves `bytes`) and measures time and server CPU.
async fn timed<F>(procs: &ProcessSet, bytes: u64, work: F) -> anyhow::Result<Transfer>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let me = std::process::id();
    let client_before = cpu_ticks(me)?;
    let cpu_before = procs.cpu_ticks()?;
    let started = Instant::now();
    tokio::time::timeout(TRANSFER_DEADLINE, work)
        .await
        .context("transfer timed out")??;
    let secs = started.elapsed().as_secs_f64();
    let cpu_after = procs.cpu_ticks()?;
    let client_after = cpu_ticks(me)?;
    let gib = bytes as f64 / GIB;
    let seconds = |ticks: u64| ticks as f64 / clock_ticks();
    Ok(Transfer {
        mb_per_s: bytes as f64 / secs / 1e6,
        cpu_s_per_gib: seconds(cpu_after.saturating_sub(cpu_before)) / gib,
        client_cpu_s_per_gib: seconds(client_after.saturating_sub(client_before)) / gib,
    })
}

/// 1. Pushes `content` (untimed), pulls it once to warm the page cache,
///    then times a second pull.
pub async fn pull_single(
    reg: &Registry,
    procs: &ProcessSet,
    content: &Content,
) -> anyhow::Result<Transfer> {
    let repo = reg.repo("bench/pull").await?;
    let mut conn = reg.conn().await?;
    repo.push_blob(
        &mut conn,
        ReqBody::Stream(content.pieces()),
        &content.digest,
    )
    .await
    .context("pushing the blob to pull")?;
    let warm = repo.pull_blob(&mut conn, &content.digest).await?;
    check_len(warm, content.len)?;
    let mut got = 0;
    let result = timed(procs, content.len, async {
        got = repo.pull_blob(&mut conn, &content.digest).await?;
        Ok(())
    })
    .await?;
    check_len(got, content.len)?;
    Ok(result)
}

/// 2. Times a push of `content` (digest computed beforehand) as docker
///    does it: POST, one chunked PATCH, PUT with the digest.
pub async fn push_single(
    reg: &Registry,
    procs: &ProcessSet,
    content: &Content,
) -> anyhow::Result<Transfer> {
    let repo = reg.repo("bench/push").await?;
    let mut conn = reg.conn().await?;
    let pieces = content.pieces();
    timed(procs, content.len, async {
        repo.push_blob(&mut conn, ReqBody::Stream(pieces), &content.digest)
            .await
    })
    .await
}

fn check_len(got: u64, want: u64) -> anyhow::Result<()> {
    if got != want {
        bail!("pulled {got} bytes, expected {want}");
    }
    Ok(())
}

/// Requests per second and latency percentiles of the small-request run.
#[derive(Clone, Debug)]
pub struct SmallRequests {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// Pushes a small image (config, one 4 KiB layer, manifest tagged `v1`).
pub async fn push_small_image(reg: &Registry, repo: &Repo, seed: u64) -> anyhow::Result<String> {
    let mut conn = reg.conn().await?;
    let layer: Bytes = Pieces::new(seed, 4096).flatten().collect();
    let layer_digest = sha256_digest(&layer);
    let config = Bytes::from(serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"bench.seed": seed.to_string()}},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))?);
    let config_digest = sha256_digest(&config);
    let manifest = Bytes::from(serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": crate::image::OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    }))?);
    repo.push_blob(&mut conn, ReqBody::Full(config), &config_digest)
        .await?;
    repo.push_blob(&mut conn, ReqBody::Full(layer), &layer_digest)
        .await?;
    repo.put_manifest(&mut conn, "v1", crate::image::OCI_MANIFEST, manifest)
        .await?;
    Ok(layer_digest)
}

/// 3. `conns` connections, each alternating manifest GET by tag and blob
///    HEAD for `duration`.
pub async fn small_requests(
    reg: &Registry,
    conns: usize,
    duration: Duration,
    seed: u64,
) -> anyhow::Result<SmallRequests> {
    let repo = Arc::new(reg.repo("bench/small").await?);
    let blob = Arc::new(push_small_image(reg, &repo, seed).await?);
    let barrier = Arc::new(Barrier::new(conns + 1));
    let mut tasks = Vec::with_capacity(conns);
    for i in 0..conns {
        let mut conn = reg.conn().await?;
        // One request before the clock starts: the connection is set up.
        repo.get_manifest(&mut conn, "v1").await?;
        let (repo, blob, barrier) = (repo.clone(), blob.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let deadline = Instant::now() + duration;
            let mut latencies = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            let mut first_error = None;
            let mut n = i as u64;
            while Instant::now() < deadline
                && n < MAX_REQUESTS_PER_CONN
                && errors < MAX_ERRORS_PER_CONN
            {
                let t = Instant::now();
                let result = if n & 1 == 0 {
                    repo.get_manifest(&mut conn, "v1").await.map(|_| ())
                } else {
                    repo.head_blob(&mut conn, &blob).await
                };
                match result {
                    Ok(()) => latencies.push(t.elapsed().as_nanos() as u64),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
                n += 1;
            }
            (latencies, errors, first_error, Instant::now())
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut finished = started;
    for task in tasks {
        let (lat, e, first, end) = task.await?;
        all.extend(lat);
        errors += e;
        if first_error.is_none() {
            first_error = first;
        }
        finished = finished.max(end);
    }
    let secs = (finished - started).as_secs_f64();
    if all.is_empty() {
        bail!("no request succeeded: {}", first_error.unwrap_or_default());
    }
    all.sort_unstable();
    Ok(SmallRequests {
        rps: all.len() as f64 / secs,
        p50_ms: percentile(&all, 50.0) as f64 / 1e6,
        p99_ms: percentile(&all, 99.0) as f64 / 1e6,
        errors,
        first_error,
    })
}

/// Aggregate rate and tail of the concurrent pulls.
#[derive(Clone, Copy, Debug)]
pub struct ConcurrentPulls {
    pub mb_per_s: f64,
    pub p99_s: f64,
}

/// Pushes each blob (untimed; they stay in the page cache).
pub async fn push_blobs(reg: &Registry, blobs: &[Content]) -> anyhow::Result<()> {
    let repo = reg.repo("bench/many").await?;
    let mut conn = reg.conn().await?;
    for blob in blobs {
        repo.push_blob(&mut conn, ReqBody::Stream(blob.pieces()), &blob.digest)
            .await
            .context("pushing the blobs for the concurrent pulls")?;
    }
    Ok(())
}

/// 4. One client per blob, each on its own connection, all released at
///    once; each pulls its blob.
pub async fn concurrent_pulls(
    reg: &Registry,
    blobs: &[Content],
) -> anyhow::Result<ConcurrentPulls> {
    let repo = Arc::new(reg.repo("bench/many").await?);
    let barrier = Arc::new(Barrier::new(blobs.len() + 1));
    let mut tasks = Vec::with_capacity(blobs.len());
    for blob in blobs {
        let mut conn = reg.conn().await?;
        let (repo, barrier, blob) = (repo.clone(), barrier.clone(), blob.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let t = Instant::now();
            let got =
                tokio::time::timeout(TRANSFER_DEADLINE, repo.pull_blob(&mut conn, &blob.digest))
                    .await
                    .context("pull timed out")??;
            check_len(got, blob.len)?;
            anyhow::Ok((t.elapsed(), Instant::now(), got))
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut times = Vec::with_capacity(tasks.len());
    let mut total = 0u64;
    let mut finished = started;
    for task in tasks {
        let (took, end, got) = task.await??;
        times.push(took.as_nanos() as u64);
        total += got;
        finished = finished.max(end);
    }
    times.sort_unstable();
    Ok(ConcurrentPulls {
        mb_per_s: total as f64 / (finished - started).as_secs_f64() / 1e6,
        p99_s: percentile(&times, 99.0) as f64 / 1e9,
    })
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
    }
}
