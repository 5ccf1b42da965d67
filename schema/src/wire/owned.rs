//! The owned forms of every request and response body: what [`super::request_from_wire`] and
//! [`super::response_from_wire`] return after checking the protocol rules, and what
//! [`super::encode_request`] / [`super::encode_response`] take. Strings and vectors are copied
//! out of the message; batch bytes never are (they stay in the payload, named by
//! [`PayloadRange`]s).

use super::{Acks, Assignor, ErrorCode, GroupState, OffsetSpec, PayloadRange};

/// A topic's settings (schema `TopicConfig`). 0 = the broker default; -1 = unlimited. An absent
/// config decodes as all zeros, the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicConfigOwned {
    /// Delete segments older than this.
    pub retention_ms: i64,
    /// Delete the oldest segments while the partition is larger than this.
    pub retention_bytes: i64,
    /// Roll to a new segment at this size.
    pub segment_bytes: i64,
}

/// One batch of a produce request (schema `ProduceBatch`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProduceBatchOwned {
    /// Topic name (required).
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// One Kafka RecordBatch v2 in the payload (required, inside the payload).
    pub batch: PayloadRange,
}

/// One partition of a fetch request (schema `FetchPartition`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartitionOwned {
    /// Topic name (required).
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// The first offset wanted.
    pub offset: u64,
    /// At most this many bytes from this partition.
    pub bytes_max: u32,
}

/// One partition of a list-offsets request (schema `ListOffsetsPartition`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOffsetsPartitionOwned {
    /// Topic name (required).
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// Which offset (a value the schema names).
    pub spec: OffsetSpec,
    /// For `OffsetSpec::Timestamp`.
    pub timestamp_ms: i64,
}

/// The body of a request, owned. Strings and vectors are copied out of the message; batch bytes
/// are not (they stay in the payload, named by [`PayloadRange`]s).
#[derive(Debug, Clone, PartialEq)]
pub enum RequestBodyOwned {
    /// Schema `HandshakeRequest`.
    Handshake {
        /// The highest protocol version the client speaks (may be newer than ours).
        version: u16,
        /// Free-form client name; empty when absent.
        client_id: String,
    },
    /// Schema `MetadataRequest`.
    Metadata {
        /// Topics to describe; empty = all topics.
        topics: Vec<String>,
    },
    /// Schema `CreateTopicRequest`.
    CreateTopic {
        /// Topic name (required).
        name: String,
        /// Partition count.
        partitions: u32,
        /// Settings; all zeros (broker defaults) when absent.
        config: TopicConfigOwned,
    },
    /// Schema `DeleteTopicRequest`.
    DeleteTopic {
        /// Topic name (required).
        name: String,
    },
    /// Schema `ProduceRequest`.
    Produce {
        /// When to answer (a value the schema names).
        acks: Acks,
        /// How long the broker may take.
        timeout_ms: u32,
        /// The batches, each pointing into the payload.
        batches: Vec<ProduceBatchOwned>,
    },
    /// Schema `FetchRequest`.
    Fetch {
        /// Long-poll: wait up to this long for `bytes_min` bytes.
        wait_ms_max: u32,
        /// Answer once this many bytes are available (or the wait ends).
        bytes_min: u32,
        /// At most this many bytes in all.
        bytes_max: u32,
        /// The partitions to read.
        partitions: Vec<FetchPartitionOwned>,
    },
    /// Schema `ListOffsetsRequest`.
    ListOffsets {
        /// The partitions to look up.
        partitions: Vec<ListOffsetsPartitionOwned>,
    },
    /// Schema `InitProducerIdRequest`.
    InitProducerId,
    /// Schema `JoinGroupRequest`.
    JoinGroup(JoinGroupOwned),
    /// Schema `HeartbeatRequest`.
    Heartbeat {
        /// The group (required).
        group: String,
        /// The member's id.
        member_id: String,
        /// The generation the member believes current.
        generation: i32,
    },
    /// Schema `LeaveGroupRequest`.
    LeaveGroup {
        /// The group (required).
        group: String,
        /// The member's id.
        member_id: String,
    },
    /// Schema `OffsetCommitRequest`.
    OffsetCommit {
        /// The group (required).
        group: String,
        /// The committing member; empty for a commit outside any membership.
        member_id: String,
        /// The member's generation; -1 outside any membership.
        generation: i32,
        /// The next offset to consume, per partition.
        offsets: Vec<PartitionOffsetOwned>,
        /// An operator's reset: may move offsets backwards (only while the group is empty).
        reset: bool,
    },
    /// Schema `OffsetFetchRequest`.
    OffsetFetch {
        /// The group (required).
        group: String,
        /// Topics to report; empty = all the group has offsets for.
        topics: Vec<String>,
    },
    /// Schema `ListGroupsRequest`.
    ListGroups,
    /// Schema `DescribeGroupRequest`.
    DescribeGroup {
        /// The group (required).
        group: String,
    },
}

/// A join request (schema `JoinGroupRequest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroupOwned {
    /// The group (required).
    pub group: String,
    /// Empty on a first join, else the id the coordinator gave.
    pub member_id: String,
    /// Free-form client name, shown by describe.
    pub client_id: String,
    /// Topics the member subscribes to.
    pub topics: Vec<String>,
    /// The member is removed after this long without a request.
    pub session_timeout_ms: u32,
    /// How long a rebalance waits for every member to rejoin.
    pub rebalance_timeout_ms: u32,
    /// The assignment strategy (a value the schema names).
    pub assignor: Assignor,
}

/// Some partitions of one topic (schema `TopicPartitions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPartitionsOwned {
    /// The topic (required).
    pub topic: String,
    /// Partition indexes, ascending.
    pub partitions: Vec<u32>,
}

/// A partition and an offset (schema `PartitionOffset`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffsetOwned {
    /// The topic (required).
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// The offset: for a commit, the next offset to consume.
    pub offset: u64,
}

/// The outcome of committing one partition's offset (schema `OffsetCommitResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitResultOwned {
    /// The topic (required).
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// Error for this partition, or `ErrorCode::None`.
    pub error: ErrorCode,
    /// Detail for the error; empty when absent.
    pub message: String,
}

/// One group in a list (schema `GroupSummary`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummaryOwned {
    /// The group (required).
    pub group: String,
    /// Where it is in its life.
    pub state: GroupState,
    /// Members now.
    pub member_count: u32,
}

/// One member of a described group (schema `GroupMember`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberOwned {
    /// The member's id (required).
    pub member_id: String,
    /// The client name it joined with.
    pub client_id: String,
    /// Topics it subscribes to.
    pub topics: Vec<String>,
    /// Partitions it owns in the current generation.
    pub assignment: Vec<TopicPartitionsOwned>,
}

/// A described group (schema `DescribeGroupResponse`, without its error fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescriptionOwned {
    /// Where it is in its life.
    pub state: GroupState,
    /// The current generation (0 before the first rebalance).
    pub generation: i32,
    /// The assignor its members use.
    pub assignor: Assignor,
    /// Its members, by member id.
    pub members: Vec<GroupMemberOwned>,
    /// The broker's offsets retention in ms; 0: offsets never expire.
    pub offsets_retention_ms: u64,
    /// Since when the group counts as empty (ms since the Unix epoch); None while it has
    /// members or no committed offsets.
    pub empty_since_ms: Option<i64>,
    /// When the first of its committed offsets expires (ms since the Unix epoch); None when
    /// none will.
    pub offsets_first_expiry_ms: Option<i64>,
    /// When the last of its committed offsets expires (ms since the Unix epoch); None when
    /// none will.
    pub offsets_last_expiry_ms: Option<i64>,
}

/// The answer to a join (schema `JoinGroupResponse`, without its error fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedOwned {
    /// The new generation.
    pub generation: i32,
    /// The member's id (the coordinator's choice on a first join).
    pub member_id: String,
    /// The partitions the member owns in this generation.
    pub assignment: Vec<TopicPartitionsOwned>,
    /// Members in this generation.
    pub member_count: u32,
}

/// One partition of a topic's metadata (schema `PartitionMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadataOwned {
    /// Partition index.
    pub partition: u32,
    /// The shard (core) that owns the partition.
    pub shard: u16,
    /// Error for this partition, or `ErrorCode::None`.
    pub error: ErrorCode,
    /// First offset still stored.
    pub log_start: u64,
    /// The next offset to be assigned.
    pub log_end: u64,
}

/// One topic's metadata (schema `TopicMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadataOwned {
    /// Topic name (required).
    pub name: String,
    /// Error for this topic, or `ErrorCode::None`.
    pub error: ErrorCode,
    /// Its partitions.
    pub partitions: Vec<PartitionMetadataOwned>,
    /// Its settings; all zeros when absent.
    pub config: TopicConfigOwned,
}

/// The outcome for one produced batch (schema `ProduceResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceResultOwned {
    /// Topic name (required).
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// Error for this batch, or `ErrorCode::None`.
    pub error: ErrorCode,
    /// Offset assigned to the first record (valid when `error` is None).
    pub base_offset: u64,
    /// Offset assigned to the last record (valid when `error` is None).
    pub last_offset: u64,
    /// First offset still stored in the partition.
    pub log_start: u64,
    /// Detail for the error; empty when absent.
    pub message: String,
}

/// The outcome for one fetched partition (schema `FetchResult`).
#[derive(Debug, Clone, PartialEq)]
pub struct FetchResultOwned {
    /// Topic name (required).
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// Error for this partition, or `ErrorCode::None`.
    pub error: ErrorCode,
    /// The end of the readable log (Kafka's high watermark).
    pub log_end: u64,
    /// First offset still stored.
    pub log_start: u64,
    /// Whole stored batches in the payload; empty (0, 0) when absent.
    pub batches: PayloadRange,
    /// Detail for the error; empty when absent.
    pub message: String,
}

/// The outcome for one list-offsets partition (schema `ListOffsetsResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOffsetsResultOwned {
    /// Topic name (required).
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// Error for this partition, or `ErrorCode::None`.
    pub error: ErrorCode,
    /// The offset found.
    pub offset: u64,
}

/// The body of a response, owned. Error codes are kept as received, including values this
/// version does not name (a newer broker may send them); callers treat any non-`None` code as
/// an error.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseBodyOwned {
    /// Schema `HandshakeResponse`.
    Handshake {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// The protocol version the broker chose.
        version: u16,
        /// Shards (cores) serving this broker.
        shard_count: u16,
        /// The largest frame the broker accepts.
        frame_bytes_max: u32,
        /// Requests the client may have in flight on the connection.
        in_flight_max: u16,
    },
    /// Schema `MetadataResponse`.
    Metadata {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// The topics described.
        topics: Vec<TopicMetadataOwned>,
    },
    /// Schema `CreateTopicResponse`.
    CreateTopic {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// Detail for the error; empty when absent.
        message: String,
    },
    /// Schema `DeleteTopicResponse`.
    DeleteTopic {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// Detail for the error; empty when absent.
        message: String,
    },
    /// Schema `ProduceResponse`.
    Produce {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// One result per batch, in request order.
        results: Vec<ProduceResultOwned>,
    },
    /// Schema `FetchResponse`.
    Fetch {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// One result per partition asked for.
        results: Vec<FetchResultOwned>,
    },
    /// Schema `ListOffsetsResponse`.
    ListOffsets {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// One result per partition asked for.
        results: Vec<ListOffsetsResultOwned>,
    },
    /// Schema `InitProducerIdResponse`.
    InitProducerId {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// Detail for the error; empty when absent.
        message: String,
        /// The new producer id (-1 on error).
        producer_id: i64,
        /// Its epoch (-1 on error).
        producer_epoch: i16,
    },
    /// Schema `JoinGroupResponse`.
    JoinGroup {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// Detail for the error; empty when absent.
        message: String,
        /// The generation joined (meaningful when `error` is None).
        joined: JoinedOwned,
    },
    /// Schema `HeartbeatResponse`.
    Heartbeat {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// Detail for the error; empty when absent.
        message: String,
    },
    /// Schema `LeaveGroupResponse`.
    LeaveGroup {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// Detail for the error; empty when absent.
        message: String,
    },
    /// Schema `OffsetCommitResponse`.
    OffsetCommit {
        /// Error for the request as a whole, or `ErrorCode::None`.
        error: ErrorCode,
        /// Detail for the error; empty when absent.
        message: String,
        /// One result per offset committed, in request order.
        results: Vec<OffsetCommitResultOwned>,
    },
    /// Schema `OffsetFetchResponse`.
    OffsetFetch {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// Detail for the error; empty when absent.
        message: String,
        /// Committed offsets; partitions without one are absent.
        offsets: Vec<PartitionOffsetOwned>,
    },
    /// Schema `ListGroupsResponse`.
    ListGroups {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// Detail for the error; empty when absent.
        message: String,
        /// Every group the broker knows (members or committed offsets).
        groups: Vec<GroupSummaryOwned>,
    },
    /// Schema `DescribeGroupResponse`.
    DescribeGroup {
        /// Error, or `ErrorCode::None`.
        error: ErrorCode,
        /// Detail for the error; empty when absent.
        message: String,
        /// The group (an unknown group describes as empty, generation 0).
        group: GroupDescriptionOwned,
    },
}

/// A whole response, owned (schema `Response`).
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseOwned {
    /// The `correlation_id` of the request answered.
    pub correlation_id: u64,
    /// Set when the request as a whole failed; then `body` may be absent.
    pub error: ErrorCode,
    /// Detail for the error; empty when absent.
    pub message: String,
    /// The answer; always present when `error` is `ErrorCode::None`.
    pub body: Option<ResponseBodyOwned>,
}
