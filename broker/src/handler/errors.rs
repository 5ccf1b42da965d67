//! The one place where broker errors become ringbus wire error codes (a second front-end, such
//! as Kafka's protocol, maps the same typed errors to its own codes in its own such place).
//! Each function returns the code; the message is the error's `Display`, which keeps the
//! detail (partition, file, position, sequences).

use schema::wire::ErrorCode;

use crate::error::{AppendFailed, ProducerIdFailed, ReadFailed, TopicChangeFailed, Unreachable};
use crate::group::error::GroupFailed;
use crate::group::membership::GroupError;
use crate::metadata::TopicError;
use crate::producer_state::SequenceError;

/// A partition that could not be reached.
pub fn unreachable(error: &Unreachable) -> ErrorCode {
    match error {
        Unreachable::UnknownTopic { .. } => ErrorCode::UnknownTopic,
        Unreachable::UnknownPartition { .. } | Unreachable::NotServed { .. } => {
            ErrorCode::UnknownPartition
        }
        Unreachable::ShuttingDown { .. } => ErrorCode::ShuttingDown,
    }
}

/// A batch not stored, or not acknowledged at its level.
pub fn append(error: &AppendFailed) -> ErrorCode {
    match error {
        AppendFailed::Unreachable(error) => unreachable(error),
        AppendFailed::InternalTopic { .. } => ErrorCode::InternalTopic,
        AppendFailed::InvalidBatch { .. } => ErrorCode::InvalidBatch,
        AppendFailed::Sequence { error, .. } => sequence(error),
        AppendFailed::Storage { error, .. } => match error.as_ref() {
            storage::AppendError::InvalidBatch(_) => ErrorCode::InvalidBatch,
            storage::AppendError::BatchTooLarge { .. } => ErrorCode::BatchTooLarge,
            storage::AppendError::StorageFull { .. } => ErrorCode::StorageFull,
            storage::AppendError::Io(_) | storage::AppendError::Failed { .. } => {
                ErrorCode::StorageFailed
            }
            _ => ErrorCode::Internal,
        },
        AppendFailed::NotWritten { .. } => ErrorCode::StorageFailed,
        AppendFailed::RolledBack { .. } => ErrorCode::StorageFull,
    }
}

/// An idempotent producer's batch refused.
fn sequence(error: &SequenceError) -> ErrorCode {
    match error {
        SequenceError::Malformed { .. } => ErrorCode::InvalidBatch,
        SequenceError::Fenced { .. } => ErrorCode::ProducerFenced,
        SequenceError::OutOfOrder { .. } => ErrorCode::OutOfOrderSequence,
        SequenceError::UnknownProducer { .. } => ErrorCode::UnknownProducerId,
        SequenceError::DuplicateTooOld { .. } => ErrorCode::DuplicateSequence,
        SequenceError::TooManyProducers { .. } => ErrorCode::Throttled,
    }
}

/// A read, wait, lookup or deletion that failed.
pub fn read(error: &ReadFailed) -> ErrorCode {
    match error {
        ReadFailed::Unreachable(error) => unreachable(error),
        ReadFailed::Storage { error, .. } => match error.as_ref() {
            storage::ReadError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            storage::ReadError::Corruption(_) => ErrorCode::Corruption,
            storage::ReadError::Io(_) | storage::ReadError::Failed { .. } => {
                ErrorCode::StorageFailed
            }
            _ => ErrorCode::Internal,
        },
        ReadFailed::Retention { .. } => ErrorCode::StorageFailed,
    }
}

/// A consumer-group operation's failure.
pub fn group(error: &GroupFailed) -> ErrorCode {
    match error {
        GroupFailed::Membership { error, .. } => match error {
            GroupError::UnknownMember { .. } => ErrorCode::UnknownMemberId,
            GroupError::IllegalGeneration { .. } => ErrorCode::IllegalGeneration,
            GroupError::RebalanceInProgress => ErrorCode::RebalanceInProgress,
            GroupError::InconsistentAssignor { .. } => ErrorCode::InconsistentAssignor,
            GroupError::InvalidSessionTimeout { .. } => ErrorCode::InvalidSessionTimeout,
            GroupError::GroupFull { .. } => ErrorCode::GroupFull,
            GroupError::GroupNotEmpty { .. } => ErrorCode::GroupNotEmpty,
            GroupError::TooManyTopics { .. } => ErrorCode::InvalidRequest,
        },
        GroupFailed::UnknownMember { .. } => ErrorCode::UnknownMemberId,
        GroupFailed::Superseded { .. } => ErrorCode::RebalanceInProgress,
        GroupFailed::InvalidRequest { .. } => ErrorCode::InvalidRequest,
        GroupFailed::CoordinatorFull { .. } => ErrorCode::GroupFull,
        GroupFailed::CommitRewind { .. } => ErrorCode::OffsetCommitRewind,
        GroupFailed::InternalTopic { .. } => ErrorCode::InternalTopic,
        GroupFailed::Unreachable(error) => unreachable(error),
        GroupFailed::Append(error) => append(error),
        GroupFailed::Read(error) => read(error),
        GroupFailed::Snapshot { .. } => ErrorCode::StorageFailed,
        GroupFailed::Corrupt { .. } => ErrorCode::Corruption,
        GroupFailed::NoOffsetsTopic { .. } => ErrorCode::Internal,
    }
}

/// A topic change refused or failed.
pub fn topic_change(error: &TopicChangeFailed) -> ErrorCode {
    match error {
        TopicChangeFailed::Refused(error) => match error {
            TopicError::AlreadyExists { .. } => ErrorCode::TopicAlreadyExists,
            TopicError::Unknown { .. } => ErrorCode::UnknownTopic,
            _ => ErrorCode::InvalidTopicConfig,
        },
        TopicChangeFailed::Store(_) => ErrorCode::StorageFailed,
        TopicChangeFailed::Apply(_) => ErrorCode::Internal,
        TopicChangeFailed::Unreachable(error) => unreachable(error),
    }
}

/// No producer id handed out.
pub fn producer_id(error: &ProducerIdFailed) -> ErrorCode {
    match error {
        ProducerIdFailed::Storage(_) => ErrorCode::StorageFailed,
        ProducerIdFailed::Unreachable(error) => unreachable(error),
    }
}
