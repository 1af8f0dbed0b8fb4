//! What the report says about the machine: read from /proc and from the
//! peers' `--version`.

use std::process::Command;

use crate::report::Meta;

/// The CPU, memory, kernel, date and peer versions of this run.
pub fn describe(runs: usize) -> Meta {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or_else(
            || "?".into(),
            |kib| format!("{:.0} GiB", kib as f64 / (1 << 20) as f64),
        );
    let nproc = std::thread::available_parallelism().map_or(0, usize::from);
    let versions = [
        ("docker-registry", "/usr/bin/docker-registry", "--version"),
        ("nginx", "/usr/sbin/nginx", "-v"),
        ("skopeo", "skopeo", "--version"),
    ]
    .iter()
    .filter_map(|(name, bin, flag)| {
        let out = Command::new(bin).arg(flag).output().ok()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let version = text
            .split_whitespace()
            .last()?
            .trim_start_matches("nginx/")
            .to_owned();
        Some(format!("{name} {version}"))
    })
    .collect();
    Meta {
        date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        cpu,
        nproc,
        memory,
        kernel: command_line("uname", &["-r"]),
        versions,
        runs,
    }
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "?".into())
}
