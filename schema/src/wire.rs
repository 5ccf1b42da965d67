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

use std::ops::Range;

use bytes::Bytes;
use flatbuffers::{
    FlatBufferBuilder, ForwardsUOffset, InvalidFlatbuffer, Vector, VerifierOptions, WIPOffset,
};

pub use crate::generated::{Acks, ErrorCode, OffsetSpec, PayloadRange, Request, Response};
use crate::generated::{
    CreateTopicRequest, CreateTopicRequestArgs, CreateTopicResponse, CreateTopicResponseArgs,
    DeleteTopicRequest, DeleteTopicRequestArgs, DeleteTopicResponse, DeleteTopicResponseArgs,
    FetchPartition, FetchPartitionArgs, FetchRequest, FetchRequestArgs, FetchResponse,
    FetchResponseArgs, FetchResult, FetchResultArgs, HandshakeRequest, HandshakeRequestArgs,
    HandshakeResponse, HandshakeResponseArgs, ListOffsetsPartition, ListOffsetsPartitionArgs,
    ListOffsetsRequest, ListOffsetsRequestArgs, ListOffsetsResponse, ListOffsetsResponseArgs,
    ListOffsetsResult, ListOffsetsResultArgs, MetadataRequest, MetadataRequestArgs,
    MetadataResponse, MetadataResponseArgs, PartitionMetadata, PartitionMetadataArgs, ProduceBatch,
    ProduceBatchArgs, ProduceRequest, ProduceRequestArgs, ProduceResponse, ProduceResponseArgs,
    ProduceResult, ProduceResultArgs, ProtocolVersion, RequestArgs, RequestBody, ResponseArgs,
    ResponseBody, TopicConfig, TopicConfigArgs, TopicMetadata, TopicMetadataArgs,
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

// ---- Owned messages -------------------------------------------------------------------------

/// A topic's settings (schema `TopicConfig`). 0 = the broker default; -1 = unlimited. An absent
/// config decodes as all zeros, the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicConfigOwned {
    /// Delete segments older than this.
    pub retention_ms: i64,
    /// Delete the oldest segments while the partition is larger than this.
    pub retention_bytes: i64,
    /// Roll to a new segment at this size.
    pub segment_bytes: i64,
}

/// One batch of a produce request (schema `ProduceBatch`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProduceBatchOwned {
    /// Topic name (required).
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// One Kafka RecordBatch v2 in the payload (required, inside the payload).
    pub batch: PayloadRange,
}

/// One partition of a fetch request (schema `FetchPartition`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartitionOwned {
    /// Topic name (required).
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// The first offset wanted.
    pub offset: u64,
    /// At most this many bytes from this partition.
    pub bytes_max: u32,
}

/// One partition of a list-offsets request (schema `ListOffsetsPartition`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOffsetsPartitionOwned {
    /// Topic name (required).
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// Which offset (a value the schema names).
    pub spec: OffsetSpec,
    /// For `OffsetSpec::Timestamp`.
    pub timestamp_ms: i64,
}

/// The body of a request, owned. Strings and vectors are copied out of the message; batch bytes
/// are not (they stay in the payload, named by [`PayloadRange`]s).
#[derive(Debug, Clone, PartialEq)]
pub enum RequestBodyOwned {
    /// Schema `HandshakeRequest`.
    Handshake {
        /// The highest protocol version the client speaks (may be newer than ours).
        version: u16,
        /// Free-form client name; empty when absent.
        client_id: String,
    },
    /// Schema `MetadataRequest`.
    Metadata {
        /// Topics to describe; empty = all topics.
        topics: Vec<String>,
    },
    /// Schema `CreateTopicRequest`.
    CreateTopic {
        /// Topic name (required).
        name: String,
        /// Partition count.
        partitions: u32,
        /// Settings; all zeros (broker defaults) when absent.
        config: TopicConfigOwned,
    },
    /// Schema `DeleteTopicRequest`.
    DeleteTopic {
        /// Topic name (required).
        name: String,
    },
    /// Schema `ProduceRequest`.
    Produce {
        /// When to answer (a value the schema names).
        acks: Acks,
        /// How long the broker may take.
        timeout_ms: u32,
        /// The batches, each pointing into the payload.
        batches: Vec<ProduceBatchOwned>,
    },
    /// Schema `FetchRequest`.
    Fetch {
        /// Long-poll: wait up to this long for `bytes_min` bytes.
        wait_ms_max: u32,
        /// Answer once this many bytes are available (or the wait ends).
        bytes_min: u32,
        /// At most this many bytes in all.
        bytes_max: u32,
        /// The partitions to read.
        partitions: Vec<FetchPartitionOwned>,
    },
    /// Schema `ListOffsetsRequest`.
    ListOffsets {
        /// The partitions to look up.
        partitions: Vec<ListOffsetsPartitionOwned>,
    },
}

/// One partition of a topic's metadata (schema `PartitionMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadataOwned {
    /// Partition index.
    pub partition: u32,
    /// The shard (core) that owns the partition.
    pub shard: u16,
    /// Error for this partition, or `ErrorCode::None`.
    pub error: ErrorCode,
    /// First offset still stored.
    pub log_start: u64,
    /// The next offset to be assigned.
    pub log_end: u64,
}

/// One topic's metadata (schema `TopicMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadataOwned {
    /// Topic name (required).
    pub name: String,
    /// Error for this topic, or `ErrorCode::None`.
    pub error: ErrorCode,
    /// Its partitions.
    pub partitions: Vec<PartitionMetadataOwned>,
    /// Its settings; all zeros when absent.
    pub config: TopicConfigOwned,
}

/// The outcome for one produced batch (schema `ProduceResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceResultOwned {
    /// Topic name (required).
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// Error for this batch, or `ErrorCode::None`.
    pub error: ErrorCode,
    /// Offset assigned to the first record (valid when `error` is None).
    pub base_offset: u64,
    /// Offset assigned to the last record (valid when `error` is None).
    pub last_offset: u64,
    /// First offset still stored in the partition.
    pub log_start: u64,
    /// Detail for the error; empty when absent.
    pub message: String,
}

/// The outcome for one fetched partition (schema `FetchResult`).
#[derive(Debug, Clone, PartialEq)]
pub struct FetchResultOwned {
    /// Topic name (required).
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// Error for this partition, or `ErrorCode::None`.
    pub error: ErrorCode,
    /// The end of the readable log (Kafka's high watermark).
    pub log_end: u64,
    /// First offset still stored.
    pub log_start: u64,
    /// Whole stored batches in the payload; empty (0, 0) when absent.
    pub batches: PayloadRange,
    /// Detail for the error; empty when absent.
    pub message: String,
}

/// The outcome for one list-offsets partition (schema `ListOffsetsResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOffsetsResultOwned {
    /// Topic name (required).
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// Error for this partition, or `ErrorCode::None`.
    pub error: ErrorCode,
    /// The offset found.
    pub offset: u64,
}

/// The body of a response, owned. Error codes are kept as received, including values this
/// version does not name (a newer broker may send them); callers treat any non-`None` code as
/// an error.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseBodyOwned {
    /// Schema `HandshakeResponse`.
    Handshake {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// The protocol version the broker chose.
        version: u16,
        /// Shards (cores) serving this broker.
        shard_count: u16,
        /// The largest frame the broker accepts.
        frame_bytes_max: u32,
        /// Requests the client may have in flight on the connection.
        in_flight_max: u16,
    },
    /// Schema `MetadataResponse`.
    Metadata {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// The topics described.
        topics: Vec<TopicMetadataOwned>,
    },
    /// Schema `CreateTopicResponse`.
    CreateTopic {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// Detail for the error; empty when absent.
        message: String,
    },
    /// Schema `DeleteTopicResponse`.
    DeleteTopic {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// Detail for the error; empty when absent.
        message: String,
    },
    /// Schema `ProduceResponse`.
    Produce {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// One result per batch, in request order.
        results: Vec<ProduceResultOwned>,
    },
    /// Schema `FetchResponse`.
    Fetch {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// One result per partition asked for.
        results: Vec<FetchResultOwned>,
    },
    /// Schema `ListOffsetsResponse`.
    ListOffsets {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// One result per partition asked for.
        results: Vec<ListOffsetsResultOwned>,
    },
}

/// A whole response, owned (schema `Response`).
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseOwned {
    /// The `correlation_id` of the request answered.
    pub correlation_id: u64,
    /// Set when the request as a whole failed; then `body` may be absent.
    pub error: ErrorCode,
    /// Detail for the error; empty when absent.
    pub message: String,
    /// The answer; always present when `error` is `ErrorCode::None`.
    pub body: Option<ResponseBodyOwned>,
}

// ---- From the wire --------------------------------------------------------------------------

/// Checks the protocol rules on a verified request and copies its control-plane fields out:
/// a known body, required fields present, known enum values, vectors within the limit, and
/// every [`PayloadRange`] within a payload of `payload_bytes` bytes. Returns the
/// `correlation_id` and the body.
pub fn request_from_wire(
    request: Request<'_>,
    payload_bytes: usize,
    limits: &DecodeLimits,
) -> Result<(u64, RequestBodyOwned), DecodeError> {
    let reader = Reader {
        payload_bytes,
        limits,
    };
    let body = match request.body_type() {
        RequestBody::NONE => None,
        RequestBody::HandshakeRequest => request
            .body_as_handshake_request()
            .map(|body| reader.handshake_request(body)),
        RequestBody::MetadataRequest => request
            .body_as_metadata_request()
            .map(|body| reader.metadata_request(body)),
        RequestBody::CreateTopicRequest => request
            .body_as_create_topic_request()
            .map(|body| reader.create_topic_request(body)),
        RequestBody::DeleteTopicRequest => request
            .body_as_delete_topic_request()
            .map(|body| reader.delete_topic_request(body)),
        RequestBody::ProduceRequest => request
            .body_as_produce_request()
            .map(|body| reader.produce_request(body)),
        RequestBody::FetchRequest => request
            .body_as_fetch_request()
            .map(|body| reader.fetch_request(body)),
        RequestBody::ListOffsetsRequest => request
            .body_as_list_offsets_request()
            .map(|body| reader.list_offsets_request(body)),
        unknown => {
            return Err(DecodeError::BodyUnknown {
                root: "Request",
                body_type: unknown.0,
            });
        }
    };
    match body {
        Some(body) => Ok((request.correlation_id(), body?)),
        None => Err(DecodeError::BodyMissing { root: "Request" }),
    }
}

/// Checks the protocol rules on a verified response and copies it out, like
/// [`request_from_wire`]. The body may be absent only when the response carries an error.
pub fn response_from_wire(
    response: Response<'_>,
    payload_bytes: usize,
    limits: &DecodeLimits,
) -> Result<ResponseOwned, DecodeError> {
    let reader = Reader {
        payload_bytes,
        limits,
    };
    let body = match response.body_type() {
        ResponseBody::NONE => None,
        ResponseBody::HandshakeResponse => response
            .body_as_handshake_response()
            .map(|body| reader.handshake_response(body)),
        ResponseBody::MetadataResponse => response
            .body_as_metadata_response()
            .map(|body| reader.metadata_response(body)),
        ResponseBody::CreateTopicResponse => response
            .body_as_create_topic_response()
            .map(|body| reader.create_topic_response(body)),
        ResponseBody::DeleteTopicResponse => response
            .body_as_delete_topic_response()
            .map(|body| reader.delete_topic_response(body)),
        ResponseBody::ProduceResponse => response
            .body_as_produce_response()
            .map(|body| reader.produce_response(body)),
        ResponseBody::FetchResponse => response
            .body_as_fetch_response()
            .map(|body| reader.fetch_response(body)),
        ResponseBody::ListOffsetsResponse => response
            .body_as_list_offsets_response()
            .map(|body| reader.list_offsets_response(body)),
        unknown => {
            return Err(DecodeError::BodyUnknown {
                root: "Response",
                body_type: unknown.0,
            });
        }
    };
    let body = body.transpose()?;
    if body.is_none() && response.error() == ErrorCode::None {
        return Err(DecodeError::BodyMissing { root: "Response" });
    }
    Ok(ResponseOwned {
        correlation_id: response.correlation_id(),
        error: response.error(),
        message: response.message().unwrap_or_default().to_string(),
        body,
    })
}

/// What the conversions from a verified message need besides the message.
struct Reader<'l> {
    payload_bytes: usize,
    limits: &'l DecodeLimits,
}

fn required(
    value: Option<&str>,
    table: &'static str,
    field: &'static str,
) -> Result<String, DecodeError> {
    value
        .map(str::to_string)
        .ok_or(DecodeError::FieldMissing { table, field })
}

fn config_owned(config: Option<TopicConfig<'_>>) -> TopicConfigOwned {
    config.map_or_else(TopicConfigOwned::default, |config| TopicConfigOwned {
        retention_ms: config.retention_ms(),
        retention_bytes: config.retention_bytes(),
        segment_bytes: config.segment_bytes(),
    })
}

impl Reader<'_> {
    /// Converts each entry of an optional vector (absent = empty) after checking its length.
    fn vector<'a, T, U>(
        &self,
        vector: Option<Vector<'a, ForwardsUOffset<T>>>,
        table: &'static str,
        field: &'static str,
        mut convert: impl FnMut(T::Inner) -> Result<U, DecodeError>,
    ) -> Result<Vec<U>, DecodeError>
    where
        T: flatbuffers::Follow<'a> + 'a,
    {
        let Some(vector) = vector else {
            return Ok(Vec::new());
        };
        if vector.len() > self.limits.vector_length_max {
            return Err(DecodeError::VectorTooLong {
                table,
                field,
                length: vector.len(),
                length_max: self.limits.vector_length_max,
            });
        }
        vector.iter().map(&mut convert).collect()
    }

    fn range(&self, range: &PayloadRange) -> Result<PayloadRange, DecodeError> {
        payload_slice(range, self.payload_bytes)?;
        Ok(*range)
    }

    fn handshake_request(
        &self,
        body: HandshakeRequest<'_>,
    ) -> Result<RequestBodyOwned, DecodeError> {
        Ok(RequestBodyOwned::Handshake {
            version: body.version().0,
            client_id: body.client_id().unwrap_or_default().to_string(),
        })
    }

    fn metadata_request(&self, body: MetadataRequest<'_>) -> Result<RequestBodyOwned, DecodeError> {
        let topics = self.vector(body.topics(), "MetadataRequest", "topics", |topic| {
            Ok(topic.to_string())
        })?;
        Ok(RequestBodyOwned::Metadata { topics })
    }

    fn create_topic_request(
        &self,
        body: CreateTopicRequest<'_>,
    ) -> Result<RequestBodyOwned, DecodeError> {
        Ok(RequestBodyOwned::CreateTopic {
            name: required(body.name(), "CreateTopicRequest", "name")?,
            partitions: body.partitions(),
            config: config_owned(body.config()),
        })
    }

    fn delete_topic_request(
        &self,
        body: DeleteTopicRequest<'_>,
    ) -> Result<RequestBodyOwned, DecodeError> {
        Ok(RequestBodyOwned::DeleteTopic {
            name: required(body.name(), "DeleteTopicRequest", "name")?,
        })
    }

    fn produce_request(&self, body: ProduceRequest<'_>) -> Result<RequestBodyOwned, DecodeError> {
        let acks = body.acks();
        if acks.variant_name().is_none() {
            return Err(DecodeError::EnumUnknown {
                table: "ProduceRequest",
                field: "acks",
                value: i64::from(acks.0),
            });
        }
        let batches = self.vector(body.batches(), "ProduceRequest", "batches", |batch| {
            let range = batch.batch().ok_or(DecodeError::FieldMissing {
                table: "ProduceBatch",
                field: "batch",
            })?;
            Ok(ProduceBatchOwned {
                topic: required(batch.topic(), "ProduceBatch", "topic")?,
                partition: batch.partition(),
                batch: self.range(range)?,
            })
        })?;
        Ok(RequestBodyOwned::Produce {
            acks,
            timeout_ms: body.timeout_ms(),
            batches,
        })
    }

    fn fetch_request(&self, body: FetchRequest<'_>) -> Result<RequestBodyOwned, DecodeError> {
        let partitions = self.vector(body.partitions(), "FetchRequest", "partitions", |entry| {
            Ok(FetchPartitionOwned {
                topic: required(entry.topic(), "FetchPartition", "topic")?,
                partition: entry.partition(),
                offset: entry.offset(),
                bytes_max: entry.bytes_max(),
            })
        })?;
        Ok(RequestBodyOwned::Fetch {
            wait_ms_max: body.wait_ms_max(),
            bytes_min: body.bytes_min(),
            bytes_max: body.bytes_max(),
            partitions,
        })
    }

    fn list_offsets_request(
        &self,
        body: ListOffsetsRequest<'_>,
    ) -> Result<RequestBodyOwned, DecodeError> {
        let partitions = self.vector(
            body.partitions(),
            "ListOffsetsRequest",
            "partitions",
            |entry| {
                let spec = entry.spec();
                if spec.variant_name().is_none() {
                    return Err(DecodeError::EnumUnknown {
                        table: "ListOffsetsPartition",
                        field: "spec",
                        value: i64::from(spec.0),
                    });
                }
                Ok(ListOffsetsPartitionOwned {
                    topic: required(entry.topic(), "ListOffsetsPartition", "topic")?,
                    partition: entry.partition(),
                    spec,
                    timestamp_ms: entry.timestamp_ms(),
                })
            },
        )?;
        Ok(RequestBodyOwned::ListOffsets { partitions })
    }

    fn handshake_response(
        &self,
        body: HandshakeResponse<'_>,
    ) -> Result<ResponseBodyOwned, DecodeError> {
        Ok(ResponseBodyOwned::Handshake {
            error: body.error(),
            version: body.version().0,
            shard_count: body.shard_count(),
            frame_bytes_max: body.frame_bytes_max(),
            in_flight_max: body.in_flight_max(),
        })
    }

    fn metadata_response(
        &self,
        body: MetadataResponse<'_>,
    ) -> Result<ResponseBodyOwned, DecodeError> {
        let topics = self.vector(body.topics(), "MetadataResponse", "topics", |topic| {
            let partitions =
                self.vector(topic.partitions(), "TopicMetadata", "partitions", |entry| {
                    Ok(PartitionMetadataOwned {
                        partition: entry.partition(),
                        shard: entry.shard(),
                        error: entry.error(),
                        log_start: entry.log_start(),
                        log_end: entry.log_end(),
                    })
                })?;
            Ok(TopicMetadataOwned {
                name: required(topic.name(), "TopicMetadata", "name")?,
                error: topic.error(),
                partitions,
                config: config_owned(topic.config()),
            })
        })?;
        Ok(ResponseBodyOwned::Metadata {
            error: body.error(),
            topics,
        })
    }

    fn create_topic_response(
        &self,
        body: CreateTopicResponse<'_>,
    ) -> Result<ResponseBodyOwned, DecodeError> {
        Ok(ResponseBodyOwned::CreateTopic {
            error: body.error(),
            message: body.message().unwrap_or_default().to_string(),
        })
    }

    fn delete_topic_response(
        &self,
        body: DeleteTopicResponse<'_>,
    ) -> Result<ResponseBodyOwned, DecodeError> {
        Ok(ResponseBodyOwned::DeleteTopic {
            error: body.error(),
            message: body.message().unwrap_or_default().to_string(),
        })
    }

    fn produce_response(
        &self,
        body: ProduceResponse<'_>,
    ) -> Result<ResponseBodyOwned, DecodeError> {
        let results = self.vector(body.results(), "ProduceResponse", "results", |result| {
            Ok(ProduceResultOwned {
                topic: required(result.topic(), "ProduceResult", "topic")?,
                partition: result.partition(),
                error: result.error(),
                base_offset: result.base_offset(),
                last_offset: result.last_offset(),
                log_start: result.log_start(),
                message: result.message().unwrap_or_default().to_string(),
            })
        })?;
        Ok(ResponseBodyOwned::Produce {
            error: body.error(),
            results,
        })
    }

    fn fetch_response(&self, body: FetchResponse<'_>) -> Result<ResponseBodyOwned, DecodeError> {
        let results = self.vector(body.results(), "FetchResponse", "results", |result| {
            let batches = match result.batches() {
                Some(range) => self.range(range)?,
                None => PayloadRange::new(0, 0),
            };
            Ok(FetchResultOwned {
                topic: required(result.topic(), "FetchResult", "topic")?,
                partition: result.partition(),
                error: result.error(),
                log_end: result.log_end(),
                log_start: result.log_start(),
                batches,
                message: result.message().unwrap_or_default().to_string(),
            })
        })?;
        Ok(ResponseBodyOwned::Fetch {
            error: body.error(),
            results,
        })
    }

    fn list_offsets_response(
        &self,
        body: ListOffsetsResponse<'_>,
    ) -> Result<ResponseBodyOwned, DecodeError> {
        let results = self.vector(body.results(), "ListOffsetsResponse", "results", |result| {
            Ok(ListOffsetsResultOwned {
                topic: required(result.topic(), "ListOffsetsResult", "topic")?,
                partition: result.partition(),
                error: result.error(),
                offset: result.offset(),
            })
        })?;
        Ok(ResponseBodyOwned::ListOffsets {
            error: body.error(),
            results,
        })
    }
}

// ---- To the wire ----------------------------------------------------------------------------

/// Builds the message for a request in `builder` (reset first, so one builder serves every
/// message of a connection) and returns it. Send it after [`frame_prefix`] and before the
/// payload its [`PayloadRange`]s point into.
pub fn encode_request<'b>(
    builder: &'b mut FlatBufferBuilder<'_>,
    correlation_id: u64,
    body: &RequestBodyOwned,
) -> &'b [u8] {
    builder.reset();
    let (body_type, body) = match body {
        RequestBodyOwned::Handshake { version, client_id } => {
            let client_id = optional_string(builder, client_id);
            let args = HandshakeRequestArgs {
                version: ProtocolVersion(*version),
                client_id,
            };
            let table = HandshakeRequest::create(builder, &args);
            (RequestBody::HandshakeRequest, table.as_union_value())
        }
        RequestBodyOwned::Metadata { topics } => {
            let topics: Vec<_> = topics
                .iter()
                .map(|topic| builder.create_string(topic))
                .collect();
            let topics = Some(builder.create_vector(&topics));
            let table = MetadataRequest::create(builder, &MetadataRequestArgs { topics });
            (RequestBody::MetadataRequest, table.as_union_value())
        }
        RequestBodyOwned::CreateTopic {
            name,
            partitions,
            config,
        } => {
            let name = Some(builder.create_string(name));
            let config = Some(encode_config(builder, config));
            let args = CreateTopicRequestArgs {
                name,
                partitions: *partitions,
                config,
            };
            let table = CreateTopicRequest::create(builder, &args);
            (RequestBody::CreateTopicRequest, table.as_union_value())
        }
        RequestBodyOwned::DeleteTopic { name } => {
            let name = Some(builder.create_string(name));
            let table = DeleteTopicRequest::create(builder, &DeleteTopicRequestArgs { name });
            (RequestBody::DeleteTopicRequest, table.as_union_value())
        }
        RequestBodyOwned::Produce {
            acks,
            timeout_ms,
            batches,
        } => {
            let batches: Vec<_> = batches
                .iter()
                .map(|batch| {
                    let topic = Some(builder.create_string(&batch.topic));
                    let args = ProduceBatchArgs {
                        topic,
                        partition: batch.partition,
                        batch: Some(&batch.batch),
                    };
                    ProduceBatch::create(builder, &args)
                })
                .collect();
            let batches = Some(builder.create_vector(&batches));
            let args = ProduceRequestArgs {
                acks: *acks,
                timeout_ms: *timeout_ms,
                batches,
            };
            let table = ProduceRequest::create(builder, &args);
            (RequestBody::ProduceRequest, table.as_union_value())
        }
        RequestBodyOwned::Fetch {
            wait_ms_max,
            bytes_min,
            bytes_max,
            partitions,
        } => {
            let partitions: Vec<_> = partitions
                .iter()
                .map(|entry| {
                    let topic = Some(builder.create_string(&entry.topic));
                    let args = FetchPartitionArgs {
                        topic,
                        partition: entry.partition,
                        offset: entry.offset,
                        bytes_max: entry.bytes_max,
                    };
                    FetchPartition::create(builder, &args)
                })
                .collect();
            let partitions = Some(builder.create_vector(&partitions));
            let args = FetchRequestArgs {
                wait_ms_max: *wait_ms_max,
                bytes_min: *bytes_min,
                bytes_max: *bytes_max,
                partitions,
            };
            let table = FetchRequest::create(builder, &args);
            (RequestBody::FetchRequest, table.as_union_value())
        }
        RequestBodyOwned::ListOffsets { partitions } => {
            let partitions: Vec<_> = partitions
                .iter()
                .map(|entry| {
                    let topic = Some(builder.create_string(&entry.topic));
                    let args = ListOffsetsPartitionArgs {
                        topic,
                        partition: entry.partition,
                        spec: entry.spec,
                        timestamp_ms: entry.timestamp_ms,
                    };
                    ListOffsetsPartition::create(builder, &args)
                })
                .collect();
            let partitions = Some(builder.create_vector(&partitions));
            let args = ListOffsetsRequestArgs { partitions };
            let table = ListOffsetsRequest::create(builder, &args);
            (RequestBody::ListOffsetsRequest, table.as_union_value())
        }
    };
    let args = RequestArgs {
        correlation_id,
        body_type,
        body: Some(body),
    };
    let root = Request::create(builder, &args);
    builder.finish_minimal(root);
    builder.finished_data()
}

/// Builds the message for a response in `builder` (reset first) and returns it, like
/// [`encode_request`].
pub fn encode_response<'b>(
    builder: &'b mut FlatBufferBuilder<'_>,
    response: &ResponseOwned,
) -> &'b [u8] {
    builder.reset();
    let body = response
        .body
        .as_ref()
        .map(|body| encode_response_body(builder, body));
    let message = optional_string(builder, &response.message);
    let args = ResponseArgs {
        correlation_id: response.correlation_id,
        error: response.error,
        message,
        body_type: body.map_or(ResponseBody::NONE, |(body_type, _)| body_type),
        body: body.map(|(_, body)| body),
    };
    let root = Response::create(builder, &args);
    builder.finish_minimal(root);
    builder.finished_data()
}

fn encode_response_body(
    builder: &mut FlatBufferBuilder<'_>,
    body: &ResponseBodyOwned,
) -> (ResponseBody, WIPOffset<flatbuffers::UnionWIPOffset>) {
    match body {
        ResponseBodyOwned::Handshake {
            error,
            version,
            shard_count,
            frame_bytes_max,
            in_flight_max,
        } => {
            let args = HandshakeResponseArgs {
                error: *error,
                version: ProtocolVersion(*version),
                shard_count: *shard_count,
                frame_bytes_max: *frame_bytes_max,
                in_flight_max: *in_flight_max,
            };
            let table = HandshakeResponse::create(builder, &args);
            (ResponseBody::HandshakeResponse, table.as_union_value())
        }
        ResponseBodyOwned::Metadata { error, topics } => {
            let topics: Vec<_> = topics
                .iter()
                .map(|topic| {
                    let name = Some(builder.create_string(&topic.name));
                    let partitions: Vec<_> = topic
                        .partitions
                        .iter()
                        .map(|entry| {
                            let args = PartitionMetadataArgs {
                                partition: entry.partition,
                                shard: entry.shard,
                                error: entry.error,
                                log_start: entry.log_start,
                                log_end: entry.log_end,
                            };
                            PartitionMetadata::create(builder, &args)
                        })
                        .collect();
                    let partitions = Some(builder.create_vector(&partitions));
                    let config = Some(encode_config(builder, &topic.config));
                    let args = TopicMetadataArgs {
                        name,
                        error: topic.error,
                        partitions,
                        config,
                    };
                    TopicMetadata::create(builder, &args)
                })
                .collect();
            let topics = Some(builder.create_vector(&topics));
            let args = MetadataResponseArgs {
                error: *error,
                topics,
            };
            let table = MetadataResponse::create(builder, &args);
            (ResponseBody::MetadataResponse, table.as_union_value())
        }
        ResponseBodyOwned::CreateTopic { error, message } => {
            let message = optional_string(builder, message);
            let args = CreateTopicResponseArgs {
                error: *error,
                message,
            };
            let table = CreateTopicResponse::create(builder, &args);
            (ResponseBody::CreateTopicResponse, table.as_union_value())
        }
        ResponseBodyOwned::DeleteTopic { error, message } => {
            let message = optional_string(builder, message);
            let args = DeleteTopicResponseArgs {
                error: *error,
                message,
            };
            let table = DeleteTopicResponse::create(builder, &args);
            (ResponseBody::DeleteTopicResponse, table.as_union_value())
        }
        ResponseBodyOwned::Produce { error, results } => {
            let results: Vec<_> = results
                .iter()
                .map(|result| {
                    let topic = Some(builder.create_string(&result.topic));
                    let message = optional_string(builder, &result.message);
                    let args = ProduceResultArgs {
                        topic,
                        partition: result.partition,
                        error: result.error,
                        base_offset: result.base_offset,
                        last_offset: result.last_offset,
                        log_start: result.log_start,
                        message,
                    };
                    ProduceResult::create(builder, &args)
                })
                .collect();
            let results = Some(builder.create_vector(&results));
            let args = ProduceResponseArgs {
                error: *error,
                results,
            };
            let table = ProduceResponse::create(builder, &args);
            (ResponseBody::ProduceResponse, table.as_union_value())
        }
        ResponseBodyOwned::Fetch { error, results } => {
            let results: Vec<_> = results
                .iter()
                .map(|result| {
                    let topic = Some(builder.create_string(&result.topic));
                    let message = optional_string(builder, &result.message);
                    let args = FetchResultArgs {
                        topic,
                        partition: result.partition,
                        error: result.error,
                        log_end: result.log_end,
                        log_start: result.log_start,
                        batches: Some(&result.batches),
                        message,
                    };
                    FetchResult::create(builder, &args)
                })
                .collect();
            let results = Some(builder.create_vector(&results));
            let args = FetchResponseArgs {
                error: *error,
                results,
            };
            let table = FetchResponse::create(builder, &args);
            (ResponseBody::FetchResponse, table.as_union_value())
        }
        ResponseBodyOwned::ListOffsets { error, results } => {
            let results: Vec<_> = results
                .iter()
                .map(|result| {
                    let topic = Some(builder.create_string(&result.topic));
                    let args = ListOffsetsResultArgs {
                        topic,
                        partition: result.partition,
                        error: result.error,
                        offset: result.offset,
                    };
                    ListOffsetsResult::create(builder, &args)
                })
                .collect();
            let results = Some(builder.create_vector(&results));
            let args = ListOffsetsResponseArgs {
                error: *error,
                results,
            };
            let table = ListOffsetsResponse::create(builder, &args);
            (ResponseBody::ListOffsetsResponse, table.as_union_value())
        }
    }
}

/// An optional string field: absent when empty, which decodes back to empty.
fn optional_string<'f>(
    builder: &mut FlatBufferBuilder<'f>,
    value: &str,
) -> Option<WIPOffset<&'f str>> {
    (!value.is_empty()).then(|| builder.create_string(value))
}

fn encode_config<'f>(
    builder: &mut FlatBufferBuilder<'f>,
    config: &TopicConfigOwned,
) -> WIPOffset<TopicConfig<'f>> {
    let args = TopicConfigArgs {
        retention_ms: config.retention_ms,
        retention_bytes: config.retention_bytes,
        segment_bytes: config.segment_bytes,
    };
    TopicConfig::create(builder, &args)
}
