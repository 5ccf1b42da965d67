//! Goal: `--offsets-retention-ms` as a Kafka user expects it (issue #14): the committed offsets
//! of a group without members expire once the retention has passed, those of a group with a
//! member never do, `ringbus group describe` says which, and an expired offset stays gone
//! after the broker restarts (its tombstones are replayed) while the others remain.
//!
//! Method: the real `ringbus serve` (2 shards) with a 2 s retention and the blocking wire
//! client of tests/common. Group `busy` has a member (a long session timeout, so it needs no
//! heartbeat) and commits first; group `idle` only has commits from outside any membership.
//! The test waits on the condition (idle's offsets gone) with a generous deadline, then checks
//! busy's, which are older, are still there; then restarts the broker with the default
//! retention (7 days) and fetches both again.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Broker, RawClient, create_topic, data_dir};
use schema::wire::{
    Assignor, ErrorCode, JoinGroupOwned, PartitionOffsetOwned, RequestBodyOwned, ResponseBodyOwned,
};

const TOPIC: &str = "orders";
const DEADLINE: Duration = Duration::from_secs(60);

fn join(client: &mut RawClient, group: &str) -> (String, i32) {
    let body = RequestBodyOwned::JoinGroup(JoinGroupOwned {
        group: group.to_string(),
        member_id: String::new(),
        client_id: "raw".to_string(),
        topics: vec![TOPIC.to_string()],
        // Long enough that the member outlives the test without a heartbeat.
        session_timeout_ms: 600_000,
        rebalance_timeout_ms: 10_000,
        assignor: Assignor::Range,
    });
    match client.request(&body, &[]).0.body {
        Some(ResponseBodyOwned::JoinGroup {
            error,
            message,
            joined,
        }) => {
            assert_eq!(error, ErrorCode::None, "{message}");
            (joined.member_id, joined.generation)
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn commit(client: &mut RawClient, group: &str, member: (&str, i32), offsets: &[(u32, u64)]) {
    let body = RequestBodyOwned::OffsetCommit {
        group: group.to_string(),
        member_id: member.0.to_string(),
        generation: member.1,
        offsets: offsets
            .iter()
            .map(|(partition, offset)| PartitionOffsetOwned {
                topic: TOPIC.to_string(),
                partition: *partition,
                offset: *offset,
            })
            .collect(),
        reset: false,
    };
    match client.request(&body, &[]).0.body {
        Some(ResponseBodyOwned::OffsetCommit {
            error,
            message,
            results,
        }) => {
            assert_eq!(error, ErrorCode::None, "{message}");
            assert!(
                results.iter().all(|result| result.error == ErrorCode::None),
                "{results:?}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn fetch(client: &mut RawClient, group: &str) -> Vec<(u32, u64)> {
    let body = RequestBodyOwned::OffsetFetch {
        group: group.to_string(),
        topics: Vec::new(),
    };
    match client.request(&body, &[]).0.body {
        Some(ResponseBodyOwned::OffsetFetch {
            error,
            message,
            offsets,
        }) => {
            assert_eq!(error, ErrorCode::None, "{message}");
            offsets
                .into_iter()
                .map(|entry| (entry.partition, entry.offset))
                .collect()
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// `ringbus group describe GROUP`: its `offsets:` line (stderr) and its table (stdout).
fn describe(broker: &Broker, group: &str) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ringbus"))
        .args(["group", "describe", group, "--broker"])
        .arg(broker.address.to_string())
        .output()
        .expect("group describe");
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8(output.stderr).expect("utf-8");
    let line = stderr
        .lines()
        .find(|line| line.starts_with("offsets: "))
        .unwrap_or_else(|| panic!("no offsets line in {stderr:?}"))
        .to_string();
    (line, String::from_utf8(output.stdout).expect("utf-8"))
}

#[test]
fn offsets_of_groups_without_members_expire_and_stay_expired_after_a_restart() {
    let dir = data_dir();
    let broker = Broker::start_with_args(dir.path(), &["--offsets-retention-ms", "2000"]);
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, TOPIC, 2);

    let (member_id, generation) = join(&mut client, "busy");
    commit(&mut client, "busy", (&member_id, generation), &[(0, 1)]);
    commit(&mut client, "idle", ("", -1), &[(0, 5), (1, 6)]);

    let (busy, _) = describe(&broker, "busy");
    assert_eq!(
        busy,
        "offsets: kept while the group has members, then for 2s"
    );
    let (idle, table) = describe(&broker, "idle");
    assert!(
        idle.starts_with("offsets: no members since ") && idle.contains("; they expire at "),
        "{idle}"
    );
    assert!(table.contains("\norders 0 5 "), "{table}");

    // The standalone commits expire a retention after they were made.
    let deadline = Instant::now() + DEADLINE;
    while !fetch(&mut client, "idle").is_empty() {
        assert!(
            Instant::now() < deadline,
            "idle's offsets did not expire: {:?}",
            describe(&broker, "idle")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(describe(&broker, "idle").0, "offsets: none committed");
    // busy committed before idle: its offset is older than the retention, and kept.
    assert_eq!(fetch(&mut client, "busy"), vec![(0, 1)]);

    drop(client);
    let address = broker.address.to_string();
    broker.stop();
    let broker = Broker::start_listening(dir.path(), &address, &[]);
    let mut client = RawClient::connect(broker.address);
    assert_eq!(
        fetch(&mut client, "idle"),
        Vec::new(),
        "an expired offset came back after the restart"
    );
    assert_eq!(fetch(&mut client, "busy"), vec![(0, 1)]);
    // Membership is not stored: busy is empty now, its offset aging from the restart.
    let (busy, _) = describe(&broker, "busy");
    assert!(
        busy.contains("; they expire at ") && busy.contains("(in 6d 23h"),
        "{busy}"
    );
    broker.stop();
}
