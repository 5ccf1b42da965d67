//! Crash testing for code that runs on the [`Disk`] seam, in storage's tests and in other
//! crates' (the broker's snapshot and producer-id tests): a power cut *inside* an operation,
//! and the one way randomised tests pick, print and replay their seeds.
//!
//! [`SimDisk::crash`] cuts the power between calls. [`CutDisk`] wraps a [`SimDisk`] and makes
//! every operation fail once a chosen number of mutating operations have run, as if the process
//! had died there; the test then crashes the simulated disk underneath and checks what the
//! code under test recovers. Sweeping the cut over every operation of a run reaches every
//! crash point inside a roll, a snapshot store or a recovery.
//!
//! [`for_each_seed`] runs a seeded test for one seed named in an environment variable (a
//! replay), or else for a number of seeds, half fixed (every run covers them) and half new
//! each run, and names the failing seed with the command that replays it (TigerBeetle's VOPR
//! does the same).
//!
//! The state is shard-local like the simulated disk's: `Rc` handles used on one thread.

use std::cell::Cell;
use std::io;
use std::panic::RefUnwindSafe;
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;

use super::sim::{SimDisk, SimFile};
use super::{Disk, File, OpenMode};

/// Counts the mutating operations on a [`CutDisk`] and says where the power goes. Cloning
/// gives another handle on the same counter.
///
/// Mutating operations are writes, syncs (of files and directories), file creations,
/// removals, renames and size changes. Reads, sizes, listings, opens of existing files and
/// closes count nothing, but fail like the rest once the power is cut.
#[derive(Clone, Debug, Default)]
pub struct PowerCut {
    done: Rc<Cell<u64>>,
    cut_at: Rc<Cell<Option<u64>>>,
}

impl PowerCut {
    /// Mutating operations so far.
    pub fn done(&self) -> u64 {
        self.done.get()
    }

    /// Cuts the power once `after` more mutating operations have run: every operation after
    /// that fails, as if the process had died there. `cut_after(0)` fails the next one.
    pub fn cut_after(&self, after: u64) {
        self.cut_at.set(Some(self.done.get() + after));
    }

    /// Powers back on (after the simulated disk crashed).
    pub fn restore(&self) {
        self.cut_at.set(None);
    }

    /// Whether the power is cut.
    pub fn is_cut(&self) -> bool {
        self.cut_at.get().is_some_and(|cut| self.done.get() >= cut)
    }

    /// Called before each operation: fails it if the power is cut, else counts it.
    fn tick(&self, mutating: bool) -> io::Result<()> {
        if self.is_cut() {
            return Err(io::Error::other("power cut"));
        }
        if mutating {
            self.done.set(self.done.get() + 1);
        }
        Ok(())
    }
}

/// A [`SimDisk`] whose operations fail once its [`PowerCut`] fires. Cloning gives another
/// handle on the same disk and counter.
///
/// Lifecycle: [`CutDisk::new`], run the code under test, [`PowerCut::cut_after`] somewhere,
/// drop what the code holds (no I/O in `Drop`), [`SimDisk::crash`] the disk underneath,
/// [`PowerCut::restore`], reopen and check.
#[derive(Clone)]
pub struct CutDisk {
    /// The simulated disk underneath: crash it, flip its bits, read its durable image.
    pub sim: SimDisk,
    /// The cut.
    pub power: PowerCut,
}

impl CutDisk {
    /// A fresh simulated disk drawing its faults from `seed`, with the power on.
    pub fn new(seed: u64) -> CutDisk {
        CutDisk {
            sim: SimDisk::new(seed),
            power: PowerCut::default(),
        }
    }
}

/// A file of a [`CutDisk`].
pub struct CutFile {
    inner: SimFile,
    power: PowerCut,
}

impl Disk for CutDisk {
    type File = CutFile;

    async fn open(&self, path: &Path, mode: OpenMode) -> io::Result<CutFile> {
        self.power.tick(mode == OpenMode::CreateNew)?;
        Ok(CutFile {
            inner: self.sim.open(path, mode).await?,
            power: self.power.clone(),
        })
    }

    async fn remove(&self, path: &Path) -> io::Result<()> {
        self.power.tick(true)?;
        self.sim.remove(path).await
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.power.tick(true)?;
        self.sim.rename(from, to).await
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.power.tick(true)?;
        self.sim.sync_dir(dir).await
    }

    async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.power.tick(true)?;
        self.sim.create_dir_all(dir).await
    }

    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.power.tick(false)?;
        self.sim.list_dir(dir).await
    }
}

impl File for CutFile {
    type Buffer = <SimFile as File>::Buffer;

    fn alloc_buffer(&self, bytes: usize) -> Self::Buffer {
        self.inner.alloc_buffer(bytes)
    }

    fn alloc_buffer_unfilled(&self, bytes: usize) -> Self::Buffer {
        self.inner.alloc_buffer_unfilled(bytes)
    }

    async fn write_at(&self, buffer: Self::Buffer, position: u64) -> io::Result<()> {
        self.power.tick(true)?;
        self.inner.write_at(buffer, position).await
    }

    async fn read_at(&self, position: u64, bytes: usize) -> io::Result<Bytes> {
        self.power.tick(false)?;
        self.inner.read_at(position, bytes).await
    }

    async fn sync(&self) -> io::Result<()> {
        self.power.tick(true)?;
        self.inner.sync().await
    }

    async fn size(&self) -> io::Result<u64> {
        self.power.tick(false)?;
        self.inner.size().await
    }

    async fn truncate(&self, bytes: u64) -> io::Result<()> {
        self.power.tick(true)?;
        self.inner.truncate(bytes).await
    }

    async fn allocate(&self, bytes: u64) -> io::Result<()> {
        self.power.tick(true)?;
        self.inner.allocate(bytes).await
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }

    fn duplicate(&self) -> io::Result<CutFile> {
        self.power.tick(false)?;
        Ok(CutFile {
            inner: self.inner.duplicate()?,
            power: self.power.clone(),
        })
    }

    async fn close(self) -> io::Result<()> {
        self.power.tick(false)?;
        self.inner.close().await
    }
}

/// Where a randomised test takes its seeds from, and how a failure says to replay one.
#[derive(Clone, Copy, Debug)]
pub struct Seeds<'a> {
    /// The environment variable naming one seed to run alone, e.g. `RINGBUS_SIM_SEED`.
    pub replay_var: &'a str,
    /// The environment variable setting how many seeds run, e.g. `RINGBUS_SIM_SEEDS`.
    pub count_var: &'a str,
    /// How many seeds run when `count_var` is not set.
    pub count_default: u64,
    /// Whether half the seeds are new each run (the rule). False runs seeds `0..count`, the
    /// same every run: only for a test with a known failure that new seeds would hit at random
    /// until it is fixed (say which, where it is set).
    pub fresh: bool,
    /// The command that runs the test, printed after `<replay_var>=<seed>` when a seed fails,
    /// e.g. `cargo test -p storage --test crash_sim`.
    pub command: &'a str,
}

impl<'a> Seeds<'a> {
    /// The variables the simulated-disk crash tests share: `RINGBUS_SIM_SEED` replays one
    /// seed, `RINGBUS_SIM_SEEDS` sets how many run (default `count_default`).
    pub fn sim(count_default: u64, command: &'a str) -> Seeds<'a> {
        Seeds {
            replay_var: "RINGBUS_SIM_SEED",
            count_var: "RINGBUS_SIM_SEEDS",
            count_default,
            fresh: true,
            command,
        }
    }
}

/// Runs `run_seed` for the seed in `seeds.replay_var` if it is set (a replay), else for
/// `seeds.count_var` seeds (default `seeds.count_default`): the even-numbered ones fixed, so
/// that every run covers them, the odd-numbered ones new each run (drawn from the clock;
/// unless `seeds.fresh` is false, and then they are fixed as well). The
/// first seed that panics is reported, with the command that replays it, in this panic's
/// message (its own panic message is printed above by the panic hook).
///
/// A worked example: with 4 seeds and the clock at second 1,000, the seeds are 0,
/// 1,000 × 1,000,003 + 1 = 1,000,003,001, then 2 and 1,000,003,003.
pub fn for_each_seed(seeds: &Seeds<'_>, run_seed: impl Fn(u64) + RefUnwindSafe) {
    if let Ok(seed) = std::env::var(seeds.replay_var) {
        let seed: u64 = seed
            .parse()
            .unwrap_or_else(|_| panic!("{} is a number, not {seed:?}", seeds.replay_var));
        eprintln!("replaying seed {seed}");
        run_seed(seed);
        return;
    }
    let count: u64 = std::env::var(seeds.count_var)
        .ok()
        .and_then(|count| count.parse().ok())
        .unwrap_or(seeds.count_default);
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0);
    for index in 0..count {
        let seed = if index % 2 == 0 || !seeds.fresh {
            index
        } else {
            base.wrapping_mul(1_000_003).wrapping_add(index)
        };
        if std::panic::catch_unwind(|| run_seed(seed)).is_err() {
            panic!(
                "seed {seed} failed; replay with {}={seed} {}",
                seeds.replay_var, seeds.command
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::sim::block_on;

    #[test]
    fn the_power_fails_every_operation_after_the_cut_and_counts_only_mutations() {
        let disk = CutDisk::new(1);
        let dir = Path::new("/d");
        block_on(disk.create_dir_all(dir)).expect("mkdir");
        let file = block_on(disk.open(&dir.join("f"), OpenMode::CreateNew)).expect("create");
        assert_eq!(disk.power.done(), 2);
        block_on(file.size()).expect("a read-only operation");
        assert_eq!(disk.power.done(), 2, "reads count nothing");

        disk.power.cut_after(1);
        assert!(!disk.power.is_cut());
        block_on(file.write_at(file.alloc_buffer(4096), 0)).expect("the last write");
        assert!(disk.power.is_cut());
        let cut = block_on(file.sync()).expect_err("cut");
        assert_eq!(cut.to_string(), "power cut");
        block_on(file.size()).expect_err("reads fail too");
        block_on(disk.list_dir(dir)).expect_err("listings fail too");
        assert_eq!(disk.power.done(), 3, "failed operations count nothing");

        disk.power.restore();
        block_on(file.sync()).expect("powered back on");
        assert_eq!(disk.power.done(), 4);
    }

    /// Variables no test sets, so the count comes from the default.
    fn unset(count_default: u64) -> Seeds<'static> {
        Seeds {
            replay_var: "RINGBUS_CRASH_TEST_UNSET_SEED",
            count_var: "RINGBUS_CRASH_TEST_UNSET_SEEDS",
            count_default,
            fresh: true,
            command: "cargo test -p storage --lib",
        }
    }

    #[test]
    fn half_the_seeds_are_fixed_and_a_failure_names_its_replay() {
        let ran = std::sync::Mutex::new(Vec::new());
        for_each_seed(&unset(5), |seed| ran.lock().expect("lock").push(seed));
        let ran = ran.into_inner().expect("lock");
        assert_eq!(ran.len(), 5);
        assert_eq!((ran[0], ran[2], ran[4]), (0, 2, 4));

        let ran = std::sync::Mutex::new(Vec::new());
        let fixed = Seeds {
            fresh: false,
            ..unset(5)
        };
        for_each_seed(&fixed, |seed| ran.lock().expect("lock").push(seed));
        assert_eq!(ran.into_inner().expect("lock"), [0, 1, 2, 3, 4]);

        let failed = std::panic::catch_unwind(|| {
            for_each_seed(&unset(5), |seed| assert_ne!(seed, 2, "seed 2 fails"))
        })
        .expect_err("seed 2 fails");
        let message = failed
            .downcast_ref::<String>()
            .expect("a formatted message");
        assert_eq!(
            message,
            "seed 2 failed; replay with RINGBUS_CRASH_TEST_UNSET_SEED=2 cargo test -p storage --lib"
        );
    }
}
