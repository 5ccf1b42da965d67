//! Goal: a broker started with a lowered `--frame-bytes-max` announces that limit in the
//! handshake (it used to announce the default, so clients sent frames the broker refused), and
//! a client that honours it stays within it: a CLI producer whose records would make frames
//! over the limit fails with a clear error, and the broker keeps serving.
//!
//! Method: start the real binary with `--frame-bytes-max 65536`, handshake over the raw wire
//! protocol and read the announced limit; then produce records of 100 KiB through `ringbus
//! produce`, which must refuse them itself (the frame would exceed the announced limit) and
//! exit non-zero, and check the broker still answers a request; then store ten 10 KiB
//! batches and fetch with no byte limit: the answer fits the frame, and a consumer reads
//! every batch a frame at a time.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{Broker, RawClient, create_topic, data_dir, fetch_all, produce};
use schema::wire::{Acks, ErrorCode, FetchPartitionOwned, RequestBodyOwned, ResponseBodyOwned};

const FRAME_BYTES_MAX: u32 = 64 << 10;

#[test]
fn the_handshake_announces_the_configured_frame_limit() {
    let dir = data_dir();
    let limit = FRAME_BYTES_MAX.to_string();
    let broker = Broker::start_with_args(dir.path(), &["--frame-bytes-max", &limit]);
    let mut client = RawClient::connect(broker.address);
    let (response, _) = client.request(
        &RequestBodyOwned::Handshake {
            version: schema::wire::PROTOCOL_VERSION,
            client_id: "frame-limit-test".to_string(),
        },
        &[],
    );
    match response.body {
        Some(ResponseBodyOwned::Handshake {
            error,
            frame_bytes_max,
            ..
        }) => {
            assert_eq!(error, ErrorCode::None);
            assert_eq!(frame_bytes_max, FRAME_BYTES_MAX);
        }
        other => panic!("unexpected {other:?}"),
    }
    create_topic(&mut client, "limited", 1);

    // A record of 100 KiB cannot fit a 64 KiB frame: the producer must say so, not send it.
    let mut producer = Command::new(env!("CARGO_BIN_EXE_ringbus"))
        .args(["produce", "--broker", &broker.address.to_string()])
        .args(["--topic", "limited", "--acks", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the producer");
    let line = "x".repeat(100 << 10);
    producer
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{line}\n").as_bytes())
        .expect("write a record");
    let output = producer.wait_with_output().expect("the producer exits");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "a record over the frame limit was accepted: {stderr}"
    );
    assert!(
        stderr.contains("frame") || stderr.contains("too large"),
        "no clear reason: {stderr}"
    );

    // The broker is unharmed.
    let (response, _) = client.request(&RequestBodyOwned::Metadata { topics: vec![] }, &[]);
    assert_eq!(response.error, ErrorCode::None);

    // A fetch asking for more than a frame holds gets a full frame, not a response the broker
    // cannot send (the connection used to close, and a consumer reconnected for ever).
    let value = vec![b'v'; 10 << 10];
    for _ in 0..10 {
        let mut builder = schema::batch::BatchBuilder::new(1_700_000_000_000);
        builder.push(None, Some(&value), 1_700_000_000_000, &[]);
        let stored = produce(
            &mut client,
            "limited",
            &[(0, builder.finish())],
            Acks::Written,
        );
        assert_eq!(stored[0].0, ErrorCode::None);
    }
    let (response, payload) = client.request(
        &RequestBodyOwned::Fetch {
            wait_ms_max: 0,
            bytes_min: 0,
            bytes_max: u32::MAX,
            partitions: vec![FetchPartitionOwned {
                topic: "limited".to_string(),
                partition: 0,
                offset: 0,
                bytes_max: u32::MAX,
            }],
        },
        &[],
    );
    let Some(ResponseBodyOwned::Fetch { results, .. }) = response.body else {
        panic!("unexpected {:?}", response.body);
    };
    assert_eq!(results[0].error, ErrorCode::None, "{}", results[0].message);
    let returned = results[0].batches.length() as usize;
    assert!(returned > 0, "the fetch returned nothing");
    assert!(
        payload.len() < FRAME_BYTES_MAX as usize,
        "{} bytes of batches in a {FRAME_BYTES_MAX}-byte frame",
        payload.len()
    );
    assert_eq!(
        fetch_all(&mut client, "limited", 0, 0).len(),
        10,
        "every batch, a frame at a time"
    );

    // Two partitions: the first fills the response to within less than a batch of its
    // budget; the second's batch must wait for the next fetch (only the first partition with
    // data may exceed the budget), or the response outgrows the frame.
    create_topic(&mut client, "two", 2);
    let value = vec![b'w'; 19_400];
    for partition in [0, 0, 0, 1] {
        let mut builder = schema::batch::BatchBuilder::new(1_700_000_000_000);
        builder.push(None, Some(&value), 1_700_000_000_000, &[]);
        let stored = produce(
            &mut client,
            "two",
            &[(partition, builder.finish())],
            Acks::Written,
        );
        assert_eq!(stored[0].0, ErrorCode::None);
    }
    let partitions = (0..2)
        .map(|partition| FetchPartitionOwned {
            topic: "two".to_string(),
            partition,
            offset: 0,
            bytes_max: u32::MAX,
        })
        .collect();
    let request = RequestBodyOwned::Fetch {
        wait_ms_max: 0,
        bytes_min: 0,
        bytes_max: u32::MAX,
        partitions,
    };
    let (response, payload) = client.request(&request, &[]);
    let Some(ResponseBodyOwned::Fetch { results, .. }) = response.body else {
        panic!("unexpected {:?}", response.body);
    };
    assert!(payload.len() < FRAME_BYTES_MAX as usize);
    assert_eq!(results[1].batches.length(), 0, "the second partition waits");
    assert_eq!(fetch_all(&mut client, "two", 1, 0).len(), 1);
    broker.stop();
}
