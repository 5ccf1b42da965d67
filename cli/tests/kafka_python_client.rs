//! Goal: kafka-python (the pure-Python client, 2.3) works against `ringbus serve`'s Kafka
//! listener: its admin client creates topics with several partitions, a gzip producer with
//! acks=all stores keyed records (every send acknowledged, offsets contiguous), a group member
//! reads each record once byte for byte and commits, the next member gets exactly the records
//! produced after the commits, a seek into a gzip batch reads from that exact offset,
//! offsets_for_times names the first record at or after a time, with its timestamp, inside a
//! batch too (uncompressed records with explicit timestamps: the broker does not decompress)
//! and seeking there reads it, and records `ringbus produce` wrote are read back byte for byte.
//!
//! Method: the real `ringbus` binary (tests/common), `ringbus produce` for the native records,
//! then `kafka_python/kafka_python_check.py` (which asserts the Kafka-side checks and prints
//! the native records it read) under the Python that `RINGBUS_KAFKA_PYTHON` names (else
//! `python3`). Where that Python lacks kafka-python the test prints why and passes, except
//! under CI (the CI environment variable set), where it fails: .ci/run installs it.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Broker, data_dir};

/// How long the Python checks may take in all.
const DEADLINE: Duration = Duration::from_secs(180);

/// A Python with kafka-python, or None (after saying so) where there is none outside CI.
fn python() -> Option<String> {
    let python = std::env::var("RINGBUS_KAFKA_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let usable = Command::new(&python)
        .args(["-c", "import kafka"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    let in_ci = std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "0");
    match (usable, in_ci) {
        (true, _) => Some(python),
        (false, true) => panic!(
            "{python} cannot import kafka (kafka-python), and CI is set: .ci/run must install \
             it (RINGBUS_KAFKA_PYTHON names its venv's python)"
        ),
        (false, false) => {
            eprintln!(
                "SKIPPED: {python} has no kafka module (pip install kafka-python, or set \
                 RINGBUS_KAFKA_PYTHON); not under CI"
            );
            None
        }
    }
}

#[test]
fn kafka_python_clients_work_against_the_kafka_listener() {
    let Some(python) = python() else { return };
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let ringbus = |args: &[&str], stdin: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringbus"))
            .args(args)
            .arg("--broker")
            .arg(broker.address.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ringbus");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("write stdin");
        let output = child.wait_with_output().expect("ringbus output");
        assert!(output.status.success(), "ringbus {args:?}: {output:?}");
    };
    ringbus(&["topic", "create", "native", "--partitions", "1"], b"");
    let lines: Vec<String> = (0..50)
        .map(|i| format!("native-key-{i}:value {i} ünïcode ✓"))
        .collect();
    let input = lines.join("\n") + "\n";
    ringbus(
        &["produce", "--topic", "native", "--key-separator", ":"],
        input.as_bytes(),
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/kafka_python/kafka_python_check.py"
    );
    let mut child = Command::new(&python)
        .arg(script)
        .arg(broker.kafka_address.to_string())
        .args(["native", "50"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the Python checks");
    let deadline = Instant::now() + DEADLINE;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "the Python checks ran past {DEADLINE:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    assert!(
        output.status.success(),
        "{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), input);
    broker.stop();
}
