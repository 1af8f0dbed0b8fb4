//! SHA-256 whose running state can be stored between requests.
//!
//! An upload's chunks may land on different instances, so the hash of the
//! bytes received so far must live in the database, not in one process's
//! memory. `sha2` keeps its state private but exposes the compression
//! function; this type keeps the eight state words, the byte count and the
//! unprocessed tail (under 64 bytes) itself, and pads at the end as
//! FIPS 180-4 says.

use serde::{Deserialize, Serialize};
use sha2::digest::generic_array::GenericArray;

const BLOCK: usize = 64;
const INITIAL: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Sha256State {
    state: [u32; 8],
    /// Bytes hashed so far, the tail included.
    len: u64,
    /// Bytes not yet compressed: fewer than one block.
    #[serde(with = "hex_bytes")]
    tail: Vec<u8>,
}

impl Default for Sha256State {
    fn default() -> Self {
        Sha256State {
            state: INITIAL,
            len: 0,
            tail: Vec::new(),
        }
    }
}

impl Sha256State {
    pub(crate) fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.tail.is_empty() {
            let take = (BLOCK - self.tail.len()).min(data.len());
            self.tail.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.tail.len() < BLOCK {
                return;
            }
            let block = std::mem::take(&mut self.tail);
            self.compress(&block);
        }
        let whole = data.len() - data.len() % BLOCK;
        self.compress(&data[..whole]);
        self.tail.extend_from_slice(&data[whole..]);
    }

    /// Compresses whole blocks (`data.len()` a multiple of 64).
    fn compress(&mut self, data: &[u8]) {
        let blocks: Vec<GenericArray<u8, _>> = data
            .chunks_exact(BLOCK)
            .map(GenericArray::clone_from_slice)
            .collect();
        sha2::compress256(&mut self.state, &blocks);
    }

    /// The digest of everything hashed, as lowercase hex.
    pub(crate) fn finish_hex(&self) -> String {
        let mut state = self.clone();
        let bits = self.len.wrapping_mul(8);
        let mut pad = vec![0x80u8];
        let used = (self.tail.len() + 1) % BLOCK;
        let zeros = if used <= 56 {
            56 - used
        } else {
            56 + BLOCK - used
        };
        pad.resize(1 + zeros, 0);
        pad.extend_from_slice(&bits.to_be_bytes());
        let mut block = std::mem::take(&mut state.tail);
        block.extend_from_slice(&pad);
        debug_assert_eq!(block.len() % BLOCK, 0);
        state.compress(&block);
        state.state.iter().map(|w| format!("{w:08x}")).collect()
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn reference(data: &[u8]) -> String {
        hex::encode(sha2::Sha256::digest(data))
    }

    #[test]
    fn matches_sha2_for_every_length_around_block_edges() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..data.len() {
            let mut h = Sha256State::default();
            h.update(&data[..len]);
            assert_eq!(h.finish_hex(), reference(&data[..len]), "length {len}");
        }
    }

    #[test]
    fn state_survives_a_round_trip_through_json_at_any_split() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 + 11) as u8).collect();
        for split in [0, 1, 63, 64, 65, 127, 128, 1000, 4999, 5000] {
            let mut first = Sha256State::default();
            first.update(&data[..split]);
            let stored = serde_json::to_string(&first).unwrap();
            let mut second: Sha256State = serde_json::from_str(&stored).unwrap();
            for piece in data[split..].chunks(77) {
                second.update(piece);
            }
            assert_eq!(second.finish_hex(), reference(&data), "split {split}");
        }
    }
}
