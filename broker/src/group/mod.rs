//! Consumer groups: membership with server-side assignment, and committed offsets stored in
//! the broker's own log.
//!
//! - [`assign`]: the range and round-robin assignors (pure).
//! - [`membership`]: one group's state machine: join, heartbeat, leave, expiry, rebalance,
//!   generations (pure; time is passed in).
//! - [`offsets`]: the internal topic `__consumer_offsets`, its record and snapshot formats, and
//!   the table of committed offsets of one of its partitions.
//! - [`coordinator`]: per shard, the groups whose offsets partition the shard owns, their
//!   waiting joins and ticker, and the durable commit path.
//!
//! This file is the door from the wire: [`handle`] turns a group request into a [`GroupOp`],
//! sends it to the group's coordinator shard with [`Shard::call`] (for `ListGroups`, to every
//! shard) and turns the reply into the response body. Error kinds become wire codes in
//! `handler::error_code`, as everywhere.

pub mod assign;
pub mod coordinator;
pub mod membership;
pub mod offsets;

use std::rc::Rc;
use std::time::Duration;

use schema::wire::{
    self, ErrorCode, GroupDescriptionOwned, GroupMemberOwned, GroupSummaryOwned, JoinedOwned,
    OffsetCommitResultOwned, PartitionOffsetOwned, RequestBodyOwned, ResponseBodyOwned,
    TopicPartitionsOwned,
};

use crate::handler::error_code;
use crate::ops::{
    CommitArgs, GroupOp, GroupReply, JoinArgs, OpError, OpErrorKind, ShardOp, ShardReply,
};
use crate::shard::Shard;
use crate::topology::ShardId;
use assign::{Assignment, Assignor};
use membership::GroupState;

/// Runs a group operation on its coordinator shard.
async fn call(shard: &Rc<Shard>, group: &str, op: GroupOp) -> Result<GroupReply, OpError> {
    let key = coordinator::offsets_partition(shard, group)?;
    let target = shard.owner(&key);
    match shard.call(target, ShardOp::Group(op)).await {
        ShardReply::Group(reply) => Ok(reply),
        ShardReply::Done(Err(error)) => Err(error),
        _ => Err(OpError::new(OpErrorKind::Internal, "unexpected reply")),
    }
}

fn unexpected() -> OpError {
    OpError::new(OpErrorKind::Internal, "unexpected reply")
}

/// Runs a group operation on this shard (the coordinator side of [`call`]).
pub async fn execute(shard: &Rc<Shard>, op: GroupOp) -> GroupReply {
    let groups = &shard.groups;
    match op {
        GroupOp::Join(args) => GroupReply::Joined(groups.join(shard, args).await),
        GroupOp::Heartbeat {
            group,
            member_id,
            generation,
        } => GroupReply::Done(groups.heartbeat(&group, &member_id, generation)),
        GroupOp::Leave { group, member_id } => {
            GroupReply::Done(groups.leave(shard, &group, &member_id))
        }
        GroupOp::Commit(args) => GroupReply::Committed(groups.commit(shard, args).await),
        GroupOp::FetchOffsets { group, topics } => {
            GroupReply::Offsets(groups.fetch_offsets(shard, &group, &topics).await)
        }
        GroupOp::List => GroupReply::Groups(groups.list(shard).await),
        GroupOp::Describe { group } => GroupReply::Described(groups.describe(shard, &group)),
    }
}

fn wire_assignor(assignor: Assignor) -> wire::Assignor {
    match assignor {
        Assignor::Range => wire::Assignor::Range,
        Assignor::RoundRobin => wire::Assignor::RoundRobin,
    }
}

fn wire_state(state: GroupState) -> wire::GroupState {
    match state {
        GroupState::Empty => wire::GroupState::Empty,
        GroupState::PreparingRebalance => wire::GroupState::PreparingRebalance,
        GroupState::Stable => wire::GroupState::Stable,
    }
}

fn wire_assignment(assignment: Assignment) -> Vec<TopicPartitionsOwned> {
    assignment
        .into_iter()
        .map(|(topic, partitions)| TopicPartitionsOwned { topic, partitions })
        .collect()
}

fn code_and_message(error: Option<OpError>) -> (ErrorCode, String) {
    match error {
        None => (ErrorCode::None, String::new()),
        Some(error) => (error_code(&error.kind), error.message),
    }
}

/// Answers one group request (any request body this module owns).
pub async fn handle(shard: &Rc<Shard>, body: RequestBodyOwned) -> ResponseBodyOwned {
    match body {
        RequestBodyOwned::JoinGroup(join) => {
            let assignor = if join.assignor == wire::Assignor::RoundRobin {
                Assignor::RoundRobin
            } else {
                Assignor::Range
            };
            let group = join.group.clone();
            let args = JoinArgs {
                group: join.group,
                member_id: join.member_id,
                client_id: join.client_id,
                topics: join.topics,
                session_timeout: Duration::from_millis(u64::from(join.session_timeout_ms)),
                rebalance_timeout: Duration::from_millis(u64::from(join.rebalance_timeout_ms)),
                assignor,
            };
            let result = match call(shard, &group, GroupOp::Join(args)).await {
                Ok(GroupReply::Joined(result)) => result,
                Ok(_) => Err(unexpected()),
                Err(error) => Err(error),
            };
            let (joined, error) = match result {
                Ok(joined) => (
                    JoinedOwned {
                        generation: joined.generation,
                        member_id: joined.member_id,
                        assignment: wire_assignment(joined.assignment),
                        member_count: joined.member_count,
                    },
                    None,
                ),
                Err(error) => (
                    JoinedOwned {
                        generation: -1,
                        member_id: String::new(),
                        assignment: Vec::new(),
                        member_count: 0,
                    },
                    Some(error),
                ),
            };
            let (error, message) = code_and_message(error);
            ResponseBodyOwned::JoinGroup {
                error,
                message,
                joined,
            }
        }
        RequestBodyOwned::Heartbeat {
            group,
            member_id,
            generation,
        } => {
            let op = GroupOp::Heartbeat {
                group: group.clone(),
                member_id,
                generation,
            };
            let (error, message) = code_and_message(done(call(shard, &group, op).await).err());
            ResponseBodyOwned::Heartbeat { error, message }
        }
        RequestBodyOwned::LeaveGroup { group, member_id } => {
            let op = GroupOp::Leave {
                group: group.clone(),
                member_id,
            };
            let (error, message) = code_and_message(done(call(shard, &group, op).await).err());
            ResponseBodyOwned::LeaveGroup { error, message }
        }
        RequestBodyOwned::OffsetCommit {
            group,
            member_id,
            generation,
            offsets,
            reset,
        } => {
            let asked: Vec<(String, u32)> = offsets
                .iter()
                .map(|entry| (entry.topic.clone(), entry.partition))
                .collect();
            let args = CommitArgs {
                group: group.clone(),
                member_id,
                generation,
                offsets: offsets
                    .into_iter()
                    .map(|entry| (entry.topic, entry.partition, entry.offset))
                    .collect(),
                reset,
            };
            let outcome = match call(shard, &group, GroupOp::Commit(args)).await {
                Ok(GroupReply::Committed(outcome)) => outcome,
                Ok(_) => Err(unexpected()),
                Err(error) => Err(error),
            };
            match outcome {
                Ok(outcomes) => ResponseBodyOwned::OffsetCommit {
                    error: ErrorCode::None,
                    message: String::new(),
                    results: asked
                        .into_iter()
                        .zip(outcomes)
                        .map(|((topic, partition), outcome)| {
                            let (error, message) = code_and_message(outcome.err());
                            OffsetCommitResultOwned {
                                topic,
                                partition,
                                error,
                                message,
                            }
                        })
                        .collect(),
                },
                Err(error) => {
                    let (error, message) = code_and_message(Some(error));
                    ResponseBodyOwned::OffsetCommit {
                        error,
                        message,
                        results: Vec::new(),
                    }
                }
            }
        }
        RequestBodyOwned::OffsetFetch { group, topics } => {
            let op = GroupOp::FetchOffsets {
                group: group.clone(),
                topics,
            };
            let result = match call(shard, &group, op).await {
                Ok(GroupReply::Offsets(result)) => result,
                Ok(_) => Err(unexpected()),
                Err(error) => Err(error),
            };
            let (offsets, error) = match result {
                Ok(offsets) => (offsets, None),
                Err(error) => (Vec::new(), Some(error)),
            };
            let (error, message) = code_and_message(error);
            ResponseBodyOwned::OffsetFetch {
                error,
                message,
                offsets: offsets
                    .into_iter()
                    .map(|(topic, partition, offset)| PartitionOffsetOwned {
                        topic,
                        partition,
                        offset,
                    })
                    .collect(),
            }
        }
        RequestBodyOwned::ListGroups => {
            let mut groups = Vec::new();
            let mut failure = None;
            for target in 0..shard.shard_count {
                match shard
                    .call(ShardId(target), ShardOp::Group(GroupOp::List))
                    .await
                {
                    ShardReply::Group(GroupReply::Groups(Ok(listed))) => groups.extend(listed),
                    ShardReply::Group(GroupReply::Groups(Err(error)))
                    | ShardReply::Done(Err(error)) => {
                        failure.get_or_insert(error);
                    }
                    _ => {
                        failure.get_or_insert(unexpected());
                    }
                }
            }
            groups.sort_by(|a, b| a.group.cmp(&b.group));
            let (error, message) = code_and_message(failure);
            ResponseBodyOwned::ListGroups {
                error,
                message,
                groups: groups
                    .into_iter()
                    .map(|summary| GroupSummaryOwned {
                        group: summary.group,
                        state: wire_state(summary.state),
                        member_count: summary.members,
                    })
                    .collect(),
            }
        }
        RequestBodyOwned::DescribeGroup { group } => {
            let op = GroupOp::Describe {
                group: group.clone(),
            };
            let result = match call(shard, &group, op).await {
                Ok(GroupReply::Described(result)) => result,
                Ok(_) => Err(unexpected()),
                Err(error) => Err(error),
            };
            let (description, error) = match result {
                Ok(description) => (
                    GroupDescriptionOwned {
                        state: wire_state(description.state),
                        generation: description.generation,
                        assignor: wire_assignor(description.assignor.unwrap_or(Assignor::Range)),
                        members: description
                            .members
                            .into_iter()
                            .map(|member| GroupMemberOwned {
                                member_id: member.member_id,
                                client_id: member.client_id,
                                topics: member.topics,
                                assignment: wire_assignment(member.assignment),
                            })
                            .collect(),
                    },
                    None,
                ),
                Err(error) => (
                    GroupDescriptionOwned {
                        state: wire::GroupState::Empty,
                        generation: 0,
                        assignor: wire::Assignor::Range,
                        members: Vec::new(),
                    },
                    Some(error),
                ),
            };
            let (error, message) = code_and_message(error);
            ResponseBodyOwned::DescribeGroup {
                error,
                message,
                group: description,
            }
        }
        other => unreachable!("not a group request: {other:?}"),
    }
}

/// A heartbeat's or leave's outcome.
fn done(reply: Result<GroupReply, OpError>) -> Result<(), OpError> {
    match reply {
        Ok(GroupReply::Done(result)) => result,
        Ok(_) => Err(unexpected()),
        Err(error) => Err(error),
    }
}
