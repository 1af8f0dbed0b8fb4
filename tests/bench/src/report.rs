//! The results of all runs and the Markdown table made of their medians.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::bench::Plan;
use crate::servers::Kind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    PullRate,
    PullCpu,
    PushRate,
    PushCpu,
    SmallRps,
    SmallP50,
    SmallP99,
    ConcRate,
    ConcP99,
    PeakRss,
    SkopeoPush,
    SkopeoPull,
}

/// A target on berth/distribution: at least or at most this ratio.
#[derive(Clone, Copy, Debug)]
enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Metric {
    pub const ALL: [Metric; 12] = [
        Metric::PullRate,
        Metric::PullCpu,
        Metric::PushRate,
        Metric::PushCpu,
        Metric::SmallRps,
        Metric::SmallP50,
        Metric::SmallP99,
        Metric::ConcRate,
        Metric::ConcP99,
        Metric::PeakRss,
        Metric::SkopeoPush,
        Metric::SkopeoPull,
    ];

    fn label(self, plan: &Plan) -> String {
        let big = size_label(plan.big);
        match self {
            Metric::PullRate => format!("1. pull {big} blob, 1 stream (MB/s)"),
            Metric::PullCpu => "1. pull: server CPU (s/GiB)".into(),
            Metric::PushRate => format!("2. push {big} blob, chunked PATCH (MB/s)"),
            Metric::PushCpu => "2. push: server CPU (s/GiB)".into(),
            Metric::SmallRps => {
                format!("3. manifest GET + blob HEAD, {} conns (req/s)", plan.conns)
            }
            Metric::SmallP50 => "3. small requests p50 (ms)".into(),
            Metric::SmallP99 => "3. small requests p99 (ms)".into(),
            Metric::ConcRate => format!(
                "4. {} concurrent pulls of {} (MB/s, aggregate)",
                plan.conc_clients,
                size_label(plan.conc_blob)
            ),
            Metric::ConcP99 => "4. concurrent pulls p99 per request (s)".into(),
            Metric::PeakRss => "5. peak RSS during 3 and 4 (MiB)".into(),
            Metric::SkopeoPush => format!(
                "6. skopeo copy {}x{} layers into registry (s)",
                plan.layers,
                size_label(plan.layer_size)
            ),
            Metric::SkopeoPull => "6. skopeo copy out of registry (s)".into(),
        }
    }

    /// The "better" column: which direction wins.
    fn better(self) -> &'static str {
        if self.higher_is_better() {
            "higher"
        } else {
            "lower"
        }
    }

    fn higher_is_better(self) -> bool {
        matches!(
            self,
            Metric::PullRate | Metric::PushRate | Metric::SmallRps | Metric::ConcRate
        )
    }

    /// The target for berth/distribution on this row.
    fn target(self) -> Option<Target> {
        match self {
            Metric::PullRate | Metric::ConcRate => Some(Target::AtLeast(1.3)),
            Metric::PullCpu => Some(Target::AtMost(0.6)),
            Metric::PushRate => Some(Target::AtLeast(4.0)),
            Metric::SmallRps => Some(Target::AtLeast(3.0)),
            Metric::SmallP99 => Some(Target::AtMost(1.0)),
            Metric::PeakRss => Some(Target::AtMost(0.5)),
            _ => None,
        }
    }

    fn format(self, v: f64) -> String {
        match self {
            Metric::PullRate | Metric::PushRate | Metric::ConcRate | Metric::SmallRps => {
                format!("{v:.0}")
            }
            Metric::PeakRss => format!("{v:.1}"),
            Metric::PullCpu | Metric::PushCpu | Metric::SkopeoPush | Metric::SkopeoPull => {
                format!("{v:.2}")
            }
            Metric::SmallP50 | Metric::SmallP99 | Metric::ConcP99 => format!("{v:.3}"),
        }
    }
}

pub fn size_label(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes & ((1 << 30) - 1) == 0 {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

/// Every sample of every run.
#[derive(Default, Debug)]
pub struct Results {
    values: BTreeMap<(Kind, Metric), Vec<f64>>,
    pub sha256: Vec<f64>,
    pub loopback: Vec<f64>,
    /// Whether each server asked for a login (then all requests carried a
    /// bearer token).
    pub auth: BTreeMap<Kind, bool>,
    /// The 1-minute load average when each run started.
    pub loadavg: Vec<f64>,
    pub notes: Vec<String>,
}

impl Results {
    pub fn add(&mut self, kind: Kind, metric: Metric, value: f64) {
        self.values.entry((kind, metric)).or_default().push(value);
    }

    fn all(&self, kind: Kind, metric: Metric) -> &[f64] {
        self.values.get(&(kind, metric)).map_or(&[], Vec::as_slice)
    }

    pub fn median(&self, kind: Kind, metric: Metric) -> Option<f64> {
        self.values.get(&(kind, metric)).and_then(|v| median(v))
    }
}

pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// What the table says about the machine and the run.
#[derive(Debug)]
pub struct Meta {
    pub date: String,
    pub cpu: String,
    pub nproc: usize,
    pub memory: String,
    pub kernel: String,
    pub versions: Vec<String>,
    pub runs: usize,
}

/// Whether berth's ratio is on the good side of `bound`.
fn meets(ratio: f64, target: Target) -> bool {
    match target {
        Target::AtLeast(t) => ratio >= t,
        Target::AtMost(t) => ratio <= t,
    }
}

fn ratio_cell(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "–".into(), |r| format!("{r:.2}×"))
}

/// A server's median of a metric, or why there is none.
fn value_cell(value: Option<f64>, metric: Metric, plan: &Plan, kind: Kind) -> String {
    match value {
        Some(v) => metric.format(v),
        None if plan.servers.contains(&kind) => "error".into(),
        None => "not run".into(),
    }
}

/// berth on PostgreSQL and three instances behind haproxy, next to the
/// embedded berth of the same run (when the plan measured them).
fn render_scale_out(md: &mut String, results: &Results, plan: &Plan) {
    let kinds = [Kind::BerthPostgres, Kind::BerthCluster];
    if !kinds.iter().any(|k| plan.servers.contains(k)) {
        return;
    }
    let _ = writeln!(
        md,
        "\nberth's scale-out, same run: metadata on PostgreSQL (the server's own \
         CPU and memory not counted), and three instances on one PostgreSQL database \
         and data directory behind haproxy (all four processes counted). On 2 cores \
         this shows overhead, not speed-up.\n"
    );
    let _ = writeln!(
        md,
        "| metric | better | berth | berth+postgres | 3xberth+haproxy | postgres/berth | 3x/berth |"
    );
    let _ = writeln!(md, "|---|---|--:|--:|--:|--:|--:|");
    for metric in Metric::ALL {
        let b = results.median(Kind::Berth, metric);
        let cell = |kind: Kind| value_cell(results.median(kind, metric), metric, plan, kind);
        let ratio = |kind: Kind| match (results.median(kind, metric), b) {
            (Some(v), Some(b)) if b > 0.0 => Some(v / b),
            _ => None,
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            metric.label(plan),
            metric.better(),
            cell(Kind::Berth),
            cell(Kind::BerthPostgres),
            cell(Kind::BerthCluster),
            ratio_cell(ratio(Kind::BerthPostgres)),
            ratio_cell(ratio(Kind::BerthCluster)),
        );
    }
}

/// berth and distribution each with blobs on the same object store
/// (Garage), same run: once streaming blob GETs themselves, once
/// redirecting them to the store.
fn render_object_store(md: &mut String, results: &Results, plan: &Plan) {
    let pairs = [
        (
            Kind::BerthS3,
            Kind::DistributionS3,
            "each streams blob GETs itself",
        ),
        (
            Kind::BerthS3Redirect,
            Kind::DistributionS3Redirect,
            "each answers blob GETs with a redirect to a pre-signed URL, which the client follows",
        ),
    ];
    for (berth, distribution, how) in pairs {
        if !plan.servers.contains(&berth) && !plan.servers.contains(&distribution) {
            continue;
        }
        let _ = writeln!(
            md,
            "\nBlobs on an object store, same run: berth (metadata on PostgreSQL) and \
             distribution's s3 driver, both on one Garage on loopback; {how} (Garage's and \
             PostgreSQL's CPU and memory not counted).\n"
        );
        let _ = writeln!(
            md,
            "| metric | better | {berth} | {distribution} | {berth}/{distribution} |"
        );
        let _ = writeln!(md, "|---|---|--:|--:|--:|");
        for metric in Metric::ALL {
            let cell = |kind: Kind| value_cell(results.median(kind, metric), metric, plan, kind);
            let ratio = match (
                results.median(berth, metric),
                results.median(distribution, metric),
            ) {
                (Some(b), Some(d)) if d > 0.0 => Some(b / d),
                _ => None,
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                metric.label(plan),
                metric.better(),
                cell(berth),
                cell(distribution),
                ratio_cell(ratio),
            );
        }
    }
}

pub fn render(results: &Results, meta: &Meta, plan: &Plan) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## berth vs distribution vs nginx+distribution\n");
    let _ = writeln!(
        md,
        "{} · {} · nproc {} · {} RAM · Linux {} · {} run(s), medians{}\n",
        meta.date,
        meta.cpu,
        meta.nproc,
        meta.memory,
        meta.kernel,
        meta.runs,
        if plan.quick {
            " · **--quick** (smaller blobs, 3 s small-request run)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "| metric | better | berth | distribution | nginx+distribution | berth/dist | berth/nginx+dist | target (berth/dist) | met: target / ahead of nginx+dist |"
    );
    let _ = writeln!(md, "|---|---|--:|--:|--:|--:|--:|---|---|");
    for metric in Metric::ALL {
        let b = results.median(Kind::Berth, metric);
        let d = results.median(Kind::Distribution, metric);
        let n = results.median(Kind::NginxDistribution, metric);
        let cell = |kind: Kind, v: Option<f64>| value_cell(v, metric, plan, kind);
        let ratio = |peer: Option<f64>| match (b, peer) {
            (Some(b), Some(p)) if p > 0.0 => Some(b / p),
            _ => None,
        };
        let (rd, rn) = (ratio(d), ratio(n));
        let target = metric.target();
        let target_text = match target {
            Some(Target::AtLeast(t)) => format!("≥ {t}×"),
            Some(Target::AtMost(t)) => format!("≤ {t}×"),
            None => "–".into(),
        };
        let met_dist = match (target, rd) {
            (Some(t), Some(r)) => {
                if meets(r, t) {
                    "yes"
                } else {
                    "**no**"
                }
            }
            (Some(_), None) => "?",
            (None, _) => "–",
        };
        let ahead = match rn {
            Some(r) if metric.higher_is_better() => r > 1.0,
            Some(r) => r < 1.0,
            None => false,
        };
        let met_nginx = match rn {
            Some(_) if ahead => "yes",
            Some(_) => "**no**",
            None => "?",
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
            metric.label(plan),
            metric.better(),
            cell(Kind::Berth, b),
            cell(Kind::Distribution, d),
            cell(Kind::NginxDistribution, n),
            ratio_cell(rd),
            ratio_cell(rn),
            target_text,
            met_dist,
            met_nginx,
        );
    }
    render_scale_out(&mut md, results, plan);
    render_object_store(&mut md, results, plan);
    if meta.runs > 1 {
        let _ = writeln!(
            md,
            "\nEvery run's value (in run order), to judge the spread:\n"
        );
        let _ = writeln!(md, "| metric | berth | distribution | nginx+distribution |");
        let _ = writeln!(md, "|---|---|---|---|");
        for metric in Metric::ALL {
            let runs = |kind: Kind| {
                let v: Vec<String> = results
                    .all(kind, metric)
                    .iter()
                    .map(|x| metric.format(*x))
                    .collect();
                if v.is_empty() {
                    "–".to_owned()
                } else {
                    v.join(" · ")
                }
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                metric.label(plan),
                runs(Kind::Berth),
                runs(Kind::Distribution),
                runs(Kind::NginxDistribution)
            );
        }
    }
    let sha = median(&results.sha256);
    let lo = median(&results.loopback);
    let _ = writeln!(
        md,
        "\nMachine limits, measured in the same run (medians):\n"
    );
    let pct = |berth: Option<f64>, limit: Option<f64>| match (berth, limit) {
        (Some(b), Some(l)) if l > 0.0 => format!("; berth reaches {:.0}% of it", 100.0 * b / l),
        _ => String::new(),
    };
    let _ = writeln!(
        md,
        "- single-core sha256 (sha2 crate, 1 MiB pieces, best of 3; the push ceiling): {} MB/s{}",
        sha.map_or_else(|| "?".into(), |v| format!("{:.0}", v / 1e6)),
        pct(
            results.median(Kind::Berth, Metric::PushRate),
            sha.map(|v| v / 1e6)
        ),
    );
    let _ = writeln!(
        md,
        "- loopback TCP copy (1 writer thread, 1 reader thread, 1 MiB buffers, best of 3; the pull ceiling): {} MB/s{}",
        lo.map_or_else(|| "?".into(), |v| format!("{:.0}", v / 1e6)),
        pct(results.median(Kind::Berth, Metric::PullRate), lo.map(|v| v / 1e6)),
    );
    let _ = writeln!(
        md,
        "\nMB/s = 10^6 bytes/s. CPU s/GiB = the server's utime+stime (all its processes) during the timed transfer, per GiB moved. \
         Ratios are berth/peer of the medians; \"better\" says which direction wins."
    );
    let auth: Vec<String> = results
        .auth
        .iter()
        .map(|(kind, token)| {
            if *token {
                format!("{kind}: bearer token from the realm of its 401 challenge (admin credentials), on every request")
            } else {
                format!("{kind}: no auth")
            }
        })
        .collect();
    if !auth.is_empty() {
        let _ = writeln!(md, "\nAuth: {}.", auth.join("; "));
    }
    let loads: Vec<String> = results.loadavg.iter().map(|l| format!("{l:.2}")).collect();
    let _ = writeln!(
        md,
        "\nLoad average (1 min) at the start of each run: {}. Anything well above 0 means other work shared the 2 cores.",
        loads.join(", ")
    );
    if !meta.versions.is_empty() {
        let _ = writeln!(md, "\nPeers: {}.", meta.versions.join(", "));
    }
    if !results.notes.is_empty() {
        let _ = writeln!(md, "\nNotes and errors:\n");
        for note in &results.notes {
            let _ = writeln!(md, "- {}", note.replace('\n', " "));
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(size_label(1 << 30), "1 GiB");
        assert_eq!(size_label(100 << 20), "100 MiB");
    }
}
