//! The token signing key: ES256 (P-256), generated on first start and kept
//! in the data directory with mode 0600. Its RFC 7638 thumbprint is the
//! JWT `kid`, so registries that trust a JWKS (distribution v3) can find it.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::elliptic_curve::rand_core::OsRng;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use sha2::{Digest, Sha256};

use crate::error::AuthError;

pub const KEY_FILE: &str = "token-signing-key.pem";

pub struct SigningKeyPair {
    pub signing: SigningKey,
    pub verifying: VerifyingKey,
    pub kid: String,
}

impl std::fmt::Debug for SigningKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyPair")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKeyPair {
    /// Loads `<data_dir>/token-signing-key.pem`, creating it on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<SigningKeyPair, AuthError> {
        let path = data_dir.join(KEY_FILE);
        let err = |why: String| AuthError::Key {
            path: path.display().to_string(),
            why,
        };
        let signing = match std::fs::read_to_string(&path) {
            Ok(pem) => SigningKey::from_pkcs8_pem(&pem)
                .map_err(|e| err(format!("not a PKCS#8 P-256 private key ({e}); move it away to have a new key generated")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = SigningKey::random(&mut OsRng);
                let pem = key
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| err(e.to_string()))?;
                std::fs::create_dir_all(data_dir).map_err(|e| err(e.to_string()))?;
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| err(e.to_string()))?;
                f.write_all(pem.as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| err(e.to_string()))?;
                key
            }
            Err(e) => return Err(err(e.to_string())),
        };
        let verifying = *signing.verifying_key();
        let kid = thumbprint(&verifying);
        Ok(SigningKeyPair {
            signing,
            verifying,
            kid,
        })
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> serde_json::Value {
        let (x, y) = coordinates(&self.verifying);
        serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": x,
            "y": y,
            "kid": self.kid,
            "use": "sig",
            "alg": "ES256",
        })
    }
}

fn coordinates(key: &VerifyingKey) -> (String, String) {
    let point = key.to_encoded_point(false);
    let enc =
        |b: Option<&p256::FieldBytes>| b.map(|b| URL_SAFE_NO_PAD.encode(b)).unwrap_or_default();
    (enc(point.x()), enc(point.y()))
}

/// RFC 7638: SHA-256 over the required members in lexical order.
fn thumbprint(key: &VerifyingKey) -> String {
    let (x, y) = coordinates(key);
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_once_with_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let a = SigningKeyPair::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = SigningKeyPair::load_or_create(dir.path()).unwrap();
        assert_eq!(a.kid, b.kid);
        assert_eq!(a.kid.len(), 43);
        assert_eq!(a.jwk()["kid"], serde_json::json!(a.kid));
    }

    #[test]
    fn garbage_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), "nope").unwrap();
        let e = SigningKeyPair::load_or_create(dir.path()).unwrap_err();
        assert!(e.to_string().contains(KEY_FILE), "{e}");
    }
}
