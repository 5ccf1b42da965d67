//! Goal: `ringbus loadgen` runs against a real broker and loses, duplicates and fails nothing
//! (a smoke test: no throughput is asserted).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// The `--json` report at `path`, parsed.
fn report(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("the JSON report");
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

/// The unsigned integer at `pointer` (`/produce/messages`) in `json`.
fn number(json: &Value, pointer: &str) -> u64 {
    json.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("an unsigned integer at {pointer} in {json}"))
}

#[test]
fn loadgen_closed_loop_loses_nothing() {
    let dir = common::data_dir();
    let broker = common::Broker::start(dir.path());
    let json_path = dir.path().join("loadgen.json");
    let output = common::output_within(
        Command::new(env!("CARGO_BIN_EXE_ringbus"))
            .args(["loadgen", "--broker"])
            .arg(broker.address.to_string())
            .args([
                "--topic",
                "smoke",
                "--create-topic",
                "--partitions",
                "2",
                "--producers",
                "1",
                "--consumers",
                "1",
                "--acks",
                "1",
                "--rate",
                "0",
                "--duration",
                "3",
                "--warmup",
                "0",
                "--cores",
                "1",
                "--json",
            ])
            .arg(&json_path),
        LOADGEN_LIMIT,
    );
    assert!(
        output.status.success(),
        "loadgen failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let json = report(&json_path);
    assert!(number(&json, "/produce/messages") > 0, "{json}");
    assert!(number(&json, "/consume/messages") > 0, "{json}");
    assert_eq!(number(&json, "/lost"), 0, "{json}");
    assert_eq!(number(&json, "/duplicates"), 0, "{json}");
    assert_eq!(number(&json, "/errors"), 0, "{json}");
    broker.stop();
}

/// Far above any run here (at most a 60 s window and loadgen's own drain), far below CI's limit.
const LOADGEN_LIMIT: Duration = Duration::from_secs(240);

fn loadgen(broker: &common::Broker, args: &[&str]) -> std::process::Output {
    common::output_within(
        Command::new(env!("CARGO_BIN_EXE_ringbus"))
            .args(["loadgen", "--broker"])
            .arg(broker.address.to_string())
            .args(["--cores", "1", "--warmup", "0"])
            .args(args),
        LOADGEN_LIMIT,
    )
}

#[test]
fn loadgen_writes_a_backlog_and_a_catch_up_read_gets_all_of_it() {
    let dir = common::data_dir();
    let broker = common::Broker::start(dir.path());
    let out = dir.path().join("results");
    let produce_json = out.join("produce.json");
    let output = loadgen(
        &broker,
        &[
            "--topic",
            "backlog",
            "--create-topic",
            "--partitions",
            "3",
            "--consumers",
            "0",
            "--keys",
            "round-robin",
            "--messages",
            "5000",
            "--duration",
            "60",
            "--acks",
            "all",
            "--json",
            produce_json.to_str().expect("utf-8 path"),
            "--hgrm-dir",
            out.join("hgrm").to_str().expect("utf-8 path"),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json = report(&produce_json);
    assert_eq!(number(&json, "/produce/messages"), 5000, "{json}");
    let svg = std::fs::read_to_string(out.join("produce.svg")).expect("the plot");
    assert!(svg.contains("<polyline"), "{svg}");
    let hgrm = std::fs::read_to_string(out.join("hgrm/publish.hgrm")).expect("the histogram");
    assert!(hgrm.contains("Total count    =         5000"), "{hgrm}");

    let consume_json = out.join("consume.json");
    let output = loadgen(
        &broker,
        &[
            "--topic",
            "backlog",
            "--producers",
            "0",
            "--consumers",
            "2",
            "--from-earliest",
            "--messages",
            "5000",
            "--duration",
            "60",
            "--json",
            consume_json.to_str().expect("utf-8 path"),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json = report(&consume_json);
    assert_eq!(number(&json, "/consume/messages"), 5000, "{json}");
    assert_eq!(number(&json, "/lost"), 0, "{json}");
    assert_eq!(number(&json, "/duplicates"), 0, "{json}");

    // Asking for more than the backlog holds is reported as lost, and fails the run.
    let output = loadgen(
        &broker,
        &[
            "--topic",
            "backlog",
            "--producers",
            "0",
            "--from-earliest",
            "--messages",
            "5100",
            "--duration",
            "3",
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("100 lost"), "{stderr}");
    broker.stop();
}

#[test]
fn find_max_reports_its_trials_and_a_sustained_rate() {
    let dir = common::data_dir();
    let broker = common::Broker::start(dir.path());
    let json_path = dir.path().join("find-max.json");
    let output = loadgen(
        &broker,
        &[
            "--topic",
            "search",
            "--create-topic",
            "--partitions",
            "2",
            "--find-max",
            "--duration",
            "1",
            "--json",
            json_path.to_str().expect("utf-8 path"),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json = report(&json_path);
    let rate = number(&json, "/find_max/max_sustained_rate");
    assert!(rate > 0, "{json}");
    // The reported run is the open-loop trial at that rate, and it met it.
    assert_eq!(json["config"]["rate"].as_f64(), Some(rate as f64), "{json}");
    assert_eq!(json["config"]["mode"], "open-loop", "{json}");
    let trials = json["find_max"]["trials"].as_array().expect("trials");
    assert!(trials.len() >= 2, "{json}");
    assert!(
        trials.iter().all(|trial| trial["sustained"].is_boolean()),
        "{json}"
    );
    broker.stop();
}
