//! What /proc says about a server's processes: CPU time, resident memory
//! and children (nginx's workers).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};

/// How often the RSS sampler looks.
const RSS_INTERVAL: Duration = Duration::from_millis(20);
/// The sampler stops by itself after this long, whatever happens.
const RSS_MAX_DURATION: Duration = Duration::from_secs(600);

/// The kernel's clock ticks per second (the unit of utime and stime).
pub fn clock_ticks() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

/// The processes of one server: its root processes and all their
/// descendants, looked up afresh each time.
#[derive(Clone, Debug)]
pub struct ProcessSet {
    roots: Vec<u32>,
}

impl ProcessSet {
    pub fn new(roots: Vec<u32>) -> ProcessSet {
        ProcessSet { roots }
    }

    pub fn pids(&self) -> Vec<u32> {
        let mut seen = BTreeSet::new();
        let mut todo = self.roots.clone();
        // Bounded: a process tree on this machine is small.
        while let Some(pid) = todo.pop() {
            if seen.len() > 4096 {
                break;
            }
            if seen.insert(pid) {
                todo.extend(children(pid));
            }
        }
        seen.into_iter().collect()
    }

    /// utime + stime of all processes, in clock ticks.
    pub fn cpu_ticks(&self) -> anyhow::Result<u64> {
        self.pids().into_iter().map(cpu_ticks).sum()
    }

    /// Summed VmRSS of all processes, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        self.pids()
            .into_iter()
            .filter_map(rss_kib)
            .map(|kib| kib * 1024)
            .sum()
    }
}

/// utime + stime of one process (all its threads), in clock ticks.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'. Field 3 (state) is then the first; utime and stime are
    // fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("malformed /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .ok_or_else(|| anyhow!("/proc/{pid}/stat has no field {n}"))?
            .parse::<u64>()
            .with_context(|| format!("field {n} of /proc/{pid}/stat"))
    };
    Ok(field(14)? + field(15)?)
}

/// VmRSS of one process in KiB, if it still runs.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The direct children of a process, from all of its threads.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// Samples the summed RSS of a process set on a thread of its own and
/// keeps the maximum.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<u64>,
}

impl RssSampler {
    pub fn start(procs: ProcessSet) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) && started.elapsed() < RSS_MAX_DURATION {
                peak = peak.max(procs.rss_bytes());
                std::thread::sleep(RSS_INTERVAL);
            }
            peak.max(procs.rss_bytes())
        });
        RssSampler { stop, handle }
    }

    /// Stops sampling; the peak summed RSS in bytes.
    pub fn finish(self) -> anyhow::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .join()
            .map_err(|_| anyhow!("the RSS sampler thread panicked"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(cpu_ticks(me).is_ok());
        assert!(rss_kib(me).unwrap() > 0);
        assert!(ProcessSet::new(vec![me]).pids().contains(&me));
    }
}
