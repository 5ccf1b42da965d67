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
use common::{
    CRASH_MODES, CutDisk, NOW_MS, Phases, Rng, SNAPSHOT_FRAME_BYTES, SnapshotCase, bits_to_flip,
    chance, crash_run, damage_last_flush, for_each_seed, fresh_partition, open_log,
    sweep_power_cuts, with_snapshot,
};
use schema::batch::{BatchBuilder, BatchHeader};
use storage::disk::Disk;
use storage::disk::sim::{CrashMode, block_on};
use storage::{AppendError, Log, Offset};

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
    let appended = match block_on(log.append(BytesMut::from(&batch[..]), NOW_MS)) {
        Ok(appended) => appended,
        // Three or four large records can outgrow the test's 16 KiB segments: the log refuses
        // the batch whole and appends nothing, so the model records nothing either.
        Err(AppendError::BatchTooLarge { .. }) => return Ok(()),
        Err(error) => return Err(format!("append: {error}")),
    };
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

/// A partition's log and producer state, written and snapshotted as the partition actor does.
struct Producers;

impl SnapshotCase for Producers {
    type Model = Model;

    fn dir(&self) -> PathBuf {
        dir()
    }

    /// `count` batches, syncing after some.
    fn write(
        &self,
        log: &mut Log<CutDisk>,
        rng: &mut Rng,
        model: &mut Model,
        count: usize,
    ) -> Result<(), String> {
        append_some(log, rng, model, count)
    }

    /// Syncs the log, then stores the state as of its durable end.
    fn store_snapshot(
        &self,
        disk: &CutDisk,
        log: &mut Log<CutDisk>,
        model: &Model,
    ) -> Result<Offset, String> {
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

/// One run of the crash sweep: the shared run (a first snapshot, more batches, then with the
/// power cut after `cut` more operations, if given, a second snapshot and more batches; crash
/// in `mode`, recover), then the partition's load, checked. Returns the operations the cut
/// phase took (to size the sweep).
fn crash_sweep_run(seed: u64, cut: Option<u64>, mode: CrashMode) -> u64 {
    let phases = Phases {
        before_first: 10..30,
        before_cut: 5..25,
        after_second: 3..9,
    };
    let run = crash_run(&Producers, &phases, seed, cut, mode);
    let context = &run.context;
    let start =
        load(&run.disk, &run.log).unwrap_or_else(|error| panic!("{context}: load: {error}"));
    assert_eq!(
        start.refused, None,
        "{context}: a crash alone got a snapshot refused"
    );
    match run.second {
        Ok(second) => assert_eq!(start.through, second, "{context}: the stored snapshot"),
        Err(_) => assert!(
            start.through == run.first || start.through == run.acknowledged,
            "{context}: trusted a snapshot through {} (stored: {}, in flight: {})",
            start.through,
            run.first,
            run.acknowledged
        ),
    }
    assert!(
        start.state == run.model.state_below(run.log.written_end()),
        "{context}: the rebuilt state differs from the recovered log's"
    );
    run.phase_ops
}

#[test]
fn a_crash_at_any_point_of_a_snapshot_store_keeps_the_old_or_the_new_snapshot() {
    sweep_power_cuts("producer_state_snapshot_crash", 16, crash_sweep_run);
}

/// A log with batches, a snapshot through its end, and (for the replay) synced batches after
/// it.
fn with_producers_snapshot(seed: u64) -> (CutDisk, Log<CutDisk>, Model, Offset) {
    let (disk, mut log, model, through) = with_snapshot(&Producers, seed, 10..40, 0..10);
    block_on(log.sync(NOW_MS)).expect("sync");
    (disk, log, model, through)
}

fn flip_run(seed: u64, every_bit: bool) {
    let (disk, log, model, through) = with_producers_snapshot(seed);
    let path = snapshot_path();
    let stored = disk.sim.durable_contents(&path).expect("stored");
    let covered = SNAPSHOT_FRAME_BYTES + model.state_below(through).encode(through).len() as u64;
    let bits = bits_to_flip(seed, every_bit, covered, stored.len() as u64);
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

fn past_end_run(seed: u64) {
    let context = format!("seed {seed}");
    let mut rng = Rng::with_seed(seed ^ 0x5eed);
    let (disk, mut log, mut model) = fresh_partition(&Producers, seed, &context);
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
    let through = Producers
        .store_snapshot(&disk, &mut log, &model)
        .expect("store");
    let mut stored_last = BytesMut::from(&last[..]);
    schema::batch::set_base_offset(&mut stored_last, appended.base_offset.0 as i64);

    let newest = log.segment_bases().last().copied().expect("a segment");
    drop(log);
    let segment = dir().join(format!("{:020}.log", newest.0));
    damage_last_flush(&disk, &segment, &stored_last, &mut rng);
    disk.sim.crash(CRASH_MODES[rng.usize(..4)]);
    let mut log = open_log(&disk, &dir(), &context);
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
    let log = open_log(&disk, &dir(), &context);
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
    let (disk, log, model, _) = with_producers_snapshot(7);
    block_on(disk.remove(&snapshot_path())).expect("remove");
    let start = load(&disk, &log).expect("load");
    assert_eq!((start.refused, start.through), (None, log.log_start()));
    assert!(start.state == model.state_below(log.written_end()));
}
