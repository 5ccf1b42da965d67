//! Goal: the controller never hands out a producer id twice, across any number of crashes,
//! and never one that the durable reservation does not cover.
//!
//! Method: per seed, run restart cycles of `ProducerIds` on the simulated disk. Each cycle
//! loads the allocator, then allocates a random number of ids (often across block ends) while
//! fdatasync failures are injected (the allocation fails and hands out nothing), until the
//! power is cut at a random operation (a `CutDisk` fails every operation after the N-th, often
//! inside a reservation); then the disk crashes in a random mode (drop, keep, random or torn
//! sectors). Sometimes a random durable bit of the reservation blob is flipped before the
//! restart: the load must refuse it, unless the bit lies outside the CRC-covered bytes (the
//! zero padding to a block), and then it must load the reservation unchanged. Checked:
//! - every id handed out is new (over all cycles of the seed);
//! - when an id is handed out, the durable reservation (what a power loss leaves) is above it.
//!
//! A failure prints the seed; replay it with
//! `RINGBUS_SIM_SEED=<seed> cargo test -p broker --test producer_ids_crash`;
//! `RINGBUS_SIM_SEEDS=<n>` changes how many seeds run (default 200).

mod common;

use std::collections::HashSet;
use std::path::PathBuf;

use broker::producer_ids::{BLOCK_IDS, PRODUCER_IDS_FILE, ProducerIdError, ProducerIds};
use common::{CRASH_MODES, CutDisk, Rng, chance, for_each_seed};
use storage::disk::sim::block_on;
use storage::format::MetaKind;

/// Bytes of a stored blob its CRC covers: the 16-byte metadata prefix, the 10-byte payload
/// (`version u16 | reserved_end u64`) and the CRC itself (docs/storage-format.md).
const COVERED_BYTES: u64 = 16 + 10 + 4;

fn metadata_dir() -> PathBuf {
    PathBuf::from("/data/metadata")
}

fn blob_path() -> PathBuf {
    metadata_dir().join(PRODUCER_IDS_FILE)
}

/// The reservation a power loss would leave (None: no blob is durable yet).
fn durable_reserved_end(disk: &CutDisk, seed: u64) -> Option<u64> {
    let bytes = disk.sim.durable_contents(&blob_path())?;
    let payload = storage::format::decode_meta(MetaKind::Blob, &bytes)
        .unwrap_or_else(|error| panic!("seed {seed}: the durable reservation is damaged: {error}"));
    let end: [u8; 8] = payload[2..10].try_into().expect("a u64");
    Some(u64::from_le_bytes(end))
}

/// Loads the allocator after a restart. With a flipped bit, checks the refusal (or, for a bit
/// outside the CRC, the unchanged load), then flips it back, as an operator restoring the
/// file would, so the run goes on.
fn restart(disk: &CutDisk, rng: &mut Rng, seed: u64, cycle: u32) -> ProducerIds {
    let context = format!("seed {seed} cycle {cycle}");
    let path = blob_path();
    let flipped = match disk.sim.durable_contents(&path) {
        Some(bytes) if chance(rng, 25) => {
            // Mostly the covered bytes, sometimes the padding after them.
            let byte = if chance(rng, 80) {
                rng.u64(..COVERED_BYTES)
            } else {
                rng.u64(COVERED_BYTES..bytes.len() as u64)
            };
            let bit = rng.u8(..8);
            disk.sim.flip_bit(&path, byte, bit);
            Some((byte, bit))
        }
        _ => None,
    };
    let loaded = block_on(ProducerIds::load(disk, &metadata_dir()));
    match (flipped, loaded) {
        (None, Ok(ids)) => ids,
        (None, Err(error)) => {
            panic!("{context}: a crash alone made the reservation unloadable: {error}")
        }
        (Some((byte, _)), Ok(ids)) => {
            assert!(
                byte >= COVERED_BYTES,
                "{context}: a flipped bit in byte {byte} of the reservation was trusted"
            );
            ids
        }
        (Some((byte, bit)), Err(error)) => {
            assert!(
                byte < COVERED_BYTES,
                "{context}: a flip in the padding (byte {byte}) was refused: {error}"
            );
            assert!(
                matches!(error, ProducerIdError::Damaged { .. }),
                "{context}: a damaged reservation gave {error}"
            );
            disk.sim.flip_bit(&path, byte, bit);
            block_on(ProducerIds::load(disk, &metadata_dir()))
                .unwrap_or_else(|error| panic!("{context}: the restored reservation: {error}"))
        }
    }
}

fn run_seed(seed: u64) {
    let mut rng = Rng::with_seed(seed);
    let disk = CutDisk::new(seed);
    let temp = PathBuf::from(format!("{}.tmp", blob_path().display()));
    let mut handed_out: HashSet<i64> = HashSet::new();
    let cycles = 12;
    for cycle in 0..cycles {
        let context = format!("seed {seed} cycle {cycle}");
        let mut ids = restart(&disk, &mut rng, seed, cycle);
        // A reservation stores the blob in 7 operations: power fails within the first few
        // reservations of the cycle, or (sometimes) not at all.
        let cut = chance(&mut rng, 85).then(|| rng.u64(..30));
        if let Some(after) = cut {
            disk.power.cut_after(after);
        }
        let wanted = rng.u64(..5 * BLOCK_IDS / 2);
        // Sometimes one reservation's fdatasync fails (the one after this allocation).
        let fail_at = chance(&mut rng, 50).then(|| rng.u64(..wanted.max(1)));
        // Ids below this were checked against the durable reservation already.
        let mut checked_below = 0u64;
        for index in 0..wanted {
            if fail_at == Some(index) {
                disk.sim.fail_next_sync(Some(&temp));
            }
            match block_on(ids.allocate(&disk)) {
                Ok((id, epoch)) => {
                    assert_eq!(epoch, 0, "{context}: a fresh id starts at epoch 0");
                    assert!(id >= 0, "{context}: negative id {id}");
                    assert!(handed_out.insert(id), "{context}: id {id} handed out twice");
                    if id as u64 >= checked_below {
                        let durable = durable_reserved_end(&disk, seed);
                        assert!(
                            durable.is_some_and(|end| (id as u64) < end),
                            "{context}: id {id} handed out while the durable reservation is \
                             {durable:?}"
                        );
                        checked_below = durable.unwrap_or(0);
                    }
                }
                Err(ProducerIdError::Io(_)) if disk.power.is_cut() => break,
                // An injected fdatasync failure: nothing handed out, the next call retries.
                Err(ProducerIdError::Io(failure)) => {
                    assert!(
                        failure.to_string().contains("injected fdatasync failure"),
                        "{context}: unexpected failure {failure}"
                    );
                }
                Err(error) => panic!("{context}: allocate: {error}"),
            }
        }
        disk.power.restore();
        disk.sim.crash(CRASH_MODES[rng.usize(..4)]);
    }
    assert!(
        !handed_out.is_empty() || cycles == 0,
        "seed {seed}: no id was ever handed out (the schedule tests nothing)"
    );
}

#[test]
fn ids_are_unique_across_crashes_torn_writes_bit_flips_and_failed_fsyncs() {
    for_each_seed("producer_ids_crash", 200, run_seed);
}
