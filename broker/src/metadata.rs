//! Topic metadata: which topics exist, their partition counts and per-topic config.
//!
//! The controller shard (shard 0) is the only writer: it validates a change, persists the new
//! snapshot durably (storage's atomic blob: write, fsync, rename, fsync dir) and only then
//! sends it to every shard, which applies it (opening or closing the partitions it owns). Each
//! shard holds its own read-only copy; nothing is shared between threads.
//!
//! Encoding (little-endian, inside storage's CRC-checked blob framing):
//! ```text
//! version u16 = 1 | epoch u64 | topic_count u32 | topics...
//! topic: name_len u16 | name bytes | partitions u32 | retention_ms i64 | retention_bytes i64
//!        | segment_bytes i64          (config values: -1 = unset, use the broker default)
//! ```

use std::collections::BTreeMap;

use crate::byte_reader::ByteReader;

/// Format version of the metadata snapshot.
pub const METADATA_VERSION: u16 = 1;
/// Longest topic name (Kafka's limit).
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Most partitions one topic may have.
pub const PARTITIONS_MAX: u32 = 10_000;

/// Per-topic overrides of the broker's log defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TopicConfig {
    /// Delete closed segments older than this.
    pub retention_ms: Option<u64>,
    /// Keep the log at about this size.
    pub retention_bytes: Option<u64>,
    /// Roll segments at this size.
    pub segment_bytes: Option<u64>,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Its name.
    pub name: String,
    /// How many partitions it has.
    pub partitions: u32,
    /// Its config overrides.
    pub config: TopicConfig,
}

/// A snapshot of all topics. `epoch` increases with every change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    /// Bumped by every change.
    pub epoch: u64,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicSpec>,
}

/// Why a topic change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The name is empty, too long, or has characters outside [A-Za-z0-9._-].
    #[error(
        "invalid topic name {name:?}: use 1 to {TOPIC_NAME_BYTES_MAX} characters from [A-Za-z0-9._-], not '.' or '..'"
    )]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// Partition count outside 1..=PARTITIONS_MAX.
    #[error("invalid partition count {partitions}: must be 1 to {PARTITIONS_MAX}")]
    InvalidPartitions {
        /// The count given.
        partitions: u32,
    },
    /// A config value is out of range.
    #[error("invalid topic config: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// The topic exists.
    #[error("topic {name:?} already exists")]
    AlreadyExists {
        /// The name.
        name: String,
    },
    /// The topic does not exist.
    #[error("unknown topic {name:?}")]
    Unknown {
        /// The name.
        name: String,
    },
}

/// Checks a topic name: it becomes part of a directory name, so it must be safe there.
pub fn validate_name(name: &str) -> Result<(), TopicError> {
    let valid = !name.is_empty()
        && name.len() <= TOPIC_NAME_BYTES_MAX
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(TopicError::InvalidName {
            name: name.to_string(),
        })
    }
}

impl Metadata {
    /// The snapshot with `spec` added.
    pub fn with_topic(&self, spec: TopicSpec) -> Result<Metadata, TopicError> {
        validate_name(&spec.name)?;
        if spec.partitions == 0 || spec.partitions > PARTITIONS_MAX {
            return Err(TopicError::InvalidPartitions {
                partitions: spec.partitions,
            });
        }
        if let Some(bytes) = spec.config.segment_bytes
            && !(64 << 10..=1 << 30).contains(&bytes)
        {
            return Err(TopicError::InvalidConfig {
                reason: format!("segment bytes {bytes} must be between 64 KiB and 1 GiB"),
            });
        }
        if self.topics.contains_key(&spec.name) {
            return Err(TopicError::AlreadyExists { name: spec.name });
        }
        let mut next = self.clone();
        next.epoch += 1;
        next.topics.insert(spec.name.clone(), spec);
        Ok(next)
    }

    /// The snapshot without topic `name`.
    pub fn without_topic(&self, name: &str) -> Result<Metadata, TopicError> {
        if !self.topics.contains_key(name) {
            return Err(TopicError::Unknown {
                name: name.to_string(),
            });
        }
        let mut next = self.clone();
        next.epoch += 1;
        next.topics.remove(name);
        Ok(next)
    }

    /// Encodes the snapshot.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&METADATA_VERSION.to_le_bytes());
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&(self.topics.len() as u32).to_le_bytes());
        let option = |value: Option<u64>| value.map_or(-1i64, |v| v as i64);
        for topic in self.topics.values() {
            out.extend_from_slice(&(topic.name.len() as u16).to_le_bytes());
            out.extend_from_slice(topic.name.as_bytes());
            out.extend_from_slice(&topic.partitions.to_le_bytes());
            out.extend_from_slice(&option(topic.config.retention_ms).to_le_bytes());
            out.extend_from_slice(&option(topic.config.retention_bytes).to_le_bytes());
            out.extend_from_slice(&option(topic.config.segment_bytes).to_le_bytes());
        }
        out
    }

    /// Decodes a snapshot; any inconsistency is an error (the blob's CRC already passed).
    pub fn decode(bytes: &[u8]) -> Result<Metadata, String> {
        let mut reader = ByteReader::new(bytes);
        let version = u16::from_le_bytes(reader.take()?);
        if version != METADATA_VERSION {
            return Err(format!("unsupported metadata version {version}"));
        }
        let epoch = u64::from_le_bytes(reader.take()?);
        let count = u32::from_le_bytes(reader.take()?);
        let mut topics = BTreeMap::new();
        let option = |value: i64| (value >= 0).then_some(value as u64);
        for _ in 0..count {
            let name_bytes = u16::from_le_bytes(reader.take()?) as usize;
            let name = String::from_utf8(reader.slice(name_bytes)?.to_vec())
                .map_err(|_| "topic name is not UTF-8".to_string())?;
            validate_name(&name).map_err(|e| e.to_string())?;
            let partitions = u32::from_le_bytes(reader.take()?);
            let config = TopicConfig {
                retention_ms: option(i64::from_le_bytes(reader.take()?)),
                retention_bytes: option(i64::from_le_bytes(reader.take()?)),
                segment_bytes: option(i64::from_le_bytes(reader.take()?)),
            };
            let spec = TopicSpec {
                name: name.clone(),
                partitions,
                config,
            };
            // A name given twice would let the later entry replace the earlier in silence
            // (found by the broker_snapshots fuzz target); encode never writes one.
            if topics.insert(name, spec).is_some() {
                return Err("a topic is named twice".to_string());
            }
        }
        if reader.left() != 0 {
            return Err("trailing bytes after the topics".to_string());
        }
        Ok(Metadata { epoch, topics })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_and_changes_are_validated() {
        let metadata = Metadata::default()
            .with_topic(TopicSpec {
                name: "orders".into(),
                partitions: 8,
                config: TopicConfig {
                    retention_ms: Some(1_000),
                    ..TopicConfig::default()
                },
            })
            .expect("valid");
        assert_eq!(metadata.epoch, 1);
        assert_eq!(Metadata::decode(&metadata.encode()), Ok(metadata.clone()));
        assert!(matches!(
            metadata.with_topic(TopicSpec {
                name: "orders".into(),
                partitions: 1,
                config: TopicConfig::default()
            }),
            Err(TopicError::AlreadyExists { .. })
        ));
        for bad in ["", ".", "..", "a/b", "x y", &"n".repeat(250)] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(matches!(
            metadata.without_topic("nope"),
            Err(TopicError::Unknown { .. })
        ));
        let encoded = metadata.encode();
        for len in 0..encoded.len() {
            assert!(Metadata::decode(&encoded[..len]).is_err(), "prefix {len}");
        }
    }

    /// Found by the broker_snapshots fuzz target: a snapshot naming a topic twice decoded, the
    /// second entry replacing the first.
    #[test]
    fn a_topic_named_twice_is_refused() {
        let spec = |partitions| TopicSpec {
            name: "orders".into(),
            partitions,
            config: TopicConfig::default(),
        };
        let once = Metadata::default().with_topic(spec(8)).expect("valid");
        let mut twice = once.encode();
        // Append the topic's entry again (with another partition count) and count it.
        let entry = twice[14..].to_vec();
        twice.extend_from_slice(&entry);
        let last = twice.len() - 28;
        twice[last..last + 4].copy_from_slice(&3u32.to_le_bytes());
        twice[10..14].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(
            Metadata::decode(&twice),
            Err("a topic is named twice".to_string())
        );
        assert_eq!(Metadata::decode(&once.encode()), Ok(once));
    }
}
