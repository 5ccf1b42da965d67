//! Zig-zag variable-length integers, as Kafka records use them.
//!
//! Owns the encoding of `varint` (an `i32`, at most [`VARINT_BYTES_MAX`] bytes) and `varlong`
//! (an `i64`, at most [`VARLONG_BYTES_MAX`] bytes): the value is zig-zag mapped to an unsigned
//! integer (0, -1, 1, -2, ... become 0, 1, 2, 3, ...) so small negative numbers stay short, then
//! written 7 bits at a time, least significant group first, with the high bit of each byte
//! set when another byte follows.
//!
//! Worked example: -64 zig-zags to 127 = 0b111_1111, which fits in 7 bits: one byte `0x7f`.
//! 64 zig-zags to 128 = 0b1_000_0000: low group 0 with the continuation bit (`0x80`), then the
//! group 1 (`0x01`): two bytes `80 01`.
//!
//! Decoding is strict where Kafka's is lax, because the input is untrusted: an encoding longer
//! than the maximum, or whose last byte carries bits beyond 32 (64) bits, is an
//! [`VarintError::Overflow`] rather than a silently truncated value. Non-minimal encodings
//! (`80 00` for 0) are accepted, as Kafka accepts them. Pure functions, no state.

/// Longest encoding of a varint: 32 bits in 7-bit groups.
pub const VARINT_BYTES_MAX: usize = 5;
/// Longest encoding of a varlong: 64 bits in 7-bit groups.
pub const VARLONG_BYTES_MAX: usize = 10;

const _: () = assert!(VARINT_BYTES_MAX * 7 >= 32 && (VARINT_BYTES_MAX - 1) * 7 < 32);
const _: () = assert!(VARLONG_BYTES_MAX * 7 >= 64 && (VARLONG_BYTES_MAX - 1) * 7 < 64);

/// Why a varint or varlong could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VarintError {
    /// The input ended while the continuation bit said more bytes follow.
    #[error("the input ended after {bytes} bytes, in the middle of a varint")]
    Truncated {
        /// Bytes that were available (all with the continuation bit set).
        bytes: usize,
    },
    /// The encoding is longer than the maximum, or carries bits beyond the integer's width.
    #[error(
        "the varint does not fit in {bits} bits (longer than {bytes_max} bytes or high bits set)"
    )]
    Overflow {
        /// Width of the integer being decoded: 32 or 64.
        bits: u32,
        /// Longest valid encoding for that width.
        bytes_max: usize,
    },
}

/// Appends the zig-zag varint encoding of `value` to `out`.
pub fn encode_varint(value: i32, out: &mut Vec<u8>) {
    encode_unsigned(u64::from(zigzag_encode_32(value)), out);
}

/// Appends the zig-zag varlong encoding of `value` to `out`.
pub fn encode_varlong(value: i64, out: &mut Vec<u8>) {
    encode_unsigned(zigzag_encode_64(value), out);
}

/// Bytes that [`encode_varint`] writes for `value` (1 to [`VARINT_BYTES_MAX`]).
pub fn varint_encoded_bytes(value: i32) -> usize {
    unsigned_encoded_bytes(u64::from(zigzag_encode_32(value)))
}

/// Bytes that [`encode_varlong`] writes for `value` (1 to [`VARLONG_BYTES_MAX`]).
pub fn varlong_encoded_bytes(value: i64) -> usize {
    unsigned_encoded_bytes(zigzag_encode_64(value))
}

/// Decodes a zig-zag varint from the start of `bytes`: the value and the bytes it used.
/// Bytes after the varint are ignored.
pub fn decode_varint(bytes: &[u8]) -> Result<(i32, usize), VarintError> {
    let (raw, bytes_read) = decode_unsigned(bytes, VARINT_BYTES_MAX, 32)?;
    let raw = u32::try_from(raw).map_err(|_| overflow(32))?;
    Ok((zigzag_decode_32(raw), bytes_read))
}

/// Decodes a zig-zag varlong from the start of `bytes`: the value and the bytes it used.
/// Bytes after the varlong are ignored.
pub fn decode_varlong(bytes: &[u8]) -> Result<(i64, usize), VarintError> {
    let (raw, bytes_read) = decode_unsigned(bytes, VARLONG_BYTES_MAX, 64)?;
    let raw = u64::try_from(raw).map_err(|_| overflow(64))?;
    Ok((zigzag_decode_64(raw), bytes_read))
}

fn overflow(bits: u32) -> VarintError {
    let bytes_max = if bits == 32 {
        VARINT_BYTES_MAX
    } else {
        VARLONG_BYTES_MAX
    };
    VarintError::Overflow { bits, bytes_max }
}

// The arithmetic shift spreads the sign bit over the whole word, so negative values flip every
// bit: -1 -> (-2) ^ (-1) = 1, 1 -> 2 ^ 0 = 2.
fn zigzag_encode_32(value: i32) -> u32 {
    ((value << 1) ^ (value >> 31)) as u32
}

fn zigzag_encode_64(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

// Inverse of the above: the low bit is the sign; -(raw & 1) is all ones for negative values.
fn zigzag_decode_32(raw: u32) -> i32 {
    ((raw >> 1) as i32) ^ -((raw & 1) as i32)
}

fn zigzag_decode_64(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

fn encode_unsigned(mut raw: u64, out: &mut Vec<u8>) {
    while raw >= 0x80 {
        out.push((raw as u8 & 0x7f) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

fn unsigned_encoded_bytes(raw: u64) -> usize {
    // One byte per started 7-bit group; zero still takes one byte.
    let bits_used = 64 - raw.leading_zeros() as usize;
    bits_used.div_ceil(7).max(1)
}

// Accumulates into u128 so that the last group of a maximal encoding (shifted by 63 for a
// varlong) cannot lose bits: the caller then rejects anything wider than its integer.
fn decode_unsigned(
    bytes: &[u8],
    bytes_max: usize,
    bits: u32,
) -> Result<(u128, usize), VarintError> {
    let mut raw: u128 = 0;
    for (index, &byte) in bytes.iter().take(bytes_max).enumerate() {
        raw |= u128::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok((raw, index + 1));
        }
    }
    if bytes.len() < bytes_max {
        Err(VarintError::Truncated { bytes: bytes.len() })
    } else {
        Err(overflow(bits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint_bytes(value: i32) -> Vec<u8> {
        let mut out = Vec::new();
        encode_varint(value, &mut out);
        out
    }

    fn varlong_bytes(value: i64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_varlong(value, &mut out);
        out
    }

    #[test]
    fn known_encodings() {
        // Pinned by hand from the zig-zag mapping, so a swapped shift or sign shows here.
        let cases: &[(i32, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-2, &[0x03]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (300, &[0xd8, 0x04]),
            (i32::MAX, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for &(value, expected) in cases {
            assert_eq!(varint_bytes(value), expected, "varint {value}");
            assert_eq!(
                varint_encoded_bytes(value),
                expected.len(),
                "varint {value}"
            );
            assert_eq!(decode_varint(expected), Ok((value, expected.len())));
            assert_eq!(varlong_bytes(i64::from(value)), expected, "varlong {value}");
        }
        let max = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        let min = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(varlong_bytes(i64::MAX), max);
        assert_eq!(varlong_bytes(i64::MIN), min);
        assert_eq!(decode_varlong(&max), Ok((i64::MAX, 10)));
        assert_eq!(decode_varlong(&min), Ok((i64::MIN, 10)));
    }

    #[test]
    fn round_trip_edges_and_powers_of_two() {
        let mut values: Vec<i64> = vec![0, 1, -1, i64::MAX, i64::MIN];
        for shift in 0..63 {
            let power = 1i64 << shift;
            values.extend([power, power - 1, -power, -power - 1]);
        }
        for value in values {
            let encoded = varlong_bytes(value);
            assert_eq!(encoded.len(), varlong_encoded_bytes(value), "{value}");
            assert_eq!(
                decode_varlong(&encoded),
                Ok((value, encoded.len())),
                "{value}"
            );
            if let Ok(narrow) = i32::try_from(value) {
                let encoded = varint_bytes(narrow);
                assert_eq!(encoded.len(), varint_encoded_bytes(narrow), "{value}");
                assert_eq!(
                    decode_varint(&encoded),
                    Ok((narrow, encoded.len())),
                    "{value}"
                );
            }
        }
    }

    #[test]
    fn decode_ignores_following_bytes() {
        assert_eq!(decode_varint(&[0x80, 0x01, 0xff, 0xff]), Ok((64, 2)));
        assert_eq!(decode_varlong(&[0x03, 0x80]), Ok((-2, 1)));
    }

    #[test]
    fn non_minimal_encodings_are_accepted() {
        assert_eq!(decode_varint(&[0x80, 0x80, 0x00]), Ok((0, 3)));
    }

    #[test]
    fn truncation_is_an_error() {
        assert_eq!(decode_varint(&[]), Err(VarintError::Truncated { bytes: 0 }));
        assert_eq!(
            decode_varint(&[0x80]),
            Err(VarintError::Truncated { bytes: 1 })
        );
        assert_eq!(
            decode_varlong(&[0xff; 9]),
            Err(VarintError::Truncated { bytes: 9 })
        );
        for value in [i32::MAX, i32::MIN, 300] {
            let encoded = varint_bytes(value);
            for length in 0..encoded.len() {
                assert_eq!(
                    decode_varint(&encoded[..length]),
                    Err(VarintError::Truncated { bytes: length })
                );
            }
        }
    }

    #[test]
    fn overlong_or_too_wide_is_overflow() {
        let varint_overflow = Err(VarintError::Overflow {
            bits: 32,
            bytes_max: 5,
        });
        let varlong_overflow = Err(VarintError::Overflow {
            bits: 64,
            bytes_max: 10,
        });
        // Six bytes: the fifth still says "more follows".
        assert_eq!(
            decode_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
            varint_overflow
        );
        assert_eq!(decode_varint(&[0x80; 5]), varint_overflow);
        // Five bytes, but the last group sets bit 32.
        assert_eq!(
            decode_varint(&[0xff, 0xff, 0xff, 0xff, 0x10]),
            varint_overflow
        );
        assert_eq!(decode_varlong(&[0x80; 11]), varlong_overflow);
        // Ten bytes, but the last group sets bit 64.
        let mut too_wide = [0xff; 10];
        too_wide[9] = 0x02;
        assert_eq!(decode_varlong(&too_wide), varlong_overflow);
    }

    #[test]
    fn error_messages_carry_the_numbers() {
        let truncated = decode_varint(&[0x80, 0x80]).unwrap_err().to_string();
        assert!(truncated.contains("2 bytes"), "{truncated}");
        let overflow = decode_varlong(&[0x80; 10]).unwrap_err().to_string();
        assert!(
            overflow.contains("64 bits") && overflow.contains("10 bytes"),
            "{overflow}"
        );
    }
}
