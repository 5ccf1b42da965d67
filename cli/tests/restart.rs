//! Goal: the command-line clients survive a broker restart (issue #14): a producer and a
//! consumer started against a broker that is then killed with SIGKILL and restarted on the
//! same address keep going on their own; every record the producer had acknowledged is
//! consumed, none twice (the producer is idempotent: a batch resent after the reconnect is
//! recognised), and both exit 0. A broker that stays down longer than `--reconnect-timeout-ms`
//! gets a clear error and a non-zero exit.
//!
//! Method: the real binary for the broker and the clients; the producer reads lines from a
//! pipe the test writes in two halves, one before the kill and one after the restart.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Broker, data_dir};

const RECORDS: usize = 400;

fn ringbus() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ringbus"));
    command.env("RINGBUS_LOG", "warn");
    command
}

#[test]
fn a_producer_and_a_consumer_keep_going_across_a_kill_9_and_restart() {
    let data = data_dir();
    let broker = Broker::start(data.path());
    let address = broker.address.to_string();
    let created = ringbus()
        .args([
            "topic",
            "create",
            "--broker",
            &address,
            "--partitions",
            "3",
            "t",
        ])
        .output()
        .expect("topic create");
    assert!(created.status.success(), "{created:?}");

    let consumer = ringbus()
        .args([
            "consume",
            "--broker",
            &address,
            "--topic",
            "t",
            "--from-beginning",
        ])
        .args([
            "--max-messages",
            &RECORDS.to_string(),
            "--timeout-ms",
            "60000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("consumer");
    let mut producer = ringbus()
        .args([
            "produce",
            "--broker",
            &address,
            "--topic",
            "t",
            "--linger-ms",
            "1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("producer");
    let mut stdin = producer.stdin.take().expect("stdin");
    for index in 0..RECORDS / 2 {
        writeln!(stdin, "record-{index}").expect("write");
    }
    stdin.flush().expect("flush");
    // Let the first half reach the broker, then crash it and bring it back on the same port.
    std::thread::sleep(Duration::from_millis(1_500));
    broker.kill();
    let broker = Broker::start_listening(data.path(), &address, &[]);
    assert_eq!(broker.address.to_string(), address);
    for index in RECORDS / 2..RECORDS {
        writeln!(stdin, "record-{index}").expect("write");
    }
    drop(stdin);

    let produced = wait_with_deadline(producer, Duration::from_secs(90));
    assert!(
        produced.status.success(),
        "producer: {}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let consumed = wait_with_deadline(consumer, Duration::from_secs(90));
    let stderr = String::from_utf8_lossy(&consumed.stderr);
    assert!(consumed.status.success(), "consumer: {stderr}");
    assert!(
        stderr.contains("reconnecting"),
        "the consumer saw its connection lost and went on: {stderr}"
    );
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for line in String::from_utf8_lossy(&consumed.stdout).lines() {
        *seen.entry(line.to_string()).or_default() += 1;
    }
    for index in 0..RECORDS {
        let record = format!("record-{index}");
        assert_eq!(
            seen.get(&record),
            Some(&1),
            "{record}: consumed {:?} times",
            seen.get(&record)
        );
    }
    assert_eq!(seen.len(), RECORDS, "nothing else was consumed");
    broker.stop();
}

#[test]
fn a_broker_down_for_longer_than_the_reconnect_timeout_is_a_clear_error() {
    // A port nothing listens on.
    let address = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        socket.local_addr().expect("address").to_string()
    };
    let started = Instant::now();
    let output = ringbus()
        .args([
            "topic",
            "list",
            "--broker",
            &address,
            "--reconnect-timeout-ms",
            "700",
        ])
        .output()
        .expect("topic list");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&address), "names the broker: {stderr}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "it retried before giving up"
    );
}

/// Waits for `child` up to `deadline` (then kills it, so a hang fails the test, not CI).
fn wait_with_deadline(mut child: std::process::Child, deadline: Duration) -> std::process::Output {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("output");
    panic!(
        "a client did not finish within {deadline:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn loadgen_keeps_running_across_a_broker_restart_and_reports_the_outage() {
    let data = data_dir();
    let broker = Broker::start(data.path());
    let address = broker.address.to_string();
    let json_path = data.path().join("loadgen.json");
    let loadgen = ringbus()
        .args([
            "loadgen",
            "--broker",
            &address,
            "--topic",
            "t",
            "--create-topic",
        ])
        .args(["--partitions", "2", "--producers", "1", "--consumers", "1"])
        .args([
            "--acks",
            "1",
            "--rate",
            "2000",
            "--duration",
            "8",
            "--warmup",
            "0",
        ])
        .args(["--cores", "1", "--json"])
        .arg(&json_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("loadgen");
    std::thread::sleep(Duration::from_secs(3));
    broker.kill();
    // Down for about two seconds: the clients' sends and fetches fail and wait.
    std::thread::sleep(Duration::from_secs(2));
    let broker = Broker::start_listening(data.path(), &address, &[]);
    let output = wait_with_deadline(loadgen, Duration::from_secs(120));
    assert!(
        output.status.success(),
        "loadgen: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).expect("report")).expect("json");
    let number = |key: &str| {
        json[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}: {json}"))
    };
    assert!(
        number("reconnects") >= 2,
        "producer and consumer reconnected: {json}"
    );
    assert!(number("stalled_s") >= 1, "the outage shows: {json}");
    assert_eq!(number("lost"), 0, "{json}");
    assert_eq!(number("duplicates"), 0, "{json}");
    broker.stop();
}

#[test]
fn a_group_of_three_goes_on_across_a_kill_9_and_restart() {
    let data = data_dir();
    let broker = Broker::start(data.path());
    let address = broker.address.to_string();
    let created = ringbus()
        .args([
            "topic",
            "create",
            "--broker",
            &address,
            "--partitions",
            "6",
            "g",
        ])
        .output()
        .expect("topic create");
    assert!(created.status.success(), "{created:?}");
    let members: Vec<_> = (0..3)
        .map(|_| {
            ringbus()
                .args([
                    "consume", "--broker", &address, "--topic", "g", "--group", "restart",
                ])
                .args(["--from-beginning", "--timeout-ms", "8000"])
                .args([
                    "--session-timeout-ms",
                    "6000",
                    "--heartbeat-interval-ms",
                    "500",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("group member")
        })
        .collect();
    let mut producer = ringbus()
        .args([
            "produce",
            "--broker",
            &address,
            "--topic",
            "g",
            "--linger-ms",
            "1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("producer");
    let mut stdin = producer.stdin.take().expect("stdin");
    for index in 0..RECORDS / 2 {
        writeln!(stdin, "group-{index}").expect("write");
    }
    stdin.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(2_500));
    broker.kill();
    let broker = Broker::start_listening(data.path(), &address, &[]);
    for index in RECORDS / 2..RECORDS {
        writeln!(stdin, "group-{index}").expect("write");
    }
    drop(stdin);
    let produced = wait_with_deadline(producer, Duration::from_secs(90));
    assert!(
        produced.status.success(),
        "producer: {}",
        String::from_utf8_lossy(&produced.stderr)
    );
    // Every record reaches the group at least once (a record consumed after the last commit
    // before the crash is delivered again after the rejoin: at-least-once, as Kafka's groups).
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for member in members {
        let output = wait_with_deadline(member, Duration::from_secs(120));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "member: {stderr}");
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            *seen.entry(line.to_string()).or_default() += 1;
        }
    }
    for index in 0..RECORDS {
        let record = format!("group-{index}");
        assert!(seen.contains_key(&record), "{record} was never consumed");
    }
    assert_eq!(seen.len(), RECORDS, "nothing else was consumed");
    broker.stop();
}
