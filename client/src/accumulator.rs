//! [`Accumulator`]: the producer's open record batches, one per partition, and the rule for
//! when a batch is sealed; [`Delivery`]: the future a producer hands out for each record.
//!
//! A record is appended to its partition's open batch (a [`BatchBuilder`], which encodes it at
//! once). A batch is sealed, becoming a [`SealedBatch`] ready to send, when the next record
//! might not fit under `batch_bytes` (checked before appending, with an upper bound of the
//! record's encoded size), when it reaches `batch_bytes` (checked after), when the producer's
//! linger timer for it fires ([`Accumulator::seal`] with its [`BatchId`]), or on flush. A record
//! larger than `batch_bytes` goes alone in its own batch.
//!
//! Every record's [`Delivery`] resolves when its batch is completed
//! ([`SealedBatch::complete`]): to its partition and offset (the batch's base offset plus the
//! record's index in the batch), or to the batch's error. A batch dropped before completion,
//! open or sealed, fails its deliveries with [`ClientError::Closed`]: no delivery waits forever.
//!
//! Pure state, no I/O, no timers: the producer drives it on its executor thread. State is
//! `Rc`-shared between a batch and its deliveries, so all of it is `!Send`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use schema::batch::{BatchBuilder, HEADER_BYTES};
use schema::varint::{VARINT_BYTES_MAX, VARLONG_BYTES_MAX};

use crate::error::ClientError;
use crate::fast_hash::FastMap;

/// Where an acknowledged record was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The partition.
    pub partition: u32,
    /// The record's offset; `None` when produced with `Acks::None` (the broker does not say).
    pub offset: Option<u64>,
}

/// How a batch ended: `Ok(Some(base_offset))` when acknowledged, `Ok(None)` when written with
/// `Acks::None`, or the error every record of the batch gets.
pub type BatchOutcome = Result<Option<u64>, ClientError>;

/// The shared state of one batch: its outcome once known, and the tasks waiting for it.
#[derive(Debug)]
struct BatchSlot {
    partition: u32,
    outcome: RefCell<Option<BatchOutcome>>,
    wakers: RefCell<Vec<Waker>>,
}

impl BatchSlot {
    fn complete(&self, outcome: BatchOutcome) {
        if self.outcome.borrow().is_some() {
            return;
        }
        *self.outcome.borrow_mut() = Some(outcome);
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for waker in wakers {
            waker.wake();
        }
    }
}

/// The future of one record's acknowledgement. Resolves once its batch is completed; cheap to
/// clone (every clone resolves the same way).
#[derive(Debug, Clone)]
pub struct Delivery {
    slot: Rc<BatchSlot>,
    /// The record's index in its batch (its offset delta).
    index: u32,
}

impl Delivery {
    /// The partition the record was put in.
    pub fn partition(&self) -> u32 {
        self.slot.partition
    }

    /// Whether `other` belongs to the same batch (so resolves at the same moment, the same way
    /// but for its offset).
    pub fn same_batch(&self, other: &Delivery) -> bool {
        Rc::ptr_eq(&self.slot, &other.slot)
    }

    /// Whether the outcome is known (awaiting will not wait).
    pub fn is_done(&self) -> bool {
        self.slot.outcome.borrow().is_some()
    }
}

impl Future for Delivery {
    type Output = Result<RecordMetadata, ClientError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &*self.slot.outcome.borrow() {
            Some(Ok(base_offset)) => Poll::Ready(Ok(RecordMetadata {
                partition: self.slot.partition,
                offset: base_offset.map(|base| base + u64::from(self.index)),
            })),
            Some(Err(error)) => Poll::Ready(Err(error.clone())),
            None => {
                let mut wakers = self.slot.wakers.borrow_mut();
                if !wakers.iter().any(|waker| waker.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

/// Owned by whoever holds a batch (open or sealed): completes its deliveries, and fails them
/// if dropped first. Dropping only updates memory and wakes tasks; no I/O.
#[derive(Debug)]
struct Completion {
    slot: Rc<BatchSlot>,
}

impl Drop for Completion {
    fn drop(&mut self) {
        self.slot.complete(Err(ClientError::Closed {
            reason: "the producer was dropped before the batch was acknowledged",
        }));
    }
}

/// Identifies one open batch, so a linger timer seals the batch it was armed for and not a
/// later one of the same partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchId(u64);

/// A batch ready to send.
#[derive(Debug)]
pub struct SealedBatch {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The encoded Kafka RecordBatch v2 (base offset 0; the broker assigns it).
    pub bytes: Bytes,
    /// Records in the batch.
    pub record_count: u32,
    /// What the batch's records count against the producer's buffer: the sum of
    /// [`record_bytes_max`] over them.
    pub buffered_bytes: usize,
    /// The sequence of the batch's first record once an idempotent producer stamped it
    /// ([`SealedBatch::stamp`]); -1 before, and always for a non-idempotent producer.
    pub base_sequence: i32,
    /// The producer id it is stamped with (-1 before).
    pub producer_id: i64,
    /// The producer epoch it is stamped with (-1 before).
    pub producer_epoch: i16,
    /// Why the last attempt to send the batch ended without an answer (a timeout, a lost
    /// connection), so that it may be stored: such a batch may be resent only as it is, never
    /// re-stamped under a new producer id (that could store it twice). `None` once the broker
    /// answered for it, and before it is sent.
    pub outcome_unknown: Option<ClientError>,
    /// Set while the CRC is left to [`SealedBatch::stamp`] ([`Accumulator::deferring_crc`]):
    /// such a batch must be stamped before it is sent.
    crc_pending: bool,
    completion: Completion,
}

impl SealedBatch {
    /// Resolves every record's [`Delivery`]: record `i` gets offset `base_offset + i`.
    pub fn complete(self, outcome: BatchOutcome) {
        self.completion.slot.complete(outcome);
    }

    /// [`SealedBatch::complete`], returning the batch's buffer (emptied) when nothing else
    /// holds it, for [`Accumulator::recycle`].
    pub fn complete_reclaiming(self, outcome: BatchOutcome) -> Option<Vec<u8>> {
        let SealedBatch {
            bytes, completion, ..
        } = self;
        completion.slot.complete(outcome);
        let mut unique = bytes.try_into_mut().ok()?;
        // Emptied first: turning a `BytesMut` into a `Vec` moves its bytes to the front.
        unique.clear();
        Some(Vec::from(unique))
    }

    /// Stamps the idempotent-producer fields into the batch (its CRC is recomputed). Done when
    /// the batch is first sent, and again only if the sequences before it had to be rewound.
    pub fn stamp(&mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) {
        assert!(base_sequence >= 0, "sequence {base_sequence} is negative");
        // In place when no request holds the bytes (the first stamp, before the batch is
        // sent); a copy only for a re-stamp of a batch a request may still be sending.
        let bytes = std::mem::take(&mut self.bytes);
        let mut bytes = bytes
            .try_into_mut()
            .unwrap_or_else(|shared| bytes::BytesMut::from(&shared[..]));
        schema::batch::set_producer(&mut bytes, producer_id, producer_epoch, base_sequence);
        self.bytes = bytes.freeze();
        self.crc_pending = false;
        self.base_sequence = base_sequence;
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
    }

    /// Whether the batch can be sent: false only for a batch whose CRC waits for its stamp.
    pub fn is_sendable(&self) -> bool {
        !self.crc_pending
    }

    /// A future that resolves when the batch is completed (its first record's delivery).
    pub fn watch(&self) -> Delivery {
        Delivery {
            slot: self.completion.slot.clone(),
            index: 0,
        }
    }
}

/// An open batch reserves room for this much at most when it opens; larger ones grow.
const BATCH_RESERVE_BYTES_MAX: usize = 1 << 20;

/// Bytes of acknowledged batches' buffers kept for new batches, at most ([`Accumulator::recycle`]).
const POOL_BYTES_MAX: usize = 4 << 20;

/// What [`Accumulator::append`] did.
#[derive(Debug)]
pub struct Appended {
    /// The record's acknowledgement.
    pub delivery: Delivery,
    /// Batches sealed by this append, oldest first: send them in this order.
    pub sealed: Vec<SealedBatch>,
    /// Set when the record opened a new batch: arm a linger timer for it.
    pub opened: Option<BatchId>,
    /// What the record counts against the producer's buffer ([`record_bytes_max`]).
    pub buffered_bytes: usize,
}

#[derive(Debug)]
struct OpenBatch {
    id: BatchId,
    builder: BatchBuilder,
    base_timestamp_ms: i64,
    buffered_bytes: usize,
    completion: Completion,
}

/// The open batches of a producer, one per partition. See the module documentation.
#[derive(Debug)]
pub struct Accumulator {
    batch_bytes: usize,
    /// Seal batches without their CRC, which [`SealedBatch::stamp`] computes.
    crc_at_stamp: bool,
    open: FastMap<String, FastMap<u32, OpenBatch>>,
    next_id: u64,
    /// Buffers of acknowledged batches, for new batches (as Kafka's producer pools its batch
    /// buffers): a fresh 16 KiB buffer per batch was a jemalloc large allocation, and its
    /// pages, which jemalloc's decay had handed back to the kernel, faulted in again as the
    /// records were copied in (7% of the load generator's core; issue #11).
    pool: Vec<Vec<u8>>,
    /// Capacity of the `pool` buffers, at most [`POOL_BYTES_MAX`].
    pool_bytes: usize,
}

/// An upper bound of the bytes a record adds to a batch: every varint at its longest.
///
/// Worked example: key `"k"`, value `"v"`, no headers: length 5 + attributes 1 + timestamp
/// delta 10 + offset delta 5 + key 5 + 1 + value 5 + 1 + header count 5 = 38 bytes, for a record
/// that encodes in 9 (see the example in [`schema::batch`]).
pub fn record_bytes_max(key: Option<&[u8]>, value: &[u8], headers: &[(Bytes, Bytes)]) -> usize {
    let mut bytes = VARINT_BYTES_MAX // length
        + 1 // attributes
        + VARLONG_BYTES_MAX // timestamp delta
        + VARINT_BYTES_MAX // offset delta
        + VARINT_BYTES_MAX + key.map_or(0, <[u8]>::len)
        + VARINT_BYTES_MAX + value.len()
        + VARINT_BYTES_MAX; // header count
    for (header_key, header_value) in headers {
        bytes += VARINT_BYTES_MAX + header_key.len() + VARINT_BYTES_MAX + header_value.len();
    }
    bytes
}

impl Accumulator {
    /// An accumulator that seals batches at `batch_bytes` (encoded, header included).
    ///
    /// Panics if `batch_bytes` is below one header or above `i32::MAX`: a batch must hold a
    /// record, and its length field is an i32.
    pub fn new(batch_bytes: usize) -> Accumulator {
        assert!(
            batch_bytes > HEADER_BYTES,
            "batch_bytes {batch_bytes} must exceed the {HEADER_BYTES}-byte batch header"
        );
        assert!(
            batch_bytes <= i32::MAX as usize,
            "batch_bytes {batch_bytes} is over the i32 batch length limit"
        );
        Accumulator {
            batch_bytes,
            crc_at_stamp: false,
            open: FastMap::default(),
            next_id: 0,
            pool: Vec::new(),
            pool_bytes: 0,
        }
    }

    /// Seals batches without their CRC, leaving it to [`SealedBatch::stamp`]: for an
    /// idempotent producer, which stamps every batch before it first sends it, so that the
    /// records are read once to compute the CRC, not twice (a CRC pass was about 4% of the
    /// load generator's core). Such a batch is not [`SealedBatch::is_sendable`] until stamped.
    pub fn deferring_crc(mut self) -> Accumulator {
        self.crc_at_stamp = true;
        self
    }

    /// Appends a record to the open batch of `topic`/`partition`, sealing batches as the
    /// module documentation says. `timestamp_ms` must be >= 0 (Kafka's rule; the producer
    /// checks it), which keeps every timestamp delta within an i64.
    ///
    /// Always inlined into the producer's send: as a call, 7-9% of the load generator's
    /// samples sat on the instruction after it, and inlining it moved the closed-loop
    /// max-acks1 shape +7% (median of four alternating rounds, perf-log.md 2026-12-07 evening).
    #[inline(always)]
    pub fn append(
        &mut self,
        topic: &str,
        partition: u32,
        key: Option<&[u8]>,
        value: &[u8],
        headers: &[(Bytes, Bytes)],
        timestamp_ms: i64,
    ) -> Appended {
        let record_bytes = record_bytes_max(key, value, headers);
        let mut sealed = Vec::new();
        // Look the topic up before inserting it: `entry` wants an owned key, and a String per
        // record was a malloc and a free on the producer's hottest path.
        let batches = match self.open.get_mut(topic) {
            Some(batches) => batches,
            None => self.open.entry(topic.to_string()).or_default(),
        };
        if let Some(open) = batches.get(&partition) {
            let fits =
                open.builder.encoded_bytes().saturating_add(record_bytes) <= self.batch_bytes;
            let delta_fits = timestamp_ms.checked_sub(open.base_timestamp_ms).is_some();
            if !(fits && delta_fits)
                && let Some(open) = batches.remove(&partition)
            {
                sealed.push(seal(topic, partition, open, self.crc_at_stamp));
            }
        }
        let mut opened = None;
        let open = batches.entry(partition).or_insert_with(|| {
            let id = BatchId(self.next_id);
            self.next_id += 1;
            opened = Some(id);
            OpenBatch {
                id,
                // Room for a full batch up front (up to a cap): the records are not moved as
                // the batch grows.
                builder: BatchBuilder::with_buffer(
                    timestamp_ms,
                    match self.pool.pop() {
                        Some(buffer) => {
                            self.pool_bytes -= buffer.capacity();
                            buffer
                        }
                        None => Vec::new(),
                    },
                    self.batch_bytes
                        .max(record_bytes)
                        .min(BATCH_RESERVE_BYTES_MAX),
                ),
                base_timestamp_ms: timestamp_ms,
                buffered_bytes: 0,
                completion: Completion {
                    slot: Rc::new(BatchSlot {
                        partition,
                        outcome: RefCell::new(None),
                        wakers: RefCell::new(Vec::new()),
                    }),
                },
            }
        });
        let header_refs: Vec<(&[u8], &[u8])> = headers
            .iter()
            .map(|(header_key, header_value)| (&header_key[..], &header_value[..]))
            .collect();
        open.builder
            .push(key, Some(value), timestamp_ms, &header_refs);
        open.buffered_bytes += record_bytes;
        // The batch has at most batch_bytes / 7 records (a record is at least 7 bytes), far
        // below u32::MAX given batch_bytes <= i32::MAX.
        let index = (open.builder.record_count() - 1) as u32;
        let delivery = Delivery {
            slot: open.completion.slot.clone(),
            index,
        };
        if open.builder.encoded_bytes() >= self.batch_bytes
            && let Some(open) = batches.remove(&partition)
        {
            sealed.push(seal(topic, partition, open, self.crc_at_stamp));
        }
        Appended {
            delivery,
            sealed,
            opened,
            buffered_bytes: record_bytes,
        }
    }

    /// Seals the open batch of `topic`/`partition`, if there is one and (when `id` is given)
    /// it is that batch.
    pub fn seal(
        &mut self,
        topic: &str,
        partition: u32,
        id: Option<BatchId>,
    ) -> Option<SealedBatch> {
        let batches = self.open.get_mut(topic)?;
        let open = batches.get(&partition)?;
        if id.is_some_and(|id| id != open.id) {
            return None;
        }
        let open = batches.remove(&partition)?;
        if batches.is_empty() {
            self.open.remove(topic);
        }
        Some(seal(topic, partition, open, self.crc_at_stamp))
    }

    /// Keeps `buffer` (an acknowledged batch's, see [`SealedBatch::complete_reclaiming`]) for
    /// a new batch, if it holds a full batch and the pool has room.
    pub fn recycle(&mut self, buffer: Vec<u8>) {
        let capacity = buffer.capacity();
        if capacity >= self.batch_bytes.min(BATCH_RESERVE_BYTES_MAX)
            && self.pool_bytes + capacity <= POOL_BYTES_MAX
        {
            self.pool_bytes += capacity;
            self.pool.push(buffer);
        }
    }

    /// Seals every open batch (for a flush).
    pub fn seal_all(&mut self) -> Vec<SealedBatch> {
        let mut sealed = Vec::new();
        for (topic, batches) in self.open.drain() {
            for (partition, open) in batches {
                sealed.push(seal(&topic, partition, open, self.crc_at_stamp));
            }
        }
        sealed
    }

    /// Records waiting in open batches.
    pub fn open_record_count(&self) -> usize {
        self.open
            .values()
            .flat_map(FastMap::values)
            .map(|open| open.builder.record_count())
            .sum()
    }
}

fn seal(topic: &str, partition: u32, open: OpenBatch, crc_at_stamp: bool) -> SealedBatch {
    // At least one record: a batch is opened only by an append, which pushes into it.
    let record_count = open.builder.record_count() as u32;
    let bytes = if crc_at_stamp {
        open.builder.finish_without_crc()
    } else {
        open.builder.finish()
    };
    SealedBatch {
        topic: topic.to_string(),
        partition,
        bytes: Bytes::from(bytes),
        crc_pending: crc_at_stamp,
        record_count,
        buffered_bytes: open.buffered_bytes,
        base_sequence: -1,
        producer_id: -1,
        producer_epoch: -1,
        outcome_unknown: None,
        completion: open.completion,
    }
}
