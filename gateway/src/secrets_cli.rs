//! `berth secrets rotate`: a new key seals every stored secret (see
//! `berth_storage::secrets`). Safe while the server runs: a process that
//! meets the new key id reads the key file again.

use berth_storage::meta::Meta;
use berth_storage::secrets::Rotated;

pub async fn rotate(meta: &Meta) -> Result<String, String> {
    let Rotated {
        key_id,
        replaced,
        resealed,
        unreadable,
        path,
    } = meta.rotate_secrets().await.map_err(|e| e.to_string())?;
    let lost = if unreadable > 0 {
        format!(
            " {unreadable} stored values did not open (changed in the database) and were left \
             as they were: set those again (the log names them)."
        )
    } else {
        String::new()
    };
    Ok(format!(
        "{resealed} stored secrets are now sealed with key {key_id}; key {} is gone from {}. \
         Copy {} to every other instance sharing this database (each reads it again when it \
         meets the new key) and keep a copy with your backups: without it the secrets in the \
         database cannot be read.{lost}",
        replaced.join(", "),
        path.display(),
        path.display()
    ))
}
