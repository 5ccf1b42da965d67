//! The on-disk byte formats of a partition directory: segment file header, entry header,
//! index files and the small metadata files. Pure encode/decode, no I/O.
//!
//! docs/storage-format.md has the byte diagrams, the assumptions about the medium and the
//! version log; this module is its executable form. All integers are little-endian. Every
//! structure carries a magic, a version and a CRC-32C, and decoding never trusts a length
//! before the CRC that covers it has been checked.
//!
//! Every fixed-size layout is a `#[repr(C)]` struct of zerocopy's little-endian integers
//! (`*Layout`, private to the crate): alignment 1, so no padding and no alignment
//! requirement, the field order is the byte order of the diagram, and `const` assertions
//! pin each size and CRC position to the documented ones. Encoding is `as_bytes`, decoding
//! `ref_from_prefix` / `ref_from_bytes`, with no offset arithmetic and no `unsafe`. Two
//! things stay code: a CRC that covers bytes outside its struct (an entry's CRC also covers
//! the batch's first 21 bytes) and the CRC trailer of a metadata file, which follows a
//! variable-length payload, so its position is only known at run time.

use std::fmt;
use std::mem::{offset_of, size_of};

use zerocopy::little_endian::{I64, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

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

/// The segment header's bytes, in the order of the diagram above.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct SegmentHeaderLayout {
    magic: [u8; 8],
    version: U16,
    reserved: U16,
    block_bytes: U32,
    base_offset: U64,
    created_ms: I64,
    /// CRC-32C over every byte before it.
    crc: U32,
}
const _: () = assert!(size_of::<SegmentHeaderLayout>() == SEGMENT_HEADER_BYTES);
/// The segment header's CRC covers bytes `0..SEGMENT_CRC_COVERED_BYTES`.
const SEGMENT_CRC_COVERED_BYTES: usize = offset_of!(SegmentHeaderLayout, crc);
const _: () = assert!(SEGMENT_CRC_COVERED_BYTES == 32);

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
        let mut layout = SegmentHeaderLayout {
            magic: SEGMENT_MAGIC,
            version: U16::new(FORMAT_VERSION),
            reserved: U16::ZERO,
            block_bytes: U32::new(u32::try_from(BLOCK_BYTES).expect("a block is 4 KiB")),
            base_offset: U64::new(self.base_offset.0),
            created_ms: I64::new(self.created_ms),
            crc: U32::ZERO,
        };
        layout.crc = U32::new(crc32c::crc32c(
            &layout.as_bytes()[..SEGMENT_CRC_COVERED_BYTES],
        ));
        block[..SEGMENT_HEADER_BYTES].copy_from_slice(layout.as_bytes());
    }

    /// Decodes and checks a segment header.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, FormatError> {
        let Ok((layout, _)) = SegmentHeaderLayout::ref_from_prefix(bytes) else {
            return Err(FormatError::Truncated { bytes: bytes.len() });
        };
        if layout.magic != SEGMENT_MAGIC {
            return Err(FormatError::BadMagic);
        }
        let stored = layout.crc.get();
        let computed = crc32c::crc32c(&layout.as_bytes()[..SEGMENT_CRC_COVERED_BYTES]);
        if stored != computed {
            return Err(FormatError::CrcMismatch { stored, computed });
        }
        let version = layout.version.get();
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion { version });
        }
        let block_bytes = layout.block_bytes.get();
        if u64::from(block_bytes) != BLOCK_BYTES {
            return Err(FormatError::BlockSize { block_bytes });
        }
        Ok(SegmentHeader {
            base_offset: Offset(layout.base_offset.get()),
            created_ms: layout.created_ms.get(),
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

/// The entry header's bytes, in the order of the diagram above. Its CRC also covers the
/// batch's first bytes, which follow the header: that part stays in code (`EntryHeader::crc`).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct EntryHeaderLayout {
    magic: U32,
    kind: u8,
    reserved_byte: u8,
    reserved: U16,
    payload_bytes: U32,
    durable_end_hint: U64,
    /// CRC-32C over every byte before it, then (batch entries) the batch prefix.
    crc: U32,
}
const _: () = assert!(size_of::<EntryHeaderLayout>() == ENTRY_HEADER_BYTES);
/// The entry CRC covers header bytes `0..ENTRY_CRC_COVERED_BYTES` (then the batch prefix).
const ENTRY_CRC_COVERED_BYTES: usize = offset_of!(EntryHeaderLayout, crc);
const _: () = assert!(ENTRY_CRC_COVERED_BYTES == 20);

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
        let mut layout = EntryHeaderLayout {
            magic: U32::new(ENTRY_MAGIC),
            kind: self.kind.code(),
            reserved_byte: 0,
            reserved: U16::ZERO,
            payload_bytes: U32::new(self.payload_bytes),
            durable_end_hint: U64::new(self.durable_end_hint.0),
            crc: U32::ZERO,
        };
        layout.crc = U32::new(Self::crc(
            &layout.as_bytes()[..ENTRY_CRC_COVERED_BYTES],
            self.kind,
            batch_prefix,
        ));
        out[..ENTRY_HEADER_BYTES].copy_from_slice(layout.as_bytes());
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

    /// The payload length claimed by the entry header at the start of `bytes`, unverified
    /// (None if fewer than [`ENTRY_HEADER_BYTES`]): only for sizing a read, never to trust the
    /// entry, which [`EntryHeader::decode`] checks.
    pub(crate) fn claimed_payload_bytes(bytes: &[u8]) -> Option<u32> {
        let (layout, _) = EntryHeaderLayout::ref_from_prefix(bytes).ok()?;
        Some(layout.payload_bytes.get())
    }

    /// Decodes the header at the start of `bytes`. For a batch entry, `bytes` must also hold
    /// the first [`ENTRY_CRC_BATCH_PREFIX_BYTES`] of the payload, or this returns `Truncated`.
    pub fn decode(bytes: &[u8]) -> Result<EntryHeader, FormatError> {
        let Ok((layout, _)) = EntryHeaderLayout::ref_from_prefix(bytes) else {
            return Err(FormatError::Truncated { bytes: bytes.len() });
        };
        if layout.magic.get() != ENTRY_MAGIC {
            return Err(FormatError::BadMagic);
        }
        let kind = match layout.kind {
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
        let stored = layout.crc.get();
        let computed = Self::crc(&layout.as_bytes()[..ENTRY_CRC_COVERED_BYTES], kind, prefix);
        if stored != computed {
            return Err(FormatError::CrcMismatch { stored, computed });
        }
        Ok(EntryHeader {
            kind,
            payload_bytes: layout.payload_bytes.get(),
            durable_end_hint: Offset(layout.durable_end_hint.get()),
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
/// The CRC-32C that follows a metadata file's payload.
const META_CRC_BYTES: usize = size_of::<U32>();

/// The fixed prefix of a metadata file, in the order of the diagram above. The payload and
/// the CRC after it are not part of it: the CRC's position depends on the payload's length.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct MetaPrefixLayout {
    magic: [u8; 8],
    version: U16,
    kind: U16,
    payload_bytes: U32,
}
const _: () = assert!(size_of::<MetaPrefixLayout>() == META_PREFIX_BYTES);
const _: () = assert!(META_CRC_BYTES == 4);

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
    let covered = META_PREFIX_BYTES + payload.len();
    let used = covered + META_CRC_BYTES;
    let mut out = vec![0u8; usize::try_from(crate::disk::align_up(used as u64)).expect("fits")];
    let prefix = MetaPrefixLayout {
        magic: META_MAGIC,
        version: U16::new(FORMAT_VERSION),
        kind: U16::new(kind as u16),
        payload_bytes: U32::new(u32::try_from(payload.len()).expect("small")),
    };
    out[..META_PREFIX_BYTES].copy_from_slice(prefix.as_bytes());
    out[META_PREFIX_BYTES..covered].copy_from_slice(payload);
    let crc = U32::new(crc32c::crc32c(&out[..covered]));
    out[covered..used].copy_from_slice(crc.as_bytes());
    out
}

/// Decodes a metadata file of the expected kind, returning its payload.
pub fn decode_meta(kind: MetaKind, bytes: &[u8]) -> Result<&[u8], FormatError> {
    let truncated = || FormatError::Truncated { bytes: bytes.len() };
    // Not even an empty payload's CRC fits: refused before the magic is looked at.
    if bytes.len() < META_PREFIX_BYTES + META_CRC_BYTES {
        return Err(truncated());
    }
    let (prefix, _) = MetaPrefixLayout::ref_from_prefix(bytes).map_err(|_| truncated())?;
    if prefix.magic != META_MAGIC {
        return Err(FormatError::BadMagic);
    }
    let payload_bytes = prefix.payload_bytes.get() as usize;
    let end = META_PREFIX_BYTES
        .checked_add(payload_bytes)
        .ok_or_else(truncated)?;
    // The CRC trailer follows the payload, wherever its length puts it.
    let (stored, _) = bytes
        .get(end..)
        .and_then(|trailer| U32::read_from_prefix(trailer).ok())
        .ok_or_else(truncated)?;
    let stored = stored.get();
    let computed = crc32c::crc32c(&bytes[..end]);
    if stored != computed {
        return Err(FormatError::CrcMismatch { stored, computed });
    }
    let version = prefix.version.get();
    if version != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion { version });
    }
    let code = prefix.kind.get();
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

/// The clean-shutdown marker's payload (kind 2).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct CleanShutdownLayout {
    active_base: U64,
    end_offset: U64,
    end_position: U64,
}
const _: () = assert!(size_of::<CleanShutdownLayout>() == 24);

impl CleanShutdown {
    /// Encodes the marker file.
    pub fn encode(&self) -> Vec<u8> {
        let payload = CleanShutdownLayout {
            active_base: U64::new(self.active_base.0),
            end_offset: U64::new(self.end_offset.0),
            end_position: U64::new(self.end_position),
        };
        encode_meta(MetaKind::CleanShutdown, payload.as_bytes())
    }

    /// Decodes the marker file.
    pub fn decode(bytes: &[u8]) -> Result<CleanShutdown, FormatError> {
        let payload = decode_meta(MetaKind::CleanShutdown, bytes)?;
        // Exactly one layout's bytes, no more and no fewer.
        let layout =
            CleanShutdownLayout::ref_from_bytes(payload).map_err(|_| FormatError::Truncated {
                bytes: payload.len(),
            })?;
        Ok(CleanShutdown {
            active_base: Offset(layout.active_base.get()),
            end_offset: Offset(layout.end_offset.get()),
            end_position: layout.end_position.get(),
        })
    }
}

/// Encodes `log.meta` (kind 1: the log start offset, one u64).
pub fn encode_log_meta(log_start: Offset) -> Vec<u8> {
    encode_meta(MetaKind::LogMeta, U64::new(log_start.0).as_bytes())
}

/// Decodes `log.meta`, returning the log start offset.
pub fn decode_log_meta(bytes: &[u8]) -> Result<Offset, FormatError> {
    let payload = decode_meta(MetaKind::LogMeta, bytes)?;
    let log_start = U64::read_from_bytes(payload).map_err(|_| FormatError::Truncated {
        bytes: payload.len(),
    })?;
    Ok(Offset(log_start.get()))
}

/// The fixed start of an offset index file's payload (kind 3): the segment's summary. The
/// entries follow it, as many as the payload holds.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct IndexSummaryLayout {
    pub(crate) end_offset: U64,
    pub(crate) end_position: U64,
    pub(crate) max_timestamp: I64,
}
const _: () = assert!(size_of::<IndexSummaryLayout>() == 24);

/// One offset index entry (kind 3, after the summary).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct OffsetEntryLayout {
    pub(crate) relative_offset: U32,
    pub(crate) position: U32,
}
const _: () = assert!(size_of::<OffsetEntryLayout>() == 8);

/// One time index entry (kind 4: the whole payload is these).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct TimeEntryLayout {
    pub(crate) max_timestamp_before: I64,
    pub(crate) relative_offset: U32,
    pub(crate) position: U32,
}
const _: () = assert!(size_of::<TimeEntryLayout>() == 16);

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
pub(crate) mod tests {
    use super::*;

    /// Bytes from hex, for the pinned encodings below.
    pub(crate) fn hex(text: &str) -> Vec<u8> {
        assert!(text.len().is_multiple_of(2));
        (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hex"))
            .collect()
    }

    /// The bytes of every fixed layout, pinned. They were produced by the hand-written
    /// encoders that the zerocopy structs replaced, so these structs keep the format byte for
    /// byte; a later change to a layout fails here, next to docs/storage-format.md's diagrams.
    #[test]
    fn encodings_are_pinned_byte_for_byte() {
        let mut block = vec![0u8; BLOCK_BYTES as usize];
        let header = SegmentHeader {
            base_offset: Offset(0x0102_0304_0506_0708),
            created_ms: -1_700_000_000_123,
        };
        header.encode(&mut block);
        let expected = hex(concat!(
            "524255534c4f4700", // magic "RBUSLOG\0"
            "0100",             // version 1
            "0000",             // reserved
            "00100000",         // block 4096
            "0807060504030201", // base_offset
            "85971a3074feffff", // created_ms
            "d898ccd0",         // crc of bytes 0..32
        ));
        assert_eq!(block[..SEGMENT_HEADER_BYTES], expected[..]);
        assert!(block[SEGMENT_HEADER_BYTES..].iter().all(|byte| *byte == 0));
        assert_eq!(SegmentHeader::decode(&block), Ok(header));

        let prefix: Vec<u8> = (0..ENTRY_CRC_BATCH_PREFIX_BYTES as u8).collect();
        let entry = EntryHeader {
            kind: EntryKind::Batch,
            payload_bytes: 0x0a0b_0c0d,
            durable_end_hint: Offset(0x1112_1314_1516_1718),
        };
        let mut bytes = [0u8; ENTRY_HEADER_BYTES];
        entry.encode(&prefix, &mut bytes);
        let expected = hex(concat!(
            "52424531",         // magic "RBE1"
            "01",               // kind 1: batch
            "00",               // reserved
            "0000",             // reserved
            "0d0c0b0a",         // payload_bytes
            "1817161514131211", // durable_end_hint
            "e097a93d",         // crc of bytes 0..20, then the batch prefix
        ));
        assert_eq!(bytes[..], expected[..]);
        assert_eq!(
            EntryHeader::decode(&[&bytes[..], &prefix].concat()),
            Ok(entry)
        );

        let mut gap = vec![0u8; 40];
        encode_padding(&mut gap, Offset(77));
        let expected = hex(concat!(
            "52424531",                         // magic
            "02",                               // kind 2: padding
            "00",                               // reserved
            "0000",                             // reserved
            "10000000",                         // payload_bytes 16 (40 - 24)
            "4d00000000000000",                 // durable_end_hint 77
            "02a801b2",                         // crc of bytes 0..20
            "00000000000000000000000000000000", // the padding payload: zeros
        ));
        assert_eq!(gap, expected);

        let meta = encode_log_meta(Offset(0x2122_2324_2526_2728));
        let expected = hex(concat!(
            "524255534d455441", // magic "RBUSMETA"
            "0100",             // version 1
            "0100",             // kind 1: log.meta
            "08000000",         // payload_bytes 8
            "2827262524232221", // log_start_offset
            "37e66f37",         // crc of bytes 0..24
        ));
        assert_eq!(meta[..expected.len()], expected[..]);
        assert!(meta[expected.len()..].iter().all(|byte| *byte == 0));

        let marker = CleanShutdown {
            active_base: Offset(10),
            end_offset: Offset(0x3132_3334_3536_3738),
            end_position: 8192,
        }
        .encode();
        let expected = hex(concat!(
            "524255534d455441", // magic
            "0100",             // version 1
            "0200",             // kind 2: clean.shutdown
            "18000000",         // payload_bytes 24
            "0a00000000000000", // active_base 10
            "3837363534333231", // end_offset
            "0020000000000000", // end_position 8192
            "d8bdd042",         // crc of bytes 0..40
        ));
        assert_eq!(marker[..expected.len()], expected[..]);
        assert!(marker[expected.len()..].iter().all(|byte| *byte == 0));
    }

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
