//! Where secrets are stored, for the passes that seal them all: the start
//! (values stored in clear by earlier versions) and `rotate`.

use std::path::PathBuf;

use sqlx::{AnyConnection, Row};

use super::{is_sealed, key_bytes, key_id, raw_keys, write_key_file, Purpose, PREFIX};
use crate::error::StorageError;
use crate::meta::Meta;
use crate::webhooks::Target;

/// The run-time settings (`/configurations`) that are secrets: sealed,
/// never announced to the other instances, never shown.
pub const SECRET_SETTINGS: &[&str] = &["ldap_search_password", "email_password"];

/// Which values a pass seals again.
pub(super) enum Which {
    /// Only those still in clear.
    Clear,
    /// Every value not sealed with the key given.
    NotWith,
}

/// What `berth secrets rotate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// The new key's id.
    pub key_id: String,
    /// The ids of the keys it replaced.
    pub replaced: Vec<String>,
    /// How many stored secrets were sealed again.
    pub resealed: u64,
    /// Stored values that did not open (changed or moved in the
    /// database): left as they were, to be set again.
    pub unreadable: u64,
    /// The key file, to copy to every instance sharing the database.
    pub path: PathBuf,
}

/// Seals again, with the key `id`, the stored secrets `which` names, inside
/// the caller's write transaction.
pub(super) async fn reseal(
    meta: &Meta,
    conn: &mut AnyConnection,
    id: &str,
    which: Which,
) -> Result<Resealed, StorageError> {
    let keyring = meta.keyring();
    let with_id = format!("{PREFIX}{id}:");
    let needs = |v: &str| match which {
        Which::Clear => !is_sealed(v),
        Which::NotWith => !v.starts_with(&with_id),
    };
    // A value that does not open (changed or moved in the database) is
    // left as it is: it is lost either way, and must be set again.
    let mut unreadable = 0u64;
    let mut again = |purpose: Purpose<'_>, v: &str| -> Result<Option<String>, StorageError> {
        match keyring.open(purpose, v) {
            Ok(clear) => keyring.seal(id, purpose, &clear).map(Some),
            Err(StorageError::Corrupt(why)) => {
                tracing::warn!("{why}");
                unreadable += 1;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    };
    let mut count = 0;

    let rows = sqlx::query(
        "SELECT id, url, access_secret FROM registries \
         WHERE access_secret IS NOT NULL AND access_secret <> ''",
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let secret: String = row.try_get("access_secret")?;
        if !needs(&secret) {
            continue;
        }
        let url: String = row.try_get("url")?;
        let Some(sealed) = again(Purpose::EndpointSecret { url: &url }, &secret)? else {
            continue;
        };
        sqlx::query("UPDATE registries SET access_secret = $1 WHERE id = $2")
            .bind(sealed)
            .bind(row.try_get::<i64, _>("id")?)
            .execute(&mut *conn)
            .await?;
        count += 1;
    }

    let rows = sqlx::query("SELECT id, targets FROM webhook_policies")
        .fetch_all(&mut *conn)
        .await?;
    for row in rows {
        let text: String = row.try_get("targets")?;
        let mut targets: Vec<Target> = serde_json::from_str(&text)
            .map_err(|e| StorageError::Corrupt(format!("webhook policy: {e}")))?;
        let mut changed = 0;
        for t in targets.iter_mut() {
            if t.auth_header.is_empty() || !needs(&t.auth_header) {
                continue;
            }
            let purpose = Purpose::WebhookAuth {
                address: &t.address,
            };
            if let Some(sealed) = again(purpose, &t.auth_header)? {
                t.auth_header = sealed;
                changed += 1;
            }
        }
        if changed > 0 {
            sqlx::query("UPDATE webhook_policies SET targets = $1 WHERE id = $2")
                .bind(
                    serde_json::to_string(&targets)
                        .map_err(|e| StorageError::Corrupt(format!("webhook policy: {e}")))?,
                )
                .bind(row.try_get::<i64, _>("id")?)
                .execute(&mut *conn)
                .await?;
            count += changed;
        }
    }

    let rows = sqlx::query("SELECT key, value FROM configuration")
        .fetch_all(&mut *conn)
        .await?;
    for row in rows {
        let key: String = row.try_get("key")?;
        let value: String = row.try_get("value")?;
        if !SECRET_SETTINGS.contains(&key.as_str()) || !needs(&value) {
            continue;
        }
        let Some(sealed) = again(Purpose::Setting { key: &key }, &value)? else {
            continue;
        };
        sqlx::query("UPDATE configuration SET value = $1 WHERE key = $2")
            .bind(sealed)
            .bind(&key)
            .execute(&mut *conn)
            .await?;
        count += 1;
    }
    Ok(Resealed { count, unreadable })
}

/// What a pass sealed again, and how many values it could not open.
pub(super) struct Resealed {
    pub count: u64,
    pub unreadable: u64,
}

/// A new key in the key file, every secret sealed again with it in one
/// transaction (which also records it as the key that seals), then the old
/// keys dropped from the file. A crash at any step leaves a file that opens
/// every stored value: the new key is in the file before anything is
/// sealed with it, and the old ones leave only after nothing needs them.
pub(super) async fn rotate(meta: &Meta) -> Result<Rotated, StorageError> {
    let keyring = meta.keyring();
    let path = keyring
        .path()
        .ok_or_else(|| StorageError::Secrets("no key file to rotate".into()))?
        .to_owned();
    let old = raw_keys(&path)?;
    let replaced = old
        .iter()
        .map(|k| key_id(k))
        .collect::<Result<Vec<_>, _>>()?;
    let new = key_bytes()?;
    let id = key_id(&new)?;
    let mut both = vec![new.clone()];
    both.extend(old);
    write_key_file(&path, &both, false)?;
    if !keyring.has(&id) {
        return Err(StorageError::Secrets(format!(
            "the new key is not in {} after writing it",
            path.display()
        )));
    }
    let mut tx = meta.write().await?;
    sqlx::query("UPDATE secret_key SET key_id = $1 WHERE only_row = 1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    let done = reseal(meta, &mut tx, &id, Which::NotWith).await?;
    tx.commit().await?;
    write_key_file(&path, &[new], false)?;
    Ok(Rotated {
        key_id: id,
        replaced,
        resealed: done.count,
        unreadable: done.unreadable,
        path,
    })
}
