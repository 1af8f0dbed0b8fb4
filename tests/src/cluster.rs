//! Several berth instances behind a load balancer: Debian's haproxy,
//! round robin per request, health-checking `/readyz`, as an operator
//! would run them. The instances share one data directory and, in a
//! `postgres_*` test binary, one PostgreSQL database.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::server::{free_port, Berth, POLL};

/// How long haproxy may take to see every instance up.
const READY_DEADLINE: Duration = Duration::from_secs(30);

pub struct Cluster {
    pub nodes: Vec<Berth>,
    lb: Haproxy,
}

struct Haproxy {
    dir: TempDir,
    port: u16,
    stats_port: u16,
    child: Child,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Cluster {
    /// Starts `n` instances and haproxy in front of them; returns when
    /// haproxy sees all of them up.
    pub fn start(n: usize) -> Cluster {
        Cluster::start_with_env(n, &[])
    }

    /// [`Cluster::start`] with extra environment for every instance.
    pub fn start_with_env(n: usize, env: &[(&str, &str)]) -> Cluster {
        let first = Berth::start_with_env(env);
        let mut nodes = vec![first];
        for _ in 1..n {
            let next = nodes[0].join();
            nodes.push(next);
        }
        Cluster::of(nodes)
    }

    /// Puts haproxy in front of instances already running (started on an
    /// installation the caller prepared, joined with [`Berth::join`]);
    /// returns when haproxy sees all of them up.
    pub fn of(nodes: Vec<Berth>) -> Cluster {
        let lb = Haproxy::start(&nodes);
        let n = nodes.len();
        let cluster = Cluster { nodes, lb };
        cluster.wait_up(n);
        cluster
    }

    /// A registry client of the load balancer, as `user`.
    pub fn registry_as(&self, user: &str, password: &str) -> crate::Registry {
        crate::Registry::with_basic_auth(&self.url(), user, password)
    }

    /// `http://127.0.0.1:PORT` of the load balancer.
    pub fn url(&self) -> String {
        format!("http://{}", self.host_port())
    }

    /// `127.0.0.1:PORT` of the load balancer.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.lb.port)
    }

    /// `("admin", password)`, the same on every instance.
    pub fn admin_credentials(&self) -> (&str, &str) {
        self.nodes[0].admin_credentials()
    }

    /// A scratch directory for clients' state.
    pub fn scratch_dir(&self) -> &Path {
        self.lb.dir.path()
    }

    /// Waits until haproxy counts `up` instances as up (after a kill or
    /// a restart).
    pub fn wait_up(&self, up: usize) {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let seen = self.lb.servers_up();
            if seen == up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "haproxy sees {seen} instances up, not {up}"
            );
            std::thread::sleep(POLL);
        }
    }
}

impl Haproxy {
    fn start(nodes: &[Berth]) -> Haproxy {
        let dir = tempfile::Builder::new()
            .prefix("berth-haproxy-")
            .tempdir()
            .expect("create haproxy dir");
        let port = free_port();
        let stats_port = free_port();
        let servers: String = nodes
            .iter()
            .enumerate()
            .map(|(i, b)| {
                format!(
                    "    server b{i} {} check inter 200ms fall 2 rise 1\n",
                    b.host_port()
                )
            })
            .collect();
        // Every request is balanced on its own (keep-alive connections
        // included); a request whose connection to an instance failed is
        // sent to another (`redispatch`); `/readyz` decides who is up.
        let config = format!(
            "global\n    maxconn 2000\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 300s\n\
             \x20   timeout server 300s\n    option redispatch\n    retries 3\n\
             frontend registry\n    bind 127.0.0.1:{port}\n    default_backend berth\n\
             frontend stats\n    bind 127.0.0.1:{stats_port}\n    stats enable\n    stats uri /stats\n\
             backend berth\n    balance roundrobin\n    option httpchk GET /readyz\n{servers}"
        );
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config).expect("write haproxy.cfg");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy (apt-get install haproxy)");
        Haproxy {
            dir,
            port,
            stats_port,
            child,
        }
    }

    /// How many servers the stats page shows UP.
    fn servers_up(&self) -> usize {
        let url = format!("http://127.0.0.1:{}/stats;csv", self.stats_port);
        let Ok(resp) = reqwest::blocking::get(url) else {
            return 0;
        };
        let body = resp.text().unwrap_or_default();
        body.lines()
            .filter(|l| l.starts_with("berth,b"))
            .filter(|l| l.split(',').nth(17) == Some("UP"))
            .count()
    }
}
