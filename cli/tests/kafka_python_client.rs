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

use std::process::Command;
use std::time::Duration;

use common::{Broker, data_dir, kafka_python, output_within, ringbus_with_stdin};

/// How long the Python checks may take in all.
const DEADLINE: Duration = Duration::from_secs(180);

#[test]
fn kafka_python_clients_work_against_the_kafka_listener() {
    let Some(python) = kafka_python("kafka", "kafka-python") else {
        return;
    };
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    ringbus_with_stdin(
        &broker,
        &["topic", "create", "native", "--partitions", "1"],
        b"",
    );
    let lines: Vec<String> = (0..50)
        .map(|i| format!("native-key-{i}:value {i} ünïcode ✓"))
        .collect();
    let input = lines.join("\n") + "\n";
    ringbus_with_stdin(
        &broker,
        &["produce", "--topic", "native", "--key-separator", ":"],
        input.as_bytes(),
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/kafka_python/kafka_python_check.py"
    );
    let output = output_within(
        Command::new(&python)
            .arg(script)
            .arg(broker.kafka_address.to_string())
            .args(["native", "50"]),
        DEADLINE,
    );
    assert!(
        output.status.success(),
        "{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), input);
    broker.stop();
}
