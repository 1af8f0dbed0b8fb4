//! Free space on the local volumes berth writes to: the blob store (on
//! the filesystem driver) and the data directory (SQLite, keys), for
//! `/readyz`, `/api/v2.0/health` and `/systeminfo/volumes`.

use std::path::{Path, PathBuf};

use crate::app::App;

/// "Low" is under this much free, or under a tenth of the volume if that
/// is less (a small volume is not always low).
const LOW: u64 = 1 << 30;

/// One volume's size and free space (what an unprivileged writer may use).
#[derive(Debug, Clone)]
pub struct Space {
    pub path: PathBuf,
    pub total: u64,
    pub free: u64,
    fsid: u64,
}

impl Space {
    pub fn low(&self) -> bool {
        self.free < LOW.min(self.total / 10)
    }

    /// For operators: where, and how much is left.
    pub fn describe(&self) -> String {
        let mib = |b: u64| b / (1024 * 1024);
        format!(
            "{}: {} MiB free of {} MiB",
            self.path.display(),
            mib(self.free),
            mib(self.total)
        )
    }
}

pub fn space(path: &Path) -> std::io::Result<Space> {
    let st = rustix::fs::statvfs(path)?;
    Ok(Space {
        path: path.to_owned(),
        total: st.f_blocks.saturating_mul(st.f_frsize),
        free: st.f_bavail.saturating_mul(st.f_frsize),
        fsid: st.f_fsid,
    })
}

/// The volumes berth writes to here, each once (the blob store first).
/// A path that cannot be read is left out: the write probes report it.
pub fn volumes(app: &App) -> Vec<Space> {
    let mut out: Vec<Space> = Vec::new();
    let paths = app
        .file_settings
        .blob_root
        .iter()
        .chain(std::iter::once(&app.file_settings.data_dir));
    for path in paths {
        match space(path) {
            Ok(s) if !out.iter().any(|o| o.fsid == s.fsid) => out.push(s),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the free space")
            }
        }
    }
    out
}

/// The volumes low on space, described.
pub fn low(app: &App) -> Vec<String> {
    volumes(app)
        .iter()
        .filter(|s| s.low())
        .map(Space::describe)
        .collect()
}
