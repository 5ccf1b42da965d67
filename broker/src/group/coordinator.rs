//! The group coordinator of one shard: the groups whose partition of `__consumer_offsets` this
//! shard owns (their membership, in memory) and those partitions' tables of committed offsets.
//!
//! Membership is [`Group`]'s state machine; this module gives it time and waiters. A join
//! parks on a one-shot channel until its rebalance completes ([`Completed`] hands every waiting
//! member its generation and assignment), and a ticker task ([`Coordinator::tick`], every
//! [`crate::shard::TICK_INTERVAL_DEFAULT`]) expires silent members, ends rebalances that waited too long, and starts
//! one when a subscribed topic's partitions change.
//!
//! Commits are durable before they are acknowledged: the commit is appended to the group's
//! offsets partition at acks durable through that partition's actor (on this shard), and only
//! then applied to the table. One commit per offsets partition at a time (its gate), so the
//! "never backwards" check and the append cannot interleave with another commit of the same
//! partition. Tables are loaded on first use: snapshot, then the records after it. Every
//! [`offsets::SNAPSHOT_RECORDS`] records a new snapshot is stored, the one it replaces kept as
//! the previous, and the segments below the *previous* deleted: so a damaged newest costs a
//! rebuild from the previous, not the partition's groups ([`snapshot::load_newest_or_previous`]).
//!
//! Offsets of groups without members expire (`--offsets-retention-ms`; the rule is
//! [`super::retention`]'s). The same ticker finds the offsets partitions whose next expiry is
//! due ([`Coordinator::offsets_due`]: a comparison per partition, so an idle broker stays
//! idle) and the shard runs [`Coordinator::expire_offsets`] for each in a task of its own: it
//! loads the table if no client did yet (after a restart, offsets start to age only once
//! loaded), finds what expired, and deletes it the way commits are written: one batch of
//! tombstones (the key, no value) appended at acks durable under the partition's gate, then
//! applied to the table. Replaying the log after a restart deletes them again, and snapshots
//! hold the table as it is, so an expired offset never comes back. Each sweep computes when
//! the next offset can expire, and no sweep runs before then.
//!
//! Membership does not survive a restart (members rejoin, as with Kafka's coordinator
//! failover); committed offsets do.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::local_channel::{self, LocalSender};
use schema::batch::Verified;
use storage::Offset;
use storage::disk::glommio::GlommioDisk;

use super::error::GroupFailed;
use super::membership::{Completed, Group, GroupError, GroupState, JoinRequest, Joined};
use super::offsets::{self, Committed, OffsetKey, OffsetTable};
use super::retention::{self, ExpiryClock, Sweep};
use crate::error::Unreachable;
use crate::metadata::Metadata;
use crate::ops::{
    AckLevel, Appended, CommitArgs, CommitOutcome, CommittedOffset, GroupDescription, GroupSummary,
    JoinArgs, LogBounds,
};
use crate::partition::{PartitionHandle, now_ms, partition_dir};
use crate::snapshot::{self, LoadError, LogExtent};
use crate::topology::{PartitionId, PartitionKey, ShardId};

/// What the coordinator needs of the shard it runs on. `Shard` implements it; the coordinator
/// knows no more of the shard than this, so the dependency runs one way (shard -> coordinator).
pub trait Host {
    /// The shard.
    fn id(&self) -> ShardId;
    /// The shard that owns a partition.
    fn owner(&self, key: &PartitionKey) -> ShardId;
    /// The metadata the shard has applied.
    fn metadata(&self) -> Rc<Metadata>;
    /// The actor of a partition the shard owns.
    fn partition(&self, key: &PartitionKey) -> Result<PartitionHandle, Unreachable>;
    /// The data directory.
    fn data_dir(&self) -> &Path;
    /// The disk partitions and blobs live on.
    fn disk(&self) -> &GlommioDisk;
}

/// Groups with members one shard coordinates at once; a join for a new group beyond it is
/// refused with `GroupFull`.
pub const GROUPS_MAX: usize = 10_000;
/// Members of all groups one shard coordinates.
pub const MEMBERS_PER_SHARD_MAX: usize = 100_000;
/// Longest client id a join may carry, in bytes.
pub const CLIENT_ID_BYTES_MAX_JOIN: usize = 255;
/// Committed offsets one offsets partition holds; a commit of a new (group, topic, partition)
/// beyond it is refused (`GroupFull`) until offsets of groups without members expire.
pub const OFFSET_ENTRIES_MAX: usize = 1_000_000;
/// Offsets in one commit: one batch of records, well under the log's batch size limit. Also
/// the tombstones in one batch of expired offsets.
pub const OFFSETS_PER_COMMIT_MAX: usize = 10_000;
/// After a sweep of expired offsets failed (the table did not load, the append failed), the
/// next try waits this long: a damaged partition is logged once a minute, not every tick.
const SWEEP_RETRY_MS: i64 = 60_000;
/// Bytes read per step while loading an offsets table from the log.
const LOAD_BYTES_MAX: usize = 1 << 20;
/// Longest client id kept in a member id.
const CLIENT_ID_BYTES_MAX: usize = 64;

/// A group and the joins waiting for its rebalance to complete.
struct Entry {
    group: Group,
    waiters: HashMap<String, LocalSender<Result<Joined, GroupFailed>>>,
}

/// One partition of the offsets topic owned by this shard.
struct OffsetsPartition {
    /// One commit (or the load) at a time.
    gate: glommio::sync::Semaphore,
    table: RefCell<OffsetTable>,
    loaded: Cell<bool>,
    /// Records appended since the last snapshot.
    records_since_snapshot: Cell<u64>,
    /// What the newest snapshot on disk covers through (the log start when there is none):
    /// once a newer one is stored, this one is the previous and the log may go below it.
    snapshot_through: Cell<Offset>,
    /// When its groups' offsets started to age (retention.rs).
    clock: RefCell<ExpiryClock>,
    /// When the next sweep for expired offsets is due (wall-clock ms; 0 before the first).
    next_sweep_ms: Cell<i64>,
    /// A sweep task is under way: the ticker starts no other.
    sweeping: Cell<bool>,
}

impl OffsetsPartition {
    fn new() -> OffsetsPartition {
        OffsetsPartition {
            gate: glommio::sync::Semaphore::new(1),
            table: RefCell::new(OffsetTable::default()),
            loaded: Cell::new(false),
            records_since_snapshot: Cell::new(0),
            snapshot_through: Cell::new(Offset(0)),
            clock: RefCell::new(ExpiryClock::default()),
            next_sweep_ms: Cell::new(0),
            sweeping: Cell::new(false),
        }
    }
}

/// The coordinator state of one shard. See the module documentation.
pub struct Coordinator {
    groups: RefCell<HashMap<String, Entry>>,
    partitions: RefCell<HashMap<u32, Rc<OffsetsPartition>>>,
    next_member: Cell<u64>,
    /// Distinguishes member ids across restarts of the broker.
    boot_nonce: u64,
    /// How long offsets of a group without members are kept, in ms (None: for ever).
    offsets_retention_ms: Option<i64>,
    /// Every offsets partition this shard owns has an entry in `partitions` (so the ticker
    /// sweeps, and first loads, each of them).
    offsets_partitions_known: Cell<bool>,
}

impl Coordinator {
    /// A coordinator that expires offsets of groups without members after `offsets_retention`
    /// (None: never).
    pub fn new(offsets_retention: Option<Duration>) -> Coordinator {
        let boot_nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos() as u64);
        Coordinator {
            groups: RefCell::new(HashMap::new()),
            partitions: RefCell::new(HashMap::new()),
            next_member: Cell::new(0),
            boot_nonce,
            offsets_retention_ms: offsets_retention.map(retention::retention_ms),
            offsets_partitions_known: Cell::new(false),
        }
    }
}

/// A membership rule's refusal of an operation on `group`.
fn refused(group: &str) -> impl Fn(GroupError) -> GroupFailed + '_ {
    move |error| GroupFailed::Membership {
        group: group.to_string(),
        error,
    }
}

fn unknown_member(group: &str, member_id: &str) -> GroupFailed {
    GroupFailed::UnknownMember {
        group: group.to_string(),
        member_id: member_id.to_string(),
    }
}

/// Every existing topic's partition count, what assignments are computed over.
fn partition_counts(shard: &dyn Host) -> BTreeMap<String, u32> {
    shard
        .metadata()
        .topics
        .values()
        .filter(|topic| !offsets::is_internal(&topic.name))
        .map(|topic| (topic.name.clone(), topic.partitions))
        .collect()
}

/// The offsets partition of `group` and the key of that partition.
pub fn offsets_partition(shard: &dyn Host, group: &str) -> Result<PartitionKey, GroupFailed> {
    offsets::validate_group(group).map_err(|reason| GroupFailed::InvalidRequest { reason })?;
    let metadata = shard.metadata();
    let Some(topic) = metadata.topics.get(offsets::OFFSETS_TOPIC) else {
        return Err(GroupFailed::NoOffsetsTopic {
            topic: offsets::OFFSETS_TOPIC,
        });
    };
    Ok(PartitionKey {
        topic: offsets::OFFSETS_TOPIC.to_string(),
        partition: PartitionId(offsets::partition_for(group, topic.partitions)),
    })
}

/// Answers the joins a completed rebalance releases.
fn release(entry: &mut Entry, completed: Completed) {
    for joined in completed.joined {
        if let Some(waiter) = entry.waiters.remove(&joined.member_id) {
            let _ = waiter.try_send(Ok(joined));
        }
    }
    for member_id in completed.removed {
        if let Some(waiter) = entry.waiters.remove(&member_id) {
            let _ = waiter.try_send(Err(unknown_member(entry.group.name(), &member_id)));
        }
    }
}

/// A damaged record or batch in an offsets partition.
fn corrupt(key: &PartitionKey, error: &dyn std::fmt::Display) -> GroupFailed {
    GroupFailed::Corrupt {
        what: key.to_string(),
        reason: error.to_string(),
    }
}

/// The actor of one of this shard's offsets partitions.
fn offsets_actor(shard: &dyn Host, key: &PartitionKey) -> Result<PartitionHandle, GroupFailed> {
    assert_eq!(
        shard.owner(key),
        shard.id(),
        "the coordinator owns its offsets partitions"
    );
    Ok(shard.partition(key)?)
}

impl Coordinator {
    /// Joins `args.group` and waits for the rebalance to complete.
    pub async fn join(&self, shard: &dyn Host, args: JoinArgs) -> Result<Joined, GroupFailed> {
        offsets_partition(shard, &args.group)?;
        let invalid = |reason: String| Err(GroupFailed::InvalidRequest { reason });
        if args.client_id.len() > CLIENT_ID_BYTES_MAX_JOIN {
            return invalid(format!(
                "a client id of {} bytes is over the limit of {CLIENT_ID_BYTES_MAX_JOIN}",
                args.client_id.len()
            ));
        }
        if let Some(topic) = args
            .topics
            .iter()
            .find(|topic| crate::metadata::validate_name(topic).is_err())
        {
            return invalid(format!(
                "subscribed topic {topic:?} is not a valid topic name"
            ));
        }
        let now = Instant::now();
        let counts = partition_counts(shard);
        let receiver = {
            let mut groups = self.groups.borrow_mut();
            if !groups.contains_key(&args.group) && groups.len() >= GROUPS_MAX {
                return Err(GroupFailed::CoordinatorFull {
                    what: "groups on this coordinator",
                    limit: GROUPS_MAX,
                });
            }
            let members: usize = groups
                .values()
                .map(|entry| entry.group.member_count())
                .sum();
            if args.member_id.is_empty() && members >= MEMBERS_PER_SHARD_MAX {
                return Err(GroupFailed::CoordinatorFull {
                    what: "members on this coordinator",
                    limit: MEMBERS_PER_SHARD_MAX,
                });
            }
            let entry = groups.entry(args.group.clone()).or_insert_with(|| Entry {
                group: Group::new(args.group.clone()),
                waiters: HashMap::new(),
            });
            let request = JoinRequest {
                member_id: args.member_id,
                client_id: args.client_id.clone(),
                topics: args.topics,
                session_timeout: args.session_timeout,
                rebalance_timeout: args.rebalance_timeout,
                assignor: args.assignor,
            };
            let new_member_id = || self.new_member_id(shard, &args.client_id);
            let member_id = match entry.group.join(request, now, new_member_id) {
                Ok(member_id) => member_id,
                Err(error) => {
                    if entry.group.is_empty() {
                        groups.remove(&args.group);
                    }
                    return Err(refused(&args.group)(error));
                }
            };
            let (sender, receiver) = local_channel::new_bounded(1);
            if let Some(earlier) = entry.waiters.insert(member_id, sender) {
                // The same member joined again before its first join was answered (its client
                // gave up on it): the earlier one can only be refused.
                let _ = earlier.try_send(Err(GroupFailed::Superseded {
                    group: args.group.clone(),
                }));
            }
            if let Some(completed) = entry.group.try_complete(now, &counts) {
                release(entry, completed);
            }
            receiver
        };
        receiver
            .recv()
            .await
            .unwrap_or_else(|| Err(GroupFailed::shutting_down()))
    }

    fn new_member_id(&self, shard: &dyn Host, client_id: &str) -> String {
        let counter = self.next_member.get();
        self.next_member.set(counter + 1);
        let mut name: String = client_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
            .collect();
        while name.len() > CLIENT_ID_BYTES_MAX {
            name.pop();
        }
        if name.is_empty() {
            name.push_str("member");
        }
        format!("{name}-{}-{:x}-{counter}", shard.id().0, self.boot_nonce)
    }

    /// A member's heartbeat.
    pub fn heartbeat(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
    ) -> Result<(), GroupFailed> {
        let mut groups = self.groups.borrow_mut();
        let Some(entry) = groups.get_mut(group) else {
            return Err(unknown_member(group, member_id));
        };
        entry
            .group
            .heartbeat(member_id, generation, Instant::now())
            .map_err(refused(group))
    }

    /// A member leaves.
    pub fn leave(&self, shard: &dyn Host, group: &str, member_id: &str) -> Result<(), GroupFailed> {
        let now = Instant::now();
        let mut groups = self.groups.borrow_mut();
        let Some(entry) = groups.get_mut(group) else {
            return Err(unknown_member(group, member_id));
        };
        entry.group.leave(member_id, now).map_err(refused(group))?;
        if let Some(waiter) = entry.waiters.remove(member_id) {
            let _ = waiter.try_send(Err(unknown_member(group, member_id)));
        }
        if let Some(completed) = entry.group.try_complete(now, &partition_counts(shard)) {
            release(entry, completed);
        }
        if entry.group.is_empty() {
            groups.remove(group);
            self.emptied(shard, group);
        }
        Ok(())
    }

    /// `group` lost its last member: its offsets start to age now (retention.rs).
    fn emptied(&self, shard: &dyn Host, group: &str) {
        let Ok(key) = offsets_partition(shard, group) else {
            return;
        };
        let partitions = self.partitions.borrow();
        // A table not loaded yet starts every offset's clock when it loads, later than now.
        let Some(partition) = partitions.get(&key.partition.0) else {
            return;
        };
        if partition.loaded.get() && partition.table.borrow().of_group(group).next().is_some() {
            partition.clock.borrow_mut().emptied(group, now_ms());
        }
    }

    /// True while this shard coordinates no group (nothing for the ticker to watch).
    pub fn is_empty(&self) -> bool {
        self.groups.borrow().is_empty()
    }

    /// The timer: sessions, rebalance deadlines, changed topics.
    pub fn tick(&self, shard: &dyn Host) {
        let mut groups = self.groups.borrow_mut();
        if groups.is_empty() {
            // Most shards coordinate nothing most of the time: no topic map to build.
            return;
        }
        let now = Instant::now();
        let counts = partition_counts(shard);
        for entry in groups.values_mut() {
            if entry.group.assignment_stale(&counts) {
                tracing::info!(
                    group = entry.group.name(),
                    "subscribed topics changed: rebalancing"
                );
                entry.group.start_rebalance(now);
            }
            let ticked = entry.group.tick(now, &counts);
            for member_id in &ticked.expired {
                tracing::info!(group = entry.group.name(), member = %member_id, "session expired");
                if let Some(waiter) = entry.waiters.remove(member_id) {
                    let _ = waiter.try_send(Err(unknown_member(entry.group.name(), member_id)));
                }
            }
            if let Some(completed) = ticked.completed {
                tracing::info!(
                    group = entry.group.name(),
                    generation = completed.generation,
                    members = completed.joined.len(),
                    removed = completed.removed.len(),
                    "rebalanced"
                );
                release(entry, completed);
            }
        }
        let mut emptied = Vec::new();
        groups.retain(|name, entry| {
            let keep = !entry.group.is_empty() || !entry.waiters.is_empty();
            if !keep {
                emptied.push(name.clone());
            }
            keep
        });
        for group in emptied {
            self.emptied(shard, &group);
        }
    }

    /// The state of an offsets partition this shard owns, its table maybe not loaded yet.
    fn partition(&self, key: &PartitionKey) -> Rc<OffsetsPartition> {
        self.partitions
            .borrow_mut()
            .entry(key.partition.0)
            .or_insert_with(|| Rc::new(OffsetsPartition::new()))
            .clone()
    }

    /// The loaded table of an offsets partition this shard owns.
    async fn table(
        &self,
        shard: &dyn Host,
        key: &PartitionKey,
    ) -> Result<Rc<OffsetsPartition>, GroupFailed> {
        let partition = self.partition(key);
        if !partition.loaded.get() {
            let _permit = partition
                .gate
                .acquire_permit(1)
                .await
                .map_err(|_| GroupFailed::shutting_down())?;
            if !partition.loaded.get() {
                let (table, records, through) = load(shard, key).await?;
                *partition.table.borrow_mut() = table;
                partition.records_since_snapshot.set(records);
                partition.snapshot_through.set(through);
                partition.clock.borrow_mut().loaded(now_ms());
                partition.loaded.set(true);
            }
        }
        Ok(partition)
    }

    /// Commits offsets: membership checked, each offset checked (the topic and partition
    /// exist; it does not move backwards unless this is a reset), the accepted ones appended
    /// durably in one batch and then applied. One outcome per offset, in request order.
    pub async fn commit(
        &self,
        shard: &dyn Host,
        args: CommitArgs,
    ) -> Result<Vec<CommitOutcome>, GroupFailed> {
        let key = offsets_partition(shard, &args.group)?;
        if args.offsets.len() > OFFSETS_PER_COMMIT_MAX {
            return Err(GroupFailed::InvalidRequest {
                reason: format!(
                    "{} offsets in one commit, over the limit of {OFFSETS_PER_COMMIT_MAX}",
                    args.offsets.len()
                ),
            });
        }
        let partition = self.table(shard, &key).await?;
        let _permit = partition
            .gate
            .acquire_permit(1)
            .await
            .map_err(|_| GroupFailed::shutting_down())?;
        // Checked with the gate held and no await before the append starts, so a reset that
        // passed while the group was empty cannot wait behind other commits while a member
        // joins. (A join during the append itself still reads the offset before it, as in
        // Kafka.)
        self.check_commit(&args)?;
        let metadata = shard.metadata();
        let now = now_ms();
        let mut outcomes = Vec::with_capacity(args.offsets.len());
        let mut accepted: Vec<(usize, OffsetKey, Committed)> = Vec::new();
        for (index, (topic, topic_partition, offset)) in args.offsets.iter().enumerate() {
            let outcome = match metadata.topics.get(topic) {
                _ if offsets::is_internal(topic) => Err(GroupFailed::InternalTopic {
                    topic: topic.clone(),
                }),
                None => Err(Unreachable::UnknownTopic {
                    topic: topic.clone(),
                }
                .into()),
                Some(spec) if *topic_partition >= spec.partitions => {
                    Err(Unreachable::UnknownPartition {
                        topic: topic.clone(),
                        partition: *topic_partition,
                        partitions: spec.partitions,
                    }
                    .into())
                }
                Some(_) => {
                    let offset_key = OffsetKey {
                        group: args.group.clone(),
                        topic: topic.clone(),
                        partition: *topic_partition,
                    };
                    // Against the table and the commits before it in this request.
                    let current = accepted
                        .iter()
                        .rev()
                        .find(|(_, key, _)| *key == offset_key)
                        .map(|(_, _, committed)| *committed)
                        .or_else(|| partition.table.borrow().get(&offset_key));
                    match current {
                        Some(current) if current.offset > *offset && !args.reset => {
                            Err(GroupFailed::CommitRewind {
                                topic: topic.clone(),
                                partition: *topic_partition,
                                committed: current.offset,
                                asked: *offset,
                            })
                        }
                        None if partition.table.borrow().len() + accepted.len()
                            >= OFFSET_ENTRIES_MAX =>
                        {
                            Err(GroupFailed::CoordinatorFull {
                                what: "offsets in this offsets partition",
                                limit: OFFSET_ENTRIES_MAX,
                            })
                        }
                        _ => {
                            accepted.push((
                                index,
                                offset_key,
                                Committed {
                                    offset: *offset,
                                    timestamp_ms: now,
                                },
                            ));
                            Ok(())
                        }
                    }
                }
            };
            outcomes.push(outcome);
        }
        if accepted.is_empty() {
            return Ok(outcomes);
        }
        let commits: Vec<(OffsetKey, Committed)> = accepted
            .iter()
            .map(|(_, key, committed)| (key.clone(), *committed))
            .collect();
        let batch = offsets::commit_batch(&commits, now);
        let applied = append_then_apply(shard, &key, &partition, batch, commits.len(), |table| {
            for (key, committed) in commits {
                table.apply(key, committed);
            }
        })
        .await;
        match applied {
            Ok(()) => {
                // A member's commit that lands after its group lost its last member (during
                // the append) was written before the group emptied: its group's clock starts
                // now, not at the commit.
                if !args.member_id.is_empty() && !self.groups.borrow().contains_key(&args.group) {
                    self.emptied(shard, &args.group);
                }
            }
            Err(error) => {
                for (index, _, _) in &accepted {
                    outcomes[*index] = Err(error.clone());
                }
            }
        }
        Ok(outcomes)
    }

    /// Whether the commit's sender may commit for its group now.
    fn check_commit(&self, args: &CommitArgs) -> Result<(), GroupFailed> {
        let mut groups = self.groups.borrow_mut();
        match groups.get_mut(&args.group) {
            Some(entry) => {
                entry
                    .group
                    .check_commit(&args.member_id, args.generation, args.reset)
                    .map_err(refused(&args.group))?;
                entry.group.touch(&args.member_id, Instant::now());
                Ok(())
            }
            // No members: a commit from outside any membership, or a reset.
            None if args.reset || (args.member_id.is_empty() && args.generation < 0) => Ok(()),
            None => Err(unknown_member(&args.group, &args.member_id)),
        }
    }

    /// The committed offsets of a group (of `topics`; all when empty).
    pub async fn fetch_offsets(
        &self,
        shard: &dyn Host,
        group: &str,
        topics: &[String],
    ) -> Result<Vec<CommittedOffset>, GroupFailed> {
        let key = offsets_partition(shard, group)?;
        let partition = self.table(shard, &key).await?;
        let table = partition.table.borrow();
        Ok(table
            .of_group(group)
            .filter(|(key, _)| topics.is_empty() || topics.contains(&key.topic))
            .map(|(key, committed)| (key.topic.clone(), key.partition, committed.offset))
            .collect())
    }

    /// The groups this shard coordinates: with members, or with committed offsets.
    pub async fn list(&self, shard: &dyn Host) -> Result<Vec<GroupSummary>, GroupFailed> {
        let metadata = shard.metadata();
        let Some(topic) = metadata.topics.get(offsets::OFFSETS_TOPIC) else {
            return Ok(Vec::new());
        };
        let mut summaries: BTreeMap<String, GroupSummary> = BTreeMap::new();
        for partition in 0..topic.partitions {
            let key = PartitionKey {
                topic: offsets::OFFSETS_TOPIC.to_string(),
                partition: PartitionId(partition),
            };
            if shard.owner(&key) != shard.id() {
                continue;
            }
            let loaded = self.table(shard, &key).await?;
            for group in loaded.table.borrow().groups() {
                summaries.insert(
                    group.clone(),
                    GroupSummary {
                        group,
                        state: GroupState::Empty,
                        members: 0,
                    },
                );
            }
        }
        for entry in self.groups.borrow().values() {
            let name = entry.group.name().to_string();
            summaries.insert(
                name.clone(),
                GroupSummary {
                    group: name,
                    state: entry.group.state(),
                    members: entry.group.member_count() as u32,
                },
            );
        }
        Ok(summaries.into_values().collect())
    }

    /// A group's state and members, and when its offsets expire (an unknown group is empty,
    /// generation 0). Loads the group's offsets table if no client did yet.
    pub async fn describe(
        &self,
        shard: &dyn Host,
        group: &str,
    ) -> Result<GroupDescription, GroupFailed> {
        let key = offsets_partition(shard, group)?;
        let partition = self.table(shard, &key).await?;
        let groups = self.groups.borrow();
        let entry = groups.get(group);
        let offsets_expiry = partition.clock.borrow().describe(
            &partition.table.borrow(),
            group,
            entry.is_some(),
            self.offsets_retention_ms,
        );
        Ok(match entry {
            Some(entry) => GroupDescription {
                state: entry.group.state(),
                generation: entry.group.generation(),
                assignor: entry.group.assignor(),
                members: entry.group.members(),
                offsets_expiry,
            },
            None => GroupDescription {
                state: GroupState::Empty,
                generation: 0,
                assignor: None,
                members: Vec::new(),
                offsets_expiry,
            },
        })
    }

    /// The offsets partitions whose sweep for expired offsets is due at `now_ms` (each marked
    /// as being swept until [`Coordinator::expire_offsets`] ends): the ticker runs that for
    /// each. Empty, and next to free, when offsets never expire or nothing is due.
    pub fn offsets_due(&self, shard: &dyn Host, now_ms: i64) -> Vec<PartitionKey> {
        if self.offsets_retention_ms.is_none() {
            return Vec::new();
        }
        if !self.offsets_partitions_known.get() {
            self.know_offsets_partitions(shard);
        }
        let mut due = Vec::new();
        for (&index, partition) in self.partitions.borrow().iter() {
            if !partition.sweeping.get() && partition.next_sweep_ms.get() <= now_ms {
                partition.sweeping.set(true);
                due.push(PartitionKey {
                    topic: offsets::OFFSETS_TOPIC.to_string(),
                    partition: PartitionId(index),
                });
            }
        }
        due
    }

    /// Gives every offsets partition this shard owns its entry, so that the ticker loads and
    /// sweeps even tables no client asked for since the start. Until the controller created
    /// the offsets topic (at first start) there is nothing to know, and the next tick asks
    /// again.
    fn know_offsets_partitions(&self, shard: &dyn Host) {
        let metadata = shard.metadata();
        let Some(topic) = metadata.topics.get(offsets::OFFSETS_TOPIC) else {
            return;
        };
        for index in 0..topic.partitions {
            let key = PartitionKey {
                topic: offsets::OFFSETS_TOPIC.to_string(),
                partition: PartitionId(index),
            };
            if shard.owner(&key) == shard.id() {
                self.partition(&key);
            }
        }
        self.offsets_partitions_known.set(true);
    }

    /// Deletes the expired offsets of one offsets partition (loading its table first if need
    /// be) and sets when its next sweep is due. Run by the ticker for what
    /// [`Coordinator::offsets_due`] returned; failures are logged and retried later.
    pub async fn expire_offsets(&self, shard: &dyn Host, key: PartitionKey) {
        let partition = self.partition(&key);
        assert!(
            partition.sweeping.get(),
            "{key}: a sweep that offsets_due did not start"
        );
        let next_ms = match self.sweep(shard, &key).await {
            Ok(next_ms) => next_ms,
            Err(error) => {
                tracing::warn!(partition = %key, %error, "expiring committed offsets failed");
                now_ms().saturating_add(SWEEP_RETRY_MS)
            }
        };
        partition.next_sweep_ms.set(next_ms);
        partition.sweeping.set(false);
    }

    /// One sweep: finds the expired offsets, then deletes them a batch of tombstones at a
    /// time, each under the gate and checked again there (a commit or a join since the scan
    /// keeps an offset). Returns when the next sweep is due.
    async fn sweep(&self, shard: &dyn Host, key: &PartitionKey) -> Result<i64, GroupFailed> {
        let Some(retention_ms) = self.offsets_retention_ms else {
            unreachable!("no sweep is started while offsets never expire");
        };
        let partition = self.table(shard, key).await?;
        let active = |group: &str| self.groups.borrow().contains_key(group);
        let Sweep { expired, next_ms } = partition.clock.borrow_mut().sweep(
            &partition.table.borrow(),
            active,
            retention_ms,
            now_ms(),
        );
        for chunk in expired.chunks(OFFSETS_PER_COMMIT_MAX) {
            let _permit = partition
                .gate
                .acquire_permit(1)
                .await
                .map_err(|_| GroupFailed::shutting_down())?;
            let now = now_ms();
            let still: Vec<OffsetKey> = {
                let table = partition.table.borrow();
                let clock = partition.clock.borrow();
                chunk
                    .iter()
                    .filter(|key| {
                        table.get(key).is_some_and(|committed| {
                            !active(&key.group)
                                && clock.expires_at_ms(&key.group, committed, retention_ms) <= now
                        })
                    })
                    .cloned()
                    .collect()
            };
            if still.is_empty() {
                continue;
            }
            let batch = offsets::tombstone_batch(&still, now);
            append_then_apply(shard, key, &partition, batch, still.len(), |table| {
                for key in &still {
                    table.remove(key);
                }
            })
            .await?;
            let groups: std::collections::BTreeSet<&str> =
                still.iter().map(|key| key.group.as_str()).collect();
            for group in &groups {
                tracing::debug!(partition = %key, group, "committed offsets expired");
            }
            tracing::info!(partition = %key, offsets = still.len(), groups = groups.len(),
                retention_ms, "expired the committed offsets of groups without members");
        }
        Ok(next_ms)
    }

    /// Fails every parked join (shutdown): their senders are dropped with the groups.
    pub fn close(&self) {
        self.groups.borrow_mut().clear();
    }
}

/// Appends `batch` (of `records` records) to the offsets partition `key` at acks durable and,
/// once it is durable, applies `change` to the table; then stores a snapshot when enough
/// records were appended since the last. The caller holds the partition's gate, so nothing
/// else writes the partition meanwhile. The path of commits and of expiries alike.
async fn append_then_apply(
    shard: &dyn Host,
    key: &PartitionKey,
    partition: &OffsetsPartition,
    batch: Vec<u8>,
    records: usize,
    change: impl FnOnce(&mut OffsetTable),
) -> Result<(), GroupFailed> {
    assert!(records > 0, "an empty batch for {key}");
    let batch = Verified::check(bytes::BytesMut::from(&batch[..]))
        .expect("the coordinator builds valid batches");
    let Appended { last_offset, .. } = offsets_actor(shard, key)?
        .append(batch, AckLevel::Durable)
        .await?;
    change(&mut partition.table.borrow_mut());
    let records = partition.records_since_snapshot.get() + records as u64;
    partition.records_since_snapshot.set(records);
    if records >= offsets::SNAPSHOT_RECORDS {
        // Writes are serialised by the gate and only the coordinator writes this partition,
        // so the log ends right after this batch.
        let through = last_offset.0 + 1;
        let copy = partition.table.borrow().clone();
        let previous = partition.snapshot_through.get();
        if snapshot(shard, key, &copy, through, previous).await {
            partition.records_since_snapshot.set(0);
            partition.snapshot_through.set(Offset(through));
        }
    }
    Ok(())
}

/// Loads an offsets table: the newest trusted snapshot (or the previous), then the records
/// after it. Returns the table, the records replayed (what counts towards the next snapshot)
/// and what the snapshot used covers through.
async fn load(
    shard: &dyn Host,
    key: &PartitionKey,
) -> Result<(OffsetTable, u64, Offset), GroupFailed> {
    let dir = partition_dir(shard.data_dir(), key);
    let path = dir.join(offsets::SNAPSHOT_FILE);
    let partition = offsets_actor(shard, key)?;
    let LogBounds { log_start, log_end } = partition.describe().await?;
    let extent = LogExtent {
        start: log_start,
        end: log_end,
    };
    // Committed offsets cannot be rebuilt from a log whose older segments were deleted once a
    // snapshot covered them: with both generations refused the load fails (snapshot.rs).
    let decode =
        |bytes: &[u8]| OffsetTable::decode(bytes).map(|(through, table)| (Offset(through), table));
    let start = snapshot::load_newest_or_previous(
        shard.disk(),
        &dir,
        offsets::SNAPSHOT_FILE,
        extent,
        decode,
    )
    .await
    .map_err(|error| match error {
        LoadError::Refused { path, refusal } => GroupFailed::Corrupt {
            what: path.display().to_string(),
            reason: refusal.to_string(),
        },
        other => GroupFailed::Snapshot {
            path: path.display().to_string(),
            error: Arc::new(other),
        },
    })?;
    let through = start.through;
    let (from, mut table, mut records) = (start.replay_from, start.state, 0u64);
    snapshot::replay(&partition, from, log_end, LOAD_BYTES_MAX, |batch| {
        records += table
            .replay_batch(batch, from.0)
            .map_err(|error| corrupt(key, &error))?;
        Ok::<(), GroupFailed>(())
    })
    .await?;
    Ok((table, records, through))
}

/// Stores the snapshot of `table` as of `through`, keeping the one it replaces (which covers
/// through `previous`), then deletes the segments below `previous`: the previous snapshot and
/// the log after it must still rebuild the table if the new one is damaged.
/// Returns whether the snapshot was stored (failures are logged; the next commit retries).
async fn snapshot(
    shard: &dyn Host,
    key: &PartitionKey,
    table: &OffsetTable,
    through: u64,
    previous: Offset,
) -> bool {
    assert!(
        previous.0 <= through,
        "a new snapshot through {through} is older than the previous through {previous}"
    );
    let dir = partition_dir(shard.data_dir(), key);
    if let Err(error) = snapshot::store_keeping_previous(
        shard.disk(),
        &dir,
        offsets::SNAPSHOT_FILE,
        &table.encode(through),
    )
    .await
    {
        tracing::warn!(partition = %key, %error, "storing the offsets snapshot failed");
        return false;
    }
    let deleted = match offsets_actor(shard, key) {
        Ok(partition) => partition
            .delete_before(previous)
            .await
            .map_err(GroupFailed::from),
        Err(error) => Err(error),
    };
    match deleted {
        Ok(LogBounds { log_start, .. }) => {
            tracing::info!(partition = %key, %through, %log_start, entries = table.len(),
                %previous, "offsets snapshot stored; segments below the previous one deleted");
        }
        Err(error) => {
            // The snapshot stands; the segments go at the next snapshot.
            tracing::warn!(partition = %key, %error, "deleting segments below the snapshot failed");
        }
    }
    true
}
