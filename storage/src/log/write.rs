//! The written and durable levels: writing the buffered chunks (a flush pads to its block
//! boundary), extending the active segment's file with zeros ahead of the writes, fdatasync
//! (one for every batch appended before it: group commit), and rolling back after a full disk.
//!
//! Invariants: writes are contiguous from `written_position` and cover only blocks that hold
//! no previously written byte, so a torn write never damages acknowledged data; a write never
//! extends the file (it is `allocate`d first); a failed fdatasync, or any I/O error but a full
//! disk, fail-stops the log, and nothing is retried; `durable_end <= written_end <=
//! appended_end` is asserted after every change.

use std::cell::RefCell;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

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
/// ([`BackgroundSync::run`], e.g. in a task of its own); its outcome goes to the log, which
/// takes it in at [`Log::poll_background_sync`] and, before any fdatasync of its own, waits for
/// it: an fdatasync of the same open file must not report success over a failure that the
/// background one has not reported yet (a writeback error is reported once per open file, and
/// the duplicate shares it).
#[must_use = "a started background sync must run: the log's next in-line sync waits for it"]
pub struct BackgroundSync<F> {
    file: Option<F>,
    /// `written_end` when it started: everything below is durable once it returns.
    through: Offset,
    outcome: Rc<RefCell<SyncOutcome>>,
}

/// Where a [`BackgroundSync`] leaves its result for the log, and who waits for it.
#[derive(Default)]
pub(super) struct SyncOutcome {
    result: Option<(Offset, Result<(), IoFailure>)>,
    waker: Option<Waker>,
}

impl SyncOutcome {
    fn set(&mut self, through: Offset, result: Result<(), IoFailure>) {
        self.result = Some((through, result));
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// Resolves once the background sync behind `outcome` has left its result.
struct OutcomeReady<'a>(&'a RefCell<SyncOutcome>);

impl Future for OutcomeReady<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut outcome = self.0.borrow_mut();
        if outcome.result.is_some() {
            Poll::Ready(())
        } else {
            outcome.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

impl<F: File> BackgroundSync<F> {
    /// The fdatasync, then the duplicate handle is closed; the outcome goes to the log.
    pub async fn run(mut self) {
        let file = self.file.take().expect("run once");
        let result = file
            .sync()
            .await
            .map_err(|e| IoFailure::new("fdatasync", file.path(), None, e));
        // The duplicate only ever served this sync; failing to close it loses nothing.
        let _ = file.close().await;
        self.outcome.borrow_mut().set(self.through, result);
    }
}

impl<F> Drop for BackgroundSync<F> {
    fn drop(&mut self) {
        if self.file.is_some() {
            // Dropped before it ran (or while it ran): nobody knows what reached the disk, so
            // the log must not wait forever nor call anything durable on its account.
            let failure = IoFailure::new(
                "fdatasync",
                PathBuf::new(),
                None,
                std::io::Error::other("the background sync was dropped before it finished"),
            );
            self.outcome.borrow_mut().set(self.through, Err(failure));
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
        self.poll_background_sync()?;
        self.write(true).await?;
        if self.durable_end == self.written_end {
            return Ok(self.durable_end);
        }
        self.fdatasync_active(now_ms).await
    }

    /// fdatasync of the active segment after a write: everything written becomes durable.
    pub(super) async fn fdatasync_active(&mut self, now_ms: i64) -> Result<Offset, AppendError> {
        self.settle_background_sync().await?;
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
        self.size_unsynced = false;
        self.bytes_since_sync = 0;
        self.last_sync_ms = now_ms;
        self.check_levels();
        Ok(self.durable_end)
    }

    /// Starts the flush policy's sync so that it runs beside the log: writes what is appended
    /// (as [`Log::flush`]) and returns a [`BackgroundSync`] of the active segment up to
    /// `written_end`, or `None` if everything written is durable already. Until its outcome is
    /// taken in no other one starts ([`Log::sync_due`] says false), and every in-line fdatasync
    /// ([`Log::sync`], a roll, [`Log::close`]) first waits for it. Where the file has no
    /// duplicate handle (buffered I/O, or dup failed) the sync is done here, in line, and
    /// `None` returned.
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
            self.background.is_none(),
            "one background sync at a time (sync_due says false while one runs)"
        );
        self.write(true).await?;
        if self.durable_end == self.written_end {
            return Ok(None);
        }
        let active = self.active();
        let file = match active.file.duplicate() {
            Ok(file) => file,
            Err(e) => {
                // No second handle (buffered files have none; dup can fail, e.g. EMFILE):
                // the policy's sync is done in line rather than not at all.
                if e.kind() != std::io::ErrorKind::Unsupported {
                    tracing::warn!(path = %active.path.display(), error = %e,
                        "no duplicate handle for a background sync: syncing in line");
                }
                self.fdatasync_active(now_ms).await?;
                return Ok(None);
            }
        };
        let outcome = Rc::new(RefCell::new(SyncOutcome::default()));
        self.background = Some(outcome.clone());
        // The policy counts from the start of this sync: bytes and time after it owe the next.
        self.bytes_since_sync = 0;
        self.last_sync_ms = now_ms;
        Ok(Some(BackgroundSync {
            file: Some(file),
            through: self.written_end,
            outcome,
        }))
    }

    /// Takes in the outcome of a finished background sync, if one finished: everything written
    /// before it started is durable, or, if its fdatasync failed, the log fail-stops as after a
    /// failed [`Log::sync`] (the error is returned once). Cheap: call it at every turn.
    pub fn poll_background_sync(&mut self) -> Result<(), AppendError> {
        let finished = self
            .background
            .as_ref()
            .is_some_and(|outcome| outcome.borrow().result.is_some());
        if !finished {
            return Ok(());
        }
        let outcome = self.background.take().expect("checked above");
        let (through, result) = outcome.borrow_mut().result.take().expect("checked above");
        if let Err(failure) = result {
            // As after a failed in-line fdatasync: the kernel may have dropped the dirty
            // state, so a later success would not cover what this one lost.
            self.failed = Some(failure.to_string());
            return Err(AppendError::Io(failure));
        }
        if self.failed.is_none() {
            // An in-line sync (or a roll) may have made more durable meanwhile: never go back.
            self.durable_end = self.durable_end.max(through);
            self.check_levels();
        }
        Ok(())
    }

    /// Waits for the background sync in flight, if any, and takes in its outcome: done before
    /// every in-line fdatasync, so that one can never report success over a failure the
    /// background sync has not reported yet.
    pub(super) async fn settle_background_sync(&mut self) -> Result<(), AppendError> {
        if let Some(outcome) = self.background.clone() {
            OutcomeReady(&outcome).await;
        }
        self.poll_background_sync()
    }

    /// Whether a background sync started and its outcome is not taken in yet.
    pub fn background_sync_running(&self) -> bool {
        self.background.is_some()
    }

    /// True when the flush policy owes a sync for data appended without one (never while a
    /// background sync runs: it will be owed again once that one is finished).
    pub fn sync_due(&self, now_ms: i64) -> bool {
        if self.appended_end == self.durable_end || self.background.is_some() {
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
        if pad && self.buffer.round_bytes > 0 {
            self.buffer.end_round();
        }
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
            let mut asked = target;
            let mut allocated = active.file.allocate(target).await;
            if let Err(e) = &allocated
                && e.kind() == std::io::ErrorKind::StorageFull
                && target > align_up(end)
            {
                // The step ahead did not fit, what this write needs may: the disk is full only
                // when that fails too.
                asked = align_up(end);
                allocated = active.file.allocate(asked).await;
                // The failed step may have extended the file part of the way (ext4 can): the
                // cut at a roll or close must know the real size.
                if allocated.is_ok()
                    && let Ok(size) = active.file.size().await
                {
                    asked = asked.max(size);
                }
            }
            match allocated {
                Ok(()) => {
                    self.allocated_end = asked;
                    self.size_unsynced = true;
                }
                Err(e) => {
                    let failure = IoFailure::new("fallocate", &active.path, Some(asked), e);
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
        self.size_unsynced = true;
        self.appended_end = self.written_end;
        self.cache.borrow_mut().drop_from(self.written_end);
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
