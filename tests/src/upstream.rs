//! Upstream registries for the pull-through cache and fronting tests:
//! Debian's `docker-registry` (distribution 2.8) on a free port, with or
//! without htpasswd auth and with its access log on, so a test can count
//! the requests that reached it; and a tiny HTTP server that answers like a
//! registry but sends wrong bytes for one blob (a corrupt upstream), or
//! the right bytes slowly (a stalled one), halting mid-layer until told.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::server::{free_port, POLL};

const BINARY: &str = "/usr/bin/docker-registry";

/// A running `docker-registry serve`.
pub struct DockerRegistry {
    dir: TempDir,
    port: u16,
    log: PathBuf,
    child: Option<Child>,
    credentials: Option<(String, String)>,
}

impl DockerRegistry {
    /// Without authentication.
    pub fn start() -> DockerRegistry {
        DockerRegistry::launch(None)
    }

    /// With htpasswd authentication (HTTP Basic) for one user.
    pub fn start_with_htpasswd(user: &str, password: &str) -> DockerRegistry {
        DockerRegistry::launch(Some((user.to_owned(), password.to_owned())))
    }

    fn launch(credentials: Option<(String, String)>) -> DockerRegistry {
        assert!(
            Path::new(BINARY).is_file(),
            "{BINARY} is missing: apt-get install docker-registry"
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-upstream-")
            .tempdir()
            .expect("temp dir");
        let mut registry = DockerRegistry {
            port: free_port(),
            log: dir.path().join("registry.log"),
            dir,
            child: None,
            credentials,
        };
        registry.write_config();
        registry.spawn();
        registry
    }

    fn write_config(&self) {
        let root = self.dir.path().join("storage");
        std::fs::create_dir_all(&root).expect("storage dir");
        let auth = match &self.credentials {
            Some((user, password)) => {
                let hash = bcrypt::hash(password, 5).expect("bcrypt");
                let file = self.dir.path().join("htpasswd");
                std::fs::write(&file, format!("{user}:{hash}\n")).expect("htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: upstream\n    path: {}\n",
                    file.display()
                )
            }
            None => String::new(),
        };
        let config = format!(
            "version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
{auth}http:
  addr: 127.0.0.1:{port}
  secret: upstream-{secret:016x}
",
            root = root.display(),
            port = self.port,
            secret = rand::random::<u64>(),
        );
        std::fs::write(self.dir.path().join("config.yml"), config).expect("config");
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        let mut cmd = Command::new(BINARY);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("REGISTRY_") {
                cmd.env_remove(key);
            }
        }
        cmd.arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        self.child = Some(cmd.spawn().expect("start docker-registry"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {}: {}",
                self.port,
                self.log_text()
            );
            std::thread::sleep(POLL);
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, as image references name it.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many access-log lines record `METHOD path` (exact path, no query).
    pub fn requests(&self, method: &str, path: &str) -> usize {
        let needle = format!("\"{method} {path} HTTP/");
        let needle_q = format!("\"{method} {path}?");
        self.log_text()
            .lines()
            .filter(|l| l.contains(&needle) || l.contains(&needle_q))
            .count()
    }

    /// Stops the process (the data stays, for `resume`).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
    }

    /// Starts it again on the same port and data.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.spawn();
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!(
                "--- docker-registry log (last lines) ---\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        self.stop();
    }
}

/// A registry that is lying: it serves one manifest and its config
/// honestly and a layer whose bytes do not match its digest. It counts
/// the layer requests.
pub struct CorruptUpstream {
    pub port: u16,
    pub layer_gets: Arc<AtomicUsize>,
    pub manifest: Vec<u8>,
    pub layer_digest: String,
    gate: Arc<Gate>,
}

/// Whether layer bodies may go past their first half.
#[derive(Default)]
struct Gate {
    held: Mutex<bool>,
    opened: Condvar,
    /// Layer bodies that reached the gate while it was held.
    waiting: AtomicUsize,
}

impl Gate {
    fn pass(&self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if *held {
            self.waiting.fetch_add(1, Ordering::SeqCst);
        }
        while *held {
            held = self.opened.wait(held).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl CorruptUpstream {
    /// Serves `repo:tag` with the given manifest, config and layer digest
    /// (whose bytes are replaced with garbage of the same length).
    pub fn start(
        repo: &str,
        tag: &str,
        manifest: Vec<u8>,
        media_type: &str,
        config: (String, Vec<u8>),
        layer: (String, usize),
    ) -> CorruptUpstream {
        let bytes = vec![0x5a; layer.1];
        CorruptUpstream::serving(repo, tag, manifest, media_type, config, (layer.0, bytes))
    }

    /// Like `start` but honest: the layer is served with `layer.1` as its
    /// bytes (for tests that only want `hold_layers`).
    pub fn serving(
        repo: &str,
        tag: &str,
        manifest: Vec<u8>,
        media_type: &str,
        config: (String, Vec<u8>),
        layer: (String, Vec<u8>),
    ) -> CorruptUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let layer_gets = Arc::new(AtomicUsize::new(0));
        let manifest_digest = crate::content::sha256_digest(&manifest);
        let routes = Arc::new(Routes {
            manifest_paths: vec![
                format!("/v2/{repo}/manifests/{tag}"),
                format!("/v2/{repo}/manifests/{manifest_digest}"),
            ],
            manifest: manifest.clone(),
            media_type: media_type.to_owned(),
            manifest_digest,
            config_path: format!("/v2/{repo}/blobs/{}", config.0),
            config: config.1,
            layer_path: format!("/v2/{repo}/blobs/{}", layer.0),
            layer: layer.1,
        });
        let counter = layer_gets.clone();
        let gate = Arc::new(Gate::default());
        let shared = gate.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let routes = routes.clone();
                let counter = counter.clone();
                let gate = shared.clone();
                std::thread::spawn(move || serve(stream, &routes, &counter, &gate));
            }
        });
        CorruptUpstream {
            port,
            layer_gets,
            manifest,
            layer_digest: layer.0,
            gate,
        }
    }

    /// From now on a layer GET sends the first half of the body, then
    /// waits for `release_layers`.
    pub fn hold_layers(&self) {
        *self.gate.held.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }

    /// Lets held layer bodies (and later ones) finish.
    pub fn release_layers(&self) {
        *self.gate.held.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.gate.opened.notify_all();
    }

    /// How many layer bodies have sent their first half and wait.
    pub fn layers_waiting(&self) -> usize {
        self.gate.waiting.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

struct Routes {
    manifest_paths: Vec<String>,
    manifest: Vec<u8>,
    media_type: String,
    manifest_digest: String,
    config_path: String,
    config: Vec<u8>,
    layer_path: String,
    layer: Vec<u8>,
}

fn serve(stream: TcpStream, routes: &Routes, layer_gets: &AtomicUsize, gate: &Gate) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut content_length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    content_length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; content_length];
        let _ = reader.read_exact(&mut body);
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("");
        let path = parts.next().unwrap_or("").split('?').next().unwrap_or("");
        let head = method == "HEAD";
        let is_layer = path == routes.layer_path;
        let (status, content_type, digest, data): (&str, &str, Option<&str>, Vec<u8>) =
            if path == "/v2/" || path == "/v2" {
                ("200 OK", "application/json", None, b"{}".to_vec())
            } else if routes.manifest_paths.iter().any(|p| p == path) {
                (
                    "200 OK",
                    &routes.media_type,
                    Some(&routes.manifest_digest),
                    routes.manifest.clone(),
                )
            } else if path == routes.config_path {
                (
                    "200 OK",
                    "application/octet-stream",
                    None,
                    routes.config.clone(),
                )
            } else if path == routes.layer_path {
                if !head {
                    layer_gets.fetch_add(1, Ordering::SeqCst);
                }
                // Same length, wrong bytes (unless serving honestly).
                (
                    "200 OK",
                    "application/octet-stream",
                    None,
                    routes.layer.clone(),
                )
            } else {
                (
                    "404 Not Found",
                    "application/json",
                    None,
                    br#"{"errors":[{"code":"NOT_FOUND","message":"no"}]}"#.to_vec(),
                )
            };
        let mut header = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nDocker-Distribution-API-Version: registry/2.0\r\n",
            data.len()
        );
        if let Some(d) = digest {
            header.push_str(&format!("Docker-Content-Digest: {d}\r\n"));
        }
        header.push_str("\r\n");
        if out.write_all(header.as_bytes()).is_err() {
            return;
        }
        if head {
            continue;
        }
        let half = if is_layer { data.len() / 2 } else { 0 };
        if out.write_all(&data[..half]).is_err() || out.flush().is_err() {
            return;
        }
        if is_layer {
            gate.pass();
        }
        if out.write_all(&data[half..]).is_err() {
            return;
        }
    }
}
