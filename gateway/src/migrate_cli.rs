//! `berth migrate --to-config NEW.toml`: copies this installation (the
//! config's database and blobs) into the one NEW.toml describes, on
//! PostgreSQL. Rerunnable; see `berth_storage::migrate`.

use berth_conf::Config;
use berth_storage::migrate::{copy_installation, Installation, Summary};

/// Runs the copy, printing progress lines to standard error; the
/// summary to print, or why it stopped.
pub async fn run(from: &Config, to: &Config) -> Result<String, String> {
    let installation = |c: &Config| {
        let settings = crate::bootstrap::storage_settings(c);
        Installation {
            database_url: settings.database_url,
            blob_root: settings.blob_root,
            objects: settings.objects,
        }
    };
    let mut progress = |line: String| eprintln!("berth migrate: {line}");
    let Summary {
        blobs_copied,
        blobs_present,
        bytes_copied,
        rows_copied,
    } = copy_installation(&installation(from), &installation(to), &mut progress)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "migrated: {blobs_copied} blobs copied ({bytes_copied} bytes, each digest verified), \
         {blobs_present} already there; {rows_copied} database rows replaced. Run it again to \
         pick up what changed since; start berth with the new config once the old one is stopped \
         and a last run is done."
    ))
}
