//! Goal: the consumer-group protocol rules against the real binary, one request at a time:
//! committed offsets are durable (the last acknowledged commit survives kill -9, and a clean
//! restart), never move backwards unless an operator resets a group without members; a
//! member's commits need its current generation; a join returns an assignment covering the
//! subscribed topics; the internal offsets topic cannot be created, deleted or produced to by
//! clients.
//!
//! Method: `ringbus serve` on 2 shards and the blocking wire client of tests/common. Group
//! behaviour with several members (rebalances, expiry) is tested through the client library
//! and the CLI in group_consumers.rs.

mod common;

use common::{Broker, RawClient, create_topic, data_dir, produce};
use schema::wire::{
    Acks, Assignor, ErrorCode, GroupState, JoinGroupOwned, JoinedOwned, PartitionOffsetOwned,
    RequestBodyOwned, ResponseBodyOwned, TopicPartitionsOwned,
};

fn commit(
    client: &mut RawClient,
    group: &str,
    member: (&str, i32),
    offsets: &[(&str, u32, u64)],
    reset: bool,
) -> Result<Vec<ErrorCode>, ErrorCode> {
    let body = RequestBodyOwned::OffsetCommit {
        group: group.to_string(),
        member_id: member.0.to_string(),
        generation: member.1,
        offsets: offsets
            .iter()
            .map(|(topic, partition, offset)| PartitionOffsetOwned {
                topic: topic.to_string(),
                partition: *partition,
                offset: *offset,
            })
            .collect(),
        reset,
    };
    match client.request(&body, &[]).0.body {
        Some(ResponseBodyOwned::OffsetCommit { error, results, .. }) => {
            if error != ErrorCode::None {
                return Err(error);
            }
            Ok(results.into_iter().map(|result| result.error).collect())
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// A commit from outside any membership (empty member id, generation -1).
fn commit_standalone(client: &mut RawClient, group: &str, offsets: &[(&str, u32, u64)]) {
    let results = commit(client, group, ("", -1), offsets, false).expect("commit");
    assert!(
        results.iter().all(|error| *error == ErrorCode::None),
        "{results:?}"
    );
}

fn fetch_offsets(client: &mut RawClient, group: &str) -> Vec<(String, u32, u64)> {
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
                .map(|entry| (entry.topic, entry.partition, entry.offset))
                .collect()
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn join(client: &mut RawClient, group: &str, member_id: &str, topics: &[&str]) -> JoinedOwned {
    let body = RequestBodyOwned::JoinGroup(JoinGroupOwned {
        group: group.to_string(),
        member_id: member_id.to_string(),
        client_id: "raw".to_string(),
        topics: topics.iter().map(|topic| topic.to_string()).collect(),
        session_timeout_ms: 10_000,
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
            joined
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn heartbeat(client: &mut RawClient, group: &str, member_id: &str, generation: i32) -> ErrorCode {
    let body = RequestBodyOwned::Heartbeat {
        group: group.to_string(),
        member_id: member_id.to_string(),
        generation,
    };
    match client.request(&body, &[]).0.body {
        Some(ResponseBodyOwned::Heartbeat { error, .. }) => error,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn the_last_acknowledged_commit_survives_kill_9() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "t", 3);
    // Many groups, so several offsets partitions (on both shards) hold commits.
    for round in 1..=50u64 {
        for group in 0..6 {
            let group = format!("g{group}");
            commit_standalone(
                &mut client,
                &group,
                &[("t", 0, round), ("t", 2, round * 10)],
            );
        }
    }
    broker.kill();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    for group in 0..6 {
        let group = format!("g{group}");
        assert_eq!(
            fetch_offsets(&mut client, &group),
            vec![("t".to_string(), 0, 50), ("t".to_string(), 2, 500)],
            "{group}"
        );
    }
    // And across a clean restart.
    commit_standalone(&mut client, "g0", &[("t", 1, 7)]);
    broker.stop();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    assert_eq!(
        fetch_offsets(&mut client, "g0"),
        vec![
            ("t".to_string(), 0, 50),
            ("t".to_string(), 1, 7),
            ("t".to_string(), 2, 500)
        ]
    );
    // Groups with offsets are listed, empty.
    match client.request(&RequestBodyOwned::ListGroups, &[]).0.body {
        Some(ResponseBodyOwned::ListGroups { error, groups, .. }) => {
            assert_eq!(error, ErrorCode::None);
            let names: Vec<&str> = groups.iter().map(|group| group.group.as_str()).collect();
            assert_eq!(names, vec!["g0", "g1", "g2", "g3", "g4", "g5"]);
            assert!(groups.iter().all(|group| group.state == GroupState::Empty));
        }
        other => panic!("unexpected {other:?}"),
    }
    broker.stop();
}

#[test]
fn offsets_never_move_backwards_except_by_a_reset_of_an_empty_group() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "t", 2);
    commit_standalone(&mut client, "g", &[("t", 0, 10)]);
    assert_eq!(
        commit(
            &mut client,
            "g",
            ("", -1),
            &[("t", 0, 5), ("t", 1, 3)],
            false
        ),
        Ok(vec![ErrorCode::OffsetCommitRewind, ErrorCode::None]),
        "each offset has its own outcome"
    );
    // Unknown topics and partitions are refused per offset.
    assert_eq!(
        commit(
            &mut client,
            "g",
            ("", -1),
            &[("nope", 0, 1), ("t", 9, 1)],
            false
        ),
        Ok(vec![ErrorCode::UnknownTopic, ErrorCode::UnknownPartition])
    );
    assert_eq!(
        fetch_offsets(&mut client, "g"),
        vec![("t".to_string(), 0, 10), ("t".to_string(), 1, 3)]
    );

    // A member joins: now a reset and a commit from outside the group are refused.
    let joined = join(&mut client, "g", "", &["t"]);
    assert_eq!(joined.generation, 1);
    assert_eq!(
        joined.assignment,
        vec![TopicPartitionsOwned {
            topic: "t".to_string(),
            partitions: vec![0, 1]
        }]
    );
    assert_eq!(
        commit(&mut client, "g", ("", -1), &[("t", 0, 1)], true),
        Err(ErrorCode::GroupNotEmpty)
    );
    assert_eq!(
        commit(&mut client, "g", ("", -1), &[("t", 0, 11)], false),
        Err(ErrorCode::GroupNotEmpty)
    );
    // The member commits with its generation; a stale or unknown one is refused.
    let member = joined.member_id.as_str();
    assert_eq!(
        commit(&mut client, "g", (member, 1), &[("t", 0, 12)], false),
        Ok(vec![ErrorCode::None])
    );
    assert_eq!(
        commit(&mut client, "g", (member, 0), &[("t", 0, 13)], false),
        Err(ErrorCode::IllegalGeneration)
    );
    assert_eq!(
        commit(&mut client, "g", ("someone", 1), &[("t", 0, 13)], false),
        Err(ErrorCode::UnknownMemberId)
    );
    assert_eq!(heartbeat(&mut client, "g", member, 1), ErrorCode::None);
    assert_eq!(
        heartbeat(&mut client, "g", member, 0),
        ErrorCode::IllegalGeneration
    );
    assert_eq!(
        heartbeat(&mut client, "g", "someone", 1),
        ErrorCode::UnknownMemberId
    );

    // It leaves; the group is empty and an operator may reset it backwards.
    let body = RequestBodyOwned::LeaveGroup {
        group: "g".to_string(),
        member_id: member.to_string(),
    };
    match client.request(&body, &[]).0.body {
        Some(ResponseBodyOwned::LeaveGroup { error, .. }) => assert_eq!(error, ErrorCode::None),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        commit(&mut client, "g", ("", -1), &[("t", 0, 2)], true),
        Ok(vec![ErrorCode::None])
    );
    assert_eq!(fetch_offsets(&mut client, "g")[0], ("t".to_string(), 0, 2));
    broker.stop();
}

#[test]
fn clients_cannot_create_delete_or_produce_to_internal_topics() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    let create = RequestBodyOwned::CreateTopic {
        name: "__mine".to_string(),
        partitions: 1,
        config: Default::default(),
    };
    match client.request(&create, &[]).0.body {
        Some(ResponseBodyOwned::CreateTopic { error, .. }) => {
            assert_eq!(error, ErrorCode::InternalTopic)
        }
        other => panic!("unexpected {other:?}"),
    }
    let delete = RequestBodyOwned::DeleteTopic {
        name: "__consumer_offsets".to_string(),
    };
    match client.request(&delete, &[]).0.body {
        Some(ResponseBodyOwned::DeleteTopic { error, .. }) => {
            assert_eq!(error, ErrorCode::InternalTopic)
        }
        other => panic!("unexpected {other:?}"),
    }
    let results = produce(
        &mut client,
        "__consumer_offsets",
        &[(0, common::batch("forged", 1))],
        Acks::Durable,
    );
    assert_eq!(results[0].0, ErrorCode::InternalTopic);
    broker.stop();
}

#[test]
fn the_offsets_log_is_compacted_by_snapshots_and_recovers_from_them() {
    // Each offset in a commit is one record (about 40 bytes); 40 commits of 10,000 records
    // pass the snapshot threshold (100,000 records) four times and fill about two 8 MiB
    // segments; the closed ones below the last snapshot go.
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "t", 1);
    let mut last = 0;
    for round in 0..40u64 {
        let offsets: Vec<(&str, u32, u64)> = (0..10_000u64)
            .map(|index| ("t", 0, round * 10_000 + index))
            .collect();
        last = offsets.last().unwrap().2;
        commit_standalone(&mut client, "big", &offsets);
    }
    let describe = RequestBodyOwned::Metadata {
        topics: vec!["__consumer_offsets".to_string()],
    };
    let partitions = match client.request(&describe, &[]).0.body {
        Some(ResponseBodyOwned::Metadata { topics, .. }) => topics[0].partitions.clone(),
        other => panic!("unexpected {other:?}"),
    };
    let compacted: Vec<_> = partitions
        .iter()
        .filter(|partition| partition.log_start > 0)
        .collect();
    assert_eq!(
        compacted.len(),
        1,
        "one partition holds the group: {partitions:?}"
    );
    let snapshot = dir
        .path()
        .join(format!("__consumer_offsets-{}", compacted[0].partition))
        .join("offsets-snapshot");
    assert!(snapshot.exists(), "{} exists", snapshot.display());
    // The snapshot it replaced is kept: the log is deleted only below that one.
    let previous = snapshot.with_file_name("offsets-snapshot.previous");
    assert!(previous.exists(), "{} exists", previous.display());
    broker.kill();

    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    assert_eq!(
        fetch_offsets(&mut client, "big"),
        vec![("t".to_string(), 0, last)]
    );
    broker.stop();

    // One damaged file does not cost the partition its groups: with the newest snapshot
    // damaged, the previous one and the log after it give the same offsets, and the damaged
    // file is set aside for an operator.
    let mut bytes = std::fs::read(&snapshot).expect("read the snapshot");
    // Within the framed payload (the file is padded to a block; the table holds one entry).
    bytes[40] ^= 0x40;
    std::fs::write(&snapshot, &bytes).expect("damage the snapshot");
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    assert_eq!(
        fetch_offsets(&mut client, "big"),
        vec![("t".to_string(), 0, last)]
    );
    assert!(snapshot.with_file_name("offsets-snapshot.refused").exists());
    broker.stop();
}

#[test]
fn bad_group_requests_get_a_clear_error_and_the_broker_keeps_serving() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "t", 1);
    let join = |group: &str, client_id: &str, topic: &str| {
        RequestBodyOwned::JoinGroup(JoinGroupOwned {
            group: group.to_string(),
            member_id: String::new(),
            client_id: client_id.to_string(),
            topics: vec![topic.to_string()],
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            assignor: Assignor::Range,
        })
    };
    let join_error =
        |client: &mut RawClient, body: &RequestBodyOwned| match client.request(body, &[]).0.body {
            Some(ResponseBodyOwned::JoinGroup { error, .. }) => error,
            other => panic!("unexpected {other:?}"),
        };
    // An empty group name, a topic name that is not one, an oversized client id, timeouts
    // out of bounds.
    assert_eq!(
        join_error(&mut client, &join("", "c", "t")),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        join_error(&mut client, &join("g", "c", "../t")),
        ErrorCode::InvalidRequest
    );
    let long = "c".repeat(1_000);
    assert_eq!(
        join_error(&mut client, &join("g", &long, "t")),
        ErrorCode::InvalidRequest
    );
    let mut short_session = join("g", "c", "t");
    if let RequestBodyOwned::JoinGroup(join) = &mut short_session {
        join.session_timeout_ms = 1;
    }
    assert_eq!(
        join_error(&mut client, &short_session),
        ErrorCode::InvalidSessionTimeout
    );
    // Too many offsets in one commit: refused whole, nothing stored.
    let offsets: Vec<(&str, u32, u64)> = (0..10_001u64).map(|offset| ("t", 0, offset)).collect();
    assert_eq!(
        commit(&mut client, "g", ("", -1), &offsets, false),
        Err(ErrorCode::InvalidRequest)
    );
    assert_eq!(fetch_offsets(&mut client, "g"), Vec::new());
    // Still serving: a good commit goes through.
    commit_standalone(&mut client, "g", &[("t", 0, 1)]);
    assert_eq!(
        fetch_offsets(&mut client, "g"),
        vec![("t".to_string(), 0, 1)]
    );
    broker.stop();
}
