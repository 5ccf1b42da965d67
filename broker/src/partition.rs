//! A partition actor: the one task on the owning shard that holds a partition's `Log` and runs
//! every operation on it, in arrival order. This is where group commit happens.
//!
//! The actor loop takes every command that is waiting (up to `DRAIN_MAX`), appends all the
//! batches, then does one write (and one fdatasync if any producer asked for durability or the
//! flush policy says so), then answers each producer at the level it asked for, then serves
//! the reads and wakes long-polling readers. N concurrent producers cost one fdatasync, not N.
//!
//! State lives on one shard and is never shared; commands arrive over a bounded local channel
//! (`QUEUE_MAX`), which is where backpressure from a slow disk reaches the connections.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use storage::disk::glommio::GlommioDisk;
use storage::{AppendError, Log, Offset, ReadError};

use crate::ops::{
    AckLevel, OffsetQuery, OpError, OpErrorKind, PartitionOp, PartitionReply, ReadBatches,
};
use crate::topology::PartitionKey;

/// Commands queued per partition before senders wait.
pub const QUEUE_MAX: usize = 1024;
/// Commands handled in one round (one write, at most one fdatasync).
const DRAIN_MAX: usize = 256;
/// Long-poll readers parked per partition; more are answered at once.
const WAITERS_MAX: usize = 1024;
/// How often an idle partition checks its flush policy and retention.
pub const TICK_INTERVAL: Duration = Duration::from_millis(100);
/// Retention runs every this many ticks.
const RETENTION_TICKS: u64 = 600;

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

/// Starts the actor for an opened log. Returns its handle and the task that ends when the log
/// has been closed: dropping every clone of the handle closes the queue, and the actor then
/// finishes queued work and closes its log cleanly.
pub fn spawn(key: PartitionKey, log: Log<GlommioDisk>) -> (PartitionHandle, glommio::Task<()>) {
    let (sender, receiver) = local_channel::new_bounded(QUEUE_MAX);
    let sender = Rc::new(sender);
    let ticker = Rc::downgrade(&sender);
    // The ticker holds only a weak handle, so closing the partition is not kept alive by it.
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(TICK_INTERVAL).await;
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
    let task = glommio::spawn_local(run(key, log, receiver));
    (PartitionHandle { sender }, task)
}

struct Waiting {
    level: AckLevel,
    base_offset: Offset,
    last_offset: Offset,
    reply: Option<LocalSender<PartitionReply>>,
}

async fn run(key: PartitionKey, mut log: Log<GlommioDisk>, receiver: LocalReceiver<Command>) {
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
                    match log.append(batch, now_ms()).await {
                        Ok(done) => {
                            durable_wanted |= acks == AckLevel::Durable;
                            appended.push(Waiting {
                                level: acks,
                                base_offset: done.base_offset,
                                last_offset: done.last_offset,
                                reply: command.reply,
                            });
                        }
                        Err(error) => {
                            fail_rolled_back(&mut appended, &error);
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
            fail_rolled_back(&mut appended, error);
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
        PartitionOp::Append { .. } | PartitionOp::WaitForData { .. } => {
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
fn fail_rolled_back(appended: &mut Vec<Waiting>, error: &AppendError) {
    if let Some(range) = storage::log::rolled_back(error) {
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
