//! Writes the seed corpus of every fuzz target (fuzz/corpus/<target>/): a few valid inputs
//! made by the code the targets exercise (real frames and messages from the wire encoders,
//! real batches from `BatchBuilder`, real partition directories from a `Log` on the simulated
//! disk, real snapshots from the broker's encoders), so that fuzzing starts past the first
//! checks of each decoder.
//!
//! Run from the repository root:
//! `cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus -- fuzz/corpus`.
//! Deterministic: the same code writes the same files, named by what they hold.

use std::path::{Path, PathBuf};

use broker::group::offsets::{self, Committed, OffsetKey, OffsetTable};
use broker::metadata::{Metadata, TopicConfig, TopicSpec};
use broker::producer_state::{BatchIdentity, ProducerStates};
use bytes::BytesMut;
use flatbuffers::FlatBufferBuilder;
use ringbus_fuzz::{broker_snapshots, frames, log_recovery, wire_messages};
use schema::batch::{BatchBuilder, BatchHeader};
use schema::wire::{
    Acks, Assignor, ErrorCode, FRAME_BYTES_MAX_DEFAULT, FetchPartitionOwned, FetchResultOwned,
    GroupState, JoinGroupOwned, JoinedOwned, ListOffsetsPartitionOwned, OffsetSpec,
    PartitionMetadataOwned, PartitionOffsetOwned, PayloadRange, ProduceBatchOwned,
    ProduceResultOwned, RequestBodyOwned, ResponseBodyOwned, ResponseOwned, TopicConfigOwned,
    TopicMetadataOwned, TopicPartitionsOwned, encode_request, encode_response, frame_prefix,
};
use storage::disk::sim::{CrashMode, SimDisk, block_on};
use storage::format::{MetaKind, decode_meta};
use storage::{Log, Offset};

const NOW_MS: i64 = 1_700_000_000_000;

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or("fuzz/corpus".to_string()));
    let requests = requests();
    let batches = batches();

    let mut builder = FlatBufferBuilder::new();
    let mut stream = Vec::new();
    for (index, (name, body, payload)) in requests.iter().enumerate() {
        let message = encode_request(&mut builder, 1000 + index as u64, body).to_vec();
        write(
            &root,
            "wire_messages",
            &format!("request-{name}"),
            &wire_messages::encode(&message, payload),
        );
        let mut frame = frame_prefix(message.len(), payload.len(), FRAME_BYTES_MAX_DEFAULT)
            .expect("a seed frame fits")
            .to_vec();
        frame.extend_from_slice(&message);
        frame.extend_from_slice(payload);
        write(
            &root,
            "frames",
            &format!("{name}-whole-reads"),
            &frames::encode(0, &frame),
        );
        stream.extend_from_slice(&frame);
    }
    write(
        &root,
        "frames",
        "all-requests-in-7-byte-reads",
        &frames::encode(7, &stream),
    );
    write(
        &root,
        "frames",
        "all-requests-cut-short",
        &frames::encode(0, &stream[..stream.len() - 5]),
    );
    for (name, response) in responses() {
        let message = encode_response(&mut builder, &response).to_vec();
        write(
            &root,
            "wire_messages",
            &format!("response-{name}"),
            &wire_messages::encode(&message, &[0; 70]),
        );
    }

    for (name, batch) in &batches {
        write(&root, "batch", name, batch);
    }

    for (name, files) in log_images() {
        write(&root, "log_recovery", name, &log_recovery::encode(&files));
    }

    for (name, bytes) in kafka_requests() {
        write(&root, "kafka_requests", name, &bytes);
    }

    for (name, selector, bytes) in snapshots() {
        write(
            &root,
            "broker_snapshots",
            name,
            &broker_snapshots::encode(selector, &bytes),
        );
    }
}

fn write(root: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    std::fs::write(dir.join(name), bytes).expect("write a seed");
}

/// Batches as producers send them: one record, several with headers and null fields, an
/// idempotent producer's.
fn batches() -> Vec<(&'static str, Vec<u8>)> {
    let mut one = BatchBuilder::new(NOW_MS);
    one.push(Some(b"k"), Some(b"v"), NOW_MS, &[]);
    let mut several = BatchBuilder::new(NOW_MS);
    several.push(
        None,
        Some(b"first value"),
        NOW_MS + 5,
        &[(b"trace", b"abc"), (b"h", b"")],
    );
    several.push(Some(b""), None, NOW_MS - 3, &[]);
    several.push(
        Some(b"key"),
        Some(&[0xff; 300]),
        NOW_MS + 1_000_000,
        &[(b"k", b"v")],
    );
    let mut idempotent = BatchBuilder::new(NOW_MS).producer(42, 3, 17);
    for i in 0..4u8 {
        idempotent.push(Some(&[i]), Some(&[i; 20]), NOW_MS + i64::from(i), &[]);
    }
    vec![
        ("one-record", one.finish()),
        ("three-records-headers-nulls", several.finish()),
        ("idempotent-four-records", idempotent.finish()),
    ]
}

/// One request of each kind the broker accepts, with the payload it carries.
fn requests() -> Vec<(&'static str, RequestBodyOwned, Vec<u8>)> {
    let batches = batches();
    let mut payload = Vec::new();
    let mut produced = Vec::new();
    for (index, (_, batch)) in batches.iter().enumerate() {
        produced.push(ProduceBatchOwned {
            topic: "orders".to_string(),
            partition: index as u32,
            batch: PayloadRange::new(payload.len() as u32, batch.len() as u32),
        });
        payload.extend_from_slice(batch);
    }
    let config = TopicConfigOwned {
        retention_ms: 60_000,
        retention_bytes: 1 << 30,
        segment_bytes: 1 << 20,
    };
    vec![
        (
            "handshake",
            RequestBodyOwned::Handshake {
                version: 1,
                client_id: "seed".into(),
            },
            vec![],
        ),
        (
            "metadata",
            RequestBodyOwned::Metadata {
                topics: vec!["orders".into(), "x".into()],
            },
            vec![],
        ),
        (
            "create-topic",
            RequestBodyOwned::CreateTopic {
                name: "orders".into(),
                partitions: 3,
                config,
            },
            vec![],
        ),
        (
            "delete-topic",
            RequestBodyOwned::DeleteTopic {
                name: "orders".into(),
            },
            vec![],
        ),
        (
            "produce",
            RequestBodyOwned::Produce {
                acks: Acks::Durable,
                timeout_ms: 5_000,
                batches: produced,
            },
            payload,
        ),
        (
            "fetch",
            RequestBodyOwned::Fetch {
                wait_ms_max: 500,
                bytes_min: 1,
                bytes_max: 1 << 20,
                partitions: vec![
                    FetchPartitionOwned {
                        topic: "orders".into(),
                        partition: 0,
                        offset: 7,
                        bytes_max: 1 << 16,
                    },
                    FetchPartitionOwned {
                        topic: "orders".into(),
                        partition: 2,
                        offset: 0,
                        bytes_max: 100,
                    },
                ],
            },
            vec![],
        ),
        (
            "list-offsets",
            RequestBodyOwned::ListOffsets {
                partitions: vec![
                    ListOffsetsPartitionOwned {
                        topic: "orders".into(),
                        partition: 1,
                        spec: OffsetSpec::Timestamp,
                        timestamp_ms: NOW_MS,
                    },
                    ListOffsetsPartitionOwned {
                        topic: "orders".into(),
                        partition: 0,
                        spec: OffsetSpec::Latest,
                        timestamp_ms: 0,
                    },
                ],
            },
            vec![],
        ),
        ("init-producer-id", RequestBodyOwned::InitProducerId, vec![]),
        (
            "join-group",
            RequestBodyOwned::JoinGroup(JoinGroupOwned {
                group: "billing".into(),
                member_id: "".into(),
                client_id: "seed".into(),
                topics: vec!["orders".into()],
                session_timeout_ms: 10_000,
                rebalance_timeout_ms: 30_000,
                assignor: Assignor::RoundRobin,
            }),
            vec![],
        ),
        (
            "heartbeat",
            RequestBodyOwned::Heartbeat {
                group: "billing".into(),
                member_id: "m-1".into(),
                generation: 4,
            },
            vec![],
        ),
        (
            "leave-group",
            RequestBodyOwned::LeaveGroup {
                group: "billing".into(),
                member_id: "m-1".into(),
            },
            vec![],
        ),
        (
            "offset-commit",
            RequestBodyOwned::OffsetCommit {
                group: "billing".into(),
                member_id: "m-1".into(),
                generation: 4,
                offsets: vec![
                    PartitionOffsetOwned {
                        topic: "orders".into(),
                        partition: 0,
                        offset: 42,
                    },
                    PartitionOffsetOwned {
                        topic: "orders".into(),
                        partition: 1,
                        offset: 7,
                    },
                ],
                reset: false,
            },
            vec![],
        ),
        (
            "offset-fetch",
            RequestBodyOwned::OffsetFetch {
                group: "billing".into(),
                topics: vec!["orders".into()],
            },
            vec![],
        ),
        ("list-groups", RequestBodyOwned::ListGroups, vec![]),
        (
            "describe-group",
            RequestBodyOwned::DescribeGroup {
                group: "billing".into(),
            },
            vec![],
        ),
    ]
}

/// Responses a client decodes (the payload of their seeds is 70 bytes).
fn responses() -> Vec<(&'static str, ResponseOwned)> {
    let response = |correlation_id, body| ResponseOwned {
        correlation_id,
        error: ErrorCode::None,
        message: String::new(),
        body: Some(body),
    };
    vec![
        (
            "handshake",
            response(
                1,
                ResponseBodyOwned::Handshake {
                    error: ErrorCode::None,
                    version: 1,
                    shard_count: 2,
                    frame_bytes_max: 16 << 20,
                    in_flight_max: 64,
                },
            ),
        ),
        (
            "metadata",
            response(
                2,
                ResponseBodyOwned::Metadata {
                    error: ErrorCode::None,
                    topics: vec![TopicMetadataOwned {
                        name: "orders".into(),
                        error: ErrorCode::None,
                        partitions: vec![
                            PartitionMetadataOwned {
                                partition: 0,
                                shard: 1,
                                error: ErrorCode::None,
                                log_start: 0,
                                log_end: 9,
                            },
                            PartitionMetadataOwned {
                                partition: 1,
                                shard: 0,
                                error: ErrorCode::UnknownPartition,
                                log_start: 0,
                                log_end: 0,
                            },
                        ],
                        config: TopicConfigOwned::default(),
                    }],
                },
            ),
        ),
        (
            "produce",
            response(
                3,
                ResponseBodyOwned::Produce {
                    error: ErrorCode::None,
                    results: vec![ProduceResultOwned {
                        topic: "orders".into(),
                        partition: 0,
                        error: ErrorCode::None,
                        base_offset: 10,
                        last_offset: 12,
                        log_start: 0,
                        message: String::new(),
                    }],
                },
            ),
        ),
        (
            "fetch",
            response(
                4,
                ResponseBodyOwned::Fetch {
                    error: ErrorCode::None,
                    results: vec![FetchResultOwned {
                        topic: "orders".into(),
                        partition: 0,
                        error: ErrorCode::None,
                        log_end: 5,
                        log_start: 0,
                        batches: PayloadRange::new(0, 70),
                        message: String::new(),
                    }],
                },
            ),
        ),
        (
            "join-group",
            response(
                5,
                ResponseBodyOwned::JoinGroup {
                    error: ErrorCode::None,
                    message: String::new(),
                    joined: JoinedOwned {
                        generation: 3,
                        member_id: "m-1".into(),
                        assignment: vec![TopicPartitionsOwned {
                            topic: "orders".into(),
                            partitions: vec![0, 2],
                        }],
                        member_count: 2,
                    },
                },
            ),
        ),
        (
            "list-groups",
            response(
                6,
                ResponseBodyOwned::ListGroups {
                    error: ErrorCode::None,
                    message: String::new(),
                    groups: vec![schema::wire::GroupSummaryOwned {
                        group: "billing".into(),
                        state: GroupState::Stable,
                        member_count: 3,
                    }],
                },
            ),
        ),
        (
            "error-without-body",
            ResponseOwned {
                correlation_id: 7,
                error: ErrorCode::InvalidRequest,
                message: "bad".into(),
                body: None,
            },
        ),
    ]
}

/// Partition directories written by a real log on the simulated disk, as durable images.
fn log_images() -> Vec<(&'static str, Vec<log_recovery::File>)> {
    let dir = Path::new(log_recovery::DIR);
    let append_some = |log: &mut Log<SimDisk>, count: u8| {
        for i in 0..count {
            let mut builder = BatchBuilder::new(NOW_MS + i64::from(i));
            builder.push(
                Some(&[i]),
                Some(&vec![i; 200 + usize::from(i) * 40]),
                NOW_MS + i64::from(i),
                &[],
            );
            builder.push(None, Some(b"second"), NOW_MS + i64::from(i), &[]);
            block_on(log.append(BytesMut::from(&builder.finish()[..]), NOW_MS)).expect("append");
            // A sync every few batches: each write starts on a fresh block, so a sync per
            // batch would make the seed mostly padding.
            if i % 6 == 5 {
                block_on(log.sync(NOW_MS)).expect("sync");
            }
        }
    };

    // Cleanly closed, several segments: every index and the marker are there.
    let clean = SimDisk::new(1);
    let (mut log, _) =
        block_on(Log::open(clean.clone(), dir, seed_config(), NOW_MS)).expect("open");
    append_some(&mut log, 30);
    block_on(log.close(NOW_MS)).expect("close");

    // Crashed: no marker, the active segment's tail left as a power loss leaves it.
    let crashed = SimDisk::new(2);
    let (mut log, _) =
        block_on(Log::open(crashed.clone(), dir, seed_config(), NOW_MS)).expect("open");
    append_some(&mut log, 12);
    drop(log);
    crashed.crash(CrashMode::KeepAll);

    // A single small segment, cleanly closed.
    let small = SimDisk::new(3);
    let (mut log, _) =
        block_on(Log::open(small.clone(), dir, seed_config(), NOW_MS)).expect("open");
    append_some(&mut log, 2);
    block_on(log.close(NOW_MS)).expect("close");

    vec![
        ("clean-several-segments", image(&clean, false)),
        (
            "clean-several-segments-framed-metadata",
            image(&clean, true),
        ),
        ("crashed-no-marker", image(&crashed, false)),
        ("clean-one-segment", image(&small, false)),
        ("clean-one-segment-framed-metadata", image(&small, true)),
    ]
}

/// The target's config, writing only when asked to (the seeds' logs sync every few batches).
fn seed_config() -> storage::LogConfig {
    storage::LogConfig {
        flush_policy: storage::FlushPolicy::Bytes(1 << 30),
        ..log_recovery::config()
    }
}

/// The durable files of the partition directory of `disk` as target input; with `framed`,
/// the metadata and index files as payloads for the target to frame (tag bit 3).
fn image(disk: &SimDisk, framed: bool) -> Vec<log_recovery::File> {
    let dir = Path::new(log_recovery::DIR);
    let mut files = Vec::new();
    for name in disk.durable_list_dir(dir).expect("the directory") {
        let contents = disk
            .durable_contents(&dir.join(&name))
            .expect("a listed file");
        let base = name
            .split('.')
            .next()
            .and_then(|base| base.parse::<u64>().ok())
            .unwrap_or(0);
        let (tag, kind) = if name.ends_with(".log") {
            (0, None)
        } else if name.ends_with(".timeindex") {
            (2, Some(MetaKind::TimeIndex))
        } else if name.ends_with(".index") {
            (1, Some(MetaKind::OffsetIndex))
        } else if name == "log.meta" {
            (3, Some(MetaKind::LogMeta))
        } else if name == "clean.shutdown" {
            (4, Some(MetaKind::CleanShutdown))
        } else {
            panic!("an unexpected file {name} in a log directory");
        };
        let file = match kind {
            Some(kind) if framed => log_recovery::File {
                tag: tag | log_recovery::TAG_FRAME,
                base,
                contents: decode_meta(kind, &contents)
                    .expect("a valid metadata file")
                    .to_vec(),
            },
            _ => log_recovery::File {
                tag,
                base,
                contents,
            },
        };
        files.push(file);
    }
    files
}

/// Kafka request bodies (header and body, no size prefix) as a client sends them: a produce
/// of a real batch at the newest served version, and the other decoded APIs with their default
/// fields at the versions clients use most.
fn kafka_requests() -> Vec<(&'static str, Vec<u8>)> {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{
        ApiKey, MetadataRequest, ProduceRequest, RequestHeader, RequestKind, TopicName,
        metadata_request::MetadataRequestTopic,
    };
    use kafka_protocol::protocol::{Encodable, StrBytes};

    let topic = || TopicName(StrBytes::from_static_str("orders"));
    let (_, batch) = batches().remove(1);
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic())
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch.into())),
                ]),
        ]);
    let metadata = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic())),
    ]));
    let requests = [
        (
            "produce-v9",
            ApiKey::Produce,
            9,
            RequestKind::Produce(produce.clone()),
        ),
        (
            "produce-v3",
            ApiKey::Produce,
            3,
            RequestKind::Produce(produce),
        ),
        (
            "metadata-v12",
            ApiKey::Metadata,
            12,
            RequestKind::Metadata(metadata.clone()),
        ),
        (
            "metadata-v1",
            ApiKey::Metadata,
            1,
            RequestKind::Metadata(metadata),
        ),
        (
            "fetch-v12",
            ApiKey::Fetch,
            12,
            RequestKind::Fetch(Default::default()),
        ),
        (
            "list-offsets-v7",
            ApiKey::ListOffsets,
            7,
            RequestKind::ListOffsets(Default::default()),
        ),
        (
            "create-topics-v7",
            ApiKey::CreateTopics,
            7,
            RequestKind::CreateTopics(Default::default()),
        ),
        (
            "delete-topics-v6",
            ApiKey::DeleteTopics,
            6,
            RequestKind::DeleteTopics(Default::default()),
        ),
        (
            "init-producer-id-v4",
            ApiKey::InitProducerId,
            4,
            RequestKind::InitProducerId(Default::default()),
        ),
        (
            "join-group-v5",
            ApiKey::JoinGroup,
            5,
            RequestKind::JoinGroup(Default::default()),
        ),
        (
            "offset-commit-v8",
            ApiKey::OffsetCommit,
            8,
            RequestKind::OffsetCommit(Default::default()),
        ),
    ];
    requests
        .into_iter()
        .map(|(name, api, version, request)| {
            let header = RequestHeader::default()
                .with_request_api_key(api as i16)
                .with_request_api_version(version)
                .with_correlation_id(7)
                .with_client_id(Some(StrBytes::from_static_str("seed")));
            let mut out = bytes::BytesMut::new();
            header
                .encode(&mut out, api.request_header_version(version))
                .expect("a header");
            request.encode(&mut out, version).expect("a request");
            (name, out.to_vec())
        })
        .collect()
}

/// Snapshots and records as the broker writes them, per selector of the target.
fn snapshots() -> Vec<(&'static str, u8, Vec<u8>)> {
    let mut states = ProducerStates::default();
    for (producer_id, epoch, sequences) in [(5i64, 0i16, 3i32), (9, 2, 1)] {
        for index in 0..sequences {
            let identity = BatchIdentity {
                producer_id,
                epoch,
                base_sequence: index * 2,
                last_sequence: index * 2 + 1,
            };
            let base = Offset(100 * producer_id as u64 + 2 * index as u64);
            states.record(&identity, base, Offset(base.0 + 1), NOW_MS);
        }
    }
    let producer_snapshot = states.encode(Offset(2_000));

    let key = |group: &str, topic: &str, partition| OffsetKey {
        group: group.into(),
        topic: topic.into(),
        partition,
    };
    let commits = vec![
        (
            key("billing", "orders", 0),
            Committed {
                offset: 42,
                timestamp_ms: NOW_MS,
            },
        ),
        (
            key("billing", "orders", 1),
            Committed {
                offset: 7,
                timestamp_ms: NOW_MS,
            },
        ),
        (
            key("audit", "payments", 3),
            Committed {
                offset: 1 << 40,
                timestamp_ms: NOW_MS - 5,
            },
        ),
    ];
    let mut table = OffsetTable::default();
    for (key, committed) in &commits {
        table.apply(key.clone(), *committed);
    }
    let offsets_snapshot = table.encode(55);
    let commit_batch = offsets::commit_batch(&commits, NOW_MS);

    let metadata = Metadata::default()
        .with_topic(TopicSpec {
            name: "orders".into(),
            partitions: 8,
            config: TopicConfig {
                retention_ms: Some(60_000),
                ..TopicConfig::default()
            },
        })
        .and_then(|metadata| {
            metadata.with_topic(TopicSpec {
                name: "__consumer_offsets".into(),
                partitions: 8,
                config: TopicConfig {
                    segment_bytes: Some(8 << 20),
                    ..TopicConfig::default()
                },
            })
        })
        .expect("valid topics");

    let mut record = vec![0u8];
    let record_key = offsets::encode_key(&commits[0].0);
    record[0] = record_key.len() as u8;
    record.extend_from_slice(&record_key);
    record.extend_from_slice(&offsets::encode_value(&commits[0].1));

    let mut idempotent = BatchBuilder::new(NOW_MS).producer(5, 0, 6);
    idempotent.push(Some(b"k"), Some(b"v"), NOW_MS, &[]);
    idempotent.push(Some(b"k"), Some(b"w"), NOW_MS, &[]);
    let mut idempotent = idempotent.finish();
    schema::batch::set_base_offset(&mut idempotent, 2_000);
    assert!(BatchHeader::parse(&idempotent).is_ok());

    let with = |head: &[u8], body: &[u8]| [head, body].concat();
    let mut ids_blob = 1u16.to_le_bytes().to_vec();
    ids_blob.extend_from_slice(&3_000u64.to_le_bytes());
    let ids_file = storage::format::encode_meta(MetaKind::Blob, &ids_blob);
    let producer_file = storage::format::encode_meta(MetaKind::Blob, &producer_snapshot);
    vec![
        ("producer-state", 0, producer_snapshot.clone()),
        ("offsets-table", 1, offsets_snapshot.clone()),
        ("metadata", 2, metadata.encode()),
        ("offsets-record", 3, record),
        ("offsets-replay", 4, with(&[0], &commit_batch)),
        ("producer-replay", 5, with(&[0], &idempotent)),
        // start, end, policy, raw: a trusted producer-state snapshot, framed by the store.
        (
            "load-producer-state-rescan",
            6,
            with(&[0, 255, 0, 0], &producer_snapshot),
        ),
        // An offsets snapshot past the end of a log at 10..40, under Fail.
        (
            "load-offsets-past-end-fail",
            6,
            with(&[10, 40, 1, 2], &offsets_snapshot),
        ),
        // The whole file, frame included.
        (
            "load-producer-state-raw-file",
            6,
            with(&[0, 255, 0, 1], &producer_file),
        ),
        ("producer-ids", 7, with(&[0], &ids_blob)),
        ("producer-ids-raw-file", 7, with(&[1], &ids_file)),
    ]
}
