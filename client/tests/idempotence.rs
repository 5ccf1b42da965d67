//! Goal: the idempotent producer stamps what the broker needs to store each batch at most once:
//! it asks for a producer id before its first produce, stamps every batch with it and with
//! consecutive per-partition sequences from 0, resends the very same bytes after a client-side
//! timeout (safe only with idempotence), and when a batch fails for good, re-stamps the batches
//! after it from its sequence, which is where the broker expects the partition to continue
//! (under the producer id those batches carry, even if another partition has taken a new one
//! meanwhile).
//!
//! Method: a `Producer` with default options (idempotence on, acks durable) over a real
//! `Client` talking to the scripted fake broker of `tests/common`; the fake broker reads the
//! producer fields of every batch it receives. (The real broker's deduplication is tested
//! against the real binary in cli/tests/idempotence.rs.)

mod common;

use std::time::Duration;

use client::{ClientError, ClientOptions, ErrorCode, Producer, ProducerOptions, ProducerRecord};
use common::{Peer, Received, answer_produce, connect, produced_batches, run};
use schema::wire::{RequestBodyOwned, ResponseBodyOwned};

fn options() -> ProducerOptions {
    ProducerOptions {
        // Every 50-byte record fills a 100-byte batch: one batch per record, no timers.
        batch_bytes: 100,
        linger: Duration::from_secs(60),
        retry_backoff: Duration::from_millis(1),
        retry_backoff_max: Duration::from_millis(1),
        // Every batch may follow one in flight (these batches are 100 bytes).
        pipeline_bytes_min: 0,
        ..ProducerOptions::default()
    }
}

fn record(value: &str) -> ProducerRecord {
    ProducerRecord::new("t", format!("{value:-<50}")).partition(0)
}

/// (producer id, epoch, base sequence) of each batch of a produce request.
fn stamps(request: &Received) -> Vec<(i64, i16, i32)> {
    produced_batches(request)
        .iter()
        .map(|(_, _, bytes)| {
            let header = schema::batch::verify(bytes).expect("valid after stamping");
            (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
            )
        })
        .collect()
}

/// A producer with `options` whose requests time out after 200 ms on the client, and the
/// fake broker's side of its connection.
async fn timing_out(listener: &net::Listener, options: ProducerOptions) -> (Producer, Peer) {
    let client_options = ClientOptions {
        request_timeout: Duration::from_millis(200),
        ..ClientOptions::default()
    };
    let (client, peer) = connect(listener, client_options).await;
    (Producer::new(client, options), peer)
}

/// Asserts that `error` is the broker's refusal of a batch with `code`.
fn assert_refused(error: ClientError, code: ErrorCode) {
    assert!(
        matches!(&error, ClientError::Partition { code: got, .. } if *got == code),
        "{error}"
    );
}

async fn answer_init(peer: &mut Peer, producer_id: i64) {
    let request = peer.receive().await;
    assert!(
        matches!(request.body, RequestBodyOwned::InitProducerId),
        "the first request of an idempotent producer asks for its id"
    );
    let body = ResponseBodyOwned::InitProducerId {
        error: ErrorCode::None,
        message: String::new(),
        producer_id,
        producer_epoch: 0,
    };
    peer.respond(request.correlation_id, body, &[]).await;
}

#[test]
fn a_timed_out_batch_is_resent_byte_for_byte() {
    run(|listener| async move {
        let client_options = ClientOptions {
            request_timeout: Duration::from_millis(300),
            ..ClientOptions::default()
        };
        let (client, mut peer) = connect(&listener, client_options).await;
        let producer = Producer::new(client, options());
        let first = producer.send(record("a")).await.expect("queued");
        answer_init(&mut peer, 42).await;
        let lost = peer.receive().await;
        assert_eq!(stamps(&lost), vec![(42, 0, 0)]);
        // No answer: the client times out and sends the same stamped bytes again.
        let retried = peer.receive().await;
        assert_eq!(produced_batches(&retried), produced_batches(&lost));
        answer_produce(&mut peer, &retried, &[Ok(10)]).await;
        assert_eq!(first.await.expect("stored").offset, Some(10));

        let second = producer.send(record("b")).await.expect("queued");
        let request = peer.receive().await;
        assert_eq!(stamps(&request), vec![(42, 0, 1)], "the next sequence");
        answer_produce(&mut peer, &request, &[Ok(11)]).await;
        assert_eq!(second.await.expect("stored").offset, Some(11));
    });
}

#[test]
fn batches_after_a_failed_one_are_restamped_from_its_sequence() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let producer = Producer::new(client, options());
        let a = producer.send(record("a")).await.expect("queued");
        answer_init(&mut peer, 7).await;
        let first = peer.receive().await;
        // While `a` is in flight, b and c queue and go out together next.
        let b = producer.send(record("b")).await.expect("queued");
        let c = producer.send(record("c")).await.expect("queued");
        answer_produce(&mut peer, &first, &[Ok(0)]).await;
        assert_eq!(a.await.expect("stored").offset, Some(0));

        let second = peer.receive().await;
        assert_eq!(stamps(&second), vec![(7, 0, 1), (7, 0, 2)]);
        // b fails for good; c was refused only because b was not stored.
        answer_produce(
            &mut peer,
            &second,
            &[
                Err(ErrorCode::InvalidBatch),
                Err(ErrorCode::OutOfOrderSequence),
            ],
        )
        .await;
        assert_refused(b.await.expect_err("b failed"), ErrorCode::InvalidBatch);
        let retried = peer.receive().await;
        assert_eq!(
            stamps(&retried),
            vec![(7, 0, 1)],
            "c takes b's sequence: the broker expects the partition to continue there"
        );
        answer_produce(&mut peer, &retried, &[Ok(1)]).await;
        assert_eq!(c.await.expect("stored").offset, Some(1));

        let d = producer.send(record("d")).await.expect("queued");
        let request = peer.receive().await;
        assert_eq!(stamps(&request), vec![(7, 0, 2)]);
        answer_produce(&mut peer, &request, &[Ok(2)]).await;
        assert_eq!(d.await.expect("stored").offset, Some(2));
    });
}

#[test]
fn a_producer_the_broker_forgot_restarts_at_sequence_zero() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let producer = Producer::new(client, options());
        let a = producer.send(record("a")).await.expect("queued");
        answer_init(&mut peer, 3).await;
        let first = peer.receive().await;
        answer_produce(&mut peer, &first, &[Ok(0)]).await;
        a.await.expect("stored");
        let b = producer.send(record("b")).await.expect("queued");
        let second = peer.receive().await;
        assert_eq!(stamps(&second), vec![(3, 0, 1)]);
        answer_produce(&mut peer, &second, &[Err(ErrorCode::UnknownProducerId)]).await;
        let retried = peer.receive().await;
        assert_eq!(stamps(&retried), vec![(3, 0, 0)]);
        answer_produce(&mut peer, &retried, &[Ok(5)]).await;
        assert_eq!(b.await.expect("stored").offset, Some(5));
    });
}

#[test]
fn a_batch_with_an_unknown_outcome_makes_the_producer_take_a_new_id() {
    run(|listener| async move {
        let (producer, mut peer) = timing_out(
            &listener,
            ProducerOptions {
                retries: 1,
                ..options()
            },
        )
        .await;
        let lost = producer.send(record("a")).await.expect("queued");
        answer_init(&mut peer, 5).await;
        // Neither the send nor its one retry is answered: stored or not, nobody knows.
        let first = peer.receive().await;
        let second = peer.receive().await;
        assert_eq!(stamps(&first), vec![(5, 0, 0)]);
        assert_eq!(stamps(&second), vec![(5, 0, 0)]);
        let error = lost.await.expect_err("timed out");
        assert!(matches!(error, ClientError::Timeout { .. }), "{error}");
        // Sequence 1 under id 5 would be refused forever if 0 was never stored; the producer
        // starts over under a new id instead.
        let next = producer.send(record("b")).await.expect("queued");
        answer_init(&mut peer, 6).await;
        let request = peer.receive().await;
        assert_eq!(stamps(&request), vec![(6, 0, 0)]);
        answer_produce(&mut peer, &request, &[Ok(1)]).await;
        assert_eq!(next.await.expect("stored").offset, Some(1));
    });
}

#[test]
fn a_resent_batch_the_broker_forgot_fails_rather_than_restarting_at_zero() {
    run(|listener| async move {
        let (producer, mut peer) = timing_out(&listener, options()).await;
        let a = producer.send(record("a")).await.expect("queued");
        answer_init(&mut peer, 9).await;
        let lost = peer.receive().await;
        assert_eq!(stamps(&lost), vec![(9, 0, 0)]);
        // Timed out (maybe stored), resent, and then the broker says it does not know the
        // producer: resending from 0 could store it twice, so it fails.
        let resent = peer.receive().await;
        answer_produce(&mut peer, &resent, &[Err(ErrorCode::UnknownProducerId)]).await;
        assert_refused(
            a.await.expect_err("ambiguous"),
            ErrorCode::UnknownProducerId,
        );
        let b = producer.send(record("b")).await.expect("queued");
        answer_init(&mut peer, 10).await;
        let request = peer.receive().await;
        assert_eq!(stamps(&request), vec![(10, 0, 0)]);
        answer_produce(&mut peer, &request, &[Ok(1)]).await;
        b.await.expect("stored");
    });
}

#[test]
fn a_partition_that_fails_a_batch_under_an_old_id_starts_at_zero_under_the_new_one() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let producer = Producer::new(client, options());
        let to = |partition: u32, value: &str| record(value).partition(partition);
        let a = producer.send(to(1, "a")).await.expect("queued");
        answer_init(&mut peer, 1).await;
        let request = peer.receive().await;
        answer_produce(&mut peer, &request, &[Ok(0)]).await;
        a.await.expect("stored");
        // Partition 1's next batch is in flight under id 1, sequence 1 ...
        let b = producer.send(to(1, "b")).await.expect("queued");
        let held = peer.receive().await;
        assert_eq!(stamps(&held), vec![(1, 0, 1)]);
        // ... while partition 0 loses its sequence and the producer takes id 2.
        let c = producer.send(to(0, "c")).await.expect("queued");
        let request = peer.receive().await;
        assert_eq!(stamps(&request), vec![(1, 0, 0)]);
        answer_produce(&mut peer, &request, &[Err(ErrorCode::OutOfOrderSequence)]).await;
        c.await.expect_err("the broker expects another sequence");
        let d = producer.send(to(0, "d")).await.expect("queued");
        answer_init(&mut peer, 2).await;
        let request = peer.receive().await;
        assert_eq!(stamps(&request), vec![(2, 0, 0)]);
        answer_produce(&mut peer, &request, &[Ok(0)]).await;
        d.await.expect("stored");
        // Partition 1's batch fails for good: under id 1 the partition would continue at 1,
        // but its next batch goes under id 2, which the broker has not seen there: from 0.
        answer_produce(&mut peer, &held, &[Err(ErrorCode::InvalidBatch)]).await;
        b.await.expect_err("failed for good");
        let e = producer.send(to(1, "e")).await.expect("queued");
        let request = peer.receive().await;
        assert_eq!(stamps(&request), vec![(2, 0, 0)]);
        answer_produce(&mut peer, &request, &[Ok(1)]).await;
        e.await.expect("stored");
    });
}

#[test]
fn requests_follow_each_other_unanswered_and_a_refusal_resends_everything_behind_it_in_order() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let producer = Producer::new(
            client,
            ProducerOptions {
                requests_in_flight_max: 3,
                ..options()
            },
        );
        let a = producer.send(record("a")).await.expect("queued");
        answer_init(&mut peer, 7).await;
        let first = peer.receive().await;
        // b and c go out behind a before a is answered, each in a request of its own.
        let b = producer.send(record("b")).await.expect("queued");
        let second = peer.receive().await;
        let c = producer.send(record("c")).await.expect("queued");
        let third = peer.receive().await;
        assert_eq!(stamps(&first), vec![(7, 0, 0)]);
        assert_eq!(stamps(&second), vec![(7, 0, 1)]);
        assert_eq!(stamps(&third), vec![(7, 0, 2)]);
        // The pipeline is full: d waits for an answer.
        let d = producer.send(record("d")).await.expect("queued");
        // a is refused for now; b and c because a was not stored.
        answer_produce(&mut peer, &first, &[Err(ErrorCode::StorageFull)]).await;
        answer_produce(&mut peer, &second, &[Err(ErrorCode::OutOfOrderSequence)]).await;
        answer_produce(&mut peer, &third, &[Err(ErrorCode::OutOfOrderSequence)]).await;
        // Everything from a on goes again, in order, with the same stamps, in one request;
        // d does not overtake it.
        let resent = peer.receive().await;
        assert_eq!(stamps(&resent), vec![(7, 0, 0), (7, 0, 1), (7, 0, 2)]);
        assert_eq!(produced_batches(&resent)[1], produced_batches(&second)[0]);
        answer_produce(&mut peer, &resent, &[Ok(0), Ok(1), Ok(2)]).await;
        let next = peer.receive().await;
        assert_eq!(stamps(&next), vec![(7, 0, 3)], "d follows, and only now");
        answer_produce(&mut peer, &next, &[Ok(3)]).await;
        for (delivery, offset) in [(a, 0), (b, 1), (c, 2), (d, 3)] {
            assert_eq!(delivery.await.expect("stored").offset, Some(offset));
        }
    });
}

#[test]
fn a_batch_that_fails_for_good_in_the_pipeline_restamps_the_requests_behind_it() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let producer = Producer::new(client, options());
        let a = producer.send(record("a")).await.expect("queued");
        answer_init(&mut peer, 4).await;
        let first = peer.receive().await;
        let b = producer.send(record("b")).await.expect("queued");
        let second = peer.receive().await;
        assert_eq!(stamps(&second), vec![(4, 0, 1)]);
        answer_produce(&mut peer, &first, &[Err(ErrorCode::InvalidBatch)]).await;
        answer_produce(&mut peer, &second, &[Err(ErrorCode::OutOfOrderSequence)]).await;
        assert_refused(
            a.await.expect_err("a failed for good"),
            ErrorCode::InvalidBatch,
        );
        let resent = peer.receive().await;
        assert_eq!(
            stamps(&resent),
            vec![(4, 0, 0)],
            "b takes a's sequence: the broker expects the partition to continue there"
        );
        answer_produce(&mut peer, &resent, &[Ok(0)]).await;
        assert_eq!(b.await.expect("stored").offset, Some(0));
    });
}

#[test]
fn a_request_behind_a_timed_out_one_that_was_stored_completes_and_the_resend_is_a_duplicate() {
    run(|listener| async move {
        let (producer, mut peer) = timing_out(&listener, options()).await;
        let a = producer.send(record("a")).await.expect("queued");
        answer_init(&mut peer, 8).await;
        let lost = peer.receive().await;
        let b = producer.send(record("b")).await.expect("queued");
        let second = peer.receive().await;
        // a's answer never comes (the client times out); b was stored behind it, so a was too.
        answer_produce(&mut peer, &second, &[Ok(1)]).await;
        let resent = peer.receive().await;
        assert_eq!(produced_batches(&resent), produced_batches(&lost));
        assert!(
            !b.is_done(),
            "b is acknowledged after a, the order they were sent in"
        );
        answer_produce(&mut peer, &resent, &[Err(ErrorCode::DuplicateSequence)]).await;
        assert_eq!(a.await.expect("stored before").offset, None);
        assert_eq!(b.await.expect("stored").offset, Some(1));
    });
}

#[test]
fn a_request_behind_one_with_an_unknown_outcome_is_never_restamped_under_a_new_id() {
    run(|listener| async move {
        let (producer, mut peer) = timing_out(
            &listener,
            ProducerOptions {
                retries: 0,
                ..options()
            },
        )
        .await;
        let a = producer.send(record("a")).await.expect("queued");
        answer_init(&mut peer, 5).await;
        let first = peer.receive().await;
        let b = producer.send(record("b")).await.expect("queued");
        let second = peer.receive().await;
        assert_eq!(stamps(&first), vec![(5, 0, 0)]);
        assert_eq!(stamps(&second), vec![(5, 0, 1)]);
        // Neither is answered: both may be stored. a fails (no retries) and the producer
        // takes a new id; b, stamped under the old one, must fail too rather than go again
        // under the new id, where the broker would store it a second time.
        let error = a.await.expect_err("timed out");
        assert!(matches!(error, ClientError::Timeout { .. }), "{error}");
        let error = b.await.expect_err("outcome unknown");
        assert!(matches!(error, ClientError::Timeout { .. }), "{error}");
        let c = producer.send(record("c")).await.expect("queued");
        answer_init(&mut peer, 6).await;
        let request = peer.receive().await;
        assert_eq!(
            stamps(&request),
            vec![(6, 0, 0)],
            "only c, under the new id"
        );
        answer_produce(&mut peer, &request, &[Ok(2)]).await;
        assert_eq!(c.await.expect("stored").offset, Some(2));
    });
}

#[test]
fn a_request_follows_one_in_flight_only_once_enough_is_ready() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        // Each batch is one ~100-byte record: two are needed to go out behind a.
        let producer = Producer::new(
            client,
            ProducerOptions {
                pipeline_bytes_min: 150,
                ..options()
            },
        );
        let a = producer.send(record("a")).await.expect("queued");
        answer_init(&mut peer, 3).await;
        let first = peer.receive().await;
        let b = producer.send(record("b")).await.expect("queued");
        // b alone waits for a's answer; with c, the two go out while a is still in flight.
        let c = producer.send(record("c")).await.expect("queued");
        let second = peer.receive().await;
        assert_eq!(stamps(&second), vec![(3, 0, 1), (3, 0, 2)]);
        answer_produce(&mut peer, &first, &[Ok(0)]).await;
        answer_produce(&mut peer, &second, &[Ok(1), Ok(2)]).await;
        for (delivery, offset) in [(a, 0), (b, 1), (c, 2)] {
            assert_eq!(delivery.await.expect("stored").offset, Some(offset));
        }
    });
}
