//! Which process owns something it leaves on disk, and whether that
//! process is gone: several processes share one data directory (the
//! server, and `berth gc` or `berth user` run beside it), so files one of
//! them is writing must only be removed by it, or once it is dead.
//!
//! A process is named by its id, host name and boot: two with the same
//! boot and host name share one process-id space (the same machine and
//! container), so `/proc/<pid>` there answers whether it is still alive.
//! Of a process elsewhere nothing can be known.

/// This machine's boot and this container's host name (`boot/host`), or
/// empty where they cannot be read.
pub(crate) fn machine() -> String {
    let (boot, host) = boot_and_host();
    if boot.is_empty() || host.is_empty() {
        String::new()
    } else {
        format!("{boot}/{host}")
    }
}

fn boot_and_host() -> (String, String) {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    (
        read("/proc/sys/kernel/random/boot_id"),
        read("/proc/sys/kernel/hostname"),
    )
}

/// What is known of a process named by `this_process` elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// It is this very process.
    This,
    Alive,
    Dead,
    /// Another machine or container (or a name not made here).
    Unknown,
}

/// This process's name, usable as a file name: `pid@host@boot` (a host
/// name never contains `@`).
pub(crate) fn this_process() -> String {
    let (boot, host) = boot_and_host();
    format!("{}@{host}@{boot}", std::process::id())
}

/// Whether the process `name` (from `this_process`) still runs.
pub(crate) fn liveness(name: &str) -> Liveness {
    if name == this_process() {
        return Liveness::This;
    }
    let mut parts = name.splitn(3, '@');
    let (Some(pid), Some(host), Some(boot)) = (parts.next(), parts.next(), parts.next()) else {
        return Liveness::Unknown;
    };
    let (our_boot, our_host) = boot_and_host();
    let Ok(pid) = pid.parse::<u32>() else {
        return Liveness::Unknown;
    };
    if our_boot.is_empty() || our_host.is_empty() || boot != our_boot || host != our_host {
        return Liveness::Unknown;
    }
    if std::path::Path::new(&format!("/proc/{pid}")).exists() {
        Liveness::Alive
    } else {
        Liveness::Dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_this_process_and_tells_the_dead() {
        let me = this_process();
        assert_eq!(liveness(&me), Liveness::This);
        let (boot, host) = boot_and_host();
        if boot.is_empty() || host.is_empty() {
            return; // not Linux: nothing can be told
        }
        // The parent (the test runner's shell or cargo) is alive.
        let parent = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| s.rsplit(')').next().map(str::to_owned))
            .and_then(|s| s.split_whitespace().nth(1).map(str::to_owned))
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(1);
        assert_eq!(
            liveness(&format!("{parent}@{host}@{boot}")),
            Liveness::Alive
        );
        // No process has an id past the kernel's maximum.
        assert_eq!(
            liveness(&format!("{}@{host}@{boot}", u32::MAX)),
            Liveness::Dead
        );
        assert_eq!(
            liveness(&format!("1@{host}@another-boot")),
            Liveness::Unknown
        );
        assert_eq!(liveness("a-uuid-named-file"), Liveness::Unknown);
    }
}
