//! The partition log: an ordered, append-only sequence of Kafka batches split into segment
//! files, with three named durability levels and crash recovery.
//!
//! # Durability levels
//! `appended` (offsets assigned, bytes in memory) >= `written` (the write completed: survives a
//! process crash) >= `durable` (fdatasync returned: survives power loss). The three ends are
//! kept as offsets and their order is asserted after every change. Reads see only `written`.
//!
//! # Never rewriting acknowledged bytes
//! Every flush that ends mid-block pads to the block boundary (a typed padding entry, or zeros
//! when the gap is under an entry header) and the next write starts on the next block. A write
//! therefore only ever covers blocks that hold no previously written byte, so a torn write can
//! only damage bytes that were never acknowledged. See docs/storage-format.md for the worked
//! example and the price (at most one block of padding per flush).
//!
//! # Group commit
//! `append` only copies into the write buffer; `sync` writes everything pending and issues one
//! fdatasync for all of it. A caller that appends N batches and then syncs once has committed
//! N batches with one flush. The flush policy (`sync_due`) says when a sync is owed for data
//! whose producers did not ask for durability.
//!
//! # Ownership
//! A `Log` is owned by one shard and used through `&mut self`: one operation at a time, no
//! locks. It is `!Send` when its disk is.
//!
//! # Where things are
//! This module holds the `Log` type, its configuration and what its operations return, the
//! durability-level assertions and the fail-stop state. Each role is a file of its own:
//! - `open`: opening and crash recovery (docs/storage-format.md, "Recovery");
//! - `append`: verifying a batch, assigning offsets, buffering (level appended);
//! - `cache`: the recent-batch cache, and the reader that shares it on the log's thread;
//! - `write`: flush and sync (levels written and durable), preallocation, disk-full rollback;
//! - `roll`: when a segment is due to close, and creating the next segment file;
//! - `close`: cutting a segment back to its data, and the clean close of the log;
//! - `read`: fetches by offset and lookups by timestamp;
//! - `retention`: deleting old segments and persisting the log start (`log.meta`).

// The log's roles, one file each. Every file adds methods to `Log` (its state is defined
// here, so the submodules share it without accessors); what one role calls in another is
// `pub(super)`.
mod append;
mod cache;
mod close;
mod open;
mod read;
mod retention;
mod roll;
mod write;

pub use cache::CacheReader;
pub use write::{BackgroundSync, PREALLOCATE_GROWTH_MAX};

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::path::PathBuf;

use bytes::Bytes;

use crate::disk::{BLOCK_BYTES, Disk, File};
use crate::error::AppendError;
use crate::format::Offset;
use crate::segment::Segment;

/// Name of the file holding the log start offset.
pub const LOG_META_FILE: &str = "log.meta";
/// Name of the clean-shutdown marker.
pub const CLEAN_SHUTDOWN_FILE: &str = "clean.shutdown";

/// When data that nobody asked to be durable gets an fdatasync anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// After every append.
    EveryBatch,
    /// Once this many bytes were appended since the last sync.
    Bytes(u64),
    /// Once this many milliseconds passed since the last sync (and something is pending).
    IntervalMs(u64),
}

/// Tunables of one log. Defaults follow Kafka's where Kafka has one.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Roll to a new segment before a segment would exceed this (Kafka: 1 GiB).
    pub segment_bytes_max: u64,
    /// Roll a non-empty segment older than this (Kafka: 7 days).
    pub segment_age_ms_max: Option<u64>,
    /// Delete closed segments whose newest batch is older than this (Kafka: 7 days).
    pub retention_ms: Option<u64>,
    /// Delete closed segments while the log would stay at least this big (Kafka: unlimited).
    pub retention_bytes: Option<u64>,
    /// Bytes between sparse index entries (Kafka: 4 KiB).
    pub index_interval_bytes: u32,
    /// Largest write buffer (one write call); a buffer is sized for the round of appends it
    /// serves, from 16 KiB (or this, if smaller) up to this.
    pub write_chunk_bytes: usize,
    /// Full write buffers held before `append` writes them, counted in `write_chunk_bytes`:
    /// the write queue depth.
    pub write_ahead_chunks: usize,
    /// How far ahead of the write position the active segment's file is extended with zeros,
    /// in one fallocate call, so that writes never extend the file (see `disk::File::allocate`):
    /// at least this, and as the segment grows, as much as it holds, up to
    /// [`PREALLOCATE_GROWTH_MAX`] times this. A segment closed by a roll or a clean close is
    /// cut back to its data.
    pub preallocate_bytes: u64,
    /// Recent batches kept in memory for tailing readers (at least the newest one, unless
    /// this is 0: no cache).
    pub cache_bytes_max: usize,
    /// Largest batch accepted (Kafka: message.max.bytes, about 1 MiB).
    pub batch_bytes_max: usize,
    /// Background durability for data appended without a durability request.
    pub flush_policy: FlushPolicy,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes_max: 1 << 30,
            segment_age_ms_max: Some(7 * 24 * 3600 * 1000),
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            index_interval_bytes: 4096,
            write_chunk_bytes: 1 << 20,
            write_ahead_chunks: 4,
            // The first step (later ones grow with the segment, up to 64 MiB, never past its
            // data): a fixed 32 MiB filled a 50 GB disk with 1,000 partitions of little data
            // (the broker benchmark's partitions-1000 workload hit ENOSPC).
            preallocate_bytes: 4 << 20,
            cache_bytes_max: 64 << 20,
            batch_bytes_max: 1 << 20,
            flush_policy: FlushPolicy::IntervalMs(1000),
        }
    }
}

impl LogConfig {
    fn check(&self) {
        assert!(
            self.segment_bytes_max >= 4 * BLOCK_BYTES,
            "segment_bytes_max too small"
        );
        assert!(
            self.segment_bytes_max <= u64::from(u32::MAX),
            "segment positions are u32 in the index"
        );
        assert!(self.write_chunk_bytes as u64 >= BLOCK_BYTES);
        assert!((self.write_chunk_bytes as u64).is_multiple_of(BLOCK_BYTES));
        assert!(self.write_ahead_chunks >= 1);
        assert!(self.preallocate_bytes.is_multiple_of(BLOCK_BYTES));
        assert!(self.batch_bytes_max >= schema::batch::HEADER_BYTES);
    }
}

/// What an append assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the batch's first record.
    pub base_offset: Offset,
    /// Offset of its last record.
    pub last_offset: Offset,
}

/// Batches returned by a read.
#[derive(Debug, Clone)]
pub struct Read {
    /// Whole batches, in offset order, as stored (zero-copy handles).
    pub batches: Vec<Bytes>,
    /// The offset after the last returned batch (the request's offset if none).
    pub next_offset: Offset,
    /// The end of the readable (written) log.
    pub log_end: Offset,
    /// The first offset still stored.
    pub log_start: Offset,
}

/// What retention removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Base offsets of the deleted segments.
    pub deleted_segments: Vec<Offset>,
    /// The log start offset afterwards.
    pub log_start: Offset,
}

/// What recovery did when the log was opened.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecoveryReport {
    /// True if nothing had to be scanned: the clean-shutdown marker was there, or the log is new.
    pub clean: bool,
    /// Bytes cut from the tail of the active segment (a torn, unacknowledged tail).
    pub truncated_bytes: u64,
    /// Segments whose index files were missing or damaged and rebuilt by scanning.
    pub rebuilt_indexes: Vec<Offset>,
}

/// A batch appended but not yet written.
#[derive(Debug, Clone, Copy)]
struct PendingBatch {
    base: Offset,
    last: Offset,
    position: u64,
    end_position: u64,
    max_timestamp: i64,
}

/// The write buffer of the active segment: full chunks waiting to be written, and the chunk
/// being filled. Chunks are contiguous in the file starting at `position`.
///
/// A chunk is sized for the round it serves (see [`WriteBuffer::next_chunk_bytes`]), not always
/// `write_chunk_bytes`: a partition that gets 16 KiB between flushes took a fresh 1 MiB buffer
/// each time, and with a thousand such partitions the shard cycled through a GiB of buffers
/// it touched a few pages of, each page faulted in anew (perf-log.md, 2026-12-07 evening).
struct WriteBuffer<B> {
    full: Vec<(u64, B)>,
    chunk: Option<B>,
    chunk_position: u64,
    chunk_used: usize,
    /// Bytes buffered since the last padded write (the current round).
    round_bytes: usize,
    /// Bytes the previous round buffered.
    last_round_bytes: usize,
}

/// The smallest write chunk (four blocks).
const WRITE_CHUNK_BYTES_MIN: usize = 16 << 10;

impl<B> WriteBuffer<B> {
    /// An empty buffer whose first chunk starts at `position`.
    fn new(position: u64) -> WriteBuffer<B> {
        WriteBuffer {
            full: Vec::new(),
            chunk: None,
            chunk_position: position,
            chunk_used: 0,
            round_bytes: 0,
            last_round_bytes: 0,
        }
    }

    /// The size of the next chunk, for `incoming` bytes the current append still buffers:
    /// enough for them, for what the previous round buffered, and for as much again as this
    /// round has buffered so far (so a round that outgrows the last at least doubles its
    /// capacity with each new chunk), rounded up to a power of two, within
    /// [`WRITE_CHUNK_BYTES_MIN`] and `chunk_bytes_max` (the maximum wins where it is smaller).
    /// A power of two of at least a block is a whole number of blocks, and so is the
    /// configured maximum.
    fn next_chunk_bytes(&self, incoming: usize, chunk_bytes_max: usize) -> usize {
        incoming
            .max(self.last_round_bytes)
            .max(self.round_bytes)
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX)
            .max(WRITE_CHUNK_BYTES_MIN)
            .min(chunk_bytes_max)
    }

    /// Ends a round (a padded write): the next one's first chunk is sized by this one.
    fn end_round(&mut self) {
        self.last_round_bytes = self.round_bytes;
        self.round_bytes = 0;
    }
}

/// A partition's log. See the module docs.
pub struct Log<D: Disk> {
    disk: D,
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<Offset, Segment<D::File>>,
    log_start: Offset,
    appended_end: Offset,
    written_end: Offset,
    durable_end: Offset,
    /// Position of the next write in the active segment: every byte below it is written.
    written_position: u64,
    /// The active segment's file size: its data, then the zero tail that `allocate` added
    /// ahead of the writes (at most about `preallocate_bytes`). Writes below it never change
    /// the size. It may be below `written_position` only after recovery cut a torn tail inside
    /// a block; the next write then allocates again.
    allocated_end: u64,
    /// The active segment's size changed (allocate, or the cut after a full disk) since its
    /// last fdatasync: a roll or close must sync before an index vouches for that size.
    size_unsynced: bool,
    buffer: WriteBuffer<<D::File as File>::Buffer>,
    pending: VecDeque<PendingBatch>,
    /// Shared with the [`CacheReader`]s handed out ([`Log::cache_reader`]).
    cache: cache::Shared,
    bytes_since_sync: u64,
    last_sync_ms: i64,
    /// The outcome of the background fdatasync started by [`Log::start_background_sync`] and
    /// not taken in yet.
    background: Option<std::rc::Rc<std::cell::RefCell<write::SyncOutcome>>>,
    failed: Option<String>,
}

impl<D: Disk> Log<D> {
    fn active(&self) -> &Segment<D::File> {
        self.segments
            .values()
            .next_back()
            .expect("a log always has a segment")
    }

    fn active_mut(&mut self) -> &mut Segment<D::File> {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has a segment")
    }

    /// The first offset still stored.
    pub fn log_start(&self) -> Offset {
        self.log_start
    }

    /// One past the last appended offset (level: appended).
    pub fn appended_end(&self) -> Offset {
        self.appended_end
    }

    /// A reader of the recent-batch cache for this thread, which reads while the log's owner
    /// is busy (see [`CacheReader::read`] for what it needs from its caller).
    pub fn cache_reader(&self) -> CacheReader {
        CacheReader::new(self.cache.clone())
    }

    /// One past the last written offset (level: written). Reads stop here.
    pub fn written_end(&self) -> Offset {
        self.written_end
    }

    /// One past the last durable offset (level: durable).
    pub fn durable_end(&self) -> Offset {
        self.durable_end
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_bases(&self) -> Vec<Offset> {
        self.segments.keys().copied().collect()
    }

    /// Bytes of all segments (data written, headers included).
    pub fn size_bytes(&self) -> u64 {
        self.segments
            .values()
            .map(|segment| segment.index.summary().end_position)
            .sum()
    }

    fn check_levels(&self) {
        assert!(
            self.log_start <= self.durable_end,
            "log start {} > durable {}",
            self.log_start,
            self.durable_end
        );
        assert!(
            self.durable_end <= self.written_end,
            "durable {} > written {}",
            self.durable_end,
            self.written_end
        );
        assert!(
            self.written_end <= self.appended_end,
            "written {} > appended {}",
            self.written_end,
            self.appended_end
        );
    }

    /// True once a write or fdatasync failed: the log refuses appends, flushes and syncs from
    /// then on (reads go on), and what it appended but did not make durable never will be.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    fn fail_stopped(&self) -> Result<(), AppendError> {
        match &self.failed {
            Some(reason) => Err(AppendError::Failed {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// The offsets an append error rolled back, if any: what a caller waiting on a level must fail.
pub fn rolled_back(error: &AppendError) -> Option<Range<Offset>> {
    match error {
        AppendError::StorageFull { rolled_back, .. } => Some(rolled_back.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_chunks_are_sized_for_their_round() {
        const MAX: usize = 1 << 20;
        let mut buffer = WriteBuffer::<Vec<u8>>::new(crate::format::SEGMENT_DATA_START);
        // A first small batch: the smallest chunk; a batch as big as the maximum: the maximum.
        assert_eq!(buffer.next_chunk_bytes(100, MAX), WRITE_CHUNK_BYTES_MIN);
        assert_eq!(buffer.next_chunk_bytes(MAX + 64, MAX), MAX);
        // Within a round that has buffered 40 KiB, the next chunk holds as much again.
        buffer.round_bytes = 40 << 10;
        assert_eq!(buffer.next_chunk_bytes(100, MAX), 64 << 10);
        // The next round starts with a chunk for what the last one buffered.
        buffer.end_round();
        assert_eq!((buffer.round_bytes, buffer.last_round_bytes), (0, 40 << 10));
        assert_eq!(buffer.next_chunk_bytes(100, MAX), 64 << 10);
        // A configured maximum below the minimum (tests use two blocks) wins.
        assert_eq!(buffer.next_chunk_bytes(100, 8192), 8192);
        // Every size is a whole number of blocks.
        for incoming in [1, 4095, 4097, 70_000, 600_000, 5 << 20] {
            assert!((buffer.next_chunk_bytes(incoming, MAX) as u64).is_multiple_of(BLOCK_BYTES));
        }
    }
}
