//! The operations one shard asks of another, and their replies: plain owned structs, `Send`,
//! carrying no network or handler types. Every cross-shard hop carries one of these over a
//! bounded channel (shard.rs); a local call uses the same types without the hop.

use bytes::{Bytes, BytesMut};
use storage::Offset;

use crate::metadata::Metadata;
use crate::metrics::MetricsSnapshot;
use crate::topology::PartitionKey;

/// How durable an append must be before it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AckLevel {
    /// Answer once appended (the producer asked for no response; the broker still writes it).
    None,
    /// Answer once written: survives a broker crash.
    Written,
    /// Answer once fdatasynced: survives power loss.
    Durable,
}

/// Where a ListOffsets lookup starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetQuery {
    /// The log start.
    Earliest,
    /// The log end (next offset to be written).
    Latest,
    /// The first batch with a timestamp at or after this (ms).
    Timestamp(i64),
}

/// An operation on one partition, executed by the shard that owns it.
#[derive(Debug)]
pub enum PartitionOp {
    /// Append one verified batch.
    Append {
        /// The batch; its baseOffset is rewritten in place.
        batch: BytesMut,
        /// When to answer.
        acks: AckLevel,
    },
    /// Read whole batches from `offset`.
    Read {
        /// First offset wanted.
        offset: Offset,
        /// Byte budget (at least one batch is returned if any).
        bytes_max: usize,
    },
    /// Answer once data at or after `offset` is readable (long-poll). The caller bounds the
    /// wait with its own timer.
    WaitForData {
        /// The offset the reader waits for.
        offset: Offset,
        /// How long the reader waits; the actor forgets it after that.
        wait: std::time::Duration,
    },
    /// Find an offset.
    ListOffset(OffsetQuery),
    /// Report the log's start and end.
    Describe,
}

/// Errors as plain values that cross shards; mapped to wire codes in handler.rs only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpErrorKind {
    /// The partition is not owned here or does not exist.
    UnknownPartition,
    /// The batch failed validation.
    InvalidBatch,
    /// The batch is too large.
    BatchTooLarge,
    /// Offset outside [log start, log end].
    OffsetOutOfRange,
    /// Disk full: not stored, retry later.
    StorageFull,
    /// The partition's log failed and stopped.
    StorageFailed,
    /// Corrupt data.
    Corruption,
    /// Too many waiters or requests.
    Throttled,
    /// The broker is shutting down.
    ShuttingDown,
    /// Invalid topic request.
    InvalidTopic,
    /// Topic exists.
    TopicAlreadyExists,
    /// Topic missing.
    UnknownTopic,
    /// An idempotent batch is not the next in its producer's sequence.
    OutOfOrderSequence,
    /// The partition has no state for the batch's producer and the batch does not start at 0.
    UnknownProducerId,
    /// The batch's producer epoch is older than one seen.
    ProducerFenced,
    /// A duplicate too old for its offsets to be remembered; stored before, not again.
    DuplicateSequence,
    /// The topic is internal to the broker.
    InternalTopic,
    /// Anything else.
    Internal,
}

/// A failed operation: its kind and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    /// What kind of failure.
    pub kind: OpErrorKind,
    /// Details.
    pub message: String,
}

impl OpError {
    /// Builds an error.
    pub fn new(kind: OpErrorKind, message: impl Into<String>) -> OpError {
        OpError {
            kind,
            message: message.into(),
        }
    }
}

/// Batches and positions returned by a read.
#[derive(Debug, Clone)]
pub struct ReadBatches {
    /// Stored batch bytes, zero-copy handles.
    pub batches: Vec<Bytes>,
    /// Offset after the last batch returned.
    pub next_offset: Offset,
    /// The readable end of the log.
    pub log_end: Offset,
    /// The first stored offset.
    pub log_start: Offset,
}

/// The reply to a [`PartitionOp`].
#[derive(Debug)]
pub enum PartitionReply {
    /// Offsets assigned to an appended batch.
    Appended {
        /// First offset.
        base_offset: Offset,
        /// Last offset.
        last_offset: Offset,
        /// Log start at the time.
        log_start: Offset,
    },
    /// A read's result.
    Read(ReadBatches),
    /// Data is readable at the awaited offset.
    DataReady,
    /// An offset lookup's result.
    Offset(Offset),
    /// The log's bounds.
    Described {
        /// Log start.
        log_start: Offset,
        /// Log end (written).
        log_end: Offset,
    },
    /// The operation failed.
    Failed(OpError),
}

/// A topic change, executed by the controller shard.
#[derive(Debug)]
pub enum ControllerOp {
    /// Create a topic.
    Create(crate::metadata::TopicSpec),
    /// Delete a topic.
    Delete(String),
}

/// What a shard may be asked to do.
#[derive(Debug)]
pub enum ShardOp {
    /// An operation on a partition this shard owns.
    Partition(PartitionKey, PartitionOp),
    /// A topic change (only the controller receives these).
    Controller(ControllerOp),
    /// Adopt this metadata snapshot: open new partitions, close deleted ones.
    ApplyMetadata(Metadata),
    /// Report this shard's metrics.
    Metrics,
    /// Hand out a producer id (only the controller receives these).
    InitProducerId,
}

/// The reply to a [`ShardOp`].
#[derive(Debug)]
pub enum ShardReply {
    /// A partition reply.
    Partition(PartitionReply),
    /// A controller or metadata change finished (or failed).
    Done(Result<(), OpError>),
    /// A shard's metrics (boxed: far larger than the other replies).
    Metrics(Box<MetricsSnapshot>),
    /// A new producer id and its epoch.
    ProducerId(Result<(i64, i16), OpError>),
}
