//! One benchmark: for each run, the machine's limits, a fresh image, then
//! each server in turn (started fresh, measured, stopped, data deleted).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::client::Registry;
use crate::data::{mix, Content};
use crate::image::{self, Direction, OciImage};
use crate::limits;
use crate::procfs::RssSampler;
use crate::report::{Meta, Metric, Results};
use crate::scenarios;
use crate::servers::{Binaries, Kind, Server};

/// Each machine limit is measured this many times per run; the best counts.
const LIMIT_TRIES: usize = 3;

/// Sizes and durations of one benchmark.
#[derive(Clone, Debug)]
pub struct Plan {
    pub quick: bool,
    pub runs: usize,
    /// The servers measured, in the order of the first run.
    pub servers: Vec<Kind>,
    /// The single-stream blobs (and the limits' transfer size).
    pub big: u64,
    pub conns: usize,
    pub small_duration: Duration,
    pub conc_clients: usize,
    pub conc_blob: u64,
    pub layers: usize,
    pub layer_size: u64,
}

impl Plan {
    pub fn new(runs: usize, quick: bool) -> Plan {
        const MIB: u64 = 1 << 20;
        if quick {
            Plan {
                quick,
                runs,
                servers: Kind::ALL.to_vec(),
                big: 256 * MIB,
                conns: 64,
                small_duration: Duration::from_secs(3),
                conc_clients: 100,
                conc_blob: 2 * MIB,
                layers: 5,
                layer_size: 20 * MIB,
            }
        } else {
            Plan {
                quick,
                runs,
                servers: Kind::ALL.to_vec(),
                big: 1024 * MIB,
                conns: 64,
                small_duration: Duration::from_secs(10),
                conc_clients: 100,
                conc_blob: 10 * MIB,
                layers: 5,
                layer_size: 100 * MIB,
            }
        }
    }
}

pub async fn run(plan: &Plan, meta: Meta) -> anyhow::Result<String> {
    let work = tempfile::Builder::new()
        .prefix("berth-bench-")
        .tempdir()
        .context("creating the work dir")?;
    let bins = Binaries::locate()?.snapshot_berth(work.path())?;
    eprintln!("berth-bench: work dir {}", work.path().display());
    let mut results = Results::default();
    for run in 0..plan.runs {
        eprintln!("== run {}/{}", run + 1, plan.runs);
        results.loadavg.push(loadavg());
        measure_limits(plan, &mut results).await?;
        let seed: u64 = rand::random();
        let image_dir = work.path().join(format!("image-{run}"));
        let image = {
            let (dir, layers, size) = (image_dir.clone(), plan.layers, plan.layer_size);
            eprintln!("   generating the OCI image ({layers} layers)");
            tokio::task::spawn_blocking(move || image::generate(&dir, seed, layers, size)).await??
        };
        // Rotate the order so that no server always goes first.
        for i in 0..plan.servers.len() {
            let kind = plan.servers[(i + run) % plan.servers.len()];
            let server_seed = mix(seed, 1000 + kind as u64);
            if let Err(e) = measure_server(
                kind,
                &bins,
                work.path(),
                plan,
                &image,
                server_seed,
                &mut results,
            )
            .await
            {
                note(&mut results, format!("run {}, {kind}: {e:#}", run + 1));
            }
        }
        let _ = std::fs::remove_dir_all(&image_dir);
    }
    Ok(crate::report::render(&results, &meta, plan))
}

/// The 1-minute load average: other work on the machine skews results.
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn note(results: &mut Results, text: String) {
    eprintln!("   !! {text}");
    results.notes.push(text);
}

async fn measure_limits(plan: &Plan, results: &mut Results) -> anyhow::Result<()> {
    let len = plan.big;
    // Best of three: other work on the machine can only lower a ceiling.
    let (sha, lo) = tokio::task::spawn_blocking(move || -> anyhow::Result<(f64, f64)> {
        let mut sha = 0f64;
        let mut lo = 0f64;
        for _ in 0..LIMIT_TRIES {
            sha = sha.max(limits::sha256_rate(len));
            lo = lo.max(limits::loopback_rate(len)?);
        }
        Ok((sha, lo))
    })
    .await??;
    eprintln!(
        "   limits: sha256 {:.0} MB/s, loopback {:.0} MB/s",
        sha / 1e6,
        lo / 1e6
    );
    results.sha256.push(sha);
    results.loopback.push(lo);
    Ok(())
}

fn client_cpu(kind: Kind, what: &str, r: &anyhow::Result<scenarios::Transfer>) {
    if let Ok(t) = r {
        eprintln!(
            "   {kind} {what}: client CPU {:.2} s/GiB",
            t.client_cpu_s_per_gib
        );
    }
}

/// Records a scenario's values, or a note with its error.
fn record<T>(
    results: &mut Results,
    kind: Kind,
    what: &str,
    outcome: anyhow::Result<T>,
    values: impl FnOnce(&T) -> Vec<(Metric, f64)>,
) {
    match outcome {
        Ok(v) => {
            let values = values(&v);
            let shown: Vec<String> = values
                .iter()
                .map(|(m, x)| format!("{m:?}={x:.3}"))
                .collect();
            eprintln!("   {kind} {what}: {}", shown.join(" "));
            for (metric, value) in values {
                results.add(kind, metric, value);
            }
        }
        Err(e) => note(results, format!("{kind}, {what}: {e:#}")),
    }
}

async fn measure_server(
    kind: Kind,
    bins: &Binaries,
    work: &Path,
    plan: &Plan,
    image: &OciImage,
    seed: u64,
    results: &mut Results,
) -> anyhow::Result<()> {
    eprintln!("-- {kind}: preparing content");
    let pull = Content::new(mix(seed, 1), plan.big).await?;
    let push = Content::new(mix(seed, 2), plan.big).await?;
    let mut many = Vec::with_capacity(plan.conc_clients);
    for i in 0..plan.conc_clients {
        many.push(Content::new(mix(seed, 100 + i as u64), plan.conc_blob).await?);
    }
    let server = Server::start(kind, bins, work).await?;
    eprintln!("-- {kind}: listening on {}", server.addr);
    let reg = Registry::new(server.addr, server.creds.clone());
    let procs = server.processes();
    let auth = reg.repo("bench/pull").await?.uses_token();
    results.auth.insert(kind, auth);

    let r = scenarios::pull_single(&reg, &procs, &pull).await;
    client_cpu(kind, "pull", &r);
    record(results, kind, "pull", r, |t| {
        vec![
            (Metric::PullRate, t.mb_per_s),
            (Metric::PullCpu, t.cpu_s_per_gib),
        ]
    });
    let r = scenarios::push_single(&reg, &procs, &push).await;
    client_cpu(kind, "push", &r);
    record(results, kind, "push", r, |t| {
        vec![
            (Metric::PushRate, t.mb_per_s),
            (Metric::PushCpu, t.cpu_s_per_gib),
        ]
    });

    let pushed = scenarios::push_blobs(&reg, &many).await;
    let sampler = RssSampler::start(procs.clone());
    let r = scenarios::small_requests(&reg, plan.conns, plan.small_duration, mix(seed, 3)).await;
    if let Ok(s) = &r {
        if s.errors > 0 {
            note(
                results,
                format!(
                    "{kind}, small requests: {} failed (first: {})",
                    s.errors,
                    s.first_error.as_deref().unwrap_or("?")
                ),
            );
        }
    }
    record(results, kind, "small requests", r, |s| {
        vec![
            (Metric::SmallRps, s.rps),
            (Metric::SmallP50, s.p50_ms),
            (Metric::SmallP99, s.p99_ms),
        ]
    });
    let r = match pushed {
        Ok(()) => scenarios::concurrent_pulls(&reg, &many).await,
        Err(e) => Err(e),
    };
    record(results, kind, "concurrent pulls", r, |c| {
        vec![(Metric::ConcRate, c.mb_per_s), (Metric::ConcP99, c.p99_s)]
    });
    let peak = sampler.finish();
    record(results, kind, "peak RSS", peak, |p| {
        vec![(Metric::PeakRss, *p as f64 / (1u64 << 20) as f64)]
    });

    let out = server.dir().join("skopeo-out");
    let authfile = server.dir().join("auth.json");
    let creds = server.creds.as_ref();
    let r = image::skopeo_copy(Direction::Push, image, &out, server.addr, creds, &authfile).await;
    let pushed_ok = r.is_ok();
    record(results, kind, "skopeo push", r, |s| {
        vec![(Metric::SkopeoPush, *s)]
    });
    if pushed_ok {
        let r =
            image::skopeo_copy(Direction::Pull, image, &out, server.addr, creds, &authfile).await;
        record(results, kind, "skopeo pull", r, |s| {
            vec![(Metric::SkopeoPull, *s)]
        });
    }
    let _ = std::fs::remove_dir_all(&out);
    drop(server);
    Ok(())
}
