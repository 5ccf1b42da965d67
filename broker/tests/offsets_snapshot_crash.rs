//! Goal: after any crash, a committed-offsets table loads as exactly the commits its partition
//! acknowledged (and any unacknowledged ones the recovered log holds), or refuses to load; it
//! never trusts a damaged snapshot, one reaching past the log end, or a log whose deleted
//! segments no snapshot covers.
//!
//! Method: a `__consumer_offsets` partition log and its `offsets-snapshot` on the simulated
//! disk, written as the coordinator writes them (each commit a batch appended and synced;
//! every so often a snapshot through the log end, then `Log::delete_before` it), and loaded as
//! the coordinator loads them (`snapshot::load` with `OnRefusal::Fail`, then `snapshot::replay`
//! with `OffsetTable::replay_batch`). The expected table applies every commit the test made
//! whose record the recovered log still holds.
//! - Crash at every point: power is cut after each mutating disk operation in turn while a
//!   snapshot is stored, the segments below it deleted and more commits made, in each crash
//!   mode: the load must succeed (every such crash leaves a loadable partition) and match.
//! - Bit flips in the snapshot: refused (the file kept for an operator), padding ignored.
//! - Past the log end, and deleted segments without a snapshot: refused.
//! - Two generations: a power cut at every point of a store that replaces the newest snapshot
//!   loads the replaced one or the new one, durably.
//!
//! A failure prints the seed; replay it with
//! `RINGBUS_SIM_SEED=<seed> cargo test -p broker --test offsets_snapshot_crash`;
//! `RINGBUS_SIM_SEEDS=<n>` changes how many seeds run.

mod common;

use std::path::PathBuf;

use broker::group::offsets::{
    Committed, OffsetKey, OffsetTable, OffsetsFormatError, SNAPSHOT_FILE, commit_batch,
};
use broker::snapshot::{self, LoadError, LogExtent, OnRefusal, Refusal, Start};
use bytes::BytesMut;
use common::{
    CRASH_MODES, CutDisk, NOW_MS, Phases, Rng, SNAPSHOT_FRAME_BYTES, SnapshotCase, bits_to_flip,
    crash_run, damage_last_flush, for_each_seed, fresh_partition, open_log, sweep_power_cuts,
    with_snapshot,
};
use storage::disk::Disk;
use storage::disk::sim::{CrashMode, block_on};
use storage::{Log, Offset, ReadError};

fn dir() -> PathBuf {
    PathBuf::from("/data/__consumer_offsets-0")
}

fn snapshot_path() -> PathBuf {
    dir().join(SNAPSHOT_FILE)
}

/// Every commit the test made, with its record's offset.
#[derive(Default)]
struct Model {
    commits: Vec<(Offset, OffsetKey, Committed)>,
    next_committed: u64,
}

impl Model {
    fn table_below(&self, end: Offset) -> OffsetTable {
        let mut table = OffsetTable::default();
        for (offset, key, committed) in &self.commits {
            if *offset < end {
                table.apply(key.clone(), *committed);
            }
        }
        table
    }
}

/// One commit request: 1 to 3 offsets in one batch, appended and synced (acks durable).
fn commit<D: Disk>(log: &mut Log<D>, rng: &mut Rng, model: &mut Model) -> Result<(), String> {
    let commits: Vec<(OffsetKey, Committed)> = (0..1 + rng.usize(..3))
        .map(|_| {
            model.next_committed += 1 + rng.u64(..100);
            let key = OffsetKey {
                group: format!("group-{}", rng.u8(..4)),
                topic: format!("topic-{}", rng.u8(..2)),
                partition: rng.u32(..4),
            };
            let committed = Committed {
                offset: model.next_committed,
                timestamp_ms: NOW_MS,
            };
            (key, committed)
        })
        .collect();
    let batch = commit_batch(&commits, NOW_MS);
    let appended = block_on(log.append(BytesMut::from(&batch[..]), NOW_MS))
        .map_err(|error| format!("append: {error}"))?;
    for (index, (key, committed)) in commits.into_iter().enumerate() {
        model.commits.push((
            Offset(appended.base_offset.0 + index as u64),
            key,
            committed,
        ));
    }
    block_on(log.sync(NOW_MS)).map_err(|error| format!("sync: {error}"))?;
    Ok(())
}

/// The committed-offsets partition, written and snapshotted as the coordinator does.
struct Offsets;

impl SnapshotCase for Offsets {
    type Model = Model;

    fn dir(&self) -> PathBuf {
        dir()
    }

    /// `count` commit requests.
    fn write(
        &self,
        log: &mut Log<CutDisk>,
        rng: &mut Rng,
        model: &mut Model,
        count: usize,
    ) -> Result<(), String> {
        (0..count).try_for_each(|_| commit(log, rng, model))
    }

    /// The coordinator's snapshot: the table through the log end, then the segments below it
    /// deleted.
    fn store_snapshot(
        &self,
        disk: &CutDisk,
        log: &mut Log<CutDisk>,
        model: &Model,
    ) -> Result<Offset, String> {
        let through = log.durable_end();
        assert_eq!(through, log.appended_end(), "every commit is synced");
        let bytes = model.table_below(through).encode(through.0);
        block_on(storage::store_blob(disk, &dir(), SNAPSHOT_FILE, &bytes))
            .map_err(|error| format!("store: {error}"))?;
        block_on(log.delete_before(through, NOW_MS)).map_err(|error| format!("delete: {error}"))?;
        Ok(through)
    }
}

/// Why the test's load failed: the snapshot rule, or a record that does not decode.
#[derive(Debug)]
enum Failed {
    Load(LoadError),
    Record(OffsetsFormatError),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Load(error) => write!(f, "{error}"),
            Failed::Record(error) => write!(f, "{error}"),
        }
    }
}

impl From<ReadError> for Failed {
    fn from(error: ReadError) -> Failed {
        Failed::Load(LoadError::Read(error))
    }
}

/// The coordinator's load path: which snapshot to trust, then the records after it.
fn load<D: Disk>(disk: &D, log: &Log<D>) -> Result<Start<OffsetTable>, Failed> {
    let start = block_on(snapshot::load(
        disk,
        &snapshot_path(),
        LogExtent::of(log),
        OnRefusal::Fail,
        |bytes| OffsetTable::decode(bytes).map(|(through, table)| (Offset(through), table)),
    ))
    .map_err(Failed::Load)?;
    let from = start.replay_from;
    let mut table = start.state;
    block_on(snapshot::replay(
        log,
        from,
        log.written_end(),
        1 << 20,
        |batch| {
            table.replay_batch(batch, from.0).map_err(Failed::Record)?;
            Ok::<(), Failed>(())
        },
    ))?;
    Ok(Start {
        state: table,
        ..start
    })
}

fn refusal(result: Result<Start<OffsetTable>, Failed>, context: &str) -> Refusal {
    match result {
        Err(Failed::Load(LoadError::Refused { refusal, .. })) => refusal,
        Err(other) => panic!("{context}: expected a refusal, got {other}"),
        Ok(start) => panic!(
            "{context}: expected a refusal, the snapshot through {} was trusted",
            start.through
        ),
    }
}

/// One run of the crash sweep (see the module doc): the shared run, then the coordinator's
/// load. Returns the operations of the cut phase.
fn crash_sweep_run(seed: u64, cut: Option<u64>, mode: CrashMode) -> u64 {
    let phases = Phases {
        before_first: 8..18,
        before_cut: 3..11,
        after_second: 1..5,
    };
    let run = crash_run(&Offsets, &phases, seed, cut, mode);
    let context = &run.context;
    let start =
        load(&run.disk, &run.log).unwrap_or_else(|error| panic!("{context}: load: {error}"));
    let candidates = [
        Some(run.first),
        run.second.as_ref().ok().copied(),
        Some(run.acknowledged),
    ];
    assert!(
        candidates.contains(&Some(start.through)),
        "{context}: trusted a snapshot through {} (stored {}, then {:?})",
        start.through,
        run.first,
        run.second
    );
    if let Ok(second) = run.second {
        assert_eq!(start.through, second, "{context}: the stored snapshot");
    }
    assert!(
        start.state == run.model.table_below(run.log.written_end()),
        "{context}: the loaded table differs from the acknowledged commits"
    );
    run.phase_ops
}

#[test]
fn a_crash_at_any_point_of_snapshot_and_deletion_loads_every_acknowledged_commit() {
    sweep_power_cuts("offsets_snapshot_crash", 12, crash_sweep_run);
}

/// A partition with commits, a snapshot (segments below it deleted) and commits after it.
fn with_offsets_snapshot(seed: u64) -> (CutDisk, Log<CutDisk>, Model, Offset) {
    let (disk, log, model, through) = with_snapshot(&Offsets, seed, 10..30, 0..6);
    assert!(
        log.log_start() > Offset(0),
        "seed {seed}: segments were deleted"
    );
    (disk, log, model, through)
}

fn flip_run(seed: u64, every_bit: bool) {
    let (disk, log, model, through) = with_offsets_snapshot(seed);
    let path = snapshot_path();
    let stored = disk.sim.durable_contents(&path).expect("stored");
    let covered = SNAPSHOT_FRAME_BYTES + model.table_below(through).encode(through.0).len() as u64;
    let bits = bits_to_flip(seed, every_bit, covered, stored.len() as u64);
    let expected = model.table_below(log.written_end());
    for (byte, bit) in bits {
        let context = format!("seed {seed} byte {byte} bit {bit}");
        disk.sim.flip_bit(&path, byte, bit);
        let loaded = load(&disk, &log);
        if byte < covered {
            assert!(
                matches!(refusal(loaded, &context), Refusal::Damaged { .. }),
                "{context}"
            );
            assert!(
                disk.sim.durable_contents(&path).is_some(),
                "{context}: the only copy of the deleted commits was removed"
            );
        } else {
            // The zero padding after the CRC is not part of the snapshot.
            let start = loaded.unwrap_or_else(|error| panic!("{context}: {error}"));
            assert!(start.state == expected, "{context}");
        }
        disk.sim.flip_bit(&path, byte, bit);
    }
    let start = load(&disk, &log).expect("the restored snapshot loads");
    assert!(start.state == expected, "seed {seed}");
}

#[test]
fn a_flipped_bit_in_an_offsets_snapshot_refuses_the_load() {
    flip_run(0, true);
    for_each_seed("offsets_snapshot_crash", 40, |seed| flip_run(seed, false));
}

#[test]
fn deleted_segments_without_a_snapshot_covering_them_refuse_the_load() {
    let (disk, log, model, through) = with_offsets_snapshot(3);
    let context = "seed 3";
    // An older snapshot, from before the deletion.
    let older = Offset(log.log_start().0 - 1);
    block_on(storage::store_blob(
        &disk,
        &dir(),
        SNAPSHOT_FILE,
        &model.table_below(older).encode(older.0),
    ))
    .expect("store");
    assert_eq!(
        refusal(load(&disk, &log), context),
        Refusal::LogStartUncovered {
            through: Some(older),
            log_start: log.log_start()
        }
    );
    block_on(disk.remove(&snapshot_path())).expect("remove");
    assert_eq!(
        refusal(load(&disk, &log), context),
        Refusal::LogStartUncovered {
            through: None,
            log_start: log.log_start()
        }
    );
    assert!(through >= log.log_start());
}

fn past_end_run(seed: u64) {
    let context = format!("seed {seed}");
    let mut rng = Rng::with_seed(seed ^ 0x5eed);
    let (disk, mut log, mut model) = fresh_partition(&Offsets, seed, &context);
    let count = 4 + rng.usize(..12);
    Offsets
        .write(&mut log, &mut rng, &mut model, count)
        .expect("commit");
    let through = Offsets
        .store_snapshot(&disk, &mut log, &model)
        .expect("snapshot");
    // The last commit's batch, as stored, was the last durable flush.
    let last_offset = model.commits.last().expect("a commit").0;
    let read = block_on(log.read(last_offset, 1 << 20)).expect("read");
    let last_batch = read.batches.last().expect("the last batch").clone();
    let newest = log.segment_bases().last().copied().expect("a segment");
    drop(log);

    let segment = dir().join(format!("{:020}.log", newest.0));
    damage_last_flush(&disk, &segment, &last_batch, &mut rng);
    disk.sim.crash(CRASH_MODES[rng.usize(..4)]);

    let log = open_log(&disk, &dir(), &context);
    assert!(
        log.written_end() < through,
        "{context}: recovery kept the damaged flush"
    );
    assert_eq!(
        refusal(load(&disk, &log), &context),
        Refusal::PastLogEnd {
            through,
            log_end: log.written_end()
        },
        "{context}"
    );
    assert!(
        disk.sim.durable_contents(&snapshot_path()).is_some(),
        "{context}: kept"
    );
}

#[test]
fn an_offsets_snapshot_past_the_log_end_refuses_the_load() {
    for_each_seed("offsets_snapshot_crash", 40, past_end_run);
}

/// Two generations (`snapshot::store_keeping_previous`, `snapshot::load_newest_or_previous`):
/// the power is cut after each mutating operation of a store that replaces the newest snapshot
/// (the rename to `.previous`, then the new blob's write, sync, rename and directory sync), in
/// every crash mode. The load must trust the snapshot being replaced or the new one (the log is
/// deleted only below the one before them, so either rebuilds the table), never fail, and a
/// second load must agree with the first (its promotion of the previous is durable).
#[test]
fn a_crash_while_replacing_the_newest_of_two_generations_loads_the_replaced_or_the_new_one() {
    let encode = |through: u64| {
        let mut table = OffsetTable::default();
        let key = OffsetKey {
            group: "g".to_string(),
            topic: "t".to_string(),
            partition: 0,
        };
        let committed = Committed {
            offset: through,
            timestamp_ms: NOW_MS,
        };
        table.apply(key, committed);
        table.encode(through)
    };
    let decode =
        |bytes: &[u8]| OffsetTable::decode(bytes).map(|(through, table)| (Offset(through), table));
    // Deleted below the oldest generation (3) when the second (6) was stored.
    let extent = LogExtent {
        start: Offset(3),
        end: Offset(20),
    };
    let store = |disk: &CutDisk, through: u64| {
        block_on(snapshot::store_keeping_previous(
            disk,
            &dir(),
            SNAPSHOT_FILE,
            &encode(through),
        ))
    };
    let load_two = |disk: &CutDisk, context: &str| {
        block_on(snapshot::load_newest_or_previous(
            disk,
            &dir(),
            SNAPSHOT_FILE,
            extent,
            decode,
        ))
        .unwrap_or_else(|error| panic!("{context}: load: {error}"))
    };
    for mode in CRASH_MODES {
        for cut in 0.. {
            let context = format!("{mode:?}, power cut after {cut} operations");
            let disk = CutDisk::new(cut);
            for through in [3, 6] {
                store(&disk, through).expect("the first two generations");
            }
            disk.power.cut_after(cut);
            let stored = store(&disk, 9);
            disk.sim.crash(mode);
            disk.power.restore();
            let start = load_two(&disk, &context);
            match stored {
                Ok(()) => assert_eq!(start.through, Offset(9), "{context}: the stored one"),
                Err(_) => assert!(
                    [Offset(6), Offset(9)].contains(&start.through),
                    "{context}: trusted a snapshot through {}",
                    start.through
                ),
            }
            assert_eq!(
                start.state.get(&OffsetKey {
                    group: "g".to_string(),
                    topic: "t".to_string(),
                    partition: 0,
                }),
                Some(Committed {
                    offset: start.through.0,
                    timestamp_ms: NOW_MS
                }),
                "{context}"
            );
            disk.sim.crash(mode);
            assert_eq!(
                load_two(&disk, &context).through,
                start.through,
                "{context}: the second load"
            );
            if stored.is_ok() {
                // The cut fell after the whole store: every point has been tried (at least
                // the rename to `.previous` and the new blob's own operations).
                assert!(cut >= 2, "{context}: the store ran only {cut} operations");
                break;
            }
        }
    }
}
