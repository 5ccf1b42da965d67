//! Goal: regressions for what the `log_recovery` fuzz target (fuzz/, issue #14) found in the
//! log; each test failed before its fix.
//!
//! Method: the damage the fuzzer made, rebuilt in code on the simulated disk (its input was a
//! whole directory image; the tests say in words which bytes it changed).

use std::path::Path;

use common::{batch, small_config};
use storage::disk::sim::{SimDisk, block_on};
use storage::{Log, Offset, ReadError};

mod common;

const DIR: &str = "/sim/fuzz-findings-0";

/// Zeroes `bytes` bytes of the durable file `name` from `position`, bit by bit (the simulated
/// disk's only way to damage durable bytes).
fn zero(disk: &SimDisk, name: &str, position: u64, bytes: u64) {
    let path = Path::new(DIR).join(name);
    let contents = disk.durable_contents(&path).expect("the file");
    for at in position..position + bytes {
        let byte = contents[usize::try_from(at).expect("small")];
        for bit in 0..8 {
            if byte & (1 << bit) != 0 {
                disk.flip_bit(&path, at, bit);
            }
        }
    }
}

/// Found: a cleanly closed log whose first data block was zeroed afterwards opened (the
/// clean-shutdown marker lets the open trust the index instead of scanning) and then served
/// an empty read at offset 0, below its written end of 4, with no error: a consumer would
/// have polled it for ever and a snapshot replay stopped there. Data that ends before the
/// index's end offset is corruption.
#[test]
fn data_zeroed_under_a_trusted_index_is_corruption_not_an_empty_read() {
    let disk = SimDisk::new(14);
    let dir = Path::new(DIR);
    let (mut log, _) = block_on(Log::open(disk.clone(), dir, small_config(), 1_000)).expect("open");
    for _ in 0..2 {
        block_on(log.append(batch(2, 100, 1_000), 1_000)).expect("append");
    }
    block_on(log.sync(1_000)).expect("sync");
    block_on(log.close(1_000)).expect("close");
    // The first entry header of the segment (its data starts at the second block).
    zero(&disk, "00000000000000000000.log", 4096, 24);

    let (log, report) = block_on(Log::open(disk, dir, small_config(), 1_000)).expect("reopen");
    assert!(report.clean, "the marker is trusted: {report:?}");
    assert_eq!(log.written_end(), Offset(4));
    match block_on(log.read(Offset(0), 1 << 20)) {
        Err(ReadError::Corruption(corruption)) => {
            assert_eq!(corruption.expected_offset, Offset(0), "{corruption}");
        }
        Ok(read) => panic!(
            "an empty read instead of corruption: {} batches, next {}",
            read.batches.len(),
            read.next_offset
        ),
        Err(other) => panic!("expected corruption, got {other}"),
    }
}
