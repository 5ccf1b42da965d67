//! The written and durable levels: writing the buffered chunks (a flush pads to its block
//! boundary), extending the active segment's file with zeros ahead of the writes, fdatasync
//! (one for every batch appended before it: group commit), and rolling back after a full disk.
//!
//! Invariants: writes are contiguous from `written_position` and cover only blocks that hold
//! no previously written byte, so a torn write never damages acknowledged data; a write never
//! extends the file (it is `allocate`d first); a failed fdatasync, or any I/O error but a full
//! disk, fail-stops the log, and nothing is retried; `durable_end <= written_end <=
//! appended_end` is asserted after every change.

use super::{FlushPolicy, Log};
use crate::disk::{Buffer, Disk, File, align_up};
use crate::error::{AppendError, IoFailure};
use crate::format::{self, Offset};

/// How far ahead of a write ending at `end` (a position in the active segment) its file is
/// extended: `preallocate_bytes`, or as much as the segment already holds, whichever is more,
/// up to [`PREALLOCATE_GROWTH_MAX`] times `preallocate_bytes`. So a segment's zero tail stays
/// below its data (a thousand small partitions reserve little, the reason for a small
/// `preallocate_bytes`), while a busy partition extends its file a few times per GiB instead
/// of every 4 MiB: each fallocate was handed to an io-wq worker (0.15-2.3 ms p50, in the
/// partition's round) and the write after it too (ext4 takes the inode lock exclusively for
/// the first write after a size change), 128 of each in 2 s at 16 busy partitions.
fn preallocation_step(preallocate_bytes: u64, end: u64) -> u64 {
    end.clamp(
        preallocate_bytes,
        preallocate_bytes.saturating_mul(PREALLOCATE_GROWTH_MAX),
    )
}

/// The largest preallocation step, in `preallocate_bytes`: 64 MiB at the default 4 MiB, the
/// most a crash leaves for recovery to read past the data (unwritten extents: no device I/O).
pub const PREALLOCATE_GROWTH_MAX: u64 = 16;

/// An fdatasync of the active segment that runs beside the log (the flush policy's syncs, which
/// no producer waits for): it holds a duplicate handle of the segment's file, not the log, so
/// the log's owner goes on appending, writing and serving reads while it runs. Run it
/// ([`BackgroundSync::run`]) and hand the outcome to [`Log::finish_background_sync`].
#[must_use = "a started background sync must be run and finished, or the log never syncs again"]
pub struct BackgroundSync<F> {
    file: F,
    /// `written_end` when it started: everything below is durable once it returns.
    through: Offset,
}

/// What a [`BackgroundSync`] did.
#[derive(Debug)]
pub struct BackgroundSynced {
    through: Offset,
    result: Result<(), IoFailure>,
}

impl<F: File> BackgroundSync<F> {
    /// The fdatasync, then the duplicate handle is closed.
    pub async fn run(self) -> BackgroundSynced {
        let result = self
            .file
            .sync()
            .await
            .map_err(|e| IoFailure::new("fdatasync", self.file.path(), None, e));
        // The duplicate only ever served this sync; failing to close it loses nothing.
        let _ = self.file.close().await;
        BackgroundSynced {
            through: self.through,
            result,
        }
    }
}

impl<D: Disk> Log<D> {
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

    /// fdatasync of the active segment after a write: everything written becomes durable.
    pub(super) async fn fdatasync_active(&mut self, now_ms: i64) -> Result<Offset, AppendError> {
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

    /// Starts the flush policy's sync so that it runs beside the log: writes what is appended
    /// (as [`Log::flush`]) and returns a [`BackgroundSync`] of the active segment up to
    /// `written_end`, or `None` if everything written is durable already. Until it is
    /// finished no other background sync starts ([`Log::sync_due`] says false); a [`Log::sync`]
    /// in the meantime is fine (it makes everything durable itself). Where the file has no
    /// duplicate handle (buffered I/O) the sync is done here, in line, and `None` returned.
    ///
    /// Why: the policy's fdatasync took 16 ms (p50) at 27 MiB/s per partition on this VM's
    /// disk, and done in the partition's round it held back every produce and fetch behind
    /// it (issue #11).
    pub async fn start_background_sync(
        &mut self,
        now_ms: i64,
    ) -> Result<Option<BackgroundSync<D::File>>, AppendError> {
        self.fail_stopped()?;
        assert!(
            !self.background_sync,
            "one background sync at a time (sync_due says false while one runs)"
        );
        self.write(true).await?;
        if self.durable_end == self.written_end {
            return Ok(None);
        }
        let active = self.active();
        let file = match active.file.duplicate() {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                self.fdatasync_active(now_ms).await?;
                return Ok(None);
            }
            Err(e) => {
                // Not a sync failure: nothing was lost, the next one may work.
                return Err(AppendError::Io(IoFailure::new(
                    "dup",
                    &active.path,
                    None,
                    e,
                )));
            }
        };
        self.background_sync = true;
        // The policy counts from the start of this sync: bytes and time after it owe the next.
        self.bytes_since_sync = 0;
        self.last_sync_ms = now_ms;
        Ok(Some(BackgroundSync {
            file,
            through: self.written_end,
        }))
    }

    /// Records what a [`BackgroundSync`] did: everything written before it started is durable,
    /// or, if its fdatasync failed, the log fail-stops as after a failed [`Log::sync`].
    pub fn finish_background_sync(
        &mut self,
        synced: BackgroundSynced,
    ) -> Result<Offset, AppendError> {
        assert!(
            self.background_sync,
            "finishing a background sync never started"
        );
        self.background_sync = false;
        if let Err(failure) = synced.result {
            // As after a failed in-line fdatasync: the kernel may have dropped the dirty
            // state, so a later success would not cover what this one lost.
            self.failed = Some(failure.to_string());
            return Err(AppendError::Io(failure));
        }
        // An in-line sync (or a roll) may have made more durable meanwhile: never go back.
        self.durable_end = self.durable_end.max(synced.through);
        self.check_levels();
        Ok(self.durable_end)
    }

    /// Whether a background sync started and not yet finished.
    pub fn background_sync_running(&self) -> bool {
        self.background_sync
    }

    /// True when the flush policy owes a sync for data appended without one (never while a
    /// background sync runs: it will be owed again once that one is finished).
    pub fn sync_due(&self, now_ms: i64) -> bool {
        if self.appended_end == self.durable_end || self.background_sync {
            return false;
        }
        match self.config.flush_policy {
            FlushPolicy::EveryBatch => true,
            FlushPolicy::Bytes(bytes) => self.bytes_since_sync >= bytes,
            FlushPolicy::IntervalMs(ms) => now_ms.saturating_sub(self.last_sync_ms) >= ms as i64,
        }
    }

    /// Writes full chunks (and with `pad`, the partial one too) to the active segment.
    pub(super) async fn write(&mut self, pad: bool) -> Result<(), AppendError> {
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
        // thread. The step grows with the segment (see `preallocation_step`); the zero tail it
        // leaves past `end` is shorter than the step (`allocated_end < end` here), which
        // bounds what recovery probes after a crash.
        if end > self.allocated_end {
            let step = preallocation_step(self.config.preallocate_bytes, end);
            let cap = align_up(self.config.segment_bytes_max).max(end);
            let target = align_up(end.max(self.allocated_end + step)).min(cap);
            let active = self.active();
            let mut allocated = active.file.allocate(target).await.map(|()| target);
            if let Err(e) = &allocated
                && e.kind() == std::io::ErrorKind::StorageFull
                && target > align_up(end)
            {
                // The step ahead did not fit, what this write needs may: the disk is full only
                // when that fails too.
                allocated = active
                    .file
                    .allocate(align_up(end))
                    .await
                    .map(|()| align_up(end));
            }
            match allocated {
                Ok(allocated) => self.allocated_end = allocated,
                Err(e) => {
                    let failure = IoFailure::new("fallocate", &active.path, Some(target), e);
                    return Err(self.write_failed(first, failure).await);
                }
            }
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
