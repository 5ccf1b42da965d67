//! Rolling: deciding when the active segment is due to close (size, age, or an offset span
//! the u32 index cannot hold), closing it, and creating the next segment file.
//!
//! Invariants: a new segment's header is written and fdatasynced, and the directory synced,
//! before its first append, so a damaged header only ever belongs to a segment without
//! acknowledged data; the closed segment is synced and cut to its data, and its indexes
//! written, before its successor exists; a half-created successor is removed durably before
//! the current segment takes another append, or the log stops.

use std::path::Path;

use super::Log;
use crate::disk::{BLOCK_BYTES, Disk, File, OpenMode, align_up};
use crate::error::{AppendError, IoFailure};
use crate::format::{Offset, SEGMENT_DATA_START, SegmentHeader};
use crate::index::SegmentIndex;
use crate::segment::{Segment, index_file_name, log_file_name, time_index_file_name};
use crate::small_file::write_small_file;

impl<D: Disk> Log<D> {
    pub(super) fn roll_due(&self, entry_bytes: u64, record_span: u64, now_ms: i64) -> bool {
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

    /// Closes the active segment (sync, cut its zero tail, index files) and starts a new one at
    /// the log end. The cut is durable before the next segment is created, so a closed segment
    /// holds exactly its data; a crash before that leaves it the newest segment, whose zero
    /// tail recovery accepts.
    pub(super) async fn roll(&mut self, now_ms: i64) -> Result<(), AppendError> {
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
        self.size_unsynced = false;
        self.buffer.chunk_position = SEGMENT_DATA_START;
        Ok(())
    }

    /// Creates, syncs and registers a segment starting at `base`.
    pub(super) async fn create_segment(
        &mut self,
        base: Offset,
        now_ms: i64,
    ) -> Result<(), IoFailure> {
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
}

pub(super) async fn write_segment_header<F: File>(
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
