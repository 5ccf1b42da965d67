//! Idempotent-producer state of one partition: for each producer id, its epoch and the
//! sequence numbers and offsets of its last batches. The partition actor asks it about every
//! batch that carries a producer id before appending ([`ProducerStates::check`]) and tells it
//! about every batch appended ([`ProducerStates::record`]), so a retried batch is answered with
//! its original offsets instead of being stored twice, and a batch out of sequence is refused.
//!
//! The rules (Kafka's, for a non-transactional idempotent producer):
//! - a batch carries (producer id, epoch, base sequence); its records take sequences
//!   base .. base + count - 1, wrapping from `i32::MAX` to 0;
//! - an unknown producer id must start at sequence 0 (else `UnknownProducer`: the state
//!   expired or was never seen, and duplicates could not be told apart);
//! - an older epoch than the one seen is fenced; a newer epoch must start at sequence 0;
//! - in the same epoch, a batch matching a remembered batch (same first and last sequence)
//!   is a duplicate; the next batch must start right after the last one; anything else is
//!   out of order, or a duplicate too old to remember (`DuplicateTooOld`).
//!
//! Bounded: [`BATCHES_REMEMBERED`] batches per producer (the most a producer may have
//! unacknowledged at once), [`PRODUCERS_MAX`] producers per partition and
//! [`PRODUCER_EXPIRY_MS`] without a batch. When the table is full, a new producer takes the
//! place of the least recently seen one only if that one has been idle for
//! [`PRODUCER_EVICTABLE_IDLE_MS`]; otherwise the new producer is refused (retriably): forgetting
//! a producer that may still retry would let its retry be stored twice.
//!
//! The state is rebuilt from the log after a restart: from a snapshot ([`ProducerStates::encode`],
//! stored by the partition actor as a CRC-checked blob) plus the batches written after it
//! ([`ProducerStates::replay_batch`]). Which snapshot is trusted is [`crate::snapshot`]'s rule
//! with [`crate::snapshot::OnRefusal::Rescan`]: the retained log alone determines this state,
//! so a damaged snapshot, or one reaching past the log end, is removed and the log rescanned.
//! Snapshot layout (little-endian; the blob framing adds magic, length and CRC):
//!
//! ```text
//! version u16 = 1 | through_offset u64 | producer_count u32 | producers...
//! producer: producer_id i64 | epoch i16 | last_seen_ms i64 | batch_count u16 | batches...
//! batch:    base_sequence i32 | last_sequence i32 | base_offset u64 | last_offset u64
//! ```
//!
//! `through_offset` is the log offset the snapshot covers: every batch below it is in it.
//! Pure state, no I/O; lives inside one partition actor on the shard that owns the partition.

use std::collections::{HashMap, VecDeque};

use schema::batch::BatchHeader;
use storage::Offset;

use crate::byte_reader::{ByteReader, Truncated};

/// Batches remembered per producer: as many as a producer may have unacknowledged at once,
/// so any retried batch finds its original offsets.
pub const BATCHES_REMEMBERED: usize = schema::wire::IDEMPOTENT_BATCHES_IN_FLIGHT_MAX;
/// Producers remembered per partition; beyond it the least recently seen is forgotten.
pub const PRODUCERS_MAX: usize = 4_096;
/// A producer without a batch for this long is forgotten (Kafka's producer.id.expiration.ms).
pub const PRODUCER_EXPIRY_MS: i64 = 24 * 3600 * 1000;
/// A full table makes room for a new producer only by forgetting one idle this long: far
/// beyond any client's retry window (the ringbus client gives up on a batch after its retries,
/// about a minute with the defaults), so no forgotten producer can still be retrying.
pub const PRODUCER_EVICTABLE_IDLE_MS: i64 = 15 * 60 * 1000;
/// Version of the snapshot layout.
pub const SNAPSHOT_VERSION: u16 = 1;

const _: () = assert!(BATCHES_REMEMBERED >= 1 && BATCHES_REMEMBERED <= u16::MAX as usize);

/// Sequences run from 0 to `i32::MAX` and wrap to 0.
const SEQUENCE_MODULUS: i64 = i32::MAX as i64 + 1;

/// `sequence + delta`, wrapping from `i32::MAX` to 0 as Kafka's sequences do.
fn sequence_add(sequence: i32, delta: i64) -> i32 {
    (i64::from(sequence) + delta).rem_euclid(SEQUENCE_MODULUS) as i32
}

/// How far `later` is after `earlier`, going forward with wrapping (0 .. 2^31).
fn sequence_distance(earlier: i32, later: i32) -> i64 {
    (i64::from(later) - i64::from(earlier)).rem_euclid(SEQUENCE_MODULUS)
}

/// The idempotence fields of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchIdentity {
    /// The producer id (>= 0).
    pub producer_id: i64,
    /// The producer epoch.
    pub epoch: i16,
    /// Sequence of the first record.
    pub base_sequence: i32,
    /// Sequence of the last record.
    pub last_sequence: i32,
}

impl BatchIdentity {
    /// The identity of a batch from an idempotent producer; `None` for a batch without a
    /// producer id (-1), which is appended without any check. A negative epoch or sequence
    /// with a producer id is malformed: reported as `Err` with the reason.
    pub fn of(header: &BatchHeader) -> Result<Option<BatchIdentity>, SequenceError> {
        if header.producer_id < 0 {
            return Ok(None);
        }
        if header.producer_epoch < 0 || header.base_sequence < 0 || header.record_count <= 0 {
            return Err(SequenceError::Malformed {
                producer_id: header.producer_id,
                epoch: header.producer_epoch,
                base_sequence: header.base_sequence,
            });
        }
        Ok(Some(BatchIdentity {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            base_sequence: header.base_sequence,
            last_sequence: sequence_add(header.base_sequence, i64::from(header.record_count) - 1),
        }))
    }
}

/// Why a batch was refused (nothing of it is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceError {
    /// A producer id with a negative epoch or sequence, or no records.
    Malformed {
        /// The producer id.
        producer_id: i64,
        /// Its epoch.
        epoch: i16,
        /// Its base sequence.
        base_sequence: i32,
    },
    /// An epoch older than the one this partition has seen.
    Fenced {
        /// The producer id.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The newest epoch seen.
        current: i16,
    },
    /// Not the sequence expected next.
    OutOfOrder {
        /// The producer id.
        producer_id: i64,
        /// The sequence expected.
        expected: i32,
        /// The batch's base sequence.
        found: i32,
    },
    /// The partition has no state for the producer and the batch does not start at 0.
    UnknownProducer {
        /// The producer id.
        producer_id: i64,
        /// The batch's base sequence.
        base_sequence: i32,
    },
    /// A duplicate of a batch older than the ones remembered: stored before, not again.
    DuplicateTooOld {
        /// The producer id.
        producer_id: i64,
        /// The batch's base sequence.
        base_sequence: i32,
    },
    /// The partition remembers [`PRODUCERS_MAX`] producers, all seen recently: a new one must
    /// wait (retriable).
    TooManyProducers {
        /// The producer id.
        producer_id: i64,
    },
}

impl std::fmt::Display for SequenceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SequenceError::Malformed {
                producer_id,
                epoch,
                base_sequence,
            } => write!(
                f,
                "producer {producer_id}: epoch {epoch} and base sequence {base_sequence} must \
                 not be negative, and the batch must have records"
            ),
            SequenceError::Fenced {
                producer_id,
                epoch,
                current,
            } => write!(
                f,
                "producer {producer_id}: epoch {epoch} is fenced by epoch {current}"
            ),
            SequenceError::OutOfOrder {
                producer_id,
                expected,
                found,
            } => write!(
                f,
                "producer {producer_id}: expected sequence {expected}, got {found}"
            ),
            SequenceError::UnknownProducer {
                producer_id,
                base_sequence,
            } => write!(
                f,
                "producer {producer_id} is unknown to this partition (never seen, or expired) \
                 and its batch starts at sequence {base_sequence}, not 0"
            ),
            SequenceError::DuplicateTooOld {
                producer_id,
                base_sequence,
            } => write!(
                f,
                "producer {producer_id}: the batch at sequence {base_sequence} was stored \
                 before; its offsets are no longer remembered"
            ),
            SequenceError::TooManyProducers { producer_id } => write!(
                f,
                "producer {producer_id}: the partition tracks {PRODUCERS_MAX} producers, all \
                 active in the last {} minutes; retry later",
                PRODUCER_EVICTABLE_IDLE_MS / 60_000
            ),
        }
    }
}

/// What to do with a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Append it (then call [`ProducerStates::record`]).
    Append,
    /// It was appended before at these offsets: answer with them, store nothing.
    Duplicate {
        /// The original batch's first offset.
        base_offset: Offset,
        /// The original batch's last offset.
        last_offset: Offset,
    },
    /// Refuse it.
    Refuse(SequenceError),
}

/// A remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Remembered {
    base_sequence: i32,
    last_sequence: i32,
    base_offset: Offset,
    last_offset: Offset,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Producer {
    epoch: i16,
    /// Oldest first; never empty; at most BATCHES_REMEMBERED.
    batches: VecDeque<Remembered>,
    last_seen_ms: i64,
}

/// The idempotence state of one partition. See the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStates {
    producers: HashMap<i64, Producer>,
}

/// Why a snapshot could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The snapshot ends early or has bytes left over.
    #[error("producer state snapshot is malformed: {reason}")]
    Malformed {
        /// What was wrong.
        reason: String,
    },
    /// A version this broker does not read.
    #[error("producer state snapshot version {version} is not supported (this broker reads 1)")]
    Version {
        /// The version found.
        version: u16,
    },
}

impl ProducerStates {
    /// Producers remembered.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// True when no producer is remembered.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// What to do with a batch of `batch`'s identity, arriving at `now_ms`.
    pub fn check(&self, batch: &BatchIdentity, now_ms: i64) -> Verdict {
        let Some(producer) = self.producers.get(&batch.producer_id) else {
            if batch.base_sequence == 0 {
                if self.producers.len() >= PRODUCERS_MAX && !self.has_evictable(now_ms) {
                    return Verdict::Refuse(SequenceError::TooManyProducers {
                        producer_id: batch.producer_id,
                    });
                }
                return Verdict::Append;
            }
            return Verdict::Refuse(SequenceError::UnknownProducer {
                producer_id: batch.producer_id,
                base_sequence: batch.base_sequence,
            });
        };
        if batch.epoch < producer.epoch {
            return Verdict::Refuse(SequenceError::Fenced {
                producer_id: batch.producer_id,
                epoch: batch.epoch,
                current: producer.epoch,
            });
        }
        if batch.epoch > producer.epoch {
            return if batch.base_sequence == 0 {
                Verdict::Append
            } else {
                Verdict::Refuse(SequenceError::OutOfOrder {
                    producer_id: batch.producer_id,
                    expected: 0,
                    found: batch.base_sequence,
                })
            };
        }
        let out_of_order = |expected| {
            Verdict::Refuse(SequenceError::OutOfOrder {
                producer_id: batch.producer_id,
                expected,
                found: batch.base_sequence,
            })
        };
        if let Some(seen) = producer
            .batches
            .iter()
            .find(|seen| seen.base_sequence == batch.base_sequence)
        {
            return if seen.last_sequence == batch.last_sequence {
                Verdict::Duplicate {
                    base_offset: seen.base_offset,
                    last_offset: seen.last_offset,
                }
            } else {
                // Same start, different length: not the batch we stored.
                out_of_order(sequence_add(seen.last_sequence, 1))
            };
        }
        let last = producer.batches.back().expect("a producer has a batch");
        let expected = sequence_add(last.last_sequence, 1);
        if batch.base_sequence == expected {
            return Verdict::Append;
        }
        let first = producer.batches.front().expect("a producer has a batch");
        // Behind everything remembered (within half the sequence space, so a wrapped
        // sequence far ahead is not mistaken for an old one): an old duplicate.
        let behind = sequence_distance(batch.base_sequence, first.base_sequence);
        if behind > 0 && behind <= SEQUENCE_MODULUS / 2 {
            return Verdict::Refuse(SequenceError::DuplicateTooOld {
                producer_id: batch.producer_id,
                base_sequence: batch.base_sequence,
            });
        }
        out_of_order(expected)
    }

    /// Records a batch appended at `base_offset ..= last_offset` (after [`Verdict::Append`],
    /// or while rebuilding from the log, where every stored batch is taken as it is).
    pub fn record(
        &mut self,
        batch: &BatchIdentity,
        base_offset: Offset,
        last_offset: Offset,
        now_ms: i64,
    ) {
        assert!(
            base_offset <= last_offset,
            "batch offsets {base_offset}..={last_offset} run backwards"
        );
        let remembered = Remembered {
            base_sequence: batch.base_sequence,
            last_sequence: batch.last_sequence,
            base_offset,
            last_offset,
        };
        match self.producers.get_mut(&batch.producer_id) {
            Some(producer) if producer.epoch == batch.epoch => {
                if let Some(last) = producer.batches.back() {
                    assert!(
                        last.last_offset < base_offset,
                        "producer {}: batch at {base_offset} after one ending at {}",
                        batch.producer_id,
                        last.last_offset
                    );
                }
                producer.batches.push_back(remembered);
                if producer.batches.len() > BATCHES_REMEMBERED {
                    producer.batches.pop_front();
                }
                producer.last_seen_ms = producer.last_seen_ms.max(now_ms);
            }
            // A new producer, or a new epoch: its history starts over.
            _ => {
                self.producers.insert(
                    batch.producer_id,
                    Producer {
                        epoch: batch.epoch,
                        batches: VecDeque::from([remembered]),
                        last_seen_ms: now_ms,
                    },
                );
                self.evict_over_limit();
            }
        }
    }

    /// Replays one stored batch while the state is rebuilt from the log
    /// ([`crate::snapshot::replay`]): records it if it carries a producer id and starts at or
    /// after `from`, where the snapshot stops (the first batch a read returns may start below
    /// that; the snapshot holds it already).
    pub fn replay_batch(&mut self, batch: &[u8], from: Offset, now_ms: i64) {
        // Stored batches passed verification on append and again on the read that returned
        // them; one without a valid identity was appended without a check and is skipped.
        let Ok(header) = BatchHeader::parse(batch) else {
            return;
        };
        let base = Offset(header.base_offset as u64);
        if base < from {
            return;
        }
        if let Ok(Some(identity)) = BatchIdentity::of(&header) {
            self.record(&identity, base, Offset(header.last_offset() as u64), now_ms);
        }
    }

    /// Forgets producers not seen for [`PRODUCER_EXPIRY_MS`]; returns how many.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        let before = self.producers.len();
        let cutoff = now_ms.saturating_sub(PRODUCER_EXPIRY_MS);
        self.producers
            .retain(|_, producer| producer.last_seen_ms >= cutoff);
        before - self.producers.len()
    }

    /// Whether the least recently seen producer has been idle long enough to be forgotten.
    fn has_evictable(&self, now_ms: i64) -> bool {
        self.producers.values().any(|producer| {
            producer.last_seen_ms <= now_ms.saturating_sub(PRODUCER_EVICTABLE_IDLE_MS)
        })
    }

    /// Forgets the least recently seen producers beyond [`PRODUCERS_MAX`] (live appends only
    /// get here after [`ProducerStates::check`] saw one evictable; a rebuild from the log keeps
    /// the most recent ones).
    fn evict_over_limit(&mut self) {
        while self.producers.len() > PRODUCERS_MAX {
            let oldest = self
                .producers
                .iter()
                .min_by_key(|(id, producer)| (producer.last_seen_ms, **id))
                .map(|(id, _)| *id)
                .expect("over the limit, so not empty");
            self.producers.remove(&oldest);
        }
    }

    /// The snapshot of this state as of `through` (every batch below it is in the state).
    pub fn encode(&self, through: Offset) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + self.producers.len() * 40);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&through.0.to_le_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_le_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let producer = &self.producers[id];
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&producer.epoch.to_le_bytes());
            out.extend_from_slice(&producer.last_seen_ms.to_le_bytes());
            out.extend_from_slice(&(producer.batches.len() as u16).to_le_bytes());
            for batch in &producer.batches {
                out.extend_from_slice(&batch.base_sequence.to_le_bytes());
                out.extend_from_slice(&batch.last_sequence.to_le_bytes());
                out.extend_from_slice(&batch.base_offset.0.to_le_bytes());
                out.extend_from_slice(&batch.last_offset.0.to_le_bytes());
            }
        }
        out
    }

    /// Decodes a snapshot: the offset it covers through, and the state.
    pub fn decode(bytes: &[u8]) -> Result<(Offset, ProducerStates), SnapshotError> {
        let mut reader = ByteReader::new(bytes);
        let version = u16::from_le_bytes(reader.take()?);
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version { version });
        }
        let through = Offset(u64::from_le_bytes(reader.take()?));
        let count = u32::from_le_bytes(reader.take()?) as usize;
        if count > PRODUCERS_MAX {
            return Err(malformed(format!(
                "{count} producers, over the limit of {PRODUCERS_MAX}"
            )));
        }
        let mut producers = HashMap::with_capacity(count);
        for _ in 0..count {
            let id = i64::from_le_bytes(reader.take()?);
            let epoch = i16::from_le_bytes(reader.take()?);
            let last_seen_ms = i64::from_le_bytes(reader.take()?);
            let batch_count = usize::from(u16::from_le_bytes(reader.take()?));
            if batch_count == 0 || batch_count > BATCHES_REMEMBERED {
                return Err(malformed(format!(
                    "producer {id} has {batch_count} batches (1 to {BATCHES_REMEMBERED})"
                )));
            }
            let mut batches = VecDeque::with_capacity(batch_count);
            for _ in 0..batch_count {
                let batch = Remembered {
                    base_sequence: i32::from_le_bytes(reader.take()?),
                    last_sequence: i32::from_le_bytes(reader.take()?),
                    base_offset: Offset(u64::from_le_bytes(reader.take()?)),
                    last_offset: Offset(u64::from_le_bytes(reader.take()?)),
                };
                if batch.base_offset > batch.last_offset || batch.last_offset >= through {
                    return Err(malformed(format!(
                        "producer {id}: batch offsets {}..={} outside the snapshot's {through}",
                        batch.base_offset, batch.last_offset
                    )));
                }
                batches.push_back(batch);
            }
            let producer = Producer {
                epoch,
                batches,
                last_seen_ms,
            };
            if id < 0 || producers.insert(id, producer).is_some() {
                return Err(malformed(format!("producer id {id} invalid or repeated")));
            }
        }
        if reader.left() != 0 {
            return Err(malformed(format!("{} bytes left over", reader.left())));
        }
        Ok((through, ProducerStates { producers }))
    }
}

impl From<Truncated> for SnapshotError {
    fn from(truncated: Truncated) -> SnapshotError {
        malformed(truncated.to_string())
    }
}

fn malformed(reason: String) -> SnapshotError {
    SnapshotError::Malformed { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ProducerStates {
        fn check_at0(&self, batch: &BatchIdentity) -> Verdict {
            self.check(batch, 0)
        }
    }

    fn batch(producer_id: i64, epoch: i16, base_sequence: i32, count: i32) -> BatchIdentity {
        BatchIdentity {
            producer_id,
            epoch,
            base_sequence,
            last_sequence: sequence_add(base_sequence, i64::from(count) - 1),
        }
    }

    /// Appends `count`-record batches for producer 7 epoch 0 from sequence 0, offsets from 100.
    fn with_batches(batches: usize, count: i32) -> ProducerStates {
        let mut states = ProducerStates::default();
        for index in 0..batches {
            let sequence = index as i32 * count;
            let identity = batch(7, 0, sequence, count);
            assert_eq!(states.check_at0(&identity), Verdict::Append);
            let base = 100 + index as u64 * count as u64;
            states.record(&identity, Offset(base), Offset(base + count as u64 - 1), 0);
        }
        states
    }

    #[test]
    fn a_new_producer_starts_at_sequence_zero() {
        let states = ProducerStates::default();
        assert_eq!(states.check_at0(&batch(1, 0, 0, 5)), Verdict::Append);
        assert!(matches!(
            states.check_at0(&batch(1, 0, 5, 5)),
            Verdict::Refuse(SequenceError::UnknownProducer { .. })
        ));
    }

    #[test]
    fn the_next_batch_follows_the_last() {
        let states = with_batches(3, 10);
        assert_eq!(states.check_at0(&batch(7, 0, 30, 1)), Verdict::Append);
        assert_eq!(
            states.check_at0(&batch(7, 0, 31, 1)),
            Verdict::Refuse(SequenceError::OutOfOrder {
                producer_id: 7,
                expected: 30,
                found: 31
            })
        );
    }

    #[test]
    fn a_retried_batch_gets_its_original_offsets() {
        let states = with_batches(3, 10);
        assert_eq!(
            states.check_at0(&batch(7, 0, 10, 10)),
            Verdict::Duplicate {
                base_offset: Offset(110),
                last_offset: Offset(119)
            }
        );
        // Same start, other length: not the batch stored there.
        assert!(matches!(
            states.check_at0(&batch(7, 0, 10, 3)),
            Verdict::Refuse(SequenceError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn every_batch_a_producer_may_have_in_flight_is_remembered() {
        let states = with_batches(BATCHES_REMEMBERED + 5, 2);
        // The oldest 5 are forgotten; every one of the last BATCHES_REMEMBERED is a duplicate.
        for index in 5..BATCHES_REMEMBERED + 5 {
            let verdict = states.check_at0(&batch(7, 0, index as i32 * 2, 2));
            assert!(
                matches!(verdict, Verdict::Duplicate { .. }),
                "{index}: {verdict:?}"
            );
        }
        assert!(matches!(
            states.check_at0(&batch(7, 0, 0, 2)),
            Verdict::Refuse(SequenceError::DuplicateTooOld { .. })
        ));
    }

    #[test]
    fn epochs_fence_older_instances_and_restart_sequences() {
        let mut states = with_batches(2, 10);
        assert_eq!(states.check_at0(&batch(7, 1, 0, 3)), Verdict::Append);
        assert!(matches!(
            states.check_at0(&batch(7, 1, 20, 3)),
            Verdict::Refuse(SequenceError::OutOfOrder { expected: 0, .. })
        ));
        states.record(&batch(7, 1, 0, 3), Offset(500), Offset(502), 1);
        assert!(matches!(
            states.check_at0(&batch(7, 0, 20, 1)),
            Verdict::Refuse(SequenceError::Fenced {
                epoch: 0,
                current: 1,
                ..
            })
        ));
        assert_eq!(states.check_at0(&batch(7, 1, 3, 1)), Verdict::Append);
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut states = ProducerStates::default();
        let first = batch(3, 0, 0, 1);
        states.record(&first, Offset(0), Offset(0), 0);
        // Pretend the producer has reached the top of the sequence space.
        let near_top = batch(3, 0, i32::MAX - 1, 4);
        assert_eq!(near_top.last_sequence, 1, "wraps past i32::MAX to 0, 1");
        states.producers.get_mut(&3).unwrap().batches[0] = Remembered {
            base_sequence: i32::MAX - 1,
            last_sequence: 1,
            base_offset: Offset(0),
            last_offset: Offset(3),
        };
        assert_eq!(states.check_at0(&batch(3, 0, 2, 1)), Verdict::Append);
        assert!(matches!(
            states.check_at0(&near_top),
            Verdict::Duplicate { .. }
        ));
    }

    #[test]
    fn malformed_identities_are_refused_not_trusted() {
        let mut header = schema::batch::BatchHeader::parse(&{
            let mut builder = schema::batch::BatchBuilder::new(0).producer(5, -2, 0);
            builder.push(None, Some(b"v"), 0, &[]);
            builder.finish()
        })
        .expect("header");
        assert!(matches!(
            BatchIdentity::of(&header),
            Err(SequenceError::Malformed { .. })
        ));
        header.producer_id = -1;
        assert_eq!(BatchIdentity::of(&header), Ok(None));
    }

    #[test]
    fn idle_producers_expire_and_the_count_is_bounded() {
        let mut states = ProducerStates::default();
        for id in 0..PRODUCERS_MAX as i64 + 10 {
            states.record(
                &batch(id, 0, 0, 1),
                Offset(id as u64),
                Offset(id as u64),
                id,
            );
        }
        assert_eq!(states.len(), PRODUCERS_MAX);
        // The least recently seen went first.
        assert!(!states.producers.contains_key(&0));
        assert!(states.producers.contains_key(&(PRODUCERS_MAX as i64 + 9)));
        let last_seen = PRODUCERS_MAX as i64 + 9;
        assert_eq!(
            states.expire(last_seen + PRODUCER_EXPIRY_MS),
            PRODUCERS_MAX - 1
        );
        assert_eq!(states.len(), 1);
    }

    #[test]
    fn a_full_table_refuses_new_producers_until_one_is_idle_long_enough() {
        let mut states = ProducerStates::default();
        for id in 0..PRODUCERS_MAX as i64 {
            states.record(
                &batch(id, 0, 0, 1),
                Offset(id as u64),
                Offset(id as u64),
                1_000,
            );
        }
        let newcomer = batch(1_000_000, 0, 0, 1);
        assert_eq!(
            states.check(&newcomer, 1_000 + PRODUCER_EVICTABLE_IDLE_MS - 1),
            Verdict::Refuse(SequenceError::TooManyProducers {
                producer_id: 1_000_000
            }),
            "everyone is recent: forgetting one could let its retry be stored twice"
        );
        // Known producers still append.
        assert_eq!(states.check(&batch(7, 0, 1, 1), 2_000), Verdict::Append);
        assert_eq!(
            states.check(&newcomer, 1_000 + PRODUCER_EVICTABLE_IDLE_MS),
            Verdict::Append
        );
    }

    #[test]
    fn replaying_stored_batches_records_those_from_the_snapshot_on() {
        let stored = |base: u64, producer_id: i64, sequence: i32| {
            let mut builder =
                schema::batch::BatchBuilder::new(0).producer(producer_id, 0, sequence);
            builder.push(None, Some(b"a"), 0, &[]);
            builder.push(None, Some(b"b"), 0, &[]);
            let mut bytes = bytes::BytesMut::from(&builder.finish()[..]);
            schema::batch::set_base_offset(&mut bytes, base as i64);
            bytes
        };
        let mut replayed = ProducerStates::default();
        replayed.replay_batch(&stored(10, 7, 0), Offset(12), 5);
        replayed.replay_batch(&stored(12, 7, 2), Offset(12), 5);
        replayed.replay_batch(&stored(14, -1, -1), Offset(12), 5);
        replayed.replay_batch(b"not a batch", Offset(12), 5);
        let mut expected = ProducerStates::default();
        expected.record(&batch(7, 0, 2, 2), Offset(12), Offset(13), 5);
        assert_eq!(
            replayed, expected,
            "below the snapshot, unstamped and bad batches: skipped"
        );
    }

    #[test]
    fn snapshots_round_trip_and_damage_is_reported() {
        let mut states = with_batches(BATCHES_REMEMBERED + 3, 4);
        states.record(&batch(9, 2, 0, 1), Offset(10_000), Offset(10_000), 42);
        let bytes = states.encode(Offset(10_001));
        assert_eq!(
            ProducerStates::decode(&bytes),
            Ok((Offset(10_001), states.clone()))
        );
        for cut in 0..bytes.len() {
            assert!(
                ProducerStates::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(ProducerStates::decode(&longer).is_err());
        let mut newer = bytes.clone();
        newer[0] = 2;
        assert_eq!(
            ProducerStates::decode(&newer),
            Err(SnapshotError::Version { version: 2 })
        );
        // A snapshot claiming to cover less than its batches is refused.
        assert!(ProducerStates::decode(&states.encode(Offset(10_000))).is_err());
    }
}
