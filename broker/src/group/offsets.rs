//! Committed offsets: how they are stored in the internal topic `__consumer_offsets`, the
//! in-memory table of one of its partitions, and that table's snapshot.
//!
//! A group's offsets live in partition `fnv1a(group) % partitions` of the internal topic (the
//! partition count is fixed when the broker first creates the topic); the shard that owns that
//! partition is the group's coordinator. Each commit appends one Kafka batch to that partition
//! (acks durable: an acknowledged commit survives kill -9) with one record per offset:
//!
//! ```text
//! key:   version u16 = 1 | group_len u16 | group | topic_len u16 | topic | partition u32
//! value: version u16 = 1 | offset u64 | commit_timestamp_ms i64   (a commit)
//!        null                                                   (a tombstone: expired)
//! ```
//!
//! (little-endian, like every ringbus format; the Kafka batch around them is big-endian by its
//! own spec). The last record for a key wins. A record with a key and no value (null, Kafka's
//! tombstone) deletes the key: the coordinator appends one per offset that expired
//! (`--offsets-retention-ms`, [`super::retention`]), so replaying the log after a restart does
//! not bring expired offsets back. A broker from before expiry skips tombstones (it read only
//! records with both a key and a value), so after a downgrade expired offsets reappear.
//!
//! So the log does not grow forever, the coordinator snapshots the whole table of a partition
//! once [`SNAPSHOT_RECORDS`] records were appended since the last snapshot, keeping the one it
//! replaces, and then deletes the log's segments below the *previous* snapshot (whole
//! segments: `storage::Log::delete_before`). Recovery loads the newest trusted snapshot, or the
//! previous, and replays the records after it ([`OffsetTable::replay_batch`]). Which snapshot
//! is trusted is [`crate::snapshot`]'s rule with [`crate::snapshot::OnRefusal::Fail`] over two
//! generations ([`crate::snapshot::load_newest_or_previous`]): once segments are deleted below
//! them, the snapshots are the only copy of those commits, so when neither can be trusted (or
//! the log starts above what the usable one covers) the load fails (corruption) rather than
//! serve offsets that silently went back. The snapshot is a CRC-checked blob in the
//! partition's directory, holding the table as it is (so no expired offset, and no tombstone):
//!
//! ```text
//! version u16 = 1 | through_offset u64 | entry_count u32 | entries...
//! entry: group_len u16 | group | topic_len u16 | topic | partition u32 | offset u64
//!        | commit_timestamp_ms i64
//! ```
//!
//! Pure data and codecs; the table lives on the coordinator shard.

use std::collections::BTreeMap;

use schema::batch::{BatchBuilder, BatchHeader};

use crate::byte_reader::{ByteReader, Truncated};
use crate::topology::fnv1a;

/// The internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Its partition count when the broker creates it.
pub const OFFSETS_PARTITIONS: u32 = 8;
/// Its segment size: small, so snapshots let whole segments go soon.
pub const OFFSETS_SEGMENT_BYTES: u64 = 8 << 20;
/// Records appended to a partition after its last snapshot before the next one is taken.
pub const SNAPSHOT_RECORDS: u64 = 100_000;
/// Name of the snapshot blob in the partition's directory.
pub const SNAPSHOT_FILE: &str = "offsets-snapshot";
/// Longest group name, in bytes.
pub const GROUP_NAME_BYTES_MAX: usize = 255;
/// Longest topic name stored (the broker's own limit is lower).
const TOPIC_NAME_BYTES_MAX: usize = u16::MAX as usize;
/// Version of the record and snapshot layouts.
const VERSION: u16 = 1;

/// Names starting with this are the broker's own topics: clients may not create, delete or
/// produce to them.
pub const INTERNAL_PREFIX: &str = "__";

/// Whether a topic is internal to the broker.
pub fn is_internal(topic: &str) -> bool {
    topic.starts_with(INTERNAL_PREFIX)
}

/// The partition of the offsets topic holding `group`'s offsets.
pub fn partition_for(group: &str, partitions: u32) -> u32 {
    assert!(partitions > 0, "the offsets topic has partitions");
    // Stable across builds: the group-to-partition map must never change.
    (fnv1a(group.as_bytes()) % u64::from(partitions)) as u32
}

/// Checks a group name: non-empty, at most [`GROUP_NAME_BYTES_MAX`] bytes.
pub fn validate_group(group: &str) -> Result<(), String> {
    if group.is_empty() || group.len() > GROUP_NAME_BYTES_MAX {
        return Err(format!(
            "invalid group name {group:?}: use 1 to {GROUP_NAME_BYTES_MAX} bytes"
        ));
    }
    Ok(())
}

/// Which offset: a group's, for one partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OffsetKey {
    /// The group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
}

/// A committed offset: the next offset the group consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The offset.
    pub offset: u64,
    /// When it was committed (broker time, ms).
    pub timestamp_ms: i64,
}

/// Why stored bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("committed offsets: {reason}")]
pub struct OffsetsFormatError {
    /// What was wrong.
    pub reason: String,
}

fn format_error(reason: impl Into<String>) -> OffsetsFormatError {
    OffsetsFormatError {
        reason: reason.into(),
    }
}

fn put_string(out: &mut Vec<u8>, value: &str) {
    assert!(
        value.len() <= TOPIC_NAME_BYTES_MAX,
        "a {} byte name does not fit a u16 length",
        value.len()
    );
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value.as_bytes());
}

fn put_key_fields(out: &mut Vec<u8>, key: &OffsetKey) {
    put_string(out, &key.group);
    put_string(out, &key.topic);
    out.extend_from_slice(&key.partition.to_le_bytes());
}

/// The record key of `key`.
pub fn encode_key(key: &OffsetKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + key.group.len() + key.topic.len());
    out.extend_from_slice(&VERSION.to_le_bytes());
    put_key_fields(&mut out, key);
    out
}

/// The record value of `committed`.
pub fn encode_value(committed: &Committed) -> Vec<u8> {
    let mut out = Vec::with_capacity(18);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&committed.offset.to_le_bytes());
    out.extend_from_slice(&committed.timestamp_ms.to_le_bytes());
    out
}

/// One batch holding a tombstone (the key, no value) per expired offset, in order. Panics on
/// an empty list (a caller bug).
pub fn tombstone_batch(keys: &[OffsetKey], now_ms: i64) -> Vec<u8> {
    assert!(!keys.is_empty(), "a tombstone batch needs a key");
    let mut builder = BatchBuilder::new(now_ms);
    for key in keys {
        builder.push(Some(&encode_key(key)), None, now_ms, &[]);
    }
    builder.finish()
}

/// One batch holding a record per commit, in order. Panics on an empty list (a caller bug).
pub fn commit_batch(commits: &[(OffsetKey, Committed)], now_ms: i64) -> Vec<u8> {
    assert!(!commits.is_empty(), "a commit batch needs a commit");
    let mut builder = BatchBuilder::new(now_ms);
    for (key, committed) in commits {
        builder.push(
            Some(&encode_key(key)),
            Some(&encode_value(committed)),
            now_ms,
            &[],
        );
    }
    builder.finish()
}

impl From<Truncated> for OffsetsFormatError {
    fn from(truncated: Truncated) -> OffsetsFormatError {
        format_error(truncated.to_string())
    }
}

/// The fields of the record and snapshot layouts, read from a [`ByteReader`].
trait Fields {
    fn string(&mut self) -> Result<String, OffsetsFormatError>;
    fn version(&mut self) -> Result<(), OffsetsFormatError>;
    fn key_fields(&mut self) -> Result<OffsetKey, OffsetsFormatError>;
    fn committed(&mut self) -> Result<Committed, OffsetsFormatError>;
    fn end(&self) -> Result<(), OffsetsFormatError>;
}

impl Fields for ByteReader<'_> {
    fn string(&mut self) -> Result<String, OffsetsFormatError> {
        let length = usize::from(u16::from_le_bytes(self.take()?));
        String::from_utf8(self.slice(length)?.to_vec())
            .map_err(|_| format_error("a name is not UTF-8"))
    }

    fn version(&mut self) -> Result<(), OffsetsFormatError> {
        let version = u16::from_le_bytes(self.take()?);
        if version != VERSION {
            return Err(format_error(format!(
                "version {version}, this broker reads {VERSION}"
            )));
        }
        Ok(())
    }

    fn key_fields(&mut self) -> Result<OffsetKey, OffsetsFormatError> {
        Ok(OffsetKey {
            group: self.string()?,
            topic: self.string()?,
            partition: u32::from_le_bytes(self.take()?),
        })
    }

    fn committed(&mut self) -> Result<Committed, OffsetsFormatError> {
        Ok(Committed {
            offset: u64::from_le_bytes(self.take()?),
            timestamp_ms: i64::from_le_bytes(self.take()?),
        })
    }

    fn end(&self) -> Result<(), OffsetsFormatError> {
        match self.left() {
            0 => Ok(()),
            left => Err(format_error(format!("{left} bytes left over"))),
        }
    }
}

/// Decodes the key of one record of the offsets topic (a commit's or a tombstone's).
pub fn decode_key(key: &[u8]) -> Result<OffsetKey, OffsetsFormatError> {
    let mut reader = ByteReader::new(key);
    reader.version()?;
    let key = reader.key_fields()?;
    reader.end()?;
    Ok(key)
}

/// Decodes one commit record of the offsets topic.
pub fn decode_record(
    key: &[u8],
    value: &[u8],
) -> Result<(OffsetKey, Committed), OffsetsFormatError> {
    let key = decode_key(key)?;
    let mut reader = ByteReader::new(value);
    reader.version()?;
    let committed = reader.committed()?;
    reader.end()?;
    Ok((key, committed))
}

/// The committed offsets of one offsets partition, ordered by (group, topic, partition).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetTable {
    offsets: BTreeMap<OffsetKey, Committed>,
}

impl OffsetTable {
    /// The committed offset of `key`, if any.
    pub fn get(&self, key: &OffsetKey) -> Option<Committed> {
        self.offsets.get(key).copied()
    }

    /// Records a commit (the last one for a key wins).
    pub fn apply(&mut self, key: OffsetKey, committed: Committed) {
        self.offsets.insert(key, committed);
    }

    /// Deletes the committed offset of `key` (it expired); returns what it was.
    pub fn remove(&mut self, key: &OffsetKey) -> Option<Committed> {
        self.offsets.remove(key)
    }

    /// Every committed offset, ordered by (group, topic, partition).
    pub fn iter(&self) -> impl Iterator<Item = (&OffsetKey, Committed)> {
        self.offsets
            .iter()
            .map(|(key, committed)| (key, *committed))
    }

    /// Entries in the table.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// True when nothing is committed.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Every committed offset of `group`, by topic and partition.
    pub fn of_group<'t>(
        &'t self,
        group: &'t str,
    ) -> impl Iterator<Item = (&'t OffsetKey, Committed)> + 't {
        let start = OffsetKey {
            group: group.to_string(),
            topic: String::new(),
            partition: 0,
        };
        self.offsets
            .range(start..)
            .take_while(move |(key, _)| key.group == group)
            .map(|(key, committed)| (key, *committed))
    }

    /// The groups with at least one committed offset.
    pub fn groups(&self) -> Vec<String> {
        let mut groups: Vec<String> = Vec::new();
        for key in self.offsets.keys() {
            if groups.last() != Some(&key.group) {
                groups.push(key.group.clone());
            }
        }
        groups
    }

    /// Replays one stored batch of the offsets topic while the table is rebuilt from the log
    /// ([`crate::snapshot::replay`]): applies its records at or after `from`, where the
    /// snapshot stops (the first batch a read returns may start below that; the snapshot holds
    /// those records already): a commit sets its key, a tombstone (a key without a value)
    /// deletes it. Returns how many records were applied. A record that does not decode is an
    /// error: unlike a producer's batch, a commit cannot be skipped without serving an offset
    /// that went back, nor a tombstone without bringing an expired offset back.
    pub fn replay_batch(&mut self, batch: &[u8], from: u64) -> Result<u64, OffsetsFormatError> {
        let damaged = |error: schema::batch::BatchError| format_error(error.to_string());
        let header = BatchHeader::parse(batch).map_err(damaged)?;
        let mut applied = 0;
        for (delta, record) in schema::batch::records(batch).map_err(damaged)?.enumerate() {
            if (header.base_offset as u64).saturating_add(delta as u64) < from {
                continue;
            }
            let record = record.map_err(damaged)?;
            match (record.key, record.value) {
                (Some(key), Some(value)) => {
                    let (key, committed) = decode_record(key, value)?;
                    self.apply(key, committed);
                }
                (Some(key), None) => {
                    // A tombstone may name a key the table does not hold: the snapshot was
                    // taken after the expiry, or the key was re-committed and expired again.
                    self.remove(&decode_key(key)?);
                }
                // A record without a key is neither (none is ever written).
                (None, _) => continue,
            }
            applied += 1;
        }
        Ok(applied)
    }

    /// The snapshot of the table as of `through` (every record below it is in it).
    pub fn encode(&self, through: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + self.offsets.len() * 48);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&through.to_le_bytes());
        out.extend_from_slice(&(self.offsets.len() as u32).to_le_bytes());
        for (key, committed) in &self.offsets {
            put_key_fields(&mut out, key);
            out.extend_from_slice(&committed.offset.to_le_bytes());
            out.extend_from_slice(&committed.timestamp_ms.to_le_bytes());
        }
        out
    }

    /// Decodes a snapshot: the offset it covers through, and the table.
    pub fn decode(bytes: &[u8]) -> Result<(u64, OffsetTable), OffsetsFormatError> {
        let mut reader = ByteReader::new(bytes);
        reader.version()?;
        let through = u64::from_le_bytes(reader.take()?);
        let count = u32::from_le_bytes(reader.take()?);
        let mut table = OffsetTable::default();
        for _ in 0..count {
            let key = reader.key_fields()?;
            let committed = reader.committed()?;
            if table.offsets.insert(key.clone(), committed).is_some() {
                return Err(format_error(format!("{key:?} appears twice")));
            }
        }
        reader.end()?;
        Ok((through, table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: &str, topic: &str, partition: u32) -> OffsetKey {
        OffsetKey {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
        }
    }

    #[test]
    fn records_round_trip_through_a_kafka_batch() {
        let commits = vec![
            (
                key("billing", "orders", 0),
                Committed {
                    offset: 42,
                    timestamp_ms: 7,
                },
            ),
            (
                key("billing-ü", "orders", u32::MAX),
                Committed {
                    offset: u64::MAX,
                    timestamp_ms: -1,
                },
            ),
        ];
        let batch = commit_batch(&commits, 1_000);
        schema::batch::verify_with_records(&batch).expect("a valid batch");
        let decoded: Vec<(OffsetKey, Committed)> = schema::batch::records(&batch)
            .expect("records")
            .map(|record| {
                let record = record.expect("record");
                decode_record(record.key.expect("key"), record.value.expect("value"))
                    .expect("decodes")
            })
            .collect();
        assert_eq!(decoded, commits);
    }

    #[test]
    fn damaged_records_are_errors() {
        let good_key = encode_key(&key("g", "t", 1));
        let good_value = encode_value(&Committed {
            offset: 1,
            timestamp_ms: 2,
        });
        for cut in 0..good_key.len() {
            assert!(decode_record(&good_key[..cut], &good_value).is_err());
        }
        for cut in 0..good_value.len() {
            assert!(decode_record(&good_key, &good_value[..cut]).is_err());
        }
        let mut newer = good_value.clone();
        newer[0] = 9;
        assert!(decode_record(&good_key, &newer).is_err());
        let mut longer = good_key.clone();
        longer.push(0);
        assert!(decode_record(&longer, &good_value).is_err());
    }

    #[test]
    fn the_table_keeps_the_last_commit_and_snapshots_round_trip() {
        let mut table = OffsetTable::default();
        let at = |offset| Committed {
            offset,
            timestamp_ms: 0,
        };
        table.apply(key("b", "t", 0), at(5));
        table.apply(key("a", "t", 1), at(1));
        table.apply(key("a", "t", 0), at(3));
        table.apply(key("a", "t", 0), at(9));
        table.apply(key("ab", "t", 0), at(2));
        assert_eq!(table.get(&key("a", "t", 0)), Some(at(9)));
        let of_a: Vec<_> = table.of_group("a").map(|(key, _)| key.clone()).collect();
        assert_eq!(of_a, vec![key("a", "t", 0), key("a", "t", 1)]);
        assert_eq!(table.groups(), vec!["a", "ab", "b"]);
        let bytes = table.encode(77);
        assert_eq!(OffsetTable::decode(&bytes), Ok((77, table.clone())));
        for cut in 0..bytes.len() {
            assert!(OffsetTable::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn replaying_a_batch_applies_its_commits_from_the_snapshot_on() {
        let at = |offset| Committed {
            offset,
            timestamp_ms: 3,
        };
        let commits = vec![
            (key("g", "t", 0), at(1)),
            (key("g", "t", 1), at(2)),
            (key("g", "t", 0), at(5)),
        ];
        let mut batch = commit_batch(&commits, 3);
        schema::batch::set_base_offset(&mut batch, 40);
        let mut table = OffsetTable::default();
        assert_eq!(
            table.replay_batch(&batch, 41),
            Ok(2),
            "offset 40 is in the snapshot"
        );
        assert_eq!(table.get(&key("g", "t", 0)), Some(at(5)));
        assert_eq!(table.get(&key("g", "t", 1)), Some(at(2)));
        let mut whole = OffsetTable::default();
        assert_eq!(whole.replay_batch(&batch, 0), Ok(3));
        assert_eq!(whole, table);
        let last = batch.len() - 1;
        batch[last] ^= 1;
        assert!(
            OffsetTable::default().replay_batch(&batch, 0).is_err(),
            "a damaged commit is an error, not skipped"
        );
    }

    #[test]
    fn replaying_a_tombstone_deletes_its_key() {
        let at = |offset| Committed {
            offset,
            timestamp_ms: 3,
        };
        let mut table = OffsetTable::default();
        table.apply(key("g", "t", 0), at(1));
        table.apply(key("g", "t", 1), at(2));
        let mut batch = tombstone_batch(&[key("g", "t", 0), key("gone", "t", 0)], 4);
        schema::batch::verify_with_records(&batch).expect("a valid batch");
        for record in schema::batch::records(&batch).expect("records") {
            let record = record.expect("record");
            assert_eq!(record.value, None, "a tombstone has no value");
        }
        assert_eq!(
            table.replay_batch(&batch, 0),
            Ok(2),
            "a tombstone of a key the table lacks is still a record"
        );
        assert_eq!(table.get(&key("g", "t", 0)), None);
        assert_eq!(table.get(&key("g", "t", 1)), Some(at(2)));
        let last = batch.len() - 1;
        batch[last] ^= 1;
        assert!(
            OffsetTable::default().replay_batch(&batch, 0).is_err(),
            "a damaged tombstone is an error, not skipped"
        );
    }

    /// `partition_for("billing", 8)` as computed by the first release.
    const PINNED_BILLING: u32 = 4;

    #[test]
    fn groups_map_to_stable_partitions() {
        // Pinned: changing the function would lose every group's offsets on upgrade.
        assert_eq!(partition_for("billing", 8), PINNED_BILLING);
        let spread: std::collections::BTreeSet<u32> = (0..100)
            .map(|index| partition_for(&format!("group-{index}"), 8))
            .collect();
        assert_eq!(spread.len(), 8, "groups spread over every partition");
        assert!(validate_group("").is_err());
        assert!(validate_group(&"g".repeat(GROUP_NAME_BYTES_MAX + 1)).is_err());
        assert!(validate_group("g").is_ok());
        assert!(is_internal(OFFSETS_TOPIC));
        assert!(!is_internal("orders"));
    }
}
