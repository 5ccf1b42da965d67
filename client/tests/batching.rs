//! Goal: the producer's accumulator seals batches at the right moments (before a record that
//! might not fit, once full, on its linger timer, on flush), every sealed batch is a valid
//! Kafka batch holding the records in order, and every record's delivery resolves to the batch
//! outcome: offset = base offset + index, or the batch's error; never left waiting. An
//! acknowledged batch's buffer is reused for a new batch only when nothing else holds it.
//!
//! Method: drive `Accumulator` directly (no broker, no executor), decode what it seals with
//! `schema::batch`, complete batches by hand, and poll deliveries with `block_on`.

use bytes::Bytes;
use client::accumulator::{Accumulator, Delivery, RecordMetadata, SealedBatch, record_bytes_max};
use client::{ClientError, ErrorCode};
use futures_lite::future::block_on;

fn decoded_values(batch: &SealedBatch) -> Vec<Vec<u8>> {
    decoded_values_of(&batch.bytes)
}

/// The values of a batch's records, once it verifies.
fn decoded_values_of(bytes: &Bytes) -> Vec<Vec<u8>> {
    schema::batch::verify_with_records(bytes).expect("a sealed batch verifies");
    schema::batch::records(bytes)
        .expect("records")
        .map(|record| record.expect("record").value.expect("value").to_vec())
        .collect()
}

fn append(
    accumulator: &mut Accumulator,
    partition: u32,
    value: &[u8],
) -> client::accumulator::Appended {
    accumulator.append("topic", partition, None, value, &[], 1_000)
}

#[test]
fn records_stay_open_until_the_next_might_not_fit() {
    // A keyless record with a 10-byte value encodes in 17 bytes and is bounded at 46. With n
    // records open the next one is let in while 61 + 17n + 46 <= 200, that is up to n = 5: so
    // batches of 6 records (163 bytes), and the 7th record seals the batch before it goes in.
    let bound = record_bytes_max(None, &[0; 10], &[]);
    assert_eq!(bound, 46);
    let mut accumulator = Accumulator::new(200);
    let mut deliveries = Vec::new();
    let mut sealed = Vec::new();
    for index in 0..20u8 {
        let appended = append(&mut accumulator, 0, &[index; 10]);
        let starts_batch = index % 6 == 0;
        assert_eq!(appended.opened.is_some(), starts_batch, "record {index}");
        assert_eq!(
            appended.sealed.len(),
            usize::from(starts_batch && index > 0),
            "record {index}"
        );
        deliveries.push(appended.delivery);
        sealed.extend(appended.sealed);
    }
    let counts: Vec<u32> = sealed.iter().map(|batch| batch.record_count).collect();
    assert_eq!(counts, vec![6, 6, 6]);
    assert!(sealed.iter().all(|batch| batch.bytes.len() == 61 + 6 * 17));
    sealed.extend(accumulator.seal_all());
    assert_eq!(accumulator.open_record_count(), 0);
    // Every record is in exactly one batch, in order.
    let values: Vec<Vec<u8>> = sealed.iter().flat_map(decoded_values).collect();
    let expected: Vec<Vec<u8>> = (0..20u8).map(|index| vec![index; 10]).collect();
    assert_eq!(values, expected);
    let counted: u32 = sealed.iter().map(|batch| batch.record_count).sum();
    assert_eq!(counted, 20);
    let buffered: usize = sealed.iter().map(|batch| batch.buffered_bytes).sum();
    assert_eq!(buffered, 20 * bound);
}

#[test]
fn a_record_larger_than_the_batch_goes_alone() {
    let mut accumulator = Accumulator::new(100);
    let small = append(&mut accumulator, 0, b"small");
    assert!(small.sealed.is_empty());
    let large = append(&mut accumulator, 0, &[7; 500]);
    // The open batch is sealed first, then the large record's own batch, at once.
    assert_eq!(large.sealed.len(), 2);
    assert_eq!(decoded_values(&large.sealed[0]), vec![b"small".to_vec()]);
    assert_eq!(decoded_values(&large.sealed[1]), vec![vec![7; 500]]);
    assert_eq!(accumulator.open_record_count(), 0);
}

#[test]
fn partitions_batch_separately() {
    let mut accumulator = Accumulator::new(16 << 10);
    let first = append(&mut accumulator, 0, b"a");
    let second = append(&mut accumulator, 1, b"b");
    let third = append(&mut accumulator, 0, b"c");
    assert!(first.opened.is_some() && second.opened.is_some());
    assert!(third.opened.is_none(), "partition 0's batch is still open");
    assert_eq!(
        (first.delivery.partition(), second.delivery.partition()),
        (0, 1)
    );
    let zero = accumulator
        .seal("topic", 0, None)
        .expect("partition 0 batch");
    assert_eq!(decoded_values(&zero), vec![b"a".to_vec(), b"c".to_vec()]);
    assert!(accumulator.seal("topic", 0, None).is_none());
    assert!(accumulator.seal("other", 1, None).is_none());
    assert_eq!(accumulator.open_record_count(), 1);
}

#[test]
fn a_linger_timer_seals_only_the_batch_it_was_armed_for() {
    let mut accumulator = Accumulator::new(16 << 10);
    let first = append(&mut accumulator, 0, b"a");
    let first_id = first.opened.expect("first record opens a batch");
    // The batch is sealed by a flush before its timer fires; a new batch opens.
    let flushed = accumulator.seal_all();
    assert_eq!(flushed.len(), 1);
    let second = append(&mut accumulator, 0, b"b");
    let second_id = second.opened.expect("a new batch");
    assert_ne!(first_id, second_id);
    // The first timer fires late: it must not seal the second batch early.
    assert!(accumulator.seal("topic", 0, Some(first_id)).is_none());
    let sealed = accumulator
        .seal("topic", 0, Some(second_id))
        .expect("its own batch");
    assert_eq!(decoded_values(&sealed), vec![b"b".to_vec()]);
}

#[test]
fn keys_headers_and_timestamps_are_encoded() {
    let mut accumulator = Accumulator::new(16 << 10);
    let headers = vec![(Bytes::from_static(b"h"), Bytes::from_static(b"v"))];
    accumulator.append("topic", 0, Some(b"key"), b"value", &headers, 5_000);
    accumulator.append("topic", 0, None, b"later", &[], 4_000);
    let batch = accumulator.seal("topic", 0, None).expect("batch");
    let header = schema::batch::verify_with_records(&batch.bytes).expect("verifies");
    assert_eq!(header.base_timestamp, 5_000);
    assert_eq!(header.max_timestamp, 5_000);
    let records: Vec<_> = schema::batch::records(&batch.bytes)
        .expect("records")
        .map(|record| record.expect("record"))
        .collect();
    assert_eq!(records[0].key, Some(&b"key"[..]));
    assert_eq!(records[0].headers, vec![(&b"h"[..], Some(&b"v"[..]))]);
    assert_eq!(records[1].key, None);
    assert_eq!(records[1].timestamp_delta, -1_000);
}

#[test]
fn deliveries_resolve_to_base_offset_plus_index() {
    let mut accumulator = Accumulator::new(16 << 10);
    let deliveries: Vec<Delivery> = (0..3)
        .map(|_| append(&mut accumulator, 2, b"x").delivery)
        .collect();
    assert!(deliveries.iter().all(|delivery| !delivery.is_done()));
    let batch = accumulator.seal("topic", 2, None).expect("batch");
    batch.complete(Ok(Some(40)));
    for (index, delivery) in deliveries.into_iter().enumerate() {
        let stored = block_on(delivery).expect("acknowledged");
        assert_eq!(
            stored,
            RecordMetadata {
                partition: 2,
                offset: Some(40 + index as u64)
            }
        );
    }
}

#[test]
fn acks_none_deliveries_have_no_offset() {
    let mut accumulator = Accumulator::new(16 << 10);
    let delivery = append(&mut accumulator, 0, b"x").delivery;
    accumulator
        .seal("topic", 0, None)
        .expect("batch")
        .complete(Ok(None));
    assert_eq!(block_on(delivery).expect("written").offset, None);
}

#[test]
fn a_failed_batch_fails_every_record() {
    let mut accumulator = Accumulator::new(16 << 10);
    let first = append(&mut accumulator, 0, b"x").delivery;
    let second = append(&mut accumulator, 0, b"y").delivery;
    let error = ClientError::Partition {
        topic: "topic".to_string(),
        partition: 0,
        code: ErrorCode::StorageFailed,
        message: "disk gone".to_string(),
    };
    accumulator
        .seal("topic", 0, None)
        .expect("batch")
        .complete(Err(error));
    for delivery in [first, second] {
        let error = block_on(delivery).expect_err("the batch failed");
        assert_eq!(error.code(), Some(ErrorCode::StorageFailed));
    }
}

#[test]
fn dropped_batches_fail_their_deliveries_instead_of_hanging() {
    let mut accumulator = Accumulator::new(16 << 10);
    let sealed_delivery = append(&mut accumulator, 0, b"x").delivery;
    let sealed = accumulator.seal("topic", 0, None).expect("batch");
    let open_delivery = append(&mut accumulator, 1, b"y").delivery;
    drop(sealed);
    drop(accumulator);
    for delivery in [sealed_delivery, open_delivery] {
        let error = block_on(delivery).expect_err("dropped");
        assert!(matches!(error, ClientError::Closed { .. }), "{error}");
    }
}

#[test]
fn a_batch_sealed_for_stamping_is_sendable_and_valid_only_once_stamped() {
    let mut accumulator = Accumulator::new(16 << 10).deferring_crc();
    for index in 0..5u8 {
        append(&mut accumulator, 3, &[index; 100]);
    }
    let mut sealed = accumulator.seal_all();
    assert_eq!(sealed.len(), 1);
    let batch = &mut sealed[0];
    assert!(!batch.is_sendable(), "its CRC waits for the stamp");
    assert!(schema::batch::verify(&batch.bytes).is_err());
    batch.stamp(9, 1, 0);
    assert!(batch.is_sendable());
    let values = decoded_values(batch);
    assert_eq!(
        values,
        (0..5u8).map(|index| vec![index; 100]).collect::<Vec<_>>()
    );
    // Without deferring, a sealed batch is sendable (and valid) as it is.
    let mut plain = Accumulator::new(16 << 10);
    append(&mut plain, 3, b"v");
    let sealed = plain.seal_all();
    assert!(sealed[0].is_sendable());
    decoded_values(&sealed[0]);
}

#[test]
fn an_acknowledged_batch_buffer_is_reused_only_when_nothing_else_holds_it() {
    let mut accumulator = Accumulator::new(200);
    let first = append(&mut accumulator, 0, &[1; 10]);
    let mut sealed = accumulator.seal_all();
    let batch = sealed.pop().expect("one batch");
    let address = batch.bytes.as_ptr();
    // Still held by someone (a request that has not let go of it): not reclaimed.
    let held = accumulator.append("topic", 1, None, &[2; 10], &[], 1_000);
    let held_batch = accumulator.seal_all().pop().expect("one batch");
    let held_bytes = held_batch.bytes.clone();
    assert!(held_batch.complete_reclaiming(Ok(Some(5))).is_none());
    assert_eq!(block_on(held.delivery).expect("ok").offset, Some(5));
    assert_eq!(decoded_values_of(&held_bytes), vec![vec![2; 10]]);
    // Unique: the buffer comes back empty, with its allocation, and the next batch is built in
    // it, valid and holding only its own records.
    let buffer = batch
        .complete_reclaiming(Ok(Some(7)))
        .expect("nothing else holds it");
    assert_eq!(block_on(first.delivery).expect("ok").offset, Some(7));
    assert!(buffer.is_empty());
    assert!(buffer.capacity() >= 200);
    accumulator.recycle(buffer);
    let next = append(&mut accumulator, 0, &[3; 10]);
    let reused = accumulator.seal_all().pop().expect("one batch");
    assert_eq!(
        reused.bytes.as_ptr(),
        address,
        "built in the recycled buffer"
    );
    assert_eq!(decoded_values(&reused), vec![vec![3; 10]]);
    reused.complete(Ok(Some(8)));
    assert_eq!(block_on(next.delivery).expect("ok").offset, Some(8));
    // A buffer too small for a full batch is not kept: the next batch gets a fresh one.
    let small = Vec::with_capacity(10);
    let small_address = small.as_ptr();
    accumulator.recycle(small);
    let _ = append(&mut accumulator, 0, &[4; 10]);
    let fresh = accumulator.seal_all().pop().expect("one batch");
    assert_ne!(fresh.bytes.as_ptr(), small_address);
    assert_eq!(decoded_values(&fresh), vec![vec![4; 10]]);
}
