//! Goal: prove the log's crash rules at thousands of crash points per CI run.
//!
//! Method (TigerBeetle's VOPR in miniature): for each seed, drive a `Log` on the simulated disk
//! with a random mix of appends, flushes, syncs, reads, rolls and retention, then cut the power
//! at a random moment with a random crash mode (drop, keep, randomly keep, or tear the unsynced
//! 512-byte sectors), reopen, and check against a model of what was acknowledged:
//! - every batch below the durable end the log reported survives, byte-identical, at its offset;
//! - every batch the recovered log holds is wholly one that was appended at that offset
//!   (no torn batch is ever served), and offsets are contiguous from the log start;
//! - a second recovery of the recovered state gives the same log;
//! - no write ever rewrote a byte that was durable (the simulator counts such writes);
//! - after a crash that kept every completed write (a process crash) while no batch was half
//!   written, recovery cuts nothing: the preallocated zero tail of the active segment is
//!   neither torn nor corrupt;
//! - a closed segment keeps no zeros past its data (a roll cuts the preallocated tail).
//!
//! Each seed runs several crash-recover cycles. A failure prints the seed; replay one with
//! `RINGBUS_SIM_SEED=<seed> cargo test -p storage --test crash_sim`. `RINGBUS_SIM_SEEDS=<n>`
//! changes how many seeds run (default 1,000, about 3,000 crash points).

mod common;

use common::{Rng, chance};

use std::collections::BTreeMap;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use schema::batch::BatchBuilder;
use storage::disk::crash_test::{Seeds, for_each_seed};
use storage::disk::sim::{CrashMode, SimDisk, block_on};
use storage::{FlushPolicy, Log, LogConfig, Offset};

fn config(rng: &mut Rng) -> LogConfig {
    LogConfig {
        segment_bytes_max: [16 << 10, 64 << 10, 1 << 20][rng.usize(..3)],
        segment_age_ms_max: Some(1_000),
        retention_ms: None,
        retention_bytes: if chance(rng, 30) {
            Some(48 << 10)
        } else {
            None
        },
        index_interval_bytes: 1024,
        write_chunk_bytes: [4096, 8192, 16384, 65536][rng.usize(..4)],
        write_ahead_chunks: 1 + rng.usize(..3),
        preallocate_bytes: 16 << 10,
        cache_bytes_max: [0, 8 << 10, 1 << 20][rng.usize(..3)],
        batch_bytes_max: 1 << 20,
        flush_policy: FlushPolicy::EveryBatch,
    }
}

fn random_batch(rng: &mut Rng, now_ms: i64) -> BytesMut {
    let mut builder = BatchBuilder::new(now_ms);
    let records = 1 + rng.u64(..4);
    for i in 0..records {
        let value_bytes = match rng.u64(..10) {
            0 => 0,
            1..=7 => rng.usize(..300),
            _ => rng.usize(..5000),
        };
        let value: Vec<u8> = (0..value_bytes).map(|_| rng.u8(..)).collect();
        let key = format!("key-{}", rng.u64(..100));
        builder.push(
            Some(key.as_bytes()),
            Some(&value),
            now_ms + i as i64,
            &[(b"h".as_slice(), b"v".as_slice())],
        );
    }
    BytesMut::from(&builder.finish()[..])
}

/// What the test knows the log must hold.
#[derive(Default)]
struct Model {
    /// Every batch ever appended at an offset (with its final baseOffset), latest attempt last:
    /// after a crash the offsets of lost batches are reassigned, so an offset may map to
    /// several candidates over time.
    appended: BTreeMap<u64, Vec<Bytes>>,
    /// The durable end the log reported.
    durable_end: u64,
    /// The log start the log reported.
    log_start: u64,
}

fn read_all(log: &Log<SimDisk>) -> Vec<(u64, Bytes)> {
    let mut out = Vec::new();
    let mut next = log.log_start();
    while next < log.written_end() {
        let read = block_on(log.read(next, 64 << 10)).expect("read");
        assert!(!read.batches.is_empty(), "read at {next} returned nothing");
        for batch in read.batches {
            let header = schema::batch::verify(&batch).expect("served batch verifies");
            out.push((header.base_offset as u64, batch));
        }
        assert!(read.next_offset > next);
        next = read.next_offset;
    }
    out
}

fn check_recovered(seed: u64, cycle: u32, log: &Log<SimDisk>, model: &Model) -> Vec<(u64, Bytes)> {
    let context = format!("seed {seed} cycle {cycle}");
    let batches = read_all(log);
    assert!(
        log.written_end().0 >= model.durable_end,
        "{context}: log end {} below durable end {}",
        log.written_end(),
        model.durable_end
    );
    assert!(
        log.log_start().0 >= model.log_start,
        "{context}: log start moved back"
    );
    let mut expected = log.log_start().0;
    for (offset, bytes) in &batches {
        assert_eq!(*offset, expected, "{context}: offsets not contiguous");
        let candidates = model
            .appended
            .get(offset)
            .unwrap_or_else(|| panic!("{context}: offset {offset} was never appended"));
        let is_last = candidates.last() == Some(bytes);
        if *offset < model.durable_end {
            // Below the durable end only the batch that was there when it became durable counts.
            assert!(is_last, "{context}: durable batch at {offset} differs");
        } else {
            assert!(
                candidates.contains(bytes),
                "{context}: batch at {offset} is not one that was appended there"
            );
        }
        let header = schema::batch::verify(bytes).expect("verified above");
        expected = offset + header.last_offset_delta as u64 + 1;
    }
    assert_eq!(
        expected,
        log.written_end().0,
        "{context}: read end != log end"
    );
    batches
}

/// Every segment but the newest ends with data, durably: the roll cut its preallocated zero
/// tail (random batch bytes never make a whole zero block, and padding starts with a header).
fn check_closed_segments_end_with_data(seed: u64, disk: &SimDisk, dir: &Path, log: &Log<SimDisk>) {
    let bases = log.segment_bases();
    for base in &bases[..bases.len() - 1] {
        let path = dir.join(format!("{:020}.log", base.0));
        let contents = disk
            .durable_contents(&path)
            .unwrap_or_else(|| panic!("seed {seed}: closed segment {base} is not durable"));
        let last_block = &contents[contents.len().saturating_sub(4096)..];
        assert!(
            last_block.iter().any(|byte| *byte != 0),
            "seed {seed}: closed segment {base} ends in zeros ({} bytes)",
            contents.len()
        );
    }
}

fn run_seed(seed: u64) {
    let mut rng = Rng::with_seed(seed);
    let disk = SimDisk::new(seed);
    let dir = Path::new("/sim/partition-0");
    let config = config(&mut rng);
    let mut model = Model::default();
    let mut now_ms: i64 = 1_000_000;
    let cycles = 3;
    // Set when the last crash kept every write and no batch was half written (appended but
    // only partly in full write chunks): then nothing in the file is torn.
    let mut nothing_torn = false;
    for cycle in 0..cycles {
        let (mut log, report) = match block_on(Log::open(disk.clone(), dir, config.clone(), now_ms))
        {
            Ok(opened) => opened,
            Err(error) => panic!("seed {seed} cycle {cycle}: open failed: {error}"),
        };
        if cycle > 0 {
            check_recovered(seed, cycle, &log, &model);
        }
        if nothing_torn {
            assert_eq!(
                report.truncated_bytes, 0,
                "seed {seed} cycle {cycle}: recovery cut data that every write had completed"
            );
        }
        // From here on, what the log holds is the truth the next cycle checks against.
        model.durable_end = log.durable_end().0;
        model.log_start = log.log_start().0;
        let steps = 5 + rng.u64(..60);
        for _ in 0..steps {
            now_ms += rng.i64(0..50);
            match rng.u64(..100) {
                0..=59 => {
                    let batch = random_batch(&mut rng, now_ms);
                    let appended = match block_on(log.append(batch.clone(), now_ms)) {
                        Ok(appended) => appended,
                        // Larger than an empty segment: refused, nothing appended.
                        Err(storage::AppendError::BatchTooLarge { .. }) => continue,
                        Err(error) => panic!("seed {seed}: append: {error}"),
                    };
                    let mut stored = batch;
                    schema::batch::set_base_offset(&mut stored, appended.base_offset.0 as i64);
                    model
                        .appended
                        .entry(appended.base_offset.0)
                        .or_default()
                        .push(stored.freeze());
                }
                60..=69 => {
                    block_on(log.flush()).expect("flush");
                }
                70..=84 => {
                    let durable = block_on(log.sync(now_ms)).expect("sync");
                    assert!(durable.0 >= model.durable_end);
                    model.durable_end = durable.0;
                }
                85..=92 => {
                    // Reads never see unwritten data and always return whole stored batches.
                    let written = log.written_end();
                    if log.log_start() < written {
                        let from =
                            Offset(log.log_start().0 + rng.u64(..written.0 - log.log_start().0));
                        let read =
                            block_on(log.read(from, 1 + rng.u64(..20_000) as usize)).expect("read");
                        for batch in &read.batches {
                            let header = schema::batch::verify(batch).expect("verifies");
                            assert!((header.base_offset as u64) < written.0);
                        }
                    }
                }
                _ => {
                    now_ms += 2_000;
                    let outcome = block_on(log.enforce_retention(now_ms)).expect("retention");
                    assert!(outcome.log_start.0 >= model.log_start);
                    model.log_start = outcome.log_start.0;
                }
            }
            assert_eq!(
                disk.durable_rewrites(),
                0,
                "seed {seed}: a durable byte was rewritten"
            );
        }
        check_closed_segments_end_with_data(seed, &disk, dir, &log);
        let half_written = log.appended_end() != log.written_end();
        // Power loss: the log is dropped without close (no I/O in Drop), unsynced writes fare
        // as the mode says.
        drop(log);
        let mode = match rng.u64(..4) {
            0 => CrashMode::DropAll,
            1 => CrashMode::KeepAll,
            2 => CrashMode::Random,
            _ => CrashMode::Torn,
        };
        nothing_torn = mode == CrashMode::KeepAll && !half_written;
        disk.crash(mode);
    }

    // Recovering twice gives the same log: recover, crash at once (recovery's own writes are
    // synced), recover again.
    let (log, _) = block_on(Log::open(disk.clone(), dir, config.clone(), now_ms))
        .unwrap_or_else(|error| panic!("seed {seed}: final open failed: {error}"));
    let first = check_recovered(seed, cycles, &log, &model);
    let ends = (log.log_start(), log.written_end());
    drop(log);
    disk.crash(CrashMode::Torn);
    let (log, _) = block_on(Log::open(disk.clone(), dir, config, now_ms))
        .unwrap_or_else(|error| panic!("seed {seed}: second open failed: {error}"));
    assert_eq!(
        (log.log_start(), log.written_end()),
        ends,
        "seed {seed}: second recovery differs"
    );
    assert_eq!(
        read_all(&log),
        first,
        "seed {seed}: second recovery differs"
    );
    assert_eq!(
        disk.durable_rewrites(),
        0,
        "seed {seed}: a durable byte was rewritten"
    );
}

#[test]
fn crash_at_random_points_never_loses_durable_or_serves_torn_batches() {
    for_each_seed(
        &Seeds::sim(1_000, "cargo test -p storage --test crash_sim"),
        run_seed,
    );
}
