//! The wire side of consumer groups: turns a group request into a [`GroupCall`] for the
//! group's coordinator (through [`call`]; for `ListGroups`, every shard) and the answer
//! into the response body. Error codes come from [`super::errors`], as everywhere.

use std::rc::Rc;
use std::time::Duration;

use schema::wire::{
    self, ErrorCode, GroupDescriptionOwned, GroupMemberOwned, GroupSummaryOwned, JoinedOwned,
    OffsetCommitResultOwned, PartitionOffsetOwned, RequestBodyOwned, ResponseBodyOwned,
    TopicPartitionsOwned,
};

use super::errors;
use crate::group::assign::{Assignment, Assignor};
use crate::group::coordinator;
use crate::group::error::GroupFailed;
use crate::group::membership::GroupState;
use crate::ops::{CommitArgs, GroupCall, JoinArgs, Reply, ShardOp};
use crate::shard::Shard;
use crate::topology::ShardId;

/// Runs the group call `make` builds (around its reply route) on the coordinator shard of
/// `group`, and returns its answer. The Kafka front-end's group requests use it too.
pub(crate) async fn call<T: Send + 'static>(
    shard: &Rc<Shard>,
    group: &str,
    make: impl FnOnce(Reply<Result<T, GroupFailed>>) -> GroupCall,
) -> Result<T, GroupFailed> {
    let key = coordinator::offsets_partition(&**shard, group)?;
    let target = shard.owner(&key);
    shard
        .call(target, |reply| ShardOp::Group(make(reply)))
        .await
        .map_err(|gone| GroupFailed::Unreachable(gone.into()))?
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

fn code_and_message(error: Option<GroupFailed>) -> (ErrorCode, String) {
    match error {
        None => (ErrorCode::None, String::new()),
        Some(error) => (errors::group(&error), error.to_string()),
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
            let result = call(shard, &group, |reply| GroupCall::Join { args, reply }).await;
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
            let heartbeat = |reply| GroupCall::Heartbeat {
                group: group.clone(),
                member_id,
                generation,
                reply,
            };
            let result = call(shard, &group, heartbeat).await;
            let (error, message) = code_and_message(result.err());
            ResponseBodyOwned::Heartbeat { error, message }
        }
        RequestBodyOwned::LeaveGroup { group, member_id } => {
            let leave = |reply| GroupCall::Leave {
                group: group.clone(),
                member_id,
                reply,
            };
            let result = call(shard, &group, leave).await;
            let (error, message) = code_and_message(result.err());
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
            let outcome = call(shard, &group, |reply| GroupCall::Commit { args, reply }).await;
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
            let fetch = |reply| GroupCall::FetchOffsets {
                group: group.clone(),
                topics,
                reply,
            };
            let result = call(shard, &group, fetch).await;
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
                let list = |reply| ShardOp::Group(GroupCall::List { reply });
                match shard.call(ShardId(target), list).await {
                    Ok(Ok(listed)) => groups.extend(listed),
                    Ok(Err(error)) => {
                        failure.get_or_insert(error);
                    }
                    Err(gone) => {
                        failure.get_or_insert(GroupFailed::Unreachable(gone.into()));
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
            let describe = |reply| GroupCall::Describe {
                group: group.clone(),
                reply,
            };
            let result = call(shard, &group, describe).await;
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
                        offsets_retention_ms: description.offsets_expiry.retention_ms.unwrap_or(0),
                        empty_since_ms: description.offsets_expiry.empty_since_ms,
                        offsets_first_expiry_ms: description.offsets_expiry.first_expiry_ms,
                        offsets_last_expiry_ms: description.offsets_expiry.last_expiry_ms,
                    },
                    None,
                ),
                Err(error) => (
                    GroupDescriptionOwned {
                        state: wire::GroupState::Empty,
                        generation: 0,
                        assignor: wire::Assignor::Range,
                        members: Vec::new(),
                        offsets_retention_ms: 0,
                        empty_since_ms: None,
                        offsets_first_expiry_ms: None,
                        offsets_last_expiry_ms: None,
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
