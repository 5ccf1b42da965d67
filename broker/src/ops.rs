//! The operations one shard asks of another, and their replies: plain owned structs, `Send`,
//! carrying no network or handler types. Every cross-shard hop carries one of these over a
//! bounded channel (shard.rs); a local call uses the same types without the hop.

use bytes::{Bytes, BytesMut};
use storage::Offset;

use crate::group::assign::Assignor;
use crate::group::membership::{GroupState, Joined, MemberView};
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
    /// Delete the closed segments wholly below this offset (the offsets topic, after a
    /// snapshot covers them).
    DeleteBefore(Offset),
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
    /// The group does not know the member.
    UnknownMemberId,
    /// Not the group's current generation.
    IllegalGeneration,
    /// The group is rebalancing: rejoin.
    RebalanceInProgress,
    /// The member's assignor differs from the group's.
    InconsistentAssignor,
    /// A session or rebalance timeout out of bounds.
    InvalidSessionTimeout,
    /// The group has members, and the operation needs none.
    GroupNotEmpty,
    /// A commit would move an offset backwards.
    OffsetCommitRewind,
    /// The group, or the coordinator, is full.
    GroupFull,
    /// A malformed request (e.g. an invalid group name).
    InvalidRequest,
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
    /// A consumer-group operation (only the group's coordinator receives these).
    Group(GroupOp),
}

/// A join, as the coordinator takes it.
#[derive(Debug, Clone)]
pub struct JoinArgs {
    /// The group.
    pub group: String,
    /// Empty for a new member.
    pub member_id: String,
    /// The client's name.
    pub client_id: String,
    /// Subscribed topics.
    pub topics: Vec<String>,
    /// Removed after this long without a sign of life.
    pub session_timeout: std::time::Duration,
    /// How long a rebalance waits for every member.
    pub rebalance_timeout: std::time::Duration,
    /// The strategy asked for.
    pub assignor: Assignor,
}

/// An offset commit, as the coordinator takes it.
#[derive(Debug, Clone)]
pub struct CommitArgs {
    /// The group.
    pub group: String,
    /// The committing member (empty outside any membership).
    pub member_id: String,
    /// Its generation (-1 outside any membership).
    pub generation: i32,
    /// (topic, partition, next offset to consume), in request order.
    pub offsets: Vec<(String, u32, u64)>,
    /// An operator's reset: may move offsets backwards, only while the group is empty.
    pub reset: bool,
}

/// A group as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    /// Its name.
    pub group: String,
    /// Its state.
    pub state: GroupState,
    /// Its members now.
    pub members: u32,
}

/// A group as described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Its state.
    pub state: GroupState,
    /// Its generation.
    pub generation: i32,
    /// The assignor its members use (None while empty).
    pub assignor: Option<Assignor>,
    /// Its members, by id.
    pub members: Vec<MemberView>,
}

/// An operation on consumer groups, run by the coordinator shard of the group (the owner of
/// the group's partition of the offsets topic); `List` runs on every shard.
#[derive(Debug, Clone)]
pub enum GroupOp {
    /// Join or rejoin; answered when the rebalance completes.
    Join(JoinArgs),
    /// A member's sign of life.
    Heartbeat {
        /// The group.
        group: String,
        /// The member.
        member_id: String,
        /// Its generation.
        generation: i32,
    },
    /// A member leaves.
    Leave {
        /// The group.
        group: String,
        /// The member.
        member_id: String,
    },
    /// Commit offsets durably.
    Commit(CommitArgs),
    /// The committed offsets of a group (of `topics`; all when empty).
    FetchOffsets {
        /// The group.
        group: String,
        /// Topics to report.
        topics: Vec<String>,
    },
    /// The groups this shard coordinates.
    List,
    /// One group's state and members.
    Describe {
        /// The group.
        group: String,
    },
}

/// The reply to a [`GroupOp`].
#[derive(Debug)]
pub enum GroupReply {
    /// A join completed.
    Joined(Result<Joined, OpError>),
    /// A heartbeat or leave.
    Done(Result<(), OpError>),
    /// A commit: one outcome per offset, in request order.
    Committed(Result<Vec<Result<(), OpError>>, OpError>),
    /// Committed offsets: (topic, partition, offset).
    Offsets(Result<Vec<(String, u32, u64)>, OpError>),
    /// The groups of one shard.
    Groups(Result<Vec<GroupSummary>, OpError>),
    /// A group's description.
    Described(Result<GroupDescription, OpError>),
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
    /// A group operation's reply.
    Group(GroupReply),
}
