//! What every handler needs: the registry, the access mode, and how to
//! build URLs for Location headers.

use std::sync::Arc;

use berth_policy::Mode;
use berth_storage::Registry;

pub struct App {
    pub registry: Arc<Registry>,
    pub policy_mode: Mode,
    /// `external_url` without a trailing slash; Location headers are
    /// relative paths when it is unset (clients resolve them).
    pub external_url: Option<String>,
}

impl App {
    pub fn url(&self, path: &str) -> String {
        match &self.external_url {
            Some(base) => format!("{base}{path}"),
            None => path.to_owned(),
        }
    }
}
