//! JSON Web Tokens as berth's token service writes them (ES256 over a P-256
//! key): decode them, verify them against a JWK, and forge new ones with a
//! key of the test's choosing.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::rand_core::OsRng;
use p256::pkcs8::DecodePrivateKey;
use serde_json::Value;

/// The file in the data directory that holds berth's signing key.
pub const KEY_FILE: &str = "token-signing-key.pem";

/// base64url without padding, as JWTs use it.
pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

pub fn b64url_decode(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text)
        .unwrap_or_else(|e| panic!("not base64url ({e}): {text:?}"))
}

/// The header and the claims of a compact JWT (not verified).
pub fn decode(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts: {token:?}");
    let json = |part: &str| -> Value {
        serde_json::from_slice(&b64url_decode(part))
            .unwrap_or_else(|e| panic!("JWT part is not JSON ({e}): {part:?}"))
    };
    (json(parts[0]), json(parts[1]))
}

/// The claims of a compact JWT (not verified).
pub fn claims(token: &str) -> Value {
    decode(token).1
}

/// `header.claims` signed with ES256 by `key`.
pub fn sign(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let signed = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig: Signature = key.sign(signed.as_bytes());
    format!("{signed}.{}", b64url(&sig.to_bytes()))
}

/// Whether the token's ES256 signature verifies with `key`.
pub fn verifies(token: &str, key: &VerifyingKey) -> bool {
    let Some((signed, sig)) = token.rsplit_once('.') else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(&b64url_decode(sig)) else {
        return false;
    };
    key.verify(signed.as_bytes(), &sig).is_ok()
}

/// berth's own signing key, read from `<data_dir>/token-signing-key.pem`.
pub fn server_key(data_dir: &Path) -> SigningKey {
    let path = data_dir.join(KEY_FILE);
    let pem =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    SigningKey::from_pkcs8_pem(&pem)
        .unwrap_or_else(|e| panic!("{} is not a PKCS#8 P-256 key: {e}", path.display()))
}

/// A fresh P-256 key that berth has never seen.
pub fn random_key() -> SigningKey {
    SigningKey::random(&mut OsRng)
}

/// The public key of an EC P-256 JWK (`kty`, `crv`, `x`, `y`).
pub fn jwk_key(jwk: &Value) -> VerifyingKey {
    assert_eq!(jwk["kty"], "EC", "JWK kty: {jwk}");
    assert_eq!(jwk["crv"], "P-256", "JWK crv: {jwk}");
    let coordinate = |name: &str| {
        let bytes = b64url_decode(jwk[name].as_str().unwrap_or_else(|| panic!("JWK {name}")));
        assert_eq!(bytes.len(), 32, "JWK {name} is 32 bytes: {jwk}");
        bytes
    };
    let mut sec1 = vec![4u8];
    sec1.extend(coordinate("x"));
    sec1.extend(coordinate("y"));
    VerifyingKey::from_sec1_bytes(&sec1)
        .unwrap_or_else(|e| panic!("JWK is not a P-256 point ({e}): {jwk}"))
}

/// The RFC 7638 thumbprint of an EC JWK: SHA-256 over the required members
/// in lexical order, base64url.
pub fn thumbprint(jwk: &Value) -> String {
    use sha2::{Digest, Sha256};
    let canonical = format!(
        r#"{{"crv":"{}","kty":"{}","x":"{}","y":"{}"}}"#,
        jwk["crv"].as_str().unwrap_or_default(),
        jwk["kty"].as_str().unwrap_or_default(),
        jwk["x"].as_str().unwrap_or_default(),
        jwk["y"].as_str().unwrap_or_default()
    );
    b64url(&Sha256::digest(canonical.as_bytes()))
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
