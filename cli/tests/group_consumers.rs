//! Goal: consumer groups work end to end, as the issue asks: three consumers in one group over
//! a 6-partition topic each get two partitions; one is killed (kill -9, so it never leaves),
//! and once its session times out the other two take its partitions; every record is consumed
//! at least once; what the group committed is never delivered again, neither after the group
//! restarts nor after the broker restarts.
//!
//! Method: the real `ringbus serve` (2 shards) and real `ringbus consume --group` processes
//! with a short session timeout, reading their stdout (`PARTITION<tab>OFFSET<tab>VALUE`) and
//! the `Assigned generation G: ...` lines they print to stderr. Waits are on conditions with a
//! generous deadline, never on time alone.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Broker, RawClient, create_topic, data_dir};
use schema::wire::{RequestBodyOwned, ResponseBodyOwned};

const TOPIC: &str = "orders";
const PARTITIONS: u32 = 6;
const DEADLINE: Duration = Duration::from_secs(60);

/// What a consumer process printed so far.
#[derive(Default)]
struct Seen {
    /// (partition, offset) of every record printed, in order.
    records: Vec<(u32, u64)>,
    /// The last assignment it announced: (generation, partitions).
    assignment: Option<(i32, Vec<u32>)>,
}

struct Consumer {
    child: Child,
    seen: Arc<Mutex<Seen>>,
}

impl Consumer {
    fn start(broker: &Broker, extra: &[&str]) -> Consumer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringbus"))
            .args([
                "consume",
                "--topic",
                TOPIC,
                "--group",
                "billing",
                "--session-timeout-ms",
                "2000",
                "--heartbeat-interval-ms",
                "300",
                "--auto-commit-interval-ms",
                "300",
                "--from-beginning",
                "--print-partition",
                "--print-offset",
                "--broker",
            ])
            .arg(broker.address.to_string())
            .args(extra)
            .env("RINGBUS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ringbus consume");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let records = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut fields = line.split('\t');
                let partition = fields
                    .next()
                    .and_then(|f| f.parse().ok())
                    .expect("partition");
                let offset = fields.next().and_then(|f| f.parse().ok()).expect("offset");
                records.lock().unwrap().records.push((partition, offset));
            }
        });
        let assignments = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("consumer: {line}");
                let Some(rest) = line.strip_prefix("Assigned generation ") else {
                    continue;
                };
                let (generation, partitions) = rest.split_once(": ").expect("format");
                let partitions = partitions
                    .split(' ')
                    .filter_map(|entry| entry.strip_prefix(&format!("{TOPIC}/")))
                    .map(|partition| partition.parse().expect("partition"))
                    .collect();
                assignments.lock().unwrap().assignment =
                    Some((generation.parse().expect("generation"), partitions));
            }
        });
        Consumer { child, seen }
    }

    fn assignment(&self) -> Option<(i32, Vec<u32>)> {
        self.seen.lock().unwrap().assignment.clone()
    }

    fn records(&self) -> Vec<(u32, u64)> {
        self.seen.lock().unwrap().records.clone()
    }

    /// SIGTERM: the consumer commits what it printed, leaves, and exits 0.
    fn stop(mut self) -> Vec<(u32, u64)> {
        // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = wait_exit(&mut self.child);
        assert!(status.success(), "consumer exited with {status}");
        self.records()
    }

    /// Waits for a consumer that stops by itself (--timeout-ms) and returns what it printed.
    fn finish(mut self) -> Vec<(u32, u64)> {
        let status = wait_exit(&mut self.child);
        assert!(status.success(), "consumer exited with {status}");
        // The reader threads end with the pipes; give them the last lines.
        wait_for("the output to be read", || {
            Arc::strong_count(&self.seen) == 1
        });
        self.records()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "the consumer did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True when the consumers' latest assignments are of one generation, `each` partitions
/// apiece, and together cover every partition exactly once.
fn balanced(consumers: &[&Consumer], each: usize) -> bool {
    let assignments: Vec<(i32, Vec<u32>)> = consumers
        .iter()
        .filter_map(|consumer| consumer.assignment())
        .collect();
    if assignments.len() != consumers.len() {
        return false;
    }
    let generation = assignments[0].0;
    let mut all: Vec<u32> = Vec::new();
    for (g, partitions) in &assignments {
        if *g != generation || partitions.len() != each {
            return false;
        }
        all.extend(partitions);
    }
    all.sort_unstable();
    all == (0..PARTITIONS).collect::<Vec<_>>()
}

fn produce(broker: &Broker, from: usize, count: usize) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringbus"))
        .args([
            "produce",
            "--topic",
            TOPIC,
            "--key-separator",
            ":",
            "--broker",
        ])
        .arg(broker.address.to_string())
        .stdin(Stdio::piped())
        .spawn()
        .expect("start ringbus produce");
    let mut input = String::new();
    for index in from..from + count {
        input.push_str(&format!("key-{index}:value-{index}\n"));
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .expect("write records");
    assert!(child.wait().expect("produce").success());
}

/// Every (partition, offset) stored in the topic.
fn stored(broker: &Broker) -> BTreeSet<(u32, u64)> {
    let mut client = RawClient::connect(broker.address);
    let body = RequestBodyOwned::Metadata {
        topics: vec![TOPIC.to_string()],
    };
    let Some(ResponseBodyOwned::Metadata { topics, .. }) = client.request(&body, &[]).0.body else {
        panic!("no metadata");
    };
    topics[0]
        .partitions
        .iter()
        .flat_map(|partition| {
            (partition.log_start..partition.log_end)
                .map(move |offset| (partition.partition, offset))
        })
        .collect()
}

/// `ringbus group describe billing`: partition -> (committed, log end).
fn committed(broker: &Broker) -> BTreeMap<u32, (String, u64)> {
    let output = Command::new(env!("CARGO_BIN_EXE_ringbus"))
        .args(["group", "describe", "billing", "--broker"])
        .arg(broker.address.to_string())
        .output()
        .expect("group describe");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).expect("utf-8");
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some("TOPIC PARTITION COMMITTED LOG_END LAG OWNER")
    );
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields[0], TOPIC);
            (
                fields[1].parse().expect("partition"),
                (fields[2].to_string(), fields[3].parse().expect("log end")),
            )
        })
        .collect()
}

#[test]
fn a_group_shares_partitions_survives_a_killed_member_and_never_redelivers_commits() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    create_topic(&mut RawClient::connect(broker.address), TOPIC, PARTITIONS);

    // Three members: two partitions each.
    let first = Consumer::start(&broker, &[]);
    wait_for("the first member's assignment", || {
        first.assignment().is_some()
    });
    let second = Consumer::start(&broker, &[]);
    let third = Consumer::start(&broker, &[]);
    wait_for("three members with two partitions each", || {
        balanced(&[&first, &second, &third], 2)
    });

    produce(&broker, 0, 300);
    let all = stored(&broker);
    assert_eq!(all.len(), 300);
    let seen = |consumers: &[&Consumer]| -> BTreeSet<(u32, u64)> {
        consumers.iter().flat_map(|c| c.records()).collect()
    };
    wait_for("every record consumed", || {
        seen(&[&first, &second, &third]) == all
    });

    // kill -9: the member never leaves; its session expires and the others take over.
    let (generation, _) = second.assignment().expect("assigned");
    let killed_saw: BTreeSet<(u32, u64)> = second.records().into_iter().collect();
    drop(second);
    wait_for("two members with three partitions each", || {
        balanced(&[&first, &third], 3) && first.assignment().unwrap().0 > generation
    });
    produce(&broker, 300, 300);
    let all = stored(&broker);
    assert_eq!(all.len(), 600);
    wait_for("every record consumed at least once", || {
        let mut union = seen(&[&first, &third]);
        union.extend(&killed_saw);
        union == all
    });

    // Stopped (SIGTERM): each commits what it printed and leaves.
    let mut consumed: BTreeSet<(u32, u64)> = BTreeSet::new();
    consumed.extend(first.stop());
    consumed.extend(third.stop());
    consumed.extend(&killed_saw);
    assert_eq!(
        consumed, all,
        "every stored record was consumed at least once"
    );
    let offsets = committed(&broker);
    assert_eq!(offsets.len(), PARTITIONS as usize);
    for (partition, (committed, log_end)) in &offsets {
        assert_eq!(
            committed,
            &log_end.to_string(),
            "partition {partition}: everything printed was committed"
        );
    }

    // The group restarts: nothing committed comes again.
    let again = Consumer::start(&broker, &["--timeout-ms", "2000"]);
    assert_eq!(
        again.finish(),
        Vec::new(),
        "a restarted group re-reads nothing"
    );

    // The broker restarts: still nothing; then only the new records.
    broker.stop();
    let broker = Broker::start(dir.path());
    let again = Consumer::start(&broker, &["--timeout-ms", "2000"]);
    assert_eq!(
        again.finish(),
        Vec::new(),
        "committed offsets survive a restart"
    );
    let before = stored(&broker);
    produce(&broker, 600, 50);
    let after = Consumer::start(&broker, &["--timeout-ms", "2000"]);
    let fresh: BTreeSet<(u32, u64)> = after.finish().into_iter().collect();
    let expected: BTreeSet<(u32, u64)> = stored(&broker).difference(&before).copied().collect();
    assert_eq!(fresh.len(), 50);
    assert_eq!(
        fresh, expected,
        "exactly the records produced after the last commit"
    );
    broker.stop();
}
