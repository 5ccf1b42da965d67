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
use common::{CutDisk, Rng, for_each_seed, small_log_config};
use storage::disk::Disk;
use storage::disk::sim::{CrashMode, block_on};
use storage::{Log, Offset, ReadError};

const NOW_MS: i64 = 1_700_000_000_000;
const MODES: [CrashMode; 4] = [
    CrashMode::DropAll,
    CrashMode::KeepAll,
    CrashMode::Random,
    CrashMode::Torn,
];
/// Bytes of the snapshot blob outside its payload that its CRC covers (16-byte prefix, CRC).
const FRAME_BYTES: u64 = 16 + 4;

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

fn commit_some<D: Disk>(
    log: &mut Log<D>,
    rng: &mut Rng,
    model: &mut Model,
    count: usize,
) -> Result<(), String> {
    (0..count).try_for_each(|_| commit(log, rng, model))
}

/// The coordinator's snapshot: the table through the log end, then the segments below it
/// deleted. Returns what it covers through.
fn snapshot_and_delete(
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

fn open(disk: &CutDisk, context: &str) -> Log<CutDisk> {
    match block_on(Log::open(disk.clone(), &dir(), small_log_config(), NOW_MS)) {
        Ok((log, _)) => log,
        Err(error) => panic!("{context}: open: {error}"),
    }
}

/// One run of the crash sweep (see the module doc). Returns the operations of the cut phase.
fn crash_run(seed: u64, cut: Option<u64>, mode: CrashMode) -> u64 {
    let context = format!("seed {seed} cut {cut:?} {mode:?}");
    let mut rng = Rng::with_seed(seed);
    let disk = CutDisk::new(seed);
    let mut model = Model::default();
    let mut log = open(&disk, &context);
    let count = 8 + rng.usize(..10);
    commit_some(&mut log, &mut rng, &mut model, count).expect("power on");
    let first = snapshot_and_delete(&disk, &mut log, &model).expect("power on");
    let count = 3 + rng.usize(..8);
    commit_some(&mut log, &mut rng, &mut model, count).expect("power on");

    let before = disk.power.done();
    if let Some(cut) = cut {
        disk.power.cut_after(cut);
    }
    let second = snapshot_and_delete(&disk, &mut log, &model);
    if second.is_ok() {
        let count = 1 + rng.usize(..4);
        let _ = commit_some(&mut log, &mut rng, &mut model, count);
    }
    let phase_ops = disk.power.done() - before;
    let acknowledged = log.durable_end();

    drop(log);
    disk.power.restore();
    disk.sim.crash(mode);
    let log = open(&disk, &context);
    assert!(
        log.written_end() >= acknowledged,
        "{context}: the log lost acknowledged commits"
    );
    let start = load(&disk, &log).unwrap_or_else(|error| panic!("{context}: load: {error}"));
    let candidates = [
        Some(first),
        second.as_ref().ok().copied(),
        Some(acknowledged),
    ];
    assert!(
        candidates.contains(&Some(start.through)),
        "{context}: trusted a snapshot through {} (stored {first}, then {second:?})",
        start.through
    );
    if let Ok(second) = second {
        assert_eq!(start.through, second, "{context}: the stored snapshot");
    }
    assert!(
        start.state == model.table_below(log.written_end()),
        "{context}: the loaded table differs from the acknowledged commits"
    );
    phase_ops
}

#[test]
fn a_crash_at_any_point_of_snapshot_and_deletion_loads_every_acknowledged_commit() {
    for_each_seed("offsets_snapshot_crash", 12, |seed| {
        let ops = crash_run(seed, None, CrashMode::KeepAll);
        for cut in 0..=ops {
            for mode in MODES {
                crash_run(seed, Some(cut), mode);
            }
        }
    });
}

/// A partition with commits, a snapshot (segments below it deleted) and commits after it.
fn with_snapshot(seed: u64) -> (CutDisk, Log<CutDisk>, Model, Offset) {
    let mut rng = Rng::with_seed(seed);
    let disk = CutDisk::new(seed);
    let mut model = Model::default();
    let mut log = open(&disk, &format!("seed {seed}"));
    let count = 10 + rng.usize(..20);
    commit_some(&mut log, &mut rng, &mut model, count).expect("commit");
    let through = snapshot_and_delete(&disk, &mut log, &model).expect("snapshot");
    let count = rng.usize(..6);
    commit_some(&mut log, &mut rng, &mut model, count).expect("commit");
    assert!(
        log.log_start() > Offset(0),
        "seed {seed}: segments were deleted"
    );
    (disk, log, model, through)
}

fn flip_run(seed: u64, every_bit: bool) {
    let (disk, log, model, through) = with_snapshot(seed);
    let path = snapshot_path();
    let stored = disk.sim.durable_contents(&path).expect("stored");
    let covered = FRAME_BYTES + model.table_below(through).encode(through.0).len() as u64;
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
    let (disk, log, model, through) = with_snapshot(3);
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
    let disk = CutDisk::new(seed);
    let mut model = Model::default();
    let mut log = open(&disk, &context);
    let count = 4 + rng.usize(..12);
    commit_some(&mut log, &mut rng, &mut model, count).expect("commit");
    let through = snapshot_and_delete(&disk, &mut log, &model).expect("snapshot");
    // The last commit's batch, as stored, was the last durable flush.
    let last_offset = model.commits.last().expect("a commit").0;
    let read = block_on(log.read(last_offset, 1 << 20)).expect("read");
    let last_batch = read.batches.last().expect("the last batch").clone();
    let newest = log.segment_bases().last().copied().expect("a segment");
    drop(log);

    let segment = dir().join(format!("{:020}.log", newest.0));
    let contents = disk
        .sim
        .durable_contents(&segment)
        .expect("durable segment");
    let position = contents
        .windows(last_batch.len())
        .rposition(|window| window == &last_batch[..])
        .expect("the last batch is in the newest segment");
    // Past the 21 bytes the entry CRC covers, into the records (Kafka's CRC covers them).
    let byte = position + 21 + rng.usize(..last_batch.len() - 21);
    disk.sim.flip_bit(&segment, byte as u64, rng.u8(..8));
    disk.sim.crash(MODES[rng.usize(..4)]);

    let log = open(&disk, &context);
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
