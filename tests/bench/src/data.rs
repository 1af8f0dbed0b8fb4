//! Benchmark content: incompressible bytes from a fast PRNG, produced in
//! 1 MiB pieces so that no blob is ever held whole in memory, and their
//! digests, computed before any timed region.

use bytes::{Bytes, BytesMut};
use sha2::{Digest as _, Sha256};

/// The size of one generated piece: what the client writes per frame.
pub const PIECE: usize = 1 << 20;

/// SplitMix64: spreads a seed and a tag into an independent stream seed.
pub fn mix(seed: u64, tag: u64) -> u64 {
    let mut z = seed ^ tag.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A deterministic stream of `len` pseudo-random bytes (wyrand), so that
/// the same content can be hashed first and sent later.
#[derive(Clone, Debug)]
pub struct Pieces {
    state: u64,
    remaining: u64,
}

impl Pieces {
    pub fn new(seed: u64, len: u64) -> Pieces {
        Pieces {
            state: mix(seed, 0x5EED),
            remaining: len,
        }
    }

    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0xA076_1D64_78BD_642F);
        let t = u128::from(self.state) * u128::from(self.state ^ 0xE703_7ED1_A0B4_28DB);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// Fills `buf` with the next bytes of the stream (a multiple of 8 long
    /// except possibly the last piece).
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut words = buf.chunks_exact_mut(8);
        for word in &mut words {
            word.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let tail = words.into_remainder();
        if !tail.is_empty() {
            let last = self.next_u64().to_le_bytes();
            tail.copy_from_slice(&last[..tail.len()]);
        }
    }
}

impl Iterator for Pieces {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.remaining == 0 {
            return None;
        }
        let n = self.remaining.min(PIECE as u64) as usize;
        let mut buf = BytesMut::zeroed(n);
        self.fill(&mut buf);
        self.remaining -= n as u64;
        Some(buf.freeze())
    }
}

/// Content known by seed, length and digest.
#[derive(Clone, Debug)]
pub struct Content {
    pub seed: u64,
    pub len: u64,
    pub digest: String,
}

impl Content {
    /// Generates the content once to compute its digest (blocking work, on
    /// a blocking thread).
    pub async fn new(seed: u64, len: u64) -> anyhow::Result<Content> {
        let digest = tokio::task::spawn_blocking(move || {
            let mut hasher = Sha256::new();
            for piece in Pieces::new(seed, len) {
                hasher.update(&piece);
            }
            format!("sha256:{}", hex::encode(hasher.finalize()))
        })
        .await?;
        Ok(Content { seed, len, digest })
    }

    pub fn pieces(&self) -> Pieces {
        Pieces::new(self.seed, self.len)
    }
}

/// The sha256 digest of in-memory bytes, in OCI form.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_deterministic_and_sized() {
        let a: Vec<Bytes> = Pieces::new(7, 3 * PIECE as u64 + 5).collect();
        let b: Vec<Bytes> = Pieces::new(7, 3 * PIECE as u64 + 5).collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 4);
        assert_eq!(a[3].len(), 5);
        let c: Vec<Bytes> = Pieces::new(8, 16).collect();
        assert_ne!(a[0][..16], c[0][..]);
    }
}
