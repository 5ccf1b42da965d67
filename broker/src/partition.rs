//! A partition actor: the one task on the owning shard that holds a partition's `Log` and runs
//! every operation on it, in arrival order. This is where group commit happens.
//!
//! The actor loop takes every command that is waiting (up to `DRAIN_MAX`), appends all the
//! batches, then does one write (and one fdatasync if any producer asked for durability or the
//! flush policy says so), then answers each producer at the level it asked for, then serves
//! the reads and wakes long-polling readers. N concurrent producers cost one fdatasync, not N.
//!
//! Idempotence: before a batch from an idempotent producer is appended, the actor checks it
//! against the partition's [`ProducerStates`]: a retry of a stored batch is answered with the
//! original offsets (at the level its producer asked for) and not stored again; a batch out of
//! sequence is refused. The state is snapshotted to `producer-state` in the partition
//! directory (after a sync, so the snapshot never covers bytes that are not durable) every
//! [`PRODUCER_SNAPSHOT_TICKS`] ticks while the log grows, and on close; on open it is rebuilt
//! from that snapshot plus the batches written after it ([`load_producer_states`]). A full
//! disk that rolls back appended batches rebuilds it the same way, so the state never claims a
//! batch the log does not hold.
//!
//! State lives on one shard and is never shared; commands arrive over a bounded local channel
//! (`QUEUE_MAX`), which is where backpressure from a slow disk reaches the connections.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use schema::batch::BatchHeader;
use storage::disk::Disk;
use storage::disk::glommio::GlommioDisk;
use storage::{AppendError, Log, Offset, ReadError};

use crate::ops::{
    AckLevel, OffsetQuery, OpError, OpErrorKind, PartitionOp, PartitionReply, ReadBatches,
};
use crate::producer_state::{BatchIdentity, ProducerStates, SequenceError, Verdict};
use crate::topology::PartitionKey;

/// Commands queued per partition before senders wait.
pub const QUEUE_MAX: usize = 1024;
/// Commands handled in one round (one write, at most one fdatasync).
const DRAIN_MAX: usize = 256;
/// Long-poll readers parked per partition; more are answered at once.
const WAITERS_MAX: usize = 1024;
/// Retention runs every this many ticks.
const RETENTION_TICKS: u64 = 600;
/// The producer state is snapshotted (if the log grew) every this many ticks: an unclean
/// restart then rescans at most about a minute of batches.
pub const PRODUCER_SNAPSHOT_TICKS: u64 = 600;
/// Name of the producer-state snapshot in the partition directory.
pub const PRODUCER_SNAPSHOT_FILE: &str = "producer-state";
/// Bytes read per step while rebuilding the producer state from the log.
const SCAN_BYTES_MAX: usize = 1 << 20;

/// What the actor is asked to do.
pub enum Work {
    /// An operation from a request.
    Op(PartitionOp),
    /// The timer: check the flush policy and retention.
    Tick,
    /// Stop: answer parked long-polls, finish this round, close the log cleanly.
    Close,
}

/// A command with the channel its reply goes to.
pub struct Command {
    /// What to do.
    pub work: Work,
    /// Where to answer (None for ticks and fire-and-forget).
    pub reply: Option<LocalSender<PartitionReply>>,
}

/// The handle other tasks on the shard use to reach the actor.
#[derive(Clone)]
pub struct PartitionHandle {
    sender: Rc<LocalSender<Command>>,
}

impl PartitionHandle {
    /// Asks the actor to stop: parked long-polls are answered at once (they would otherwise
    /// hold the partition open until their deadline), queued work finishes, the log closes.
    pub async fn close(&self) {
        let command = Command {
            work: Work::Close,
            reply: None,
        };
        let _ = self.sender.send(command).await;
    }

    /// Runs `op` on the partition and waits for its reply.
    pub async fn call(&self, op: PartitionOp) -> PartitionReply {
        let (reply, receiver) = local_channel::new_bounded(1);
        let command = Command {
            work: Work::Op(op),
            reply: Some(reply),
        };
        if self.sender.send(command).await.is_err() {
            return PartitionReply::Failed(OpError::new(
                OpErrorKind::ShuttingDown,
                "partition is closing",
            ));
        }
        receiver.recv().await.unwrap_or_else(|| {
            PartitionReply::Failed(OpError::new(OpErrorKind::ShuttingDown, "partition closed"))
        })
    }
}

/// Wall-clock milliseconds, as the log's timestamps and ages are kept.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An opened log with what its actor needs besides: its directory and disk (for the producer
/// state snapshot), and the producer state rebuilt by [`load_producer_states`].
pub struct Opened {
    /// The log.
    pub log: Log<GlommioDisk>,
    /// Its directory.
    pub dir: PathBuf,
    /// The disk it is on.
    pub disk: GlommioDisk,
    /// The idempotence state as of the log's end.
    pub producers: ProducerStates,
    /// The offset the snapshot on disk covers through.
    pub snapshot_through: Offset,
}

/// Starts the actor for an opened log. Returns its handle and the task that ends when the log
/// has been closed: dropping every clone of the handle closes the queue, and the actor then
/// finishes queued work and closes its log cleanly.
/// `tick_interval`: how often an idle partition checks its flush policy and retention
/// ([`crate::shard::TICK_INTERVAL_DEFAULT`]).
pub fn spawn(
    key: PartitionKey,
    opened: Opened,
    tick_interval: Duration,
) -> (PartitionHandle, glommio::Task<()>) {
    let (sender, receiver) = local_channel::new_bounded(QUEUE_MAX);
    let sender = Rc::new(sender);
    let ticker = Rc::downgrade(&sender);
    // The ticker holds only a weak handle, so closing the partition is not kept alive by it.
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(tick_interval).await;
            let Some(sender) = ticker.upgrade() else {
                break;
            };
            // A full queue is busy anyway: the next round checks the policy.
            let _ = sender.try_send(Command {
                work: Work::Tick,
                reply: None,
            });
        }
    })
    .detach();
    let task = glommio::spawn_local(run(key, opened, receiver));
    (PartitionHandle { sender }, task)
}

struct Waiting {
    level: AckLevel,
    base_offset: Offset,
    last_offset: Offset,
    reply: Option<LocalSender<PartitionReply>>,
}

async fn run(key: PartitionKey, opened: Opened, receiver: LocalReceiver<Command>) {
    let Opened {
        mut log,
        dir,
        disk,
        mut producers,
        mut snapshot_through,
    } = opened;
    let mut waiters: Vec<(Offset, std::time::Instant, LocalSender<PartitionReply>)> = Vec::new();
    let mut ticks: u64 = 0;
    while let Some(first) = receiver.recv().await {
        let mut commands = vec![first];
        while commands.len() < DRAIN_MAX {
            match futures_lite::future::poll_once(receiver.recv()).await {
                Some(Some(command)) => commands.push(command),
                _ => break,
            }
        }

        // 1. Appends, in arrival order.
        let mut appended: Vec<Waiting> = Vec::new();
        let mut later: Vec<(PartitionOp, Option<LocalSender<PartitionReply>>)> = Vec::new();
        let mut durable_wanted = false;
        let mut tick = false;
        let mut closing = false;
        for command in commands {
            match command.work {
                Work::Tick => tick = true,
                Work::Close => closing = true,
                Work::Op(PartitionOp::Append { batch, acks }) => {
                    let identity = match identity(&batch) {
                        Ok(identity) => identity,
                        Err(error) => {
                            answer(
                                command.reply,
                                PartitionReply::Failed(sequence_error(&key, &error)),
                            );
                            continue;
                        }
                    };
                    if let Some(identity) = &identity {
                        match producers.check(identity, now_ms()) {
                            Verdict::Append => {}
                            Verdict::Duplicate {
                                base_offset,
                                last_offset,
                            } => {
                                // Answered like the original, at the level this retry asks.
                                durable_wanted |= acks == AckLevel::Durable;
                                appended.push(Waiting {
                                    level: acks,
                                    base_offset,
                                    last_offset,
                                    reply: command.reply,
                                });
                                continue;
                            }
                            Verdict::Refuse(error) => {
                                answer(
                                    command.reply,
                                    PartitionReply::Failed(sequence_error(&key, &error)),
                                );
                                continue;
                            }
                        }
                    }
                    match log.append(batch, now_ms()).await {
                        Ok(done) => {
                            if let Some(identity) = &identity {
                                producers.record(
                                    identity,
                                    done.base_offset,
                                    done.last_offset,
                                    now_ms(),
                                );
                            }
                            durable_wanted |= acks == AckLevel::Durable;
                            appended.push(Waiting {
                                level: acks,
                                base_offset: done.base_offset,
                                last_offset: done.last_offset,
                                reply: command.reply,
                            });
                        }
                        Err(error) => {
                            if fail_rolled_back(&mut appended, &error) {
                                producers = reload_producers(&key, &disk, &dir, &log).await;
                            }
                            answer(
                                command.reply,
                                PartitionReply::Failed(append_error(&key, &error)),
                            );
                        }
                    }
                }
                Work::Op(op) => later.push((op, command.reply)),
            }
        }

        // 2. One write, and one fdatasync for everyone who asked (group commit).
        let now = now_ms();
        let level_result = if durable_wanted || log.sync_due(now) {
            log.sync(now).await.map(|_| ())
        } else if log.appended_end() > log.written_end() {
            log.flush().await.map(|_| ())
        } else {
            Ok(())
        };
        if let Err(error) = &level_result {
            tracing::error!(partition = %key, %error, "write failed");
            if fail_rolled_back(&mut appended, error) {
                producers = reload_producers(&key, &disk, &dir, &log).await;
            }
        }

        // 3. Answer producers at the level each asked for.
        let (written, durable) = (log.written_end(), log.durable_end());
        for waiting in appended {
            let reached = match waiting.level {
                AckLevel::None => true,
                AckLevel::Written => waiting.last_offset < written,
                AckLevel::Durable => waiting.last_offset < durable,
            };
            let reply = if reached {
                PartitionReply::Appended {
                    base_offset: waiting.base_offset,
                    last_offset: waiting.last_offset,
                    log_start: log.log_start(),
                }
            } else {
                let error = level_result.as_ref().err();
                PartitionReply::Failed(match error {
                    Some(error) => append_error(&key, error),
                    None => OpError::new(OpErrorKind::Internal, "batch not written"),
                })
            };
            answer(waiting.reply, reply);
        }

        // 4. Reads and lookups see what was just written.
        for (op, reply) in later {
            match op {
                PartitionOp::WaitForData { offset, wait } => {
                    if offset < log.written_end() || waiters.len() >= WAITERS_MAX {
                        answer(reply, PartitionReply::DataReady);
                    } else if let Some(reply) = reply {
                        waiters.push((offset, std::time::Instant::now() + wait, reply));
                    }
                }
                PartitionOp::DeleteBefore(offset) => {
                    let result = match log.delete_before(offset, now_ms()).await {
                        Ok(outcome) => PartitionReply::Described {
                            log_start: outcome.log_start,
                            log_end: log.written_end(),
                        },
                        Err(error) => PartitionReply::Failed(OpError::new(
                            OpErrorKind::StorageFailed,
                            format!("{key}: deleting segments below {offset}: {error}"),
                        )),
                    };
                    answer(reply, result);
                }
                op => {
                    let result = execute(&key, &log, op).await;
                    answer(reply, result);
                }
            }
        }

        // 5. Wake long-polling readers whose data arrived; forget those whose wait is over
        // (they have answered their client already).
        let end = log.written_end();
        let now = std::time::Instant::now();
        waiters.retain(|(offset, deadline, reply)| {
            if *offset < end {
                let _ = reply.try_send(PartitionReply::DataReady);
                false
            } else {
                *deadline > now
            }
        });

        if closing {
            break;
        }
        if tick {
            ticks += 1;
            if ticks.is_multiple_of(PRODUCER_SNAPSHOT_TICKS) {
                producers.expire(now_ms());
                if log.appended_end() > snapshot_through {
                    snapshot_through = snapshot_producers(&key, &disk, &dir, &mut log, &producers)
                        .await
                        .unwrap_or(snapshot_through);
                }
            }
            if ticks.is_multiple_of(RETENTION_TICKS) {
                match log.enforce_retention(now_ms()).await {
                    Ok(outcome) if !outcome.deleted_segments.is_empty() => {
                        tracing::info!(partition = %key, deleted = outcome.deleted_segments.len(),
                            log_start = %outcome.log_start, "retention deleted segments");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::error!(partition = %key, %error, "retention failed"),
                }
            }
        }
    }
    for (_, _, reply) in waiters {
        let _ = reply.try_send(PartitionReply::DataReady);
    }
    if log.appended_end() > snapshot_through {
        let _ = snapshot_producers(&key, &disk, &dir, &mut log, &producers).await;
    }
    if let Err(error) = log.close(now_ms()).await {
        tracing::error!(partition = %key, %error, "closing the log failed");
    }
}

async fn execute(key: &PartitionKey, log: &Log<GlommioDisk>, op: PartitionOp) -> PartitionReply {
    match op {
        PartitionOp::Read { offset, bytes_max } => match log.read(offset, bytes_max).await {
            Ok(read) => PartitionReply::Read(ReadBatches {
                batches: read.batches,
                next_offset: read.next_offset,
                log_end: read.log_end,
                log_start: read.log_start,
            }),
            Err(error) => PartitionReply::Failed(read_error(key, &error)),
        },
        PartitionOp::ListOffset(query) => match query {
            OffsetQuery::Earliest => PartitionReply::Offset(log.log_start()),
            OffsetQuery::Latest => PartitionReply::Offset(log.written_end()),
            OffsetQuery::Timestamp(timestamp) => match log.offset_for_timestamp(timestamp).await {
                Ok(found) => PartitionReply::Offset(found.unwrap_or(log.written_end())),
                Err(error) => PartitionReply::Failed(read_error(key, &error)),
            },
        },
        PartitionOp::Describe => PartitionReply::Described {
            log_start: log.log_start(),
            log_end: log.written_end(),
        },
        PartitionOp::Append { .. }
        | PartitionOp::WaitForData { .. }
        | PartitionOp::DeleteBefore(_) => {
            unreachable!("appends and waits are handled by the actor loop")
        }
    }
}

fn answer(reply: Option<LocalSender<PartitionReply>>, value: PartitionReply) {
    if let Some(reply) = reply {
        // The requester may have gone (client vanished): nothing to do then.
        let _ = reply.try_send(value);
    }
}

/// A full disk rolls back batches appended earlier in this round: fail their producers now.
/// True when something was rolled back (the producer state must then be rebuilt).
fn fail_rolled_back(appended: &mut Vec<Waiting>, error: &AppendError) -> bool {
    let rolled_back = storage::log::rolled_back(error);
    if let Some(range) = rolled_back.clone() {
        appended.retain_mut(|waiting| {
            if range.contains(&waiting.base_offset) {
                answer(
                    waiting.reply.take(),
                    PartitionReply::Failed(OpError::new(
                        OpErrorKind::StorageFull,
                        format!(
                            "disk full: batch at offset {} was not stored",
                            waiting.base_offset
                        ),
                    )),
                );
                false
            } else {
                true
            }
        });
    }
    rolled_back.is_some_and(|range| !range.is_empty())
}

/// Storage append errors as operation errors.
fn append_error(key: &PartitionKey, error: &AppendError) -> OpError {
    let kind = match error {
        AppendError::InvalidBatch(_) => OpErrorKind::InvalidBatch,
        AppendError::BatchTooLarge { .. } => OpErrorKind::BatchTooLarge,
        AppendError::StorageFull { .. } => OpErrorKind::StorageFull,
        AppendError::Io(_) | AppendError::Failed { .. } => OpErrorKind::StorageFailed,
        _ => OpErrorKind::Internal,
    };
    OpError::new(kind, format!("{key}: {error}"))
}

/// The idempotence fields of a batch the handler verified (so its header parses).
fn identity(batch: &BytesMut) -> Result<Option<BatchIdentity>, SequenceError> {
    let header = BatchHeader::parse(batch).expect("the handler verified the batch");
    BatchIdentity::of(&header)
}

/// Sequence errors as operation errors.
fn sequence_error(key: &PartitionKey, error: &SequenceError) -> OpError {
    let kind = match error {
        SequenceError::Malformed { .. } => OpErrorKind::InvalidBatch,
        SequenceError::Fenced { .. } => OpErrorKind::ProducerFenced,
        SequenceError::OutOfOrder { .. } => OpErrorKind::OutOfOrderSequence,
        SequenceError::UnknownProducer { .. } => OpErrorKind::UnknownProducerId,
        SequenceError::DuplicateTooOld { .. } => OpErrorKind::DuplicateSequence,
        SequenceError::TooManyProducers { .. } => OpErrorKind::Throttled,
    };
    OpError::new(kind, format!("{key}: {error}"))
}

/// Rebuilds a partition's producer state: the snapshot in `dir` (if any, and if it does not
/// reach past the log's end), then every batch written after it. Returns the state and the
/// offset the snapshot on disk covers through. A damaged or newer snapshot is ignored (and
/// logged): the whole log is scanned instead, which is slower but as correct. An error reading
/// the log fails the open: the partition would serve that read error anyway.
pub async fn load_producer_states(
    key: &PartitionKey,
    disk: &GlommioDisk,
    dir: &std::path::Path,
    log: &Log<GlommioDisk>,
) -> Result<(ProducerStates, Offset), ReadError> {
    let path = dir.join(PRODUCER_SNAPSHOT_FILE);
    // (the snapshot if trusted, whether it was refused)
    let (snapshot, refused) = match storage::load_blob(disk, &path).await {
        Ok(Some(bytes)) => match ProducerStates::decode(&bytes) {
            Ok((through, states)) if through <= log.written_end() => {
                (Some((through, states)), false)
            }
            Ok((through, _)) => {
                tracing::warn!(partition = %key, %through, log_end = %log.written_end(),
                    "producer state snapshot reaches past the log end: rescanning the log");
                (None, true)
            }
            Err(error) => {
                tracing::warn!(partition = %key, %error, "producer state snapshot refused: rescanning the log");
                (None, true)
            }
        },
        Ok(None) => (None, false),
        Err(error) => {
            tracing::warn!(partition = %key, %error, "producer state snapshot unreadable: rescanning the log");
            (None, matches!(error, storage::BlobError::Damaged { .. }))
        }
    };
    if refused {
        // Never trusted again: after the log regrows past it, it would claim batches that are
        // not the ones it describes. The next snapshot replaces it; until then, scans.
        if let Err(error) = disk.remove(&path).await {
            tracing::warn!(partition = %key, %error, "removing the refused producer state snapshot");
        }
    }
    let (through, mut states) = snapshot.unwrap_or((log.log_start(), ProducerStates::default()));
    let now = now_ms();
    let mut offset = through.max(log.log_start());
    while offset < log.written_end() {
        let read = log.read(offset, SCAN_BYTES_MAX).await?;
        if read.batches.is_empty() {
            break;
        }
        for batch in &read.batches {
            // Stored batches passed verification on append and again on this read.
            let Ok(header) = BatchHeader::parse(batch) else {
                continue;
            };
            let base = Offset(header.base_offset as u64);
            if base < through {
                continue;
            }
            if let Ok(Some(identity)) = BatchIdentity::of(&header) {
                states.record(&identity, base, Offset(header.last_offset() as u64), now);
            }
        }
        assert!(
            read.next_offset > offset,
            "a read from {offset} returned batches but did not advance"
        );
        offset = read.next_offset;
    }
    Ok((states, through))
}

/// After a rollback: the producer state rebuilt from the snapshot and the log. If the log
/// cannot be read the partition is failing anyway; an empty state then refuses retries of
/// unknown producers rather than accepting duplicates.
async fn reload_producers(
    key: &PartitionKey,
    disk: &GlommioDisk,
    dir: &std::path::Path,
    log: &Log<GlommioDisk>,
) -> ProducerStates {
    match load_producer_states(key, disk, dir, log).await {
        Ok((states, _)) => states,
        Err(error) => {
            tracing::error!(partition = %key, %error, "rebuilding the producer state failed");
            ProducerStates::default()
        }
    }
}

/// Syncs the log (so the snapshot covers only durable batches), then stores the producer
/// state as of the log end. Returns the offset the stored snapshot covers, or None if either
/// step failed (logged; the previous snapshot stays and the next tick tries again).
async fn snapshot_producers(
    key: &PartitionKey,
    disk: &GlommioDisk,
    dir: &std::path::Path,
    log: &mut Log<GlommioDisk>,
    producers: &ProducerStates,
) -> Option<Offset> {
    if let Err(error) = log.sync(now_ms()).await {
        tracing::error!(partition = %key, %error, "sync before the producer state snapshot failed");
        return None;
    }
    let through = log.durable_end();
    assert_eq!(
        log.appended_end(),
        through,
        "a sync makes everything appended durable"
    );
    match storage::store_blob(
        disk,
        dir,
        PRODUCER_SNAPSHOT_FILE,
        &producers.encode(through),
    )
    .await
    {
        Ok(()) => Some(through),
        Err(error) => {
            tracing::warn!(partition = %key, %error, "storing the producer state snapshot failed");
            None
        }
    }
}

/// Storage read errors as operation errors.
fn read_error(key: &PartitionKey, error: &ReadError) -> OpError {
    let kind = match error {
        ReadError::OffsetOutOfRange { .. } => OpErrorKind::OffsetOutOfRange,
        ReadError::Corruption(_) => OpErrorKind::Corruption,
        ReadError::Io(_) | ReadError::Failed { .. } => OpErrorKind::StorageFailed,
        _ => OpErrorKind::Internal,
    };
    OpError::new(kind, format!("{key}: {error}"))
}

/// The directory of a partition's log under the data directory.
pub fn partition_dir(data_dir: &std::path::Path, key: &PartitionKey) -> PathBuf {
    data_dir.join(format!("{}-{}", key.topic, key.partition.0))
}
