//! Secrets at rest: what berth must give back in clear (registry endpoint
//! credentials, webhook `Authorization` headers, the directory's and the
//! mail server's passwords) is sealed with AES-256-GCM under a key kept
//! outside the database, in a key file (`secrets.key_file`, by default
//! `<data_dir>/secret.key`, mode 0600), as Harbor's `secretkey`. A copy of
//! the database without that file reveals none of them. Password hashes
//! and robot secrets are hashes already and stay so.
//!
//! - A sealed value reads `sealed:v1:<key id>:<base64 of nonce, ciphertext
//!   and tag>`. Its associated data binds it to where it is used (the
//!   setting's name; the endpoint's or receiver's URL), so a value moved in
//!   the database to another row does not open: a credential is never sent
//!   to a URL it was not stored for.
//! - The database records which key seals (table `secret_key`), checked at
//!   every start: an instance with another key file refuses to start
//!   rather than seal what the others cannot open.
//! - The key file may hold several keys, newest first: `rotate` adds the
//!   new one, reseals everything in one transaction and then drops the
//!   old, so a crash at any point leaves every value openable. A process
//!   that meets a key id it lacks reads the file again.
//! - Values stored in clear by earlier versions are sealed at start.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest as _, Sha256};
use sqlx::AnyConnection;

use crate::error::StorageError;
use crate::meta::Meta;

const PREFIX: &str = "sealed:v1:";
const KEY_LEN: usize = 32;
/// The key file's first line; each key follows on a line of its own.
const HEADER: &str = "# berth secret key: it opens the secrets stored in the database. Keep \
it with backups, apart from the database; every instance sharing the database needs a copy.";

/// One key and its id (a hash of it, safe to show and to store).
struct Key {
    id: String,
    aead: LessSafeKey,
}

impl Key {
    fn new(bytes: &[u8]) -> Result<Key, String> {
        if bytes.len() != KEY_LEN {
            return Err(format!(
                "a key must be {KEY_LEN} bytes, found {}",
                bytes.len()
            ));
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| "not an AES-256 key")?;
        let mut h = Sha256::new();
        h.update(b"berth secret key id\0");
        h.update(bytes);
        Ok(Key {
            id: hex::encode(&h.finalize()[..8]),
            aead: LessSafeKey::new(unbound),
        })
    }
}

/// The keys that open sealed values, and the file they came from.
pub struct Keyring {
    path: Option<PathBuf>,
    keys: RwLock<Vec<Key>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("path", &self.path)
            .field("keys", &self.ids())
            .finish()
    }
}

/// Where a sealed value is used: part of what it is sealed with.
#[derive(Debug, Clone, Copy)]
pub enum Purpose<'a> {
    /// A registry endpoint's secret, for the endpoint's URL.
    EndpointSecret { url: &'a str },
    /// A webhook receiver's `Authorization` header, for its address.
    WebhookAuth { address: &'a str },
    /// A setting changed at run time (`/configurations`), by name.
    Setting { key: &'a str },
}

impl Purpose<'_> {
    fn aad(&self) -> Vec<u8> {
        match self {
            Purpose::EndpointSecret { url } => format!("registries.access_secret\n{url}"),
            Purpose::WebhookAuth { address } => format!("webhook_policies.auth_header\n{address}"),
            Purpose::Setting { key } => format!("configuration\n{key}"),
        }
        .into_bytes()
    }
}

/// True when `value` is sealed (as opposed to clear text from before).
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(PREFIX)
}

fn random(bytes: &mut [u8]) -> Result<(), StorageError> {
    SystemRandom::new()
        .fill(bytes)
        .map_err(|_| StorageError::Secrets("the system's random generator failed".into()))
}

impl Keyring {
    /// No key: sealing fails and sealed values do not open (tools that
    /// never touch secrets, and tests).
    pub fn none() -> Keyring {
        Keyring {
            path: None,
            keys: RwLock::new(Vec::new()),
        }
    }

    /// A new random key held in memory only (tests).
    pub fn ephemeral() -> Result<Keyring, StorageError> {
        let mut bytes = [0u8; KEY_LEN];
        random(&mut bytes)?;
        Ok(Keyring {
            path: None,
            keys: RwLock::new(vec![Key::new(&bytes).map_err(StorageError::Secrets)?]),
        })
    }

    /// The key file at `path`, or `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<Keyring>, StorageError> {
        match read_keys(path)? {
            None => Ok(None),
            Some(keys) => Ok(Some(Keyring {
                path: Some(path.to_owned()),
                keys: RwLock::new(keys),
            })),
        }
    }

    /// Writes a new key file at `path` (which must not exist yet).
    pub fn create(path: &Path) -> Result<Keyring, StorageError> {
        let mut bytes = [0u8; KEY_LEN];
        random(&mut bytes)?;
        write_key_file(path, &[bytes.to_vec()], true)?;
        Keyring::load(path)?.ok_or_else(|| {
            StorageError::Secrets(format!("{} vanished after it was written", path.display()))
        })
    }

    /// The ids of the keys held, newest first.
    pub fn ids(&self) -> Vec<String> {
        self.keys
            .read()
            .map(|keys| keys.iter().map(|k| k.id.clone()).collect())
            .unwrap_or_default()
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether the key `id` is held, reading the file again if not (it may
    /// have been rotated by another process).
    pub fn has(&self, id: &str) -> bool {
        self.holds(id) || (self.reload() && self.holds(id))
    }

    fn holds(&self, id: &str) -> bool {
        self.keys
            .read()
            .is_ok_and(|keys| keys.iter().any(|k| k.id == id))
    }

    /// Reads the key file again; true when it could. Keys this process
    /// held and the file no longer lists are kept (a value it sealed a
    /// moment ago may still be on its way to the database).
    fn reload(&self) -> bool {
        let Some(Ok(Some(mut keys))) = self.path.as_deref().map(read_keys) else {
            return false;
        };
        let Ok(mut held) = self.keys.write() else {
            return false;
        };
        for key in std::mem::take(&mut *held) {
            if !keys.iter().any(|k| k.id == key.id) {
                keys.push(key);
            }
        }
        *held = keys;
        true
    }

    /// Seals `clear` with the key `id` for `purpose`.
    pub fn seal(
        &self,
        id: &str,
        purpose: Purpose<'_>,
        clear: &str,
    ) -> Result<String, StorageError> {
        if !self.has(id) {
            return Err(missing(id, self.path.as_deref()));
        }
        let keys = self.keys.read().map_err(|_| poisoned())?;
        let key = keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| missing(id, self.path.as_deref()))?;
        let mut nonce = [0u8; NONCE_LEN];
        random(&mut nonce)?;
        let mut data = clear.as_bytes().to_vec();
        key.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose.aad()),
                &mut data,
            )
            .map_err(|_| StorageError::Secrets("sealing failed".into()))?;
        let mut all = nonce.to_vec();
        all.extend(data);
        Ok(format!("{PREFIX}{id}:{}", STANDARD_NO_PAD.encode(all)))
    }

    /// Opens a stored value: a sealed one with its key, clear text (from
    /// before secrets were sealed) as it is.
    pub fn open(&self, purpose: Purpose<'_>, stored: &str) -> Result<String, StorageError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let (id, body) = rest
            .split_once(':')
            .ok_or_else(|| StorageError::Corrupt("a sealed secret without its key id".into()))?;
        if !self.has(id) {
            return Err(missing(id, self.path.as_deref()));
        }
        let mut data = STANDARD_NO_PAD
            .decode(body)
            .map_err(|_| StorageError::Corrupt("a sealed secret that is not base64".into()))?;
        if data.len() < NONCE_LEN {
            return Err(StorageError::Corrupt("a sealed secret too short".into()));
        }
        let sealed = data.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&data)
            .map_err(|_| StorageError::Corrupt("a sealed secret's nonce".into()))?;
        let keys = self.keys.read().map_err(|_| poisoned())?;
        let key = keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| missing(id, self.path.as_deref()))?;
        let mut sealed = sealed;
        let clear = key
            .aead
            .open_in_place(nonce, Aad::from(purpose.aad()), &mut sealed)
            .map_err(|_| {
                StorageError::Corrupt(
                    "a sealed secret does not open with its key here: it was changed or moved in \
                     the database; store it again"
                        .into(),
                )
            })?;
        String::from_utf8(clear.to_vec())
            .map_err(|_| StorageError::Corrupt("a sealed secret that is not text".into()))
    }
}

impl Keyring {
    /// [`Keyring::open`] for a value read back for use: one that does not
    /// open (changed or moved in the database) reads as empty, with a
    /// warning naming `what`, so the rest of its row, and of the listing,
    /// stays usable and the secret can be set again. A missing key is
    /// still an error: that is the key file's fault, not the value's.
    pub(crate) fn open_or_warn(
        &self,
        purpose: Purpose<'_>,
        stored: &str,
        what: &str,
    ) -> Result<String, StorageError> {
        match self.open(purpose, stored) {
            Err(StorageError::Corrupt(why)) => {
                tracing::warn!(what, "{why}");
                Ok(String::new())
            }
            other => other,
        }
    }
}

fn poisoned() -> StorageError {
    StorageError::Secrets("the key ring's lock was poisoned".into())
}

fn missing(id: &str, path: Option<&Path>) -> StorageError {
    StorageError::Secrets(match path {
        Some(path) => format!(
            "the database's secrets are sealed with key {id}, which {} does not hold: copy the \
             key file from another instance sharing this database (or from the backup taken \
             with this database)",
            path.display()
        ),
        None => format!("no key to open secrets sealed with key {id}"),
    })
}

/// The keys in the file at `path`, newest first; `None` when it is absent.
fn read_keys(path: &Path) -> Result<Option<Vec<Key>>, StorageError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StorageError::Io {
                context: format!("reading the secret key file {}", path.display()),
                source: e,
            })
        }
    };
    let bad = |why: String| {
        StorageError::Secrets(format!(
            "the secret key file {} is not one berth wrote: {why}",
            path.display()
        ))
    };
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let encoded = line
            .strip_prefix("v1 ")
            .ok_or_else(|| bad("a line does not start with `v1 `".into()))?;
        let bytes = STANDARD_NO_PAD
            .decode(encoded.trim().trim_end_matches('='))
            .map_err(|_| bad("a key is not base64".into()))?;
        keys.push(Key::new(&bytes).map_err(bad)?);
    }
    if keys.is_empty() {
        return Err(bad("it holds no key".into()));
    }
    Ok(Some(keys))
}

/// Writes the key file (mode 0600) through a temp file and a rename, so a
/// crash leaves the old file or the new one, never half of one.
fn write_key_file(path: &Path, keys: &[Vec<u8>], create_new: bool) -> Result<(), StorageError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |what: &str| {
        let context = format!("{what} the secret key file {}", path.display());
        move |source| StorageError::Io { context, source }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io("creating the folder of"))?;
    }
    let mut text = format!("{HEADER}\n");
    for key in keys {
        text.push_str(&format!("v1 {}\n", STANDARD_NO_PAD.encode(key)));
    }
    let temp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(io("writing"))?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    drop(file);
    let placed = written.and_then(|()| {
        if create_new {
            // Two processes starting at once must not both win.
            std::fs::hard_link(&temp, path)
        } else {
            std::fs::rename(&temp, path)
        }
    });
    let _ = std::fs::remove_file(&temp);
    placed.map_err(io("writing"))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing the folder of"))?;
    }
    Ok(())
}

/// The key the database says seals, as a connection inside a write
/// transaction sees it (so a rotation cannot slip in between).
pub(crate) async fn sealing_key(conn: &mut AnyConnection) -> Result<Option<String>, StorageError> {
    Ok(
        sqlx::query_scalar("SELECT key_id FROM secret_key WHERE only_row = 1")
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Seals `clear` for `purpose` with the key the database names, inside
/// the caller's write transaction.
pub(crate) async fn seal_in(
    keyring: &Keyring,
    conn: &mut AnyConnection,
    purpose: Purpose<'_>,
    clear: &str,
) -> Result<String, StorageError> {
    let id = sealing_key(conn).await?.ok_or_else(|| {
        StorageError::Secrets("no secret key is recorded in the database yet".into())
    })?;
    keyring.seal(&id, purpose, clear)
}

mod stored;

pub use stored::{Rotated, SECRET_SETTINGS};

impl Meta {
    /// Opens the key file at `path` for this database, creating the key on
    /// the first start, and seals what earlier versions stored in clear.
    /// Refuses a key file that is not the one the database was sealed with.
    pub async fn open_secrets(&mut self, path: &Path) -> Result<(), StorageError> {
        let recorded = {
            let mut conn = self.pool().acquire().await?;
            sealing_key(&mut conn).await?
        };
        let keyring = match (Keyring::load(path)?, &recorded) {
            (Some(keyring), _) => keyring,
            (None, Some(id)) => return Err(missing(id, Some(path))),
            (None, None) => match Keyring::create(path) {
                Ok(keyring) => keyring,
                // Another process (a tool beside the server) wrote it first.
                Err(_) if path.exists() => {
                    Keyring::load(path)?.ok_or_else(|| missing("?", Some(path)))?
                }
                Err(e) => return Err(e),
            },
        };
        let newest = keyring.ids().first().cloned().unwrap_or_default();
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO secret_key (only_row, key_id) VALUES (1, $1) ON CONFLICT (only_row) DO NOTHING",
        )
        .bind(&newest)
        .execute(&mut *tx)
        .await?;
        let id = sealing_key(&mut tx)
            .await?
            .ok_or_else(|| StorageError::Secrets("the secret key record vanished".into()))?;
        if !keyring.has(&id) {
            return Err(missing(&id, Some(path)));
        }
        self.set_keyring(keyring);
        let sealed = stored::reseal(self, &mut tx, &id, stored::Which::Clear)
            .await?
            .count;
        tx.commit().await?;
        if sealed > 0 && self.backend() == crate::meta::Backend::Sqlite {
            // The clear values an earlier version wrote are still in the
            // file's free pages and in the log: rewrite both (once).
            sqlx::query("VACUUM").execute(self.pool()).await?;
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }

    /// `berth secrets rotate`: a new key seals every secret, and the old
    /// keys leave the key file.
    pub async fn rotate_secrets(&self) -> Result<Rotated, StorageError> {
        stored::rotate(self).await
    }
}

/// The keys of several key files (their texts, newest first), each once,
/// as the text of one key file, and their ids: what opens whatever any of
/// them opened (a backup or a migration that read the file before and
/// after a rotation).
pub fn merged_key_file(texts: &[&[u8]]) -> Result<(Vec<u8>, Vec<String>), StorageError> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for text in texts {
        for key in raw_keys_in(&String::from_utf8_lossy(text)) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    let ids = keys
        .iter()
        .map(|k| key_id(k))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = format!("{HEADER}\n");
    for key in &keys {
        out.push_str(&format!("v1 {}\n", STANDARD_NO_PAD.encode(key)));
    }
    Ok((out.into_bytes(), ids))
}

impl Meta {
    /// The id of the key the database says seals its secrets (none before
    /// the first start of a version that seals them).
    pub async fn sealing_key_id(&self) -> Result<Option<String>, StorageError> {
        let mut conn = self.pool().acquire().await?;
        sealing_key(&mut conn).await
    }
}

/// A new random key's bytes.
fn key_bytes() -> Result<Vec<u8>, StorageError> {
    let mut bytes = vec![0u8; KEY_LEN];
    random(&mut bytes)?;
    Ok(bytes)
}

/// The raw keys in the file at `path`, newest first.
fn raw_keys(path: &Path) -> Result<Vec<Vec<u8>>, StorageError> {
    let text = std::fs::read_to_string(path).map_err(|source| StorageError::Io {
        context: format!("reading the secret key file {}", path.display()),
        source,
    })?;
    Ok(raw_keys_in(&text))
}

/// The raw keys of a key file's text, newest first.
fn raw_keys_in(text: &str) -> Vec<Vec<u8>> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("v1 "))
        .filter_map(|k| STANDARD_NO_PAD.decode(k.trim().trim_end_matches('=')).ok())
        .collect()
}

fn key_id(bytes: &[u8]) -> Result<String, StorageError> {
    Key::new(bytes).map(|k| k.id).map_err(StorageError::Secrets)
}

#[cfg(test)]
mod tests;
