//! Goal: no byte sequence from a peer panics the decoder or costs more than its size warrants;
//! each is refused with a typed error, or decodes to something that keeps the protocol's
//! promises (every PayloadRange inside the payload). The limits must accept every message our
//! own encoders can build.
//!
//! Method: (1) frame prefixes at and past every limit, and seeded random prefixes. (2) Every
//! truncation of every sample message (a cut that still verifies must decode to the original,
//! since nothing it reads has changed), every single-bit and whole-byte flip (flatbuffers has no
//! checksum, so some flips decode: then the result must still obey the rules), seeded random
//! garbage and random damage (printed seed, replay with `RINGBUS_SEED=<seed>`). (3) Hand-built
//! hostile messages the verifier must refuse under our limits though the flatbuffers defaults
//! accept them: thousands of offsets sharing one string or one table (quadratic verification),
//! vectors and strings claiming 2^30+ entries, and each limit set below a legitimate message.
//! (4) Well-formed messages that break protocol rules: no body, unknown body type, missing
//! required fields, unknown enum values, ranges past the payload, vectors over the limit.
//! (5) The largest apparent-size ratio our encoders can produce, measured, against the limit.

mod common;
mod wire_common;

use common::{bytes, chance};
use flatbuffers::{FlatBufferBuilder, InvalidFlatbuffer, VerifierOptions, WIPOffset};
use schema::generated::{
    Assignor, CreateTopicRequest, CreateTopicRequestArgs, JoinGroupRequest, JoinGroupRequestArgs,
    MetadataRequest, MetadataRequestArgs, MetadataResponse, MetadataResponseArgs,
    PartitionMetadata, PartitionMetadataArgs, ProduceBatch, ProduceBatchArgs, ProduceRequest,
    ProduceRequestArgs, RequestArgs, RequestBody, ResponseArgs, ResponseBody, TopicMetadata,
    TopicMetadataArgs,
};
use schema::wire::{
    self, Acks, DecodeError, DecodeLimits, ErrorCode, FRAME_BYTES_MAX_DEFAULT, FrameError,
    FrameHeader, MESSAGE_BYTES_MIN, OffsetSpec, PartitionMetadataOwned, PayloadRange,
    ProduceBatchOwned, Request, RequestBodyOwned, Response, ResponseBodyOwned, ResponseOwned,
    TopicConfigOwned, TopicMetadataOwned,
};
use wire_common::{read_request, read_response};

/// The flips to try at each byte: every single bit, and the whole byte.
const MASKS: [u8; 9] = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff];
const RANDOM_PREFIXES: usize = 100_000;
const RANDOM_GARBAGE: usize = 20_000;
const RANDOM_DAMAGE: usize = 20_000;

// ---- Helpers --------------------------------------------------------------------------------

/// What decoding a possibly damaged message gave.
#[derive(Debug, Default)]
struct Outcomes {
    accepted: usize,
    refused_by_verifier: usize,
    refused_by_rules: usize,
    ranges_refused: usize,
}

impl Outcomes {
    /// Decodes `message` both as a request and as a response, all the way to owned. Whatever
    /// decodes must name only ranges inside the payload.
    fn decode(&mut self, message: &[u8], payload_bytes: usize) {
        let limits = DecodeLimits::default();
        match read_request(message, payload_bytes, &limits) {
            Ok((_, body)) => {
                self.accepted += 1;
                for range in wire_common::request_ranges(&body) {
                    assert!(
                        wire::payload_slice(&range, payload_bytes).is_ok(),
                        "{range:?} outside {payload_bytes} accepted in {body:?}"
                    );
                }
            }
            Err(error) => self.refused(&error),
        }
        match read_response(message, payload_bytes, &limits) {
            Ok(response) => {
                self.accepted += 1;
                for range in wire_common::response_ranges(&response) {
                    assert!(
                        wire::payload_slice(&range, payload_bytes).is_ok(),
                        "{range:?} outside {payload_bytes} accepted in {response:?}"
                    );
                }
            }
            Err(error) => self.refused(&error),
        }
    }

    fn refused(&mut self, error: &DecodeError) {
        // Display must work on every error (it goes into logs and error messages).
        assert!(!error.to_string().is_empty());
        match error {
            DecodeError::Invalid { .. } => self.refused_by_verifier += 1,
            DecodeError::PayloadRangeOutOfBounds { .. } => {
                self.refused_by_rules += 1;
                self.ranges_refused += 1;
            }
            _ => self.refused_by_rules += 1,
        }
    }
}

/// Every sample message with the payload length it travels with.
fn sample_messages() -> Vec<(Vec<u8>, usize)> {
    let requests =
        wire_common::sample_requests()
            .into_iter()
            .enumerate()
            .map(|(index, (body, payload))| {
                (
                    wire_common::request_message(index as u64, &body),
                    payload.len(),
                )
            });
    let responses = wire_common::sample_responses()
        .into_iter()
        .map(|(response, payload)| (wire_common::response_message(&response), payload.len()));
    requests.chain(responses).collect()
}

fn assert_invalid(result: Result<impl std::fmt::Debug, DecodeError>, expected: InvalidFlatbuffer) {
    match result {
        Err(DecodeError::Invalid { error, .. }) => assert_eq!(error, expected),
        other => panic!("expected the verifier to refuse with {expected:?}, got {other:?}"),
    }
}

fn assert_range_out_of_bounds(result: Result<impl std::fmt::Debug, DecodeError>) {
    match result {
        Err(DecodeError::Invalid {
            error: InvalidFlatbuffer::RangeOutOfBounds { .. },
            ..
        }) => {}
        other => panic!("expected RangeOutOfBounds, got {other:?}"),
    }
}

/// True when the verifier refused for cost (apparent size or table count), not for shape.
fn refused_for_cost(result: &Result<impl std::fmt::Debug, DecodeError>) -> bool {
    matches!(
        result,
        Err(DecodeError::Invalid {
            error: InvalidFlatbuffer::ApparentSizeTooLarge | InvalidFlatbuffer::TooManyTables,
            ..
        })
    )
}

/// A finished Request with the given body type and body, built with the generated API so that
/// it can break rules our encoder never breaks.
fn raw_request<'f>(
    builder: &'f mut FlatBufferBuilder<'static>,
    body_type: RequestBody,
    body: Option<WIPOffset<flatbuffers::UnionWIPOffset>>,
) -> &'f [u8] {
    let args = RequestArgs {
        correlation_id: 77,
        body_type,
        body,
    };
    let root = Request::create(builder, &args);
    builder.finish_minimal(root);
    builder.finished_data()
}

/// Where `inner` starts within `outer` (both views of the same buffer).
fn position_in(outer: &[u8], inner: &[u8]) -> usize {
    let position = inner.as_ptr() as usize - outer.as_ptr() as usize;
    assert!(position + inner.len() <= outer.len());
    position
}

// ---- (1) Frame prefixes ---------------------------------------------------------------------

#[test]
fn frame_prefixes_past_the_limits_are_refused() {
    let max = FRAME_BYTES_MAX_DEFAULT;
    let prefix = |frame_bytes: u32, message_bytes: u32| {
        let mut prefix = [0; 8];
        prefix[..4].copy_from_slice(&frame_bytes.to_le_bytes());
        prefix[4..].copy_from_slice(&message_bytes.to_le_bytes());
        prefix
    };

    assert_eq!(
        FrameHeader::parse(&prefix(max + 1, 100), max),
        Err(FrameError::TooLarge {
            frame_bytes: u64::from(max) + 1,
            frame_bytes_max: max
        })
    );
    assert_eq!(
        FrameHeader::parse(&prefix(u32::MAX, u32::MAX), max),
        Err(FrameError::TooLarge {
            frame_bytes: u64::from(u32::MAX),
            frame_bytes_max: max
        })
    );
    // message_bytes > frame_bytes - 4, by one and by a lot, including values that would wrap
    // a u32 sum.
    for (frame_bytes, message_bytes) in
        [(100, 97), (100, 100), (12, u32::MAX), (u32::MAX, u32::MAX)]
    {
        assert_eq!(
            FrameHeader::parse(&prefix(frame_bytes, message_bytes), u32::MAX),
            Err(FrameError::MessageLengthInvalid {
                message_bytes,
                frame_bytes
            }),
            "frame {frame_bytes} message {message_bytes}"
        );
    }
    assert!(FrameHeader::parse(&prefix(100, 96), max).is_ok());
    // Too short for any flatbuffer, whatever the frame.
    for message_bytes in 0..MESSAGE_BYTES_MIN {
        assert_eq!(
            FrameHeader::parse(&prefix(100, message_bytes), max),
            Err(FrameError::MessageTooShort {
                message_bytes: u64::from(message_bytes)
            })
        );
    }
    for frame_bytes in 0..4 + MESSAGE_BYTES_MIN {
        assert!(FrameHeader::parse(&prefix(frame_bytes, MESSAGE_BYTES_MIN), max).is_err());
    }
    // A limit of zero refuses everything, without underflow.
    assert!(FrameHeader::parse(&prefix(0, 0), 0).is_err());

    // Writers: sizes past u32 report the real total, never a wrapped one.
    assert_eq!(
        wire::frame_prefix(100, max as usize - 103, max),
        Err(FrameError::TooLarge {
            frame_bytes: u64::from(max) + 1,
            frame_bytes_max: max
        })
    );
    assert_eq!(
        wire::frame_prefix(usize::MAX, usize::MAX, u32::MAX),
        Err(FrameError::TooLarge {
            frame_bytes: u64::MAX,
            frame_bytes_max: u32::MAX
        })
    );
    assert_eq!(
        wire::frame_prefix(1 << 32, 0, u32::MAX),
        Err(FrameError::TooLarge {
            frame_bytes: (1 << 32) + 4,
            frame_bytes_max: u32::MAX
        })
    );
    assert_eq!(
        wire::frame_prefix(4, 100, max),
        Err(FrameError::MessageTooShort { message_bytes: 4 })
    );
    for error in [
        FrameHeader::parse(&prefix(max + 1, 100), max).unwrap_err(),
        FrameHeader::parse(&prefix(100, 2), max).unwrap_err(),
        FrameHeader::parse(&prefix(100, 200), max).unwrap_err(),
    ] {
        assert!(!error.to_string().is_empty());
    }
}

#[test]
fn random_frame_prefixes_are_parsed_or_refused_consistently() {
    let seed = common::seed("random_frame_prefixes_are_parsed_or_refused_consistently");
    let mut rng = common::Rng::with_seed(seed);
    let mut accepted = 0;
    for _ in 0..RANDOM_PREFIXES {
        // Mostly small values, so that both outcomes are common.
        let mut value = || match rng.u64(..3) {
            0 => rng.u32(..),
            _ => rng.u32(..64),
        };
        let (frame_bytes, message_bytes, max) = (value(), value(), value());
        let mut prefix = [0; 8];
        prefix[..4].copy_from_slice(&frame_bytes.to_le_bytes());
        prefix[4..].copy_from_slice(&message_bytes.to_le_bytes());
        let expected_ok = frame_bytes <= max
            && message_bytes >= MESSAGE_BYTES_MIN
            && u64::from(message_bytes) + 4 <= u64::from(frame_bytes);
        match FrameHeader::parse(&prefix, max) {
            Ok(header) => {
                assert!(expected_ok, "{prefix:?} max {max} accepted");
                accepted += 1;
                assert_eq!(header.encode(), prefix);
                assert_eq!(
                    4 + header.message_bytes as usize + header.payload_bytes(),
                    header.frame_bytes as usize
                );
                assert_eq!(header.message_range().end, header.payload_range().start);
                assert_eq!(header.payload_range().end, header.body_bytes());
                let rebuilt =
                    FrameHeader::new(header.message_bytes as usize, header.payload_bytes(), max);
                assert_eq!(rebuilt, Ok(header));
            }
            Err(error) => assert!(!expected_ok, "{prefix:?} max {max} refused: {error}"),
        }
    }
    eprintln!("{accepted} of {RANDOM_PREFIXES} random prefixes accepted");
    assert!(accepted > 0);
}

// ---- (2) Damaged and random messages --------------------------------------------------------

#[test]
fn every_truncation_is_refused_or_decodes_unchanged() {
    let limits = DecodeLimits::default();
    for (message, payload_bytes) in sample_messages() {
        let original_request = read_request(&message, payload_bytes, &limits).ok();
        let original_response = read_response(&message, payload_bytes, &limits).ok();
        assert!(original_request.is_some() || original_response.is_some());
        let mut refused = 0;
        for cut in 0..message.len() {
            let truncated = &message[..cut];
            let request = read_request(truncated, payload_bytes, &limits);
            let response = read_response(truncated, payload_bytes, &limits);
            if cut < 4 {
                assert!(request.is_err() && response.is_err(), "cut {cut} decoded");
            }
            // A cut that still verifies changed nothing the decoder reads (only trailing
            // padding went), so it must give the original.
            if let Ok(request) = request {
                assert_eq!(Some(request), original_request, "cut {cut}");
            } else {
                refused += 1;
            }
            if let Ok(response) = response {
                assert_eq!(Some(response), original_response, "cut {cut}");
            }
        }
        // At most the alignment padding at the end can go unnoticed.
        assert!(
            refused + 8 >= message.len(),
            "{refused} of {} cuts refused",
            message.len()
        );
    }
}

#[test]
fn every_byte_flip_is_refused_or_keeps_the_rules() {
    let mut outcomes = Outcomes::default();
    let mut flips = 0;
    for (message, payload_bytes) in sample_messages() {
        for index in 0..message.len() {
            for mask in MASKS {
                let mut flipped = message.clone();
                flipped[index] ^= mask;
                outcomes.decode(&flipped, payload_bytes);
                flips += 1;
            }
        }
    }
    eprintln!("{flips} flips, each decoded as request and response: {outcomes:?}");
    assert!(outcomes.refused_by_verifier > 0);
    // Flips inside the PayloadRanges of the produce and fetch samples push some of them out of
    // the payload; the rules, not the verifier, must catch those.
    assert!(outcomes.ranges_refused > 0, "{outcomes:?}");
}

#[test]
fn random_garbage_is_refused_without_panic() {
    let seed = common::seed("random_garbage_is_refused_without_panic");
    let mut rng = common::Rng::with_seed(seed);
    let mut outcomes = Outcomes::default();
    for _ in 0..RANDOM_GARBAGE {
        let length = match rng.u64(..10) {
            0 => rng.usize(..MESSAGE_BYTES_MIN as usize),
            1 => rng.usize(..4_096),
            _ => rng.usize(..256),
        };
        let mut garbage = bytes(&mut rng, length);
        // Half the time, a small aligned root offset, so the verifier gets past the root.
        if length >= 8 && chance(&mut rng, 50) {
            let root = (rng.usize(..length / 4) * 4) as u32;
            garbage[..4].copy_from_slice(&root.to_le_bytes());
        }
        let payload_bytes = rng.usize(..1_000);
        outcomes.decode(&garbage, payload_bytes);
    }
    eprintln!("{RANDOM_GARBAGE} garbage messages: {outcomes:?}");
    assert!(outcomes.refused_by_verifier > 0);
}

#[test]
fn random_damage_to_valid_messages_is_refused_or_keeps_the_rules() {
    let seed = common::seed("random_damage_to_valid_messages_is_refused_or_keeps_the_rules");
    let mut rng = common::Rng::with_seed(seed);
    let mut outcomes = Outcomes::default();
    for _ in 0..RANDOM_DAMAGE {
        let (message, payload_bytes) = if chance(&mut rng, 50) {
            let (body, payload) = wire_common::random_request(&mut rng);
            (
                wire_common::request_message(rng.u64(..), &body),
                payload.len(),
            )
        } else {
            let (response, payload) = wire_common::random_response(&mut rng);
            (wire_common::response_message(&response), payload.len())
        };
        let mut damaged = message;
        for _ in 0..1 + rng.usize(..4) {
            let index = rng.usize(..damaged.len());
            damaged[index] = match rng.u64(..3) {
                0 => 0,
                1 => 0xff,
                _ => rng.u8(..),
            };
        }
        // Sometimes a shorter payload than the message was built for.
        let payload_bytes = if chance(&mut rng, 20) {
            rng.usize(..payload_bytes + 1)
        } else {
            payload_bytes
        };
        outcomes.decode(&damaged, payload_bytes);
    }
    eprintln!("{RANDOM_DAMAGE} damaged messages: {outcomes:?}");
    assert!(outcomes.refused_by_verifier > 0);
}

// ---- (3) Hostile messages and the verifier limits ---------------------------------------------

#[test]
fn offsets_sharing_one_string_are_refused_for_cost() {
    // 4,096 offsets to one 4 KiB string: a 20 KiB message that reads as 16 MiB of strings
    // (each UTF-8 checked), which the flatbuffers defaults would verify.
    let mut builder = FlatBufferBuilder::new();
    let topic = builder.create_string(&"t".repeat(4_096));
    let topics = builder.create_vector(&vec![topic; 4_096]);
    let body = MetadataRequest::create(
        &mut builder,
        &MetadataRequestArgs {
            topics: Some(topics),
        },
    );
    let message = raw_request(
        &mut builder,
        RequestBody::MetadataRequest,
        Some(body.as_union_value()),
    );
    assert!(message.len() < 24 << 10, "{} bytes", message.len());
    assert!(
        flatbuffers::root::<Request>(message).is_ok(),
        "the defaults accept it"
    );
    assert_invalid(
        wire::decode_request(message, &DecodeLimits::default()),
        InvalidFlatbuffer::ApparentSizeTooLarge,
    );
}

#[test]
fn offsets_sharing_one_table_are_refused_for_cost() {
    // 512 topics that are one table, whose 512 partitions are one table: 262,000 tables
    // visited for a message of a few KiB.
    let mut builder = FlatBufferBuilder::new();
    let partition = PartitionMetadata::create(
        &mut builder,
        &PartitionMetadataArgs {
            log_end: 1,
            ..Default::default()
        },
    );
    let partitions = builder.create_vector(&vec![partition; 512]);
    let name = builder.create_string("t");
    let topic = TopicMetadata::create(
        &mut builder,
        &TopicMetadataArgs {
            name: Some(name),
            partitions: Some(partitions),
            ..Default::default()
        },
    );
    let topics = builder.create_vector(&vec![topic; 512]);
    let body = MetadataResponse::create(
        &mut builder,
        &MetadataResponseArgs {
            error: ErrorCode::None,
            topics: Some(topics),
        },
    );
    let args = ResponseArgs {
        body_type: ResponseBody::MetadataResponse,
        body: Some(body.as_union_value()),
        ..Default::default()
    };
    let root = Response::create(&mut builder, &args);
    builder.finish_minimal(root);
    let message = builder.finished_data();
    assert!(message.len() < 8 << 10, "{} bytes", message.len());
    assert!(
        flatbuffers::root::<Response>(message).is_ok(),
        "the defaults accept it"
    );
    let result = wire::decode_response(message, &DecodeLimits::default());
    assert!(refused_for_cost(&result), "{result:?}");
    // The table count alone stops it too.
    let limits = DecodeLimits {
        apparent_size_ratio_max: usize::MAX,
        ..DecodeLimits::default()
    };
    assert_invalid(
        wire::decode_response(message, &limits),
        InvalidFlatbuffer::TooManyTables,
    );
}

#[test]
fn vectors_and_strings_claiming_huge_lengths_are_refused() {
    let body = RequestBodyOwned::Produce {
        acks: Acks::Durable,
        timeout_ms: 1_000,
        batches: vec![ProduceBatchOwned {
            topic: "orders".to_string(),
            partition: 0,
            batch: PayloadRange::new(0, 10),
        }],
    };
    let message = wire_common::request_message(1, &body);
    let limits = DecodeLimits::default();
    let request = wire::decode_request(&message, &limits).expect("valid");
    let produce = request.body_as_produce_request().expect("produce");
    let batches = produce.batches().expect("batches");
    let vector_length_at = position_in(&message, batches.bytes()) - 4;
    let topic = batches.get(0).topic().expect("topic");
    let string_length_at = position_in(&message, topic.as_bytes()) - 4;
    assert_eq!(
        message[vector_length_at..vector_length_at + 4],
        [1, 0, 0, 0]
    );
    assert_eq!(
        message[string_length_at..string_length_at + 4],
        [6, 0, 0, 0]
    );

    for at in [vector_length_at, string_length_at] {
        for length in [message.len() as u32, 1 << 30, 0x7fff_ffff, u32::MAX] {
            let mut hostile = message.clone();
            hostile[at..at + 4].copy_from_slice(&u32::to_le_bytes(length));
            assert_range_out_of_bounds(wire::decode_request(&hostile, &limits));
        }
    }
}

#[test]
fn each_verifier_limit_is_applied() {
    // A legitimate metadata response: Response > MetadataResponse > TopicMetadata >
    // PartitionMetadata is the deepest nesting the schema has (4), with 2 + 2 * 4 tables.
    let response = ResponseOwned {
        correlation_id: 1,
        error: ErrorCode::None,
        message: String::new(),
        body: Some(ResponseBodyOwned::Metadata {
            error: ErrorCode::None,
            topics: (0..2)
                .map(|topic| TopicMetadataOwned {
                    name: format!("topic-{topic}"),
                    error: ErrorCode::None,
                    partitions: (0..2)
                        .map(|partition| PartitionMetadataOwned {
                            partition,
                            shard: 1,
                            error: ErrorCode::None,
                            log_start: 0,
                            log_end: 10,
                        })
                        .collect(),
                    config: TopicConfigOwned::default(),
                })
                .collect(),
        }),
    };
    let message = wire_common::response_message(&response);
    let defaults = DecodeLimits::default();
    assert_eq!(
        read_response(&message, 0, &defaults).as_ref(),
        Ok(&response)
    );

    let shallow = DecodeLimits {
        table_depth_max: 3,
        ..defaults
    };
    assert_invalid(
        wire::decode_response(&message, &shallow),
        InvalidFlatbuffer::DepthLimitReached,
    );
    let deep_enough = DecodeLimits {
        table_depth_max: 4,
        ..defaults
    };
    assert!(wire::decode_response(&message, &deep_enough).is_ok());

    let few_tables = DecodeLimits {
        table_count_max: 9,
        ..defaults
    };
    assert_invalid(
        wire::decode_response(&message, &few_tables),
        InvalidFlatbuffer::TooManyTables,
    );
    let enough_tables = DecodeLimits {
        table_count_max: 2 + 2 * 4,
        ..defaults
    };
    assert!(wire::decode_response(&message, &enough_tables).is_ok());

    let no_apparent_room = DecodeLimits {
        apparent_size_ratio_max: 0,
        ..defaults
    };
    assert_invalid(
        wire::decode_response(&message, &no_apparent_room),
        InvalidFlatbuffer::ApparentSizeTooLarge,
    );

    // vector_length_max, at the top level and nested.
    let short_vectors = DecodeLimits {
        vector_length_max: 1,
        ..defaults
    };
    let view = wire::decode_response(&message, &short_vectors).expect("verifies");
    assert_eq!(
        wire::response_from_wire(view, 0, &short_vectors),
        Err(DecodeError::VectorTooLong {
            table: "MetadataResponse",
            field: "topics",
            length: 2,
            length_max: 1
        })
    );
    let produce = RequestBodyOwned::Produce {
        acks: Acks::Written,
        timeout_ms: 0,
        batches: vec![
            ProduceBatchOwned {
                topic: "t".to_string(),
                partition: 0,
                batch: PayloadRange::new(0, 1),
            };
            3
        ],
    };
    let message = wire_common::request_message(1, &produce);
    let two = DecodeLimits {
        vector_length_max: 2,
        ..defaults
    };
    assert_eq!(
        read_request(&message, 1, &two),
        Err(DecodeError::VectorTooLong {
            table: "ProduceRequest",
            field: "batches",
            length: 3,
            length_max: 2
        })
    );
    let three = DecodeLimits {
        vector_length_max: 3,
        ..defaults
    };
    assert_eq!(read_request(&message, 1, &three), Ok((1, produce)));

    let nested = ResponseOwned {
        body: Some(ResponseBodyOwned::Metadata {
            error: ErrorCode::None,
            topics: vec![TopicMetadataOwned {
                name: "t".to_string(),
                error: ErrorCode::None,
                partitions: vec![
                    PartitionMetadataOwned {
                        partition: 0,
                        shard: 0,
                        error: ErrorCode::None,
                        log_start: 0,
                        log_end: 0
                    };
                    2
                ],
                config: TopicConfigOwned::default(),
            }],
        }),
        ..response
    };
    let message = wire_common::response_message(&nested);
    assert_eq!(
        read_response(&message, 0, &short_vectors),
        Err(DecodeError::VectorTooLong {
            table: "TopicMetadata",
            field: "partitions",
            length: 2,
            length_max: 1
        })
    );
}

// ---- (4) Protocol rules -----------------------------------------------------------------------

#[test]
fn ranges_past_the_payload_are_refused() {
    // payload_slice itself, at the edges and where offset + length overflows u32.
    let cases: [(u32, u32, usize, bool); 9] = [
        (0, 0, 0, true),
        (0, 10, 10, true),
        (10, 0, 10, true),
        (4, 6, 10, true),
        (0, 11, 10, false),
        (11, 0, 10, false),
        (5, 6, 10, false),
        (u32::MAX, 1, usize::MAX, true),
        (u32::MAX, u32::MAX, 10, false),
    ];
    for (offset, length, payload_bytes, ok) in cases {
        let range = PayloadRange::new(offset, length);
        let result = wire::payload_slice(&range, payload_bytes);
        if ok {
            let start = offset as usize;
            assert_eq!(result, Ok(start..start + length as usize));
        } else {
            assert_eq!(
                result,
                Err(DecodeError::PayloadRangeOutOfBounds {
                    offset,
                    length,
                    payload_bytes
                })
            );
        }
    }
    let payload = bytes::Bytes::from_static(b"0123456789");
    assert_eq!(
        wire::slice_payload(&payload, &PayloadRange::new(3, 4)).as_deref(),
        Ok(&b"3456"[..])
    );
    assert!(wire::slice_payload(&payload, &PayloadRange::new(3, 8)).is_err());

    // In a produce request: one byte too far is refused, exactly at the end is not.
    let produce = |length: u32| RequestBodyOwned::Produce {
        acks: Acks::Durable,
        timeout_ms: 0,
        batches: vec![
            ProduceBatchOwned {
                topic: "t".to_string(),
                partition: 0,
                batch: PayloadRange::new(0, 10),
            },
            ProduceBatchOwned {
                topic: "t".to_string(),
                partition: 1,
                batch: PayloadRange::new(10, length),
            },
        ],
    };
    let limits = DecodeLimits::default();
    let message = wire_common::request_message(1, &produce(90));
    assert_eq!(read_request(&message, 100, &limits), Ok((1, produce(90))));
    let message = wire_common::request_message(1, &produce(91));
    assert_eq!(
        read_request(&message, 100, &limits),
        Err(DecodeError::PayloadRangeOutOfBounds {
            offset: 10,
            length: 91,
            payload_bytes: 100
        })
    );

    // In a fetch response.
    let (response, payload) = wire_common::sample_responses()
        .into_iter()
        .find(|(response, _)| matches!(response.body, Some(ResponseBodyOwned::Fetch { .. })))
        .expect("a fetch sample");
    let message = wire_common::response_message(&response);
    assert!(read_response(&message, payload.len(), &limits).is_ok());
    assert!(matches!(
        read_response(&message, payload.len() - 1, &limits),
        Err(DecodeError::PayloadRangeOutOfBounds { .. })
    ));
}

#[test]
fn messages_without_a_known_body_are_refused() {
    let limits = DecodeLimits::default();

    // No body at all.
    let mut builder = FlatBufferBuilder::new();
    let message = raw_request(&mut builder, RequestBody::NONE, None).to_vec();
    let request = wire::decode_request(&message, &limits).expect("verifies");
    assert_eq!(
        request.correlation_id(),
        77,
        "the broker can still answer it"
    );
    assert_eq!(
        wire::request_from_wire(request, 0, &limits),
        Err(DecodeError::BodyMissing { root: "Request" })
    );

    // A body of a type this version does not know (a newer client's request).
    for body_type in [RequestBody::ENUM_MAX + 1, 42, u8::MAX] {
        let mut builder = FlatBufferBuilder::new();
        let name = builder.create_string("t");
        let table = CreateTopicRequest::create(
            &mut builder,
            &CreateTopicRequestArgs {
                name: Some(name),
                ..Default::default()
            },
        );
        let message = raw_request(
            &mut builder,
            RequestBody(body_type),
            Some(table.as_union_value()),
        );
        assert_eq!(
            read_request(message, 0, &limits),
            Err(DecodeError::BodyUnknown {
                root: "Request",
                body_type
            })
        );
    }

    // A response with no error must have a body; with an error it need not.
    let mut builder = FlatBufferBuilder::new();
    let root = Response::create(&mut builder, &ResponseArgs::default());
    builder.finish_minimal(root);
    assert_eq!(
        read_response(builder.finished_data(), 0, &limits),
        Err(DecodeError::BodyMissing { root: "Response" })
    );
    let mut builder = FlatBufferBuilder::new();
    let args = ResponseArgs {
        error: ErrorCode::Throttled,
        ..Default::default()
    };
    let root = Response::create(&mut builder, &args);
    builder.finish_minimal(root);
    assert_eq!(
        read_response(builder.finished_data(), 0, &limits).map(|response| response.body),
        Ok(None)
    );

    // The smallest message a builder writes: an empty root table, MESSAGE_BYTES_MIN bytes.
    let mut builder = FlatBufferBuilder::new();
    let root = Request::create(&mut builder, &RequestArgs::default());
    builder.finish_minimal(root);
    let empty = builder.finished_data();
    assert_eq!(empty.len(), MESSAGE_BYTES_MIN as usize);
    assert_eq!(
        read_request(empty, 0, &limits),
        Err(DecodeError::BodyMissing { root: "Request" })
    );
    // Degenerate buffers shorter than that can verify (a table whose vtable offset 0 points at
    // itself as an empty vtable) but are bodiless; the frame refuses them before decoding.
    assert_eq!(
        read_request(&[0, 0, 0, 0], 0, &limits),
        Err(DecodeError::BodyMissing { root: "Request" })
    );
    // Below 4 bytes there is not even a root offset.
    for length in 0..4 {
        for fill in [0, 4, 0xff] {
            let short = vec![fill; length];
            assert!(matches!(
                read_request(&short, 0, &limits),
                Err(DecodeError::Invalid { .. })
            ));
            assert!(matches!(
                read_response(&short, 0, &limits),
                Err(DecodeError::Invalid { .. })
            ));
        }
    }
}

#[test]
fn missing_required_fields_and_unknown_enums_are_refused() {
    let limits = DecodeLimits::default();
    let produce = |topic: bool, batch: bool, acks: Acks| {
        let mut builder = FlatBufferBuilder::new();
        let topic = topic.then(|| builder.create_string("orders"));
        let range = PayloadRange::new(0, 1);
        let entry = ProduceBatch::create(
            &mut builder,
            &ProduceBatchArgs {
                topic,
                partition: 0,
                batch: batch.then_some(&range),
            },
        );
        let batches = builder.create_vector(&[entry]);
        let body = ProduceRequest::create(
            &mut builder,
            &ProduceRequestArgs {
                acks,
                timeout_ms: 0,
                batches: Some(batches),
            },
        );
        raw_request(
            &mut builder,
            RequestBody::ProduceRequest,
            Some(body.as_union_value()),
        )
        .to_vec()
    };
    assert!(read_request(&produce(true, true, Acks::Durable), 1, &limits).is_ok());
    assert_eq!(
        read_request(&produce(false, true, Acks::Durable), 1, &limits),
        Err(DecodeError::FieldMissing {
            table: "ProduceBatch",
            field: "topic"
        })
    );
    assert_eq!(
        read_request(&produce(true, false, Acks::Durable), 1, &limits),
        Err(DecodeError::FieldMissing {
            table: "ProduceBatch",
            field: "batch"
        })
    );
    for value in [2, 5, -2, i8::MIN, i8::MAX] {
        assert_eq!(
            read_request(&produce(true, true, Acks(value)), 1, &limits),
            Err(DecodeError::EnumUnknown {
                table: "ProduceRequest",
                field: "acks",
                value: i64::from(value)
            })
        );
    }

    // A name-less create-topic request.
    let mut builder = FlatBufferBuilder::new();
    let body = CreateTopicRequest::create(&mut builder, &CreateTopicRequestArgs::default());
    let message = raw_request(
        &mut builder,
        RequestBody::CreateTopicRequest,
        Some(body.as_union_value()),
    );
    assert_eq!(
        read_request(message, 0, &limits),
        Err(DecodeError::FieldMissing {
            table: "CreateTopicRequest",
            field: "name"
        })
    );

    // An OffsetSpec this version does not name: encoded through our own encoder, which does
    // not police values, to show the decoder does.
    let body = RequestBodyOwned::ListOffsets {
        partitions: vec![wire::ListOffsetsPartitionOwned {
            topic: "t".to_string(),
            partition: 0,
            spec: OffsetSpec(3),
            timestamp_ms: 0,
        }],
    };
    let message = wire_common::request_message(1, &body);
    assert_eq!(
        read_request(&message, 0, &limits),
        Err(DecodeError::EnumUnknown {
            table: "ListOffsetsPartition",
            field: "spec",
            value: 3
        })
    );

    // A topic without a name in a metadata response.
    let mut builder = FlatBufferBuilder::new();
    let topic = TopicMetadata::create(&mut builder, &TopicMetadataArgs::default());
    let topics = builder.create_vector(&[topic]);
    let body = MetadataResponse::create(
        &mut builder,
        &MetadataResponseArgs {
            error: ErrorCode::None,
            topics: Some(topics),
        },
    );
    let args = ResponseArgs {
        body_type: ResponseBody::MetadataResponse,
        body: Some(body.as_union_value()),
        ..Default::default()
    };
    let root = Response::create(&mut builder, &args);
    builder.finish_minimal(root);
    assert_eq!(
        read_response(builder.finished_data(), 0, &limits),
        Err(DecodeError::FieldMissing {
            table: "TopicMetadata",
            field: "name"
        })
    );
}

// ---- (5) Our own worst case fits the limits -----------------------------------------------------

/// The apparent size the verifier counts for `message`: the smallest `max_apparent_size` that
/// lets it through (binary search).
fn apparent_bytes(message: &[u8], verifies: impl Fn(&VerifierOptions) -> bool) -> usize {
    let (mut low, mut high) = (0, message.len() * 64);
    assert!(verifies(&VerifierOptions {
        max_apparent_size: high,
        ..VerifierOptions::default()
    }));
    while low < high {
        let middle = (low + high) / 2;
        let options = VerifierOptions {
            max_apparent_size: middle,
            ..VerifierOptions::default()
        };
        if verifies(&options) {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    low
}

#[test]
fn legitimate_messages_fit_the_default_limits_with_room() {
    // The worst shape our encoder can produce: a long vector of tables that share one vtable and
    // store one small field at a late slot (PartitionMetadata with only `error` set reads about
    // 2.7 apparent bytes per byte). Plus every sample and many random messages.
    const ENTRIES: usize = 2_000;
    let partitions = |error: ErrorCode, shard: u16, log_end: u64| ResponseOwned {
        correlation_id: 0,
        error: ErrorCode::None,
        message: String::new(),
        body: Some(ResponseBodyOwned::Metadata {
            error: ErrorCode::None,
            topics: vec![TopicMetadataOwned {
                name: String::new(),
                error: ErrorCode::None,
                partitions: vec![
                    PartitionMetadataOwned {
                        partition: 0,
                        shard,
                        error,
                        log_start: 0,
                        log_end
                    };
                    ENTRIES
                ],
                config: TopicConfigOwned::default(),
            }],
        }),
    };
    let mut responses = vec![
        partitions(ErrorCode::StorageFailed, 0, 0),
        partitions(ErrorCode::None, 3, 0),
        partitions(ErrorCode::None, 0, 7),
        partitions(ErrorCode::None, 0, 0),
    ];
    responses.extend(wire_common::sample_responses().into_iter().map(|(r, _)| r));
    let mut requests: Vec<RequestBodyOwned> = wire_common::sample_requests()
        .into_iter()
        .map(|(body, _)| body)
        .collect();
    let seed = common::seed("legitimate_messages_fit_the_default_limits_with_room");
    let mut rng = common::Rng::with_seed(seed);
    for _ in 0..200 {
        requests.push(wire_common::random_request(&mut rng).0);
        responses.push(wire_common::random_response(&mut rng).0);
    }

    let limits = DecodeLimits::default();
    let mut worst_ratio = 0.0f64;
    let mut check = |message: &[u8], verifies: &dyn Fn(&VerifierOptions) -> bool| {
        let apparent = apparent_bytes(message, verifies);
        let ratio = apparent as f64 / message.len() as f64;
        worst_ratio = worst_ratio.max(ratio);
        // A margin of a third under the limit, so a small change in flatc's layout cannot tip
        // a legitimate message over it unnoticed.
        assert!(
            ratio * 4.0 / 3.0 <= limits.apparent_size_ratio_max as f64,
            "{apparent} apparent bytes for {} bytes",
            message.len()
        );
    };
    for body in &requests {
        let message = wire_common::request_message(1, body);
        check(&message, &|options| {
            flatbuffers::root_with_opts::<Request>(options, &message).is_ok()
        });
        assert!(wire::decode_request(&message, &limits).is_ok());
    }
    for response in &responses {
        let message = wire_common::response_message(response);
        check(&message, &|options| {
            flatbuffers::root_with_opts::<Response>(options, &message).is_ok()
        });
        assert!(wire::decode_response(&message, &limits).is_ok());
    }
    eprintln!("worst apparent bytes per message byte: {worst_ratio:.2}");
    assert!(
        worst_ratio > 2.5,
        "the worst shape is in the set: {worst_ratio}"
    );
}

#[test]
fn group_requests_need_their_group_and_a_known_assignor() {
    let limits = DecodeLimits::default();

    // A join with an assignor this version does not name.
    let mut builder = FlatBufferBuilder::new();
    let group = builder.create_string("billing");
    let table = JoinGroupRequest::create(
        &mut builder,
        &JoinGroupRequestArgs {
            group: Some(group),
            assignor: Assignor(9),
            ..Default::default()
        },
    );
    let message = raw_request(
        &mut builder,
        RequestBody::JoinGroupRequest,
        Some(table.as_union_value()),
    );
    assert_eq!(
        read_request(message, 0, &limits),
        Err(DecodeError::EnumUnknown {
            table: "JoinGroupRequest",
            field: "assignor",
            value: 9
        })
    );

    // A join without a group.
    let mut builder = FlatBufferBuilder::new();
    let table = JoinGroupRequest::create(&mut builder, &JoinGroupRequestArgs::default());
    let message = raw_request(
        &mut builder,
        RequestBody::JoinGroupRequest,
        Some(table.as_union_value()),
    );
    assert_eq!(
        read_request(message, 0, &limits),
        Err(DecodeError::FieldMissing {
            table: "JoinGroupRequest",
            field: "group"
        })
    );
}
