//! Listings at scale (issue 14): one repository with 100,000 artifacts, a
//! project with 10,000 repositories and 1,000 projects, all pushed through
//! `/v2` and created through the API; then the latency of each management
//! API listing and of the portal's pages over the same data
//! ([`crate::portal`]), and, on distribution filled the same way, of its
//! only listings (`tags/list` and `_catalog`, `n=100`). The yardstick is
//! the issue's: each listing and page under 50 ms.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use bytes::Bytes;

use crate::bench::Plan;
use crate::client::{Conn, Registry, ReqBody};
use crate::data::sha256_digest;
use crate::image::OCI_MANIFEST;
use crate::portal::{PortalPage, Shows};
use crate::scenarios::percentile;
use crate::servers::{Binaries, Kind, Server};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Requests timed per listing, one after the other on one connection.
pub const SAMPLES: usize = 50;
/// Untimed requests before them.
pub const WARM_UP: usize = 3;
/// Connections pushing at once while filling.
const PUSHERS: usize = 32;
/// A pause between filling and timing.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(15);
/// The issue's bound on every listing.
const TARGET_MS: f64 = 50.0;
/// The repository with many artifacts and the project with many
/// repositories.
const BIG: &str = "bench/big";
const MANY: &str = "many";
/// The image whose artifact page is timed: a tagged one (`v1230`).
const SHOWN: usize = 1230;
/// Images pulled after filling (`v0`, `v3`, ...), so that the pull-time
/// order has pulled artifacts to put first, not only ties.
const PULLED: usize = 10;

/// How much data a run fills each server with.
#[derive(Clone, Copy, Debug)]
struct Scale {
    artifacts: usize,
    repositories: usize,
    projects: usize,
}

impl Scale {
    fn of(plan: &Plan) -> Scale {
        if plan.quick {
            Scale {
                artifacts: 10_000,
                repositories: 1_000,
                projects: 100,
            }
        } else {
            Scale {
                artifacts: 100_000,
                repositories: 10_000,
                projects: 1_000,
            }
        }
    }

    /// Every this many images, an index of the two pushed after it.
    const INDEX_EVERY: usize = 1000;

    fn indexes(self) -> usize {
        self.artifacts / Self::INDEX_EVERY
    }

    /// Top-level artifacts of the big repository: its images, less the
    /// indexes' children, plus the indexes.
    fn top_level(self) -> usize {
        self.artifacts - self.indexes()
    }

    /// Whether image `n` is listed by an index (not a top-level artifact).
    fn is_child(self, n: usize) -> bool {
        n / Self::INDEX_EVERY < self.indexes() && matches!(n % Self::INDEX_EVERY, 1 | 2)
    }

    /// Top-level artifacts with a tag containing "v123": v123, v1230..
    /// v1239, v12300.. (one in three images is tagged).
    fn needle_hits(self) -> usize {
        (0..self.artifacts)
            .filter(|n| !self.is_child(*n))
            .filter_map(tag_of)
            .filter(|t| t.contains("v123"))
            .count()
    }

    /// The middle page of the big repository, 100 a page.
    fn middle_page(self) -> usize {
        self.top_level() / 100 / 2
    }
}

/// One image manifest per `n`, all with the same config and layer.
fn image(n: usize, config: &str, layer: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config, "size": CONFIG.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer, "size": LAYER.len()}],
            "annotations": {"bench.n": n.to_string()},
        })
        .to_string(),
    )
}

const CONFIG: &[u8] =
    br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
const LAYER: &[u8] = b"one small layer shared by every image of the listing benchmark";

/// Which images carry the benchmark's label: one in 300 (all tagged, none
/// an index's child).
fn labelled(n: usize) -> bool {
    n.is_multiple_of(300)
}

/// Which images are tagged (`v<n>`): one in three. The others are pushed
/// by digest and stay untagged.
fn tag_of(n: usize) -> Option<String> {
    n.is_multiple_of(3).then(|| format!("v{n}"))
}

/// Runs `jobs` over `PUSHERS` connections, each job given its number.
async fn in_parallel<F, Fut>(reg: &Registry, jobs: usize, job: F) -> anyhow::Result<()>
where
    F: Fn(Conn, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<Conn>> + Send + 'static,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(PUSHERS);
    for _ in 0..PUSHERS {
        let (job, next) = (job.clone(), next.clone());
        let mut conn = reg.conn().await?;
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= jobs {
                    return anyhow::Ok(());
                }
                conn = job(conn, n).await.with_context(|| format!("job {n}"))?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Fills a server: the projects (berth), the big repository and the
/// repositories of `many`; on berth, one label on one image in 300 of the
/// big repository, whose id it returns.
async fn fill(reg: &Registry, berth: bool, scale: Scale) -> anyhow::Result<Option<i64>> {
    let started = Instant::now();
    if berth {
        // `bench` exists already, and berth may have made others (its
        // default `library`): as many are added as make the total.
        let mut conn = reg.conn().await?;
        let (headers, _) = reg
            .get_ok(&mut conn, "/api/v2.0/projects?page=1&page_size=1")
            .await?;
        let existing = total_count(&headers).context("projects before filling")?;
        reg.create_project(MANY).await?;
        let reg2 = reg.clone();
        let more = scale.projects.saturating_sub(existing + 1);
        in_parallel(reg, more, move |conn, n| {
            let reg = reg2.clone();
            async move {
                reg.create_project(&format!("project-{n:05}")).await?;
                Ok(conn)
            }
        })
        .await
        .context("creating the projects")?;
        eprintln!(
            "   {} projects after {:.0} s",
            scale.projects,
            started.elapsed().as_secs_f64()
        );
    }
    let config = sha256_digest(CONFIG);
    let layer = sha256_digest(LAYER);
    let big = reg.basic_repo(BIG)?;
    let mut conn = reg.conn().await?;
    big.push_blob(
        &mut conn,
        ReqBody::Full(Bytes::from_static(CONFIG)),
        &config,
    )
    .await?;
    big.push_blob(&mut conn, ReqBody::Full(Bytes::from_static(LAYER)), &layer)
        .await?;
    let (c, l, repo) = (config.clone(), layer.clone(), big.clone());
    in_parallel(reg, scale.artifacts, move |mut conn, n| {
        let (config, layer, repo) = (c.clone(), l.clone(), repo.clone());
        async move {
            let manifest = image(n, &config, &layer);
            let reference = tag_of(n).unwrap_or_else(|| sha256_digest(&manifest));
            repo.put_manifest(&mut conn, &reference, OCI_MANIFEST, manifest)
                .await?;
            Ok(conn)
        }
    })
    .await
    .context("pushing the images")?;
    // The indexes, each of two untagged images pushed before.
    for k in 0..scale.indexes() {
        let child = |n: usize| {
            let manifest = image(n, &config, &layer);
            serde_json::json!({"mediaType": OCI_MANIFEST, "digest": sha256_digest(&manifest),
                               "size": manifest.len(),
                               "platform": {"architecture": if n.is_multiple_of(2) { "arm64" } else { "amd64" },
                                            "os": "linux"}})
        };
        let first = k * Scale::INDEX_EVERY + 1;
        let index = Bytes::from(
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
                               "manifests": [child(first), child(first + 1)]})
            .to_string(),
        );
        big.put_manifest(&mut conn, &format!("multi-{k}"), OCI_INDEX, index)
            .await?;
    }
    eprintln!(
        "   {} artifacts in {BIG} after {:.0} s",
        scale.artifacts,
        started.elapsed().as_secs_f64()
    );
    let reg2 = reg.clone();
    let (c, l) = (config.clone(), layer.clone());
    in_parallel(reg, scale.repositories, move |mut conn, n| {
        let (config, layer) = (c.clone(), l.clone());
        let repo = reg2.basic_repo(&format!("{MANY}/r{n:05}"));
        async move {
            let repo = repo?;
            repo.mount_blob(&mut conn, &config, BIG).await?;
            repo.mount_blob(&mut conn, &layer, BIG).await?;
            repo.put_manifest(&mut conn, "v1", OCI_MANIFEST, image(n, &config, &layer))
                .await?;
            Ok(conn)
        }
    })
    .await
    .context("pushing the repositories")?;
    eprintln!(
        "   {} repositories in {MANY} after {:.0} s",
        scale.repositories,
        started.elapsed().as_secs_f64()
    );
    for k in 0..PULLED {
        big.get_manifest(&mut conn, &format!("v{}", 3 * k)).await?;
    }
    if !berth {
        return Ok(None);
    }
    let headers = reg
        .post_json(
            &mut conn,
            "/api/v2.0/labels",
            &serde_json::json!({"name": "bench", "scope": "g"}),
            http::StatusCode::CREATED,
        )
        .await?;
    let label: i64 = headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit('/').next())
        .and_then(|v| v.parse().ok())
        .context("the label's Location")?;
    let reg2 = reg.clone();
    let marked: Vec<usize> = (0..scale.artifacts).filter(|n| labelled(*n)).collect();
    let marked = Arc::new(marked);
    let jobs = marked.len();
    in_parallel(reg, jobs, move |mut conn, k| {
        let (reg, marked) = (reg2.clone(), marked.clone());
        async move {
            let path = format!(
                "/api/v2.0/projects/bench/repositories/big/artifacts/v{}/labels",
                marked[k]
            );
            reg.post_json(
                &mut conn,
                &path,
                &serde_json::json!({"id": label}),
                http::StatusCode::OK,
            )
            .await?;
            Ok(conn)
        }
    })
    .await
    .context("labelling")?;
    Ok(Some(label))
}

/// One listing: what it asks, and the total it must report.
struct Listing {
    label: &'static str,
    path: String,
    /// `X-Total-Count` expected (berth), or the JSON member that holds
    /// the items (distribution).
    expect: Expect,
}

enum Expect {
    Total(usize),
    /// At least one item in this member.
    Items(&'static str),
    /// A JSON object (search).
    Object,
    /// A JSON object with this number in it, at least 1.
    Count(&'static str),
}

fn berth_listings(scale: Scale, label: i64) -> Vec<Listing> {
    let artifacts = "/api/v2.0/projects/bench/repositories/big/artifacts";
    let labelled = (0..scale.artifacts).filter(|n| labelled(*n)).count();
    let needle_hits = scale.needle_hits();
    let middle = scale.middle_page();
    vec![
        Listing {
            label: "artifacts, page 1 (page_size=100)",
            path: format!("{artifacts}?page=1&page_size=100"),
            expect: Expect::Total(scale.top_level()),
        },
        Listing {
            label: "artifacts, middle page",
            path: format!("{artifacts}?page={middle}&page_size=100"),
            expect: Expect::Total(scale.top_level()),
        },
        Listing {
            label: "artifacts, tag search (q=tags=~v123)",
            path: format!("{artifacts}?page=1&page_size=100&q=tags%3D~v123"),
            expect: Expect::Total(needle_hits),
        },
        Listing {
            label: "artifacts, by pull time (sort=-pull_time)",
            path: format!("{artifacts}?page=1&page_size=100&sort=-pull_time"),
            expect: Expect::Total(scale.top_level()),
        },
        Listing {
            label: "artifacts, label filter (q=labels=<id>, 1 in 300)",
            path: format!("{artifacts}?page=1&page_size=100&q=labels%3D{label}&with_label=true"),
            expect: Expect::Total(labelled),
        },
        Listing {
            label: "project's artifacts (one repository), page 1",
            path: "/api/v2.0/projects/bench/artifacts?page=1&page_size=100".into(),
            expect: Expect::Total(scale.top_level()),
        },
        Listing {
            label: "project's artifacts (many repositories), page 1",
            path: format!("/api/v2.0/projects/{MANY}/artifacts?page=1&page_size=100"),
            expect: Expect::Total(scale.repositories),
        },
        Listing {
            label: "repositories of a project, page 1",
            path: format!("/api/v2.0/projects/{MANY}/repositories?page=1&page_size=100"),
            expect: Expect::Total(scale.repositories),
        },
        Listing {
            label: "projects, page 1",
            path: "/api/v2.0/projects?page=1&page_size=100".into(),
            expect: Expect::Total(scale.projects),
        },
        Listing {
            label: "search (q=r0099)",
            path: "/api/v2.0/search?q=r0099".into(),
            expect: Expect::Object,
        },
        Listing {
            label: "statistics (every project and repository counted)",
            path: "/api/v2.0/statistics".into(),
            expect: Expect::Count("total_repo_count"),
        },
    ]
}

/// The portal's pages over the same data, 100 rows a page; `shown` is
/// the digest of image [`SHOWN`].
fn portal_pages(scale: Scale, shown: &str) -> Vec<PortalPage> {
    let big = "/projects/bench/repositories/big";
    let artifact = |total| Shows::Rows {
        marker: "<tr data-digest=",
        total,
    };
    vec![
        PortalPage {
            label: "portal: projects, page 1",
            path: "/projects?page_size=100".into(),
            shows: Shows::Rows {
                marker: "<tr data-project=",
                total: scale.projects,
            },
        },
        PortalPage {
            label: "portal: repositories of a project, page 1",
            path: format!("/projects/{MANY}/repositories?page_size=100"),
            shows: Shows::Rows {
                marker: "<tr data-repository=",
                total: scale.repositories,
            },
        },
        PortalPage {
            label: "portal: artifacts, page 1",
            path: format!("{big}?page_size=100"),
            shows: artifact(scale.top_level()),
        },
        PortalPage {
            label: "portal: artifacts, middle page",
            path: format!("{big}?page={}&page_size=100", scale.middle_page()),
            shows: artifact(scale.top_level()),
        },
        PortalPage {
            label: "portal: artifacts, tag search (tag=v123)",
            path: format!("{big}?tag=v123&page_size=100"),
            shows: artifact(scale.needle_hits()),
        },
        PortalPage {
            label: "portal: artifacts, by pull time (sort=-pull_time)",
            path: format!("{big}?sort=-pull_time&page_size=100"),
            shows: artifact(scale.top_level()),
        },
        PortalPage {
            label: "portal: an artifact (v1230)",
            path: format!("{big}/artifacts/{shown}"),
            shows: Shows::Text(vec![
                format!("<h1 class=\"mono wrap\">{shown}</h1>"),
                format!("data-tag=\"v{SHOWN}\""),
            ]),
        },
        PortalPage {
            label: "portal: search (q=r0099)",
            path: "/search?q=r0099".into(),
            shows: Shows::Text(vec![
                "id=\"search-repositories\"".into(),
                format!("{MANY}/r00990"),
                format!("{MANY}/r00999"),
            ]),
        },
    ]
}

fn distribution_listings() -> Vec<Listing> {
    vec![
        Listing {
            label: "tags/list?n=100 (the big repository)",
            path: format!("/v2/{BIG}/tags/list?n=100"),
            expect: Expect::Items("tags"),
        },
        Listing {
            label: "_catalog?n=100",
            path: "/v2/_catalog?n=100".into(),
            expect: Expect::Items("repositories"),
        },
    ]
}

/// Median and p99 of one listing, in ms.
pub struct Timing {
    pub label: &'static str,
    /// What the answer held.
    pub answer: String,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

async fn time(reg: &Registry, listing: &Listing) -> anyhow::Result<Timing> {
    let mut conn = reg.conn().await?;
    let mut all = Vec::with_capacity(SAMPLES);
    let mut answer = String::new();
    for i in 0..WARM_UP + SAMPLES {
        let t = Instant::now();
        let (headers, body) = reg.get_ok(&mut conn, &listing.path).await?;
        let took = t.elapsed().as_nanos() as u64;
        if i == 0 {
            answer = check(listing, &headers, &body)?;
        }
        if i >= WARM_UP {
            all.push(took);
        }
    }
    all.sort_unstable();
    Ok(Timing {
        label: listing.label,
        answer,
        p50_ms: percentile(&all, 50.0) as f64 / 1e6,
        p99_ms: percentile(&all, 99.0) as f64 / 1e6,
    })
}

/// The answer is the listing asked for, not an empty or partial one;
/// what it held.
fn check(listing: &Listing, headers: &http::HeaderMap, body: &[u8]) -> anyhow::Result<String> {
    let json: serde_json::Value =
        serde_json::from_slice(body).with_context(|| format!("{}: not JSON", listing.label))?;
    match listing.expect {
        Expect::Total(want) => {
            let total = total_count(headers);
            if total != Some(want) {
                bail!(
                    "{}: X-Total-Count {total:?}, expected {want}",
                    listing.label
                );
            }
            let items = json.as_array().map_or(0, Vec::len);
            if items != want.min(100) {
                bail!(
                    "{}: {items} items, expected {}",
                    listing.label,
                    want.min(100)
                );
            }
            Ok(format!("{items} of {want}"))
        }
        Expect::Items(key) => {
            let items = json.get(key).and_then(|v| v.as_array()).map_or(0, Vec::len);
            if items == 0 {
                bail!("{}: no {key}", listing.label);
            }
            Ok(format!("{items} {key}"))
        }
        Expect::Count(key) => match json.get(key).and_then(|v| v.as_i64()) {
            Some(n) if n > 0 => Ok(format!("{key} {n}")),
            _ => bail!("{}: no {key}", listing.label),
        },
        Expect::Object => {
            let count = |key: &str| json.get(key).and_then(|v| v.as_array()).map(Vec::len);
            match (count("project"), count("repository")) {
                (Some(p), Some(r)) => Ok(format!("{p} projects, {r} repositories")),
                _ => bail!("{}: not a search answer", listing.label),
            }
        }
    }
}

/// A listing's `X-Total-Count`.
fn total_count(headers: &http::HeaderMap) -> Option<usize> {
    headers
        .get("x-total-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The servers this scenario can fill and list.
fn supported(kind: Kind) -> bool {
    matches!(kind, Kind::Berth | Kind::BerthPostgres | Kind::Distribution)
}

/// Fills each server, times its listings; returns a Markdown section.
pub async fn run(plan: &Plan) -> anyhow::Result<String> {
    let scale = Scale::of(plan);
    let kinds: Vec<Kind> = if plan.servers == Kind::ALL {
        vec![Kind::Berth, Kind::BerthPostgres, Kind::Distribution]
    } else {
        plan.servers.clone()
    };
    if let Some(kind) = kinds.iter().find(|k| !supported(**k)) {
        bail!("--listing measures berth, berth+postgres and distribution, not {kind}");
    }
    let work = tempfile::Builder::new()
        .prefix("berth-listing-")
        .tempdir()?;
    let bins = Binaries::locate()?.snapshot_berth(work.path())?;
    let mut sections = Vec::new();
    for kind in kinds {
        eprintln!("== {kind}: filling");
        let load_before = loadavg();
        let server = Server::start(kind, &bins, work.path()).await?;
        let reg = Registry::new(server.addr, server.creds.clone());
        let filled = Instant::now();
        let berth = kind != Kind::Distribution;
        let label = fill(&reg, berth, scale)
            .await
            .with_context(|| format!("filling {kind}; logs:\n{}", server.log_tails()))?;
        let fill_s = filled.elapsed().as_secs_f64();
        // The filling's own background work (PostgreSQL's autovacuum of
        // the new rows, SQLite's checkpoints) is not what is measured.
        tokio::time::sleep(SETTLE).await;
        let load_fill = loadavg();
        let listings = if let Some(label) = label {
            berth_listings(scale, label)
        } else {
            distribution_listings()
        };
        let mut timings = Vec::new();
        for listing in &listings {
            timings.push(report(time(&reg, listing).await?));
        }
        if berth {
            let session = crate::portal::sign_in(&reg).await?;
            let shown = sha256_digest(&image(SHOWN, &sha256_digest(CONFIG), &sha256_digest(LAYER)));
            for page in &portal_pages(scale, &shown) {
                timings.push(report(crate::portal::time(&reg, &session, page).await?));
            }
        }
        sections.push((kind, fill_s, load_before, load_fill, loadavg(), timings));
    }
    let mut out = format!(
        "## Listings at scale\n\n\
         One repository (`{BIG}`) with {} image manifests (one in three tagged, the others \
         pushed by digest; every {}th image starts an index of the two images after it, \
         {} indexes), a project (`{MANY}`) with {} repositories and {} projects, all pushed \
         through `/v2` on {PUSHERS} connections and created through the API; {PULLED} tagged images \
         pulled; then {} s of \
         rest. Each listing is asked {SAMPLES} times in a row on one connection (after {WARM_UP} untimed), as \
         the admin; the answer's total is checked. The portal's pages (berth), {} rows a page, \
         the same way with the session of one sign-in through the login form; each page's rows \
         and pager total are checked. distribution has no management API: \
         its only listings, `tags/list` and `_catalog` with `n=100`, on the same data. \
         Target: every listing under {TARGET_MS:.0} ms.\n\n\
         | server | listing | answer | p50 (ms) | p99 (ms) | under {TARGET_MS:.0} ms |\n\
         |---|---|---|--:|--:|:-:|\n",
        scale.artifacts,
        Scale::INDEX_EVERY,
        scale.indexes(),
        scale.repositories,
        scale.projects,
        SETTLE.as_secs(),
        crate::portal::PAGE_SIZE,
    );
    for (kind, _, _, _, _, timings) in &sections {
        for t in timings {
            out.push_str(&format!(
                "| {kind} | {} | {} | {:.2} | {:.2} | {} |\n",
                t.label,
                t.answer,
                t.p50_ms,
                t.p99_ms,
                if t.p99_ms < TARGET_MS { "yes" } else { "no" }
            ));
        }
    }
    out.push_str("\n| server | fill (s) | load before | load after filling | load after listing |\n|---|--:|--:|--:|--:|\n");
    for (kind, fill_s, before, fill, after, _) in &sections {
        out.push_str(&format!(
            "| {kind} | {fill_s:.0} | {before:.2} | {fill:.2} | {after:.2} |\n"
        ));
    }
    Ok(out)
}

/// Shows a timing as it is taken.
fn report(t: Timing) -> Timing {
    eprintln!(
        "   {}: p50 {:.2} ms, p99 {:.2} ms",
        t.label, t.p50_ms, t.p99_ms
    );
    t
}

/// The 1-minute load average.
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}
