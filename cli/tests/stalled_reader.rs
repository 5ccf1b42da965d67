//! Goal: a client that sends requests and then stops reading costs only itself, and only for a
//! while: the broker closes the connection once the client has taken no bytes for the idle
//! timeout, instead of holding it (and the responses queued for it) for ever.
//!
//! Method: start the real binary with `--idle-timeout-s 1` and the metrics endpoint, store a
//! few MiB in one partition, then pipeline 64 fetches of 1 MiB each over a raw socket and
//! never read the responses, so the broker's writes stall on a full socket buffer. The broker
//! must close the connection: the test polls the metrics endpoint until no connection is
//! open (bounded by a deadline), then checks the broker still serves a new client.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Broker, RawClient, create_topic, data_dir, produce, scrape, sum};
use schema::wire::{Acks, ErrorCode, FetchPartitionOwned, RequestBodyOwned};

fn connections_open(metrics: SocketAddr) -> u64 {
    sum(&scrape(metrics), "ringbus_connections_open", &[]) as u64
}

/// 100 records of 1 KiB.
fn big_batch() -> Vec<u8> {
    let mut builder = schema::batch::BatchBuilder::new(1_700_000_000_000);
    let value = vec![b'v'; 1024];
    for _ in 0..100 {
        builder.push(None, Some(&value), 1_700_000_000_000, &[]);
    }
    builder.finish()
}

#[test]
fn a_client_that_stops_reading_is_disconnected() {
    let dir = data_dir();
    let broker = Broker::start_with_args(
        dir.path(),
        &["--idle-timeout-s", "1", "--metrics-listen", "127.0.0.1:0"],
    );
    let metrics = broker.metrics_address.expect("metrics address");
    let mut writer = RawClient::connect(broker.address);
    create_topic(&mut writer, "stall", 1);
    // About 6.5 MiB in 64 batches of 100 KiB: each fetch below returns 1 MiB of it, 64 MiB
    // in all, far more than the socket buffers hold.
    for _ in 0..64 {
        let results = produce(&mut writer, "stall", &[(0, big_batch())], Acks::Written);
        assert_eq!(results[0].0, ErrorCode::None);
    }
    drop(writer);

    let mut stalled = RawClient::connect(broker.address);
    for _ in 0..64 {
        stalled.send(
            &RequestBodyOwned::Fetch {
                wait_ms_max: 0,
                bytes_min: 0,
                bytes_max: 1 << 20,
                partitions: vec![FetchPartitionOwned {
                    topic: "stall".to_string(),
                    partition: 0,
                    offset: 0,
                    bytes_max: 1 << 20,
                }],
            },
            &[],
        );
    }
    // Never read. The broker must give up on this connection by itself.
    let deadline = Instant::now() + Duration::from_secs(60);
    while connections_open(metrics) > 0 {
        assert!(
            Instant::now() < deadline,
            "a client that stopped reading still holds its connection"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The broker serves a new client as before.
    let mut fresh = RawClient::connect(broker.address);
    let (response, _) = fresh.request(&RequestBodyOwned::Metadata { topics: vec![] }, &[]);
    assert_eq!(response.error, ErrorCode::None);
    drop(stalled);
    broker.stop();
}
