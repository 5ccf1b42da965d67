//! Goal: the broker's protocol contract against the real binary (2 shards, 127.0.0.1, OS-chosen
//! port): produce and fetch move stored bytes unchanged, bad input costs only its sender, an
//! acks=all record survives kill -9, and a clean restart keeps everything.
//!
//! Method: a blocking wire-protocol client (tests/common) talks to `ringbus serve`; every
//! check compares broker answers with what the test sent.

mod common;

use common::{Broker, RawClient, batch, create_topic, data_dir, fetch_all, produce};
use schema::wire::{Acks, ErrorCode, FetchPartitionOwned, RequestBodyOwned};

/// The batch as stored: only baseOffset (bytes 0..8) differs from what the producer sent.
fn with_base_offset(mut batch: Vec<u8>, base: u64) -> Vec<u8> {
    schema::batch::set_base_offset(&mut batch, base as i64);
    batch
}

#[test]
fn produced_bytes_come_back_unchanged_from_every_partition_on_both_shards() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "events", 8);
    let mut sent = Vec::new();
    for round in 0..3 {
        let batches: Vec<(u32, Vec<u8>)> = (0..8)
            .map(|partition| (partition, batch(&format!("p{partition}-r{round}"), 5)))
            .collect();
        let results = produce(&mut client, "events", &batches, Acks::Durable);
        for ((partition, bytes), (error, base)) in batches.into_iter().zip(results) {
            assert_eq!(error, ErrorCode::None);
            assert_eq!(base, round * 5, "offsets are per partition and contiguous");
            sent.push((partition, with_base_offset(bytes, base)));
        }
    }
    for partition in 0..8 {
        let expected: Vec<Vec<u8>> = sent
            .iter()
            .filter(|(p, _)| *p == partition)
            .map(|(_, bytes)| bytes.clone())
            .collect();
        assert_eq!(fetch_all(&mut client, "events", partition, 0), expected);
    }
    broker.stop();

    // A clean restart serves the same bytes.
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    for partition in 0..8 {
        assert_eq!(fetch_all(&mut client, "events", partition, 0).len(), 3);
    }
    broker.stop();
}

/// A request's batches for one partition go to its actor together (one round, or rounds of
/// about 2 MiB when they are large): they must still be stored in request order, each
/// answered with its own offsets, and a bad one among them refused alone. Every fourth batch
/// carries 300 KiB, so the request (about 3 MiB per partition) spans several rounds.
#[test]
fn many_batches_of_one_partition_in_one_request_are_stored_in_order() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "many", 2);
    let mut batches: Vec<(u32, Vec<u8>)> = Vec::new();
    for index in 0..40u32 {
        let partition = index % 2;
        let mut bytes = if index % 4 == 3 {
            let mut builder = schema::batch::BatchBuilder::new(1_700_000_000_000);
            for record in 0..3u8 {
                builder.push(None, Some(&[record; 100 << 10]), 1_700_000_000_000, &[]);
            }
            builder.finish()
        } else {
            batch(&format!("b{index}"), 3)
        };
        if index == 17 {
            let last = bytes.len() - 1;
            bytes[last] ^= 0xff;
        }
        batches.push((partition, bytes));
    }
    let results = produce(&mut client, "many", &batches, Acks::Written);
    let mut next = [0u64; 2];
    let mut stored: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
    for (index, ((partition, bytes), (error, base))) in batches.into_iter().zip(results).enumerate()
    {
        if index == 17 {
            assert_eq!(
                error,
                ErrorCode::InvalidBatch,
                "the corrupt batch alone is refused"
            );
            continue;
        }
        assert_eq!(error, ErrorCode::None, "batch {index}");
        let partition = partition as usize;
        assert_eq!(
            base, next[partition],
            "batch {index}: request order, contiguous offsets"
        );
        next[partition] += 3;
        stored[partition].push(with_base_offset(bytes, base));
    }
    for (partition, expected) in stored.iter().enumerate() {
        assert_eq!(
            &fetch_all(&mut client, "many", partition as u32, 0),
            expected
        );
    }
    broker.stop();
}

#[test]
fn bad_batches_and_unknown_partitions_get_their_own_errors_and_store_nothing() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "t", 2);
    let mut corrupt = batch("x", 3);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let results = produce(
        &mut client,
        "t",
        &[(0, batch("good", 2)), (1, corrupt), (7, batch("y", 1))],
        Acks::Durable,
    );
    assert_eq!(results[0], (ErrorCode::None, 0));
    assert_eq!(results[1].0, ErrorCode::InvalidBatch);
    assert_eq!(results[2].0, ErrorCode::UnknownPartition);
    assert!(
        fetch_all(&mut client, "t", 1, 0).is_empty(),
        "nothing of the bad batch stored"
    );
    let results = produce(&mut client, "missing", &[(0, batch("z", 1))], Acks::Written);
    assert_eq!(results[0].0, ErrorCode::UnknownTopic);
    broker.stop();
}

#[test]
fn malformed_frames_cost_only_their_sender_while_another_client_produces() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let address = broker.address;
    let mut setup = RawClient::connect(address);
    create_topic(&mut setup, "steady", 2);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut client = RawClient::connect(address);
            let mut acknowledged = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || acknowledged < 20 {
                let results = produce(&mut client, "steady", &[(0, batch("s", 1))], Acks::Written);
                assert_eq!(results[0], (ErrorCode::None, acknowledged));
                acknowledged += 1;
            }
            acknowledged
        })
    };

    // Garbage: random bytes. The broker closes that connection.
    let mut garbage = RawClient::connect(address);
    let mut state = 0x1234_5678_u64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let _ = garbage.send_raw(&noise);
    assert!(garbage.receive().is_none() || garbage.receive().is_none());

    // An oversized frame: refused from its prefix, before any body is read.
    let mut oversized = RawClient::connect(address);
    let mut prefix = (1u32 << 30).to_le_bytes().to_vec();
    prefix.extend_from_slice(&16u32.to_le_bytes());
    let _ = oversized.send_raw(&prefix);
    assert!(oversized.receive().is_none(), "connection closed");

    // A valid prefix around bytes that are not a flatbuffer: an error response, then close.
    let mut invalid = RawClient::connect(address);
    let message = [0xffu8; 64];
    let mut frame = wire_prefix(message.len(), 0);
    frame.extend_from_slice(&message);
    let _ = invalid.send_raw(&frame);
    if let Some((response, _)) = invalid.receive() {
        assert_eq!(response.error, ErrorCode::InvalidRequest);
    }
    assert!(
        invalid.receive().is_none(),
        "connection closed after the error"
    );

    // A truncated frame, then the client vanishes mid-request.
    let mut truncated = RawClient::connect(address);
    let mut frame = wire_prefix(100, 1000);
    frame.extend_from_slice(&[1, 2, 3]);
    let _ = truncated.send_raw(&frame);
    drop(truncated);

    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let acknowledged = producer
        .join()
        .expect("the steady producer was never disturbed");
    let mut check = RawClient::connect(address);
    let stored: usize = fetch_all(&mut check, "steady", 0, 0).len();
    assert_eq!(
        stored as u64, acknowledged,
        "every acknowledged record is stored"
    );
    broker.stop();
}

fn wire_prefix(message_bytes: usize, payload_bytes: usize) -> Vec<u8> {
    let frame_bytes = (4 + message_bytes + payload_bytes) as u32;
    let mut prefix = frame_bytes.to_le_bytes().to_vec();
    prefix.extend_from_slice(&(message_bytes as u32).to_le_bytes());
    prefix
}

#[test]
fn acks_all_records_survive_kill_9() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "durable", 4);
    let mut acknowledged = [0u64; 4];
    for round in 0..25 {
        let batches: Vec<(u32, Vec<u8>)> = (0..4)
            .map(|partition| (partition, batch(&format!("d{round}"), 3)))
            .collect();
        for ((partition, _), (error, _)) in
            batches
                .iter()
                .zip(produce(&mut client, "durable", &batches, Acks::Durable))
        {
            assert_eq!(error, ErrorCode::None);
            acknowledged[*partition as usize] += 3;
        }
    }
    broker.kill();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    for partition in 0..4u32 {
        let records: u64 = fetch_all(&mut client, "durable", partition, 0)
            .iter()
            .map(|bytes| schema::batch::verify(bytes).expect("whole").record_count as u64)
            .sum();
        assert_eq!(
            records, acknowledged[partition as usize],
            "partition {partition}"
        );
    }
    broker.stop();
}

#[test]
fn shutdown_is_not_held_by_a_parked_long_poll() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "quiet", 2);
    // A fetch that asks to wait as long as the protocol allows, on partitions with no data.
    client.send(
        &RequestBodyOwned::Fetch {
            wait_ms_max: u32::MAX,
            bytes_min: 1,
            bytes_max: 1 << 20,
            partitions: (0..2)
                .map(|partition| FetchPartitionOwned {
                    topic: "quiet".to_string(),
                    partition,
                    offset: 0,
                    bytes_max: 1 << 20,
                })
                .collect(),
        },
        &[],
    );
    // stop() fails the test unless SIGTERM ends the process with status 0 within its bound
    // (30 s, the longest long-poll the broker allows): the parked fetch is answered at close.
    broker.stop();
}
