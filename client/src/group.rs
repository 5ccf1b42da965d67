//! [`GroupConsumer`]: a consumer that is a member of a consumer group: the broker's coordinator
//! shares the subscribed topics' partitions out among the group's members, and the group's
//! committed offsets say where each partition resumes.
//!
//! Lifecycle: [`GroupConsumer::subscribe`] names the group and the topics; the first
//! [`GroupConsumer::poll`] joins the group (the coordinator answers once every member has
//! (re)joined, with this member's partitions), looks up the committed offsets of its
//! partitions (a partition without one starts at [`GroupOptions::offset_reset`]) and fetches.
//! A background task heartbeats every [`GroupOptions::heartbeat_interval`]; when the
//! coordinator answers that the group is rebalancing (a member joined, left or went silent),
//! the next `poll` commits the positions (with auto-commit) and joins again, getting a new
//! generation and maybe other partitions: Kafka's eager rebalance. [`GroupConsumer::close`]
//! commits and leaves, so the partitions move at once instead of after the session timeout.
//!
//! A poll fetches, checks and decodes as [`Consumer::poll`](crate::Consumer::poll) does (the
//! same code, `poll.rs`), except that a position out of the log (`OffsetOutOfRange`, after
//! retention) moves to [`GroupOptions::offset_reset`] instead of failing the poll. A poll
//! that fails moves no position.
//!
//! Delivery: at least once. A position is the offset after the last record `poll` returned;
//! auto-commit commits the positions at the start of a later `poll` (the records returned
//! before are taken as processed by then), [`GroupConsumer::commit`] commits them on demand.
//! Records returned after the last commit may be delivered again to the next owner of their
//! partition. Committed offsets never move backwards (the broker refuses it).
//!
//! Give each member a [`Client`] (a connection) of its own: the broker answers a connection's
//! requests in order, and a join is held until the rebalance completes, so anything else
//! sharing the connection (another member's heartbeats, a producer) would wait behind it.
//!
//! All state lives on the client's executor thread; the heartbeat task shares the membership
//! through `Rc`. `!Send`, like the rest of the client.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use schema::wire::{self, ErrorCode, JoinGroupOwned, PartitionOffsetOwned};

use crate::client::{Client, OffsetQuery, millis_u32};
use crate::consumer::ConsumedRecord;
use crate::coordinator::must_rejoin;
use crate::error::ClientError;
use crate::poll::{self, FetchLimits, OutOfRange, PartitionKey};

/// How the coordinator shares partitions out.
pub use schema::wire::Assignor;

/// Where a partition without a committed offset starts (Kafka's `auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The first offset still stored.
    Earliest,
    /// The log end: only records produced from now on.
    Latest,
}

/// Settings of a [`GroupConsumer`]. Defaults follow Kafka's where it has one.
#[derive(Debug, Clone)]
pub struct GroupOptions {
    /// The group.
    pub group: String,
    /// The coordinator removes this member after this long without a heartbeat (Kafka 45 s).
    pub session_timeout: Duration,
    /// How long a rebalance waits for every member to rejoin.
    pub rebalance_timeout: Duration,
    /// Time between heartbeats: a third of the session timeout or less.
    pub heartbeat_interval: Duration,
    /// How partitions are shared out; every member of a group must ask for the same one.
    pub assignor: Assignor,
    /// Commit the positions this often, at the start of a poll (None: only on
    /// [`GroupConsumer::commit`] and on close).
    pub auto_commit_interval: Option<Duration>,
    /// Where a partition without a committed offset starts.
    pub offset_reset: OffsetReset,
    /// Bytes per fetch response, over all partitions.
    pub fetch_bytes_max: u32,
    /// Bytes per partition in one fetch.
    pub partition_bytes_max: u32,
}

impl GroupOptions {
    /// Kafka's defaults for `group`.
    pub fn new(group: impl Into<String>) -> GroupOptions {
        GroupOptions {
            group: group.into(),
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(3),
            assignor: Assignor::Range,
            auto_commit_interval: Some(Duration::from_secs(5)),
            offset_reset: OffsetReset::Latest,
            fetch_bytes_max: crate::poll::FETCH_BYTES_MAX_DEFAULT,
            partition_bytes_max: 1 << 20,
        }
    }
}

/// What the heartbeat task and the consumer share.
struct Membership {
    member_id: RefCell<String>,
    generation: Cell<i32>,
    /// The coordinator asked for a rejoin (or removed us).
    rejoin: Cell<bool>,
    /// A join is in flight: heartbeats wait (its response would queue behind the join's).
    joining: Cell<bool>,
    /// The connection failed under the heartbeat task.
    failure: RefCell<Option<ClientError>>,
    stopped: Cell<bool>,
}

/// A member of a consumer group. See the module documentation.
pub struct GroupConsumer {
    client: Rc<Client>,
    options: GroupOptions,
    topics: Vec<String>,
    membership: Rc<Membership>,
    /// The assigned partitions and the next offset to return from each.
    positions: BTreeMap<(String, u32), u64>,
    /// What this member committed last, per partition (to skip commits that change nothing).
    committed: BTreeMap<(String, u32), u64>,
    last_commit: Instant,
    joined: bool,
    heartbeat: Option<glommio::Task<()>>,
}

impl GroupConsumer {
    /// A member of `options.group` subscribed to `topics`; it joins on the first poll.
    /// Panics if the heartbeat interval is zero (a configuration bug).
    pub fn subscribe(client: Rc<Client>, options: GroupOptions, topics: &[&str]) -> GroupConsumer {
        assert!(
            !options.heartbeat_interval.is_zero(),
            "the heartbeat interval must not be zero"
        );
        let mut topics: Vec<String> = topics.iter().map(|topic| topic.to_string()).collect();
        topics.sort();
        topics.dedup();
        GroupConsumer {
            client,
            options,
            topics,
            membership: Rc::new(Membership {
                member_id: RefCell::new(String::new()),
                generation: Cell::new(-1),
                rejoin: Cell::new(true),
                joining: Cell::new(false),
                failure: RefCell::new(None),
                stopped: Cell::new(false),
            }),
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
            last_commit: Instant::now(),
            joined: false,
            heartbeat: None,
        }
    }

    /// The member id the coordinator gave (empty before the first join).
    pub fn member_id(&self) -> String {
        self.membership.member_id.borrow().clone()
    }

    /// The generation joined (-1 before the first join).
    pub fn generation(&self) -> i32 {
        self.membership.generation.get()
    }

    /// The partitions this member owns now, as (topic, partition), in order.
    pub fn assignment(&self) -> Vec<(String, u32)> {
        self.positions.keys().cloned().collect()
    }

    /// The next offset `poll` returns for a partition this member owns.
    pub fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        self.positions.get(&(topic.to_string(), partition)).copied()
    }

    /// Moves the position of an owned partition (e.g. back to the first record a caller did
    /// not process, before [`GroupConsumer::commit`]).
    pub fn seek(&mut self, topic: &str, partition: u32, offset: u64) -> Result<(), ClientError> {
        match self.positions.get_mut(&(topic.to_string(), partition)) {
            Some(position) => {
                *position = offset;
                Ok(())
            }
            None => Err(ClientError::InvalidArgument {
                reason: format!("{topic}/{partition} is not assigned to this member"),
            }),
        }
    }

    /// Joins (or rejoins) the group if needed, then fetches from the owned partitions, waiting
    /// up to `max_wait` for a record. A poll during which the group starts rebalancing returns
    /// what it has; the next one rejoins.
    pub async fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumedRecord>, ClientError> {
        if let Some(failure) = self.membership.failure.borrow().clone() {
            return Err(failure);
        }
        if self.membership.rejoin.get() {
            self.rejoin().await?;
        }
        if let Some(interval) = self.options.auto_commit_interval
            && self.last_commit.elapsed() >= interval
        {
            self.commit_positions().await?;
        }
        // Wake up in time to notice a rebalance.
        let wait = max_wait.min(self.options.heartbeat_interval);
        if self.positions.is_empty() {
            // An idle member (more members than partitions): heartbeats keep it in the group.
            glommio::timer::sleep(wait).await;
            return Ok(Vec::new());
        }
        let limits = FetchLimits {
            fetch_bytes_max: self.options.fetch_bytes_max,
            partition_bytes_max: self.options.partition_bytes_max,
        };
        // A committed offset that fell out of the log (retention) starts over as a partition
        // without one.
        let out_of_range = OutOfRange::Reset(query(self.options.offset_reset));
        let polled =
            poll::poll_once(&self.client, &self.positions, wait, limits, out_of_range).await?;
        self.positions.extend(polled.positions);
        Ok(polled.records)
    }

    /// Commits the positions of the owned partitions (what `poll` has returned so far).
    pub async fn commit(&mut self) -> Result<(), ClientError> {
        self.commit_positions().await
    }

    /// Commits, stops heartbeating and leaves the group, so its partitions move to the other
    /// members at once.
    pub async fn close(mut self) -> Result<(), ClientError> {
        let committed = if self.joined {
            self.commit_positions().await
        } else {
            Ok(())
        };
        self.membership.stopped.set(true);
        if let Some(task) = self.heartbeat.take() {
            task.cancel().await;
        }
        let member_id = self.member_id();
        if !member_id.is_empty() {
            match self
                .client
                .leave_group(&self.options.group, &member_id)
                .await
            {
                Ok(()) => {}
                // Already removed: nothing to leave.
                Err(error) if error.code() == Some(ErrorCode::UnknownMemberId) => {}
                Err(error) => return Err(error),
            }
        }
        committed
    }

    /// Commits the positions that changed since the last commit. A commit the coordinator
    /// refuses because this member left the generation is not an error here: the partitions
    /// are someone else's now, and their records will be delivered again (at least once).
    async fn commit_positions(&mut self) -> Result<(), ClientError> {
        self.last_commit = Instant::now();
        let offsets: Vec<PartitionOffsetOwned> = self
            .positions
            .iter()
            .filter(|(key, offset)| self.committed.get(*key) != Some(*offset))
            .map(|((topic, partition), offset)| PartitionOffsetOwned {
                topic: topic.clone(),
                partition: *partition,
                offset: *offset,
            })
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let member_id = self.member_id();
        let generation = self.generation();
        let results = match self
            .client
            .commit_offsets(
                &self.options.group,
                &member_id,
                generation,
                offsets.clone(),
                false,
            )
            .await
        {
            Ok(results) => results,
            Err(error) if error.code().is_some_and(must_rejoin) => {
                tracing::info!(group = %self.options.group, %error, "commit refused: rejoining");
                self.membership.rejoin.set(true);
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        for (offset, result) in offsets.into_iter().zip(results) {
            let key = (offset.topic, offset.partition);
            if result.error == ErrorCode::None {
                self.committed.insert(key, offset.offset);
            } else if result.error == ErrorCode::OffsetCommitRewind {
                // The group committed further already (this member sought back): keep going.
                tracing::warn!(topic = %key.0, partition = key.1, message = %result.message,
                    "commit behind the committed offset refused");
            } else {
                return Err(ClientError::Partition {
                    topic: key.0,
                    partition: key.1,
                    code: result.error,
                    message: result.message,
                });
            }
        }
        Ok(())
    }

    /// Commits (when it has partitions and auto-commit is on), joins until the coordinator
    /// answers with a generation, and positions the new partitions.
    async fn rejoin(&mut self) -> Result<(), ClientError> {
        if self.joined && self.options.auto_commit_interval.is_some() {
            self.commit_positions().await?;
        }
        self.membership.joining.set(true);
        let joined = self.join().await;
        self.membership.joining.set(false);
        let joined = joined?;
        // The coordinator knows this member by its new id from now on (a rejoin after a failure
        // below reuses it rather than leaving a second member behind).
        *self.membership.member_id.borrow_mut() = joined.member_id.clone();
        let assigned: Vec<(String, u32)> = joined
            .assignment
            .iter()
            .flat_map(|entry| {
                entry
                    .partitions
                    .iter()
                    .map(move |partition| (entry.topic.clone(), *partition))
            })
            .collect();
        // The new generation counts only once its partitions are positioned: if that fails (a
        // lost connection), the member must not go on fetching and committing its old
        // partitions under the new generation; it rejoins at the next poll.
        let positions = match self.starting_positions(&assigned).await {
            Ok(positions) => positions,
            Err(error) => {
                self.membership.rejoin.set(true);
                return Err(error);
            }
        };
        self.membership.rejoin.set(false);
        self.membership.generation.set(joined.generation);
        self.joined = true;
        self.positions = positions;
        self.committed
            .retain(|key, _| self.positions.contains_key(key));
        tracing::info!(group = %self.options.group, member = %joined.member_id,
            generation = joined.generation, partitions = assigned.len(), "joined");
        if self.heartbeat.is_none() {
            self.heartbeat = Some(glommio::spawn_local(heartbeat_loop(
                self.client.clone(),
                self.options.group.clone(),
                self.options.heartbeat_interval,
                self.membership.clone(),
            )));
        }
        Ok(())
    }

    /// Sends joins until one succeeds: a member the coordinator forgot rejoins as new.
    async fn join(&mut self) -> Result<wire::JoinedOwned, ClientError> {
        const ATTEMPTS_MAX: u32 = 3;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let join = JoinGroupOwned {
                group: self.options.group.clone(),
                member_id: self.member_id(),
                client_id: self.client.options().client_id.clone(),
                topics: self.topics.clone(),
                session_timeout_ms: millis_u32(self.options.session_timeout),
                rebalance_timeout_ms: millis_u32(self.options.rebalance_timeout),
                assignor: self.options.assignor,
            };
            match self.client.join_group(join).await {
                Ok(joined) => return Ok(joined),
                Err(error) if attempt < ATTEMPTS_MAX && error.code().is_some_and(must_rejoin) => {
                    if error.code() == Some(ErrorCode::UnknownMemberId) {
                        self.membership.member_id.borrow_mut().clear();
                    }
                    tracing::info!(group = %self.options.group, %error, "join refused: joining again");
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The committed offsets of `assigned`, and for partitions without one the reset policy's.
    async fn starting_positions(
        &self,
        assigned: &[(String, u32)],
    ) -> Result<BTreeMap<(String, u32), u64>, ClientError> {
        let mut positions = BTreeMap::new();
        if assigned.is_empty() {
            return Ok(positions);
        }
        let committed = self
            .client
            .fetch_offsets(&self.options.group, &self.topics)
            .await?;
        for entry in committed {
            let key = (entry.topic, entry.partition);
            if assigned.contains(&key) {
                positions.insert(key, entry.offset);
            }
        }
        let missing: Vec<PartitionKey> = assigned
            .iter()
            .filter(|key| !positions.contains_key(*key))
            .cloned()
            .collect();
        let offsets =
            poll::look_up(&self.client, &missing, query(self.options.offset_reset)).await?;
        positions.extend(missing.into_iter().zip(offsets));
        Ok(positions)
    }
}

/// The list-offsets query of a reset policy.
fn query(reset: OffsetReset) -> OffsetQuery {
    match reset {
        OffsetReset::Earliest => OffsetQuery::Earliest,
        OffsetReset::Latest => OffsetQuery::Latest,
    }
}

/// Heartbeats until stopped; flags a rejoin when the coordinator asks for one.
async fn heartbeat_loop(
    client: Rc<Client>,
    group: String,
    interval: Duration,
    membership: Rc<Membership>,
) {
    loop {
        glommio::timer::sleep(interval).await;
        if membership.stopped.get() {
            return;
        }
        if membership.joining.get() {
            continue;
        }
        let member_id = membership.member_id.borrow().clone();
        let generation = membership.generation.get();
        match client.heartbeat(&group, &member_id, generation).await {
            Ok(()) => {}
            Err(error) if error.code().is_some_and(must_rejoin) => {
                if !membership.rejoin.get() {
                    tracing::info!(%group, %error, "the group is rebalancing");
                }
                membership.rejoin.set(true);
            }
            // A slow answer is not a lost membership; the session timeout decides that.
            Err(ClientError::Timeout { .. }) => {}
            // The next heartbeat reconnects and learns whether the coordinator still knows
            // this member (after a broker restart it does not: the member rejoins).
            // Also after a reconnect that gave up: the broker may be back at the next one.
            Err(ClientError::ConnectionLost { .. } | ClientError::Unreachable { .. })
                if !client.options().reconnect_timeout.is_zero() => {}
            Err(error) => {
                if client.failure().is_some() {
                    *membership.failure.borrow_mut() = Some(error);
                    return;
                }
                tracing::warn!(%group, %error, "heartbeat failed");
            }
        }
    }
}
