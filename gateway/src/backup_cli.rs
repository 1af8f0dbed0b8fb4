//! `berth backup --to DIR` and `berth restore --from DIR`: the embedded
//! installation (SQLite and blobs on files) copied while it runs, and
//! rebuilt with every blob's digest checked. See `berth_storage::backup`.

use std::path::Path;

use berth_conf::{Config, StorageDriver};
use berth_storage::backup::{self, BackupSummary, Embedded, RestoreSummary};

fn embedded(config: &Config) -> Result<Embedded, String> {
    if config.storage.driver == StorageDriver::S3 {
        return Err(
            "blobs are in an object store: back it up with its own tools (versioning or a \
             bucket copy) and the database with pg_dump, and keep the secret key file \
             (secrets.key_file) with them; berth backup copies the embedded installation"
                .into(),
        );
    }
    Ok(Embedded {
        database_url: config.database.url.expose().to_owned(),
        blob_root: config.storage.root.clone(),
        key_file: config.secrets.key_file.clone(),
    })
}

pub async fn backup(config: &Config, dir: &Path) -> Result<String, String> {
    let from = embedded(config)?;
    let mut progress = |line: String| eprintln!("berth backup: {line}");
    let BackupSummary {
        blobs,
        bytes,
        copied,
        copied_bytes,
        dropped,
    } = backup::backup(&from, dir, &mut progress)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "backed up to {}: the database and {blobs} blobs ({bytes} bytes); {copied} blobs \
         ({copied_bytes} bytes) copied this time, {dropped} no longer needed dropped. The folder \
         holds the secret key (secret.key): keep it as safe as the registry itself.",
        dir.display()
    ))
}

pub async fn restore(config: &Config, dir: &Path) -> Result<String, String> {
    let to = embedded(config)?;
    crate::bootstrap::make_private_dir(&config.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", config.data_dir.display()))?;
    let mut progress = |line: String| eprintln!("berth restore: {line}");
    let RestoreSummary { blobs, bytes } = backup::restore(dir, &to, &mut progress)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "restored from {}: the database and {blobs} blobs ({bytes} bytes), every digest \
         checked. Start berth with this configuration.",
        dir.display()
    ))
}
