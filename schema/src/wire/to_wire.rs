//! From owned messages to flatbuffers: [`encode_request`] and [`encode_response`] build a whole
//! message in a caller-owned builder (reset first, so one builder serves every message of a
//! connection).

use flatbuffers::{FlatBufferBuilder, WIPOffset};

use super::owned::*;
use crate::generated::*;

/// Builds the message for a request in `builder` (reset first, so one builder serves every
/// message of a connection) and returns it. Send it after [`frame_prefix`] and before the
/// payload its [`PayloadRange`]s point into.
pub fn encode_request<'b>(
    builder: &'b mut FlatBufferBuilder<'_>,
    correlation_id: u64,
    body: &RequestBodyOwned,
) -> &'b [u8] {
    builder.reset();
    let (body_type, body) = match body {
        RequestBodyOwned::Handshake { version, client_id } => {
            let client_id = optional_string(builder, client_id);
            let args = HandshakeRequestArgs {
                version: ProtocolVersion(*version),
                client_id,
            };
            let table = HandshakeRequest::create(builder, &args);
            (RequestBody::HandshakeRequest, table.as_union_value())
        }
        RequestBodyOwned::Metadata { topics } => {
            let topics: Vec<_> = topics
                .iter()
                .map(|topic| builder.create_string(topic))
                .collect();
            let topics = Some(builder.create_vector(&topics));
            let table = MetadataRequest::create(builder, &MetadataRequestArgs { topics });
            (RequestBody::MetadataRequest, table.as_union_value())
        }
        RequestBodyOwned::CreateTopic {
            name,
            partitions,
            config,
        } => {
            let name = Some(builder.create_string(name));
            let config = Some(encode_config(builder, config));
            let args = CreateTopicRequestArgs {
                name,
                partitions: *partitions,
                config,
            };
            let table = CreateTopicRequest::create(builder, &args);
            (RequestBody::CreateTopicRequest, table.as_union_value())
        }
        RequestBodyOwned::DeleteTopic { name } => {
            let name = Some(builder.create_string(name));
            let table = DeleteTopicRequest::create(builder, &DeleteTopicRequestArgs { name });
            (RequestBody::DeleteTopicRequest, table.as_union_value())
        }
        RequestBodyOwned::Produce {
            acks,
            timeout_ms,
            batches,
        } => {
            let batches: Vec<_> = batches
                .iter()
                .map(|batch| {
                    let topic = Some(builder.create_string(&batch.topic));
                    let args = ProduceBatchArgs {
                        topic,
                        partition: batch.partition,
                        batch: Some(&batch.batch),
                    };
                    ProduceBatch::create(builder, &args)
                })
                .collect();
            let batches = Some(builder.create_vector(&batches));
            let args = ProduceRequestArgs {
                acks: *acks,
                timeout_ms: *timeout_ms,
                batches,
            };
            let table = ProduceRequest::create(builder, &args);
            (RequestBody::ProduceRequest, table.as_union_value())
        }
        RequestBodyOwned::Fetch {
            wait_ms_max,
            bytes_min,
            bytes_max,
            partitions,
        } => {
            let partitions: Vec<_> = partitions
                .iter()
                .map(|entry| {
                    let topic = Some(builder.create_string(&entry.topic));
                    let args = FetchPartitionArgs {
                        topic,
                        partition: entry.partition,
                        offset: entry.offset,
                        bytes_max: entry.bytes_max,
                    };
                    FetchPartition::create(builder, &args)
                })
                .collect();
            let partitions = Some(builder.create_vector(&partitions));
            let args = FetchRequestArgs {
                wait_ms_max: *wait_ms_max,
                bytes_min: *bytes_min,
                bytes_max: *bytes_max,
                partitions,
            };
            let table = FetchRequest::create(builder, &args);
            (RequestBody::FetchRequest, table.as_union_value())
        }
        RequestBodyOwned::ListOffsets { partitions } => {
            let partitions: Vec<_> = partitions
                .iter()
                .map(|entry| {
                    let topic = Some(builder.create_string(&entry.topic));
                    let args = ListOffsetsPartitionArgs {
                        topic,
                        partition: entry.partition,
                        spec: entry.spec,
                        timestamp_ms: entry.timestamp_ms,
                    };
                    ListOffsetsPartition::create(builder, &args)
                })
                .collect();
            let partitions = Some(builder.create_vector(&partitions));
            let args = ListOffsetsRequestArgs { partitions };
            let table = ListOffsetsRequest::create(builder, &args);
            (RequestBody::ListOffsetsRequest, table.as_union_value())
        }
        RequestBodyOwned::InitProducerId => {
            let table = InitProducerIdRequest::create(builder, &InitProducerIdRequestArgs {});
            (RequestBody::InitProducerIdRequest, table.as_union_value())
        }
        RequestBodyOwned::JoinGroup(join) => {
            let group = Some(builder.create_string(&join.group));
            let member_id = optional_string(builder, &join.member_id);
            let client_id = optional_string(builder, &join.client_id);
            let topics = Some(string_vector(builder, &join.topics));
            let args = JoinGroupRequestArgs {
                group,
                member_id,
                client_id,
                topics,
                session_timeout_ms: join.session_timeout_ms,
                rebalance_timeout_ms: join.rebalance_timeout_ms,
                assignor: join.assignor,
            };
            let table = JoinGroupRequest::create(builder, &args);
            (RequestBody::JoinGroupRequest, table.as_union_value())
        }
        RequestBodyOwned::Heartbeat {
            group,
            member_id,
            generation,
        } => {
            let group = Some(builder.create_string(group));
            let member_id = optional_string(builder, member_id);
            let args = HeartbeatRequestArgs {
                group,
                member_id,
                generation: *generation,
            };
            let table = HeartbeatRequest::create(builder, &args);
            (RequestBody::HeartbeatRequest, table.as_union_value())
        }
        RequestBodyOwned::LeaveGroup { group, member_id } => {
            let group = Some(builder.create_string(group));
            let member_id = optional_string(builder, member_id);
            let args = LeaveGroupRequestArgs { group, member_id };
            let table = LeaveGroupRequest::create(builder, &args);
            (RequestBody::LeaveGroupRequest, table.as_union_value())
        }
        RequestBodyOwned::OffsetCommit {
            group,
            member_id,
            generation,
            offsets,
            reset,
        } => {
            let group = Some(builder.create_string(group));
            let member_id = optional_string(builder, member_id);
            let offsets = Some(partition_offsets(builder, offsets));
            let args = OffsetCommitRequestArgs {
                group,
                member_id,
                generation: *generation,
                offsets,
                reset: *reset,
            };
            let table = OffsetCommitRequest::create(builder, &args);
            (RequestBody::OffsetCommitRequest, table.as_union_value())
        }
        RequestBodyOwned::OffsetFetch { group, topics } => {
            let group = Some(builder.create_string(group));
            let topics = Some(string_vector(builder, topics));
            let args = OffsetFetchRequestArgs { group, topics };
            let table = OffsetFetchRequest::create(builder, &args);
            (RequestBody::OffsetFetchRequest, table.as_union_value())
        }
        RequestBodyOwned::ListGroups => {
            let table = ListGroupsRequest::create(builder, &ListGroupsRequestArgs {});
            (RequestBody::ListGroupsRequest, table.as_union_value())
        }
        RequestBodyOwned::DescribeGroup { group } => {
            let group = Some(builder.create_string(group));
            let args = DescribeGroupRequestArgs { group };
            let table = DescribeGroupRequest::create(builder, &args);
            (RequestBody::DescribeGroupRequest, table.as_union_value())
        }
    };
    let args = RequestArgs {
        correlation_id,
        body_type,
        body: Some(body),
    };
    let root = Request::create(builder, &args);
    builder.finish_minimal(root);
    builder.finished_data()
}

/// Builds the message for a response in `builder` (reset first) and returns it, like
/// [`encode_request`].
pub fn encode_response<'b>(
    builder: &'b mut FlatBufferBuilder<'_>,
    response: &ResponseOwned,
) -> &'b [u8] {
    builder.reset();
    let body = response
        .body
        .as_ref()
        .map(|body| encode_response_body(builder, body));
    let message = optional_string(builder, &response.message);
    let args = ResponseArgs {
        correlation_id: response.correlation_id,
        error: response.error,
        message,
        body_type: body.map_or(ResponseBody::NONE, |(body_type, _)| body_type),
        body: body.map(|(_, body)| body),
    };
    let root = Response::create(builder, &args);
    builder.finish_minimal(root);
    builder.finished_data()
}

fn encode_response_body(
    builder: &mut FlatBufferBuilder<'_>,
    body: &ResponseBodyOwned,
) -> (ResponseBody, WIPOffset<flatbuffers::UnionWIPOffset>) {
    match body {
        ResponseBodyOwned::Handshake {
            error,
            version,
            shard_count,
            frame_bytes_max,
            in_flight_max,
        } => {
            let args = HandshakeResponseArgs {
                error: *error,
                version: ProtocolVersion(*version),
                shard_count: *shard_count,
                frame_bytes_max: *frame_bytes_max,
                in_flight_max: *in_flight_max,
            };
            let table = HandshakeResponse::create(builder, &args);
            (ResponseBody::HandshakeResponse, table.as_union_value())
        }
        ResponseBodyOwned::Metadata { error, topics } => {
            let topics: Vec<_> = topics
                .iter()
                .map(|topic| {
                    let name = Some(builder.create_string(&topic.name));
                    let partitions: Vec<_> = topic
                        .partitions
                        .iter()
                        .map(|entry| {
                            let args = PartitionMetadataArgs {
                                partition: entry.partition,
                                shard: entry.shard,
                                error: entry.error,
                                log_start: entry.log_start,
                                log_end: entry.log_end,
                            };
                            PartitionMetadata::create(builder, &args)
                        })
                        .collect();
                    let partitions = Some(builder.create_vector(&partitions));
                    let config = Some(encode_config(builder, &topic.config));
                    let args = TopicMetadataArgs {
                        name,
                        error: topic.error,
                        partitions,
                        config,
                    };
                    TopicMetadata::create(builder, &args)
                })
                .collect();
            let topics = Some(builder.create_vector(&topics));
            let args = MetadataResponseArgs {
                error: *error,
                topics,
            };
            let table = MetadataResponse::create(builder, &args);
            (ResponseBody::MetadataResponse, table.as_union_value())
        }
        ResponseBodyOwned::CreateTopic { error, message } => {
            let message = optional_string(builder, message);
            let args = CreateTopicResponseArgs {
                error: *error,
                message,
            };
            let table = CreateTopicResponse::create(builder, &args);
            (ResponseBody::CreateTopicResponse, table.as_union_value())
        }
        ResponseBodyOwned::DeleteTopic { error, message } => {
            let message = optional_string(builder, message);
            let args = DeleteTopicResponseArgs {
                error: *error,
                message,
            };
            let table = DeleteTopicResponse::create(builder, &args);
            (ResponseBody::DeleteTopicResponse, table.as_union_value())
        }
        ResponseBodyOwned::Produce { error, results } => {
            let results: Vec<_> = results
                .iter()
                .map(|result| {
                    let topic = Some(builder.create_string(&result.topic));
                    let message = optional_string(builder, &result.message);
                    let args = ProduceResultArgs {
                        topic,
                        partition: result.partition,
                        error: result.error,
                        base_offset: result.base_offset,
                        last_offset: result.last_offset,
                        log_start: result.log_start,
                        message,
                    };
                    ProduceResult::create(builder, &args)
                })
                .collect();
            let results = Some(builder.create_vector(&results));
            let args = ProduceResponseArgs {
                error: *error,
                results,
            };
            let table = ProduceResponse::create(builder, &args);
            (ResponseBody::ProduceResponse, table.as_union_value())
        }
        ResponseBodyOwned::Fetch { error, results } => {
            let results: Vec<_> = results
                .iter()
                .map(|result| {
                    let topic = Some(builder.create_string(&result.topic));
                    let message = optional_string(builder, &result.message);
                    let args = FetchResultArgs {
                        topic,
                        partition: result.partition,
                        error: result.error,
                        log_end: result.log_end,
                        log_start: result.log_start,
                        batches: Some(&result.batches),
                        message,
                    };
                    FetchResult::create(builder, &args)
                })
                .collect();
            let results = Some(builder.create_vector(&results));
            let args = FetchResponseArgs {
                error: *error,
                results,
            };
            let table = FetchResponse::create(builder, &args);
            (ResponseBody::FetchResponse, table.as_union_value())
        }
        ResponseBodyOwned::ListOffsets { error, results } => {
            let results: Vec<_> = results
                .iter()
                .map(|result| {
                    let topic = Some(builder.create_string(&result.topic));
                    let args = ListOffsetsResultArgs {
                        topic,
                        partition: result.partition,
                        error: result.error,
                        offset: result.offset,
                    };
                    ListOffsetsResult::create(builder, &args)
                })
                .collect();
            let results = Some(builder.create_vector(&results));
            let args = ListOffsetsResponseArgs {
                error: *error,
                results,
            };
            let table = ListOffsetsResponse::create(builder, &args);
            (ResponseBody::ListOffsetsResponse, table.as_union_value())
        }
        ResponseBodyOwned::InitProducerId {
            error,
            message,
            producer_id,
            producer_epoch,
        } => {
            let message = optional_string(builder, message);
            let args = InitProducerIdResponseArgs {
                error: *error,
                message,
                producer_id: *producer_id,
                producer_epoch: *producer_epoch,
            };
            let table = InitProducerIdResponse::create(builder, &args);
            (ResponseBody::InitProducerIdResponse, table.as_union_value())
        }
        ResponseBodyOwned::JoinGroup {
            error,
            message,
            joined,
        } => {
            let message = optional_string(builder, message);
            let member_id = optional_string(builder, &joined.member_id);
            let assignment = Some(topic_partitions(builder, &joined.assignment));
            let args = JoinGroupResponseArgs {
                error: *error,
                message,
                generation: joined.generation,
                member_id,
                assignment,
                member_count: joined.member_count,
            };
            let table = JoinGroupResponse::create(builder, &args);
            (ResponseBody::JoinGroupResponse, table.as_union_value())
        }
        ResponseBodyOwned::Heartbeat { error, message } => {
            let message = optional_string(builder, message);
            let args = HeartbeatResponseArgs {
                error: *error,
                message,
            };
            let table = HeartbeatResponse::create(builder, &args);
            (ResponseBody::HeartbeatResponse, table.as_union_value())
        }
        ResponseBodyOwned::LeaveGroup { error, message } => {
            let message = optional_string(builder, message);
            let args = LeaveGroupResponseArgs {
                error: *error,
                message,
            };
            let table = LeaveGroupResponse::create(builder, &args);
            (ResponseBody::LeaveGroupResponse, table.as_union_value())
        }
        ResponseBodyOwned::OffsetCommit {
            error,
            message,
            results,
        } => {
            let message = optional_string(builder, message);
            let results: Vec<_> = results
                .iter()
                .map(|result| {
                    let topic = Some(builder.create_string(&result.topic));
                    let message = optional_string(builder, &result.message);
                    let args = OffsetCommitResultArgs {
                        topic,
                        partition: result.partition,
                        error: result.error,
                        message,
                    };
                    OffsetCommitResult::create(builder, &args)
                })
                .collect();
            let results = Some(builder.create_vector(&results));
            let args = OffsetCommitResponseArgs {
                error: *error,
                message,
                results,
            };
            let table = OffsetCommitResponse::create(builder, &args);
            (ResponseBody::OffsetCommitResponse, table.as_union_value())
        }
        ResponseBodyOwned::OffsetFetch {
            error,
            message,
            offsets,
        } => {
            let message = optional_string(builder, message);
            let offsets = Some(partition_offsets(builder, offsets));
            let args = OffsetFetchResponseArgs {
                error: *error,
                message,
                offsets,
            };
            let table = OffsetFetchResponse::create(builder, &args);
            (ResponseBody::OffsetFetchResponse, table.as_union_value())
        }
        ResponseBodyOwned::ListGroups {
            error,
            message,
            groups,
        } => {
            let message = optional_string(builder, message);
            let groups: Vec<_> = groups
                .iter()
                .map(|summary| {
                    let group = Some(builder.create_string(&summary.group));
                    let args = GroupSummaryArgs {
                        group,
                        state: summary.state,
                        member_count: summary.member_count,
                    };
                    GroupSummary::create(builder, &args)
                })
                .collect();
            let groups = Some(builder.create_vector(&groups));
            let args = ListGroupsResponseArgs {
                error: *error,
                message,
                groups,
            };
            let table = ListGroupsResponse::create(builder, &args);
            (ResponseBody::ListGroupsResponse, table.as_union_value())
        }
        ResponseBodyOwned::DescribeGroup {
            error,
            message,
            group,
        } => {
            let message = optional_string(builder, message);
            let members: Vec<_> = group
                .members
                .iter()
                .map(|member| {
                    let member_id = Some(builder.create_string(&member.member_id));
                    let client_id = optional_string(builder, &member.client_id);
                    let topics = Some(string_vector(builder, &member.topics));
                    let assignment = Some(topic_partitions(builder, &member.assignment));
                    let args = GroupMemberArgs {
                        member_id,
                        client_id,
                        topics,
                        assignment,
                    };
                    GroupMember::create(builder, &args)
                })
                .collect();
            let members = Some(builder.create_vector(&members));
            let args = DescribeGroupResponseArgs {
                error: *error,
                message,
                state: group.state,
                generation: group.generation,
                assignor: group.assignor,
                members,
                offsets_retention_ms: group.offsets_retention_ms,
                empty_since_ms: group.empty_since_ms,
                offsets_first_expiry_ms: group.offsets_first_expiry_ms,
                offsets_last_expiry_ms: group.offsets_last_expiry_ms,
            };
            let table = DescribeGroupResponse::create(builder, &args);
            (ResponseBody::DescribeGroupResponse, table.as_union_value())
        }
    }
}

/// An optional string field: absent when empty, which decodes back to empty.
fn optional_string<'f>(
    builder: &mut FlatBufferBuilder<'f>,
    value: &str,
) -> Option<WIPOffset<&'f str>> {
    (!value.is_empty()).then(|| builder.create_string(value))
}

fn encode_config<'f>(
    builder: &mut FlatBufferBuilder<'f>,
    config: &TopicConfigOwned,
) -> WIPOffset<TopicConfig<'f>> {
    let args = TopicConfigArgs {
        retention_ms: config.retention_ms,
        retention_bytes: config.retention_bytes,
        segment_bytes: config.segment_bytes,
    };
    TopicConfig::create(builder, &args)
}

fn string_vector<'f>(
    builder: &mut FlatBufferBuilder<'f>,
    values: &[String],
) -> WIPOffset<flatbuffers::Vector<'f, flatbuffers::ForwardsUOffset<&'f str>>> {
    let values: Vec<_> = values
        .iter()
        .map(|value| builder.create_string(value))
        .collect();
    builder.create_vector(&values)
}

fn topic_partitions<'f>(
    builder: &mut FlatBufferBuilder<'f>,
    values: &[TopicPartitionsOwned],
) -> WIPOffset<flatbuffers::Vector<'f, flatbuffers::ForwardsUOffset<TopicPartitions<'f>>>> {
    let values: Vec<_> = values
        .iter()
        .map(|entry| {
            let topic = Some(builder.create_string(&entry.topic));
            let partitions = Some(builder.create_vector(&entry.partitions));
            TopicPartitions::create(builder, &TopicPartitionsArgs { topic, partitions })
        })
        .collect();
    builder.create_vector(&values)
}

fn partition_offsets<'f>(
    builder: &mut FlatBufferBuilder<'f>,
    values: &[PartitionOffsetOwned],
) -> WIPOffset<flatbuffers::Vector<'f, flatbuffers::ForwardsUOffset<PartitionOffset<'f>>>> {
    let values: Vec<_> = values
        .iter()
        .map(|entry| {
            let topic = Some(builder.create_string(&entry.topic));
            let args = PartitionOffsetArgs {
                topic,
                partition: entry.partition,
                offset: entry.offset,
            };
            PartitionOffset::create(builder, &args)
        })
        .collect();
    builder.create_vector(&values)
}
