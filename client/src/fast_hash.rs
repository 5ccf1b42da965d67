//! [`FastMap`]: a `HashMap` with a multiplicative hasher, for the producer's and the load
//! generator's per-record lookups (topic names, partition numbers).
//!
//! SipHash, the std default, is built against flooding by untrusted keys. These keys are the
//! application's own topic names and partition numbers, and the lookups run for every record
//! sent: with SipHash they cost a few percent of a producer's core (issue #11 profile).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash-style: each word is rotated in and multiplied by 2^64 / golden ratio.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.write_u64(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }
}

/// A `HashMap` hashed with [`FastHasher`]. Not for keys an adversary chooses.
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn hash<T: std::hash::Hash>(value: T) -> u64 {
        BuildHasherDefault::<FastHasher>::default().hash_one(value)
    }

    #[test]
    fn every_byte_of_a_string_counts() {
        // Strings shorter than, equal to and longer than a word, differing in the last byte.
        for length in [1, 7, 8, 9, 17] {
            let a = "a".repeat(length);
            let b = format!("{}b", "a".repeat(length - 1));
            assert_ne!(hash(a.as_str()), hash(b.as_str()), "length {length}");
        }
        assert_ne!(
            hash((String::from("t"), 1u32)),
            hash((String::from("t"), 2u32))
        );
    }

    #[test]
    fn a_map_finds_what_it_holds() {
        let mut map: FastMap<(String, u32), u32> = FastMap::default();
        for partition in 0..1_000 {
            map.insert((format!("topic-{}", partition % 7), partition), partition);
        }
        for partition in 0..1_000 {
            let key = (format!("topic-{}", partition % 7), partition);
            assert_eq!(map.get(&key), Some(&partition));
        }
    }
}
