//! One consumer group's membership: who is in it, which generation it is in, and the rebalance
//! protocol that moves it from one generation to the next.
//!
//! A pure state machine: no I/O, no clock, no async. The group coordinator keeps one [`Group`]
//! per group on the group's shard, passes `now` in, holds the join requests that wait for a
//! rebalance, and answers them from what [`Group::try_complete`] and [`Group::tick`] return.
//! Member ids come from the caller, so that they stay unique across broker restarts.
//!
//! Lifecycle (Kafka's classic protocol, with the leader's assignment computed here):
//! ```text
//!          join             every member joined (try_complete), or
//!   Empty -------> PreparingRebalance --- the rebalance deadline (tick) ---> Stable
//!     ^               |     ^                                                  |
//!     |               |     +--- join, leave, expiry, start_rebalance --------+
//!     +--- none left -+----------------------------------------------------------+
//!          (leave, session expiry, nobody rejoined by the rebalance deadline)
//! ```
//! Stable members learn of a rebalance from their heartbeats (RebalanceInProgress) and rejoin.
//!
//! Invariants (asserted after every change of state):
//! - Empty <=> no members <=> no assignor; only PreparingRebalance has a rebalance deadline.
//! - In Stable no member waits in a join and every member holds its share of the assignment
//!   computed at the last completion; those shares cover every partition of the subscribed
//!   topics exactly once (assign.rs's `validate`, asserted at every completion).
//! - The generation only increases: +1 per completed rebalance and +1 whenever the group
//!   empties, so a commit carrying an older generation is always refused.
//! - A member waiting in a join is never expired by its session timeout (it waits on us); the
//!   rebalance deadline, fixed when the rebalance starts, bounds that wait instead.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use super::assign::{Assignment, Assignor, assign, validate};

/// Most members one group may have; a join beyond it is refused with [`GroupError::GroupFull`].
pub const MEMBERS_MAX: usize = 1_000;
/// Most topics one member may subscribe to (duplicates count): bounds the memory a join holds
/// and the work of an assignment.
pub const TOPICS_MAX: usize = 10_000;
/// Shortest session timeout a member may ask for.
pub const SESSION_TIMEOUT_MIN: Duration = Duration::from_millis(1_000);
/// Longest session timeout a member may ask for.
pub const SESSION_TIMEOUT_MAX: Duration = Duration::from_secs(30 * 60);
/// Longest rebalance timeout a member may ask for.
pub const REBALANCE_TIMEOUT_MAX: Duration = Duration::from_secs(30 * 60);

// `Joined::member_count` is a u32.
const _: () = assert!(MEMBERS_MAX <= u32::MAX as usize);
const _: () = assert!(SESSION_TIMEOUT_MIN.as_nanos() > 0);
const _: () = assert!(SESSION_TIMEOUT_MIN.as_nanos() <= SESSION_TIMEOUT_MAX.as_nanos());

/// Where a group is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members. Offsets may be reset or committed from outside any membership.
    Empty,
    /// A rebalance is under way: waiting for every member to join, or for the deadline.
    PreparingRebalance,
    /// Every member holds its share of the current generation's assignment.
    Stable,
}

/// Why a group operation was refused. Each maps to one Kafka-style wire error code.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupError {
    /// The member id is not a member of this group (the client rejoins with an empty id).
    UnknownMember {
        /// The id given.
        member_id: String,
    },
    /// The generation given is not the group's current one.
    IllegalGeneration {
        /// The generation given.
        generation: i32,
        /// The group's generation.
        current: i32,
    },
    /// A rebalance is under way: the member must rejoin.
    RebalanceInProgress,
    /// The joiner asked for another assignor than the group's.
    InconsistentAssignor {
        /// The group's assignor.
        group: Assignor,
        /// The one asked for.
        asked: Assignor,
    },
    /// Session timeout outside [`SESSION_TIMEOUT_MIN`, `SESSION_TIMEOUT_MAX`], or rebalance
    /// timeout zero or above `REBALANCE_TIMEOUT_MAX`.
    InvalidSessionTimeout {
        /// The session timeout given.
        session_timeout: Duration,
        /// The rebalance timeout given.
        rebalance_timeout: Duration,
    },
    /// The group has `members_max` members already.
    GroupFull {
        /// The limit.
        members_max: usize,
    },
    /// The operation needs a group without members.
    GroupNotEmpty {
        /// How many members it has.
        members: usize,
    },
    /// The subscription names more than `topics_max` topics.
    TooManyTopics {
        /// How many were given.
        topics: usize,
        /// The limit.
        topics_max: usize,
    },
}

impl fmt::Display for GroupError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupError::UnknownMember { member_id } => {
                write!(formatter, "unknown member id {member_id:?}")
            }
            GroupError::IllegalGeneration {
                generation,
                current,
            } => {
                write!(
                    formatter,
                    "generation {generation} is not the current {current}"
                )
            }
            GroupError::RebalanceInProgress => write!(formatter, "rebalance in progress: rejoin"),
            GroupError::InconsistentAssignor { group, asked } => {
                write!(
                    formatter,
                    "assignor {asked:?} differs from the group's {group:?}"
                )
            }
            GroupError::InvalidSessionTimeout {
                session_timeout,
                rebalance_timeout,
            } => write!(
                formatter,
                "session timeout {session_timeout:?} must be {SESSION_TIMEOUT_MIN:?} to \
                 {SESSION_TIMEOUT_MAX:?}, rebalance timeout {rebalance_timeout:?} above zero \
                 to {REBALANCE_TIMEOUT_MAX:?}"
            ),
            GroupError::GroupFull { members_max } => {
                write!(formatter, "group is full: {members_max} members")
            }
            GroupError::GroupNotEmpty { members } => {
                write!(formatter, "group is not empty: {members} members")
            }
            GroupError::TooManyTopics { topics, topics_max } => {
                write!(
                    formatter,
                    "{topics} topics in the subscription, at most {topics_max}"
                )
            }
        }
    }
}

impl std::error::Error for GroupError {}

/// A join: a new member (empty `member_id`) or a member rejoining for the next generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// Empty for a new member.
    pub member_id: String,
    /// The client's self-reported name, shown in group descriptions.
    pub client_id: String,
    /// The topics it subscribes to.
    pub topics: Vec<String>,
    /// Removed when no sign of life comes within this, unless it waits in a join.
    pub session_timeout: Duration,
    /// How long the group waits for every member to rejoin once a rebalance starts.
    pub rebalance_timeout: Duration,
    /// The strategy it asks for; must match the group's.
    pub assignor: Assignor,
}

/// What a completed rebalance gives each member that was waiting in a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The member.
    pub member_id: String,
    /// The new generation.
    pub generation: i32,
    /// Its share, possibly empty (more members than partitions).
    pub assignment: Assignment,
    /// How many members the new generation has.
    pub member_count: u32,
}

/// The result of a rebalance completing: one [`Joined`] per member of the new generation, sorted
/// by member id (every member of the new generation has a pending join, by construction), and
/// the members removed in this step (expired, or not rejoined in time), sorted: the caller fails
/// any join those had pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// The new generation.
    pub generation: i32,
    /// Every member of it.
    pub joined: Vec<Joined>,
    /// Members removed in the same step.
    pub removed: Vec<String>,
}

/// What one [`Group::tick`] did. Every member it removed is reported exactly once: in
/// `completed.removed` when the tick completed a rebalance, else in `expired`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticked {
    /// Members removed, sorted, when no rebalance completed.
    pub expired: Vec<String>,
    /// The rebalance this tick completed, if any.
    pub completed: Option<Completed>,
}

/// One member as a group description shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// Its id.
    pub member_id: String,
    /// The client's name.
    pub client_id: String,
    /// Subscribed topics, sorted, without duplicates.
    pub topics: Vec<String>,
    /// Its share of the last generation it completed; empty before its first.
    pub assignment: Assignment,
}

#[derive(Debug, Clone)]
struct Member {
    client_id: String,
    /// Sorted, without duplicates.
    topics: Vec<String>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    /// Removed at this instant unless a sign of life comes first or it waits in a join.
    session_deadline: Instant,
    /// Waiting in a join for the rebalance to complete.
    joined: bool,
    /// Its share of the last generation it completed; None before its first.
    assignment: Option<Assignment>,
}

/// One consumer group's membership state. Lives on the group's coordinator shard; `!Sync` use
/// only (plain `&mut self` methods, no interior mutability).
#[derive(Debug, Clone)]
pub struct Group {
    name: String,
    state: GroupState,
    /// 0 until the first rebalance completes.
    generation: i32,
    /// Set by the first joiner; None exactly when there are no members.
    assignor: Option<Assignor>,
    members: BTreeMap<String, Member>,
    /// Some exactly in PreparingRebalance; fixed when the rebalance starts, so that a stream of
    /// joins cannot postpone completion.
    rebalance_deadline: Option<Instant>,
    /// The partition counts of the subscribed topics that the current assignment was computed
    /// with, to notice a topic created or resized.
    assigned_counts: BTreeMap<String, u32>,
}

impl Group {
    /// A group with no members, generation 0.
    pub fn new(name: String) -> Group {
        Group {
            name,
            state: GroupState::Empty,
            generation: 0,
            assignor: None,
            members: BTreeMap::new(),
            rebalance_deadline: None,
            assigned_counts: BTreeMap::new(),
        }
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where it is in its lifecycle.
    pub fn state(&self) -> GroupState {
        self.state
    }

    /// The current generation: 0 before the first completed rebalance.
    pub fn generation(&self) -> i32 {
        self.generation
    }

    /// The assignor chosen by the first member; None while the group has no members.
    pub fn assignor(&self) -> Option<Assignor> {
        self.assignor
    }

    /// How many members it has, including those that joined a rebalance still under way.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// The members, sorted by member id.
    pub fn members(&self) -> Vec<MemberView> {
        let view = |(member_id, member): (&String, &Member)| MemberView {
            member_id: member_id.clone(),
            client_id: member.client_id.clone(),
            topics: member.topics.clone(),
            assignment: member.assignment.clone().unwrap_or_default(),
        };
        self.members.iter().map(view).collect()
    }

    /// True when the group has no members (what offset resets and non-member commits need).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Registers a join and returns the member id (new or given). The member now waits for the
    /// rebalance to complete: the caller keeps its waiter and calls [`Group::try_complete`].
    /// An empty `member_id` creates a member named by `new_member_id`, which must return a
    /// non-empty id that is not a member. A join from a member that is the group's only one
    /// may change the group's assignor. Any join starts a rebalance unless one is under way.
    pub fn join(
        &mut self,
        request: JoinRequest,
        now: Instant,
        new_member_id: impl FnOnce() -> String,
    ) -> Result<String, GroupError> {
        let JoinRequest {
            member_id,
            client_id,
            topics,
            session_timeout,
            rebalance_timeout,
            assignor,
        } = request;
        let session_valid = (SESSION_TIMEOUT_MIN..=SESSION_TIMEOUT_MAX).contains(&session_timeout);
        let rebalance_valid =
            !rebalance_timeout.is_zero() && rebalance_timeout <= REBALANCE_TIMEOUT_MAX;
        if !session_valid || !rebalance_valid {
            return Err(GroupError::InvalidSessionTimeout {
                session_timeout,
                rebalance_timeout,
            });
        }
        if topics.len() > TOPICS_MAX {
            return Err(GroupError::TooManyTopics {
                topics: topics.len(),
                topics_max: TOPICS_MAX,
            });
        }
        let is_new = member_id.is_empty();
        if !is_new && !self.members.contains_key(&member_id) {
            return Err(GroupError::UnknownMember { member_id });
        }
        // The only member may change the assignor: nobody else is bound by it.
        let sole_member = !is_new && self.members.len() == 1;
        if let Some(group) = self.assignor
            && group != assignor
            && !sole_member
        {
            return Err(GroupError::InconsistentAssignor {
                group,
                asked: assignor,
            });
        }
        if is_new && self.members.len() >= MEMBERS_MAX {
            return Err(GroupError::GroupFull {
                members_max: MEMBERS_MAX,
            });
        }

        let mut topics = topics;
        topics.sort_unstable();
        topics.dedup();
        let member_id = if is_new {
            let member_id = new_member_id();
            assert!(
                !member_id.is_empty(),
                "group {:?}: new member id is empty",
                self.name
            );
            let taken = self.members.contains_key(&member_id);
            assert!(
                !taken,
                "group {:?}: new member id {member_id:?} is taken",
                self.name
            );
            member_id
        } else {
            member_id
        };
        // A rejoining member keeps its share of the current generation until the rebalance
        // completes: it may go on consuming (and committing) meanwhile, as in Kafka.
        let assignment = self
            .members
            .remove(&member_id)
            .and_then(|previous| previous.assignment);
        let member = Member {
            client_id,
            topics,
            session_timeout,
            rebalance_timeout,
            // A join is a sign of life; while it waits the deadline is not looked at anyway.
            session_deadline: now + session_timeout,
            joined: true,
            assignment,
        };
        self.members.insert(member_id.clone(), member);
        self.assignor = Some(assignor);
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now);
        }
        self.assert_invariants();
        Ok(member_id)
    }

    /// Completes the rebalance if every member has joined: the next generation, its assignment
    /// over the members' subscriptions and `partition_counts`, state Stable, every session
    /// deadline refreshed. None when not PreparingRebalance or someone has not joined yet.
    pub fn try_complete(
        &mut self,
        now: Instant,
        partition_counts: &BTreeMap<String, u32>,
    ) -> Option<Completed> {
        let ready = self.state == GroupState::PreparingRebalance
            && self.members.values().all(|member| member.joined);
        ready.then(|| self.complete(now, partition_counts, Vec::new()))
    }

    /// A heartbeat. Refreshes the session deadline, except on IllegalGeneration (a member with a
    /// stale generation must rejoin, not linger). RebalanceInProgress while rebalancing,
    /// whatever the generation given: rejoining is the answer either way.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        generation: i32,
        now: Instant,
    ) -> Result<(), GroupError> {
        let current = self.generation;
        let rebalancing = self.state == GroupState::PreparingRebalance;
        let Some(member) = self.members.get_mut(member_id) else {
            return Err(GroupError::UnknownMember {
                member_id: member_id.to_string(),
            });
        };
        if !rebalancing && generation != current {
            return Err(GroupError::IllegalGeneration {
                generation,
                current,
            });
        }
        member.session_deadline = now + member.session_timeout;
        if rebalancing {
            Err(GroupError::RebalanceInProgress)
        } else {
            Ok(())
        }
    }

    /// A member leaves and is removed at once (the caller fails any join it had pending). If
    /// members remain a rebalance starts (unless one is under way: its deadline stands); the
    /// caller then calls [`Group::try_complete`], since the leaver may have been the last one the
    /// rebalance waited for. If none remain the group empties: generation + 1, assignor
    /// forgotten.
    pub fn leave(&mut self, member_id: &str, now: Instant) -> Result<(), GroupError> {
        if self.members.remove(member_id).is_none() {
            return Err(GroupError::UnknownMember {
                member_id: member_id.to_string(),
            });
        }
        self.after_removal(now);
        self.assert_invariants();
        Ok(())
    }

    /// Whether an offset commit may proceed; refreshes nothing (the caller calls `touch`).
    /// - `reset` (an operator's reset): only when the group has no members;
    /// - empty `member_id` with generation -1 (a commit from outside any membership): only when
    ///   the group has no members;
    /// - otherwise the member must exist and give the current generation, in Stable or while
    ///   rebalancing (a member commits before it rejoins, as Kafka allows).
    pub fn check_commit(
        &self,
        member_id: &str,
        generation: i32,
        reset: bool,
    ) -> Result<(), GroupError> {
        let outsider = member_id.is_empty() && generation == -1;
        if reset || outsider {
            return match self.members.len() {
                0 => Ok(()),
                members => Err(GroupError::GroupNotEmpty { members }),
            };
        }
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMember {
                member_id: member_id.to_string(),
            });
        }
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration {
                generation,
                current: self.generation,
            });
        }
        Ok(())
    }

    /// Any request from a member counts as a sign of life (commit, fetch of offsets). An
    /// unknown member id is ignored: the request itself answers it.
    pub fn touch(&mut self, member_id: &str, now: Instant) {
        if let Some(member) = self.members.get_mut(member_id) {
            member.session_deadline = now + member.session_timeout;
        }
    }

    /// The timer, called every ~100 ms by the coordinator:
    /// 1. members not waiting in a join whose session deadline is at or before `now` are removed
    ///    (a rebalance starts if members remain; the group empties if none do);
    /// 2. in PreparingRebalance at or past the rebalance deadline, the members that have not
    ///    rejoined are removed, and the rebalance completes with those that did (if none did the
    ///    group empties);
    /// 3. then as `try_complete`, since a removal may leave only joined members.
    pub fn tick(&mut self, now: Instant, partition_counts: &BTreeMap<String, u32>) -> Ticked {
        let mut removed =
            self.remove_where(|member| !member.joined && member.session_deadline <= now);
        if !removed.is_empty() {
            self.after_removal(now);
        }
        let past_deadline = self
            .rebalance_deadline
            .is_some_and(|deadline| deadline <= now);
        if self.state == GroupState::PreparingRebalance && past_deadline {
            removed.extend(self.remove_where(|member| !member.joined));
            if self.members.is_empty() {
                self.become_empty();
            }
        }
        removed.sort_unstable();
        self.assert_invariants();
        match self.try_complete(now, partition_counts) {
            Some(mut completed) => {
                completed.removed = removed;
                Ticked {
                    expired: Vec::new(),
                    completed: Some(completed),
                }
            }
            None => Ticked {
                expired: removed,
                completed: None,
            },
        }
    }

    /// True when Stable and the partition counts of the subscribed topics differ from those the
    /// current assignment was computed with (a topic was created, deleted or resized): the
    /// caller then calls [`Group::start_rebalance`].
    pub fn assignment_stale(&self, partition_counts: &BTreeMap<String, u32>) -> bool {
        self.state == GroupState::Stable
            && self.subscribed_counts(partition_counts) != self.assigned_counts
    }

    /// Moves a Stable group to PreparingRebalance (members learn it through their heartbeats).
    /// Does nothing in the other states: an Empty group has nobody to rebalance, and a
    /// rebalance under way will use the partition counts current when it completes.
    pub fn start_rebalance(&mut self, now: Instant) {
        if self.state == GroupState::Stable {
            self.prepare_rebalance(now);
        }
        self.assert_invariants();
    }

    /// The next instant at which `tick` has work: the earliest session deadline of a member not
    /// waiting in a join, or the rebalance deadline. None when the group has no members.
    pub fn next_deadline(&self) -> Option<Instant> {
        let sessions = self.members.values().filter(|member| !member.joined);
        let sessions = sessions.map(|member| member.session_deadline);
        sessions.chain(self.rebalance_deadline).min()
    }

    fn prepare_rebalance(&mut self, now: Instant) {
        let longest = self
            .members
            .values()
            .map(|member| member.rebalance_timeout)
            .max();
        let longest =
            longest.unwrap_or_else(|| panic!("group {:?}: rebalance without members", self.name));
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline = Some(now + longest);
    }

    /// After members were removed: empty the group, or start a rebalance (keeping the deadline
    /// of one under way).
    fn after_removal(&mut self, now: Instant) {
        if self.members.is_empty() {
            self.become_empty();
        } else if self.state == GroupState::Stable {
            self.prepare_rebalance(now);
        }
    }

    fn remove_where(&mut self, condition: impl Fn(&Member) -> bool) -> Vec<String> {
        let doomed: Vec<String> = self
            .members
            .iter()
            .filter(|(_, member)| condition(member))
            .map(|(id, _)| id.clone())
            .collect();
        for member_id in &doomed {
            self.members.remove(member_id);
        }
        doomed
    }

    fn become_empty(&mut self) {
        assert!(
            self.members.is_empty(),
            "group {:?}: {} members",
            self.name,
            self.members.len()
        );
        self.bump_generation();
        self.state = GroupState::Empty;
        self.assignor = None;
        self.rebalance_deadline = None;
        self.assigned_counts.clear();
    }

    fn bump_generation(&mut self) {
        // 2^31 rebalances of one group would take decades even at one per millisecond.
        assert!(
            self.generation < i32::MAX,
            "group {:?}: generation {} would wrap",
            self.name,
            self.generation
        );
        self.generation += 1;
    }

    fn complete(
        &mut self,
        now: Instant,
        partition_counts: &BTreeMap<String, u32>,
        removed: Vec<String>,
    ) -> Completed {
        assert_eq!(
            self.state,
            GroupState::PreparingRebalance,
            "group {:?}",
            self.name
        );
        let assignor = self
            .assignor
            .unwrap_or_else(|| panic!("group {:?}: no assignor", self.name));
        let subscriptions: Vec<(String, Vec<String>)> = self
            .members
            .iter()
            .map(|(id, member)| (id.clone(), member.topics.clone()))
            .collect();
        self.bump_generation();
        let mut shares = assign(assignor, &subscriptions, partition_counts);
        if let Err(violation) = validate(&subscriptions, partition_counts, &shares) {
            panic!(
                "group {:?} generation {}: {assignor:?}: {violation}",
                self.name, self.generation
            );
        }
        // Exact: members <= MEMBERS_MAX <= u32::MAX (asserted at compile time above).
        let member_count = self.members.len() as u32;
        let mut joined = Vec::with_capacity(self.members.len());
        for (member_id, member) in &mut self.members {
            let share = shares
                .remove(member_id)
                .unwrap_or_else(|| panic!("{member_id:?} has no share"));
            assert!(
                member.joined,
                "group {:?}: {member_id:?} completes without a join",
                self.name
            );
            member.joined = false;
            member.session_deadline = now + member.session_timeout;
            member.assignment = Some(share.clone());
            let generation = self.generation;
            joined.push(Joined {
                member_id: member_id.clone(),
                generation,
                assignment: share,
                member_count,
            });
        }
        self.assigned_counts = self.subscribed_counts(partition_counts);
        self.state = GroupState::Stable;
        self.rebalance_deadline = None;
        self.assert_invariants();
        Completed {
            generation: self.generation,
            joined,
            removed,
        }
    }

    /// `partition_counts` restricted to the topics some member subscribes to.
    fn subscribed_counts(&self, partition_counts: &BTreeMap<String, u32>) -> BTreeMap<String, u32> {
        let topics = self.members.values().flat_map(|member| &member.topics);
        let counted =
            topics.filter_map(|topic| Some((topic.clone(), *partition_counts.get(topic)?)));
        counted.collect()
    }

    /// The structural invariants of the module doc; O(members).
    fn assert_invariants(&self) {
        let name = &self.name;
        let members = self.members.len();
        assert!(members <= MEMBERS_MAX, "group {name:?}: {members} members");
        assert!(
            self.generation >= 0,
            "group {name:?}: generation {}",
            self.generation
        );
        assert_eq!(
            self.assignor.is_some(),
            members > 0,
            "group {name:?}: assignor {:?}",
            self.assignor
        );
        let rebalancing = self.state == GroupState::PreparingRebalance;
        assert_eq!(
            self.rebalance_deadline.is_some(),
            rebalancing,
            "group {name:?}: {:?}",
            self.state
        );
        match self.state {
            GroupState::Empty => {
                assert_eq!(members, 0, "group {name:?}: Empty with members");
                assert!(
                    self.assigned_counts.is_empty(),
                    "group {name:?}: {:?}",
                    self.assigned_counts
                );
            }
            GroupState::PreparingRebalance => {
                assert!(members > 0, "group {name:?}: rebalancing nobody")
            }
            GroupState::Stable => {
                assert!(members > 0, "group {name:?}: Stable without members");
                assert!(
                    self.generation > 0,
                    "group {name:?}: Stable in generation 0"
                );
                for (member_id, member) in &self.members {
                    assert!(
                        !member.joined,
                        "group {name:?}: Stable but {member_id:?} waits in a join"
                    );
                    let assigned = member.assignment.is_some();
                    assert!(
                        assigned,
                        "group {name:?}: Stable but {member_id:?} has no assignment"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod simulation;
