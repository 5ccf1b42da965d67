//! [`SequenceChecker`]: counts duplicated, out-of-order and (with the producers' acknowledged
//! counts) lost messages.
//!
//! Each producer numbers its messages 0, 1, 2, ... and they spread over partitions; the broker
//! keeps order within a partition only, so "out of order" means a sequence lower than the last
//! one seen from the same producer in the same partition. A duplicate is a sequence seen before
//! (one bit per sequence per producer). Lost = acknowledged by the broker but never consumed.

use std::collections::HashMap;

// The checker runs for every message consumed: its maps, keyed by the load generator's own
// producer and partition numbers, use the client's multiplicative hasher, not SipHash.
use client::fast_hash::FastMap as IdMap;

/// What one consumer (or several, merged) saw.
#[derive(Debug, Default, Clone)]
pub struct SequenceChecker {
    /// Per producer: a bit per sequence number seen.
    seen: IdMap<u32, Vec<u64>>,
    /// Per (producer, partition): the last sequence seen.
    last: IdMap<(u32, u32), u64>,
    /// Distinct messages seen.
    pub distinct: u64,
    /// Messages seen again.
    pub duplicates: u64,
    /// Messages below the last sequence of their producer in their partition.
    pub out_of_order: u64,
}

impl SequenceChecker {
    /// An empty checker.
    pub fn new() -> SequenceChecker {
        SequenceChecker::default()
    }

    /// Records message `sequence` of `producer`, read from `partition`.
    pub fn record(&mut self, producer: u32, partition: u32, sequence: u64) {
        let bits = self.seen.entry(producer).or_default();
        let word = (sequence / 64) as usize;
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        let mask = 1u64 << (sequence % 64);
        if bits[word] & mask != 0 {
            self.duplicates += 1;
        } else {
            bits[word] |= mask;
            self.distinct += 1;
        }
        match self.last.get_mut(&(producer, partition)) {
            Some(last) if sequence < *last => self.out_of_order += 1,
            Some(last) => *last = sequence,
            None => {
                self.last.insert((producer, partition), sequence);
            }
        }
    }

    /// Adds what `other` saw (a consumer reading other partitions).
    pub fn merge(&mut self, other: &SequenceChecker) {
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        for (&producer, bits) in &other.seen {
            let mine = self.seen.entry(producer).or_default();
            if mine.len() < bits.len() {
                mine.resize(bits.len(), 0);
            }
            for (word, &value) in bits.iter().enumerate() {
                // A message seen by two consumers is a duplicate too.
                let both = mine[word] & value;
                self.duplicates += u64::from(both.count_ones());
                self.distinct += u64::from((value & !mine[word]).count_ones());
                mine[word] |= value;
            }
        }
        for (&key, &sequence) in &other.last {
            let last = self.last.entry(key).or_insert(sequence);
            *last = (*last).max(sequence);
        }
    }

    /// Messages of `producer` seen at least once.
    pub fn seen_of(&self, producer: u32) -> u64 {
        self.seen.get(&producer).map_or(0, |bits| {
            bits.iter().map(|word| u64::from(word.count_ones())).sum()
        })
    }

    /// Messages acknowledged but never seen: for each producer, `acked(producer)` less the
    /// distinct messages of it seen (never below 0).
    pub fn lost(&self, acked: &HashMap<u32, u64>) -> u64 {
        acked
            .iter()
            .map(|(&producer, &count)| count.saturating_sub(self.seen_of(producer)))
            .sum()
    }
}
