//! Goal: an accelerated soak. Every long-lived task of the broker is woken hundreds of
//! thousands to millions of times in about a minute, with no new connection, and the broker
//! still serves old and new connections and stops cleanly afterwards. The bug this would have
//! caught (issue #15): a shard that polled a stop flag every 50 ms re-polled its pending accept
//! each time, and glommio 0.9 panicked once the accept held 32,767 wakers (27 minutes).
//!
//! Method: start the real binary on 2 shards with a 500 us tick (the partitions' and the
//! group coordinator's timers, normally 100 ms: 200x faster) and the metrics endpoint, so
//! each shard holds pending accepts on two listeners for the whole run. Keep long-lived
//! connections: one that produces and long-polls fetches in a loop (fetch waits of 1 ms wake
//! the partitions' waiters and the handler's timer race), one idle, and a CLI group consumer
//! heartbeating every 100 ms. Then: the idle connection and a new one are served, the tick
//! counter proves the wake-ups happened, the consumer leaves cleanly, the broker stops on
//! SIGTERM with exit 0.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Broker, RawClient, batch, create_topic, data_dir, fetch_all, produce, scrape, sum};
use schema::wire::{Acks, ErrorCode, FetchPartitionOwned, RequestBodyOwned, ResponseBodyOwned};

const TICK_US: u64 = 500;
const RUN: Duration = Duration::from_secs(60);
const PARTITIONS: u32 = 4;

fn long_poll(client: &mut RawClient, partition: u32, offset: u64) -> ErrorCode {
    let (response, _) = client.request(
        &RequestBodyOwned::Fetch {
            wait_ms_max: 1,
            bytes_min: 1,
            bytes_max: 1 << 20,
            partitions: vec![FetchPartitionOwned {
                topic: "soak".to_string(),
                partition,
                offset,
                bytes_max: 1 << 20,
            }],
        },
        &[],
    );
    match response.body {
        Some(ResponseBodyOwned::Fetch { results, .. }) => results[0].error,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn every_long_lived_task_survives_an_accelerated_soak() {
    let dir = data_dir();
    let tick = TICK_US.to_string();
    let mut broker = Broker::start_with_args(
        dir.path(),
        &[
            "--tick-interval-us",
            &tick,
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let mut busy = RawClient::connect(broker.address);
    let mut idle = RawClient::connect(broker.address);
    create_topic(&mut busy, "soak", PARTITIONS);
    let mut consumer = Command::new(env!("CARGO_BIN_EXE_ringbus"))
        .args(["consume", "--broker", &broker.address.to_string()])
        .args(["--topic", "soak", "--group", "soak-group"])
        .args([
            "--session-timeout-ms",
            "1000",
            "--heartbeat-interval-ms",
            "100",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the group consumer");

    let started = Instant::now();
    let mut produced = 0u64;
    let mut polls = 0u64;
    let mut ends = [0u64; PARTITIONS as usize];
    while started.elapsed() < RUN {
        let partition = (produced % u64::from(PARTITIONS)) as u32;
        let results = produce(
            &mut busy,
            "soak",
            &[(partition, batch("soak", 1))],
            Acks::Written,
        );
        assert_eq!(results[0].0, ErrorCode::None);
        ends[partition as usize] = results[0].1 + 1;
        produced += 1;
        // Waits at the log end: times out after 1 ms (a timer raced against the waiters).
        for _ in 0..10 {
            assert_eq!(
                long_poll(&mut busy, partition, ends[partition as usize]),
                ErrorCode::None
            );
            polls += 1;
        }
    }

    assert!(broker.is_running(), "the broker died during the soak");
    let metrics = scrape(broker.metrics_address.expect("metrics address"));
    let ticks = sum(&metrics, "ringbus_ticks_total", &[]) as u64;
    // The group's coordinator shard ticks every 500 us (the other, with no group, every
    // 5 ms): 120,000 in 60 s on an idle machine; a loaded 2-core machine (this test's own
    // client, the consumer, a debug build) gets fewer. The partitions being written (4 here,
    // and the group's offsets partition) tick at the same rate, each in its own task.
    let expected = RUN.as_micros() as u64 / TICK_US / 4;
    assert!(
        ticks >= expected,
        "only {ticks} ticks, expected at least {expected}"
    );
    eprintln!(
        "accelerated soak: {ticks} shard ticks (about {} partition ticks), {produced} produces, \
         {polls} long polls",
        ticks * (1 + u64::from(PARTITIONS))
    );

    // The idle connection and a new one are both served.
    for client in [&mut idle, &mut RawClient::connect(broker.address)] {
        for (partition, end) in ends.iter().enumerate() {
            let batches = fetch_all(client, "soak", partition as u32, 0);
            assert_eq!(batches.len() as u64, *end, "partition {partition}");
        }
    }

    // The group consumer is still a member: it leaves cleanly on SIGTERM.
    // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
    unsafe { libc::kill(consumer.id() as i32, libc::SIGTERM) };
    let mut printed = String::new();
    consumer
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut printed)
        .expect("the consumer's output");
    let status = consumer.wait().expect("the consumer exits");
    assert!(status.success(), "group consumer exited with {status}");
    assert!(
        printed.lines().count() as u64 >= produced / 2,
        "the group consumer printed {} of {produced} records",
        printed.lines().count()
    );
    broker.stop();
}
