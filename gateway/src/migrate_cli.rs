//! `berth migrate --to-config NEW.toml`: copies this installation (the
//! config's database and blobs) into the one NEW.toml describes, on
//! PostgreSQL. Rerunnable; see `berth_storage::migrate`.

use berth_conf::Config;
use berth_storage::backup;
use berth_storage::meta::Meta;
use berth_storage::migrate::{copy_installation, Installation, Summary};
use berth_storage::secrets::merged_key_file;

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
    // Read before and after the copy: a rotation meanwhile may record a
    // key only one of the two reads holds.
    let key_before = read_key(&from.secrets.key_file)?;
    let mut progress = |line: String| eprintln!("berth migrate: {line}");
    let Summary {
        blobs_copied,
        blobs_present,
        bytes_copied,
        rows_copied,
    } = copy_installation(&installation(from), &installation(to), &mut progress)
        .await
        .map_err(|e| e.to_string())?;
    let key_note = copy_secret_key(from, to, key_before).await?;
    Ok(format!(
        "migrated: {blobs_copied} blobs copied ({bytes_copied} bytes, each digest verified), \
         {blobs_present} already there; {rows_copied} database rows replaced. Run it again to \
         pick up what changed since; start berth with the new config once the old one is stopped \
         and a last run is done.{key_note}"
    ))
}

fn read_key(path: &std::path::Path) -> Result<Option<Vec<u8>>, String> {
    backup::read_key(path).map_err(|e| e.to_string())
}

/// The stored secrets travel sealed: the destination needs the source's
/// keys (as read before and after the copy), written once the metadata
/// is copied (the destination's secrets are all the source's then) and
/// checked to hold the key the copied database records. A key file the
/// destination had (a berth started on it before) is kept beside it,
/// renamed.
async fn copy_secret_key(
    from: &Config,
    to: &Config,
    before: Option<Vec<u8>>,
) -> Result<String, String> {
    let (src, dst) = (&from.secrets.key_file, &to.secrets.key_file);
    let after = read_key(src)?;
    let texts: Vec<&[u8]> = [&after, &before]
        .into_iter()
        .flatten()
        .map(Vec::as_slice)
        .collect();
    if texts.is_empty() {
        return Ok(String::new());
    }
    let (source, ids) = merged_key_file(&texts).map_err(|e| e.to_string())?;
    let recorded = Meta::connect(to.database.url.expose())
        .await
        .map_err(|e| e.to_string())?
        .sealing_key_id()
        .await
        .map_err(|e| e.to_string())?;
    if let Some(id) = recorded.filter(|id| !ids.contains(id)) {
        return Err(format!(
            "the secret key was rotated twice while the migration ran (the copied secrets need \
             key {id}, gone from {}): run the migration again",
            src.display()
        ));
    }
    let replaced = match std::fs::read(dst) {
        Ok(bytes) if bytes == source => return Ok(String::new()),
        Ok(_) => {
            let aside = dst.with_extension("key.replaced");
            std::fs::rename(dst, &aside)
                .map_err(|e| format!("cannot move {} aside: {e}", dst.display()))?;
            format!(" (the one it had is now {})", aside.display())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(format!(
                "cannot read the secret key file {}: {e}",
                dst.display()
            ))
        }
    };
    if let Some(dir) = dst.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::bootstrap::make_private_dir(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    backup::write_atomically(dst, &source, 0o600).map_err(|e| e.to_string())?;
    Ok(format!(
        " The secret key file was copied to {}{replaced}: every instance of the new \
         installation needs it.",
        dst.display()
    ))
}
