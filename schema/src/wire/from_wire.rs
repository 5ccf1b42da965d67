//! From a verified message to its owned form: the protocol rules the flatbuffers verifier
//! cannot know (a known body, required fields, known enum values, vector lengths within
//! [`DecodeLimits::vector_length_max`], payload ranges inside the payload). Never panics.

use flatbuffers::{ForwardsUOffset, Vector};

use super::owned::*;
use super::{DecodeError, DecodeLimits, payload_slice};
use crate::generated::*;

/// Checks the protocol rules on a verified request and copies its control-plane fields out:
/// a known body, required fields present, known enum values, vectors within the limit, and
/// every [`PayloadRange`] within a payload of `payload_bytes` bytes. Returns the
/// `correlation_id` and the body.
pub fn request_from_wire(
    request: Request<'_>,
    payload_bytes: usize,
    limits: &DecodeLimits,
) -> Result<(u64, RequestBodyOwned), DecodeError> {
    let reader = Reader {
        payload_bytes,
        limits,
    };
    let body = match request.body_type() {
        RequestBody::NONE => None,
        RequestBody::HandshakeRequest => request
            .body_as_handshake_request()
            .map(|body| reader.handshake_request(body)),
        RequestBody::MetadataRequest => request
            .body_as_metadata_request()
            .map(|body| reader.metadata_request(body)),
        RequestBody::CreateTopicRequest => request
            .body_as_create_topic_request()
            .map(|body| reader.create_topic_request(body)),
        RequestBody::DeleteTopicRequest => request
            .body_as_delete_topic_request()
            .map(|body| reader.delete_topic_request(body)),
        RequestBody::ProduceRequest => request
            .body_as_produce_request()
            .map(|body| reader.produce_request(body)),
        RequestBody::FetchRequest => request
            .body_as_fetch_request()
            .map(|body| reader.fetch_request(body)),
        RequestBody::ListOffsetsRequest => request
            .body_as_list_offsets_request()
            .map(|body| reader.list_offsets_request(body)),
        RequestBody::InitProducerIdRequest => request
            .body_as_init_producer_id_request()
            .map(|_| Ok(RequestBodyOwned::InitProducerId)),
        RequestBody::JoinGroupRequest => request
            .body_as_join_group_request()
            .map(|body| reader.join_group_request(body)),
        RequestBody::HeartbeatRequest => request.body_as_heartbeat_request().map(|body| {
            Ok(RequestBodyOwned::Heartbeat {
                group: required(body.group(), "HeartbeatRequest", "group")?,
                member_id: body.member_id().unwrap_or_default().to_string(),
                generation: body.generation(),
            })
        }),
        RequestBody::LeaveGroupRequest => request.body_as_leave_group_request().map(|body| {
            Ok(RequestBodyOwned::LeaveGroup {
                group: required(body.group(), "LeaveGroupRequest", "group")?,
                member_id: body.member_id().unwrap_or_default().to_string(),
            })
        }),
        RequestBody::OffsetCommitRequest => request
            .body_as_offset_commit_request()
            .map(|body| reader.offset_commit_request(body)),
        RequestBody::OffsetFetchRequest => request
            .body_as_offset_fetch_request()
            .map(|body| reader.offset_fetch_request(body)),
        RequestBody::ListGroupsRequest => request
            .body_as_list_groups_request()
            .map(|_| Ok(RequestBodyOwned::ListGroups)),
        RequestBody::DescribeGroupRequest => request.body_as_describe_group_request().map(|body| {
            Ok(RequestBodyOwned::DescribeGroup {
                group: required(body.group(), "DescribeGroupRequest", "group")?,
            })
        }),
        unknown => {
            return Err(DecodeError::BodyUnknown {
                root: "Request",
                body_type: unknown.0,
            });
        }
    };
    match body {
        Some(body) => Ok((request.correlation_id(), body?)),
        None => Err(DecodeError::BodyMissing { root: "Request" }),
    }
}

/// Checks the protocol rules on a verified response and copies it out, like
/// [`request_from_wire`]. The body may be absent only when the response carries an error.
pub fn response_from_wire(
    response: Response<'_>,
    payload_bytes: usize,
    limits: &DecodeLimits,
) -> Result<ResponseOwned, DecodeError> {
    let reader = Reader {
        payload_bytes,
        limits,
    };
    let body = match response.body_type() {
        ResponseBody::NONE => None,
        ResponseBody::HandshakeResponse => response
            .body_as_handshake_response()
            .map(|body| reader.handshake_response(body)),
        ResponseBody::MetadataResponse => response
            .body_as_metadata_response()
            .map(|body| reader.metadata_response(body)),
        ResponseBody::CreateTopicResponse => response
            .body_as_create_topic_response()
            .map(|body| reader.create_topic_response(body)),
        ResponseBody::DeleteTopicResponse => response
            .body_as_delete_topic_response()
            .map(|body| reader.delete_topic_response(body)),
        ResponseBody::ProduceResponse => response
            .body_as_produce_response()
            .map(|body| reader.produce_response(body)),
        ResponseBody::FetchResponse => response
            .body_as_fetch_response()
            .map(|body| reader.fetch_response(body)),
        ResponseBody::ListOffsetsResponse => response
            .body_as_list_offsets_response()
            .map(|body| reader.list_offsets_response(body)),
        ResponseBody::InitProducerIdResponse => {
            response.body_as_init_producer_id_response().map(|body| {
                Ok(ResponseBodyOwned::InitProducerId {
                    error: body.error(),
                    message: message(body.message()),
                    producer_id: body.producer_id(),
                    producer_epoch: body.producer_epoch(),
                })
            })
        }
        ResponseBody::JoinGroupResponse => response
            .body_as_join_group_response()
            .map(|body| reader.join_group_response(body)),
        ResponseBody::HeartbeatResponse => response.body_as_heartbeat_response().map(|body| {
            Ok(ResponseBodyOwned::Heartbeat {
                error: body.error(),
                message: message(body.message()),
            })
        }),
        ResponseBody::LeaveGroupResponse => response.body_as_leave_group_response().map(|body| {
            Ok(ResponseBodyOwned::LeaveGroup {
                error: body.error(),
                message: message(body.message()),
            })
        }),
        ResponseBody::OffsetCommitResponse => response
            .body_as_offset_commit_response()
            .map(|body| reader.offset_commit_response(body)),
        ResponseBody::OffsetFetchResponse => response
            .body_as_offset_fetch_response()
            .map(|body| reader.offset_fetch_response(body)),
        ResponseBody::ListGroupsResponse => response
            .body_as_list_groups_response()
            .map(|body| reader.list_groups_response(body)),
        ResponseBody::DescribeGroupResponse => response
            .body_as_describe_group_response()
            .map(|body| reader.describe_group_response(body)),
        unknown => {
            return Err(DecodeError::BodyUnknown {
                root: "Response",
                body_type: unknown.0,
            });
        }
    };
    let body = body.transpose()?;
    if body.is_none() && response.error() == ErrorCode::None {
        return Err(DecodeError::BodyMissing { root: "Response" });
    }
    Ok(ResponseOwned {
        correlation_id: response.correlation_id(),
        error: response.error(),
        message: response.message().unwrap_or_default().to_string(),
        body,
    })
}

/// What the conversions from a verified message need besides the message.
struct Reader<'l> {
    payload_bytes: usize,
    limits: &'l DecodeLimits,
}

fn required(
    value: Option<&str>,
    table: &'static str,
    field: &'static str,
) -> Result<String, DecodeError> {
    value
        .map(str::to_string)
        .ok_or(DecodeError::FieldMissing { table, field })
}

/// An optional free-text field (absent = empty).
fn message(value: Option<&str>) -> String {
    value.unwrap_or_default().to_string()
}

fn assignor_known(
    assignor: Assignor,
    table: &'static str,
    field: &'static str,
) -> Result<Assignor, DecodeError> {
    match assignor.variant_name() {
        Some(_) => Ok(assignor),
        None => Err(DecodeError::EnumUnknown {
            table,
            field,
            value: i64::from(assignor.0),
        }),
    }
}

fn group_state_known(state: GroupState, table: &'static str) -> Result<GroupState, DecodeError> {
    match state.variant_name() {
        Some(_) => Ok(state),
        None => Err(DecodeError::EnumUnknown {
            table,
            field: "state",
            value: i64::from(state.0),
        }),
    }
}

fn config_owned(config: Option<TopicConfig<'_>>) -> TopicConfigOwned {
    config.map_or_else(TopicConfigOwned::default, |config| TopicConfigOwned {
        retention_ms: config.retention_ms(),
        retention_bytes: config.retention_bytes(),
        segment_bytes: config.segment_bytes(),
    })
}

impl Reader<'_> {
    /// Converts each entry of an optional vector (absent = empty) after checking its length.
    fn vector<'a, T, U>(
        &self,
        vector: Option<Vector<'a, ForwardsUOffset<T>>>,
        table: &'static str,
        field: &'static str,
        mut convert: impl FnMut(T::Inner) -> Result<U, DecodeError>,
    ) -> Result<Vec<U>, DecodeError>
    where
        T: flatbuffers::Follow<'a> + 'a,
    {
        let Some(vector) = vector else {
            return Ok(Vec::new());
        };
        if vector.len() > self.limits.vector_length_max {
            return Err(DecodeError::VectorTooLong {
                table,
                field,
                length: vector.len(),
                length_max: self.limits.vector_length_max,
            });
        }
        vector.iter().map(&mut convert).collect()
    }

    fn range(&self, range: &PayloadRange) -> Result<PayloadRange, DecodeError> {
        payload_slice(range, self.payload_bytes)?;
        Ok(*range)
    }

    fn handshake_request(
        &self,
        body: HandshakeRequest<'_>,
    ) -> Result<RequestBodyOwned, DecodeError> {
        Ok(RequestBodyOwned::Handshake {
            version: body.version().0,
            client_id: body.client_id().unwrap_or_default().to_string(),
        })
    }

    fn metadata_request(&self, body: MetadataRequest<'_>) -> Result<RequestBodyOwned, DecodeError> {
        let topics = self.vector(body.topics(), "MetadataRequest", "topics", |topic| {
            Ok(topic.to_string())
        })?;
        Ok(RequestBodyOwned::Metadata { topics })
    }

    fn create_topic_request(
        &self,
        body: CreateTopicRequest<'_>,
    ) -> Result<RequestBodyOwned, DecodeError> {
        Ok(RequestBodyOwned::CreateTopic {
            name: required(body.name(), "CreateTopicRequest", "name")?,
            partitions: body.partitions(),
            config: config_owned(body.config()),
        })
    }

    fn delete_topic_request(
        &self,
        body: DeleteTopicRequest<'_>,
    ) -> Result<RequestBodyOwned, DecodeError> {
        Ok(RequestBodyOwned::DeleteTopic {
            name: required(body.name(), "DeleteTopicRequest", "name")?,
        })
    }

    fn produce_request(&self, body: ProduceRequest<'_>) -> Result<RequestBodyOwned, DecodeError> {
        let acks = body.acks();
        if acks.variant_name().is_none() {
            return Err(DecodeError::EnumUnknown {
                table: "ProduceRequest",
                field: "acks",
                value: i64::from(acks.0),
            });
        }
        let batches = self.vector(body.batches(), "ProduceRequest", "batches", |batch| {
            let range = batch.batch().ok_or(DecodeError::FieldMissing {
                table: "ProduceBatch",
                field: "batch",
            })?;
            Ok(ProduceBatchOwned {
                topic: required(batch.topic(), "ProduceBatch", "topic")?,
                partition: batch.partition(),
                batch: self.range(range)?,
            })
        })?;
        Ok(RequestBodyOwned::Produce {
            acks,
            timeout_ms: body.timeout_ms(),
            batches,
        })
    }

    fn fetch_request(&self, body: FetchRequest<'_>) -> Result<RequestBodyOwned, DecodeError> {
        let partitions = self.vector(body.partitions(), "FetchRequest", "partitions", |entry| {
            Ok(FetchPartitionOwned {
                topic: required(entry.topic(), "FetchPartition", "topic")?,
                partition: entry.partition(),
                offset: entry.offset(),
                bytes_max: entry.bytes_max(),
            })
        })?;
        Ok(RequestBodyOwned::Fetch {
            wait_ms_max: body.wait_ms_max(),
            bytes_min: body.bytes_min(),
            bytes_max: body.bytes_max(),
            partitions,
        })
    }

    fn list_offsets_request(
        &self,
        body: ListOffsetsRequest<'_>,
    ) -> Result<RequestBodyOwned, DecodeError> {
        let partitions = self.vector(
            body.partitions(),
            "ListOffsetsRequest",
            "partitions",
            |entry| {
                let spec = entry.spec();
                if spec.variant_name().is_none() {
                    return Err(DecodeError::EnumUnknown {
                        table: "ListOffsetsPartition",
                        field: "spec",
                        value: i64::from(spec.0),
                    });
                }
                Ok(ListOffsetsPartitionOwned {
                    topic: required(entry.topic(), "ListOffsetsPartition", "topic")?,
                    partition: entry.partition(),
                    spec,
                    timestamp_ms: entry.timestamp_ms(),
                })
            },
        )?;
        Ok(RequestBodyOwned::ListOffsets { partitions })
    }

    fn handshake_response(
        &self,
        body: HandshakeResponse<'_>,
    ) -> Result<ResponseBodyOwned, DecodeError> {
        Ok(ResponseBodyOwned::Handshake {
            error: body.error(),
            version: body.version().0,
            shard_count: body.shard_count(),
            frame_bytes_max: body.frame_bytes_max(),
            in_flight_max: body.in_flight_max(),
        })
    }

    fn metadata_response(
        &self,
        body: MetadataResponse<'_>,
    ) -> Result<ResponseBodyOwned, DecodeError> {
        let topics = self.vector(body.topics(), "MetadataResponse", "topics", |topic| {
            let partitions =
                self.vector(topic.partitions(), "TopicMetadata", "partitions", |entry| {
                    Ok(PartitionMetadataOwned {
                        partition: entry.partition(),
                        shard: entry.shard(),
                        error: entry.error(),
                        log_start: entry.log_start(),
                        log_end: entry.log_end(),
                    })
                })?;
            Ok(TopicMetadataOwned {
                name: required(topic.name(), "TopicMetadata", "name")?,
                error: topic.error(),
                partitions,
                config: config_owned(topic.config()),
            })
        })?;
        Ok(ResponseBodyOwned::Metadata {
            error: body.error(),
            topics,
        })
    }

    fn create_topic_response(
        &self,
        body: CreateTopicResponse<'_>,
    ) -> Result<ResponseBodyOwned, DecodeError> {
        Ok(ResponseBodyOwned::CreateTopic {
            error: body.error(),
            message: body.message().unwrap_or_default().to_string(),
        })
    }

    fn delete_topic_response(
        &self,
        body: DeleteTopicResponse<'_>,
    ) -> Result<ResponseBodyOwned, DecodeError> {
        Ok(ResponseBodyOwned::DeleteTopic {
            error: body.error(),
            message: body.message().unwrap_or_default().to_string(),
        })
    }

    fn produce_response(
        &self,
        body: ProduceResponse<'_>,
    ) -> Result<ResponseBodyOwned, DecodeError> {
        let results = self.vector(body.results(), "ProduceResponse", "results", |result| {
            Ok(ProduceResultOwned {
                topic: required(result.topic(), "ProduceResult", "topic")?,
                partition: result.partition(),
                error: result.error(),
                base_offset: result.base_offset(),
                last_offset: result.last_offset(),
                log_start: result.log_start(),
                message: result.message().unwrap_or_default().to_string(),
            })
        })?;
        Ok(ResponseBodyOwned::Produce {
            error: body.error(),
            results,
        })
    }

    fn fetch_response(&self, body: FetchResponse<'_>) -> Result<ResponseBodyOwned, DecodeError> {
        let results = self.vector(body.results(), "FetchResponse", "results", |result| {
            let batches = match result.batches() {
                Some(range) => self.range(range)?,
                None => PayloadRange::new(0, 0),
            };
            Ok(FetchResultOwned {
                topic: required(result.topic(), "FetchResult", "topic")?,
                partition: result.partition(),
                error: result.error(),
                log_end: result.log_end(),
                log_start: result.log_start(),
                batches,
                message: result.message().unwrap_or_default().to_string(),
            })
        })?;
        Ok(ResponseBodyOwned::Fetch {
            error: body.error(),
            results,
        })
    }

    fn list_offsets_response(
        &self,
        body: ListOffsetsResponse<'_>,
    ) -> Result<ResponseBodyOwned, DecodeError> {
        let results = self.vector(body.results(), "ListOffsetsResponse", "results", |result| {
            Ok(ListOffsetsResultOwned {
                topic: required(result.topic(), "ListOffsetsResult", "topic")?,
                partition: result.partition(),
                error: result.error(),
                offset: result.offset(),
            })
        })?;
        Ok(ResponseBodyOwned::ListOffsets {
            error: body.error(),
            results,
        })
    }

    /// Copies a vector of u32s (absent = empty) after checking its length.
    fn scalars(
        &self,
        vector: Option<Vector<'_, u32>>,
        table: &'static str,
        field: &'static str,
    ) -> Result<Vec<u32>, DecodeError> {
        let Some(vector) = vector else {
            return Ok(Vec::new());
        };
        if vector.len() > self.limits.vector_length_max {
            return Err(DecodeError::VectorTooLong {
                table,
                field,
                length: vector.len(),
                length_max: self.limits.vector_length_max,
            });
        }
        Ok(vector.iter().collect())
    }

    fn strings(
        &self,
        vector: Option<Vector<'_, ForwardsUOffset<&str>>>,
        table: &'static str,
        field: &'static str,
    ) -> Result<Vec<String>, DecodeError> {
        self.vector(vector, table, field, |value| Ok(value.to_string()))
    }

    fn topic_partitions(
        &self,
        vector: Option<Vector<'_, ForwardsUOffset<crate::generated::TopicPartitions<'_>>>>,
        table: &'static str,
        field: &'static str,
    ) -> Result<Vec<TopicPartitionsOwned>, DecodeError> {
        self.vector(vector, table, field, |entry| {
            Ok(TopicPartitionsOwned {
                topic: required(entry.topic(), "TopicPartitions", "topic")?,
                partitions: self.scalars(entry.partitions(), "TopicPartitions", "partitions")?,
            })
        })
    }

    fn partition_offsets(
        &self,
        vector: Option<Vector<'_, ForwardsUOffset<PartitionOffset<'_>>>>,
        table: &'static str,
        field: &'static str,
    ) -> Result<Vec<PartitionOffsetOwned>, DecodeError> {
        self.vector(vector, table, field, |entry| {
            Ok(PartitionOffsetOwned {
                topic: required(entry.topic(), "PartitionOffset", "topic")?,
                partition: entry.partition(),
                offset: entry.offset(),
            })
        })
    }

    fn join_group_request(
        &self,
        body: JoinGroupRequest<'_>,
    ) -> Result<RequestBodyOwned, DecodeError> {
        Ok(RequestBodyOwned::JoinGroup(JoinGroupOwned {
            group: required(body.group(), "JoinGroupRequest", "group")?,
            member_id: message(body.member_id()),
            client_id: message(body.client_id()),
            topics: self.strings(body.topics(), "JoinGroupRequest", "topics")?,
            session_timeout_ms: body.session_timeout_ms(),
            rebalance_timeout_ms: body.rebalance_timeout_ms(),
            assignor: assignor_known(body.assignor(), "JoinGroupRequest", "assignor")?,
        }))
    }

    fn offset_commit_request(
        &self,
        body: OffsetCommitRequest<'_>,
    ) -> Result<RequestBodyOwned, DecodeError> {
        Ok(RequestBodyOwned::OffsetCommit {
            group: required(body.group(), "OffsetCommitRequest", "group")?,
            member_id: message(body.member_id()),
            generation: body.generation(),
            offsets: self.partition_offsets(body.offsets(), "OffsetCommitRequest", "offsets")?,
            reset: body.reset(),
        })
    }

    fn offset_fetch_request(
        &self,
        body: OffsetFetchRequest<'_>,
    ) -> Result<RequestBodyOwned, DecodeError> {
        Ok(RequestBodyOwned::OffsetFetch {
            group: required(body.group(), "OffsetFetchRequest", "group")?,
            topics: self.strings(body.topics(), "OffsetFetchRequest", "topics")?,
        })
    }

    fn join_group_response(
        &self,
        body: JoinGroupResponse<'_>,
    ) -> Result<ResponseBodyOwned, DecodeError> {
        Ok(ResponseBodyOwned::JoinGroup {
            error: body.error(),
            message: message(body.message()),
            joined: JoinedOwned {
                generation: body.generation(),
                member_id: message(body.member_id()),
                assignment: self.topic_partitions(
                    body.assignment(),
                    "JoinGroupResponse",
                    "assignment",
                )?,
                member_count: body.member_count(),
            },
        })
    }

    fn offset_commit_response(
        &self,
        body: OffsetCommitResponse<'_>,
    ) -> Result<ResponseBodyOwned, DecodeError> {
        let results = self.vector(
            body.results(),
            "OffsetCommitResponse",
            "results",
            |result| {
                Ok(OffsetCommitResultOwned {
                    topic: required(result.topic(), "OffsetCommitResult", "topic")?,
                    partition: result.partition(),
                    error: result.error(),
                    message: message(result.message()),
                })
            },
        )?;
        Ok(ResponseBodyOwned::OffsetCommit {
            error: body.error(),
            message: message(body.message()),
            results,
        })
    }

    fn offset_fetch_response(
        &self,
        body: OffsetFetchResponse<'_>,
    ) -> Result<ResponseBodyOwned, DecodeError> {
        Ok(ResponseBodyOwned::OffsetFetch {
            error: body.error(),
            message: message(body.message()),
            offsets: self.partition_offsets(body.offsets(), "OffsetFetchResponse", "offsets")?,
        })
    }

    fn list_groups_response(
        &self,
        body: ListGroupsResponse<'_>,
    ) -> Result<ResponseBodyOwned, DecodeError> {
        let groups = self.vector(body.groups(), "ListGroupsResponse", "groups", |entry| {
            Ok(GroupSummaryOwned {
                group: required(entry.group(), "GroupSummary", "group")?,
                state: group_state_known(entry.state(), "GroupSummary")?,
                member_count: entry.member_count(),
            })
        })?;
        Ok(ResponseBodyOwned::ListGroups {
            error: body.error(),
            message: message(body.message()),
            groups,
        })
    }

    fn describe_group_response(
        &self,
        body: DescribeGroupResponse<'_>,
    ) -> Result<ResponseBodyOwned, DecodeError> {
        let members = self.vector(
            body.members(),
            "DescribeGroupResponse",
            "members",
            |member| {
                Ok(GroupMemberOwned {
                    member_id: required(member.member_id(), "GroupMember", "member_id")?,
                    client_id: message(member.client_id()),
                    topics: self.strings(member.topics(), "GroupMember", "topics")?,
                    assignment: self.topic_partitions(
                        member.assignment(),
                        "GroupMember",
                        "assignment",
                    )?,
                })
            },
        )?;
        Ok(ResponseBodyOwned::DescribeGroup {
            error: body.error(),
            message: message(body.message()),
            group: GroupDescriptionOwned {
                state: group_state_known(body.state(), "DescribeGroupResponse")?,
                generation: body.generation(),
                assignor: assignor_known(body.assignor(), "DescribeGroupResponse", "assignor")?,
                members,
                offsets_retention_ms: body.offsets_retention_ms(),
                empty_since_ms: body.empty_since_ms(),
                offsets_first_expiry_ms: body.offsets_first_expiry_ms(),
                offsets_last_expiry_ms: body.offsets_last_expiry_ms(),
            },
        })
    }
}
