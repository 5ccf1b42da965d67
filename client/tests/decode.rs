//! Goal: the consumer turns fetched bytes into exactly the records at or after its position, in
//! offset order, with keys, values, headers and timestamps intact, and refuses corrupt batches
//! instead of returning garbage or panicking.
//!
//! Method: build batches with `schema::batch::BatchBuilder`, give them base offsets as the
//! broker would, concatenate them as a fetch response does, and call `decode_batches`.

use bytes::{Bytes, BytesMut};
use client::ClientError;
use client::consumer::decode_batches;
use schema::batch::{BatchBuilder, set_base_offset};

/// A batch of `values` stored at `base_offset`, record i stamped 1000 + i ms.
fn stored_batch(base_offset: i64, values: &[&str]) -> Vec<u8> {
    let mut builder = BatchBuilder::new(1_000);
    for (index, value) in values.iter().enumerate() {
        let key = format!("k{index}");
        builder.push(
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            1_000 + index as i64,
            &[(b"h", b"v")],
        );
    }
    let mut batch = builder.finish();
    set_base_offset(&mut batch, base_offset);
    batch
}

fn fetched(batches: &[Vec<u8>]) -> Bytes {
    let mut all = BytesMut::new();
    for batch in batches {
        all.extend_from_slice(batch);
    }
    all.freeze()
}

#[test]
fn records_below_the_position_are_skipped() {
    // Offsets 10..13 then 13..15; the consumer is at 12, inside the first batch.
    let bytes = fetched(&[
        stored_batch(10, &["a", "b", "c"]),
        stored_batch(13, &["d", "e"]),
    ]);
    let mut records = Vec::new();
    let next = decode_batches("t", 4, &bytes, 12, &mut records).expect("decodes");
    assert_eq!(next, 15);
    let offsets: Vec<u64> = records.iter().map(|record| record.offset).collect();
    assert_eq!(offsets, vec![12, 13, 14]);
    let values: Vec<&[u8]> = records
        .iter()
        .map(|record| record.value.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(values, vec![&b"c"[..], b"d", b"e"]);
    let first = &records[0];
    assert_eq!((&*first.topic, first.partition), ("t", 4));
    assert_eq!(first.key.as_deref(), Some(&b"k2"[..]));
    assert_eq!(first.timestamp_ms, 1_002);
    assert_eq!(
        first.headers,
        vec![(Bytes::from_static(b"h"), Some(Bytes::from_static(b"v")))]
    );
}

#[test]
fn nothing_fetched_keeps_the_position() {
    let mut records = Vec::new();
    assert_eq!(
        decode_batches("t", 0, &Bytes::new(), 7, &mut records).expect("empty"),
        7
    );
    assert!(records.is_empty());
}

#[test]
fn a_batch_entirely_below_the_position_still_advances_nothing_backwards() {
    let bytes = fetched(&[stored_batch(0, &["a", "b"])]);
    let mut records = Vec::new();
    assert_eq!(
        decode_batches("t", 0, &bytes, 5, &mut records).expect("decodes"),
        5
    );
    assert!(records.is_empty());
}

#[test]
fn a_flipped_bit_is_refused_by_the_crc() {
    let mut batch = stored_batch(0, &["hello"]);
    let last = batch.len() - 3;
    batch[last] ^= 0x10;
    let bytes = fetched(&[stored_batch(0, &["ok"]), batch]);
    let mut records = Vec::new();
    let error = decode_batches("t", 0, &bytes, 0, &mut records).expect_err("corrupt");
    match error {
        ClientError::InvalidBatch {
            position, source, ..
        } => {
            assert_eq!(
                position,
                stored_batch(0, &["ok"]).len(),
                "names the second batch"
            );
            assert!(source.to_string().contains("CRC"), "{source}");
        }
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn a_truncated_batch_is_refused() {
    let batch = stored_batch(0, &["hello", "world"]);
    for cut in [1, 11, 12, 40, batch.len() - 1] {
        let bytes = Bytes::copy_from_slice(&batch[..cut]);
        let mut records = Vec::new();
        let result = decode_batches("t", 0, &bytes, 0, &mut records);
        assert!(
            matches!(result, Err(ClientError::InvalidBatch { .. })),
            "cut at {cut}: {result:?}"
        );
    }
}

#[test]
fn a_compressed_batch_is_a_typed_error_naming_its_codec() {
    use schema::batch::{BatchError, Compression, compute_crc, field};
    // A valid batch first, so that the error must name the compressed one's position.
    let good = stored_batch(10, &["a"]);
    let codecs = [
        (1i16, Compression::Gzip, "gzip"),
        (2, Compression::Snappy, "snappy"),
        (3, Compression::Lz4, "lz4"),
        (4, Compression::Zstd, "zstd"),
    ];
    for (bits, compression, name) in codecs {
        // A stored compressed batch as the broker serves it: valid header and CRC around bytes
        // that only a decompressor could read (here, the plain records with the codec bits set:
        // decoding them as records would "work", so this proves they are not decoded).
        let mut compressed = stored_batch(11, &["b", "c"]);
        compressed[field::ATTRIBUTES..field::ATTRIBUTES + 2].copy_from_slice(&bits.to_be_bytes());
        let crc = compute_crc(&compressed);
        compressed[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
        schema::batch::verify(&compressed).expect("a compressed batch verifies");
        let bytes = fetched(&[good.clone(), compressed]);
        let mut records = Vec::new();
        let result = decode_batches("t", 0, &bytes, 10, &mut records);
        let error = result.expect_err("a compressed batch cannot be decoded");
        let message = error.to_string();
        match error {
            ClientError::InvalidBatch {
                position, source, ..
            } => {
                assert_eq!(position, good.len(), "{name}");
                assert_eq!(
                    source,
                    BatchError::UnsupportedCompression { compression },
                    "{name}"
                );
            }
            other => panic!("{name}: expected InvalidBatch, got {other:?}"),
        }
        assert!(message.contains(name), "{message:?} lacks {name}");
    }
}
