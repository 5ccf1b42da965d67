//! Request handling: decodes one verified request, routes its work to the owning shards, and
//! builds the response. Errors become wire error codes in one place, [`errors`]; group
//! requests are converted in `group.rs`.
//!
//! Produce: every batch is checked once (its payload range, then `schema::batch::Verified::check`:
//! length, magic, CRC-32C, codec, record count) before anything is appended; a bad batch gets
//! its own error and nothing of it is stored. Batches for one partition go to its owning shard
//! in one call and to its actor as one command, so they share one round (one write) and are
//! appended in request order; different partitions proceed in parallel. Batch bytes are sliced
//! out of the receive buffer, never copied.
//! Fetch: stored batch bytes are returned as they are (zero-copy handles) in the frame payload;
//! with `wait_ms_max` and `bytes_min` the request long-polls until data arrives or time is up.
//!
//! The operations themselves (resolving a partition, [`append_all`], [`fetch_partitions`] with
//! its long-poll, [`list_offset`], [`change_topics`], [`init_producer_id`]) take and return
//! broker types, never wire types: the Kafka front-end ([`crate::kafka`]) calls the same
//! functions and maps their typed errors to its own codes.

pub mod errors;
mod group;

pub(crate) use group::call as group_call;

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use flatbuffers::FlatBufferBuilder;
use schema::batch::Verified;
use schema::wire::{
    self, Acks, DecodeLimits, ErrorCode, FetchPartitionOwned, FetchResultOwned,
    ListOffsetsPartitionOwned, ListOffsetsResultOwned, OffsetSpec, PartitionMetadataOwned,
    PayloadRange, ProduceBatchOwned, ProduceResultOwned, RequestBodyOwned, ResponseBodyOwned,
    ResponseOwned, TopicConfigOwned, TopicMetadataOwned,
};
use storage::Offset;

use crate::error::{AppendFailed, ProducerIdFailed, ReadFailed, TopicChangeFailed, Unreachable};
use crate::group::offsets::is_internal;
use crate::metadata::{TopicConfig, TopicSpec};
use crate::metrics::Api;
use crate::ops::{AckLevel, Appended, ControllerOp, LogBounds, OffsetQuery, ReadBatches, ShardOp};
use crate::partition::Wake;
use crate::shard::Shard;
use crate::topology::{CONTROLLER, PartitionId, PartitionKey};

/// A fetch's partitions that need a read share the request's budget, but each gets at least
/// this much while the budget lasts (a share of a few KiB would read less than a batch).
const READ_SHARE_MIN_BYTES: usize = 64 << 10;

/// Requests a client may have in flight per connection (announced in the handshake).
pub const IN_FLIGHT_MAX: u16 = 64;
/// The longest a fetch may long-poll, whatever the client asks: parked fetches hold broker
/// resources, and a client must not be able to park one for days.
pub const FETCH_WAIT_MS_MAX: u32 = 30_000;

/// A response frame ready to send.
pub struct OutFrame {
    /// The flatbuffer message.
    pub message: Vec<u8>,
    /// Payload parts (stored batch bytes), sent after the message as they are.
    pub payload: Vec<Bytes>,
}

/// What the connection does after a request.
pub enum Outcome {
    /// Send this response.
    Respond(OutFrame),
    /// Send nothing (produce with acks = none).
    Silent,
    /// Send this error response, then close the connection (malformed request).
    RespondAndClose(OutFrame, String),
}

fn encode(response: &ResponseOwned, payload: Vec<Bytes>) -> OutFrame {
    let mut builder = FlatBufferBuilder::with_capacity(1024);
    let message = wire::encode_response(&mut builder, response).to_vec();
    OutFrame { message, payload }
}

/// A success response, and whether it carries an error code anyway (for a partition, or a
/// topic change refused).
fn respond(correlation_id: u64, body: ResponseBodyOwned, payload: Vec<Bytes>) -> (Outcome, bool) {
    let failed = carries_error(&body);
    let response = ResponseOwned {
        correlation_id,
        error: ErrorCode::None,
        message: String::new(),
        body: Some(body),
    };
    (Outcome::Respond(encode(&response, payload)), failed)
}

/// True when any error code in the body is not `None`.
fn carries_error(body: &ResponseBodyOwned) -> bool {
    let failed = |error: &ErrorCode| *error != ErrorCode::None;
    match body {
        ResponseBodyOwned::Handshake { error, .. }
        | ResponseBodyOwned::CreateTopic { error, .. }
        | ResponseBodyOwned::DeleteTopic { error, .. } => failed(error),
        ResponseBodyOwned::Metadata { error, topics } => {
            failed(error)
                || topics.iter().any(|topic| {
                    failed(&topic.error) || topic.partitions.iter().any(|p| failed(&p.error))
                })
        }
        ResponseBodyOwned::Produce { error, results } => {
            failed(error) || results.iter().any(|result| failed(&result.error))
        }
        ResponseBodyOwned::Fetch { error, results } => {
            failed(error) || results.iter().any(|result| failed(&result.error))
        }
        ResponseBodyOwned::ListOffsets { error, results } => {
            failed(error) || results.iter().any(|result| failed(&result.error))
        }
        ResponseBodyOwned::InitProducerId { error, .. }
        | ResponseBodyOwned::JoinGroup { error, .. }
        | ResponseBodyOwned::Heartbeat { error, .. }
        | ResponseBodyOwned::LeaveGroup { error, .. }
        | ResponseBodyOwned::OffsetFetch { error, .. }
        | ResponseBodyOwned::ListGroups { error, .. }
        | ResponseBodyOwned::DescribeGroup { error, .. } => failed(error),
        ResponseBodyOwned::OffsetCommit { error, results, .. } => {
            failed(error) || results.iter().any(|result| failed(&result.error))
        }
    }
}

/// The metrics kind of a decoded request.
fn api(body: &RequestBodyOwned) -> Api {
    match body {
        RequestBodyOwned::Handshake { .. } => Api::Handshake,
        RequestBodyOwned::Metadata { .. } => Api::Metadata,
        RequestBodyOwned::CreateTopic { .. } => Api::CreateTopic,
        RequestBodyOwned::DeleteTopic { .. } => Api::DeleteTopic,
        RequestBodyOwned::Produce { .. } => Api::Produce,
        RequestBodyOwned::Fetch { .. } => Api::Fetch,
        RequestBodyOwned::ListOffsets { .. } => Api::ListOffsets,
        RequestBodyOwned::InitProducerId => Api::InitProducerId,
        RequestBodyOwned::JoinGroup(_) => Api::JoinGroup,
        RequestBodyOwned::Heartbeat { .. } => Api::Heartbeat,
        RequestBodyOwned::LeaveGroup { .. } => Api::LeaveGroup,
        RequestBodyOwned::OffsetCommit { .. } => Api::OffsetCommit,
        RequestBodyOwned::OffsetFetch { .. } => Api::OffsetFetch,
        RequestBodyOwned::ListGroups => Api::ListGroups,
        RequestBodyOwned::DescribeGroup { .. } => Api::DescribeGroup,
    }
}

fn reject(correlation_id: u64, error: ErrorCode, message: String) -> Outcome {
    let response = ResponseOwned {
        correlation_id,
        error,
        message: message.clone(),
        body: None,
    };
    Outcome::RespondAndClose(encode(&response, Vec::new()), message)
}

/// Handles one frame, and counts it in the shard's metrics.
pub async fn handle(shard: Rc<Shard>, frame: net::Frame) -> Outcome {
    let started = Instant::now();
    let (api, outcome, failed) = dispatch(&shard, frame).await;
    shard.metrics.record_request(api, failed, started.elapsed());
    outcome
}

/// Decodes and runs one request: its kind, the outcome, and whether an error code went back.
async fn dispatch(shard: &Rc<Shard>, frame: net::Frame) -> (Api, Outcome, bool) {
    let limits = DecodeLimits::default();
    let request = match wire::decode_request(&frame.message, &limits) {
        Ok(request) => request,
        Err(error) => {
            let outcome = reject(0, ErrorCode::InvalidRequest, error.to_string());
            return (Api::Invalid, outcome, true);
        }
    };
    let correlation_id = request.correlation_id();
    let body = match wire::request_from_wire(request, frame.payload.len(), &limits) {
        Ok((_, body)) => body,
        Err(error) => {
            let outcome = reject(correlation_id, ErrorCode::InvalidRequest, error.to_string());
            return (Api::Invalid, outcome, true);
        }
    };
    let api = api(&body);
    if shard.is_shutting_down() {
        let response = ResponseOwned {
            correlation_id,
            error: ErrorCode::ShuttingDown,
            message: "the broker is shutting down".to_string(),
            body: None,
        };
        return (api, Outcome::Respond(encode(&response, Vec::new())), true);
    }
    let (outcome, failed) = match body {
        RequestBodyOwned::Handshake { version, .. } => {
            let error = if version >= wire::PROTOCOL_VERSION {
                ErrorCode::None
            } else {
                ErrorCode::UnsupportedVersion
            };
            let body = ResponseBodyOwned::Handshake {
                error,
                version: wire::PROTOCOL_VERSION,
                shard_count: shard.shard_count,
                frame_bytes_max: shard.frame_bytes_max,
                in_flight_max: IN_FLIGHT_MAX,
            };
            respond(correlation_id, body, Vec::new())
        }
        RequestBodyOwned::Metadata { topics } => {
            respond(correlation_id, metadata(shard, topics).await, Vec::new())
        }
        RequestBodyOwned::CreateTopic {
            name,
            partitions,
            config,
        } => {
            let (error, message) = if is_internal(&name) {
                internal_topic(&name)
            } else {
                let spec = TopicSpec {
                    name,
                    partitions,
                    config: topic_config(config),
                };
                controller(shard, ControllerOp::Create(spec)).await
            };
            respond(
                correlation_id,
                ResponseBodyOwned::CreateTopic { error, message },
                Vec::new(),
            )
        }
        RequestBodyOwned::DeleteTopic { name } => {
            let (error, message) = if is_internal(&name) {
                internal_topic(&name)
            } else {
                controller(shard, ControllerOp::Delete(name)).await
            };
            respond(
                correlation_id,
                ResponseBodyOwned::DeleteTopic { error, message },
                Vec::new(),
            )
        }
        RequestBodyOwned::Produce { acks, batches, .. } => {
            let level = if acks == Acks::None {
                AckLevel::None
            } else if acks == Acks::Written {
                AckLevel::Written
            } else {
                AckLevel::Durable
            };
            match produce(shard, level, batches, frame.payload).await {
                Err(message) => (
                    reject(correlation_id, ErrorCode::InvalidRequest, message),
                    true,
                ),
                Ok(results) if level == AckLevel::None => (
                    Outcome::Silent,
                    results.iter().any(|result| result.error != ErrorCode::None),
                ),
                Ok(results) => respond(
                    correlation_id,
                    ResponseBodyOwned::Produce {
                        error: ErrorCode::None,
                        results,
                    },
                    Vec::new(),
                ),
            }
        }
        RequestBodyOwned::Fetch {
            wait_ms_max,
            bytes_min,
            bytes_max,
            partitions,
        } => {
            let (results, payload) =
                fetch(shard, wait_ms_max, bytes_min, bytes_max, partitions).await;
            respond(
                correlation_id,
                ResponseBodyOwned::Fetch {
                    error: ErrorCode::None,
                    results,
                },
                payload,
            )
        }
        RequestBodyOwned::ListOffsets { partitions } => {
            let results = list_offsets(shard, partitions).await;
            respond(
                correlation_id,
                ResponseBodyOwned::ListOffsets {
                    error: ErrorCode::None,
                    results,
                },
                Vec::new(),
            )
        }
        RequestBodyOwned::InitProducerId => {
            let (error, message, (producer_id, producer_epoch)) =
                match init_producer_id(shard).await {
                    Ok(id) => (ErrorCode::None, String::new(), id),
                    Err(error) => (errors::producer_id(&error), error.to_string(), (-1, -1)),
                };
            let body = ResponseBodyOwned::InitProducerId {
                error,
                message,
                producer_id,
                producer_epoch,
            };
            respond(correlation_id, body, Vec::new())
        }
        body => respond(correlation_id, group::handle(shard, body).await, Vec::new()),
    };
    (api, outcome, failed)
}

/// The refusal of a client's change to an internal topic.
fn internal_topic(name: &str) -> (ErrorCode, String) {
    let error = internal_topic_error(name);
    (errors::append(&error), error.to_string())
}

pub(crate) fn internal_topic_error(name: &str) -> AppendFailed {
    AppendFailed::InternalTopic {
        topic: name.to_string(),
        prefix: crate::group::offsets::INTERNAL_PREFIX,
    }
}

fn topic_config(config: TopicConfigOwned) -> TopicConfig {
    // 0 = broker default; -1 (any negative) = unlimited.
    let value = |v: i64| match v {
        0 => None,
        v if v < 0 => Some(u64::MAX),
        v => Some(v as u64),
    };
    TopicConfig {
        retention_ms: value(config.retention_ms),
        retention_bytes: value(config.retention_bytes),
        segment_bytes: (config.segment_bytes > 0).then_some(config.segment_bytes as u64),
    }
}

fn wire_config(config: &TopicConfig) -> TopicConfigOwned {
    let value = |v: Option<u64>| match v {
        None => 0,
        Some(u64::MAX) => -1,
        Some(v) => v as i64,
    };
    TopicConfigOwned {
        retention_ms: value(config.retention_ms),
        retention_bytes: value(config.retention_bytes),
        segment_bytes: value(config.segment_bytes),
    }
}

async fn controller(shard: &Rc<Shard>, change: ControllerOp) -> (ErrorCode, String) {
    match change_topics(shard, change).await {
        Ok(()) => (ErrorCode::None, String::new()),
        Err(error) => (errors::topic_change(&error), error.to_string()),
    }
}

/// Creates or deletes a topic on the controller shard, which persists the change and has every
/// shard apply it before answering.
pub(crate) async fn change_topics(
    shard: &Rc<Shard>,
    change: ControllerOp,
) -> Result<(), TopicChangeFailed> {
    let change_topics = |reply| ShardOp::ChangeTopics { change, reply };
    match shard.call(CONTROLLER, change_topics).await {
        Ok(result) => result,
        Err(gone) => Err(TopicChangeFailed::Unreachable(gone.into())),
    }
}

/// A new producer id and epoch from the controller shard.
pub(crate) async fn init_producer_id(shard: &Rc<Shard>) -> Result<(i64, i16), ProducerIdFailed> {
    let init = |reply| ShardOp::InitProducerId { reply };
    match shard.call(CONTROLLER, init).await {
        Ok(result) => result,
        Err(gone) => Err(ProducerIdFailed::Unreachable(gone.into())),
    }
}

/// Checks that the topic and partition exist in this shard's metadata.
pub(crate) fn resolve(
    shard: &Shard,
    topic: &str,
    partition: u32,
) -> Result<PartitionKey, Unreachable> {
    let metadata = shard.metadata();
    let Some(spec) = metadata.topics.get(topic) else {
        return Err(Unreachable::UnknownTopic {
            topic: topic.to_string(),
        });
    };
    if partition >= spec.partitions {
        return Err(Unreachable::UnknownPartition {
            topic: topic.to_string(),
            partition,
            partitions: spec.partitions,
        });
    }
    Ok(PartitionKey {
        topic: topic.to_string(),
        partition: PartitionId(partition),
    })
}

/// Appends verified batches, in order, on the partition's owning shard: one call and one
/// round of the partition's actor for all of them. One result per batch, in order.
pub(crate) async fn append_all(
    shard: &Rc<Shard>,
    key: PartitionKey,
    batches: Vec<Verified<BytesMut>>,
    acks: AckLevel,
) -> Vec<Result<Appended, AppendFailed>> {
    let count = batches.len();
    let owner = shard.owner(&key);
    let op = |reply| ShardOp::Append {
        key,
        batches,
        acks,
        reply,
    };
    match shard.call(owner, op).await {
        Ok(results) => {
            assert_eq!(results.len(), count, "one result per batch");
            results
        }
        Err(error) => {
            let error = AppendFailed::from(error);
            (0..count).map(|_| Err(error.clone())).collect()
        }
    }
}

/// Reads whole batches on the partition's owning shard.
async fn read(
    shard: Rc<Shard>,
    key: PartitionKey,
    offset: Offset,
    bytes_max: usize,
) -> Result<ReadBatches, ReadFailed> {
    let owner = shard.owner(&key);
    if owner == shard.id
        && let Some(read) = shard.read_cached(&key, offset, bytes_max)
    {
        return Ok(read);
    }
    let op = |reply| ShardOp::Read {
        key,
        offset,
        bytes_max,
        reply,
    };
    shard.call(owner, op).await?
}

/// A partition's bounds, from its owning shard: at once where this shard owns it (the bounds
/// its actor published), else through the owner.
pub(crate) async fn describe(shard: Rc<Shard>, key: PartitionKey) -> Result<LogBounds, ReadFailed> {
    let owner = shard.owner(&key);
    if owner == shard.id
        && let Some(bounds) = shard.published_bounds(&key)
    {
        return Ok(bounds);
    }
    shard
        .call(owner, |reply| ShardOp::Describe { key, reply })
        .await?
}

/// Slices every batch out of the payload (without copying) in request order. Ranges must not
/// overlap: a request that breaks that is malformed as a whole.
fn slice_batches(
    batches: &[ProduceBatchOwned],
    mut payload: BytesMut,
) -> Result<Vec<BytesMut>, String> {
    let mut order: Vec<usize> = (0..batches.len()).collect();
    order.sort_by_key(|&index| batches[index].batch.offset());
    let mut slices: Vec<Option<BytesMut>> = (0..batches.len()).map(|_| None).collect();
    let mut cursor: u64 = 0;
    for index in order {
        let range = &batches[index].batch;
        let (offset, length) = (u64::from(range.offset()), u64::from(range.length()));
        if offset < cursor {
            return Err(format!(
                "batch {index} overlaps the previous batch in the payload"
            ));
        }
        if offset + length > cursor + payload.len() as u64 {
            return Err(format!("batch {index} lies outside the payload"));
        }
        payload.advance((offset - cursor) as usize);
        slices[index] = Some(payload.split_to(length as usize));
        cursor = offset + length;
    }
    Ok(slices
        .into_iter()
        .map(|slice| slice.expect("every index sliced"))
        .collect())
}

async fn produce(
    shard: &Rc<Shard>,
    acks: AckLevel,
    batches: Vec<ProduceBatchOwned>,
    payload: BytesMut,
) -> Result<Vec<ProduceResultOwned>, String> {
    let slices = slice_batches(&batches, payload)?;
    let mut results: Vec<Option<ProduceResultOwned>> = (0..batches.len()).map(|_| None).collect();
    // Per partition, the batches in request order.
    let mut per_partition: BTreeMap<PartitionKey, Vec<(usize, Verified<BytesMut>)>> =
        BTreeMap::new();
    for (index, (spec, bytes)) in batches.iter().zip(slices).enumerate() {
        let failed = |error: AppendFailed| ProduceResultOwned {
            topic: spec.topic.clone(),
            partition: spec.partition,
            error: errors::append(&error),
            base_offset: 0,
            last_offset: 0,
            log_start: 0,
            message: error.to_string(),
        };
        let key = match resolve(shard, &spec.topic, spec.partition) {
            Ok(_) if is_internal(&spec.topic) => {
                results[index] = Some(failed(internal_topic_error(&spec.topic)));
                continue;
            }
            Ok(key) => key,
            Err(error) => {
                results[index] = Some(failed(error.into()));
                continue;
            }
        };
        // Checked once, here: the partition and the log take the proof along, not the check.
        let verified = match Verified::check(bytes) {
            Ok(verified) => verified,
            Err(error) => {
                results[index] = Some(failed(AppendFailed::InvalidBatch { key, error }));
                continue;
            }
        };
        per_partition
            .entry(key)
            .or_default()
            .push((index, verified));
    }
    let tasks: Vec<_> = per_partition
        .into_iter()
        .map(|(key, batches)| {
            let shard = shard.clone();
            glommio::spawn_local(async move {
                let (indexes, batches): (Vec<usize>, Vec<_>) = batches.into_iter().unzip();
                let results = append_all(&shard, key, batches, acks).await;
                indexes.into_iter().zip(results).collect::<Vec<_>>()
            })
        })
        .collect();
    for task in tasks {
        for (index, reply) in task.await {
            let spec = &batches[index];
            let mut result = ProduceResultOwned {
                topic: spec.topic.clone(),
                partition: spec.partition,
                error: ErrorCode::None,
                base_offset: 0,
                last_offset: 0,
                log_start: 0,
                message: String::new(),
            };
            match reply {
                Ok(appended) => {
                    result.base_offset = appended.base_offset.0;
                    result.last_offset = appended.last_offset.0;
                    result.log_start = appended.log_start.0;
                }
                Err(error) => {
                    (result.error, result.message) = (errors::append(&error), error.to_string())
                }
            }
            results[index] = Some(result);
        }
    }
    Ok(results
        .into_iter()
        .map(|result| result.expect("every batch answered"))
        .collect())
}

async fn fetch(
    shard: &Rc<Shard>,
    wait_ms_max: u32,
    bytes_min: u32,
    bytes_max: u32,
    partitions: Vec<FetchPartitionOwned>,
) -> (Vec<FetchResultOwned>, Vec<Bytes>) {
    let wait = Duration::from_millis(u64::from(wait_ms_max));
    // A response over our frame limit could not be sent: the client would see its
    // connection close, reconnect and ask again, for ever.
    let bytes_max = bytes_max.min(schema::wire::fetch_bytes_fitting(
        shard.frame_bytes_max,
        partitions.iter().map(|asked| asked.topic.len()),
    ));
    let asks: Vec<FetchAsk> = partitions
        .iter()
        .map(|asked| FetchAsk {
            topic: asked.topic.clone(),
            partition: asked.partition,
            offset: asked.offset,
            bytes_max: asked.bytes_max as usize,
        })
        .collect();
    let found = fetch_partitions(shard, wait, bytes_min as usize, bytes_max as usize, &asks).await;
    let mut results = Vec::with_capacity(partitions.len());
    let mut payload: Vec<Bytes> = Vec::new();
    let mut total: usize = 0;
    for (asked, found) in partitions.into_iter().zip(found) {
        let mut result = FetchResultOwned {
            topic: asked.topic,
            partition: asked.partition,
            error: ErrorCode::None,
            log_end: 0,
            log_start: 0,
            batches: PayloadRange::new(0, 0),
            message: String::new(),
        };
        match found {
            Ok(fetched) => {
                let start = total;
                for batch in fetched.batches {
                    total += batch.len();
                    payload.push(batch);
                }
                result.batches = PayloadRange::new(start as u32, (total - start) as u32);
                (result.log_start, result.log_end) = (fetched.log_start, fetched.log_end);
            }
            Err(error) => {
                (result.error, result.message) = (errors::read(&error), error.to_string())
            }
        }
        results.push(result);
    }
    (results, payload)
}

/// One partition a fetch asks for, in broker terms (each front-end converts its request).
#[derive(Debug, Clone)]
pub(crate) struct FetchAsk {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The first offset wanted.
    pub offset: u64,
    /// At most about this many bytes of this partition (at least one batch when the request's
    /// budget is not spent).
    pub bytes_max: usize,
}

/// What a fetch found in one partition: whole stored batches (zero-copy handles) and the
/// partition's bounds.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    /// Stored batch bytes, as stored.
    pub batches: Vec<Bytes>,
    /// The first stored offset.
    pub log_start: u64,
    /// The written end (Kafka's high watermark).
    pub log_end: u64,
}

/// Reads every asked partition on its owner, one result per ask in order, all batches within
/// `bytes_max` in total (but the first partition that has data returns at least one batch).
/// With `wait` (capped at [`FETCH_WAIT_MS_MAX`]), a fetch that found fewer than `bytes_min`
/// bytes long-polls: it parks on the partitions until one is written to or time is up, then
/// reads again.
pub(crate) async fn fetch_partitions(
    shard: &Rc<Shard>,
    wait: Duration,
    bytes_min: usize,
    bytes_max: usize,
    partitions: &[FetchAsk],
) -> Vec<Result<Fetched, ReadFailed>> {
    let wait = wait.min(Duration::from_millis(u64::from(FETCH_WAIT_MS_MAX)));
    let deadline = std::time::Instant::now() + wait;
    loop {
        let (results, total, next_offsets) = fetch_once(shard, bytes_max, partitions).await;
        let now = std::time::Instant::now();
        // A partition that stopped short of its end (a budget, or a segment's end) has data
        // that waiting would not add to this answer: the watch would wake at once and the
        // read repeat the same bytes, holding the shard (a review found a Kafka fetch with
        // min_bytes above the partition budget spinning until max_wait). Kafka too answers
        // once the data available, capped by the budgets, is all it can send.
        let stopped_short = results
            .iter()
            .zip(&next_offsets)
            .any(|(result, &next)| result.as_ref().is_ok_and(|fetched| next < fetched.log_end));
        if total >= bytes_min || now >= deadline || stopped_short {
            return results;
        }
        // Long-poll: park on every partition that answered without error, past what it
        // returned (parking where data already is would wake at once and spin), and wake on
        // the first that gets more, or when time is up. A partition this shard owns is
        // watched through the bounds its actor publishes (no task, no message); others, and
        // one without published bounds, through a call to their actor. The parked calls are
        // cancelled, and the watches forgotten, when this round ends.
        let wake = Rc::new(Wake::default());
        let mut watched = false;
        let mut waiting = Vec::new();
        for ((asked, result), next) in partitions.iter().zip(&results).zip(&next_offsets) {
            if result.is_err() {
                continue;
            }
            let Ok(key) = resolve(shard, &asked.topic, asked.partition) else {
                continue;
            };
            let (offset, wait) = (Offset(*next), deadline - now);
            if shard.owner(&key) == shard.id && shard.watch(&key, offset, &wake) {
                watched = true;
                continue;
            }
            let (shard, wake) = (shard.clone(), wake.clone());
            let task = glommio::spawn_local(async move {
                let owner = shard.owner(&key);
                let op = |reply| ShardOp::WaitForData {
                    key,
                    offset,
                    wait,
                    reply,
                };
                // Data, a failure or a closing partition: each ends the wait the same way.
                let _ = shard.call(owner, op).await;
                wake.wake();
            });
            waiting.push(task);
        }
        if waiting.is_empty() && !watched {
            return results;
        }
        futures_lite::future::or(wake.woken(), glommio::timer::sleep(deadline - now)).await;
    }
}

/// One read of every asked partition: the results, the bytes returned, and per partition the
/// offset after what was returned (or its log end when only described).
///
/// Reads do not queue one behind another (issue #11: a consumer that fell behind the cache
/// read its partitions one at a time, each read waiting for its actor's write, then its own
/// disk read). In waves: the partitions the recent-batch cache answers count their exact
/// bytes; every other partition that still has budget is given it up front (its own limit,
/// cut to an even share of what the request has left among the partitions still unanswered,
/// at least [`READ_SHARE_MIN_BYTES`], and to what the budgets before it in request order
/// left) and all of them read concurrently; the answers are then taken in request order (so
/// the at-least-one-batch rule favours the same partition a one-by-one read would); what the
/// reads leave unused goes to the next wave, which takes the partitions that got no budget,
/// unless a read's batches did not fit what was left (then the budget is spent). A partition this shard owns whose published end is
/// the offset asked is answered from those bounds, empty, without a read. A wave of budgets never
/// asks for more than the request has left; a read still returns at least one batch, so a
/// batch larger than its budget may be read and then not fit (the response never goes over,
/// except for the first partition with data, as before).
async fn fetch_once(
    shard: &Rc<Shard>,
    bytes_max: usize,
    partitions: &[FetchAsk],
) -> (Vec<Result<Fetched, ReadFailed>>, usize, Vec<u64>) {
    let mut results: Vec<Option<Result<Fetched, ReadFailed>>> =
        partitions.iter().map(|_| None).collect();
    let mut next_offsets: Vec<u64> = partitions.iter().map(|asked| asked.offset).collect();
    let mut keys: Vec<Option<PartitionKey>> = Vec::with_capacity(partitions.len());
    for (index, asked) in partitions.iter().enumerate() {
        match resolve(shard, &asked.topic, asked.partition) {
            Ok(key) => keys.push(Some(key)),
            Err(error) => {
                results[index] = Some(Err(error.into()));
                keys.push(None);
            }
        }
    }
    let mut total: usize = 0;
    loop {
        let mut committed = total;
        let mut wave: Vec<(usize, Pending)> = Vec::new();
        // A read shares what is left with every partition still unanswered that may have
        // data, at least READ_SHARE_MIN_BYTES while it lasts: a read given the whole budget up
        // front would leave none to the others, and a consumer behind the cache on many
        // partitions would read them one per wave (issue #11: 1,000 partitions drained at ~50
        // MiB/s). Budgets are given in request order, so an earlier partition is never cut
        // short for a later one the cache answers.
        let unanswered = partitions
            .iter()
            .zip(&keys)
            .zip(&results)
            .filter(|((asked, key), result)| {
                // One at its published end needs no read (answered below).
                key.as_ref()
                    .filter(|_| result.is_none())
                    .is_some_and(|key| at_published_end(shard, key, Offset(asked.offset)).is_none())
            })
            .count();
        let share = bytes_max
            .saturating_sub(committed)
            .checked_div(unanswered)
            .unwrap_or(0)
            .max(READ_SHARE_MIN_BYTES);
        for (index, asked) in partitions.iter().enumerate() {
            let Some(key) = keys[index].as_ref().filter(|_| results[index].is_none()) else {
                continue;
            };
            let budget = asked.bytes_max.min(bytes_max.saturating_sub(committed));
            if budget == 0 && committed > 0 {
                continue;
            }
            let offset = Offset(asked.offset);
            let local = shard.owner(key) == shard.id;
            if local && let Some(read) = shard.read_cached(key, offset, budget.max(1)) {
                committed += read.batches.iter().map(Bytes::len).sum::<usize>();
                wave.push((index, Pending::Cached(read)));
                continue;
            }
            // At the published end there is nothing to read yet: answered from the bounds,
            // without a read queued to the actor (a long-poll then watches the bounds).
            if let Some(bounds) = at_published_end(shard, key, offset) {
                results[index] = Some(Ok(Fetched {
                    batches: Vec::new(),
                    log_start: bounds.log_start.0,
                    log_end: bounds.log_end.0,
                }));
                continue;
            }
            let budget = budget.min(share);
            committed += budget.max(1);
            shard.metrics.record_fetch_read();
            let (shard, key) = (shard.clone(), key.clone());
            let task = glommio::spawn_local(read(shard, key, offset, budget.max(1)));
            wave.push((index, Pending::Reading(task)));
        }
        if wave.is_empty() {
            break;
        }
        // Taken in request order, whatever finished first: the at-least-one-batch rule lets
        // only the first partition with data go over, as it would read one after another.
        let mut full = false;
        for (index, pending) in wave {
            let read = match pending {
                Pending::Cached(read) => Ok(read),
                Pending::Reading(task) => task.await,
            };
            match read {
                Ok(read) => {
                    full |= !take(
                        &mut results[index],
                        &mut next_offsets[index],
                        read,
                        &mut total,
                        bytes_max,
                    );
                }
                Err(error) => results[index] = Some(Err(error)),
            }
        }
        // A read that did not fit what the request had left ends the reading: the budget
        // left is less than a batch, and every further wave would give it to one more
        // partition whose first batch (a read returns at least one) would not fit either
        // (issue #11: a consumer behind the cache on 1,000 partitions made ~500 such waves
        // per fetch, reading three times what it was sent).
        if full {
            break;
        }
    }
    // The request's budget is spent: the partitions left report their positions unread.
    let mut described: Vec<(usize, glommio::Task<Result<LogBounds, ReadFailed>>)> = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        if let Some(key) = key.as_ref().filter(|_| results[index].is_none()) {
            let task = glommio::spawn_local(describe(shard.clone(), key.clone()));
            described.push((index, task));
        }
    }
    for (index, task) in described {
        results[index] = Some(task.await.map(|bounds| {
            next_offsets[index] = next_offsets[index].max(bounds.log_end.0);
            Fetched {
                batches: Vec::new(),
                log_start: bounds.log_start.0,
                log_end: bounds.log_end.0,
            }
        }));
    }
    let results = results
        .into_iter()
        .map(|result| result.expect("every partition is answered"))
        .collect();
    (results, total, next_offsets)
}

/// The published bounds of a partition this shard owns whose log ends at `offset`: there is
/// nothing to read there yet. None where it is served elsewhere, has no published bounds, or
/// has data at `offset`.
fn at_published_end(shard: &Shard, key: &PartitionKey, offset: Offset) -> Option<LogBounds> {
    if shard.owner(key) != shard.id {
        return None;
    }
    shard
        .published_bounds(key)
        .filter(|bounds| bounds.log_end == offset)
}

/// A partition's read in a wave of [`fetch_once`]: answered by the cache already, or running.
enum Pending {
    Cached(ReadBatches),
    Reading(glommio::Task<Result<ReadBatches, ReadFailed>>),
}

/// Takes a partition's read into the fetch's answer, in request order: only
/// the first partition with data may go over the request's budget (Kafka's rule), or a
/// response could outgrow the frame it was capped to. False when the read's batches did not
/// fit and were left out.
fn take(
    result: &mut Option<Result<Fetched, ReadFailed>>,
    next_offset: &mut u64,
    read: ReadBatches,
    total: &mut usize,
    bytes_max: usize,
) -> bool {
    let bytes: usize = read.batches.iter().map(Bytes::len).sum();
    let fits = *total == 0 || *total + bytes <= bytes_max;
    let batches = if fits {
        *next_offset = read.next_offset.0;
        *total += bytes;
        read.batches
    } else {
        *next_offset = (*next_offset).max(read.log_end.0);
        Vec::new()
    };
    *result = Some(Ok(Fetched {
        batches,
        log_start: read.log_start.0,
        log_end: read.log_end.0,
    }));
    fits
}

async fn list_offsets(
    shard: &Rc<Shard>,
    partitions: Vec<ListOffsetsPartitionOwned>,
) -> Vec<ListOffsetsResultOwned> {
    let mut results = Vec::with_capacity(partitions.len());
    for asked in partitions {
        let query = if asked.spec == OffsetSpec::Earliest {
            OffsetQuery::Earliest
        } else if asked.spec == OffsetSpec::Latest {
            OffsetQuery::Latest
        } else {
            OffsetQuery::Timestamp(asked.timestamp_ms)
        };
        let found = list_offset(shard, &asked.topic, asked.partition, query).await;
        let (error, offset) = match found {
            Ok(offset) => (ErrorCode::None, offset.0),
            Err(error) => (errors::read(&error), 0),
        };
        results.push(ListOffsetsResultOwned {
            topic: asked.topic,
            partition: asked.partition,
            error,
            offset,
        });
    }
    results
}

/// Looks up an offset (earliest, latest, by timestamp) on the partition's owner.
pub(crate) async fn list_offset(
    shard: &Rc<Shard>,
    topic: &str,
    partition: u32,
    query: OffsetQuery,
) -> Result<Offset, ReadFailed> {
    let key = resolve(shard, topic, partition)?;
    let owner = shard.owner(&key);
    let op = |reply| ShardOp::ListOffset { key, query, reply };
    shard
        .call(owner, op)
        .await
        .unwrap_or_else(|gone| Err(gone.into()))
}

async fn metadata(shard: &Rc<Shard>, topics: Vec<String>) -> ResponseBodyOwned {
    let snapshot = shard.metadata();
    let names: Vec<String> = if topics.is_empty() {
        snapshot.topics.keys().cloned().collect()
    } else {
        topics
    };
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let Some(spec) = snapshot.topics.get(&name) else {
            out.push(TopicMetadataOwned {
                name,
                error: ErrorCode::UnknownTopic,
                partitions: Vec::new(),
                config: TopicConfigOwned::default(),
            });
            continue;
        };
        let mut partitions = Vec::with_capacity(spec.partitions as usize);
        for partition in 0..spec.partitions {
            let key = PartitionKey {
                topic: name.clone(),
                partition: PartitionId(partition),
            };
            let owner = shard.owner(&key);
            let mut entry = PartitionMetadataOwned {
                partition,
                shard: owner.0,
                error: ErrorCode::None,
                log_start: 0,
                log_end: 0,
            };
            match describe(shard.clone(), key).await {
                Ok(bounds) => {
                    entry.log_start = bounds.log_start.0;
                    entry.log_end = bounds.log_end.0;
                }
                Err(error) => entry.error = errors::read(&error),
            }
            partitions.push(entry);
        }
        out.push(TopicMetadataOwned {
            name: spec.name.clone(),
            error: ErrorCode::None,
            partitions,
            config: wire_config(&spec.config),
        });
    }
    ResponseBodyOwned::Metadata {
        error: ErrorCode::None,
        topics: out,
    }
}
