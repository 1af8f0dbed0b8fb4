//! Graceful shutdown: SIGTERM during a long pull lets it finish within the
//! grace period, then berth exits 0.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::content::{random_bytes, sha256_digest};
use berth_tests::Berth;

#[test]
fn sigterm_during_a_long_pull_lets_it_finish_then_exits_zero() {
    let mut berth = Berth::start_with_env(&[("BERTH_SERVER__GRACE_PERIOD", "15s")]);
    let data = random_bytes(48 * 1024 * 1024);
    let digest = sha256_digest(&data);
    berth.registry().push_bytes("library/big", &data, &digest);

    // A slow client: about 6 s for 48 MiB.
    let out = berth.scratch_dir().join("pulled");
    let (user, password) = berth.admin_credentials();
    let mut curl = Command::new("curl")
        .args([
            "-sS",
            "-f",
            "--limit-rate",
            "8M",
            "-u",
            &format!("{user}:{password}"),
            "-o",
        ])
        .arg(&out)
        .arg(format!("{}/v2/library/big/blobs/{digest}", berth.url()))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start curl");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&out).map_or(0, |m| m.len()) < 1024 * 1024 {
        assert!(Instant::now() < deadline, "the pull did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    berth.signal("TERM");
    let status = curl.wait().expect("curl finishes");
    assert!(
        status.success(),
        "the pull in flight was cut off by SIGTERM"
    );
    let pulled = std::fs::read(&out).expect("read pulled blob");
    assert_eq!(pulled.len(), data.len());
    assert_eq!(sha256_digest(&pulled), digest, "pulled bytes are intact");
    assert_eq!(
        berth.wait_exit(Duration::from_secs(40)),
        Some(0),
        "berth exits 0 after a graceful shutdown"
    );
}
