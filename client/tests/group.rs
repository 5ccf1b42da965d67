//! Goal: a group member starts each partition at its committed offset (or, without one, at
//! the reset policy's), moves a position only past records a poll returned, and resets a
//! partition whose position fell out of the log. A poll that fails on one partition moves no
//! position, not even that of a partition whose records came in the same response: the
//! caller never gets them, so moving past them would skip them (a poll skip, and with a
//! commit, records never delivered).
//!
//! Method: a `GroupConsumer` over a real `Client` talking to the scripted fake broker of
//! `tests/common`, which answers the join, the committed offsets, the list-offsets and the
//! fetches, and checks the offsets each fetch asks for. Heartbeats and auto-commit are set
//! far beyond the test, so the script sees only what the polls and the close send.

mod common;

use std::time::Duration;

use bytes::Bytes;
use client::{ClientOptions, ErrorCode, GroupConsumer, GroupOptions, OffsetReset};
use common::{Peer, Received, answer_fetch, connect, run, stored_batch};
use schema::wire::{
    JoinedOwned, ListOffsetsResultOwned, OffsetCommitResultOwned, OffsetSpec, PartitionOffsetOwned,
    RequestBodyOwned, ResponseBodyOwned, TopicPartitionsOwned,
};

/// The (partition, offset) pairs a fetch of topic "t" asks for.
fn fetch_offsets(request: &Received) -> Vec<(u32, u64)> {
    let RequestBodyOwned::Fetch { partitions, .. } = &request.body else {
        panic!("expected a fetch");
    };
    partitions
        .iter()
        .map(|entry| {
            assert_eq!(entry.topic, "t");
            (entry.partition, entry.offset)
        })
        .collect()
}

/// Answers a list-offsets request for `partition` of "t" (earliest) with `offset`.
async fn answer_earliest(peer: &mut Peer, partition: u32, offset: u64) {
    let lookup = peer.receive().await;
    let RequestBodyOwned::ListOffsets { partitions } = &lookup.body else {
        panic!("expected list offsets");
    };
    assert_eq!(partitions.len(), 1);
    assert_eq!(partitions[0].partition, partition);
    assert_eq!(partitions[0].spec, OffsetSpec::Earliest, "the reset policy");
    let body = ResponseBodyOwned::ListOffsets {
        error: ErrorCode::None,
        results: vec![ListOffsetsResultOwned {
            topic: "t".to_string(),
            partition,
            error: ErrorCode::None,
            offset,
        }],
    };
    peer.respond(lookup.correlation_id, body, &[]).await;
}

#[test]
fn positions_move_only_past_returned_records_and_reset_out_of_range() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let broker = glommio::spawn_local(async move {
            let join = peer.receive().await;
            assert!(matches!(join.body, RequestBodyOwned::JoinGroup(_)));
            let joined = JoinedOwned {
                generation: 1,
                member_id: "m".to_string(),
                assignment: vec![TopicPartitionsOwned {
                    topic: "t".to_string(),
                    partitions: vec![0, 1],
                }],
                member_count: 1,
            };
            let body = ResponseBodyOwned::JoinGroup {
                error: ErrorCode::None,
                message: String::new(),
                joined,
            };
            peer.respond(join.correlation_id, body, &[]).await;

            // Partition 0 has a committed offset; partition 1 starts at the reset policy's.
            let committed = peer.receive().await;
            assert!(matches!(
                committed.body,
                RequestBodyOwned::OffsetFetch { .. }
            ));
            let body = ResponseBodyOwned::OffsetFetch {
                error: ErrorCode::None,
                message: String::new(),
                offsets: vec![PartitionOffsetOwned {
                    topic: "t".to_string(),
                    partition: 0,
                    offset: 5,
                }],
            };
            peer.respond(committed.correlation_id, body, &[]).await;
            answer_earliest(&mut peer, 1, 10).await;

            // Records for partition 0, an error for partition 1: the poll fails whole.
            let fetch = peer.receive().await;
            assert_eq!(fetch_offsets(&fetch), [(0, 5), (1, 10)]);
            let answers = [
                (0, ErrorCode::None, stored_batch(5, 2)),
                (1, ErrorCode::Corruption, Bytes::new()),
            ];
            answer_fetch(&mut peer, &fetch, &answers).await;

            // Partition 1 fell out of the log: reset to its earliest offset.
            let fetch = peer.receive().await;
            assert_eq!(
                fetch_offsets(&fetch),
                [(0, 5), (1, 10)],
                "a failed poll moves no position"
            );
            let answers = [
                (0, ErrorCode::None, stored_batch(5, 2)),
                (1, ErrorCode::OffsetOutOfRange, Bytes::new()),
            ];
            answer_fetch(&mut peer, &fetch, &answers).await;
            answer_earliest(&mut peer, 1, 20).await;

            // Close commits the positions, then leaves.
            let commit = peer.receive().await;
            let RequestBodyOwned::OffsetCommit {
                member_id,
                generation,
                offsets,
                ..
            } = &commit.body
            else {
                panic!("expected a commit");
            };
            assert_eq!((member_id.as_str(), *generation), ("m", 1));
            let committed: Vec<(u32, u64)> = offsets
                .iter()
                .map(|entry| (entry.partition, entry.offset))
                .collect();
            assert_eq!(committed, [(0, 7), (1, 20)]);
            let results = offsets
                .iter()
                .map(|entry| OffsetCommitResultOwned {
                    topic: entry.topic.clone(),
                    partition: entry.partition,
                    error: ErrorCode::None,
                    message: String::new(),
                })
                .collect();
            let body = ResponseBodyOwned::OffsetCommit {
                error: ErrorCode::None,
                message: String::new(),
                results,
            };
            peer.respond(commit.correlation_id, body, &[]).await;
            let leave = peer.receive().await;
            assert!(matches!(leave.body, RequestBodyOwned::LeaveGroup { .. }));
            let body = ResponseBodyOwned::LeaveGroup {
                error: ErrorCode::None,
                message: String::new(),
            };
            peer.respond(leave.correlation_id, body, &[]).await;
        });

        let options = GroupOptions {
            heartbeat_interval: Duration::from_secs(3600),
            auto_commit_interval: None,
            offset_reset: OffsetReset::Earliest,
            ..GroupOptions::new("g")
        };
        let mut member = GroupConsumer::subscribe(client, options, &["t"]);
        let wait = Duration::from_millis(10);
        let error = member.poll(wait).await.expect_err("partition 1 failed");
        assert_eq!(error.code(), Some(ErrorCode::Corruption));
        assert_eq!(member.position("t", 0), Some(5));
        assert_eq!(member.position("t", 1), Some(10));

        let records = member.poll(wait).await.expect("polled");
        let offsets: Vec<(u32, u64)> = records
            .iter()
            .map(|record| (record.partition, record.offset))
            .collect();
        assert_eq!(offsets, [(0, 5), (0, 6)]);
        assert_eq!(member.position("t", 0), Some(7));
        assert_eq!(member.position("t", 1), Some(20), "reset");
        member.close().await.expect("closed");
        broker.await;
    });
}
