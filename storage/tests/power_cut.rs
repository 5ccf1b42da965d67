//! Goal: crashes *inside* roll, retention, close and recovery keep the log's rules (crash_sim
//! only cuts power between calls).
//!
//! Method: a Disk wrapper counts mutating operations and fails every operation after the N-th
//! (the power is cut there), then the simulated disk crashes and the log is reopened and
//! checked against what was acknowledged durable. N sweeps every operation of a scripted run
//! with appends, syncs, rolls, retention and clean closes, under each crash mode.
mod common;

use common::Rng;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use schema::batch::BatchBuilder;
use storage::disk::sim::{CrashMode, SimDisk, SimFile, block_on};
use storage::disk::{Disk, File, OpenMode};
use storage::{FlushPolicy, Log, LogConfig, Offset};

#[derive(Clone)]
struct Ctl {
    ops: Rc<Cell<u64>>,
    cut: Rc<Cell<u64>>,
}
impl Ctl {
    fn tick(&self, mutating: bool) -> io::Result<()> {
        if self.ops.get() >= self.cut.get() {
            return Err(io::Error::other("power cut"));
        }
        if mutating {
            self.ops.set(self.ops.get() + 1);
        }
        Ok(())
    }
}
#[derive(Clone)]
struct CutDisk {
    inner: SimDisk,
    ctl: Ctl,
}
struct CutFile {
    inner: SimFile,
    ctl: Ctl,
}
impl Disk for CutDisk {
    type File = CutFile;
    async fn open(&self, path: &Path, mode: OpenMode) -> io::Result<CutFile> {
        self.ctl.tick(mode == OpenMode::CreateNew)?;
        Ok(CutFile {
            inner: self.inner.open(path, mode).await?,
            ctl: self.ctl.clone(),
        })
    }
    async fn remove(&self, path: &Path) -> io::Result<()> {
        self.ctl.tick(true)?;
        self.inner.remove(path).await
    }
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.ctl.tick(true)?;
        self.inner.rename(from, to).await
    }
    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.ctl.tick(true)?;
        self.inner.sync_dir(dir).await
    }
    async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.ctl.tick(true)?;
        self.inner.create_dir_all(dir).await
    }
    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.ctl.tick(false)?;
        self.inner.list_dir(dir).await
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
        self.ctl.tick(true)?;
        self.inner.write_at(buffer, position).await
    }
    async fn read_at(&self, position: u64, bytes: usize) -> io::Result<Bytes> {
        self.ctl.tick(false)?;
        self.inner.read_at(position, bytes).await
    }
    async fn sync(&self) -> io::Result<()> {
        self.ctl.tick(true)?;
        self.inner.sync().await
    }
    async fn size(&self) -> io::Result<u64> {
        self.ctl.tick(false)?;
        self.inner.size().await
    }
    async fn truncate(&self, bytes: u64) -> io::Result<()> {
        self.ctl.tick(true)?;
        self.inner.truncate(bytes).await
    }
    async fn allocate(&self, bytes: u64) -> io::Result<()> {
        self.ctl.tick(true)?;
        self.inner.allocate(bytes).await
    }
    fn path(&self) -> &Path {
        self.inner.path()
    }
    async fn close(self) -> io::Result<()> {
        self.ctl.tick(false)?;
        self.inner.close().await
    }
}

fn random_batch(rng: &mut Rng, now_ms: i64) -> BytesMut {
    let mut builder = BatchBuilder::new(now_ms);
    for i in 0..1 + rng.u64(..3) {
        let n = match rng.u64(..10) {
            0..=6 => rng.u64(..300),
            _ => rng.u64(..5000),
        } as usize;
        let value: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
        builder.push(Some(b"k"), Some(&value), now_ms + i as i64, &[]);
    }
    BytesMut::from(&builder.finish()[..])
}

fn read_all(log: &Log<CutDisk>) -> Vec<(u64, Bytes)> {
    let mut out = Vec::new();
    let mut next = log.log_start();
    while next < log.written_end() {
        let read = block_on(log.read(next, 64 << 10)).expect("read");
        assert!(!read.batches.is_empty());
        for b in read.batches {
            let h = schema::batch::verify(&b).expect("verifies");
            out.push((h.base_offset as u64, b));
        }
        next = read.next_offset;
    }
    out
}

fn run(seed: u64) {
    let mut rng = Rng::with_seed(seed);
    let sim = SimDisk::new(seed);
    let ctl = Ctl {
        ops: Rc::new(Cell::new(0)),
        cut: Rc::new(Cell::new(u64::MAX)),
    };
    let disk = CutDisk {
        inner: sim.clone(),
        ctl: ctl.clone(),
    };
    let dir = Path::new("/sim/p");
    let config = LogConfig {
        segment_bytes_max: [16 << 10, 64 << 10][rng.usize(..2)],
        segment_age_ms_max: Some(1_000),
        retention_ms: None,
        retention_bytes: if rng.u64(..2) == 0 {
            Some(40 << 10)
        } else {
            None
        },
        index_interval_bytes: 1024,
        write_chunk_bytes: [4096, 8192][rng.usize(..2)],
        write_ahead_chunks: 1 + rng.usize(..3),
        preallocate_bytes: 16 << 10,
        cache_bytes_max: [0, 1 << 20][rng.usize(..2)],
        batch_bytes_max: 1 << 20,
        flush_policy: FlushPolicy::EveryBatch,
    };
    let mut appended: BTreeMap<u64, Vec<Bytes>> = BTreeMap::new();
    let mut durable = 0u64;
    let mut start = 0u64;
    let mut now: i64 = 1_000_000;
    for cycle in 0..6 {
        // Maybe cut the power during this open (recovery) or during the work after it.
        ctl.ops.set(0);
        ctl.cut.set(if rng.u64(..4) == 0 {
            rng.u64(..12)
        } else {
            5 + rng.u64(..150)
        });
        let opened = block_on(Log::open(disk.clone(), dir, config.clone(), now));
        if std::env::var("TRACE").is_ok() {
            eprintln!(
                "cycle {cycle} cut {} open -> {:?} ops {}",
                ctl.cut.get(),
                opened
                    .as_ref()
                    .map(|(l, r)| (l.log_start(), l.written_end(), l.segment_bases(), r.clone()))
                    .map_err(|e| e.to_string()),
                ctl.ops.get()
            );
        }
        let mut log = match opened {
            Ok((log, _)) => Some(log),
            Err(e) if ctl.ops.get() >= ctl.cut.get() => {
                let _ = e;
                None
            }
            Err(e) => panic!("seed {seed} cycle {cycle}: open failed: {e}"),
        };
        if let Some(log) = &log
            && ctl.ops.get() < ctl.cut.get()
        {
            assert!(
                log.written_end().0 >= durable,
                "seed {seed} cycle {cycle}: lost durable: end {} < {durable}",
                log.written_end()
            );
            assert!(log.log_start().0 >= start, "seed {seed}: start moved back");
            for (o, b) in read_all(log) {
                let c = appended
                    .get(&o)
                    .unwrap_or_else(|| panic!("seed {seed}: never appended {o}"));
                if o < durable {
                    assert_eq!(
                        c.last(),
                        Some(&b),
                        "seed {seed} cycle {cycle}: durable batch {o} differs"
                    );
                } else {
                    assert!(c.contains(&b), "seed {seed}: foreign batch at {o}");
                }
            }
            durable = log.durable_end().0;
            start = log.log_start().0;
        }
        let mut closed = false;
        if let Some(l) = log.as_mut() {
            for _ in 0..(5 + rng.u64(..60)) {
                if ctl.ops.get() >= ctl.cut.get() {
                    break;
                }
                now += rng.i64(0..50);
                let op = rng.u64(..100);
                if std::env::var("TRACE").is_ok() {
                    eprintln!(
                        "  op {op} ops {} appended {} written {} durable {} segs {:?}",
                        ctl.ops.get(),
                        l.appended_end(),
                        l.written_end(),
                        l.durable_end(),
                        l.segment_bases()
                    );
                }
                match op {
                    0..=59 => {
                        let b = random_batch(&mut rng, now);
                        if let Ok(a) = block_on(l.append(b.clone(), now)) {
                            let mut s = b;
                            schema::batch::set_base_offset(&mut s, a.base_offset.0 as i64);
                            appended
                                .entry(a.base_offset.0)
                                .or_default()
                                .push(s.freeze());
                        }
                    }
                    60..=69 => {
                        let _ = block_on(l.flush());
                    }
                    70..=86 => {
                        if let Ok(d) = block_on(l.sync(now)) {
                            durable = d.0;
                        }
                    }
                    87..=94 => {
                        now += 2_000;
                        if let Ok(o) = block_on(l.enforce_retention(now)) {
                            start = o.log_start.0;
                        }
                    }
                    _ => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        if closed {
            let l = log.take().unwrap();
            let d = l.durable_end().0;
            // A successful close acknowledges everything appended.
            if block_on(l.close(now)).is_ok() {
                durable = durable.max(d);
                let _ = Offset(0);
            }
        }
        drop(log);
        let mode = match rng.u64(..4) {
            0 => CrashMode::DropAll,
            1 => CrashMode::KeepAll,
            2 => CrashMode::Random,
            _ => CrashMode::Torn,
        };
        if !(closed && rng.u64(..2) == 0) {
            if std::env::var("TRACE").is_ok() {
                eprintln!("crash {mode:?} closed {closed} ops {}", ctl.ops.get());
            }
            sim.crash(mode);
        }
        assert_eq!(sim.durable_rewrites(), 0, "seed {seed}: durable rewrite");
    }
}

#[test]
fn power_cut_inside_operations() {
    let n: u64 = std::env::var("SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let first: u64 = std::env::var("FIRST")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    for seed in first..first + n {
        if std::panic::catch_unwind(|| run(seed)).is_err() {
            panic!("failing seed {seed}");
        }
    }
}
