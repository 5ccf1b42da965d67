//! The recent-batch cache: the last batches appended, kept as the bytes they arrived in, so
//! that tailing readers are served from memory. The log owns it; a [`CacheReader`] shares it
//! with readers on the same thread, which read it while the log's owner is busy (in the
//! middle of a disk write, say) instead of queueing behind that work.
//!
//! Invariants: batches are in offset order, contiguous from the first; `bytes` is the sum of
//! their lengths. A batch enters the cache when it is appended, before it is written, so the
//! cache itself does not say what is readable: every reader passes the written end it may
//! read up to (`Log::read` its own, a [`CacheReader`] the one its caller was told by the log's
//! owner), and no batch at or past it is returned. Borrows of the shared state never outlive
//! a synchronous call.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;

use crate::format::Offset;

/// A recent batch kept for tailing readers.
pub(super) struct CachedBatch {
    pub(super) base: Offset,
    pub(super) last: Offset,
    pub(super) bytes: Bytes,
}

/// The cached batches and their total size.
#[derive(Default)]
pub(super) struct Batches {
    pub(super) batches: VecDeque<CachedBatch>,
    pub(super) bytes: usize,
}

/// The cache, shared by the log and its [`CacheReader`]s.
pub(super) type Shared = Rc<RefCell<Batches>>;

impl Batches {
    /// Adds the batch after the last one, then evicts from the front down to `bytes_max`,
    /// but never the batch just added: a partition whose share is smaller than its batches
    /// (a thousand partitions of 1 MiB batches) still serves its tailing readers the newest
    /// batch from memory. So the cache holds at most `bytes_max` or one batch, whichever is
    /// more; a `bytes_max` of 0 keeps nothing (the cache is off).
    pub(super) fn insert(&mut self, batch: CachedBatch, bytes_max: usize) {
        debug_assert!(
            self.batches
                .back()
                .is_none_or(|previous| previous.last.plus(1) == batch.base),
            "cached batches are contiguous"
        );
        self.bytes += batch.bytes.len();
        self.batches.push_back(batch);
        while self.bytes > bytes_max && (self.batches.len() > 1 || bytes_max == 0) {
            let evicted = self.batches.pop_front().expect("at least one");
            self.bytes -= evicted.bytes.len();
        }
    }

    /// Drops the batches that start before `log_start` (retention deleted them).
    pub(super) fn drop_before(&mut self, log_start: Offset) {
        while self
            .batches
            .front()
            .is_some_and(|batch| batch.base < log_start)
        {
            let dropped = self.batches.pop_front().expect("checked");
            self.bytes -= dropped.bytes.len();
        }
    }

    /// Drops the batches at or after `end` (a full disk rolled them back).
    pub(super) fn drop_from(&mut self, end: Offset) {
        while self.batches.back().is_some_and(|batch| batch.base >= end) {
            let dropped = self.batches.pop_back().expect("checked");
            self.bytes -= dropped.bytes.len();
        }
    }

    /// Whole batches from the one holding `from`, below `end`, until about `bytes_max` bytes
    /// (at least one batch if any): the batches and the offset after them. At `end` exactly
    /// the answer is no batches (nothing needs to be held for that). None where the cache
    /// does not hold `from` or `from` is past `end`: the caller reads the segments instead.
    pub(super) fn read(
        &self,
        from: Offset,
        end: Offset,
        bytes_max: usize,
    ) -> Option<(Vec<Bytes>, Offset)> {
        if from == end {
            return Some((Vec::new(), from));
        }
        if from > end || self.batches.front().is_none_or(|batch| batch.base > from) {
            return None;
        }
        let start = self.batches.partition_point(|batch| batch.last < from);
        let mut out = Vec::new();
        let mut next = from;
        let mut budget = bytes_max;
        for batch in self.batches.range(start..) {
            if batch.base >= end || (!out.is_empty() && batch.bytes.len() > budget) {
                break;
            }
            budget = budget.saturating_sub(batch.bytes.len());
            out.push(batch.bytes.clone());
            next = batch.last.plus(1);
        }
        // The cache ends before `end` only if batches below `end` were evicted from its
        // back, which never happens (eviction is from the front): so `from` is served.
        (!out.is_empty()).then_some((out, next))
    }
}

/// A handle on a log's recent-batch cache for readers on the log's thread (it is `!Send`).
/// It reads only what the cache holds; [`crate::Log::read`] is the complete read.
#[derive(Clone)]
pub struct CacheReader {
    shared: Shared,
}

impl CacheReader {
    pub(super) fn new(shared: Shared) -> CacheReader {
        CacheReader { shared }
    }

    /// Whole batches from `from` up to (not including) `written_end`, about `bytes_max` bytes
    /// and at least one batch when any is there, as [`crate::Log::read`] returns them, with
    /// the offset after them; or None when the cache does not hold `from`.
    ///
    /// `written_end` must be a written end the log reported (its `written_end()` at some
    /// point): the cache holds appended batches that are not written yet, and only the
    /// caller knows how far it may read. Where `from` equals it, the answer is no batches.
    pub fn read(
        &self,
        from: Offset,
        written_end: Offset,
        bytes_max: usize,
    ) -> Option<(Vec<Bytes>, Offset)> {
        self.shared.borrow().read(from, written_end, bytes_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(base: u64, records: u64, bytes: usize) -> CachedBatch {
        CachedBatch {
            base: Offset(base),
            last: Offset(base + records - 1),
            bytes: Bytes::from(vec![0u8; bytes]),
        }
    }

    fn cache() -> Batches {
        let mut cache = Batches::default();
        // Offsets 10-19, 20-29, 30-39, 100 bytes each.
        for base in [10, 20, 30] {
            cache.insert(batch(base, 10, 100), 1 << 20);
        }
        cache
    }

    #[test]
    fn reads_stop_at_the_written_end_the_caller_gives() {
        let cache = cache();
        // Batches 20-29 and 30-39 are appended but only 20 is written: none of them is read.
        let (batches, next) = cache.read(Offset(15), Offset(20), 1 << 20).expect("held");
        assert_eq!((batches.len(), next), (1, Offset(20)));
        assert_eq!(
            cache.read(Offset(20), Offset(20), 1 << 20),
            Some((Vec::new(), Offset(20)))
        );
        let (batches, next) = cache.read(Offset(25), Offset(40), 1 << 20).expect("held");
        assert_eq!((batches.len(), next), (2, Offset(40)));
    }

    #[test]
    fn a_read_gives_at_least_one_batch_then_keeps_to_its_budget() {
        let cache = cache();
        let (batches, next) = cache.read(Offset(10), Offset(40), 1).expect("held");
        assert_eq!((batches.len(), next), (1, Offset(20)));
        let (batches, next) = cache.read(Offset(10), Offset(40), 250).expect("held");
        assert_eq!((batches.len(), next), (2, Offset(30)));
    }

    #[test]
    fn offsets_the_cache_does_not_hold_are_left_to_the_segments() {
        let mut cache = cache();
        assert!(cache.read(Offset(9), Offset(40), 1 << 20).is_none());
        assert!(cache.read(Offset(41), Offset(40), 1 << 20).is_none());
        // Eviction from the front, to 200 bytes.
        cache.insert(batch(40, 10, 100), 200);
        assert_eq!(cache.bytes, 200);
        assert!(cache.read(Offset(25), Offset(50), 1 << 20).is_none());
        assert!(cache.read(Offset(30), Offset(50), 1 << 20).is_some());
        cache.drop_before(Offset(40));
        assert!(cache.read(Offset(35), Offset(50), 1 << 20).is_none());
        cache.drop_from(Offset(40));
        assert_eq!((cache.batches.len(), cache.bytes), (0, 0));
        assert!(cache.read(Offset(40), Offset(50), 1 << 20).is_none());
    }

    #[test]
    fn a_batch_larger_than_the_budget_stays_until_the_next_one() {
        let mut cache = cache();
        cache.insert(batch(40, 10, 500), 200);
        assert_eq!((cache.batches.len(), cache.bytes), (1, 500));
        let (batches, next) = cache.read(Offset(40), Offset(50), 1 << 20).expect("held");
        assert_eq!((batches.len(), next), (1, Offset(50)));
        cache.insert(batch(50, 10, 100), 200);
        assert_eq!((cache.batches.len(), cache.bytes), (1, 100));
        // A budget of 0 is no cache at all.
        cache.insert(batch(60, 10, 100), 0);
        assert_eq!((cache.batches.len(), cache.bytes), (0, 0));
        assert!(cache.read(Offset(40), Offset(50), 1 << 20).is_none());
    }
}
