//! Closing: cutting a segment back to its data before a roll or a clean close (dropping the
//! preallocated zero tail, durable with the same fdatasync), and the clean close of the log
//! (indexes, then the clean-shutdown marker, then every file closed).
//!
//! Invariants: the cut is block-aligned, so it never makes the filesystem rewrite a block
//! holding data; the marker is written only after everything it vouches for is durable;
//! closing is an explicit `async fn close(self)`, never I/O in `Drop`.

use super::{CLEAN_SHUTDOWN_FILE, Log};
use crate::disk::{Disk, File};
use crate::error::{AppendError, IoFailure};
use crate::format::{CleanShutdown, Offset};
use crate::segment::{index_file_name, time_index_file_name};
use crate::small_file::write_small_file;

impl<D: Disk> Log<D> {
    /// Writes everything appended, cuts the active segment back to its data (dropping the
    /// preallocated zero tail), and makes both durable with one fdatasync: what a segment
    /// needs before it is closed by a roll or a clean close. The cut is block-aligned
    /// (`written_position`), so it never makes the filesystem rewrite a block holding data.
    pub(super) async fn sync_and_trim(&mut self, now_ms: i64) -> Result<Offset, AppendError> {
        // A background sync's failure must stop the log before anything is called durable.
        self.settle_background_sync().await?;
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
        // Nothing new to make durable, unless the file's size changed since the last sync: the
        // cut after a full disk leaves the file shorter than `written_position` (the rest is
        // padding), and a later extension of it must be durable before an index or the clean
        // marker says the data runs that far (an ENOSPC seed found a closed segment shorter
        // than its index after a crash).
        if !trim && self.durable_end == self.written_end && !self.size_unsynced {
            return Ok(self.durable_end);
        }
        self.fdatasync_active(now_ms).await
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
