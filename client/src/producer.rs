//! [`Producer`]: batches records per partition and sends them, with retries, over a shared
//! [`Client`].
//!
//! The path of a record: [`Producer::send`] picks its partition ([`Partitioner`]: explicit, else
//! murmur2 of the key, else sticky; partition counts come from metadata and are cached), waits
//! for room in the buffer (`buffer_bytes_max`: the backpressure on callers), and appends it to
//! the partition's open batch ([`Accumulator`]). A batch is sealed at `batch_bytes`, or when its
//! `linger` timer fires, or on [`Producer::flush`]. Sealed batches queue per partition.
//!
//! Ordering: batches that fill while a partition's request is in flight queue behind it, and
//! everything queued (up to `batches_per_request_max`) goes out in its next request, where the
//! broker appends them in order; so under load, requests grow on their own. An idempotent
//! producer (and one with `Acks::None`) keeps up to `requests_in_flight_max` requests per
//! partition in flight (Kafka's `max.in.flight.requests.per.connection`) once at least
//! `pipeline_bytes_min` are ready, so that a busy partition's next request travels while the
//! broker writes the one before (a quiet one still lets its batches gather behind the request
//! in flight, which costs the broker less per byte): the broker stores a batch only if its
//! sequence follows the last one stored, so a later request can never be stored ahead of a
//! refused one, and when one is refused the sender stops the pipeline and resends everything
//! from it in order (`send_loop`). Without idempotence a retried batch could be overtaken that
//! way, so such a producer keeps one request per partition in flight (within one request the
//! broker may store a later batch while an earlier one is refused and retried). Different
//! partitions are sent in parallel (pipelined on the one connection).
//!
//! Retries: a batch the broker refuses with a retriable code (`Timeout`, `StorageFull`,
//! `Throttled`) is sent again after a backoff that doubles from `retry_backoff` to
//! `retry_backoff_max`, up to `retries` times. Other errors fail the batch's records; an
//! `UnknownPartition` or `UnknownTopic` also drops the cached partition count, so the next
//! record of the topic reads fresh metadata. Without idempotence a client-side timeout is not
//! retried (the batch may have been stored; resending could duplicate it).
//!
//! Idempotence (on by default, as in Kafka; needs `Acks::Written` or `Acks::Durable`): the
//! producer asks the broker for a producer id before its first request, and stamps every batch
//! with it and with the next sequence of its partition when the batch is first sent. The broker
//! then stores a batch at most once: a retry of a stored batch is answered with its original
//! offsets. So with idempotence a client-side timeout IS retried (the same stamped bytes), and
//! so are `OutOfOrderSequence` refusals that follow an earlier batch of the same request that
//! was not stored. When a batch fails for good, the batches after it are re-stamped from its
//! sequence, which is where the broker expects the partition to continue. At most
//! [`IDEMPOTENT_BATCHES_IN_FLIGHT_MAX`] batches of a partition are in flight, over all its
//! requests (the broker remembers that many per producer and partition).
//!
//! Which of these applies after a request is decided by `retry.rs` (`retry::decide`, a pure
//! function of the response and the batches' stamps, table-tested); the sender task here only
//! does what it says: completes, re-stamps, asks for a new producer id, waits and resends.
//!
//! With `Acks::None` a batch completes once its request is written to the socket, and
//! deliveries carry no offset.
//!
//! All state lives on the executor thread of the [`Client`]; linger timers and per-partition
//! senders are tasks spawned on it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use schema::wire::{Acks, IDEMPOTENT_BATCHES_IN_FLIGHT_MAX, ProduceResultOwned};

use crate::accumulator::{Accumulator, BatchId, Delivery, SealedBatch, record_bytes_max};
use crate::client::{Client, ProduceItem};
use crate::error::ClientError;
use crate::fast_hash::FastMap;
use crate::partitioner::Partitioner;
use crate::retry::{self, Attempt, BatchAction, BatchStamp, Response, SequenceAction};

/// Room left in a produce frame for the message (batch descriptors, topic names) beside the
/// batch bytes. 64 batch entries with long topic names stay far below it.
const REQUEST_MESSAGE_BYTES_SLACK: usize = 64 << 10;

/// Settings of a [`Producer`].
#[derive(Debug, Clone)]
pub struct ProducerOptions {
    /// When the broker acknowledges: `None` (not at all), `Written`, or `Durable` (fdatasync).
    pub acks: Acks,
    /// A batch is sealed once it reaches this many encoded bytes.
    pub batch_bytes: usize,
    /// How long a batch stays open for more records after its first one.
    pub linger: Duration,
    /// Bytes of records held (open, queued, in flight) before [`Producer::send`] waits.
    pub buffer_bytes_max: usize,
    /// Times a batch is resent after a retriable error.
    pub retries: u32,
    /// The first retry's delay; doubled for each later one.
    pub retry_backoff: Duration,
    /// The longest delay between retries.
    pub retry_backoff_max: Duration,
    /// Batches of one partition sent in one request at most (with idempotence, at most
    /// [`IDEMPOTENT_BATCHES_IN_FLIGHT_MAX`]).
    pub batches_per_request_max: usize,
    /// Stamp batches with a producer id and sequences so that retries never store a batch
    /// twice (Kafka's `enable.idempotence`). Ignored with `Acks::None`, which never retries.
    pub idempotence: bool,
    /// Produce requests one partition keeps in flight at once (Kafka's
    /// `max.in.flight.requests.per.connection`, default 5), so that a request's transfer
    /// overlaps the broker's write of the one before. Applies with idempotence (whose sequences
    /// keep a retried batch from being overtaken) and with `Acks::None`; otherwise 1.
    pub requests_in_flight_max: usize,
    /// Bytes of batches a partition must have ready before a request goes out behind one still
    /// in flight (else they wait for it and go together in the next). A request costs the
    /// broker a fixed amount besides its bytes (a task, an actor round, a write): small
    /// requests behind one in flight trade that for latency. Default 256 KiB, so that only a
    /// busy partition pipelines (bench-results/perf-log.md, 2026-12-07).
    pub pipeline_bytes_min: usize,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        ProducerOptions {
            acks: Acks::Durable,
            batch_bytes: 16 << 10,
            linger: Duration::from_millis(5),
            buffer_bytes_max: 32 << 20,
            retries: 5,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            batches_per_request_max: 64,
            idempotence: true,
            requests_in_flight_max: 5,
            pipeline_bytes_min: 256 << 10,
        }
    }
}

/// One record to produce.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    /// The topic (shared: a producer sending many records to one topic clones a handle, not
    /// the name).
    pub topic: Arc<str>,
    /// The partition; `None` lets the partitioner choose.
    pub partition: Option<u32>,
    /// The key; records with the same key go to the same partition (unless explicit).
    pub key: Option<Bytes>,
    /// The value.
    pub value: Bytes,
    /// Headers, in order.
    pub headers: Vec<(Bytes, Bytes)>,
    /// The record's timestamp (ms since the epoch, >= 0); `None` stamps the time of `send`.
    pub timestamp_ms: Option<i64>,
}

/// A record whose fields the caller lends to [`Producer::send_ref`]: the producer copies the
/// key, value and headers into the partition's batch before the call returns, so nothing is
/// shared or reference-counted per record (as rdkafka's `BaseRecord` borrows its payload).
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition; `None` lets the partitioner choose.
    pub partition: Option<u32>,
    /// The key; records with the same key go to the same partition (unless explicit).
    pub key: Option<&'a [u8]>,
    /// The value.
    pub value: &'a [u8],
    /// Headers, in order.
    pub headers: &'a [(Bytes, Bytes)],
    /// The record's timestamp (ms since the epoch, >= 0); `None` stamps the time of the send.
    pub timestamp_ms: Option<i64>,
}

impl<'a> RecordRef<'a> {
    /// A keyless record for `topic`.
    pub fn new(topic: &'a str, value: &'a [u8]) -> RecordRef<'a> {
        RecordRef {
            topic,
            partition: None,
            key: None,
            value,
            headers: &[],
            timestamp_ms: None,
        }
    }
}

impl ProducerRecord {
    /// A keyless record for `topic`.
    pub fn new(topic: impl Into<Arc<str>>, value: impl Into<Bytes>) -> ProducerRecord {
        // Every field spelled out: `..ProducerRecord::default()` built (and dropped) a default
        // topic for every record.
        ProducerRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: value.into(),
            headers: Vec::new(),
            timestamp_ms: None,
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> ProducerRecord {
        self.key = Some(key.into());
        self
    }

    /// Sets the partition.
    pub fn partition(mut self, partition: u32) -> ProducerRecord {
        self.partition = Some(partition);
        self
    }
}

/// Batches and sends records. See the module documentation. Cloning gives another handle to
/// the same producer.
#[derive(Clone)]
pub struct Producer {
    inner: Rc<Inner>,
}

struct Inner {
    client: Rc<Client>,
    options: ProducerOptions,
    /// Largest batch bytes in one request: the frame limit less room for the message.
    request_bytes_max: usize,
    state: RefCell<State>,
    buffered_bytes: Cell<usize>,
    buffer_waiters: RefCell<Vec<Waker>>,
    /// The producer id and epoch, once the broker gave them (idempotence only).
    identity: Cell<Option<(i64, i16)>>,
    /// One request for a producer id at a time.
    identity_gate: glommio::sync::Semaphore,
}

struct State {
    partitioner: Partitioner,
    partition_counts: FastMap<String, u32>,
    accumulator: Accumulator,
    queues: FastMap<(String, u32), SendQueue>,
    /// The sequence the next new batch of each partition gets, and the producer id it
    /// belongs to (idempotence only): under a new producer id every partition starts at 0.
    sequences: FastMap<(String, u32), (i64, i32)>,
}

/// A partition's sealed batches and its requests in flight.
#[derive(Default)]
struct SendQueue {
    ready: VecDeque<SealedBatch>,
    /// Bytes of the `ready` batches.
    ready_bytes: usize,
    /// Watches on the batches of the requests in flight (for flush); completed ones are
    /// dropped as new ones are added.
    in_flight: Vec<Delivery>,
    /// The sender, waiting for batches to send behind its requests in flight.
    waker: Option<Waker>,
    /// Whether a sender task is running for the partition.
    sending: bool,
}

/// A partition's queue, as its sender looks it up: `(topic, partition)`, built once per sender
/// (not per lookup: the sender looks its queue up on every wake).
type QueueKey = (String, u32);

impl SendQueue {
    /// Whether enough is ready to go out behind a request in flight (see
    /// [`ProducerOptions::pipeline_bytes_min`]).
    fn ready_to_follow(&self, pipeline_bytes_min: usize) -> bool {
        !self.ready.is_empty() && self.ready_bytes >= pipeline_bytes_min
    }
}

impl Producer {
    /// A producer sending over `client`.
    ///
    /// Panics if `options.batch_bytes` is not between a batch header and `i32::MAX`, or
    /// `batches_per_request_max` is 0: both are configuration bugs.
    pub fn new(client: Rc<Client>, options: ProducerOptions) -> Producer {
        assert!(
            options.batches_per_request_max > 0,
            "batches_per_request_max must be at least 1"
        );
        assert!(
            options.requests_in_flight_max > 0,
            "requests_in_flight_max must be at least 1"
        );
        let mut options = options;
        if options.idempotence {
            options.batches_per_request_max = options
                .batches_per_request_max
                .min(IDEMPOTENT_BATCHES_IN_FLIGHT_MAX);
        }
        let frame_bytes_max = client
            .broker()
            .frame_bytes_max
            .min(client.options().frame_bytes_max) as usize;
        let request_bytes_max = frame_bytes_max.saturating_sub(REQUEST_MESSAGE_BYTES_SLACK);
        // Spread producers that start at the same time over the partitions.
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let state = State {
            partitioner: Partitioner::new(start),
            partition_counts: FastMap::default(),
            // An idempotent producer stamps every batch before its first send, and the stamp
            // computes the CRC: computing it at sealing too would read each batch twice.
            accumulator: if stamps_batches(&options) {
                Accumulator::new(options.batch_bytes).deferring_crc()
            } else {
                Accumulator::new(options.batch_bytes)
            },
            queues: FastMap::default(),
            sequences: FastMap::default(),
        };
        Producer {
            inner: Rc::new(Inner {
                client,
                options,
                request_bytes_max,
                state: RefCell::new(state),
                buffered_bytes: Cell::new(0),
                buffer_waiters: RefCell::new(Vec::new()),
                identity: Cell::new(None),
                identity_gate: glommio::sync::Semaphore::new(1),
            }),
        }
    }

    /// The client the producer sends over.
    pub fn client(&self) -> &Rc<Client> {
        &self.inner.client
    }

    /// Adds a record to its partition's batch and returns the future of its acknowledgement.
    ///
    /// Awaiting `send` itself waits only for metadata (the first time a topic is seen without
    /// an explicit partition) and for room in the buffer; the record is then queued, and the
    /// returned [`Delivery`] resolves to its partition and offset once the broker acknowledges
    /// its batch at the configured acks (offset `None` with `Acks::None`). Records of one
    /// partition are acknowledged in the order they were sent.
    pub async fn send(&self, record: ProducerRecord) -> Result<Delivery, ClientError> {
        self.send_ref(RecordRef {
            topic: &record.topic,
            partition: record.partition,
            key: record.key.as_deref(),
            value: &record.value,
            headers: &record.headers,
            timestamp_ms: record.timestamp_ms,
        })
        .await
    }

    /// [`Producer::send`] for a record the caller lends: its bytes are copied into the batch
    /// before this returns, so a caller can reuse one buffer for every record. (In the load
    /// generator, handing each record over as `Bytes` cost an allocation and two atomic
    /// reference-count updates per record, 4% of its core; issue #11.)
    pub async fn send_ref(&self, record: RecordRef<'_>) -> Result<Delivery, ClientError> {
        let inner = &self.inner;
        if record.topic.is_empty() {
            return Err(ClientError::InvalidArgument {
                reason: "the topic name is empty".to_string(),
            });
        }
        if let Some(timestamp_ms) = record.timestamp_ms
            && timestamp_ms < 0
        {
            return Err(ClientError::InvalidArgument {
                reason: format!("timestamp {timestamp_ms} ms is negative"),
            });
        }
        let record_bytes = record_bytes_max(record.key, record.value, record.headers);
        let batch_bytes = record_bytes + schema::batch::HEADER_BYTES;
        if batch_bytes > inner.request_bytes_max {
            return Err(ClientError::RequestTooLarge {
                frame_bytes: batch_bytes as u64,
                frame_bytes_max: inner.request_bytes_max as u32,
            });
        }
        let partition_count = match record.partition {
            Some(_) => 0,
            None => inner.partition_count(record.topic).await?,
        };
        inner.wait_for_buffer().await;
        let timestamp_ms = record.timestamp_ms.unwrap_or_else(now_ms);
        let (appended, partition) = {
            let mut state = inner.state.borrow_mut();
            let partition = state.partitioner.choose(
                record.topic,
                record.partition,
                record.key,
                partition_count,
            );
            let appended = state.accumulator.append(
                record.topic,
                partition,
                record.key,
                record.value,
                record.headers,
                timestamp_ms,
            );
            (appended, partition)
        };
        inner
            .buffered_bytes
            .set(inner.buffered_bytes.get() + appended.buffered_bytes);
        for sealed in appended.sealed {
            inner.enqueue(sealed);
        }
        if let Some(id) = appended.opened {
            inner.arm_linger(Arc::from(record.topic), partition, id);
        }
        Ok(appended.delivery)
    }

    /// Seals every open batch and waits until every record sent before this call is
    /// acknowledged or failed (each record's outcome is in its [`Delivery`]).
    pub async fn flush(&self) {
        let inner = &self.inner;
        let sealed = inner.state.borrow_mut().accumulator.seal_all();
        for batch in sealed {
            inner.enqueue(batch);
        }
        let watches: Vec<Delivery> = {
            let state = inner.state.borrow();
            state
                .queues
                .values()
                .flat_map(|queue| {
                    queue
                        .in_flight
                        .iter()
                        .cloned()
                        .chain(queue.ready.iter().map(SealedBatch::watch))
                })
                .collect()
        };
        for watch in watches {
            // The outcome belongs to the records' deliveries; flush only waits for it.
            let _ = watch.await;
        }
    }
}

impl Inner {
    /// Whether batches are stamped for idempotence.
    fn idempotent(&self) -> bool {
        stamps_batches(&self.options)
    }

    /// The producer id and epoch, asked of the broker once.
    async fn identity(&self) -> Result<(i64, i16), ClientError> {
        if let Some(identity) = self.identity.get() {
            return Ok(identity);
        }
        let _permit =
            self.identity_gate
                .acquire_permit(1)
                .await
                .map_err(|_| ClientError::Closed {
                    reason: "the producer was closed",
                })?;
        if let Some(identity) = self.identity.get() {
            return Ok(identity);
        }
        let identity = self.client.init_producer_id().await?;
        self.identity.set(Some(identity));
        Ok(identity)
    }

    /// Stamps new `batches` of a partition with the producer's identity and the partition's
    /// next sequences (0 under a producer id the partition has not used yet).
    fn stamp_new(&self, topic: &str, partition: u32, batches: &mut [SealedBatch]) {
        let Some(identity) = self.identity.get() else {
            unreachable!("batches are stamped only after the identity is known");
        };
        let next = match self
            .state
            .borrow()
            .sequences
            .get(&(topic.to_string(), partition))
        {
            Some(&(producer_id, next)) if producer_id == identity.0 => next,
            _ => 0,
        };
        self.restamp(topic, partition, batches, identity, next);
    }

    /// Stamps `batches` of a partition with `identity` and consecutive sequences from `from`
    /// (a batch already stamped so is left as it is), and records where the partition goes on.
    fn restamp(
        &self,
        topic: &str,
        partition: u32,
        batches: &mut [SealedBatch],
        identity: (i64, i16),
        from: i32,
    ) {
        let mut next = from;
        for batch in batches {
            if batch.base_sequence != next || batch.producer_id != identity.0 {
                batch.stamp(identity.0, identity.1, next);
            }
            next = sequence_add(next, batch.record_count);
        }
        self.state
            .borrow_mut()
            .sequences
            .insert((topic.to_string(), partition), (identity.0, next));
    }

    /// Forgets the producer identity: the partition's sequence is no longer known (a batch
    /// whose outcome is unknown failed, or the broker expects another sequence). The next
    /// request asks for a new producer id, under which every partition starts at 0; batches
    /// already stamped with the old one keep it for their retries.
    fn forget_identity(&self, topic: &str, partition: u32, why: &str) {
        if let Some((producer_id, _)) = self.identity.take() {
            tracing::warn!(
                topic,
                partition,
                producer_id,
                why,
                "taking a new producer id"
            );
        }
    }

    /// The partition count of `topic`, from the cache or from the broker.
    async fn partition_count(&self, topic: &str) -> Result<u32, ClientError> {
        if let Some(&count) = self.state.borrow().partition_counts.get(topic) {
            return Ok(count);
        }
        let metadata = self.client.topic_metadata(topic).await?;
        let count = u32::try_from(metadata.partitions.len()).unwrap_or(u32::MAX);
        if count == 0 {
            return Err(ClientError::Protocol {
                operation: "metadata",
                reason: format!("topic {topic:?} has no partitions"),
            });
        }
        self.state
            .borrow_mut()
            .partition_counts
            .insert(topic.to_string(), count);
        Ok(count)
    }

    /// Waits until the buffer holds less than `buffer_bytes_max` (one record may overshoot
    /// it: a limit that refused a large record forever would be worse).
    async fn wait_for_buffer(&self) {
        futures_lite::future::poll_fn(|cx| {
            if self.buffered_bytes.get() < self.options.buffer_bytes_max {
                Poll::Ready(())
            } else {
                self.buffer_waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }

    fn release_buffer(&self, bytes: usize) {
        self.buffered_bytes
            .set(self.buffered_bytes.get().saturating_sub(bytes));
        let waiters = std::mem::take(&mut *self.buffer_waiters.borrow_mut());
        for waker in waiters {
            waker.wake();
        }
    }

    fn complete(&self, batch: SealedBatch, outcome: Result<Option<u64>, ClientError>) {
        self.release_buffer(batch.buffered_bytes);
        if let Some(buffer) = batch.complete_reclaiming(outcome) {
            self.state.borrow_mut().accumulator.recycle(buffer);
        }
    }

    /// Seals the batch `id` of `topic`/`partition` after `linger`, unless it was sealed first.
    fn arm_linger(self: &Rc<Self>, topic: Arc<str>, partition: u32, id: BatchId) {
        let producer = Rc::downgrade(self);
        let linger = self.options.linger;
        glommio::spawn_local(async move {
            glommio::timer::sleep(linger).await;
            let Some(inner) = producer.upgrade() else {
                return;
            };
            let sealed = inner
                .state
                .borrow_mut()
                .accumulator
                .seal(&topic, partition, Some(id));
            if let Some(sealed) = sealed {
                inner.enqueue(sealed);
            }
        })
        .detach();
    }

    /// Queues a sealed batch behind its partition's request in flight, starting the
    /// partition's sender task if none runs.
    fn enqueue(self: &Rc<Self>, batch: SealedBatch) {
        let key = (batch.topic.clone(), batch.partition);
        let start_sender = {
            let mut state = self.state.borrow_mut();
            let count = state.partition_counts.get(&key.0).copied().unwrap_or(0);
            state.partitioner.batch_sealed(&key.0, key.1, count);
            let queue = state.queues.entry(key.clone()).or_default();
            queue.ready_bytes += batch.bytes.len();
            queue.ready.push_back(batch);
            if let Some(waker) = queue.waker.take() {
                waker.wake();
            }
            !std::mem::replace(&mut queue.sending, true)
        };
        if start_sender {
            glommio::spawn_local(send_loop(self.clone(), key.0, key.1)).detach();
        }
    }

    /// Takes the next request's batches off a partition's queue: at most `batches_max`, and
    /// none if the queue has none ready (the queue stays; [`Inner::finish`] removes it).
    fn next_request(&self, key: &QueueKey, batches_max: usize) -> Vec<SealedBatch> {
        let mut state = self.state.borrow_mut();
        let Some(queue) = state.queues.get_mut(key) else {
            unreachable!("a partition's queue lives as long as its sender");
        };
        let batches_max = batches_max.min(self.options.batches_per_request_max);
        let mut taken: Vec<SealedBatch> = Vec::new();
        let mut bytes = 0;
        while let Some(front) = queue.ready.front() {
            let full =
                taken.len() >= batches_max || bytes + front.bytes.len() > self.request_bytes_max;
            if batches_max == 0 || (full && !taken.is_empty()) {
                break;
            }
            bytes += front.bytes.len();
            let Some(batch) = queue.ready.pop_front() else {
                break;
            };
            queue.ready_bytes -= batch.bytes.len();
            taken.push(batch);
        }
        // Watches of batches already completed are dropped here, so the list stays as long as
        // what is in flight.
        queue.in_flight.retain(|watch| !watch.is_done());
        queue.in_flight.extend(taken.iter().map(SealedBatch::watch));
        taken
    }

    /// Whether enough is ready to go out behind a request in flight
    /// ([`SendQueue::ready_to_follow`]); if not and `waker` is given, it is woken when a batch
    /// is queued.
    fn ready_to_follow(&self, key: &QueueKey, waker: Option<&Waker>) -> bool {
        let mut state = self.state.borrow_mut();
        let Some(queue) = state.queues.get_mut(key) else {
            unreachable!("a partition's queue lives as long as its sender");
        };
        let ready = queue.ready_to_follow(self.options.pipeline_bytes_min);
        if !ready && let Some(waker) = waker {
            queue.waker = Some(waker.clone());
        }
        ready
    }

    /// Ends the partition's sender if nothing is ready: removes its queue (the next sealed
    /// batch starts a new sender) and returns true.
    fn finish(&self, key: &QueueKey) -> bool {
        let mut state = self.state.borrow_mut();
        if state
            .queues
            .get(key)
            .is_some_and(|queue| queue.ready.is_empty())
        {
            state.queues.remove(key);
            return true;
        }
        false
    }

    /// Batches a partition may send besides the `in_flight` ones: with idempotence up to
    /// [`IDEMPOTENT_BATCHES_IN_FLIGHT_MAX`] in all (what the broker remembers per producer and
    /// partition to recognise a retry); without, no limit beyond `batches_per_request_max`.
    fn batches_room(&self, in_flight: usize) -> usize {
        if self.idempotent() {
            IDEMPOTENT_BATCHES_IN_FLIGHT_MAX - in_flight
        } else {
            usize::MAX
        }
    }

    /// Whether a new request may follow `last` (the newest request in flight) before it is
    /// answered: always without idempotence, else only under the same producer id.
    fn may_follow(&self, last: Option<&InFlight>) -> bool {
        let Some(last) = last else {
            return true;
        };
        if !self.idempotent() {
            return true;
        }
        let in_flight = last.batches.first().map(|batch| batch.producer_id);
        self.identity.get().map(|(producer_id, _)| producer_id) == in_flight
    }

    /// Requests a partition may keep in flight: [`ProducerOptions::requests_in_flight_max`]
    /// where a request that fails cannot be overtaken by a later one (idempotence: the broker
    /// refuses a batch whose sequence does not follow the last one stored; `Acks::None`: never
    /// retried), else 1.
    fn pipeline_depth(&self) -> usize {
        if self.idempotent() || self.options.acks == Acks::None {
            self.options.requests_in_flight_max
        } else {
            1
        }
    }

    /// Sends `batches` of one partition in one request (stamping new ones first, with
    /// idempotence); the request runs in a task of its own so that later ones can follow it
    /// on the connection before it is answered. `None` if the batches failed before they
    /// were sent (no producer id).
    async fn start_request(
        self: &Rc<Self>,
        topic: &str,
        partition: u32,
        mut batches: Vec<SealedBatch>,
    ) -> Option<InFlight> {
        if self.idempotent() {
            if let Err(error) = self.identity().await {
                for batch in batches {
                    self.complete(batch, Err(error.clone()));
                }
                return None;
            }
            // Only new batches reach here: a batch is stamped when it is first sent.
            self.stamp_new(topic, partition, &mut batches);
        }
        let items = self.produce_items(topic, partition, &batches);
        let inner = self.clone();
        let acks = self.options.acks;
        let task = glommio::spawn_local(async move { inner.client.produce(acks, items).await });
        Some(InFlight { batches, task })
    }

    fn produce_items(
        &self,
        topic: &str,
        partition: u32,
        batches: &[SealedBatch],
    ) -> Vec<ProduceItem> {
        batches
            .iter()
            .inspect(|batch| {
                assert!(
                    batch.is_sendable(),
                    "a batch was sent before it was stamped"
                );
            })
            .map(|batch| ProduceItem {
                topic: topic.to_string(),
                partition,
                batch: batch.bytes.clone(),
            })
            .collect()
    }

    /// What [`retry::decide`] says of one attempt at `batches` (sent `resend_count` times
    /// before it) that ended with `outcome`.
    fn decide(
        &self,
        topic: &str,
        partition: u32,
        batches: &[SealedBatch],
        outcome: &Result<Vec<ProduceResultOwned>, ClientError>,
        resend_count: u32,
    ) -> retry::Decision {
        let response = match outcome {
            Ok(_) if self.options.acks == Acks::None => Response::Written,
            Ok(results) => Response::Answered(results),
            Err(error) => Response::Failed(error),
        };
        let stamps: Vec<BatchStamp> = batches.iter().map(stamp_of).collect();
        let attempt = Attempt {
            idempotent: self.idempotent(),
            resend_count,
            resend_count_max: self.options.retries,
        };
        retry::decide(topic, partition, &stamps, response, attempt)
    }

    /// Does what [`retry::decide`] says after one attempt at `batches`: completes each batch
    /// or keeps it to resend, drops the cached partition count if asked. Returns the batches
    /// to resend and what becomes of the partition's sequence.
    fn settle(
        &self,
        topic: &str,
        partition: u32,
        batches: Vec<SealedBatch>,
        outcome: &Result<Vec<ProduceResultOwned>, ClientError>,
        resend_count: u32,
    ) -> (Vec<SealedBatch>, SequenceAction) {
        let decision = self.decide(topic, partition, &batches, outcome, resend_count);
        if decision.forget_partition_count {
            self.state.borrow_mut().partition_counts.remove(topic);
        }
        let mut resend = Vec::new();
        for (mut batch, action) in batches.into_iter().zip(decision.batches) {
            match action {
                BatchAction::Complete(base_offset) => self.complete(batch, Ok(base_offset)),
                BatchAction::Retry => {
                    batch.outcome_unknown = unknown_error(outcome);
                    resend.push(batch);
                }
                BatchAction::Fail(error) => self.complete(batch, Err(error)),
            }
        }
        if !resend.is_empty() {
            match outcome {
                Ok(results) => tracing::debug!(
                    topic,
                    partition,
                    resend_count,
                    batches = resend.len(),
                    first_refusal = results
                        .iter()
                        .find(|result| result.error != schema::wire::ErrorCode::None)
                        .map_or("", |result| result.message.as_str()),
                    "produce refused; will retry"
                ),
                Err(error) => tracing::debug!(topic, partition, %error, resend_count,
                    "produce failed; will retry"),
            }
        }
        (resend, decision.sequence)
    }

    /// Settles a request that was in flight behind one whose batches were not all stored.
    /// Returns what the broker stored (or had stored), with its offset, for the caller to
    /// complete once the earlier batches are (records of a partition are acknowledged in the
    /// order they were sent), and every other batch, to be resent after the earlier request's.
    /// (Refusals here are mostly `OutOfOrderSequence`, the broker waiting for the earlier
    /// sequences; a refusal of its own comes back on the resend.)
    fn settle_behind(
        &self,
        topic: &str,
        partition: u32,
        batches: Vec<SealedBatch>,
        outcome: &Result<Vec<ProduceResultOwned>, ClientError>,
    ) -> (Vec<(SealedBatch, Option<u64>)>, Vec<SealedBatch>) {
        let decision = self.decide(topic, partition, &batches, outcome, 0);
        let mut stored = Vec::new();
        let mut resend = Vec::new();
        for (mut batch, action) in batches.into_iter().zip(decision.batches) {
            match action {
                BatchAction::Complete(base_offset) => stored.push((batch, base_offset)),
                BatchAction::Retry | BatchAction::Fail(_) => {
                    batch.outcome_unknown = unknown_error(outcome);
                    resend.push(batch);
                }
            }
        }
        (stored, resend)
    }

    /// Applies a [`SequenceAction`] to the batches to resend: re-stamps them, or takes a new
    /// producer id and stamps them under it from 0 (failing them if no id comes).
    async fn apply_sequence(
        &self,
        topic: &str,
        partition: u32,
        resend: &mut Vec<SealedBatch>,
        sequence: SequenceAction,
    ) {
        match sequence {
            SequenceAction::Keep => {}
            SequenceAction::Restamp { producer, from } => {
                // Nothing from `from` on was stored, and the broker stores a partition's
                // sequences only in order: none of these is, whatever its last attempt said.
                for batch in resend.iter_mut() {
                    batch.outcome_unknown = None;
                }
                self.restamp(topic, partition, resend, producer, from);
            }
            SequenceAction::NewProducerId { why } => {
                self.forget_identity(topic, partition, why);
                // A batch that may be stored under the old id must not go again under the
                // new one: it fails with what happened to it.
                let (maybe_stored, unstored): (Vec<_>, Vec<_>) = std::mem::take(resend)
                    .into_iter()
                    .partition(|batch| batch.outcome_unknown.is_some());
                *resend = unstored;
                for mut batch in maybe_stored {
                    let error = batch.outcome_unknown.take().expect("partitioned on it");
                    self.complete(batch, Err(error));
                }
                if !resend.is_empty() {
                    match self.identity().await {
                        Ok(identity) => {
                            self.restamp(topic, partition, resend, identity, 0);
                        }
                        Err(error) => {
                            for batch in resend.drain(..) {
                                self.complete(batch, Err(error.clone()));
                            }
                        }
                    }
                }
            }
        }
    }

    /// Resends `batches` (already sent `resend_count` times), in order, one request at a
    /// time: each request takes what fits in a frame from the front, waits the backoff first
    /// unless the request before it stored everything, and is settled as [`retry::decide`]
    /// says, its sequence action applying to everything behind it too, until none is left.
    async fn resend(
        &self,
        topic: &str,
        partition: u32,
        mut batches: Vec<SealedBatch>,
        mut resend_count: u32,
    ) {
        let mut back_off = true;
        while !batches.is_empty() {
            if back_off {
                let delay = retry::backoff(
                    resend_count,
                    self.options.retry_backoff,
                    self.options.retry_backoff_max,
                );
                glommio::timer::sleep(delay).await;
            }
            let behind = batches.split_off(self.request_prefix(&batches));
            let items = self.produce_items(topic, partition, &batches);
            let outcome = self.client.produce(self.options.acks, items).await;
            let (mut again, sequence) =
                self.settle(topic, partition, batches, &outcome, resend_count);
            // The batches behind were not refused themselves: they wait only if some of these
            // go again.
            back_off = !again.is_empty();
            again.extend(behind);
            self.apply_sequence(topic, partition, &mut again, sequence)
                .await;
            if back_off {
                resend_count += 1;
            }
            batches = again;
        }
    }

    /// How many batches from the front of `batches` one request carries: at least one, and
    /// as many as fit in `batches_per_request_max` and the frame.
    fn request_prefix(&self, batches: &[SealedBatch]) -> usize {
        let mut bytes = 0;
        let mut count = 0;
        for batch in batches.iter().take(self.options.batches_per_request_max) {
            bytes += batch.bytes.len();
            if count > 0 && bytes > self.request_bytes_max {
                break;
            }
            count += 1;
        }
        count
    }
}

/// A produce request on its way: its batches and the task awaiting the broker's answer.
struct InFlight {
    batches: Vec<SealedBatch>,
    task: glommio::Task<Result<Vec<ProduceResultOwned>, ClientError>>,
}

/// What a partition's sender waits for.
enum SenderEvent {
    /// The oldest request in flight was answered (or failed).
    Answered(Result<Vec<ProduceResultOwned>, ClientError>),
    /// Batches are ready and the pipeline has room for them.
    Ready,
}

/// A partition's sender task, until its queue is empty and nothing is in flight.
///
/// It keeps up to [`Inner::pipeline_depth`] requests in flight (and never more than
/// [`IDEMPOTENT_BATCHES_IN_FLIGHT_MAX`] batches, what the broker remembers per producer and
/// partition to recognise a retry) and settles their answers in order. While every answer
/// stores everything, requests follow each other without waiting. When one does not (a batch
/// to resend, or sequences to rewind), the pipeline stops: the answers of the requests behind
/// it are collected (what they stored completes; the rest was refused because the broker
/// expected the earlier sequences first, or failed with it), their unsettled batches join the
/// failed request's, in order, the failed request's sequence action applies to all of them,
/// and they are resent one request at a time, as with a depth of 1. Only then do new batches
/// go out again. So no batch is ever stored ahead of an earlier one of the same partition.
async fn send_loop(inner: Rc<Inner>, topic: String, partition: u32) {
    let depth = inner.pipeline_depth();
    let key: QueueKey = (topic.clone(), partition);
    let mut pipeline: VecDeque<InFlight> = VecDeque::new();
    // Whether another request may go out behind those in flight, ready batches aside. Under a
    // new producer id (another partition lost its sequence) the partition starts again at 0:
    // nothing goes behind requests under the old id, which a failure could make resend after
    // the new ones.
    let has_room = |pipeline: &VecDeque<InFlight>| {
        pipeline.len() < depth
            && inner.batches_room(batches_in(pipeline)) > 0
            && inner.may_follow(pipeline.back())
    };
    loop {
        // Fill the pipeline with what is ready.
        while has_room(&pipeline) && (pipeline.is_empty() || inner.ready_to_follow(&key, None)) {
            let room = inner.batches_room(batches_in(&pipeline));
            let batches = inner.next_request(&key, room);
            if batches.is_empty() {
                break;
            }
            if let Some(request) = inner.start_request(&topic, partition, batches).await {
                pipeline.push_back(request);
            }
        }
        if pipeline.is_empty() {
            if inner.finish(&key) {
                return;
            }
            continue;
        }
        // Wait for the oldest answer, or for batches the pipeline has room for.
        let room = has_room(&pipeline);
        let event = futures_lite::future::poll_fn(|cx| {
            let Some(oldest) = pipeline.front_mut() else {
                unreachable!("the pipeline is not empty");
            };
            if let Poll::Ready(outcome) = std::pin::Pin::new(&mut oldest.task).poll(cx) {
                return Poll::Ready(SenderEvent::Answered(outcome));
            }
            if room && inner.ready_to_follow(&key, Some(cx.waker())) {
                return Poll::Ready(SenderEvent::Ready);
            }
            Poll::Pending
        })
        .await;
        let SenderEvent::Answered(outcome) = event else {
            continue;
        };
        let Some(InFlight { batches, .. }) = pipeline.pop_front() else {
            unreachable!("answered by the oldest request");
        };
        let (mut resend, sequence) = inner.settle(&topic, partition, batches, &outcome, 0);
        if resend.is_empty() && sequence == SequenceAction::Keep {
            continue;
        }
        // The pipeline stops: settle the requests behind this one first.
        let mut stored_behind = Vec::new();
        while let Some(InFlight { batches, task }) = pipeline.pop_front() {
            let outcome = task.await;
            let (stored, unstored) = inner.settle_behind(&topic, partition, batches, &outcome);
            stored_behind.extend(stored);
            resend.extend(unstored);
        }
        inner
            .apply_sequence(&topic, partition, &mut resend, sequence)
            .await;
        inner.resend(&topic, partition, resend, 1).await;
        for (batch, base_offset) in stored_behind {
            inner.complete(batch, Ok(base_offset));
        }
    }
}

/// Batches in the requests of `pipeline`.
fn batches_in(pipeline: &VecDeque<InFlight>) -> usize {
    pipeline.iter().map(|request| request.batches.len()).sum()
}

/// The error of a request that ended without an answer (so its batches may be stored).
fn unknown_error(outcome: &Result<Vec<ProduceResultOwned>, ClientError>) -> Option<ClientError> {
    match outcome {
        Err(error) if retry::is_outcome_unknown(error) => Some(error.clone()),
        _ => None,
    }
}

/// How `batch` is stamped, for [`retry::decide`].
fn stamp_of(batch: &SealedBatch) -> BatchStamp {
    BatchStamp {
        record_count: batch.record_count,
        producer_id: batch.producer_id,
        producer_epoch: batch.producer_epoch,
        base_sequence: batch.base_sequence,
    }
}

/// Whether a producer with `options` stamps its batches for idempotence (never with
/// `Acks::None`, which is never retried).
fn stamps_batches(options: &ProducerOptions) -> bool {
    options.idempotence && options.acks != Acks::None
}

/// `sequence + records`, wrapping from `i32::MAX` to 0 as Kafka's sequences do.
fn sequence_add(sequence: i32, records: u32) -> i32 {
    ((i64::from(sequence) + i64::from(records)) % (i64::from(i32::MAX) + 1)) as i32
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}
