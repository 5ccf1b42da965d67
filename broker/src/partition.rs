//! A partition actor: the one task on the owning shard that holds a partition's `Log` and runs
//! every operation on it, in arrival order. This is where group commit happens.
//!
//! A round: the actor takes every command that is waiting (up to `DRAIN_MAX`), answers the
//! reads and lookups among them from what earlier rounds wrote, appends the batches waiting
//! (up to `ROUND_BYTES_MAX`; the rest go first in the next round, which starts at once), then
//! does one write (and one fdatasync if any producer asked for durability or the flush policy
//! says so), then answers each producer at the level it asked for, then parks or wakes
//! long-polling readers. N concurrent producers cost one fdatasync, not N. The batches of one
//! produce request for this partition arrive as one command ([`PartitionHandle::append_all`]),
//! so they share rounds too: a request of 64 small batches is one round, not 64; and a
//! request of many large ones is a few rounds of `ROUND_BYTES_MAX`, so a reader queued behind
//! it waits for one such write, not for all of them.
//!
//! Idempotence: before a batch from an idempotent producer is appended, the actor checks it
//! against the partition's [`ProducerStates`]: a retry of a stored batch is answered with the
//! original offsets (at the level its producer asked for) and not stored again; a batch out of
//! sequence is refused. The state is snapshotted to `producer-state` in the partition
//! directory (after a sync, so the snapshot never covers bytes that are not durable) every
//! [`HOUSEKEEPING_TICKS`] ticks while the log grows, and on close; on open it is rebuilt
//! from that snapshot plus the batches written after it ([`load_producer_states`]). A full
//! disk that rolls back appended batches rebuilds it the same way, so the state never claims a
//! batch the log does not hold.
//!
//! State lives on one shard and is never shared; commands arrive over a bounded local channel
//! (`QUEUE_MAX`), which is where backpressure from a slow disk reaches the connections.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use schema::batch::Verified;
use storage::disk::Disk;
use storage::disk::glommio::GlommioDisk;
use storage::{AppendError, CacheReader, Log, Offset, ReadError};

use crate::error::{AppendFailed, ReadFailed, Unreachable};
use crate::ops::{AckLevel, Appended, LogBounds, OffsetQuery, ReadBatches};
use crate::producer_state::{BatchIdentity, ProducerStates, Verdict};
use crate::snapshot::{self, LogExtent, OnRefusal};
use crate::topology::PartitionKey;

/// Commands queued per partition before senders wait.
pub const QUEUE_MAX: usize = 1024;
/// Commands handled in one round (one write, at most one fdatasync).
const DRAIN_MAX: usize = 256;
/// Bytes of batches appended (and so written) in one round at most, unless one batch is
/// larger: a produce request of many large batches is spread over rounds of about this size,
/// so the reads and lookups queued behind it wait for one such write, not for the whole
/// request's (issue #11: 27 MiB rounds held a tailing consumer's fetches for 20 ms each).
const ROUND_BYTES_MAX: usize = 2 << 20;
/// Long-poll readers parked per partition; more are answered at once.
const WAITERS_MAX: usize = 1024;
/// Housekeeping (retention, and a producer-state snapshot if the log grew) runs every this
/// many ticks: an unclean restart then rescans at most about a minute of batches.
pub const HOUSEKEEPING_TICKS: u32 = 600;
/// Name of the producer-state snapshot in the partition directory.
pub const PRODUCER_SNAPSHOT_FILE: &str = "producer-state";
/// Bytes read per step while rebuilding the producer state from the log.
const SCAN_BYTES_MAX: usize = 1 << 20;

/// What the actor is asked to do; each request carries its own typed answer channel.
pub enum Work {
    /// Append verified batches, in order, in one round (one write for all of them); each is
    /// answered on its own channel at the level asked for.
    Append {
        /// The batches, verified where they arrived, each with its answer; their baseOffsets
        /// are rewritten in place.
        batches: Vec<(Verified<BytesMut>, AppendAnswer)>,
        /// When to answer.
        acks: AckLevel,
    },
    /// Read whole batches.
    Read {
        /// First offset wanted.
        offset: Offset,
        /// Byte budget.
        bytes_max: usize,
        /// The answer.
        reply: Answer<Result<ReadBatches, ReadFailed>>,
    },
    /// Answer once data at or after `offset` is readable, or when the partition closes.
    WaitForData {
        /// The offset waited for.
        offset: Offset,
        /// Forget the waiter after this long (its caller has stopped waiting).
        wait: Duration,
        /// The answer.
        reply: Answer<()>,
    },
    /// Find an offset.
    ListOffset {
        /// Where to look.
        query: OffsetQuery,
        /// The answer.
        reply: Answer<Result<Offset, ReadFailed>>,
    },
    /// Report the log's bounds.
    Describe {
        /// The answer.
        reply: Answer<LogBounds>,
    },
    /// Delete the closed segments wholly below `offset` (the offsets topic, after a snapshot
    /// covers them).
    DeleteBefore {
        /// The offset.
        offset: Offset,
        /// The answer: the bounds afterwards.
        reply: Answer<Result<LogBounds, ReadFailed>>,
    },
    /// Stop: answer parked long-polls, finish this round, close the log cleanly.
    Close,
}

/// Where the actor sends one answer (the requester may have gone: answers are best effort).
pub type Answer<T> = LocalSender<T>;

/// Where one appended batch's outcome goes.
pub type AppendAnswer = Answer<Result<Appended, AppendFailed>>;

/// The handle other tasks on the shard use to reach the actor.
#[derive(Clone)]
pub struct PartitionHandle {
    key: PartitionKey,
    sender: Rc<LocalSender<Work>>,
    /// The log's bounds as of the actor's last round (None before its first and once it is
    /// closing), published by the actor so that a fetch can describe a partition it does not
    /// read without queueing behind the actor's write (issue #11: a 16-partition fetch spent
    /// 120 us to 5 ms per partition on such describes, 4.5-13.5 ms in all).
    bounds: Rc<Published>,
    /// The log's recent-batch cache, read within the published bounds
    /// ([`PartitionHandle::read_cached`]).
    cache: CacheReader,
}

impl PartitionHandle {
    /// Asks the actor to stop: parked long-polls are answered at once (they would otherwise
    /// hold the partition open until their deadline), queued work finishes, the log closes.
    pub async fn close(&self) {
        let _ = self.sender.send(Work::Close).await;
    }

    /// Sends the work `make` builds around a fresh answer channel, and waits for the answer;
    /// `None` when the actor is gone (closing).
    async fn ask<T>(&self, make: impl FnOnce(Answer<T>) -> Work) -> Option<T> {
        let (reply, receiver) = local_channel::new_bounded(1);
        self.sender.send(make(reply)).await.ok()?;
        receiver.recv().await
    }

    fn closing(&self) -> Unreachable {
        Unreachable::ShuttingDown {
            what: "the partition",
        }
    }

    /// Appends a verified batch and waits until it reached `acks`.
    pub async fn append(
        &self,
        batch: Verified<BytesMut>,
        acks: AckLevel,
    ) -> Result<Appended, AppendFailed> {
        let mut results = self.append_all(vec![batch], acks).await;
        assert_eq!(results.len(), 1, "one answer per batch");
        results.pop().expect("one answer")
    }

    /// Appends verified batches in order and waits until each reached `acks`; one answer per
    /// batch, in order. They go to the actor as one command, so they share its round: one
    /// write (and at most one fdatasync) for all of them, where one command per batch would
    /// cost a round each (issue #11: a produce request of 64 batches for one partition took
    /// 64 rounds).
    pub async fn append_all(
        &self,
        batches: Vec<Verified<BytesMut>>,
        acks: AckLevel,
    ) -> Vec<Result<Appended, AppendFailed>> {
        let count = batches.len();
        let mut receivers = Vec::with_capacity(count);
        let batches = batches
            .into_iter()
            .map(|batch| {
                let (reply, receiver) = local_channel::new_bounded(1);
                receivers.push(receiver);
                (batch, reply)
            })
            .collect();
        if self
            .sender
            .send(Work::Append { batches, acks })
            .await
            .is_err()
        {
            return (0..count).map(|_| Err(self.closing().into())).collect();
        }
        let mut results = Vec::with_capacity(count);
        for receiver in receivers {
            let result = receiver.recv().await;
            results.push(result.unwrap_or_else(|| Err(self.closing().into())));
        }
        results
    }

    /// Reads whole batches from `offset`.
    pub async fn read(&self, offset: Offset, bytes_max: usize) -> Result<ReadBatches, ReadFailed> {
        self.ask(|reply| Work::Read {
            offset,
            bytes_max,
            reply,
        })
        .await
        .unwrap_or_else(|| Err(self.closing().into()))
    }

    /// Waits until data at or after `offset` is readable; the actor forgets the wait after
    /// `wait` (the caller bounds its own wait with a timer).
    pub async fn wait_for_data(&self, offset: Offset, wait: Duration) -> Result<(), ReadFailed> {
        self.ask(|reply| Work::WaitForData {
            offset,
            wait,
            reply,
        })
        .await
        .ok_or_else(|| self.closing().into())
    }

    /// Finds an offset.
    pub async fn list_offset(&self, query: OffsetQuery) -> Result<Offset, ReadFailed> {
        self.ask(|reply| Work::ListOffset { query, reply })
            .await
            .unwrap_or_else(|| Err(self.closing().into()))
    }

    /// The log's bounds as the actor last published them (at the top of every round and after
    /// each step that moves them: see `publish`), without waiting for the actor: never ahead of
    /// what [`PartitionHandle::describe`] would answer. None before the actor's first round,
    /// for a failed log, and once the actor closes.
    pub fn published_bounds(&self) -> Option<LogBounds> {
        self.bounds.bounds.get()
    }

    /// Has `wake` woken when data at or after `offset` may be readable, judged by the
    /// published bounds: at once if their end is past `offset` (or their start is, and
    /// `offset` was deleted), else at the actor's next publish that moves them. A long-poll
    /// waits on its partitions this way without a task or an actor message per partition
    /// (issue #11: a 100-partition consumer's fetches parked a `WaitForData` task on every
    /// partition, 0.7 of a core at 50,000 msg/s). False, and nothing registered, where there
    /// are no published bounds (the actor is not running or the log failed): ask the actor
    /// ([`PartitionHandle::wait_for_data`]), which answers with the reason.
    pub fn watch(&self, offset: Offset, wake: &Rc<Wake>) -> bool {
        let Some(bounds) = self.bounds.bounds.get() else {
            return false;
        };
        if bounds.log_end > offset || offset < bounds.log_start {
            wake.wake();
        } else {
            self.bounds.watch(wake);
        }
        true
    }

    /// What [`PartitionHandle::read`] would answer, from the recent-batch cache and without
    /// waiting for the actor (which may be in the middle of a write: a tailing fetch queued
    /// behind 1-6 ms writes, issue #11); None where the cache does not hold `offset`, the
    /// offset is outside the published bounds or at their end (nothing to read yet), or the
    /// actor is not running: then ask it.
    /// The bounds come from the actor's last round, so this reads only what a read queued
    /// then would have been answered with.
    pub fn read_cached(&self, offset: Offset, bytes_max: usize) -> Option<ReadBatches> {
        let bounds = self.bounds.bounds.get()?;
        if offset < bounds.log_start {
            return None;
        }
        let (batches, next_offset) = self.cache.read(offset, bounds.log_end, bytes_max)?;
        if batches.is_empty() {
            // At the log end: nothing to read from the cache. The fetch handler answers this
            // case from the published bounds before calling here and then watches them
            // ([`PartitionHandle::watch`]); a remote read asks the actor, whose answer comes
            // after its round.
            return None;
        }
        Some(ReadBatches {
            batches,
            next_offset,
            log_end: bounds.log_end,
            log_start: bounds.log_start,
        })
    }

    /// The log's bounds.
    pub async fn describe(&self) -> Result<LogBounds, ReadFailed> {
        self.ask(|reply| Work::Describe { reply })
            .await
            .ok_or_else(|| self.closing().into())
    }

    /// Deletes the closed segments wholly below `offset`; the bounds afterwards.
    pub async fn delete_before(&self, offset: Offset) -> Result<LogBounds, ReadFailed> {
        self.ask(|reply| Work::DeleteBefore { offset, reply })
            .await
            .unwrap_or_else(|| Err(self.closing().into()))
    }

    /// The partition.
    pub fn key(&self) -> &PartitionKey {
        &self.key
    }
}

/// The offsets coordinator replays a partition's log through its actor.
impl snapshot::Batches for PartitionHandle {
    type Error = ReadFailed;

    async fn read_batches(
        &self,
        offset: Offset,
        bytes_max: usize,
    ) -> Result<(Vec<bytes::Bytes>, Offset), ReadFailed> {
        let read = PartitionHandle::read(self, offset, bytes_max).await?;
        Ok((read.batches, read.next_offset))
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
///
/// `tick_interval`: while the partition has bytes not yet durable or parked long-polls, how
/// often it checks its flush policy and their deadlines (the shard's tick). An idle partition
/// wakes only every [`HOUSEKEEPING_TICKS`] ticks, for retention: an idle broker costs next to
/// no CPU.
pub fn spawn(
    key: PartitionKey,
    opened: Opened,
    tick_interval: Duration,
) -> (PartitionHandle, glommio::Task<()>) {
    assert!(!tick_interval.is_zero(), "a zero tick would spin");
    let (sender, receiver) = local_channel::new_bounded(QUEUE_MAX);
    let bounds = Rc::new(Published::default());
    let cache = opened.log.cache_reader();
    let task = glommio::spawn_local(run(
        key.clone(),
        opened,
        receiver,
        tick_interval,
        bounds.clone(),
    ));
    (
        PartitionHandle {
            key,
            sender: Rc::new(sender),
            bounds,
            cache,
        },
        task,
    )
}

/// The next round's work: what is queued, or nothing when `wait` passed first (a tick).
/// `None` once every sender is gone. Racing the queue against a timer in this task is safe:
/// a pending local-channel receive keeps one waker however often it is polled
/// (net/tests/pending_sources.rs), and the actor awaits its file I/O outside this race.
async fn next_round(receiver: &LocalReceiver<Work>, wait: Duration) -> Option<Vec<Work>> {
    let first = futures_lite::future::or(async { Some(receiver.recv().await) }, async {
        glommio::timer::sleep(wait).await;
        None
    })
    .await;
    let mut commands = match first {
        Some(Some(command)) => vec![command],
        Some(None) => return None,
        None => return Some(Vec::new()),
    };
    while commands.len() < DRAIN_MAX {
        match futures_lite::future::poll_once(receiver.recv()).await {
            Some(Some(command)) => commands.push(command),
            _ => break,
        }
    }
    Some(commands)
}

struct Waiting {
    level: AckLevel,
    base_offset: Offset,
    last_offset: Offset,
    reply: Option<Answer<Result<Appended, AppendFailed>>>,
}

/// Work answered after this round's write: reads and lookups see what it wrote.
enum Later {
    Read(Offset, usize, Answer<Result<ReadBatches, ReadFailed>>),
    Wait(Offset, Duration, Answer<()>),
    ListOffset(OffsetQuery, Answer<Result<Offset, ReadFailed>>),
    Describe(Answer<LogBounds>),
    DeleteBefore(Offset, Answer<Result<LogBounds, ReadFailed>>),
}

/// Serves one read, lookup, long-poll or deletion against the log as it stands.
async fn serve(
    key: &PartitionKey,
    log: &mut Log<GlommioDisk>,
    waiters: &mut Vec<(Offset, std::time::Instant, Answer<()>)>,
    work: Later,
) {
    match work {
        Later::Wait(offset, wait, reply) => {
            if offset < log.written_end() || waiters.len() >= WAITERS_MAX {
                answer(Some(reply), ());
            } else {
                waiters.push((offset, std::time::Instant::now() + wait, reply));
            }
        }
        Later::DeleteBefore(offset, reply) => {
            let result = match log.delete_before(offset, now_ms()).await {
                Ok(outcome) => Ok(LogBounds {
                    log_start: outcome.log_start,
                    log_end: log.written_end(),
                }),
                Err(error) => Err(ReadFailed::Retention {
                    key: key.clone(),
                    offset,
                    error: Arc::new(error),
                }),
            };
            answer(Some(reply), result);
        }
        Later::Read(offset, bytes_max, reply) => {
            let result = match log.read(offset, bytes_max).await {
                Ok(read) => Ok(ReadBatches {
                    batches: read.batches,
                    next_offset: read.next_offset,
                    log_end: read.log_end,
                    log_start: read.log_start,
                }),
                Err(error) => Err(read_failed(key, error)),
            };
            answer(Some(reply), result);
        }
        Later::ListOffset(query, reply) => {
            let result = match query {
                OffsetQuery::Earliest => Ok(log.log_start()),
                OffsetQuery::Latest => Ok(log.written_end()),
                OffsetQuery::Timestamp(timestamp) => {
                    match log.offset_for_timestamp(timestamp).await {
                        Ok(found) => Ok(found.unwrap_or(log.written_end())),
                        Err(error) => Err(read_failed(key, error)),
                    }
                }
            };
            answer(Some(reply), result);
        }
        Later::Describe(reply) => {
            let bounds = LogBounds {
                log_start: log.log_start(),
                log_end: log.written_end(),
            };
            answer(Some(reply), bounds);
        }
    }
}

async fn run(
    key: PartitionKey,
    opened: Opened,
    receiver: LocalReceiver<Work>,
    tick_interval: Duration,
    bounds: Rc<Published>,
) {
    let Opened {
        mut log,
        dir,
        disk,
        mut producers,
        mut snapshot_through,
    } = opened;
    let mut waiters: Vec<(Offset, std::time::Instant, Answer<()>)> = Vec::new();
    // Batches received but not yet appended: a round appends at most ROUND_BYTES_MAX.
    let mut carry: std::collections::VecDeque<(Verified<BytesMut>, AckLevel, AppendAnswer)> =
        std::collections::VecDeque::new();
    let housekeeping_interval = tick_interval * HOUSEKEEPING_TICKS;
    let mut housekeeping_due = std::time::Instant::now() + housekeeping_interval;
    loop {
        publish(&bounds, &log);
        // Busy: bytes wait for their fdatasync or readers wait for data; check every tick. A
        // failed log's bytes will never be durable: only its waiters keep it busy.
        let unsynced = log.appended_end() > log.durable_end() && !log.is_failed();
        let busy = unsynced || !waiters.is_empty();
        let wait = if !carry.is_empty() {
            Duration::ZERO
        } else if busy {
            tick_interval
        } else {
            housekeeping_due.saturating_duration_since(std::time::Instant::now())
        };
        let Some(commands) = next_round(&receiver, wait).await else {
            break;
        };
        // The flush policy's fdatasync (step 3), if its task finished: durable, or the log
        // fail-stops.
        if let Err(error) = log.poll_background_sync() {
            tracing::error!(partition = %key, %error, "background sync failed");
            publish(&bounds, &log);
        }

        let mut appended: Vec<Waiting> = Vec::new();
        // Reads and lookups, answered before this round's appends and write: they see what
        // earlier rounds wrote (this round's appends are not readable until written anyway),
        // and do not wait for a write that can take milliseconds.
        let mut first: Vec<Later> = Vec::new();
        // Long-polls and deletions, after the write.
        let mut later: Vec<Later> = Vec::new();
        let mut durable_wanted = false;
        let mut closing = false;
        for command in commands {
            match command {
                Work::Close => {
                    closing = true;
                    continue;
                }
                Work::Read {
                    offset,
                    bytes_max,
                    reply,
                } => {
                    first.push(Later::Read(offset, bytes_max, reply));
                    continue;
                }
                Work::WaitForData {
                    offset,
                    wait,
                    reply,
                } => {
                    later.push(Later::Wait(offset, wait, reply));
                    continue;
                }
                Work::ListOffset { query, reply } => {
                    first.push(Later::ListOffset(query, reply));
                    continue;
                }
                Work::Describe { reply } => {
                    first.push(Later::Describe(reply));
                    continue;
                }
                Work::DeleteBefore { offset, reply } => {
                    later.push(Later::DeleteBefore(offset, reply));
                    continue;
                }
                Work::Append { batches, acks } => carry.extend(
                    batches
                        .into_iter()
                        .map(|(batch, reply)| (batch, acks, reply)),
                ),
            }
        }
        for work in first {
            serve(&key, &mut log, &mut waiters, work).await;
        }

        // 1. Appends, in arrival order, up to a round's bytes (all of them when closing): the
        // rest waits for the next round, which starts at once, after this round's readers.
        let round_bytes_max = if closing { usize::MAX } else { ROUND_BYTES_MAX };
        let mut round_bytes = 0;
        let mut appends = Vec::new();
        while let Some((batch, _, _)) = carry.front() {
            if round_bytes > 0 && round_bytes + batch.bytes().len() > round_bytes_max {
                break;
            }
            round_bytes += batch.bytes().len();
            appends.push(carry.pop_front().expect("a front"));
        }
        for (batch, acks, reply) in appends {
            let refused = |error| AppendFailed::Sequence {
                key: key.clone(),
                error,
            };
            let identity = match BatchIdentity::of(batch.header()) {
                Ok(identity) => identity,
                Err(error) => {
                    answer(Some(reply), Err(refused(error)));
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
                            reply: Some(reply),
                        });
                        continue;
                    }
                    Verdict::Refuse(error) => {
                        answer(Some(reply), Err(refused(error)));
                        continue;
                    }
                }
            }
            match log.append_verified(batch, now_ms()).await {
                Ok(done) => {
                    if let Some(identity) = &identity {
                        producers.record(identity, done.base_offset, done.last_offset, now_ms());
                    }
                    durable_wanted |= acks == AckLevel::Durable;
                    appended.push(Waiting {
                        level: acks,
                        base_offset: done.base_offset,
                        last_offset: done.last_offset,
                        reply: Some(reply),
                    });
                }
                Err(error) => {
                    if fail_rolled_back(&key, &mut appended, &error) {
                        producers = reload_producers(&key, &disk, &dir, &log).await;
                    }
                    let error = AppendFailed::Storage {
                        key: key.clone(),
                        error: Arc::new(error),
                    };
                    answer(Some(reply), Err(error));
                }
            }
        }

        // 2. One write. Producers that asked for less than durability are answered now, before
        // any fdatasync: a sync the flush policy owes (or another producer asked for) must not
        // hold back their acknowledgements.
        let mut level_error = None;
        if log.appended_end() > log.written_end()
            && let Err(error) = log.flush().await
        {
            tracing::error!(partition = %key, %error, "write failed");
            if fail_rolled_back(&key, &mut appended, &error) {
                producers = reload_producers(&key, &disk, &dir, &log).await;
            }
            level_error = Some(Arc::new(error));
        }
        // Before the acknowledgements: a producer told its offset is written finds it below
        // the end that fetches and describes report.
        publish(&bounds, &log);
        appended = answer_reached(&key, &log, appended, level_error.as_ref(), false);

        // 3. One fdatasync for everyone who asked (group commit), in the round: they wait for
        // it. The flush policy's sync, which nobody waits for, runs beside the next rounds in
        // a task of its own (at 27 MiB/s per partition it took 16 ms, and in the round it held
        // back every produce and fetch of the partition: issue #11).
        if level_error.is_none() && !log.is_failed() {
            if durable_wanted {
                if let Err(error) = log.sync(now_ms()).await {
                    tracing::error!(partition = %key, %error, "sync failed");
                    if fail_rolled_back(&key, &mut appended, &error) {
                        producers = reload_producers(&key, &disk, &dir, &log).await;
                    }
                    level_error = Some(Arc::new(error));
                }
            } else if log.sync_due(now_ms()) {
                match log.start_background_sync(now_ms()).await {
                    Ok(Some(sync)) => {
                        // Its outcome goes to the log, which waits for it before any
                        // fdatasync of its own (an acks=all round, a roll, the close).
                        glommio::spawn_local(sync.run()).detach();
                    }
                    Ok(None) => {}
                    Err(error) => {
                        // Everyone in this round was answered in step 2: nobody waits on it.
                        tracing::error!(partition = %key, %error, "starting a sync failed");
                        if fail_rolled_back(&key, &mut appended, &error) {
                            producers = reload_producers(&key, &disk, &dir, &log).await;
                        }
                    }
                }
            }
        }
        publish(&bounds, &log);
        let unanswered = answer_reached(&key, &log, appended, level_error.as_ref(), true);
        assert!(
            unanswered.is_empty(),
            "every producer is answered once the round's levels are known"
        );

        // 4. Long-polls and deletions see what was just written.
        for work in later {
            serve(&key, &mut log, &mut waiters, work).await;
        }
        publish(&bounds, &log);

        // 5. Wake long-polling readers whose data arrived; forget those whose wait is over
        // (they have answered their client already).
        let end = log.written_end();
        let now = std::time::Instant::now();
        waiters.retain(|(offset, deadline, reply)| {
            if *offset < end {
                let _ = reply.try_send(());
                false
            } else {
                *deadline > now
            }
        });

        if closing {
            break;
        }
        if std::time::Instant::now() >= housekeeping_due {
            housekeeping_due = std::time::Instant::now() + housekeeping_interval;
            producers.expire(now_ms());
            if log.appended_end() > snapshot_through {
                snapshot_through = snapshot_producers(&key, &disk, &dir, &mut log, &producers)
                    .await
                    .unwrap_or(snapshot_through);
            }
            {
                match log.enforce_retention(now_ms()).await {
                    Ok(outcome) if !outcome.deleted_segments.is_empty() => {
                        tracing::info!(partition = %key, deleted = outcome.deleted_segments.len(),
                            log_start = %outcome.log_start, "retention deleted segments");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::error!(partition = %key, %error, "retention failed"),
                }
            }
            publish(&bounds, &log);
        }
    }
    // Closing (or every handle gone): reads go to the actor, which answers that it closes.
    bounds.set(None);
    for (_, _, reply) in waiters {
        let _ = reply.try_send(());
    }
    if log.appended_end() > snapshot_through {
        let _ = snapshot_producers(&key, &disk, &dir, &mut log, &producers).await;
    }
    if let Err(error) = log.close(now_ms()).await {
        tracing::error!(partition = %key, %error, "closing the log failed");
    }
}

/// What a partition's actor publishes for the readers that do not wait for it: the log's
/// bounds, and the long-polls to wake when they change ([`PartitionHandle::watch`]).
#[derive(Default)]
struct Published {
    bounds: Cell<Option<LogBounds>>,
    /// Long-polls waiting for the bounds to move; dead ones (their fetch ended through
    /// another partition) are dropped at every registration, so the list holds at most the
    /// live long-polls plus one.
    watchers: RefCell<Vec<Weak<Wake>>>,
}

impl Published {
    /// Sets the bounds; wakes every watcher if they changed.
    fn set(&self, bounds: Option<LogBounds>) {
        if self.bounds.replace(bounds) == bounds {
            return;
        }
        let watchers = std::mem::take(&mut *self.watchers.borrow_mut());
        for watcher in watchers {
            if let Some(wake) = watcher.upgrade() {
                wake.wake();
            }
        }
    }

    fn watch(&self, wake: &Rc<Wake>) {
        let mut watchers = self.watchers.borrow_mut();
        watchers.retain(|watcher| watcher.strong_count() > 0);
        watchers.push(Rc::downgrade(wake));
    }
}

/// One long-poll's wake-up, shared by every partition it waits on: the first to see new data
/// (or a failure, or its close) wakes it.
#[derive(Debug, Default)]
pub struct Wake {
    woken: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Wake {
    /// Marks it woken and wakes the task waiting in [`Wake::woken`], if one is.
    pub fn wake(&self) {
        self.woken.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Resolves once [`Wake::wake`] was called (at once if it was already).
    pub async fn woken(&self) {
        futures_lite::future::poll_fn(|cx| {
            if self.woken.get() {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }
}

/// Publishes the bounds a describe would answer now, for the reads and describes that do not
/// wait for the actor ([`PartitionHandle::published_bounds`]): at the top of every round and
/// after every step that moves the written end or the log start or can fail the log. None for
/// a failed log: its readers must ask the actor, which answers with the failure.
fn publish(bounds: &Published, log: &Log<GlommioDisk>) {
    bounds.set((!log.is_failed()).then(|| LogBounds {
        log_start: log.log_start(),
        log_end: log.written_end(),
    }));
}

/// Answers the producers in `appended` whose level is settled: those that asked for less than
/// durability (or, with `include_durable`, everyone) get their offsets if the log reached their
/// level, else the round's write error (or `NotWritten`). Returns the ones left waiting.
fn answer_reached(
    key: &PartitionKey,
    log: &Log<GlommioDisk>,
    appended: Vec<Waiting>,
    error: Option<&Arc<AppendError>>,
    include_durable: bool,
) -> Vec<Waiting> {
    let (written, durable) = (log.written_end(), log.durable_end());
    let mut left = Vec::new();
    for waiting in appended {
        let reached = match waiting.level {
            AckLevel::None => true,
            AckLevel::Written => waiting.last_offset < written,
            AckLevel::Durable => waiting.last_offset < durable,
        };
        if waiting.level == AckLevel::Durable && !include_durable && !reached {
            left.push(waiting);
            continue;
        }
        let result = if reached {
            Ok(Appended {
                base_offset: waiting.base_offset,
                last_offset: waiting.last_offset,
                log_start: log.log_start(),
            })
        } else {
            Err(match error {
                Some(error) => AppendFailed::Storage {
                    key: key.clone(),
                    error: error.clone(),
                },
                None => AppendFailed::NotWritten {
                    key: key.clone(),
                    last_offset: waiting.last_offset,
                },
            })
        };
        answer(waiting.reply, result);
    }
    left
}

fn answer<T>(reply: Option<Answer<T>>, value: T) {
    if let Some(reply) = reply {
        // The requester may have gone (client vanished): nothing to do then.
        let _ = reply.try_send(value);
    }
}

fn read_failed(key: &PartitionKey, error: ReadError) -> ReadFailed {
    ReadFailed::Storage {
        key: key.clone(),
        error: Arc::new(error),
    }
}

/// A full disk rolls back batches appended earlier in this round: fail their producers now.
/// True when something was rolled back (the producer state must then be rebuilt).
fn fail_rolled_back(key: &PartitionKey, appended: &mut Vec<Waiting>, error: &AppendError) -> bool {
    let rolled_back = storage::log::rolled_back(error);
    if let Some(range) = rolled_back.clone() {
        appended.retain_mut(|waiting| {
            if range.contains(&waiting.base_offset) {
                let error = AppendFailed::RolledBack {
                    key: key.clone(),
                    base_offset: waiting.base_offset,
                };
                answer(waiting.reply.take(), Err(error));
                false
            } else {
                true
            }
        });
    }
    rolled_back.is_some_and(|range| !range.is_empty())
}

/// Rebuilds a partition's producer state: the snapshot in `dir` (trusted or refused by the
/// one rule of [`snapshot::load`]; a refused one is removed and the whole log rescanned, which
/// is slower but as correct), then every batch written after it. Returns the state and the
/// offset the trusted snapshot covers through. Generic over the disk, so the simulated disk's
/// crash tests run this very code (broker/tests/producer_state_snapshot_crash.rs).
pub async fn load_producer_states<D: Disk>(
    disk: &D,
    dir: &std::path::Path,
    log: &Log<D>,
) -> Result<(ProducerStates, Offset), snapshot::LoadError> {
    let start = snapshot::load(
        disk,
        &dir.join(PRODUCER_SNAPSHOT_FILE),
        LogExtent::of(log),
        OnRefusal::Rescan,
        ProducerStates::decode,
    )
    .await?;
    let (from, now) = (start.replay_from, now_ms());
    let mut states = start.state;
    snapshot::replay(log, from, log.written_end(), SCAN_BYTES_MAX, |batch| {
        states.replay_batch(batch, from, now);
        Ok::<(), snapshot::LoadError>(())
    })
    .await?;
    Ok((states, start.through))
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
    match load_producer_states(disk, dir, log).await {
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

/// The directory of a partition's log under the data directory.
pub fn partition_dir(data_dir: &std::path::Path, key: &PartitionKey) -> PathBuf {
    data_dir.join(format!("{}-{}", key.topic, key.partition.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::PartitionId;
    use schema::batch::BatchBuilder;
    use storage::LogConfig;
    use storage::disk::glommio::DirectIo;

    fn batch(first: u32) -> Verified<BytesMut> {
        let mut builder = BatchBuilder::new(1_700_000_000_000);
        for i in first..first + 3 {
            builder.push(
                None,
                Some(format!("value {i}").as_bytes()),
                1_700_000_000_000,
                &[],
            );
        }
        Verified::check(BytesMut::from(&builder.finish()[..])).expect("a valid batch")
    }

    /// Runs `test` on a fresh executor thread against partition t-0's actor, spawned on a log
    /// in a temporary directory that is removed afterwards; `test` gets the handle and the
    /// actor's task.
    fn with_partition<F, Fut>(name: &str, test: F)
    where
        F: FnOnce(PartitionHandle, glommio::Task<()>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let dir = std::env::temp_dir().join(format!(
            "ringbus-partition-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos()
        ));
        let log_dir = dir.join("t-0");
        let handle = glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let disk = GlommioDisk::open_dir(&log_dir, DirectIo::BufferedFallback)
                    .await
                    .expect("disk");
                let (log, _) = Log::open(disk.clone(), &log_dir, LogConfig::default(), now_ms())
                    .await
                    .expect("open");
                let (producers, snapshot_through) = load_producer_states(&disk, &log_dir, &log)
                    .await
                    .expect("producer state");
                let key = PartitionKey {
                    topic: "t".to_string(),
                    partition: PartitionId(0),
                };
                let opened = Opened {
                    log,
                    dir: log_dir.clone(),
                    disk,
                    producers,
                    snapshot_through,
                };
                let (partition, task) = spawn(key, opened, Duration::from_millis(10));
                test(partition, task).await;
            })
            .expect("executor");
        handle.join().expect("the shard thread panicked");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The cache read a fetch makes without waiting for the actor answers what the actor
    /// would (same batches, bounds and next offset), only within the bounds the actor
    /// published after a round, leaves reads at the log end to the actor, and answers
    /// nothing once the actor closes.
    #[test]
    fn cached_reads_answer_what_the_actor_would() {
        with_partition("cache", |partition, task| async move {
            assert_eq!(
                partition.describe().await.expect("bounds").log_end,
                Offset(0)
            );
            // At the end of the log the actor answers (after its round), not the cache.
            assert!(partition.read_cached(Offset(0), 1 << 20).is_none());
            for first in [0, 3] {
                partition
                    .append(batch(first), AckLevel::Written)
                    .await
                    .expect("appended");
            }
            // Give the actor the round after its write, where it publishes the bounds.
            let bounds = partition.describe().await.expect("bounds");
            assert_eq!(bounds.log_end, Offset(6));
            for (offset, bytes_max) in [(0, 1 << 20), (0, 1), (2, 1), (3, 1 << 20)] {
                let cached = partition
                    .read_cached(Offset(offset), bytes_max)
                    .expect("held in the cache");
                let read = partition
                    .read(Offset(offset), bytes_max)
                    .await
                    .expect("read");
                assert_eq!(cached.batches, read.batches, "offset {offset}");
                assert_eq!(
                    (cached.next_offset, cached.log_end, cached.log_start),
                    (read.next_offset, read.log_end, read.log_start),
                    "offset {offset}"
                );
            }
            // At and past the end: the actor's answer (or error), not the cache's.
            assert!(partition.read_cached(Offset(6), 1).is_none());
            assert!(partition.read_cached(Offset(7), 1).is_none());
            partition.close().await;
            task.await;
            assert!(partition.read_cached(Offset(0), 1 << 20).is_none());
        });
    }
    /// A long-poll's watch on the published bounds: woken at once where data is already past
    /// the offset, woken by the write that moves the end past it (and not before), never
    /// registered where there are no bounds (the actor closed), and woken by the close of a
    /// partition it waits on.
    #[test]
    fn watches_wake_on_the_write_that_moves_the_end_and_on_close() {
        with_partition("watch", |partition, task| async move {
            partition.describe().await.expect("bounds");
            // At the end: registered, not woken, and rounds that move nothing leave it so.
            let at_end = Rc::new(Wake::default());
            assert!(partition.watch(Offset(0), &at_end));
            partition.describe().await.expect("bounds");
            assert!(!at_end.woken.get(), "woken with nothing written");
            partition
                .append(batch(0), AckLevel::Written)
                .await
                .expect("appended");
            // The actor publishes after its write, before it answers the producer.
            assert!(
                at_end.woken.get(),
                "the write past the offset did not wake it"
            );
            at_end.woken().await;
            // Data already past the offset: woken at once.
            let behind = Rc::new(Wake::default());
            assert!(partition.watch(Offset(1), &behind));
            assert!(behind.woken.get());
            // A watch whose fetch ended is dropped at the next registration.
            let ended = Rc::new(Wake::default());
            assert!(partition.watch(Offset(3), &ended));
            drop(ended);
            let parked = Rc::new(Wake::default());
            assert!(partition.watch(Offset(3), &parked));
            assert_eq!(partition.bounds.watchers.borrow().len(), 1);
            // Closing wakes it (its fetch then asks the actor, which says it closes).
            partition.close().await;
            task.await;
            assert!(parked.woken.get(), "the close did not wake the watch");
            assert!(!partition.watch(Offset(3), &Rc::new(Wake::default())));
        });
    }

    /// A long-lived long-poll pattern: a fetch watches the end, a write wakes it, it reads and
    /// watches again, thousands of times, while another fetch's watch on the same partition
    /// ends each time through a different partition. Every write wakes its watch, and the
    /// list never holds more than the live watches plus the one dead entry pruning leaves.
    #[test]
    fn watches_wake_on_every_write_of_a_long_run_and_the_list_stays_bounded() {
        with_partition("watch-many", |partition, task| async move {
            let mut end = partition.describe().await.expect("bounds").log_end;
            for round in 0..2_000u32 {
                let tailing = Rc::new(Wake::default());
                assert!(partition.watch(end, &tailing));
                let elsewhere = Rc::new(Wake::default());
                assert!(partition.watch(end, &elsewhere));
                // That fetch was answered by another partition: its watch dies here.
                drop(elsewhere);
                assert!(
                    !tailing.woken.get(),
                    "round {round}: woken before the write"
                );
                partition
                    .append(batch(0), AckLevel::Written)
                    .await
                    .expect("appended");
                assert!(
                    tailing.woken.get(),
                    "round {round}: the write did not wake it"
                );
                tailing.woken().await;
                assert!(
                    partition.bounds.watchers.borrow().len() <= 2,
                    "round {round}: {} watchers",
                    partition.bounds.watchers.borrow().len()
                );
                end = partition.published_bounds().expect("bounds").log_end;
            }
            assert_eq!(end, Offset(6_000));
            partition.close().await;
            task.await;
        });
    }
}
