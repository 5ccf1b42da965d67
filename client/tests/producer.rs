//! Goal: the producer sends what it promises: a retriable refusal (`StorageFull`, `Throttled`,
//! `Timeout`) is retried and the records then get their offsets; other errors fail the records
//! at once; one request per partition is in flight and batches that fill meanwhile go out
//! together, in order, in the next one; keys are placed by murmur2 using the partition count
//! from metadata; with `Acks::None` records resolve once written, without offsets; and a record
//! lent to `send_ref` is copied whole before the call returns, so its buffer can be reused.
//!
//! Method: a `Producer` over a real `Client` talking to the scripted fake broker of
//! `tests/common`, which checks every batch it receives with `schema::batch::verify`.

mod common;

use std::time::Duration;

use bytes::Bytes;

use client::{
    Acks, ClientError, ClientOptions, ErrorCode, Producer, ProducerOptions, ProducerRecord,
    RecordMetadata, RecordRef,
};
use common::{
    answer_produce, batch_values, connect, metadata_with_partitions, produced_batches, run,
};
use schema::wire::RequestBodyOwned;

fn options() -> ProducerOptions {
    ProducerOptions {
        // Long enough that no test depends on a timer: batches go out when full or on flush.
        linger: Duration::from_secs(60),
        retry_backoff: Duration::from_millis(1),
        retry_backoff_max: Duration::from_millis(1),
        // These tests script the broker's answers request by request; idempotence (which asks
        // for a producer id first and retries timeouts) has its own tests in idempotence.rs.
        idempotence: false,
        ..ProducerOptions::default()
    }
}

#[test]
fn retriable_errors_are_retried_until_stored() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let producer = Producer::new(client, options());
        let delivery = producer
            .send(ProducerRecord::new("t", "v").partition(2))
            .await
            .expect("queued");
        let flush = glommio::spawn_local({
            let producer = producer.clone();
            async move { producer.flush().await }
        });
        let first = peer.receive().await;
        let sent = produced_batches(&first);
        answer_produce(&mut peer, &first, &[Err(ErrorCode::StorageFull)]).await;
        let second = peer.receive().await;
        assert_eq!(
            produced_batches(&second)[0].2,
            sent[0].2,
            "the same batch again"
        );
        answer_produce(&mut peer, &second, &[Err(ErrorCode::Throttled)]).await;
        let third = peer.receive().await;
        answer_produce(&mut peer, &third, &[Ok(41)]).await;
        flush.await;
        let stored = delivery.await.expect("stored after retries");
        assert_eq!(
            stored,
            RecordMetadata {
                partition: 2,
                offset: Some(41)
            }
        );
    });
}

#[test]
fn other_errors_fail_the_records_without_retrying() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let producer = Producer::new(client.clone(), options());
        let delivery = producer
            .send(ProducerRecord::new("t", "v").partition(0))
            .await
            .expect("queued");
        let flush = glommio::spawn_local({
            let producer = producer.clone();
            async move { producer.flush().await }
        });
        let request = peer.receive().await;
        answer_produce(&mut peer, &request, &[Err(ErrorCode::InvalidBatch)]).await;
        flush.await;
        let error = delivery.await.expect_err("refused");
        assert_eq!(error.code(), Some(ErrorCode::InvalidBatch));
        assert!(
            matches!(error, ClientError::Partition { partition: 0, .. }),
            "{error}"
        );
        // Nothing was resent: the next request on the connection is the next call's.
        let call = glommio::spawn_local(async move { client.metadata(&[]).await });
        let next = peer.receive().await;
        assert!(matches!(next.body, RequestBodyOwned::Metadata { .. }));
        drop(call);
    });
}

#[test]
fn one_request_in_flight_per_partition_and_later_batches_follow_in_order() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        // A 100-byte batch is full after one 50-byte record: every record seals its own batch.
        let producer = Producer::new(
            client,
            ProducerOptions {
                batch_bytes: 100,
                ..options()
            },
        );
        let record = |value: &str| ProducerRecord::new("t", format!("{value:-<50}")).partition(0);
        let first = producer.send(record("a")).await.expect("queued");
        let request = peer.receive().await;
        assert_eq!(produced_batches(&request).len(), 1);
        // While the first request is unanswered, two more batches fill and wait.
        let second = producer.send(record("b")).await.expect("queued");
        let third = producer.send(record("c")).await.expect("queued");
        answer_produce(&mut peer, &request, &[Ok(0)]).await;
        let next = peer.receive().await;
        let batches = produced_batches(&next);
        let values: Vec<String> = batches
            .iter()
            .flat_map(|(_, _, bytes)| batch_values(bytes))
            .collect();
        assert_eq!(
            values,
            vec![format!("{:-<50}", "b"), format!("{:-<50}", "c")],
            "in order, together"
        );
        answer_produce(&mut peer, &next, &[Ok(1), Ok(2)]).await;
        let offsets: Vec<Option<u64>> = vec![
            first.await.expect("first").offset,
            second.await.expect("second").offset,
            third.await.expect("third").offset,
        ];
        assert_eq!(offsets, vec![Some(0), Some(1), Some(2)]);
    });
}

#[test]
fn keys_are_placed_by_murmur2_over_the_metadata_partition_count() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let producer = Producer::new(client, options());
        let send = glommio::spawn_local({
            let producer = producer.clone();
            async move {
                let mut deliveries = Vec::new();
                for key in ["21", "abc", "foobar"] {
                    let record = ProducerRecord::new("t", "v").key(key);
                    deliveries.push(producer.send(record).await.expect("queued"));
                }
                producer.flush().await;
                deliveries
            }
        });
        let metadata = peer.receive().await;
        assert!(
            matches!(&metadata.body, RequestBodyOwned::Metadata { topics } if topics == &["t"])
        );
        peer.respond(
            metadata.correlation_id,
            metadata_with_partitions("t", 7),
            &[],
        )
        .await;
        // Kafka's vectors: murmur2("21") -> 3, ("abc") -> 4, ("foobar") -> 0 of 7 partitions.
        let mut partitions = Vec::new();
        for _ in 0..3 {
            let request = peer.receive().await;
            let batches = produced_batches(&request);
            partitions.extend(batches.iter().map(|(_, partition, _)| *partition));
            let outcomes: Vec<_> = batches.iter().map(|_| Ok(0)).collect();
            answer_produce(&mut peer, &request, &outcomes).await;
        }
        partitions.sort_unstable();
        assert_eq!(partitions, vec![0, 3, 4]);
        let placed: Vec<u32> = send
            .await
            .into_iter()
            .map(|delivery| delivery.partition())
            .collect();
        assert_eq!(placed, vec![3, 4, 0]);
    });
}

#[test]
fn unknown_topic_fails_send_with_the_broker_code() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let producer = Producer::new(client, options());
        let send = glommio::spawn_local(async move {
            producer.send(ProducerRecord::new("missing", "v")).await
        });
        let metadata = peer.receive().await;
        let mut body = metadata_with_partitions("missing", 0);
        if let schema::wire::ResponseBodyOwned::Metadata { topics, .. } = &mut body {
            topics[0].error = ErrorCode::UnknownTopic;
        }
        peer.respond(metadata.correlation_id, body, &[]).await;
        let error = send.await.expect_err("no such topic");
        assert_eq!(error.code(), Some(ErrorCode::UnknownTopic));
    });
}

#[test]
fn acks_none_records_resolve_once_written_without_offsets() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let producer = Producer::new(
            client,
            ProducerOptions {
                acks: Acks::None,
                ..options()
            },
        );
        let delivery = producer
            .send(ProducerRecord::new("t", "v").partition(1))
            .await
            .expect("queued");
        producer.flush().await;
        assert_eq!(
            delivery.await.expect("written"),
            RecordMetadata {
                partition: 1,
                offset: None
            }
        );
        let request = peer.receive().await;
        assert_eq!(
            batch_values(&produced_batches(&request)[0].2),
            vec!["v".to_string()]
        );
    });
}

#[test]
fn a_lent_record_is_copied_before_send_ref_returns_so_its_buffer_can_be_reused() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let producer = Producer::new(client, options());
        let headers = [(Bytes::from_static(b"h"), Bytes::from_static(b"hv"))];
        // One buffer for every record, rewritten after each send, as the load generator does.
        let mut buffer = [0u8; 8];
        let mut deliveries = Vec::new();
        for index in 0..3u8 {
            buffer.fill(b'a' + index);
            let key = [b'k', index];
            let record = RecordRef {
                partition: Some(1),
                key: Some(&key),
                headers: &headers,
                timestamp_ms: Some(1_000 + i64::from(index)),
                ..RecordRef::new("t", &buffer)
            };
            deliveries.push(producer.send_ref(record).await.expect("queued"));
        }
        buffer.fill(b'z');
        let flush = glommio::spawn_local({
            let producer = producer.clone();
            async move { producer.flush().await }
        });
        let request = peer.receive().await;
        let batches = produced_batches(&request);
        assert_eq!(batches.len(), 1, "one batch of partition 1");
        assert_eq!((batches[0].0.as_str(), batches[0].1), ("t", 1));
        let records: Vec<_> = schema::batch::records(&batches[0].2)
            .expect("records")
            .map(|record| record.expect("record"))
            .collect();
        assert_eq!(records.len(), 3);
        for (index, record) in records.iter().enumerate() {
            let index = index as u8;
            assert_eq!(record.value, Some(&[b'a' + index; 8][..]));
            assert_eq!(record.key, Some(&[b'k', index][..]));
            // The batch's base timestamp is its first record's (1,000 ms).
            assert_eq!(record.timestamp_delta, i64::from(index));
            assert_eq!(record.headers, vec![(&b"h"[..], Some(&b"hv"[..]))]);
        }
        answer_produce(&mut peer, &request, &[Ok(7)]).await;
        flush.await;
        let mut offsets = Vec::new();
        for delivery in deliveries {
            offsets.push(delivery.await.expect("stored").offset);
        }
        assert_eq!(offsets, vec![Some(7), Some(8), Some(9)]);
    });
}

#[test]
fn send_ref_refuses_an_empty_topic_and_a_negative_timestamp() {
    run(|listener| async move {
        let (client, _peer) = connect(&listener, ClientOptions::default()).await;
        let producer = Producer::new(client, options());
        let empty = producer.send_ref(RecordRef::new("", b"v")).await;
        assert!(matches!(empty, Err(ClientError::InvalidArgument { .. })));
        let negative = RecordRef {
            timestamp_ms: Some(-1),
            ..RecordRef::new("t", b"v")
        };
        let negative = producer.send_ref(negative).await;
        assert!(matches!(negative, Err(ClientError::InvalidArgument { .. })));
    });
}
