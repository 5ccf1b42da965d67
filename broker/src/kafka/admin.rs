//! The Kafka requests about the cluster and its topics rather than records: ApiVersions,
//! SaslHandshake (refused), Metadata (with auto-creation), CreateTopics, DeleteTopics,
//! DescribeConfigs, ListOffsets and InitProducerId. Each converts the request, calls the broker operation the
//! ringbus wire's handler calls, and converts the answer. No state; any shard.

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse,
    MetadataRequest, MetadataResponse, ProducerId, SaslHandshakeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::config::KafkaSettings;
use super::errors::{self, Code, NONE};
use super::frame::{self, Head, Outcome, Reply};
use crate::group::offsets::is_internal;
use crate::handler;
use crate::metadata::{TopicConfig, TopicSpec};
use crate::ops::{ControllerOp, OffsetQuery};
use crate::shard::Shard;

/// The one node: ringbus answers as a single Kafka broker that leads every partition.
pub(crate) const NODE_ID: i32 = 0;

/// The cluster id Metadata reports.
const CLUSTER_ID: &str = "ringbus";

/// Kafka's "authorized operations not asked for" value.
const OPERATIONS_NOT_ASKED: i32 = i32::MIN;

fn respond(parts: Bytes, failed: bool) -> Outcome {
    Ok((Reply::Respond(vec![parts]), failed))
}

/// ApiVersions, any version: the served APIs and their advertised ranges. A version above 4
/// gets a v0 response with UNSUPPORTED_VERSION (and the ranges), as Kafka answers it.
pub(crate) fn api_versions(head: Head, _body: Bytes) -> Reply {
    let known = frame::served(ApiKey::ApiVersions).map(|api| api.served_min..=api.max);
    let (version, error) = match known {
        Some(range) if range.contains(&head.version) => (head.version, NONE),
        _ => (0, ResponseError::UnsupportedVersion.code()),
    };
    let mut response = ApiVersionsResponse::default();
    response.error_code = error;
    response.api_keys = frame::SUPPORTED
        .iter()
        .map(|api| {
            let mut entry = ApiVersion::default();
            entry.api_key = api.key as i16;
            entry.min_version = api.advertised_min;
            entry.max_version = api.max;
            entry
        })
        .collect();
    match frame::encode(ApiKey::ApiVersions, version, head.correlation_id, &response) {
        Ok(parts) => Reply::Respond(vec![parts]),
        Err(error) => Reply::Close(error),
    }
}

/// SaslHandshake: no mechanism is enabled, so every one is refused (the client reports it
/// and stops, instead of waiting on a connection that never answers).
pub(crate) fn sasl_handshake(head: Head, _body: Bytes) -> Reply {
    let mut response = SaslHandshakeResponse::default();
    response.error_code = ResponseError::UnsupportedSaslMechanism.code();
    match frame::encode(
        ApiKey::SaslHandshake,
        head.version,
        head.correlation_id,
        &response,
    ) {
        Ok(parts) => Reply::Respond(vec![parts]),
        Err(error) => Reply::Close(error),
    }
}

/// Creates `name` with the auto-creation partition count, if auto-creation is on and the name
/// is not internal. Ok when the topic exists afterwards (also when another request created it
/// first); otherwise the code to answer.
pub(crate) async fn auto_create(
    shard: &Rc<Shard>,
    settings: &KafkaSettings,
    name: &str,
) -> Result<(), Code> {
    let Some(partitions) = settings.auto_create_partitions else {
        return Err(ResponseError::UnknownTopicOrPartition.code());
    };
    if is_internal(name) {
        return Err(ResponseError::UnknownTopicOrPartition.code());
    }
    let spec = TopicSpec {
        name: name.to_string(),
        partitions,
        config: TopicConfig::default(),
    };
    match handler::change_topics(shard, ControllerOp::Create(spec)).await {
        Ok(()) => Ok(()),
        Err(error) => {
            let code = errors::topic_change(&error);
            if code == ResponseError::TopicAlreadyExists.code() {
                Ok(())
            } else {
                tracing::debug!(topic = name, %error, "auto-creating a topic failed");
                Err(code)
            }
        }
    }
}

/// Metadata: the one broker, and every asked topic (all topics when the list is null, or
/// empty in v0) with its partitions, each led by node 0.
pub(crate) async fn metadata(
    shard: &Rc<Shard>,
    settings: &KafkaSettings,
    head: Head,
    mut body: Bytes,
) -> Outcome {
    let request: MetadataRequest = frame::decode(ApiKey::Metadata, head.version, &mut body)?;
    // v0-v3 have no flag: auto-creation is the broker's choice there. The codec's default
    // for absent fields is true.
    let allow_create = request.allow_auto_topic_creation;
    let asked: Option<Vec<Option<String>>> = match request.topics {
        None => None,
        Some(topics) if topics.is_empty() && head.version == 0 => None,
        Some(topics) => Some(
            topics
                .into_iter()
                .map(|topic| topic.name.map(|name| name.0.to_string()))
                .collect(),
        ),
    };
    let mut failed = false;
    let mut topics = Vec::new();
    let names: Vec<Option<String>> = match asked {
        None => shard.metadata().topics.keys().cloned().map(Some).collect(),
        Some(names) => names,
    };
    for name in names {
        let mut topic = MetadataResponseTopic::default();
        topic.topic_authorized_operations = OPERATIONS_NOT_ASKED;
        let Some(name) = name else {
            // Asked by topic id (v10+): ringbus topics have none.
            topic.error_code = ResponseError::UnknownTopicId.code();
            failed = true;
            topics.push(topic);
            continue;
        };
        topic.name = Some(TopicName(StrBytes::from_string(name.clone())));
        topic.is_internal = is_internal(&name);
        let mut partitions = shard
            .metadata()
            .topics
            .get(&name)
            .map(|spec| spec.partitions);
        if partitions.is_none() && allow_create {
            match auto_create(shard, settings, &name).await {
                Ok(()) => partitions = shard.metadata().topics.get(&name).map(|s| s.partitions),
                Err(code) => topic.error_code = code,
            }
        }
        match partitions {
            Some(count) => {
                topic.partitions = (0..count)
                    .map(|index| {
                        let mut partition = MetadataResponsePartition::default();
                        partition.partition_index = index as i32;
                        partition.leader_id = BrokerId(NODE_ID);
                        if head.version >= 7 {
                            partition.leader_epoch = 0;
                        }
                        partition.replica_nodes = vec![BrokerId(NODE_ID)];
                        partition.isr_nodes = vec![BrokerId(NODE_ID)];
                        partition
                    })
                    .collect();
            }
            None if topic.error_code == NONE => {
                topic.error_code = ResponseError::UnknownTopicOrPartition.code();
            }
            None => {}
        }
        failed |= topic.error_code != NONE;
        topics.push(topic);
    }
    let mut broker = MetadataResponseBroker::default();
    broker.node_id = BrokerId(NODE_ID);
    broker.host = StrBytes::from_string(settings.advertised.host.clone());
    broker.port = i32::from(settings.advertised.port);
    let mut response = MetadataResponse::default();
    response.brokers = vec![broker];
    response.cluster_id = Some(StrBytes::from_static_str(CLUSTER_ID));
    response.controller_id = BrokerId(NODE_ID);
    response.topics = topics;
    response.cluster_authorized_operations = OPERATIONS_NOT_ASKED;
    let parts = frame::encode(
        ApiKey::Metadata,
        head.version,
        head.correlation_id,
        &response,
    )?;
    respond(parts, failed)
}

/// Why a CreateTopics entry is refused before it reaches the controller.
fn creatable(
    topic: &kafka_protocol::messages::create_topics_request::CreatableTopic,
    settings: &KafkaSettings,
) -> Result<TopicSpec, (Code, String)> {
    let name = topic.name.0.to_string();
    if is_internal(&name) {
        let error = handler::internal_topic_error(&name);
        return Err((errors::append(&error), error.to_string()));
    }
    // One node: every partition has one replica.
    if topic.replication_factor != -1 && topic.replication_factor != 1 {
        let message = format!(
            "replication factor {}: ringbus is one node, so 1 (or -1, the default)",
            topic.replication_factor
        );
        return Err((ResponseError::InvalidReplicationFactor.code(), message));
    }
    if !topic.assignments.is_empty() {
        let message = "replica assignments are not supported: ringbus is one node".to_string();
        return Err((ResponseError::InvalidReplicaAssignment.code(), message));
    }
    let partitions = match topic.num_partitions {
        -1 => settings.auto_create_partitions.unwrap_or(1),
        count if count > 0 => count as u32,
        count => {
            let message = format!("{count} partitions");
            return Err((ResponseError::InvalidPartitions.code(), message));
        }
    };
    let mut config = TopicConfig::default();
    for entry in &topic.configs {
        let value = entry.value.as_ref().map(|value| value.to_string());
        let parsed = value.as_deref().map(str::parse::<i64>);
        // Kafka's -1 for the retention settings is "unlimited"; ringbus's u64::MAX.
        let limit = |value: i64| if value < 0 { u64::MAX } else { value as u64 };
        match (entry.name.as_str(), parsed) {
            (_, None) => {}
            ("retention.ms", Some(Ok(value))) => config.retention_ms = Some(limit(value)),
            ("retention.bytes", Some(Ok(value))) => config.retention_bytes = Some(limit(value)),
            ("segment.bytes", Some(Ok(value))) if value > 0 => {
                config.segment_bytes = Some(value as u64)
            }
            // What Kafka's delete policy means is what ringbus always does.
            ("cleanup.policy", _) if value.as_deref() == Some("delete") => {}
            (name, _) => {
                let message = format!("config {name}={value:?} is not supported");
                return Err((ResponseError::InvalidConfig.code(), message));
            }
        }
    }
    Ok(TopicSpec {
        name,
        partitions,
        config,
    })
}

/// CreateTopics: each topic through the controller, as `ringbus topic create` does.
pub(crate) async fn create_topics(
    shard: &Rc<Shard>,
    settings: &KafkaSettings,
    head: Head,
    mut body: Bytes,
) -> Outcome {
    let request: CreateTopicsRequest =
        frame::decode(ApiKey::CreateTopics, head.version, &mut body)?;
    let mut failed = false;
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let mut result = CreatableTopicResult::default();
        result.name = topic.name.clone();
        let outcome = match creatable(topic, settings) {
            Err(refused) => Err(refused),
            Ok(spec) if request.validate_only => {
                if shard.metadata().topics.contains_key(&spec.name) {
                    let message = format!("topic {:?} already exists", spec.name);
                    Err((ResponseError::TopicAlreadyExists.code(), message))
                } else {
                    Ok(spec.partitions)
                }
            }
            Ok(spec) => {
                let partitions = spec.partitions;
                handler::change_topics(shard, ControllerOp::Create(spec))
                    .await
                    .map(|()| partitions)
                    .map_err(|error| (errors::topic_change(&error), error.to_string()))
            }
        };
        match outcome {
            Ok(partitions) => {
                result.num_partitions = partitions as i32;
                result.replication_factor = 1;
            }
            Err((code, message)) => {
                failed = true;
                result.error_code = code;
                if head.version >= 1 {
                    result.error_message = Some(StrBytes::from_string(message));
                }
            }
        }
        results.push(result);
    }
    let mut response = CreateTopicsResponse::default();
    response.topics = results;
    let parts = frame::encode(
        ApiKey::CreateTopics,
        head.version,
        head.correlation_id,
        &response,
    )?;
    respond(parts, failed)
}

/// DeleteTopics: each topic through the controller, as `ringbus topic delete` does.
pub(crate) async fn delete_topics(shard: &Rc<Shard>, head: Head, mut body: Bytes) -> Outcome {
    let request: DeleteTopicsRequest =
        frame::decode(ApiKey::DeleteTopics, head.version, &mut body)?;
    // v6 names topics in `topics` (by name or id); earlier versions in `topic_names`.
    let names: Vec<Option<TopicName>> = if head.version >= 6 {
        request.topics.into_iter().map(|topic| topic.name).collect()
    } else {
        request.topic_names.into_iter().map(Some).collect()
    };
    let mut failed = false;
    let mut results = Vec::with_capacity(names.len());
    for name in names {
        let mut result = DeletableTopicResult::default();
        let outcome = match &name {
            None => Err((
                ResponseError::UnknownTopicId.code(),
                "ringbus topics have no ids".to_string(),
            )),
            Some(name) if is_internal(name) => {
                let error = handler::internal_topic_error(name);
                Err((errors::append(&error), error.to_string()))
            }
            Some(name) => handler::change_topics(shard, ControllerOp::Delete(name.0.to_string()))
                .await
                .map_err(|error| (errors::topic_change(&error), error.to_string())),
        };
        result.name = name;
        if let Err((code, message)) = outcome {
            failed = true;
            result.error_code = code;
            if head.version >= 5 {
                result.error_message = Some(StrBytes::from_string(message));
            }
        }
        results.push(result);
    }
    let mut response = DeleteTopicsResponse::default();
    response.responses = results;
    let parts = frame::encode(
        ApiKey::DeleteTopics,
        head.version,
        head.correlation_id,
        &response,
    )?;
    respond(parts, failed)
}

/// DescribeConfigs resource types (Kafka's ConfigResource.Type).
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// DescribeConfigs config sources: set on the topic, or the broker's default.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

/// DescribeConfigs config types (v3+).
const TYPE_STRING: i8 = 2;
const TYPE_LONG: i8 = 5;

/// A topic's settings as Kafka names them: (name, value, set on the topic, type). Limits are
/// -1 when unlimited, as in Kafka; cleanup.policy is always delete (ringbus does not compact).
fn topic_configs(
    config: &TopicConfig,
    defaults: &storage::LogConfig,
) -> Vec<(&'static str, String, bool, i8)> {
    let limit = |value: Option<u64>| match value {
        None | Some(u64::MAX) => "-1".to_string(),
        Some(value) => value.to_string(),
    };
    let (retention_ms, retention_ms_set) = match config.retention_ms {
        Some(value) => (limit(Some(value)), true),
        None => (limit(defaults.retention_ms), false),
    };
    let (retention_bytes, retention_bytes_set) = match config.retention_bytes {
        Some(value) => (limit(Some(value)), true),
        None => (limit(defaults.retention_bytes), false),
    };
    let segment_bytes = config.segment_bytes.unwrap_or(defaults.segment_bytes_max);
    vec![
        ("cleanup.policy", "delete".to_string(), false, TYPE_STRING),
        (
            "retention.bytes",
            retention_bytes,
            retention_bytes_set,
            TYPE_LONG,
        ),
        ("retention.ms", retention_ms, retention_ms_set, TYPE_LONG),
        (
            "segment.bytes",
            segment_bytes.to_string(),
            config.segment_bytes.is_some(),
            TYPE_LONG,
        ),
    ]
}

/// DescribeConfigs (v1-4): a topic's retention and segment settings (what ringbus has of
/// Kafka's topic configs), enough for the tools that describe topics; a broker resource has no
/// configs to report; other resources are refused per resource.
pub(crate) async fn describe_configs(shard: &Rc<Shard>, head: Head, mut body: Bytes) -> Outcome {
    let request: DescribeConfigsRequest =
        frame::decode(ApiKey::DescribeConfigs, head.version, &mut body)?;
    let mut response = DescribeConfigsResponse::default();
    let mut failed = false;
    for resource in request.resources {
        let mut result = DescribeConfigsResult::default();
        // Null unless refused (the codec's default is an empty string).
        result.error_message = None;
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        let wanted = |name: &str| {
            resource
                .configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|key| key.as_str() == name))
        };
        match resource.resource_type {
            RESOURCE_TOPIC => {
                let metadata = shard.metadata();
                match metadata.topics.get(resource.resource_name.as_str()) {
                    Some(spec) => {
                        for (name, value, set, kind) in
                            topic_configs(&spec.config, shard.log_defaults())
                        {
                            if !wanted(name) {
                                continue;
                            }
                            let mut entry = DescribeConfigsResourceResult::default();
                            entry.name = StrBytes::from_static_str(name);
                            entry.value = Some(StrBytes::from_string(value));
                            entry.config_source = if set { SOURCE_TOPIC } else { SOURCE_DEFAULT };
                            if head.version >= 3 {
                                entry.config_type = kind;
                                entry.documentation = None;
                            }
                            result.configs.push(entry);
                        }
                    }
                    None => {
                        result.error_code = ResponseError::UnknownTopicOrPartition.code();
                    }
                }
            }
            RESOURCE_BROKER => {}
            other => {
                result.error_code = ResponseError::InvalidRequest.code();
                result.error_message = Some(StrBytes::from_string(format!(
                    "resource type {other}: only topics (2) and the broker (4) are described"
                )));
            }
        }
        failed |= result.error_code != NONE;
        response.results.push(result);
    }
    let parts = frame::encode(
        ApiKey::DescribeConfigs,
        head.version,
        head.correlation_id,
        &response,
    )?;
    respond(parts, failed)
}

/// Kafka's ListOffsets timestamps with a meaning.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

/// ListOffsets: earliest (-2), latest (-1) or the first offset at or after a timestamp, on
/// each partition's owner. The timestamp answered is -1 (ringbus looks up offsets by batch
/// timestamps and does not report them); a timestamp past every batch answers the log end.
/// Max-timestamp (-3, v7) and the other special values are refused per partition.
pub(crate) async fn list_offsets(shard: &Rc<Shard>, head: Head, mut body: Bytes) -> Outcome {
    let request: ListOffsetsRequest = frame::decode(ApiKey::ListOffsets, head.version, &mut body)?;
    let mut failed = false;
    let mut topics = Vec::with_capacity(request.topics.len());
    for asked in request.topics {
        let mut topic = ListOffsetsTopicResponse::default();
        topic.name = asked.name.clone();
        for partition in asked.partitions {
            let mut answer = ListOffsetsPartitionResponse::default();
            answer.partition_index = partition.partition_index;
            answer.timestamp = -1;
            let query = match partition.timestamp {
                LATEST => Some(OffsetQuery::Latest),
                EARLIEST => Some(OffsetQuery::Earliest),
                timestamp if timestamp >= 0 => Some(OffsetQuery::Timestamp(timestamp)),
                _ => None,
            };
            let index = u32::try_from(partition.partition_index).unwrap_or(u32::MAX);
            let found = match query {
                None => Err(ResponseError::UnsupportedVersion.code()),
                Some(query) => handler::list_offset(shard, &asked.name, index, query)
                    .await
                    .map_err(|error| errors::read(&error)),
            };
            // The log names the batch a time falls in; Kafka answers the record, with its
            // timestamp, and -1 where every record is older.
            let found = match (query, found) {
                (Some(OffsetQuery::Timestamp(timestamp)), Ok(offset)) => {
                    record_for_time(shard, &asked.name, index, offset.0, timestamp).await
                }
                (_, found) => found.map(|offset| Some((offset.0 as i64, -1))),
            };
            match found {
                Ok(None) => {
                    answer.offset = -1;
                }
                Ok(Some((offset, timestamp))) => {
                    answer.offset = offset;
                    answer.timestamp = timestamp;
                    if head.version >= 4 {
                        answer.leader_epoch = 0;
                    }
                }
                Err(code) => {
                    failed = true;
                    answer.error_code = code;
                    answer.offset = -1;
                }
            }
            topic.partitions.push(answer);
        }
        topics.push(topic);
    }
    let mut response = ListOffsetsResponse::default();
    response.topics = topics;
    let parts = frame::encode(
        ApiKey::ListOffsets,
        head.version,
        head.correlation_id,
        &response,
    )?;
    respond(parts, failed)
}

/// The record a lookup by `timestamp_ms` answers, read from the batch the log found for it
/// (the first whose maxTimestamp is at or after the time; `from` is its base offset, or the log
/// start where retention cut into it): its offset and timestamp, or None where the log found
/// no batch (every record is older).
async fn record_for_time(
    shard: &Rc<Shard>,
    topic: &str,
    partition: u32,
    from: u64,
    timestamp_ms: i64,
) -> Result<Option<(i64, i64)>, Code> {
    let ask = handler::FetchAsk {
        topic: topic.to_string(),
        partition,
        offset: from,
        // A read returns at least the batch holding `from`, however small its budget.
        bytes_max: 1,
    };
    let mut read = handler::fetch_partitions(shard, std::time::Duration::ZERO, 0, 1, &[ask]).await;
    let fetched = read
        .pop()
        .expect("one result per asked partition")
        .map_err(|error| errors::read(&error))?;
    let Some(batch) = fetched.batches.first() else {
        return Ok(None);
    };
    Ok(Some(record_at_or_after(batch, from as i64, timestamp_ms)))
}

/// In a stored batch, the first record at or after `from` whose timestamp is at or after
/// `timestamp_ms`: its offset and timestamp. With log-append time every record has the batch's
/// maxTimestamp. A compressed batch is not decompressed (the broker never does), so it answers
/// its first offset from `from` on with the batch's baseTimestamp: the right record only when
/// the time falls on or before the batch's first record; a client seeking there reads the
/// batch's earlier records too.
fn record_at_or_after(batch: &[u8], from: i64, timestamp_ms: i64) -> (i64, i64) {
    // The log stores only batches whose header parsed; were one not to, the batch's offset
    // is still the answer.
    let Ok(header) = schema::batch::BatchHeader::parse(batch) else {
        return (from, -1);
    };
    let first = (header.base_offset.max(from), header.base_timestamp);
    if header.log_append_time() {
        return (first.0, header.max_timestamp);
    }
    // The records of a compressed batch cannot be walked without decompressing them.
    if !matches!(header.compression(), Ok(schema::batch::Compression::None)) {
        return first;
    }
    let Ok(records) = schema::batch::records(batch) else {
        return first;
    };
    for record in records {
        let Ok(record) = record else { break };
        // A producer's deltas are any varint: saturate rather than overflow.
        let offset = header
            .base_offset
            .saturating_add(i64::from(record.offset_delta));
        let timestamp = header.base_timestamp.saturating_add(record.timestamp_delta);
        if offset >= from && timestamp >= timestamp_ms {
            return (offset, timestamp);
        }
    }
    first
}

/// InitProducerId for an idempotent producer: a new id and epoch from the controller, the same
/// call `client::Producer` makes, so the partitions' producer state checks its sequences. A
/// client that asks to bump its epoch (v3+, after a sequence error) also gets a new id, which
/// Kafka clients accept. Transactional ids are refused: transactions are not implemented.
pub(crate) async fn init_producer_id(shard: &Rc<Shard>, head: Head, mut body: Bytes) -> Outcome {
    let request: InitProducerIdRequest =
        frame::decode(ApiKey::InitProducerId, head.version, &mut body)?;
    let mut response = InitProducerIdResponse::default();
    let (code, id) = if request.transactional_id.is_some() {
        (ResponseError::InvalidRequest.code(), None)
    } else {
        match handler::init_producer_id(shard).await {
            Ok(id) => (NONE, Some(id)),
            Err(error) => {
                tracing::debug!(%error, "no producer id");
                (errors::producer_id(&error), None)
            }
        }
    };
    response.error_code = code;
    let (producer_id, producer_epoch) = id.unwrap_or((-1, -1));
    response.producer_id = ProducerId(producer_id);
    response.producer_epoch = producer_epoch;
    let parts = frame::encode(
        ApiKey::InitProducerId,
        head.version,
        head.correlation_id,
        &response,
    )?;
    respond(parts, code != NONE)
}

#[cfg(test)]
mod tests {
    use schema::batch::{BatchBuilder, set_base_offset};

    use super::record_at_or_after;

    /// A stored batch at offset 100 of records 10 ms apart from time 1,000.
    fn stored_batch() -> Vec<u8> {
        let mut builder = BatchBuilder::new(1_000);
        for i in 0..5 {
            builder.push(Some(b"key"), Some(b"value"), 1_000 + 10 * i, &[]);
        }
        let mut batch = builder.finish();
        set_base_offset(&mut batch, 100);
        batch
    }

    #[test]
    fn a_time_inside_a_batch_answers_its_record() {
        let batch = stored_batch();
        // On a record's time, between two records' times, and before the batch.
        assert_eq!(record_at_or_after(&batch, 100, 1_020), (102, 1_020));
        assert_eq!(record_at_or_after(&batch, 100, 1_021), (103, 1_030));
        assert_eq!(record_at_or_after(&batch, 100, 0), (100, 1_000));
        // Retention cut into the batch: nothing before the log start is answered.
        assert_eq!(record_at_or_after(&batch, 103, 0), (103, 1_030));
    }

    #[test]
    fn log_append_time_answers_the_first_record_with_the_batch_time() {
        let mut batch = stored_batch();
        // Attributes are bytes 21-22 of the header; the CRC is not checked here.
        batch[22] |= 0x08; // attribute bit 3: log-append time
        assert_eq!(record_at_or_after(&batch, 100, 1_021), (100, 1_040));
    }

    #[test]
    fn a_compressed_batch_answers_its_first_record() {
        let mut batch = stored_batch();
        // gzip: its records are not walked (they would read as garbage).
        batch[22] |= 1;
        assert_eq!(record_at_or_after(&batch, 100, 1_021), (100, 1_000));
    }
}
