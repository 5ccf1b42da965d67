//! One segment file: its open handle, its index, and the two ways of reading it — the recovery
//! scan (verify every entry from a position on) and the fetch read (whole batches from an
//! offset, as zero-copy slices of the read buffer).
//!
//! Reading rules, shared by both paths (docs/storage-format.md, "Reading a segment"):
//! - Fewer than [`ENTRY_HEADER_BYTES`] left in a block: skip to the next block (zero gap).
//! - An all-zero entry header at a block boundary: the end of the data. The file may go on
//!   with zeros (the tail that `allocate` adds ahead of the writes); readers are bounded by the
//!   index's end, never by the file size, and recovery tells such a tail from a torn one with
//!   [`probe_tail`].
//! - An all-zero entry header inside a block: the zero gap left when recovery truncated a torn
//!   tail mid-block; skip to the next block.
//! - Otherwise the header must verify (magic, kind, CRC over header and batch prefix), a batch
//!   must verify (length, magic, Kafka CRC) and carry the expected base offset, and padding
//!   must end exactly at the next block boundary.
//!
//! A segment lives on the shard that owns its partition; nothing here is shared.

use std::path::PathBuf;

use bytes::Bytes;

use crate::disk::{BLOCK_BYTES, File, align_up};
use crate::error::IoFailure;
use crate::format::{
    ENTRY_CRC_BATCH_PREFIX_BYTES, ENTRY_HEADER_BYTES, EntryHeader, EntryKind, Offset,
};
use crate::index::SegmentIndex;

/// Bytes the scanner reads from disk at a time.
const SCAN_CHUNK_BYTES: usize = 1 << 20;

/// The file name of the segment starting at `base`: 20 digits, so names sort as offsets do.
pub fn log_file_name(base: Offset) -> String {
    format!("{:020}.log", base.0)
}

/// The offset index file name of the segment starting at `base`.
pub fn index_file_name(base: Offset) -> String {
    format!("{:020}.index", base.0)
}

/// The time index file name of the segment starting at `base`.
pub fn time_index_file_name(base: Offset) -> String {
    format!("{:020}.timeindex", base.0)
}

/// Parses a segment file name back into its base offset.
pub fn parse_log_file_name(name: &str) -> Option<Offset> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Offset)
}

/// An open segment.
pub struct Segment<F: File> {
    /// First offset the segment may hold.
    pub base: Offset,
    /// Path of the `.log` file.
    pub path: PathBuf,
    /// The open file.
    pub file: F,
    /// What has been written to it, indexed.
    pub index: SegmentIndex,
    /// Creation time from the segment header, for rolling by age.
    pub created_ms: i64,
}

/// One batch found on disk.
#[derive(Debug, Clone)]
pub struct FoundBatch {
    /// File position of its entry header.
    pub position: u64,
    /// Position just after the batch.
    pub end_position: u64,
    /// Its base offset.
    pub base_offset: Offset,
    /// Its last offset.
    pub last_offset: Offset,
    /// Its max timestamp.
    pub max_timestamp: i64,
    /// The batch bytes (a slice of the read buffer, not a copy).
    pub bytes: Bytes,
    /// The entry's durable-end hint.
    pub durable_end_hint: Offset,
}

/// What one step of reading a segment found.
#[derive(Debug)]
pub enum Step {
    /// A verified batch.
    Batch(FoundBatch),
    /// Padding or a zero gap (both part of the written data); continue at `next`.
    Skip {
        /// Where the next entry may start.
        next: u64,
    },
    /// No more data (end of file, or zeros at a block boundary).
    End,
    /// Bytes that fail the rules.
    Invalid {
        /// What was wrong.
        reason: String,
    },
}

/// Reads a file sequentially in large chunks and hands out zero-copy slices.
pub struct ChunkReader<'a, F: File> {
    file: &'a F,
    file_size: u64,
    chunk: Bytes,
    chunk_position: u64,
    chunk_bytes: usize,
}

impl<'a, F: File> ChunkReader<'a, F> {
    /// A reader of `file` up to `file_size` (the file's size, or less: the end of the data,
    /// past which it reads nothing), reading `chunk_bytes` at a time.
    pub fn new(file: &'a F, file_size: u64, chunk_bytes: usize) -> Self {
        ChunkReader {
            file,
            file_size,
            chunk: Bytes::new(),
            chunk_position: 0,
            chunk_bytes,
        }
    }

    /// Where reading ends: the size of the file being read, or the end of its data.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// Up to `bytes` at `position` (fewer at end of file).
    pub async fn get(&mut self, position: u64, bytes: usize) -> Result<Bytes, IoFailure> {
        let want_end = (position + bytes as u64).min(self.file_size);
        if position >= want_end {
            return Ok(Bytes::new());
        }
        let chunk_end = self.chunk_position + self.chunk.len() as u64;
        if position < self.chunk_position || want_end > chunk_end {
            // Read ahead, but not past the end: the file may hold a preallocated zero tail
            // beyond the data, and a read there would only move zeros.
            let read_bytes = (want_end - position)
                .max(self.chunk_bytes as u64)
                .min(self.file_size - position);
            let read_bytes = usize::try_from(read_bytes).expect("fits");
            self.chunk = self
                .file
                .read_at(position, read_bytes)
                .await
                .map_err(|e| IoFailure::new("read", self.file.path(), Some(position), e))?;
            self.chunk_position = position;
        }
        let start = usize::try_from(position - self.chunk_position).expect("fits");
        let end = usize::try_from(want_end - self.chunk_position)
            .expect("fits")
            .min(self.chunk.len());
        Ok(self.chunk.slice(start.min(end)..end))
    }

    /// True when stepping over the entry at `position` needs no disk read: it lies wholly in
    /// the bytes already read. (Bytes that do not parse count as held: `step` reports them.)
    pub fn holds_entry(&self, position: u64) -> bool {
        let chunk_end = self.chunk_position + self.chunk.len() as u64;
        if position < self.chunk_position || position >= chunk_end {
            return false;
        }
        let start = usize::try_from(position - self.chunk_position).expect("inside the chunk");
        let Some(payload_bytes) = EntryHeader::claimed_payload_bytes(&self.chunk[start..]) else {
            return false;
        };
        position + ENTRY_HEADER_BYTES as u64 + u64::from(payload_bytes) <= chunk_end
    }

    /// Reads the entry at `position`, expecting (for a batch) base offset `expected`.
    pub async fn step(&mut self, position: u64, expected: Offset) -> Result<Step, IoFailure> {
        if position >= self.file_size {
            return Ok(Step::End);
        }
        let in_block = BLOCK_BYTES - position % BLOCK_BYTES;
        if in_block < ENTRY_HEADER_BYTES as u64 {
            // A gap the file does not hold is not data: the end.
            if align_up(position) > self.file_size {
                return Ok(Step::End);
            }
            return Ok(Step::Skip {
                next: align_up(position),
            });
        }
        let head = self
            .get(position, ENTRY_HEADER_BYTES + ENTRY_CRC_BATCH_PREFIX_BYTES)
            .await?;
        if head.len() >= ENTRY_HEADER_BYTES && head[..ENTRY_HEADER_BYTES].iter().all(|b| *b == 0) {
            if position.is_multiple_of(BLOCK_BYTES) || align_up(position) > self.file_size {
                return Ok(Step::End);
            }
            return Ok(Step::Skip {
                next: align_up(position),
            });
        }
        let header = match EntryHeader::decode(&head) {
            Ok(header) => header,
            Err(error) => {
                return Ok(Step::Invalid {
                    reason: format!("entry header: {error}"),
                });
            }
        };
        let payload_start = position + ENTRY_HEADER_BYTES as u64;
        let end_position = payload_start + u64::from(header.payload_bytes);
        match header.kind {
            EntryKind::Padding => {
                if end_position != align_up(position + 1) {
                    return Ok(Step::Invalid {
                        reason: format!(
                            "padding of {} bytes does not end at a block boundary",
                            header.payload_bytes
                        ),
                    });
                }
                if end_position > self.file_size {
                    return Ok(Step::Invalid {
                        reason: format!(
                            "padding runs past the end of the file ({} bytes)",
                            self.file_size
                        ),
                    });
                }
                Ok(Step::Skip { next: end_position })
            }
            EntryKind::Batch => {
                if end_position > self.file_size {
                    return Ok(Step::Invalid {
                        reason: format!(
                            "batch of {} bytes runs past the end of the file ({} bytes)",
                            header.payload_bytes, self.file_size
                        ),
                    });
                }
                let bytes = self
                    .get(payload_start, header.payload_bytes as usize)
                    .await?;
                let batch = match schema::batch::verify(&bytes) {
                    Ok(batch) => batch,
                    Err(error) => {
                        return Ok(Step::Invalid {
                            reason: format!("batch: {error}"),
                        });
                    }
                };
                // The index stores offsets relative to the segment base as u32; a batch that
                // claims more records than that is not one the log could have written.
                let span = u64::try_from(batch.last_offset_delta).unwrap_or(u64::MAX);
                if span > u64::from(u32::MAX) / 2 {
                    return Ok(Step::Invalid {
                        reason: format!("batch claims {} records", span.saturating_add(1)),
                    });
                }
                if batch.base_offset != expected.0 as i64 {
                    return Ok(Step::Invalid {
                        reason: format!(
                            "batch has base offset {}, expected {expected}",
                            batch.base_offset
                        ),
                    });
                }
                Ok(Step::Batch(FoundBatch {
                    position,
                    end_position,
                    base_offset: expected,
                    last_offset: Offset(batch.last_offset() as u64),
                    max_timestamp: batch.max_timestamp,
                    bytes,
                    durable_end_hint: header.durable_end_hint,
                }))
            }
        }
    }
}

/// Where and why a recovery scan stopped.
#[derive(Debug)]
pub struct ScanEnd {
    /// Position after the last valid entry (batch or padding). Bytes from here on are not
    /// part of the log.
    pub valid_end: u64,
    /// The next offset the log expects.
    pub next_offset: Offset,
    /// Why it stopped: None at a clean end of data.
    pub invalid: Option<String>,
    /// Position of the invalid bytes (meaningful when `invalid` is set).
    pub invalid_position: u64,
}

/// Scans `segment` from `start` (an entry boundary holding offset `expected`), adding every
/// valid entry to `index`, until the end of the data or the first invalid entry.
pub async fn scan<F: File>(
    reader: &mut ChunkReader<'_, F>,
    index: &mut SegmentIndex,
    start: u64,
    expected: Offset,
) -> Result<ScanEnd, IoFailure> {
    let mut position = start;
    let mut next_offset = expected;
    let mut valid_end = start;
    loop {
        match reader.step(position, next_offset).await? {
            Step::Batch(batch) => {
                index.add_batch(
                    batch.base_offset,
                    batch.last_offset,
                    batch.position,
                    batch.end_position,
                    batch.max_timestamp,
                );
                next_offset = batch.last_offset.plus(1);
                position = batch.end_position;
                valid_end = position;
            }
            Step::Skip { next, .. } => {
                // Padding and zero gaps up to a block boundary are part of the data: a
                // truncation there would rewrite a block that may hold durable bytes.
                index.add_padding(next);
                valid_end = next;
                position = next;
            }
            Step::End => {
                return Ok(ScanEnd {
                    valid_end,
                    next_offset,
                    invalid: None,
                    invalid_position: position,
                });
            }
            Step::Invalid { reason } => {
                return Ok(ScanEnd {
                    valid_end,
                    next_offset,
                    invalid: Some(reason),
                    invalid_position: position,
                });
            }
        }
    }
}

/// What lies in the newest segment after the point where its recovery scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailProbe {
    /// The largest durable-end hint of an entry that verifies at a later block boundary
    /// (`Offset(0)` if there is none).
    pub durable_hint: Offset,
    /// The end of the last block (capped at the end of the file) that holds a non-zero byte at
    /// or after the stop point; the stop point itself if every byte from there on is zero.
    pub nonzero_end: u64,
}

/// After a scan stopped at `from`, reads the rest of the file: looks at every later block
/// boundary for an entry that verifies, keeping the largest durable-end hint, and finds the
/// last non-zero byte. Every flush starts on a block boundary, so any later flush that reached
/// the disk intact is seen here. A hint above the stop offset proves that the bytes at the stop
/// point had been made durable: corruption, not a torn tail. No non-zero byte at all means the
/// rest is a zero tail (preallocated, or unsynced writes lost whole), which is not data.
///
/// It reads to the end of the file on purpose, not to the first all-zero block: zeros inside
/// the written region do occur (a lost block of an unsynced flush, or a block of a batch whose
/// payload is zeros), and a durable entry after them is the evidence this looks for. The cost
/// is bounded: what lies past the written data is the preallocated tail, shorter than
/// `preallocate_bytes` times [`crate::log::PREALLOCATE_GROWTH_MAX`], and reading never-written
/// preallocated extents needs no device I/O on ext4 or XFS (they read as zeros; 64 MiB took
/// 2 ms here).
pub async fn probe_tail<F: File>(
    reader: &mut ChunkReader<'_, F>,
    from: u64,
) -> Result<TailProbe, IoFailure> {
    let mut probe = TailProbe {
        durable_hint: Offset(0),
        nonzero_end: from,
    };
    let mut position = from;
    while position < reader.file_size() {
        let block_end = align_up(position + 1).min(reader.file_size());
        let block = reader
            .get(
                position,
                usize::try_from(block_end - position).expect("< block"),
            )
            .await?;
        if !is_zero(&block) {
            probe.nonzero_end = block_end;
        }
        // The entry at `from` is the one the scan already judged.
        if position > from && position.is_multiple_of(BLOCK_BYTES) {
            let hint = verified_hint_at(reader, position).await?;
            probe.durable_hint = probe.durable_hint.max(hint.unwrap_or(Offset(0)));
        }
        position = block_end;
    }
    Ok(probe)
}

/// The durable-end hint of the entry at `position` if a whole entry verifies there.
async fn verified_hint_at<F: File>(
    reader: &mut ChunkReader<'_, F>,
    position: u64,
) -> Result<Option<Offset>, IoFailure> {
    let head = reader
        .get(position, ENTRY_HEADER_BYTES + ENTRY_CRC_BATCH_PREFIX_BYTES)
        .await?;
    let Ok(header) = EntryHeader::decode(&head) else {
        return Ok(None);
    };
    let verified = match header.kind {
        EntryKind::Padding => {
            let end = position + (ENTRY_HEADER_BYTES as u64) + u64::from(header.payload_bytes);
            end == align_up(position + 1) && end <= reader.file_size()
        }
        EntryKind::Batch => {
            let bytes = reader
                .get(
                    position + ENTRY_HEADER_BYTES as u64,
                    header.payload_bytes as usize,
                )
                .await?;
            schema::batch::verify(&bytes).is_ok()
        }
    };
    Ok(verified.then_some(header.durable_end_hint))
}

/// True if every byte is zero. Written without an early exit so that it vectorises: the
/// recovery probe runs it over whole preallocated tails.
fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |any, byte| any | byte) == 0
}

/// Default read-ahead for the recovery scan.
pub fn scan_chunk_bytes() -> usize {
    SCAN_CHUNK_BYTES
}
