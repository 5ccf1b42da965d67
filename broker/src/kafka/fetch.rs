//! Kafka Fetch (versions 4 to 12): the same reads and long-poll as the ringbus wire's fetch
//! (`handler::fetch_partitions`: whole stored batches within the byte limits, parked on the
//! partitions until `min_bytes` arrive or `max_wait_ms` passes), answered with a response
//! framed by hand around the stored batch bytes (`frame::frame_fetch_response`), so they are
//! sent from the cache or read buffers as they are. No state; any shard.
//!
//! Kafka's fetch semantics that ringbus already has: a batch that contains the fetch offset
//! is returned whole (the client skips the records before its offset), the first partition
//! with data returns at least one batch even past `max_bytes` (KIP-74), and the high
//! watermark is the written end. There are no fetch sessions: session id 0 tells a client that
//! asked for one to keep sending full requests.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, FetchRequest};

use super::errors::{self, NONE};
use super::frame::{self, FetchedPartition, FetchedTopic, Head, Outcome, Reply};
use crate::handler::{self, FetchAsk};
use crate::shard::Shard;

/// The most a Kafka fetch returns, per partition and in all, whatever the client asks: a
/// response must fit Kafka's i32 size, and the broker holds it in memory until it is sent
/// (Kafka's own broker caps it at `fetch.max.bytes`, 55 MiB by default). The first batch of
/// the first partition with data may take it past this, as Kafka allows.
pub(crate) const FETCH_BYTES_MAX: usize = 64 << 20;

pub(crate) async fn fetch(shard: &Rc<Shard>, head: Head, mut body: Bytes) -> Outcome {
    let request: FetchRequest = frame::decode(ApiKey::Fetch, head.version, &mut body)?;
    let mut asks = Vec::new();
    for topic in &request.topics {
        for partition in &topic.partitions {
            asks.push(FetchAsk {
                topic: topic.topic.0.to_string(),
                // A negative index names no partition: resolving it fails as unknown.
                partition: u32::try_from(partition.partition).unwrap_or(u32::MAX),
                // A negative offset is out of range, as past the end is.
                offset: u64::try_from(partition.fetch_offset).unwrap_or(u64::MAX),
                bytes_max: usize::try_from(partition.partition_max_bytes)
                    .unwrap_or(0)
                    .min(FETCH_BYTES_MAX),
            });
        }
    }
    let wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
    let bytes_min = usize::try_from(request.min_bytes).unwrap_or(0);
    let bytes_max = usize::try_from(request.max_bytes)
        .unwrap_or(0)
        .min(FETCH_BYTES_MAX);
    let mut found = handler::fetch_partitions(shard, wait, bytes_min, bytes_max, &asks)
        .await
        .into_iter();
    let mut failed = false;
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in topic.partitions {
            let result = found.next().expect("one result per asked partition");
            let mut answer = FetchedPartition {
                index: partition.partition,
                error: NONE,
                high_watermark: -1,
                log_start: -1,
                records: Vec::new(),
            };
            match result {
                Ok(fetched) => {
                    answer.high_watermark = fetched.log_end as i64;
                    answer.log_start = fetched.log_start as i64;
                    answer.records = fetched.batches;
                }
                Err(error) => {
                    failed = true;
                    answer.error = errors::read(&error);
                    if answer.error == ResponseError::UnknownServerError.code() {
                        tracing::warn!(%error, "fetch failed");
                    }
                }
            }
            partitions.push(answer);
        }
        topics.push(FetchedTopic {
            name: topic.topic.0,
            partitions,
        });
    }
    let parts = frame::frame_fetch_response(head.version, head.correlation_id, &topics);
    Ok((Reply::Respond(parts), failed))
}
