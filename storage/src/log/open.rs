//! Opening a log, and recovering it after a crash (docs/storage-format.md, "Recovery").
//!
//! Owns the recovery decisions: removing `*.tmp` leftovers, finishing an interrupted retention,
//! trusting a clean-shutdown marker or scanning, rebuilding missing or damaged indexes, and
//! telling the end of the newest segment apart: a zero tail (kept), a torn tail of
//! unacknowledged writes (cut) or corruption of durable data (refused).
//!
//! Invariants: the clean-shutdown marker is removed, and the directory synced, before anything
//! new is written; a closed segment must scan cleanly up to its successor's base; a cut never
//! makes the filesystem rewrite a block that may hold durable bytes; what survived a crash is
//! fdatasynced before it is called durable. Runs on the shard that owns the partition, before
//! the log takes any other call.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use super::retention::remove_segment_files;
use super::roll::write_segment_header;
use super::{CLEAN_SHUTDOWN_FILE, LOG_META_FILE, Log, LogConfig, RecoveryReport, WriteBuffer};
use crate::disk::{Disk, File, OpenMode, align_up};
use crate::error::{Corruption, IoFailure, OpenError};
use crate::format::{self, CleanShutdown, Offset, SEGMENT_DATA_START, SegmentHeader};
use crate::index::SegmentIndex;
use crate::segment::{
    self, ChunkReader, Segment, index_file_name, log_file_name, time_index_file_name,
};
use crate::small_file::{TEMP_SUFFIX, read_small_file};

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
            buffer: WriteBuffer::new(SEGMENT_DATA_START),
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
            cache: Default::default(),
            bytes_since_sync: 0,
            last_sync_ms: now_ms,
            size_unsynced: false,
            background: None,
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
            // The newest segment shorter than its header block: the crash cut the header's
            // write short before it was synced (a roll syncs it before the first append), so
            // nothing in the file was ever acknowledged. Its first sector may still decode;
            // rewrite the whole block, or the file stays shorter than the data start its
            // index will claim, and the next open refuses it as corruption (power_cut seed
            // 18554).
            Ok(header)
                if header.base_offset == base
                    && next_base.is_none()
                    && scan_tail
                    && size < SEGMENT_DATA_START =>
            {
                tracing::warn!(path = %path.display(), size,
                    "newest segment's header block is incomplete after a crash: rewriting it");
                write_segment_header(&file, &path, header).await?;
                header
            }
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
