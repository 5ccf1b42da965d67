//! Goal: each rule of the partition log, one test per rule, on the simulated disk.
//!
//! Method: drive a `Log` over `SimDisk` (deterministic, no io_uring) and check what it returns
//! and what the simulated disk saw (sync counts, durable rewrites, crash outcomes). The
//! randomized crash checker is `crash_sim.rs`; these tests pin the individual behaviours.

mod common;

use std::path::Path;

use common::{batch, read_all, small_config, stored};
use storage::disk::Disk;
use storage::disk::sim::{CrashMode, SimDisk, block_on};
use storage::{AppendError, Log, LogConfig, Offset, OpenError, ReadError};

const DIR: &str = "/sim/topic-0";

fn open(disk: &SimDisk, config: LogConfig) -> Log<SimDisk> {
    block_on(Log::open(disk.clone(), Path::new(DIR), config, 1_000))
        .expect("open")
        .0
}

#[test]
fn appended_batches_read_back_byte_identical_across_rolls_and_restarts() {
    let disk = SimDisk::new(1);
    let mut log = open(&disk, small_config());
    let mut expected = Vec::new();
    for i in 0..200 {
        let b = batch(1 + i % 5, 100 + (i * 37) % 900, 1_000 + i as i64);
        let appended = block_on(log.append(b.clone(), 1_000)).expect("append");
        assert_eq!(appended.base_offset, Offset(expected_end(&expected)));
        expected.push(stored(&b, appended.base_offset));
        if i % 7 == 0 {
            block_on(log.sync(1_000)).expect("sync");
        }
    }
    block_on(log.sync(1_000)).expect("sync");
    assert!(
        log.segment_bases().len() > 3,
        "small segments must have rolled"
    );
    assert_eq!(block_on(read_all(&log)), expected);

    block_on(log.close(1_000)).expect("close");
    let (log, report) = block_on(Log::open(
        disk.clone(),
        Path::new(DIR),
        small_config(),
        2_000,
    ))
    .expect("reopen");
    assert!(
        report.clean,
        "a clean close must let the next open skip the scan"
    );
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(block_on(read_all(&log)), expected);
    assert_eq!(disk.durable_rewrites(), 0);
}

fn expected_end(batches: &[bytes::Bytes]) -> u64 {
    batches
        .last()
        .map(|b| {
            let header = schema::batch::verify(b).expect("valid");
            header.last_offset() as u64 + 1
        })
        .unwrap_or(0)
}

#[test]
fn durability_levels_are_ordered_and_reads_see_only_written_data() {
    let disk = SimDisk::new(2);
    let mut log = open(&disk, small_config());
    block_on(log.append(batch(3, 10, 5), 1_000)).expect("append");
    assert_eq!(log.appended_end(), Offset(3));
    assert_eq!(log.written_end(), Offset(0));
    let read = block_on(log.read(Offset(0), 1 << 20)).expect("read");
    assert!(
        read.batches.is_empty(),
        "appended but unwritten data must not be readable"
    );
    assert_eq!(block_on(log.flush()).expect("flush"), Offset(3));
    assert_eq!(log.durable_end(), Offset(0));
    assert_eq!(
        block_on(log.read(Offset(0), 1 << 20))
            .expect("read")
            .batches
            .len(),
        1
    );
    assert_eq!(block_on(log.sync(1_000)).expect("sync"), Offset(3));
    assert_eq!(log.durable_end(), Offset(3));
}

#[test]
fn group_commit_makes_many_appends_durable_with_one_fdatasync() {
    let disk = SimDisk::new(3);
    let mut log = open(&disk, small_config());
    let before = disk.syncs();
    for _ in 0..8 {
        block_on(log.append(batch(2, 500, 5), 1_000)).expect("append");
    }
    block_on(log.sync(1_000)).expect("sync");
    assert_eq!(disk.syncs() - before, 1, "eight appends, one fdatasync");
    assert_eq!(log.durable_end(), Offset(16));
}

#[test]
fn flush_policy_says_when_a_sync_is_owed() {
    let disk = SimDisk::new(4);
    let mut config = small_config();
    config.flush_policy = storage::FlushPolicy::Bytes(10_000);
    let mut log = open(&disk, config.clone());
    assert!(!log.sync_due(1_000), "nothing pending");
    block_on(log.append(batch(1, 100, 5), 1_000)).expect("append");
    assert!(!log.sync_due(1_000));
    block_on(log.append(batch(1, 20_000, 5), 1_000)).expect("append");
    assert!(log.sync_due(1_000));

    config.flush_policy = storage::FlushPolicy::IntervalMs(100);
    let mut log = open(&SimDisk::new(5), config);
    block_on(log.append(batch(1, 100, 5), 1_000)).expect("append");
    assert!(!log.sync_due(1_050));
    assert!(log.sync_due(1_100));
}

#[test]
fn unsynced_data_is_lost_wholly_and_synced_data_survives_a_crash() {
    let disk = SimDisk::new(6);
    let mut log = open(&disk, small_config());
    let durable = batch(2, 300, 5);
    block_on(log.append(durable.clone(), 1_000)).expect("append");
    block_on(log.sync(1_000)).expect("sync");
    block_on(log.append(batch(2, 300, 5), 1_000)).expect("append");
    block_on(log.flush()).expect("flush");
    drop(log);
    disk.crash(CrashMode::DropAll);
    let (log, report) = block_on(Log::open(
        disk.clone(),
        Path::new(DIR),
        small_config(),
        1_000,
    ))
    .expect("open");
    assert!(!report.clean);
    assert_eq!(block_on(read_all(&log)), vec![stored(&durable, Offset(0))]);
    assert_eq!(log.written_end(), Offset(2));
}

#[test]
fn a_torn_tail_is_truncated_and_logged_in_the_report() {
    let disk = SimDisk::new(7);
    let mut log = open(&disk, small_config());
    block_on(log.append(batch(2, 300, 5), 1_000)).expect("append");
    block_on(log.sync(1_000)).expect("sync");
    // A large unsynced write that the crash will tear.
    for _ in 0..4 {
        block_on(log.append(batch(4, 1_000, 5), 1_000)).expect("append");
    }
    block_on(log.flush()).expect("flush");
    drop(log);
    disk.crash(CrashMode::Torn);
    let (log, _report) = block_on(Log::open(
        disk.clone(),
        Path::new(DIR),
        small_config(),
        1_000,
    ))
    .expect("open");
    assert!(log.written_end() >= Offset(2));
    for b in block_on(read_all(&log)) {
        schema::batch::verify(&b).expect("every served batch is whole");
    }
}

#[test]
fn corruption_below_the_durable_point_refuses_to_open_instead_of_truncating() {
    let disk = SimDisk::new(8);
    let mut config = small_config();
    config.segment_bytes_max = 1 << 20;
    let mut log = open(&disk, config.clone());
    for _ in 0..3 {
        block_on(log.append(batch(2, 300, 5), 1_000)).expect("append");
        block_on(log.sync(1_000)).expect("sync");
    }
    // Written after the syncs above: its durable hint says offsets < 6 are durable.
    block_on(log.append(batch(2, 300, 5), 1_000)).expect("append");
    block_on(log.sync(1_000)).expect("sync");
    drop(log);
    disk.crash(CrashMode::KeepAll);
    // Flip a bit inside the first batch's value (byte 4096 + 24 header + 100).
    let segment = Path::new(DIR).join("00000000000000000000.log");
    disk.flip_bit(&segment, 4096 + 24 + 100, 3);
    match block_on(Log::open(disk.clone(), Path::new(DIR), config, 1_000)) {
        Err(OpenError::Corruption(corruption)) => {
            assert_eq!(corruption.expected_offset, Offset(0));
            assert!(corruption.durable_end >= Offset(6));
            let message = corruption.to_string();
            assert!(message.contains("00000000000000000000.log"), "{message}");
        }
        Err(other) => panic!("expected corruption, got {other}"),
        Ok(_) => panic!("a damaged durable batch must not open"),
    }
}

#[test]
fn a_damaged_closed_segment_is_corruption_and_a_damaged_index_is_rebuilt() {
    let disk = SimDisk::new(9);
    let config = small_config();
    let mut log = open(&disk, config.clone());
    for _ in 0..60 {
        block_on(log.append(batch(3, 900, 5), 1_000)).expect("append");
    }
    block_on(log.close(1_000)).expect("close");
    let bases = {
        let (log, _) = block_on(Log::open(
            disk.clone(),
            Path::new(DIR),
            config.clone(),
            1_000,
        ))
        .expect("open");
        let bases = log.segment_bases();
        block_on(log.close(1_000)).expect("close");
        bases
    };
    assert!(bases.len() >= 3);
    // Damage the first segment's index: it is rebuilt from the segment.
    let index = Path::new(DIR).join(format!("{:020}.index", bases[0].0));
    disk.flip_bit(&index, 20, 0);
    let (log, report) = block_on(Log::open(
        disk.clone(),
        Path::new(DIR),
        config.clone(),
        1_000,
    ))
    .expect("open");
    assert_eq!(report.rebuilt_indexes, vec![bases[0]]);
    let all = block_on(read_all(&log));
    assert_eq!(all.len(), 60);
    block_on(log.close(1_000)).expect("close");

    // Damage a batch in a closed segment and remove its index so it must be scanned.
    let segment = Path::new(DIR).join(format!("{:020}.log", bases[1].0));
    disk.flip_bit(&segment, 4096 + 24 + 200, 1);
    block_on(disk.remove(&Path::new(DIR).join(format!("{:020}.index", bases[1].0))))
        .expect("remove index");
    match block_on(Log::open(disk.clone(), Path::new(DIR), config, 1_000)) {
        Err(OpenError::Corruption(corruption)) => assert_eq!(corruption.expected_offset, bases[1]),
        Err(other) => panic!("expected corruption, got {other}"),
        Ok(_) => panic!("a damaged closed segment must not open"),
    }
}

#[test]
fn an_unlimited_retention_deletes_nothing() {
    // u64::MAX is how the broker says "unlimited" for a topic (-1 on the wire); it once
    // wrapped to -1 ms and made every closed segment "too old".
    let disk = SimDisk::new(13);
    let mut config = small_config();
    config.retention_ms = Some(u64::MAX);
    config.retention_bytes = Some(u64::MAX);
    let mut log = open(&disk, config);
    for _ in 0..200 {
        block_on(log.append(batch(1, 2_000, 5), 1_000)).expect("append");
    }
    block_on(log.sync(1_000)).expect("sync");
    let before = log.segment_bases();
    assert!(before.len() > 1);
    let outcome = block_on(log.enforce_retention(i64::MAX)).expect("retention");
    assert!(outcome.deleted_segments.is_empty());
    assert_eq!(log.segment_bases(), before);
}

#[test]
fn retention_deletes_old_closed_segments_and_the_start_survives_restart() {
    let disk = SimDisk::new(10);
    let mut config = small_config();
    config.retention_bytes = Some(128 << 10);
    let mut log = open(&disk, config.clone());
    for _ in 0..200 {
        block_on(log.append(batch(1, 2_000, 5), 1_000)).expect("append");
    }
    block_on(log.sync(1_000)).expect("sync");
    let before = log.segment_bases();
    let outcome = block_on(log.enforce_retention(1_000)).expect("retention");
    assert!(!outcome.deleted_segments.is_empty());
    assert_eq!(
        outcome.deleted_segments,
        before[..outcome.deleted_segments.len()]
    );
    assert!(log.size_bytes() >= 128 << 10);
    let start = log.log_start();
    assert_eq!(start, log.segment_bases()[0]);
    match block_on(log.read(Offset(0), 1024)) {
        Err(ReadError::OffsetOutOfRange {
            requested,
            log_start,
            ..
        }) => {
            assert_eq!(requested, Offset(0));
            assert_eq!(log_start, start);
        }
        other => panic!("reading below the log start must be out of range, got {other:?}"),
    }
    // Unclean restart: the start offset is durable.
    drop(log);
    disk.crash(CrashMode::DropAll);
    let (log, _) = block_on(Log::open(
        disk.clone(),
        Path::new(DIR),
        config.clone(),
        1_000,
    ))
    .expect("open");
    assert_eq!(log.log_start(), start);
    assert_eq!(log.written_end(), Offset(200));

    // By time: everything closed is older than the retention.
    drop(log);
    let mut by_time = config;
    by_time.retention_bytes = None;
    by_time.retention_ms = Some(60_000);
    let (mut log, _) =
        block_on(Log::open(disk.clone(), Path::new(DIR), by_time, 1_000)).expect("open");
    let outcome = block_on(log.enforce_retention(1_000_000)).expect("retention");
    assert_eq!(
        log.segment_bases().len(),
        1,
        "only the active segment is left"
    );
    assert_eq!(outcome.log_start, log.segment_bases()[0]);
    assert_eq!(disk.durable_rewrites(), 0);
}

#[test]
fn delete_before_removes_only_whole_segments_below_the_offset() {
    let disk = SimDisk::new(12);
    let config = small_config();
    let mut log = open(&disk, config.clone());
    for _ in 0..200 {
        block_on(log.append(batch(1, 2_000, 5), 1_000)).expect("append");
    }
    block_on(log.sync(1_000)).expect("sync");
    let bases = log.segment_bases();
    assert!(bases.len() >= 4, "needs several segments: {bases:?}");
    // An offset inside the third segment: the first two go, the third stays whole.
    let inside = Offset(bases[2].0 + 1);
    let outcome = block_on(log.delete_before(inside, 1_000)).expect("delete");
    assert_eq!(outcome.deleted_segments, bases[..2].to_vec());
    assert_eq!(log.log_start(), bases[2]);
    assert_eq!(block_on(read_all(&log)).len(), 200 - bases[2].0 as usize);
    // Below the first remaining segment's end: nothing more to delete; never the active one.
    let outcome = block_on(log.delete_before(inside, 1_000)).expect("delete");
    assert!(outcome.deleted_segments.is_empty());
    let outcome = block_on(log.delete_before(Offset(u64::MAX), 1_000)).expect("delete");
    assert_eq!(log.segment_bases(), vec![*bases.last().unwrap()]);
    assert_eq!(outcome.log_start, *bases.last().unwrap());
    // The start survives a crash.
    drop(log);
    disk.crash(CrashMode::DropAll);
    let (log, _) = block_on(Log::open(disk.clone(), Path::new(DIR), config, 1_000)).expect("open");
    assert_eq!(log.log_start(), *bases.last().unwrap());
    assert_eq!(log.written_end(), Offset(200));
    assert_eq!(disk.durable_rewrites(), 0);
}

#[test]
fn segments_roll_by_age() {
    let disk = SimDisk::new(11);
    let mut config = small_config();
    config.segment_age_ms_max = Some(10_000);
    let mut log = open(&disk, config);
    block_on(log.append(batch(1, 10, 5), 1_000)).expect("append");
    block_on(log.append(batch(1, 10, 5), 5_000)).expect("append");
    assert_eq!(log.segment_bases().len(), 1);
    block_on(log.append(batch(1, 10, 5), 11_000)).expect("append");
    assert_eq!(log.segment_bases(), vec![Offset(0), Offset(2)]);
}

#[test]
fn lookup_by_timestamp_finds_the_first_batch_at_or_after_it() {
    let disk = SimDisk::new(12);
    let mut log = open(&disk, small_config());
    for i in 0..100i64 {
        block_on(log.append(batch(2, 700, 10_000 + i * 10), 1_000)).expect("append");
    }
    block_on(log.sync(1_000)).expect("sync");
    assert_eq!(
        block_on(log.offset_for_timestamp(0)).expect("lookup"),
        Some(Offset(0))
    );
    assert_eq!(
        block_on(log.offset_for_timestamp(10_505)).expect("lookup"),
        Some(Offset(102))
    );
    assert_eq!(
        block_on(log.offset_for_timestamp(10_500)).expect("lookup"),
        Some(Offset(100))
    );
    assert_eq!(
        block_on(log.offset_for_timestamp(99_999)).expect("lookup"),
        None
    );
}

#[test]
fn invalid_and_oversized_batches_are_refused_and_nothing_is_appended() {
    let disk = SimDisk::new(13);
    let mut config = small_config();
    config.batch_bytes_max = 4096;
    let mut log = open(&disk, config);
    let mut bad = batch(2, 100, 5);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert!(matches!(
        block_on(log.append(bad, 1_000)),
        Err(AppendError::InvalidBatch(_))
    ));
    assert!(matches!(
        block_on(log.append(batch(1, 8_000, 5), 1_000)),
        Err(AppendError::BatchTooLarge {
            bytes_max: 4096,
            ..
        })
    ));
    assert_eq!(log.appended_end(), Offset(0));
    block_on(log.append(batch(1, 10, 5), 1_000)).expect("a good batch still appends");
}

#[test]
fn a_full_disk_rolls_back_unwritten_batches_and_appends_resume_when_space_is_freed() {
    let disk = SimDisk::new(14);
    let mut config = small_config();
    // Appends only buffer; the sync below does all the writing.
    config.write_ahead_chunks = 64;
    let mut log = open(&disk, config);
    let durable = batch(1, 1_000, 5);
    block_on(log.append(durable.clone(), 1_000)).expect("append");
    block_on(log.sync(1_000)).expect("sync");
    // No space beyond what the log has reserved so far; the next sync needs more than the
    // 16 KiB reservation, so its fallocate fails.
    disk.set_space_limit(Some(disk.space_used()));
    for _ in 0..3 {
        block_on(log.append(batch(1, 10_000, 5), 1_000)).expect("append only buffers");
    }
    match block_on(log.sync(1_000)) {
        Err(AppendError::StorageFull { rolled_back, .. }) => {
            assert_eq!(rolled_back, Offset(1)..Offset(4));
        }
        other => panic!("expected a full disk, got {other:?}"),
    }
    assert_eq!(log.appended_end(), Offset(1));
    assert_eq!(block_on(read_all(&log)), vec![stored(&durable, Offset(0))]);
    disk.set_space_limit(None);
    let next = batch(1, 1_000, 5);
    let appended = block_on(log.append(next.clone(), 1_000)).expect("append after space freed");
    assert_eq!(
        appended.base_offset,
        Offset(1),
        "rolled-back offsets are reused"
    );
    block_on(log.sync(1_000)).expect("sync");
    drop(log);
    disk.crash(CrashMode::DropAll);
    let (log, _) = block_on(Log::open(
        disk.clone(),
        Path::new(DIR),
        small_config(),
        1_000,
    ))
    .expect("open");
    assert_eq!(
        block_on(read_all(&log)),
        vec![stored(&durable, Offset(0)), stored(&next, Offset(1))]
    );
    assert_eq!(disk.durable_rewrites(), 0);
}

#[test]
fn a_failed_fdatasync_stops_the_log_and_is_never_reported_as_success() {
    let disk = SimDisk::new(15);
    let mut log = open(&disk, small_config());
    block_on(log.append(batch(1, 100, 5), 1_000)).expect("append");
    disk.fail_next_sync(None);
    assert!(matches!(block_on(log.sync(1_000)), Err(AppendError::Io(_))));
    assert_eq!(log.durable_end(), Offset(0));
    assert!(matches!(
        block_on(log.sync(1_000)),
        Err(AppendError::Failed { .. })
    ));
    assert!(matches!(
        block_on(log.append(batch(1, 100, 5), 1_000)),
        Err(AppendError::Failed { .. })
    ));
    assert!(matches!(
        block_on(log.read(Offset(0), 100)),
        Err(ReadError::Failed { .. })
    ));
}

#[test]
fn the_cache_serves_tailing_reads_without_touching_the_disk() {
    let disk = SimDisk::new(16);
    let mut config = small_config();
    config.cache_bytes_max = 1 << 20;
    let mut log = open(&disk, config);
    let b = batch(2, 100, 5);
    block_on(log.append(b.clone(), 1_000)).expect("append");
    block_on(log.flush()).expect("flush");
    let reads_before = disk.read_count();
    let read = block_on(log.read(Offset(1), 1 << 20)).expect("read");
    assert_eq!(read.batches, vec![stored(&b, Offset(0))]);
    assert_eq!(
        disk.read_count(),
        reads_before,
        "a hot read must not touch the disk"
    );
}

#[test]
fn blobs_round_trip_survive_a_crash_and_damage_is_reported() {
    let disk = SimDisk::new(17);
    let dir = Path::new("/sim/metadata");
    block_on(storage::store_blob(&disk, dir, "topics", b"first")).expect("store");
    block_on(storage::store_blob(&disk, dir, "topics", b"second")).expect("replace");
    disk.crash(CrashMode::Torn);
    let path = dir.join("topics");
    assert_eq!(
        block_on(storage::load_blob(&disk, &path)).expect("load"),
        Some(b"second".to_vec())
    );
    assert_eq!(
        block_on(storage::load_blob(&disk, &dir.join("missing"))).expect("load"),
        None
    );
    disk.flip_bit(&path, 17, 2);
    assert!(matches!(
        block_on(storage::load_blob(&disk, &path)),
        Err(storage::BlobError::Damaged { .. })
    ));
}

#[test]
fn removing_a_log_dir_leaves_an_empty_log_behind() {
    let disk = SimDisk::new(18);
    let mut log = open(&disk, small_config());
    for _ in 0..40 {
        block_on(log.append(batch(2, 900, 5), 1_000)).expect("append");
    }
    block_on(log.close(1_000)).expect("close");
    block_on(storage::remove_log_dir(&disk, Path::new(DIR))).expect("remove");
    assert!(
        block_on(disk.list_dir(Path::new(DIR)))
            .expect("list")
            .is_empty()
    );
    let log = open(&disk, small_config());
    assert_eq!(log.written_end(), Offset(0));
    assert_eq!(log.log_start(), Offset(0));
}

#[test]
fn flushes_write_only_bytes_the_log_filled_never_stale_buffer_memory() {
    // Write chunks are allocated unfilled (the simulated disk fills them with UNFILLED_BYTE):
    // a flush that ends mid-block must zero and pad the rest of that block itself, and the
    // rest of the chunk must never reach the disk.
    let disk = SimDisk::new(11);
    let mut log = open(&disk, small_config());
    let mut synced = 0;
    for (i, value_bytes) in [1, 50, 300, 1_000, 3_000, 4_050, 7].into_iter().enumerate() {
        block_on(log.append(batch(1 + i % 3, value_bytes, 5), 1_000)).expect("append");
        block_on(log.sync(1_000)).expect("sync");
        synced += 1;
    }
    assert_eq!(synced, 7);
    let names = disk.durable_list_dir(Path::new(DIR)).expect("the log dir");
    let mut checked = 0;
    for name in names.iter().filter(|name| name.ends_with(".log")) {
        let contents = disk
            .durable_contents(&Path::new(DIR).join(name))
            .expect("segment contents");
        let stale = contents
            .windows(8)
            .position(|w| w.iter().all(|&b| b == storage::disk::sim::UNFILLED_BYTE));
        assert_eq!(stale, None, "{name}: unfilled buffer bytes on disk");
        checked += contents.len();
    }
    assert!(checked > 8 << 10, "checked {checked} bytes");
}

#[test]
fn a_background_sync_makes_durable_what_was_written_when_it_started_and_survives_a_crash() {
    let disk = SimDisk::new(17);
    let mut config = small_config();
    config.flush_policy = storage::FlushPolicy::IntervalMs(1_000);
    let mut log = open(&disk, config.clone());
    let first = batch(2, 100, 5);
    block_on(log.append(first.clone(), 1_000)).expect("append");
    block_on(log.flush()).expect("flush");
    assert!(log.sync_due(2_000), "the interval passed");
    let syncs_before = disk.syncs();
    let sync = block_on(log.start_background_sync(2_000))
        .expect("start")
        .expect("there is something to sync");
    assert!(log.background_sync_running());
    assert!(!log.sync_due(10_000), "one background sync at a time");
    // The log goes on while it runs: a later append and write are not covered by it.
    let second = batch(1, 100, 6);
    block_on(log.append(second.clone(), 2_000)).expect("append beside the sync");
    block_on(log.flush()).expect("flush beside the sync");
    log.poll_background_sync().expect("nothing finished yet");
    assert_eq!(log.durable_end(), Offset(0), "durable only once finished");
    block_on(sync.run());
    assert_eq!(disk.syncs(), syncs_before + 1);
    log.poll_background_sync().expect("it succeeded");
    assert!(!log.background_sync_running());
    assert_eq!(log.durable_end(), Offset(2));
    assert_eq!(log.written_end(), Offset(3));
    // What it made durable survives a power loss; the batch written after it started may not.
    drop(log);
    disk.crash(CrashMode::DropAll);
    let log = open(&disk, config);
    let read = block_on(read_all(&log));
    assert_eq!(read[0], stored(&first, Offset(0)));
    // The simulated fdatasync ran after the second write completed, so it may cover it too.
    assert!(read.len() == 1 || read[1..] == [stored(&second, Offset(2))]);
    assert_eq!(disk.durable_rewrites(), 0);
}

#[test]
fn an_in_line_sync_waits_for_the_background_one_and_never_lowers_the_level() {
    let disk = SimDisk::new(18);
    let mut log = open(&disk, small_config());
    block_on(log.append(batch(1, 100, 5), 1_000)).expect("append");
    let sync = block_on(log.start_background_sync(1_000))
        .expect("start")
        .expect("something to sync");
    block_on(log.append(batch(1, 100, 5), 1_000)).expect("append");
    // An acks=all producer's sync meanwhile: it waits for the background one, then syncs.
    let ((), synced) = block_on(futures_lite::future::zip(sync.run(), log.sync(1_000)));
    assert_eq!(synced.expect("in-line sync"), Offset(2));
    assert!(!log.background_sync_running());
    assert_eq!(log.durable_end(), Offset(2));
    // Nothing new to sync: no background sync is started.
    assert!(
        block_on(log.start_background_sync(1_000))
            .expect("start")
            .is_none()
    );
}

#[test]
fn a_failed_background_sync_stops_the_log() {
    let disk = SimDisk::new(19);
    let mut log = open(&disk, small_config());
    block_on(log.append(batch(1, 100, 5), 1_000)).expect("append");
    let sync = block_on(log.start_background_sync(1_000))
        .expect("start")
        .expect("something to sync");
    disk.fail_next_sync(None);
    block_on(sync.run());
    assert!(matches!(
        log.poll_background_sync(),
        Err(AppendError::Io(_))
    ));
    assert_eq!(log.durable_end(), Offset(0));
    assert!(log.is_failed());
    assert!(matches!(
        block_on(log.sync(1_000)),
        Err(AppendError::Failed { .. })
    ));
}

#[test]
fn an_in_line_sync_never_reports_success_over_a_failed_background_one() {
    // The background fdatasync fails while an acks=all producer's in-line sync is waiting: on
    // Linux the in-line fdatasync of the same open file could then return 0 (the error is
    // reported once), so it must never get that far.
    let disk = SimDisk::new(20);
    let mut log = open(&disk, small_config());
    block_on(log.append(batch(1, 100, 5), 1_000)).expect("append");
    let sync = block_on(log.start_background_sync(1_000))
        .expect("start")
        .expect("something to sync");
    block_on(log.append(batch(1, 100, 5), 1_000)).expect("append");
    disk.fail_next_sync(None);
    let syncs_before = disk.syncs();
    let ((), synced) = block_on(futures_lite::future::zip(sync.run(), log.sync(1_000)));
    assert!(matches!(synced, Err(AppendError::Io(_))), "{synced:?}");
    assert_eq!(
        disk.syncs(),
        syncs_before,
        "no in-line fdatasync after the failure"
    );
    assert_eq!(log.durable_end(), Offset(0));
    assert!(log.is_failed());
}

#[test]
fn a_clean_close_never_writes_its_marker_over_a_failed_background_sync() {
    let disk = SimDisk::new(22);
    let mut log = open(&disk, small_config());
    block_on(log.append(batch(1, 100, 5), 1_000)).expect("append");
    let sync = block_on(log.start_background_sync(1_000))
        .expect("start")
        .expect("something to sync");
    disk.fail_next_sync(None);
    block_on(sync.run());
    // The outcome is not taken in before the close: the close must take it in itself.
    assert!(block_on(log.close(1_000)).is_err());
    disk.crash(CrashMode::DropAll);
    let (log, report) = block_on(Log::open(
        disk.clone(),
        Path::new(DIR),
        small_config(),
        1_000,
    ))
    .expect("reopens");
    assert!(!report.clean, "no clean marker vouches for lost data");
    block_on(read_all(&log));
}

#[test]
fn a_background_sync_dropped_before_it_ran_stops_the_log_rather_than_hang_it() {
    let disk = SimDisk::new(23);
    let mut log = open(&disk, small_config());
    block_on(log.append(batch(1, 100, 5), 1_000)).expect("append");
    let sync = block_on(log.start_background_sync(1_000))
        .expect("start")
        .expect("something to sync");
    drop(sync);
    assert!(matches!(block_on(log.sync(1_000)), Err(AppendError::Io(_))));
    assert_eq!(log.durable_end(), Offset(0));
}

/// The cache reader (what the broker reads without waiting for the log's owner) returns only
/// what is below the written end it is given: nothing appended but unwritten, nothing a full
/// disk rolled back, and after the rolled-back offsets are reused, the new batches.
#[test]
fn the_cache_reader_sees_only_written_batches_across_a_full_disk_rollback() {
    let disk = SimDisk::new(16);
    let mut config = small_config();
    config.write_ahead_chunks = 64;
    // small_config caches nothing; this test is about the cache.
    config.cache_bytes_max = 1 << 20;
    let mut log = open(&disk, config);
    let reader = log.cache_reader();
    let durable = batch(1, 1_000, 5);
    block_on(log.append(durable.clone(), 1_000)).expect("append");
    // Appended, not written: the written end (0) is all a reader may ask up to.
    assert_eq!(
        reader.read(Offset(0), log.written_end(), 1 << 20),
        Some((Vec::new(), Offset(0)))
    );
    block_on(log.sync(1_000)).expect("sync");
    let written = log.written_end();
    assert_eq!(
        reader.read(Offset(0), written, 1 << 20),
        Some((vec![stored(&durable, Offset(0))], Offset(1)))
    );
    disk.set_space_limit(Some(disk.space_used()));
    for _ in 0..3 {
        block_on(log.append(batch(1, 10_000, 5), 1_000)).expect("append only buffers");
    }
    // Appended past the written end: a reader given that end sees none of them.
    assert!(
        reader
            .read(Offset(1), written, 1 << 20)
            .is_some_and(|(batches, next)| { batches.is_empty() && next == Offset(1) })
    );
    assert!(matches!(
        block_on(log.sync(1_000)),
        Err(AppendError::StorageFull { .. })
    ));
    assert_eq!(log.written_end(), written);
    disk.set_space_limit(None);
    let next = batch(1, 1_000, 5);
    block_on(log.append(next.clone(), 1_000)).expect("append after space freed");
    block_on(log.sync(1_000)).expect("sync");
    // Offset 1 again, with the new batch's bytes, not a rolled-back one's.
    assert_eq!(
        reader.read(Offset(1), log.written_end(), 1 << 20),
        Some((vec![stored(&next, Offset(1))], Offset(2)))
    );
    assert_eq!(
        reader.read(Offset(0), log.written_end(), 1 << 20),
        block_on(log.read(Offset(0), 1 << 20))
            .map(|read| Some((read.batches, read.next_offset)))
            .expect("read")
    );
}
