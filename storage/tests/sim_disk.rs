//! Goal: the simulated disk keeps the disk contract and each of its faults does exactly what
//! its doc says, deterministically from the seed.
//!
//! Method: drive `SimDisk` through the `Disk`/`File` traits under `block_on`, inject one fault
//! at a time, and compare what reads, the durable image and the listings show with what the
//! model allows. Randomised tests print their seed; rerun a seed by putting it in `SEEDS`.

use std::io;
use std::path::{Path, PathBuf};

use storage::disk::sim::{CrashMode, SimDisk, SimFile, block_on};
use storage::disk::{BLOCK_BYTES, Disk, File, OpenMode, SECTOR_BYTES};

const BLOCK: usize = BLOCK_BYTES as usize;
const SECTOR: usize = SECTOR_BYTES as usize;
const SEEDS: [u64; 8] = [1, 2, 3, 42, 0xdead_beef, 7_777, 123_456_789, u64::MAX];

fn dir() -> PathBuf {
    PathBuf::from("/data/p0")
}

fn segment() -> PathBuf {
    dir().join("00000000.log")
}

/// A disk with `/data/p0` created.
fn disk(seed: u64) -> SimDisk {
    let disk = SimDisk::new(seed);
    block_on(disk.create_dir_all(&dir())).unwrap();
    disk
}

/// Creates the segment file and makes its directory entry durable.
fn create_segment(disk: &SimDisk) -> SimFile {
    let file = block_on(disk.open(&segment(), OpenMode::CreateNew)).unwrap();
    block_on(disk.sync_dir(&dir())).unwrap();
    file
}

fn write(file: &SimFile, position: u64, blocks: usize, byte: u8) -> io::Result<()> {
    let mut buffer = file.alloc_buffer(blocks * BLOCK);
    buffer.as_mut().fill(byte);
    block_on(file.write_at(buffer, position))
}

fn read_all(file: &SimFile) -> Vec<u8> {
    let size = block_on(file.size()).unwrap();
    block_on(file.read_at(0, size as usize)).unwrap().to_vec()
}

fn reopen(disk: &SimDisk) -> SimFile {
    block_on(disk.open(&segment(), OpenMode::Existing)).unwrap()
}

#[test]
fn file_contract() {
    let disk = disk(1);
    let file = create_segment(&disk);
    assert_eq!(block_on(file.size()).unwrap(), 0);
    assert!(block_on(file.read_at(0, 10)).unwrap().is_empty());

    let buffer = file.alloc_buffer(2 * BLOCK);
    assert!(
        buffer.as_ref().iter().all(|byte| *byte == 0),
        "buffers start zeroed"
    );
    write(&file, 0, 2, 0xab).unwrap();
    assert_eq!(block_on(file.size()).unwrap(), 2 * BLOCK_BYTES);
    // Unaligned reads are fine; reads past the end come back short or empty.
    let middle = block_on(file.read_at(100, 50)).unwrap();
    assert_eq!(&middle[..], &[0xab; 50][..]);
    let tail = block_on(file.read_at(2 * BLOCK_BYTES - 10, 100)).unwrap();
    assert_eq!(tail.len(), 10);
    assert!(
        block_on(file.read_at(10 * BLOCK_BYTES, 100))
            .unwrap()
            .is_empty()
    );

    // A write past the end zero-fills the gap.
    write(&file, 4 * BLOCK_BYTES, 1, 0xcd).unwrap();
    let contents = read_all(&file);
    assert_eq!(contents.len(), 5 * BLOCK);
    assert!(contents[2 * BLOCK..4 * BLOCK].iter().all(|byte| *byte == 0));

    // allocate extends the file with zeros and never shrinks it.
    block_on(file.allocate(64 * BLOCK_BYTES)).unwrap();
    assert_eq!(block_on(file.size()).unwrap(), 64 * BLOCK_BYTES);
    block_on(file.allocate(8 * BLOCK_BYTES)).unwrap();
    assert_eq!(block_on(file.size()).unwrap(), 64 * BLOCK_BYTES);
    let contents = read_all(&file);
    assert_eq!(contents[4 * BLOCK..5 * BLOCK], [0xcd; BLOCK][..]);
    assert!(contents[5 * BLOCK..].iter().all(|byte| *byte == 0));
    block_on(file.truncate(BLOCK_BYTES)).unwrap();
    assert_eq!(block_on(file.size()).unwrap(), BLOCK_BYTES);
    block_on(file.truncate(3 * BLOCK_BYTES)).unwrap();
    assert_eq!(read_all(&file)[BLOCK..], vec![0; 2 * BLOCK][..]);
    assert_eq!(file.path(), segment().as_path());
    block_on(file.sync()).unwrap();
    block_on(file.close()).unwrap();
    assert_eq!(disk.syncs(), 1);
    assert_eq!(disk.bytes_written(), 3 * BLOCK_BYTES);
    assert_eq!(disk.read_count(), 7);
    assert_eq!(
        disk.bytes_read(),
        (50 + 10 + 5 * BLOCK + 64 * BLOCK + 3 * BLOCK) as u64
    );
}

#[test]
fn allocate_extends_with_zeros_durable_only_after_sync() {
    // Unsynced, a power loss drops the extension (DropAll) or keeps it (KeepAll).
    let disk = disk(14);
    let file = create_segment(&disk);
    write(&file, 0, 1, 0xaa).unwrap();
    block_on(file.sync()).unwrap();
    block_on(file.allocate(8 * BLOCK_BYTES)).unwrap();
    disk.crash(CrashMode::DropAll);
    assert_eq!(read_all(&reopen(&disk)), vec![0xaa; BLOCK]);
    let file = reopen(&disk);
    block_on(file.allocate(8 * BLOCK_BYTES)).unwrap();
    disk.crash(CrashMode::KeepAll);
    let contents = read_all(&reopen(&disk));
    assert_eq!(contents.len(), 8 * BLOCK);
    assert_eq!(contents[..BLOCK], [0xaa; BLOCK][..]);
    assert!(contents[BLOCK..].iter().all(|byte| *byte == 0));

    // Synced, it survives any crash, and writes inside it leave the size alone.
    let file = reopen(&disk);
    block_on(file.allocate(16 * BLOCK_BYTES)).unwrap();
    block_on(file.sync()).unwrap();
    write(&file, BLOCK_BYTES, 2, 0xbb).unwrap();
    assert_eq!(block_on(file.size()).unwrap(), 16 * BLOCK_BYTES);
    disk.crash(CrashMode::DropAll);
    let contents = read_all(&reopen(&disk));
    assert_eq!(contents.len(), 16 * BLOCK);
    assert!(contents[BLOCK..].iter().all(|byte| *byte == 0));

    // In the random modes each extension is kept or dropped; past the durable block the file
    // reads as the unsynced write or as zeros, never as anything else. (The second, smaller
    // allocate is a no-op: allocate never shrinks.)
    let mut sizes = std::collections::BTreeSet::new();
    for seed in SEEDS {
        let random_disk = self::disk(seed);
        let file = create_segment(&random_disk);
        write(&file, 0, 1, 0xaa).unwrap();
        block_on(file.sync()).unwrap();
        block_on(file.allocate(4 * BLOCK_BYTES)).unwrap();
        write(&file, BLOCK_BYTES, 1, 0xbb).unwrap();
        block_on(file.allocate(2 * BLOCK_BYTES)).unwrap();
        random_disk.crash(CrashMode::Random);
        let contents = read_all(&reopen(&random_disk));
        assert_eq!(contents[..BLOCK], [0xaa; BLOCK][..], "seed {seed}");
        for sector in contents[BLOCK..].chunks(SECTOR) {
            let new = sector.iter().all(|byte| *byte == 0xbb);
            let zero = sector.iter().all(|byte| *byte == 0);
            assert!(new || zero, "seed {seed}");
        }
        sizes.insert(contents.len());
    }
    assert!(sizes.contains(&(4 * BLOCK)), "{sizes:?}");
    assert!(sizes.len() > 1, "{sizes:?}");
}

#[test]
fn allocate_counts_against_the_space_limit_and_truncate_frees_it() {
    let disk = disk(15);
    let file = create_segment(&disk);
    disk.set_space_limit(Some(8 * BLOCK_BYTES));
    let error = block_on(file.allocate(9 * BLOCK_BYTES)).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::StorageFull);
    assert_eq!(block_on(file.size()).unwrap(), 0, "nothing applied");
    block_on(file.allocate(8 * BLOCK_BYTES)).unwrap();
    assert_eq!(disk.space_used(), 8 * BLOCK_BYTES);
    // Writing inside the extension needs no more space.
    write(&file, 4 * BLOCK_BYTES, 4, 1).unwrap();
    let other = block_on(disk.open(&dir().join("other.log"), OpenMode::CreateNew)).unwrap();
    assert_eq!(
        write(&other, 0, 1, 1).unwrap_err().kind(),
        io::ErrorKind::StorageFull
    );
    // Cutting the tail frees it.
    block_on(file.truncate(6 * BLOCK_BYTES)).unwrap();
    assert_eq!(disk.space_used(), 6 * BLOCK_BYTES);
    write(&other, 0, 2, 1).unwrap();
}

#[test]
fn open_modes_and_directory_operations() {
    let disk = disk(2);
    let file = create_segment(&disk);

    let error = block_on(disk.open(&segment(), OpenMode::CreateNew))
        .err()
        .unwrap();
    assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
    let missing = dir().join("missing.log");
    let error = block_on(disk.open(&missing, OpenMode::Existing))
        .err()
        .unwrap();
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
    assert!(
        error.to_string().contains("/data/p0/missing.log"),
        "{error}"
    );
    let error = block_on(disk.open(Path::new("/nowhere/x"), OpenMode::CreateNew))
        .err()
        .unwrap();
    assert_eq!(error.kind(), io::ErrorKind::NotFound);

    // list_dir shows current entries, synced or not.
    let index = dir().join("00000000.index");
    block_on(disk.open(&index, OpenMode::CreateNew)).unwrap();
    let mut names = block_on(disk.list_dir(&dir())).unwrap();
    names.sort();
    assert_eq!(names, ["00000000.index", "00000000.log"]);
    assert_eq!(disk.durable_list_dir(&dir()).unwrap(), ["00000000.log"]);

    // Rename keeps the open handle working (it names the inode, not the path).
    let renamed = dir().join("renamed.log");
    write(&file, 0, 1, 7).unwrap();
    block_on(disk.rename(&segment(), &renamed)).unwrap();
    assert_eq!(read_all(&file), vec![7; BLOCK]);
    let again = block_on(disk.open(&renamed, OpenMode::Existing)).unwrap();
    assert_eq!(read_all(&again), vec![7; BLOCK]);
    block_on(disk.remove(&renamed)).unwrap();
    let error = block_on(disk.remove(&renamed)).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
    let mut names = block_on(disk.list_dir(&dir())).unwrap();
    names.sort();
    assert_eq!(names, ["00000000.index"]);

    // create_dir_all is idempotent and lists subdirectories in the parent.
    block_on(disk.create_dir_all(&dir())).unwrap();
    assert_eq!(block_on(disk.list_dir(Path::new("/data"))).unwrap(), ["p0"]);
}

#[test]
#[should_panic(expected = "position 512 is not a multiple of 4096")]
fn misaligned_write_position_panics() {
    let disk = disk(3);
    let file = create_segment(&disk);
    let _ = write(&file, 512, 1, 1);
}

#[test]
#[should_panic(expected = "is not a multiple of 4096")]
fn misaligned_buffer_length_panics() {
    let disk = disk(3);
    let file = create_segment(&disk);
    let _ = file.alloc_buffer(BLOCK + SECTOR);
}

#[test]
fn crash_drop_all_keeps_only_synced_writes() {
    let disk = disk(4);
    let file = create_segment(&disk);
    write(&file, 0, 1, 0xaa).unwrap();
    block_on(file.sync()).unwrap();
    write(&file, BLOCK_BYTES, 1, 0xbb).unwrap();
    assert_eq!(
        read_all(&file).len(),
        2 * BLOCK,
        "the view shows both writes"
    );

    disk.crash(CrashMode::DropAll);
    let file = reopen(&disk);
    assert_eq!(read_all(&file), vec![0xaa; BLOCK]);
}

#[test]
fn crash_keep_all_keeps_every_completed_write() {
    let disk = disk(5);
    let file = create_segment(&disk);
    write(&file, 0, 1, 0xaa).unwrap();
    block_on(file.sync()).unwrap();
    write(&file, BLOCK_BYTES, 1, 0xbb).unwrap();

    disk.crash(CrashMode::KeepAll);
    let file = reopen(&disk);
    let mut expected = vec![0xaa; BLOCK];
    expected.extend_from_slice(&[0xbb; BLOCK]);
    assert_eq!(read_all(&file), expected);
}

/// What a crash left in one sector of an unsynced write over old contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sector {
    Old,
    New,
    Garbage,
}

/// Overwrites two synced blocks of 0xaa with 0xbb, crashes, and classifies each sector.
fn crash_overwrite(seed: u64, mode: CrashMode) -> Vec<Sector> {
    println!("seed {seed} mode {mode:?}");
    let disk = disk(seed);
    let file = create_segment(&disk);
    write(&file, 0, 2, 0xaa).unwrap();
    block_on(file.sync()).unwrap();
    write(&file, 0, 2, 0xbb).unwrap();
    disk.crash(mode);
    let contents = read_all(&reopen(&disk));
    assert_eq!(
        contents.len(),
        2 * BLOCK,
        "an overwrite does not change the size"
    );
    contents
        .chunks(SECTOR)
        .map(|sector| {
            if sector.iter().all(|byte| *byte == 0xaa) {
                Sector::Old
            } else if sector.iter().all(|byte| *byte == 0xbb) {
                Sector::New
            } else {
                Sector::Garbage
            }
        })
        .collect()
}

#[test]
fn crash_random_keeps_or_drops_each_sector() {
    let mut seen = Vec::new();
    for seed in SEEDS {
        let sectors = crash_overwrite(seed, CrashMode::Random);
        assert!(
            !sectors.contains(&Sector::Garbage),
            "seed {seed}: {sectors:?}"
        );
        seen.extend(sectors);
    }
    assert!(
        seen.contains(&Sector::Old) && seen.contains(&Sector::New),
        "{seen:?}"
    );
}

#[test]
fn crash_torn_leaves_each_sector_old_new_or_garbage() {
    let mut seen = Vec::new();
    for seed in SEEDS {
        seen.extend(crash_overwrite(seed, CrashMode::Torn));
    }
    for outcome in [Sector::Old, Sector::New, Sector::Garbage] {
        assert!(seen.contains(&outcome), "never saw {outcome:?} in {seen:?}");
    }
}

#[test]
fn crash_random_append_leaves_a_prefix_shape() {
    // An unsynced append beyond the durable end: each sector is new or (if the size reached
    // the disk) zero; nothing else may appear, and the durable prefix is intact.
    for seed in SEEDS {
        println!("seed {seed}");
        let disk = disk(seed);
        let file = create_segment(&disk);
        write(&file, 0, 1, 0xaa).unwrap();
        block_on(file.sync()).unwrap();
        write(&file, BLOCK_BYTES, 2, 0xbb).unwrap();
        disk.crash(CrashMode::Random);
        let contents = read_all(&reopen(&disk));
        assert_eq!(contents[..BLOCK], [0xaa; BLOCK][..], "seed {seed}");
        assert!(contents.len() <= 3 * BLOCK, "seed {seed}");
        assert_eq!(contents.len() % SECTOR, 0, "seed {seed}");
        for sector in contents[BLOCK..].chunks(SECTOR) {
            let new = sector.iter().all(|byte| *byte == 0xbb);
            let zero = sector.iter().all(|byte| *byte == 0);
            assert!(new || zero, "seed {seed}: {:?}", &sector[..8]);
        }
    }
}

#[test]
fn stale_handle_fails_every_operation_after_crash() {
    let disk = disk(6);
    let file = create_segment(&disk);
    write(&file, 0, 1, 1).unwrap();
    block_on(file.sync()).unwrap();
    disk.crash(CrashMode::KeepAll);

    let buffer = file.alloc_buffer(BLOCK);
    let errors = [
        block_on(file.write_at(buffer, 0)).unwrap_err(),
        block_on(file.read_at(0, 1)).unwrap_err(),
        block_on(file.sync()).unwrap_err(),
        block_on(file.size()).unwrap_err(),
        block_on(file.truncate(0)).unwrap_err(),
        block_on(file.allocate(BLOCK_BYTES)).unwrap_err(),
        block_on(file.close()).unwrap_err(),
    ];
    for error in errors {
        assert!(error.to_string().contains("stale file handle"), "{error}");
        assert!(error.to_string().contains("00000000.log"), "{error}");
    }
    assert_eq!(read_all(&reopen(&disk)), vec![1; BLOCK], "reopening works");
}

#[test]
fn failed_sync_loses_its_writes_but_reads_still_see_them() {
    let disk = disk(7);
    let file = create_segment(&disk);
    write(&file, 0, 1, 0xaa).unwrap();
    block_on(file.sync()).unwrap();

    write(&file, BLOCK_BYTES, 1, 0xbb).unwrap();
    disk.fail_next_sync(Some(&segment()));
    let error = block_on(file.sync()).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::Other);
    assert!(
        error.to_string().contains("injected fdatasync failure"),
        "{error}"
    );
    assert_eq!(disk.syncs_failed(), 1);
    // The page cache still says yes...
    assert_eq!(read_all(&file)[BLOCK..], [0xbb; BLOCK][..]);
    // ...and a later successful sync does not bring the lost write back.
    write(&file, 2 * BLOCK_BYTES, 1, 0xcc).unwrap();
    block_on(file.sync()).unwrap();

    disk.crash(CrashMode::DropAll);
    let contents = read_all(&reopen(&disk));
    assert_eq!(contents[..BLOCK], [0xaa; BLOCK][..]);
    assert_eq!(
        contents[BLOCK..2 * BLOCK],
        [0; BLOCK][..],
        "the failed write is gone"
    );
    assert_eq!(contents[2 * BLOCK..], [0xcc; BLOCK][..]);
}

#[test]
fn injected_sync_failure_targets_its_path_or_any_file() {
    let disk = disk(8);
    let file = create_segment(&disk);
    let other = block_on(disk.open(&dir().join("other.log"), OpenMode::CreateNew)).unwrap();
    disk.fail_next_sync(Some(&segment()));
    block_on(other.sync()).unwrap();
    block_on(file.sync()).unwrap_err();
    block_on(file.sync()).unwrap();

    disk.fail_next_sync(None);
    block_on(other.sync()).unwrap_err();
    block_on(file.sync()).unwrap();
}

#[test]
fn space_limit_fails_whole_writes_with_storage_full() {
    let disk = disk(9);
    let file = create_segment(&disk);
    disk.set_space_limit(Some(4 * BLOCK_BYTES));
    write(&file, 0, 3, 0xaa).unwrap();
    block_on(file.sync()).unwrap();

    let error = write(&file, 3 * BLOCK_BYTES, 2, 0xbb).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::StorageFull);
    assert!(error.to_string().contains("00000000.log"), "{error}");
    assert_eq!(
        block_on(file.size()).unwrap(),
        3 * BLOCK_BYTES,
        "nothing applied"
    );
    assert_eq!(read_all(&file), vec![0xaa; 3 * BLOCK]);
    assert_eq!(disk.bytes_written(), 3 * BLOCK_BYTES);

    // Allocation counts against the limit, and writes inside it then cannot fail.
    let error = block_on(file.allocate(5 * BLOCK_BYTES)).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::StorageFull);
    block_on(file.allocate(4 * BLOCK_BYTES)).unwrap();
    assert_eq!(disk.space_used(), 4 * BLOCK_BYTES);
    let other = block_on(disk.open(&dir().join("other.log"), OpenMode::CreateNew)).unwrap();
    assert_eq!(
        write(&other, 0, 1, 1).unwrap_err().kind(),
        io::ErrorKind::StorageFull
    );
    write(&file, 3 * BLOCK_BYTES, 1, 0xbb).unwrap();

    // Removing a file frees its space.
    block_on(disk.remove(&segment())).unwrap();
    write(&other, 0, 1, 1).unwrap();
    disk.set_space_limit(None);
    write(&other, BLOCK_BYTES, 8, 1).unwrap();
}

#[test]
fn durable_rewrites_counts_changed_synced_bytes_only() {
    let disk = disk(10);
    let file = create_segment(&disk);
    write(&file, 0, 2, 0xaa).unwrap();
    // Rewriting bytes that are written but not yet durable is fine.
    write(&file, 0, 1, 0xab).unwrap();
    block_on(file.sync()).unwrap();
    assert_eq!(disk.durable_rewrites(), 0);

    // Fresh space: not a rewrite.
    write(&file, 2 * BLOCK_BYTES, 1, 0xcc).unwrap();
    assert_eq!(disk.durable_rewrites(), 0);
    // Same bytes over synced data: counted apart.
    write(&file, BLOCK_BYTES, 1, 0xaa).unwrap();
    assert_eq!(disk.durable_rewrites(), 0);
    assert_eq!(disk.durable_rewrites_identical(), 1);
    // Different bytes over synced data: the violation.
    write(&file, 0, 1, 0x00).unwrap();
    assert_eq!(disk.durable_rewrites(), 1);

    // After a truncate the cut-off bytes are no longer acknowledged data.
    block_on(file.truncate(BLOCK_BYTES)).unwrap();
    write(&file, BLOCK_BYTES, 1, 0xdd).unwrap();
    assert_eq!(disk.durable_rewrites(), 1);
}

#[test]
fn truncate_is_durable_only_after_sync() {
    let disk = disk(11);
    let file = create_segment(&disk);
    write(&file, 0, 4, 0xaa).unwrap();
    block_on(file.sync()).unwrap();
    block_on(file.truncate(BLOCK_BYTES)).unwrap();
    disk.crash(CrashMode::DropAll);
    let file = reopen(&disk);
    assert_eq!(block_on(file.size()).unwrap(), 4 * BLOCK_BYTES);

    block_on(file.truncate(BLOCK_BYTES)).unwrap();
    block_on(file.sync()).unwrap();
    disk.crash(CrashMode::DropAll);
    assert_eq!(block_on(reopen(&disk).size()).unwrap(), BLOCK_BYTES);
}

#[test]
fn flip_bit_corrupts_the_durable_byte() {
    let disk = disk(12);
    let file = create_segment(&disk);
    write(&file, 0, 1, 0).unwrap();
    block_on(file.sync()).unwrap();
    disk.flip_bit(&segment(), 100, 3);
    assert_eq!(block_on(file.read_at(100, 1)).unwrap()[0], 0b1000);
    assert_eq!(disk.durable_contents(&segment()).unwrap()[100], 0b1000);
    disk.crash(CrashMode::KeepAll);
    assert_eq!(block_on(reopen(&disk).read_at(100, 1)).unwrap()[0], 0b1000);
}

#[test]
fn directory_entries_are_durable_only_after_sync_dir() {
    let disk = disk(13);
    let first = dir().join("first.log");
    let second = dir().join("second.log");
    block_on(disk.open(&first, OpenMode::CreateNew)).unwrap();
    block_on(disk.sync_dir(&dir())).unwrap();
    block_on(disk.open(&second, OpenMode::CreateNew)).unwrap();
    disk.crash(CrashMode::DropAll);
    assert_eq!(block_on(disk.list_dir(&dir())).unwrap(), ["first.log"]);
    let error = block_on(disk.open(&second, OpenMode::Existing))
        .err()
        .unwrap();
    assert_eq!(error.kind(), io::ErrorKind::NotFound);

    // An unsynced rename is lost by DropAll and kept by KeepAll; a synced one survives.
    block_on(disk.rename(&first, &second)).unwrap();
    disk.crash(CrashMode::DropAll);
    assert_eq!(block_on(disk.list_dir(&dir())).unwrap(), ["first.log"]);
    block_on(disk.rename(&first, &second)).unwrap();
    disk.crash(CrashMode::KeepAll);
    assert_eq!(block_on(disk.list_dir(&dir())).unwrap(), ["second.log"]);
    block_on(disk.rename(&second, &first)).unwrap();
    block_on(disk.sync_dir(&dir())).unwrap();
    disk.crash(CrashMode::DropAll);
    assert_eq!(block_on(disk.list_dir(&dir())).unwrap(), ["first.log"]);
    // Directories made by create_dir_all are durable at once.
    assert_eq!(disk.durable_list_dir(Path::new("/data")).unwrap(), ["p0"]);
}

#[test]
fn crash_random_keeps_a_prefix_of_directory_operations() {
    // Creates a, b, c, d in order without sync_dir: any prefix may survive, nothing else.
    let names = ["a", "b", "c", "d"];
    let mut survivors_seen = std::collections::BTreeSet::new();
    for seed in SEEDS {
        println!("seed {seed}");
        let disk = disk(seed);
        for name in names {
            block_on(disk.open(&dir().join(name), OpenMode::CreateNew)).unwrap();
        }
        disk.crash(CrashMode::Random);
        let listed = block_on(disk.list_dir(&dir())).unwrap();
        assert_eq!(listed, names[..listed.len()], "seed {seed}");
        survivors_seen.insert(listed.len());
    }
    assert!(survivors_seen.len() > 1, "{survivors_seen:?}");
}

/// A fixed workload with every kind of crash; returns the durable images it leaves.
fn workload(seed: u64) -> Vec<Vec<u8>> {
    let disk = disk(seed);
    let mut images = Vec::new();
    for mode in [CrashMode::Torn, CrashMode::Random, CrashMode::Torn] {
        let file = match block_on(disk.open(&segment(), OpenMode::Existing)) {
            Ok(file) => file,
            Err(_) => create_segment(&disk),
        };
        for block in 0..8u8 {
            write(&file, u64::from(block) * BLOCK_BYTES, 1, block).unwrap();
            if block % 3 == 0 {
                block_on(file.sync()).unwrap();
            }
        }
        disk.crash(mode);
        images.push(disk.durable_contents(&segment()).unwrap_or_default());
    }
    images
}

#[test]
fn same_seed_same_operations_same_durable_image() {
    for seed in SEEDS {
        println!("seed {seed}");
        assert_eq!(workload(seed), workload(seed), "seed {seed}");
    }
    let distinct: std::collections::BTreeSet<_> =
        SEEDS.iter().map(|seed| workload(*seed)).collect();
    assert!(distinct.len() > 1, "the seed must matter");
}

#[test]
#[should_panic(expected = "waiting on something other than the simulated disk")]
fn block_on_rejects_a_future_that_waits() {
    block_on(std::future::pending::<()>());
}
