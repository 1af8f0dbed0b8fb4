//! The `berth` command line: config validation and start-up errors, run
//! against the real binary.

use std::net::TcpListener;
use std::process::{Command, Output};

fn berth(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.args(args);
    // Keep the caller's BERTH_* variables out of the way.
    for (k, _) in std::env::vars() {
        if k.starts_with("BERTH_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(envs.iter().copied());
    cmd.output().expect("run berth")
}

#[test]
fn check_config_prints_effective_settings_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("berth.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:5999\"\n[auth]\nadmin_password = \"hunter2-secret\"\n",
    )
    .unwrap();
    let out = berth(
        &["check-config", "--config", file.to_str().unwrap()],
        &[(
            "BERTH_DATABASE__URL",
            "postgres://berth:db-secret@db.example.org/berth",
        )],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("127.0.0.1:5999"), "{stdout}");
    assert!(stdout.contains("<redacted>"), "{stdout}");
    assert!(!stdout.contains("hunter2-secret"), "{stdout}");
    assert!(!stdout.contains("db-secret"), "{stdout}");
}

#[test]
fn unknown_keys_are_rejected_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("berth.toml");
    std::fs::write(&file, "[auth]\nmodee = \"db\"\n").unwrap();
    let out = berth(&["check-config", "--config", file.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("auth.modee"), "{stderr}");

    let out = berth(&["serve"], &[("BERTH_LISTEN", "not-an-address")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("BERTH_LISTEN"), "{stderr}");
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = berth(
        &["serve"],
        &[
            ("BERTH_LISTEN", &addr),
            ("BERTH_DATA_DIR", dir.path().to_str().unwrap()),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

#[test]
fn user_commands_manage_local_users() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let run = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.args(args)
            .env("BERTH_DATA_DIR", data)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run(&["user", "add", "alice"], "correct-horse\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["user", "add", "alice"], "correct-horse\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = run(&["user", "add", "bob"], "short\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8"));
    let out = run(&["user", "disable", "alice"], "");
    assert!(out.status.success());
    let out = run(&["user", "disable", "nobody"], "");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user"));
    let out = run(&["user", "disable", "admin"], "");
    assert!(!out.status.success());
}
