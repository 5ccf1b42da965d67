//! [`Client`]: one pipelined connection to a broker, and the typed request methods on it.
//!
//! Lifecycle: [`Client::connect`] opens the socket, does the handshake (which tells us the
//! broker's frame limit and in-flight limit), then splits the connection between two tasks on
//! the current glommio executor:
//!
//! - the *writer task* takes encoded frames from a bounded queue and writes each one whole, so a
//!   caller that gives up (a timeout, a dropped future) can never leave half a frame on the wire;
//! - the *reader task* reads response frames, verifies them, and hands each to the caller
//!   waiting on its `correlation_id` (a map of one-shot channels).
//!
//! Any number of calls may be in flight, up to the smaller of [`ClientOptions::in_flight_max`]
//! and the broker's limit (a semaphore; callers beyond it wait). A produce with `Acks::None`
//! gets no response: its call ends once the writer task has written it to the socket.
//!
//! Produce calls that wait for a permit are coalesced, as Kafka's sender drains every ready
//! partition into one request per broker: they queue in call order, and whichever call gets a
//! permit next sends the queue's oldest calls (as many as fit one frame) in one request, then
//! hands each call its own results. So a producer with many partitions sends a few large
//! requests instead of one per partition, and the broker pays its per-request costs once for
//! all of them (issue #11: with 1,000 partitions the 64 requests in flight of one batch each
//! were the limit). Calls leave in call order, so one partition's requests still reach the
//! broker in the order they were made, and within one request the broker appends a
//! partition's batches in request order.
//!
//! If the connection fails (socket error, end of stream, an undecodable frame, a response to a
//! request never sent), the reader or writer task records the reason and fails every waiting
//! call with it ([`ClientError::ConnectionLost`]: the request may or may not have taken
//! effect). The next call opens a new connection (handshake included) before it is sent,
//! retrying with capped exponential backoff and jitter for up to
//! [`ClientOptions::reconnect_timeout`]; calls made meanwhile wait for that one reconnect. The
//! same applies to [`Client::connect`] when the broker is not up yet. With a zero
//! `reconnect_timeout` a lost connection stays lost and later calls fail at once. Nothing waits
//! forever: each call also has a timeout. A response that arrives after its caller timed out is
//! dropped.
//!
//! All state lives on the executor thread that called `connect` (`Rc`, `RefCell`): a `Client`
//! is `!Send`. Share it between tasks of that executor with `Rc<Client>`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flatbuffers::FlatBufferBuilder;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::sync::Semaphore;
use schema::wire::{
    self, Acks, DecodeLimits, ErrorCode, FetchPartitionOwned, FrameError,
    ListOffsetsPartitionOwned, ListOffsetsResultOwned, OffsetSpec, PayloadRange, ProduceBatchOwned,
    ProduceResultOwned, RequestBodyOwned, ResponseBodyOwned, ResponseOwned, TopicConfigOwned,
    TopicMetadataOwned,
};

use crate::error::ClientError;
use crate::oneshot;

/// The correlation id of the handshake, the first request on every connection. The broker
/// answers a request it cannot decode with correlation id 0, so 0 is never used.
const HANDSHAKE_CORRELATION_ID: u64 = 1;

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Sent in the handshake; shows up in broker logs.
    pub client_id: String,
    /// Limit on opening the socket and on the handshake, each.
    pub connect_timeout: Duration,
    /// Limit on waiting for each response (a fetch adds its long-poll wait to it).
    pub request_timeout: Duration,
    /// Requests in flight at once; the broker's limit applies too, whichever is smaller.
    pub in_flight_max: u16,
    /// Largest response frame accepted, and (with the broker's limit) largest request sent.
    pub frame_bytes_max: u32,
    /// How long to keep trying to (re)connect, from the first failed attempt, when the broker
    /// cannot be reached or the connection was lost; zero: fail at once.
    pub reconnect_timeout: Duration,
}

/// The first pause between connection attempts; it doubles up to [`RECONNECT_BACKOFF_MAX`].
const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest pause between connection attempts.
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            client_id: "ringbus-client".to_string(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            in_flight_max: 64,
            frame_bytes_max: wire::FRAME_BYTES_MAX_DEFAULT,
            reconnect_timeout: Duration::from_secs(60),
        }
    }
}

/// What the broker announced in the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerInfo {
    /// Protocol version spoken.
    pub version: u16,
    /// Shards (cores) serving the broker.
    pub shard_count: u16,
    /// Largest frame the broker accepts.
    pub frame_bytes_max: u32,
    /// Requests the broker lets one connection have in flight.
    pub in_flight_max: u16,
}

/// One batch of a produce request: a whole Kafka RecordBatch v2 (see
/// [`schema::batch::BatchBuilder`]) for one partition. The bytes travel in the frame's payload
/// as they are; they are never copied into the message.
#[derive(Debug, Clone)]
pub struct ProduceItem {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The encoded batch.
    pub batch: Bytes,
}

/// A fetch request: where to read, and how long to long-poll for data.
#[derive(Debug, Clone)]
pub struct FetchArgs {
    /// Wait up to this long for `bytes_min` bytes (whole milliseconds on the wire).
    pub wait_max: Duration,
    /// Answer as soon as this many bytes are available (1: as soon as there is anything).
    pub bytes_min: u32,
    /// Bytes for the whole response, over all partitions.
    pub bytes_max: u32,
    /// The partitions, each with its offset and its own byte limit.
    pub partitions: Vec<FetchPartitionOwned>,
}

/// What a fetch returned for one partition.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// `ErrorCode::None`, or why this partition could not be read.
    pub error: ErrorCode,
    /// The broker's explanation of `error` (empty on success).
    pub message: String,
    /// The first offset still stored.
    pub log_start: u64,
    /// The next offset to be written (Kafka's high watermark).
    pub log_end: u64,
    /// Whole stored batches, concatenated: a zero-copy slice of the response frame. The first
    /// may start before the offset asked for. Verify each before trusting it
    /// ([`crate::consumer::decode_batches`] does).
    pub batches: Bytes,
}

/// Which offset [`Client::list_offsets`] looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetQuery {
    /// The first offset still stored.
    Earliest,
    /// The next offset to be written.
    Latest,
    /// The first batch with a timestamp at or after this (ms), or the log end if none.
    Timestamp(i64),
}

/// One partition of a list-offsets request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOffsetsItem {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// What to look up.
    pub query: OffsetQuery,
}

/// Frames the writer task sends with one [`net::FrameWriter::write_frames`] at most.
const WRITE_FRAMES_MAX: usize = 64;

/// A frame for the writer task. `written` is completed once the frame is on the socket (used
/// by requests that get no response).
struct Outgoing {
    message: Vec<u8>,
    payload: Vec<Bytes>,
    written: Option<oneshot::Sender<()>>,
}

/// The operation name of produce requests, in errors.
const PRODUCE: &str = "produce";

/// Coalesced produce calls stop taking more calls at this size (payload and an estimate of the
/// message): Kafka's default `max.request.size`. Larger requests would hold every call in them
/// until the slowest partition is written, and 64 requests of this size in flight are more
/// than a producer's default buffer. A single call larger than this goes alone.
const PRODUCE_COALESCED_BYTES_MAX: u64 = 1 << 20;

/// Coalesced produce calls stop taking more calls at this many batches: the broker spawns a
/// task per partition of a request.
const PRODUCE_COALESCED_BATCHES_MAX: usize = 1024;

/// An estimate of the message bytes per batch of a produce request beyond its topic name: the
/// batch's table, vtable offset, partition and payload range (under 40 bytes in practice).
const PRODUCE_MESSAGE_BYTES_PER_BATCH: u64 = 64;

/// An allowance for a produce request's message beyond its batches' entries (flatbuffers
/// header, correlation id, acks, timeout; under 200 bytes in practice).
const PRODUCE_MESSAGE_BYTES_FIXED: u64 = 1024;

/// A request written to the connection, waiting for its response.
struct Sent {
    operation: &'static str,
    correlation_id: u64,
    receiver: oneshot::Receiver<Result<Reply, ClientError>>,
}

/// What a queued produce call waits for first.
enum QueuedEvent {
    /// Its results, from a request another call sent (`None`: that call's task is gone).
    Replied(Option<Result<Vec<ProduceResultOwned>, ClientError>>),
    /// A permit to send a request.
    Permit(glommio::Result<glommio::sync::StaticPermit, ()>),
}

/// Where a queued produce call's results (or its request's error) go.
type ProduceReply = oneshot::Sender<Result<Vec<ProduceResultOwned>, ClientError>>;

/// Produce calls waiting to be sent, oldest first.
#[derive(Default)]
struct ProduceQueue {
    next_ticket: u64,
    calls: std::collections::VecDeque<QueuedProduce>,
}

/// One produce call in the queue.
struct QueuedProduce {
    ticket: u64,
    acks: Acks,
    items: Vec<ProduceItem>,
    /// Its payload plus an estimate of its share of the request message.
    request_bytes: u64,
    reply: ProduceReply,
}

impl ProduceQueue {
    fn push(&mut self, acks: Acks, items: Vec<ProduceItem>, reply: ProduceReply) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let request_bytes = items
            .iter()
            .map(|item| {
                item.batch.len() as u64 + item.topic.len() as u64 + PRODUCE_MESSAGE_BYTES_PER_BATCH
            })
            .sum();
        self.calls.push_back(QueuedProduce {
            ticket,
            acks,
            items,
            request_bytes,
            reply,
        });
        ticket
    }

    /// Where `ticket`'s call is: tickets grow with each push and calls leave only from the
    /// front or by `remove`, so the queue stays sorted by ticket.
    fn position(&self, ticket: u64) -> Option<usize> {
        self.calls
            .binary_search_by_key(&ticket, |call| call.ticket)
            .ok()
    }

    fn holds(&self, ticket: u64) -> bool {
        self.position(ticket).is_some()
    }

    fn remove(&mut self, ticket: u64) {
        if let Some(at) = self.position(ticket) {
            self.calls.remove(at);
        }
    }

    /// The oldest calls that share one request: the first, and those after it with the same
    /// `acks` while the request stays within the coalescing limits and `frame_bytes_max`.
    fn take(&mut self, frame_bytes_max: u64) -> Vec<QueuedProduce> {
        // The request's own fields (correlation id, acks, vectors' headers) beside its batches.
        let bytes_max = PRODUCE_COALESCED_BYTES_MAX
            .min(frame_bytes_max.saturating_sub(PRODUCE_MESSAGE_BYTES_FIXED));
        let mut taken: Vec<QueuedProduce> = Vec::new();
        let (mut bytes, mut batches) = (0, 0);
        while let Some(next) = self.calls.front() {
            if let Some(first) = taken.first()
                && (next.acks != first.acks
                    || bytes + next.request_bytes > bytes_max
                    || batches + next.items.len() > PRODUCE_COALESCED_BATCHES_MAX)
            {
                break;
            }
            bytes += next.request_bytes;
            batches += next.items.len();
            let Some(call) = self.calls.pop_front() else {
                unreachable!("the front was just seen");
            };
            taken.push(call);
        }
        taken
    }
}

/// A produce call's place in the queue, given up when the call is dropped unsent.
struct Queued<'a> {
    queue: &'a RefCell<ProduceQueue>,
    ticket: u64,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.queue.borrow_mut().remove(self.ticket);
    }
}

/// The body and payload of one produce request carrying `calls`' items, in order.
fn produce_body(
    acks: Acks,
    timeout: Duration,
    calls: impl IntoIterator<Item = Vec<ProduceItem>>,
    frame_bytes_max: u32,
) -> Result<(RequestBodyOwned, Vec<Bytes>), ClientError> {
    let mut batches = Vec::new();
    let mut payload = Vec::new();
    // Each batch's place in the payload. u64, so a sum past u32 is caught, not wrapped.
    let mut payload_bytes: u64 = 0;
    for item in calls.into_iter().flatten() {
        let too_large = || ClientError::RequestTooLarge {
            frame_bytes: payload_bytes + item.batch.len() as u64,
            frame_bytes_max,
        };
        let offset = u32::try_from(payload_bytes).map_err(|_| too_large())?;
        let length = u32::try_from(item.batch.len()).map_err(|_| too_large())?;
        payload_bytes += u64::from(length);
        batches.push(ProduceBatchOwned {
            topic: item.topic,
            partition: item.partition,
            batch: PayloadRange::new(offset, length),
        });
        payload.push(item.batch);
    }
    let body = RequestBodyOwned::Produce {
        acks,
        timeout_ms: millis_u32(timeout),
        batches,
    };
    Ok((body, payload))
}

/// The `count` results of a produce request, from its reply.
fn produce_results(
    reply: Result<Reply, ClientError>,
    count: usize,
) -> Result<Vec<ProduceResultOwned>, ClientError> {
    match response_body(PRODUCE, reply?)?.0 {
        ResponseBodyOwned::Produce { error, results } => {
            body_error(PRODUCE, error, String::new())?;
            if results.len() != count {
                return Err(ClientError::Protocol {
                    operation: PRODUCE,
                    reason: format!("{} results for {count} batches", results.len()),
                });
            }
            Ok(results)
        }
        other => Err(unexpected(PRODUCE, &other)),
    }
}

/// The body of a response and its payload, or the error the whole response carries.
fn response_body(
    operation: &'static str,
    reply: Reply,
) -> Result<(ResponseBodyOwned, Bytes), ClientError> {
    let response = reply.response;
    if response.error != ErrorCode::None {
        return Err(ClientError::Broker {
            operation,
            code: response.error,
            message: response.message,
        });
    }
    match response.body {
        Some(body) => Ok((body, reply.payload)),
        None => Err(ClientError::Protocol {
            operation,
            reason: "the response has no body".to_string(),
        }),
    }
}

/// Hands each coalesced call (its item count, its reply) its share of `results`, in order, or
/// the error of the whole request.
fn hand_out(
    results: Result<Vec<ProduceResultOwned>, ClientError>,
    replies: Vec<(usize, ProduceReply)>,
) {
    match results {
        Ok(results) => {
            let mut results = results.into_iter();
            for (count, reply) in replies {
                reply.send(Ok(results.by_ref().take(count).collect()));
            }
        }
        Err(error) => {
            for (_, reply) in replies {
                reply.send(Err(error.clone()));
            }
        }
    }
}

/// A verified response and the payload its [`PayloadRange`]s point into.
struct Reply {
    response: ResponseOwned,
    payload: Bytes,
}

/// A caller waiting for its response.
struct Waiter {
    operation: &'static str,
    sender: oneshot::Sender<Result<Reply, ClientError>>,
}

/// State shared by the client, its reader task and its writer task.
struct Shared {
    address: SocketAddr,
    pending: RefCell<HashMap<u64, Waiter>>,
    /// Set once, when the connection becomes unusable; every later call gets a clone.
    failure: RefCell<Option<ClientError>>,
    next_correlation_id: Cell<u64>,
    closing: Cell<bool>,
    decode_limits: DecodeLimits,
}

impl Shared {
    /// Marks the connection failed and fails every waiting call with `error`.
    fn fail(&self, error: ClientError) {
        if self.failure.borrow().is_none() {
            *self.failure.borrow_mut() = Some(error);
        }
        let error = self.lost();
        // Take the waiters out first: completing one wakes a task, never re-enters, but the
        // map must not stay borrowed while we do it.
        let waiters: Vec<Waiter> = self.pending.borrow_mut().drain().map(|(_, w)| w).collect();
        for waiter in waiters {
            waiter.sender.send(Err(error.clone()));
        }
    }

    /// The error a call gets on a connection that can no longer be used.
    fn lost(&self) -> ClientError {
        self.failure
            .borrow()
            .clone()
            .unwrap_or_else(|| ClientError::ConnectionLost {
                address: self.address,
                reason: "the connection closed".to_string(),
            })
    }

    /// Hands a response frame to its caller. An `Err` means the stream can no longer be
    /// trusted, and the connection must be failed with that reason.
    fn dispatch(&self, frame: net::Frame) -> Result<(), String> {
        let payload = frame.payload.freeze();
        let response = wire::decode_response(&frame.message, &self.decode_limits)
            .map_err(|error| format!("undecodable response: {error}"))?;
        let correlation_id = response.correlation_id();
        let converted = wire::response_from_wire(response, payload.len(), &self.decode_limits);
        let waiter = self.pending.borrow_mut().remove(&correlation_id);
        let Some(waiter) = waiter else {
            if correlation_id == 0 {
                // The broker could not read one of our requests, and closes the connection.
                let why = match converted {
                    Ok(response) => format!("{:?}: {}", response.error, response.message),
                    Err(error) => error.to_string(),
                };
                return Err(format!("the broker refused a request: {why}"));
            }
            if correlation_id < self.next_correlation_id.get() {
                tracing::debug!(
                    correlation_id,
                    "dropping a response that came after its timeout"
                );
                return Ok(());
            }
            return Err(format!(
                "response to correlation id {correlation_id}, which was never sent"
            ));
        };
        let reply = converted
            .map(|response| Reply { response, payload })
            .map_err(|error| ClientError::Protocol {
                operation: waiter.operation,
                reason: error.to_string(),
            });
        waiter.sender.send(reply);
        Ok(())
    }
}

/// One connection to a broker, pipelined, reconnecting when it is lost. See the module
/// documentation for the lifecycle.
pub struct Client {
    address: SocketAddr,
    options: ClientOptions,
    /// The current connection; replaced by a reconnect.
    connection: RefCell<Rc<Connection>>,
    builder: RefCell<FlatBufferBuilder<'static>>,
    /// One reconnect at a time: calls that find the connection lost wait for it.
    reconnecting: Semaphore,
    /// Reconnect attempts finished (opened a connection or gave up), and how the last one that
    /// gave up failed: calls that waited for an attempt share its outcome instead of each
    /// trying for another `reconnect_timeout`.
    reconnect_attempts: Cell<u64>,
    reconnect_failure: RefCell<Option<ClientError>>,
    /// Connections in a row that failed soon after they were opened (a broker that refuses
    /// requests or breaks the protocol): each such reconnect waits longer first.
    quick_losses: Cell<u32>,
    closed: Cell<bool>,
    reconnects: Cell<u64>,
}

/// One TCP connection, its handshake's outcome and its reader and writer tasks: what a
/// reconnect replaces.
struct Connection {
    /// When the handshake completed.
    opened: std::time::Instant,
    shared: Rc<Shared>,
    /// The writer task's queue; taken by [`Client::close`]. Each call clones the `Rc` while it
    /// enqueues, so the queue closes once the last of them has.
    outgoing: RefCell<Option<Rc<LocalSender<Outgoing>>>>,
    /// A permit per request in flight; an `Rc`, so that a coalesced produce request's task can
    /// hold its permit until the answer is handed out.
    in_flight: Rc<Semaphore>,
    /// Produce calls waiting to be sent, oldest first (see [`Connection::produce`]).
    produce_queue: RefCell<ProduceQueue>,
    broker: BrokerInfo,
    /// The smaller of our frame limit and the broker's: requests over it are refused here.
    frame_bytes_max_send: u32,
    reader: RefCell<Option<glommio::Task<()>>>,
    writer: RefCell<Option<glommio::Task<()>>>,
}

impl Client {
    /// Connects to `address` and does the handshake, retrying for up to
    /// [`ClientOptions::reconnect_timeout`] while the broker cannot be reached (it may not be
    /// up yet). Must run on a glommio executor; the client's tasks are spawned on it.
    pub async fn connect(
        address: SocketAddr,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let connection = Connection::open_with_retries(address, &options).await?;
        Ok(Client {
            address,
            options,
            connection: RefCell::new(Rc::new(connection)),
            builder: RefCell::new(FlatBufferBuilder::with_capacity(1024)),
            reconnecting: Semaphore::new(1),
            reconnect_attempts: Cell::new(0),
            reconnect_failure: RefCell::new(None),
            quick_losses: Cell::new(0),
            closed: Cell::new(false),
            reconnects: Cell::new(0),
        })
    }

    /// The current connection, or a new one if it was lost (see the module documentation).
    async fn connection(&self) -> Result<Rc<Connection>, ClientError> {
        loop {
            let current = self.connection.borrow().clone();
            let Some(failure) = current.failure() else {
                return Ok(current);
            };
            if self.closed.get() || self.options.reconnect_timeout.is_zero() {
                return Err(current.unusable(failure));
            }
            let attempts_before = self.reconnect_attempts.get();
            let _permit = self
                .reconnecting
                .acquire_permit(1)
                .await
                .map_err(|_| current.unusable(failure.clone()))?;
            if self.closed.get() {
                return Err(current.unusable(failure));
            }
            if !Rc::ptr_eq(&current, &self.connection.borrow()) {
                // Another call reconnected while this one waited.
                continue;
            }
            if self.reconnect_attempts.get() != attempts_before
                && let Some(gave_up) = self.reconnect_failure.borrow().clone()
            {
                // The attempt this call waited for gave up: its answer is this call's too.
                return Err(gave_up);
            }
            // A connection that failed soon after it opened (a broker refusing our requests)
            // is not retried at once: the pause grows with each such loss in a row.
            if current.opened.elapsed() < RECONNECT_BACKOFF_MAX {
                let losses = self.quick_losses.get().saturating_add(1);
                self.quick_losses.set(losses);
                let pause = RECONNECT_BACKOFF_MIN
                    .saturating_mul(1 << losses.min(8))
                    .min(RECONNECT_BACKOFF_MAX);
                glommio::timer::sleep(pause).await;
            } else {
                self.quick_losses.set(0);
            }
            tracing::info!(address = %self.address, %failure, "connection lost: reconnecting");
            let opened = Connection::open_with_retries(self.address, &self.options).await;
            self.reconnect_attempts
                .set(self.reconnect_attempts.get() + 1);
            let fresh = match opened {
                Ok(fresh) => fresh,
                Err(error) => {
                    let gave_up = ClientError::Unreachable {
                        address: self.address,
                        waited: self.options.reconnect_timeout,
                        lost: failure.to_string(),
                        last: error.to_string(),
                    };
                    *self.reconnect_failure.borrow_mut() = Some(gave_up.clone());
                    return Err(gave_up);
                }
            };
            *self.reconnect_failure.borrow_mut() = None;
            if self.closed.get() {
                // Closed while reconnecting: the new connection is dropped unused.
                continue;
            }
            tracing::info!(address = %self.address, "reconnected");
            self.reconnects.set(self.reconnects.get() + 1);
            *self.connection.borrow_mut() = Rc::new(fresh);
        }
    }
}

impl Connection {
    /// [`Connection::open`], retried with capped exponential backoff and jitter while the
    /// broker cannot be reached, for up to `options.reconnect_timeout`.
    async fn open_with_retries(
        address: SocketAddr,
        options: &ClientOptions,
    ) -> Result<Connection, ClientError> {
        let deadline = std::time::Instant::now() + options.reconnect_timeout;
        let mut backoff = RECONNECT_BACKOFF_MIN;
        loop {
            let error = match Connection::open(address, options).await {
                Ok(connection) => return Ok(connection),
                Err(error) => error,
            };
            // Reachability is worth waiting for; a broker that refuses us is not.
            let unreachable = matches!(
                error,
                ClientError::Connect { .. }
                    | ClientError::ConnectionLost { .. }
                    | ClientError::Timeout { .. }
            );
            // Jitter: between half and all of the backoff, so clients that lost the same
            // broker do not all come back in the same instant. (One attempt may itself take up
            // to twice `connect_timeout`: the deadline is checked between attempts.)
            let pause = backoff.mul_f64(0.5 + fastrand::f64() / 2.0);
            if !unreachable || std::time::Instant::now() + pause >= deadline {
                return Err(error);
            }
            tracing::debug!(%address, %error, ?pause, "broker unreachable: retrying");
            glommio::timer::sleep(pause).await;
            backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
        }
    }

    /// Opens the socket and does the handshake, then starts the reader and writer tasks.
    async fn open(address: SocketAddr, options: &ClientOptions) -> Result<Connection, ClientError> {
        let limits = net::Limits {
            frame_bytes_max: options.frame_bytes_max,
            // Responses may be far apart (an idle producer, a long poll): never time out reads.
            idle_timeout: None,
        };
        let connection = net::Connection::connect(address, options.connect_timeout, limits)
            .await
            .map_err(|error| ClientError::Connect {
                address,
                source: Arc::new(error),
            })?;
        let (mut reader, mut writer) = connection.split();
        let mut builder = FlatBufferBuilder::with_capacity(256);
        let decode_limits = DecodeLimits::default();
        let handshake = handshake(
            address,
            &options.client_id,
            &mut builder,
            &mut reader,
            &mut writer,
            &decode_limits,
        );
        let timeout = options.connect_timeout;
        let broker = futures_lite::future::or(handshake, async {
            glommio::timer::sleep(timeout).await;
            Err(ClientError::Timeout {
                operation: "handshake",
                timeout,
            })
        })
        .await?;

        let in_flight_max = options.in_flight_max.min(broker.in_flight_max).max(1);
        let shared = Rc::new(Shared {
            address,
            pending: RefCell::new(HashMap::new()),
            failure: RefCell::new(None),
            next_correlation_id: Cell::new(HANDSHAKE_CORRELATION_ID + 1),
            closing: Cell::new(false),
            decode_limits,
        });
        let (sender, queue) = local_channel::new_bounded(usize::from(in_flight_max));
        let reader = glommio::spawn_local(read_loop(shared.clone(), reader));
        let writer = glommio::spawn_local(write_loop(shared.clone(), writer, queue));
        Ok(Connection {
            opened: std::time::Instant::now(),
            shared,
            outgoing: RefCell::new(Some(Rc::new(sender))),
            in_flight: Rc::new(Semaphore::new(u64::from(in_flight_max))),
            produce_queue: RefCell::new(ProduceQueue::default()),
            frame_bytes_max_send: options.frame_bytes_max.min(broker.frame_bytes_max),
            broker,
            reader: RefCell::new(Some(reader)),
            writer: RefCell::new(Some(writer)),
        })
    }

    /// Why this connection can no longer be used, if it cannot.
    fn failure(&self) -> Option<ClientError> {
        if self.shared.closing.get() {
            return Some(ClientError::Closed {
                reason: "the client was closed",
            });
        }
        self.shared.failure.borrow().clone()
    }
}

impl Client {
    /// The broker's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// What the broker announced in the handshake of the current connection.
    pub fn broker(&self) -> BrokerInfo {
        self.connection.borrow().broker
    }

    /// The options the client was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Why the current connection can no longer be used, if it cannot (the next call
    /// reconnects, unless the client was closed or reconnecting is off).
    pub fn failure(&self) -> Option<ClientError> {
        self.connection.borrow().failure()
    }

    /// Connections opened after the first (each one after a lost connection).
    pub fn reconnects(&self) -> u64 {
        self.reconnects.get()
    }

    /// Creates a topic with `partitions` partitions.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        config: TopicConfigOwned,
    ) -> Result<(), ClientError> {
        const OPERATION: &str = "create_topic";
        let body = RequestBodyOwned::CreateTopic {
            name: name.to_string(),
            partitions,
            config,
        };
        match self.request(OPERATION, body, Vec::new(), None).await?.0 {
            ResponseBodyOwned::CreateTopic { error, message } => {
                body_error(OPERATION, error, message)
            }
            other => Err(unexpected(OPERATION, &other)),
        }
    }

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        const OPERATION: &str = "delete_topic";
        let body = RequestBodyOwned::DeleteTopic {
            name: name.to_string(),
        };
        match self.request(OPERATION, body, Vec::new(), None).await?.0 {
            ResponseBodyOwned::DeleteTopic { error, message } => {
                body_error(OPERATION, error, message)
            }
            other => Err(unexpected(OPERATION, &other)),
        }
    }

    /// One topic's metadata; an error if the broker does not know the topic.
    pub async fn topic_metadata(&self, topic: &str) -> Result<TopicMetadataOwned, ClientError> {
        let topics = self.metadata(&[topic.to_string()]).await?;
        let Some(metadata) = topics.into_iter().find(|metadata| metadata.name == topic) else {
            return Err(ClientError::Protocol {
                operation: "metadata",
                reason: format!("no entry for topic {topic:?}"),
            });
        };
        if metadata.error != ErrorCode::None {
            return Err(ClientError::Broker {
                operation: "metadata",
                code: metadata.error,
                message: format!("topic {topic:?}"),
            });
        }
        Ok(metadata)
    }

    /// Describes `topics` (all topics when empty). A topic that does not exist comes back with
    /// `error: ErrorCode::UnknownTopic` and no partitions.
    pub async fn metadata(
        &self,
        topics: &[String],
    ) -> Result<Vec<TopicMetadataOwned>, ClientError> {
        const OPERATION: &str = "metadata";
        let body = RequestBodyOwned::Metadata {
            topics: topics.to_vec(),
        };
        match self.request(OPERATION, body, Vec::new(), None).await?.0 {
            ResponseBodyOwned::Metadata { error, topics } => {
                body_error(OPERATION, error, String::new())?;
                Ok(topics)
            }
            other => Err(unexpected(OPERATION, &other)),
        }
    }

    /// Sends `items` in one produce request and returns one result per item, in order; each
    /// result carries its own error code. With `Acks::None` the broker sends no response: the
    /// call ends once the request is written to the socket, and returns no results. Calls made
    /// while every permit is taken share requests (see the module documentation).
    pub async fn produce(
        &self,
        acks: Acks,
        items: Vec<ProduceItem>,
    ) -> Result<Vec<ProduceResultOwned>, ClientError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        if acks == Acks::None {
            let timeout = self.options.request_timeout;
            let frame_bytes_max = self.connection.borrow().frame_bytes_max_send;
            let (body, payload) = produce_body(acks, timeout, [items], frame_bytes_max)?;
            self.call(PRODUCE, body, payload, timeout, false).await?;
            return Ok(Vec::new());
        }
        let connection = self.connection().await?;
        connection
            .produce(&self.builder, acks, items, self.options.request_timeout)
            .await
    }

    /// Reads from the partitions in `args`, long-polling up to `args.wait_max` for data. Each
    /// partition's batches are a zero-copy slice of the response.
    pub async fn fetch(&self, args: FetchArgs) -> Result<Vec<Fetched>, ClientError> {
        const OPERATION: &str = "fetch";
        // What a response frame we accept can hold (the broker caps by its own limit too).
        let fitting = wire::fetch_bytes_fitting(
            self.options.frame_bytes_max,
            args.partitions
                .iter()
                .map(|partition| partition.topic.len()),
        );
        let body = RequestBodyOwned::Fetch {
            wait_ms_max: millis_u32(args.wait_max),
            bytes_min: args.bytes_min,
            bytes_max: args.bytes_max.min(fitting),
            partitions: args.partitions,
        };
        // The broker may hold the request for the whole wait before it answers.
        let timeout = self.options.request_timeout.saturating_add(args.wait_max);
        let (body, payload) = self
            .request(OPERATION, body, Vec::new(), Some(timeout))
            .await?;
        match body {
            ResponseBodyOwned::Fetch { error, results } => {
                body_error(OPERATION, error, String::new())?;
                results
                    .into_iter()
                    .map(|result| {
                        let batches =
                            wire::slice_payload(&payload, &result.batches).map_err(|error| {
                                ClientError::Protocol {
                                    operation: OPERATION,
                                    reason: error.to_string(),
                                }
                            })?;
                        Ok(Fetched {
                            topic: result.topic,
                            partition: result.partition,
                            error: result.error,
                            message: result.message,
                            log_start: result.log_start,
                            log_end: result.log_end,
                            batches,
                        })
                    })
                    .collect()
            }
            other => Err(unexpected(OPERATION, &other)),
        }
    }

    /// Looks up offsets (earliest, latest, by timestamp), one result per item with its own
    /// error code.
    pub async fn list_offsets(
        &self,
        items: Vec<ListOffsetsItem>,
    ) -> Result<Vec<ListOffsetsResultOwned>, ClientError> {
        const OPERATION: &str = "list_offsets";
        let partitions = items
            .into_iter()
            .map(|item| {
                let (spec, timestamp_ms) = match item.query {
                    OffsetQuery::Earliest => (OffsetSpec::Earliest, 0),
                    OffsetQuery::Latest => (OffsetSpec::Latest, 0),
                    OffsetQuery::Timestamp(timestamp_ms) => (OffsetSpec::Timestamp, timestamp_ms),
                };
                ListOffsetsPartitionOwned {
                    topic: item.topic,
                    partition: item.partition,
                    spec,
                    timestamp_ms,
                }
            })
            .collect();
        let body = RequestBodyOwned::ListOffsets { partitions };
        match self.request(OPERATION, body, Vec::new(), None).await?.0 {
            ResponseBodyOwned::ListOffsets { error, results } => {
                body_error(OPERATION, error, String::new())?;
                Ok(results)
            }
            other => Err(unexpected(OPERATION, &other)),
        }
    }

    /// [`Client::list_offsets`] where any partition's error fails the whole call (as
    /// [`ClientError::Partition`]): the found offsets, in request order.
    pub async fn list_offsets_all(
        &self,
        items: Vec<ListOffsetsItem>,
    ) -> Result<Vec<ListOffsetsResultOwned>, ClientError> {
        let results = self.list_offsets(items).await?;
        if let Some(failed) = results
            .iter()
            .find(|result| result.error != ErrorCode::None)
        {
            return Err(ClientError::Partition {
                topic: failed.topic.clone(),
                partition: failed.partition,
                code: failed.error,
                message: String::new(),
            });
        }
        Ok(results)
    }

    /// Closes the connection gracefully: new calls fail with [`ClientError::Closed`], requests
    /// already queued are written, then the writing side is shut down. The broker answers what
    /// it has read and closes its side; this waits for that (up to the request timeout), so on
    /// `Ok` every request sent, including `Acks::None` produces, has been handled by the broker.
    pub async fn close(&self) -> Result<(), ClientError> {
        self.closed.set(true);
        let connection = self.connection.borrow().clone();
        connection.shared.closing.set(true);
        drop(connection.outgoing.borrow_mut().take());
        let writer = connection.writer.borrow_mut().take();
        if let Some(writer) = writer {
            writer.await;
        }
        let reader = connection.reader.borrow_mut().take();
        let Some(reader) = reader else {
            return Ok(());
        };
        let timeout = self.options.request_timeout;
        futures_lite::future::or(
            async {
                reader.await;
                Ok(())
            },
            async {
                glommio::timer::sleep(timeout).await;
                Err(ClientError::Timeout {
                    operation: "close",
                    timeout,
                })
            },
        )
        .await
    }

    /// Sends a request that expects a response, and checks the response's top-level error.
    pub(crate) async fn request(
        &self,
        operation: &'static str,
        body: RequestBodyOwned,
        payload: Vec<Bytes>,
        timeout: Option<Duration>,
    ) -> Result<(ResponseBodyOwned, Bytes), ClientError> {
        let timeout = timeout.unwrap_or(self.options.request_timeout);
        let Some(reply) = self.call(operation, body, payload, timeout, true).await? else {
            return Err(ClientError::Protocol {
                operation,
                reason: "no response".to_string(),
            });
        };
        response_body(operation, reply)
    }

    /// Encodes and enqueues one request on the current connection (a new one if it was lost),
    /// then waits for its response (or, when `response_expected` is false, for it to be
    /// written).
    async fn call(
        &self,
        operation: &'static str,
        body: RequestBodyOwned,
        payload: Vec<Bytes>,
        timeout: Duration,
        response_expected: bool,
    ) -> Result<Option<Reply>, ClientError> {
        let connection = self.connection().await?;
        connection
            .call(
                &self.builder,
                operation,
                body,
                payload,
                timeout,
                response_expected,
            )
            .await
    }
}

impl Connection {
    async fn call(
        &self,
        builder: &RefCell<FlatBufferBuilder<'static>>,
        operation: &'static str,
        body: RequestBodyOwned,
        payload: Vec<Bytes>,
        timeout: Duration,
        response_expected: bool,
    ) -> Result<Option<Reply>, ClientError> {
        let _permit = self
            .in_flight
            .acquire_permit(1)
            .await
            .map_err(|_| self.lost_or_closed())?;
        if response_expected {
            let sent = self
                .send_request(builder, operation, &body, payload)
                .await?;
            return self.await_reply(sent, timeout).await.map(Some);
        }
        let outgoing = self.sender()?;
        let (_, message) = self.encode(builder, &body, &payload)?;
        let (written, on_written) = oneshot::channel();
        let frame = Outgoing {
            message,
            payload,
            written: Some(written),
        };
        if outgoing.send(frame).await.is_err() {
            return Err(self.shared.lost());
        }
        drop(outgoing);
        match with_timeout(on_written, timeout).await {
            Some(Some(())) => Ok(None),
            Some(None) => Err(self.shared.lost()),
            None => Err(ClientError::Timeout { operation, timeout }),
        }
    }

    /// Encodes a request under the next correlation id; refuses it if the frame would be over
    /// the limit.
    fn encode(
        &self,
        builder: &RefCell<FlatBufferBuilder<'static>>,
        body: &RequestBodyOwned,
        payload: &[Bytes],
    ) -> Result<(u64, Vec<u8>), ClientError> {
        let correlation_id = self.shared.next_correlation_id.get();
        self.shared.next_correlation_id.set(correlation_id + 1);
        let message = {
            let mut builder = builder.borrow_mut();
            wire::encode_request(&mut builder, correlation_id, body).to_vec()
        };
        let payload_bytes = payload.iter().map(Bytes::len).sum();
        wire::frame_prefix(message.len(), payload_bytes, self.frame_bytes_max_send)
            .map_err(frame_error)?;
        Ok((correlation_id, message))
    }

    /// Encodes a request and queues it for the writer task, registered for its response. The
    /// caller holds a permit until [`Connection::await_reply`] returns.
    async fn send_request(
        &self,
        builder: &RefCell<FlatBufferBuilder<'static>>,
        operation: &'static str,
        body: &RequestBodyOwned,
        payload: Vec<Bytes>,
    ) -> Result<Sent, ClientError> {
        let (outgoing, frame, sent) = self.prepare_request(builder, operation, body, payload)?;
        self.enqueue(&outgoing, frame, &sent).await?;
        Ok(sent)
    }

    /// The synchronous half of [`Connection::send_request`]: the writer queue, the encoded
    /// frame, and the request registered for its response.
    fn prepare_request(
        &self,
        builder: &RefCell<FlatBufferBuilder<'static>>,
        operation: &'static str,
        body: &RequestBodyOwned,
        payload: Vec<Bytes>,
    ) -> Result<(Rc<LocalSender<Outgoing>>, Outgoing, Sent), ClientError> {
        let outgoing = self.sender()?;
        let (correlation_id, message) = self.encode(builder, body, &payload)?;
        let (sender, receiver) = oneshot::channel();
        self.shared
            .pending
            .borrow_mut()
            .insert(correlation_id, Waiter { operation, sender });
        let frame = Outgoing {
            message,
            payload,
            written: None,
        };
        let sent = Sent {
            operation,
            correlation_id,
            receiver,
        };
        Ok((outgoing, frame, sent))
    }

    /// Hands a prepared frame to the writer task.
    async fn enqueue(
        &self,
        outgoing: &LocalSender<Outgoing>,
        frame: Outgoing,
        sent: &Sent,
    ) -> Result<(), ClientError> {
        if outgoing.send(frame).await.is_err() {
            self.forget(sent.correlation_id);
            return Err(self.shared.lost());
        }
        Ok(())
    }

    /// Stops waiting for the response to request `correlation_id` (not sent after all, or
    /// timed out): a response that still comes is dropped.
    fn forget(&self, correlation_id: u64) {
        self.shared.pending.borrow_mut().remove(&correlation_id);
    }

    /// Waits up to `timeout` for the response to `sent`.
    async fn await_reply(&self, sent: Sent, timeout: Duration) -> Result<Reply, ClientError> {
        match with_timeout(sent.receiver, timeout).await {
            Some(Some(reply)) => reply,
            Some(None) => Err(self.shared.lost()),
            None => {
                self.forget(sent.correlation_id);
                Err(ClientError::Timeout {
                    operation: sent.operation,
                    timeout,
                })
            }
        }
    }

    /// One produce call: queued behind the calls made before it; whichever queued call gets a
    /// permit next sends the oldest queued calls that fit one request (at least one, all with
    /// the same `acks`), so this call's items may go out in another call's request. The
    /// results are this call's alone, in order.
    async fn produce(
        self: &Rc<Self>,
        builder: &RefCell<FlatBufferBuilder<'static>>,
        acks: Acks,
        items: Vec<ProduceItem>,
        timeout: Duration,
    ) -> Result<Vec<ProduceResultOwned>, ClientError> {
        let (reply, mut replied) = oneshot::channel();
        let ticket = self.produce_queue.borrow_mut().push(acks, items, reply);
        // Takes this call out of the queue if it is dropped before it was sent, as a call that
        // is dropped waiting for its permit is never sent.
        let _queued = Queued {
            queue: &self.produce_queue,
            ticket,
        };
        while self.produce_queue.borrow().holds(ticket) {
            let next = futures_lite::future::or(
                async { QueuedEvent::Replied((&mut replied).await) },
                async { QueuedEvent::Permit(self.in_flight.acquire_static_permit(1).await) },
            )
            .await;
            let permit = match next {
                QueuedEvent::Replied(reply) => {
                    return reply.unwrap_or_else(|| Err(self.lost_or_closed()));
                }
                QueuedEvent::Permit(Err(_)) => return Err(self.lost_or_closed()),
                QueuedEvent::Permit(Ok(permit)) => permit,
            };
            let calls = self
                .produce_queue
                .borrow_mut()
                .take(u64::from(self.frame_bytes_max_send));
            match calls.as_slice() {
                // Ours went out in an earlier call's request meanwhile.
                [] => break,
                [only] if only.ticket == ticket => {
                    let Some(call) = calls.into_iter().next() else {
                        unreachable!("one call taken");
                    };
                    let count = call.items.len();
                    let (body, payload) =
                        produce_body(acks, timeout, [call.items], self.frame_bytes_max_send)?;
                    let sent = self.send_request(builder, PRODUCE, &body, payload).await?;
                    return produce_results(self.await_reply(sent, timeout).await, count);
                }
                _ => self.send_coalesced(builder, permit, calls, timeout),
            }
        }
        replied.await.unwrap_or_else(|| Err(self.lost_or_closed()))
    }

    /// Sends queued produce calls (taken in order, more than one or another call's) in one
    /// request. A task holds `permit` until the response, then hands each call its results:
    /// the calling call may be dropped meanwhile without failing the others.
    fn send_coalesced(
        self: &Rc<Self>,
        builder: &RefCell<FlatBufferBuilder<'static>>,
        permit: glommio::sync::StaticPermit,
        calls: Vec<QueuedProduce>,
        timeout: Duration,
    ) {
        let acks = calls[0].acks;
        let mut replies = Vec::with_capacity(calls.len());
        let mut items = Vec::with_capacity(calls.len());
        for call in calls {
            replies.push((call.items.len(), call.reply));
            items.push(call.items);
        }
        let count = replies.iter().map(|(count, _)| count).sum();
        let prepared = produce_body(acks, timeout, items, self.frame_bytes_max_send)
            .and_then(|(body, payload)| self.prepare_request(builder, PRODUCE, &body, payload));
        let (outgoing, frame, sent) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => return hand_out(Err(error), replies),
        };
        // Into the writer's queue now, before this call returns: a call that gets a permit
        // after this one must not reach the broker first (one partition's batches keep call
        // order). The queue holds a frame per permit, so it has room unless frames of calls
        // that gave up are still waiting to be written; then the task waits for room.
        let frame = match outgoing.try_send(frame) {
            Ok(()) => None,
            Err(glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(frame))) => {
                Some(frame)
            }
            Err(_) => {
                self.forget(sent.correlation_id);
                return hand_out(Err(self.shared.lost()), replies);
            }
        };
        let connection = self.clone();
        glommio::spawn_local(async move {
            let enqueued = match frame {
                Some(frame) => connection.enqueue(&outgoing, frame, &sent).await,
                None => Ok(()),
            };
            drop(outgoing);
            let results = match enqueued {
                Ok(()) => produce_results(connection.await_reply(sent, timeout).await, count),
                Err(error) => Err(error),
            };
            drop(permit);
            hand_out(results, replies);
        })
        .detach();
    }

    /// The writer queue, or why no request can be sent.
    fn sender(&self) -> Result<Rc<LocalSender<Outgoing>>, ClientError> {
        if let Some(failure) = self.failure() {
            return Err(failure);
        }
        self.outgoing
            .borrow()
            .clone()
            .ok_or_else(|| self.lost_or_closed())
    }

    fn lost_or_closed(&self) -> ClientError {
        self.failure().unwrap_or_else(|| self.shared.lost())
    }

    /// The error a call gets when this connection is lost for good: `failure`, or `Closed`.
    fn unusable(&self, failure: ClientError) -> ClientError {
        if self.shared.closing.get() {
            ClientError::Closed {
                reason: "the client was closed",
            }
        } else {
            failure
        }
    }
}

/// The first exchange on a fresh connection, before the reader and writer tasks exist.
async fn handshake(
    address: SocketAddr,
    client_id: &str,
    builder: &mut FlatBufferBuilder<'static>,
    reader: &mut net::FrameReader,
    writer: &mut net::FrameWriter,
    limits: &DecodeLimits,
) -> Result<BrokerInfo, ClientError> {
    const OPERATION: &str = "handshake";
    let lost = |reason: String| ClientError::ConnectionLost { address, reason };
    let body = RequestBodyOwned::Handshake {
        version: wire::PROTOCOL_VERSION,
        client_id: client_id.to_string(),
    };
    let message = wire::encode_request(builder, HANDSHAKE_CORRELATION_ID, &body);
    writer
        .write_frame(message, &[])
        .await
        .map_err(|error| lost(error.to_string()))?;
    let frame = reader
        .read_frame()
        .await
        .map_err(|error| lost(error.to_string()))?
        .ok_or_else(|| lost("the broker closed the connection during the handshake".to_string()))?;
    let protocol = |reason: String| ClientError::Protocol {
        operation: OPERATION,
        reason,
    };
    let response = wire::decode_response(&frame.message, limits)
        .map_err(|error| protocol(error.to_string()))?;
    let response = wire::response_from_wire(response, frame.payload.len(), limits)
        .map_err(|error| protocol(error.to_string()))?;
    if response.error != ErrorCode::None {
        return Err(ClientError::Broker {
            operation: OPERATION,
            code: response.error,
            message: response.message,
        });
    }
    if response.correlation_id != HANDSHAKE_CORRELATION_ID {
        return Err(protocol(format!(
            "correlation id {} instead of {HANDSHAKE_CORRELATION_ID}",
            response.correlation_id
        )));
    }
    match response.body {
        Some(ResponseBodyOwned::Handshake {
            error,
            version,
            shard_count,
            frame_bytes_max,
            in_flight_max,
        }) => {
            if error == ErrorCode::UnsupportedVersion || version != wire::PROTOCOL_VERSION {
                return Err(ClientError::UnsupportedVersion {
                    broker_version: version,
                });
            }
            body_error(OPERATION, error, String::new())?;
            Ok(BrokerInfo {
                version,
                shard_count,
                frame_bytes_max,
                in_flight_max,
            })
        }
        Some(other) => Err(unexpected(OPERATION, &other)),
        None => Err(protocol("the response has no body".to_string())),
    }
}

/// The reader task: dispatches responses until the connection ends, then fails every call
/// still waiting.
async fn read_loop(shared: Rc<Shared>, mut reader: net::FrameReader) {
    let reason = loop {
        match reader.read_frame().await {
            Ok(Some(frame)) => {
                if let Err(reason) = shared.dispatch(frame) {
                    break reason;
                }
            }
            Ok(None) => break "the broker closed the connection".to_string(),
            Err(error) => break error.to_string(),
        }
    };
    let error = if shared.closing.get() && shared.failure.borrow().is_none() {
        ClientError::Closed {
            reason: "the client was closed",
        }
    } else {
        ClientError::ConnectionLost {
            address: shared.address,
            reason,
        }
    };
    tracing::debug!(address = %shared.address, %error, "connection reader finished");
    shared.fail(error);
}

/// The writer task: writes queued frames whole, in order. After a write error, frames still
/// queued are dropped (their callers have been failed). When the queue closes (the client was
/// closed or dropped) it shuts down the writing side, so the broker sees the end of the stream.
async fn write_loop(
    shared: Rc<Shared>,
    mut writer: net::FrameWriter,
    queue: LocalReceiver<Outgoing>,
) {
    let mut frames = Vec::with_capacity(WRITE_FRAMES_MAX);
    while let Some(frame) = queue.recv().await {
        // Take the frames queued behind it too, so they go out in one send call: a producer
        // seals several batches between two runs of this task (issue #11). `poll_once` of
        // `recv` is a try-receive: a pending receive unregisters itself when dropped.
        frames.push(frame);
        while frames.len() < WRITE_FRAMES_MAX {
            match futures_lite::future::poll_once(queue.recv()).await {
                Some(Some(frame)) => frames.push(frame),
                Some(None) | None => break,
            }
        }
        if shared.failure.borrow().is_some() {
            frames.clear();
            continue;
        }
        let out: Vec<net::OutFrame<'_>> = frames
            .iter()
            .map(|frame| net::OutFrame {
                message: &frame.message,
                payload: &frame.payload,
            })
            .collect();
        let result = writer.write_frames(&out).await;
        drop(out);
        match result {
            Ok(()) => {
                for frame in frames.drain(..) {
                    if let Some(written) = frame.written {
                        written.send(());
                    }
                }
            }
            Err(error) => {
                frames.clear();
                shared.fail(ClientError::ConnectionLost {
                    address: shared.address,
                    reason: format!("write failed: {error}"),
                });
            }
        }
    }
    if shared.failure.borrow().is_none()
        && let Err(error) = writer.close().await
    {
        tracing::debug!(%error, "shutting down the writing side failed");
    }
}

/// Waits for `future` up to `timeout`; `None` when the time ran out first.
async fn with_timeout<T>(future: impl Future<Output = T>, timeout: Duration) -> Option<T> {
    futures_lite::future::or(async { Some(future.await) }, async {
        glommio::timer::sleep(timeout).await;
        None
    })
    .await
}

/// `duration` in whole milliseconds for a wire field, at most `u32::MAX` (49 days).
pub(crate) fn millis_u32(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

fn frame_error(error: FrameError) -> ClientError {
    match error {
        FrameError::TooLarge {
            frame_bytes,
            frame_bytes_max,
        } => ClientError::RequestTooLarge {
            frame_bytes,
            frame_bytes_max,
        },
        other => ClientError::InvalidArgument {
            reason: other.to_string(),
        },
    }
}

/// A body-level error code as a result.
pub(crate) fn body_error(
    operation: &'static str,
    code: ErrorCode,
    message: String,
) -> Result<(), ClientError> {
    if code == ErrorCode::None {
        Ok(())
    } else {
        Err(ClientError::Broker {
            operation,
            code,
            message,
        })
    }
}

pub(crate) fn unexpected(operation: &'static str, body: &ResponseBodyOwned) -> ClientError {
    let name = match body {
        ResponseBodyOwned::Handshake { .. } => "handshake",
        ResponseBodyOwned::Metadata { .. } => "metadata",
        ResponseBodyOwned::CreateTopic { .. } => "create_topic",
        ResponseBodyOwned::DeleteTopic { .. } => "delete_topic",
        ResponseBodyOwned::Produce { .. } => "produce",
        ResponseBodyOwned::Fetch { .. } => "fetch",
        ResponseBodyOwned::ListOffsets { .. } => "list_offsets",
        ResponseBodyOwned::InitProducerId { .. } => "init_producer_id",
        ResponseBodyOwned::JoinGroup { .. } => "join_group",
        ResponseBodyOwned::Heartbeat { .. } => "heartbeat",
        ResponseBodyOwned::LeaveGroup { .. } => "leave_group",
        ResponseBodyOwned::OffsetCommit { .. } => "offset_commit",
        ResponseBodyOwned::OffsetFetch { .. } => "offset_fetch",
        ResponseBodyOwned::ListGroups { .. } => "list_groups",
        ResponseBodyOwned::DescribeGroup { .. } => "describe_group",
    };
    ClientError::Protocol {
        operation,
        reason: format!("a {name} response body"),
    }
}
