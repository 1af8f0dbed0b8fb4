//! The token signing keys: ES256 (P-256), kept in the data directory with
//! mode 0600, shared by every instance that shares the directory. Each
//! key's RFC 7638 thumbprint is the JWT `kid`, so registries that trust a
//! JWKS (distribution v3) can find it.
//!
//! One key signs (`token-signing-key.pem`). `berth token-key rotate` puts
//! a new one in its place and keeps the old one as retired
//! (`token-signing-key.retired-<unix seconds>-<tag>.pem`): retired keys still
//! verify the tokens they signed until those have expired (refresh tokens
//! live 30 days), then rotation removes them. The swap is a rename, so an
//! instance reading the directory at any moment sees one whole current key.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{DecodingKey, EncodingKey};
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::elliptic_curve::rand_core::OsRng;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use sha2::{Digest, Sha256};

use crate::error::AuthError;

pub const KEY_FILE: &str = "token-signing-key.pem";
/// Held while a rotation runs.
const LOCK_FILE: &str = "token-signing-key.lock";
const RETIRED_PREFIX: &str = "token-signing-key.retired-";
/// A retired key verifies for this long after its retirement: longer than
/// any token it signed lives.
pub const RETIRED_KEEP: Duration = Duration::from_secs(31 * 24 * 3600);

/// A key that verifies tokens.
pub struct PublicKey {
    pub kid: String,
    pub decoding: DecodingKey,
    x: String,
    y: String,
}

/// The key that signs, with its public half.
pub struct SigningKeyPair {
    pub encoding: EncodingKey,
    pub public: PublicKey,
}

/// The signing key and the retired keys that still verify.
pub struct KeyRing {
    pub current: SigningKeyPair,
    pub retired: Vec<PublicKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current.public.kid)
            .field(
                "retired",
                &self.retired.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

fn key_error(path: &Path) -> impl Fn(String) -> AuthError + '_ {
    move |why| AuthError::Key {
        path: path.display().to_string(),
        why,
    }
}

/// Writes a new private key to `path`, whole or not at all: written and
/// synced under a temporary name, then linked in place, which fails if
/// `path` exists (another process won; its key stands).
fn create_key(path: &Path) -> Result<(), AuthError> {
    let err = key_error(path);
    let pem = SigningKey::random(&mut OsRng)
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| err(e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let temp = dir.join(format!(".{KEY_FILE}.new-{}", uuid::Uuid::new_v4()));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut f| f.write_all(pem.as_bytes()).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    written.map_err(|e| err(e.to_string()))
}

fn read_pair(path: &Path) -> Result<SigningKeyPair, AuthError> {
    let err = key_error(path);
    let pem = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let signing = SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
        err(format!(
            "not a PKCS#8 P-256 private key ({e}); move it away to have a new key generated"
        ))
    })?;
    let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| err(e.to_string()))?;
    Ok(SigningKeyPair {
        encoding,
        public: public_key(signing.verifying_key()).map_err(err)?,
    })
}

fn public_key(key: &VerifyingKey) -> Result<PublicKey, String> {
    let point = key.to_encoded_point(false);
    let enc =
        |b: Option<&p256::FieldBytes>| b.map(|b| URL_SAFE_NO_PAD.encode(b)).unwrap_or_default();
    let (x, y) = (enc(point.x()), enc(point.y()));
    // RFC 7638: SHA-256 over the required members in lexical order.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|e| e.to_string())?;
    Ok(PublicKey {
        kid,
        decoding,
        x,
        y,
    })
}

/// When a retired key file was retired, from its name.
fn retired_at(name: &str) -> Option<u64> {
    name.strip_prefix(RETIRED_PREFIX)?
        .strip_suffix(".pem")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn retired_files(data_dir: &Path) -> Vec<(PathBuf, u64)> {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            retired_at(&name).map(|at| (e.path(), at))
        })
        .collect()
}

impl KeyRing {
    /// Loads the keys of `data_dir`, creating the signing key on first
    /// start (several instances starting at once agree on one).
    pub fn load_or_create(data_dir: &Path) -> Result<KeyRing, AuthError> {
        let path = data_dir.join(KEY_FILE);
        if !path.exists() {
            match create_key(&path) {
                Ok(()) => {}
                // Another instance created it first: that one is the key.
                Err(_) if path.exists() => {}
                Err(e) => return Err(e),
            }
        }
        KeyRing::load(data_dir)
    }

    /// Loads the signing key and the retired keys still within their time.
    pub fn load(data_dir: &Path) -> Result<KeyRing, AuthError> {
        let current = read_pair(&data_dir.join(KEY_FILE))?;
        let now = unix_now();
        let mut retired = Vec::new();
        for (path, at) in retired_files(data_dir) {
            if now.saturating_sub(at) > RETIRED_KEEP.as_secs() {
                continue;
            }
            match read_pair(&path) {
                Ok(pair) if pair.public.kid != current.public.kid => retired.push(pair.public),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "a retired token key cannot be read; tokens it signed are refused")
                }
            }
        }
        Ok(KeyRing { current, retired })
    }

    /// Replaces the signing key with a new one, keeping the old one as
    /// retired, and removes retired keys past [`RETIRED_KEEP`]. Returns
    /// the old and the new key ids.
    pub fn rotate(data_dir: &Path) -> Result<(String, String), AuthError> {
        let path = data_dir.join(KEY_FILE);
        // One rotation at a time: two at once would both retire the same
        // key, and the first one's new key would be lost.
        let lock_path = data_dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| key_error(&lock_path)(e.to_string()))?;
        lock.lock()
            .map_err(|e| key_error(&lock_path)(e.to_string()))?;
        let old = read_pair(&path)?;
        let now = unix_now();
        // Unique even for two rotations within one second.
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let retired = data_dir.join(format!("{RETIRED_PREFIX}{now}-{}.pem", &tag[..8]));
        // The old key gets its retired name first (a second link to the
        // same file), then the new key takes the current name in one
        // rename: readers see the old or the new key, never none.
        std::fs::hard_link(&path, &retired).map_err(|e| key_error(&retired)(e.to_string()))?;
        let fresh = data_dir.join(format!(".{KEY_FILE}.rotated-{}", uuid::Uuid::new_v4()));
        create_key(&fresh)?;
        std::fs::rename(&fresh, &path).map_err(|e| key_error(&path)(e.to_string()))?;
        if let Ok(dir) = std::fs::File::open(data_dir) {
            let _ = dir.sync_all();
        }
        for (file, at) in retired_files(data_dir) {
            if now.saturating_sub(at) > RETIRED_KEEP.as_secs() {
                let _ = std::fs::remove_file(file);
            }
        }
        let new = read_pair(&path)?;
        Ok((old.public.kid, new.public.kid))
    }

    /// The key that verifies tokens with this `kid`.
    pub fn verifier(&self, kid: &str) -> Option<&DecodingKey> {
        std::iter::once(&self.current.public)
            .chain(&self.retired)
            .find(|k| k.kid == kid)
            .map(|k| &k.decoding)
    }

    /// Every key that verifies, as a JWKS (the signing key first).
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = std::iter::once(&self.current.public)
            .chain(&self.retired)
            .map(|k| {
                serde_json::json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": k.x,
                    "y": k.y,
                    "kid": k.kid,
                    "use": "sig",
                    "alg": "ES256",
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_once_with_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let a = KeyRing::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = KeyRing::load_or_create(dir.path()).unwrap();
        assert_eq!(a.current.public.kid, b.current.public.kid);
        assert_eq!(a.current.public.kid.len(), 43);
        assert_eq!(
            a.jwks()["keys"][0]["kid"],
            serde_json::json!(a.current.public.kid)
        );
    }

    #[test]
    fn concurrent_rotations_lose_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let first = KeyRing::load_or_create(dir.path()).unwrap();
        let results: Vec<(String, String)> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| KeyRing::rotate(dir.path()).unwrap()))
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let ring = KeyRing::load(dir.path()).unwrap();
        // Each rotation retired the key the one before it made.
        let mut retired: Vec<&str> = results.iter().map(|(old, _)| old.as_str()).collect();
        retired.sort();
        retired.dedup();
        assert_eq!(retired.len(), 4, "{results:?}");
        assert!(retired.contains(&first.current.public.kid.as_str()));
        for (old, new) in &results {
            assert!(ring.verifier(old).is_some() && ring.verifier(new).is_some());
        }
        assert_eq!(ring.retired.len(), 4);
    }

    #[test]
    fn garbage_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), "nope").unwrap();
        let e = KeyRing::load_or_create(dir.path()).unwrap_err();
        assert!(e.to_string().contains(KEY_FILE), "{e}");
    }

    #[test]
    fn rotation_keeps_the_old_key_for_verification_until_it_is_due() {
        let dir = tempfile::tempdir().unwrap();
        let first = KeyRing::load_or_create(dir.path()).unwrap();
        let (old, new) = KeyRing::rotate(dir.path()).unwrap();
        assert_eq!(old, first.current.public.kid);
        assert_ne!(old, new);
        let ring = KeyRing::load(dir.path()).unwrap();
        assert_eq!(ring.current.public.kid, new);
        assert!(ring.verifier(&old).is_some() && ring.verifier(&new).is_some());
        let jwks = ring.jwks();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, [new.as_str(), old.as_str()]);
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A key retired longer ago than any token lives verifies nothing
        // and goes at the next rotation.
        let long_ago = unix_now() - RETIRED_KEEP.as_secs() - 10;
        let stale = dir.path().join(format!("{RETIRED_PREFIX}{long_ago}.pem"));
        create_key(&stale).unwrap();
        let ring = KeyRing::load(dir.path()).unwrap();
        assert_eq!(ring.retired.len(), 1);
        KeyRing::rotate(dir.path()).unwrap();
        assert!(!stale.exists());
        assert_eq!(KeyRing::load(dir.path()).unwrap().retired.len(), 2);
    }
}
