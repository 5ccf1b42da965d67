//! Helpers shared by the broker's simulated-crash tests: a disk wrapper that cuts the power
//! after a chosen number of operations, seed handling, and a small log configuration.
#![allow(dead_code)]

use std::cell::Cell;
use std::io;
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use storage::disk::sim::{SimDisk, SimFile};
use storage::disk::{Disk, File, OpenMode};
use storage::{FlushPolicy, LogConfig};

/// The one PRNG, seeded: a test replays from its seed alone.
pub use fastrand::Rng;

/// True with the given probability in percent.
pub fn chance(rng: &mut Rng, percent: u64) -> bool {
    rng.u64(..100) < percent
}

/// Counts the mutating operations on a [`CutDisk`] and where the power goes.
#[derive(Clone, Default)]
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
    /// that fails, as if the process had died there.
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

/// A [`SimDisk`] whose operations fail once its [`PowerCut`] fires (storage's power_cut.rs
/// does the same). Reads count towards nothing; every write, sync, create, remove, rename and
/// size change counts one.
#[derive(Clone)]
pub struct CutDisk {
    /// The simulated disk underneath (crash it after the cut).
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

    async fn close(self) -> io::Result<()> {
        self.power.tick(false)?;
        self.inner.close().await
    }
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

/// Runs `run_seed` for the seed in `RINGBUS_SIM_SEED` if set (a replay), else for
/// `RINGBUS_SIM_SEEDS` seeds (default `default_seeds`): half fixed (every run covers them),
/// half new each run. A failing seed is printed with the command that replays it.
pub fn for_each_seed(
    test: &str,
    default_seeds: u64,
    run_seed: impl Fn(u64) + std::panic::RefUnwindSafe,
) {
    if let Ok(seed) = std::env::var("RINGBUS_SIM_SEED") {
        let seed: u64 = seed.parse().expect("RINGBUS_SIM_SEED is a number");
        eprintln!("replaying seed {seed}");
        run_seed(seed);
        return;
    }
    let seeds: u64 = std::env::var("RINGBUS_SIM_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default_seeds);
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    for i in 0..seeds {
        let seed = if i % 2 == 0 {
            i
        } else {
            base.wrapping_mul(1_000_003).wrapping_add(i)
        };
        if std::panic::catch_unwind(|| run_seed(seed)).is_err() {
            panic!(
                "seed {seed} failed; replay with RINGBUS_SIM_SEED={seed} cargo test -p broker --test {test}"
            );
        }
    }
}
