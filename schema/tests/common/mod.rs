//! Helpers shared by the batch integration tests: the seeded PRNG and the seed it replays
//! from, random batches that remember what was pushed, and byte surgery on headers (which must
//! re-seal the CRC to get past it).
//!
//! Each test binary uses a different subset of these, hence the dead-code allowance below.
#![allow(dead_code)]

use schema::batch::{self, BatchBuilder, field};

/// The one PRNG (fastrand's wyrand), always made with `Rng::with_seed`: a failure replays
/// exactly from its printed seed. Tests never use fastrand's unseeded global generator.
pub use fastrand::Rng;

/// True with probability `percent` / 100.
pub fn chance(rng: &mut Rng, percent: u64) -> bool {
    rng.u64(..100) < percent
}

/// `length` random bytes.
pub fn bytes(rng: &mut Rng, length: usize) -> Vec<u8> {
    let mut out = vec![0; length];
    rng.fill(&mut out);
    out
}

/// The seed for a randomised test: `RINGBUS_SEED` if set (to replay a failure), else fresh from
/// the clock. Printed either way; the harness shows it when the test fails.
pub fn seed(test_name: &str) -> u64 {
    let seed = match std::env::var("RINGBUS_SEED") {
        Ok(text) => text.parse().expect("RINGBUS_SEED must be a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64,
    };
    eprintln!("{test_name}: seed {seed} (replay with RINGBUS_SEED={seed})");
    seed
}

/// One record as given to `BatchBuilder::push`, kept to compare against what `records()` yields.
#[derive(Debug, Clone)]
pub struct PushedRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp_ms: i64,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Mostly short byte strings, with nulls, empties, and sometimes lengths that need 2- and
/// 3-byte varints (64+ and 8,192+ bytes zig-zagged).
fn random_payload(rng: &mut Rng) -> Option<Vec<u8>> {
    match rng.u64(..50) {
        0..=4 => None,
        5..=9 => Some(Vec::new()),
        10..=14 => {
            let length = 64 + rng.usize(..300);
            Some(bytes(rng, length))
        }
        15 => {
            let length = 8_192 + rng.usize(..4_000);
            Some(bytes(rng, length))
        }
        _ => {
            let length = rng.usize(..20);
            Some(bytes(rng, length))
        }
    }
}

/// A random batch and what was pushed into it, with timestamps around `base_timestamp_ms`
/// (before and after it, sometimes far, so timestamp deltas take 1 to 9 varlong bytes).
pub fn random_records(rng: &mut Rng, base_timestamp_ms: i64) -> Vec<PushedRecord> {
    let record_count = 1 + match rng.u64(..10) {
        0 => rng.usize(..200),
        _ => rng.usize(..8),
    };
    (0..record_count)
        .map(|_| {
            let spread = 1i64 << rng.u64(..50);
            let offset = rng.i64(..) % spread;
            let header_count = match rng.u64(..4) {
                0 => rng.usize(..5),
                _ => 0,
            };
            let headers = (0..header_count)
                .map(|_| {
                    let key_length = rng.usize(..10);
                    let key = bytes(rng, key_length);
                    (key, random_payload(rng).unwrap_or_default())
                })
                .collect();
            PushedRecord {
                key: random_payload(rng),
                value: random_payload(rng),
                timestamp_ms: base_timestamp_ms + offset,
                headers,
            }
        })
        .collect()
}

/// Pushes `records` into a builder, in order.
pub fn build(base_timestamp_ms: i64, records: &[PushedRecord]) -> BatchBuilder {
    let mut builder = BatchBuilder::new(base_timestamp_ms);
    for record in records {
        let headers: Vec<(&[u8], &[u8])> = record
            .headers
            .iter()
            .map(|(key, value)| (key.as_slice(), value.as_slice()))
            .collect();
        builder.push(
            record.key.as_deref(),
            record.value.as_deref(),
            record.timestamp_ms,
            &headers,
        );
    }
    builder
}

/// A small valid batch with several records, nulls and headers: the subject of byte surgery.
pub fn sample_batch() -> Vec<u8> {
    let mut builder = BatchBuilder::new(1_700_000_000_000).producer(7, 1, 100);
    builder.push(Some(b"key-0"), Some(b"value-0"), 1_700_000_000_000, &[]);
    builder.push(None, Some(b"v"), 1_700_000_000_005, &[(b"trace", b"abc")]);
    builder.push(
        Some(b""),
        None,
        1_699_999_999_990,
        &[(b"a", b""), (b"b", b"x")],
    );
    builder.finish()
}

/// Recomputes and stores the CRC, so that a test can reach the checks behind it.
pub fn reseal(batch: &mut [u8]) {
    let crc = batch::compute_crc(batch);
    batch[field::CRC..field::CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Overwrites a big-endian i32 header field.
pub fn put_i32(batch: &mut [u8], at: usize, value: i32) {
    batch[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// Overwrites the big-endian i16 attributes.
pub fn put_attributes(batch: &mut [u8], attributes: i16) {
    batch[field::ATTRIBUTES..field::ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
}

/// A batch with a valid header (from the builder) around an arbitrary records section:
/// batchLength, recordCount, lastOffsetDelta = count - 1 and the CRC all made consistent, so
/// only the records themselves can be wrong.
pub fn batch_with_records_section(records_section: &[u8], record_count: i32) -> Vec<u8> {
    let mut builder = BatchBuilder::new(0);
    builder.push(None, None, 0, &[]);
    let mut batch = builder.finish();
    batch.truncate(batch::HEADER_BYTES);
    batch.extend_from_slice(records_section);
    let batch_length = (batch.len() - batch::LENGTH_PREFIX_BYTES) as i32;
    put_i32(&mut batch, field::BATCH_LENGTH, batch_length);
    put_i32(&mut batch, field::RECORD_COUNT, record_count);
    put_i32(
        &mut batch,
        field::LAST_OFFSET_DELTA,
        record_count.wrapping_sub(1),
    );
    reseal(&mut batch);
    batch
}
