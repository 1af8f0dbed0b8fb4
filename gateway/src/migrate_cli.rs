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
    let key_note = copy_secret_key(from, to)?;
    Ok(format!(
        "migrated: {blobs_copied} blobs copied ({bytes_copied} bytes, each digest verified), \
         {blobs_present} already there; {rows_copied} database rows replaced. Run it again to \
         pick up what changed since; start berth with the new config once the old one is stopped \
         and a last run is done.{key_note}"
    ))
}

/// The stored secrets travel sealed: the destination needs the source's
/// key file, written once the metadata is copied (the destination's
/// secrets are all the source's then). A key file the destination had (a
/// berth started on it before) is kept beside it, renamed.
fn copy_secret_key(from: &Config, to: &Config) -> Result<String, String> {
    let (src, dst) = (&from.secrets.key_file, &to.secrets.key_file);
    let source = match std::fs::read(src) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => {
            return Err(format!(
                "cannot read the secret key file {}: {e}",
                src.display()
            ))
        }
    };
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
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = dst.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::bootstrap::make_private_dir(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)
        .and_then(|mut f| f.write_all(&source).and_then(|()| f.sync_all()))
        .map_err(|e| format!("cannot write the secret key file {}: {e}", dst.display()))?;
    Ok(format!(
        " The secret key file was copied to {}{replaced}: every instance of the new \
         installation needs it.",
        dst.display()
    ))
}
