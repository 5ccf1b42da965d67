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
