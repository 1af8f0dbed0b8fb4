//! Registry tokens: JWTs signed with ES256, as distribution's token auth
//! specifies (claims iss, sub, aud, exp, nbf, iat, jti, access).
//!
//! Verification checks the algorithm, key id, signature, issuer, audience
//! and validity window. A verified token is cached by its text, so repeat
//! requests with the same token do no crypto; the validity window is
//! re-checked on every hit.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use berth_policy::Access;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::Signature;
use serde_json::{json, Value};

use crate::error::AuthError;
use crate::keys::SigningKeyPair;
use crate::scope::{claim_entry, from_claim_entry};
use crate::stats::CacheStats;

/// Clock skew tolerated between issuer and verifier.
const LEEWAY_SECS: i64 = 10;
/// Verified tokens remembered at most.
const MAX_CACHED_TOKENS: usize = 100_000;
/// Refresh tokens (docker's "identity token") live this long.
const REFRESH_TTL_SECS: i64 = 30 * 24 * 3600;

/// A verified access token.
#[derive(Debug, Clone)]
pub struct Verified {
    pub subject: String,
    pub access: Vec<Access>,
    pub expires_at: i64,
    pub not_before: i64,
}

/// A freshly issued token and its metadata for the response.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: String,
    pub expires_in: u64,
    pub issued_at: String,
}

pub struct TokenService {
    keys: SigningKeyPair,
    issuer: String,
    service: String,
    ttl: Duration,
    /// Verified tokens by their text. A plain map behind a read-mostly
    /// lock: a hit is one hash and one shared lock, cheaper than a general
    /// cache on a path every request takes. Entries expire with the token
    /// (checked on each hit); the map is swept when it grows large.
    cache: RwLock<HashMap<Box<str>, Arc<Verified>>>,
    cache_stats: CacheStats,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl TokenService {
    pub fn new(keys: SigningKeyPair, issuer: &str, service: &str, ttl: Duration) -> TokenService {
        TokenService {
            keys,
            issuer: issuer.to_owned(),
            service: service.to_owned(),
            ttl,
            cache: RwLock::default(),
            cache_stats: CacheStats::default(),
        }
    }

    /// Loads (or creates) the key in `data_dir` and builds the service.
    pub fn open(
        data_dir: &Path,
        issuer: &str,
        service: &str,
        ttl: Duration,
    ) -> Result<TokenService, AuthError> {
        Ok(TokenService::new(
            SigningKeyPair::load_or_create(data_dir)?,
            issuer,
            service,
            ttl,
        ))
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// The public keys, as `/service/jwks` publishes them.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.keys.jwk()] })
    }

    fn sign(&self, claims: &Value) -> String {
        let header = json!({ "alg": "ES256", "typ": "JWT", "kid": self.keys.kid });
        let mut out = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig: Signature = self.keys.signing.sign(out.as_bytes());
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig.to_bytes()));
        out
    }

    fn base_claims(&self, subject: &str, iat: i64, exp: i64) -> Value {
        json!({
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": exp,
            "nbf": iat,
            "iat": iat,
            "jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    /// An access token for `subject` (empty for anonymous) with `access`.
    pub fn issue(&self, subject: &str, access: &[Access]) -> Issued {
        self.issue_until(subject, access, None)
    }

    /// `issue`, expiring no later than `not_after` (Unix seconds; a
    /// robot's own expiry, so that its tokens end with it).
    pub fn issue_until(&self, subject: &str, access: &[Access], not_after: Option<i64>) -> Issued {
        let iat = now();
        let mut ttl = self.ttl.as_secs() as i64;
        if let Some(end) = not_after.filter(|t| *t >= 0) {
            ttl = ttl.min(end - iat).max(0);
        }
        let mut claims = self.base_claims(subject, iat, iat + ttl);
        claims["access"] = Value::Array(access.iter().map(claim_entry).collect());
        Issued {
            token: self.sign(&claims),
            expires_in: ttl as u64,
            issued_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        }
    }

    /// A refresh token: proves a past login of `subject` with the
    /// credential whose fingerprint is `credential` (`Identity::credential`),
    /// grants nothing by itself. A new password or secret changes the
    /// fingerprint, and with it every refresh token issued before.
    pub fn issue_refresh(&self, subject: &str, credential: &str) -> String {
        let iat = now();
        let mut claims = self.base_claims(subject, iat, iat + REFRESH_TTL_SECS);
        claims["typ"] = json!("refresh");
        claims["cred"] = json!(credential);
        self.sign(&claims)
    }

    /// Verifies an access token (cached).
    pub fn verify(&self, token: &str) -> Result<Arc<Verified>, AuthError> {
        let t = now();
        let hit = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned();
        if let Some(v) = hit {
            self.cache_stats.hit();
            check_window(v.not_before, v.expires_at, t)?;
            return Ok(v);
        }
        self.cache_stats.miss();
        let claims = self.verify_signed(token)?;
        if claims.get("typ").and_then(Value::as_str) == Some("refresh") {
            return Err(AuthError::TokenInvalid(
                "a refresh token cannot be used as an access token".into(),
            ));
        }
        let access = match claims.get("access") {
            Some(Value::Array(entries)) => entries.iter().filter_map(from_claim_entry).collect(),
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err(AuthError::TokenInvalid("malformed access claim".into())),
        };
        let v = Arc::new(Verified {
            subject: claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            access,
            expires_at: int_claim(&claims, "exp")?,
            not_before: claims
                .get("nbf")
                .and_then(Value::as_i64)
                .unwrap_or(i64::MIN),
        });
        check_window(v.not_before, v.expires_at, t)?;
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED_TOKENS {
            cache.retain(|_, c| c.expires_at + LEEWAY_SECS >= t);
            if cache.len() >= MAX_CACHED_TOKENS {
                cache.clear();
            }
        }
        cache.insert(token.into(), v.clone());
        Ok(v)
    }

    /// The subject of a token this service already verified and whose
    /// validity window has not closed; `None` otherwise (also for the
    /// anonymous subject). A cache lookup only: no crypto, not counted as a
    /// cache hit. For the access log, after a handler verified the token.
    pub fn verified_subject(&self, token: &str) -> Option<String> {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        let v = cache.get(token)?;
        check_window(v.not_before, v.expires_at, now()).ok()?;
        Some(v.subject.clone()).filter(|s| !s.is_empty())
    }

    /// Hits and misses of the verified-token cache.
    pub fn cache_stats(&self) -> &CacheStats {
        &self.cache_stats
    }

    /// Verifies a refresh token; returns its subject and the credential
    /// fingerprint it was issued for (tokens from before fingerprints were
    /// recorded have none, and match no account).
    pub fn verify_refresh(&self, token: &str) -> Result<(String, String), AuthError> {
        let claims = self.verify_signed(token)?;
        if claims.get("typ").and_then(Value::as_str) != Some("refresh") {
            return Err(AuthError::TokenInvalid("not a refresh token".into()));
        }
        let nbf = claims
            .get("nbf")
            .and_then(Value::as_i64)
            .unwrap_or(i64::MIN);
        check_window(nbf, int_claim(&claims, "exp")?, now())?;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| AuthError::TokenInvalid("refresh token without subject".into()))?;
        let credential = claims
            .get("cred")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        Ok((subject, credential))
    }

    /// Signature, algorithm, key id, issuer and audience; returns claims.
    fn verify_signed(&self, token: &str) -> Result<Value, AuthError> {
        let invalid = |why: &str| AuthError::TokenInvalid(why.to_owned());
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("not a JWT"));
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| invalid("bad base64"))
        };
        let header: Value =
            serde_json::from_slice(&decode(h)?).map_err(|_| invalid("bad header"))?;
        // Only ES256 with our key: this refuses `alg: none` and any
        // algorithm-confusion trick before anything else is read.
        if header.get("alg").and_then(Value::as_str) != Some("ES256") {
            return Err(invalid("unsupported algorithm"));
        }
        if header.get("kid").and_then(Value::as_str) != Some(self.keys.kid.as_str()) {
            return Err(invalid("unknown signing key"));
        }
        let sig = Signature::from_slice(&decode(s)?).map_err(|_| invalid("bad signature"))?;
        let signed = &token[..h.len() + 1 + p.len()];
        self.keys
            .verifying
            .verify(signed.as_bytes(), &sig)
            .map_err(|_| invalid("bad signature"))?;
        let claims: Value =
            serde_json::from_slice(&decode(p)?).map_err(|_| invalid("bad claims"))?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(invalid("wrong issuer"));
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == &self.service,
            Some(Value::Array(list)) => list
                .iter()
                .any(|a| a.as_str() == Some(self.service.as_str())),
            _ => false,
        };
        if !aud_ok {
            return Err(invalid("wrong audience"));
        }
        Ok(claims)
    }
}

fn int_claim(claims: &Value, name: &str) -> Result<i64, AuthError> {
    claims
        .get(name)
        .and_then(Value::as_i64)
        .ok_or_else(|| AuthError::TokenInvalid(format!("missing {name} claim")))
}

fn check_window(nbf: i64, exp: i64, now: i64) -> Result<(), AuthError> {
    if now > exp + LEEWAY_SECS {
        return Err(AuthError::TokenInvalid(
            "token expired; log in again".into(),
        ));
    }
    if now + LEEWAY_SECS < nbf {
        return Err(AuthError::TokenInvalid("token not yet valid".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_policy::{Action, Target};

    fn service(dir: &Path) -> TokenService {
        TokenService::open(dir, "berth", "berth-registry", Duration::from_secs(300)).unwrap()
    }

    fn access() -> Vec<Access> {
        vec![Access {
            target: Target::Repository("team/app".into()),
            actions: vec![Action::Pull, Action::Push],
        }]
    }

    /// Re-signs arbitrary claims with the service's own key.
    fn forge(s: &TokenService, header: Value, claims: Value) -> String {
        let mut out = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig: Signature = s.keys.signing.sign(out.as_bytes());
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig.to_bytes()));
        out
    }

    fn claims(s: &TokenService, iss: &str, aud: &str, nbf: i64, exp: i64) -> Value {
        json!({"iss": iss, "sub": "alice", "aud": aud, "exp": exp, "nbf": nbf, "iat": nbf, "jti": "x",
               "access": [{"type": "repository", "name": "team/app", "actions": ["pull"]}], "_s": s.service})
    }

    #[test]
    fn issue_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let s = service(dir.path());
        let t = s.issue("alice", &access());
        assert_eq!(t.expires_in, 300);
        let v = s.verify(&t.token).unwrap();
        assert_eq!(v.subject, "alice");
        assert_eq!(v.access, access());
        // Cached path answers the same.
        assert_eq!(s.verify(&t.token).unwrap().access, access());
        // Public key in the JWKS carries the header's kid.
        assert_eq!(s.jwks()["keys"][0]["kid"], json!(s.keys.kid));
    }

    #[test]
    fn rejects_bad_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let s = service(dir.path());
        let hdr = json!({"alg": "ES256", "typ": "JWT", "kid": s.keys.kid});
        let t = now();
        let cases = vec![
            (
                "expired",
                forge(
                    &s,
                    hdr.clone(),
                    claims(&s, "berth", "berth-registry", t - 600, t - 300),
                ),
            ),
            (
                "not yet valid",
                forge(
                    &s,
                    hdr.clone(),
                    claims(&s, "berth", "berth-registry", t + 600, t + 900),
                ),
            ),
            (
                "wrong audience",
                forge(&s, hdr.clone(), claims(&s, "berth", "other", t, t + 60)),
            ),
            (
                "wrong issuer",
                forge(
                    &s,
                    hdr.clone(),
                    claims(&s, "evil", "berth-registry", t, t + 60),
                ),
            ),
            ("alg none", {
                let h =
                    URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": s.keys.kid}).to_string());
                let p = URL_SAFE_NO_PAD
                    .encode(claims(&s, "berth", "berth-registry", t, t + 60).to_string());
                format!("{h}.{p}.")
            }),
            ("refresh as access", s.issue_refresh("alice", "fp")),
            ("garbage", "a.b.c".to_owned()),
        ];
        for (name, token) in cases {
            assert!(
                matches!(s.verify(&token), Err(AuthError::TokenInvalid(_))),
                "{name}"
            );
        }
        // Tampered payload: same signature, different claims.
        let good = s.issue("alice", &access()).token;
        let parts: Vec<&str> = good.split('.').collect();
        let evil = URL_SAFE_NO_PAD.encode(
            claims(&s, "berth", "berth-registry", t, t + 60)
                .to_string()
                .replace("pull", "push"),
        );
        let tampered = format!("{}.{}.{}", parts[0], evil, parts[2]);
        assert!(s.verify(&tampered).is_err());
        // Signed by another key (same kid claimed).
        let other_dir = tempfile::tempdir().unwrap();
        let other = service(other_dir.path());
        let foreign = forge(
            &other,
            hdr,
            claims(&s, "berth", "berth-registry", t, t + 60),
        );
        assert!(s.verify(&foreign).is_err());
    }

    #[test]
    fn refresh_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let s = service(dir.path());
        let r = s.issue_refresh("bob", "fp1");
        assert_eq!(
            s.verify_refresh(&r).unwrap(),
            ("bob".to_owned(), "fp1".to_owned())
        );
        let access_token = s.issue("bob", &[]).token;
        assert!(s.verify_refresh(&access_token).is_err());
    }
}
