//! Goal: a batch from an idempotent producer is stored at most once, however it is retried:
//! a resent batch gets its original offsets back and nothing new is stored, also when the
//! retry crosses a crash (kill -9) or a clean restart; a batch out of sequence, from an older
//! epoch, or from a producer the partition does not know (with a sequence other than 0) is
//! refused with its own error; producer ids are never handed out twice, across restarts. And
//! end to end: the client's `Producer`, whose produce responses are swallowed by a proxy so
//! that it times out and retries, leaves exactly one copy of every record in the log.
//!
//! Method: the real `ringbus` binary on 2 shards. The protocol rules through the blocking wire
//! client of tests/common with hand-stamped batches; the end-to-end case with the client
//! library on a glommio executor, connected through a proxy thread that forwards every request
//! but drops the first produce responses.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use client::{Client, ClientOptions, Producer, ProducerOptions, ProducerRecord};
use common::{Broker, RawClient, create_topic, data_dir, fetch_all, produce_results};
use schema::batch::BatchBuilder;
use schema::wire::{self, Acks, DecodeLimits, ErrorCode, RequestBodyOwned, ResponseBodyOwned};

fn init_producer_id(client: &mut RawClient) -> (i64, i16) {
    let (response, _) = client.request(&RequestBodyOwned::InitProducerId, &[]);
    match response.body {
        Some(ResponseBodyOwned::InitProducerId {
            error,
            message,
            producer_id,
            producer_epoch,
        }) => {
            assert_eq!(error, ErrorCode::None, "{message}");
            (producer_id, producer_epoch)
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// A batch of `records` records from producer `id` at `epoch`, first sequence `sequence`.
fn stamped(id: i64, epoch: i16, sequence: i32, records: usize, tag: &str) -> Vec<u8> {
    let mut builder = BatchBuilder::new(1_700_000_000_000).producer(id, epoch, sequence);
    for index in 0..records {
        let value = format!("{tag}-{index}");
        builder.push(None, Some(value.as_bytes()), 1_700_000_000_000, &[]);
    }
    builder.finish()
}

/// Produces one batch to partition 0 of `topic`: (error, base offset, last offset).
fn produce_one(client: &mut RawClient, topic: &str, batch: &[u8]) -> (ErrorCode, u64, u64) {
    let results = produce_results(client, topic, &[(0, batch.to_vec())], Acks::Durable);
    (
        results[0].error,
        results[0].base_offset,
        results[0].last_offset,
    )
}

fn stored_batches(client: &mut RawClient, topic: &str) -> usize {
    fetch_all(client, topic, 0, 0).len()
}

#[test]
fn producer_ids_are_unique_across_restarts() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    let first = init_producer_id(&mut client);
    let second = init_producer_id(&mut client);
    assert_eq!(first.1, 0, "a new id starts at epoch 0");
    assert!(second.0 > first.0, "{second:?} after {first:?}");
    broker.kill();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    let third = init_producer_id(&mut client);
    assert!(
        third.0 > second.0,
        "{third:?} after a crash, {second:?} before"
    );
    broker.stop();
}

#[test]
fn a_resent_batch_gets_its_original_offsets_and_is_not_stored_again() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "t", 1);
    let (id, epoch) = init_producer_id(&mut client);
    let first = stamped(id, epoch, 0, 5, "a");
    let second = stamped(id, epoch, 5, 3, "b");
    assert_eq!(
        produce_one(&mut client, "t", &first),
        (ErrorCode::None, 0, 4)
    );
    assert_eq!(
        produce_one(&mut client, "t", &second),
        (ErrorCode::None, 5, 7)
    );
    // Both retried, in any order: the original offsets, nothing stored.
    assert_eq!(
        produce_one(&mut client, "t", &first),
        (ErrorCode::None, 0, 4)
    );
    assert_eq!(
        produce_one(&mut client, "t", &second),
        (ErrorCode::None, 5, 7)
    );
    assert_eq!(stored_batches(&mut client, "t"), 2);

    // A gap in the sequence, an older epoch, an unknown producer: refused, nothing stored.
    let gap = stamped(id, epoch, 9, 1, "gap");
    assert_eq!(
        produce_one(&mut client, "t", &gap).0,
        ErrorCode::OutOfOrderSequence
    );
    let newer = stamped(id, epoch + 1, 0, 1, "newer");
    assert_eq!(
        produce_one(&mut client, "t", &newer),
        (ErrorCode::None, 8, 8)
    );
    let older = stamped(id, epoch, 8, 1, "older");
    assert_eq!(
        produce_one(&mut client, "t", &older).0,
        ErrorCode::ProducerFenced
    );
    let unknown = stamped(id + 1_000_000, 0, 3, 1, "unknown");
    assert_eq!(
        produce_one(&mut client, "t", &unknown).0,
        ErrorCode::UnknownProducerId
    );
    assert_eq!(stored_batches(&mut client, "t"), 3);
    // Batches without a producer id are never checked: the same bytes twice are two batches.
    let plain = common::batch("plain", 2);
    assert_eq!(
        produce_one(&mut client, "t", &plain),
        (ErrorCode::None, 9, 10)
    );
    assert_eq!(
        produce_one(&mut client, "t", &plain),
        (ErrorCode::None, 11, 12)
    );
    broker.stop();
}

/// Stores two batches, stops the broker with `stop` (a crash or a clean stop), restarts it,
/// and resends the second batch: it must come back with its original offsets, stored once.
fn retry_across_a_restart(stop: impl FnOnce(Broker)) {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "t", 1);
    let (id, epoch) = init_producer_id(&mut client);
    let first = stamped(id, epoch, 0, 4, "a");
    let second = stamped(id, epoch, 4, 4, "b");
    assert_eq!(
        produce_one(&mut client, "t", &first),
        (ErrorCode::None, 0, 3)
    );
    assert_eq!(
        produce_one(&mut client, "t", &second),
        (ErrorCode::None, 4, 7)
    );
    stop(broker);

    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    assert_eq!(
        produce_one(&mut client, "t", &second),
        (ErrorCode::None, 4, 7)
    );
    assert_eq!(
        produce_one(&mut client, "t", &first),
        (ErrorCode::None, 0, 3)
    );
    assert_eq!(stored_batches(&mut client, "t"), 2);
    let third = stamped(id, epoch, 8, 1, "c");
    assert_eq!(
        produce_one(&mut client, "t", &third),
        (ErrorCode::None, 8, 8)
    );
    broker.stop();
}

#[test]
fn a_retry_after_kill_9_is_still_deduplicated() {
    retry_across_a_restart(Broker::kill);
}

#[test]
fn a_retry_after_a_clean_restart_is_still_deduplicated() {
    retry_across_a_restart(Broker::stop);
}

/// Forwards one client connection to `broker`, dropping the first `drop_max` produce
/// responses. Counts the produce requests it forwarded.
struct Proxy {
    address: SocketAddr,
    dropped: Arc<AtomicUsize>,
    produce_requests: Arc<AtomicUsize>,
}

/// Reads one frame (prefix + body) from `stream`; None at the end of the stream.
fn read_frame(stream: &mut TcpStream) -> Option<(Vec<u8>, wire::FrameHeader)> {
    let mut prefix = [0u8; wire::FRAME_PREFIX_BYTES];
    stream.read_exact(&mut prefix).ok()?;
    let header = wire::FrameHeader::parse(&prefix, u32::MAX).expect("valid prefix");
    let mut frame = prefix.to_vec();
    frame.resize(wire::FRAME_PREFIX_BYTES + header.body_bytes(), 0);
    stream
        .read_exact(&mut frame[wire::FRAME_PREFIX_BYTES..])
        .ok()?;
    Some((frame, header))
}

impl Proxy {
    fn start(broker: SocketAddr, drop_max: usize) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let dropped = Arc::new(AtomicUsize::new(0));
        let produce_requests = Arc::new(AtomicUsize::new(0));
        let (dropped_count, request_count) = (dropped.clone(), produce_requests.clone());
        std::thread::spawn(move || {
            let (mut client, _) = listener.accept().expect("accept");
            let mut upstream = TcpStream::connect(broker).expect("connect to the broker");
            let (mut client_in, mut upstream_out) = (
                client.try_clone().expect("clone"),
                upstream.try_clone().expect("clone"),
            );
            std::thread::spawn(move || {
                let limits = DecodeLimits::default();
                while let Some((frame, header)) = read_frame(&mut client_in) {
                    let message = &frame[wire::FRAME_PREFIX_BYTES..][header.message_range()];
                    let request = wire::decode_request(message, &limits).expect("request");
                    if request.body_type() == schema::generated::RequestBody::ProduceRequest {
                        request_count.fetch_add(1, Ordering::SeqCst);
                    }
                    if upstream_out.write_all(&frame).is_err() {
                        break;
                    }
                }
            });
            let limits = DecodeLimits::default();
            while let Some((frame, header)) = read_frame(&mut upstream) {
                let message = &frame[wire::FRAME_PREFIX_BYTES..][header.message_range()];
                let response = wire::decode_response(message, &limits).expect("response");
                let is_produce =
                    response.body_type() == schema::generated::ResponseBody::ProduceResponse;
                if is_produce && dropped_count.load(Ordering::SeqCst) < drop_max {
                    dropped_count.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                if client.write_all(&frame).is_err() {
                    break;
                }
            }
        });
        Proxy {
            address,
            dropped,
            produce_requests,
        }
    }
}

#[test]
fn a_producer_whose_responses_are_swallowed_leaves_no_duplicate() {
    const RECORDS: usize = 300;
    const DROPPED: usize = 3;
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut raw = RawClient::connect(broker.address);
    create_topic(&mut raw, "t", 2);
    let proxy = Proxy::start(broker.address, DROPPED);

    let executor = glommio::LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .make()
        .expect("executor");
    let delivered: BTreeMap<String, (u32, u64)> = executor.run(async move {
        let options = ClientOptions {
            request_timeout: Duration::from_millis(500),
            ..ClientOptions::default()
        };
        let client = Rc::new(
            Client::connect(proxy.address, options)
                .await
                .expect("connect through the proxy"),
        );
        let producer = Producer::new(
            client.clone(),
            ProducerOptions {
                batch_bytes: 1 << 10,
                linger: Duration::from_millis(1),
                retry_backoff: Duration::from_millis(10),
                ..ProducerOptions::default()
            },
        );
        let mut deliveries = Vec::new();
        for index in 0..RECORDS {
            let value = format!("value-{index:04}");
            let record =
                ProducerRecord::new("t", Bytes::from(value.clone())).key(format!("k{index}"));
            deliveries.push((value, producer.send(record).await.expect("queued")));
        }
        producer.flush().await;
        let mut delivered = BTreeMap::new();
        for (value, delivery) in deliveries {
            let stored = delivery.await.expect("every record is acknowledged");
            let offset = stored.offset.expect("acks durable give offsets");
            delivered.insert(value, (stored.partition, offset));
        }
        assert_eq!(
            proxy.dropped.load(Ordering::SeqCst),
            DROPPED,
            "responses swallowed"
        );
        assert!(
            proxy.produce_requests.load(Ordering::SeqCst) > DROPPED,
            "the producer resent what it got no answer for"
        );
        delivered
    });
    assert_eq!(delivered.len(), RECORDS);

    // The log holds every record exactly once, at the offset its producer was told.
    let mut stored: BTreeMap<String, Vec<(u32, u64)>> = BTreeMap::new();
    for partition in 0..2 {
        for batch in fetch_all(&mut raw, "t", partition, 0) {
            let header = schema::batch::verify(&batch).expect("valid");
            for record in schema::batch::records(&batch).expect("records") {
                let record = record.expect("record");
                let value = String::from_utf8(record.value.expect("value").to_vec()).unwrap();
                let offset = header.base_offset as u64 + record.offset_delta as u64;
                stored.entry(value).or_default().push((partition, offset));
            }
        }
    }
    let duplicated: Vec<_> = stored.iter().filter(|(_, at)| at.len() > 1).collect();
    assert!(duplicated.is_empty(), "duplicates: {duplicated:?}");
    let stored: BTreeMap<String, (u32, u64)> = stored
        .into_iter()
        .map(|(value, at)| (value, at[0]))
        .collect();
    assert_eq!(stored, delivered);
    broker.stop();
}

/// A compressed batch of `records` records as a producer sends one: the header of
/// [`stamped`] (producer fields, recordCount, lastOffsetDelta) around `blob`, which stands for
/// the compressed records, with the codec bits set and the CRC resealed. The broker never
/// decompresses, so the blob need not decompress: a broker that looked inside would refuse it.
fn compressed(
    id: i64,
    epoch: i16,
    sequence: i32,
    records: usize,
    codec: i16,
    blob: &[u8],
) -> Vec<u8> {
    use schema::batch::{HEADER_BYTES, LENGTH_PREFIX_BYTES, compute_crc, field};
    let mut batch = stamped(id, epoch, sequence, records, "unused");
    batch.truncate(HEADER_BYTES);
    batch.extend_from_slice(blob);
    let batch_length = i32::try_from(batch.len() - LENGTH_PREFIX_BYTES).expect("small");
    batch[field::BATCH_LENGTH..field::BATCH_LENGTH + 4]
        .copy_from_slice(&batch_length.to_be_bytes());
    batch[field::ATTRIBUTES..field::ATTRIBUTES + 2].copy_from_slice(&codec.to_be_bytes());
    let crc = compute_crc(&batch);
    batch[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    batch
}

/// Compressed batches (#12) are stored and served byte for byte, re-based only, through a
/// restart, and an idempotent producer's compressed batches go through the same sequence
/// checks as uncompressed ones (the sequences are in the header, which is never compressed).
#[test]
fn compressed_batches_are_stored_as_sent_and_keep_producer_state_checks() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "z", 1);
    let (id, epoch) = init_producer_id(&mut client);
    let mut expected = Vec::new();
    let mut next_offset = 0u64;
    let mut sequence = 0i32;
    // gzip, snappy, lz4, zstd; blobs that are no valid records section (and no valid stream).
    for codec in 1..=4i16 {
        let blob: Vec<u8> = (0..100u8)
            .map(|b| b.wrapping_mul(37) ^ codec as u8)
            .collect();
        let batch = compressed(id, epoch, sequence, 4, codec, &blob);
        assert_eq!(
            produce_one(&mut client, "z", &batch),
            (ErrorCode::None, next_offset, next_offset + 3),
            "codec {codec}"
        );
        // Resent (a lost acknowledgement): the original offsets, not stored again.
        assert_eq!(
            produce_one(&mut client, "z", &batch),
            (ErrorCode::None, next_offset, next_offset + 3),
            "codec {codec} resent"
        );
        let mut stored = batch.clone();
        schema::batch::set_base_offset(&mut stored, next_offset as i64);
        expected.push(stored);
        next_offset += 4;
        sequence += 4;
    }
    // A sequence gap is refused for a compressed batch as for any other.
    let gap = compressed(id, epoch, sequence + 1, 2, 3, b"gap");
    assert_eq!(
        produce_one(&mut client, "z", &gap).0,
        ErrorCode::OutOfOrderSequence
    );
    // Codec 5-7 names nothing: refused, nothing stored.
    let unknown_codec = compressed(id, epoch, sequence, 2, 5, b"x");
    assert_eq!(
        produce_one(&mut client, "z", &unknown_codec).0,
        ErrorCode::InvalidBatch
    );
    // A flipped bit in the compressed bytes is caught by the CRC.
    let mut flipped = compressed(id, epoch, sequence, 2, 4, b"flipped");
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    assert_eq!(
        produce_one(&mut client, "z", &flipped).0,
        ErrorCode::InvalidBatch
    );
    assert_eq!(fetch_all(&mut client, "z", 0, 0), expected, "byte for byte");
    broker.stop();

    // Recovery re-verifies the stored batches: compressed ones load and serve unchanged.
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    assert_eq!(
        fetch_all(&mut client, "z", 0, 0),
        expected,
        "after a restart"
    );
    broker.stop();
}
