//! The on-disk byte formats of a partition directory: segment file header, entry header,
//! index files and the small metadata files. Pure encode/decode, no I/O.
//!
//! docs/storage-format.md has the byte diagrams, the assumptions about the medium and the
//! version log; this module is its executable form. All integers are little-endian. Every
//! structure carries a magic, a version and a CRC-32C, and decoding never trusts a length
//! before the CRC that covers it has been checked.

use std::fmt;

use crate::disk::BLOCK_BYTES;

/// Version of every format in this module. Bumped together; see the version log in
/// docs/storage-format.md.
pub const FORMAT_VERSION: u16 = 1;

/// A log offset: the position of a record in its partition, starting at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub u64);

impl Offset {
    /// The offset `count` records later.
    pub fn plus(self, count: u64) -> Offset {
        Offset(self.0.checked_add(count).expect("offset overflow"))
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

pub(crate) fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes[at..at + 2].try_into().expect("2 bytes"))
}
pub(crate) fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}
pub(crate) fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}
pub(crate) fn read_i64(bytes: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

// ---------------------------------------------------------------------------------------------
// Segment file header: the whole first block of every `<base offset>.log` file.
//
//   0        8        10       12        16             24            32      36        4096
//   | magic  | version| reserved| block   | base_offset  | created_ms  | crc   | zeros ... |
//   | 8 B    | u16    | u16 = 0 | u32     | u64          | i64         | u32   |           |
//
// crc = CRC-32C over bytes 0..32. Entries start at byte BLOCK_BYTES.

/// Magic of a segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"RBUSLOG\0";
/// Bytes of the segment header that carry data; the rest of the first block is zero.
pub const SEGMENT_HEADER_BYTES: usize = 36;
/// File position of the first entry of a segment.
pub const SEGMENT_DATA_START: u64 = BLOCK_BYTES;
const _: () = assert!(SEGMENT_HEADER_BYTES as u64 <= SEGMENT_DATA_START);

/// The decoded first block of a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Offset of the first batch the segment may hold (its file name).
    pub base_offset: Offset,
    /// Wall-clock creation time, for rolling by age.
    pub created_ms: i64,
}

impl SegmentHeader {
    /// Encodes into the first `SEGMENT_HEADER_BYTES` of `block` (which the caller zeroed).
    pub fn encode(&self, block: &mut [u8]) {
        assert!(block.len() >= SEGMENT_HEADER_BYTES);
        block[0..8].copy_from_slice(&SEGMENT_MAGIC);
        block[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        block[10..12].copy_from_slice(&0u16.to_le_bytes());
        block[12..16].copy_from_slice(&(BLOCK_BYTES as u32).to_le_bytes());
        block[16..24].copy_from_slice(&self.base_offset.0.to_le_bytes());
        block[24..32].copy_from_slice(&self.created_ms.to_le_bytes());
        let crc = crc32c::crc32c(&block[0..32]);
        block[32..36].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decodes and checks a segment header.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, FormatError> {
        if bytes.len() < SEGMENT_HEADER_BYTES {
            return Err(FormatError::Truncated { bytes: bytes.len() });
        }
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err(FormatError::BadMagic);
        }
        let stored = read_u32(bytes, 32);
        let computed = crc32c::crc32c(&bytes[0..32]);
        if stored != computed {
            return Err(FormatError::CrcMismatch { stored, computed });
        }
        let version = read_u16(bytes, 8);
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion { version });
        }
        let block_bytes = read_u32(bytes, 12);
        if u64::from(block_bytes) != BLOCK_BYTES {
            return Err(FormatError::BlockSize { block_bytes });
        }
        Ok(SegmentHeader {
            base_offset: Offset(read_u64(bytes, 16)),
            created_ms: read_i64(bytes, 24),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Entry header: precedes every batch and every padding run inside a segment.
//
//   0       4      5        6          8               12                    20      24
//   | magic | kind | reserved (0)      | payload_bytes | durable_end_hint    | crc   |
//   | u32   | u8   | u8 + u16          | u32           | u64                 | u32   |
//
// crc = CRC-32C over header bytes 0..20, then (batch entries only) the first 21 bytes of the
// Kafka batch: baseOffset, batchLength, partitionLeaderEpoch, magic and the batch's own CRC.
// The Kafka CRC covers the rest of the batch, so the two CRCs together cover every byte.
//
// durable_end_hint: when the entry was built, every offset below this was durable. Recovery
// uses it to tell a torn tail (bad bytes above every hint) from corruption of acknowledged
// data (bad bytes below some later entry's hint).

/// Magic of an entry header ("RBE1" read as little-endian bytes).
pub const ENTRY_MAGIC: u32 = u32::from_le_bytes(*b"RBE1");
/// Size of an entry header.
pub const ENTRY_HEADER_BYTES: usize = 24;
const _: () = assert!((ENTRY_HEADER_BYTES as u64) < BLOCK_BYTES);

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// One Kafka RecordBatch v2, exactly as the producer sent it but for its baseOffset.
    Batch,
    /// Filler up to the next block boundary, written when a flush ends mid-block so that the
    /// next flush starts on a fresh block and never rewrites this one.
    Padding,
}

impl EntryKind {
    fn code(self) -> u8 {
        match self {
            EntryKind::Batch => 1,
            EntryKind::Padding => 2,
        }
    }
}

/// A decoded entry header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryHeader {
    /// Batch or padding.
    pub kind: EntryKind,
    /// Bytes after the header that belong to this entry.
    pub payload_bytes: u32,
    /// Every offset below this was durable when the entry was built.
    pub durable_end_hint: Offset,
}

/// Bytes of the Kafka batch that the entry CRC covers (those the batch CRC does not).
pub const ENTRY_CRC_BATCH_PREFIX_BYTES: usize = schema::batch::CRC_UNCOVERED_BYTES;

impl EntryHeader {
    /// Encodes the header into `out[..ENTRY_HEADER_BYTES]`. For a batch, `batch_prefix` is the
    /// first [`ENTRY_CRC_BATCH_PREFIX_BYTES`] of the batch (final baseOffset already set).
    pub fn encode(&self, batch_prefix: &[u8], out: &mut [u8]) {
        assert!(out.len() >= ENTRY_HEADER_BYTES);
        out[0..4].copy_from_slice(&ENTRY_MAGIC.to_le_bytes());
        out[4] = self.kind.code();
        out[5] = 0;
        out[6..8].copy_from_slice(&0u16.to_le_bytes());
        out[8..12].copy_from_slice(&self.payload_bytes.to_le_bytes());
        out[12..20].copy_from_slice(&self.durable_end_hint.0.to_le_bytes());
        let crc = Self::crc(&out[0..20], self.kind, batch_prefix);
        out[20..24].copy_from_slice(&crc.to_le_bytes());
    }

    fn crc(header: &[u8], kind: EntryKind, batch_prefix: &[u8]) -> u32 {
        let crc = crc32c::crc32c(header);
        match kind {
            EntryKind::Batch => {
                assert_eq!(batch_prefix.len(), ENTRY_CRC_BATCH_PREFIX_BYTES);
                crc32c::crc32c_append(crc, batch_prefix)
            }
            EntryKind::Padding => {
                assert!(batch_prefix.is_empty());
                crc
            }
        }
    }

    /// Decodes the header at the start of `bytes`. For a batch entry, `bytes` must also hold
    /// the first [`ENTRY_CRC_BATCH_PREFIX_BYTES`] of the payload, or this returns `Truncated`.
    pub fn decode(bytes: &[u8]) -> Result<EntryHeader, FormatError> {
        if bytes.len() < ENTRY_HEADER_BYTES {
            return Err(FormatError::Truncated { bytes: bytes.len() });
        }
        if read_u32(bytes, 0) != ENTRY_MAGIC {
            return Err(FormatError::BadMagic);
        }
        let kind = match bytes[4] {
            1 => EntryKind::Batch,
            2 => EntryKind::Padding,
            code => return Err(FormatError::UnknownKind { code }),
        };
        let prefix: &[u8] = match kind {
            EntryKind::Batch => {
                let end = ENTRY_HEADER_BYTES + ENTRY_CRC_BATCH_PREFIX_BYTES;
                if bytes.len() < end {
                    return Err(FormatError::Truncated { bytes: bytes.len() });
                }
                &bytes[ENTRY_HEADER_BYTES..end]
            }
            EntryKind::Padding => &[],
        };
        let stored = read_u32(bytes, 20);
        let computed = Self::crc(&bytes[0..20], kind, prefix);
        if stored != computed {
            return Err(FormatError::CrcMismatch { stored, computed });
        }
        Ok(EntryHeader {
            kind,
            payload_bytes: read_u32(bytes, 8),
            durable_end_hint: Offset(read_u64(bytes, 12)),
        })
    }
}

/// Builds the padding that fills `[position, next block boundary)` into `out` (which is that
/// long and zeroed). A gap shorter than an entry header stays zeros: readers skip to the
/// boundary whenever fewer than [`ENTRY_HEADER_BYTES`] remain in a block.
///
/// Worked example: a flush ends at position 10_000. The next block starts at 12_288, so the
/// gap is 2_288 bytes: a padding header (24 bytes) with payload_bytes = 2_264. Had it ended at
/// 12_280, the 8-byte gap is left as zeros.
pub fn encode_padding(out: &mut [u8], durable_end_hint: Offset) {
    assert!((out.len() as u64) < BLOCK_BYTES);
    if out.len() < ENTRY_HEADER_BYTES {
        return;
    }
    let header = EntryHeader {
        kind: EntryKind::Padding,
        payload_bytes: u32::try_from(out.len() - ENTRY_HEADER_BYTES).expect("gap < block"),
        durable_end_hint,
    };
    header.encode(&[], out);
}

// ---------------------------------------------------------------------------------------------
// Small metadata files: one block each, written to a temporary name, synced, renamed over the
// old one and the directory synced, so a crash leaves the old or the new file, never a mix.
//
//   0        8         10         12              16 ...            16+len  +4
//   | magic  | version | kind     | payload_bytes | payload          | crc  | zeros to 4 KiB
//   | 8 B    | u16     | u16      | u32           |                  | u32  |
//
// crc covers bytes 0..16+len. Payloads:
//   kind 1 (log.meta):        log_start_offset u64
//   kind 2 (clean.shutdown):  active_base u64, end_offset u64, end_position u64
//   kind 3 (offset index):    end_offset u64, end_position u64, max_timestamp i64, then
//                             entries (relative_offset u32, position u32) ...
//   kind 4 (time index):      entries (max_timestamp_before i64, relative_offset u32, position u32)
//   kind 5 (blob):            opaque bytes stored for the broker

/// Magic of every metadata and index file.
pub const META_MAGIC: [u8; 8] = *b"RBUSMETA";
const META_PREFIX_BYTES: usize = 16;

/// Which metadata file a block holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKind {
    /// The log's persistent state: its start offset.
    LogMeta = 1,
    /// Written on clean close; lets the next open skip the recovery scan.
    CleanShutdown = 2,
    /// A segment's sparse offset index and summary.
    OffsetIndex = 3,
    /// A segment's sparse time index.
    TimeIndex = 4,
    /// An opaque blob stored for the broker (topic metadata).
    Blob = 5,
}

/// Encodes a metadata file: returns its bytes padded with zeros to a multiple of a block.
pub fn encode_meta(kind: MetaKind, payload: &[u8]) -> Vec<u8> {
    let used = META_PREFIX_BYTES + payload.len() + 4;
    let mut out = vec![0u8; usize::try_from(crate::disk::align_up(used as u64)).expect("fits")];
    out[0..8].copy_from_slice(&META_MAGIC);
    out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[10..12].copy_from_slice(&(kind as u16).to_le_bytes());
    out[12..16].copy_from_slice(&u32::try_from(payload.len()).expect("small").to_le_bytes());
    out[16..16 + payload.len()].copy_from_slice(payload);
    let crc = crc32c::crc32c(&out[0..16 + payload.len()]);
    out[16 + payload.len()..used].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a metadata file of the expected kind, returning its payload.
pub fn decode_meta(kind: MetaKind, bytes: &[u8]) -> Result<&[u8], FormatError> {
    if bytes.len() < META_PREFIX_BYTES + 4 {
        return Err(FormatError::Truncated { bytes: bytes.len() });
    }
    if bytes[0..8] != META_MAGIC {
        return Err(FormatError::BadMagic);
    }
    let payload_bytes = read_u32(bytes, 12) as usize;
    let end = META_PREFIX_BYTES
        .checked_add(payload_bytes)
        .filter(|end| end + 4 <= bytes.len())
        .ok_or(FormatError::Truncated { bytes: bytes.len() })?;
    let stored = read_u32(bytes, end);
    let computed = crc32c::crc32c(&bytes[0..end]);
    if stored != computed {
        return Err(FormatError::CrcMismatch { stored, computed });
    }
    let version = read_u16(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion { version });
    }
    let code = read_u16(bytes, 10);
    if code != kind as u16 {
        return Err(FormatError::UnknownKind {
            code: u8::try_from(code).unwrap_or(u8::MAX),
        });
    }
    Ok(&bytes[META_PREFIX_BYTES..end])
}

/// What the clean-shutdown marker records about the active segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanShutdown {
    /// Base offset of the active segment when the log was closed.
    pub active_base: Offset,
    /// The log end offset (next offset to assign).
    pub end_offset: Offset,
    /// File position where the next write of the active segment goes (block-aligned).
    pub end_position: u64,
}

impl CleanShutdown {
    /// Encodes the marker file.
    pub fn encode(&self) -> Vec<u8> {
        let mut payload = Vec::with_capacity(24);
        payload.extend_from_slice(&self.active_base.0.to_le_bytes());
        payload.extend_from_slice(&self.end_offset.0.to_le_bytes());
        payload.extend_from_slice(&self.end_position.to_le_bytes());
        encode_meta(MetaKind::CleanShutdown, &payload)
    }

    /// Decodes the marker file.
    pub fn decode(bytes: &[u8]) -> Result<CleanShutdown, FormatError> {
        let payload = decode_meta(MetaKind::CleanShutdown, bytes)?;
        if payload.len() != 24 {
            return Err(FormatError::Truncated {
                bytes: payload.len(),
            });
        }
        Ok(CleanShutdown {
            active_base: Offset(read_u64(payload, 0)),
            end_offset: Offset(read_u64(payload, 8)),
            end_position: read_u64(payload, 16),
        })
    }
}

/// Encodes `log.meta`.
pub fn encode_log_meta(log_start: Offset) -> Vec<u8> {
    encode_meta(MetaKind::LogMeta, &log_start.0.to_le_bytes())
}

/// Decodes `log.meta`, returning the log start offset.
pub fn decode_log_meta(bytes: &[u8]) -> Result<Offset, FormatError> {
    let payload = decode_meta(MetaKind::LogMeta, bytes)?;
    if payload.len() != 8 {
        return Err(FormatError::Truncated {
            bytes: payload.len(),
        });
    }
    Ok(Offset(read_u64(payload, 0)))
}

/// Why bytes failed to decode as one of our formats.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Fewer bytes than the structure needs.
    #[error("truncated: only {bytes} bytes")]
    Truncated {
        /// Bytes available.
        bytes: usize,
    },
    /// The magic number is wrong: not our structure (or zeroed).
    #[error("bad magic number")]
    BadMagic,
    /// The CRC-32C does not match.
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC found in the bytes.
        stored: u32,
        /// CRC computed over the bytes.
        computed: u32,
    },
    /// Written by a newer (or unknown) format version.
    #[error("unsupported format version {version} (this build reads {FORMAT_VERSION})")]
    UnsupportedVersion {
        /// The version found.
        version: u16,
    },
    /// An unknown entry or metadata kind.
    #[error("unknown kind {code}")]
    UnknownKind {
        /// The code found.
        code: u8,
    },
    /// A segment written with another block size.
    #[error("segment written with block size {block_bytes}, this build uses {BLOCK_BYTES}")]
    BlockSize {
        /// The block size recorded in the segment.
        block_bytes: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_header_round_trips_and_rejects_flips() {
        let header = SegmentHeader {
            base_offset: Offset(1234),
            created_ms: 1_700_000_000_000,
        };
        let mut block = vec![0u8; BLOCK_BYTES as usize];
        header.encode(&mut block);
        assert_eq!(SegmentHeader::decode(&block), Ok(header));
        for byte in 0..SEGMENT_HEADER_BYTES {
            let mut bad = block.clone();
            bad[byte] ^= 0x10;
            assert!(
                SegmentHeader::decode(&bad).is_err(),
                "flip at {byte} accepted"
            );
        }
    }

    #[test]
    fn entry_header_covers_batch_prefix() {
        let prefix = [7u8; ENTRY_CRC_BATCH_PREFIX_BYTES];
        let header = EntryHeader {
            kind: EntryKind::Batch,
            payload_bytes: 100,
            durable_end_hint: Offset(42),
        };
        let mut bytes = vec![0u8; ENTRY_HEADER_BYTES + ENTRY_CRC_BATCH_PREFIX_BYTES];
        bytes[ENTRY_HEADER_BYTES..].copy_from_slice(&prefix);
        header.encode(&prefix, &mut bytes);
        assert_eq!(EntryHeader::decode(&bytes), Ok(header));
        for byte in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[byte] ^= 0x01;
            assert!(
                EntryHeader::decode(&bad).is_err(),
                "flip at {byte} accepted"
            );
        }
        // A batch header without its prefix cannot be checked.
        assert!(matches!(
            EntryHeader::decode(&bytes[..ENTRY_HEADER_BYTES]),
            Err(FormatError::Truncated { .. })
        ));
    }

    #[test]
    fn padding_fills_gap_or_leaves_zeros() {
        let mut gap = vec![0u8; 2288];
        encode_padding(&mut gap, Offset(9));
        let header = EntryHeader::decode(&gap).expect("padding decodes");
        assert_eq!(header.kind, EntryKind::Padding);
        assert_eq!(header.payload_bytes as usize + ENTRY_HEADER_BYTES, 2288);
        let mut small = vec![0u8; 8];
        encode_padding(&mut small, Offset(9));
        assert!(small.iter().all(|b| *b == 0));
    }

    #[test]
    fn meta_files_round_trip_and_reject_damage() {
        let bytes = encode_log_meta(Offset(77));
        assert_eq!(bytes.len() as u64, BLOCK_BYTES);
        assert_eq!(decode_log_meta(&bytes), Ok(Offset(77)));
        let mut bad = bytes.clone();
        bad[17] ^= 1;
        assert!(decode_log_meta(&bad).is_err());
        let marker = CleanShutdown {
            active_base: Offset(10),
            end_offset: Offset(20),
            end_position: 8192,
        };
        assert_eq!(CleanShutdown::decode(&marker.encode()), Ok(marker));
        // A marker is not a log.meta.
        assert!(decode_log_meta(&marker.encode()).is_err());
        assert!(decode_log_meta(&[0u8; 4096]).is_err());
    }
}
