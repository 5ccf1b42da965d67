//! Helpers shared by the wire tests: whole frames built and read back the way `net` will, a
//! fixed sample of every request and response variant with edge values, and seeded random
//! messages (on `common::Rng`, so a failure replays from its printed seed).
//!
//! Each test binary uses a different subset of these, hence the dead-code allowance below.
#![allow(dead_code)]

use std::mem::discriminant;

use flatbuffers::FlatBufferBuilder;
use schema::wire::{
    self, Acks, Assignor, DecodeError, DecodeLimits, ErrorCode, FRAME_BYTES_MAX_DEFAULT,
    FRAME_PREFIX_BYTES, FetchPartitionOwned, FetchResultOwned, FrameHeader, GroupDescriptionOwned,
    GroupMemberOwned, GroupState, GroupSummaryOwned, JoinGroupOwned, JoinedOwned,
    ListOffsetsPartitionOwned, ListOffsetsResultOwned, OffsetCommitResultOwned, OffsetSpec,
    PartitionMetadataOwned, PartitionOffsetOwned, PayloadRange, ProduceBatchOwned,
    ProduceResultOwned, RequestBodyOwned, ResponseBodyOwned, ResponseOwned, TopicConfigOwned,
    TopicMetadataOwned, TopicPartitionsOwned,
};

use crate::common::{Rng, bytes};

/// A request body with the payload its ranges point into.
pub type RequestSample = (RequestBodyOwned, Vec<u8>);
/// A response with the payload its ranges point into.
pub type ResponseSample = (ResponseOwned, Vec<u8>);

/// The whole frame for `message` and `payload`: prefix, message, payload.
pub fn frame(message: &[u8], payload: &[u8]) -> Vec<u8> {
    let prefix = wire::frame_prefix(message.len(), payload.len(), FRAME_BYTES_MAX_DEFAULT)
        .expect("sample frames fit the default limit");
    let mut frame = prefix.to_vec();
    frame.extend_from_slice(message);
    frame.extend_from_slice(payload);
    frame
}

/// Splits a whole frame the way a reader does: parse the prefix first, then take exactly the
/// body it announces (which must be what is left).
pub fn split_frame(frame: &[u8]) -> (FrameHeader, &[u8], &[u8]) {
    let prefix: &[u8; FRAME_PREFIX_BYTES] = frame[..FRAME_PREFIX_BYTES]
        .try_into()
        .expect("8-byte prefix");
    let header = FrameHeader::parse(prefix, FRAME_BYTES_MAX_DEFAULT).expect("prefix parses");
    let body = &frame[FRAME_PREFIX_BYTES..];
    assert_eq!(body.len(), header.body_bytes(), "{header:?}");
    (
        header,
        &body[header.message_range()],
        &body[header.payload_range()],
    )
}

/// Decodes a request message all the way to owned, as the broker will.
pub fn read_request(
    message: &[u8],
    payload_bytes: usize,
    limits: &DecodeLimits,
) -> Result<(u64, RequestBodyOwned), DecodeError> {
    let request = wire::decode_request(message, limits)?;
    wire::request_from_wire(request, payload_bytes, limits)
}

/// Decodes a response message all the way to owned, as a client will.
pub fn read_response(
    message: &[u8],
    payload_bytes: usize,
    limits: &DecodeLimits,
) -> Result<ResponseOwned, DecodeError> {
    let response = wire::decode_response(message, limits)?;
    wire::response_from_wire(response, payload_bytes, limits)
}

/// The encoded message of a request.
pub fn request_message(correlation_id: u64, body: &RequestBodyOwned) -> Vec<u8> {
    let mut builder = FlatBufferBuilder::new();
    wire::encode_request(&mut builder, correlation_id, body).to_vec()
}

/// The encoded message of a response.
pub fn response_message(response: &ResponseOwned) -> Vec<u8> {
    let mut builder = FlatBufferBuilder::new();
    wire::encode_response(&mut builder, response).to_vec()
}

/// Every PayloadRange in a request body.
pub fn request_ranges(body: &RequestBodyOwned) -> Vec<PayloadRange> {
    match body {
        RequestBodyOwned::Produce { batches, .. } => {
            batches.iter().map(|batch| batch.batch).collect()
        }
        _ => Vec::new(),
    }
}

/// Every PayloadRange in a response.
pub fn response_ranges(response: &ResponseOwned) -> Vec<PayloadRange> {
    match &response.body {
        Some(ResponseBodyOwned::Fetch { results, .. }) => {
            results.iter().map(|result| result.batches).collect()
        }
        _ => Vec::new(),
    }
}

/// How many request body variants exist; the samples must cover them all.
pub const REQUEST_VARIANTS: usize = 15;
/// How many response body variants exist.
pub const RESPONSE_VARIANTS: usize = 15;

/// The number of distinct variants among `bodies`.
pub fn variant_count<'a, T: 'a>(bodies: impl Iterator<Item = &'a T>) -> usize {
    let mut seen = Vec::new();
    for body in bodies {
        let kind = discriminant(body);
        if !seen.contains(&kind) {
            seen.push(kind);
        }
    }
    seen.len()
}

fn payload(length: usize) -> Vec<u8> {
    (0..length).map(|index| (index * 7 + 3) as u8).collect()
}

/// A fixed sample: every request variant, with extreme and empty values.
pub fn sample_requests() -> Vec<RequestSample> {
    vec![
        (
            RequestBodyOwned::Handshake {
                version: wire::PROTOCOL_VERSION,
                client_id: "loadgen-7".to_string(),
            },
            Vec::new(),
        ),
        (
            // A newer client, no client id.
            RequestBodyOwned::Handshake {
                version: u16::MAX,
                client_id: String::new(),
            },
            Vec::new(),
        ),
        (
            RequestBodyOwned::Metadata {
                topics: vec!["orders".to_string(), "Zahlungen-ü".to_string()],
            },
            Vec::new(),
        ),
        (
            RequestBodyOwned::Metadata { topics: Vec::new() },
            Vec::new(),
        ),
        (
            RequestBodyOwned::CreateTopic {
                name: "orders".to_string(),
                partitions: 12,
                config: TopicConfigOwned {
                    retention_ms: 7 * 24 * 3_600_000,
                    retention_bytes: -1,
                    segment_bytes: 1 << 30,
                },
            },
            Vec::new(),
        ),
        (
            RequestBodyOwned::CreateTopic {
                name: String::new(),
                partitions: u32::MAX,
                config: TopicConfigOwned::default(),
            },
            Vec::new(),
        ),
        (
            RequestBodyOwned::DeleteTopic {
                name: "orders".to_string(),
            },
            Vec::new(),
        ),
        (
            RequestBodyOwned::Produce {
                acks: Acks::Durable,
                timeout_ms: 30_000,
                batches: vec![
                    ProduceBatchOwned {
                        topic: "orders".to_string(),
                        partition: 0,
                        batch: PayloadRange::new(0, 70),
                    },
                    ProduceBatchOwned {
                        topic: "orders".to_string(),
                        partition: 3,
                        batch: PayloadRange::new(70, 130),
                    },
                    // Empty, at the very end of the payload: in bounds.
                    ProduceBatchOwned {
                        topic: "audit".to_string(),
                        partition: u32::MAX,
                        batch: PayloadRange::new(200, 0),
                    },
                ],
            },
            payload(200),
        ),
        (
            RequestBodyOwned::Produce {
                acks: Acks::None,
                timeout_ms: 0,
                batches: Vec::new(),
            },
            Vec::new(),
        ),
        (
            RequestBodyOwned::Produce {
                acks: Acks::Written,
                timeout_ms: u32::MAX,
                batches: vec![ProduceBatchOwned {
                    topic: "t".to_string(),
                    partition: 1,
                    batch: PayloadRange::new(0, 61),
                }],
            },
            payload(61),
        ),
        (
            RequestBodyOwned::Fetch {
                wait_ms_max: 500,
                bytes_min: 1,
                bytes_max: 1 << 20,
                partitions: vec![
                    FetchPartitionOwned {
                        topic: "orders".to_string(),
                        partition: 0,
                        offset: 0,
                        bytes_max: 1 << 20,
                    },
                    FetchPartitionOwned {
                        topic: "orders".to_string(),
                        partition: 1,
                        offset: u64::MAX,
                        bytes_max: 0,
                    },
                ],
            },
            Vec::new(),
        ),
        (
            RequestBodyOwned::ListOffsets {
                partitions: vec![
                    ListOffsetsPartitionOwned {
                        topic: "orders".to_string(),
                        partition: 0,
                        spec: OffsetSpec::Earliest,
                        timestamp_ms: 0,
                    },
                    ListOffsetsPartitionOwned {
                        topic: "orders".to_string(),
                        partition: 0,
                        spec: OffsetSpec::Latest,
                        timestamp_ms: 0,
                    },
                    ListOffsetsPartitionOwned {
                        topic: "orders".to_string(),
                        partition: 2,
                        spec: OffsetSpec::Timestamp,
                        timestamp_ms: i64::MIN,
                    },
                ],
            },
            Vec::new(),
        ),
        (RequestBodyOwned::InitProducerId, Vec::new()),
        (
            RequestBodyOwned::JoinGroup(JoinGroupOwned {
                group: "billing".to_string(),
                member_id: String::new(),
                client_id: "consumer-ü".to_string(),
                topics: vec!["orders".to_string(), "refunds".to_string()],
                session_timeout_ms: u32::MAX,
                rebalance_timeout_ms: 0,
                assignor: Assignor::RoundRobin,
            }),
            Vec::new(),
        ),
        (
            RequestBodyOwned::Heartbeat {
                group: "billing".to_string(),
                member_id: "m-1".to_string(),
                generation: i32::MAX,
            },
            Vec::new(),
        ),
        (
            RequestBodyOwned::LeaveGroup {
                group: String::new(),
                member_id: String::new(),
            },
            Vec::new(),
        ),
        (
            RequestBodyOwned::OffsetCommit {
                group: "billing".to_string(),
                member_id: String::new(),
                generation: -1,
                offsets: vec![
                    PartitionOffsetOwned {
                        topic: "orders".to_string(),
                        partition: 0,
                        offset: 0,
                    },
                    PartitionOffsetOwned {
                        topic: "orders".to_string(),
                        partition: u32::MAX,
                        offset: u64::MAX,
                    },
                ],
                reset: true,
            },
            Vec::new(),
        ),
        (
            RequestBodyOwned::OffsetFetch {
                group: "billing".to_string(),
                topics: Vec::new(),
            },
            Vec::new(),
        ),
        (RequestBodyOwned::ListGroups, Vec::new()),
        (
            RequestBodyOwned::DescribeGroup {
                group: "billing".to_string(),
            },
            Vec::new(),
        ),
    ]
}

/// A fixed sample: every response variant, a whole-request error without a body, and an error
/// code this version does not name.
pub fn sample_responses() -> Vec<ResponseSample> {
    let ok = |correlation_id: u64, body: ResponseBodyOwned| ResponseOwned {
        correlation_id,
        error: ErrorCode::None,
        message: String::new(),
        body: Some(body),
    };
    vec![
        (
            ok(
                0,
                ResponseBodyOwned::Handshake {
                    error: ErrorCode::None,
                    version: wire::PROTOCOL_VERSION,
                    shard_count: 16,
                    frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
                    in_flight_max: 1_024,
                },
            ),
            Vec::new(),
        ),
        (
            ok(
                1,
                ResponseBodyOwned::Metadata {
                    error: ErrorCode::None,
                    topics: vec![
                        TopicMetadataOwned {
                            name: "orders".to_string(),
                            error: ErrorCode::None,
                            partitions: vec![
                                PartitionMetadataOwned {
                                    partition: 0,
                                    shard: 0,
                                    error: ErrorCode::None,
                                    log_start: 0,
                                    log_end: 1_000,
                                },
                                PartitionMetadataOwned {
                                    partition: 1,
                                    shard: 15,
                                    error: ErrorCode::StorageFailed,
                                    log_start: u64::MAX - 1,
                                    log_end: u64::MAX,
                                },
                            ],
                            config: TopicConfigOwned {
                                retention_ms: -1,
                                retention_bytes: i64::MAX,
                                segment_bytes: 0,
                            },
                        },
                        TopicMetadataOwned {
                            name: "missing".to_string(),
                            error: ErrorCode::UnknownTopic,
                            partitions: Vec::new(),
                            config: TopicConfigOwned::default(),
                        },
                    ],
                },
            ),
            Vec::new(),
        ),
        (
            ok(
                2,
                ResponseBodyOwned::CreateTopic {
                    error: ErrorCode::TopicAlreadyExists,
                    message: "topic orders exists".to_string(),
                },
            ),
            Vec::new(),
        ),
        (
            ok(
                3,
                ResponseBodyOwned::DeleteTopic {
                    error: ErrorCode::None,
                    message: String::new(),
                },
            ),
            Vec::new(),
        ),
        (
            ok(
                4,
                ResponseBodyOwned::Produce {
                    error: ErrorCode::None,
                    results: vec![
                        ProduceResultOwned {
                            topic: "orders".to_string(),
                            partition: 0,
                            error: ErrorCode::None,
                            base_offset: 100,
                            last_offset: 109,
                            log_start: 0,
                            message: String::new(),
                        },
                        ProduceResultOwned {
                            topic: "orders".to_string(),
                            partition: 3,
                            error: ErrorCode::InvalidBatch,
                            base_offset: 0,
                            last_offset: 0,
                            log_start: 0,
                            message: "crc mismatch".to_string(),
                        },
                    ],
                },
            ),
            Vec::new(),
        ),
        (
            ok(
                5,
                ResponseBodyOwned::Fetch {
                    error: ErrorCode::None,
                    results: vec![
                        FetchResultOwned {
                            topic: "orders".to_string(),
                            partition: 0,
                            error: ErrorCode::None,
                            log_end: 1_000,
                            log_start: 0,
                            batches: PayloadRange::new(0, 140),
                            message: String::new(),
                        },
                        FetchResultOwned {
                            topic: "orders".to_string(),
                            partition: 9,
                            error: ErrorCode::UnknownPartition,
                            log_end: 0,
                            log_start: 0,
                            batches: PayloadRange::new(0, 0),
                            message: "no partition 9".to_string(),
                        },
                    ],
                },
            ),
            payload(140),
        ),
        (
            ok(
                u64::MAX,
                ResponseBodyOwned::ListOffsets {
                    error: ErrorCode::None,
                    results: vec![ListOffsetsResultOwned {
                        topic: "orders".to_string(),
                        partition: 0,
                        error: ErrorCode::None,
                        offset: 42,
                    }],
                },
            ),
            Vec::new(),
        ),
        (
            ok(
                9,
                ResponseBodyOwned::InitProducerId {
                    error: ErrorCode::None,
                    message: String::new(),
                    producer_id: i64::MAX,
                    producer_epoch: 0,
                },
            ),
            Vec::new(),
        ),
        (
            ok(
                10,
                ResponseBodyOwned::JoinGroup {
                    error: ErrorCode::None,
                    message: String::new(),
                    joined: JoinedOwned {
                        generation: 3,
                        member_id: "consumer-1-7".to_string(),
                        assignment: vec![
                            TopicPartitionsOwned {
                                topic: "orders".to_string(),
                                partitions: vec![0, 1, u32::MAX],
                            },
                            TopicPartitionsOwned {
                                topic: "refunds".to_string(),
                                partitions: Vec::new(),
                            },
                        ],
                        member_count: 3,
                    },
                },
            ),
            Vec::new(),
        ),
        (
            ok(
                11,
                ResponseBodyOwned::Heartbeat {
                    error: ErrorCode::RebalanceInProgress,
                    message: "rejoin".to_string(),
                },
            ),
            Vec::new(),
        ),
        (
            ok(
                12,
                ResponseBodyOwned::LeaveGroup {
                    error: ErrorCode::UnknownMemberId,
                    message: String::new(),
                },
            ),
            Vec::new(),
        ),
        (
            ok(
                13,
                ResponseBodyOwned::OffsetCommit {
                    error: ErrorCode::None,
                    message: String::new(),
                    results: vec![
                        OffsetCommitResultOwned {
                            topic: "orders".to_string(),
                            partition: 0,
                            error: ErrorCode::None,
                            message: String::new(),
                        },
                        OffsetCommitResultOwned {
                            topic: "orders".to_string(),
                            partition: 1,
                            error: ErrorCode::OffsetCommitRewind,
                            message: "committed 10, asked 5".to_string(),
                        },
                    ],
                },
            ),
            Vec::new(),
        ),
        (
            ok(
                14,
                ResponseBodyOwned::OffsetFetch {
                    error: ErrorCode::None,
                    message: String::new(),
                    offsets: vec![PartitionOffsetOwned {
                        topic: "orders".to_string(),
                        partition: 2,
                        offset: u64::MAX,
                    }],
                },
            ),
            Vec::new(),
        ),
        (
            ok(
                15,
                ResponseBodyOwned::ListGroups {
                    error: ErrorCode::None,
                    message: String::new(),
                    groups: vec![
                        GroupSummaryOwned {
                            group: "billing".to_string(),
                            state: GroupState::Stable,
                            member_count: 3,
                        },
                        GroupSummaryOwned {
                            group: "old".to_string(),
                            state: GroupState::Empty,
                            member_count: 0,
                        },
                    ],
                },
            ),
            Vec::new(),
        ),
        (
            ok(
                16,
                ResponseBodyOwned::DescribeGroup {
                    error: ErrorCode::None,
                    message: String::new(),
                    group: GroupDescriptionOwned {
                        state: GroupState::PreparingRebalance,
                        generation: 7,
                        assignor: Assignor::Range,
                        members: vec![GroupMemberOwned {
                            member_id: "consumer-1-7".to_string(),
                            client_id: "ringbus-consume".to_string(),
                            topics: vec!["orders".to_string()],
                            assignment: vec![TopicPartitionsOwned {
                                topic: "orders".to_string(),
                                partitions: vec![4, 5],
                            }],
                        }],
                        offsets_retention_ms: 604_800_000,
                        empty_since_ms: None,
                        offsets_first_expiry_ms: None,
                        offsets_last_expiry_ms: None,
                    },
                },
            ),
            Vec::new(),
        ),
        (
            // The request could not be decoded: an error and no body.
            ResponseOwned {
                correlation_id: 7,
                error: ErrorCode::InvalidRequest,
                message: "Request has no body".to_string(),
                body: None,
            },
            Vec::new(),
        ),
        (
            // A newer broker's error code is kept as is.
            ResponseOwned {
                correlation_id: 8,
                error: ErrorCode(999),
                message: String::new(),
                body: Some(ResponseBodyOwned::CreateTopic {
                    error: ErrorCode(u16::MAX),
                    message: String::new(),
                }),
            },
            Vec::new(),
        ),
    ]
}

// ---- Random messages --------------------------------------------------------------------------

fn random_string(rng: &mut Rng) -> String {
    const PIECES: [&str; 8] = ["a", "orders", "-", "_", "ü", "主题", "0", "."];
    let pieces = match rng.u64(..10) {
        0 => 0,
        1 => 50 + rng.usize(..100),
        _ => 1 + rng.usize(..6),
    };
    (0..pieces)
        .map(|_| PIECES[rng.usize(..PIECES.len())])
        .collect()
}

fn random_count(rng: &mut Rng) -> usize {
    match rng.u64(..10) {
        0 => 0,
        1 => 20 + rng.usize(..200),
        _ => 1 + rng.usize(..5),
    }
}

fn random_u64(rng: &mut Rng) -> u64 {
    match rng.u64(..4) {
        0 => 0,
        1 => u64::MAX,
        _ => rng.u64(..) >> rng.u64(..64),
    }
}

fn random_error(rng: &mut Rng) -> ErrorCode {
    match rng.u64(..10) {
        0..=4 => ErrorCode::None,
        5 => ErrorCode(rng.u16(..)),
        _ => ErrorCode(rng.u16(..31)),
    }
}

fn random_strings(rng: &mut Rng) -> Vec<String> {
    (0..random_count(rng)).map(|_| random_string(rng)).collect()
}

fn random_topic_partitions(rng: &mut Rng) -> Vec<TopicPartitionsOwned> {
    (0..random_count(rng))
        .map(|_| TopicPartitionsOwned {
            topic: random_string(rng),
            partitions: (0..random_count(rng)).map(|_| rng.u32(..)).collect(),
        })
        .collect()
}

fn random_partition_offsets(rng: &mut Rng) -> Vec<PartitionOffsetOwned> {
    (0..random_count(rng))
        .map(|_| PartitionOffsetOwned {
            topic: random_string(rng),
            partition: rng.u32(..),
            offset: random_u64(rng),
        })
        .collect()
}

fn random_group_state(rng: &mut Rng) -> GroupState {
    [
        GroupState::Empty,
        GroupState::PreparingRebalance,
        GroupState::Stable,
    ][rng.usize(..3)]
}

fn random_config(rng: &mut Rng) -> TopicConfigOwned {
    TopicConfigOwned {
        retention_ms: random_u64(rng) as i64,
        retention_bytes: random_u64(rng) as i64,
        segment_bytes: random_u64(rng) as i64,
    }
}

/// A range inside a payload of `payload_bytes` bytes.
fn random_range(rng: &mut Rng, payload_bytes: usize) -> PayloadRange {
    let offset = rng.usize(..payload_bytes + 1);
    let length = rng.usize(..payload_bytes - offset + 1);
    PayloadRange::new(offset as u32, length as u32)
}

fn random_payload(rng: &mut Rng) -> Vec<u8> {
    let length = match rng.u64(..4) {
        0 => 0,
        _ => rng.usize(..4_096),
    };
    bytes(rng, length)
}

/// A random valid request body of a random variant, with its payload.
pub fn random_request(rng: &mut Rng) -> RequestSample {
    let payload = random_payload(rng);
    let body = match rng.u64(..REQUEST_VARIANTS as u64) {
        0 => RequestBodyOwned::Handshake {
            version: rng.u16(..),
            client_id: random_string(rng),
        },
        1 => RequestBodyOwned::Metadata {
            topics: (0..random_count(rng)).map(|_| random_string(rng)).collect(),
        },
        2 => RequestBodyOwned::CreateTopic {
            name: random_string(rng),
            partitions: rng.u32(..),
            config: random_config(rng),
        },
        3 => RequestBodyOwned::DeleteTopic {
            name: random_string(rng),
        },
        4 => RequestBodyOwned::Produce {
            acks: [Acks::None, Acks::Written, Acks::Durable][rng.usize(..3)],
            timeout_ms: rng.u32(..),
            batches: (0..random_count(rng))
                .map(|_| ProduceBatchOwned {
                    topic: random_string(rng),
                    partition: rng.u32(..),
                    batch: random_range(rng, payload.len()),
                })
                .collect(),
        },
        5 => RequestBodyOwned::Fetch {
            wait_ms_max: rng.u32(..),
            bytes_min: rng.u32(..),
            bytes_max: rng.u32(..),
            partitions: (0..random_count(rng))
                .map(|_| FetchPartitionOwned {
                    topic: random_string(rng),
                    partition: rng.u32(..),
                    offset: random_u64(rng),
                    bytes_max: rng.u32(..),
                })
                .collect(),
        },
        7 => RequestBodyOwned::InitProducerId,
        8 => RequestBodyOwned::JoinGroup(JoinGroupOwned {
            group: random_string(rng),
            member_id: random_string(rng),
            client_id: random_string(rng),
            topics: random_strings(rng),
            session_timeout_ms: rng.u32(..),
            rebalance_timeout_ms: rng.u32(..),
            assignor: [Assignor::Range, Assignor::RoundRobin][rng.usize(..2)],
        }),
        9 => RequestBodyOwned::Heartbeat {
            group: random_string(rng),
            member_id: random_string(rng),
            generation: rng.i32(..),
        },
        10 => RequestBodyOwned::LeaveGroup {
            group: random_string(rng),
            member_id: random_string(rng),
        },
        11 => RequestBodyOwned::OffsetCommit {
            group: random_string(rng),
            member_id: random_string(rng),
            generation: rng.i32(..),
            offsets: random_partition_offsets(rng),
            reset: rng.u64(..2) == 0,
        },
        12 => RequestBodyOwned::OffsetFetch {
            group: random_string(rng),
            topics: random_strings(rng),
        },
        13 => RequestBodyOwned::ListGroups,
        14 => RequestBodyOwned::DescribeGroup {
            group: random_string(rng),
        },
        _ => RequestBodyOwned::ListOffsets {
            partitions: (0..random_count(rng))
                .map(|_| ListOffsetsPartitionOwned {
                    topic: random_string(rng),
                    partition: rng.u32(..),
                    spec: [
                        OffsetSpec::Earliest,
                        OffsetSpec::Latest,
                        OffsetSpec::Timestamp,
                    ][rng.usize(..3)],
                    timestamp_ms: random_u64(rng) as i64,
                })
                .collect(),
        },
    };
    (body, payload)
}

/// A random valid response of a random variant (sometimes a bodiless error), with its payload.
pub fn random_response(rng: &mut Rng) -> ResponseSample {
    let payload = random_payload(rng);
    let error = random_error(rng);
    let body = match rng.u64(..RESPONSE_VARIANTS as u64 + 1) {
        0 => ResponseBodyOwned::Handshake {
            error: random_error(rng),
            version: rng.u16(..),
            shard_count: rng.u16(..),
            frame_bytes_max: rng.u32(..),
            in_flight_max: rng.u16(..),
        },
        1 => ResponseBodyOwned::Metadata {
            error: random_error(rng),
            topics: (0..random_count(rng))
                .map(|_| TopicMetadataOwned {
                    name: random_string(rng),
                    error: random_error(rng),
                    partitions: (0..random_count(rng))
                        .map(|_| PartitionMetadataOwned {
                            partition: rng.u32(..),
                            shard: rng.u16(..),
                            error: random_error(rng),
                            log_start: random_u64(rng),
                            log_end: random_u64(rng),
                        })
                        .collect(),
                    config: random_config(rng),
                })
                .collect(),
        },
        2 => ResponseBodyOwned::CreateTopic {
            error: random_error(rng),
            message: random_string(rng),
        },
        3 => ResponseBodyOwned::DeleteTopic {
            error: random_error(rng),
            message: random_string(rng),
        },
        4 => ResponseBodyOwned::Produce {
            error: random_error(rng),
            results: (0..random_count(rng))
                .map(|_| ProduceResultOwned {
                    topic: random_string(rng),
                    partition: rng.u32(..),
                    error: random_error(rng),
                    base_offset: random_u64(rng),
                    last_offset: random_u64(rng),
                    log_start: random_u64(rng),
                    message: random_string(rng),
                })
                .collect(),
        },
        5 => ResponseBodyOwned::Fetch {
            error: random_error(rng),
            results: (0..random_count(rng))
                .map(|_| FetchResultOwned {
                    topic: random_string(rng),
                    partition: rng.u32(..),
                    error: random_error(rng),
                    log_end: random_u64(rng),
                    log_start: random_u64(rng),
                    batches: random_range(rng, payload.len()),
                    message: random_string(rng),
                })
                .collect(),
        },
        6 => ResponseBodyOwned::ListOffsets {
            error: random_error(rng),
            results: (0..random_count(rng))
                .map(|_| ListOffsetsResultOwned {
                    topic: random_string(rng),
                    partition: rng.u32(..),
                    error: random_error(rng),
                    offset: random_u64(rng),
                })
                .collect(),
        },
        7 => ResponseBodyOwned::InitProducerId {
            error: random_error(rng),
            message: random_string(rng),
            producer_id: random_u64(rng) as i64,
            producer_epoch: rng.i16(..),
        },
        8 => ResponseBodyOwned::JoinGroup {
            error: random_error(rng),
            message: random_string(rng),
            joined: JoinedOwned {
                generation: rng.i32(..),
                member_id: random_string(rng),
                assignment: random_topic_partitions(rng),
                member_count: rng.u32(..),
            },
        },
        9 => ResponseBodyOwned::Heartbeat {
            error: random_error(rng),
            message: random_string(rng),
        },
        10 => ResponseBodyOwned::LeaveGroup {
            error: random_error(rng),
            message: random_string(rng),
        },
        11 => ResponseBodyOwned::OffsetCommit {
            error: random_error(rng),
            message: random_string(rng),
            results: (0..random_count(rng))
                .map(|_| OffsetCommitResultOwned {
                    topic: random_string(rng),
                    partition: rng.u32(..),
                    error: random_error(rng),
                    message: random_string(rng),
                })
                .collect(),
        },
        12 => ResponseBodyOwned::OffsetFetch {
            error: random_error(rng),
            message: random_string(rng),
            offsets: random_partition_offsets(rng),
        },
        13 => ResponseBodyOwned::ListGroups {
            error: random_error(rng),
            message: random_string(rng),
            groups: (0..random_count(rng))
                .map(|_| GroupSummaryOwned {
                    group: random_string(rng),
                    state: random_group_state(rng),
                    member_count: rng.u32(..),
                })
                .collect(),
        },
        14 => ResponseBodyOwned::DescribeGroup {
            error: random_error(rng),
            message: random_string(rng),
            group: GroupDescriptionOwned {
                state: random_group_state(rng),
                generation: rng.i32(..),
                assignor: [Assignor::Range, Assignor::RoundRobin][rng.usize(..2)],
                members: (0..random_count(rng))
                    .map(|_| GroupMemberOwned {
                        member_id: random_string(rng),
                        client_id: random_string(rng),
                        topics: random_strings(rng),
                        assignment: random_topic_partitions(rng),
                    })
                    .collect(),
                offsets_retention_ms: rng.u64(..),
                empty_since_ms: rng.bool().then(|| rng.i64(..)),
                offsets_first_expiry_ms: rng.bool().then(|| rng.i64(..)),
                offsets_last_expiry_ms: rng.bool().then(|| rng.i64(..)),
            },
        },
        // A whole-request error: no body (the error must then be set).
        _ => {
            let error = if error == ErrorCode::None {
                ErrorCode::InvalidRequest
            } else {
                error
            };
            let response = ResponseOwned {
                correlation_id: rng.u64(..),
                error,
                message: random_string(rng),
                body: None,
            };
            return (response, payload);
        }
    };
    let response = ResponseOwned {
        correlation_id: rng.u64(..),
        error,
        message: random_string(rng),
        body: Some(body),
    };
    (response, payload)
}
