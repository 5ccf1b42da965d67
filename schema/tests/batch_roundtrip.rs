//! Goal: whatever a producer pushes into `BatchBuilder` comes back out of `records()` exactly,
//! and the batch passes the full check (`verify_with_records`), with a header that describes
//! it (counts, offsets, max timestamp, producer fields, sizes).
//!
//! Method: seeded random batches (printed seed, replay with `RINGBUS_SEED=<seed>`) mixing null
//! and empty keys and values, headers, lengths that need 1- to 3-byte varints, and timestamps
//! before and after the base; each is built, verified, re-based with `set_base_offset` (which
//! must keep it valid), then iterated and compared field by field with what was pushed.

mod common;

use common::{PushedRecord, Rng};
use schema::batch::{self, BatchHeader, Compression, LENGTH_PREFIX_BYTES};

const BATCHES: usize = 300;

fn check_round_trip(rng: &mut Rng, base_timestamp_ms: i64) {
    let pushed: Vec<PushedRecord> = common::random_records(rng, base_timestamp_ms);
    let producer_id = rng.i64(..);
    let builder = common::build(base_timestamp_ms, &pushed).producer(producer_id, 5, 1_000);
    assert_eq!(builder.record_count(), pushed.len());
    let expected_bytes = builder.encoded_bytes();
    let mut encoded = builder.finish();
    assert_eq!(
        encoded.len(),
        expected_bytes,
        "encoded_bytes() predicted the size"
    );

    let header = batch::verify_with_records(&encoded).expect("a built batch verifies");
    assert_eq!(header.record_count as usize, pushed.len());
    assert_eq!(header.last_offset_delta as usize, pushed.len() - 1);
    assert_eq!(header.base_timestamp, base_timestamp_ms);
    let max_timestamp = pushed.iter().map(|record| record.timestamp_ms).max();
    assert_eq!(Some(header.max_timestamp), max_timestamp);
    assert_eq!(header.producer_id, producer_id);
    assert_eq!(header.producer_epoch, 5);
    assert_eq!(header.base_sequence, 1_000);
    assert_eq!(header.compression(), Ok(Compression::None));
    assert_eq!(header.total_bytes(), Some(encoded.len()));
    assert_eq!(
        batch::total_bytes(&encoded[..LENGTH_PREFIX_BYTES]),
        Some(encoded.len())
    );
    assert_eq!(BatchHeader::parse(&encoded), Ok(header));

    // The broker assigns the base offset on append; the CRC must not notice.
    let base_offset = (rng.u64(..) >> 2) as i64;
    batch::set_base_offset(&mut encoded, base_offset);
    let rebased = batch::verify_with_records(&encoded).expect("re-based batch still verifies");
    assert_eq!(rebased.base_offset, base_offset);
    assert_eq!(rebased.last_offset(), base_offset + pushed.len() as i64 - 1);
    assert_eq!(rebased.crc, header.crc);

    let mut records = batch::records(&encoded).expect("records() accepts a verified batch");
    for (index, expected) in pushed.iter().enumerate() {
        let record = records
            .next()
            .unwrap_or_else(|| panic!("records() ended at {index} of {}", pushed.len()))
            .unwrap_or_else(|error| panic!("record {index}: {error}"));
        assert_eq!(record.attributes, 0, "record {index}");
        assert_eq!(record.offset_delta as usize, index, "record {index}");
        assert_eq!(
            record.timestamp_delta,
            expected.timestamp_ms - base_timestamp_ms,
            "record {index}"
        );
        assert_eq!(record.key, expected.key.as_deref(), "record {index}");
        assert_eq!(record.value, expected.value.as_deref(), "record {index}");
        let expected_headers: Vec<(&[u8], Option<&[u8]>)> = expected
            .headers
            .iter()
            .map(|(key, value)| (key.as_slice(), Some(value.as_slice())))
            .collect();
        assert_eq!(record.headers, expected_headers, "record {index}");
    }
    assert_eq!(records.next(), None, "no record beyond the pushed ones");
    assert_eq!(records.next(), None, "the iterator stays finished");
}

#[test]
fn random_batches_round_trip() {
    let seed = common::seed("random_batches_round_trip");
    let mut rng = Rng::with_seed(seed);
    for _ in 0..BATCHES {
        let base_timestamp_ms = (rng.u64(..) >> 14) as i64 - (1 << 49);
        check_round_trip(&mut rng, base_timestamp_ms);
    }
}

#[test]
fn null_and_empty_are_distinct() {
    // Kafka gives null (length -1) and empty (length 0) different meanings: a null value is a
    // tombstone. The codec must not merge them.
    let mut builder = batch::BatchBuilder::new(0);
    builder.push(None, Some(b""), 0, &[]);
    builder.push(Some(b""), None, 0, &[(b"", b"")]);
    let encoded = builder.finish();
    let records: Vec<_> = batch::records(&encoded)
        .unwrap()
        .map(|record| record.unwrap())
        .collect();
    assert_eq!((records[0].key, records[0].value), (None, Some(&b""[..])));
    assert_eq!((records[1].key, records[1].value), (Some(&b""[..]), None));
    assert_eq!(records[1].headers, [(&b""[..], Some(&b""[..]))]);
}
