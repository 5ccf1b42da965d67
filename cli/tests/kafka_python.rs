//! Goal: confluent-kafka (Python, on librdkafka 2.16) works against `ringbus serve`'s Kafka
//! listener: its admin client creates a topic, an idempotent producer stores 3,000 keyed
//! records once, a group member consumes and commits them and the next member resumes after
//! the commits, watermarks and offsets-for-times answer, the group is listed, idempotent
//! producers with lz4, zstd, gzip and snappy store compressed batches that a consumer reads
//! every record back from, and records `ringbus produce` wrote are read back byte for byte.
//!
//! Method: the real `ringbus` binary (tests/common), `ringbus produce` for the native records,
//! then `kafka_python/confluent_check.py` (which asserts the Kafka-side checks and prints the
//! native records it read) under the Python that `RINGBUS_KAFKA_PYTHON` names (else `python3`).
//! Where that Python lacks confluent-kafka the test prints why and passes, except under CI
//! (the CI environment variable set), where it fails: .ci/run installs it.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Broker, data_dir, kafka_python, output_within, ringbus_with_stdin};

/// How long the Python checks may take in all.
const DEADLINE: Duration = Duration::from_secs(180);

#[test]
fn confluent_kafka_clients_work_against_the_kafka_listener() {
    let Some(python) = kafka_python("confluent_kafka", "confluent-kafka") else {
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
        "/tests/kafka_python/confluent_check.py"
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
    // The script reports each codec's round trip: all four ran, none was skipped.
    let stderr = String::from_utf8_lossy(&output.stderr);
    for codec in ["lz4", "zstd", "gzip", "snappy"] {
        assert!(
            stderr.contains(&format!("{codec}: 2000 records")),
            "no {codec} round trip reported: {stderr}"
        );
    }
    broker.stop();
}
