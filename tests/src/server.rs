//! A `berth serve` process on a free port with its own data directory.
//!
//! The process's stdout and stderr go to a log file beside the data; when a
//! test panics while a [`Berth`] is alive, the tail of that log is printed.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::content::random_suffix;
use crate::registry::{http_client_trusting, Registry};

/// Where the berths of a test process keep their metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite and files under the data directory: berth's default.
    Embedded,
    /// A database of the process's PostgreSQL server ([`crate::postgres`]).
    Postgres,
    /// PostgreSQL, and blobs in the process's Garage ([`crate::garage`]):
    /// the scale-out configuration.
    PostgresObjects,
}

/// The backend of this test process. Test binaries whose name starts with
/// `postgres_` run the suites they include on PostgreSQL, those starting
/// with `s3_` on PostgreSQL and an object store; all others on the
/// embedded default.
pub fn backend() -> Backend {
    static BACKEND: OnceLock<Backend> = OnceLock::new();
    *BACKEND.get_or_init(|| {
        let exe = std::env::current_exe().unwrap_or_default();
        let name = exe.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("postgres_") {
            Backend::Postgres
        } else if name.starts_with("s3_") {
            Backend::PostgresObjects
        } else {
            Backend::Embedded
        }
    })
}

/// How long berth may take to answer `GET /v2/` after it is started.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// How long a stop (SIGINT) may take before the process is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(15);
/// Polling interval of every wait: the waits themselves have deadlines.
pub const POLL: Duration = Duration::from_millis(20);

pub struct Berth {
    /// Holds the log file and, unless the caller gave one, the data dir.
    root: TempDir,
    data_dir: PathBuf,
    log_path: PathBuf,
    port: u16,
    admin_password: String,
    /// Extra environment for the process, after the harness's own.
    extra_env: Vec<(String, String)>,
    child: Option<Child>,
    /// The CA of `berth cert init` when serving HTTPS.
    tls_ca: Option<PathBuf>,
}

impl Berth {
    /// Starts berth with a fresh data directory.
    pub fn start() -> Berth {
        let root = tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir()
            .expect("create temp dir");
        let data_dir = root.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("create data dir");
        Berth::launch(root, data_dir, Vec::new())
    }

    /// Starts berth on an existing data directory (kept after the test).
    pub fn start_in(data_dir: &Path) -> Berth {
        Berth::start_in_with_env(data_dir, &[])
    }

    /// Starts berth on an existing data directory with extra environment
    /// variables (after the harness's own).
    pub fn start_in_with_env(data_dir: &Path, env: &[(&str, &str)]) -> Berth {
        let root = tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir()
            .expect("create temp dir");
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Berth::launch(root, data_dir.to_path_buf(), env)
    }

    /// Starts berth with a fresh data directory and extra environment
    /// variables such as `("BERTH_AUTH__MODE", "ldap")`; they are set after
    /// the harness's own, so they may override them.
    pub fn start_with_env(env: &[(&str, &str)]) -> Berth {
        let root = tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir()
            .expect("create temp dir");
        let data_dir = root.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("create data dir");
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Berth::launch(root, data_dir, env)
    }

    /// Starts berth serving HTTPS with a certificate from `berth cert init
    /// --hostname localhost --ip 127.0.0.1` in a fresh data directory.
    pub fn start_tls() -> Berth {
        Berth::start_tls_with_env(&[])
    }

    /// [`Berth::start_tls`] with extra environment for the process.
    pub fn start_tls_with_env(env: &[(&str, &str)]) -> Berth {
        let root = tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir()
            .expect("create temp dir");
        let data_dir = root.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("create data dir");
        cert_init(&data_dir, &[]);
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let ca = data_dir.join("tls/ca.crt");
        Berth::launch_with(root, data_dir, env, Some(ca))
    }

    /// Starts another instance beside this one: the same data directory,
    /// database, administrator and extra environment, its own port and
    /// log (for several instances behind a load balancer).
    pub fn join(&self) -> Berth {
        let root = tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir()
            .expect("create temp dir");
        let log_path = root.path().join("berth.log");
        let berth = Berth {
            root,
            data_dir: self.data_dir.clone(),
            log_path,
            port: 0,
            admin_password: self.admin_password.clone(),
            extra_env: self.extra_env.clone(),
            child: None,
            tls_ca: self.tls_ca.clone(),
        };
        berth.spawn_on_free_port()
    }

    /// Another process may take the free port between our probe and
    /// berth's bind: then try another one.
    fn spawn_on_free_port(mut self) -> Berth {
        for attempt in 0.. {
            self.port = free_port();
            match self.spawn_and_wait() {
                Ok(()) => return self,
                Err(e) if attempt < 3 && e.contains("in use") => continue,
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!()
    }

    /// The CA clients must trust, when serving HTTPS.
    pub fn tls_ca(&self) -> Option<&Path> {
        self.tls_ca.as_deref()
    }

    fn launch(root: TempDir, data_dir: PathBuf, extra_env: Vec<(String, String)>) -> Berth {
        Berth::launch_with(root, data_dir, extra_env, None)
    }

    fn launch_with(
        root: TempDir,
        data_dir: PathBuf,
        extra_env: Vec<(String, String)>,
        tls_ca: Option<PathBuf>,
    ) -> Berth {
        let log_path = root.path().join("berth.log");
        let berth = Berth {
            root,
            data_dir,
            log_path,
            port: 0,
            admin_password: format!("pw-{}-{}", random_suffix(), random_suffix()),
            extra_env,
            child: None,
            tls_ca,
        };
        berth.spawn_on_free_port()
    }

    /// The database of this berth when the test process runs on
    /// PostgreSQL (see [`backend`]): one per data directory, so that a
    /// restart on the same directory finds its data again.
    fn database_url(&self) -> Option<String> {
        if backend() == Backend::Embedded {
            return None;
        }
        static DATABASES: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
        let mut known = DATABASES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let url = known.entry(self.data_dir.clone()).or_insert_with(|| {
            crate::postgres::shared().create_database(&format!("berth_{}", random_suffix()))
        });
        Some(url.clone())
    }

    /// The key prefix of this berth's blobs in the process's Garage, when
    /// the test process runs on an object store (see [`backend`]): one per
    /// data directory, like the databases.
    pub fn object_prefix(&self) -> Option<String> {
        if backend() != Backend::PostgresObjects {
            return None;
        }
        static PREFIXES: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
        let mut known = PREFIXES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let prefix = known
            .entry(self.data_dir.clone())
            .or_insert_with(|| format!("berth-{}/", random_suffix()));
        Some(prefix.clone())
    }

    /// The backend's environment: database URL and object store.
    fn backend_env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if let Some(url) = self.database_url() {
            env.push(("BERTH_DATABASE__URL".to_owned(), url));
        }
        if let Some(prefix) = self.object_prefix() {
            env.extend(crate::garage::shared().env(&prefix));
        }
        env
    }

    /// `berth <args>` as an operator runs it beside this server: on its
    /// data directory and database, with no settings from the developer's
    /// shell. Output is not captured; callers add what they need.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(berth_bin());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("BERTH_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(self.backend_env());
        cmd.args(args)
            .env("BERTH_DATA_DIR", &self.data_dir)
            .env("NO_COLOR", "1");
        cmd
    }

    /// Runs one SQL statement on berth's database, behind its back (to set
    /// up states the API cannot reach); returns the rows as `a|b` lines.
    pub fn sql(&self, statement: &str) -> String {
        match self.database_url() {
            Some(url) => {
                let name = url.rsplit('/').next().expect("database name");
                crate::postgres::shared().psql(name, statement)
            }
            None => {
                let db = self.data_dir.join("berth.db");
                // On standard input: a statement may be longer than an
                // argument may; waiting for a busy writer.
                let out = crate::tools::run_ok(
                    "sqlite3",
                    &["-cmd", ".timeout 10000", &db.to_string_lossy()],
                    &[],
                    Some(statement),
                );
                String::from_utf8_lossy(&out.stdout).into_owned()
            }
        }
    }

    /// `http://127.0.0.1:PORT`, or `https://` when serving TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls_ca.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.host_port())
    }

    /// `127.0.0.1:PORT`
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// `("admin", password)`: the administrator berth bootstraps from
    /// `BERTH_ADMIN_PASSWORD`.
    pub fn admin_credentials(&self) -> (&str, &str) {
        ("admin", &self.admin_password)
    }

    /// A client for this server, authenticated as the administrator with
    /// HTTP Basic on every request.
    pub fn registry(&self) -> Registry {
        Registry::with_basic_auth_trusting(
            &self.url(),
            "admin",
            &self.admin_password,
            self.tls_ca.as_deref(),
        )
    }

    /// Sends a signal (`HUP`, `TERM`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("berth is running");
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{signal} {pid} failed");
    }

    /// Waits for the process to exit by itself; its exit code.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let until = Instant::now() + deadline;
        while Instant::now() < until {
            if let Some(status) = child.try_wait().expect("poll berth process") {
                return status.code();
            }
            std::thread::sleep(POLL);
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("berth did not exit within {deadline:?}");
    }

    /// A scratch directory that lives as long as this server.
    pub fn scratch_dir(&self) -> &Path {
        self.root.path()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("poll berth process").is_none(),
            None => false,
        }
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // std's kill sends SIGKILL on Unix.
            let _ = child.kill();
            child.wait().expect("reap berth process");
        }
    }

    /// SIGINT, wait for the exit with a deadline, then SIGKILL if needed.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_DEADLINE;
        while Instant::now() < deadline {
            if child.try_wait().expect("poll berth process").is_some() {
                return;
            }
            std::thread::sleep(POLL);
        }
        eprintln!("berth did not exit within {STOP_DEADLINE:?} of SIGINT; killing it");
        let _ = child.kill();
        child.wait().expect("reap berth process");
    }

    /// Stops berth if it runs, then starts it again on the same port and
    /// data directory.
    pub fn restart(&mut self) {
        self.stop();
        // A port just released may still be refused for a moment; retry
        // within the readiness deadline.
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(e) if e.contains("in use") && Instant::now() < deadline => {
                    std::thread::sleep(POLL * 10)
                }
                Err(e) => panic!("restart failed: {e}"),
            }
        }
    }

    /// The last `lines` lines of berth's output (all runs of this instance).
    pub fn log_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(256 * 1024)));
            let mut bytes = Vec::new();
            let _ = f.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The first `max` ERROR or WARN lines of berth's output.
    pub fn log_problems(&self, max: usize) -> String {
        let text = std::fs::read(&self.log_path).unwrap_or_default();
        String::from_utf8_lossy(&text)
            .lines()
            .filter(|l| l.contains("ERROR") || l.contains("WARN") || l.contains("panicked"))
            .take(max)
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let bin = berth_bin();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open berth log");
        let mut cmd = Command::new(&bin);
        // Settings of the developer's shell must not leak into the test.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("BERTH_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(self.backend_env());
        cmd.arg("serve")
            .env("BERTH_LISTEN", self.host_port())
            .env("BERTH_DATA_DIR", &self.data_dir)
            .env("BERTH_ADMIN_PASSWORD", &self.admin_password)
            .env("RUST_LOG", "info")
            // Plain text in the log file that failing tests print.
            .env("NO_COLOR", "1")
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.root.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let http = http_client_trusting(Some(self.admin_credentials()), self.tls_ca.as_deref());
        let url = format!("{}/v2/", self.url());
        let deadline = Instant::now() + READY_DEADLINE;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            let child = self.child.as_mut().expect("berth was spawned");
            if let Some(status) = child.try_wait().expect("poll berth process") {
                self.child = None;
                let tail = self.log_tail(40);
                let reason = if tail.contains("in use") {
                    "address in use"
                } else {
                    "exited"
                };
                return Err(format!(
                    "berth {reason} ({status}) before answering GET /v2/; log tail:\n{tail}"
                ));
            }
            match http.get(&url).timeout(Duration::from_secs(2)).send() {
                Ok(resp) if resp.status() == 200 => return Ok(()),
                // Up, but refusing the administrator: waiting will not help.
                Ok(resp) if resp.status().is_client_error() => {
                    let status = resp.status();
                    let body = resp.text().unwrap_or_default();
                    self.kill9();
                    return Err(format!(
                        "GET /v2/ as admin answered {status} ({body}); log tail:\n{}",
                        self.log_tail(40)
                    ));
                }
                Ok(resp) => last = format!("status {}", resp.status()),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(POLL);
        }
        self.kill9();
        Err(format!(
            "berth did not answer GET /v2/ with 200 within {READY_DEADLINE:?} (last: {last}); log tail:\n{}",
            self.log_tail(40)
        ))
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "----- berth log ({}): errors and warnings -----\n{}\n\
                 ----- last 60 lines -----\n{}\n----- end of berth log -----",
                self.log_path.display(),
                self.log_problems(20),
                self.log_tail(60)
            );
        }
    }
}

/// Runs `berth cert init --hostname localhost --ip 127.0.0.1` (plus
/// `extra` arguments) for a data directory.
pub fn cert_init(data_dir: &Path, extra: &[&str]) -> String {
    let out = Command::new(berth_bin())
        .args([
            "cert",
            "init",
            "--hostname",
            "localhost",
            "--ip",
            "127.0.0.1",
        ])
        .args(extra)
        .env("BERTH_DATA_DIR", data_dir)
        .env_remove("BERTH_CONFIG")
        .output()
        .expect("run berth cert init");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "berth cert init failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// The `berth` binary: `BERTH_BIN`, or `berth` beside this test's profile
/// directory (target/release/deps/x -> target/release/berth). When run by
/// cargo, the binary is (re)built first: `cargo test` does not build the
/// binaries of other packages, and a stale one would test old code.
pub fn berth_bin() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(locate_or_build)
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn locate_or_build() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("BERTH_BIN") {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("BERTH_BIN={} is not a file", bin.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("unexpected test binary path {}", exe.display()))?;
    let bin = profile_dir.join("berth");
    if let (Some(cargo), None) = (
        std::env::var_os("CARGO"),
        std::env::var_os("BERTH_NO_BUILD"),
    ) {
        build_berth(&cargo, profile_dir)?;
    }
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "berth binary not found at {}: build it with `cargo build --release -p berth-gateway` \
             (same CARGO_TARGET_DIR) or set BERTH_BIN",
            bin.display()
        ))
    }
}

fn build_berth(cargo: &std::ffi::OsStr, profile_dir: &Path) -> Result<(), String> {
    let target_dir = profile_dir.parent().ok_or("profile dir has no parent")?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("tests crate has no parent dir")?;
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "berth-gateway", "--bin", "berth"])
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", target_dir);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
        None => return Err("profile dir has no name".into()),
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run cargo to build berth: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
        Err(format!(
            "building berth failed ({}):\n{}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    }
}
