//! Goal: kafkajs (Node, the version kafkajs/package.json pins) works against `ringbus serve`'s
//! Kafka listener: its admin client creates a topic of 4 partitions, a producer's awaited
//! sends of 1,200 keyed records (acks -1) all resolve with the base offsets the records got, a
//! group member consumes every record exactly once, byte for byte, in offset order, and its
//! auto-commits store them (OffsetFetch answers the log ends); the next member of the group
//! gets exactly the 100 records produced after those commits; the group is listed; and records
//! `ringbus produce` wrote are read back by kafkajs byte for byte.
//!
//! Method: the real `ringbus` binary (tests/common), `ringbus produce` for the native records,
//! then `kafkajs/check.js` (which asserts the Kafka-side checks and prints the native records
//! it read) under `node`, with NODE_PATH at the node_modules of `RINGBUS_KAFKAJS_DIR` (else
//! `$XDG_CACHE_HOME/ringbus/kafkajs`, else `~/.cache/ringbus/kafkajs`): node_modules stays out
//! of the repository, and `npm ci` there from kafkajs/package-lock.json installs it. Where node
//! or kafkajs is missing the test prints why and passes, except under CI (the CI environment
//! variable set), where it fails: .ci/run installs it.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Broker, data_dir, in_ci, output_within, ringbus_with_stdin};

/// How long the kafkajs checks may take in all.
const DEADLINE: Duration = Duration::from_secs(180);

/// The directory of check.js, package.json and package-lock.json.
const CHECK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafkajs");

/// Where kafkajs is installed (`npm ci --prefix` this directory).
fn kafkajs_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("RINGBUS_KAFKAJS_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var("XDG_CACHE_HOME")
        .ok()
        .filter(|cache| !cache.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache"));
    cache.join("ringbus").join("kafkajs")
}

/// The node_modules that holds kafkajs, or None (after saying so) where node or kafkajs is
/// missing outside CI.
fn node_modules() -> Option<PathBuf> {
    let dir = kafkajs_dir();
    let node_modules = dir.join("node_modules");
    // Resolved from check.js's directory, as check.js itself resolves it.
    let usable = Command::new("node")
        .current_dir(CHECK_DIR)
        .args(["-e", "require('kafkajs')"])
        .env("NODE_PATH", &node_modules)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    match (usable, in_ci()) {
        (true, _) => Some(node_modules),
        (false, true) => panic!(
            "node cannot require kafkajs from {}, and CI is set: .ci/run must install it \
             (cp cli/tests/kafkajs/package*.json {dir} && npm ci --prefix {dir}; \
             RINGBUS_KAFKAJS_DIR names the directory)",
            node_modules.display(),
            dir = dir.display()
        ),
        (false, false) => {
            eprintln!(
                "SKIPPED: no node, or no kafkajs in {} (cp cli/tests/kafkajs/package*.json \
                 {dir} && npm ci --prefix {dir}, or set RINGBUS_KAFKAJS_DIR); not under CI",
                node_modules.display(),
                dir = dir.display()
            );
            None
        }
    }
}

#[test]
fn kafkajs_clients_work_against_the_kafka_listener() {
    let Some(node_modules) = node_modules() else {
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
    let output = output_within(
        Command::new("node")
            .current_dir(CHECK_DIR)
            .arg("check.js")
            .arg(broker.kafka_address.to_string())
            .args(["native", "50"])
            .env("NODE_PATH", &node_modules),
        DEADLINE,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stderr}");
    assert!(output.status.success(), "{}\n{stderr}", output.status);
    assert_eq!(String::from_utf8_lossy(&output.stdout), input);
    // The script reports each member's checks: both ran to the end.
    for reported in [
        "first member: 1200 records once",
        "second member: only the 100",
    ] {
        assert!(stderr.contains(reported), "no '{reported}' reported");
    }
    broker.stop();
}
