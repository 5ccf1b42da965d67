//! Goal: pin the RecordBatch v2 layout byte for byte, so that a change to field order, width,
//! endianness, varint encoding, CRC coverage or builder defaults cannot pass unnoticed. Batches
//! that pass this test are the bytes a Kafka client would send and accept.
//!
//! Method: the expected bytes are written out field by field from the spec (the module doc of
//! `schema::batch`), independently of the codec, and compared with what `BatchBuilder` emits.
//! The CRCs are literals computed outside Rust with a bitwise CRC-32C (polynomial 0x82f63b78,
//! checked against the standard vector "123456789" -> 0xe3069283), so a wrong CRC algorithm or
//! wrong covered range in `compute_crc` fails here too.

use schema::batch::{self, BatchBuilder, RecordView};

/// Header fields in spec order; `crc` is the literal expected value.
struct Header {
    batch_length: i32,
    crc: u32,
    base_timestamp: i64,
    max_timestamp: i64,
    records: &'static [u8],
}

fn expected_batch(header: &Header) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&0i64.to_be_bytes()); // baseOffset: the broker assigns it
    bytes.extend_from_slice(&header.batch_length.to_be_bytes()); // batchLength
    bytes.extend_from_slice(&(-1i32).to_be_bytes()); // partitionLeaderEpoch: producers send -1
    bytes.push(2); // magic
    bytes.extend_from_slice(&header.crc.to_be_bytes()); // crc
    bytes.extend_from_slice(&0i16.to_be_bytes()); // attributes: no compression, CreateTime
    bytes.extend_from_slice(&0i32.to_be_bytes()); // lastOffsetDelta: one record
    bytes.extend_from_slice(&header.base_timestamp.to_be_bytes()); // baseTimestamp
    bytes.extend_from_slice(&header.max_timestamp.to_be_bytes()); // maxTimestamp
    bytes.extend_from_slice(&(-1i64).to_be_bytes()); // producerId: none
    bytes.extend_from_slice(&(-1i16).to_be_bytes()); // producerEpoch: none
    bytes.extend_from_slice(&(-1i32).to_be_bytes()); // baseSequence: none
    bytes.extend_from_slice(&1i32.to_be_bytes()); // recordCount
    assert_eq!(bytes.len(), 61, "the header spelled out above is 61 bytes");
    bytes.extend_from_slice(header.records);
    bytes
}

#[test]
fn one_record_key_k_value_v() {
    #[rustfmt::skip]
    const RECORD: &[u8] = &[
        0x10,       // length 8 (zig-zag 16): the 8 bytes below
        0x00,       // attributes
        0x00,       // timestampDelta 0 (timestamp 1000 = baseTimestamp)
        0x00,       // offsetDelta 0
        0x02, b'k', // keyLength 1 (zig-zag 2), key "k"
        0x02, b'v', // valueLength 1, value "v"
        0x00,       // headerCount 0
    ];
    let expected = expected_batch(&Header {
        batch_length: 70 - 12, // 61-byte header + 9-byte record, minus the 12-byte prefix
        crc: 0x716a_6189,
        base_timestamp: 1_000,
        max_timestamp: 1_000,
        records: RECORD,
    });
    assert_eq!(expected.len(), 70);

    let mut builder = BatchBuilder::new(1_000);
    builder.push(Some(b"k"), Some(b"v"), 1_000, &[]);
    assert_eq!(builder.encoded_bytes(), 70);
    let built = builder.finish();
    assert_eq!(built, expected);

    assert_eq!(batch::compute_crc(&expected), 0x716a_6189);
    let header = batch::verify_with_records(&expected).expect("golden batch verifies");
    assert_eq!(header.batch_length, 58);
    let records: Vec<RecordView<'_>> = batch::records(&expected)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        records,
        [RecordView {
            attributes: 0,
            timestamp_delta: 0,
            offset_delta: 0,
            key: Some(b"k"),
            value: Some(b"v"),
            headers: vec![],
        }]
    );
}

#[test]
fn one_record_null_key_with_a_header() {
    #[rustfmt::skip]
    const RECORD: &[u8] = &[
        0x16,       // length 11 (zig-zag 22)
        0x00,       // attributes
        0x02,       // timestampDelta 1 (1001 - 1000)
        0x00,       // offsetDelta 0
        0x01,       // keyLength -1 (zig-zag 1): null key, no key bytes
        0x02, b'v', // valueLength 1, value "v"
        0x02,       // headerCount 1
        0x02, b'h', // header key length 1, "h"
        0x02, b'x', // header value length 1, "x"
    ];
    let expected = expected_batch(&Header {
        batch_length: 73 - 12,
        crc: 0xde88_a56b,
        base_timestamp: 1_000,
        max_timestamp: 1_001,
        records: RECORD,
    });

    let mut builder = BatchBuilder::new(1_000);
    builder.push(None, Some(b"v"), 1_001, &[(b"h", b"x")]);
    assert_eq!(builder.finish(), expected);
    batch::verify_with_records(&expected).expect("golden batch verifies");
}
