//! The Kafka RecordBatch v2 codec (magic 2): header parsing, verification, record iteration and
//! a builder for uncompressed batches.
//!
//! ringbus stores and serves producer batches byte for byte, so this module is the one place
//! that knows their layout. Every multi-byte integer is big-endian, because Kafka's spec says
//! so; that stays inside this module (ringbus's own formats are little-endian). No I/O and no
//! state: every function is a pure function of its slice, callable from any shard.
//!
//! # Header: 61 bytes
//!
//! ```text
//! offset size field                 crc?  notes
//!      0    8 baseOffset      i64   no    assigned by the broker on append (set_base_offset)
//!      8    4 batchLength     i32   no    bytes after this field: total = batchLength + 12
//!     12    4 partitionLeaderEpoch  no    i32; producers send -1, the broker may stamp it
//!     16    1 magic           i8    no    2
//!     17    4 crc             u32   no    CRC-32C (Castagnoli) over bytes 21..end
//!     21    2 attributes      i16   yes   bits 0-2 compression (0 none, 1 gzip, 2 snappy,
//!                                         3 lz4, 4 zstd), 3 timestamp type, 4 transactional,
//!                                         5 control, 6 delete horizon
//!     23    4 lastOffsetDelta i32   yes   offset of the last record - baseOffset
//!     27    8 baseTimestamp   i64   yes   ms
//!     35    8 maxTimestamp    i64   yes   ms
//!     43    8 producerId      i64   yes   -1 without idempotence
//!     51    2 producerEpoch   i16   yes   -1 without idempotence
//!     53    4 baseSequence    i32   yes   -1 without idempotence
//!     57    4 recordCount     i32   yes
//!     61      records               yes   compressed as a whole when compression != 0
//!
//!  0        8        12       16 17       21                                              61
//!  +--------+--------+--------+--+--------+-----------------------------------------------+---
//!  |baseOff |batchLen|leaderEp|mg|  crc   | attributes .. recordCount                     |records
//!  +--------+--------+--------+--+--------+-----------------------------------------------+---
//!  |<-- CRC_UNCOVERED_BYTES = 21, not --->|<-------------- covered by the crc ------------------>
//!  |<- LENGTH_PREFIX_BYTES = 12 ->|
//! ```
//!
//! The CRC does not cover the first 21 bytes, so a broker can assign `baseOffset` (and stamp
//! the leader epoch) without recomputing it. The flip side: corruption of `baseOffset` or
//! `partitionLeaderEpoch` is invisible to [`verify`], which is why storage protects those bytes
//! with its own CRC.
//!
//! # Record (inside an uncompressed batch; varints are zig-zag, see [`crate::varint`])
//!
//! ```text
//! length            varint   bytes after this field, through the last header
//! attributes        i8       unused by Kafka today; carried as is
//! timestampDelta    varlong  timestamp - baseTimestamp, ms
//! offsetDelta       varint   offset - baseOffset; 0, 1, 2, ... in producer batches
//! keyLength         varint   -1 = null key
//! key               keyLength bytes
//! valueLength       varint   -1 = null value
//! value             valueLength bytes
//! headerCount       varint
//! headerCount times:
//!   headerKeyLength   varint   >= 0 (header keys are never null)
//!   headerKey         headerKeyLength bytes
//!   headerValueLength varint   -1 = null value
//!   headerValue       headerValueLength bytes
//! ```
//!
//! Worked example: key `"k"`, value `"v"`, timestamp equal to the base timestamp, first record,
//! no headers. The fields after `length` are `00` (attributes), `00` (delta 0), `00` (offset
//! delta 0), `02 6b` (length 1 zig-zags to 2, then `k`), `02 76` (`v`), `00` (no headers):
//! 8 bytes, so `length` is 8, zig-zag 16 = `10`. The record is `10 00 00 00 02 6b 02 76 00`,
//! 9 bytes, and the batch is 61 + 9 = 70 bytes with batchLength 70 - 12 = 58.
//!
//! # What ringbus accepts
//!
//! [`verify`] accepts exactly what a producer sends without transactions: magic 2, matching
//! length and CRC, compression none, gzip, snappy, lz4 or zstd (bits 5-7 refused), not
//! transactional or control, at least one record, and contiguous offsets
//! (`lastOffsetDelta == recordCount - 1`). Everything else is refused with a [`BatchError`]
//! naming the reason; nothing on these paths panics on untrusted input.
//!
//! Compressed batches are checked by their header and CRC only: ringbus never decompresses
//! (batches are stored and served as they came, as Kafka does), so [`verify_with_records`]
//! walks the records of uncompressed batches only and [`records`] refuses a compressed one
//! with [`BatchError::UnsupportedCompression`]. See [`verify_with_records`] for exactly what
//! that leaves unchecked.

use crate::varint::{self, VarintError};

/// Size of the fixed batch header, up to the first record.
pub const HEADER_BYTES: usize = 61;
/// The only batch format version this codec reads and writes.
pub const MAGIC: i8 = 2;
/// The first 21 bytes (baseOffset, batchLength, partitionLeaderEpoch, magic, crc) are not
/// covered by the batch CRC.
pub const CRC_UNCOVERED_BYTES: usize = 21;
/// Bytes before and including batchLength: total batch size = batch_length + LENGTH_PREFIX_BYTES.
pub const LENGTH_PREFIX_BYTES: usize = 12;

/// Smallest batchLength that leaves room for the header: 61 - 12 = 49.
const BATCH_LENGTH_MIN: i32 = (HEADER_BYTES - LENGTH_PREFIX_BYTES) as i32;

/// Byte offsets of the header fields (see the diagram in the module doc).
pub mod field {
    /// `baseOffset`, i64.
    pub const BASE_OFFSET: usize = 0;
    /// `batchLength`, i32: bytes after this field.
    pub const BATCH_LENGTH: usize = 8;
    /// `partitionLeaderEpoch`, i32.
    pub const PARTITION_LEADER_EPOCH: usize = 12;
    /// `magic`, i8.
    pub const MAGIC: usize = 16;
    /// `crc`, u32.
    pub const CRC: usize = 17;
    /// `attributes`, i16: the first byte the CRC covers.
    pub const ATTRIBUTES: usize = 21;
    /// `lastOffsetDelta`, i32.
    pub const LAST_OFFSET_DELTA: usize = 23;
    /// `baseTimestamp`, i64.
    pub const BASE_TIMESTAMP: usize = 27;
    /// `maxTimestamp`, i64.
    pub const MAX_TIMESTAMP: usize = 35;
    /// `producerId`, i64.
    pub const PRODUCER_ID: usize = 43;
    /// `producerEpoch`, i16.
    pub const PRODUCER_EPOCH: usize = 51;
    /// `baseSequence`, i32.
    pub const BASE_SEQUENCE: usize = 53;
    /// `recordCount`, i32: the last header field.
    pub const RECORD_COUNT: usize = 57;
}

// Each field starts where the previous one ends; the header ends after recordCount.
const _: () = assert!(field::BASE_OFFSET == 0);
const _: () = assert!(field::BATCH_LENGTH == field::BASE_OFFSET + 8);
const _: () = assert!(field::PARTITION_LEADER_EPOCH == field::BATCH_LENGTH + 4);
const _: () = assert!(field::MAGIC == field::PARTITION_LEADER_EPOCH + 4);
const _: () = assert!(field::CRC == field::MAGIC + 1);
const _: () = assert!(field::ATTRIBUTES == field::CRC + 4);
const _: () = assert!(field::LAST_OFFSET_DELTA == field::ATTRIBUTES + 2);
const _: () = assert!(field::BASE_TIMESTAMP == field::LAST_OFFSET_DELTA + 4);
const _: () = assert!(field::MAX_TIMESTAMP == field::BASE_TIMESTAMP + 8);
const _: () = assert!(field::PRODUCER_ID == field::MAX_TIMESTAMP + 8);
const _: () = assert!(field::PRODUCER_EPOCH == field::PRODUCER_ID + 8);
const _: () = assert!(field::BASE_SEQUENCE == field::PRODUCER_EPOCH + 2);
const _: () = assert!(field::RECORD_COUNT == field::BASE_SEQUENCE + 4);
const _: () = assert!(HEADER_BYTES == field::RECORD_COUNT + 4);
// The CRC covers everything from attributes on, and batchLength counts from right after itself.
const _: () = assert!(CRC_UNCOVERED_BYTES == field::ATTRIBUTES);
const _: () = assert!(LENGTH_PREFIX_BYTES == field::BATCH_LENGTH + 4);
const _: () = assert!(BATCH_LENGTH_MIN == 49);

/// Attribute bits 0-2: the compression codec of the records section.
const ATTRIBUTE_COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit 3: the timestamps are the broker's append time (maxTimestamp holds it for
/// every record), not the producer's create time.
const ATTRIBUTE_LOG_APPEND_TIME: i16 = 0x08;
/// Attribute bit 4: part of a transaction.
const ATTRIBUTE_TRANSACTIONAL: i16 = 0x10;
/// Attribute bit 5: a control batch (transaction markers), not user records.
const ATTRIBUTE_CONTROL: i16 = 0x20;

/// The compression codec named by attribute bits 0-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// 0: records are stored as is.
    None,
    /// 1.
    Gzip,
    /// 2.
    Snappy,
    /// 3.
    Lz4,
    /// 4.
    Zstd,
}

impl Compression {
    fn from_bits(bits: u8) -> Result<Compression, BatchError> {
        match bits {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            _ => Err(BatchError::InvalidCompression { bits }),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

/// Why a batch was refused. Each variant is one reason a producer's bytes are not a batch
/// ringbus will store; the numbers say what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// Fewer bytes than the fixed header.
    #[error("the batch is {bytes} bytes, shorter than the {header} byte RecordBatch header", header = HEADER_BYTES)]
    TooShort {
        /// Bytes given.
        bytes: usize,
    },
    /// batchLength + 12 is not the size of the slice (a batch must be given exactly).
    #[error(
        "the batch declares {declared_bytes} bytes (batchLength + 12) but {actual_bytes} bytes were given"
    )]
    LengthMismatch {
        /// batchLength + [`LENGTH_PREFIX_BYTES`].
        declared_bytes: u64,
        /// Size of the slice.
        actual_bytes: usize,
    },
    /// batchLength is negative, so no size can be declared at all.
    #[error("the batch declares a negative batchLength of {batch_length}")]
    NegativeBatchLength {
        /// The batchLength field.
        batch_length: i32,
    },
    /// The magic byte is not 2: an older message set, or not a batch at all.
    #[error("the batch has magic {magic}; only RecordBatch v2 (magic {expected}) is supported", expected = MAGIC)]
    BadMagic {
        /// The magic byte found.
        magic: i8,
    },
    /// The stored CRC does not match the bytes it covers: corrupted in transit or at rest.
    #[error("the batch CRC is {stored:#010x} but its bytes compute to {computed:#010x}")]
    CrcMismatch {
        /// The crc field.
        stored: u32,
        /// CRC-32C of bytes 21..end.
        computed: u32,
    },
    /// The records are compressed with a real codec: the batch verifies and is stored as it is,
    /// but ringbus never decompresses, so its records cannot be iterated here ([`records`]).
    #[error(
        "the batch is compressed with {compression}; ringbus stores and serves it as it is but cannot decompress its records (a Kafka client can)"
    )]
    UnsupportedCompression {
        /// The codec named by the attributes.
        compression: Compression,
    },
    /// Attribute bits 0-2 are 5, 6 or 7, which name no codec.
    #[error("the batch names compression codec {bits}, which does not exist (valid: 0 to 4)")]
    InvalidCompression {
        /// Attribute bits 0-2.
        bits: u8,
    },
    /// recordCount is negative.
    #[error("the batch declares a negative record count of {count}")]
    NegativeRecordCount {
        /// The recordCount field.
        count: i32,
    },
    /// recordCount is 0: there is nothing to append, and no offset to assign.
    #[error("the batch declares 0 records; an empty batch cannot be appended")]
    EmptyBatch,
    /// Offsets are not contiguous: producer batches have lastOffsetDelta = recordCount - 1.
    #[error(
        "the batch has lastOffsetDelta {last_offset_delta} but {record_count} records; expected lastOffsetDelta = record count - 1"
    )]
    OffsetDeltaMismatch {
        /// The lastOffsetDelta field.
        last_offset_delta: i32,
        /// The recordCount field.
        record_count: i32,
    },
    /// Transactional or control batch (attribute bit 4 or 5): not supported yet.
    #[error("the batch is transactional or a control batch, which ringbus does not support yet")]
    ControlOrTransactional,
    /// A record inside the batch is malformed.
    #[error("record {index} of the batch is malformed: {reason}")]
    Record {
        /// Position of the record in the batch, from 0.
        index: u32,
        /// What was wrong with it.
        reason: RecordError,
    },
    /// The records section ended before recordCount records were read.
    #[error("the batch declares {declared} records but its records section holds only {found}")]
    RecordCountMismatch {
        /// The recordCount field.
        declared: i32,
        /// Complete records read before the section ended.
        found: u32,
    },
    /// Bytes remain after the last declared record.
    #[error("{bytes} bytes follow the last declared record of the batch")]
    TrailingBytes {
        /// Bytes left over.
        bytes: usize,
    },
}

/// The fields of a record, to name where a record went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordField {
    /// The leading length varint.
    Length,
    /// The attributes byte.
    Attributes,
    /// The timestampDelta varlong.
    TimestampDelta,
    /// The offsetDelta varint.
    OffsetDelta,
    /// The keyLength varint.
    KeyLength,
    /// The key bytes.
    Key,
    /// The valueLength varint.
    ValueLength,
    /// The value bytes.
    Value,
    /// The headerCount varint.
    HeaderCount,
    /// A header's key length varint.
    HeaderKeyLength,
    /// A header's key bytes.
    HeaderKey,
    /// A header's value length varint.
    HeaderValueLength,
    /// A header's value bytes.
    HeaderValue,
}

impl std::fmt::Display for RecordField {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            RecordField::Length => "length",
            RecordField::Attributes => "attributes",
            RecordField::TimestampDelta => "timestamp delta",
            RecordField::OffsetDelta => "offset delta",
            RecordField::KeyLength => "key length",
            RecordField::Key => "key",
            RecordField::ValueLength => "value length",
            RecordField::Value => "value",
            RecordField::HeaderCount => "header count",
            RecordField::HeaderKeyLength => "header key length",
            RecordField::HeaderKey => "header key",
            RecordField::HeaderValueLength => "header value length",
            RecordField::HeaderValue => "header value",
        })
    }
}

/// Why one record inside a batch could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record (as bounded by its length) ended before this field was complete.
    #[error("its {field} is cut off: only {remaining_bytes} bytes of the record remain")]
    Truncated {
        /// The field being read.
        field: RecordField,
        /// Bytes that were left in the record.
        remaining_bytes: usize,
    },
    /// A varint or varlong is longer than its maximum or too wide for its type.
    #[error("its {field} varint does not fit in {bits} bits")]
    VarintOverflow {
        /// The field being read.
        field: RecordField,
        /// 32 for a varint, 64 for a varlong.
        bits: u32,
    },
    /// A length or count below what the format allows (-1 means null where null is allowed).
    #[error("its {field} is {length}, below the minimum of {minimum}")]
    NegativeLength {
        /// The field read.
        field: RecordField,
        /// The value found.
        length: i32,
        /// The smallest valid value: -1 for nullable key and values, 0 otherwise.
        minimum: i32,
    },
    /// The record's length reaches past the end of the batch.
    #[error("its length is {length} bytes but only {remaining_bytes} bytes of the batch remain")]
    LengthExceedsBatch {
        /// The record's length field.
        length: i32,
        /// Bytes left in the batch after the length field.
        remaining_bytes: usize,
    },
    /// The record's fields end before the record's length does.
    #[error("its length is {declared_bytes} bytes but its fields use only {used_bytes}")]
    LengthMismatch {
        /// The record's length field.
        declared_bytes: i32,
        /// Bytes its fields actually occupy.
        used_bytes: usize,
    },
    /// Offsets within a producer batch must be 0, 1, 2, ...
    #[error(
        "its offset delta is {found} but {expected} was expected (offsets must be contiguous from 0)"
    )]
    OffsetDeltaOutOfOrder {
        /// The record's index in the batch.
        expected: u32,
        /// Its offsetDelta field.
        found: i32,
    },
}

/// The decoded fixed header of a batch. A plain copy of the 61 bytes; holds no borrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record; assigned by the broker.
    pub base_offset: i64,
    /// Bytes after the batchLength field.
    pub batch_length: i32,
    /// Leader epoch stamped by the broker; -1 from producers.
    pub partition_leader_epoch: i32,
    /// Format version; 2 once parsed.
    pub magic: i8,
    /// CRC-32C of bytes 21..end as stored (not checked by [`BatchHeader::parse`]).
    pub crc: u32,
    /// Compression, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// Offset of the last record minus base_offset.
    pub last_offset_delta: i32,
    /// Timestamp of the first record, ms.
    pub base_timestamp: i64,
    /// Largest record timestamp, ms.
    pub max_timestamp: i64,
    /// Idempotent producer id; -1 if none.
    pub producer_id: i64,
    /// Idempotent producer epoch; -1 if none.
    pub producer_epoch: i16,
    /// Sequence number of the first record; -1 if none.
    pub base_sequence: i32,
    /// Records in the batch.
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the 61-byte header (needs >= HEADER_BYTES bytes, may be given more). Checks magic
    /// only; no CRC, no length check against the slice.
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        let Some((header, _)) = bytes.split_first_chunk::<HEADER_BYTES>() else {
            return Err(BatchError::TooShort { bytes: bytes.len() });
        };
        let magic = i8::from_be_bytes(read(header, field::MAGIC));
        if magic != MAGIC {
            return Err(BatchError::BadMagic { magic });
        }
        Ok(BatchHeader {
            base_offset: i64::from_be_bytes(read(header, field::BASE_OFFSET)),
            batch_length: i32::from_be_bytes(read(header, field::BATCH_LENGTH)),
            partition_leader_epoch: i32::from_be_bytes(read(header, field::PARTITION_LEADER_EPOCH)),
            magic,
            crc: u32::from_be_bytes(read(header, field::CRC)),
            attributes: i16::from_be_bytes(read(header, field::ATTRIBUTES)),
            last_offset_delta: i32::from_be_bytes(read(header, field::LAST_OFFSET_DELTA)),
            base_timestamp: i64::from_be_bytes(read(header, field::BASE_TIMESTAMP)),
            max_timestamp: i64::from_be_bytes(read(header, field::MAX_TIMESTAMP)),
            producer_id: i64::from_be_bytes(read(header, field::PRODUCER_ID)),
            producer_epoch: i16::from_be_bytes(read(header, field::PRODUCER_EPOCH)),
            base_sequence: i32::from_be_bytes(read(header, field::BASE_SEQUENCE)),
            record_count: i32::from_be_bytes(read(header, field::RECORD_COUNT)),
        })
    }

    /// The whole batch's size in bytes (batch_length + 12), or None if batch_length is smaller
    /// than a header (negative or below 49).
    pub fn total_bytes(&self) -> Option<usize> {
        total_bytes_from_length(self.batch_length)
    }

    /// The codec named by attribute bits 0-2.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        // The mask keeps 3 bits, so the cast cannot lose anything.
        Compression::from_bits((self.attributes & ATTRIBUTE_COMPRESSION_MASK) as u8)
    }

    /// Whether attribute bit 3 is set: every record's timestamp is the broker's append time,
    /// `max_timestamp`, whatever its own timestamp delta says.
    pub fn log_append_time(&self) -> bool {
        self.attributes & ATTRIBUTE_LOG_APPEND_TIME != 0
    }

    /// Offset of the last record: base_offset + last_offset_delta.
    ///
    /// Wraps rather than panics if a corrupt header puts it past i64::MAX; [`verify`] does not
    /// check base_offset because the broker assigns it.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    fn is_control_or_transactional(&self) -> bool {
        self.attributes & (ATTRIBUTE_TRANSACTIONAL | ATTRIBUTE_CONTROL) != 0
    }
}

/// Copies the `N` bytes of a header field. The offsets are the constants above, asserted to lie
/// inside the 61-byte array, so this cannot go out of bounds whatever the input bytes are.
fn read<const N: usize>(header: &[u8; HEADER_BYTES], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&header[at..at + N]);
    out
}

/// The counterpart of [`read`] for building headers.
fn write<const N: usize>(header: &mut [u8; HEADER_BYTES], at: usize, bytes: [u8; N]) {
    header[at..at + N].copy_from_slice(&bytes);
}

fn total_bytes_from_length(batch_length: i32) -> Option<usize> {
    if batch_length < BATCH_LENGTH_MIN {
        return None;
    }
    usize::try_from(batch_length)
        .ok()?
        .checked_add(LENGTH_PREFIX_BYTES)
}

/// From the first 12 bytes: the whole batch's size, or None if fewer than 12 bytes or
/// batchLength is too small/negative.
///
/// This is how a reader frames batches in a stream: read 12 bytes, then the rest.
pub fn total_bytes(prefix: &[u8]) -> Option<usize> {
    let (length_prefix, _) = prefix.split_first_chunk::<LENGTH_PREFIX_BYTES>()?;
    let (_, batch_length) = length_prefix.split_last_chunk::<4>()?;
    total_bytes_from_length(i32::from_be_bytes(*batch_length))
}

/// CRC-32C (Castagnoli) over bytes 21..end, as Kafka computes it.
///
/// A slice shorter than 21 bytes covers nothing and yields the CRC of no bytes (0); callers
/// check the length first (as [`verify`] does).
pub fn compute_crc(batch: &[u8]) -> u32 {
    // CRC-32/ISCSI is CRC-32C (the same polynomial, init and final xor as the crc32c crate).
    crc_fast::crc32_iscsi(batch.get(CRC_UNCOVERED_BYTES..).unwrap_or(&[]))
}

/// Checks that batchLength declares exactly the slice's size.
fn check_length(header: &BatchHeader, actual_bytes: usize) -> Result<(), BatchError> {
    if header.batch_length < 0 {
        return Err(BatchError::NegativeBatchLength {
            batch_length: header.batch_length,
        });
    }
    // Non-negative i32 + 12 always fits in u64; compared as u64 so no usize cast can wrap.
    let declared_bytes = header.batch_length as u64 + LENGTH_PREFIX_BYTES as u64;
    if declared_bytes != actual_bytes as u64 {
        return Err(BatchError::LengthMismatch {
            declared_bytes,
            actual_bytes,
        });
    }
    Ok(())
}

/// Full header check of ONE complete batch (slice must be exactly one batch): length matches,
/// magic 2, CRC matches, compression a real codec (none, gzip, snappy, lz4 or zstd; bits 5-7
/// refused), not control/transactional, record_count > 0, last_offset_delta ==
/// record_count - 1. Does not walk the records.
///
/// The same checks hold for a compressed batch, because every one of them reads the header,
/// which is never compressed; and the CRC covers the compressed records section, so a flipped
/// bit anywhere after byte 21 is still caught.
///
/// The checks run in that order of trust: framing first (is this a whole v2 batch?), then
/// integrity (the CRC), then policy on fields the CRC has vouched for. Not checked: baseOffset
/// and partitionLeaderEpoch, which the CRC does not cover (see the module doc).
pub fn verify(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    check_length(&header, batch.len())?;
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    // All four real codecs are accepted; bits 5-7 name none and are refused. A compressed
    // batch is stored and served as it came (the broker never decompresses: zero copy), so
    // nothing below looks inside its records section.
    header.compression()?;
    if header.is_control_or_transactional() {
        return Err(BatchError::ControlOrTransactional);
    }
    if header.record_count < 0 {
        return Err(BatchError::NegativeRecordCount {
            count: header.record_count,
        });
    }
    if header.record_count == 0 {
        return Err(BatchError::EmptyBatch);
    }
    // record_count >= 1 here, so the subtraction cannot overflow.
    if header.last_offset_delta != header.record_count - 1 {
        return Err(BatchError::OffsetDeltaMismatch {
            last_offset_delta: header.last_offset_delta,
            record_count: header.record_count,
        });
    }
    Ok(header)
}

/// verify() plus, for an uncompressed batch, walks every record: each well-formed, offset
/// deltas 0,1,2..., count matches, no trailing bytes.
///
/// Costs one pass over the records on top of the CRC; worth it where a malformed record would
/// otherwise reach a consumer that trusts the broker.
///
/// A compressed batch gets [`verify`]'s checks only. Its records section is one compressed
/// blob, and the broker never decompresses (stored and served byte for byte, as Kafka does:
/// decompressing to check would cost a copy and a codec per produce). So for a compressed
/// batch the records themselves, their count against recordCount, their offset deltas and
/// whether the blob decompresses at all are NOT checked here: the producer's CRC vouches that
/// the bytes are what it sent, and a consumer checks the records when it decompresses them,
/// which Kafka clients do. What is still checked: framing, magic, CRC, a real codec,
/// not control/transactional, recordCount >= 1 and lastOffsetDelta == recordCount - 1 (the
/// header alone decides the offsets the batch takes, and producer state reads its sequences
/// from the header too).
pub fn verify_with_records(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = verify(batch)?;
    if header.compression()? != Compression::None {
        return Ok(header);
    }
    for (index, record) in (0u32..).zip(records(batch)?) {
        let record = record?;
        if i64::from(record.offset_delta) != i64::from(index) {
            return Err(BatchError::Record {
                index,
                reason: RecordError::OffsetDeltaOutOfOrder {
                    expected: index,
                    found: record.offset_delta,
                },
            });
        }
    }
    Ok(header)
}

/// A batch that passed [`verify_with_records`] (for a compressed batch: its header and CRC
/// checks, see there): only [`Verified::check`] makes one, and its
/// bytes can afterwards be changed only where the CRC does not reach ([`Verified::set_base_offset`]),
/// so holding one proves the checks hold for these exact bytes. The broker checks a batch once,
/// at the edge, and carries it to the log as this type instead of checking it again.
#[derive(Debug, Clone)]
pub struct Verified<B> {
    bytes: B,
    header: BatchHeader,
}

impl<B: AsRef<[u8]>> Verified<B> {
    /// Runs [`verify_with_records`] on `bytes`.
    pub fn check(bytes: B) -> Result<Verified<B>, BatchError> {
        let header = verify_with_records(bytes.as_ref())?;
        Ok(Verified { bytes, header })
    }

    /// The header as verified (baseOffset as it was then).
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The batch bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// The bytes, giving up the proof.
    pub fn into_inner(self) -> B {
        self.bytes
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Verified<B> {
    /// Assigns baseOffset (outside the CRC: the batch stays verified).
    pub fn set_base_offset(&mut self, base_offset: i64) {
        set_base_offset(self.bytes.as_mut(), base_offset);
        self.header.base_offset = base_offset;
    }
}

/// Overwrites baseOffset in place (the CRC does not cover it, so it stays valid). Panics
/// (assert) if batch.len() < HEADER_BYTES — that is a programmer error here.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    assert!(
        batch.len() >= HEADER_BYTES,
        "set_base_offset: batch is {} bytes, shorter than the {} byte header",
        batch.len(),
        HEADER_BYTES
    );
    batch[field::BASE_OFFSET..field::BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Stamps the idempotent-producer fields (producerId, producerEpoch, baseSequence) of a
/// finished batch in place and recomputes its CRC, which covers them. A producer stamps a
/// batch when it first sends it, so that sequences follow the order batches leave in.
/// Panics (assert) if the slice is shorter than a header: a programmer error here.
pub fn set_producer(batch: &mut [u8], producer_id: i64, producer_epoch: i16, base_sequence: i32) {
    assert!(
        batch.len() >= HEADER_BYTES,
        "set_producer: batch is {} bytes, shorter than the {} byte header",
        batch.len(),
        HEADER_BYTES
    );
    batch[field::PRODUCER_ID..field::PRODUCER_ID + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[field::PRODUCER_EPOCH..field::PRODUCER_EPOCH + 2]
        .copy_from_slice(&producer_epoch.to_be_bytes());
    batch[field::BASE_SEQUENCE..field::BASE_SEQUENCE + 4]
        .copy_from_slice(&base_sequence.to_be_bytes());
    let crc = compute_crc(batch);
    batch[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// One record of a batch, borrowing its key, value and headers from the batch bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Record attributes; unused by Kafka today.
    pub attributes: i8,
    /// Record timestamp minus the batch's baseTimestamp, ms.
    pub timestamp_delta: i64,
    /// Record offset minus the batch's baseOffset.
    pub offset_delta: i32,
    /// None for a null key (length -1), which differs from an empty key.
    pub key: Option<&'a [u8]>,
    /// None for a null value (a tombstone), which differs from an empty value.
    pub value: Option<&'a [u8]>,
    /// Header keys and values in order; a header value may be null.
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

/// Iterates the records of an uncompressed batch (call verify first for trust); yields Err once
/// and then stops on malformed data.
///
/// Checks up front what iteration needs: a v2 header, batchLength matching the slice, no
/// compression, a non-negative record count. Not the CRC: that is [`verify`]'s job, and
/// iterating a verified batch should not pay for it twice.
pub fn records(batch: &[u8]) -> Result<Records<'_>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    check_length(&header, batch.len())?;
    let compression = header.compression()?;
    if compression != Compression::None {
        return Err(BatchError::UnsupportedCompression { compression });
    }
    let Ok(record_count) = u32::try_from(header.record_count) else {
        return Err(BatchError::NegativeRecordCount {
            count: header.record_count,
        });
    };
    // parse() proved the slice holds at least the header.
    let remaining = batch.get(HEADER_BYTES..).unwrap_or(&[]);
    Ok(Records {
        remaining,
        record_count,
        index: 0,
        finished: false,
    })
}

/// Iterator over the records of one uncompressed batch; see [`records`].
///
/// Yields recordCount records, then an `Err` if bytes are left over. On the first malformed
/// record, or if the bytes end early, it yields one `Err` and then only `None`.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    /// Bytes from the next record to the end of the batch.
    remaining: &'a [u8],
    /// The batch's recordCount.
    record_count: u32,
    /// Index of the next record.
    index: u32,
    /// Set after the end or an error, so the iterator is fused.
    finished: bool,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<RecordView<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        if self.index == self.record_count {
            self.finished = true;
            if self.remaining.is_empty() {
                return None;
            }
            return Some(Err(BatchError::TrailingBytes {
                bytes: self.remaining.len(),
            }));
        }
        if self.remaining.is_empty() {
            self.finished = true;
            return Some(Err(BatchError::RecordCountMismatch {
                // record_count came from a non-negative i32.
                declared: self.record_count as i32,
                found: self.index,
            }));
        }
        match parse_record(self.remaining) {
            Ok((record, record_bytes)) => {
                self.remaining = self.remaining.get(record_bytes..).unwrap_or(&[]);
                self.index += 1;
                Some(Ok(record))
            }
            Err(reason) => {
                self.finished = true;
                Some(Err(BatchError::Record {
                    index: self.index,
                    reason,
                }))
            }
        }
    }
}

impl std::iter::FusedIterator for Records<'_> {}

/// A cursor over the bytes of one record; every read is checked against what is left.
struct RecordReader<'a> {
    remaining: &'a [u8],
}

impl<'a> RecordReader<'a> {
    fn byte(&mut self, field: RecordField) -> Result<u8, RecordError> {
        let (&byte, rest) = self.remaining.split_first().ok_or(RecordError::Truncated {
            field,
            remaining_bytes: 0,
        })?;
        self.remaining = rest;
        Ok(byte)
    }

    fn varint(&mut self, field: RecordField) -> Result<i32, RecordError> {
        let (value, bytes_read) =
            varint::decode_varint(self.remaining).map_err(|error| varint_error(field, error))?;
        self.skip(bytes_read, field)?;
        Ok(value)
    }

    fn varlong(&mut self, field: RecordField) -> Result<i64, RecordError> {
        let (value, bytes_read) =
            varint::decode_varlong(self.remaining).map_err(|error| varint_error(field, error))?;
        self.skip(bytes_read, field)?;
        Ok(value)
    }

    fn take(&mut self, bytes: usize, field: RecordField) -> Result<&'a [u8], RecordError> {
        let (taken, rest) =
            self.remaining
                .split_at_checked(bytes)
                .ok_or(RecordError::Truncated {
                    field,
                    remaining_bytes: self.remaining.len(),
                })?;
        self.remaining = rest;
        Ok(taken)
    }

    fn skip(&mut self, bytes: usize, field: RecordField) -> Result<(), RecordError> {
        self.take(bytes, field).map(|_| ())
    }

    /// A length-prefixed byte string; length -1 is null when `nullable`.
    fn bytes(
        &mut self,
        length_field: RecordField,
        bytes_field: RecordField,
        nullable: bool,
    ) -> Result<Option<&'a [u8]>, RecordError> {
        let length = self.varint(length_field)?;
        let minimum = if nullable { -1 } else { 0 };
        if length < minimum {
            return Err(RecordError::NegativeLength {
                field: length_field,
                length,
                minimum,
            });
        }
        match usize::try_from(length) {
            // Only -1 fails the conversion here: the null marker.
            Err(_) => Ok(None),
            Ok(length) => self.take(length, bytes_field).map(Some),
        }
    }
}

fn varint_error(field: RecordField, error: VarintError) -> RecordError {
    match error {
        VarintError::Truncated { bytes } => RecordError::Truncated {
            field,
            remaining_bytes: bytes,
        },
        VarintError::Overflow { bits, .. } => RecordError::VarintOverflow { field, bits },
    }
}

/// Parses the record at the start of `bytes` (which may hold more records after it): the record
/// and the bytes it occupies, length field included.
fn parse_record(bytes: &[u8]) -> Result<(RecordView<'_>, usize), RecordError> {
    let mut outer = RecordReader { remaining: bytes };
    let length = outer.varint(RecordField::Length)?;
    let length_field_bytes = bytes.len() - outer.remaining.len();
    let Ok(record_bytes) = usize::try_from(length) else {
        return Err(RecordError::NegativeLength {
            field: RecordField::Length,
            length,
            minimum: 0,
        });
    };
    let body = outer
        .remaining
        .get(..record_bytes)
        .ok_or(RecordError::LengthExceedsBatch {
            length,
            remaining_bytes: outer.remaining.len(),
        })?;

    // Every field is read from `body` only, so a wrong length cannot make a record borrow its
    // neighbour's bytes.
    let mut reader = RecordReader { remaining: body };
    let attributes = reader.byte(RecordField::Attributes)? as i8;
    let timestamp_delta = reader.varlong(RecordField::TimestampDelta)?;
    let offset_delta = reader.varint(RecordField::OffsetDelta)?;
    let key = reader.bytes(RecordField::KeyLength, RecordField::Key, true)?;
    let value = reader.bytes(RecordField::ValueLength, RecordField::Value, true)?;
    let header_count = reader.varint(RecordField::HeaderCount)?;
    let Ok(header_count) = usize::try_from(header_count) else {
        return Err(RecordError::NegativeLength {
            field: RecordField::HeaderCount,
            length: header_count,
            minimum: 0,
        });
    };
    // The count is untrusted: reserve no more than the bytes could hold (each header is at
    // least two one-byte varints), so a huge count costs an error, not an allocation.
    let mut headers = Vec::with_capacity(header_count.min(reader.remaining.len() / 2));
    for _ in 0..header_count {
        let header_key =
            reader.bytes(RecordField::HeaderKeyLength, RecordField::HeaderKey, false)?;
        let header_value = reader.bytes(
            RecordField::HeaderValueLength,
            RecordField::HeaderValue,
            true,
        )?;
        // Non-nullable, so bytes() returned Some.
        headers.push((header_key.unwrap_or(&[]), header_value));
    }
    if !reader.remaining.is_empty() {
        return Err(RecordError::LengthMismatch {
            declared_bytes: length,
            used_bytes: record_bytes - reader.remaining.len(),
        });
    }
    let record = RecordView {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers,
    };
    Ok((record, length_field_bytes + record_bytes))
}

/// Builds one uncompressed batch, the way a Kafka producer does.
///
/// Lifecycle: [`BatchBuilder::new`], optionally [`BatchBuilder::producer`], any number of
/// [`BatchBuilder::push`], then [`BatchBuilder::finish`], which consumes it. Records are encoded
/// as they are pushed, so [`BatchBuilder::encoded_bytes`] is exact at any point and a caller can
/// stop before a size limit. The base offset is 0 and the leader epoch -1: the broker assigns
/// both. Misuse (finishing an empty batch, a batch over i32 bytes) panics: those are caller
/// bugs, not input errors.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    record_count: usize,
    /// The batch being built: room for the header (written by `finish`), then the encoded
    /// records. One buffer, so `finish` writes the header in place instead of copying the
    /// records behind it.
    records: Vec<u8>,
}

impl BatchBuilder {
    /// An empty batch whose record timestamps are relative to `base_timestamp_ms`; no producer
    /// id (-1, epoch -1, base sequence -1), as a non-idempotent Kafka producer sends.
    pub fn new(base_timestamp_ms: i64) -> Self {
        BatchBuilder::with_capacity(base_timestamp_ms, HEADER_BYTES)
    }

    /// [`BatchBuilder::new`] with room for a batch of `bytes` reserved up front, so a batch
    /// filled to a known size is never moved while it grows.
    pub fn with_capacity(base_timestamp_ms: i64, bytes: usize) -> Self {
        BatchBuilder::with_buffer(base_timestamp_ms, Vec::new(), bytes)
    }

    /// [`BatchBuilder::with_capacity`] building into `buffer`, whatever it held (its
    /// allocation is reused: a producer recycles the buffers of acknowledged batches).
    pub fn with_buffer(base_timestamp_ms: i64, buffer: Vec<u8>, bytes: usize) -> Self {
        let mut records = buffer;
        records.clear();
        // Allocated at its full size at once: growing `new`'s header-sized buffer was a small
        // allocation, then a reallocation into a large extent (4.7% of the load generator's
        // core at 16 KiB batches, issue #11).
        records.reserve(bytes.max(HEADER_BYTES));
        records.resize(HEADER_BYTES, 0);
        BatchBuilder {
            base_timestamp_ms,
            max_timestamp_ms: base_timestamp_ms,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            record_count: 0,
            records,
        }
    }

    /// Sets the idempotent producer fields.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Appends a record with the next offset delta. `None` encodes a null key or value.
    pub fn push(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp_ms: i64,
        headers: &[(&[u8], &[u8])],
    ) {
        let timestamp_delta = timestamp_ms
            .checked_sub(self.base_timestamp_ms)
            .expect("push: timestamp_ms - base_timestamp_ms overflows i64");
        let offset_delta =
            i32::try_from(self.record_count).expect("push: more than i32::MAX records in a batch");
        let header_count = length_i32(headers.len(), "header count");

        // The length prefix counts the bytes after itself, so size the body before writing it.
        let mut body_bytes = 1
            + varint::varlong_encoded_bytes(timestamp_delta)
            + varint::varint_encoded_bytes(offset_delta)
            + nullable_encoded_bytes(key)
            + nullable_encoded_bytes(value)
            + varint::varint_encoded_bytes(header_count);
        for (header_key, header_value) in headers {
            body_bytes += nullable_encoded_bytes(Some(header_key));
            body_bytes += nullable_encoded_bytes(Some(header_value));
        }
        let body_length = length_i32(body_bytes, "record length");

        varint::encode_varint(body_length, &mut self.records);
        let body_start = self.records.len();
        self.records.push(0); // Record attributes: Kafka defines none.
        varint::encode_varlong(timestamp_delta, &mut self.records);
        varint::encode_varint(offset_delta, &mut self.records);
        encode_nullable(key, &mut self.records);
        encode_nullable(value, &mut self.records);
        varint::encode_varint(header_count, &mut self.records);
        for (header_key, header_value) in headers {
            encode_nullable(Some(header_key), &mut self.records);
            encode_nullable(Some(header_value), &mut self.records);
        }
        assert_eq!(
            self.records.len() - body_start,
            body_bytes,
            "push: record body size disagrees with its length prefix"
        );
        // batchLength is an i32: refuse here, at the record that crosses it, not in finish().
        assert!(
            self.encoded_bytes() - LENGTH_PREFIX_BYTES <= i32::MAX as usize,
            "push: the batch would be {} bytes, over the i32 batchLength limit",
            self.encoded_bytes()
        );
        self.record_count += 1;
        self.max_timestamp_ms = if self.record_count == 1 {
            timestamp_ms
        } else {
            self.max_timestamp_ms.max(timestamp_ms)
        };
    }

    /// Records pushed so far.
    pub fn record_count(&self) -> usize {
        self.record_count
    }

    /// Size in bytes of the batch [`BatchBuilder::finish`] would return now.
    pub fn encoded_bytes(&self) -> usize {
        self.records.len()
    }

    /// The finished batch: header + records, CRC computed; max_timestamp = max pushed.
    ///
    /// Panics if no record was pushed: Kafka has no empty batches, and [`verify`] refuses them.
    pub fn finish(self) -> Vec<u8> {
        let mut batch = self.finish_without_crc();
        let crc = compute_crc(&batch);
        batch[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
        batch
    }

    /// [`BatchBuilder::finish`] without the CRC (the field is left 0), for a producer that
    /// stamps the batch with [`set_producer`], which computes the CRC, before it first sends
    /// it: the records are read once, not twice. The result is not a valid batch until then.
    pub fn finish_without_crc(mut self) -> Vec<u8> {
        assert!(
            self.record_count > 0,
            "finish: a batch needs at least one record"
        );
        let batch_length = length_i32(self.encoded_bytes() - LENGTH_PREFIX_BYTES, "batch length");
        let record_count = length_i32(self.record_count, "record count");

        let mut header = [0u8; HEADER_BYTES];
        write(&mut header, field::BASE_OFFSET, 0i64.to_be_bytes());
        write(&mut header, field::BATCH_LENGTH, batch_length.to_be_bytes());
        write(
            &mut header,
            field::PARTITION_LEADER_EPOCH,
            (-1i32).to_be_bytes(),
        );
        write(&mut header, field::MAGIC, MAGIC.to_be_bytes());
        // CRC is filled in below, once the bytes it covers exist.
        write(&mut header, field::ATTRIBUTES, 0i16.to_be_bytes());
        write(
            &mut header,
            field::LAST_OFFSET_DELTA,
            (record_count - 1).to_be_bytes(),
        );
        write(
            &mut header,
            field::BASE_TIMESTAMP,
            self.base_timestamp_ms.to_be_bytes(),
        );
        write(
            &mut header,
            field::MAX_TIMESTAMP,
            self.max_timestamp_ms.to_be_bytes(),
        );
        write(
            &mut header,
            field::PRODUCER_ID,
            self.producer_id.to_be_bytes(),
        );
        write(
            &mut header,
            field::PRODUCER_EPOCH,
            self.producer_epoch.to_be_bytes(),
        );
        write(
            &mut header,
            field::BASE_SEQUENCE,
            self.base_sequence.to_be_bytes(),
        );
        write(&mut header, field::RECORD_COUNT, record_count.to_be_bytes());

        let mut batch = std::mem::take(&mut self.records);
        batch[..HEADER_BYTES].copy_from_slice(&header);
        batch
    }
}

/// Converts a size or count to the i32 the format stores; larger is a caller bug.
fn length_i32(value: usize, what: &str) -> i32 {
    i32::try_from(value).unwrap_or_else(|_| panic!("{what} {value} does not fit in an i32"))
}

fn nullable_encoded_bytes(bytes: Option<&[u8]>) -> usize {
    match bytes {
        None => varint::varint_encoded_bytes(-1),
        Some(bytes) => {
            varint::varint_encoded_bytes(length_i32(bytes.len(), "length")) + bytes.len()
        }
    }
}

fn encode_nullable(bytes: Option<&[u8]>, out: &mut Vec<u8>) {
    match bytes {
        None => varint::encode_varint(-1, out),
        Some(bytes) => {
            varint::encode_varint(length_i32(bytes.len(), "length"), out);
            out.extend_from_slice(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_record_batch() -> Vec<u8> {
        let mut builder = BatchBuilder::new(1_000);
        builder.push(Some(b"k"), Some(b"v"), 1_000, &[]);
        builder.finish()
    }

    /// `compute_crc` uses crc-fast's SIMD folding; the crc32c crate (the reference the
    /// storage formats use) must agree on every length and alignment, including the short
    /// tails and the 64-byte blocks where the folding changes strategy.
    #[test]
    fn the_batch_crc_is_crc32c_at_every_length_and_alignment() {
        let mut random = fastrand::Rng::with_seed(11);
        let bytes: Vec<u8> = (0..(1 << 20) + 300).map(|_| random.u8(..)).collect();
        let mut lengths: Vec<usize> = (0..=1_100).collect();
        lengths.extend([4_096, 4_117, 16_384, 16_405, 65_536 + 21, 1 << 20]);
        for length in lengths {
            for start in [0, 1, 7, 13, 64, 255] {
                let batch = &bytes[start..start + length];
                let expected = crc32c::crc32c(batch.get(CRC_UNCOVERED_BYTES..).unwrap_or(&[]));
                assert_eq!(
                    compute_crc(batch),
                    expected,
                    "{length} bytes at offset {start}"
                );
            }
        }
        assert_eq!(
            compute_crc(&[0u8; 5]),
            0,
            "a slice under 21 bytes covers nothing"
        );
    }

    #[test]
    fn verified_is_made_only_by_checking_and_survives_offset_assignment() {
        let mut batch = one_record_batch();
        let mut verified = Verified::check(batch.clone()).expect("a built batch verifies");
        verified.set_base_offset(77);
        assert_eq!(verified.header().base_offset, 77);
        // The stored bytes still verify, with the offset assigned.
        let header = verify_with_records(verified.bytes()).expect("still verifies");
        assert_eq!(header.base_offset, 77);
        // A flipped bit in the CRC-covered part is refused.
        let last = batch.len() - 1;
        batch[last] ^= 1;
        assert!(matches!(
            Verified::check(batch),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn builder_fills_the_header_as_a_producer_would() {
        let mut builder = BatchBuilder::new(5_000).producer(42, 3, 17);
        builder.push(None, Some(b"a"), 5_010, &[]);
        builder.push(Some(b""), None, 4_990, &[(b"h", b"")]);
        builder.push(Some(b"key"), Some(b"value"), 5_002, &[]);
        assert_eq!(builder.record_count(), 3);
        let expected_bytes = builder.encoded_bytes();
        let batch = builder.finish();
        assert_eq!(batch.len(), expected_bytes);

        let header = verify_with_records(&batch).expect("built batch verifies");
        assert_eq!(header.base_offset, 0);
        assert_eq!(header.partition_leader_epoch, -1);
        assert_eq!(header.magic, MAGIC);
        assert_eq!(header.attributes, 0);
        assert_eq!(header.last_offset_delta, 2);
        assert_eq!(header.base_timestamp, 5_000);
        assert_eq!(header.max_timestamp, 5_010);
        assert_eq!((header.producer_id, header.producer_epoch), (42, 3));
        assert_eq!(header.base_sequence, 17);
        assert_eq!(header.record_count, 3);
        assert_eq!(header.total_bytes(), Some(batch.len()));
        assert_eq!(
            total_bytes(&batch[..LENGTH_PREFIX_BYTES]),
            Some(batch.len())
        );
        assert_eq!(header.compression(), Ok(Compression::None));
    }

    #[test]
    fn defaults_are_no_producer() {
        let header = verify(&one_record_batch()).unwrap();
        assert_eq!(header.producer_id, -1);
        assert_eq!(header.producer_epoch, -1);
        assert_eq!(header.base_sequence, -1);
    }

    #[test]
    fn max_timestamp_may_precede_base() {
        // Timestamps before the base give negative deltas; max is still the largest pushed.
        let mut builder = BatchBuilder::new(1_000);
        builder.push(None, None, 900, &[]);
        builder.push(None, None, 950, &[]);
        let batch = builder.finish();
        assert_eq!(verify(&batch).unwrap().max_timestamp, 950);
        let deltas: Vec<i64> = records(&batch)
            .unwrap()
            .map(|record| record.unwrap().timestamp_delta)
            .collect();
        assert_eq!(deltas, [-100, -50]);
    }

    #[test]
    fn set_base_offset_keeps_the_batch_valid() {
        let mut batch = one_record_batch();
        set_base_offset(&mut batch, 1 << 40);
        let header = verify_with_records(&batch).unwrap();
        assert_eq!(header.base_offset, 1 << 40);
        assert_eq!(header.last_offset(), 1 << 40);
    }

    #[test]
    #[should_panic(expected = "shorter than the 61 byte header")]
    fn set_base_offset_on_a_short_slice_is_a_programmer_error() {
        set_base_offset(&mut [0u8; 60], 1);
    }

    #[test]
    fn stamping_the_producer_keeps_the_batch_valid() {
        let mut batch = one_record_batch();
        let before = verify(&batch).expect("valid");
        assert_eq!(
            (
                before.producer_id,
                before.producer_epoch,
                before.base_sequence
            ),
            (-1, -1, -1)
        );
        set_producer(&mut batch, 42, 3, 1_000);
        let after = verify_with_records(&batch).expect("still valid after stamping");
        assert_eq!(
            (after.producer_id, after.producer_epoch, after.base_sequence),
            (42, 3, 1_000)
        );
        assert_ne!(after.crc, before.crc, "the CRC covers the producer fields");
        // The same stamp through the builder gives the same bytes.
        let mut builder = BatchBuilder::new(1_000).producer(42, 3, 1_000);
        builder.push(Some(b"k"), Some(b"v"), 1_000, &[]);
        assert_eq!(builder.finish(), batch);
    }

    #[test]
    fn a_batch_finished_without_crc_is_valid_once_stamped() {
        let build = || {
            let mut builder = BatchBuilder::new(1_000);
            for index in 0..17u8 {
                builder.push(
                    Some(b"key"),
                    Some(&[index; 40]),
                    1_000 + i64::from(index),
                    &[],
                );
            }
            builder
        };
        let mut deferred = build().finish_without_crc();
        assert!(
            matches!(verify(&deferred), Err(BatchError::CrcMismatch { .. })),
            "no CRC yet"
        );
        set_producer(&mut deferred, 7, 2, 40);
        let mut finished = build().finish();
        set_producer(&mut finished, 7, 2, 40);
        assert_eq!(deferred, finished);
        verify_with_records(&deferred).expect("valid once stamped");
    }

    #[test]
    #[should_panic(expected = "shorter than the 61 byte header")]
    fn set_producer_on_a_short_slice_is_a_programmer_error() {
        set_producer(&mut [0u8; 60], 1, 0, 0);
    }

    #[test]
    #[should_panic(expected = "at least one record")]
    fn finishing_an_empty_batch_is_a_programmer_error() {
        BatchBuilder::new(0).finish();
    }

    #[test]
    fn total_bytes_rejects_short_prefixes_and_small_lengths() {
        assert_eq!(total_bytes(&[]), None);
        assert_eq!(total_bytes(&[0; 11]), None);
        let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
        for (batch_length, expected) in [
            (-1, None),
            (i32::MIN, None),
            (0, None),
            (48, None),
            (49, Some(61)),
            (i32::MAX, Some(i32::MAX as usize + 12)),
        ] {
            prefix[8..12].copy_from_slice(&i32::to_be_bytes(batch_length));
            assert_eq!(total_bytes(&prefix), expected, "batchLength {batch_length}");
        }
    }

    #[test]
    fn log_append_time_is_attribute_bit_3_alone() {
        let mut header = BatchHeader::parse(&one_record_batch()).unwrap();
        assert!(!header.log_append_time());
        header.attributes = 0x08;
        assert!(header.log_append_time());
        // The codec and transaction bits around it say nothing about the timestamp type.
        header.attributes = 0x77;
        assert!(!header.log_append_time());
    }

    #[test]
    fn compression_bits_map_to_codecs() {
        let mut header = BatchHeader::parse(&one_record_batch()).unwrap();
        let expected = [
            Ok(Compression::None),
            Ok(Compression::Gzip),
            Ok(Compression::Snappy),
            Ok(Compression::Lz4),
            Ok(Compression::Zstd),
            Err(BatchError::InvalidCompression { bits: 5 }),
            Err(BatchError::InvalidCompression { bits: 6 }),
            Err(BatchError::InvalidCompression { bits: 7 }),
        ];
        for (bits, expected) in expected.into_iter().enumerate() {
            // Higher attribute bits must not leak into the codec.
            header.attributes = bits as i16 | 0x78;
            assert_eq!(header.compression(), expected, "bits {bits}");
        }
    }

    #[test]
    fn parse_needs_a_full_header_and_magic_2() {
        let batch = one_record_batch();
        assert_eq!(
            BatchHeader::parse(&batch[..60]),
            Err(BatchError::TooShort { bytes: 60 })
        );
        let mut old = batch.clone();
        old[field::MAGIC] = 1;
        assert_eq!(
            BatchHeader::parse(&old),
            Err(BatchError::BadMagic { magic: 1 })
        );
        // Extra bytes after the header are fine for parse (it does not check the length).
        let mut longer = batch.clone();
        longer.extend_from_slice(&[0xaa; 5]);
        assert_eq!(BatchHeader::parse(&longer), BatchHeader::parse(&batch));
    }

    #[test]
    fn compute_crc_is_castagnoli_over_bytes_21_on() {
        // The standard CRC-32C check value: "123456789" -> 0xe3069283.
        let mut bytes = vec![0xee; CRC_UNCOVERED_BYTES];
        bytes.extend_from_slice(b"123456789");
        assert_eq!(compute_crc(&bytes), 0xe306_9283);
        assert_eq!(compute_crc(&bytes[..3]), 0);
    }

    #[test]
    fn huge_header_count_is_an_error_not_an_allocation() {
        // A record claiming i32::MAX headers in a few bytes.
        let mut body = vec![0u8, 0, 0, 1, 1];
        varint::encode_varint(i32::MAX, &mut body);
        let mut record = Vec::new();
        varint::encode_varint(body.len() as i32, &mut record);
        record.extend_from_slice(&body);
        let error = parse_record(&record).unwrap_err();
        assert_eq!(
            error,
            RecordError::Truncated {
                field: RecordField::HeaderKeyLength,
                remaining_bytes: 0
            }
        );
    }
}
