//! The servers under test, each started on a free loopback port with a
//! fresh temp dir, and stopped (then their data deleted) on drop:
//! berth; Debian's docker-registry (distribution 2.8); nginx configured
//! like Harbor's proxy in front of a docker-registry.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::client::{Conn, Credentials, Registry};
use crate::procfs::ProcessSet;

/// How long a server may take to answer `GET /v2/`.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM before SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Berth,
    /// berth with its metadata on PostgreSQL (a server the harness starts;
    /// its CPU and memory are not counted as berth's).
    BerthPostgres,
    /// Three berth instances on one PostgreSQL database and data
    /// directory, behind haproxy (round robin).
    BerthCluster,
    /// berth with blobs in an object store (Garage, started by the
    /// harness, not counted) and metadata on PostgreSQL.
    BerthS3,
    /// The same, answering blob GETs with a redirect to the store.
    BerthS3Redirect,
    Distribution,
    NginxDistribution,
    /// distribution with its s3 driver on the same Garage.
    DistributionS3,
    /// The same, redirecting blob GETs to the store (its default).
    DistributionS3Redirect,
}

impl Kind {
    /// The servers a default run measures.
    pub const ALL: [Kind; 3] = [Kind::Berth, Kind::Distribution, Kind::NginxDistribution];
    /// Every server `--servers` can name.
    pub const EVERY: [Kind; 9] = [
        Kind::Berth,
        Kind::BerthPostgres,
        Kind::BerthCluster,
        Kind::BerthS3,
        Kind::BerthS3Redirect,
        Kind::Distribution,
        Kind::NginxDistribution,
        Kind::DistributionS3,
        Kind::DistributionS3Redirect,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Berth => "berth",
            Kind::BerthPostgres => "berth+postgres",
            Kind::BerthCluster => "3xberth+haproxy",
            Kind::BerthS3 => "berth+s3",
            Kind::BerthS3Redirect => "berth+s3+redirect",
            Kind::Distribution => "distribution",
            Kind::DistributionS3 => "distribution+s3",
            Kind::DistributionS3Redirect => "distribution+s3+redirect",
            Kind::NginxDistribution => "nginx+distribution",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Where the server binaries are.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub berth: PathBuf,
    pub registry: PathBuf,
    pub nginx: PathBuf,
    /// Extra environment for berth (settings a scenario needs).
    pub berth_env: Vec<(String, String)>,
}

impl Binaries {
    /// `BERTH_BIN`, else `$CARGO_TARGET_DIR/release/berth`, else `berth`
    /// beside this executable; Debian's paths for the others.
    pub fn locate() -> anyhow::Result<Binaries> {
        let berth = if let Some(bin) = std::env::var_os("BERTH_BIN") {
            PathBuf::from(bin)
        } else if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
            PathBuf::from(dir).join("release").join("berth")
        } else {
            std::env::current_exe()?
                .parent()
                .ok_or_else(|| anyhow!("executable without a directory"))?
                .join("berth")
        };
        let bins = Binaries {
            berth,
            registry: PathBuf::from("/usr/bin/docker-registry"),
            nginx: PathBuf::from("/usr/sbin/nginx"),
            berth_env: Vec::new(),
        };
        for (what, path, hint) in [
            (
                "berth",
                &bins.berth,
                "build it: cargo build --release -p berth-gateway (or set BERTH_BIN)",
            ),
            (
                "docker-registry",
                &bins.registry,
                "apt-get install docker-registry",
            ),
            ("nginx", &bins.nginx, "apt-get install nginx"),
        ] {
            if !path.is_file() {
                bail!("{what} not found at {}: {hint}", path.display());
            }
        }
        Ok(bins)
    }

    /// Copies the berth binary into `dir` and uses the copy, so that a
    /// rebuild during the benchmark does not change what is measured.
    pub fn snapshot_berth(mut self, dir: &Path) -> anyhow::Result<Binaries> {
        let copy = dir.join("berth");
        std::fs::copy(&self.berth, &copy)
            .with_context(|| format!("copying {}", self.berth.display()))?;
        self.berth = copy;
        Ok(self)
    }
}

/// One started process, its output going to a log file.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
    /// What makes it exit promptly: Pingora drains for its grace period
    /// on SIGTERM but stops at once on SIGINT; nginx and docker-registry
    /// stop on SIGTERM.
    stop_signal: Signal,
}

/// A running server. Dropping it stops every process and deletes its dir.
pub struct Server {
    pub kind: Kind,
    pub addr: SocketAddr,
    pub creds: Option<Credentials>,
    procs: Vec<Proc>,
    /// distribution's `storage:` driver section, when not its filesystem.
    storage: Option<String>,
    // Declared last: removed after the processes are stopped.
    dir: TempDir,
}

impl Server {
    pub async fn start(kind: Kind, bins: &Binaries, parent: &Path) -> anyhow::Result<Server> {
        let mut last = None;
        // A free port may be taken between our probe and the server's
        // bind: try again with another.
        for _ in 0..3 {
            match Server::try_start(kind, bins, parent).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("not started")))
    }

    async fn try_start(kind: Kind, bins: &Binaries, parent: &Path) -> anyhow::Result<Server> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-", kind.label()))
            .tempdir_in(parent)?;
        let mut server = Server {
            kind,
            addr: free_addr()?,
            creds: None,
            procs: Vec::new(),
            storage: None,
            dir,
        };
        match kind {
            Kind::Berth => server.start_berth(bins, &[]).await?,
            Kind::BerthPostgres => {
                let url = postgres_database()?;
                server
                    .start_berth(bins, &[("BERTH_DATABASE__URL", url.as_str())])
                    .await?
            }
            Kind::BerthCluster => server.start_cluster(bins).await?,
            Kind::BerthS3 | Kind::BerthS3Redirect => {
                let url = postgres_database()?;
                let mut env = garage()?.env(&object_prefix("berth"));
                // The driver's default part size, as distribution's
                // chunksize below is its own default (10 MiB).
                env.push(("BERTH_STORAGE__S3__PART_SIZE".into(), "16MiB".into()));
                env.push(("BERTH_DATABASE__URL".into(), url));
                if kind == Kind::BerthS3Redirect {
                    env.push(("BERTH_STORAGE__REDIRECT".into(), "true".into()));
                }
                let env: Vec<(&str, &str)> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                server.start_berth(bins, &env).await?
            }
            Kind::Distribution => {
                let addr = server.addr;
                server.start_registry(bins, addr, "").await?;
            }
            Kind::NginxDistribution => {
                let upstream = free_addr()?;
                server.start_registry(bins, upstream, "").await?;
                server.start_nginx(bins, upstream).await?;
            }
            Kind::DistributionS3 | Kind::DistributionS3Redirect => {
                let addr = server.addr;
                let redirect = kind == Kind::DistributionS3Redirect;
                server.storage = Some(distribution_s3(garage()?, redirect)?);
                server.start_registry(bins, addr, "").await?;
            }
        }
        Ok(server)
    }

    /// All processes of this server, nginx's workers included.
    pub fn processes(&self) -> ProcessSet {
        ProcessSet::new(self.procs.iter().map(|p| p.child.id()).collect())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    async fn start_berth(&mut self, bins: &Binaries, env: &[(&str, &str)]) -> anyhow::Result<()> {
        let password = format!("bench-{:016x}", rand::random::<u64>());
        self.spawn_berth(bins, self.addr, &password, env)?;
        self.creds = Some(Credentials {
            user: "admin".into(),
            password,
        });
        self.wait_ready(self.addr).await?;
        self.create_bench_project().await
    }

    /// One `berth serve` on `addr` with this server's data directory.
    fn spawn_berth(
        &mut self,
        bins: &Binaries,
        addr: SocketAddr,
        password: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let data = self.dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        let mut cmd = Command::new(&bins.berth);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("BERTH_") {
                cmd.env_remove(key);
            }
        }
        cmd.arg("serve")
            .env("BERTH_LISTEN", addr.to_string())
            .env("BERTH_DATA_DIR", &data)
            .env("BERTH_ADMIN_PASSWORD", password)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .envs(bins.berth_env.iter().map(|(k, v)| (k, v)));
        self.spawn("berth", cmd)
    }

    /// Three instances on one PostgreSQL database and data directory,
    /// haproxy in front on this server's address.
    async fn start_cluster(&mut self, bins: &Binaries) -> anyhow::Result<()> {
        let url = postgres_database()?;
        let password = format!("bench-{:016x}", rand::random::<u64>());
        let mut backends = String::new();
        for i in 0..3 {
            let addr = free_addr()?;
            self.spawn_berth(
                bins,
                addr,
                &password,
                &[("BERTH_DATABASE__URL", url.as_str())],
            )?;
            self.wait_ready(addr).await?;
            backends.push_str(&format!("    server b{i} {addr} check inter 1s\n"));
        }
        let config = self.dir.path().join("haproxy.cfg");
        std::fs::write(
            &config,
            format!(
                "global\n    maxconn 4096\n\
                 defaults\n    mode http\n    timeout connect 2s\n    timeout client 300s\n\
                 \x20   timeout server 300s\n    option redispatch\n    retries 3\n\
                 frontend registry\n    bind {}\n    default_backend berth\n\
                 backend berth\n    balance roundrobin\n    option httpchk GET /readyz\n{backends}",
                self.addr
            ),
        )?;
        let mut cmd = Command::new("haproxy");
        cmd.arg("-db").arg("-f").arg(&config);
        self.spawn("haproxy", cmd)?;
        self.creds = Some(Credentials {
            user: "admin".into(),
            password,
        });
        self.wait_ready(self.addr).await?;
        self.create_bench_project().await
    }

    async fn create_bench_project(&self) -> anyhow::Result<()> {
        // The scenarios push to `bench/...`, and berth refuses pushes to a
        // project that does not exist.
        Registry::new(self.addr, self.creds.clone())
            .create_project("bench")
            .await
    }

    /// distribution with extra configuration (`proxy:` for its
    /// pull-through mode) and its access log on, so requests can be counted
    /// with [`Server::access_count`].
    pub async fn start_distribution_with(
        bins: &Binaries,
        parent: &Path,
        extra: &str,
    ) -> anyhow::Result<Server> {
        let dir = tempfile::Builder::new()
            .prefix("distribution-")
            .tempdir_in(parent)?;
        let mut server = Server {
            kind: Kind::Distribution,
            addr: free_addr()?,
            creds: None,
            procs: Vec::new(),
            storage: None,
            dir,
        };
        let addr = server.addr;
        let extra = format!("{extra}\nlog:\n  level: warn\n  accesslog:\n    disabled: false\n");
        server.start_registry(bins, addr, &extra).await?;
        Ok(server)
    }

    /// Access-log lines of distribution that contain `needle`.
    pub fn access_count(&self, needle: &str) -> usize {
        self.procs
            .iter()
            .filter(|p| p.name == "docker-registry")
            .map(|p| {
                std::fs::read_to_string(&p.log)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains(needle) && l.contains("HTTP/1.1\" 200"))
                    .count()
            })
            .sum()
    }

    async fn start_registry(
        &mut self,
        bins: &Binaries,
        addr: SocketAddr,
        extra: &str,
    ) -> anyhow::Result<()> {
        let root = self.dir.path().join("registry");
        std::fs::create_dir_all(&root)?;
        let config = self.dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1
{log}storage:
{driver}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: {addr}
  secret: bench-{secret:016x}
  headers:
    X-Content-Type-Options: [nosniff]
",
                driver = self.storage.clone().unwrap_or_else(|| format!(
                    "  filesystem:\n    rootdirectory: {}",
                    root.display()
                )),
                secret = rand::random::<u64>(),
                log = if extra.is_empty() {
                    "log:\n  level: warn\n  accesslog:\n    disabled: true\n".to_owned()
                } else {
                    format!("{}\n", extra.trim())
                },
            ),
        )?;
        let mut cmd = Command::new(&bins.registry);
        // Its own settings, and the AWS SDK's (a CA bundle in the
        // environment makes the s3 driver refuse to start), stay out.
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("REGISTRY_") || key_text.starts_with("AWS_") {
                cmd.env_remove(key);
            }
        }
        cmd.arg("serve").arg(&config);
        self.spawn("docker-registry", cmd)?;
        self.wait_ready(addr).await
    }

    async fn start_nginx(&mut self, bins: &Binaries, upstream: SocketAddr) -> anyhow::Result<()> {
        let prefix = self.dir.path().join("nginx");
        std::fs::create_dir_all(&prefix)?;
        let p = prefix.display();
        // Workers of a root master run as `nobody` unless told otherwise;
        // they would not reach the temp dir.
        let user = if nix::unistd::geteuid().is_root() {
            "user root;"
        } else {
            ""
        };
        // Harbor's proxy settings: no body size limit, no buffering in
        // either direction, HTTP/1.1 with keepalive to the upstream.
        let conf = format!(
            "{user}
worker_processes auto;
error_log {p}/error.log warn;
pid {p}/nginx.pid;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    sendfile on;
    tcp_nodelay on;
    server_tokens off;
    client_body_temp_path {p}/client_body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    upstream registry {{
        server {upstream};
        keepalive 256;
    }}
    server {{
        listen {addr};
        client_max_body_size 0;
        chunked_transfer_encoding on;
        location / {{
            proxy_pass http://registry;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $http_host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
",
            addr = self.addr,
        );
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let mut cmd = Command::new(&bins.nginx);
        cmd.arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(format!("{p}/"))
            .arg("-e")
            .arg(prefix.join("error.log"))
            .arg("-g")
            .arg("daemon off;");
        self.spawn("nginx", cmd)?;
        self.wait_ready(self.addr).await
    }

    fn spawn(&mut self, name: &'static str, mut cmd: Command) -> anyhow::Result<()> {
        let log = self.dir.path().join(format!("{name}.log"));
        let out = File::create(&log)?;
        cmd.current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        let stop_signal = if name == "berth" {
            Signal::SIGINT
        } else {
            Signal::SIGTERM
        };
        self.procs.push(Proc {
            name,
            child,
            log,
            stop_signal,
        });
        Ok(())
    }

    /// Polls `GET /v2/` until it answers 200 or 401, with a deadline.
    async fn wait_ready(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_DEADLINE;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            for p in &mut self.procs {
                if let Some(status) = p.child.try_wait()? {
                    bail!(
                        "{} exited ({status}) before answering GET /v2/; log:\n{}",
                        p.name,
                        tail(&p.log)
                    );
                }
            }
            match probe(addr).await {
                Ok(200 | 401) => return Ok(()),
                Ok(status) => last = format!("status {status}"),
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(POLL).await;
        }
        bail!(
            "{} did not answer GET /v2/ at {addr} within {READY_DEADLINE:?} (last: {last}); logs:\n{}",
            self.kind,
            self.log_tails()
        )
    }

    /// The end of each process's log, for error messages.
    pub fn log_tails(&self) -> String {
        self.procs
            .iter()
            .map(|p| format!("--- {} ---\n{}", p.name, tail(&p.log)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The stop signal to every process (newest first, so nginx goes
    /// before its upstream), a bounded wait, then SIGKILL to whatever is
    /// left, nginx's workers included.
    fn stop(&mut self) {
        let all = self.processes().pids();
        for p in self.procs.iter().rev() {
            if let Ok(pid) = i32::try_from(p.child.id()) {
                let _ = kill(Pid::from_raw(pid), p.stop_signal);
            }
        }
        let deadline = Instant::now() + STOP_DEADLINE;
        while Instant::now() < deadline {
            let running = self
                .procs
                .iter_mut()
                .map(|p| p.child.try_wait())
                .filter(|status| matches!(status, Ok(None)))
                .count();
            if running == 0 {
                break;
            }
            std::thread::sleep(POLL);
        }
        for pid in all {
            if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                if let Ok(pid) = i32::try_from(pid) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
        for p in &mut self.procs {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        self.procs.clear();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One `GET /v2/`: its status.
async fn probe(addr: SocketAddr) -> anyhow::Result<u16> {
    let mut conn = Conn::open(addr).await?;
    let req = http::Request::get("/v2/").body(crate::client::ReqBody::Empty)?;
    let resp = tokio::time::timeout(Duration::from_secs(2), conn.send(req))
        .await
        .map_err(|_| anyhow!("timed out"))??;
    Ok(resp.status().as_u16())
}

/// A loopback address with a port nobody listens on right now.
fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?)
}

/// The last 4 KiB of a log file.
fn tail(path: &Path) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::from("(no log)");
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The Garage this process starts (once, shared; see
/// `berth_tests::garage`).
fn garage() -> anyhow::Result<&'static berth_tests::garage::Garage> {
    std::panic::catch_unwind(berth_tests::garage::shared).map_err(|_| {
        anyhow!("cannot start Garage (cargo install garage --locked --root /var/tmp/garage-bin)")
    })
}

/// A key prefix of its own for one server in the shared bucket.
fn object_prefix(who: &str) -> String {
    format!("bench-{who}-{:016x}/", rand::random::<u64>())
}

/// distribution's s3 driver on the harness's Garage: path-style requests
/// to its endpoint, its default chunk size (10 MiB), and blob GETs either
/// streamed by the registry or redirected to the store (its default).
fn distribution_s3(garage: &berth_tests::garage::Garage, redirect: bool) -> anyhow::Result<String> {
    use berth_tests::garage::{ACCESS_KEY, BUCKET, REGION, SECRET_KEY};
    Ok(format!(
        "  s3:\n    accesskey: {ACCESS_KEY}\n    secretkey: {SECRET_KEY}\n    region: {REGION}\n\
         \x20   regionendpoint: {}\n    bucket: {BUCKET}\n    rootdirectory: /{}\n\
         \x20   secure: false\n    v4auth: true\n    chunksize: 10485760\n  redirect:\n    disable: {}",
        garage.endpoint(),
        object_prefix("distribution").trim_end_matches('/'),
        !redirect,
    ))
}

/// A fresh database on the PostgreSQL server this process starts (once,
/// shared by every server that needs one; see `berth_tests::postgres`).
fn postgres_database() -> anyhow::Result<String> {
    let name = format!("bench_{:016x}", rand::random::<u64>());
    std::panic::catch_unwind(|| berth_tests::postgres::shared().create_database(&name))
        .map_err(|_| anyhow!("cannot start PostgreSQL (apt-get install postgresql)"))
}
