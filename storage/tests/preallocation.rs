//! Goal: the active segment's preallocated zero tail (`File::allocate` extends the file with
//! zeros ahead of the writes) is never mistaken for data, for a torn tail or for corruption,
//! and closed segments keep no zeros past their data.
//!
//! Method: drive a `Log` over `SimDisk`, crash it (or stop it cleanly) with a zero tail in
//! place, sometimes damaging the file through a raw handle first, reopen, and check what
//! recovery reports, what it reads, what it keeps of the file and what the log serves. The
//! simulator counts bytes read and `allocate` calls, which shows a recovery that scans and an
//! append that allocates again.

mod common;

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use common::{batch, read_all, small_config, stored};
use schema::batch::BatchBuilder;
use storage::disk::sim::{CrashMode, SimDisk, block_on};
use storage::disk::{BLOCK_BYTES, Disk, File, OpenMode};
use storage::{Log, LogConfig, Offset, OpenError, RecoveryReport};

const DIR: &str = "/sim/preallocation-0";

fn open(disk: &SimDisk, config: LogConfig) -> (Log<SimDisk>, RecoveryReport) {
    block_on(Log::open(disk.clone(), Path::new(DIR), config, 1_000)).expect("open")
}

fn segment_path(base: Offset) -> PathBuf {
    Path::new(DIR).join(format!("{:020}.log", base.0))
}

/// The end of the last block holding a non-zero byte: where the data of a segment image ends.
fn data_end(contents: &[u8]) -> u64 {
    let last = contents
        .iter()
        .rposition(|byte| *byte != 0)
        .expect("a header");
    (last as u64 + 1).div_ceil(BLOCK_BYTES) * BLOCK_BYTES
}

fn durable_len(disk: &SimDisk, base: Offset) -> u64 {
    disk.durable_contents(&segment_path(base))
        .expect("segment")
        .len() as u64
}

/// Appends `count` batches and syncs; returns them as stored.
fn append_synced(log: &mut Log<SimDisk>, count: usize) -> Vec<bytes::Bytes> {
    let mut stored_batches = Vec::new();
    for i in 0..count {
        let b = batch(1, 300 + i * 50, 5);
        let appended = block_on(log.append(b.clone(), 1_000)).expect("append");
        stored_batches.push(stored(&b, appended.base_offset));
    }
    block_on(log.sync(1_000)).expect("sync");
    stored_batches
}

#[test]
fn a_crash_keeps_the_zero_tail_and_reports_no_truncation() {
    for mode in [
        CrashMode::DropAll,
        CrashMode::KeepAll,
        CrashMode::Random,
        CrashMode::Torn,
    ] {
        let disk = SimDisk::new(21);
        let (mut log, _) = open(&disk, small_config());
        let mut expected = append_synced(&mut log, 3);
        let size = durable_len(&disk, Offset(0));
        let contents = disk.durable_contents(&segment_path(Offset(0))).unwrap();
        assert!(
            size > data_end(&contents),
            "{mode:?}: the synced file has no zero tail ({size} bytes)"
        );
        drop(log);
        disk.crash(mode);

        let (mut log, report) = open(&disk, small_config());
        assert!(!report.clean, "{mode:?}");
        assert_eq!(
            report.truncated_bytes, 0,
            "{mode:?}: zeros are not a torn tail"
        );
        assert_eq!(block_on(read_all(&log)), expected, "{mode:?}");
        assert_eq!(
            durable_len(&disk, Offset(0)),
            size,
            "{mode:?}: recovery keeps the tail"
        );
        // The log knows the file's real size: a small append goes into the tail without
        // another allocate.
        let allocations = disk.allocations();
        expected.extend(append_synced(&mut log, 1));
        assert_eq!(
            disk.allocations(),
            allocations,
            "{mode:?}: appended into the tail"
        );
        assert_eq!(durable_len(&disk, Offset(0)), size, "{mode:?}");
        drop(log);
        disk.crash(mode);
        let (log, report) = open(&disk, small_config());
        assert_eq!(report.truncated_bytes, 0, "{mode:?}");
        assert_eq!(block_on(read_all(&log)), expected, "{mode:?}");
        assert_eq!(disk.durable_rewrites(), 0, "{mode:?}");
    }
}

#[test]
fn a_torn_block_before_the_zero_tail_is_cut_and_only_it_is_counted() {
    let disk = SimDisk::new(22);
    let (mut log, _) = open(&disk, small_config());
    let expected = append_synced(&mut log, 1);
    let contents = disk.durable_contents(&segment_path(Offset(0))).unwrap();
    let data = data_end(&contents);
    assert!(
        contents.len() as u64 >= data + 2 * BLOCK_BYTES,
        "a zero tail of at least two blocks ({} bytes, data to {data})",
        contents.len()
    );
    drop(log);
    // One block of garbage right after the data, then the zeros: a torn flush.
    let file = block_on(disk.open(&segment_path(Offset(0)), OpenMode::Existing)).unwrap();
    let mut garbage = file.alloc_buffer(BLOCK_BYTES as usize);
    garbage.as_mut().fill(0xee);
    block_on(file.write_at(garbage, data)).unwrap();
    block_on(file.sync()).unwrap();
    drop(file);
    disk.crash(CrashMode::DropAll);

    let (log, report) = open(&disk, small_config());
    assert_eq!(
        report.truncated_bytes, BLOCK_BYTES,
        "the torn block only, not the zeros after it"
    );
    assert_eq!(block_on(read_all(&log)), expected);
    assert_eq!(
        durable_len(&disk, Offset(0)),
        data,
        "cut where the data ends"
    );
}

/// A batch of one record whose value is `value_bytes` zeros: its payload holds whole
/// all-zero blocks.
fn zero_valued_batch(value_bytes: usize) -> BytesMut {
    let mut builder = BatchBuilder::new(5);
    builder.push(None, Some(&vec![0u8; value_bytes]), 5, &[]);
    BytesMut::from(&builder.finish()[..])
}

#[test]
fn corruption_is_found_past_an_all_zero_block() {
    // A durable entry after an all-zero block is still evidence: the probe after the scan's
    // stop reads to the end of the file, not to the first zero block.
    let disk = SimDisk::new(23);
    let mut config = small_config();
    config.segment_bytes_max = 1 << 20;
    let (mut log, _) = open(&disk, config.clone());
    block_on(log.append(batch(1, 300, 5), 1_000)).expect("append");
    block_on(log.sync(1_000)).expect("sync");
    // Starts on a fresh block (the sync padded the last one), its durable hint is 1.
    let zeros = block_on(log.append(zero_valued_batch(12_000), 1_000)).expect("append");
    block_on(log.sync(1_000)).expect("sync");
    // Its hint says offset 1 (the zero-valued batch) is durable.
    block_on(log.append(batch(1, 300, 5), 1_000)).expect("append");
    block_on(log.sync(1_000)).expect("sync");
    drop(log);
    let path = segment_path(Offset(0));
    let contents = disk.durable_contents(&path).unwrap();
    let zeros_position = 2 * BLOCK_BYTES;
    assert_eq!(
        &contents[8192..8196],
        b"RBE1",
        "the zero-valued batch's entry"
    );
    let block = BLOCK_BYTES as usize;
    assert!(
        contents[3 * block..4 * block].iter().all(|byte| *byte == 0),
        "the test needs an all-zero block inside the batch"
    );
    assert_eq!(zeros.base_offset, Offset(1));
    disk.crash(CrashMode::KeepAll);
    // Damage the zero-valued batch's entry header (its CRC): the scan stops there.
    disk.flip_bit(&path, zeros_position + 20, 0);
    match block_on(Log::open(disk.clone(), Path::new(DIR), config, 1_000)) {
        Err(OpenError::Corruption(corruption)) => {
            assert_eq!(corruption.expected_offset, Offset(1));
            assert_eq!(corruption.position, zeros_position);
            assert!(corruption.durable_end >= Offset(2), "{corruption}");
        }
        Err(other) => panic!("expected corruption, got {other}"),
        Ok((log, report)) => panic!(
            "durable data was called a torn tail: end {}, {report:?}",
            log.written_end()
        ),
    }
}

#[test]
fn a_clean_restart_with_a_zero_tail_scans_nothing() {
    let disk = SimDisk::new(24);
    let mut config = small_config();
    config.segment_bytes_max = 4 << 20;
    let (mut log, _) = open(&disk, config.clone());
    let mut expected = Vec::new();
    for _ in 0..10 {
        expected.extend(append_synced(&mut log, 5));
    }
    let data = log.size_bytes();
    assert!(
        data > 32 << 10,
        "{data} bytes: enough that a scan would show"
    );
    block_on(log.close(1_000)).expect("close");
    assert_eq!(
        durable_len(&disk, Offset(0)),
        data,
        "a clean close cuts the tail"
    );
    // A zero tail under a clean marker (what a filesystem that lost the cut would leave).
    let file = block_on(disk.open(&segment_path(Offset(0)), OpenMode::Existing)).unwrap();
    block_on(file.allocate(1 << 20)).unwrap();
    block_on(file.sync()).unwrap();
    drop(file);

    let read_before = disk.bytes_read();
    let (mut log, report) = open(&disk, config);
    let read = disk.bytes_read() - read_before;
    assert!(report.clean, "{report:?}");
    assert_eq!(report.truncated_bytes, 0);
    // The marker, log.meta and two index files (a block each) and the segment header.
    assert!(
        read < 5 * BLOCK_BYTES,
        "a clean open read {read} bytes of a {data}-byte log"
    );
    assert_eq!(block_on(read_all(&log)), expected);
    let allocations = disk.allocations();
    expected.extend(append_synced(&mut log, 2));
    assert_eq!(disk.allocations(), allocations, "appended into the tail");
    assert_eq!(durable_len(&disk, Offset(0)), 1 << 20);
    block_on(log.close(1_000)).expect("close");
    let (log, _) = open(&disk, small_config());
    assert_eq!(block_on(read_all(&log)), expected);
}

#[test]
fn rolled_and_cleanly_closed_segments_are_cut_to_their_data() {
    let disk = SimDisk::new(25);
    let (mut log, _) = open(&disk, small_config());
    let mut expected = Vec::new();
    while log.segment_bases().len() < 3 {
        expected.extend(append_synced(&mut log, 2));
    }
    let bases = log.segment_bases();
    let mut data_bytes = 0;
    let mut file_bytes = 0;
    for (i, base) in bases.iter().enumerate() {
        let contents = disk.durable_contents(&segment_path(*base)).unwrap();
        let size = contents.len() as u64;
        data_bytes += data_end(&contents);
        file_bytes += size;
        if i + 1 < bases.len() {
            assert_eq!(size, data_end(&contents), "closed segment {base}");
        } else {
            assert!(
                size > data_end(&contents),
                "the active segment {base} has a tail"
            );
        }
    }
    // Retention by size counts data, not the preallocated tail.
    assert_eq!(log.size_bytes(), data_bytes);
    assert!(file_bytes > data_bytes);

    block_on(log.close(1_000)).expect("close");
    for base in &bases {
        let contents = disk.durable_contents(&segment_path(*base)).unwrap();
        assert_eq!(contents.len() as u64, data_end(&contents), "segment {base}");
    }
    let (log, report) = open(&disk, small_config());
    assert!(report.clean);
    assert_eq!(block_on(read_all(&log)), expected);
}

#[test]
fn a_closed_segment_with_a_zero_tail_is_accepted() {
    let disk = SimDisk::new(26);
    let (mut log, _) = open(&disk, small_config());
    let mut expected = Vec::new();
    while log.segment_bases().len() < 2 {
        expected.extend(append_synced(&mut log, 2));
    }
    let closed = log.segment_bases()[0];
    drop(log);
    // The closed segment keeps zeros past its data, as if a crash had kept a tail the roll
    // cut (a filesystem that lost the cut, or a segment written before segments were cut).
    let file = block_on(disk.open(&segment_path(closed), OpenMode::Existing)).unwrap();
    block_on(file.allocate(256 << 10)).unwrap();
    block_on(file.sync()).unwrap();
    drop(file);
    disk.crash(CrashMode::Torn);

    // Trusted from its index...
    let (log, report) = open(&disk, small_config());
    assert!(report.rebuilt_indexes.is_empty(), "{report:?}");
    assert_eq!(block_on(read_all(&log)), expected);
    drop(log);
    // ...and rescanned without it.
    for extension in ["index", "timeindex"] {
        let path = Path::new(DIR).join(format!("{:020}.{extension}", closed.0));
        block_on(disk.remove(&path)).unwrap();
    }
    block_on(disk.sync_dir(Path::new(DIR))).unwrap();
    let (log, report) = open(&disk, small_config());
    assert_eq!(report.rebuilt_indexes, vec![closed]);
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(block_on(read_all(&log)), expected);
}

#[test]
fn cold_reads_and_timestamp_lookups_stop_at_the_data() {
    let disk = SimDisk::new(27);
    let mut config = small_config();
    config.segment_bytes_max = 4 << 20;
    config.preallocate_bytes = 1 << 20;
    let (mut log, _) = open(&disk, config);
    let expected = append_synced(&mut log, 6);
    let data = log.size_bytes() - BLOCK_BYTES;
    assert!(
        durable_len(&disk, Offset(0)) >= 1 << 20,
        "a 1 MiB zero tail"
    );

    let before = disk.bytes_read();
    let read = block_on(log.read(Offset(0), 1 << 20)).expect("read");
    assert_eq!(read.batches, expected);
    assert_eq!(
        disk.bytes_read() - before,
        data,
        "a cold read reads the data, not the zero tail after it"
    );
    let before = disk.bytes_read();
    let found = block_on(log.offset_for_timestamp(6)).expect("lookup");
    assert_eq!(found, None);
    assert!(disk.bytes_read() - before <= data);
}

#[test]
fn a_growing_segment_extends_its_file_in_growing_steps_and_its_tail_stays_bounded() {
    let disk = SimDisk::new(27);
    let mut config = small_config();
    config.segment_bytes_max = 64 << 20;
    let step = config.preallocate_bytes;
    let (mut log, _) = open(&disk, config.clone());
    let before = disk.allocations();
    // About 2 MiB of data in 256 flushes: a 16 KiB step would be ~128 extensions.
    for i in 0..256 {
        block_on(log.append(batch(1, 8_000, 5), 1_000)).expect("append");
        if i % 2 == 1 {
            block_on(log.flush()).expect("flush");
        }
    }
    block_on(log.sync(1_000)).expect("sync");
    let extensions = disk.allocations() - before;
    // Doubling up to 16 steps: 16, 32, ... 256 KiB (5), then 256 KiB at a time (~7).
    assert!(extensions <= 14, "{extensions} extensions for ~2 MiB");
    let size = durable_len(&disk, Offset(0));
    let contents = disk.durable_contents(&segment_path(Offset(0))).unwrap();
    let tail = size - data_end(&contents);
    assert!(
        tail < step * storage::log::PREALLOCATE_GROWTH_MAX,
        "a zero tail of {tail} bytes"
    );
    // The tail is still only zeros to recovery.
    drop(log);
    disk.crash(CrashMode::DropAll);
    let (log, report) = open(&disk, config);
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(block_on(read_all(&log)).len(), 256);
}

#[test]
fn when_the_step_ahead_does_not_fit_the_write_still_gets_the_space_it_needs() {
    let disk = SimDisk::new(28);
    let mut config = small_config();
    config.segment_bytes_max = 64 << 20;
    let (mut log, _) = open(&disk, config);
    for _ in 0..40 {
        block_on(log.append(batch(1, 8_000, 5), 1_000)).expect("append");
        block_on(log.flush()).expect("flush");
    }
    // Room for a few more writes past the allocated end, not for a step ahead of them (the
    // step has grown past 100 KiB): write until the file has to grow.
    disk.set_space_limit(Some(disk.space_used() + (64 << 10)));
    let before = disk.allocations();
    let mut written = Vec::new();
    while disk.allocations() == before {
        assert!(written.len() < 100, "the file never had to grow");
        let next = batch(1, 8_000, 5);
        let appended = block_on(log.append(next.clone(), 1_000)).expect("append");
        block_on(log.sync(1_000)).expect("the write fits although the step did not");
        written.push(stored(&next, appended.base_offset));
    }
    let read = block_on(read_all(&log));
    assert_eq!(read[read.len() - written.len()..], written[..]);
}
