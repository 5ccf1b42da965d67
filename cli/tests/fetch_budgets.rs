//! Goal: a long-poll whose partitions stopped at their byte budgets answers at once, without
//! holding the shard until its deadline; and a fetch whose partitions are read concurrently
//! still lets the first partition in request order, not the first to answer, take the bytes.
//!
//! Method: start the real binary and speak the raw wire protocol.
//! 1. One partition holding three 20 KiB batches; a fetch asks for at most 25,000 bytes of it
//!    and at least 60,000 in all, waiting up to 10 s. Only one batch fits the partition's
//!    budget, so waiting cannot add bytes: the answer must come at once (it used to come at
//!    the deadline, the shard spinning meanwhile; while it waits, a second connection's
//!    request must still be answered).
//! 2. Restart the broker, so partition 0's batch is on disk only, and write a 16 KiB batch
//!    to partition 1 (in the recent-batch cache). A fetch of [0, 1] whose budget holds
//!    partition 0's batch but not both must answer partition 0's (a one-by-one read would),
//!    not partition 1's, which answered first.
//!
//! And a fetch whose budget is spent stops reading: eight partitions hold a 20 KiB batch
//! each, on disk only (after a restart); a fetch of all eight with room for one batch must
//! send at most two reads to the logs (`ringbus_fetch_reads_total`): the batch it returns and
//! the one that did not fit. It used to read all eight, one per wave, each read's batch
//! thrown away.

mod common;

use std::time::{Duration, Instant};

use common::{Broker, RawClient, create_topic, data_dir, produce, scrape, sum};
use schema::wire::{Acks, ErrorCode, FetchPartitionOwned, RequestBodyOwned, ResponseBodyOwned};

fn batch_of(bytes: usize) -> Vec<u8> {
    let mut builder = schema::batch::BatchBuilder::new(1_700_000_000_000);
    builder.push(None, Some(&vec![b'v'; bytes]), 1_700_000_000_000, &[]);
    builder.finish().to_vec()
}

fn fetch(
    client: &mut RawClient,
    topic: &str,
    asks: &[(u32, u32)],
    bytes_min: u32,
    bytes_max: u32,
    wait_ms_max: u32,
) -> Vec<(ErrorCode, u32)> {
    let partitions = asks
        .iter()
        .map(|&(partition, partition_bytes)| FetchPartitionOwned {
            topic: topic.to_string(),
            partition,
            offset: 0,
            bytes_max: partition_bytes,
        })
        .collect();
    let request = RequestBodyOwned::Fetch {
        wait_ms_max,
        bytes_min,
        bytes_max,
        partitions,
    };
    let (response, _) = client.request(&request, &[]);
    let Some(ResponseBodyOwned::Fetch { results, .. }) = response.body else {
        panic!("unexpected {:?}", response.body);
    };
    results
        .iter()
        .map(|result| (result.error, result.batches.length()))
        .collect()
}

#[test]
fn budget_bound_long_polls_answer_at_once_and_request_order_wins() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "budgets", 2);
    for _ in 0..3 {
        let stored = produce(
            &mut client,
            "budgets",
            &[(0, batch_of(20 << 10))],
            Acks::Written,
        );
        assert_eq!(stored[0].0, ErrorCode::None);
    }

    // 1. Stopped at the partition's budget, below bytes_min: answered at once.
    let address = broker.address;
    let started = Instant::now();
    let other = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let mut other = RawClient::connect(address);
        let asked = Instant::now();
        let (response, _) = other.request(&RequestBodyOwned::Metadata { topics: vec![] }, &[]);
        assert_eq!(response.error, ErrorCode::None);
        asked.elapsed()
    });
    let results = fetch(
        &mut client,
        "budgets",
        &[(0, 25_000)],
        60_000,
        1 << 20,
        10_000,
    );
    let waited = started.elapsed();
    assert_eq!(results[0].0, ErrorCode::None);
    assert!(results[0].1 > 0 && results[0].1 < 25_000, "{results:?}");
    assert!(
        waited < Duration::from_secs(5),
        "a fetch that could not get more waited {waited:?} for its 10 s deadline"
    );
    let metadata = other.join().expect("the metadata thread");
    assert!(
        metadata < Duration::from_secs(2),
        "another connection waited {metadata:?} for the shard"
    );

    // 2. After a restart partition 0 is on disk only; partition 1's batch is in the cache.
    broker.stop();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    let stored = produce(
        &mut client,
        "budgets",
        &[(1, batch_of(16 << 10))],
        Acks::Written,
    );
    assert_eq!(stored[0].0, ErrorCode::None);
    // Partition 0 may take 25,000 bytes (one 20 KiB batch), the request 30,000: partition 1's
    // 16 KiB batch does not fit beside it.
    let results = fetch(
        &mut client,
        "budgets",
        &[(0, 25_000), (1, 1 << 20)],
        0,
        30_000,
        0,
    );
    assert_eq!(results[0].0, ErrorCode::None);
    assert_eq!(results[1].0, ErrorCode::None);
    assert!(
        results[0].1 > 20_000,
        "the first partition in request order lost its batch: {results:?}"
    );
    assert_eq!(
        results[1].1, 0,
        "the second partition went over: {results:?}"
    );
    broker.stop();
}

#[test]
fn a_fetch_whose_budget_is_spent_stops_reading() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "spent", 8);
    for partition in 0..8 {
        let stored = produce(
            &mut client,
            "spent",
            &[(partition, batch_of(20 << 10))],
            Acks::Written,
        );
        assert_eq!(stored[0].0, ErrorCode::None);
    }
    broker.stop();
    let broker = Broker::start_with_args(dir.path(), &["--metrics-listen", "127.0.0.1:0"]);
    let metrics = broker.metrics_address.expect("metrics address printed");
    let mut client = RawClient::connect(broker.address);
    let reads = || sum(&scrape(metrics), "ringbus_fetch_reads_total", &[]);
    let before = reads();
    let asks: Vec<(u32, u32)> = (0..8).map(|partition| (partition, 1 << 20)).collect();
    let results = fetch(&mut client, "spent", &asks, 0, 25_000, 0);
    let read = reads() - before;
    assert!(
        results.iter().all(|(error, _)| *error == ErrorCode::None),
        "{results:?}"
    );
    assert!(
        results[0].1 > 20_000,
        "the first partition's batch: {results:?}"
    );
    assert!(
        results[1..].iter().all(|(_, bytes)| *bytes == 0),
        "one batch fits: {results:?}"
    );
    assert!(
        read <= 2.0,
        "{read} partition reads for a fetch with room for one batch"
    );
    broker.stop();
}
