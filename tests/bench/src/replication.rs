//! Replication (issue 15): a set of images that share base layers copied
//! from berth to an empty docker-registry by berth's replication (a push
//! policy, Harbor's API) and by `skopeo sync` of the same set, the tool
//! people reach for without Harbor. Measured: the wall time of each copy
//! and the bytes that crossed the wire to the destination, counted by a
//! relay in this process in front of each destination, so that a shared
//! blob sent twice shows as bytes beyond the set's distinct blobs.
//!
//! The set: 50 repositories `bench/app-00`..`bench/app-49`, tag `1`, each
//! an OCI image manifest of a config, two base layers every image shares
//! (60 + 40 MiB) and one layer of its own (37 MiB): about 1.9 GiB of
//! distinct blobs, 6.7 GiB if every image were copied on its own. Seeded
//! once; each run copies it to two fresh destinations, one per tool, the
//! tool that goes first alternating between runs. Both destinations are
//! checked afterwards: every manifest by tag with the source's digest and
//! every blob with its size, so a copy that leaves anything out fails.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_LENGTH};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::bench::Plan;
use crate::client::{Conn, Credentials, Registry, Repo, ReqBody};
use crate::data::{mix, sha256_digest, Content};
use crate::image::OCI_MANIFEST;
use crate::report::median;
use crate::servers::{Binaries, Kind, Server};

const IMAGES: usize = 50;
const TAG: &str = "1";
const MIB: u64 = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;
/// The base layers every image shares, then each image's own layer (a
/// tenth of each with `--quick`).
const BASE_LAYERS: [u64; 2] = [60 * MIB, 40 * MIB];
const OWN_LAYER: u64 = 37 * MIB;
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// One copy of the whole set may take at most this long.
const DEADLINE: Duration = Duration::from_secs(1800);
/// How often berth's execution is asked for its status: the measured time
/// is at most this much late.
const POLL: Duration = Duration::from_millis(100);
/// The relay's read size.
const RELAY_BUF: usize = 256 * 1024;
/// The user skopeo runs as when this process is root: root's skopeo keeps
/// its blob-info cache in /var/lib/containers/cache whatever `HOME` says,
/// shared with every other skopeo on the machine.
const NOBODY: u32 = 65534;

/// One blob of an image, as its manifest lists it.
#[derive(Clone, Debug)]
struct Blob {
    digest: String,
    size: u64,
}

/// One image of the set, as seeded on berth.
struct Image {
    repo: String,
    manifest_digest: String,
    /// The config, then the layers.
    blobs: Vec<Blob>,
}

struct Set {
    images: Vec<Image>,
    /// The sum of the distinct blobs' sizes: what a copy that sends
    /// every blob once sends, besides manifests and HTTP.
    distinct: u64,
    /// The same, were every image copied on its own.
    per_image: u64,
}

/// What one tool did in one run.
struct Copy {
    secs: f64,
    bytes: u64,
    /// Blob uploads the destination completed, and blobs it mounted from
    /// another of its repositories (its access log).
    uploads: usize,
    mounts: usize,
}

/// Pushes the set to berth: the base layers once (then mounted into the
/// other repositories), each image's own layer and config, its manifest.
async fn seed(admin: &Registry, plan: &Plan, seed: u64) -> anyhow::Result<Set> {
    let scale = if plan.quick { 10 } else { 1 };
    let mut base = Vec::new();
    for (i, len) in BASE_LAYERS.iter().enumerate() {
        base.push(Content::new(mix(seed, i as u64), len / scale).await?);
    }
    let mut images = Vec::new();
    let first = format!("bench/app-{:02}", 0);
    for i in 0..IMAGES {
        let name = format!("bench/app-{i:02}");
        let repo = admin.repo(&name).await?;
        let mut conn = admin.conn().await?;
        let mut layers = Vec::new();
        for content in &base {
            // berth keeps one copy per digest anyway; a mount spares the
            // seeding the bytes.
            if i == 0
                || repo
                    .mount_blob(&mut conn, &content.digest, &first)
                    .await
                    .is_err()
            {
                push(&repo, &mut conn, content).await?;
            }
            layers.push(Blob {
                digest: content.digest.clone(),
                size: content.len,
            });
        }
        let own = Content::new(mix(seed, 100 + i as u64), OWN_LAYER / scale).await?;
        push(&repo, &mut conn, &own).await?;
        layers.push(Blob {
            digest: own.digest.clone(),
            size: own.len,
        });
        let diff_ids: Vec<&str> = layers.iter().map(|b| b.digest.as_str()).collect();
        let config = Bytes::from(serde_json::to_vec(&serde_json::json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"bench.image": name}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))?);
        let config_blob = Blob {
            digest: sha256_digest(&config),
            size: config.len() as u64,
        };
        repo.push_blob(
            &mut conn,
            ReqBody::Full(config.clone()),
            &config_blob.digest,
        )
        .await
        .context("seeding a config")?;
        let layer_descs: Vec<serde_json::Value> = layers
            .iter()
            .map(|b| serde_json::json!({"mediaType": OCI_LAYER_TAR, "digest": b.digest, "size": b.size}))
            .collect();
        let manifest = Bytes::from(serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_blob.digest, "size": config_blob.size},
            "layers": layer_descs,
        }))?);
        let manifest_digest = sha256_digest(&manifest);
        repo.put_manifest(&mut conn, TAG, OCI_MANIFEST, manifest)
            .await
            .with_context(|| format!("seeding {name}:{TAG}"))?;
        let mut blobs = vec![config_blob];
        blobs.extend(layers);
        images.push(Image {
            repo: name,
            manifest_digest,
            blobs,
        });
    }
    let mut seen = HashSet::new();
    let mut distinct = 0;
    let mut per_image = 0;
    for blob in images.iter().flat_map(|i| &i.blobs) {
        per_image += blob.size;
        if seen.insert(blob.digest.clone()) {
            distinct += blob.size;
        }
    }
    Ok(Set {
        images,
        distinct,
        per_image,
    })
}

async fn push(repo: &Repo, conn: &mut Conn, content: &Content) -> anyhow::Result<()> {
    repo.push_blob(conn, ReqBody::Stream(content.pieces()), &content.digest)
        .await
        .context("seeding a layer")
}

/// A TCP relay on loopback in front of one destination, counting what
/// clients send through it (requests, bodies, TLS probes: everything that
/// would cross the wire to the destination).
struct Meter {
    addr: SocketAddr,
    sent: Arc<AtomicU64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Meter {
    async fn start(to: SocketAddr) -> anyhow::Result<Meter> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        let accept = tokio::spawn(async move {
            // The connections live in the set, so aborting the accept
            // loop closes them too.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                match listener.accept().await {
                    Ok((client, _)) => {
                        conns.spawn(relay(client, to, counter.clone()));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
                while conns.try_join_next().is_some() {}
            }
        });
        Ok(Meter { addr, sent, accept })
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies both ways; counts as it goes rather than at the end, as berth
/// keeps idle connections to the destination open after an execution.
async fn relay(client: TcpStream, to: SocketAddr, sent: Arc<AtomicU64>) {
    let Ok(server) = TcpStream::connect(to).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; RELAY_BUF];
        loop {
            let n = client_rx.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            sent.fetch_add(n as u64, Ordering::Relaxed);
            server_tx.write_all(&buf[..n]).await?;
        }
        server_tx.shutdown().await
    };
    let down = async {
        tokio::io::copy(&mut server_rx, &mut client_tx).await?;
        client_tx.shutdown().await
    };
    let _: std::io::Result<((), ())> = tokio::try_join!(up, down);
}

/// A fresh destination: docker-registry with its access log on (to count
/// uploads and mounts), a meter in front.
async fn destination(bins: &Binaries, work: &Path) -> anyhow::Result<(Server, Meter)> {
    let server = Server::start_distribution_with(bins, work, "").await?;
    let meter = Meter::start(server.addr).await?;
    Ok((server, meter))
}

/// Completed blob uploads (`PUT .../blobs/uploads/...` 201) and mounts
/// (`POST ...?mount=` 201) in a destination's access log.
fn uploads_and_mounts(server: &Server) -> (usize, usize) {
    let log = std::fs::read_to_string(server.dir().join("docker-registry.log")).unwrap_or_default();
    let mut uploads = 0;
    let mut mounts = 0;
    for line in log.lines().filter(|l| l.contains("HTTP/1.1\" 201 ")) {
        if line.contains("\"PUT /v2/") && line.contains("/blobs/uploads/") {
            uploads += 1;
        } else if line.contains("\"POST /v2/") && line.contains("mount=") {
            mounts += 1;
        }
    }
    (uploads, mounts)
}

/// The id at the end of a `Location` header.
fn location_id(headers: &http::HeaderMap) -> anyhow::Result<i64> {
    headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .and_then(|l| l.rsplit('/').next())
        .and_then(|id| id.parse().ok())
        .context("id from Location")
}

/// berth's replication to `to` (the meter's address): an endpoint and a
/// push policy of `bench/**` made first, then timed from the POST that
/// starts the execution to the status that ends it.
async fn berth_copy(admin: &Registry, to: &Meter, run: usize) -> anyhow::Result<f64> {
    let registry = location_id(
        &admin
            .api_post(
                "/api/v2.0/registries",
                &serde_json::json!({"name": format!("dr-{run}"), "type": "docker-registry", "url": format!("http://{}", to.addr)}),
            )
            .await?,
    )?;
    let policy = location_id(
        &admin
            .api_post(
                "/api/v2.0/replication/policies",
                &serde_json::json!({
                    "name": format!("bench-{run}"),
                    "dest_registry": {"id": registry},
                    "filters": [{"type": "name", "value": "bench/**"}],
                }),
            )
            .await?,
    )?;
    let mut conn = admin.conn().await?;
    let started = Instant::now();
    let execution = location_id(
        &admin
            .api_post(
                "/api/v2.0/replication/executions",
                &serde_json::json!({"policy_id": policy}),
            )
            .await?,
    )?;
    let path = format!("/api/v2.0/replication/executions/{execution}");
    let status = loop {
        let (_, body) = admin.get_ok(&mut conn, &path).await?;
        let json: serde_json::Value = serde_json::from_slice(&body)?;
        let status = json["status"].as_str().unwrap_or_default().to_owned();
        if status != "InProgress" {
            break json;
        }
        if started.elapsed() > DEADLINE {
            bail!("berth's execution {execution} still in progress after {DEADLINE:?}");
        }
        tokio::time::sleep(POLL).await;
    };
    let secs = started.elapsed().as_secs_f64();
    let tasks = admin
        .get_ok(&mut conn, &format!("{path}/tasks?page_size=100"))
        .await
        .ok()
        .and_then(|(_, body)| serde_json::from_slice::<serde_json::Value>(&body).ok());
    if status["status"] != "Succeed" {
        bail!("berth's execution ended {status}; tasks: {tasks:?}");
    }
    if let Some(tasks) = tasks.as_ref().and_then(|t| t.as_array()) {
        let bytes: i64 = tasks.iter().filter_map(|t| t["bytes"].as_i64()).sum();
        eprintln!(
            "   berth: {} task(s), {:.3} GiB sent by its own count",
            tasks.len(),
            bytes as f64 / GIB
        );
    }
    Ok(secs)
}

/// `skopeo sync` of the set in one invocation: a YAML source listing the
/// 50 repositories and their tag on berth, the destination
/// `<meter>/bench`, where skopeo puts each repository under its last path
/// component (no `--scoped`), so `bench/app-07` lands as `bench/app-07`.
/// `--preserve-digests`: a docker destination asks skopeo to gzip
/// uncompressed layers on the fly, which would copy other artifacts
/// (other digests) than berth does, and burn a core on compression.
/// Its blob-info cache, which lets it mount a blob it has already pushed,
/// starts empty in a fresh home every run.
async fn skopeo_copy(source: &Server, set: &Set, to: &Meter, log: &Path) -> anyhow::Result<f64> {
    let creds: &Credentials = source.creds.as_ref().context("berth without credentials")?;
    let home = tempfile::Builder::new()
        .prefix("berth-skopeo-home-")
        .tempdir()?;
    let mut yaml = format!(
        "{}:\n  tls-verify: false\n  credentials:\n    username: {}\n    password: {}\n  images:\n",
        source.addr,
        serde_json::to_string(&creds.user)?,
        serde_json::to_string(&creds.password)?,
    );
    for image in &set.images {
        yaml.push_str(&format!("    {}: [\"{TAG}\"]\n", image.repo));
    }
    let sync_yaml = home.path().join("sync.yml");
    std::fs::write(&sync_yaml, yaml)?;
    let authfile = home.path().join("auth.json");
    std::fs::write(&authfile, br#"{"auths":{}}"#)?;
    let as_root = nix::unistd::geteuid().is_root();
    let mut cmd = if as_root {
        for path in [home.path(), sync_yaml.as_path(), authfile.as_path()] {
            std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY))
                .with_context(|| format!("chown {}", path.display()))?;
        }
        let mut cmd = tokio::process::Command::new("setpriv");
        cmd.arg(format!("--reuid={NOBODY}"))
            .arg(format!("--regid={NOBODY}"))
            .arg("--clear-groups")
            .arg("--")
            .arg("skopeo");
        cmd
    } else {
        tokio::process::Command::new("skopeo")
    };
    let out = std::fs::File::create(log)?;
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_RUNTIME_DIR", home.path())
        .arg("--insecure-policy")
        .arg("sync")
        .arg("--src")
        .arg("yaml")
        .arg("--dest")
        .arg("docker")
        .arg("--dest-tls-verify=false")
        .arg("--preserve-digests")
        .arg("--authfile")
        .arg(&authfile)
        .arg(&sync_yaml)
        .arg(format!("{}/bench", to.addr))
        .current_dir(home.path())
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .context("starting skopeo (apt-get install skopeo)")?;
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .map_err(|_| anyhow!("skopeo sync timed out after {DEADLINE:?}"))??;
    let secs = started.elapsed().as_secs_f64();
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail = &text[text.len().saturating_sub(2000)..];
        bail!("skopeo sync failed ({status}): {}", tail.trim());
    }
    let cache = home
        .path()
        .join("data/containers/cache/blob-info-cache-v1.boltdb");
    if !cache.exists() {
        eprintln!("   skopeo: no blob-info cache in its fresh home (memory-only?)");
    }
    Ok(secs)
}

/// Every image at the destination (asked directly, not through the
/// meter): the manifest by tag, byte for byte the source's, and each blob
/// it names, with its size.
async fn verify(dest: &Server, set: &Set, who: &str) -> anyhow::Result<()> {
    let mut conn = Conn::open(dest.addr).await?;
    for image in &set.images {
        let req = Request::get(format!("/v2/{}/manifests/{TAG}", image.repo))
            .header(ACCEPT, OCI_MANIFEST)
            .body(ReqBody::Empty)?;
        let resp = conn.send(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        if status != StatusCode::OK {
            bail!(
                "{who}: {}:{TAG} missing at the destination ({status})",
                image.repo
            );
        }
        let digest = sha256_digest(&body);
        if digest != image.manifest_digest {
            bail!(
                "{who}: {}:{TAG} is {digest} at the destination, {} at the source",
                image.repo,
                image.manifest_digest
            );
        }
        for blob in &image.blobs {
            let req = Request::builder()
                .method(Method::HEAD)
                .uri(format!("/v2/{}/blobs/{}", image.repo, blob.digest))
                .body(ReqBody::Empty)?;
            let resp = conn.send(req).await?;
            let len = resp
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if resp.status() != StatusCode::OK || len != Some(blob.size) {
                bail!(
                    "{who}: blob {} of {} at the destination: {}, length {len:?} (want {})",
                    blob.digest,
                    image.repo,
                    resp.status(),
                    blob.size
                );
            }
        }
    }
    Ok(())
}

/// One tool's copy to a fresh destination, verified.
async fn one_copy(
    berth_tool: bool,
    source: &Server,
    admin: &Registry,
    set: &Set,
    bins: &Binaries,
    work: &Path,
    run: usize,
) -> anyhow::Result<Copy> {
    let (dest, meter) = destination(bins, work).await?;
    // berth's endpoint creation may ping the destination: only what
    // follows the start counts.
    let (secs, before) = if berth_tool {
        let before = meter.sent();
        (berth_copy(admin, &meter, run).await?, before)
    } else {
        let log = work.join(format!("skopeo-run-{run}.log"));
        (skopeo_copy(source, set, &meter, &log).await?, 0)
    };
    let bytes = meter.sent() - before;
    let who = if berth_tool { "berth" } else { "skopeo" };
    verify(&dest, set, who).await?;
    // Let the access log's last lines land.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (uploads, mounts) = uploads_and_mounts(&dest);
    eprintln!(
        "   {who}: {secs:.1} s, {:.3} GiB sent, {uploads} blob uploads, {mounts} mounts",
        bytes as f64 / GIB
    );
    Ok(Copy {
        secs,
        bytes,
        uploads,
        mounts,
    })
}

pub async fn run(plan: &Plan) -> anyhow::Result<String> {
    let work = tempfile::Builder::new()
        .prefix("berth-replication-")
        .tempdir()?;
    let bins = Binaries::locate()?.snapshot_berth(work.path())?;
    let source = Server::start(Kind::Berth, &bins, work.path()).await?;
    let admin = Registry::new(source.addr, source.creds.clone());
    eprintln!("== seeding {IMAGES} images on berth");
    let started = Instant::now();
    let set = seed(&admin, plan, rand::random()).await?;
    eprintln!(
        "   {:.2} GiB distinct in {:.0} s",
        set.distinct as f64 / GIB,
        started.elapsed().as_secs_f64()
    );
    let mut berth = Vec::new();
    let mut skopeo = Vec::new();
    let mut loads = Vec::new();
    for run in 0..plan.runs {
        eprintln!("== replication run {}/{}", run + 1, plan.runs);
        loads.push(loadavg());
        // Alternate which tool goes first.
        for berth_tool in [run % 2 == 0, run % 2 != 0] {
            let copy = one_copy(berth_tool, &source, &admin, &set, &bins, work.path(), run).await?;
            if berth_tool {
                berth.push(copy);
            } else {
                skopeo.push(copy);
            }
        }
    }
    drop(source);
    Ok(render(plan, &set, &berth, &skopeo, &loads))
}

fn render(plan: &Plan, set: &Set, berth: &[Copy], skopeo: &[Copy], loads: &[f64]) -> String {
    let med = |copies: &[Copy], f: &dyn Fn(&Copy) -> f64| {
        median(&copies.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let secs = |c: &Copy| c.secs;
    let gib = |c: &Copy| c.bytes as f64 / GIB;
    // Manifests, requests and TLS probes; a shared base layer sent twice
    // would add its 40 or 60 MiB here.
    let beyond = |c: &Copy| (c.bytes as f64 - set.distinct as f64) / MIB as f64;
    let uploads = |c: &Copy| c.uploads as f64;
    let mounts = |c: &Copy| c.mounts as f64;
    let distinct = set.distinct as f64 / GIB;
    let scale = if plan.quick { 10 } else { 1 };
    let blobs: HashSet<&str> = set
        .images
        .iter()
        .flat_map(|i| i.blobs.iter().map(|b| b.digest.as_str()))
        .collect();
    let mut out = format!(
        "## Replication\n\n\
         {IMAGES} images in {IMAGES} repositories (`bench/app-00`..`bench/app-{:02}`, tag `{TAG}`) on berth, \
         each an OCI manifest of a config, two base layers all share ({} + {} MiB) and one of its own \
         ({:.1} MiB): {} distinct blobs, {distinct:.2} GiB ({:.2} GiB if each image were copied on its own). \
         Copied to an empty docker-registry by berth's replication (push policy `bench/**`, timed from \
         starting the execution to its end status) and by one `skopeo sync --src yaml --dest docker \
         --preserve-digests` (fresh blob-info cache), each through a relay counting the bytes sent to \
         the destination. {} run(s), medians; load average {}.\n\n\
         | tool | wall time (s) | time / skopeo's | bytes sent to the destination (GiB) | beyond the distinct blobs (MiB) | blobs uploaded | blobs mounted |\n\
         |---|--:|--:|--:|--:|--:|--:|\n",
        IMAGES - 1,
        BASE_LAYERS[0] / scale / MIB,
        BASE_LAYERS[1] / scale / MIB,
        (OWN_LAYER / scale) as f64 / MIB as f64,
        blobs.len(),
        set.per_image as f64 / GIB,
        plan.runs,
        loads
            .iter()
            .map(|l| format!("{l:.1}"))
            .collect::<Vec<_>>()
            .join(" · "),
    );
    let skopeo_secs = med(skopeo, &secs);
    for (name, copies) in [("berth replication", berth), ("skopeo sync", skopeo)] {
        out.push_str(&format!(
            "| {name} | {:.1} | {:.2}× | {:.3} | {:+.1} | {:.0} | {:.0} |\n",
            med(copies, &secs),
            med(copies, &secs) / skopeo_secs,
            med(copies, &gib),
            med(copies, &beyond),
            med(copies, &uploads),
            med(copies, &mounts),
        ));
    }
    out.push_str(
        "\nEvery run (seconds, GiB sent):\n\n\
         | run | berth s | berth GiB | skopeo s | skopeo GiB |\n|--:|--:|--:|--:|--:|\n",
    );
    for (i, (b, s)) in berth.iter().zip(skopeo).enumerate() {
        out.push_str(&format!(
            "| {} | {:.1} | {:.3} | {:.1} | {:.3} |\n",
            i + 1,
            b.secs,
            gib(b),
            s.secs,
            gib(s)
        ));
    }
    out
}

/// The 1-minute load average: other work on the machine skews results.
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}
