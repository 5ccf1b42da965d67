//! Kafka Produce (versions 3 to 9): each partition's records are split into RecordBatch v2
//! batches, checked once (`schema::batch::Verified`) and appended through
//! `handler::append_all`, the ringbus wire's path: one call to the partition's owner per
//! partition, every partition in parallel. No state; any shard.
//!
//! Zero copy: the request is decoded from a `Bytes` view of the receive buffer, so the codec's
//! records fields are slices of it. Their positions are noted, every other view is dropped,
//! and the buffer becomes mutable again (`Bytes::try_into_mut`, which does not copy a buffer
//! nothing else shares), so each batch is a `BytesMut` slice of the receive buffer whose
//! baseOffset the log rewrites in place. Should a view outlive that (it cannot today), the
//! batches are copied instead: slower, never wrong.
//!
//! acks=0 gets no response at all; acks=1 is answered once the batches are written, acks=-1
//! once they are durable (fdatasync), the ringbus wire's written and durable levels.

use std::collections::BTreeMap;
use std::ops::Range;
use std::rc::Rc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use schema::batch::Verified;

use super::admin::auto_create;
use super::config::KafkaSettings;
use super::errors::{self, Code, NONE};
use super::frame::{self, Head, Outcome, Reply, RequestError};
use crate::error::{AppendFailed, Unreachable};
use crate::group::offsets::is_internal;
use crate::handler;
use crate::ops::AckLevel;
use crate::shard::Shard;
use crate::topology::PartitionKey;

/// Bytes of a batch before its batchLength field ends (baseOffset i64, batchLength i32):
/// batchLength counts the bytes after them.
const LENGTH_END_BYTES: usize = 12;

/// One partition's answer.
#[derive(Debug, Clone)]
struct Answer {
    error: Code,
    base_offset: i64,
    log_start: i64,
    message: Option<String>,
}

impl Answer {
    fn failed(error: Code, message: String) -> Answer {
        Answer {
            error,
            base_offset: -1,
            log_start: -1,
            message: Some(message),
        }
    }
}

/// A partition of the request: where its answer goes, and its batches' places in the buffer.
struct Slot {
    topic: String,
    index: i32,
    batches: Vec<Range<usize>>,
    answer: Option<Answer>,
}

/// Splits a partition's records into batches by their batchLength fields: their ranges in the
/// request buffer, whose records start at `start`. Any leftover or inconsistent length makes
/// the whole partition corrupt, as Kafka treats it.
fn split_batches(records: &[u8], start: usize) -> Result<Vec<Range<usize>>, String> {
    if records.is_empty() {
        return Err("no record batch".to_string());
    }
    let mut batches = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let Some(length) = records.get(at + 8..at + LENGTH_END_BYTES) else {
            return Err(format!("{} bytes after the last batch", records.len() - at));
        };
        let length = i32::from_be_bytes([length[0], length[1], length[2], length[3]]);
        let Some(end) = usize::try_from(length)
            .ok()
            .map(|length| at + LENGTH_END_BYTES + length)
            .filter(|end| *end <= records.len())
        else {
            return Err(format!(
                "a batch at byte {at} declares batchLength {length}, past the {} bytes",
                records.len()
            ));
        };
        batches.push(start + at..start + end);
        at = end;
    }
    Ok(batches)
}

/// Where `part` lies in `buffer`, if it is a slice of it (the codec slices, never copies,
/// when it decodes from `Bytes`).
fn range_in(buffer: &Bytes, part: &Bytes) -> Option<Range<usize>> {
    let base = buffer.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    let start = at.checked_sub(base)?;
    let end = start.checked_add(part.len())?;
    (end <= buffer.len()).then_some(start..end)
}

/// A Produce request taken apart: the ack level (None: an invalid acks value, answered per
/// partition), each partition's slot with its batches' ranges, the copies of records that were
/// not slices of the buffer, and the buffer made mutable again.
struct Taken {
    level: Option<AckLevel>,
    slots: Vec<Slot>,
    copied: Vec<Option<BytesMut>>,
    writable: BytesMut,
}

/// Decodes a Produce request body (`buffer`, the receive buffer after the header) and takes
/// it apart without copying the records (see the module doc).
fn take(version: i16, buffer: Bytes) -> Result<Taken, RequestError> {
    let mut body = buffer.clone();
    let request: ProduceRequest = frame::decode(ApiKey::Produce, version, &mut body)?;
    drop(body);
    let level = match request.acks {
        0 => Some(AckLevel::None),
        1 => Some(AckLevel::Written),
        -1 => Some(AckLevel::Durable),
        _ => None,
    };
    let mut slots = Vec::new();
    // Records that are not slices of the buffer (none today): copied, see the module doc.
    let mut copied: Vec<Option<BytesMut>> = Vec::new();
    for topic in &request.topic_data {
        for partition in &topic.partition_data {
            let mut slot = Slot {
                topic: topic.name.0.to_string(),
                index: partition.index,
                batches: Vec::new(),
                answer: None,
            };
            let records = partition.records.clone().unwrap_or_default();
            let located = range_in(&buffer, &records);
            let start = located.as_ref().map_or(0, |range| range.start);
            if level.is_none() {
                let message = format!("acks={} (valid: -1, 0, 1)", request.acks);
                slot.answer = Some(Answer::failed(
                    ResponseError::InvalidRequiredAcks.code(),
                    message,
                ));
            } else {
                match split_batches(&records, start) {
                    Ok(batches) => slot.batches = batches,
                    Err(message) => {
                        let code = ResponseError::CorruptMessage.code();
                        slot.answer = Some(Answer::failed(code, message));
                    }
                }
            }
            copied.push(located.is_none().then(|| BytesMut::from(&records[..])));
            slots.push(slot);
        }
    }
    drop(request);
    // Nothing but `buffer` refers to the receive buffer now: make it mutable without a copy.
    let writable = buffer.try_into_mut().unwrap_or_else(|shared| {
        tracing::debug!("produce buffer still shared: copying its batches");
        BytesMut::from(&shared[..])
    });
    Ok(Taken {
        level,
        slots,
        copied,
        writable,
    })
}

pub(crate) async fn produce(
    shard: &Rc<Shard>,
    settings: &KafkaSettings,
    head: Head,
    buffer: Bytes,
) -> Outcome {
    let Taken {
        level,
        mut slots,
        copied,
        mut writable,
    } = take(head.version, buffer)?;
    let level = level.unwrap_or(AckLevel::None);
    let mut per_partition: BTreeMap<PartitionKey, Vec<(usize, Verified<BytesMut>)>> =
        BTreeMap::new();
    let mut cursor = 0;
    for (slot_index, (slot, copy)) in slots.iter_mut().zip(copied).enumerate() {
        let batches = std::mem::take(&mut slot.batches);
        if slot.answer.is_some() {
            continue;
        }
        let key = match resolve(shard, settings, &slot.topic, slot.index).await {
            Ok(key) => key,
            Err(answer) => {
                slot.answer = Some(answer);
                continue;
            }
        };
        let mut source = copy;
        for range in batches {
            let bytes = match source.as_mut() {
                Some(copy) => copy.split_to(range.len()),
                None => {
                    // Ranges come in buffer order: the records of one request never overlap.
                    assert!(range.start >= cursor, "batches in buffer order");
                    writable.advance(range.start - cursor);
                    cursor = range.end;
                    writable.split_to(range.len())
                }
            };
            match Verified::check(bytes) {
                Ok(verified) => per_partition
                    .entry(key.clone())
                    .or_default()
                    .push((slot_index, verified)),
                Err(error) => {
                    let code = errors::batch(&error);
                    let error = AppendFailed::InvalidBatch {
                        key: key.clone(),
                        error,
                    };
                    slot.answer = Some(Answer::failed(code, error.to_string()));
                    // None of this partition's batches is stored (Kafka refuses the partition
                    // as a whole); another entry for the same partition in this request keeps
                    // its own.
                    if let Some(queued) = per_partition.get_mut(&key) {
                        queued.retain(|(queued_slot, _)| *queued_slot != slot_index);
                    }
                    break;
                }
            }
        }
    }
    let tasks: Vec<_> = per_partition
        .into_iter()
        .map(|(key, batches)| {
            let shard = shard.clone();
            glommio::spawn_local(async move {
                let (slots, batches): (Vec<usize>, Vec<_>) = batches.into_iter().unzip();
                let results = handler::append_all(&shard, key, batches, level).await;
                slots.into_iter().zip(results).collect::<Vec<_>>()
            })
        })
        .collect();
    for task in tasks {
        for (slot, result) in task.await {
            let slot = &mut slots[slot];
            let answer = match result {
                Ok(appended) => Answer {
                    error: NONE,
                    base_offset: appended.base_offset.0 as i64,
                    log_start: appended.log_start.0 as i64,
                    message: None,
                },
                Err(error) => Answer::failed(errors::append(&error), error.to_string()),
            };
            // The first batch's offset, or the first failure, answers for the partition.
            match &slot.answer {
                Some(earlier) if earlier.error != NONE => {}
                Some(_) if answer.error == NONE => {}
                _ => slot.answer = Some(answer),
            }
        }
    }
    let failed = slots.iter().any(|slot| {
        slot.answer
            .as_ref()
            .is_some_and(|answer| answer.error != NONE)
    });
    if level == AckLevel::None {
        return Ok((Reply::Silent, failed));
    }
    let parts = frame::encode(
        ApiKey::Produce,
        head.version,
        head.correlation_id,
        &response(head.version, slots),
    )?;
    Ok((Reply::Respond(vec![parts]), failed))
}

/// The partition, after auto-creating its topic if it is unknown and that is on.
async fn resolve(
    shard: &Rc<Shard>,
    settings: &KafkaSettings,
    topic: &str,
    index: i32,
) -> Result<PartitionKey, Answer> {
    let partition = u32::try_from(index).unwrap_or(u32::MAX);
    if is_internal(topic) {
        let refused = handler::internal_topic_error(topic);
        return Err(Answer::failed(
            errors::append(&refused),
            refused.to_string(),
        ));
    }
    match handler::resolve(shard, topic, partition) {
        Ok(key) => Ok(key),
        Err(Unreachable::UnknownTopic { .. }) => {
            if let Err(code) = auto_create(shard, settings, topic).await {
                let message = format!("unknown topic {topic:?}");
                return Err(Answer::failed(code, message));
            }
            handler::resolve(shard, topic, partition)
                .map_err(|error| Answer::failed(errors::unreachable(&error), error.to_string()))
        }
        Err(error) => Err(Answer::failed(
            errors::unreachable(&error),
            error.to_string(),
        )),
    }
}

/// The response: per topic (in request order) its partitions' answers.
fn response(version: i16, slots: Vec<Slot>) -> ProduceResponse {
    let mut topics: Vec<TopicProduceResponse> = Vec::new();
    for slot in slots {
        // Every slot is answered above; should one not be (a bug), the client hears an error
        // for it rather than the shard stopping.
        let answer = slot.answer.unwrap_or_else(|| {
            tracing::error!(topic = %slot.topic, partition = slot.index, "unanswered produce");
            Answer::failed(
                ResponseError::UnknownServerError.code(),
                "not answered".to_string(),
            )
        });
        let mut partition = PartitionProduceResponse::default();
        partition.index = slot.index;
        partition.error_code = answer.error;
        partition.base_offset = answer.base_offset;
        partition.log_append_time_ms = -1;
        if version >= 5 {
            partition.log_start_offset = answer.log_start;
        }
        if version >= 8 {
            partition.error_message = answer.message.map(StrBytes::from_string);
        }
        match topics.last_mut() {
            Some(topic) if topic.name.0.as_str() == slot.topic => {
                topic.partition_responses.push(partition)
            }
            _ => {
                let mut topic = TopicProduceResponse::default();
                topic.name = TopicName(StrBytes::from_string(slot.topic));
                topic.partition_responses.push(partition);
                topics.push(topic);
            }
        }
    }
    let mut response = ProduceResponse::default();
    response.responses = topics;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_of(length: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; LENGTH_END_BYTES + length];
        bytes[8..12].copy_from_slice(&(length as i32).to_be_bytes());
        bytes
    }

    #[test]
    fn records_split_at_batch_lengths() {
        let mut records = batch_of(49);
        records.extend(batch_of(100));
        assert_eq!(
            split_batches(&records, 1000),
            Ok(vec![1000..1061, 1061..1173])
        );
    }

    #[test]
    fn a_lying_or_short_length_makes_the_records_corrupt() {
        let mut records = batch_of(49);
        records.truncate(40);
        assert!(split_batches(&records, 0).is_err());
        let mut negative = batch_of(49);
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(split_batches(&negative, 0).is_err());
        let mut tail = batch_of(49);
        tail.extend([0u8; 5]);
        assert!(split_batches(&tail, 0).is_err());
        assert!(split_batches(&[], 0).is_err());
    }

    /// A Produce request's batches come out as slices of the receive buffer itself (the
    /// buffer is taken back as mutable, not copied), in every served version.
    #[test]
    fn batches_are_taken_from_the_receive_buffer_without_a_copy() {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_protocol::protocol::Encodable;

        for version in 3..=9 {
            let mut records = batch_of(49);
            records.extend(batch_of(20));
            let mut partition = PartitionProduceData::default();
            partition.index = 2;
            partition.records = Some(Bytes::from(records.clone()));
            let mut topic = TopicProduceData::default();
            topic.name = TopicName(StrBytes::from_static_str("events"));
            topic.partition_data = vec![partition];
            let mut request = ProduceRequest::default();
            request.acks = -1;
            request.topic_data = vec![topic];
            let mut encoded = BytesMut::new();
            request.encode(&mut encoded, version).expect("encodes");
            let buffer = encoded.freeze();
            let address = buffer.as_ptr();
            let taken = take(version, buffer).expect("decodes");
            assert_eq!(taken.level, Some(AckLevel::Durable));
            assert_eq!(
                taken.writable.as_ptr(),
                address,
                "v{version}: the receive buffer itself"
            );
            assert_eq!(taken.copied, vec![None]);
            let slot = &taken.slots[0];
            assert_eq!((slot.topic.as_str(), slot.index), ("events", 2));
            assert_eq!(slot.batches.len(), 2);
            let first = slot.batches[0].clone();
            assert_eq!(&taken.writable[first.start..first.end], &records[..61]);
            let second = slot.batches[1].clone();
            assert_eq!(&taken.writable[second.start..second.end], &records[61..]);
        }
    }

    #[test]
    fn a_slice_is_located_and_a_copy_is_not() {
        let buffer = Bytes::from(vec![7u8; 100]);
        assert_eq!(range_in(&buffer, &buffer.slice(10..30)), Some(10..30));
        assert_eq!(range_in(&buffer, &Bytes::from(vec![7u8; 20])), None);
    }
}
