//! Registry tokens: JWTs signed with ES256, as distribution's token auth
//! specifies (claims iss, sub, aud, exp, nbf, iat, jti, access).
//!
//! Tokens are encoded and verified with the `jsonwebtoken` crate.
//! Verification checks the algorithm, key id, signature, issuer, audience
//! and validity window. A verified token is cached by its text, so repeat
//! requests with the same token do no crypto; the validity window is
//! re-checked on every hit.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_policy::Access;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde_json::{json, Value};

use crate::error::AuthError;
use crate::keys::KeyRing;
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

/// How often the keys are read again from the data directory (another
/// instance, or `berth token-key rotate`, may have rotated them).
const KEY_RELOAD: Duration = Duration::from_secs(30);
/// A token with an unknown key id reads the keys again at most this often.
const KEY_RELOAD_ON_MISS: Duration = Duration::from_secs(1);

pub struct TokenService {
    keys: RwLock<Arc<KeyRing>>,
    /// Where the keys are read from again (none: fixed keys, in tests).
    key_dir: Option<std::path::PathBuf>,
    keys_read: std::sync::Mutex<std::time::Instant>,
    issuer: String,
    service: String,
    /// Seconds a token lasts: `auth.token_ttl`, or changed at run time.
    ttl: std::sync::atomic::AtomicU64,
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
    pub fn new(keys: KeyRing, issuer: &str, service: &str, ttl: Duration) -> TokenService {
        TokenService {
            keys: RwLock::new(Arc::new(keys)),
            key_dir: None,
            keys_read: std::sync::Mutex::new(std::time::Instant::now()),
            issuer: issuer.to_owned(),
            service: service.to_owned(),
            ttl: std::sync::atomic::AtomicU64::new(ttl.as_secs()),
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
        let mut service =
            TokenService::new(KeyRing::load_or_create(data_dir)?, issuer, service, ttl);
        service.key_dir = Some(data_dir.to_owned());
        Ok(service)
    }

    /// How long tokens issued now last.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Tokens issued from now on last `ttl` (tokens already issued keep
    /// theirs).
    pub fn set_ttl(&self, ttl: Duration) {
        self.ttl
            .store(ttl.as_secs(), std::sync::atomic::Ordering::Relaxed);
    }

    fn keys(&self) -> Arc<KeyRing> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the keys again when `every` has passed since the last read.
    pub fn reload_keys(&self, every: Duration) {
        let Some(dir) = &self.key_dir else {
            return;
        };
        {
            let mut read = self.keys_read.lock().unwrap_or_else(|p| p.into_inner());
            if read.elapsed() < every {
                return;
            }
            *read = std::time::Instant::now();
        }
        match KeyRing::load(dir) {
            Ok(ring) => {
                let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
                if ring.current.public.kid != keys.current.public.kid {
                    tracing::info!(kid = %ring.current.public.kid, "signing tokens with a new key");
                }
                *keys = Arc::new(ring);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the token keys again; keeping the ones loaded")
            }
        }
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// The public keys, as `/service/jwks` publishes them.
    pub fn jwks(&self) -> Value {
        self.reload_keys(KEY_RELOAD);
        self.keys().jwks()
    }

    fn sign(&self, claims: &Value) -> String {
        self.reload_keys(KEY_RELOAD);
        let keys = self.keys();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(keys.current.public.kid.clone());
        // Signing a JSON value with a P-256 key read at load time cannot
        // fail; were it to, the token is empty and refused by every check.
        jsonwebtoken::encode(&header, claims, &keys.current.encoding).unwrap_or_else(|e| {
            tracing::error!(error = %e, "signing a token failed");
            String::new()
        })
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
        let mut ttl = self.ttl().as_secs() as i64;
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
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("not a JWT"))?;
        // Only ES256 with one of our keys: this refuses `alg: none` and any
        // algorithm-confusion trick before anything else is read.
        if header.alg != Algorithm::ES256 {
            return Err(invalid("unsupported algorithm"));
        }
        let kid = header.kid.ok_or_else(|| invalid("unknown signing key"))?;
        // A retired key past its time, or one removed, stops verifying.
        self.reload_keys(KEY_RELOAD);
        let mut keys = self.keys();
        if keys.verifier(&kid).is_none() {
            // Another instance may have rotated the key.
            self.reload_keys(KEY_RELOAD_ON_MISS);
            keys = self.keys();
        }
        let key = keys
            .verifier(&kid)
            .ok_or_else(|| invalid("unknown signing key"))?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_audience(&[self.service.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = LEEWAY_SECS as u64;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Value>(token, key, &validation).map_err(|e| {
            invalid(match e.kind() {
                ErrorKind::InvalidSignature => "bad signature",
                ErrorKind::ExpiredSignature => "token expired; log in again",
                ErrorKind::ImmatureSignature => "token not yet valid",
                ErrorKind::InvalidIssuer => "wrong issuer",
                ErrorKind::InvalidAudience => "wrong audience",
                ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
                _ => "not a valid token",
            })
        })?;
        Ok(data.claims)
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
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
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

    /// Signs an arbitrary header and claims with the key the service
    /// signs with (read from its data directory), byte for byte.
    fn forge(s: &TokenService, header: Value, claims: Value) -> String {
        use p256::ecdsa::signature::Signer;
        use p256::pkcs8::DecodePrivateKey;
        let dir = s.key_dir.as_ref().unwrap();
        let pem = std::fs::read_to_string(dir.join(crate::keys::KEY_FILE)).unwrap();
        let key = p256::ecdsa::SigningKey::from_pkcs8_pem(&pem).unwrap();
        let mut out = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig: p256::ecdsa::Signature = key.sign(out.as_bytes());
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig.to_bytes()));
        out
    }

    fn kid(s: &TokenService) -> String {
        s.keys().current.public.kid.clone()
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
        assert_eq!(s.jwks()["keys"][0]["kid"], json!(kid(&s)));
    }

    #[test]
    fn rejects_bad_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let s = service(dir.path());
        let hdr = json!({"alg": "ES256", "typ": "JWT", "kid": kid(&s)});
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
                let h = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": kid(&s)}).to_string());
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

    #[test]
    fn tokens_signed_before_a_rotation_still_verify_and_new_ones_use_the_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let s = service(dir.path());
        let before = s.issue("alice", &access()).token;
        let refresh = s.issue_refresh("alice", "fp");
        let (old, new) = KeyRing::rotate(dir.path()).unwrap();
        // Another process rotated: this one notices at its next reading
        // (forced here), and meanwhile accepts both keys' tokens.
        s.reload_keys(Duration::ZERO);
        let after = s.issue("alice", &access()).token;
        let kid_of = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
        assert_eq!(kid_of(&before), old);
        assert_eq!(kid_of(&after), new);
        assert_eq!(s.verify(&before).unwrap().subject, "alice");
        assert_eq!(s.verify(&after).unwrap().subject, "alice");
        assert_eq!(s.verify_refresh(&refresh).unwrap().0, "alice");
        assert_eq!(s.jwks()["keys"].as_array().unwrap().len(), 2);
        // A fresh process on the same directory verifies the old token
        // without being told (the unknown key id makes it read the keys).
        let other = service(dir.path());
        assert_eq!(other.verify(&before).unwrap().subject, "alice");
    }
}
