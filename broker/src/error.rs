//! The broker's operation errors, one family per kind of operation, as plain `Send` values that
//! cross shards. They keep the detail (the partition, the storage error with its file and
//! position, the producer's sequences) until the front-end turns them into its protocol's
//! codes, which happens in one place per front-end (`handler::errors` for ringbus's wire).
//! Nothing here knows a wire type.

use std::sync::Arc;

use storage::Offset;

use crate::metadata::TopicError;
use crate::producer_ids::ProducerIdError;
use crate::producer_state::SequenceError;
use crate::topology::{PartitionKey, ShardId};

/// Why a partition could not be reached at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unreachable {
    /// No such topic in this shard's metadata.
    #[error("unknown topic {topic:?}")]
    UnknownTopic {
        /// The topic asked for.
        topic: String,
    },
    /// The topic has fewer partitions.
    #[error("topic {topic:?} has {partitions} partitions, not {partition}")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many it has.
        partitions: u32,
    },
    /// The owning shard has no actor for it (not opened: offline after a failed open, or the
    /// topic is being created or deleted).
    #[error("partition {key} is not served by {shard}")]
    NotServed {
        /// The partition.
        key: PartitionKey,
        /// The shard asked.
        shard: ShardId,
    },
    /// The partition or its shard is closing.
    #[error("{what} is shutting down")]
    ShuttingDown {
        /// What is closing.
        what: &'static str,
    },
}

/// Why a batch was not stored, or not acknowledged at the level asked for.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AppendFailed {
    /// The partition could not be reached.
    #[error(transparent)]
    Unreachable(#[from] Unreachable),
    /// Clients may not produce to the broker's internal topics.
    #[error(
        "{topic:?} is internal to the broker (names starting with {prefix:?} are reserved): \
         clients may read it, not create, delete or produce to it"
    )]
    InternalTopic {
        /// The topic.
        topic: String,
        /// The reserved prefix.
        prefix: &'static str,
    },
    /// The batch failed verification at the edge; nothing of it was stored.
    #[error("{key}: {error}")]
    InvalidBatch {
        /// The partition.
        key: PartitionKey,
        /// Why.
        error: schema::batch::BatchError,
    },
    /// The idempotent producer's sequence or epoch refused the batch.
    #[error("{key}: {error}")]
    Sequence {
        /// The partition.
        key: PartitionKey,
        /// Why.
        error: SequenceError,
    },
    /// The log refused or failed the append (shared: one failure can fail several batches).
    #[error("{key}: {error}")]
    Storage {
        /// The partition.
        key: PartitionKey,
        /// The log's error, with its file and position.
        error: Arc<storage::AppendError>,
    },
    /// The batch's offsets are not written yet and this round wrote nothing that failed: a
    /// retry of a batch whose first write failed, on a log that stopped accepting writes.
    #[error("{key}: the batch at offsets up to {last_offset} is not written")]
    NotWritten {
        /// The partition.
        key: PartitionKey,
        /// The batch's last offset.
        last_offset: Offset,
    },
    /// A full disk rolled the batch back after it was appended in memory.
    #[error("{key}: disk full: the batch at offset {base_offset} was not stored")]
    RolledBack {
        /// The partition.
        key: PartitionKey,
        /// The batch's offset before the rollback.
        base_offset: Offset,
    },
}

/// Why a read, a wait, a lookup or a deletion on a partition failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ReadFailed {
    /// The partition could not be reached.
    #[error(transparent)]
    Unreachable(#[from] Unreachable),
    /// The log's error (out of range, corruption, I/O), with its file and position.
    #[error("{key}: {error}")]
    Storage {
        /// The partition.
        key: PartitionKey,
        /// The log's error.
        error: Arc<storage::ReadError>,
    },
    /// Deleting segments failed.
    #[error("{key}: deleting segments below {offset}: {error}")]
    Retention {
        /// The partition.
        key: PartitionKey,
        /// The offset asked for.
        offset: Offset,
        /// The log's error.
        error: Arc<storage::RetentionError>,
    },
}

/// Why a call to another shard got no answer: the shard, or the whole broker, is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shard {0} is shutting down")]
pub struct ShardGone(pub ShardId);

impl From<ShardGone> for Unreachable {
    fn from(_: ShardGone) -> Unreachable {
        Unreachable::ShuttingDown { what: "the shard" }
    }
}

impl From<ShardGone> for AppendFailed {
    fn from(gone: ShardGone) -> AppendFailed {
        AppendFailed::Unreachable(gone.into())
    }
}

impl From<ShardGone> for ReadFailed {
    fn from(gone: ShardGone) -> ReadFailed {
        ReadFailed::Unreachable(gone.into())
    }
}

/// Why a topic change (create, delete) failed on the controller.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TopicChangeFailed {
    /// The change itself is refused (invalid, exists, unknown).
    #[error(transparent)]
    Refused(#[from] TopicError),
    /// The metadata could not be stored.
    #[error("storing the metadata failed: {0}")]
    Store(Arc<storage::IoFailure>),
    /// Stored, but some shards failed to open or close their partitions.
    #[error("{0}")]
    Apply(#[from] ApplyFailed),
    /// The controller is stopping.
    #[error(transparent)]
    Unreachable(#[from] Unreachable),
}

/// Why a shard could not fully apply a metadata snapshot: each partition it failed to open or
/// to remove (the rest of the snapshot is applied).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .failures.join("; "))]
pub struct ApplyFailed {
    /// One line per partition.
    pub failures: Vec<String>,
}

/// Why no producer id was handed out.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerIdFailed {
    /// Storing the next block of ids failed.
    #[error(transparent)]
    Storage(Arc<ProducerIdError>),
    /// The controller is stopping.
    #[error(transparent)]
    Unreachable(#[from] Unreachable),
}
