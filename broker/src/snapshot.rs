//! Snapshot-then-replay: which snapshot of state derived from a partition's log may be
//! trusted after a restart, written once for every such state (the idempotent-producer table,
//! the committed-offsets table) and generic over the disk, so the simulated disk's crashes,
//! torn sectors, bit flips and failed fsyncs exercise the very code the broker runs.
//!
//! A snapshot is a blob (`storage::store_blob`: atomic replace, CRC-framed) holding the state
//! of every batch below its `through` offset and of none at or above it. Loading is [`load`]
//! (the decision) then [`replay`] (the batches from where the snapshot stops to the log end,
//! each applied by the caller's own function):
//!
//! 1. No snapshot: start from the empty state at the log start.
//! 2. A snapshot that fails its checks (frame: magic, length, CRC; contents: the caller's
//!    decoder) is *damaged*; one whose `through` lies past the log's end *reaches past the
//!    log*: the log lost its tail since (recovery truncated a torn flush after a bit flip in
//!    the last durable one, see docs/storage-format.md), and once the log regrows past
//!    `through` the snapshot would describe batches that are not the ones stored there. Both
//!    are refused, never trusted; what a refusal costs is the [`OnRefusal`] policy.
//! 3. A trusted snapshot whose `through` lies below the log start leaves a gap (retention or
//!    `delete_before` removed batches it does not cover): the policy says whether that is
//!    history the state may forget or a loss.
//!
//! A refused snapshot that the policy lets the load go on without is removed *durably*
//! (remove, then fsync the directory) before the rebuilt state is used: a removal a crash can
//! undo would bring it back after the log regrew past it, and it would then be trusted.
//!
//! An I/O error (reading the snapshot, or removing a refused one) fails the load under either
//! policy, as an error reading the log does: the partition would serve that error anyway.
//!
//! Two generations ([`store_keeping_previous`], [`load_newest_or_previous`]): for state whose
//! log is deleted below its snapshots (committed offsets), one damaged file must not cost the
//! partition its state. The snapshot being replaced is kept as `<name>.previous`, and the log
//! is deleted only below the *previous* snapshot's `through`, so the previous plus the log
//! after it rebuild the same state. A load tries the newest, then the previous; a refused
//! newest is set aside as `<name>.refused` for an operator and the previous takes its place.
//!
//! Stateless; runs on the shard that owns the partition, during its open or load.

use std::fmt::Display;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use storage::disk::Disk;
use storage::{IoFailure, Log, Offset, ReadError};

/// What a refused snapshot costs: the one difference between the states kept this way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRefusal {
    /// Remove the refused snapshot and rebuild the state from the whole log (from its start).
    ///
    /// For state the retained log alone determines: the idempotent-producer table. A rescan is
    /// always correct, only slower, so a bad snapshot costs time, never a partition. A gap
    /// below the log start is history retention already forgot: batches there can no longer
    /// be fetched, and a producer known only from them is simply unknown (its next batch gets
    /// `UnknownProducer`, as after expiry).
    Rescan,
    /// Refuse to load at all (the caller reports corruption) and keep the file for an operator.
    ///
    /// For state whose records are deleted once a snapshot covers them: the committed-offsets
    /// table, whose log loses its segments below each snapshot (`Log::delete_before`). The
    /// snapshot is then the only copy of those commits, and a rescan would rebuild a table
    /// that silently went back (consumers would re-read or skip). Likewise a log starting
    /// above what the snapshot (or, with none, nothing) covers is a loss, not history.
    Fail,
}

/// The offsets a log holds when a snapshot is judged: `start..end` (end: the written end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogExtent {
    /// The first offset stored.
    pub start: Offset,
    /// The offset after the last one readable.
    pub end: Offset,
}

impl LogExtent {
    /// The extent of an open log.
    pub fn of<D: Disk>(log: &Log<D>) -> LogExtent {
        LogExtent {
            start: log.log_start(),
            end: log.written_end(),
        }
    }
}

/// Why a snapshot was not trusted (or, under [`OnRefusal::Fail`], why the load failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The blob's frame (magic, length, CRC) or its contents failed their checks.
    #[error("damaged: {reason}")]
    Damaged {
        /// What was wrong.
        reason: String,
    },
    /// The snapshot covers offsets the log no longer holds.
    #[error("covers offsets up to {through}, past the log end {log_end}")]
    PastLogEnd {
        /// What the snapshot covers through.
        through: Offset,
        /// The log's end.
        log_end: Offset,
    },
    /// The log starts above what the snapshot covers: batches were deleted that no snapshot
    /// holds (only refused under [`OnRefusal::Fail`]).
    #[error("the log starts at {log_start} but {}", covered(.through))]
    LogStartUncovered {
        /// What the snapshot covers through; `None` when there is no snapshot.
        through: Option<Offset>,
        /// The log's start.
        log_start: Offset,
    },
}

fn covered(through: &Option<Offset>) -> String {
    match through {
        Some(through) => format!("the snapshot covers only up to {through}"),
        None => "there is no snapshot".to_string(),
    }
}

/// Why a load failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The snapshot was refused and the policy is [`OnRefusal::Fail`].
    #[error("{}: {refusal}", path.display())]
    Refused {
        /// The snapshot file.
        path: PathBuf,
        /// Why.
        refusal: Refusal,
    },
    /// Reading the snapshot, or removing a refused one, failed.
    #[error(transparent)]
    Io(#[from] IoFailure),
    /// Reading the log for the replay failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Where a load starts: the snapshot's state (or the empty one) and what is left to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start<T> {
    /// The state the trusted snapshot holds; the empty state when there is none.
    pub state: T,
    /// What the snapshot on disk covers through: its `through` when trusted, else the log
    /// start (a caller snapshots again once its log passes this).
    pub through: Offset,
    /// Where the replay begins: the later of `through` and the log start.
    pub replay_from: Offset,
    /// Why the snapshot on disk was refused and removed ([`OnRefusal::Rescan`] only).
    pub refused: Option<Refusal>,
}

/// Decides which snapshot to trust. `path` is the snapshot blob, `log` what the log holds
/// now, `decode` the state's own decoder (its layout checks; it returns what the snapshot
/// covers through and the state). See the module documentation for the rules; a refusal is
/// logged here with its reason and cost.
///
/// ```text
/// let start = snapshot::load(disk, &path, LogExtent::of(&log), OnRefusal::Rescan,
///     ProducerStates::decode).await?;
/// ```
pub async fn load<D, T, E>(
    disk: &D,
    path: &Path,
    log: LogExtent,
    policy: OnRefusal,
    decode: impl FnOnce(&[u8]) -> Result<(Offset, T), E>,
) -> Result<Start<T>, LoadError>
where
    D: Disk,
    T: Default,
    E: Display,
{
    load_as(disk, path, log, policy, decode, FailRefusal::Log).await
}

/// Whether [`load_as`] logs a refusal that fails the load under [`OnRefusal::Fail`]: not when
/// the caller has another snapshot to try, which would make "not loading" untrue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailRefusal {
    Log,
    Quiet,
}

async fn load_as<D, T, E>(
    disk: &D,
    path: &Path,
    log: LogExtent,
    policy: OnRefusal,
    decode: impl FnOnce(&[u8]) -> Result<(Offset, T), E>,
    fail_refusal: FailRefusal,
) -> Result<Start<T>, LoadError>
where
    D: Disk,
    T: Default,
    E: Display,
{
    assert!(
        log.start <= log.end,
        "log extent {}..{} runs backwards",
        log.start,
        log.end
    );
    let judged = match storage::load_blob(disk, path).await {
        Ok(None) => None,
        Ok(Some(bytes)) => Some(match decode(&bytes) {
            Ok((through, _)) if through > log.end => Err(Refusal::PastLogEnd {
                through,
                log_end: log.end,
            }),
            Ok(trusted) => Ok(trusted),
            Err(error) => Err(Refusal::Damaged {
                reason: error.to_string(),
            }),
        }),
        Err(storage::BlobError::Io(failure)) => return Err(LoadError::Io(failure)),
        // The frame failed its checks (and any kind of failure added later is not trust).
        Err(error) => Some(Err(Refusal::Damaged {
            reason: error.to_string(),
        })),
    };
    let refuse = |refusal: Refusal| {
        if fail_refusal == FailRefusal::Log {
            tracing::warn!(path = %path.display(), %refusal,
                "snapshot refused: not loading (the state cannot be rebuilt from the log)");
        }
        LoadError::Refused {
            path: path.to_path_buf(),
            refusal,
        }
    };
    match (judged, policy) {
        (Some(Ok((through, state))), _) if through >= log.start => Ok(Start {
            state,
            through,
            replay_from: through,
            refused: None,
        }),
        (Some(Ok((through, state))), OnRefusal::Rescan) => Ok(Start {
            state,
            through,
            replay_from: log.start,
            refused: None,
        }),
        (Some(Ok((through, _))), OnRefusal::Fail) => Err(refuse(Refusal::LogStartUncovered {
            through: Some(through),
            log_start: log.start,
        })),
        (None, OnRefusal::Fail) if log.start > Offset(0) => {
            Err(refuse(Refusal::LogStartUncovered {
                through: None,
                log_start: log.start,
            }))
        }
        (None, _) => Ok(Start {
            state: T::default(),
            through: log.start,
            replay_from: log.start,
            refused: None,
        }),
        (Some(Err(refusal)), OnRefusal::Fail) => Err(refuse(refusal)),
        (Some(Err(refusal)), OnRefusal::Rescan) => {
            tracing::warn!(path = %path.display(), %refusal,
                "snapshot refused: removing it and rescanning the log");
            remove_durably(disk, path).await?;
            Ok(Start {
                state: T::default(),
                through: log.start,
                replay_from: log.start,
                refused: Some(refusal),
            })
        }
    }
}

/// The name of the snapshot kept beside `name` when a newer one replaces it.
pub fn previous_name(name: &str) -> String {
    format!("{name}.previous")
}

/// The name a refused newest snapshot is set aside under when its previous is used.
pub fn refused_name(name: &str) -> String {
    format!("{name}.refused")
}

/// Stores `bytes` as the newest snapshot `dir/name`, keeping the one it replaces as
/// [`previous_name`]. The caller may then delete its log below the *previous* snapshot's
/// `through` (not the new one's): that is what keeps the previous usable.
///
/// Crash-safe at every step: the rename leaves the previous and no newest (a load uses the
/// previous, whose log is still there), and `store_blob` writes a temporary file, renames it
/// and fsyncs the directory, which makes both renames durable together.
pub async fn store_keeping_previous<D: Disk>(
    disk: &D,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<(), IoFailure> {
    let newest = dir.join(name);
    match disk.rename(&newest, &dir.join(previous_name(name))).await {
        Ok(()) => {}
        // The first snapshot, or the one after a load that found none.
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(IoFailure::new("rename", &newest, None, error)),
    }
    storage::store_blob(disk, dir, name, bytes).await
}

/// [`load`] under [`OnRefusal::Fail`] over two generations (see the module documentation):
/// the newest snapshot `dir/name` if it is trusted; otherwise, when it is refused or missing
/// and a previous one exists, the previous, if that is trusted, which then becomes the newest
/// (the refused one is renamed to [`refused_name`], durably, before the state is used).
/// Fails when neither can be trusted, with the previous one's refusal.
pub async fn load_newest_or_previous<D, T, E>(
    disk: &D,
    dir: &Path,
    name: &str,
    log: LogExtent,
    decode: impl Fn(&[u8]) -> Result<(Offset, T), E>,
) -> Result<Start<T>, LoadError>
where
    D: Disk,
    T: Default,
    E: Display,
{
    let names = match disk.list_dir(dir).await {
        Ok(names) => names,
        Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(IoFailure::new("list directory", dir, None, error).into()),
    };
    let (newest, previous) = (dir.join(name), dir.join(previous_name(name)));
    let newest_exists = names.iter().any(|entry| entry == name);
    let previous_exists = names.iter().any(|entry| *entry == previous_name(name));
    // With a previous to fall back on, a refused newest is logged below, with what it cost.
    let quiet = match previous_exists {
        true => FailRefusal::Quiet,
        false => FailRefusal::Log,
    };
    let refused = match load_as(disk, &newest, log, OnRefusal::Fail, &decode, quiet).await {
        Ok(start) if newest_exists || !previous_exists => return Ok(start),
        // No newest but a previous: a crash between the two steps of a store.
        Ok(_) => None,
        Err(LoadError::Refused { refusal, .. }) if previous_exists => Some(refusal),
        Err(error) => return Err(error),
    };
    if let Some(refusal) = &refused {
        tracing::warn!(path = %newest.display(), %refusal, "newest snapshot refused: trying the previous one");
    }
    let start = load(disk, &previous, log, OnRefusal::Fail, &decode).await?;
    if newest_exists {
        let aside = dir.join(refused_name(name));
        disk.rename(&newest, &aside)
            .await
            .map_err(|error| IoFailure::new("rename", &newest, None, error))?;
    }
    disk.rename(&previous, &newest)
        .await
        .map_err(|error| IoFailure::new("rename", &previous, None, error))?;
    disk.sync_dir(dir)
        .await
        .map_err(|error| IoFailure::new("fsync directory", dir, None, error))?;
    match refused {
        Some(_) => tracing::warn!(path = %newest.display(), through = %start.through,
            "using the previous snapshot; the refused newest is kept as .refused"),
        None => tracing::info!(path = %newest.display(), through = %start.through,
            "no newest snapshot (a store was cut short): using the previous one"),
    }
    Ok(start)
}

/// Removes `path` and fsyncs its directory, so no crash brings it back.
async fn remove_durably<D: Disk>(disk: &D, path: &Path) -> Result<(), IoFailure> {
    match disk.remove(path).await {
        Ok(()) => {}
        // Gone already (removed by a load that crashed before the directory sync): the sync
        // below is still owed.
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(IoFailure::new("remove", path, None, error)),
    }
    let dir = path.parent().unwrap_or(Path::new(""));
    disk.sync_dir(dir)
        .await
        .map_err(|error| IoFailure::new("fsync directory", dir, None, error))
}

/// A log read forward in whole stored batches: storage's [`Log`], or a partition actor in
/// front of one.
// Shard-local like the disk seam: no `Send` bound on the future, on purpose.
#[allow(async_fn_in_trait)]
pub trait Batches {
    /// Why a read failed.
    type Error;

    /// Whole stored batches from the one holding `offset`, about `bytes_max` of them, and the
    /// offset after the last one (`offset` itself when none is returned).
    async fn read_batches(
        &self,
        offset: Offset,
        bytes_max: usize,
    ) -> Result<(Vec<Bytes>, Offset), Self::Error>;
}

impl<D: Disk> Batches for Log<D> {
    type Error = ReadError;

    async fn read_batches(
        &self,
        offset: Offset,
        bytes_max: usize,
    ) -> Result<(Vec<Bytes>, Offset), ReadError> {
        let read = self.read(offset, bytes_max).await?;
        Ok((read.batches, read.next_offset))
    }
}

/// Replays the batches from `from` to `end` (a [`Start::replay_from`] and the log end the
/// snapshot was judged against), `bytes_max` at a time, handing each to `apply`, which
/// interprets it (and skips what lies below `from`: the first batch read may start there).
/// Stops early if the log returns nothing (it ended sooner).
pub async fn replay<S, E>(
    log: &S,
    from: Offset,
    end: Offset,
    bytes_max: usize,
    mut apply: impl FnMut(&Bytes) -> Result<(), E>,
) -> Result<(), E>
where
    S: Batches,
    E: From<S::Error>,
{
    let mut offset = from;
    while offset < end {
        let (batches, next) = log.read_batches(offset, bytes_max).await?;
        if batches.is_empty() {
            break;
        }
        for batch in &batches {
            apply(batch)?;
        }
        assert!(
            next > offset,
            "a read from {offset} returned batches but did not advance (next {next})"
        );
        offset = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use storage::disk::sim::{CrashMode, SimDisk, block_on};

    use super::*;

    /// A toy state: its snapshot is `through u64` then one byte that must be 7.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct Toy(u8);

    fn decode(bytes: &[u8]) -> Result<(Offset, Toy), String> {
        let (through, rest) = bytes.split_first_chunk::<8>().ok_or("short")?;
        match rest {
            [7] => Ok((Offset(u64::from_le_bytes(*through)), Toy(7))),
            _ => Err(format!("bad body {rest:?}")),
        }
    }

    fn toy(through: u64, body: u8) -> Vec<u8> {
        let mut out = through.to_le_bytes().to_vec();
        out.push(body);
        out
    }

    fn dir() -> PathBuf {
        PathBuf::from("/data/topic-0")
    }

    fn store(disk: &SimDisk, bytes: &[u8]) {
        block_on(storage::store_blob(disk, &dir(), "state", bytes)).expect("store");
    }

    fn judge(
        disk: &SimDisk,
        start: u64,
        end: u64,
        policy: OnRefusal,
    ) -> Result<Start<Toy>, LoadError> {
        let extent = LogExtent {
            start: Offset(start),
            end: Offset(end),
        };
        block_on(load(disk, &dir().join("state"), extent, policy, decode))
    }

    fn refusal(result: Result<Start<Toy>, LoadError>) -> Refusal {
        match result {
            Err(LoadError::Refused { refusal, .. }) => refusal,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_good_snapshot_is_trusted_under_either_policy() {
        let disk = SimDisk::new(1);
        store(&disk, &toy(5, 7));
        for policy in [OnRefusal::Rescan, OnRefusal::Fail] {
            let start = judge(&disk, 0, 9, policy).expect("loads");
            assert_eq!(start.state, Toy(7));
            assert_eq!((start.through, start.replay_from), (Offset(5), Offset(5)));
            assert_eq!(start.refused, None);
        }
        // Exactly at the log end is within it.
        assert!(judge(&disk, 0, 5, OnRefusal::Fail).is_ok());
    }

    #[test]
    fn no_snapshot_starts_at_the_log_start_unless_that_loses_deleted_state() {
        let disk = SimDisk::new(2);
        let start = judge(&disk, 3, 9, OnRefusal::Rescan).expect("loads");
        assert_eq!((start.state, start.through), (Toy(0), Offset(3)));
        assert!(judge(&disk, 0, 9, OnRefusal::Fail).is_ok());
        assert_eq!(
            refusal(judge(&disk, 3, 9, OnRefusal::Fail)),
            Refusal::LogStartUncovered {
                through: None,
                log_start: Offset(3)
            }
        );
    }

    #[test]
    fn a_gap_below_the_log_start_is_history_or_a_loss_by_policy() {
        let disk = SimDisk::new(3);
        store(&disk, &toy(2, 7));
        let start = judge(&disk, 4, 9, OnRefusal::Rescan).expect("loads");
        assert_eq!((start.through, start.replay_from), (Offset(2), Offset(4)));
        assert_eq!(start.state, Toy(7));
        assert_eq!(
            refusal(judge(&disk, 4, 9, OnRefusal::Fail)),
            Refusal::LogStartUncovered {
                through: Some(Offset(2)),
                log_start: Offset(4)
            }
        );
    }

    #[test]
    fn refused_snapshots_fail_the_load_or_are_removed_for_good() {
        for (bytes, expected_past_end) in [(toy(10, 7), true), (toy(5, 8), false)] {
            let disk = SimDisk::new(4);
            store(&disk, &bytes);
            let path = dir().join("state");
            let refused = refusal(judge(&disk, 0, 9, OnRefusal::Fail));
            assert_eq!(
                matches!(refused, Refusal::PastLogEnd { .. }),
                expected_past_end,
                "{refused}"
            );
            assert!(
                disk.durable_contents(&path).is_some(),
                "Fail keeps the file"
            );

            let start = judge(&disk, 0, 9, OnRefusal::Rescan).expect("rescans");
            assert_eq!(start.refused, Some(refused));
            assert_eq!((start.state, start.replay_from), (Toy(0), Offset(0)));
            // Removed durably: a power loss right after the load does not bring it back.
            disk.crash(CrashMode::KeepAll);
            assert_eq!(disk.durable_contents(&path), None);
            disk.crash(CrashMode::DropAll);
            assert_eq!(disk.durable_contents(&path), None);
        }
    }

    fn store_two(disk: &SimDisk, older: &[u8], newer: &[u8]) {
        for bytes in [older, newer] {
            block_on(store_keeping_previous(disk, &dir(), "state", bytes)).expect("store");
        }
    }

    fn judge_two(disk: &SimDisk, start: u64, end: u64) -> Result<Start<Toy>, LoadError> {
        let extent = LogExtent {
            start: Offset(start),
            end: Offset(end),
        };
        block_on(load_newest_or_previous(
            disk,
            &dir(),
            "state",
            extent,
            decode,
        ))
    }

    #[test]
    fn the_newest_of_two_generations_is_used_and_the_previous_kept() {
        let disk = SimDisk::new(6);
        store_two(&disk, &toy(3, 7), &toy(6, 7));
        disk.crash(CrashMode::DropAll);
        let start = judge_two(&disk, 3, 9).expect("loads");
        assert_eq!((start.through, start.replay_from), (Offset(6), Offset(6)));
        let previous = dir().join(previous_name("state"));
        assert!(
            disk.durable_contents(&previous).is_some(),
            "the previous is kept"
        );
    }

    #[test]
    fn a_damaged_newest_falls_back_to_the_previous_which_takes_its_place() {
        let disk = SimDisk::new(7);
        store_two(&disk, &toy(3, 7), &toy(6, 7));
        let (newest, previous) = (dir().join("state"), dir().join(previous_name("state")));
        disk.flip_bit(&newest, 20, 0);
        // The log was deleted only below the previous (3): it rebuilds from there.
        let start = judge_two(&disk, 3, 9).expect("the previous is used");
        assert_eq!((start.state, start.through), (Toy(7), Offset(3)));
        assert_eq!(start.replay_from, Offset(3));
        // Durably: the damaged one set aside, the previous now the newest.
        disk.crash(CrashMode::DropAll);
        assert_eq!(disk.durable_contents(&previous), None);
        assert!(disk.durable_contents(&newest).is_some());
        assert!(
            disk.durable_contents(&dir().join(refused_name("state")))
                .is_some()
        );
        let again = judge_two(&disk, 3, 9).expect("loads again");
        assert_eq!(again.through, Offset(3));
    }

    #[test]
    fn a_store_cut_after_its_rename_leaves_the_previous_in_use() {
        let disk = SimDisk::new(8);
        store_two(&disk, &toy(2, 7), &toy(4, 7));
        // The next store renamed the newest to the previous, then the power went.
        block_on(disk.rename(&dir().join("state"), &dir().join(previous_name("state"))))
            .expect("rename");
        block_on(disk.sync_dir(&dir())).expect("sync");
        let start = judge_two(&disk, 2, 9).expect("the previous is used");
        assert_eq!(start.through, Offset(4));
    }

    #[test]
    fn two_refused_generations_fail_the_load() {
        let disk = SimDisk::new(9);
        // The newest reaches past the log end, the previous is damaged.
        store_two(&disk, &toy(3, 8), &toy(12, 7));
        assert!(matches!(
            refusal(judge_two(&disk, 0, 9)),
            Refusal::Damaged { .. }
        ));
        assert!(
            disk.durable_contents(&dir().join("state")).is_some(),
            "nothing is moved when nothing is used"
        );
    }

    #[test]
    fn a_damaged_frame_is_refused() {
        let disk = SimDisk::new(5);
        store(&disk, &toy(5, 7));
        let path = dir().join("state");
        disk.flip_bit(&path, 20, 0);
        assert!(matches!(
            refusal(judge(&disk, 0, 9, OnRefusal::Fail)),
            Refusal::Damaged { .. }
        ));
    }

    #[test]
    fn replay_reads_forward_until_the_end() {
        struct Fake(Vec<Bytes>);
        impl Batches for Fake {
            type Error = String;
            async fn read_batches(
                &self,
                offset: Offset,
                bytes_max: usize,
            ) -> Result<(Vec<Bytes>, Offset), String> {
                let index = offset.0 as usize;
                let count = bytes_max.min(self.0.len().saturating_sub(index));
                let batches = self.0[index..index + count].to_vec();
                Ok((batches, Offset((index + count) as u64)))
            }
        }
        let log = Fake((0..7u8).map(|n| Bytes::from(vec![n])).collect());
        let mut seen = Vec::new();
        block_on(replay(&log, Offset(2), Offset(9), 2, |batch| {
            seen.push(batch[0]);
            Ok::<(), String>(())
        }))
        .expect("replays");
        assert_eq!(seen, vec![2, 3, 4, 5, 6], "stops where the log ends");
    }
}
