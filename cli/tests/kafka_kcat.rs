//! Goal: an unmodified Kafka client (kcat, on librdkafka) works against `ringbus serve`'s Kafka
//! listener: keyed records produced from a file come back with their keys, values, partitions
//! (Kafka's murmur2 partitioner) and consecutive offsets; `kcat -L` shows the one broker and
//! the topic's partitions; an idempotent producer and an acks=0 producer store every record
//! once; and the two protocols read each other's records byte for byte (kcat -> `ringbus
//! consume`, `ringbus produce` -> kcat), through topics created by either.
//!
//! Method: the real `ringbus` binary (tests/common, Kafka listener on a free port) and the real
//! `kcat` binary as child processes, each with a deadline. Where kcat is not installed the
//! tests print why and pass, except under CI (the CI environment variable set), where they
//! fail: .ci/run installs kcat, so there a missing kcat is a broken set-up, not a skip.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Broker, data_dir, in_ci};

/// How long one kcat or ringbus client command may take.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// The kcat binary, or None (after saying so) where it is missing outside CI.
fn kcat() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|dir| [dir.join("kcat"), dir.join("kafkacat")])
            .find(|path| path.is_file())
    });
    match found {
        Some(path) => Some(path),
        None if in_ci() => panic!(
            "kcat is not installed, and CI is set: .ci/run must install it (apt-get install kcat)"
        ),
        None => {
            eprintln!("SKIPPED: kcat is not installed (apt-get install kcat); not under CI");
            None
        }
    }
}

/// Runs `command` with `stdin`, killing it at the deadline; returns its output.
fn run(mut command: Command, stdin: Option<&[u8]>) -> Output {
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(bytes).expect("write stdin");
    }
    let deadline = Instant::now() + COMMAND_DEADLINE;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "{command:?} ran past {COMMAND_DEADLINE:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// The stdout of a command that must succeed.
fn ok(command: Command, stdin: Option<&[u8]>) -> String {
    let shown = format!("{command:?}");
    let output = run(command, stdin);
    assert!(
        output.status.success(),
        "{shown}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

fn kcat_command(kcat: &Path, broker: &Broker, args: &[&str]) -> Command {
    let mut command = Command::new(kcat);
    command
        .arg("-b")
        .arg(broker.kafka_address.to_string())
        .args(args);
    command
}

fn ringbus_command(broker: &Broker, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ringbus"));
    command
        .args(args)
        .arg("--broker")
        .arg(broker.address.to_string());
    command
}

/// `KEY:VALUE` lines whose values carry spaces, a tab and non-ASCII text.
fn keyed_lines(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            format!(
                "{prefix}-key-{}:value {i}\twith ünïcode ✓ and: colons",
                i % 7
            )
        })
        .collect()
}

fn write_lines(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("write the input file");
    path
}

/// One consumed record, from kcat's `%k %p %o %s` format (the value last: it has spaces).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Consumed {
    key: String,
    partition: u32,
    offset: u64,
    value: String,
}

fn parse_consumed(output: &str) -> Vec<Consumed> {
    output
        .lines()
        .map(|line| {
            let mut fields = line.splitn(4, ' ');
            let mut next = || fields.next().expect("four fields").to_string();
            let (key, partition, offset, value) = (next(), next(), next(), next());
            Consumed {
                key,
                partition: partition.parse().expect("partition"),
                offset: offset.parse().expect("offset"),
                value,
            }
        })
        .collect()
}

/// kcat -P -K: from a file into a 3-partition topic (created with `ringbus topic create`),
/// kcat -C back: keys, values, partitions and offsets; then kcat -L.
#[test]
fn kcat_produces_and_consumes_keyed_records() {
    let Some(kcat) = kcat() else { return };
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    ok(
        ringbus_command(&broker, &["topic", "create", "events", "--partitions", "3"]),
        None,
    );
    let lines = keyed_lines("events", 60);
    let file = write_lines(dir.path(), "events.txt", &lines);
    // murmur2, Kafka's default partitioner (librdkafka's own default hashes with CRC32).
    let file_arg = file.to_string_lossy().to_string();
    ok(
        kcat_command(
            &kcat,
            &broker,
            &[
                "-P",
                "-t",
                "events",
                "-K:",
                "-X",
                "topic.partitioner=murmur2",
                "-l",
                &file_arg,
            ],
        ),
        None,
    );
    let output = ok(
        kcat_command(
            &kcat,
            &broker,
            &["-C", "-t", "events", "-e", "-q", "-f", "%k %p %o %s\n"],
        ),
        None,
    );
    let consumed = parse_consumed(&output);
    assert_eq!(consumed.len(), lines.len(), "{output}");
    // Per partition, in the order produced.
    let mut expected: BTreeMap<u32, Vec<(String, String)>> = BTreeMap::new();
    for line in &lines {
        let (key, value) = line.split_once(':').expect("KEY:VALUE");
        let partition = schema::murmur2::partition_for_key(key.as_bytes(), 3);
        expected
            .entry(partition)
            .or_default()
            .push((key.to_string(), value.to_string()));
    }
    assert!(expected.len() > 1, "the keys spread over partitions");
    let mut actual: BTreeMap<u32, Vec<&Consumed>> = BTreeMap::new();
    for record in &consumed {
        actual.entry(record.partition).or_default().push(record);
    }
    for (partition, records) in &actual {
        let offsets: Vec<u64> = records.iter().map(|record| record.offset).collect();
        let consecutive: Vec<u64> = (0..records.len() as u64).collect();
        assert_eq!(offsets, consecutive, "partition {partition}");
        let pairs: Vec<(String, String)> = records
            .iter()
            .map(|record| (record.key.clone(), record.value.clone()))
            .collect();
        assert_eq!(
            Some(&pairs),
            expected.get(partition),
            "partition {partition}"
        );
    }
    assert_eq!(actual.len(), expected.len());
    let metadata = ok(kcat_command(&kcat, &broker, &["-L", "-t", "events"]), None);
    let broker_line = format!("broker 0 at {}", broker.kafka_address);
    assert!(metadata.contains(&broker_line), "{metadata}");
    assert!(
        metadata.contains("topic \"events\" with 3 partitions"),
        "{metadata}"
    );
    for partition in 0..3 {
        let line = format!("partition {partition}, leader 0, replicas: 0, isrs: 0");
        assert!(metadata.contains(&line), "{metadata}");
    }
    broker.stop();
}

/// Records produced through one protocol are read through the other, byte for byte, keys
/// included: kcat into a topic it auto-creates, `ringbus consume` out; `ringbus produce` into a
/// topic `ringbus topic create` made, kcat out.
#[test]
fn kcat_and_ringbus_clients_read_each_others_records() {
    let Some(kcat) = kcat() else { return };
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let lines = keyed_lines("from-kafka", 25);
    let file = write_lines(dir.path(), "from-kafka.txt", &lines);
    let file_arg = file.to_string_lossy().to_string();
    ok(
        kcat_command(
            &kcat,
            &broker,
            &["-P", "-t", "from-kafka", "-K:", "-l", &file_arg],
        ),
        None,
    );
    let count = lines.len().to_string();
    let consumed = ok(
        ringbus_command(
            &broker,
            &[
                "consume",
                "--topic",
                "from-kafka",
                "--from-beginning",
                "--print-key",
                "--key-separator",
                ":",
                "--max-messages",
                &count,
                "--timeout-ms",
                "20000",
            ],
        ),
        None,
    );
    assert_eq!(consumed, lines.join("\n") + "\n");

    ok(
        ringbus_command(
            &broker,
            &["topic", "create", "from-ringbus", "--partitions", "1"],
        ),
        None,
    );
    let lines = keyed_lines("from-ringbus", 25);
    let input = lines.join("\n") + "\n";
    ok(
        ringbus_command(
            &broker,
            &["produce", "--topic", "from-ringbus", "--key-separator", ":"],
        ),
        Some(input.as_bytes()),
    );
    let consumed = ok(
        kcat_command(
            &kcat,
            &broker,
            &["-C", "-t", "from-ringbus", "-e", "-q", "-f", "%k:%s\n"],
        ),
        None,
    );
    assert_eq!(consumed, input);
    broker.stop();
}

/// An idempotent producer (InitProducerId, then sequenced batches checked by the partition's
/// producer state) and an acks=0 producer (no responses at all) each store every record once.
#[test]
fn idempotent_and_acks_0_kcat_producers_store_each_record_once() {
    let Some(kcat) = kcat() else { return };
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    for (topic, settings) in [
        ("idempotent", ["-X", "enable.idempotence=true"]),
        ("unacknowledged", ["-X", "acks=0"]),
    ] {
        let lines: Vec<String> = (0..500).map(|i| format!("{topic}-{i}")).collect();
        let file = write_lines(dir.path(), topic, &lines);
        let file_arg = file.to_string_lossy().to_string();
        let mut args = vec!["-P", "-t", topic, "-l", &file_arg];
        args.extend(settings);
        ok(kcat_command(&kcat, &broker, &args), None);
        // acks=0 is answered by nothing: read until all have arrived (-c), not to the end.
        let count = lines.len().to_string();
        let output = ok(
            kcat_command(
                &kcat,
                &broker,
                &["-C", "-t", topic, "-c", &count, "-q", "-f", "%o %s\n"],
            ),
            None,
        );
        let expected: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(offset, line)| format!("{offset} {line}"))
            .collect();
        assert_eq!(output, expected.join("\n") + "\n", "{topic}");
    }
    broker.stop();
}

/// A consumer waiting at the end of a partition (Fetch long-polls with max_wait and
/// min_bytes, as the ringbus wire's fetch does) gets records produced after it started.
#[test]
fn a_tailing_kcat_consumer_gets_new_records() {
    let Some(kcat) = kcat() else { return };
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    ok(
        kcat_command(&kcat, &broker, &["-P", "-t", "tail"]),
        Some(b"first\n"),
    );
    // From offset 1 (the end now): it waits there until three more records arrive.
    let mut consumer = kcat_command(
        &kcat,
        &broker,
        &[
            "-C", "-t", "tail", "-o", "1", "-c", "3", "-q", "-f", "%o %s\n",
        ],
    );
    let consumer = consumer
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the consumer");
    ok(
        kcat_command(&kcat, &broker, &["-P", "-t", "tail"]),
        Some(b"second\nthird\nfourth\n"),
    );
    let deadline = Instant::now() + COMMAND_DEADLINE;
    let mut consumer = consumer;
    while consumer.try_wait().expect("wait").is_none() {
        if Instant::now() >= deadline {
            let _ = consumer.kill();
            panic!("the tailing consumer did not get the new records");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = consumer.wait_with_output().expect("output");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "1 second\n2 third\n3 fourth\n"
    );
    broker.stop();
}

/// `--kafka-advertise` is the address Metadata gives clients, and with
/// `--no-kafka-auto-create` a topic a client names is not created.
#[test]
fn metadata_advertises_the_given_address_and_creates_nothing_when_told() {
    let Some(kcat) = kcat() else { return };
    let dir = data_dir();
    let broker = Broker::start_with_args(
        dir.path(),
        &[
            "--no-kafka-auto-create",
            "--kafka-advertise",
            "kafka.example:1234",
        ],
    );
    let output = run(kcat_command(&kcat, &broker, &["-L", "-t", "nosuch"]), None);
    let metadata = String::from_utf8_lossy(&output.stdout);
    assert!(
        metadata.contains("broker 0 at kafka.example:1234"),
        "{metadata}"
    );
    assert!(
        metadata.contains("topic \"nosuch\" with 0 partitions: Broker: Unknown topic or partition"),
        "{metadata}"
    );
    assert_eq!(described(&broker, "nosuch"), None);
    broker.stop();
}

/// Whether `ringbus topic describe` knows the topic (Some(partitions)).
fn described(broker: &Broker, topic: &str) -> Option<usize> {
    let output = run(ringbus_command(broker, &["topic", "describe", topic]), None);
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).lines().count())
}

/// Consume `topic` as a member of `group` until the end of its partitions (kcat -G -e):
/// "PARTITION OFFSET VALUE" lines.
fn consume_in_group(kcat: &Path, broker: &Broker, group: &str, topic: &str) -> Vec<String> {
    let output = ok(
        kcat_command(
            kcat,
            broker,
            &[
                "-G",
                group,
                topic,
                "-e",
                "-q",
                "-X",
                "auto.offset.reset=earliest",
                "-f",
                "%p %o %s\n",
            ],
        ),
        None,
    );
    output.lines().map(str::to_string).collect()
}

/// kcat's balanced consumer (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, OffsetCommit,
/// OffsetFetch, LeaveGroup) in a group of ringbus's coordinator: it gets every partition,
/// commits what it consumed, and a later member of the group resumes after the commits; the
/// group and its offsets show in `ringbus group describe`.
#[test]
fn a_kcat_group_member_consumes_commits_and_resumes() {
    let Some(kcat) = kcat() else { return };
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    ok(
        ringbus_command(
            &broker,
            &["topic", "create", "grouped", "--partitions", "4"],
        ),
        None,
    );
    let produce = |first: usize, count: usize| {
        let lines: Vec<String> = (first..first + count)
            .map(|i| format!("key-{i}:value-{i}"))
            .collect();
        let input = lines.join("\n") + "\n";
        ok(
            kcat_command(
                &kcat,
                &broker,
                &[
                    "-P",
                    "-t",
                    "grouped",
                    "-K:",
                    "-X",
                    "topic.partitioner=murmur2",
                ],
            ),
            Some(input.as_bytes()),
        );
    };
    let values = |lines: &[String]| -> Vec<String> {
        let mut values: Vec<String> = lines
            .iter()
            .map(|line| line.rsplit(' ').next().expect("a value").to_string())
            .collect();
        values.sort();
        values
    };
    let expected = |first: usize, count: usize| -> Vec<String> {
        let mut values: Vec<String> = (first..first + count)
            .map(|i| format!("value-{i}"))
            .collect();
        values.sort();
        values
    };
    produce(0, 200);
    let first = consume_in_group(&kcat, &broker, "billing", "grouped");
    assert_eq!(values(&first), expected(0, 200));
    let partitions: std::collections::BTreeSet<&str> = first
        .iter()
        .map(|line| line.split(' ').next().expect("a partition"))
        .collect();
    assert_eq!(partitions.len(), 4, "one member gets every partition");
    // The member committed and left: the next one starts after the commits.
    produce(200, 100);
    let second = consume_in_group(&kcat, &broker, "billing", "grouped");
    assert_eq!(values(&second), expected(200, 100));
    let described = ok(
        ringbus_command(&broker, &["group", "describe", "billing"]),
        None,
    );
    let committed: u64 = described
        .lines()
        .filter(|line| line.starts_with("grouped "))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields[2], fields[3], "committed = log end: {line}");
            fields[2].parse::<u64>().expect("an offset")
        })
        .sum();
    assert_eq!(committed, 300, "{described}");
    broker.stop();
}

/// The owners `ringbus group describe` shows, per partition of `topic`, and the committed
/// offsets' total ("-" for none).
fn group_owners(broker: &Broker, group: &str, topic: &str) -> (Vec<String>, u64) {
    let described = ok(ringbus_command(broker, &["group", "describe", group]), None);
    let mut owners = Vec::new();
    let mut committed = 0;
    for line in described.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first() == Some(&topic) && fields.len() >= 6 {
            owners.push(fields[5].to_string());
            committed += fields[2].parse::<u64>().unwrap_or(0);
        }
    }
    (owners, committed)
}

/// Three kcat members of one group over six partitions: once the group is stable each owns two
/// partitions, the records produced then are consumed once in all (none twice, none lost), and
/// the commits reach the log end.
#[test]
fn three_kcat_members_share_six_partitions() {
    let Some(kcat) = kcat() else { return };
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    ok(
        ringbus_command(&broker, &["topic", "create", "shared", "--partitions", "6"]),
        None,
    );
    let members: Vec<std::process::Child> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            let format = format!("{name} %p %s\n");
            kcat_command(
                &kcat,
                &broker,
                &[
                    "-G",
                    "trio",
                    "shared",
                    "-q",
                    "-X",
                    "auto.offset.reset=earliest",
                    "-f",
                    &format,
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a member")
        })
        .collect();
    // Kills the members whatever happens below.
    struct Members(Vec<std::process::Child>);
    impl Drop for Members {
        fn drop(&mut self) {
            for member in &mut self.0 {
                let _ = member.kill();
            }
        }
    }
    let mut members = Members(members);
    let deadline = Instant::now() + COMMAND_DEADLINE;
    let wait_for = |what: &str, done: &dyn Fn(&[String], u64) -> bool| loop {
        let (owners, committed) = group_owners(&broker, "trio", "shared");
        if done(&owners, committed) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: {owners:?}, {committed}");
        std::thread::sleep(Duration::from_millis(100));
    };
    wait_for("three members, two partitions each", &|owners, _| {
        let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
        for owner in owners {
            *counts.entry(owner).or_default() += 1;
        }
        owners.len() == 6 && counts.len() == 3 && counts.values().all(|count| *count == 2)
    });
    let lines: Vec<String> = (0..600).map(|i| format!("key-{i}:value-{i}")).collect();
    let input = lines.join("\n") + "\n";
    ok(
        kcat_command(
            &kcat,
            &broker,
            &[
                "-P",
                "-t",
                "shared",
                "-K:",
                "-X",
                "topic.partitioner=murmur2",
            ],
        ),
        Some(input.as_bytes()),
    );
    // Auto-commit every 5 s (librdkafka's default) brings the commits to the log end.
    wait_for("everything committed", &|_, committed| committed == 600);
    for member in &mut members.0 {
        // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
        unsafe { libc::kill(member.id() as i32, libc::SIGTERM) };
    }
    let mut consumed: Vec<String> = Vec::new();
    let mut per_member = Vec::new();
    for member in std::mem::take(&mut members.0) {
        let output = member.wait_with_output().expect("a member's output");
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        per_member.push(text.lines().count());
        consumed.extend(
            text.lines()
                .map(|line| line.rsplit(' ').next().unwrap_or("").to_string()),
        );
    }
    consumed.sort();
    let mut expected: Vec<String> = (0..600).map(|i| format!("value-{i}")).collect();
    expected.sort();
    assert_eq!(
        consumed, expected,
        "each record once, in all: {per_member:?}"
    );
    assert!(
        per_member.iter().all(|count| *count > 0),
        "every member consumed: {per_member:?}"
    );
    broker.stop();
}

/// kcat -z gzip and -z lz4 (#12): the compressed batches are stored as they came and kcat reads
/// every record back, keys, offsets and values; `ringbus consume`, which has no decompressor,
/// stops with an error naming the codec instead of printing garbage.
#[test]
fn kcat_compressed_batches_are_stored_and_read_back() {
    let Some(kcat) = kcat() else { return };
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    for codec in ["gzip", "lz4"] {
        let topic = format!("zipped-{codec}");
        let lines = keyed_lines(&topic, 200);
        let file = write_lines(dir.path(), &format!("{topic}.txt"), &lines);
        let file_arg = file.to_string_lossy().to_string();
        ok(
            kcat_command(
                &kcat,
                &broker,
                &["-P", "-t", &topic, "-K:", "-z", codec, "-l", &file_arg],
            ),
            None,
        );
        let output = ok(
            kcat_command(
                &kcat,
                &broker,
                &["-C", "-t", &topic, "-e", "-q", "-f", "%k %p %o %s\n"],
            ),
            None,
        );
        let consumed = parse_consumed(&output);
        // One partition (auto-created): the records in the order produced, offsets 0, 1, 2...
        let pairs: Vec<(String, String)> = consumed
            .iter()
            .map(|record| (record.key.clone(), record.value.clone()))
            .collect();
        let expected: Vec<(String, String)> = lines
            .iter()
            .map(|line| {
                let (key, value) = line.split_once(':').expect("KEY:VALUE");
                (key.to_string(), value.to_string())
            })
            .collect();
        assert_eq!(pairs, expected, "{codec}");
        let offsets: Vec<u64> = consumed.iter().map(|record| record.offset).collect();
        assert_eq!(offsets, (0..200).collect::<Vec<u64>>(), "{codec}");
        let refused = run(
            ringbus_command(
                &broker,
                &[
                    "consume",
                    "--topic",
                    &topic,
                    "--from-beginning",
                    "--max-messages",
                    "1",
                ],
            ),
            None,
        );
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success(),
            "{codec}: ringbus consume: {stderr}"
        );
        assert!(
            stderr.contains(&format!("compressed with {codec}")),
            "{codec}: {stderr}"
        );
        assert!(refused.stdout.is_empty(), "{codec}: no garbage printed");
    }
    broker.stop();
}
