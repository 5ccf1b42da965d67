//! The one place where broker errors become ringbus wire error codes (a second front-end, such
//! as Kafka's protocol, maps the same typed errors to its own codes in its own such place).
//! Each function returns the code; the message is the error's `Display`, which keeps the
//! detail (partition, file, position, sequences).

use schema::wire::ErrorCode;

use crate::error::{AppendFailed, ReadFailed, Unreachable};
use crate::ops::OpErrorKind;
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

/// The group and topic-admin operations' errors.
pub fn op(kind: &OpErrorKind) -> ErrorCode {
    match kind {
        OpErrorKind::UnknownPartition => ErrorCode::UnknownPartition,
        OpErrorKind::InvalidBatch => ErrorCode::InvalidBatch,
        OpErrorKind::BatchTooLarge => ErrorCode::BatchTooLarge,
        OpErrorKind::OffsetOutOfRange => ErrorCode::OffsetOutOfRange,
        OpErrorKind::StorageFull => ErrorCode::StorageFull,
        OpErrorKind::StorageFailed => ErrorCode::StorageFailed,
        OpErrorKind::Corruption => ErrorCode::Corruption,
        OpErrorKind::Throttled => ErrorCode::Throttled,
        OpErrorKind::ShuttingDown => ErrorCode::ShuttingDown,
        OpErrorKind::InvalidTopic => ErrorCode::InvalidTopicConfig,
        OpErrorKind::TopicAlreadyExists => ErrorCode::TopicAlreadyExists,
        OpErrorKind::UnknownTopic => ErrorCode::UnknownTopic,
        OpErrorKind::OutOfOrderSequence => ErrorCode::OutOfOrderSequence,
        OpErrorKind::UnknownProducerId => ErrorCode::UnknownProducerId,
        OpErrorKind::ProducerFenced => ErrorCode::ProducerFenced,
        OpErrorKind::DuplicateSequence => ErrorCode::DuplicateSequence,
        OpErrorKind::InternalTopic => ErrorCode::InternalTopic,
        OpErrorKind::UnknownMemberId => ErrorCode::UnknownMemberId,
        OpErrorKind::IllegalGeneration => ErrorCode::IllegalGeneration,
        OpErrorKind::RebalanceInProgress => ErrorCode::RebalanceInProgress,
        OpErrorKind::InconsistentAssignor => ErrorCode::InconsistentAssignor,
        OpErrorKind::InvalidSessionTimeout => ErrorCode::InvalidSessionTimeout,
        OpErrorKind::GroupNotEmpty => ErrorCode::GroupNotEmpty,
        OpErrorKind::OffsetCommitRewind => ErrorCode::OffsetCommitRewind,
        OpErrorKind::GroupFull => ErrorCode::GroupFull,
        OpErrorKind::InvalidRequest => ErrorCode::InvalidRequest,
        OpErrorKind::Internal => ErrorCode::Internal,
    }
}
