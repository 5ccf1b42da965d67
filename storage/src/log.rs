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

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

use crate::disk::{BLOCK_BYTES, Buffer, Disk, File, OpenMode, align_up};
use crate::error::{AppendError, Corruption, IoFailure, OpenError, ReadError, RetentionError};
use crate::format::{
    self, CleanShutdown, ENTRY_CRC_BATCH_PREFIX_BYTES, ENTRY_HEADER_BYTES, EntryHeader, EntryKind,
    Offset, SEGMENT_DATA_START, SegmentHeader,
};
use crate::index::SegmentIndex;
use crate::segment::{
    self, ChunkReader, Segment, Step, index_file_name, log_file_name, time_index_file_name,
};
use crate::small_file::{TEMP_SUFFIX, read_small_file, write_small_file};

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
    /// Size of one write buffer (one write call).
    pub write_chunk_bytes: usize,
    /// Full write buffers held before `append` writes them: the write queue depth.
    pub write_ahead_chunks: usize,
    /// How far ahead of the write position the active segment's file is extended with zeros,
    /// in one fallocate call, so that writes never extend the file (see `disk::File::allocate`).
    /// A segment closed by a roll or a clean close is cut back to its data.
    pub preallocate_bytes: u64,
    /// Recent batches kept in memory for tailing readers.
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
            // Reserved per partition: 32 MiB filled a 50 GB disk with 1,000 partitions of
            // little data (the broker benchmark's partitions-1000 workload hit ENOSPC). One
            // fallocate per 4 MiB written costs nothing measurable.
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

/// A recent batch kept for tailing readers.
struct CachedBatch {
    base: Offset,
    last: Offset,
    bytes: Bytes,
}

/// The write buffer of the active segment: full chunks waiting to be written, and the chunk
/// being filled. Chunks are contiguous in the file starting at `position`.
struct WriteBuffer<B> {
    full: Vec<(u64, B)>,
    chunk: Option<B>,
    chunk_position: u64,
    chunk_used: usize,
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
    buffer: WriteBuffer<<D::File as File>::Buffer>,
    pending: VecDeque<PendingBatch>,
    cache: VecDeque<CachedBatch>,
    cache_bytes: usize,
    bytes_since_sync: u64,
    last_sync_ms: i64,
    failed: Option<String>,
}

impl<D: Disk> Log<D> {
    /// Opens (or creates) the log in `dir`, recovering from a crash if the last close was not
    /// clean. `now_ms` is the wall clock, used for a new segment's creation time.
    pub async fn open(
        disk: D,
        dir: &Path,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<(Log<D>, RecoveryReport), OpenError> {
        config.check();
        let io = |operation, path: &Path, e| IoFailure::new(operation, path, None, e);
        disk.create_dir_all(dir)
            .await
            .map_err(|e| io("create directory", dir, e))?;
        let names = disk
            .list_dir(dir)
            .await
            .map_err(|e| io("list directory", dir, e))?;
        let mut report = RecoveryReport::default();

        // Leftovers of an interrupted atomic write are never the truth.
        for name in names.iter().filter(|name| name.ends_with(TEMP_SUFFIX)) {
            let path = dir.join(name);
            disk.remove(&path)
                .await
                .map_err(|e| io("remove temporary", &path, e))?;
        }

        let meta_start = match read_small_file(&disk, &dir.join(LOG_META_FILE)).await? {
            None => None,
            Some(bytes) => {
                Some(
                    format::decode_log_meta(&bytes).map_err(|e| OpenError::Inconsistent {
                        path: dir.join(LOG_META_FILE),
                        reason: format!("log.meta is damaged: {e}"),
                    })?,
                )
            }
        };
        let clean = match read_small_file(&disk, &dir.join(CLEAN_SHUTDOWN_FILE)).await? {
            None => None,
            // A damaged marker only costs a scan.
            Some(bytes) => CleanShutdown::decode(&bytes).ok(),
        };

        let mut bases: Vec<Offset> = names
            .iter()
            .filter_map(|name| segment::parse_log_file_name(name))
            .collect();
        bases.sort();
        let log_start = meta_start.unwrap_or(bases.first().copied().unwrap_or(Offset(0)));

        // Finish a retention that persisted the new start but crashed before deleting.
        let mut stale = 0;
        while stale + 1 < bases.len() && bases[stale + 1] <= log_start {
            stale += 1;
        }
        for base in bases.drain(..stale) {
            remove_segment_files(&disk, dir, base).await?;
        }
        if stale > 0 {
            disk.sync_dir(dir)
                .await
                .map_err(|e| io("fsync directory", dir, e))?;
        }

        let mut log = Log {
            disk,
            dir: dir.to_path_buf(),
            buffer: WriteBuffer {
                full: Vec::new(),
                chunk: None,
                chunk_position: SEGMENT_DATA_START,
                chunk_used: 0,
            },
            config,
            segments: BTreeMap::new(),
            log_start,
            appended_end: log_start,
            written_end: log_start,
            durable_end: log_start,
            written_position: SEGMENT_DATA_START,
            // A new segment is its header block; recovery below reads the real size.
            allocated_end: SEGMENT_DATA_START,
            pending: VecDeque::new(),
            cache: VecDeque::new(),
            cache_bytes: 0,
            bytes_since_sync: 0,
            last_sync_ms: now_ms,
            failed: None,
        };

        if bases.is_empty() {
            log.create_segment(log_start, now_ms).await?;
            log.write_log_meta().await?;
            // A new log had nothing to recover.
            report.clean = true;
            return Ok((log, report));
        }

        // The marker must go before anything new is written: from here on, the active
        // segment's index files on disk go stale.
        let clean_path = dir.join(CLEAN_SHUTDOWN_FILE);
        if clean.is_some() {
            log.disk
                .remove(&clean_path)
                .await
                .map_err(|e| io("remove", &clean_path, e))?;
            log.disk
                .sync_dir(dir)
                .await
                .map_err(|e| io("fsync directory", dir, e))?;
        }
        let active_base = *bases.last().expect("non-empty");
        let clean = clean.filter(|marker| marker.active_base == active_base);
        report.clean = clean.is_some();

        for (i, base) in bases.iter().copied().enumerate() {
            let next_base = bases.get(i + 1).copied();
            let is_active = next_base.is_none();
            let segment = log
                .open_segment(base, next_base, is_active && clean.is_none(), &mut report)
                .await?;
            log.segments.insert(base, segment);
        }
        if let Some(marker) = clean {
            let summary = log.active().index.summary();
            if summary.end_offset != marker.end_offset
                || align_up(summary.end_position) != marker.end_position
            {
                return Err(OpenError::Inconsistent {
                    path: clean_path,
                    reason: format!(
                        "clean-shutdown marker says end offset {} at byte {}, index says {} at {}",
                        marker.end_offset,
                        marker.end_position,
                        summary.end_offset,
                        summary.end_position
                    ),
                });
            }
        }

        let summary = log.active().index.summary();
        let end = summary.end_offset;
        log.appended_end = end;
        log.written_end = end;
        log.durable_end = end;
        log.written_position = align_up(summary.end_position);
        log.buffer.chunk_position = log.written_position;
        // The active segment may keep a preallocated zero tail (after a crash, or a clean
        // marker over one): appends go on into it without another fallocate.
        let active = log.active();
        log.allocated_end = active
            .file
            .size()
            .await
            .map_err(|e| IoFailure::new("size", &active.path, None, e))?;
        if log.log_start > end {
            return Err(OpenError::Inconsistent {
                path: dir.to_path_buf(),
                reason: format!("log start {} is past the log end {end}", log.log_start),
            });
        }
        // What survived a process crash may still sit in the device's volatile cache: make it
        // durable before calling it durable.
        if !report.clean {
            let active = log.active();
            active
                .file
                .sync()
                .await
                .map_err(|e| IoFailure::new("fdatasync", &active.path, None, e))?;
        }
        Ok((log, report))
    }

    async fn open_segment(
        &mut self,
        base: Offset,
        next_base: Option<Offset>,
        scan_tail: bool,
        report: &mut RecoveryReport,
    ) -> Result<Segment<D::File>, OpenError> {
        let path = self.dir.join(log_file_name(base));
        let file = self
            .disk
            .open(&path, OpenMode::Existing)
            .await
            .map_err(|e| IoFailure::new("open", &path, None, e))?;
        let size = file
            .size()
            .await
            .map_err(|e| IoFailure::new("size", &path, None, e))?;
        let head = file
            .read_at(0, format::SEGMENT_HEADER_BYTES)
            .await
            .map_err(|e| IoFailure::new("read", &path, Some(0), e))?;
        let header = match SegmentHeader::decode(&head) {
            Ok(header) if header.base_offset == base => header,
            Ok(header) => {
                return Err(OpenError::Inconsistent {
                    path,
                    reason: format!("header says base offset {}", header.base_offset),
                });
            }
            // A segment created but whose header never became durable holds no data that was
            // ever acknowledged (the header is synced before the first append). Only the
            // newest segment can be in that state.
            Err(error) if next_base.is_none() && scan_tail && size <= SEGMENT_DATA_START => {
                tracing::warn!(path = %path.display(), %error,
                    "segment header is damaged on the newest segment after a crash: rewriting it");
                let header = SegmentHeader {
                    base_offset: base,
                    created_ms: self.last_sync_ms,
                };
                write_segment_header(&file, &path, header).await?;
                header
            }
            Err(error) => {
                return Err(Corruption {
                    path,
                    position: 0,
                    expected_offset: base,
                    durable_end: base,
                    reason: format!("segment header: {error}"),
                }
                .into());
            }
        };

        let mut index = None;
        if !scan_tail {
            index = self.load_index(base).await?;
            if index.is_none() {
                report.rebuilt_indexes.push(base);
            }
        }
        let index = match index {
            // A trusted index must not claim more data than the file holds: that would be
            // acknowledged data gone missing, found now rather than by a failing fetch.
            Some(index) if index.summary().end_position > size => {
                return Err(Corruption {
                    path,
                    position: size,
                    expected_offset: index.summary().end_offset,
                    durable_end: index.summary().end_offset,
                    reason: format!(
                        "segment is {size} bytes but its index says data runs to byte {}",
                        index.summary().end_position
                    ),
                }
                .into());
            }
            // A closed segment's index must end where its successor begins; if not, the index
            // is stale (e.g. written before a failed roll) and the segment is scanned instead.
            Some(index) if next_base.is_some_and(|next| index.summary().end_offset != next) => {
                report.rebuilt_indexes.push(base);
                self.scan_segment(base, &path, &file, size, next_base, report)
                    .await?
            }
            Some(index) => index,
            None => {
                self.scan_segment(base, &path, &file, size, next_base, report)
                    .await?
            }
        };
        Ok(Segment {
            base,
            path,
            file,
            index,
            created_ms: header.created_ms,
        })
    }

    /// Scans a segment to rebuild its index, deciding for the newest one between a zero tail
    /// (kept), a torn tail (truncated) and corruption (refused).
    async fn scan_segment(
        &self,
        base: Offset,
        path: &Path,
        file: &D::File,
        size: u64,
        next_base: Option<Offset>,
        report: &mut RecoveryReport,
    ) -> Result<SegmentIndex, OpenError> {
        let path = path.to_path_buf();
        let interval = self.config.index_interval_bytes;
        let mut index = SegmentIndex::new(base, SEGMENT_DATA_START, interval);
        let mut reader = ChunkReader::new(file, size, segment::scan_chunk_bytes());
        let end = segment::scan(&mut reader, &mut index, SEGMENT_DATA_START, base).await?;
        let complete = end.invalid.is_none() && end.valid_end >= size;
        // Zeros after a closed segment's data (a preallocated tail: a roll cuts it before the
        // next segment exists, but a segment left by an older version or by a filesystem that
        // lost the cut is still whole) pass the rule below: the scan ends at the first all-zero
        // entry header at a block boundary, and only the offset it ends at is checked.
        match next_base {
            // A closed segment was synced before the next one was created: all of it
            // is durable, so any stop short of the next base is corruption.
            Some(next_base) if end.next_offset != next_base => {
                return Err(Corruption {
                    path,
                    position: end.invalid_position,
                    expected_offset: end.next_offset,
                    durable_end: next_base,
                    reason: end.invalid.unwrap_or_else(|| {
                        format!(
                            "segment ends at offset {}, the next segment starts at {next_base}",
                            end.next_offset
                        )
                    }),
                }
                .into());
            }
            Some(_) => {}
            None if complete => {}
            None => {
                self.check_active_tail(&path, file, &mut reader, &mut index, end, report)
                    .await?;
            }
        }
        Ok(index)
    }

    /// Decides what follows the end of the newest segment's scan: a preallocated zero tail
    /// (kept, the end of data), a torn tail of unacknowledged writes (cut), or corruption of
    /// durable data (refused). See docs/storage-format.md, "Recovery", step 5.
    async fn check_active_tail(
        &self,
        path: &Path,
        file: &D::File,
        reader: &mut ChunkReader<'_, D::File>,
        index: &mut SegmentIndex,
        end: segment::ScanEnd,
        report: &mut RecoveryReport,
    ) -> Result<(), OpenError> {
        let tail = segment::probe_tail(reader, end.invalid_position).await?;
        if tail.durable_hint > end.next_offset {
            return Err(Corruption {
                path: path.to_path_buf(),
                position: end.invalid_position,
                expected_offset: end.next_offset,
                durable_end: tail.durable_hint,
                reason: end.invalid.unwrap_or_else(|| "data ends early".to_string()),
            }
            .into());
        }
        if end.invalid.is_none() && tail.nonzero_end <= end.invalid_position {
            // Nothing but zeros from the end of the data to the end of the file: the tail that
            // `allocate` added ahead of the writes (or unsynced writes that a power loss
            // dropped whole, which read the same). Appends continue into it.
            tracing::debug!(
                path = %path.display(),
                data_end = end.valid_end,
                zero_tail_bytes = reader.file_size().saturating_sub(end.valid_end),
                "the newest segment ends in a zero tail"
            );
            return Ok(());
        }
        let cut = truncation_point(reader, end.valid_end).await?;
        // Torn bytes only: zeros past the last non-zero block were never data.
        let truncated = tail.nonzero_end.saturating_sub(cut);
        tracing::warn!(
            path = %path.display(),
            valid_end = end.valid_end,
            cut,
            truncated_bytes = truncated,
            next_offset = %end.next_offset,
            reason = end.invalid.as_deref().unwrap_or("trailing bytes"),
            "truncating the torn, unacknowledged tail of the log"
        );
        file.truncate(cut)
            .await
            .map_err(|e| IoFailure::new("truncate", path, Some(cut), e))?;
        index.add_padding(cut);
        report.truncated_bytes += truncated;
        Ok(())
    }

    async fn load_index(&self, base: Offset) -> Result<Option<SegmentIndex>, OpenError> {
        let offsets = read_small_file(&self.disk, &self.dir.join(index_file_name(base))).await?;
        let times = read_small_file(&self.disk, &self.dir.join(time_index_file_name(base))).await?;
        let (Some(offsets), Some(times)) = (offsets, times) else {
            return Ok(None);
        };
        match SegmentIndex::decode(base, self.config.index_interval_bytes, &offsets, &times) {
            Ok(index) => Ok(Some(index)),
            Err(error) => {
                tracing::warn!(segment = %base, %error, "index damaged: rebuilding from the segment");
                Ok(None)
            }
        }
    }

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

    fn fail_stopped(&self) -> Result<(), AppendError> {
        match &self.failed {
            Some(reason) => Err(AppendError::Failed {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Appends one batch: validates it, assigns its offsets (rewriting only baseOffset) and
    /// buffers it (level: appended). May roll the segment or write full buffers first.
    pub async fn append(&mut self, batch: BytesMut, now_ms: i64) -> Result<Appended, AppendError> {
        self.fail_stopped()?;
        // A batch must also fit an empty segment (as Kafka refuses batches above segment.bytes):
        // an empty segment's data starts block-aligned after its header block, so the entry
        // and the padding of its flush end by segment_bytes_max.
        let fits_segment = (self.config.segment_bytes_max
            - SEGMENT_DATA_START
            - ENTRY_HEADER_BYTES as u64) as usize;
        let bytes_max = self.config.batch_bytes_max.min(fits_segment);
        if batch.len() > bytes_max {
            return Err(AppendError::BatchTooLarge {
                bytes: batch.len(),
                bytes_max,
            });
        }
        // Walk the records too: the header alone can claim any record count, and offsets
        // are assigned from it.
        let header = schema::batch::verify_with_records(&batch)?;
        let entry_bytes = (ENTRY_HEADER_BYTES + batch.len()) as u64;
        let record_span = u64::try_from(header.last_offset_delta).expect("verified >= 0") + 1;
        if self.roll_due(entry_bytes, record_span, now_ms) {
            self.roll(now_ms).await?;
        }

        let mut batch = batch;
        let base = self.appended_end;
        let last = base.plus(record_span - 1);
        schema::batch::set_base_offset(&mut batch, i64::try_from(base.0).expect("offset < 2^63"));
        let batch = batch.freeze();

        let mut entry_header = [0u8; ENTRY_HEADER_BYTES];
        EntryHeader {
            kind: EntryKind::Batch,
            payload_bytes: u32::try_from(batch.len()).expect("batch_bytes_max < 4 GiB"),
            durable_end_hint: self.durable_end,
        }
        .encode(&batch[..ENTRY_CRC_BATCH_PREFIX_BYTES], &mut entry_header);
        // Readers skip a block's last bytes when an entry header cannot fit there (see
        // segment.rs): the writer must leave that gap as zeros too.
        let gap = BLOCK_BYTES
            - (self.buffer.chunk_position + self.buffer.chunk_used as u64) % BLOCK_BYTES;
        if gap < ENTRY_HEADER_BYTES as u64 {
            self.buffer_bytes(&[0u8; ENTRY_HEADER_BYTES][..gap as usize]);
        }
        let position = self.buffer.chunk_position + self.buffer.chunk_used as u64;
        self.buffer_bytes(&entry_header);
        self.buffer_bytes(&batch);
        self.pending.push_back(PendingBatch {
            base,
            last,
            position,
            end_position: position + entry_bytes,
            max_timestamp: header.max_timestamp,
        });
        self.cache_insert(base, last, batch);
        self.appended_end = last.plus(1);
        self.bytes_since_sync += entry_bytes;
        self.check_levels();

        if self.buffer.full.len() >= self.config.write_ahead_chunks {
            self.write(false).await?;
        }
        Ok(Appended {
            base_offset: base,
            last_offset: last,
        })
    }

    fn roll_due(&self, entry_bytes: u64, record_span: u64, now_ms: i64) -> bool {
        let active = self.active();
        let empty = active.index.summary().end_offset == self.appended_end
            && self.pending.is_empty()
            && active.base == self.appended_end;
        if empty {
            return false;
        }
        let end = self.buffer.chunk_position + self.buffer.chunk_used as u64;
        // Worst case the next flush pads to a block boundary after this entry.
        let too_big = align_up(end + entry_bytes) > self.config.segment_bytes_max;
        let too_old = self
            .config
            .segment_age_ms_max
            .is_some_and(|age| now_ms.saturating_sub(active.created_ms) >= age as i64);
        // The index keeps offsets relative to the segment base in a u32.
        let too_many_offsets =
            self.appended_end.0 + record_span - active.base.0 > u64::from(u32::MAX);
        too_big || too_old || too_many_offsets
    }

    /// Copies bytes into the write buffer, starting new chunks as they fill.
    fn buffer_bytes(&mut self, mut bytes: &[u8]) {
        let chunk_bytes = self.config.write_chunk_bytes;
        while !bytes.is_empty() {
            if self.buffer.chunk.is_none() {
                // Unfilled: appends fill it front to back, and `write` zeroes and pads
                // whatever a flush leaves of the last block before cutting the rest off.
                let chunk = self.active().file.alloc_buffer_unfilled(chunk_bytes);
                self.buffer.chunk = Some(chunk);
            }
            let used = self.buffer.chunk_used;
            let take = bytes.len().min(chunk_bytes - used);
            let chunk = self.buffer.chunk.as_mut().expect("allocated above");
            chunk.as_mut()[used..used + take].copy_from_slice(&bytes[..take]);
            self.buffer.chunk_used += take;
            bytes = &bytes[take..];
            if self.buffer.chunk_used == chunk_bytes {
                let full = self.buffer.chunk.take().expect("full chunk");
                self.buffer.full.push((self.buffer.chunk_position, full));
                self.buffer.chunk_position += chunk_bytes as u64;
                self.buffer.chunk_used = 0;
            }
        }
    }

    fn cache_insert(&mut self, base: Offset, last: Offset, bytes: Bytes) {
        self.cache_bytes += bytes.len();
        self.cache.push_back(CachedBatch { base, last, bytes });
        while self.cache_bytes > self.config.cache_bytes_max {
            let Some(evicted) = self.cache.pop_front() else {
                break;
            };
            self.cache_bytes -= evicted.bytes.len();
        }
    }

    /// Writes everything appended so far (level: written), padding the last block.
    pub async fn flush(&mut self) -> Result<Offset, AppendError> {
        self.fail_stopped()?;
        self.write(true).await?;
        Ok(self.written_end)
    }

    /// Writes everything appended so far and fdatasyncs it (level: durable). One call commits
    /// every batch appended before it: this is the group commit.
    pub async fn sync(&mut self, now_ms: i64) -> Result<Offset, AppendError> {
        self.fail_stopped()?;
        self.write(true).await?;
        if self.durable_end == self.written_end {
            return Ok(self.durable_end);
        }
        self.fdatasync_active(now_ms).await
    }

    /// Writes everything appended, cuts the active segment back to its data (dropping the
    /// preallocated zero tail), and makes both durable with one fdatasync: what a segment
    /// needs before it is closed by a roll or a clean close. The cut is block-aligned
    /// (`written_position`), so it never makes the filesystem rewrite a block holding data.
    async fn sync_and_trim(&mut self, now_ms: i64) -> Result<Offset, AppendError> {
        self.fail_stopped()?;
        self.write(true).await?;
        let trim = self.allocated_end > self.written_position;
        if trim {
            let position = self.written_position;
            let active = self.active();
            if let Err(e) = active.file.truncate(position).await {
                let failure = IoFailure::new("truncate", &active.path, Some(position), e);
                self.failed = Some(failure.to_string());
                return Err(AppendError::Io(failure));
            }
            self.allocated_end = position;
        }
        if !trim && self.durable_end == self.written_end {
            return Ok(self.durable_end);
        }
        self.fdatasync_active(now_ms).await
    }

    /// fdatasync of the active segment after a write: everything written becomes durable.
    async fn fdatasync_active(&mut self, now_ms: i64) -> Result<Offset, AppendError> {
        let target = self.written_end;
        let active = self.active();
        if let Err(e) = active.file.sync().await {
            // After a failed fdatasync the kernel may have dropped the dirty state: retrying
            // could report success for data that is gone. Stop this log.
            let failure = IoFailure::new("fdatasync", &active.path, None, e);
            self.failed = Some(failure.to_string());
            return Err(AppendError::Io(failure));
        }
        self.durable_end = target;
        self.bytes_since_sync = 0;
        self.last_sync_ms = now_ms;
        self.check_levels();
        Ok(self.durable_end)
    }

    /// True when the flush policy owes a sync for data appended without one.
    pub fn sync_due(&self, now_ms: i64) -> bool {
        if self.appended_end == self.durable_end {
            return false;
        }
        match self.config.flush_policy {
            FlushPolicy::EveryBatch => true,
            FlushPolicy::Bytes(bytes) => self.bytes_since_sync >= bytes,
            FlushPolicy::IntervalMs(ms) => now_ms.saturating_sub(self.last_sync_ms) >= ms as i64,
        }
    }

    /// Writes full chunks (and with `pad`, the partial one too) to the active segment.
    async fn write(&mut self, pad: bool) -> Result<(), AppendError> {
        if pad && self.buffer.chunk_used > 0 {
            let used = self.buffer.chunk_used;
            let end = self.buffer.chunk_position + used as u64;
            let padded = usize::try_from(align_up(end) - self.buffer.chunk_position).expect("fits");
            let mut chunk = self.buffer.chunk.take().expect("used > 0");
            // The chunk was allocated unfilled: every byte written must be set here.
            let gap = &mut chunk.as_mut()[used..padded];
            gap.fill(0);
            format::encode_padding(gap, self.durable_end);
            // write_at writes whole buffers: the unused tail is cut off, not copied around.
            chunk.truncate(padded);
            self.buffer.full.push((self.buffer.chunk_position, chunk));
            self.buffer.chunk_position += padded as u64;
            self.buffer.chunk_used = 0;
        }
        if self.buffer.full.is_empty() {
            return Ok(());
        }
        let writes: Vec<(u64, <D::File as File>::Buffer)> = self.buffer.full.drain(..).collect();
        let first = writes[0].0;
        assert_eq!(first, self.written_position, "writes must be contiguous");
        let end = writes
            .last()
            .map(|(position, buffer)| position + buffer.as_ref().len() as u64)
            .expect("non-empty");

        // Extend the file with zeros before writing past its size: a write inside the size
        // is an overwrite of allocated blocks, which io_uring completes without a kernel worker
        // thread. The zero tail this leaves past `end` is shorter than `preallocate_bytes`
        // (`allocated_end < end` here), which bounds what recovery probes after a crash.
        if end > self.allocated_end {
            let target = align_up(end.max(self.allocated_end + self.config.preallocate_bytes))
                .min(align_up(self.config.segment_bytes_max).max(end));
            let active = self.active();
            if let Err(e) = active.file.allocate(target).await {
                let failure = IoFailure::new("fallocate", &active.path, Some(target), e);
                return Err(self.write_failed(first, failure).await);
            }
            self.allocated_end = target;
        }

        let active = self.active();
        let results = join_all(
            writes
                .into_iter()
                .map(|(position, buffer)| async move {
                    (position, active.file.write_at(buffer, position).await)
                })
                .collect(),
        )
        .await;
        let mut failed: Option<(u64, std::io::Error)> = None;
        for (position, result) in results {
            if let Err(e) = result
                && failed.as_ref().is_none_or(|(first, _)| position < *first)
            {
                failed = Some((position, e));
            }
        }
        if let Some((position, e)) = failed {
            let failure = IoFailure::new("write", &self.active().path, Some(position), e);
            return Err(self.write_failed(position, failure).await);
        }
        self.written_position = end;
        self.mark_written(end);
        Ok(())
    }

    /// Moves pending batches that end at or below `position` to the written level.
    fn mark_written(&mut self, position: u64) {
        while let Some(batch) = self.pending.front().copied() {
            if batch.end_position > position {
                break;
            }
            self.pending.pop_front();
            self.active_mut().index.add_batch(
                batch.base,
                batch.last,
                batch.position,
                batch.end_position,
                batch.max_timestamp,
            );
            self.written_end = batch.last.plus(1);
        }
        if self.pending.is_empty() && self.buffer.chunk_used == 0 {
            // Everything up to the buffer's start is written: the padding is part of the data.
            let to = self.buffer.chunk_position.min(position);
            self.active_mut().index.add_padding(to);
        }
        self.check_levels();
    }

    /// Handles a failed write or fallocate whose first failing byte is `position`. A full disk
    /// rolls the unwritten batches back (they were never acknowledged past `appended`) and
    /// truncates whatever part of them reached the file, so appends can resume once space is
    /// freed. Any other error fail-stops the log.
    async fn write_failed(&mut self, position: u64, failure: IoFailure) -> AppendError {
        if !failure.is_storage_full() {
            self.failed = Some(failure.to_string());
            return AppendError::Io(failure);
        }
        // Batches wholly below the failing write did reach the file.
        self.mark_written(position);
        let keep = self
            .pending
            .front()
            .map(|batch| batch.position)
            .unwrap_or(position)
            .min(self.buffer.chunk_position);
        let rolled_back = self.written_end..self.appended_end;
        let active = self.active();
        let path = active.path.clone();
        if let Err(e) = active.file.truncate(keep).await {
            let failure = IoFailure::new("truncate", &path, Some(keep), e);
            self.failed = Some(failure.to_string());
            return AppendError::Io(failure);
        }
        tracing::warn!(path = %path.display(), rolled_back_start = %rolled_back.start,
            rolled_back_end = %rolled_back.end, "disk full: rolled back unwritten batches");
        self.pending.clear();
        self.buffer.full.clear();
        self.buffer.chunk = None;
        self.buffer.chunk_used = 0;
        self.buffer.chunk_position = align_up(keep);
        self.written_position = self.buffer.chunk_position;
        self.allocated_end = keep;
        self.appended_end = self.written_end;
        while self
            .cache
            .back()
            .is_some_and(|batch| batch.base >= self.written_end)
        {
            let dropped = self.cache.pop_back().expect("checked");
            self.cache_bytes -= dropped.bytes.len();
        }
        self.active_mut().index.add_padding(keep);
        self.check_levels();
        AppendError::StorageFull {
            rolled_back,
            source: failure,
        }
    }

    /// Closes the active segment (sync, cut its zero tail, index files) and starts a new one at
    /// the log end. The cut is durable before the next segment is created, so a closed segment
    /// holds exactly its data; a crash before that leaves it the newest segment, whose zero
    /// tail recovery accepts.
    async fn roll(&mut self, now_ms: i64) -> Result<(), AppendError> {
        self.sync_and_trim(now_ms).await?;
        let active = self.active();
        let base = active.base;
        let (offsets, times) = active.index.encode();
        let result = async {
            write_small_file(&self.disk, &self.dir, &index_file_name(base), &offsets).await?;
            write_small_file(&self.disk, &self.dir, &time_index_file_name(base), &times).await?;
            self.create_segment(self.appended_end, now_ms).await
        }
        .await;
        if let Err(failure) = result {
            // A full disk leaves the log appending to this segment, unless cleaning up after
            // the failed roll failed too (create_segment stopped the log then).
            if failure.is_storage_full() && self.failed.is_none() {
                return Err(AppendError::StorageFull {
                    rolled_back: self.appended_end..self.appended_end,
                    source: failure,
                });
            }
            self.failed = Some(failure.to_string());
            return Err(AppendError::Io(failure));
        }
        self.written_position = SEGMENT_DATA_START;
        self.allocated_end = SEGMENT_DATA_START;
        self.buffer.chunk_position = SEGMENT_DATA_START;
        Ok(())
    }

    /// Creates, syncs and registers a segment starting at `base`.
    async fn create_segment(&mut self, base: Offset, now_ms: i64) -> Result<(), IoFailure> {
        let path = self.dir.join(log_file_name(base));
        let file = match self.disk.open(&path, OpenMode::CreateNew).await {
            Ok(file) => file,
            // A previous roll to this base crashed before anything was appended to it.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                self.disk
                    .remove(&path)
                    .await
                    .map_err(|e| IoFailure::new("remove", &path, None, e))?;
                self.disk
                    .open(&path, OpenMode::CreateNew)
                    .await
                    .map_err(|e| IoFailure::new("create", &path, None, e))?
            }
            Err(e) => return Err(IoFailure::new("create", &path, None, e)),
        };
        let header = SegmentHeader {
            base_offset: base,
            created_ms: now_ms,
        };
        let created = async {
            write_segment_header(&file, &path, header).await?;
            self.disk
                .sync_dir(&self.dir)
                .await
                .map_err(|e| IoFailure::new("fsync directory", &self.dir, None, e))
        }
        .await;
        if let Err(failure) = created {
            // A newer segment left behind would become the active segment on the next open
            // and hide every offset appended to the current one since: remove it, and make the
            // removal durable before the current one takes another append (a crash may
            // otherwise keep the creation and drop the removal: directory operations reach
            // the disk in order, any prefix of them).
            let _ = file.close().await;
            let removed = async {
                self.disk
                    .remove(&path)
                    .await
                    .map_err(|e| IoFailure::new("remove half-created segment", &path, None, e))?;
                self.disk
                    .sync_dir(&self.dir)
                    .await
                    .map_err(|e| IoFailure::new("fsync directory", &self.dir, None, e))
            }
            .await;
            if let Err(cleanup) = removed {
                // The current segment must take no more appends: stop the log.
                tracing::error!(path = %path.display(), error = %cleanup,
                    "could not remove a half-created segment durably: stopping the log");
                self.failed = Some(cleanup.to_string());
                return Err(cleanup);
            }
            return Err(failure);
        }
        self.segments.insert(
            base,
            Segment {
                base,
                path,
                file,
                index: SegmentIndex::new(
                    base,
                    SEGMENT_DATA_START,
                    self.config.index_interval_bytes,
                ),
                created_ms: now_ms,
            },
        );
        Ok(())
    }

    async fn write_log_meta(&self) -> Result<(), IoFailure> {
        write_small_file(
            &self.disk,
            &self.dir,
            LOG_META_FILE,
            &format::encode_log_meta(self.log_start),
        )
        .await
    }

    /// Reads whole batches from `from` until about `bytes_max` bytes (at least one batch if
    /// any is readable). Only written data is returned.
    pub async fn read(&self, from: Offset, bytes_max: usize) -> Result<Read, ReadError> {
        if let Some(reason) = &self.failed {
            return Err(ReadError::Failed {
                reason: reason.clone(),
            });
        }
        let log_end = self.written_end;
        if from < self.log_start || from > log_end {
            return Err(ReadError::OffsetOutOfRange {
                requested: from,
                log_start: self.log_start,
                log_end,
            });
        }
        let mut out = Read {
            batches: Vec::new(),
            next_offset: from,
            log_end,
            log_start: self.log_start,
        };
        let mut budget = bytes_max;
        let cache_hit = self.cache.front().is_some_and(|batch| batch.base <= from);
        if cache_hit {
            let start = self.cache.partition_point(|batch| batch.last < from);
            for batch in self.cache.range(start..) {
                if batch.base >= log_end || (!out.batches.is_empty() && batch.bytes.len() > budget)
                {
                    break;
                }
                budget = budget.saturating_sub(batch.bytes.len());
                out.batches.push(batch.bytes.clone());
                out.next_offset = batch.last.plus(1);
            }
            return Ok(out);
        }
        // From the segment holding `from` (the last one starting at or before it) onwards.
        let first = self
            .segments
            .range(..=from)
            .next_back()
            .map_or(self.log_start, |(base, _)| *base);
        for segment in self.segments.range(first..).map(|(_, segment)| segment) {
            let summary = segment.index.summary();
            if out.next_offset >= summary.end_offset {
                continue;
            }
            let start = segment
                .index
                .lookup_offset(out.next_offset)
                .map(|hit| (hit.position, hit.offset))
                .unwrap_or((SEGMENT_DATA_START, segment.base));
            let done =
                read_segment(segment, start, summary.end_position, &mut out, &mut budget).await?;
            if done {
                break;
            }
        }
        Ok(out)
    }

    /// The offset of the first batch whose max timestamp is at or after `timestamp_ms`, or
    /// None if every written batch is older (Kafka's ListOffsets by timestamp).
    pub async fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<Offset>, ReadError> {
        if let Some(reason) = &self.failed {
            return Err(ReadError::Failed {
                reason: reason.clone(),
            });
        }
        for segment in self.segments.values() {
            let summary = segment.index.summary();
            if summary.max_timestamp < timestamp_ms || summary.end_offset == segment.base {
                continue;
            }
            let (mut position, mut expected) = segment
                .index
                .lookup_time(timestamp_ms)
                .map(|hit| (hit.position, hit.offset))
                .unwrap_or((SEGMENT_DATA_START, segment.base));
            let mut reader = ChunkReader::new(&segment.file, summary.end_position, 64 << 10);
            loop {
                match reader.step(position, expected).await? {
                    Step::Batch(batch) => {
                        if batch.max_timestamp >= timestamp_ms {
                            return Ok(Some(batch.base_offset.max(self.log_start)));
                        }
                        position = batch.end_position;
                        expected = batch.last_offset.plus(1);
                    }
                    Step::Skip { next } => position = next,
                    Step::End => break,
                    Step::Invalid { reason } => {
                        return Err(corruption_on_read(segment, position, expected, reason));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Deletes closed segments past the retention limits, oldest first; never the active one.
    /// The new log start offset is made durable before any file is removed.
    pub async fn enforce_retention(
        &mut self,
        now_ms: i64,
    ) -> Result<RetentionOutcome, RetentionError> {
        self.delete_closed_segments(now_ms, None).await
    }

    /// Deletes the closed segments whose every offset is below `offset` (and any past the
    /// retention limits), oldest first; never the active one. For a log whose owner keeps
    /// what those segments said elsewhere (a snapshot of the state they build up), so the log
    /// does not grow forever. The log start moves to the first remaining segment's base, which
    /// is at or below `offset`: whole segments only, so reads never start mid-segment.
    pub async fn delete_before(
        &mut self,
        offset: Offset,
        now_ms: i64,
    ) -> Result<RetentionOutcome, RetentionError> {
        self.delete_closed_segments(now_ms, Some(offset)).await
    }

    async fn delete_closed_segments(
        &mut self,
        now_ms: i64,
        below: Option<Offset>,
    ) -> Result<RetentionOutcome, RetentionError> {
        let mut total = self.size_bytes();
        let mut deleted = Vec::new();
        let bases: Vec<Offset> = self.segments.keys().copied().collect();
        let closed: Vec<(Offset, Offset, u64, i64)> = self
            .segments
            .values()
            .zip(bases.iter().skip(1))
            .map(|(s, next)| {
                let summary = s.index.summary();
                (s.base, *next, summary.end_position, summary.max_timestamp)
            })
            .collect();
        for (base, next_base, bytes, max_timestamp) in closed {
            // Already below the log start: an earlier retention moved the start but failed to
            // remove this segment's files. Finish that first.
            let stale = next_base <= self.log_start;
            let too_old = self
                .config
                .retention_ms
                // A limit beyond i64 (u64::MAX: unlimited) makes nothing too old.
                .is_some_and(|ms| {
                    max_timestamp < now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX))
                });
            let too_big = self
                .config
                .retention_bytes
                .is_some_and(|limit| total - bytes >= limit);
            let superseded = below.is_some_and(|offset| next_base <= offset);
            if !(stale || too_old || too_big || superseded) {
                break;
            }
            total -= bytes;
            deleted.push(base);
        }
        let Some(last_deleted) = deleted.last().copied() else {
            return Ok(RetentionOutcome {
                deleted_segments: deleted,
                log_start: self.log_start,
            });
        };
        let new_start = *self
            .segments
            .range((
                std::ops::Bound::Excluded(last_deleted),
                std::ops::Bound::Unbounded,
            ))
            .next()
            .expect("the active segment is never deleted")
            .0;
        assert!(new_start >= self.log_start, "log start only moves forward");
        if new_start > self.log_start {
            let previous = self.log_start;
            self.log_start = new_start;
            if let Err(failure) = self.write_log_meta().await {
                self.log_start = previous;
                return Err(failure.into());
            }
        }
        for base in &deleted {
            let segment = self.segments.remove(base).expect("listed above");
            let path = segment.path.clone();
            segment
                .file
                .close()
                .await
                .map_err(|e| IoFailure::new("close", &path, None, e))?;
            remove_segment_files(&self.disk, &self.dir, *base).await?;
        }
        self.disk
            .sync_dir(&self.dir)
            .await
            .map_err(|e| IoFailure::new("fsync directory", &self.dir, None, e))?;
        while self
            .cache
            .front()
            .is_some_and(|batch| batch.base < self.log_start)
        {
            let dropped = self.cache.pop_front().expect("checked");
            self.cache_bytes -= dropped.bytes.len();
        }
        Ok(RetentionOutcome {
            deleted_segments: deleted,
            log_start: self.log_start,
        })
    }

    /// Syncs everything, cuts the active segment's preallocated zero tail (durable with the
    /// same fdatasync), writes the active segment's indexes and then the clean-shutdown marker,
    /// and closes every file. The next open skips the recovery scan.
    pub async fn close(mut self, now_ms: i64) -> Result<(), AppendError> {
        self.sync_and_trim(now_ms).await?;
        let active = self.active();
        let base = active.base;
        let (offsets, times) = active.index.encode();
        let marker = CleanShutdown {
            active_base: base,
            end_offset: self.durable_end,
            end_position: self.written_position,
        };
        let result = async {
            write_small_file(&self.disk, &self.dir, &index_file_name(base), &offsets).await?;
            write_small_file(&self.disk, &self.dir, &time_index_file_name(base), &times).await?;
            write_small_file(&self.disk, &self.dir, CLEAN_SHUTDOWN_FILE, &marker.encode()).await?;
            for segment in std::mem::take(&mut self.segments).into_values() {
                let path = segment.path.clone();
                segment
                    .file
                    .close()
                    .await
                    .map_err(|e| IoFailure::new("close", &path, None, e))?;
            }
            Ok::<(), IoFailure>(())
        }
        .await;
        result.map_err(AppendError::Io)
    }
}

/// Where to cut a torn tail that starts at `valid_end`. If the rest of that block is zeros (or
/// beyond the end of the file), cut at the block boundary: truncating inside a block makes the
/// filesystem rewrite it, and that block may hold durable bytes before `valid_end`. Otherwise
/// the block holds torn bytes of the flush that wrote it, so none of it was durable (every flush
/// starts on a fresh block) and cutting inside it is safe.
async fn truncation_point<F: File>(
    reader: &mut ChunkReader<'_, F>,
    valid_end: u64,
) -> Result<u64, IoFailure> {
    let boundary = align_up(valid_end);
    if boundary == valid_end {
        return Ok(valid_end);
    }
    let rest = reader
        .get(
            valid_end,
            usize::try_from(boundary - valid_end).expect("< block"),
        )
        .await?;
    if rest.iter().all(|byte| *byte == 0) {
        Ok(boundary)
    } else {
        Ok(valid_end)
    }
}

fn corruption_on_read<F: File>(
    segment: &Segment<F>,
    position: u64,
    expected: Offset,
    reason: String,
) -> ReadError {
    ReadError::Corruption(Corruption {
        path: segment.path.clone(),
        position,
        expected_offset: expected,
        durable_end: segment.index.summary().end_offset,
        reason,
    })
}

/// Reads batches of one segment from `start` into `out`. Returns true when the budget is spent.
async fn read_segment<F: File>(
    segment: &Segment<F>,
    start: (u64, Offset),
    end_position: u64,
    out: &mut Read,
    budget: &mut usize,
) -> Result<bool, ReadError> {
    let (mut position, mut expected) = start;
    let read_ahead = (*budget).clamp(64 << 10, 8 << 20);
    let mut reader = ChunkReader::new(&segment.file, end_position, read_ahead);
    loop {
        // One disk read per call: once a batch is in hand, stop where the bytes read end
        // rather than read ahead again for a batch the budget may not take (the next call
        // starts there).
        if !out.batches.is_empty() && !reader.holds_entry(position) {
            return Ok(true);
        }
        match reader.step(position, expected).await? {
            Step::Batch(batch) => {
                position = batch.end_position;
                expected = batch.last_offset.plus(1);
                if batch.last_offset < out.next_offset {
                    continue;
                }
                if !out.batches.is_empty() && batch.bytes.len() > *budget {
                    return Ok(true);
                }
                *budget = budget.saturating_sub(batch.bytes.len());
                out.batches.push(batch.bytes);
                out.next_offset = expected;
                if *budget == 0 {
                    return Ok(true);
                }
            }
            Step::Skip { next } => position = next,
            Step::End => return Ok(false),
            Step::Invalid { reason } => {
                return Err(corruption_on_read(segment, position, expected, reason));
            }
        }
    }
}

async fn write_segment_header<F: File>(
    file: &F,
    path: &Path,
    header: SegmentHeader,
) -> Result<(), IoFailure> {
    let mut block = file.alloc_buffer(BLOCK_BYTES as usize);
    header.encode(block.as_mut());
    file.write_at(block, 0)
        .await
        .map_err(|e| IoFailure::new("write segment header", path, Some(0), e))?;
    // The header is durable before any batch is appended, so a damaged header can only ever
    // belong to a segment that holds no acknowledged data.
    file.sync()
        .await
        .map_err(|e| IoFailure::new("fdatasync", path, None, e))
}

async fn remove_segment_files<D: Disk>(
    disk: &D,
    dir: &Path,
    base: Offset,
) -> Result<(), IoFailure> {
    for name in [
        log_file_name(base),
        index_file_name(base),
        time_index_file_name(base),
    ] {
        let path = dir.join(&name);
        match disk.remove(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(IoFailure::new("remove", &path, None, e)),
        }
    }
    Ok(())
}

/// Polls a set of futures to completion concurrently on the current task and returns their
/// outputs in order. Used to keep several chunk writes in flight (the write queue depth)
/// without spawning tasks, so the log stays runtime-agnostic.
///
/// Every completion re-polls the futures still pending, and glommio 0.9 keeps one waker clone
/// per poll of a pending DMA write until it completes (its task panics at 32,767). Bounded
/// here: a write is re-polled at most once per sibling's completion, so it holds at most as
/// many clones as there are chunks in the set (the write queue depth), and nothing else wakes
/// the partition actor's task while it awaits an append.
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(context) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|output| output.expect("every future completed"))
        .collect()
}

/// The offsets an append error rolled back, if any: what a caller waiting on a level must fail.
pub fn rolled_back(error: &AppendError) -> Option<Range<Offset>> {
    match error {
        AppendError::StorageFull { rolled_back, .. } => Some(rolled_back.clone()),
        _ => None,
    }
}
