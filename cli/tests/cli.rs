//! Goal: the command-line contract of issue #3, end to end against the real binary on 2
//! shards: `topic create/list/describe/delete`, `produce` from stdin (keyed and unkeyed), and
//! `consume` back, complete and in order per partition, with every key on the partition Kafka's
//! murmur2 partitioner picks; bad input gets a clear error and a non-zero exit. Logs written
//! to a pipe or a file carry no terminal colour codes.
//!
//! Method: start `ringbus serve` (tests/common), run the client subcommands as processes the
//! way a user would, and check their stdout, stderr and exit codes.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};

use common::{Broker, data_dir, serve_command};

fn ringbus(broker: &Broker, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringbus"))
        .args(args)
        .env("RINGBUS_BROKER", broker.address.to_string())
        .env("RINGBUS_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ringbus");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
    }
    child.wait_with_output().expect("ringbus finishes")
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8 output")
}

#[test]
fn topics_produce_and_consume_through_the_command_line() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());

    ok(&ringbus(
        &broker,
        &["topic", "create", "orders", "--partitions", "8"],
        None,
    ));
    ok(&ringbus(
        &broker,
        &["topic", "create", "other", "--partitions", "1"],
        None,
    ));
    let list = ok(&ringbus(&broker, &["topic", "list"], None));
    assert_eq!(list.lines().collect::<Vec<_>>(), vec!["orders", "other"]);

    // Keyed records: KEY:VALUE, 20 keys, 5 values each.
    let mut keyed = String::new();
    for round in 0..5 {
        for key in 0..20 {
            keyed.push_str(&format!("user-{key}:v{round}\n"));
        }
    }
    ok(&ringbus(
        &broker,
        &[
            "produce",
            "--topic",
            "orders",
            "--key-separator",
            ":",
            "--acks",
            "all",
        ],
        Some(&keyed),
    ));
    // Unkeyed records.
    let unkeyed: String = (0..50).map(|i| format!("plain-{i}\n")).collect();
    ok(&ringbus(
        &broker,
        &["produce", "--topic", "orders", "--acks", "1"],
        Some(&unkeyed),
    ));

    // Every keyed record is on murmur2's partition, and in order per key.
    let mut total = 0;
    for partition in 0..8u32 {
        let out = ok(&ringbus(
            &broker,
            &[
                "consume",
                "--topic",
                "orders",
                "--partition",
                &partition.to_string(),
                "--from-beginning",
                "--timeout-ms",
                "2000",
                "--print-key",
                "--key-separator",
                ":",
            ],
            None,
        ));
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in out.lines() {
            total += 1;
            let Some((key, value)) = line.split_once(':') else {
                assert!(line.starts_with("plain-"), "unexpected line {line:?}");
                continue;
            };
            if key.is_empty() || key == "null" {
                continue;
            }
            let expected = schema::murmur2::partition_for_key(key.as_bytes(), 8);
            assert_eq!(expected, partition, "key {key} on partition {partition}");
            seen.entry(key.to_string())
                .or_default()
                .push(value.to_string());
        }
        for (key, values) in seen {
            let want: Vec<String> = (0..5).map(|round| format!("v{round}")).collect();
            assert_eq!(values, want, "key {key}: in order and complete");
        }
    }
    assert_eq!(total, 150, "every record consumed once");

    // All partitions at once, bounded by --max-messages.
    let out = ok(&ringbus(
        &broker,
        &[
            "consume",
            "--topic",
            "orders",
            "--from-beginning",
            "--max-messages",
            "150",
            "--timeout-ms",
            "5000",
        ],
        None,
    ));
    assert_eq!(out.lines().count(), 150);

    let describe = ok(&ringbus(&broker, &["topic", "describe", "orders"], None));
    assert_eq!(
        describe
            .lines()
            .filter(|line| !line.trim().is_empty())
            .count(),
        8
    );

    // Bad input: unknown topic, duplicate topic, invalid name. Clear errors, non-zero exits.
    let missing = ringbus(&broker, &["produce", "--topic", "missing"], Some("x\n"));
    assert!(!missing.status.success());
    assert!(!missing.stderr.is_empty(), "an error message on stderr");
    let duplicate = ringbus(
        &broker,
        &["topic", "create", "orders", "--partitions", "2"],
        None,
    );
    assert!(!duplicate.status.success());
    let invalid = ringbus(
        &broker,
        &["topic", "create", "a/b", "--partitions", "2"],
        None,
    );
    assert!(!invalid.status.success());

    ok(&ringbus(&broker, &["topic", "delete", "other"], None));
    let list = ok(&ringbus(&broker, &["topic", "list"], None));
    assert_eq!(list.lines().collect::<Vec<_>>(), vec!["orders"]);
    broker.stop();
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let dir = data_dir();
    let mut child = serve_command(dir.path(), "0")
        .env("RINGBUS_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ringbus");
    // Reading stdout up to the listening line means the shards started (and logged).
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        let read = stdout.read_line(&mut line).expect("read stdout");
        assert!(read > 0, "the broker exited before listening");
    }
    // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let status = child.wait().expect("the broker stops");
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("INFO"),
        "info lines were logged: {stderr:?}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "an escape code in a piped log: {stderr:?}"
    );
}

/// A second broker on the same data directory is refused with a clear error (SO_REUSEPORT
/// would let it share even a fixed port), and the first keeps serving.
#[test]
fn a_second_broker_on_the_same_data_directory_is_refused() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let second = serve_command(dir.path(), "0")
        .output()
        .expect("run a second broker");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success(),
        "the second broker started: {stderr}"
    );
    assert!(
        stderr.contains("another broker is using it"),
        "no clear reason: {stderr}"
    );
    let listed = ringbus(&broker, &["topic", "list"], None);
    assert!(listed.status.success(), "{listed:?}");
    broker.stop();
}
