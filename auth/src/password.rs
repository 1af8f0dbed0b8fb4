//! Password hashes: argon2id in PHC string form. Verification is slow on
//! purpose (and takes ~19 MiB per check with the default parameters), so
//! it runs through a `Verifier`: a few checks at a time, off the async
//! threads, in work memory that is allocated once and reused.

use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

use crate::error::AuthError;

/// Largest argon2 work memory a stored hash may ask for (in 1 KiB
/// blocks): 256 MiB. A hash asking for more is treated as not matching
/// rather than letting one row exhaust memory.
const MAX_BLOCKS: usize = 256 * 1024;

/// Runs password checks, at most `slots` at a time (the rest wait their
/// turn), each in a reused work area. Without the bound, 40 concurrent
/// wrong passwords cost 40 x 19 MiB at once and that memory stayed with
/// the allocator; with it, memory is `slots` x 19 MiB, allocated once.
pub struct Verifier {
    permits: Semaphore,
    work: Mutex<Vec<Vec<Block>>>,
}

impl Verifier {
    /// A verifier for as many checks at a time as the machine has cores.
    pub fn new() -> Verifier {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Verifier::with_slots(cores)
    }

    pub fn with_slots(slots: usize) -> Verifier {
        Verifier {
            permits: Semaphore::new(slots.max(1)),
            work: Mutex::new(Vec::new()),
        }
    }

    /// True when `password` matches the stored PHC `hash`.
    pub async fn verify(self: &Arc<Self>, password: &str, hash: &str) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let mut work = self
            .work
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default();
        let (password, hash) = (password.to_owned(), hash.to_owned());
        let (ok, work) = tokio::task::spawn_blocking(move || {
            let ok = verify_in(&password, &hash, &mut work);
            (ok, work)
        })
        .await
        .unwrap_or((false, Vec::new()));
        if !work.is_empty() {
            self.work
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(work);
        }
        ok
    }
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::new()
    }
}

/// `verify`, computing in `work` (grown to the size the hash asks for).
fn verify_in(password: &str, hash: &str, work: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let blocks = params.block_count();
    if blocks > MAX_BLOCKS {
        return false;
    }
    if work.len() < blocks {
        work.resize(blocks, Block::new());
    }
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut work[..blocks])
        .is_err()
    {
        return false;
    }
    // Constant time, as `Output`'s own comparison.
    out.len() == expected.len()
        && out
            .iter()
            .zip(expected.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

pub fn hash(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::PasswordHash(e.to_string()))
}

/// True when `password` matches the stored PHC `hash`.
pub fn verify(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A random password for the initial admin: 24 characters from an
/// unambiguous alphabet.
pub fn generate() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..24)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("s3cret", &h));
        assert!(!verify("s3cret ", &h));
        assert!(!verify("s3cret", "not a hash"));
    }

    #[test]
    fn the_verifier_agrees_with_argon2() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let v = Arc::new(Verifier::with_slots(1));
        let h = hash("s3cret").unwrap();
        rt.block_on(async {
            assert!(v.verify("s3cret", &h).await);
            assert!(!v.verify("s3cret ", &h).await);
            assert!(!v.verify("s3cret", "not a hash").await);
            // Work memory is reused, not reallocated per check.
            assert_eq!(v.work.lock().unwrap().len(), 1);
            assert!(v.verify("s3cret", &h).await);
            assert_eq!(v.work.lock().unwrap().len(), 1);
        });
        // A stored hash asking for more memory than allowed never matches.
        let greedy = "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(!verify_in("x", greedy, &mut Vec::new()));
    }

    #[test]
    fn generated_passwords_differ() {
        let (a, b) = (generate(), generate());
        assert_eq!(a.len(), 24);
        assert_ne!(a, b);
    }
}
