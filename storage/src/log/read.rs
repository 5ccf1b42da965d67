//! Reading: whole stored batches for a fetch, from the recent-batch cache when the offset is
//! hot, otherwise from the segment found by base offset, positioned by its sparse index and
//! verified entry by entry; and the lookup of an offset by timestamp.
//!
//! Invariants: reads see only written data (they stop at `written_end`); batches come back
//! whole, as stored, in offset order; an entry that fails its checks is reported as
//! corruption, never served. Reads take `&self`: they never change the log.

use super::{Log, Read};
use crate::disk::{Disk, File};
use crate::error::{Corruption, ReadError};
use crate::format::{Offset, SEGMENT_DATA_START};
use crate::segment::{ChunkReader, Segment, Step};

impl<D: Disk> Log<D> {
    /// Reads whole batches from `from` until about `bytes_max` bytes (at least one batch if
    /// any is readable). Only written data is returned.
    ///
    /// The contract, asserted here so that callers need not check it: a read that returns
    /// batches advances (`next_offset > from`), one that returns none leaves `next_offset` at
    /// `from`, and `next_offset` never passes the written end. A caller that reads in a loop
    /// until the log end therefore always makes progress.
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
        let cached = self.cache.borrow().read(from, log_end, bytes_max);
        if let Some((batches, next_offset)) = cached {
            out.batches = batches;
            out.next_offset = next_offset;
        } else {
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
                    read_segment(segment, start, summary.end_position, &mut out, &mut budget)
                        .await?;
                if done {
                    break;
                }
            }
        }
        check_read_contract(from, log_end, &out);
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
}

/// The read contract (see [`Log::read`]), checked on every read whichever path served it.
fn check_read_contract(from: Offset, log_end: Offset, out: &Read) {
    if out.batches.is_empty() {
        assert_eq!(
            out.next_offset, from,
            "a read from {from} returned no batch but moved its next offset"
        );
    } else {
        assert!(
            out.next_offset > from,
            "a read from {from} returned {} batches but did not advance (next offset {})",
            out.batches.len(),
            out.next_offset
        );
    }
    assert!(
        out.next_offset <= log_end,
        "a read from {from} ends at {}, past the written end {log_end}",
        out.next_offset
    );
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
            // The index promises batches up to its end offset: data that ends before it (an
            // index trusted on a clean shutdown over a segment whose data was lost or
            // zeroed) is corruption, never an empty read that a consumer would retry for
            // ever (found by the log_recovery fuzz target, tests/fuzz_findings.rs).
            Step::End if expected < segment.index.summary().end_offset => {
                let reason = format!(
                    "the data ends at offset {expected}, the index says {}",
                    segment.index.summary().end_offset
                );
                return Err(corruption_on_read(segment, position, expected, reason));
            }
            Step::End => return Ok(false),
            Step::Invalid { reason } => {
                return Err(corruption_on_read(segment, position, expected, reason));
            }
        }
    }
}
