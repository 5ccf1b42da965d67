//! Helpers shared by the storage integration tests: batch generation and whole-log reads.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use schema::batch::BatchBuilder;
use storage::disk::Disk;
use storage::{Log, LogConfig, Offset};

/// A batch of `records` records of `value_bytes` each, stamped `timestamp_ms`.
pub fn batch(records: usize, value_bytes: usize, timestamp_ms: i64) -> BytesMut {
    let mut builder = BatchBuilder::new(timestamp_ms);
    for i in 0..records {
        let value: Vec<u8> = (0..value_bytes).map(|j| (i * 31 + j) as u8).collect();
        let key = format!("k{i}");
        builder.push(Some(key.as_bytes()), Some(&value), timestamp_ms, &[]);
    }
    BytesMut::from(&builder.finish()[..])
}

/// `batch` with its baseOffset set, as the log stores it.
pub fn stored(batch: &BytesMut, base_offset: Offset) -> Bytes {
    let mut stored = batch.clone();
    schema::batch::set_base_offset(&mut stored, base_offset.0 as i64);
    stored.freeze()
}

/// A config with small segments and buffers, so tests cross every boundary quickly.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 64 << 10,
        segment_age_ms_max: None,
        retention_ms: None,
        retention_bytes: None,
        index_interval_bytes: 1024,
        write_chunk_bytes: 8192,
        write_ahead_chunks: 2,
        preallocate_bytes: 16 << 10,
        cache_bytes_max: 0,
        batch_bytes_max: 1 << 20,
        flush_policy: storage::FlushPolicy::EveryBatch,
    }
}

/// Reads every batch from the log start to the written end.
pub async fn read_all<D: Disk>(log: &Log<D>) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut next = log.log_start();
    while next < log.written_end() {
        let read = log.read(next, 256 << 10).await.expect("read");
        assert!(!read.batches.is_empty(), "no progress at {next}");
        next = read.next_offset;
        out.extend(read.batches);
    }
    out
}

/// The one PRNG, seeded: randomized tests must replay from their seed alone
/// (`Rng::with_seed`), so they never use fastrand's unseeded global generator.
pub use fastrand::Rng;

/// True with the given probability in percent.
pub fn chance(rng: &mut Rng, percent: u64) -> bool {
    rng.u64(..100) < percent
}
