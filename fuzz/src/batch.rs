//! Target `batch`: the Kafka RecordBatch v2 codec (`schema::batch`) over arbitrary bytes.
//!
//! Input: one batch, as a producer would send it (the whole input is the batch).
//!
//! Properties:
//! - the entry points agree: `total_bytes` of the 12-byte prefix matches the parsed header's;
//!   a batch `verify` accepts parses to the same header, is exactly `total_bytes` long and can
//!   be iterated (`records` accepts it) unless it is compressed (then `records` refuses it
//!   with `UnsupportedCompression`: ringbus never decompresses); `verify_with_records` accepts
//!   exactly the batches `verify` accepts that are compressed or whose records all parse with
//!   offset deltas 0, 1, 2, ... and no bytes left over (checked here by walking `records`
//!   independently), and `Verified::check` agrees;
//! - `records` is fused: after its first error it yields nothing more; without an error it
//!   yields exactly recordCount records;
//! - assigning a base offset or stamping a producer keeps a valid batch valid;
//! - a valid batch rebuilt with `BatchBuilder` from its decoded records (decode, encode,
//!   decode) has the same records, is no longer than the original (the builder writes minimal
//!   varints) and, where the original used minimal varints and zero record attributes, the
//!   same record bytes.

use schema::batch::{
    self, BatchBuilder, BatchError, BatchHeader, Compression, HEADER_BYTES, RecordView, Verified,
    records, total_bytes, verify, verify_with_records,
};

/// The target: see the module doc.
pub fn check(data: &[u8]) {
    let parsed = BatchHeader::parse(data);
    if let Ok(header) = &parsed {
        assert_eq!(
            header.total_bytes(),
            total_bytes(data),
            "two readings of batchLength"
        );
    }
    let verified = verify(data);
    if let Ok(header) = &verified {
        assert_eq!(Ok(*header), parsed);
        assert_eq!(total_bytes(data), Some(data.len()));
        match header.compression() {
            Ok(Compression::None) => {
                assert!(records(data).is_ok(), "a verified batch cannot be iterated")
            }
            Ok(compression) => assert_eq!(
                records(data).err(),
                Some(BatchError::UnsupportedCompression { compression }),
                "a compressed batch is iterated"
            ),
            Err(error) => panic!("a verified batch names no codec: {error}"),
        }
    }
    let compressed = verified
        .as_ref()
        .is_ok_and(|header| header.compression() != Ok(Compression::None));

    // Walk the records independently of verify_with_records.
    let mut views: Vec<RecordView<'_>> = Vec::new();
    let mut walk_failed = true;
    if let (Ok(iterator), Ok(header)) = (records(data), &parsed) {
        walk_failed = false;
        let mut iterator = iterator;
        for item in iterator.by_ref() {
            match item {
                Ok(view) => {
                    assert!(!walk_failed, "records yielded a record after an error");
                    views.push(view);
                }
                Err(_) => {
                    assert!(!walk_failed, "records yielded two errors");
                    walk_failed = true;
                }
            }
        }
        assert!(iterator.next().is_none(), "records is fused");
        if !walk_failed {
            assert_eq!(
                i64::try_from(views.len()),
                Ok(i64::from(header.record_count))
            );
        }
    }
    let deltas_in_order = views
        .iter()
        .enumerate()
        .all(|(index, view)| i64::from(view.offset_delta) == index as i64);
    let with_records = verify_with_records(data);
    assert_eq!(
        with_records.is_ok(),
        verified.is_ok() && (compressed || (!walk_failed && deltas_in_order)),
        "verify_with_records disagrees with verify and the records: {with_records:?}"
    );
    assert_eq!(Verified::check(data).is_ok(), with_records.is_ok());
    let Ok(header) = with_records else {
        return;
    };

    let mut stamped = data.to_vec();
    batch::set_base_offset(&mut stamped, 1 << 40);
    assert_eq!(
        verify_with_records(&stamped).map(|h| h.base_offset),
        Ok(1 << 40)
    );
    batch::set_producer(&mut stamped, 7, 3, 11);
    let restamped = verify_with_records(&stamped).expect("stamping keeps a batch valid");
    assert_eq!(
        (restamped.producer_id, restamped.producer_epoch),
        (7, 3),
        "the stamp is read back"
    );

    // A compressed batch's records were never decoded: there is nothing to rebuild from.
    if !compressed {
        rebuild(data, &header, &views);
    }
}

/// Decode, encode, decode: see the module doc.
fn rebuild(data: &[u8], header: &BatchHeader, views: &[RecordView<'_>]) {
    let mut builder = BatchBuilder::new(header.base_timestamp).producer(
        header.producer_id,
        header.producer_epoch,
        header.base_sequence,
    );
    for view in views {
        // The builder takes absolute timestamps and non-null header values: a record it
        // cannot express is no failure of the codec, so such a batch is not rebuilt.
        let Some(timestamp) = header.base_timestamp.checked_add(view.timestamp_delta) else {
            return;
        };
        let Some(headers) = view
            .headers
            .iter()
            .map(|(key, value)| value.map(|value| (*key, value)))
            .collect::<Option<Vec<_>>>()
        else {
            return;
        };
        builder.push(view.key, view.value, timestamp, &headers);
    }
    let rebuilt = builder.finish();
    let rebuilt_header = verify_with_records(&rebuilt).expect("a built batch verifies");
    assert_eq!(rebuilt_header.record_count, header.record_count);
    let rebuilt_views: Vec<RecordView<'_>> = records(&rebuilt)
        .expect("verified")
        .collect::<Result<_, _>>()
        .expect("verified records parse");
    assert_eq!(rebuilt_views.len(), views.len());
    for (rebuilt_view, view) in rebuilt_views.iter().zip(views) {
        // The builder writes record attributes 0 (Kafka defines none); the rest must match.
        let view = RecordView {
            attributes: 0,
            ..view.clone()
        };
        assert_eq!(
            rebuilt_view, &view,
            "a record changes through encode and decode"
        );
    }
    assert!(
        rebuilt.len() <= data.len(),
        "the rebuilt batch is longer ({} > {} bytes)",
        rebuilt.len(),
        data.len()
    );
    if rebuilt.len() == data.len() && views.iter().all(|view| view.attributes == 0) {
        assert_eq!(&rebuilt[HEADER_BYTES..], &data[HEADER_BYTES..]);
    }
}
