//! Typed errors of the partition log, one enum per operation.
//!
//! I/O failures carry the operation, the path and (where there is one) the file position, and
//! keep the original `io::Error` so callers can still see its kind (ENOSPC is
//! `io::ErrorKind::StorageFull`). The broker maps these to wire error codes in one place.

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::PathBuf;

use crate::format::Offset;

/// An I/O call that failed, with enough context to find the file and the spot.
#[derive(Debug)]
pub struct IoFailure {
    /// What we were doing ("write", "fdatasync", "read", ...).
    pub operation: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The file position, where the call had one.
    pub position: Option<u64>,
    /// The operating system's error.
    pub source: io::Error,
}

impl IoFailure {
    /// Wraps `source` with its context.
    pub fn new(
        operation: &'static str,
        path: impl Into<PathBuf>,
        position: Option<u64>,
        source: io::Error,
    ) -> IoFailure {
        IoFailure {
            operation,
            path: path.into(),
            position,
            source,
        }
    }

    /// True when the disk is full: the operation may succeed once space is freed.
    pub fn is_storage_full(&self) -> bool {
        self.source.kind() == io::ErrorKind::StorageFull
            || self.source.raw_os_error() == Some(libc::ENOSPC)
    }
}

impl fmt::Display for IoFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.operation, self.path.display())?;
        if let Some(position) = self.position {
            write!(f, " at byte {position}")?;
        }
        write!(f, ": {}", self.source)
    }
}

impl std::error::Error for IoFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Damage below the durable point: acknowledged data cannot be read back as written.
/// The partition refuses to serve rather than truncate it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "corruption in {path} at byte {position} (expected offset {expected_offset}; offsets \
     below {durable_end} were acknowledged durable, so this is not a torn tail): {reason}. \
     The partition will not serve until an operator restores or truncates it"
)]
pub struct Corruption {
    /// The segment file.
    pub path: PathBuf,
    /// Where the bad bytes start.
    pub position: u64,
    /// The offset the log expected there.
    pub expected_offset: Offset,
    /// Offsets below this are known to have been durable.
    pub durable_end: Offset,
    /// What was wrong.
    pub reason: String,
}

/// Why a log could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] IoFailure),
    /// Acknowledged data is damaged.
    #[error(transparent)]
    Corruption(#[from] Corruption),
    /// The directory holds files that contradict each other (e.g. a gap between segments).
    #[error("inconsistent log directory {path}: {reason}")]
    Inconsistent {
        /// The partition directory.
        path: PathBuf,
        /// What contradicts what.
        reason: String,
    },
}

/// Why an append, flush or sync failed. After `Io` or `Failed` the log is fail-stopped: every
/// later write returns `Failed` (an fdatasync error is never retried into a false success).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The batch is malformed; nothing was appended.
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] schema::batch::BatchError),
    /// The batch is larger than `batch_bytes_max`; nothing was appended.
    #[error("batch of {bytes} bytes exceeds the limit of {bytes_max} bytes")]
    BatchTooLarge {
        /// Size of the batch.
        bytes: usize,
        /// The configured limit.
        bytes_max: usize,
    },
    /// The disk is full. Batches in `rolled_back` were appended but never written; they are
    /// gone and their offsets will be reused. Nothing written before them was touched, and
    /// appends work again once space is freed.
    #[error("disk full, offsets {}..{} rolled back: {source}", rolled_back.start, rolled_back.end)]
    StorageFull {
        /// The offsets that were appended, not written, and are now discarded.
        rolled_back: Range<Offset>,
        /// The failed call.
        source: IoFailure,
    },
    /// A write or fdatasync failed: the log is now fail-stopped.
    #[error("log failed and stopped: {0}")]
    Io(IoFailure),
    /// The log was fail-stopped by an earlier error.
    #[error("log is fail-stopped after an earlier error: {reason}")]
    Failed {
        /// The earlier error.
        reason: String,
    },
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The offset is below the log start or above the log end.
    #[error("offset {requested} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// What was asked for.
        requested: Offset,
        /// The first offset still stored.
        log_start: Offset,
        /// The next offset to be written.
        log_end: Offset,
    },
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] IoFailure),
    /// Bytes on disk failed their checks.
    #[error(transparent)]
    Corruption(#[from] Corruption),
    /// The log was fail-stopped by an earlier error.
    #[error("log is fail-stopped after an earlier error: {reason}")]
    Failed {
        /// The earlier error.
        reason: String,
    },
}

/// Why retention could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionError {
    /// A file operation failed; the log start offset was not moved past anything still there.
    #[error(transparent)]
    Io(#[from] IoFailure),
}
