//! Target `broker_snapshots`: the decoders of the state the broker keeps beside its logs, and
//! the snapshot-then-replay rule that decides which snapshot to trust.
//!
//! Input: `selector u8 | bytes`; the selector (mod [`CASES`]) picks the decoder:
//!
//! | selector | what `bytes` is | properties |
//! |---|---|---|
//! | 0 | a producer-state snapshot (`ProducerStates::decode`) | what decodes re-encodes to a snapshot of the same length that decodes to the same state and `through` |
//! | 1 | a committed-offsets snapshot (`OffsetTable::decode`) | the same |
//! | 2 | the topic metadata (`Metadata::decode`) | the same, and every topic name it accepts is valid |
//! | 3 | `key_bytes u8 | key | value`: one record of the offsets topic (`decode_record`) | what decodes re-encodes to the very same key and value bytes |
//! | 4 | a stored batch replayed into an offsets table (`OffsetTable::replay_batch`) from offset `from u8` (first byte) | an error or a count of applied records no larger than the batch's |
//! | 5 | `from u8 | batch`: a stored batch replayed into a producer state, when it verifies (as every stored batch does) | no panic; the state still snapshots and decodes |
//! | 6 | `start u8 | end u8 | policy u8 | raw u8 | snapshot`, judged by `snapshot::load` against a log holding `start..end` (the smaller first), as a producer-state snapshot (`raw` bit 1 clear) or an offsets one (set), under `Rescan` (`policy` even) or `Fail` | the rules of broker/src/snapshot.rs: a trusted snapshot covers at most the log end; replay starts where it stops or at the log start, whichever is later; a refused one is removed durably under `Rescan` and kept under `Fail`, which fails the load |
//! | 7 | `raw u8 | blob`: the producer-id reservation, loaded and then allocated from (`ProducerIds`) | ids run on from the stored reservation, one per call, until i64::MAX |
//!
//! In cases 6 and 7 the low bit of `raw` says how the bytes are stored: set, as the whole
//! file, so that the blob frame (magic, length, CRC) is fuzzed too; clear, as the payload of a
//! valid frame (`storage::store_blob`), so that the decoders behind the frame are.

use std::path::{Path, PathBuf};

use broker::group::offsets::{self, OffsetTable};
use broker::metadata::{Metadata, validate_name};
use broker::producer_ids::{PRODUCER_IDS_FILE, ProducerIds};
use broker::producer_state::ProducerStates;
use broker::snapshot::{self, LogExtent, OnRefusal, Start};
use schema::batch::verify;
use storage::disk::sim::{SimDisk, block_on};
use storage::disk::{Disk, File as _, OpenMode, align_up};
use storage::{Offset, store_blob};

/// How many decoders the selector chooses from.
pub const CASES: u8 = 8;

/// The input for decoder `selector` over `bytes`, for seeds.
pub fn encode(selector: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![selector];
    out.extend_from_slice(bytes);
    out
}

/// The target: see the module doc.
pub fn check(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    match selector % CASES {
        0 => producer_state(bytes),
        1 => offset_table(bytes),
        2 => metadata(bytes),
        3 => offset_record(bytes),
        4 => offsets_replay(bytes),
        5 => producer_replay(bytes),
        6 => load(bytes),
        _ => producer_ids(bytes),
    }
}

fn producer_state(bytes: &[u8]) {
    let Ok((through, state)) = ProducerStates::decode(bytes) else {
        return;
    };
    let encoded = state.encode(through);
    assert_eq!(
        encoded.len(),
        bytes.len(),
        "a producer lost or gained bytes"
    );
    assert_eq!(ProducerStates::decode(&encoded), Ok((through, state)));
}

fn offset_table(bytes: &[u8]) {
    let Ok((through, table)) = OffsetTable::decode(bytes) else {
        return;
    };
    let encoded = table.encode(through);
    assert_eq!(encoded.len(), bytes.len(), "an entry lost or gained bytes");
    assert_eq!(OffsetTable::decode(&encoded), Ok((through, table)));
}

fn metadata(bytes: &[u8]) {
    let Ok(metadata) = Metadata::decode(bytes) else {
        return;
    };
    for (name, topic) in &metadata.topics {
        assert_eq!(name, &topic.name);
        assert!(
            validate_name(name).is_ok(),
            "an invalid name {name:?} decoded"
        );
    }
    let encoded = metadata.encode();
    assert_eq!(
        encoded.len(),
        bytes.len(),
        "a topic was lost or gained: {metadata:?}"
    );
    assert_eq!(Metadata::decode(&encoded), Ok(metadata));
}

fn offset_record(bytes: &[u8]) {
    let Some((&key_bytes, rest)) = bytes.split_first() else {
        return;
    };
    let (key, value) = rest.split_at(usize::from(key_bytes).min(rest.len()));
    let Ok((decoded_key, committed)) = offsets::decode_record(key, value) else {
        return;
    };
    assert_eq!(offsets::encode_key(&decoded_key), key);
    assert_eq!(offsets::encode_value(&committed), value);
}

fn offsets_replay(bytes: &[u8]) {
    let Some((&from, batch)) = bytes.split_first() else {
        return;
    };
    let mut table = OffsetTable::default();
    if let Ok(applied) = table.replay_batch(batch, u64::from(from)) {
        let header = schema::batch::BatchHeader::parse(batch).expect("replayed, so it parsed");
        assert!(
            i64::try_from(applied).is_ok_and(|applied| applied <= i64::from(header.record_count))
        );
        assert!(table.len() as u64 <= applied);
    }
}

fn producer_replay(bytes: &[u8]) {
    let Some((&from, batch)) = bytes.split_first() else {
        return;
    };
    // The precondition of replay_batch: a stored batch, verified when appended and when read,
    // at a base offset the log assigned (the log gives it 0 .. 2^63).
    let Ok(header) = verify(batch) else {
        return;
    };
    // Its last offset too: a batch the log stored ends below i64::MAX (found by the long run:
    // a batch at base i64::MAX whose last offset wraps).
    let Some(last) = header
        .base_offset
        .checked_add(i64::from(header.last_offset_delta))
        .filter(|_| header.base_offset >= 0)
    else {
        return;
    };
    let mut state = ProducerStates::default();
    state.replay_batch(batch, Offset(u64::from(from)), 0);
    let through = Offset(last as u64 + 1);
    let snapshot = state.encode(through);
    assert_eq!(ProducerStates::decode(&snapshot), Ok((through, state)));
}

fn load(bytes: &[u8]) {
    let Some((head, snapshot)) = bytes.split_first_chunk::<4>() else {
        return;
    };
    let [start, end, policy, raw] = *head;
    let (start, end) = (u64::from(start.min(end)), u64::from(start.max(end)));
    let policy = if policy % 2 == 0 {
        OnRefusal::Rescan
    } else {
        OnRefusal::Fail
    };
    let disk = SimDisk::new(0);
    let dir = Path::new("/data/t-0");
    let path = dir.join("snapshot");
    store(&disk, dir, "snapshot", snapshot, raw % 2 == 1);
    let extent = LogExtent {
        start: Offset(start),
        end: Offset(end),
    };
    // Both states kept this way, under the policy the input picks.
    if raw & 2 == 0 {
        let decode = |bytes: &[u8]| ProducerStates::decode(bytes);
        judge(&disk, &path, extent, policy, decode);
    } else {
        let decode = |bytes: &[u8]| {
            OffsetTable::decode(bytes).map(|(through, table)| (Offset(through), table))
        };
        judge(&disk, &path, extent, policy, decode);
    }
}

/// Runs `snapshot::load` and checks its promises (see the module doc).
fn judge<T: Default, E: std::fmt::Display>(
    disk: &SimDisk,
    path: &Path,
    extent: LogExtent,
    policy: OnRefusal,
    decode: impl Fn(&[u8]) -> Result<(Offset, T), E>,
) {
    let before = disk.durable_contents(path);
    match block_on(snapshot::load(disk, path, extent, policy, &decode)) {
        Ok(Start {
            through,
            replay_from,
            refused,
            ..
        }) => {
            assert!(through <= extent.end, "trusted past the log end");
            assert!(replay_from >= extent.start && replay_from <= extent.end);
            assert_eq!(replay_from, through.max(extent.start));
            if refused.is_some() {
                assert_eq!(policy, OnRefusal::Rescan, "a refusal went on under Fail");
                assert_eq!(
                    disk.durable_contents(path),
                    None,
                    "a refused snapshot stays"
                );
                disk.crash(storage::disk::sim::CrashMode::KeepAll);
                assert_eq!(
                    disk.durable_contents(path),
                    None,
                    "the removal was not durable"
                );
            } else {
                assert_eq!(
                    disk.durable_contents(path),
                    before,
                    "a trusted snapshot changed"
                );
            }
        }
        Err(snapshot::LoadError::Refused { .. }) => {
            assert_eq!(
                policy,
                OnRefusal::Fail,
                "a refusal failed the load under Rescan"
            );
            assert_eq!(disk.durable_contents(path), before, "Fail keeps the file");
        }
        Err(other) => panic!("the simulated disk has no I/O errors, yet: {other}"),
    }
}

fn producer_ids(bytes: &[u8]) {
    let Some((&raw, blob)) = bytes.split_first() else {
        return;
    };
    let disk = SimDisk::new(0);
    let dir = PathBuf::from("/data/metadata");
    store(&disk, &dir, PRODUCER_IDS_FILE, blob, raw % 2 == 1);
    let Ok(mut ids) = block_on(ProducerIds::load(&disk, &dir)) else {
        return;
    };
    // What the reservation said (loaded again: the allocator does not expose it).
    let reserved = match block_on(storage::load_blob(&disk, &dir.join(PRODUCER_IDS_FILE))) {
        Ok(Some(payload)) => u64::from_le_bytes(payload[2..10].try_into().expect("10 bytes")),
        Ok(None) => 0,
        Err(error) => panic!("the reservation loaded once but not twice: {error}"),
    };
    for allocated in 0..3u64 {
        match block_on(ids.allocate(&disk)) {
            Ok((id, epoch)) => {
                assert_eq!(epoch, 0);
                // Ids run on from the reservation, one per call.
                assert_eq!(
                    u64::try_from(id),
                    Ok(reserved + allocated),
                    "id {id} reused"
                );
            }
            Err(broker::producer_ids::ProducerIdError::Exhausted) => {
                // Only once the next id would be i64::MAX (never handed out): found by the
                // long run with a reservation of i64::MAX - 2, which this check first got wrong.
                assert!(reserved.saturating_add(allocated) >= i64::MAX as u64);
                return;
            }
            Err(other) => panic!("the simulated disk has no I/O errors, yet: {other}"),
        }
    }
}

/// Stores `bytes` as `dir/name`: as the payload of a valid blob frame, or (`raw`) as the
/// whole file, frame and all.
fn store(disk: &SimDisk, dir: &Path, name: &str, bytes: &[u8], raw: bool) {
    if !raw {
        block_on(store_blob(disk, dir, name, bytes)).expect("store a blob");
        return;
    }
    block_on(disk.create_dir_all(dir)).expect("create the directory");
    let path = dir.join(name);
    let file = block_on(disk.open(&path, OpenMode::CreateNew)).expect("create a file");
    if !bytes.is_empty() {
        let size = usize::try_from(align_up(bytes.len() as u64)).expect("small");
        let mut buffer = file.alloc_buffer(size);
        buffer.as_mut()[..bytes.len()].copy_from_slice(bytes);
        block_on(file.write_at(buffer, 0)).expect("write a file");
        block_on(file.truncate(bytes.len() as u64)).expect("size a file");
    }
    block_on(file.sync()).expect("sync a file");
    block_on(file.close()).expect("close a file");
    block_on(disk.sync_dir(dir)).expect("sync the directory");
}
