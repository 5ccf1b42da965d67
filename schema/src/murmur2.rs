//! Kafka's murmur2 hash and its default key partitioner.
//!
//! Owns bit-exact compatibility with `org.apache.kafka.common.utils.Utils.murmur2` (MurmurHash2,
//! 32-bit, seed `0x9747b28c`): a keyed message must land on the same partition whether a Kafka
//! client or ringbus picks it, or per-key ordering breaks for mixed clients. Java has no
//! unsigned ints, so the result is the signed `i32` Java returns, and the partitioner masks the
//! sign bit off (Java's `Utils.toPositive`) instead of taking an absolute value, which would
//! overflow on `i32::MIN`. Pure functions, no state.

const SEED: u32 = 0x9747_b28c;
const MULTIPLIER: u32 = 0x5bd1_e995;
const SHIFT: u32 = 24;

/// MurmurHash2 of `data`, exactly as Kafka's Java client computes it.
pub fn murmur2(data: &[u8]) -> i32 {
    // Java mixes in `data.length` as an int; lengths beyond i32 wrap the same way there.
    let mut hash = SEED ^ data.len() as u32;
    let (words, tail) = data.as_chunks::<4>();
    for &word_bytes in words {
        // Murmur2 reads its 4-byte words little-endian (Kafka assembles them by hand).
        let mut word = u32::from_le_bytes(word_bytes);
        word = word.wrapping_mul(MULTIPLIER);
        word ^= word >> SHIFT;
        word = word.wrapping_mul(MULTIPLIER);
        hash = hash.wrapping_mul(MULTIPLIER);
        hash ^= word;
    }
    // The Java switch falls through: 3 tail bytes mix in all three (byte i shifted by 8 * i),
    // then multiply once. XOR commutes, so the order of the three does not matter.
    if !tail.is_empty() {
        for (index, &byte) in tail.iter().enumerate() {
            hash ^= u32::from(byte) << (8 * index);
        }
        hash = hash.wrapping_mul(MULTIPLIER);
    }
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(MULTIPLIER);
    hash ^= hash >> 15;
    hash as i32
}

/// The partition Kafka's default partitioner picks for `key`: `(murmur2 & 0x7fffffff) % partitions`.
///
/// Panics if `partitions` is 0: a topic always has at least one partition, so that is a caller
/// bug, not an input error.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    assert!(partitions > 0, "partition_for_key: partitions must be > 0");
    let positive = (murmur2(key) & 0x7fff_ffff) as u32;
    positive % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_test_vectors() {
        // From Kafka's UtilsTest / the reference sheet; they cover tails of 2, 3 and 0+2 bytes.
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"abc"), 479_470_107);
    }

    #[test]
    fn every_tail_length_is_mixed() {
        // Changing any byte, including each tail byte, must change the hash.
        let data = b"abcdefg";
        for length in 0..=data.len() {
            let base = murmur2(&data[..length]);
            for index in 0..length {
                let mut changed = data[..length].to_vec();
                changed[index] ^= 1;
                assert_ne!(murmur2(&changed), base, "length {length} index {index}");
            }
        }
    }

    #[test]
    fn partition_is_masked_modulo() {
        // murmur2("21") is negative: masking, not abs(), decides the partition.
        let positive = (-973_932_308i32 & 0x7fff_ffff) as u32;
        assert_eq!(partition_for_key(b"21", 100), positive % 100);
        assert_eq!(partition_for_key(b"abc", 7), 479_470_107 % 7);
        assert_eq!(partition_for_key(b"anything", 1), 0);
    }

    #[test]
    #[should_panic(expected = "partitions must be > 0")]
    fn zero_partitions_is_a_programmer_error() {
        partition_for_key(b"k", 0);
    }
}
