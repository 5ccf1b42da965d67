//! Goal: the real disk (`GlommioDisk`, O_DIRECT files on io_uring) keeps the disk contract
//! on a real filesystem, refuses a filesystem without direct I/O with a clear, typed error,
//! and, when asked, falls back to buffered files with the same contract.
//!
//! Method: each test runs one glommio executor on its own thread (glommio's per-device probe
//! state is per thread, so tests do not disturb each other) over a temp dir under /tmp, which
//! must be on a filesystem with O_DIRECT (ext4 here). tmpfs tests use /dev/shm. The probe
//! trap itself is tested in glommio_probe.rs.

use std::future::Future;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use glommio::LocalExecutorBuilder;
use storage::disk::glommio::{DirectIo, DiskOpenError, GlommioDisk, GlommioFile, IoMode};
use storage::disk::{BLOCK_BYTES, Disk, File, OpenMode};
use tempfile::TempDir;

const BLOCK: usize = BLOCK_BYTES as usize;

/// Runs `test` on a fresh executor. The registered-buffer arena is kept small: `ulimit -l`
/// is 8 MiB here, and tests run in parallel.
fn run<F, Fut>(test: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .make()
        .expect("glommio executor starts")
        .run(test());
}

fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("ringbus-glommio-disk-")
        .tempdir_in("/tmp")
        .unwrap()
}

async fn write(file: &GlommioFile, position: u64, blocks: usize, byte: u8) -> io::Result<()> {
    let mut buffer = file.alloc_buffer(blocks * BLOCK);
    buffer.as_mut().fill(byte);
    file.write_at(buffer, position).await
}

/// The filesystem type mounted at `mount_point`, from /proc/mounts (the last mount wins).
fn filesystem_at(mount_point: &str) -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let _source = fields.next()?;
            (fields.next()? == mount_point).then(|| fields.next().map(str::to_owned))?
        })
        .next_back()
}

/// A fresh directory under /dev/shm if that is a tmpfs; `None` (with a note) otherwise.
fn tmpfs_dir() -> Option<TempDir> {
    if !Path::new("/dev/shm").exists() {
        println!("note: /dev/shm is absent, so the tmpfs case cannot be checked here");
        return None;
    }
    let filesystem = filesystem_at("/dev/shm");
    if filesystem.as_deref() != Some("tmpfs") {
        println!("note: /dev/shm is {filesystem:?}, not tmpfs: the tmpfs case is not checked");
        return None;
    }
    Some(
        tempfile::Builder::new()
            .prefix("ringbus-glommio-disk-")
            .tempdir_in("/dev/shm")
            .unwrap(),
    )
}

/// The whole file contract, for either I/O mode.
async fn check_file_contract(disk: &GlommioDisk, dir: &Path) {
    let path = dir.join("00000000.log");
    let file = disk.open(&path, OpenMode::CreateNew).await.unwrap();
    assert_eq!(file.path(), path.as_path());
    assert_eq!(file.size().await.unwrap(), 0);
    assert!(file.read_at(0, 100).await.unwrap().is_empty());

    let buffer = file.alloc_buffer(4 * BLOCK);
    assert!(
        buffer.as_ref().iter().all(|byte| *byte == 0),
        "buffers start zeroed"
    );
    drop(buffer);

    let mut buffer = file.alloc_buffer(2 * BLOCK);
    for (index, byte) in buffer.as_mut().iter_mut().enumerate() {
        *byte = (index % 251) as u8;
    }
    let expected = buffer.as_ref().to_vec();
    file.write_at(buffer, 0).await.unwrap();
    file.sync().await.unwrap();
    assert_eq!(file.size().await.unwrap(), 2 * BLOCK_BYTES);

    // Whole, unaligned, and past-the-end reads.
    assert_eq!(file.read_at(0, 2 * BLOCK).await.unwrap(), expected);
    assert_eq!(file.read_at(100, 5000).await.unwrap(), expected[100..5100]);
    assert_eq!(
        file.read_at(2 * BLOCK_BYTES - 7, 100).await.unwrap(),
        expected[2 * BLOCK - 7..]
    );
    assert!(file.read_at(3 * BLOCK_BYTES, 100).await.unwrap().is_empty());

    // A freshly allocated buffer is zero even where glommio reused arena memory.
    let reused = file.alloc_buffer(2 * BLOCK);
    assert!(reused.as_ref().iter().all(|byte| *byte == 0));

    // allocate extends the file with allocated zeros, and never shrinks it.
    file.allocate(64 * BLOCK_BYTES).await.unwrap();
    assert_eq!(file.size().await.unwrap(), 64 * BLOCK_BYTES);
    let metadata = std::fs::metadata(&path).unwrap();
    assert_eq!(
        metadata.len(),
        64 * BLOCK_BYTES,
        "the filesystem sees the size"
    );
    assert!(
        metadata.blocks() * 512 >= 64 * BLOCK_BYTES,
        "{} sectors allocated",
        metadata.blocks()
    );
    assert_eq!(file.read_at(0, 2 * BLOCK).await.unwrap(), expected);
    let tail = file.read_at(2 * BLOCK_BYTES, 62 * BLOCK).await.unwrap();
    assert_eq!(tail.len(), 62 * BLOCK);
    assert!(
        tail.iter().all(|byte| *byte == 0),
        "the extension reads as zeros"
    );
    file.allocate(8 * BLOCK_BYTES).await.unwrap();
    file.allocate(0).await.unwrap();
    assert_eq!(file.size().await.unwrap(), 64 * BLOCK_BYTES);
    // A write inside the extension leaves the size alone.
    write(&file, 10 * BLOCK_BYTES, 1, 0x5a).await.unwrap();
    assert_eq!(file.size().await.unwrap(), 64 * BLOCK_BYTES);
    assert_eq!(
        file.read_at(10 * BLOCK_BYTES, BLOCK).await.unwrap(),
        vec![0x5a; BLOCK]
    );

    file.truncate(BLOCK_BYTES).await.unwrap();
    assert_eq!(file.size().await.unwrap(), BLOCK_BYTES);
    file.truncate(3 * BLOCK_BYTES).await.unwrap();
    let tail = file.read_at(BLOCK_BYTES, 2 * BLOCK).await.unwrap();
    assert!(tail.iter().all(|byte| *byte == 0), "truncate zero-extends");
    write(&file, 2 * BLOCK_BYTES, 1, 0xee).await.unwrap();
    file.sync().await.unwrap();
    file.close().await.unwrap();

    // The data is there for a new handle, and for the plain filesystem.
    let file = disk.open(&path, OpenMode::Existing).await.unwrap();
    assert_eq!(file.read_at(0, BLOCK).await.unwrap(), expected[..BLOCK]);
    assert_eq!(
        file.read_at(2 * BLOCK_BYTES, BLOCK).await.unwrap(),
        vec![0xee; BLOCK]
    );
    file.close().await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap()[..BLOCK], expected[..BLOCK]);
}

/// The directory operations and open modes, for either I/O mode.
async fn check_directory_operations(disk: &GlommioDisk, dir: &Path) {
    disk.create_dir_all(dir).await.unwrap();
    let path = dir.join("00000000.log");
    disk.open(&path, OpenMode::CreateNew)
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let error = disk.open(&path, OpenMode::CreateNew).await.err().unwrap();
    assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
    assert!(error.to_string().contains("00000000.log"), "{error}");

    let missing = dir.join("missing.log");
    let error = disk.open(&missing, OpenMode::Existing).await.err().unwrap();
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
    assert!(
        error.to_string().contains(&*missing.to_string_lossy()),
        "{error}"
    );

    let nested = dir.join("topic-a").join("p7");
    disk.create_dir_all(&nested).await.unwrap();
    disk.create_dir_all(&nested).await.unwrap();
    assert!(nested.is_dir());
    let moved = nested.join("moved.log");
    disk.rename(&path, &moved).await.unwrap();
    disk.sync_dir(dir).await.unwrap();
    disk.sync_dir(&nested).await.unwrap();
    assert_eq!(disk.list_dir(&nested).await.unwrap(), ["moved.log"]);

    // The probe file is hidden from listings.
    let mut names = disk.list_dir(dir).await.unwrap();
    names.sort();
    assert_eq!(names, ["topic-a"]);

    disk.remove(&moved).await.unwrap();
    disk.sync_dir(&nested).await.unwrap();
    assert!(disk.list_dir(&nested).await.unwrap().is_empty());
    let error = disk.remove(&moved).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
    assert!(error.to_string().contains("moved.log"), "{error}");
    let error = disk.sync_dir(&dir.join("nope")).await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
}

#[test]
fn direct_file_contract() {
    let temp = temp_dir();
    run(|| async move {
        let dir = temp.path().join("data");
        let disk = GlommioDisk::open_dir(&dir, DirectIo::Required)
            .await
            .unwrap();
        assert_eq!(disk.io_mode(), IoMode::Direct);
        assert_eq!(disk.root(), dir.as_path());
        check_file_contract(&disk, &dir).await;
    });
}

#[test]
fn direct_directory_operations() {
    let temp = temp_dir();
    run(|| async move {
        let dir = temp.path().join("data");
        let disk = GlommioDisk::open_dir(&dir, DirectIo::Required)
            .await
            .unwrap();
        check_directory_operations(&disk, &dir).await;
    });
}

#[test]
fn open_dir_twice_on_one_shard_is_fine() {
    let temp = temp_dir();
    run(|| async move {
        let first = temp.path().join("a");
        let second = temp.path().join("b");
        let disk = GlommioDisk::open_dir(&first, DirectIo::Required)
            .await
            .unwrap();
        write(
            &disk
                .open(&first.join("x"), OpenMode::CreateNew)
                .await
                .unwrap(),
            0,
            1,
            1,
        )
        .await
        .unwrap();
        let other = GlommioDisk::open_dir(&second, DirectIo::Required)
            .await
            .unwrap();
        assert_eq!(other.io_mode(), IoMode::Direct);
    });
}

#[test]
#[should_panic(expected = "position 512 is not a multiple of 4096")]
fn misaligned_write_position_panics() {
    let temp = temp_dir();
    run(|| async move {
        let dir = temp.path().to_path_buf();
        let disk = GlommioDisk::open_dir(&dir, DirectIo::Required)
            .await
            .unwrap();
        let file = disk
            .open(&dir.join("x"), OpenMode::CreateNew)
            .await
            .unwrap();
        let _ = write(&file, 512, 1, 1).await;
    });
}

#[test]
#[should_panic(expected = "is not a multiple of 4096")]
fn misaligned_buffer_length_panics() {
    let temp = temp_dir();
    run(|| async move {
        let dir = temp.path().to_path_buf();
        let disk = GlommioDisk::open_dir(&dir, DirectIo::Required)
            .await
            .unwrap();
        let file = disk
            .open(&dir.join("x"), OpenMode::CreateNew)
            .await
            .unwrap();
        let _ = file.alloc_buffer(BLOCK + 512);
    });
}

#[test]
fn tmpfs_is_refused_with_a_typed_error_naming_dir_and_fix() {
    let Some(temp) = tmpfs_dir() else { return };
    run(|| async move {
        let dir = temp.path().join("data");
        let error = GlommioDisk::open_dir(&dir, DirectIo::Required)
            .await
            .err()
            .unwrap();
        assert!(
            matches!(error, DiskOpenError::DirectIoUnsupported { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(&*dir.to_string_lossy()), "{message}");
        assert!(message.contains("tmpfs"), "{message}");
        assert!(
            message.contains("supports O_DIRECT, such as ext4 or XFS"),
            "{message}"
        );
        assert!(message.contains("buffered-I/O fallback"), "{message}");
    });
}

#[test]
fn tmpfs_with_buffered_fallback_keeps_the_contract() {
    let Some(temp) = tmpfs_dir() else { return };
    run(|| async move {
        let dir = temp.path().join("data");
        let disk = GlommioDisk::open_dir(&dir, DirectIo::BufferedFallback)
            .await
            .unwrap();
        assert_eq!(disk.io_mode(), IoMode::Buffered);
        check_file_contract(&disk, &dir).await;
        check_directory_operations(&disk, &dir.join("ops")).await;
    });
}

#[test]
fn unprobed_device_is_refused() {
    let Some(shm) = tmpfs_dir() else { return };
    let temp = temp_dir();
    run(|| async move {
        let dir = temp.path().to_path_buf();
        let disk = GlommioDisk::open_dir(&dir, DirectIo::Required)
            .await
            .unwrap();
        let elsewhere: PathBuf = shm.path().join("x.log");
        let error = disk
            .open(&elsewhere, OpenMode::CreateNew)
            .await
            .err()
            .unwrap();
        let message = error.to_string();
        assert!(message.contains("not probed"), "{message}");
        assert!(message.contains(&*elsewhere.to_string_lossy()), "{message}");
        assert!(!elsewhere.exists());
    });
}

#[test]
fn direct_disk_refuses_files_on_a_probed_tmpfs() {
    let Some(shm) = tmpfs_dir() else { return };
    let temp = temp_dir();
    run(|| async move {
        let dir = temp.path().to_path_buf();
        let disk = GlommioDisk::open_dir(&dir, DirectIo::Required)
            .await
            .unwrap();
        // Another disk on this shard probed the tmpfs and accepted buffered files there...
        GlommioDisk::open_dir(shm.path(), DirectIo::BufferedFallback)
            .await
            .unwrap();
        // ...but this one requires direct I/O.
        let elsewhere = shm.path().join("x.log");
        let error = disk
            .open(&elsewhere, OpenMode::CreateNew)
            .await
            .err()
            .unwrap();
        assert_eq!(error.kind(), io::ErrorKind::Unsupported);
        assert!(
            error.to_string().contains("direct I/O is required"),
            "{error}"
        );
    });
}

#[test]
fn a_duplicate_of_a_direct_file_syncs_and_reads_the_same_file_and_a_buffered_one_has_none() {
    let temp = temp_dir();
    run(|| async move {
        let dir = temp.path().join("data");
        let disk = GlommioDisk::open_dir(&dir, DirectIo::Required)
            .await
            .unwrap();
        let file = disk
            .open(&dir.join("00000000.log"), OpenMode::CreateNew)
            .await
            .unwrap();
        write(&file, 0, 1, 7).await.unwrap();
        let duplicate = file.duplicate().unwrap();
        assert_eq!(duplicate.path(), file.path());
        duplicate.sync().await.unwrap();
        assert_eq!(duplicate.read_at(0, 4).await.unwrap(), vec![7u8; 4]);
        duplicate.close().await.unwrap();
        // Closing the duplicate leaves the first handle open.
        write(&file, BLOCK_BYTES, 1, 8).await.unwrap();
        file.sync().await.unwrap();
        assert_eq!(file.size().await.unwrap(), 2 * BLOCK_BYTES);
        file.close().await.unwrap();
    });
    let Some(shm) = tmpfs_dir() else { return };
    run(|| async move {
        let dir = shm.path().join("data");
        let disk = GlommioDisk::open_dir(&dir, DirectIo::BufferedFallback)
            .await
            .unwrap();
        let file = disk
            .open(&dir.join("00000000.log"), OpenMode::CreateNew)
            .await
            .unwrap();
        let Err(error) = file.duplicate() else {
            panic!("buffered files have no duplicate");
        };
        assert_eq!(error.kind(), io::ErrorKind::Unsupported);
        file.close().await.unwrap();
    });
}
