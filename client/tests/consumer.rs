//! Goal: the consumer fetches from the positions it tracks: a seek looks the offset up and
//! the next fetch asks for it; records below the position in the first returned batch are
//! skipped; the position then moves past the batch; and a partition error leaves every
//! position unchanged.
//!
//! Method: a `Consumer` over a real `Client` talking to the scripted fake broker of
//! `tests/common`, which serves batches built with `schema::batch::BatchBuilder`.

mod common;

use std::time::Duration;

use bytes::Bytes;
use client::{ClientOptions, Consumer, ConsumerOptions, ErrorCode, SeekTo};
use common::{Received, answer_fetch, connect, run, stored_batch};
use schema::wire::{ListOffsetsResultOwned, OffsetSpec, RequestBodyOwned, ResponseBodyOwned};

/// The offset the fetch asked for, for its single partition.
fn fetch_offset(request: &Received) -> u64 {
    let RequestBodyOwned::Fetch {
        partitions,
        bytes_min,
        ..
    } = &request.body
    else {
        panic!("expected a fetch");
    };
    assert_eq!(*bytes_min, 1, "long-poll until anything arrives");
    assert_eq!(partitions.len(), 1);
    partitions[0].offset
}

#[test]
fn positions_follow_seeks_and_fetched_batches() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let broker = glommio::spawn_local(async move {
            let lookup = peer.receive().await;
            let RequestBodyOwned::ListOffsets { partitions } = &lookup.body else {
                panic!("expected list offsets");
            };
            assert_eq!(partitions[0].spec, OffsetSpec::Earliest);
            let result = ListOffsetsResultOwned {
                topic: "t".to_string(),
                partition: 0,
                error: ErrorCode::None,
                offset: 5,
            };
            let body = ResponseBodyOwned::ListOffsets {
                error: ErrorCode::None,
                results: vec![result],
            };
            peer.respond(lookup.correlation_id, body, &[]).await;

            // The batch holds 3..7: the consumer at 5 must return 5 and 6 only.
            let fetch = peer.receive().await;
            assert_eq!(fetch_offset(&fetch), 5);
            answer_fetch(
                &mut peer,
                &fetch,
                &[(0, ErrorCode::None, stored_batch(3, 4))],
            )
            .await;
            let fetch = peer.receive().await;
            assert_eq!(fetch_offset(&fetch), 7);
            answer_fetch(
                &mut peer,
                &fetch,
                &[(0, ErrorCode::Corruption, Bytes::new())],
            )
            .await;
            let fetch = peer.receive().await;
            assert_eq!(fetch_offset(&fetch), 7, "a failed poll moves nothing");
            answer_fetch(&mut peer, &fetch, &[(0, ErrorCode::None, Bytes::new())]).await;
        });

        let mut consumer = Consumer::new(client, ConsumerOptions::default());
        consumer.assign("t", &[0]);
        assert_eq!(consumer.position(0), None);
        assert_eq!(
            consumer.seek(0, SeekTo::Earliest).await.expect("looked up"),
            5
        );
        let records = consumer
            .poll(Duration::from_millis(10))
            .await
            .expect("polled");
        let seen: Vec<(u64, Option<Bytes>)> = records
            .into_iter()
            .map(|record| (record.offset, record.value))
            .collect();
        assert_eq!(
            seen,
            vec![
                (5, Some(Bytes::from_static(b"v5"))),
                (6, Some(Bytes::from_static(b"v6")))
            ]
        );
        assert_eq!(consumer.position(0), Some(7));
        let error = consumer
            .poll(Duration::from_millis(10))
            .await
            .expect_err("partition error");
        assert_eq!(error.code(), Some(ErrorCode::Corruption));
        assert_eq!(consumer.position(0), Some(7));
        assert!(
            consumer
                .poll(Duration::from_millis(10))
                .await
                .expect("empty poll")
                .is_empty()
        );
        assert_eq!(consumer.position(0), Some(7));
        broker.await;
        assert!(
            consumer.seek(3, SeekTo::Latest).await.is_err(),
            "partition 3 is not assigned"
        );
    });
}

/// Goal: the fetch a poll sends ahead for the next one is used only while the positions are
/// still the ones it asked for: without a seek the next poll returns its records; after a
/// seek they are dropped and the next poll fetches from the sought offset.
#[test]
fn the_fetch_sent_ahead_is_dropped_after_a_seek() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let broker = glommio::spawn_local(async move {
            let fetch = peer.receive().await;
            assert_eq!(fetch_offset(&fetch), 0);
            answer_fetch(
                &mut peer,
                &fetch,
                &[(0, ErrorCode::None, stored_batch(0, 2))],
            )
            .await;
            // Sent ahead by the first poll, used by the second; it waits for data only briefly
            // (a parked fetch would hold back every later answer on the connection).
            let fetch = peer.receive().await;
            assert_eq!(fetch_offset(&fetch), 2);
            let RequestBodyOwned::Fetch { wait_ms_max, .. } = &fetch.body else {
                unreachable!("fetch_offset checked it is a fetch");
            };
            assert!(
                *wait_ms_max <= 20,
                "the fetch ahead waits briefly: {wait_ms_max} ms"
            );
            answer_fetch(
                &mut peer,
                &fetch,
                &[(0, ErrorCode::None, stored_batch(2, 2))],
            )
            .await;
            // Sent ahead by the second poll; the consumer seeks before the third.
            let fetch = peer.receive().await;
            assert_eq!(fetch_offset(&fetch), 4);
            answer_fetch(
                &mut peer,
                &fetch,
                &[(0, ErrorCode::None, stored_batch(4, 2))],
            )
            .await;
            let fetch = peer.receive().await;
            assert_eq!(fetch_offset(&fetch), 1, "the sought offset");
            answer_fetch(
                &mut peer,
                &fetch,
                &[(0, ErrorCode::None, stored_batch(0, 3))],
            )
            .await;
        });

        let mut consumer = Consumer::new(client, ConsumerOptions::default());
        consumer.assign("t", &[0]);
        consumer.seek(0, SeekTo::Offset(0)).await.expect("sought");
        let offsets = |records: Vec<client::ConsumedRecord>| -> Vec<u64> {
            records.into_iter().map(|record| record.offset).collect()
        };
        let wait = Duration::from_millis(10);
        assert_eq!(offsets(consumer.poll(wait).await.expect("polled")), [0, 1]);
        assert_eq!(offsets(consumer.poll(wait).await.expect("polled")), [2, 3]);
        consumer.seek(0, SeekTo::Offset(1)).await.expect("sought");
        assert_eq!(
            offsets(consumer.poll(wait).await.expect("polled")),
            [1, 2],
            "records from the sought offset, not the ones fetched ahead"
        );
        assert_eq!(consumer.position(0), Some(3));
        broker.await;
    });
}

/// Goal: a consumer asking for more bytes than a response frame it accepts can hold asks the
/// broker for what fits (it used to ask for all of it, and a response it then refused cost it
/// its connection, again and again).
#[test]
fn a_fetch_asks_for_no_more_than_a_frame_holds() {
    const FRAME_BYTES_MAX: u32 = 64 << 10;
    run(|listener| async move {
        let options = ClientOptions {
            frame_bytes_max: FRAME_BYTES_MAX,
            ..ClientOptions::default()
        };
        let (client, mut peer) = connect(&listener, options).await;
        let broker = glommio::spawn_local(async move {
            let fetch = peer.receive().await;
            let RequestBodyOwned::Fetch { bytes_max, .. } = &fetch.body else {
                panic!("expected a fetch");
            };
            assert!(
                *bytes_max < FRAME_BYTES_MAX,
                "asked for {bytes_max} bytes with a {FRAME_BYTES_MAX}-byte frame limit"
            );
            answer_fetch(
                &mut peer,
                &fetch,
                &[(0, ErrorCode::None, stored_batch(0, 1))],
            )
            .await;
        });
        let options = ConsumerOptions {
            fetch_bytes_max: 16 << 20,
            ..ConsumerOptions::default()
        };
        let mut consumer = Consumer::new(client, options);
        consumer.assign("t", &[0]);
        consumer.seek(0, SeekTo::Offset(0)).await.expect("sought");
        let records = consumer
            .poll(Duration::from_millis(10))
            .await
            .expect("polled");
        assert_eq!(records.len(), 1);
        broker.await;
    });
}
