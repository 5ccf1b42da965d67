//! Goal: produce calls that wait for a permit share requests, as Kafka's sender drains every
//! ready partition into one request per broker: the oldest waiting calls go out together (same
//! acks, within a size limit), in call order, and each call gets its own results, or the
//! error of the whole request. A call dropped while it waits is never sent; one dropped after
//! it sent others' calls with its own leaves them their answers. Through thousands of calls
//! and many wake-ups of each, every call gets exactly its own result.
//!
//! Method: the fake broker of `common` (a real TCP listener in the test's executor) holds the
//! client's one permit (`in_flight_max` 1) by leaving a first request unanswered while the
//! test queues more calls, then reads which calls each request carried. Nothing asserts on
//! timing.

mod common;

use std::rc::Rc;

use bytes::Bytes;
use client::{Acks, Client, ClientError, ClientOptions, ErrorCode, ProduceItem};
use common::{Peer, Received, connect, produced_batches, run};
use schema::wire::{ProduceResultOwned, ResponseBodyOwned, ResponseOwned};

/// One permit: every call after the first waits until the first is answered.
fn one_permit() -> ClientOptions {
    ClientOptions {
        in_flight_max: 1,
        ..ClientOptions::default()
    }
}

/// Starts a produce call of one batch (`bytes` long) to partition `partition` of "t".
fn produce_call(
    client: &Rc<Client>,
    acks: Acks,
    partition: u32,
    bytes: usize,
) -> glommio::Task<Result<Vec<ProduceResultOwned>, ClientError>> {
    let client = client.clone();
    let item = ProduceItem {
        topic: "t".to_string(),
        partition,
        batch: Bytes::from(vec![partition as u8; bytes]),
    };
    glommio::spawn_local(async move { client.produce(acks, vec![item]).await })
}

/// Lets the spawned calls run up to their wait for a permit.
async fn let_calls_queue() {
    for _ in 0..10 {
        glommio::yield_if_needed().await;
        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// The partitions a produce request carried, in order.
fn partitions(request: &Received) -> Vec<u32> {
    produced_batches(request)
        .iter()
        .map(|(_, partition, _)| *partition)
        .collect()
}

/// Answers a produce request: each batch stored at base offset 100 x its partition.
async fn answer(peer: &mut Peer, request: &Received) {
    let results = produced_batches(request)
        .iter()
        .map(|(topic, partition, _)| ProduceResultOwned {
            topic: topic.clone(),
            partition: *partition,
            error: ErrorCode::None,
            base_offset: 100 * u64::from(*partition),
            last_offset: 100 * u64::from(*partition),
            log_start: 0,
            message: String::new(),
        })
        .collect();
    let body = ResponseBodyOwned::Produce {
        error: ErrorCode::None,
        results,
    };
    peer.respond(request.correlation_id, body, &[]).await;
}

/// Asserts that a call got exactly its own batch's result.
fn assert_own_result(outcome: Result<Vec<ProduceResultOwned>, ClientError>, partition: u32) {
    let results = outcome.expect("the call succeeds");
    assert_eq!(results.len(), 1, "one result per batch of the call");
    assert_eq!(results[0].partition, partition, "the call's own result");
    assert_eq!(results[0].base_offset, 100 * u64::from(partition));
}

/// Takes the client's one permit with a call to partition 0, left unanswered.
async fn hold_permit(
    client: &Rc<Client>,
    peer: &mut Peer,
) -> (
    glommio::Task<Result<Vec<ProduceResultOwned>, ClientError>>,
    Received,
) {
    let first = produce_call(client, Acks::Written, 0, 100);
    let holding = peer.receive().await;
    assert_eq!(partitions(&holding), [0]);
    (first, holding)
}

/// Lets the calls made meanwhile queue, then answers the call that held the permit.
async fn release_permit(
    peer: &mut Peer,
    (first, holding): (
        glommio::Task<Result<Vec<ProduceResultOwned>, ClientError>>,
        Received,
    ),
) {
    let_calls_queue().await;
    answer(peer, &holding).await;
    assert_own_result(first.await, 0);
}

#[test]
fn calls_waiting_for_a_permit_go_out_together_in_call_order() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, one_permit()).await;
        let held = hold_permit(&client, &mut peer).await;
        let waiting: Vec<_> = [3, 1, 2]
            .into_iter()
            .map(|partition| {
                (
                    partition,
                    produce_call(&client, Acks::Written, partition, 100),
                )
            })
            .collect();
        // Other acks never share a request with them.
        let durable = produce_call(&client, Acks::Durable, 4, 100);
        release_permit(&mut peer, held).await;

        let together = peer.receive().await;
        assert_eq!(
            partitions(&together),
            [3, 1, 2],
            "the waiting calls, in call order"
        );
        answer(&mut peer, &together).await;
        let alone = peer.receive().await;
        assert_eq!(partitions(&alone), [4], "the call with other acks, next");
        answer(&mut peer, &alone).await;
        for (partition, call) in waiting {
            assert_own_result(call.await, partition);
        }
        assert_own_result(durable.await, 4);
    });
}

#[test]
fn a_request_stops_taking_calls_at_a_mebibyte() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, one_permit()).await;
        let held = hold_permit(&client, &mut peer).await;
        // 400 KiB each: two fit under 1 MiB, the third does not.
        let waiting: Vec<_> = [1, 2, 3]
            .into_iter()
            .map(|partition| {
                (
                    partition,
                    produce_call(&client, Acks::Written, partition, 400 << 10),
                )
            })
            .collect();
        release_permit(&mut peer, held).await;
        let two = peer.receive().await;
        assert_eq!(partitions(&two), [1, 2]);
        answer(&mut peer, &two).await;
        let third = peer.receive().await;
        assert_eq!(partitions(&third), [3]);
        answer(&mut peer, &third).await;
        for (partition, call) in waiting {
            assert_own_result(call.await, partition);
        }
    });
}

#[test]
fn the_error_of_a_shared_request_reaches_every_call_in_it() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, one_permit()).await;
        let held = hold_permit(&client, &mut peer).await;
        let waiting: Vec<_> = [1, 2]
            .into_iter()
            .map(|partition| produce_call(&client, Acks::Written, partition, 100))
            .collect();
        release_permit(&mut peer, held).await;
        let together = peer.receive().await;
        assert_eq!(partitions(&together), [1, 2]);
        let refusal = ResponseOwned {
            correlation_id: together.correlation_id,
            error: ErrorCode::Throttled,
            message: "slow down".to_string(),
            body: None,
        };
        peer.send(&refusal, &[]).await;
        for call in waiting {
            match call.await {
                Err(ClientError::Broker { code, .. }) => assert_eq!(code, ErrorCode::Throttled),
                other => panic!("expected the request's error, got {other:?}"),
            }
        }
    });
}

#[test]
fn a_call_dropped_while_it_waits_is_never_sent() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, one_permit()).await;
        let held = hold_permit(&client, &mut peer).await;
        let dropped = produce_call(&client, Acks::Written, 1, 100);
        let kept = produce_call(&client, Acks::Written, 2, 100);
        let_calls_queue().await;
        drop(dropped);
        release_permit(&mut peer, held).await;
        let next = peer.receive().await;
        assert_eq!(
            partitions(&next),
            [2],
            "the dropped call's batch is not sent"
        );
        answer(&mut peer, &next).await;
        assert_own_result(kept.await, 2);
    });
}

#[test]
fn the_calls_in_a_shared_request_outlive_the_call_that_sent_it() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, one_permit()).await;
        let held = hold_permit(&client, &mut peer).await;
        let sender = produce_call(&client, Acks::Written, 1, 100);
        let other = produce_call(&client, Acks::Written, 2, 100);
        release_permit(&mut peer, held).await;
        let together = peer.receive().await;
        assert_eq!(partitions(&together), [1, 2]);
        // The call that got the permit and sent both goes away before the answer.
        drop(sender);
        answer(&mut peer, &together).await;
        assert_own_result(other.await, 2);
    });
}

#[test]
fn thousands_of_calls_through_one_permit_each_get_their_own_result() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, one_permit()).await;
        // 2,000 calls over 200 partitions, made while earlier ones are in flight: the queue
        // is taken, shared and refilled many times over, every call woken in turn.
        const CALLS: u32 = 2_000;
        let calls: Vec<_> = (0..CALLS)
            .map(|call| {
                (
                    call % 200,
                    produce_call(&client, Acks::Written, call % 200, 100),
                )
            })
            .collect();
        let mut answered = 0;
        let mut requests = 0;
        while answered < CALLS as usize {
            let request = peer.receive().await;
            answered += partitions(&request).len();
            requests += 1;
            answer(&mut peer, &request).await;
        }
        assert_eq!(answered, CALLS as usize, "every batch sent once");
        assert!(
            requests < CALLS / 10,
            "{requests} requests for {CALLS} waiting calls"
        );
        for (partition, call) in calls {
            assert_own_result(call.await, partition);
        }
    });
}
