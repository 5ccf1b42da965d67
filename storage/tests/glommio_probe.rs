//! Goal: the glommio polled-I/O probe trap (see storage/src/disk/glommio.rs) cannot bite
//! through `GlommioDisk`, and is detected if something else sprang it first.
//!
//! Method: glommio's per-device decision is made once per thread, and each test here runs
//! on its own fresh test thread, so each starts undecided, as a fresh process would (its own
//! binary keeps it apart from the other disk tests, too). The first test follows the
//! repro from REFERENCE.md through our constructor: a new EMPTY file, 8 MiB written, synced
//! and read back. The second springs the trap with plain glommio (an empty O_DIRECT file
//! opened first) and checks that reads then fail and that `open_dir` reports it instead of
//! letting the log fail later; on a device that really supports polled I/O there is no trap,
//! and the test says so and checks only that everything works.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use glommio::LocalExecutorBuilder;
use glommio::io::OpenOptions;
use storage::disk::glommio::{DirectIo, DiskOpenError, GlommioDisk, IoMode};
use storage::disk::{Disk, File, OpenMode};

const WRITE_BYTES: usize = 8 << 20;
const CHUNK_BYTES: usize = 1 << 20;

fn run<Fut: std::future::Future<Output = ()>>(test: impl FnOnce() -> Fut) {
    LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .make()
        .expect("glommio executor starts")
        .run(test());
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ringbus-glommio-probe-")
        .tempdir_in("/tmp")
        .unwrap()
}

fn pattern(position: usize) -> u8 {
    (position % 253) as u8
}

/// The device's `queue/io_poll` setting, read the way glommio finds the device (the whole
/// disk, minor 0). `None` if sysfs does not say.
fn io_poll_enabled(dir: &Path) -> Option<bool> {
    let device = std::fs::metadata(dir).unwrap().dev();
    let sysfs = format!("/sys/dev/block/{}:0/queue/io_poll", libc::major(device));
    let value = std::fs::read_to_string(sysfs).ok()?;
    Some(value.trim() != "0")
}

#[test]
fn empty_first_file_reads_back_after_open_dir() {
    let temp = temp_dir();
    run(|| async move {
        let dir = temp.path().join("data");
        let disk = GlommioDisk::open_dir(&dir, DirectIo::Required)
            .await
            .unwrap();
        assert_eq!(disk.io_mode(), IoMode::Direct);

        let path = dir.join("00000000.log");
        let file = disk.open(&path, OpenMode::CreateNew).await.unwrap();
        assert_eq!(
            file.size().await.unwrap(),
            0,
            "the first data file starts empty"
        );
        for chunk in 0..WRITE_BYTES / CHUNK_BYTES {
            let mut buffer = file.alloc_buffer(CHUNK_BYTES);
            for (index, byte) in buffer.as_mut().iter_mut().enumerate() {
                *byte = pattern(chunk * CHUNK_BYTES + index);
            }
            let position = (chunk * CHUNK_BYTES) as u64;
            file.write_at(buffer, position).await.unwrap();
        }
        file.sync().await.unwrap();

        let read = file.read_at(0, WRITE_BYTES).await.unwrap();
        assert_eq!(read.len(), WRITE_BYTES);
        let mismatch = read
            .iter()
            .enumerate()
            .position(|(index, byte)| *byte != pattern(index));
        assert_eq!(mismatch, None, "first differing byte");
        file.close().await.unwrap();
    });
}

#[test]
fn trap_sprung_before_open_dir_is_reported() {
    let temp = temp_dir();
    let io_poll = io_poll_enabled(temp.path());
    run(|| async move {
        // Spring the trap: the first O_DIRECT file of this thread on the device is empty.
        let poisoned = temp.path().join("empty-first.log");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .dma_open(&poisoned)
            .await
            .unwrap();
        let mut buffer = file.alloc_dma_buffer(CHUNK_BYTES);
        buffer.as_bytes_mut().fill(7);
        file.write_at(buffer, 0).await.unwrap();
        file.fdatasync().await.unwrap();
        let read = file.read_at_aligned(0, CHUNK_BYTES).await;
        file.close().await.unwrap();

        let opened = GlommioDisk::open_dir(&temp.path().join("data"), DirectIo::Required).await;
        match io_poll {
            Some(false) => {
                let error = read.expect_err("the trap makes DMA reads fail");
                let error = std::io::Error::from(error);
                assert!(error.to_string().contains("os error 95"), "{error}");
                let error = opened.expect_err("open_dir detects the sprung trap");
                assert!(
                    matches!(error, DiskOpenError::PollProbeTooLate { .. }),
                    "{error:?}"
                );
                let message = error.to_string();
                assert!(
                    message.contains("before opening any other O_DIRECT file"),
                    "{message}"
                );
            }
            _ => {
                println!("note: io_poll is {io_poll:?} for this device, so there is no trap here");
                read.unwrap();
                opened.unwrap();
            }
        }
    });
}
