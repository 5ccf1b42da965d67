//! Appending: verifying a batch, assigning its offsets and copying it into the active
//! segment's write buffer (level: appended); and the cache of recent batches that tailing
//! readers are served from.
//!
//! Invariants: offsets are contiguous (a batch's base offset is the `appended_end` before it);
//! only `baseOffset` of the producer's bytes is rewritten; a batch is at most
//! `batch_bytes_max` and fits an empty segment; no entry header starts where fewer than
//! `ENTRY_HEADER_BYTES` remain in a block (that gap stays zeros, as readers expect). The disk
//! is only reached through `roll` and `write`.

use bytes::{Bytes, BytesMut};
use schema::batch::Verified;

use super::cache::CachedBatch;
use super::{Appended, Log, PendingBatch};
use crate::disk::{BLOCK_BYTES, Disk, File};
use crate::error::AppendError;
use crate::format::{
    ENTRY_CRC_BATCH_PREFIX_BYTES, ENTRY_HEADER_BYTES, EntryHeader, EntryKind, Offset,
    SEGMENT_DATA_START,
};

impl<D: Disk> Log<D> {
    /// Appends one batch: validates it, assigns its offsets (rewriting only baseOffset) and
    /// buffers it (level: appended). May roll the segment or write full buffers first.
    pub async fn append(&mut self, batch: BytesMut, now_ms: i64) -> Result<Appended, AppendError> {
        self.fail_stopped()?;
        self.check_size(batch.len())?;
        // Walk the records too: the header alone can claim any record count, and offsets
        // are assigned from it.
        let batch = Verified::check(batch)?;
        self.append_verified(batch, now_ms).await
    }

    /// [`Log::append`] of a batch its caller already verified (the broker checks each batch
    /// once, when it arrives): the same, without checking the CRC and records again.
    pub async fn append_verified(
        &mut self,
        batch: Verified<BytesMut>,
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        self.fail_stopped()?;
        self.check_size(batch.bytes().len())?;
        let header = *batch.header();
        let entry_bytes = (ENTRY_HEADER_BYTES + batch.bytes().len()) as u64;
        let record_span = u64::try_from(header.last_offset_delta).expect("verified >= 0") + 1;
        if self.roll_due(entry_bytes, record_span, now_ms) {
            self.roll(now_ms).await?;
        }

        let mut batch = batch;
        let base = self.appended_end;
        let last = base.plus(record_span - 1);
        batch.set_base_offset(i64::try_from(base.0).expect("offset < 2^63"));
        let batch = batch.into_inner().freeze();
        self.buffer_appended(base, last, header.max_timestamp, batch, entry_bytes)
            .await
    }

    /// Refuses a batch over `batch_bytes_max`, or too large for an empty segment.
    fn check_size(&self, batch_bytes: usize) -> Result<(), AppendError> {
        // A batch must also fit an empty segment (as Kafka refuses batches above segment.bytes):
        // an empty segment's data starts block-aligned after its header block, so the entry
        // and the padding of its flush end by segment_bytes_max.
        let fits_segment = (self.config.segment_bytes_max
            - SEGMENT_DATA_START
            - ENTRY_HEADER_BYTES as u64) as usize;
        let bytes_max = self.config.batch_bytes_max.min(fits_segment);
        if batch_bytes > bytes_max {
            return Err(AppendError::BatchTooLarge {
                bytes: batch_bytes,
                bytes_max,
            });
        }
        Ok(())
    }

    /// Buffers an offset-assigned batch behind its entry header (level: appended).
    async fn buffer_appended(
        &mut self,
        base: Offset,
        last: Offset,
        max_timestamp: i64,
        batch: Bytes,
        entry_bytes: u64,
    ) -> Result<Appended, AppendError> {
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
        let gap = if gap < ENTRY_HEADER_BYTES as u64 {
            gap as usize
        } else {
            0
        };
        // A chunk started on the way is sized for the rest of the entry, not for the piece
        // that starts it (the gap or the header).
        self.buffer_bytes(
            &[0u8; ENTRY_HEADER_BYTES][..gap],
            gap + ENTRY_HEADER_BYTES + batch.len(),
        );
        let position = self.buffer.chunk_position + self.buffer.chunk_used as u64;
        self.buffer_bytes(&entry_header, ENTRY_HEADER_BYTES + batch.len());
        self.buffer_bytes(&batch, batch.len());
        self.pending.push_back(PendingBatch {
            base,
            last,
            position,
            end_position: position + entry_bytes,
            max_timestamp,
        });
        self.cache_insert(base, last, batch);
        self.appended_end = last.plus(1);
        self.bytes_since_sync += entry_bytes;
        self.check_levels();

        // The write-ahead depth is in bytes (chunks vary in size, see `WriteBuffer`): a round
        // of small chunks is not written in pieces any sooner than one of full-size chunks.
        let full_bytes: usize = self
            .buffer
            .full
            .iter()
            .map(|(_, chunk)| chunk.as_ref().len())
            .sum();
        if full_bytes >= self.config.write_ahead_chunks * self.config.write_chunk_bytes {
            self.write(false).await?;
        }
        Ok(Appended {
            base_offset: base,
            last_offset: last,
        })
    }

    /// Copies bytes into the write buffer, starting new chunks as they fill; `following`
    /// (at least `bytes.len()`) is what this append buffers from here on, which sizes a chunk
    /// started on the way.
    fn buffer_bytes(&mut self, mut bytes: &[u8], following: usize) {
        debug_assert!(following >= bytes.len());
        // What this append buffers after these bytes (the header and batch behind a gap, say).
        let after = following - bytes.len();
        while !bytes.is_empty() {
            if self.buffer.chunk.is_none() {
                // Unfilled: appends fill it front to back, and `write` zeroes and pads
                // whatever a flush leaves of the last block before cutting the rest off.
                let chunk_bytes = self
                    .buffer
                    .next_chunk_bytes(bytes.len() + after, self.config.write_chunk_bytes);
                let chunk = self.active().file.alloc_buffer_unfilled(chunk_bytes);
                self.buffer.chunk = Some(chunk);
            }
            let used = self.buffer.chunk_used;
            let chunk = self.buffer.chunk.as_mut().expect("allocated above");
            let chunk_bytes = chunk.as_ref().len();
            let take = bytes.len().min(chunk_bytes - used);
            chunk.as_mut()[used..used + take].copy_from_slice(&bytes[..take]);
            self.buffer.chunk_used += take;
            self.buffer.round_bytes += take;
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
        self.cache.borrow_mut().insert(
            CachedBatch { base, last, bytes },
            self.config.cache_bytes_max,
        );
    }
}
