//! Which shard owns which partition: the one place that decides cross-core routing.
//!
//! Ownership is a pure function of (topic, partition, shard count), so every shard computes it
//! alone, without coordination, and it never changes while the broker runs. Partitions of one
//! topic are spread round-robin from a per-topic starting shard, so a topic with at least as
//! many partitions as shards uses every core, and many small topics do not all land on shard 0.

use std::fmt;

/// The index of a shard (one executor pinned to one core).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard-{}", self.0)
    }
}

/// The index of a partition within its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionId(pub u32);

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    /// Topic name.
    pub topic: String,
    /// Partition within the topic.
    pub partition: PartitionId,
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition.0)
    }
}

/// FNV-1a: stable across builds and platforms (std's hasher is not), so ownership never
/// changes with a toolchain upgrade. Also maps a consumer group to its offsets partition.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The shard that owns `partition` of `topic` among `shard_count` shards.
pub fn shard_for(topic: &str, partition: PartitionId, shard_count: u16) -> ShardId {
    assert!(shard_count > 0);
    let start = fnv1a(topic.as_bytes()) % u64::from(shard_count);
    ShardId(((start + u64::from(partition.0)) % u64::from(shard_count)) as u16)
}

/// The shard that coordinates topic creation and deletion.
pub const CONTROLLER: ShardId = ShardId(0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_of_a_topic_spread_over_every_shard() {
        for shards in 1..=8u16 {
            let mut owned = vec![0u32; shards as usize];
            for partition in 0..u32::from(shards) * 4 {
                owned[shard_for("events", PartitionId(partition), shards).0 as usize] += 1;
            }
            assert!(owned.iter().all(|count| *count == 4), "{shards}: {owned:?}");
        }
    }

    #[test]
    fn ownership_is_stable() {
        // Pinned values: changing the function moves data between shards on upgrade.
        assert_eq!(shard_for("events", PartitionId(0), 4), ShardId(0));
        assert_eq!(shard_for("events", PartitionId(1), 4), ShardId(1));
        assert_eq!(
            shard_for("orders", PartitionId(0), 2),
            shard_for("orders", PartitionId(2), 2)
        );
    }
}
