//! Goal: the log's recovery rules hold on real files (ext4, O_DIRECT through glommio), when
//! segment and index files are truncated or corrupted at random positions behind its back.
//!
//! Method: each case writes a log with the real `GlommioDisk` in a temp dir under /tmp, stops
//! it (cleanly, or by dropping it without close, which is what a process crash leaves), damages
//! one file with std::fs at a seeded random position, reopens and checks:
//! - the log opens, or refuses with a typed error that names the file; it never panics;
//! - every batch it serves is byte-identical to the batch appended at that offset, and offsets
//!   are contiguous from the log start (a damaged batch is never served);
//! - damaged index files are rebuilt and lose nothing.
//!
//! Seeds are printed; replay one with `RINGBUS_FILE_SEED=<seed>`.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use common::{Rng, batch, read_all, stored};
use glommio::LocalExecutorBuilder;
use storage::disk::glommio::{DirectIo, GlommioDisk};
use storage::{Log, LogConfig, Offset, OpenError, ReadError};

/// Runs one test on its own thread and glommio executor: glommio's per-device probe state is
/// per thread, so tests do not disturb each other.
fn run<F, Fut>(test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    std::thread::spawn(move || {
        LocalExecutorBuilder::default()
            .io_memory(1 << 20)
            .make()
            .expect("glommio executor starts")
            .run(test())
    })
    .join()
    .expect("test thread");
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 256 << 10,
        segment_age_ms_max: None,
        retention_ms: None,
        retention_bytes: None,
        index_interval_bytes: 4096,
        write_chunk_bytes: 64 << 10,
        write_ahead_chunks: 2,
        // Smaller than a segment: the file of each segment is extended several times.
        preallocate_bytes: 96 << 10,
        cache_bytes_max: 0,
        batch_bytes_max: 1 << 20,
        flush_policy: storage::FlushPolicy::EveryBatch,
    }
}

/// Writes ~700 KiB of batches (3 segments), syncing every few batches; returns what was stored.
async fn write_log(dir: &Path, clean_close: bool) -> Vec<Bytes> {
    let disk = GlommioDisk::open_dir(dir, DirectIo::Required)
        .await
        .expect("ext4 /tmp supports O_DIRECT");
    let (mut log, _) = Log::open(disk, dir, config(), 1_000).await.expect("open");
    let mut expected = Vec::new();
    for i in 0..120usize {
        let b = batch(1 + i % 4, 500 + (i * 131) % 3000, 1_000 + i as i64);
        let appended = log.append(b.clone(), 1_000).await.expect("append");
        expected.push(stored(&b, appended.base_offset));
        if i % 5 == 4 {
            log.sync(1_000).await.expect("sync");
        }
    }
    log.sync(1_000).await.expect("sync");
    if clean_close {
        log.close(1_000).await.expect("close");
    }
    expected
}

/// Opens the log and checks what it serves against what was stored. Returns the open result
/// kind and the number of batches served.
async fn reopen_and_check(dir: &Path, expected: &[Bytes], seed: u64) -> Result<usize, String> {
    let disk = GlommioDisk::open_dir(dir, DirectIo::Required)
        .await
        .expect("disk");
    let (log, _report) = match Log::open(disk, dir, config(), 2_000).await {
        Ok(opened) => opened,
        Err(OpenError::Corruption(corruption)) => {
            assert!(
                corruption.path.starts_with(dir),
                "seed {seed}: error names the file"
            );
            return Err(corruption.to_string());
        }
        Err(other) => return Err(other.to_string()),
    };
    // Read batch by batch so a corrupted batch in a trusted segment shows up as a read error.
    let mut served = 0;
    let mut next = log.log_start();
    while next < log.written_end() {
        match log.read(next, 1).await {
            Ok(read) => {
                for b in read.batches {
                    assert_eq!(
                        b, expected[served],
                        "seed {seed}: batch {served} differs from what was appended"
                    );
                    served += 1;
                }
                next = read.next_offset;
            }
            Err(ReadError::Corruption(corruption)) => return Err(corruption.to_string()),
            Err(other) => panic!("seed {seed}: unexpected read error {other}"),
        }
    }
    Ok(served)
}

fn segment_files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

fn seeds() -> Vec<u64> {
    match std::env::var("RINGBUS_FILE_SEED") {
        Ok(seed) => vec![seed.parse().expect("a number")],
        Err(_) => (1..=12).collect(),
    }
}

#[test]
fn real_files_round_trip_through_clean_and_unclean_restarts() {
    for clean in [true, false] {
        run(move || async move {
            let dir = tempfile::tempdir_in("/tmp").expect("tempdir");
            let path = dir.path().to_path_buf();
            {
                let expected = write_log(&path, clean).await;
                assert_eq!(
                    reopen_and_check(&path, &expected, 0).await,
                    Ok(expected.len())
                );
                // And the log reads the same through the public read_all helper.
                let disk = GlommioDisk::open_dir(&path, DirectIo::Required)
                    .await
                    .expect("disk");
                let (log, report) = Log::open(disk, &path, config(), 3_000).await.expect("open");
                assert_eq!(read_all(&log).await, expected);
                assert!(log.segment_bases().len() >= 3, "segments rolled");
                assert_eq!(report.truncated_bytes, 0);
            }
        });
    }
}

#[test]
fn a_truncated_active_segment_keeps_every_whole_batch_before_the_cut() {
    for seed in seeds() {
        run(move || async move {
            let dir = tempfile::tempdir_in("/tmp").expect("tempdir");
            let path = dir.path().to_path_buf();
            {
                let expected = write_log(&path, false).await;
                let active = segment_files(&path, "log").pop().expect("a segment");
                // Past the data the file holds its preallocated zero tail; cut inside the data.
                let size = data_end(&active);
                let mut rng = Rng::with_seed(seed * 7919 + 1);
                let cut = 4096 + rng.u64(..size - 4096);
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&active)
                    .expect("open")
                    .set_len(cut)
                    .expect("truncate");
                // Truncation removes bytes from the end: indistinguishable from a torn tail
                // after an unclean stop, so the log opens and serves a prefix.
                let served = reopen_and_check(&path, &expected, seed)
                    .await
                    .unwrap_or_else(|error| panic!("seed {seed}: cut at {cut}: {error}"));
                assert!(served < expected.len() || cut >= size - 4096, "seed {seed}");
                // Recovering again gives the same prefix.
                assert_eq!(reopen_and_check(&path, &expected, seed).await, Ok(served));
            }
        });
    }
}

static DETECTED: AtomicUsize = AtomicUsize::new(0);
static SERVED_INTACT: AtomicUsize = AtomicUsize::new(0);

#[test]
fn a_corrupted_segment_is_never_served_and_corruption_is_named() {
    for seed in seeds() {
        for clean in [true, false] {
            run(move || async move {
                let dir = tempfile::tempdir_in("/tmp").expect("tempdir");
                let path = dir.path().to_path_buf();
                {
                    let expected = write_log(&path, clean).await;
                    let segments = segment_files(&path, "log");
                    let mut rng = Rng::with_seed(seed * 104_729 + u64::from(clean));
                    let victim = &segments[rng.usize(..segments.len())];
                    let size = std::fs::metadata(victim).expect("stat").len();
                    let position = rng.u64(..size);
                    let file = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(victim)
                        .expect("open");
                    let mut byte = [0u8; 1];
                    file.read_exact_at(&mut byte, position).expect("read");
                    byte[0] ^= 1 << rng.u64(..8);
                    file.write_all_at(&byte, position).expect("write");
                    drop(file);
                    // Either it opens and serves only intact batches (the damage was in
                    // padding, in a torn-looking tail, or is caught by a read), or it refuses
                    // with a corruption error. Both checks are inside reopen_and_check.
                    match reopen_and_check(&path, &expected, seed).await {
                        Ok(_) => SERVED_INTACT.fetch_add(1, Ordering::Relaxed),
                        Err(_) => DETECTED.fetch_add(1, Ordering::Relaxed),
                    };
                }
            });
        }
    }
    let (detected, intact) = (
        DETECTED.load(Ordering::Relaxed),
        SERVED_INTACT.load(Ordering::Relaxed),
    );
    eprintln!("corruption detected in {detected} cases, intact data served in {intact}");
    if std::env::var("RINGBUS_FILE_SEED").is_err() {
        assert!(
            detected > 0,
            "no damage was ever detected: the check is not working"
        );
    }
}

#[test]
fn damaged_or_missing_index_files_are_rebuilt_and_lose_nothing() {
    for seed in seeds() {
        run(move || async move {
            let dir = tempfile::tempdir_in("/tmp").expect("tempdir");
            let path = dir.path().to_path_buf();
            {
                let expected = write_log(&path, true).await;
                let mut rng = Rng::with_seed(seed * 31 + 5);
                let mut indexes = segment_files(&path, "index");
                indexes.extend(segment_files(&path, "timeindex"));
                let victim = &indexes[rng.usize(..indexes.len())];
                // Damage only the bytes the file's CRC covers (16-byte prefix, payload, CRC);
                // the zeros that fill the rest of its block carry nothing.
                let contents = std::fs::read(victim).expect("read index");
                let payload_bytes = u32::from_le_bytes(contents[12..16].try_into().unwrap());
                let used = 16 + u64::from(payload_bytes) + 4;
                match rng.u64(..3) {
                    0 => std::fs::remove_file(victim).expect("remove"),
                    1 => std::fs::OpenOptions::new()
                        .write(true)
                        .open(victim)
                        .expect("open")
                        .set_len(rng.u64(..used))
                        .expect("truncate"),
                    _ => {
                        let file = std::fs::OpenOptions::new()
                            .write(true)
                            .open(victim)
                            .expect("open");
                        let position = rng.u64(..used);
                        let flipped = [contents[position as usize] ^ 0x40];
                        file.write_all_at(&flipped, position).expect("write");
                    }
                }
                let disk = GlommioDisk::open_dir(&path, DirectIo::Required)
                    .await
                    .expect("disk");
                let (log, report) = Log::open(disk, &path, config(), 2_000)
                    .await
                    .unwrap_or_else(|error| panic!("seed {seed}: {error}"));
                assert_eq!(report.rebuilt_indexes.len(), 1, "seed {seed}: {report:?}");
                assert_eq!(read_all(&log).await, expected, "seed {seed}");
                assert_eq!(log.written_end(), Offset(expected_end(&expected)));
            }
        });
    }
}

/// The end of the last block of `path` that holds a non-zero byte: where its data ends, if a
/// preallocated zero tail follows.
fn data_end(path: &Path) -> u64 {
    let contents = std::fs::read(path).expect("read segment");
    let last = contents.iter().rposition(|byte| *byte != 0).expect("data");
    (last as u64 + 1).div_ceil(4096) * 4096
}

#[test]
fn an_unclean_stop_keeps_the_preallocated_tail_and_recovers_every_batch() {
    run(|| async {
        let dir = tempfile::tempdir_in("/tmp").expect("tempdir");
        let path = dir.path().to_path_buf();
        // Dropped without close: what a process crash leaves on ext4.
        let mut expected = write_log(&path, false).await;
        let segments = segment_files(&path, "log");
        assert!(segments.len() >= 3, "segments rolled");
        // Rolled segments were cut back to their data; the active one is longer than its
        // data: allocate extended it with zeros ahead of the writes.
        for closed in &segments[..segments.len() - 1] {
            let size = std::fs::metadata(closed).expect("stat").len();
            assert_eq!(
                size,
                data_end(closed),
                "{} keeps a zero tail",
                closed.display()
            );
        }
        let active = segments.last().expect("a segment");
        let size = std::fs::metadata(active).expect("stat").len();
        let data = data_end(active);
        assert!(
            size > data,
            "no preallocated tail: {size} bytes, data to {data}"
        );

        let disk = GlommioDisk::open_dir(&path, DirectIo::Required)
            .await
            .expect("disk");
        let (mut log, report) = Log::open(disk, &path, config(), 2_000).await.expect("open");
        assert!(!report.clean);
        assert_eq!(
            report.truncated_bytes, 0,
            "the zero tail is not a torn tail"
        );
        assert_eq!(read_all(&log).await, expected);
        assert_eq!(
            std::fs::metadata(active).expect("stat").len(),
            size,
            "recovery keeps the zero tail"
        );
        // Appends go on into the tail: the file does not grow.
        let b = batch(2, 700, 5_000);
        let appended = log.append(b.clone(), 2_000).await.expect("append");
        expected.push(stored(&b, appended.base_offset));
        log.sync(2_000).await.expect("sync");
        assert_eq!(std::fs::metadata(active).expect("stat").len(), size);
        // A clean close cuts the tail: every segment then ends with its data.
        log.close(2_000).await.expect("close");
        for segment in segment_files(&path, "log") {
            let size = std::fs::metadata(&segment).expect("stat").len();
            assert_eq!(
                size,
                data_end(&segment),
                "{} keeps a zero tail",
                segment.display()
            );
        }
        let disk = GlommioDisk::open_dir(&path, DirectIo::Required)
            .await
            .expect("disk");
        let (log, report) = Log::open(disk, &path, config(), 3_000).await.expect("open");
        assert!(report.clean);
        assert_eq!(read_all(&log).await, expected);
    });
}

fn expected_end(batches: &[Bytes]) -> u64 {
    let last = batches.last().expect("non-empty");
    schema::batch::verify(last).expect("valid").last_offset() as u64 + 1
}
