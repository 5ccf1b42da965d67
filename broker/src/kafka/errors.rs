//! The one place where broker errors become Kafka error codes (the ringbus wire has its own
//! such place, `handler::errors`). The codes are chosen so that Kafka clients retry what they
//! would retry against Kafka: an unknown or unserved partition and a stopping shard are
//! retriable, a corrupt batch or a sequence gap is not. No state; any shard.

use kafka_protocol::ResponseError;
use schema::batch::BatchError;

use crate::error::{AppendFailed, ProducerIdFailed, ReadFailed, TopicChangeFailed, Unreachable};
use crate::group::error::GroupFailed;
use crate::group::membership::GroupError;
use crate::metadata::TopicError;
use crate::producer_state::SequenceError;

/// A Kafka error code (`ResponseError::code`; 0 is none).
pub(crate) type Code = i16;

/// No error.
pub(crate) const NONE: Code = 0;

/// A partition that could not be reached.
pub(crate) fn unreachable(error: &Unreachable) -> Code {
    match error {
        Unreachable::UnknownTopic { .. } | Unreachable::UnknownPartition { .. } => {
            ResponseError::UnknownTopicOrPartition.code()
        }
        // Not open on its shard (being created or deleted, or offline), or the shard is
        // stopping: clients refresh their metadata and retry, as they do when a Kafka
        // partition moves.
        Unreachable::NotServed { .. } | Unreachable::ShuttingDown { .. } => {
            ResponseError::NotLeaderOrFollower.code()
        }
    }
}

/// A batch that failed verification at the edge.
pub(crate) fn batch(error: &BatchError) -> Code {
    match error {
        // Verification accepts every real codec (the batch is stored compressed), so produce
        // no longer meets this; kept so that a future refusal maps to the code Kafka uses.
        BatchError::UnsupportedCompression { .. } => {
            ResponseError::UnsupportedCompressionType.code()
        }
        BatchError::ControlOrTransactional => ResponseError::InvalidRecord.code(),
        // Length, magic (v0 and v1 message sets included), CRC, record count: Kafka answers
        // these with CORRUPT_MESSAGE.
        _ => ResponseError::CorruptMessage.code(),
    }
}

/// A batch not stored, or not acknowledged at its level.
pub(crate) fn append(error: &AppendFailed) -> Code {
    match error {
        AppendFailed::Unreachable(error) => unreachable(error),
        AppendFailed::InternalTopic { .. } => ResponseError::InvalidTopicException.code(),
        AppendFailed::InvalidBatch { error, .. } => batch(error),
        AppendFailed::Sequence { error, .. } => sequence(error),
        AppendFailed::Storage { error, .. } => match error.as_ref() {
            storage::AppendError::InvalidBatch(error) => batch(error),
            storage::AppendError::BatchTooLarge { .. } => ResponseError::MessageTooLarge.code(),
            storage::AppendError::StorageFull { .. }
            | storage::AppendError::Io(_)
            | storage::AppendError::Failed { .. } => ResponseError::KafkaStorageError.code(),
            _ => ResponseError::UnknownServerError.code(),
        },
        AppendFailed::NotWritten { .. } | AppendFailed::RolledBack { .. } => {
            ResponseError::KafkaStorageError.code()
        }
    }
}

/// An idempotent producer's batch refused.
fn sequence(error: &SequenceError) -> Code {
    match error {
        SequenceError::Malformed { .. } => ResponseError::InvalidRecord.code(),
        SequenceError::Fenced { .. } => ResponseError::InvalidProducerEpoch.code(),
        SequenceError::OutOfOrder { .. } => ResponseError::OutOfOrderSequenceNumber.code(),
        SequenceError::UnknownProducer { .. } => ResponseError::UnknownProducerId.code(),
        SequenceError::DuplicateTooOld { .. } => ResponseError::DuplicateSequenceNumber.code(),
        // The partition tracks too many producers: Kafka has no such limit, so no code says
        // it; a retriable one lets the client try again once old producers expire.
        SequenceError::TooManyProducers { .. } => ResponseError::NotEnoughReplicas.code(),
    }
}

/// A read, wait or lookup that failed.
pub(crate) fn read(error: &ReadFailed) -> Code {
    match error {
        ReadFailed::Unreachable(error) => unreachable(error),
        ReadFailed::Storage { error, .. } => match error.as_ref() {
            storage::ReadError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
            storage::ReadError::Corruption(_)
            | storage::ReadError::Io(_)
            | storage::ReadError::Failed { .. } => ResponseError::KafkaStorageError.code(),
            _ => ResponseError::UnknownServerError.code(),
        },
        ReadFailed::Retention { .. } => ResponseError::KafkaStorageError.code(),
    }
}

/// A topic change refused or failed.
pub(crate) fn topic_change(error: &TopicChangeFailed) -> Code {
    match error {
        TopicChangeFailed::Refused(error) => match error {
            TopicError::InvalidName { .. } => ResponseError::InvalidTopicException.code(),
            TopicError::InvalidPartitions { .. } => ResponseError::InvalidPartitions.code(),
            TopicError::InvalidConfig { .. } => ResponseError::InvalidConfig.code(),
            TopicError::AlreadyExists { .. } => ResponseError::TopicAlreadyExists.code(),
            TopicError::Unknown { .. } => ResponseError::UnknownTopicOrPartition.code(),
        },
        TopicChangeFailed::Store(_) => ResponseError::KafkaStorageError.code(),
        TopicChangeFailed::Apply(_) => ResponseError::UnknownServerError.code(),
        TopicChangeFailed::Unreachable(error) => unreachable(error),
    }
}

/// A consumer-group operation's failure: the codes Kafka's coordinator answers, so members
/// rejoin on REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION and UNKNOWN_MEMBER_ID, and retry
/// elsewhere on COORDINATOR_NOT_AVAILABLE.
pub(crate) fn group(error: &GroupFailed) -> Code {
    match error {
        GroupFailed::Membership { error, .. } => match error {
            GroupError::UnknownMember { .. } => ResponseError::UnknownMemberId.code(),
            GroupError::IllegalGeneration { .. } => ResponseError::IllegalGeneration.code(),
            GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress.code(),
            GroupError::InconsistentAssignor { .. } => {
                ResponseError::InconsistentGroupProtocol.code()
            }
            GroupError::InvalidSessionTimeout { .. } => ResponseError::InvalidSessionTimeout.code(),
            GroupError::GroupFull { .. } => ResponseError::GroupMaxSizeReached.code(),
            GroupError::GroupNotEmpty { .. } => ResponseError::NonEmptyGroup.code(),
            GroupError::TooManyTopics { .. } => ResponseError::InvalidRequest.code(),
        },
        GroupFailed::UnknownMember { .. } => ResponseError::UnknownMemberId.code(),
        GroupFailed::Superseded { .. } => ResponseError::RebalanceInProgress.code(),
        GroupFailed::InvalidRequest { .. } => ResponseError::InvalidRequest.code(),
        GroupFailed::CoordinatorFull { .. } => ResponseError::GroupMaxSizeReached.code(),
        // ringbus never moves a committed offset backwards outside an operator's reset; Kafka
        // has no such rule, so no code says it: the commit is refused as invalid.
        GroupFailed::CommitRewind { .. } => ResponseError::InvalidCommitOffsetSize.code(),
        GroupFailed::InternalTopic { .. } => ResponseError::InvalidTopicException.code(),
        GroupFailed::Unreachable(error) => unreachable(error),
        GroupFailed::Append(error) => append(error),
        GroupFailed::Read(error) => read(error),
        GroupFailed::Snapshot { .. }
        | GroupFailed::Corrupt { .. }
        | GroupFailed::NoOffsetsTopic { .. } => ResponseError::CoordinatorNotAvailable.code(),
    }
}

/// No producer id handed out: retriable, as Kafka's coordinator-not-available is.
pub(crate) fn producer_id(error: &ProducerIdFailed) -> Code {
    match error {
        ProducerIdFailed::Storage(_) | ProducerIdFailed::Unreachable(_) => {
            ResponseError::CoordinatorNotAvailable.code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes Kafka clients act on, pinned: a client retries 3 and 6 after refreshing its
    /// metadata, resets its position on 1, and fails the batch on 2, 10, 45 and 76.
    #[test]
    fn codes_are_kafkas() {
        let unknown = Unreachable::UnknownTopic {
            topic: "t".to_string(),
        };
        assert_eq!(unreachable(&unknown), 3);
        let stopping = Unreachable::ShuttingDown { what: "the shard" };
        assert_eq!(unreachable(&stopping), 6);
        let crc = BatchError::CrcMismatch {
            stored: 1,
            computed: 2,
        };
        assert_eq!(batch(&crc), 2);
        let magic = BatchError::BadMagic { magic: 1 };
        assert_eq!(batch(&magic), 2);
        let compressed = BatchError::UnsupportedCompression {
            compression: schema::batch::Compression::Zstd,
        };
        assert_eq!(batch(&compressed), 76);
    }
}
