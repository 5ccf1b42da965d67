//! A segment's sparse offset index and time index, kept in memory and written to
//! `<base>.index` / `<base>.timeindex` when the segment closes.
//!
//! Indexes are derived data: the segment file is the truth. They are only ever written for a
//! segment whose data is durable and complete (at roll or clean close), and a missing or damaged
//! index file is rebuilt by scanning its segment. An entry is added only for a batch that has
//! been written, so the index never points at bytes that are not on disk.
//!
//! Invariants (asserted): offsets and positions strictly increase; time entries' timestamps
//! strictly increase.

use zerocopy::little_endian::{I64, U32, U64};
use zerocopy::{FromBytes, IntoBytes};

use crate::format::{
    self, FormatError, IndexSummaryLayout, MetaKind, Offset, OffsetEntryLayout, TimeEntryLayout,
};

/// One offset index entry: the batch whose base offset is `base + relative_offset` starts at
/// file `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OffsetEntry {
    relative_offset: u32,
    position: u32,
}

/// One time index entry: every batch before the one at `position` (base
/// `base + relative_offset`) has a max timestamp of at most `max_timestamp_before`, so a search
/// for a timestamp above it may start at this batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TimeEntry {
    max_timestamp_before: i64,
    relative_offset: u32,
    position: u32,
}

/// What a segment contains, as the index knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSummary {
    /// One past the last offset written to the segment (its base if empty).
    pub end_offset: Offset,
    /// File position after the last written entry (including any padding).
    pub end_position: u64,
    /// Largest batch max_timestamp in the segment, `i64::MIN` when empty.
    pub max_timestamp: i64,
}

/// The in-memory index of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentIndex {
    base: Offset,
    interval_bytes: u32,
    offsets: Vec<OffsetEntry>,
    times: Vec<TimeEntry>,
    last_indexed_position: Option<u32>,
    last_timed_position: Option<u32>,
    summary: SegmentSummary,
}

/// Where to start scanning for an offset or a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexHit {
    /// Base offset of the batch at `position`.
    pub offset: Offset,
    /// File position of a batch entry header.
    pub position: u64,
}

impl SegmentIndex {
    /// An empty index for a segment starting at `base`, whose data starts at `data_start`.
    pub fn new(base: Offset, data_start: u64, interval_bytes: u32) -> SegmentIndex {
        assert!(interval_bytes > 0);
        SegmentIndex {
            base,
            interval_bytes,
            offsets: Vec::new(),
            times: Vec::new(),
            last_indexed_position: None,
            last_timed_position: None,
            summary: SegmentSummary {
                end_offset: base,
                end_position: data_start,
                max_timestamp: i64::MIN,
            },
        }
    }

    /// The segment's summary as far as it has been written.
    pub fn summary(&self) -> SegmentSummary {
        self.summary
    }

    /// Records a written batch: `[base_offset, last_offset]` starting at `position`, whose
    /// entry (with its header) ends at `end_position`.
    pub fn add_batch(
        &mut self,
        base_offset: Offset,
        last_offset: Offset,
        position: u64,
        end_position: u64,
        max_timestamp: i64,
    ) {
        assert_eq!(
            base_offset, self.summary.end_offset,
            "batches must be contiguous"
        );
        assert!(last_offset >= base_offset);
        assert!(
            position >= self.summary.end_position,
            "positions must increase"
        );
        assert!(end_position > position);
        let relative_offset = u32::try_from(base_offset.0 - self.base.0)
            .expect("a segment holds fewer than 2^32 offsets");
        let position_u32 = u32::try_from(position).expect("segment_bytes_max < 4 GiB");
        let due = |last: Option<u32>| match last {
            None => true,
            Some(last) => position_u32 - last >= self.interval_bytes,
        };
        if due(self.last_indexed_position) {
            self.offsets.push(OffsetEntry {
                relative_offset,
                position: position_u32,
            });
            self.last_indexed_position = Some(position_u32);
        }
        // The running maximum of every earlier batch (Kafka's time index keeps the same): an
        // entry may only claim what holds for *all* batches before it.
        let before = self.summary.max_timestamp;
        let raises_time = self
            .times
            .last()
            .is_none_or(|entry| before > entry.max_timestamp_before);
        if raises_time && due(self.last_timed_position) {
            self.times.push(TimeEntry {
                max_timestamp_before: before,
                relative_offset,
                position: position_u32,
            });
            self.last_timed_position = Some(position_u32);
        }
        self.summary.end_offset = last_offset.plus(1);
        self.summary.end_position = end_position;
        self.summary.max_timestamp = self.summary.max_timestamp.max(max_timestamp);
    }

    /// Records padding (or skipped zeros) that moved the end of the data to `end_position`.
    pub fn add_padding(&mut self, end_position: u64) {
        assert!(end_position >= self.summary.end_position);
        self.summary.end_position = end_position;
    }

    /// The last indexed batch at or before `offset`: scanning from there finds it.
    pub fn lookup_offset(&self, offset: Offset) -> Option<IndexHit> {
        let relative = offset.0.checked_sub(self.base.0)?;
        let after = self
            .offsets
            .partition_point(|entry| u64::from(entry.relative_offset) <= relative);
        let entry = self.offsets.get(after.checked_sub(1)?)?;
        Some(IndexHit {
            offset: self.base.plus(u64::from(entry.relative_offset)),
            position: u64::from(entry.position),
        })
    }

    /// A batch from which scanning forward reaches the first batch with
    /// `max_timestamp >= timestamp` (None: scan from the start of the segment).
    pub fn lookup_time(&self, timestamp: i64) -> Option<IndexHit> {
        // The last entry whose earlier batches are all below the target: the first batch at
        // or after the target is at or after that entry's batch.
        let below = self
            .times
            .partition_point(|entry| entry.max_timestamp_before < timestamp);
        let entry = self.times.get(below.checked_sub(1)?)?;
        Some(IndexHit {
            offset: self.base.plus(u64::from(entry.relative_offset)),
            position: u64::from(entry.position),
        })
    }

    /// Encodes the offset index file (with the summary) and the time index file.
    pub fn encode(&self) -> (Vec<u8>, Vec<u8>) {
        let summary = IndexSummaryLayout {
            end_offset: U64::new(self.summary.end_offset.0),
            end_position: U64::new(self.summary.end_position),
            max_timestamp: I64::new(self.summary.max_timestamp),
        };
        let offset_entries: Vec<OffsetEntryLayout> = self
            .offsets
            .iter()
            .map(|entry| OffsetEntryLayout {
                relative_offset: U32::new(entry.relative_offset),
                position: U32::new(entry.position),
            })
            .collect();
        let time_entries: Vec<TimeEntryLayout> = self
            .times
            .iter()
            .map(|entry| TimeEntryLayout {
                max_timestamp_before: I64::new(entry.max_timestamp_before),
                relative_offset: U32::new(entry.relative_offset),
                position: U32::new(entry.position),
            })
            .collect();
        let offsets = [summary.as_bytes(), offset_entries.as_bytes()].concat();
        let times = time_entries.as_bytes();
        (
            format::encode_meta(MetaKind::OffsetIndex, &offsets),
            format::encode_meta(MetaKind::TimeIndex, times),
        )
    }

    /// Decodes both index files of the segment at `base`. Any damage, or entries that break the
    /// index invariants, is an error: the caller rebuilds the index from the segment.
    pub fn decode(
        base: Offset,
        interval_bytes: u32,
        offset_file: &[u8],
        time_file: &[u8],
    ) -> Result<SegmentIndex, IndexDecodeError> {
        let offsets_payload = format::decode_meta(MetaKind::OffsetIndex, offset_file)?;
        let times_payload = format::decode_meta(MetaKind::TimeIndex, time_file)?;
        // The summary, then whole entries: any other length is not an index of ours.
        let (summary, offset_entries) = IndexSummaryLayout::ref_from_prefix(offsets_payload)
            .map_err(|_| IndexDecodeError::Shape)?;
        let offset_entries = <[OffsetEntryLayout]>::ref_from_bytes(offset_entries)
            .map_err(|_| IndexDecodeError::Shape)?;
        let time_entries = <[TimeEntryLayout]>::ref_from_bytes(times_payload)
            .map_err(|_| IndexDecodeError::Shape)?;
        let summary = SegmentSummary {
            end_offset: Offset(summary.end_offset.get()),
            end_position: summary.end_position.get(),
            max_timestamp: summary.max_timestamp.get(),
        };
        let offsets: Vec<OffsetEntry> = offset_entries
            .iter()
            .map(|entry| OffsetEntry {
                relative_offset: entry.relative_offset.get(),
                position: entry.position.get(),
            })
            .collect();
        let times: Vec<TimeEntry> = time_entries
            .iter()
            .map(|entry| TimeEntry {
                max_timestamp_before: entry.max_timestamp_before.get(),
                relative_offset: entry.relative_offset.get(),
                position: entry.position.get(),
            })
            .collect();
        let increasing_offsets = offsets.windows(2).all(|pair| {
            pair[0].relative_offset < pair[1].relative_offset && pair[0].position < pair[1].position
        });
        let increasing_times = times.windows(2).all(|pair| {
            pair[0].max_timestamp_before < pair[1].max_timestamp_before
                && pair[0].relative_offset < pair[1].relative_offset
        });
        let within = offsets.iter().all(|entry| {
            base.0 + u64::from(entry.relative_offset) < summary.end_offset.0
                && u64::from(entry.position) < summary.end_position
        }) && times
            .iter()
            .all(|entry| base.0 + u64::from(entry.relative_offset) < summary.end_offset.0);
        if !increasing_offsets || !increasing_times || !within || summary.end_offset < base {
            return Err(IndexDecodeError::Shape);
        }
        Ok(SegmentIndex {
            base,
            interval_bytes,
            last_indexed_position: offsets.last().map(|entry| entry.position),
            last_timed_position: times.last().map(|entry| entry.position),
            offsets,
            times,
            summary,
        })
    }
}

/// Why an index file could not be used (the caller rebuilds it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexDecodeError {
    /// The file failed its own checks.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The entries break the index invariants.
    #[error("index entries are out of order or out of range")]
    Shape,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SegmentIndex {
        let mut index = SegmentIndex::new(Offset(100), 4096, 8192);
        // Ten batches of 10 records, 4 KiB apart, timestamps rising then dipping.
        for i in 0..10u64 {
            let timestamps = [10, 20, 30, 25, 40, 50, 45, 60, 70, 80];
            index.add_batch(
                Offset(100 + i * 10),
                Offset(100 + i * 10 + 9),
                4096 + i * 4096,
                4096 + (i + 1) * 4096,
                timestamps[i as usize],
            );
        }
        index
    }

    #[test]
    fn lookups_find_floor_batches() {
        let index = sample();
        // Indexed every 8 KiB: batches 0, 2, 4, 6, 8.
        assert_eq!(index.lookup_offset(Offset(99)), None);
        assert_eq!(
            index.lookup_offset(Offset(100)),
            Some(IndexHit {
                offset: Offset(100),
                position: 4096
            })
        );
        assert_eq!(
            index.lookup_offset(Offset(135)),
            Some(IndexHit {
                offset: Offset(120),
                position: 4096 * 3
            })
        );
        assert_eq!(index.summary().end_offset, Offset(200));
        assert_eq!(index.summary().max_timestamp, 80);
        // Time: for every target, the hint is at or before the first batch whose timestamp
        // reaches it (so a forward scan finds it), and as far forward as the entries allow.
        let timestamps = [10, 20, 30, 25, 40, 50, 45, 60, 70, 80];
        for target in 0..90 {
            let first = timestamps.iter().position(|t| *t >= target);
            let hit = index.lookup_time(target);
            if let (Some(first), Some(hit)) = (first, hit) {
                assert!(
                    hit.offset <= Offset(100 + first as u64 * 10),
                    "target {target}"
                );
            }
        }
        assert_eq!(
            index.lookup_time(41).map(|hit| hit.offset),
            Some(Offset(140))
        );
    }

    /// The index files' bytes, pinned: produced by the hand-written encoder that the zerocopy
    /// layouts replaced (see `format::tests::encodings_are_pinned_byte_for_byte`).
    #[test]
    fn index_files_are_pinned_byte_for_byte() {
        let mut index = SegmentIndex::new(Offset(100), 4096, 1);
        index.add_batch(Offset(100), Offset(104), 4096, 4200, -5);
        index.add_batch(Offset(105), Offset(105), 4200, 4300, 0x0102_0304_0506);
        index.add_batch(Offset(106), Offset(110), 4300, 8192, 7);
        let (offsets, times) = index.encode();
        let expected = crate::format::tests::hex(concat!(
            "524255534d455441", // magic
            "0100",             // version 1
            "0300",             // kind 3: offset index
            "30000000",         // payload_bytes 48
            "6f00000000000000", // end_offset 111
            "0020000000000000", // end_position 8192
            "0605040302010000", // max_timestamp
            "0000000000100000", // entry: relative_offset 0, position 4096
            "0500000068100000", // entry: relative_offset 5, position 4200
            "06000000cc100000", // entry: relative_offset 6, position 4300
            "899b74b1",         // crc of bytes 0..64
        ));
        assert_eq!(offsets[..expected.len()], expected[..]);
        assert!(offsets[expected.len()..].iter().all(|byte| *byte == 0));
        let expected = crate::format::tests::hex(concat!(
            "524255534d455441",                 // magic
            "0100",                             // version 1
            "0400",                             // kind 4: time index
            "30000000",                         // payload_bytes 48
            "00000000000000800000000000100000", // entry: max_timestamp_before i64::MIN, relative_offset 0, position 4096
            "fbffffffffffffff0500000068100000", // entry: -5, relative_offset 5, position 4200
            "060504030201000006000000cc100000", // entry: 0x0102_0304_0506, relative_offset 6, position 4300
            "af030af3",                         // crc of bytes 0..64
        ));
        assert_eq!(times[..expected.len()], expected[..]);
        assert!(times[expected.len()..].iter().all(|byte| *byte == 0));
        assert_eq!(
            SegmentIndex::decode(Offset(100), 1, &offsets, &times),
            Ok(index)
        );
    }

    #[test]
    fn encode_decode_round_trip_and_damage_is_detected() {
        let index = sample();
        let (offsets, times) = index.encode();
        let decoded = SegmentIndex::decode(Offset(100), 8192, &offsets, &times).expect("decodes");
        assert_eq!(decoded, index);
        let mut bad = offsets.clone();
        bad[30] ^= 4;
        assert!(SegmentIndex::decode(Offset(100), 8192, &bad, &times).is_err());
        assert!(SegmentIndex::decode(Offset(100), 8192, &times, &offsets).is_err());
    }
}
