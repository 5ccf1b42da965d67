//! Retention: deleting closed segments by age, by size, or below an offset whose state the
//! owner keeps elsewhere (`delete_before`); and `log.meta`, which persists the log start.
//!
//! Invariants: the active segment is never deleted, and only whole segments are; the log
//! start only moves forward, and is made durable in `log.meta` before any file is removed,
//! so a crash at any point leaves a directory that recovery finishes (open, step 2).

use std::path::Path;

use super::{LOG_META_FILE, Log, RetentionOutcome};
use crate::disk::{Disk, File};
use crate::error::{IoFailure, RetentionError};
use crate::format::{self, Offset};
use crate::segment::{index_file_name, log_file_name, time_index_file_name};
use crate::small_file::write_small_file;

impl<D: Disk> Log<D> {
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
        self.cache.borrow_mut().drop_before(self.log_start);
        Ok(RetentionOutcome {
            deleted_segments: deleted,
            log_start: self.log_start,
        })
    }

    pub(super) async fn write_log_meta(&self) -> Result<(), IoFailure> {
        write_small_file(
            &self.disk,
            &self.dir,
            LOG_META_FILE,
            &format::encode_log_meta(self.log_start),
        )
        .await
    }
}

pub(super) async fn remove_segment_files<D: Disk>(
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
