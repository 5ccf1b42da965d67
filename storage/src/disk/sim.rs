//! The simulated disk: an in-memory [`Disk`] that can lose power, tear sectors, flip bits,
//! fail `fdatasync` and run out of space, deterministically from a seed.
//!
//! Modelled on TigerBeetle's testing storage and FoundationDB's simulated disk. No io_uring,
//! no executor: every future completes on its first poll, so sim-backed code runs under
//! [`block_on`]. The state sits behind `Rc<RefCell<_>>` and lives on the one thread that
//! created it (`!Send` by design, like a shard's state).
//!
//! # The model
//!
//! A *file* (an inode) has:
//! - a **durable image**: what survives a power loss;
//! - the **unsynced operations** since the last `sync`, in order: writes and size changes;
//! - the **view**: what reads see, the durable image with the unsynced operations applied.
//!   It is kept separately because an injected `fdatasync` failure drops the unsynced
//!   operations without making them durable while the view still shows them, as the Linux page
//!   cache does after a failed fsync: "the read says yes, the disk says no".
//!
//! `sync` applies the unsynced operations to the durable image. Size changes are unsynced
//! metadata like writes: `truncate` sets the size, `allocate` extends it with zeros (and never
//! shrinks it, even where a crash dropped a truncation that came before it), and either becomes
//! durable at the next `sync` of the file (a real fdatasync persists the size when it is needed
//! to read the data; we persist it always, which is the simple reading). The space an
//! `allocate` reserves counts against the space limit until a truncate frees it, crash or not:
//! the conservative reading of a dropped extension (ext4 journals extents and size together).
//!
//! A *directory* has a durable listing, a current listing (what `list_dir` and `open` see) and
//! the pending entry operations since its last `sync_dir`, in order. An entry operation is
//! atomic within its directory (a rename inside one directory is one operation); a rename
//! between directories is an operation in each, durable when each is synced, as POSIX
//! requires. Directories themselves are only made by `create_dir_all`, which makes them
//! durable at once (as the trait promises); they are never removed.
//!
//! Open files refer to inodes, not names: a file renamed or removed while open stays usable,
//! as with a real file descriptor.
//!
//! # Faults
//!
//! - [`SimDisk::crash`] models a power loss. Unsynced writes survive per 512-byte sector
//!   ([`SECTOR_BYTES`]) according to the [`CrashMode`]; in the random modes each write also
//!   flips a coin for whether its size change reached the disk without its data (the file is
//!   then extended with zeros, as unwritten extents read). Unsynced size changes (truncations
//!   and extensions) are dropped (`DropAll`), kept (`KeepAll`) or each kept by a coin flip
//!   (random modes). Pending directory operations: `DropAll` drops them, `KeepAll` keeps them,
//!   and the random modes keep a random prefix per directory (journaling filesystems commit
//!   metadata in order).
//!   Every file handle opened before the crash fails every operation afterwards.
//! - [`SimDisk::flip_bit`] corrupts one durable bit.
//! - [`SimDisk::fail_next_sync`] makes a later `sync` fail and lose its unsynced writes.
//! - [`SimDisk::set_space_limit`] makes writes and allocations fail with `StorageFull`
//!   (ENOSPC) beyond a total size, without applying any part of them.
//!
//! # Counters
//!
//! [`SimDisk::durable_rewrites`] counts writes that changed bytes which a successful `sync`
//! had made durable (and that no `truncate` has cut off since): the log promises never to
//! rewrite an acknowledged byte. Bytes that survived a crash without a sync were never
//! acknowledged and are not counted. Rewrites with identical bytes are counted apart, in
//! [`SimDisk::durable_rewrites_identical`].

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use super::{Buffer, Disk, File, OpenMode, SECTOR_BYTES};

/// Runs a sim-backed future to completion. Only for code whose every await is on the
/// simulated disk: its futures never wait, so one poll must finish the future, and this
/// panics if it does not (a real wait, such as a channel or timer, cannot work here).
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut context) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!(
            "block_on: the future is waiting on something other than the simulated disk, \
             whose futures always complete at once"
        ),
    }
}

/// How a power loss treats each 512-byte sector of an unsynced write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced write (and size change, and directory operation) is lost.
    DropAll,
    /// Every completed write reached the disk.
    KeepAll,
    /// Each sector independently kept or lost.
    Random,
    /// Each sector independently kept, lost, or replaced with random bytes.
    Torn,
}

/// The simulated disk. Cloning gives another handle on the same disk.
#[derive(Clone)]
pub struct SimDisk {
    state: Rc<RefCell<State>>,
}

/// One open simulated file. Stale (every operation fails) after [`SimDisk::crash`].
pub struct SimFile {
    state: Rc<RefCell<State>>,
    inode: InodeId,
    generation: u64,
    path: PathBuf,
}

/// A zero-filled heap buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimBuffer(Vec<u8>);

impl AsRef<[u8]> for SimBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl AsMut<[u8]> for SimBuffer {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl Buffer for SimBuffer {
    fn truncate(&mut self, bytes: usize) {
        super::assert_truncate(self.0.len(), bytes);
        self.0.truncate(bytes);
    }
}

/// What an unfilled simulated buffer holds: not zeros, so that a caller writing a byte it did
/// not fill puts visible garbage on the simulated disk (recovery and the crash tests see it).
pub const UNFILLED_BYTE: u8 = 0xA5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct InodeId(u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File(InodeId),
    Directory,
}

/// One atomic change to one directory's listing.
#[derive(Debug, Clone)]
struct DirOp {
    remove: Option<String>,
    insert: Option<(String, Entry)>,
}

impl DirOp {
    fn apply(&self, listing: &mut BTreeMap<String, Entry>) {
        if let Some(name) = &self.remove {
            listing.remove(name);
        }
        if let Some((name, entry)) = &self.insert {
            listing.insert(name.clone(), *entry);
        }
    }
}

#[derive(Debug, Default)]
struct Directory {
    durable: BTreeMap<String, Entry>,
    current: BTreeMap<String, Entry>,
    pending: Vec<DirOp>,
}

#[derive(Debug)]
enum FileOp {
    Write {
        position: u64,
        bytes: Vec<u8>,
    },
    /// `truncate`: sets the size.
    SetSize(u64),
    /// `allocate`: raises the size to at least this, with zeros; never shrinks.
    Extend(u64),
}

impl FileOp {
    /// Applies a size change to an image. Writes are applied by the caller (sync and crash
    /// treat them differently).
    fn apply_size(&self, image: &mut Vec<u8>, synced_ranges: &mut Vec<Range<u64>>) {
        match *self {
            FileOp::SetSize(bytes) => {
                image.resize(to_index(bytes), 0);
                cut_ranges(synced_ranges, bytes);
            }
            FileOp::Extend(bytes) => {
                if image.len() < to_index(bytes) {
                    image.resize(to_index(bytes), 0);
                }
            }
            FileOp::Write { .. } => unreachable!("not a size change"),
        }
    }
}

#[derive(Debug, Default)]
struct Inode {
    durable: Vec<u8>,
    /// Byte ranges of `durable` that a successful `sync` wrote (the "acknowledged" bytes),
    /// sorted, disjoint and not adjacent.
    synced_ranges: Vec<Range<u64>>,
    unsynced: Vec<FileOp>,
    view: Vec<u8>,
    allocated_bytes: u64,
}

impl Inode {
    fn space_used(&self) -> u64 {
        (self.view.len() as u64).max(self.allocated_bytes)
    }
}

#[derive(Debug, Default)]
struct Counters {
    syncs: u64,
    syncs_failed: u64,
    reads: u64,
    bytes_read: u64,
    bytes_written: u64,
    allocations: u64,
    durable_rewrites: u64,
    durable_rewrites_identical: u64,
}

struct State {
    seed: u64,
    /// Every fault decision is drawn from this, in a fixed order, so a seed replays a run.
    random: fastrand::Rng,
    /// Bumped by every crash; handles from an older generation are stale.
    generation: u64,
    inode_next: u64,
    inodes: BTreeMap<InodeId, Inode>,
    directories: BTreeMap<PathBuf, Directory>,
    /// Injected sync failures still to fire: `None` matches any file.
    sync_failures: Vec<Option<PathBuf>>,
    space_limit_bytes: Option<u64>,
    counters: Counters,
}

impl SimDisk {
    /// An empty disk whose faults are drawn from `seed`. The roots `/` and `` (for relative
    /// paths) exist; other directories are made with [`Disk::create_dir_all`].
    pub fn new(seed: u64) -> SimDisk {
        let mut directories = BTreeMap::new();
        directories.insert(PathBuf::from("/"), Directory::default());
        directories.insert(PathBuf::new(), Directory::default());
        SimDisk {
            state: Rc::new(RefCell::new(State {
                seed,
                random: fastrand::Rng::with_seed(seed),
                generation: 0,
                inode_next: 0,
                inodes: BTreeMap::new(),
                directories,
                sync_failures: Vec::new(),
                space_limit_bytes: None,
                counters: Counters::default(),
            })),
        }
    }

    /// The seed this disk was made with.
    pub fn seed(&self) -> u64 {
        self.state.borrow().seed
    }

    /// Power loss: see the module doc for what survives. Every handle opened before it is
    /// stale afterwards; reopen files to go on.
    pub fn crash(&self, mode: CrashMode) {
        self.state.borrow_mut().crash(mode);
    }

    /// Flips bit `bit` (0-7) of the durable byte at `byte_position` of the file at `path`,
    /// and of the view where the view shows the durable byte. Panics if there is no such file
    /// or byte (a test's mistake).
    pub fn flip_bit(&self, path: &Path, byte_position: u64, bit: u8) {
        assert!(bit < 8, "flip_bit: bit {bit} is not in 0..8");
        let mut state = self.state.borrow_mut();
        let inode_id = match state.lookup(path) {
            Some(Entry::File(inode)) => inode,
            _ => panic!("flip_bit: no file at {}", path.display()),
        };
        let inode = state
            .inodes
            .get_mut(&inode_id)
            .expect("linked inode exists");
        let index = usize::try_from(byte_position).expect("position fits in memory");
        assert!(
            index < inode.durable.len(),
            "flip_bit {}: byte {byte_position} is past the durable size {}",
            path.display(),
            inode.durable.len()
        );
        let mask = 1u8 << bit;
        if inode.view.get(index) == Some(&inode.durable[index]) {
            inode.view[index] ^= mask;
        }
        inode.durable[index] ^= mask;
    }

    /// The next `sync` of the file at `path` (any file for `None`) fails with an `Other` error
    /// "injected fdatasync failure", and its unsynced writes are lost: never durable, yet
    /// still visible to reads until a crash. Calls queue up; each failure fires once.
    pub fn fail_next_sync(&self, path: Option<&Path>) {
        self.state
            .borrow_mut()
            .sync_failures
            .push(path.map(normalize));
    }

    /// Limits the total space (the sum over linked files of the larger of size and
    /// allocation); `None` removes the limit. Lowering it below the space in use fails later
    /// writes, never existing data.
    pub fn set_space_limit(&self, bytes: Option<u64>) {
        self.state.borrow_mut().space_limit_bytes = bytes;
    }

    /// The space in use, as the limit counts it.
    pub fn space_used(&self) -> u64 {
        self.state.borrow().space_used(None)
    }

    /// Successful `sync` calls.
    pub fn syncs(&self) -> u64 {
        self.state.borrow().counters.syncs
    }

    /// `sync` calls failed by injection.
    pub fn syncs_failed(&self) -> u64 {
        self.state.borrow().counters.syncs_failed
    }

    /// `read_at` calls on live handles (to check what a cache keeps off the disk).
    pub fn read_count(&self) -> u64 {
        self.state.borrow().counters.reads
    }

    /// Bytes returned by `read_at` calls on live handles (to check what a recovery reads).
    pub fn bytes_read(&self) -> u64 {
        self.state.borrow().counters.bytes_read
    }

    /// Successful `allocate` calls (to check that a log appends into its preallocated tail).
    pub fn allocations(&self) -> u64 {
        self.state.borrow().counters.allocations
    }

    /// Bytes accepted by `write_at`.
    pub fn bytes_written(&self) -> u64 {
        self.state.borrow().counters.bytes_written
    }

    /// Writes that changed bytes made durable by a successful `sync` (see the module doc).
    pub fn durable_rewrites(&self) -> u64 {
        self.state.borrow().counters.durable_rewrites
    }

    /// Writes that rewrote synced bytes with identical content (and changed none).
    pub fn durable_rewrites_identical(&self) -> u64 {
        self.state.borrow().counters.durable_rewrites_identical
    }

    /// The durable image of the file that the durable listing names `path`, if any: what a
    /// crash with [`CrashMode::DropAll`] would leave.
    pub fn durable_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state.borrow();
        let (dir, name) = split(path).ok()?;
        match state.directories.get(&dir)?.durable.get(&name)? {
            Entry::File(inode) => Some(state.inodes[inode].durable.clone()),
            Entry::Directory => None,
        }
    }

    /// The durable listing of a directory, sorted; `None` if there is no such directory.
    pub fn durable_list_dir(&self, dir: &Path) -> Option<Vec<String>> {
        let state = self.state.borrow();
        let directory = state.directories.get(&normalize(dir))?;
        Some(directory.durable.keys().cloned().collect())
    }
}

impl State {
    fn lookup(&self, path: &Path) -> Option<Entry> {
        let (dir, name) = split(path).ok()?;
        self.directories.get(&dir)?.current.get(&name).copied()
    }

    fn directory_mut(&mut self, op: &str, path: &Path, dir: &Path) -> io::Result<&mut Directory> {
        self.directories.get_mut(dir).ok_or_else(|| {
            sim_error(
                io::ErrorKind::NotFound,
                op,
                path,
                &format!("no directory {}", dir.display()),
            )
        })
    }

    /// Applies a directory operation to the current listing and queues it for `sync_dir`.
    fn change_directory(
        &mut self,
        op: &str,
        path: &Path,
        dir: &Path,
        change: DirOp,
    ) -> io::Result<()> {
        let directory = self.directory_mut(op, path, dir)?;
        change.apply(&mut directory.current);
        directory.pending.push(change);
        Ok(())
    }

    /// Inodes named by the current listings (`durable == false`) or the durable ones.
    fn linked_inodes(&self, durable: bool) -> BTreeSet<InodeId> {
        let mut linked = BTreeSet::new();
        for directory in self.directories.values() {
            let listing = if durable {
                &directory.durable
            } else {
                &directory.current
            };
            for entry in listing.values() {
                if let Entry::File(inode) = entry {
                    linked.insert(*inode);
                }
            }
        }
        linked
    }

    /// Space in use by linked files, counting `replacing` (if given) as using nothing.
    fn space_used(&self, replacing: Option<InodeId>) -> u64 {
        self.linked_inodes(false)
            .into_iter()
            .filter(|inode| Some(*inode) != replacing)
            .map(|inode| self.inodes[&inode].space_used())
            .sum()
    }

    /// Fails with ENOSPC if `inode` using `space_bytes` would exceed the limit.
    fn check_space(
        &self,
        op: &str,
        path: &Path,
        inode: InodeId,
        space_bytes: u64,
    ) -> io::Result<()> {
        let Some(limit) = self.space_limit_bytes else {
            return Ok(());
        };
        let used_elsewhere = self.space_used(Some(inode));
        if used_elsewhere + space_bytes > limit {
            return Err(sim_error(
                io::ErrorKind::StorageFull,
                op,
                path,
                &format!(
                    "no space left on device (simulated limit {limit} bytes, {used_elsewhere} \
                     used by other files, {space_bytes} needed by this one)"
                ),
            ));
        }
        Ok(())
    }

    fn crash(&mut self, mode: CrashMode) {
        self.generation += 1;
        let random = &mut self.random;
        for inode in self.inodes.values_mut() {
            for op in std::mem::take(&mut inode.unsynced) {
                match op {
                    FileOp::Write { position, bytes } => {
                        crash_write(&mut inode.durable, position, &bytes, mode, random);
                    }
                    size_change => {
                        let keep = match mode {
                            CrashMode::DropAll => false,
                            CrashMode::KeepAll => true,
                            CrashMode::Random | CrashMode::Torn => random.bool(),
                        };
                        if keep {
                            // Synced ranges are cut below, to the surviving size.
                            size_change.apply_size(&mut inode.durable, &mut Vec::new());
                        }
                    }
                }
            }
            inode.view = inode.durable.clone();
            let durable_bytes = inode.durable.len() as u64;
            cut_ranges(&mut inode.synced_ranges, durable_bytes);
        }
        for directory in self.directories.values_mut() {
            let pending = std::mem::take(&mut directory.pending);
            let kept = match mode {
                CrashMode::DropAll => 0,
                CrashMode::KeepAll => pending.len(),
                CrashMode::Random | CrashMode::Torn => random.usize(..=pending.len()),
            };
            for change in &pending[..kept] {
                change.apply(&mut directory.durable);
            }
            directory.current = directory.durable.clone();
        }
        // Inodes that no durable name reaches are gone (and no handle can reach them now).
        let linked = self.linked_inodes(true);
        self.inodes.retain(|inode, _| linked.contains(inode));
    }
}

/// What a power loss leaves of one unsynced write, sector by sector.
fn crash_write(
    durable: &mut Vec<u8>,
    position: u64,
    bytes: &[u8],
    mode: CrashMode,
    random: &mut fastrand::Rng,
) {
    match mode {
        CrashMode::DropAll => {}
        CrashMode::KeepAll => write_into(durable, position, bytes),
        CrashMode::Random | CrashMode::Torn => {
            // The size change of an appending write may reach the disk without its data:
            // the new tail then reads as zeros (unwritten extents).
            if random.bool() {
                let end = to_index(position) + bytes.len();
                if durable.len() < end {
                    durable.resize(end, 0);
                }
            }
            let sector_bytes = to_index(SECTOR_BYTES);
            for (index, sector) in bytes.chunks(sector_bytes).enumerate() {
                let sector_position = position + (index * sector_bytes) as u64;
                let outcomes = if mode == CrashMode::Torn { 3 } else { 2 };
                match random.u8(..outcomes) {
                    0 => write_into(durable, sector_position, sector),
                    1 => {}
                    _ => {
                        let mut garbage = vec![0; sector.len()];
                        random.fill(&mut garbage);
                        write_into(durable, sector_position, &garbage);
                    }
                }
            }
        }
    }
}

/// Writes `bytes` at `position`, zero-extending `image` as needed.
fn write_into(image: &mut Vec<u8>, position: u64, bytes: &[u8]) {
    let start = to_index(position);
    let end = start + bytes.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[start..end].copy_from_slice(bytes);
}

/// Adds `range` to a sorted set of disjoint, non-adjacent ranges.
fn insert_range(ranges: &mut Vec<Range<u64>>, range: Range<u64>) {
    let mut merged = range;
    ranges.retain(|existing| {
        let touches = existing.start <= merged.end && merged.start <= existing.end;
        if touches {
            merged = merged.start.min(existing.start)..merged.end.max(existing.end);
        }
        !touches
    });
    let index = ranges.partition_point(|existing| existing.start < merged.start);
    ranges.insert(index, merged);
}

/// Removes everything at or past `end` from a range set.
fn cut_ranges(ranges: &mut Vec<Range<u64>>, end: u64) {
    ranges.retain(|range| range.start < end);
    if let Some(last) = ranges.last_mut() {
        last.end = last.end.min(end);
    }
}

fn to_index(value: u64) -> usize {
    usize::try_from(value).expect("simulated sizes fit in memory")
}

/// Drops `.` components and repeated or trailing separators, so equal paths compare equal.
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|component| *component != Component::CurDir)
        .collect()
}

/// A path's directory and file name.
fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let path = normalize(path);
    let invalid = || {
        sim_error(
            io::ErrorKind::InvalidInput,
            "resolve",
            &path,
            "not a UTF-8 file name inside a directory",
        )
    };
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(invalid)?
        .to_owned();
    let dir = path.parent().ok_or_else(invalid)?.to_path_buf();
    Ok((dir, name))
}

/// An error shaped like the real disk's: "op path: what".
fn sim_error(kind: io::ErrorKind, op: &str, path: &Path, what: &str) -> io::Error {
    io::Error::new(kind, format!("{op} {}: {what}", path.display()))
}

impl Disk for SimDisk {
    type File = SimFile;

    async fn open(&self, path: &Path, mode: OpenMode) -> io::Result<SimFile> {
        let op = match mode {
            OpenMode::CreateNew => "create",
            OpenMode::Existing => "open",
        };
        let (dir, name) = split(path)?;
        let mut state = self.state.borrow_mut();
        let existing = state
            .directory_mut(op, path, &dir)?
            .current
            .get(&name)
            .copied();
        let inode = match (mode, existing) {
            (_, Some(Entry::Directory)) => {
                return Err(sim_error(
                    io::ErrorKind::IsADirectory,
                    op,
                    path,
                    "is a directory",
                ));
            }
            (OpenMode::CreateNew, Some(Entry::File(_))) => {
                return Err(sim_error(
                    io::ErrorKind::AlreadyExists,
                    op,
                    path,
                    "file exists",
                ));
            }
            (OpenMode::Existing, None) => {
                return Err(sim_error(io::ErrorKind::NotFound, op, path, "no such file"));
            }
            (OpenMode::Existing, Some(Entry::File(inode))) => inode,
            (OpenMode::CreateNew, None) => {
                let inode = InodeId(state.inode_next);
                state.inode_next += 1;
                state.inodes.insert(inode, Inode::default());
                let change = DirOp {
                    remove: None,
                    insert: Some((name, Entry::File(inode))),
                };
                state.change_directory(op, path, &dir, change)?;
                inode
            }
        };
        Ok(SimFile {
            state: self.state.clone(),
            inode,
            generation: state.generation,
            path: path.to_path_buf(),
        })
    }

    async fn remove(&self, path: &Path) -> io::Result<()> {
        let op = "remove";
        let (dir, name) = split(path)?;
        let mut state = self.state.borrow_mut();
        match state.directory_mut(op, path, &dir)?.current.get(&name) {
            Some(Entry::File(_)) => {}
            Some(Entry::Directory) => {
                return Err(sim_error(
                    io::ErrorKind::IsADirectory,
                    op,
                    path,
                    "is a directory",
                ));
            }
            None => return Err(sim_error(io::ErrorKind::NotFound, op, path, "no such file")),
        }
        let change = DirOp {
            remove: Some(name),
            insert: None,
        };
        state.change_directory(op, path, &dir, change)
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let op = "rename";
        let (from_dir, from_name) = split(from)?;
        let (to_dir, to_name) = split(to)?;
        let mut state = self.state.borrow_mut();
        let entry = match state
            .directory_mut(op, from, &from_dir)?
            .current
            .get(&from_name)
        {
            Some(Entry::File(inode)) => Entry::File(*inode),
            Some(Entry::Directory) => {
                return Err(sim_error(
                    io::ErrorKind::Unsupported,
                    op,
                    from,
                    "the simulated disk renames files only",
                ));
            }
            None => return Err(sim_error(io::ErrorKind::NotFound, op, from, "no such file")),
        };
        if state.directory_mut(op, to, &to_dir)?.current.get(&to_name) == Some(&Entry::Directory) {
            return Err(sim_error(
                io::ErrorKind::IsADirectory,
                op,
                to,
                "is a directory",
            ));
        }
        if (&from_dir, &from_name) == (&to_dir, &to_name) {
            return Ok(());
        }
        if from_dir == to_dir {
            let change = DirOp {
                remove: Some(from_name),
                insert: Some((to_name, entry)),
            };
            return state.change_directory(op, from, &from_dir, change);
        }
        let removal = DirOp {
            remove: Some(from_name),
            insert: None,
        };
        let insertion = DirOp {
            remove: None,
            insert: Some((to_name, entry)),
        };
        state.change_directory(op, from, &from_dir, removal)?;
        state.change_directory(op, to, &to_dir, insertion)
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let dir = normalize(dir);
        let mut state = self.state.borrow_mut();
        let directory = state.directory_mut("sync_dir", &dir, &dir)?;
        for change in std::mem::take(&mut directory.pending) {
            change.apply(&mut directory.durable);
        }
        Ok(())
    }

    async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let op = "create_dir_all";
        let dir = normalize(dir);
        let mut state = self.state.borrow_mut();
        let mut ancestors: Vec<&Path> = dir.ancestors().collect();
        ancestors.reverse();
        for ancestor in ancestors {
            if state.directories.contains_key(ancestor) {
                continue;
            }
            let (parent, name) = split(ancestor)?;
            let parent_directory = state.directory_mut(op, ancestor, &parent)?;
            if parent_directory.current.contains_key(&name) {
                return Err(sim_error(
                    io::ErrorKind::NotADirectory,
                    op,
                    ancestor,
                    "a file has this name",
                ));
            }
            // Made durable at once: the trait promises durable new entries.
            parent_directory
                .current
                .insert(name.clone(), Entry::Directory);
            parent_directory.durable.insert(name, Entry::Directory);
            state
                .directories
                .insert(ancestor.to_path_buf(), Directory::default());
        }
        Ok(())
    }

    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let dir = normalize(dir);
        let state = self.state.borrow();
        match state.directories.get(&dir) {
            Some(directory) => Ok(directory.current.keys().cloned().collect()),
            None => Err(sim_error(
                io::ErrorKind::NotFound,
                "list_dir",
                &dir,
                "no such directory",
            )),
        }
    }
}

impl SimFile {
    /// The state, if this handle is not stale.
    fn live_state(&self, op: &str) -> io::Result<std::cell::RefMut<'_, State>> {
        let state = self.state.borrow_mut();
        if state.generation != self.generation {
            return Err(sim_error(
                io::ErrorKind::Other,
                op,
                &self.path,
                &format!(
                    "stale file handle: the simulated disk crashed after this file was opened \
                     (generation {} < {}); reopen it",
                    self.generation, state.generation
                ),
            ));
        }
        Ok(state)
    }
}

impl File for SimFile {
    type Buffer = SimBuffer;

    fn alloc_buffer(&self, bytes: usize) -> SimBuffer {
        super::assert_buffer_bytes(&self.path, bytes);
        SimBuffer(vec![0; bytes])
    }

    fn alloc_buffer_unfilled(&self, bytes: usize) -> SimBuffer {
        super::assert_buffer_bytes(&self.path, bytes);
        SimBuffer(vec![UNFILLED_BYTE; bytes])
    }

    async fn write_at(&self, buffer: SimBuffer, position: u64) -> io::Result<()> {
        let bytes = buffer.0;
        let length = bytes.len() as u64;
        super::assert_write(&self.path, position, length);
        let op = "write";
        let mut state = self.live_state(op)?;
        let end = position + length;
        let inode = &state.inodes[&self.inode];
        let space_bytes = (inode.view.len() as u64)
            .max(end)
            .max(inode.allocated_bytes);
        state.check_space(op, &self.path, self.inode, space_bytes)?;

        // Compare with the synced bytes this write covers, before anything changes.
        let mut overlaps = false;
        let mut differs = false;
        for range in &inode.synced_ranges {
            let start = range.start.max(position);
            let stop = range.end.min(end);
            if start < stop {
                overlaps = true;
                let durable = &inode.durable[to_index(start)..to_index(stop)];
                let new = &bytes[to_index(start - position)..to_index(stop - position)];
                differs |= durable != new;
            }
        }
        if differs {
            state.counters.durable_rewrites += 1;
        } else if overlaps {
            state.counters.durable_rewrites_identical += 1;
        }
        state.counters.bytes_written += length;

        let inode = state
            .inodes
            .get_mut(&self.inode)
            .expect("open inode exists");
        write_into(&mut inode.view, position, &bytes);
        inode.unsynced.push(FileOp::Write { position, bytes });
        Ok(())
    }

    async fn read_at(&self, position: u64, bytes: usize) -> io::Result<Bytes> {
        let mut state = self.live_state("read")?;
        let view = &state.inodes[&self.inode].view;
        let start = to_index(position.min(view.len() as u64));
        let end = view.len().min(start.saturating_add(bytes));
        let read = Bytes::copy_from_slice(&view[start..end]);
        state.counters.reads += 1;
        state.counters.bytes_read += read.len() as u64;
        Ok(read)
    }

    async fn sync(&self) -> io::Result<()> {
        let op = "fdatasync";
        let mut state = self.live_state(op)?;
        let path = normalize(&self.path);
        let failure = state
            .sync_failures
            .iter()
            .position(|target| target.as_ref().is_none_or(|target| *target == path));
        if let Some(index) = failure {
            state.sync_failures.remove(index);
            state.counters.syncs_failed += 1;
            // As on Linux after a failed fsync: the dirty pages are marked clean, so the
            // writes are never retried, yet reads keep seeing them until they are evicted
            // (here: until a crash).
            state
                .inodes
                .get_mut(&self.inode)
                .expect("open inode exists")
                .unsynced
                .clear();
            return Err(sim_error(
                io::ErrorKind::Other,
                op,
                &self.path,
                "injected fdatasync failure",
            ));
        }
        state.counters.syncs += 1;
        let inode = state
            .inodes
            .get_mut(&self.inode)
            .expect("open inode exists");
        for change in std::mem::take(&mut inode.unsynced) {
            match change {
                FileOp::Write { position, bytes } => {
                    let end = position + bytes.len() as u64;
                    write_into(&mut inode.durable, position, &bytes);
                    insert_range(&mut inode.synced_ranges, position..end);
                }
                size_change => {
                    size_change.apply_size(&mut inode.durable, &mut inode.synced_ranges);
                }
            }
        }
        Ok(())
    }

    async fn size(&self) -> io::Result<u64> {
        let state = self.live_state("size")?;
        Ok(state.inodes[&self.inode].view.len() as u64)
    }

    async fn truncate(&self, bytes: u64) -> io::Result<()> {
        let mut state = self.live_state("truncate")?;
        let inode = state
            .inodes
            .get_mut(&self.inode)
            .expect("open inode exists");
        let shrinking = bytes < inode.view.len() as u64;
        inode.view.resize(to_index(bytes), 0);
        inode.unsynced.push(FileOp::SetSize(bytes));
        if shrinking {
            // Shrinking frees the blocks past the end, preallocated ones included.
            inode.allocated_bytes = inode.allocated_bytes.min(bytes);
        }
        // Bytes cut off are no longer acknowledged data: writing there again is not a
        // rewrite (a log truncates a torn or uncommitted tail, then appends over it).
        cut_ranges(&mut inode.synced_ranges, bytes);
        Ok(())
    }

    async fn allocate(&self, bytes: u64) -> io::Result<()> {
        let op = "allocate";
        let mut state = self.live_state(op)?;
        let inode = &state.inodes[&self.inode];
        let space_bytes = inode.space_used().max(bytes);
        state.check_space(op, &self.path, self.inode, space_bytes)?;
        let inode = state
            .inodes
            .get_mut(&self.inode)
            .expect("open inode exists");
        inode.allocated_bytes = inode.allocated_bytes.max(bytes);
        if bytes > inode.view.len() as u64 {
            inode.view.resize(to_index(bytes), 0);
            inode.unsynced.push(FileOp::Extend(bytes));
        }
        state.counters.allocations += 1;
        Ok(())
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn duplicate(&self) -> io::Result<SimFile> {
        // A handle is the inode it names: a duplicate sees and syncs the same file.
        self.live_state("dup")?;
        Ok(SimFile {
            state: self.state.clone(),
            inode: self.inode,
            generation: self.generation,
            path: self.path.clone(),
        })
    }

    async fn close(self) -> io::Result<()> {
        self.live_state("close").map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_range_merges_touching_ranges() {
        let mut ranges = Vec::new();
        insert_range(&mut ranges, 8..12);
        insert_range(&mut ranges, 0..4);
        assert_eq!(ranges, vec![0..4, 8..12]);
        insert_range(&mut ranges, 4..8);
        assert_eq!(ranges, vec![0..12]);
        insert_range(&mut ranges, 20..24);
        insert_range(&mut ranges, 10..21);
        assert_eq!(ranges, vec![0..24]);
    }

    #[test]
    fn cut_ranges_drops_and_shortens() {
        let mut ranges = vec![0..4, 8..12, 16..20];
        cut_ranges(&mut ranges, 10);
        assert_eq!(ranges, vec![0..4, 8..10]);
        cut_ranges(&mut ranges, 8);
        assert_eq!(ranges, vec![0..4]);
    }

    #[test]
    fn normalize_makes_equal_paths_equal() {
        assert_eq!(normalize(Path::new("/a/./b/")), PathBuf::from("/a/b"));
        assert_eq!(normalize(Path::new("a//b")), PathBuf::from("a/b"));
    }
}
