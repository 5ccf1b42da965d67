//! Helpers shared by the broker's simulated-crash tests: storage's power-cut disk and seed
//! handling (`storage::disk::crash_test`) under the broker's names, a small log configuration,
//! and the harness of the snapshot crash tests (a partition log and a snapshot of state
//! rebuilt from it, written, cut at any point, crashed and recovered).
#![allow(dead_code)]

use std::ops::Range;
use std::panic::RefUnwindSafe;
use std::path::{Path, PathBuf};

use storage::disk::crash_test::Seeds;
use storage::disk::sim::{CrashMode, block_on};
use storage::{FlushPolicy, Log, LogConfig, Offset};

pub use storage::disk::crash_test::CutDisk;

/// The one PRNG, seeded: a test replays from its seed alone.
pub use fastrand::Rng;

/// True with the given probability in percent.
pub fn chance(rng: &mut Rng, percent: u64) -> bool {
    rng.u64(..100) < percent
}

/// Runs `run_seed` over the seeds of storage's `for_each_seed` (`RINGBUS_SIM_SEED` replays
/// one, `RINGBUS_SIM_SEEDS` sets how many run, default `default_seeds`); a failing seed is
/// printed with `cargo test -p broker --test <test>`, which replays it.
pub fn for_each_seed(test: &str, default_seeds: u64, run_seed: impl Fn(u64) + RefUnwindSafe) {
    let command = format!("cargo test -p broker --test {test}");
    storage::disk::crash_test::for_each_seed(&Seeds::sim(default_seeds, &command), run_seed);
}

/// A log configuration with small segments, so that rolls and `delete_before` happen within a
/// few dozen batches.
pub fn small_log_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 16 << 10,
        segment_age_ms_max: None,
        retention_ms: None,
        retention_bytes: None,
        index_interval_bytes: 1024,
        write_chunk_bytes: 8192,
        write_ahead_chunks: 2,
        preallocate_bytes: 16 << 10,
        cache_bytes_max: 0,
        batch_bytes_max: 1 << 20,
        flush_policy: FlushPolicy::EveryBatch,
    }
}

/// Every way a power loss may treat unsynced writes.
pub const CRASH_MODES: [CrashMode; 4] = [
    CrashMode::DropAll,
    CrashMode::KeepAll,
    CrashMode::Random,
    CrashMode::Torn,
];

/// The wall clock of the snapshot tests: nothing they check may depend on when a batch was
/// written, snapshotted or replayed.
pub const NOW_MS: i64 = 1_700_000_000_000;

/// Bytes of a stored snapshot blob outside its payload that its CRC covers: the 16-byte
/// metadata prefix and the 4-byte CRC (docs/storage-format.md); the rest of the block is zero
/// padding.
pub const SNAPSHOT_FRAME_BYTES: u64 = 16 + 4;

/// Opens (recovers) the partition log in `dir`, panicking with `context` if it cannot.
pub fn open_log(disk: &CutDisk, dir: &Path, context: &str) -> Log<CutDisk> {
    match block_on(Log::open(disk.clone(), dir, small_log_config(), NOW_MS)) {
        Ok((log, _)) => log,
        Err(error) => panic!("{context}: open: {error}"),
    }
}

/// A partition whose state is rebuilt from a snapshot plus the log after it: what a snapshot
/// crash test writes, and how the partition's owner stores the snapshot.
pub trait SnapshotCase {
    /// What the test knows it wrote.
    type Model: Default;

    /// The partition's directory.
    fn dir(&self) -> PathBuf;

    /// Writes `count` requests' worth of batches to the log as the owner does; stops at the
    /// first failure (a power cut).
    fn write(
        &self,
        log: &mut Log<CutDisk>,
        rng: &mut Rng,
        model: &mut Self::Model,
        count: usize,
    ) -> Result<(), String>;

    /// Stores a snapshot as the owner does. Returns the offset it covers through.
    fn store_snapshot(
        &self,
        disk: &CutDisk,
        log: &mut Log<CutDisk>,
        model: &Self::Model,
    ) -> Result<Offset, String>;
}

/// A fresh simulated disk drawing its faults from `seed`, an empty partition log of `case`
/// opened on it (panicking with `context` if it cannot be), and an empty model.
pub fn fresh_partition<C: SnapshotCase>(
    case: &C,
    seed: u64,
    context: &str,
) -> (CutDisk, Log<CutDisk>, C::Model) {
    let disk = CutDisk::new(seed);
    let log = open_log(&disk, &case.dir(), context);
    (disk, log, C::Model::default())
}

/// How many requests ([`SnapshotCase::write`]'s `count`) each phase of a [`crash_run`] makes.
pub struct Phases {
    /// Before the first snapshot.
    pub before_first: Range<usize>,
    /// Between the first snapshot and the power cut.
    pub before_cut: Range<usize>,
    /// After the second snapshot, with the power cut pending.
    pub after_second: Range<usize>,
}

/// What a [`crash_run`] left: the recovered partition and what happened before the crash.
pub struct CrashRun<M> {
    /// `seed <seed> cut <cut> <mode>`, for assertion messages.
    pub context: String,
    /// The disk, powered back on after the crash.
    pub disk: CutDisk,
    /// The log as recovered after the crash.
    pub log: Log<CutDisk>,
    /// What the test wrote, including what the crash may have lost.
    pub model: M,
    /// What the first snapshot (stored with the power on) covers through.
    pub first: Offset,
    /// The second snapshot (stored while the power cut was pending), or why it failed.
    pub second: Result<Offset, String>,
    /// The log's durable end before the crash: what its owner acknowledged.
    pub acknowledged: Offset,
    /// Mutating disk operations from the cut's start to the crash (to size a sweep).
    pub phase_ops: u64,
}

/// One run of a power-cut sweep: writes, a first snapshot, more writes, then (with the power
/// cut after `cut` more mutating operations, if given) a second snapshot and, if that was
/// stored, more writes; crash in `mode`, power back on, recover the log. Asserts the log kept
/// what was acknowledged; the caller loads the state and checks the rest.
pub fn crash_run<C: SnapshotCase>(
    case: &C,
    phases: &Phases,
    seed: u64,
    cut: Option<u64>,
    mode: CrashMode,
) -> CrashRun<C::Model> {
    let context = format!("seed {seed} cut {cut:?} {mode:?}");
    let mut rng = Rng::with_seed(seed);
    let (disk, mut log, mut model) = fresh_partition(case, seed, &context);
    let count = rng.usize(phases.before_first.clone());
    case.write(&mut log, &mut rng, &mut model, count)
        .expect("power on");
    let first = case
        .store_snapshot(&disk, &mut log, &model)
        .expect("power on");
    let count = rng.usize(phases.before_cut.clone());
    case.write(&mut log, &mut rng, &mut model, count)
        .expect("power on");

    let before = disk.power.done();
    if let Some(cut) = cut {
        disk.power.cut_after(cut);
    }
    let second = case.store_snapshot(&disk, &mut log, &model);
    if second.is_ok() {
        // Fails where the power is cut; what was acknowledged is the log's durable end.
        let count = rng.usize(phases.after_second.clone());
        let _ = case.write(&mut log, &mut rng, &mut model, count);
    }
    let phase_ops = disk.power.done() - before;
    let acknowledged = log.durable_end();

    drop(log);
    disk.power.restore();
    disk.sim.crash(mode);
    let log = open_log(&disk, &case.dir(), &context);
    assert!(
        log.written_end() >= acknowledged,
        "{context}: the log lost acknowledged batches (end {}, acknowledged {acknowledged})",
        log.written_end()
    );
    CrashRun {
        context,
        disk,
        log,
        model,
        first,
        second,
        acknowledged,
        phase_ops,
    }
}

/// The power-cut sweep: per seed, one run without a cut counts the operations of the cut
/// phase, then `run` cuts the power after each of them in turn, in every crash mode. `run`
/// takes the seed, the cut and the mode, and returns the cut phase's operations.
pub fn sweep_power_cuts(
    test: &str,
    default_seeds: u64,
    run: impl Fn(u64, Option<u64>, CrashMode) -> u64 + RefUnwindSafe,
) {
    for_each_seed(test, default_seeds, |seed| {
        let ops = run(seed, None, CrashMode::KeepAll);
        for cut in 0..=ops {
            for mode in CRASH_MODES {
                run(seed, Some(cut), mode);
            }
        }
    });
}

/// A partition with `before` requests, a snapshot through its end, and `after` more requests
/// (drawn from the seed's generator), all with the power on. Returns the disk, the log, the
/// model and what the snapshot covers through.
pub fn with_snapshot<C: SnapshotCase>(
    case: &C,
    seed: u64,
    before: Range<usize>,
    after: Range<usize>,
) -> (CutDisk, Log<CutDisk>, C::Model, Offset) {
    let mut rng = Rng::with_seed(seed);
    let (disk, mut log, mut model) = fresh_partition(case, seed, &format!("seed {seed}"));
    let count = rng.usize(before);
    case.write(&mut log, &mut rng, &mut model, count)
        .expect("write");
    let through = case
        .store_snapshot(&disk, &mut log, &model)
        .expect("snapshot");
    let count = rng.usize(after);
    case.write(&mut log, &mut rng, &mut model, count)
        .expect("write");
    (disk, log, model, through)
}

/// The bits (byte, bit) to flip, one at a time, in a stored snapshot of `stored_bytes` whose
/// first `covered` bytes its CRC covers: every covered bit, or a sample of 48 drawn from the
/// seed with one in eight in the padding after them.
pub fn bits_to_flip(seed: u64, every_bit: bool, covered: u64, stored_bytes: u64) -> Vec<(u64, u8)> {
    if every_bit {
        return (0..covered)
            .flat_map(|byte| (0..8).map(move |bit| (byte, bit)))
            .collect();
    }
    let mut rng = Rng::with_seed(seed);
    (0..48)
        .map(|index| {
            let byte = if index % 8 == 0 {
                rng.u64(covered..stored_bytes)
            } else {
                rng.u64(..covered)
            };
            (byte, rng.u8(..8))
        })
        .collect()
}

/// Flips a bit inside `last_batch` (as stored) in the durable image of `segment`, where it is
/// the log's last durable flush: recovery after an unclean stop cannot tell that from a torn
/// tail and cuts the batch (docs/storage-format.md, "Limitation").
pub fn damage_last_flush(disk: &CutDisk, segment: &Path, last_batch: &[u8], rng: &mut Rng) {
    let contents = disk.sim.durable_contents(segment).expect("durable segment");
    let position = contents
        .windows(last_batch.len())
        .rposition(|window| window == last_batch)
        .expect("the last batch is in the newest segment");
    // Past the 21 bytes the entry CRC covers, into the records (Kafka's CRC covers them).
    let byte = position + 21 + rng.usize(..last_batch.len() - 21);
    disk.sim.flip_bit(segment, byte as u64, rng.u8(..8));
}
