//! The client-broker wire protocol: frames, verified decoding of their flatbuffers messages, and
//! the encoders that build them. No I/O and no state: `net` reads and writes the bytes, the
//! broker and clients call these functions on them, from any shard.
//!
//! # Frame (protocol version 1, all integers little-endian)
//!
//! ```text
//!  0             4               8                       8 + message_bytes       4 + frame_bytes
//!  +-------------+---------------+-----------------------+-----------------------+
//!  | frame_bytes | message_bytes | message (flatbuffer)  | payload (raw bytes)   |
//!  | u32 LE      | u32 LE        | Request or Response   | record batches        |
//!  +-------------+---------------+-----------------------+-----------------------+
//!  |<-- FRAME_PREFIX_BYTES = 8 ->|<----------- body: frame_bytes - 4 ------------>|
//!                |<--------------------- frame_bytes -------------------------->|
//! ```
//!
//! `frame_bytes` counts everything after its own field: the 4-byte `message_bytes` field, the
//! message and the payload. Worked example: a produce request whose message is 96 bytes,
//! carrying one 70-byte batch, has `frame_bytes` = 4 + 96 + 70 = 170 and `message_bytes` = 96,
//! so its prefix is `aa 00 00 00 60 00 00 00`; the frame is 4 + 170 = 8 + 96 + 70 = 174 bytes on
//! the wire, and the batch is payload bytes 0..70 (`PayloadRange { offset: 0, length: 70 }`).
//!
//! Record batches never live inside the flatbuffer: the message points at them with
//! [`PayloadRange`]s into the payload, so produce batches are sliced out of the receive buffer
//! and fetched batches are sent as stored, without copying. Only the control-plane fields
//! (names, numbers, error codes) are decoded into the owned types below.
//!
//! # Decoding untrusted bytes
//!
//! A reader takes three steps, each of which refuses bad input with a typed error and never
//! panics:
//!
//! 1. [`FrameHeader::parse`] on the 8-byte prefix, before reading the body: it bounds the frame by
//!    `frame_bytes_max` and checks that the message fits inside the frame.
//! 2. [`decode_request`] / [`decode_response`] on the message: flatbuffers verification
//!    (`root_with_opts`, never `root_unchecked`) with limits sized to the message
//!    ([`DecodeLimits`]), so a hostile message costs verification time linear in its size. On
//!    success every accessor of the returned view is safe to call, and the broker knows the
//!    `correlation_id` to answer an error to.
//! 3. [`request_from_wire`] / [`response_from_wire`]: the protocol rules the verifier cannot
//!    know: a known body, the fields we require, known enum values, vector lengths within the
//!    limit, and every [`PayloadRange`] inside the frame's payload. What comes out is owned and
//!    valid.
//!
//! # Encoding
//!
//! [`encode_request`] and [`encode_response`] build a whole message in a caller-owned
//! [`FlatBufferBuilder`], which is reset first and reused across messages to keep its buffer.
//! [`frame_prefix`] then gives the 8 bytes to send before the message and the payload.

mod from_wire;
mod owned;
mod to_wire;

use std::ops::Range;

use bytes::Bytes;
use flatbuffers::{InvalidFlatbuffer, VerifierOptions};

pub use self::from_wire::{request_from_wire, response_from_wire};
pub use self::owned::*;
pub use self::to_wire::{encode_request, encode_response};
use crate::generated::ProtocolVersion;
pub use crate::generated::{
    Acks, Assignor, ErrorCode, GroupState, OffsetSpec, PayloadRange, Request, Response,
};

// ---- Frames ---------------------------------------------------------------------------------

/// The prefix before every message: `frame_bytes` (u32 LE) then `message_bytes` (u32 LE).
pub const FRAME_PREFIX_BYTES: usize = 8;
/// The default limit on `frame_bytes`: 16 MiB, message and payload together.
pub const FRAME_BYTES_MAX_DEFAULT: u32 = 16 << 20;
/// The protocol version this crate speaks (`ProtocolVersion::V1` in the schema).
pub const PROTOCOL_VERSION: u16 = 1;
/// The smallest message a frame may carry: what any flatbuffers builder writes for a root table
/// with no fields (a 4-byte root offset, a 4-byte vtable, the table's 4-byte vtable offset).
/// Hand-made buffers down to 4 bytes can verify (`00 00 00 00` is a root table whose vtable
/// offset 0 points back at itself as a vtable of length 0), but such a message has no body, so
/// refusing it at the frame loses nothing and keeps degenerate frames out of the decoder.
pub const MESSAGE_BYTES_MIN: u32 = 12;

/// Batches of one idempotent producer and one partition that may await acknowledgement at
/// once (and so be retried together). The broker remembers the offsets of this many batches
/// per producer and partition, so a retried batch among them gets its original offsets back;
/// a producer keeps at most this many unacknowledged.
pub const IDEMPOTENT_BATCHES_IN_FLIGHT_MAX: usize = 64;

/// The size of the `message_bytes` field, which `frame_bytes` counts.
const MESSAGE_BYTES_FIELD_BYTES: u32 = 4;

const _: () = assert!(FRAME_PREFIX_BYTES == 4 + MESSAGE_BYTES_FIELD_BYTES as usize);
const _: () = assert!(PROTOCOL_VERSION == ProtocolVersion::V1.0);
// The newest version in the schema is the one we speak.
const _: () = assert!(PROTOCOL_VERSION == ProtocolVersion::ENUM_MAX);
// The smallest frame (an empty payload) fits under the default limit, with room to spare.
const _: () = assert!(FRAME_BYTES_MAX_DEFAULT >= MESSAGE_BYTES_FIELD_BYTES + MESSAGE_BYTES_MIN);
// The whole frame, 4 + frame_bytes, still fits a u32 at the default limit.
const _: () = assert!(FRAME_BYTES_MAX_DEFAULT <= u32::MAX - 4);

/// Why a frame prefix was refused (reading) or could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// `frame_bytes` is over the limit; the reader must not allocate for it.
    #[error("frame of {frame_bytes} bytes is over the limit of {frame_bytes_max} bytes")]
    TooLarge {
        /// The frame size claimed (reading) or needed (writing); u64 because a writer's message
        /// and payload may add up past u32.
        frame_bytes: u64,
        /// The limit in force.
        frame_bytes_max: u32,
    },
    /// `message_bytes` is too small to hold any flatbuffer.
    #[error(
        "message of {message_bytes} bytes is shorter than the smallest flatbuffer message ({min} bytes)",
        min = MESSAGE_BYTES_MIN
    )]
    MessageTooShort {
        /// The message size claimed or given.
        message_bytes: u64,
    },
    /// The message does not fit in the frame: `message_bytes + 4 > frame_bytes`.
    #[error(
        "message of {message_bytes} bytes does not fit in a frame of {frame_bytes} bytes \
         (frame_bytes counts the 4-byte message_bytes field, the message and the payload)"
    )]
    MessageLengthInvalid {
        /// The message size claimed.
        message_bytes: u32,
        /// The frame size claimed.
        frame_bytes: u32,
    },
}

/// A parsed frame prefix. Once returned by [`FrameHeader::parse`] or [`FrameHeader::new`] its
/// fields are consistent: the message is at least [`MESSAGE_BYTES_MIN`] bytes and fits in the
/// frame, and the frame is within the limit it was checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bytes after the `frame_bytes` field: 4 (`message_bytes`) + message + payload.
    pub frame_bytes: u32,
    /// Bytes of the flatbuffers message.
    pub message_bytes: u32,
}

impl FrameHeader {
    /// Parses and checks the 8-byte prefix of a frame received from a peer. Call it before
    /// reading (or allocating for) the body, which is [`FrameHeader::body_bytes`] long.
    pub fn parse(
        prefix: &[u8; FRAME_PREFIX_BYTES],
        frame_bytes_max: u32,
    ) -> Result<FrameHeader, FrameError> {
        let header = FrameHeader {
            frame_bytes: u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]),
            message_bytes: u32::from_le_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]),
        };
        header.check(frame_bytes_max)?;
        Ok(header)
    }

    /// The header for a frame that carries a `message_bytes` message and a `payload_bytes`
    /// payload, checked against `frame_bytes_max` like a received one.
    pub fn new(
        message_bytes: usize,
        payload_bytes: usize,
        frame_bytes_max: u32,
    ) -> Result<FrameHeader, FrameError> {
        // u64 holds any sum of two usizes and the 4-byte field on the platforms we build for.
        let frame_bytes = u64::from(MESSAGE_BYTES_FIELD_BYTES)
            .saturating_add(message_bytes as u64)
            .saturating_add(payload_bytes as u64);
        if frame_bytes > u64::from(frame_bytes_max) {
            return Err(FrameError::TooLarge {
                frame_bytes,
                frame_bytes_max,
            });
        }
        // Both fit u32 now: they are parts of frame_bytes <= frame_bytes_max.
        let header = FrameHeader {
            frame_bytes: frame_bytes as u32,
            message_bytes: message_bytes as u32,
        };
        header.check(frame_bytes_max)?;
        Ok(header)
    }

    fn check(&self, frame_bytes_max: u32) -> Result<(), FrameError> {
        if self.frame_bytes > frame_bytes_max {
            return Err(FrameError::TooLarge {
                frame_bytes: u64::from(self.frame_bytes),
                frame_bytes_max,
            });
        }
        if self.message_bytes < MESSAGE_BYTES_MIN {
            return Err(FrameError::MessageTooShort {
                message_bytes: u64::from(self.message_bytes),
            });
        }
        // In u64, so that a message_bytes near u32::MAX cannot wrap the sum.
        if u64::from(self.message_bytes) + u64::from(MESSAGE_BYTES_FIELD_BYTES)
            > u64::from(self.frame_bytes)
        {
            return Err(FrameError::MessageLengthInvalid {
                message_bytes: self.message_bytes,
                frame_bytes: self.frame_bytes,
            });
        }
        Ok(())
    }

    /// The 8 prefix bytes: `frame_bytes` then `message_bytes`, little-endian.
    pub fn encode(&self) -> [u8; FRAME_PREFIX_BYTES] {
        let mut prefix = [0; FRAME_PREFIX_BYTES];
        prefix[..4].copy_from_slice(&self.frame_bytes.to_le_bytes());
        prefix[4..].copy_from_slice(&self.message_bytes.to_le_bytes());
        prefix
    }

    /// Bytes after the prefix: the message and the payload (`frame_bytes - 4`).
    pub fn body_bytes(&self) -> usize {
        self.frame_bytes.saturating_sub(MESSAGE_BYTES_FIELD_BYTES) as usize
    }

    /// Bytes of the payload: what follows the message in the body.
    pub fn payload_bytes(&self) -> usize {
        self.body_bytes()
            .saturating_sub(self.message_bytes as usize)
    }

    /// Where the message lies in the body (the bytes after the prefix).
    pub fn message_range(&self) -> Range<usize> {
        0..self.message_bytes as usize
    }

    /// Where the payload lies in the body (the bytes after the prefix); [`PayloadRange`]s are
    /// relative to its start.
    pub fn payload_range(&self) -> Range<usize> {
        self.message_bytes as usize..self.body_bytes()
    }
}

/// Room a fetch response's message takes besides its batches: a fixed part, and per
/// partition its result (fields, and an error text when it failed) plus its topic name.
const FETCH_MESSAGE_FIXED_BYTES: usize = 4 << 10;
const FETCH_RESULT_BYTES_MAX: usize = 512;

/// The largest `bytes_max` of a fetch of `topic_lengths` (one per partition asked) whose
/// response still fits a frame of `frame_bytes_max`: both ends cap a fetch with it, so a
/// consumer that asks for more than a frame holds gets a full frame, not a response the
/// broker cannot send or the client refuses (a consumer asking for 16 MiB with the default
/// 16 MiB frame limit reconnected for ever). At least 1: a fetch always makes progress.
pub fn fetch_bytes_fitting(
    frame_bytes_max: u32,
    topic_lengths: impl Iterator<Item = usize>,
) -> u32 {
    let message_bytes = topic_lengths.fold(FETCH_MESSAGE_FIXED_BYTES, |bytes, length| {
        bytes.saturating_add(FETCH_RESULT_BYTES_MAX + length)
    });
    let room = (frame_bytes_max as usize)
        .saturating_sub(FRAME_PREFIX_BYTES)
        .saturating_sub(message_bytes);
    u32::try_from(room).unwrap_or(u32::MAX).max(1)
}

/// The prefix for a frame of a `message_bytes` message and a `payload_bytes` payload, for
/// writers: fails rather than send a frame the peer would refuse.
pub fn frame_prefix(
    message_bytes: usize,
    payload_bytes: usize,
    frame_bytes_max: u32,
) -> Result<[u8; FRAME_PREFIX_BYTES], FrameError> {
    Ok(FrameHeader::new(message_bytes, payload_bytes, frame_bytes_max)?.encode())
}

// ---- Verified decoding ----------------------------------------------------------------------

/// Limits on what verifying and converting one message may cost, on top of the frame limit.
/// The flatbuffers verifier bounds its work by the number of tables it visits and by the
/// "apparent size" (bytes read as if shared objects were copies), so a message whose offsets
/// all point at one large string cannot make verification quadratic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Nesting depth of tables. The schema nests at most 4 deep (Response > MetadataResponse >
    /// TopicMetadata > PartitionMetadata); the verifier follows the schema, so this is a guard
    /// against a future recursive schema more than against input.
    pub table_depth_max: usize,
    /// Tables visited per message, whatever its size. The verifier also allows at most
    /// `message_bytes / 4 + 1` per message: a message without shared tables (all that a builder
    /// writes) has at most one per 4 bytes, as each starts with its own 4-byte vtable offset;
    /// more visits than that means tables reached many times over.
    pub table_count_max: usize,
    /// Apparent bytes verified per message byte. A message built by [`FlatBufferBuilder`] (which
    /// shares vtables but nothing else) reads at most about 2.7 apparent bytes per byte: the
    /// worst is a long vector of `PartitionMetadata` that share one vtable and each store only
    /// `error`, because every visit re-reads the shared vtable. 4 leaves a third of headroom
    /// (`tests/wire_malformed.rs` measures it) and still makes verification linear in size.
    pub apparent_size_ratio_max: usize,
    /// Entries in any one vector (topics, partitions, batches, results). Checked by
    /// [`request_from_wire`] / [`response_from_wire`] before they allocate, not by the verifier.
    pub vector_length_max: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            table_depth_max: 16,
            table_count_max: 1 << 20,
            apparent_size_ratio_max: 4,
            vector_length_max: 1 << 16,
        }
    }
}

impl DecodeLimits {
    fn verifier_options(&self, message_bytes: usize) -> VerifierOptions {
        VerifierOptions {
            max_depth: self.table_depth_max,
            max_tables: self.table_count_max.min(message_bytes / 4 + 1),
            max_apparent_size: message_bytes.saturating_mul(self.apparent_size_ratio_max),
            ignore_missing_null_terminator: false,
        }
    }
}

/// Why a message was refused. `Invalid` means the bytes are not a well-formed message of the
/// expected root type (or cost too much to verify); the others mean a well-formed message
/// breaks a protocol rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The flatbuffers verifier refused the message.
    #[error("{root} message failed verification: {reason}", reason = error.to_string().trim_end())]
    Invalid {
        /// "Request" or "Response".
        root: &'static str,
        /// The verifier's finding.
        error: InvalidFlatbuffer,
    },
    /// The envelope has no body, or a body of type NONE (a response may lack one only when it
    /// carries an error).
    #[error("{root} has no body")]
    BodyMissing {
        /// "Request" or "Response".
        root: &'static str,
    },
    /// The body's union type is not one this protocol version knows.
    #[error(
        "{root} body has type {body_type}, unknown to protocol version {version}",
        version = PROTOCOL_VERSION
    )]
    BodyUnknown {
        /// "Request" or "Response".
        root: &'static str,
        /// The union discriminant found.
        body_type: u8,
    },
    /// A field the protocol requires is absent.
    #[error("{table}.{field} is missing")]
    FieldMissing {
        /// The table (as named in the schema).
        table: &'static str,
        /// The field.
        field: &'static str,
    },
    /// An enum field holds a value the schema does not name.
    #[error("{table}.{field} has unknown value {value}")]
    EnumUnknown {
        /// The table (as named in the schema).
        table: &'static str,
        /// The field.
        field: &'static str,
        /// The value found.
        value: i64,
    },
    /// A vector has more entries than [`DecodeLimits::vector_length_max`].
    #[error("{table}.{field} has {length} entries, over the limit of {length_max}")]
    VectorTooLong {
        /// The table (as named in the schema).
        table: &'static str,
        /// The field.
        field: &'static str,
        /// Entries found.
        length: usize,
        /// The limit.
        length_max: usize,
    },
    /// A [`PayloadRange`] reaches past the end of the frame's payload.
    #[error(
        "payload range at {offset} of {length} bytes ends past the payload of {payload_bytes} bytes"
    )]
    PayloadRangeOutOfBounds {
        /// Range start, from the start of the payload.
        offset: u32,
        /// Range length.
        length: u32,
        /// Payload size.
        payload_bytes: usize,
    },
}

/// Verifies `message` as a `Request` under `limits` and returns the view over it. Only the
/// structure is checked here; [`request_from_wire`] checks the protocol rules.
pub fn decode_request<'a>(
    message: &'a [u8],
    limits: &DecodeLimits,
) -> Result<Request<'a>, DecodeError> {
    let options = limits.verifier_options(message.len());
    flatbuffers::root_with_opts::<Request>(&options, message).map_err(|error| {
        DecodeError::Invalid {
            root: "Request",
            error,
        }
    })
}

/// Verifies `message` as a `Response` under `limits` and returns the view over it. Only the
/// structure is checked here; [`response_from_wire`] checks the protocol rules.
pub fn decode_response<'a>(
    message: &'a [u8],
    limits: &DecodeLimits,
) -> Result<Response<'a>, DecodeError> {
    let options = limits.verifier_options(message.len());
    flatbuffers::root_with_opts::<Response>(&options, message).map_err(|error| {
        DecodeError::Invalid {
            root: "Response",
            error,
        }
    })
}

/// The byte range of `range` within a payload of `payload_bytes` bytes, or an error when it
/// reaches past the end. The sum is computed without overflow.
pub fn payload_slice(
    range: &PayloadRange,
    payload_bytes: usize,
) -> Result<Range<usize>, DecodeError> {
    let start = range.offset() as usize;
    match start.checked_add(range.length() as usize) {
        Some(end) if end <= payload_bytes => Ok(start..end),
        _ => Err(DecodeError::PayloadRangeOutOfBounds {
            offset: range.offset(),
            length: range.length(),
            payload_bytes,
        }),
    }
}

/// The bytes `range` names in `payload`, sharing its buffer (no copy): a produce batch handed
/// to storage, or a fetched batch handed to the consumer.
pub fn slice_payload(payload: &Bytes, range: &PayloadRange) -> Result<Bytes, DecodeError> {
    Ok(payload.slice(payload_slice(range, payload.len())?))
}
