//! [`Partitioner`]: which partition a producer record goes to.
//!
//! The rule, in order: an explicit partition wins; else a record with a key goes where Kafka's
//! default partitioner puts it (`murmur2(key) & 0x7fffffff` modulo the partition count, via
//! [`schema::murmur2::partition_for_key`]), so mixed Kafka and ringbus producers keep per-key
//! order; else the record is *sticky*: keyless records of a topic all go to one partition until
//! that partition's batch is sealed for sending, then to the next partition round-robin. Sticky
//! placement fills batches instead of spreading a few records over every partition.
//!
//! Pure state, no I/O: the producer owns one on its executor thread and tells it when a batch
//! is sealed ([`Partitioner::batch_sealed`]).

use crate::fast_hash::FastMap;

/// Chooses partitions. See the module documentation for the rule.
#[derive(Debug, Clone, Default)]
pub struct Partitioner {
    /// The current sticky partition of each topic that has had a keyless record.
    sticky: FastMap<String, u32>,
    /// Where a topic's sticky partition starts; spreads producers that start together.
    start: u32,
}

impl Partitioner {
    /// A partitioner whose first sticky partition for each topic is `start` modulo its
    /// partition count.
    pub fn new(start: u32) -> Partitioner {
        Partitioner {
            sticky: FastMap::default(),
            start,
        }
    }

    /// The partition for a record of `topic`, which has `partition_count` partitions.
    ///
    /// Panics if `partition_count` is 0 and the partition is not explicit: a topic has at least
    /// one partition, so that is a caller bug.
    pub fn choose(
        &mut self,
        topic: &str,
        explicit: Option<u32>,
        key: Option<&[u8]>,
        partition_count: u32,
    ) -> u32 {
        if let Some(partition) = explicit {
            return partition;
        }
        assert!(
            partition_count > 0,
            "choose: topic {topic:?} has no partitions"
        );
        if let Some(key) = key {
            return schema::murmur2::partition_for_key(key, partition_count);
        }
        let start = self.start;
        // Not `entry(topic.to_string())`: that allocated a String for every keyless record.
        let sticky = match self.sticky.get_mut(topic) {
            Some(sticky) => sticky,
            None => self
                .sticky
                .entry(topic.to_string())
                .or_insert(start % partition_count),
        };
        // The count can shrink only if the topic was recreated; stay in range regardless.
        *sticky %= partition_count;
        *sticky
    }

    /// Tells the partitioner that the batch for `topic`/`partition` was sealed: if that was the
    /// sticky partition, keyless records move on to the next one.
    pub fn batch_sealed(&mut self, topic: &str, partition: u32, partition_count: u32) {
        if partition_count == 0 {
            return;
        }
        if let Some(sticky) = self.sticky.get_mut(topic)
            && *sticky == partition
        {
            *sticky = (partition + 1) % partition_count;
        }
    }

    /// The partition keyless records of `topic` go to now, if one was chosen yet.
    pub fn sticky(&self, topic: &str) -> Option<u32> {
        self.sticky.get(topic).copied()
    }
}
