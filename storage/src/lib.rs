//! ringbus storage: the partition log. The only crate that opens files.
//!
//! A partition is a directory of segment files (`<base offset>.log`) with sparse offset and
//! time indexes, written with direct I/O through the [`disk`] seam. [`log::Log`] owns one
//! partition: it assigns offsets, buffers and writes batches, tracks the three durability
//! levels (appended <= written <= durable), recovers after a crash and enforces retention.
//!
//! Everything here is shard-local: a `Log` is owned by the shard that owns its partition and
//! is never shared across threads. The byte layouts are in [`format`] and
//! docs/storage-format.md.

pub mod disk;
pub mod error;
pub mod format;
pub mod index;
pub mod log;
pub mod segment;
pub mod small_file;

pub use error::{AppendError, Corruption, IoFailure, OpenError, ReadError, RetentionError};
pub use format::Offset;
pub use log::{
    Appended, BackgroundSync, CacheReader, FlushPolicy, Log, LogConfig, Read, RecoveryReport,
    RetentionOutcome,
};
pub use small_file::{BlobError, load_blob, remove_log_dir, store_blob};
