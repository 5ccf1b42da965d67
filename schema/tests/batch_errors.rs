//! Goal: every `BatchError` and `RecordError` variant is reachable from bytes, is returned for
//! the reason it names (not shadowed by an earlier check), and says so in a sentence that
//! carries the numbers an operator needs.
//!
//! Method: start from a valid batch and change exactly one thing per case, re-sealing the CRC
//! when the change is behind it (so the CRC check passes and the intended check is the one that
//! fires); for record errors, wrap hand-written record bytes in a sealed header. Each case
//! asserts the exact error value and that its message contains given fragments.

mod common;

use schema::batch::{
    self, BatchError, BatchHeader, Compression, HEADER_BYTES, RecordError, RecordField, field,
};

/// A valid one-record batch: key "k", value "v" (the golden batch, 70 bytes).
fn valid() -> Vec<u8> {
    let mut builder = batch::BatchBuilder::new(1_000);
    builder.push(Some(b"k"), Some(b"v"), 1_000, &[]);
    builder.finish()
}

/// The golden record: length 8, then attributes, deltas, key "k", value "v", no headers.
const RECORD: [u8; 9] = [0x10, 0x00, 0x00, 0x00, 0x02, b'k', 0x02, b'v', 0x00];

fn expect(result: Result<BatchHeader, BatchError>, expected: BatchError, fragments: &[&str]) {
    assert_eq!(result, Err(expected.clone()));
    let message = expected.to_string();
    for fragment in fragments {
        assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
    }
}

/// A sealed batch around `section`, checked with the full walk.
fn walk(section: &[u8], record_count: i32) -> Result<BatchHeader, BatchError> {
    let sealed = common::batch_with_records_section(section, record_count);
    // The header is valid by construction: only the walk can refuse it.
    batch::verify(&sealed).expect("the sealed header verifies");
    let walked = batch::verify_with_records(&sealed);
    // records() reports the same errors from its walk, except the offset order, which is
    // verify_with_records' own rule on top of parsing.
    let out_of_order = matches!(
        walked,
        Err(BatchError::Record {
            reason: RecordError::OffsetDeltaOutOfOrder { .. },
            ..
        })
    );
    if let (Err(error), false) = (&walked, out_of_order) {
        let mut records = batch::records(&sealed).unwrap();
        let first_error = records.by_ref().find_map(Result::err);
        assert_eq!(first_error.as_ref(), Some(error));
        assert!(
            records.next().is_none(),
            "the iterator stops after an error"
        );
    }
    walked
}

fn record_error(index: u32, reason: RecordError) -> BatchError {
    BatchError::Record { index, reason }
}

#[test]
fn too_short() {
    let batch = valid();
    expect(
        batch::verify(&batch[..HEADER_BYTES - 1]),
        BatchError::TooShort { bytes: 60 },
        &["60 bytes", "61"],
    );
    expect(
        batch::verify(&[]),
        BatchError::TooShort { bytes: 0 },
        &["0 bytes"],
    );
    assert_eq!(
        batch::records(&batch[..10]).err(),
        Some(BatchError::TooShort { bytes: 10 })
    );
}

#[test]
fn length_mismatch() {
    let mut longer = valid();
    longer.push(0);
    expect(
        batch::verify(&longer),
        BatchError::LengthMismatch {
            declared_bytes: 70,
            actual_bytes: 71,
        },
        &["70", "71"],
    );
    // A batchLength smaller than a header is a mismatch too (the slice has at least a header).
    let mut small = valid();
    common::put_i32(&mut small, field::BATCH_LENGTH, 0);
    expect(
        batch::verify(&small),
        BatchError::LengthMismatch {
            declared_bytes: 12,
            actual_bytes: 70,
        },
        &["12", "70"],
    );
}

#[test]
fn negative_batch_length() {
    let mut batch = valid();
    common::put_i32(&mut batch, field::BATCH_LENGTH, -5);
    expect(
        batch::verify(&batch),
        BatchError::NegativeBatchLength { batch_length: -5 },
        &["-5"],
    );
    assert_eq!(
        batch::records(&batch).err(),
        Some(BatchError::NegativeBatchLength { batch_length: -5 })
    );
}

#[test]
fn bad_magic() {
    for magic in [0i8, 1, 3, -1] {
        let mut batch = valid();
        batch[field::MAGIC] = magic as u8;
        expect(
            batch::verify(&batch),
            BatchError::BadMagic { magic },
            &[&format!("magic {magic}"), "2"],
        );
    }
}

#[test]
fn crc_mismatch() {
    let mut batch = valid();
    let stored = BatchHeader::parse(&batch).unwrap().crc;
    batch[HEADER_BYTES + 5] = b'K'; // the key byte
    let computed = batch::compute_crc(&batch);
    assert_ne!(stored, computed);
    expect(
        batch::verify(&batch),
        BatchError::CrcMismatch { stored, computed },
        &[&format!("{stored:#010x}"), &format!("{computed:#010x}")],
    );
}

/// A compressed batch as a producer sends one: a real header (idempotent producer fields set,
/// three records) around `blob`, which stands for the compressed records. The blob is not a
/// valid uncompressed records section, so any attempt to walk it would fail: a pass proves the
/// checks stay out of it.
fn compressed(bits: i16, blob: &[u8]) -> Vec<u8> {
    let mut batch = common::batch_with_records_section(blob, 3);
    common::put_attributes(&mut batch, bits);
    batch[field::PRODUCER_ID..field::PRODUCER_ID + 8].copy_from_slice(&7i64.to_be_bytes());
    batch[field::PRODUCER_EPOCH..field::PRODUCER_EPOCH + 2].copy_from_slice(&0i16.to_be_bytes());
    common::put_i32(&mut batch, field::BASE_SEQUENCE, 40);
    common::reseal(&mut batch);
    batch
}

const CODECS: [(i16, Compression, &str); 4] = [
    (1, Compression::Gzip, "gzip"),
    (2, Compression::Snappy, "snappy"),
    (3, Compression::Lz4, "lz4"),
    (4, Compression::Zstd, "zstd"),
];

/// Bytes that are no records section: a record length varint of -1 first.
const BLOB: &[u8] = &[0x01, 0xff, 0xfe, 0x00, 0x13, 0x37, 0x42, 0x99, 0x10, 0x20];

#[test]
fn compressed_batches_are_accepted_by_their_header_and_crc() {
    // The blob really is unwalkable as records, so acceptance below is not by accident.
    assert!(batch::verify_with_records(&common::batch_with_records_section(BLOB, 3)).is_err());
    for (bits, compression, name) in CODECS {
        let batch = compressed(bits, BLOB);
        let header = batch::verify(&batch).expect(name);
        assert_eq!(header.compression(), Ok(compression), "{name}");
        assert_eq!(header.record_count, 3, "{name}");
        assert_eq!(header.last_offset_delta, 2, "{name}");
        // Producer state reads these from the header, compressed or not.
        assert_eq!(
            (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence
            ),
            (7, 0, 40),
            "{name}"
        );
        assert_eq!(batch::verify_with_records(&batch), Ok(header), "{name}");
        let mut verified = batch::Verified::check(batch.clone()).expect(name);
        verified.set_base_offset(1_000);
        assert_eq!(verified.header().last_offset(), 1_002, "{name}");
        // Re-basing stays outside the CRC: the stored bytes still verify.
        assert!(batch::verify(verified.bytes()).is_ok(), "{name}");
        // The records cannot be iterated: ringbus never decompresses.
        let refused = batch::records(&batch).err();
        assert_eq!(
            refused,
            Some(BatchError::UnsupportedCompression { compression }),
            "{name}"
        );
        let message = refused.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains(name), "{message:?} lacks {name}");
    }
}

#[test]
fn compressed_batches_keep_every_header_check() {
    for (bits, _, name) in CODECS {
        // A flipped bit anywhere the CRC covers (attributes through the compressed bytes) is
        // refused by the CRC, since nothing else looks at the compressed bytes.
        let batch = compressed(bits, BLOB);
        for at in batch::CRC_UNCOVERED_BYTES..batch.len() {
            let mut flipped = batch.clone();
            flipped[at] ^= 0x04;
            assert!(
                matches!(
                    batch::verify_with_records(&flipped),
                    Err(BatchError::CrcMismatch { .. })
                ),
                "{name}: flipped byte {at} accepted"
            );
        }
        // lastOffsetDelta against recordCount, checked from the header alone.
        let mut gap = batch.clone();
        common::put_i32(&mut gap, field::LAST_OFFSET_DELTA, 5);
        common::reseal(&mut gap);
        expect(
            batch::verify_with_records(&gap),
            BatchError::OffsetDeltaMismatch {
                last_offset_delta: 5,
                record_count: 3,
            },
            &[],
        );
        let mut empty = batch.clone();
        common::put_i32(&mut empty, field::RECORD_COUNT, 0);
        common::put_i32(&mut empty, field::LAST_OFFSET_DELTA, -1);
        common::reseal(&mut empty);
        expect(
            batch::verify_with_records(&empty),
            BatchError::EmptyBatch,
            &[],
        );
        // Transactional (bit 4) with a codec is still refused.
        let mut transactional = batch.clone();
        common::put_attributes(&mut transactional, bits | 0x10);
        common::reseal(&mut transactional);
        expect(
            batch::verify_with_records(&transactional),
            BatchError::ControlOrTransactional,
            &[],
        );
        // A lying batchLength is refused before anything else.
        let mut longer = batch.clone();
        longer.push(0);
        assert!(matches!(
            batch::verify_with_records(&longer),
            Err(BatchError::LengthMismatch { .. })
        ));
    }
}

#[test]
fn invalid_compression() {
    for bits in 5..=7u8 {
        let mut batch = valid();
        common::put_attributes(&mut batch, i16::from(bits));
        common::reseal(&mut batch);
        expect(
            batch::verify(&batch),
            BatchError::InvalidCompression { bits },
            &[&format!("codec {bits}")],
        );
        // The same with a blob after the header, as a compressed batch would have.
        expect(
            batch::verify_with_records(&compressed(i16::from(bits), BLOB)),
            BatchError::InvalidCompression { bits },
            &[],
        );
    }
}

#[test]
fn control_or_transactional() {
    // Bit 4 transactional, bit 5 control, and both.
    for attributes in [0x10, 0x20, 0x30] {
        let mut batch = valid();
        common::put_attributes(&mut batch, attributes);
        common::reseal(&mut batch);
        expect(
            batch::verify(&batch),
            BatchError::ControlOrTransactional,
            &["transactional"],
        );
    }
    // The timestamp-type bit (3) alone is not refused.
    let mut log_append_time = valid();
    common::put_attributes(&mut log_append_time, 0x08);
    common::reseal(&mut log_append_time);
    assert!(batch::verify_with_records(&log_append_time).is_ok());
}

#[test]
fn negative_record_count() {
    let mut batch = valid();
    common::put_i32(&mut batch, field::RECORD_COUNT, -3);
    common::reseal(&mut batch);
    expect(
        batch::verify(&batch),
        BatchError::NegativeRecordCount { count: -3 },
        &["-3"],
    );
    assert_eq!(
        batch::records(&batch).err(),
        Some(BatchError::NegativeRecordCount { count: -3 })
    );
}

#[test]
fn empty_batch() {
    expect(
        batch::verify(&common::batch_with_records_section(&[], 0)),
        BatchError::EmptyBatch,
        &["0 records"],
    );
}

#[test]
fn offset_delta_mismatch() {
    let mut batch = valid();
    common::put_i32(&mut batch, field::LAST_OFFSET_DELTA, 4);
    common::reseal(&mut batch);
    expect(
        batch::verify(&batch),
        BatchError::OffsetDeltaMismatch {
            last_offset_delta: 4,
            record_count: 1,
        },
        &["lastOffsetDelta 4", "1 records"],
    );
}

#[test]
fn record_count_mismatch() {
    expect(
        walk(&RECORD, 2),
        BatchError::RecordCountMismatch {
            declared: 2,
            found: 1,
        },
        &["2 records", "only 1"],
    );
}

#[test]
fn trailing_bytes() {
    let mut section = RECORD.to_vec();
    section.extend_from_slice(&[0x00, 0x00]);
    expect(
        walk(&section, 1),
        BatchError::TrailingBytes { bytes: 2 },
        &["2 bytes"],
    );
}

#[test]
fn record_truncated() {
    // Length 3 covers attributes and both deltas; the key length is missing.
    expect(
        walk(&[0x06, 0x00, 0x00, 0x00], 1),
        record_error(
            0,
            RecordError::Truncated {
                field: RecordField::KeyLength,
                remaining_bytes: 0,
            },
        ),
        &["record 0", "key length", "0 bytes"],
    );
    // Key length 5 but the record holds 2 more bytes.
    expect(
        walk(&[0x0c, 0x00, 0x00, 0x00, 0x0a, b'a', b'b'], 1),
        record_error(
            0,
            RecordError::Truncated {
                field: RecordField::Key,
                remaining_bytes: 2,
            },
        ),
        &["key is cut off", "2 bytes"],
    );
    // The batch ends inside the second record's length varint.
    let mut section = RECORD.to_vec();
    section.push(0x80);
    expect(
        walk(&section, 2),
        record_error(
            1,
            RecordError::Truncated {
                field: RecordField::Length,
                remaining_bytes: 1,
            },
        ),
        &["record 1", "length"],
    );
}

#[test]
fn record_varint_overflow() {
    // A timestamp delta of 11 continuation bytes: longer than any varlong.
    let mut section = vec![0x18, 0x00];
    section.extend_from_slice(&[0x80; 11]);
    expect(
        walk(&section, 1),
        record_error(
            0,
            RecordError::VarintOverflow {
                field: RecordField::TimestampDelta,
                bits: 64,
            },
        ),
        &["timestamp delta", "64 bits"],
    );
    // A record length of 5 bytes whose last one sets bits above 32.
    expect(
        walk(&[0xff, 0xff, 0xff, 0xff, 0x1f], 1),
        record_error(
            0,
            RecordError::VarintOverflow {
                field: RecordField::Length,
                bits: 32,
            },
        ),
        &["length varint", "32 bits"],
    );
}

#[test]
fn record_negative_lengths() {
    let cases: [(&[u8], RecordField, i32, i32); 5] = [
        // Record length -1 (zig-zag 1).
        (&[0x01], RecordField::Length, -1, 0),
        // Key length -2 (zig-zag 3): -1 is null, -2 is nothing.
        (
            &[0x08, 0x00, 0x00, 0x00, 0x03],
            RecordField::KeyLength,
            -2,
            -1,
        ),
        // Value length -7 (zig-zag 13).
        (
            &[0x0a, 0x00, 0x00, 0x00, 0x01, 0x0d],
            RecordField::ValueLength,
            -7,
            -1,
        ),
        // Header count -1.
        (
            &[0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x01],
            RecordField::HeaderCount,
            -1,
            0,
        ),
        // Header key length -1: header keys cannot be null.
        (
            &[0x0e, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x01],
            RecordField::HeaderKeyLength,
            -1,
            0,
        ),
    ];
    for (section, field, length, minimum) in cases {
        expect(
            walk(section, 1),
            record_error(
                0,
                RecordError::NegativeLength {
                    field,
                    length,
                    minimum,
                },
            ),
            &[
                &field.to_string(),
                &format!("is {length}"),
                &format!("{minimum}"),
            ],
        );
    }
}

#[test]
fn record_length_exceeds_batch() {
    // Length 50 (zig-zag 100), with 8 bytes left.
    let mut section = RECORD.to_vec();
    section[0] = 0x64;
    expect(
        walk(&section, 1),
        record_error(
            0,
            RecordError::LengthExceedsBatch {
                length: 50,
                remaining_bytes: 8,
            },
        ),
        &["50 bytes", "8 bytes"],
    );
}

#[test]
fn record_length_mismatch() {
    // Length 9 around fields that use 8: the spare byte belongs to no field.
    let mut section = RECORD.to_vec();
    section[0] = 0x12;
    section.push(0x00);
    expect(
        walk(&section, 1),
        record_error(
            0,
            RecordError::LengthMismatch {
                declared_bytes: 9,
                used_bytes: 8,
            },
        ),
        &["9 bytes", "only 8"],
    );
}

#[test]
fn record_offset_delta_out_of_order() {
    // Two records with offset deltas 0 and 2 (zig-zag 4).
    let mut section = RECORD.to_vec();
    let mut second = RECORD;
    second[3] = 0x04;
    section.extend_from_slice(&second);
    expect(
        walk(&section, 2),
        record_error(
            1,
            RecordError::OffsetDeltaOutOfOrder {
                expected: 1,
                found: 2,
            },
        ),
        &["record 1", "offset delta is 2", "1 was expected"],
    );
    // records() is a plain parser: it yields the record; only the full check refuses it.
    let sealed = common::batch_with_records_section(&section, 2);
    let deltas: Vec<i32> = batch::records(&sealed)
        .unwrap()
        .map(|record| record.unwrap().offset_delta)
        .collect();
    assert_eq!(deltas, [0, 2]);
}

#[test]
fn verify_does_not_walk_records() {
    // The header-only check accepts a batch whose records are garbage: that is the contract
    // callers choose between verify and verify_with_records by.
    let sealed = common::batch_with_records_section(&[0xff; 9], 1);
    assert!(batch::verify(&sealed).is_ok());
    assert!(batch::verify_with_records(&sealed).is_err());
}
