//! A real PostgreSQL server for the tests: Debian's `postgres`, started
//! once per test process with `initdb` in a temp dir on a free port, and
//! a fresh database for each berth started on it.
//!
//! The server is the child of a small shell that waits on its stdin: when
//! the test process exits, for whatever reason, the pipe closes and the
//! shell stops the server and removes its files, so no server outlives
//! its tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::server::{free_port, POLL};

/// How long the server may take to accept connections.
const READY_DEADLINE: Duration = Duration::from_secs(60);

pub struct Postgres {
    _dir: TempDir,
    port: u16,
    bin: PathBuf,
    /// The waiting shell; its stdin is the server's lifeline.
    _guard: Mutex<Child>,
}

/// The process's server, started on first use.
pub fn shared() -> &'static Postgres {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    SERVER.get_or_init(Postgres::start)
}

/// Where Debian installs the server programs (not on PATH).
fn server_bin() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not installed ({}: {e}); apt-get install postgresql",
                root.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("a PostgreSQL server under /usr/lib/postgresql")
}

/// The server refuses to run as root: as root, run it as `postgres`.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Postgres {
    fn start() -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("berth-pg-")
            .tempdir()
            .expect("create PostgreSQL dir");
        let data = dir.path().join("data");
        if is_root() {
            let out = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .output()
                .expect("run chown");
            assert!(out.status.success(), "chown: {out:?}");
        }
        let bin = server_bin();
        let out = as_server_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        // fsync is off: what is under test is berth, not the server's
        // durability, and every test creates databases.
        let server = format!(
            "'{}' -D '{}' -p {port} -k '{}' -c listen_addresses=127.0.0.1 -c fsync=off \
             -c max_connections=400 -c shared_buffers=64MB",
            bin.join("postgres").display(),
            data.display(),
            dir.path().display(),
        );
        let script = format!(
            "{server} >'{log}' 2>&1 & pid=$!; cat >/dev/null; kill -INT $pid; wait $pid; \
             rm -rf '{dir}'",
            log = dir.path().join("server.log").display(),
            dir = dir.path().display()
        );
        let guard = as_server_user(Path::new("/bin/sh"))
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        let pg = Postgres {
            _dir: dir,
            port,
            bin,
            _guard: Mutex::new(guard),
        };
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let ready = Command::new(pg.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ready {
                return pg;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start: {}",
                std::fs::read_to_string(pg._dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(POLL);
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates an empty database and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }

    /// The URL of database `name` as the superuser.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs SQL in database `name`; returns what psql printed (unaligned,
    /// tuples only), panicking on an error.
    pub fn psql(&self, name: &str, sql: &str) -> String {
        let port = self.port.to_string();
        // A failure panics with psql's error message.
        let out = crate::tools::run_ok(
            "psql",
            &[
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                name,
            ],
            &[],
            Some(sql),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
