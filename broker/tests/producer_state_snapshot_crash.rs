//! Goal: after any crash, the idempotent-producer state a partition rebuilds (snapshot, then
//! the log after it) is exactly the state of the batches its recovered log holds: a correct
//! snapshot is trusted, a damaged one or one reaching past the log end is refused (and removed
//! for good), never trusted.
//!
//! Method: a partition log and its `producer-state` snapshot on the simulated disk, loaded
//! the way the partition actor loads them (`snapshot::load` with `OnRefusal::Rescan`, then
//! `snapshot::replay` with `ProducerStates::replay_batch`). The expected state is computed
//! apart, by recording every batch the test appended whose offsets the recovered log still
//! holds (the recovered log is a prefix of what was appended: storage's crash tests).
//! - Crash at every point: power is cut after each mutating disk operation in turn while a
//!   snapshot is stored and more batches are appended, in each crash mode.
//! - Bit flips: each bit of a stored snapshot (every bit for one seed, a sample for the rest).
//! - Past the log end: a flipped bit in the log's last durable flush makes recovery cut it as
//!   a torn tail (docs/storage-format.md, the known limitation), so the log ends below the
//!   snapshot; the snapshot is refused, and after the log regrows past it and the power fails
//!   again, it must not come back.
//!
//! A failure prints the seed; replay it with
//! `RINGBUS_SIM_SEED=<seed> cargo test -p broker --test producer_state_snapshot_crash`;
//! `RINGBUS_SIM_SEEDS=<n>` changes how many seeds run.

mod common;

use std::path::PathBuf;

use broker::partition::PRODUCER_SNAPSHOT_FILE;
use broker::producer_state::{BatchIdentity, ProducerStates};
use broker::snapshot::{self, LoadError, LogExtent, OnRefusal, Refusal, Start};
use bytes::BytesMut;
use common::{CutDisk, Rng, chance, for_each_seed, small_log_config};
use schema::batch::{BatchBuilder, BatchHeader};
use storage::disk::Disk;
use storage::disk::sim::{CrashMode, block_on};
use storage::{Log, Offset};

/// The wall clock of the whole test: the state's `last_seen_ms` must not depend on when the
/// batch was recorded or replayed.
const NOW_MS: i64 = 1_700_000_000_000;
const MODES: [CrashMode; 4] = [
    CrashMode::DropAll,
    CrashMode::KeepAll,
    CrashMode::Random,
    CrashMode::Torn,
];
/// Bytes of the snapshot blob its CRC covers: the 16-byte metadata prefix, the payload, the
/// 4-byte CRC (docs/storage-format.md); the rest of the block is zero padding.
const FRAME_BYTES: u64 = 16 + 4;

fn dir() -> PathBuf {
    PathBuf::from("/data/orders-0")
}

fn snapshot_path() -> PathBuf {
    dir().join(PRODUCER_SNAPSHOT_FILE)
}

/// What the test appended: each batch's identity (None: no producer id) and offsets.
#[derive(Default, Clone)]
struct Model {
    appended: Vec<(Option<BatchIdentity>, Offset, Offset)>,
    /// Next sequence per producer (ids 11, 12, 13).
    sequences: [i32; 3],
}

impl Model {
    /// The state of every appended batch below `end`.
    fn state_below(&self, end: Offset) -> ProducerStates {
        let mut states = ProducerStates::default();
        for (identity, base, last) in &self.appended {
            if *last >= end {
                assert!(*base >= end, "the log ends inside the batch at {base}");
                continue;
            }
            if let Some(identity) = identity {
                states.record(identity, *base, *last, NOW_MS);
            }
        }
        states
    }
}

/// Appends one random batch (mostly from one of three idempotent producers, in sequence).
fn append<D: Disk>(log: &mut Log<D>, rng: &mut Rng, model: &mut Model) -> Result<(), String> {
    let records = 1 + rng.usize(..4);
    let producer = rng.usize(..4);
    let mut builder = BatchBuilder::new(NOW_MS);
    if let Some(sequence) = model.sequences.get(producer) {
        builder = builder.producer(11 + producer as i64, 0, *sequence);
    }
    for _ in 0..records {
        let value_bytes = if chance(rng, 10) {
            rng.usize(..6_000)
        } else {
            rng.usize(..300)
        };
        let value: Vec<u8> = (0..value_bytes).map(|_| rng.u8(..)).collect();
        builder.push(Some(b"key"), Some(&value), NOW_MS, &[]);
    }
    let batch = builder.finish();
    let identity = BatchIdentity::of(&BatchHeader::parse(&batch).expect("parses"))
        .expect("a well-formed identity");
    let appended = block_on(log.append(BytesMut::from(&batch[..]), NOW_MS))
        .map_err(|error| format!("append: {error}"))?;
    if let Some(sequence) = model.sequences.get_mut(producer) {
        *sequence += records as i32;
    }
    model
        .appended
        .push((identity, appended.base_offset, appended.last_offset));
    Ok(())
}

/// Appends `count` batches, syncing after some; stops at the first failure (a power cut).
fn append_some<D: Disk>(
    log: &mut Log<D>,
    rng: &mut Rng,
    model: &mut Model,
    count: usize,
) -> Result<(), String> {
    for _ in 0..count {
        append(log, rng, model)?;
        if chance(rng, 30) {
            block_on(log.sync(NOW_MS)).map_err(|error| format!("sync: {error}"))?;
        }
    }
    Ok(())
}

/// Stores the snapshot as the partition actor does: sync the log, then the state as of its
/// durable end. Returns what it covers through.
fn store_snapshot(disk: &CutDisk, log: &mut Log<CutDisk>, model: &Model) -> Result<Offset, String> {
    let through = block_on(log.sync(NOW_MS)).map_err(|error| format!("sync: {error}"))?;
    let bytes = model.state_below(through).encode(through);
    block_on(storage::store_blob(
        disk,
        &dir(),
        PRODUCER_SNAPSHOT_FILE,
        &bytes,
    ))
    .map_err(|error| format!("store: {error}"))?;
    Ok(through)
}

/// The partition's load path: which snapshot to trust, then the batches after it.
fn load<D: Disk>(disk: &D, log: &Log<D>) -> Result<Start<ProducerStates>, LoadError> {
    let start = block_on(snapshot::load(
        disk,
        &snapshot_path(),
        LogExtent::of(log),
        OnRefusal::Rescan,
        ProducerStates::decode,
    ))?;
    let from = start.replay_from;
    let mut states = start.state;
    block_on(snapshot::replay(
        log,
        from,
        log.written_end(),
        64 << 10,
        |batch| {
            states.replay_batch(batch, from, NOW_MS);
            Ok::<(), LoadError>(())
        },
    ))?;
    Ok(Start {
        state: states,
        ..start
    })
}

fn open(disk: &CutDisk, context: &str) -> Log<CutDisk> {
    match block_on(Log::open(disk.clone(), &dir(), small_log_config(), NOW_MS)) {
        Ok((log, _)) => log,
        Err(error) => panic!("{context}: open: {error}"),
    }
}

/// One run of the crash sweep: a first snapshot, more batches, then (with the power cut after
/// `cut` more operations, if given) a second snapshot and more batches; crash in `mode`,
/// recover, load, check. Returns the operations the cut phase took (to size the sweep).
fn crash_run(seed: u64, cut: Option<u64>, mode: CrashMode) -> u64 {
    let context = format!("seed {seed} cut {cut:?} {mode:?}");
    let mut rng = Rng::with_seed(seed);
    let disk = CutDisk::new(seed);
    let mut model = Model::default();
    let mut log = open(&disk, &context);
    let count = 10 + rng.usize(..20);

    append_some(&mut log, &mut rng, &mut model, count).expect("power on");
    let first = store_snapshot(&disk, &mut log, &model).expect("power on");
    let count = 5 + rng.usize(..20);

    append_some(&mut log, &mut rng, &mut model, count).expect("power on");

    let before = disk.power.done();
    if let Some(cut) = cut {
        disk.power.cut_after(cut);
    }
    let second = store_snapshot(&disk, &mut log, &model);
    if second.is_ok() {
        // Fails where the power is cut; what was acknowledged is the log's durable end.
        let more = 3 + rng.usize(..6);
        let _ = append_some(&mut log, &mut rng, &mut model, more);
    }
    let phase_ops = disk.power.done() - before;
    let acknowledged = log.durable_end();

    drop(log);
    disk.power.restore();
    disk.sim.crash(mode);
    let log = open(&disk, &context);
    assert!(
        log.written_end() >= acknowledged,
        "{context}: the log lost durable batches"
    );
    let start = load(&disk, &log).unwrap_or_else(|error| panic!("{context}: load: {error}"));
    assert_eq!(
        start.refused, None,
        "{context}: a crash alone got a snapshot refused"
    );
    match &second {
        Ok(second) => assert_eq!(start.through, *second, "{context}: the stored snapshot"),
        Err(_) => assert!(
            start.through == first || start.through == acknowledged,
            "{context}: trusted a snapshot through {} (stored: {first}, in flight: {acknowledged})",
            start.through
        ),
    }
    assert!(
        start.state == model.state_below(log.written_end()),
        "{context}: the rebuilt state differs from the recovered log's"
    );
    phase_ops
}

#[test]
fn a_crash_at_any_point_of_a_snapshot_store_keeps_the_old_or_the_new_snapshot() {
    for_each_seed("producer_state_snapshot_crash", 16, |seed| {
        let ops = crash_run(seed, None, CrashMode::KeepAll);
        for cut in 0..=ops {
            for mode in MODES {
                crash_run(seed, Some(cut), mode);
            }
        }
    });
}

/// A log with batches and a snapshot through its end.
fn with_snapshot(seed: u64) -> (CutDisk, Log<CutDisk>, Model, Offset) {
    let mut rng = Rng::with_seed(seed);
    let disk = CutDisk::new(seed);
    let mut model = Model::default();
    let mut log = open(&disk, &format!("seed {seed}"));
    let count = 10 + rng.usize(..30);

    append_some(&mut log, &mut rng, &mut model, count).expect("append");
    let through = store_snapshot(&disk, &mut log, &model).expect("store");
    // Batches after the snapshot, for the replay.
    let count = rng.usize(..10);

    append_some(&mut log, &mut rng, &mut model, count).expect("append");
    block_on(log.sync(NOW_MS)).expect("sync");
    (disk, log, model, through)
}

fn flip_run(seed: u64, every_bit: bool) {
    let (disk, log, model, through) = with_snapshot(seed);
    let path = snapshot_path();
    let stored = disk.sim.durable_contents(&path).expect("stored");
    let covered = FRAME_BYTES + model.state_below(through).encode(through).len() as u64;
    let mut rng = Rng::with_seed(seed);
    let bits: Vec<(u64, u8)> = if every_bit {
        (0..covered)
            .flat_map(|byte| (0..8).map(move |bit| (byte, bit)))
            .collect()
    } else {
        (0..48)
            .map(|index| {
                let byte = if index % 8 == 0 {
                    rng.u64(covered..stored.len() as u64)
                } else {
                    rng.u64(..covered)
                };
                (byte, rng.u8(..8))
            })
            .collect()
    };
    let expected = model.state_below(log.written_end());
    for (byte, bit) in bits {
        let context = format!("seed {seed} byte {byte} bit {bit}");
        disk.sim.flip_bit(&path, byte, bit);
        let start = load(&disk, &log).unwrap_or_else(|error| panic!("{context}: load: {error}"));
        assert!(
            start.state == expected,
            "{context}: the rebuilt state differs from the log's"
        );
        if byte < covered {
            assert!(
                matches!(start.refused, Some(Refusal::Damaged { .. })),
                "{context}: a damaged snapshot was not refused: {:?}",
                start.refused
            );
            assert_eq!(start.through, log.log_start(), "{context}");
            assert_eq!(
                disk.sim.durable_contents(&path),
                None,
                "{context}: the refused snapshot was not removed durably"
            );
            block_on(storage::store_blob(
                &disk,
                &dir(),
                PRODUCER_SNAPSHOT_FILE,
                &model.state_below(through).encode(through),
            ))
            .expect("store again");
        } else {
            // The zero padding after the CRC is not part of the snapshot.
            assert_eq!(start.refused, None, "{context}");
            assert_eq!(start.through, through, "{context}");
            disk.sim.flip_bit(&path, byte, bit);
        }
    }
}

#[test]
fn a_flipped_bit_in_a_snapshot_is_refused_and_the_log_rescanned() {
    flip_run(0, true);
    for_each_seed("producer_state_snapshot_crash", 40, |seed| {
        flip_run(seed, false)
    });
}

/// Flips a bit inside the last batch of the log's last durable flush: recovery after an
/// unclean stop cannot tell that from a torn tail and cuts the batch
/// (docs/storage-format.md, "Limitation").
fn damage_last_flush(disk: &CutDisk, segment: &std::path::Path, last_batch: &[u8], rng: &mut Rng) {
    let contents = disk.sim.durable_contents(segment).expect("durable segment");
    let position = contents
        .windows(last_batch.len())
        .rposition(|window| window == last_batch)
        .expect("the last batch is in the newest segment");
    // Past the 21 bytes the entry CRC covers, into the records (Kafka's CRC covers them).
    let byte = position + 21 + rng.usize(..last_batch.len() - 21);
    disk.sim.flip_bit(segment, byte as u64, rng.u8(..8));
}

fn past_end_run(seed: u64) {
    let context = format!("seed {seed}");
    let mut rng = Rng::with_seed(seed ^ 0x5eed);
    let disk = CutDisk::new(seed);
    let mut model = Model::default();
    let mut log = open(&disk, &context);
    let count = 5 + rng.usize(..20);

    append_some(&mut log, &mut rng, &mut model, count).expect("append");
    block_on(log.sync(NOW_MS)).expect("sync");
    // The last flush before the snapshot holds one batch of a fresh producer alone.
    let sequence = model.sequences[0];
    let mut builder = BatchBuilder::new(NOW_MS).producer(11, 0, sequence);
    builder.push(Some(b"key"), Some(&[7; 500]), NOW_MS, &[]);
    let last = builder.finish();
    let appended = block_on(log.append(BytesMut::from(&last[..]), NOW_MS)).expect("append");
    model.sequences[0] += 1;
    let identity = BatchIdentity::of(&BatchHeader::parse(&last).expect("parses")).expect("valid");
    model
        .appended
        .push((identity, appended.base_offset, appended.last_offset));
    let through = store_snapshot(&disk, &mut log, &model).expect("store");
    let mut stored_last = BytesMut::from(&last[..]);
    schema::batch::set_base_offset(&mut stored_last, appended.base_offset.0 as i64);

    let newest = log.segment_bases().last().copied().expect("a segment");
    drop(log);
    let segment = dir().join(format!("{:020}.log", newest.0));
    damage_last_flush(&disk, &segment, &stored_last, &mut rng);
    disk.sim.crash(MODES[rng.usize(..4)]);
    let mut log = open(&disk, &context);
    assert!(
        log.written_end() < through,
        "{context}: recovery kept the damaged flush (end {}, snapshot {through})",
        log.written_end()
    );
    let start = load(&disk, &log).unwrap_or_else(|error| panic!("{context}: load: {error}"));
    assert_eq!(
        start.refused,
        Some(Refusal::PastLogEnd {
            through,
            log_end: log.written_end()
        }),
        "{context}"
    );
    assert!(
        start.state == model.state_below(log.written_end()),
        "{context}"
    );

    // The log regrows past the refused snapshot's end, with other batches, durably; then the
    // power fails before anything else syncs the directory.
    model
        .appended
        .retain(|(_, base, _)| *base < log.written_end());
    model.sequences = [1_000, 1_000, 1_000];
    while log.written_end() <= through {
        append_some(&mut log, &mut rng, &mut model, 3).expect("append");
    }
    block_on(log.sync(NOW_MS)).expect("sync");
    drop(log);
    disk.sim.crash(CrashMode::DropAll);
    let log = open(&disk, &context);
    let start = load(&disk, &log).unwrap_or_else(|error| panic!("{context}: load: {error}"));
    assert_eq!(
        (start.refused, start.through),
        (None, log.log_start()),
        "{context}: the refused snapshot came back"
    );
    assert!(
        start.state == model.state_below(log.written_end()),
        "{context}"
    );
}

#[test]
fn a_snapshot_past_the_log_end_is_refused_and_never_trusted_after_the_log_regrows() {
    for_each_seed("producer_state_snapshot_crash", 40, past_end_run);
}

#[test]
fn no_snapshot_rebuilds_from_the_whole_log() {
    let (disk, log, model, _) = with_snapshot(7);
    block_on(disk.remove(&snapshot_path())).expect("remove");
    let start = load(&disk, &log).expect("load");
    assert_eq!((start.refused, start.through), (None, log.log_start()));
    assert!(start.state == model.state_below(log.written_end()));
}
