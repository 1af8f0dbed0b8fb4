//! A real S3-compatible object store for the tests: Garage, started once
//! per test process (`garage server --single-node --default-bucket`) on
//! free ports, with one bucket and key; each berth gets a key prefix of
//! its own in that bucket.
//!
//! The binary comes from `cargo install garage` (`.ci/run` builds it into
//! `/var/tmp/garage-bin` when missing); `BERTH_TEST_GARAGE` may name
//! another. Like the PostgreSQL server, it is the child of a shell that
//! waits on its stdin and removes everything when the test process ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::server::{free_port, POLL};

const READY_DEADLINE: Duration = Duration::from_secs(60);
pub const BUCKET: &str = "berth";
pub const REGION: &str = "garage";
/// Garage's key format: `GK` and 24 hex digits; the secret 64.
pub const ACCESS_KEY: &str = "GK0123456789abcdef01234567";
pub const SECRET_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

pub struct Garage {
    dir: TempDir,
    port: u16,
    bin: PathBuf,
    _guard: Mutex<Child>,
}

/// The process's server, started on first use.
pub fn shared() -> &'static Garage {
    static SERVER: OnceLock<Garage> = OnceLock::new();
    SERVER.get_or_init(Garage::start)
}

fn garage_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("BERTH_TEST_GARAGE") {
        return PathBuf::from(bin);
    }
    for candidate in ["/var/tmp/garage-bin/bin/garage", "/usr/local/bin/garage"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "Garage is not installed: cargo install garage --locked --root /var/tmp/garage-bin \
         (.ci/run does this), or set BERTH_TEST_GARAGE to its binary"
    )
}

impl Garage {
    fn start() -> Garage {
        let dir = tempfile::Builder::new()
            .prefix("berth-garage-")
            .tempdir()
            .expect("create Garage dir");
        let bin = garage_bin();
        let (port, rpc) = (free_port(), free_port());
        let secret: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let config = format!(
            "metadata_dir = \"{meta}\"\n\
             data_dir = \"{data}\"\n\
             db_engine = \"sqlite\"\n\
             replication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_public_addr = \"127.0.0.1:{rpc}\"\n\
             rpc_secret = \"{secret}\"\n\
             [s3_api]\n\
             s3_region = \"{REGION}\"\n\
             api_bind_addr = \"127.0.0.1:{port}\"\n\
             root_domain = \".s3.garage.localhost\"\n",
            meta = dir.path().join("meta").display(),
            data = dir.path().join("data").display(),
        );
        let config_path = dir.path().join("garage.toml");
        std::fs::write(&config_path, config).expect("write garage.toml");
        let script = format!(
            "'{bin}' -c '{config}' server --single-node --default-bucket >'{log}' 2>&1 & pid=$!; \
             cat >/dev/null; kill -INT $pid; wait $pid; rm -rf '{dir}'",
            bin = bin.display(),
            config = config_path.display(),
            log = dir.path().join("garage.log").display(),
            dir = dir.path().display(),
        );
        let guard = Command::new("/bin/sh")
            .args(["-c", &script])
            .env("GARAGE_DEFAULT_ACCESS_KEY", ACCESS_KEY)
            .env("GARAGE_DEFAULT_SECRET_KEY", SECRET_KEY)
            .env("GARAGE_DEFAULT_BUCKET", BUCKET)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start garage");
        let garage = Garage {
            dir,
            port,
            bin,
            _guard: Mutex::new(guard),
        };
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let ready = Command::new(&garage.bin)
                .arg("-c")
                .arg(&config_path)
                .args(["bucket", "info", BUCKET])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ready {
                return garage;
            }
            assert!(
                Instant::now() < deadline,
                "Garage did not start: {}",
                garage.log()
            );
            std::thread::sleep(POLL * 10);
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment that puts a berth's blobs under `prefix` here.
    pub fn env(&self, prefix: &str) -> Vec<(String, String)> {
        [
            ("BERTH_STORAGE__DRIVER", "s3".to_owned()),
            ("BERTH_STORAGE__S3__ENDPOINT", self.endpoint()),
            ("BERTH_STORAGE__S3__REGION", REGION.to_owned()),
            ("BERTH_STORAGE__S3__BUCKET", BUCKET.to_owned()),
            ("BERTH_STORAGE__S3__PREFIX", prefix.to_owned()),
            ("BERTH_STORAGE__S3__ACCESS_KEY", ACCESS_KEY.to_owned()),
            ("BERTH_STORAGE__S3__SECRET_KEY", SECRET_KEY.to_owned()),
            // The smallest part S3 allows: modest blobs then take the
            // multipart path, pieces and all.
            ("BERTH_STORAGE__S3__PART_SIZE", "5MiB".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn store(&self) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_region(REGION)
            .with_bucket_name(BUCKET)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .build()
            .expect("S3 client for Garage")
    }

    fn block_on<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(work)
    }

    /// Stores an object behind berth's back (a leftover of a crash).
    pub fn put(&self, key: &str, data: &[u8]) {
        use object_store::ObjectStoreExt;
        let store = self.store();
        let path = object_store::path::Path::from(key);
        self.block_on(store.put(&path, data.to_vec().into()))
            .expect("put object in Garage");
    }

    /// Keys (relative to `prefix`) and sizes of the objects under it.
    pub fn list(&self, prefix: &str) -> Vec<(String, u64)> {
        use futures_util::TryStreamExt;
        use object_store::ObjectStore;
        let store = self.store();
        let dir = object_store::path::Path::from(prefix.trim_end_matches('/'));
        let strip = format!("{dir}/");
        let mut found: Vec<(String, u64)> = self
            .block_on(store.list(Some(&dir)).try_collect::<Vec<_>>())
            .expect("list objects in Garage")
            .into_iter()
            .map(|m| {
                let key = m.location.as_ref();
                (key.strip_prefix(&strip).unwrap_or(key).to_owned(), m.size)
            })
            .collect();
        found.sort();
        found
    }
}
