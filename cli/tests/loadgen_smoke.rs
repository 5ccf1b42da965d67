//! Goal: `ringbus loadgen` runs against a real broker and loses, duplicates and fails nothing
//! (a smoke test: no throughput is asserted).

mod common;

use std::process::Command;

fn field(json: &str, name: &str, after: &str) -> u64 {
    let start = json
        .find(after)
        .unwrap_or_else(|| panic!("{after} in {json}"));
    let rest = &json[start..];
    let key = format!("\"{name}\": ");
    let at = rest
        .find(&key)
        .unwrap_or_else(|| panic!("{name} in {json}"))
        + key.len();
    rest[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("a number for {name} in {json}"))
}

#[test]
fn loadgen_closed_loop_loses_nothing() {
    let dir = common::data_dir();
    let broker = common::Broker::start(dir.path());
    let json_path = dir.path().join("loadgen.json");
    let output = Command::new(env!("CARGO_BIN_EXE_ringbus"))
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
        .arg(&json_path)
        .output()
        .expect("run ringbus loadgen");
    assert!(
        output.status.success(),
        "loadgen failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let json = std::fs::read_to_string(&json_path).expect("the JSON report");
    assert!(field(&json, "messages", "\"produce\"") > 0, "{json}");
    assert!(field(&json, "messages", "\"consume\"") > 0, "{json}");
    assert_eq!(field(&json, "lost", "\"lost\""), 0, "{json}");
    assert_eq!(field(&json, "duplicates", "\"duplicates\""), 0, "{json}");
    assert_eq!(field(&json, "errors", "\"errors\""), 0, "{json}");
    broker.stop();
}

fn loadgen(broker: &common::Broker, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ringbus"))
        .args(["loadgen", "--broker"])
        .arg(broker.address.to_string())
        .args(["--cores", "1", "--warmup", "0"])
        .args(args)
        .output()
        .expect("run ringbus loadgen")
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
    let json = std::fs::read_to_string(&produce_json).expect("the JSON report");
    assert_eq!(field(&json, "messages", "\"produce\""), 5000, "{json}");
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
    let json = std::fs::read_to_string(&consume_json).expect("the JSON report");
    assert_eq!(field(&json, "messages", "\"consume\""), 5000, "{json}");
    assert_eq!(field(&json, "lost", "\"lost\""), 0, "{json}");
    assert_eq!(field(&json, "duplicates", "\"duplicates\""), 0, "{json}");

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
    let json = std::fs::read_to_string(&json_path).expect("the JSON report");
    let rate = field(&json, "max_sustained_rate", "\"find_max\"");
    assert!(rate > 0, "{json}");
    // The reported run is the open-loop trial at that rate, and it met it.
    assert_eq!(field(&json, "rate", "\"config\""), rate, "{json}");
    assert!(json.contains("\"mode\": \"open-loop\""), "{json}");
    assert!(json.matches("\"sustained\": ").count() >= 2, "{json}");
    broker.stop();
}
