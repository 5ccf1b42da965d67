//! The operations one shard asks of another: plain owned structs, `Send`, carrying no network
//! or handler types. Every cross-shard hop carries one [`ShardOp`] over a bounded channel
//! (shard.rs); a call to the shard itself runs the same op without the hop.
//!
//! Each op carries its own typed [`Reply`] route, so an op can only be answered with its own
//! reply type: a mismatch does not compile. Errors are the typed families of error.rs and
//! group/error.rs, mapped to wire codes only by the front-end (handler/errors.rs).

use std::marker::PhantomData;

use bytes::{Bytes, BytesMut};
use schema::batch::Verified;
use storage::Offset;

use crate::error::{AppendFailed, ApplyFailed, ProducerIdFailed, ReadFailed, TopicChangeFailed};

use crate::group::assign::Assignor;
use crate::group::error::GroupFailed;
use crate::group::membership::{GroupState, Joined, MemberView};
use crate::group::retention::OffsetsExpiry;
use crate::metadata::Metadata;
use crate::metrics::MetricsSnapshot;
use crate::topology::{PartitionKey, ShardId};

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

/// Offsets assigned to an appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// First offset.
    pub base_offset: Offset,
    /// Last offset.
    pub last_offset: Offset,
    /// Log start at the time.
    pub log_start: Offset,
}

/// A log's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    /// The first stored offset.
    pub log_start: Offset,
    /// The readable end (written).
    pub log_end: Offset,
}

/// Where the answer to one call goes: the calling shard and its call id. Typed by the answer,
/// so an op's executor can only answer with that op's reply type ([`crate::shard::Shard::answer`]).
/// `Send` whatever `T` is: it carries no `T`, only the route.
#[derive(Debug)]
pub struct Reply<T> {
    /// The calling shard.
    pub(crate) to: ShardId,
    /// Matches the answer to the waiting call.
    pub(crate) call_id: u64,
    answer: PhantomData<fn() -> T>,
}

impl<T> Reply<T> {
    /// The route back to `to`'s call `call_id` (only [`crate::shard::Shard::call`] makes one).
    pub(crate) fn new(to: ShardId, call_id: u64) -> Reply<T> {
        Reply {
            to,
            call_id,
            answer: PhantomData,
        }
    }
}

/// A topic change, executed by the controller shard.
#[derive(Debug)]
pub enum ControllerOp {
    /// Create a topic.
    Create(crate::metadata::TopicSpec),
    /// Delete a topic.
    Delete(String),
}

/// What a shard may be asked to do, each with its typed reply route.
#[derive(Debug)]
pub enum ShardOp {
    /// Append verified batches, in order and in one round of its actor, to a partition this
    /// shard owns.
    Append {
        /// The partition.
        key: PartitionKey,
        /// The batches, verified where they arrived; their baseOffsets are rewritten in place.
        batches: Vec<Verified<BytesMut>>,
        /// When to answer.
        acks: AckLevel,
        /// The answer: one result per batch, in order.
        reply: Reply<Vec<Result<Appended, AppendFailed>>>,
    },
    /// Read whole batches from `offset` (at least one if any, within `bytes_max`).
    Read {
        /// The partition.
        key: PartitionKey,
        /// First offset wanted.
        offset: Offset,
        /// Byte budget.
        bytes_max: usize,
        /// The answer.
        reply: Reply<Result<ReadBatches, ReadFailed>>,
    },
    /// Answer once data at or after `offset` is readable (long-poll); the caller bounds the
    /// wait with its own timer, and the partition forgets the waiter after `wait`.
    WaitForData {
        /// The partition.
        key: PartitionKey,
        /// The offset the reader waits for.
        offset: Offset,
        /// How long the reader waits.
        wait: std::time::Duration,
        /// The answer.
        reply: Reply<Result<(), ReadFailed>>,
    },
    /// Find an offset.
    ListOffset {
        /// The partition.
        key: PartitionKey,
        /// Where to look.
        query: OffsetQuery,
        /// The answer.
        reply: Reply<Result<Offset, ReadFailed>>,
    },
    /// Report a partition's bounds.
    Describe {
        /// The partition.
        key: PartitionKey,
        /// The answer.
        reply: Reply<Result<LogBounds, ReadFailed>>,
    },
    /// A topic change (only the controller receives these).
    ChangeTopics {
        /// The change.
        change: ControllerOp,
        /// The answer.
        reply: Reply<Result<(), TopicChangeFailed>>,
    },
    /// Adopt this metadata snapshot: open new partitions, close deleted ones.
    ApplyMetadata {
        /// The snapshot.
        metadata: Metadata,
        /// The answer.
        reply: Reply<Result<(), ApplyFailed>>,
    },
    /// Report this shard's metrics.
    Metrics {
        /// The answer.
        reply: Reply<MetricsSnapshot>,
    },
    /// Hand out a producer id and its epoch (only the controller receives these).
    InitProducerId {
        /// The answer.
        reply: Reply<Result<(i64, i16), ProducerIdFailed>>,
    },
    /// A consumer-group operation (only the group's coordinator receives these).
    Group(GroupCall),
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

/// A committed offset: (topic, partition, next offset to consume).
pub type CommittedOffset = (String, u32, u64);

/// One offset's commit outcome.
pub type CommitOutcome = Result<(), GroupFailed>;

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
    /// When its committed offsets expire (`--offsets-retention-ms`).
    pub offsets_expiry: OffsetsExpiry,
}

/// An operation on consumer groups, run by the coordinator shard of the group (the owner of
/// the group's partition of the offsets topic); `List` runs on every shard.
#[derive(Debug)]
pub enum GroupCall {
    /// Join or rejoin; answered when the rebalance completes.
    Join {
        /// The join.
        args: JoinArgs,
        /// The answer.
        reply: Reply<Result<Joined, GroupFailed>>,
    },
    /// A member's sign of life.
    Heartbeat {
        /// The group.
        group: String,
        /// The member.
        member_id: String,
        /// Its generation.
        generation: i32,
        /// The answer.
        reply: Reply<Result<(), GroupFailed>>,
    },
    /// A member leaves.
    Leave {
        /// The group.
        group: String,
        /// The member.
        member_id: String,
        /// The answer.
        reply: Reply<Result<(), GroupFailed>>,
    },
    /// Commit offsets durably: one outcome per offset, in request order.
    Commit {
        /// The commit.
        args: CommitArgs,
        /// The answer.
        reply: Reply<Result<Vec<CommitOutcome>, GroupFailed>>,
    },
    /// The committed offsets of a group (of `topics`; all when empty): (topic, partition,
    /// offset).
    FetchOffsets {
        /// The group.
        group: String,
        /// Topics to report.
        topics: Vec<String>,
        /// The answer.
        reply: Reply<Result<Vec<CommittedOffset>, GroupFailed>>,
    },
    /// The groups this shard coordinates.
    List {
        /// The answer.
        reply: Reply<Result<Vec<GroupSummary>, GroupFailed>>,
    },
    /// One group's state and members.
    Describe {
        /// The group.
        group: String,
        /// The answer.
        reply: Reply<Result<GroupDescription, GroupFailed>>,
    },
}
