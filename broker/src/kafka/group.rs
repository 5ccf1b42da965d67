//! Kafka's classic consumer-group protocol over ringbus's own coordinator: FindCoordinator,
//! JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, ListGroups and
//! DescribeGroups become the same `GroupCall`s the ringbus wire sends (`handler::group_call`),
//! so Kafka clients' groups and ringbus's share the coordinator, the committed offsets in
//! `__consumer_offsets`, and `ringbus group describe` (and Kafka's tools list and describe
//! ringbus's groups).
//!
//! Assignment is the broker's, not a leader's: ringbus assigns partitions itself when a
//! rebalance completes (range or round-robin, whichever the members propose first). Every
//! JoinGroup response therefore names no member as leader, so every member is a follower that
//! sends an empty SyncGroup and gets its share back, encoded as Kafka's ConsumerProtocol
//! assignment. The share is kept per connection between the JoinGroup that computed it and the
//! SyncGroup that fetches it ([`GroupSession`]; Kafka clients send both on their coordinator
//! connection); a SyncGroup without one gets REBALANCE_IN_PROGRESS, and the client rejoins.
//! Only the eager protocols are served: a member that proposes only cooperative-sticky or a
//! custom assignor gets INCONSISTENT_GROUP_PROTOCOL. No state beyond the session; any shard.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ConsumerProtocolAssignment, ConsumerProtocolSubscription,
    DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::config::KafkaSettings;
use super::errors::{self, NONE};
use super::frame::{self, Head, Outcome, Reply};
use crate::group::assign::{Assignment, Assignor};
use crate::group::error::GroupFailed;
use crate::group::membership::GroupState;
use crate::handler;
use crate::ops::{CommitArgs, GroupCall, JoinArgs, ShardOp};
use crate::shard::Shard;
use crate::topology::ShardId;

/// The node that coordinates every group (the one node).
const NODE_ID: i32 = super::admin::NODE_ID;

/// Kafka's consumer protocol type; other group types (Connect, ...) are refused.
const CONSUMER: &str = "consumer";

/// Shares one connection keeps between JoinGroup and SyncGroup at most (one per group and
/// member it joined as: a client joins as one member per group).
const SESSION_SHARES_MAX: usize = 64;

/// What one connection remembers between a JoinGroup and its SyncGroup: per (group, member),
/// the generation joined and its share.
#[derive(Debug, Default)]
pub(crate) struct GroupSession {
    shares: RefCell<BTreeMap<(String, String), (i32, Assignment)>>,
}

impl GroupSession {
    fn keep(&self, group: &str, member: &str, generation: i32, share: Assignment) {
        let mut shares = self.shares.borrow_mut();
        let key = (group.to_string(), member.to_string());
        if !shares.contains_key(&key) && shares.len() >= SESSION_SHARES_MAX {
            shares.pop_first();
        }
        shares.insert(key, (generation, share));
    }

    fn share(&self, group: &str, member: &str, generation: i32) -> Option<Assignment> {
        let shares = self.shares.borrow();
        let (joined, share) = shares.get(&(group.to_string(), member.to_string()))?;
        (*joined == generation).then(|| share.clone())
    }

    fn forget(&self, group: &str, member: &str) {
        let key = (group.to_string(), member.to_string());
        self.shares.borrow_mut().remove(&key);
    }
}

fn respond(parts: Bytes, failed: bool) -> Outcome {
    Ok((Reply::Respond(vec![parts]), failed))
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// FindCoordinator: node 0 coordinates every group; transaction coordinators do not exist.
pub(crate) fn find_coordinator(settings: &KafkaSettings, head: Head, mut body: Bytes) -> Outcome {
    let request: FindCoordinatorRequest =
        frame::decode(ApiKey::FindCoordinator, head.version, &mut body)?;
    let code = match request.key_type {
        0 => NONE,
        _ => ResponseError::CoordinatorNotAvailable.code(),
    };
    let host = text(&settings.advertised.host);
    let port = i32::from(settings.advertised.port);
    let mut response = FindCoordinatorResponse::default();
    if head.version >= 4 {
        response.coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let mut coordinator = Coordinator::default();
                coordinator.key = key;
                coordinator.node_id = BrokerId(NODE_ID);
                coordinator.host = host.clone();
                coordinator.port = port;
                coordinator.error_code = code;
                coordinator
            })
            .collect();
    } else {
        response.error_code = code;
        response.node_id = BrokerId(NODE_ID);
        response.host = host;
        response.port = port;
    }
    let parts = frame::encode(
        ApiKey::FindCoordinator,
        head.version,
        head.correlation_id,
        &response,
    )?;
    respond(parts, code != NONE)
}

/// The assignor of the first eager protocol a member proposes that ringbus implements, with
/// its Kafka name, and the topics its subscription names. kafkajs names its (only, default)
/// assignor `RoundRobinAssigner`: Kafka's round-robin (partitions sorted by topic and
/// partition, dealt to the members sorted by id) under another name.
fn protocol(request: &JoinGroupRequest) -> Option<(Assignor, StrBytes, Vec<String>)> {
    request.protocols.iter().find_map(|proposed| {
        let assignor = match proposed.name.as_str() {
            "range" => Assignor::Range,
            "roundrobin" | "RoundRobinAssigner" => Assignor::RoundRobin,
            _ => return None,
        };
        let topics = subscription_topics(&proposed.metadata)?;
        Some((assignor, proposed.name.clone(), topics))
    })
}

/// The topics of a ConsumerProtocol subscription: a version (i16) then the subscription at
/// that version (versions past the codec's are read as its highest: fields are only added).
fn subscription_topics(metadata: &Bytes) -> Option<Vec<String>> {
    let mut bytes = metadata.clone();
    if bytes.remaining() < 2 {
        return None;
    }
    let version = bytes.get_i16().clamp(0, 3);
    let subscription = ConsumerProtocolSubscription::decode(&mut bytes, version).ok()?;
    Some(
        subscription
            .topics
            .into_iter()
            .map(|topic| topic.to_string())
            .collect(),
    )
}

/// A share as Kafka's ConsumerProtocol assignment (version 0: topics and partitions, no user
/// data).
fn encode_assignment(share: &Assignment) -> Bytes {
    let mut assignment = ConsumerProtocolAssignment::default();
    assignment.assigned_partitions = share
        .iter()
        .map(|(topic, partitions)| {
            let mut entry = TopicPartition::default();
            entry.topic = TopicName(text(topic));
            entry.partitions = partitions.iter().map(|&p| p as i32).collect();
            entry
        })
        .collect();
    let mut out = BytesMut::new();
    out.put_i16(0);
    // Encoding a struct we built cannot fail at version 0; an empty share is the fallback.
    if assignment.encode(&mut out, 0).is_err() {
        tracing::error!("encoding a group assignment failed");
        return Bytes::new();
    }
    out.freeze()
}

fn millis(value: i32) -> Duration {
    Duration::from_millis(u64::try_from(value).unwrap_or(0))
}

/// JoinGroup: the coordinator's join, parked until the rebalance completes; the share is kept
/// for the SyncGroup that follows.
pub(crate) async fn join_group(
    shard: &Rc<Shard>,
    session: &GroupSession,
    client_id: String,
    head: Head,
    mut body: Bytes,
) -> Outcome {
    let request: JoinGroupRequest = frame::decode(ApiKey::JoinGroup, head.version, &mut body)?;
    let group = request.group_id.0.to_string();
    let mut response = JoinGroupResponse::default();
    response.generation_id = -1;
    let chosen = (request.protocol_type.as_str() == CONSUMER)
        .then(|| protocol(&request))
        .flatten();
    let Some((assignor, name, topics)) = chosen else {
        response.error_code = ResponseError::InconsistentGroupProtocol.code();
        response.member_id = request.member_id;
        let parts = frame::encode(
            ApiKey::JoinGroup,
            head.version,
            head.correlation_id,
            &response,
        )?;
        return respond(parts, true);
    };
    let args = JoinArgs {
        group: group.clone(),
        member_id: request.member_id.to_string(),
        client_id,
        topics,
        session_timeout: millis(request.session_timeout_ms),
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout: millis(if head.version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        }),
        assignor,
    };
    let failed =
        match handler::group_call(shard, &group, |reply| GroupCall::Join { args, reply }).await {
            Ok(joined) => {
                session.keep(
                    &group,
                    &joined.member_id,
                    joined.generation,
                    joined.assignment,
                );
                response.generation_id = joined.generation;
                response.protocol_name = Some(name);
                if head.version >= 7 {
                    response.protocol_type = Some(text(CONSUMER));
                }
                // No leader: the broker assigned already (see the module doc).
                response.leader = StrBytes::default();
                response.member_id = text(&joined.member_id);
                false
            }
            Err(error) => {
                response.error_code = errors::group(&error);
                response.member_id = request.member_id;
                true
            }
        };
    let parts = frame::encode(
        ApiKey::JoinGroup,
        head.version,
        head.correlation_id,
        &response,
    )?;
    respond(parts, failed)
}

/// SyncGroup: the share the broker computed at the join (any assignments a client sends are
/// ignored: no member is leader).
pub(crate) fn sync_group(session: &GroupSession, head: Head, mut body: Bytes) -> Outcome {
    let request: SyncGroupRequest = frame::decode(ApiKey::SyncGroup, head.version, &mut body)?;
    let group = request.group_id.0.to_string();
    let mut response = SyncGroupResponse::default();
    let share = session.share(&group, request.member_id.as_str(), request.generation_id);
    let failed = match share {
        Some(share) => {
            response.assignment = encode_assignment(&share);
            if head.version >= 5 {
                response.protocol_type = request.protocol_type;
                response.protocol_name = request.protocol_name;
            }
            false
        }
        None => {
            response.error_code = ResponseError::RebalanceInProgress.code();
            true
        }
    };
    let parts = frame::encode(
        ApiKey::SyncGroup,
        head.version,
        head.correlation_id,
        &response,
    )?;
    respond(parts, failed)
}

/// Heartbeat: REBALANCE_IN_PROGRESS tells a member to rejoin, as in Kafka.
pub(crate) async fn heartbeat(shard: &Rc<Shard>, head: Head, mut body: Bytes) -> Outcome {
    let request: HeartbeatRequest = frame::decode(ApiKey::Heartbeat, head.version, &mut body)?;
    let group = request.group_id.0.to_string();
    let heartbeat = |reply| GroupCall::Heartbeat {
        group: group.clone(),
        member_id: request.member_id.to_string(),
        generation: request.generation_id,
        reply,
    };
    let code = match handler::group_call(shard, &group, heartbeat).await {
        Ok(()) => NONE,
        Err(error) => errors::group(&error),
    };
    let mut response = HeartbeatResponse::default();
    response.error_code = code;
    let parts = frame::encode(
        ApiKey::Heartbeat,
        head.version,
        head.correlation_id,
        &response,
    )?;
    respond(parts, code != NONE)
}

/// LeaveGroup: one member (v0-2) or several (v3+).
pub(crate) async fn leave_group(
    shard: &Rc<Shard>,
    session: &GroupSession,
    head: Head,
    mut body: Bytes,
) -> Outcome {
    let request: LeaveGroupRequest = frame::decode(ApiKey::LeaveGroup, head.version, &mut body)?;
    let group = request.group_id.0.to_string();
    let members: Vec<String> = if head.version >= 3 {
        request
            .members
            .iter()
            .map(|member| member.member_id.to_string())
            .collect()
    } else {
        vec![request.member_id.to_string()]
    };
    let mut response = LeaveGroupResponse::default();
    let mut failed = false;
    for member in members {
        session.forget(&group, &member);
        let leave = |reply| GroupCall::Leave {
            group: group.clone(),
            member_id: member.clone(),
            reply,
        };
        let code = match handler::group_call(shard, &group, leave).await {
            Ok(()) => NONE,
            Err(error) => errors::group(&error),
        };
        failed |= code != NONE;
        if head.version >= 3 {
            let mut answer = MemberResponse::default();
            answer.member_id = text(&member);
            answer.error_code = code;
            response.members.push(answer);
        } else {
            response.error_code = code;
        }
    }
    let parts = frame::encode(
        ApiKey::LeaveGroup,
        head.version,
        head.correlation_id,
        &response,
    )?;
    respond(parts, failed)
}

/// OffsetCommit: the coordinator's commit (member and generation checked; generation -1 and no
/// member for a consumer outside any group), one code per partition.
pub(crate) async fn offset_commit(shard: &Rc<Shard>, head: Head, mut body: Bytes) -> Outcome {
    let request: OffsetCommitRequest =
        frame::decode(ApiKey::OffsetCommit, head.version, &mut body)?;
    let group = request.group_id.0.to_string();
    // Per partition: Some(offset) to commit, or the code it is refused with at once.
    let mut asked: Vec<(String, i32, Result<u64, i16>)> = Vec::new();
    for topic in &request.topics {
        for partition in &topic.partitions {
            let offset = match (
                u32::try_from(partition.partition_index),
                u64::try_from(partition.committed_offset),
            ) {
                (Ok(_), Ok(offset)) => Ok(offset),
                _ => Err(ResponseError::InvalidCommitOffsetSize.code()),
            };
            asked.push((topic.name.0.to_string(), partition.partition_index, offset));
        }
    }
    let args = CommitArgs {
        group: group.clone(),
        member_id: request.member_id.to_string(),
        generation: request.generation_id_or_member_epoch,
        offsets: asked
            .iter()
            .filter_map(|(topic, partition, offset)| {
                let offset = offset.as_ref().ok()?;
                Some((topic.clone(), *partition as u32, *offset))
            })
            .collect(),
        reset: false,
    };
    let outcome = if args.offsets.is_empty() {
        Ok(Vec::new())
    } else {
        handler::group_call(shard, &group, |reply| GroupCall::Commit { args, reply }).await
    };
    let mut codes: Vec<i16> = Vec::with_capacity(asked.len());
    match outcome {
        Ok(outcomes) => {
            let mut outcomes = outcomes.into_iter();
            for (_, _, offset) in &asked {
                codes.push(match offset {
                    Err(code) => *code,
                    Ok(_) => match outcomes.next() {
                        Some(Ok(())) => NONE,
                        Some(Err(error)) => errors::group(&error),
                        None => ResponseError::UnknownServerError.code(),
                    },
                });
            }
        }
        Err(error) => codes.resize(asked.len(), errors::group(&error)),
    }
    let mut response = OffsetCommitResponse::default();
    for ((topic, partition, _), code) in asked.into_iter().zip(&codes) {
        let mut answer = OffsetCommitResponsePartition::default();
        answer.partition_index = partition;
        answer.error_code = *code;
        match response.topics.last_mut() {
            Some(last) if last.name.0.as_str() == topic => last.partitions.push(answer),
            _ => {
                let mut entry = OffsetCommitResponseTopic::default();
                entry.name = TopicName(text(&topic));
                entry.partitions.push(answer);
                response.topics.push(entry);
            }
        }
    }
    let failed = codes.iter().any(|code| *code != NONE);
    let parts = frame::encode(
        ApiKey::OffsetCommit,
        head.version,
        head.correlation_id,
        &response,
    )?;
    respond(parts, failed)
}

/// OffsetFetch (one group, v1-7): the committed offsets of the asked partitions (-1 where none
/// is), or every committed partition when the topic list is null (v2+).
pub(crate) async fn offset_fetch(shard: &Rc<Shard>, head: Head, mut body: Bytes) -> Outcome {
    let request: OffsetFetchRequest = frame::decode(ApiKey::OffsetFetch, head.version, &mut body)?;
    let group = request.group_id.0.to_string();
    let topics: Vec<String> = request
        .topics
        .iter()
        .flatten()
        .map(|topic| topic.name.0.to_string())
        .collect();
    let fetch = |reply| GroupCall::FetchOffsets {
        group: group.clone(),
        topics,
        reply,
    };
    let mut response = OffsetFetchResponse::default();
    let committed = match handler::group_call(shard, &group, fetch).await {
        Ok(committed) => committed,
        Err(error) => {
            let code = errors::group(&error);
            if head.version >= 2 {
                response.error_code = code;
            }
            let parts = frame::encode(
                ApiKey::OffsetFetch,
                head.version,
                head.correlation_id,
                &response,
            )?;
            return respond(parts, true);
        }
    };
    let found: BTreeMap<(String, u32), u64> = committed
        .into_iter()
        .map(|(topic, partition, offset)| ((topic, partition), offset))
        .collect();
    let entry = |index: i32, offset: Option<u64>| {
        let mut partition = OffsetFetchResponsePartition::default();
        partition.partition_index = index;
        partition.committed_offset = offset.map_or(-1, |offset| offset as i64);
        partition.metadata = Some(StrBytes::default());
        partition
    };
    match request.topics {
        Some(asked) => {
            for topic in asked {
                let name = topic.name.0.to_string();
                let mut answer = OffsetFetchResponseTopic::default();
                answer.partitions = topic
                    .partition_indexes
                    .iter()
                    .map(|&index| {
                        let key = (name.clone(), u32::try_from(index).unwrap_or(u32::MAX));
                        entry(index, found.get(&key).copied())
                    })
                    .collect();
                answer.name = topic.name;
                response.topics.push(answer);
            }
        }
        None => {
            for ((topic, partition), offset) in found {
                let answer = entry(partition as i32, Some(offset));
                match response.topics.last_mut() {
                    Some(last) if last.name.0.as_str() == topic => last.partitions.push(answer),
                    _ => {
                        let mut entry = OffsetFetchResponseTopic::default();
                        entry.name = TopicName(text(&topic));
                        entry.partitions.push(answer);
                        response.topics.push(entry);
                    }
                }
            }
        }
    }
    let parts = frame::encode(
        ApiKey::OffsetFetch,
        head.version,
        head.correlation_id,
        &response,
    )?;
    respond(parts, false)
}

/// Kafka's name of a group state (ringbus's coordinator has no separate
/// CompletingRebalance: it assigns when the last member rejoins).
fn state_name(state: GroupState) -> &'static str {
    match state {
        GroupState::Empty => "Empty",
        GroupState::PreparingRebalance => "PreparingRebalance",
        GroupState::Stable => "Stable",
    }
}

fn assignor_name(assignor: Assignor) -> &'static str {
    match assignor {
        Assignor::Range => "range",
        Assignor::RoundRobin => "roundrobin",
    }
}

/// A member's topics as Kafka's ConsumerProtocol subscription (version 0), for the tools that
/// decode DescribeGroups' member metadata.
fn encode_subscription(topics: &[String]) -> Bytes {
    let mut subscription = ConsumerProtocolSubscription::default();
    subscription.topics = topics.iter().map(|topic| text(topic)).collect();
    let mut out = BytesMut::new();
    out.put_i16(0);
    if subscription.encode(&mut out, 0).is_err() {
        tracing::error!("encoding a group subscription failed");
        return Bytes::new();
    }
    out.freeze()
}

/// ListGroups: every shard's groups (each coordinates those whose offsets partition it owns),
/// all of Kafka's consumer type; v4's state filter applied.
pub(crate) async fn list_groups(shard: &Rc<Shard>, head: Head, mut body: Bytes) -> Outcome {
    let request: ListGroupsRequest = frame::decode(ApiKey::ListGroups, head.version, &mut body)?;
    let mut response = ListGroupsResponse::default();
    for target in 0..shard.shard_count {
        let list = |reply| ShardOp::Group(GroupCall::List { reply });
        let listed = match shard.call(ShardId(target), list).await {
            Ok(result) => result,
            Err(gone) => Err(GroupFailed::Unreachable(gone.into())),
        };
        match listed {
            Ok(groups) => {
                for summary in groups {
                    let state = state_name(summary.state);
                    let wanted = request.states_filter.is_empty()
                        || request
                            .states_filter
                            .iter()
                            .any(|filter| filter.as_str().eq_ignore_ascii_case(state));
                    if !wanted {
                        continue;
                    }
                    let mut listed = ListedGroup::default();
                    listed.group_id = GroupId(text(&summary.group));
                    listed.protocol_type = text(CONSUMER);
                    if head.version >= 4 {
                        listed.group_state = text(state);
                    }
                    response.groups.push(listed);
                }
            }
            Err(error) => {
                response.error_code = errors::group(&error);
            }
        }
    }
    response
        .groups
        .sort_by(|a, b| a.group_id.0.as_str().cmp(b.group_id.0.as_str()));
    let failed = response.error_code != NONE;
    let parts = frame::encode(
        ApiKey::ListGroups,
        head.version,
        head.correlation_id,
        &response,
    )?;
    respond(parts, failed)
}

/// DescribeGroups: state, assignor, members with their subscriptions and shares, as Kafka's
/// tools decode them.
pub(crate) async fn describe_groups(shard: &Rc<Shard>, head: Head, mut body: Bytes) -> Outcome {
    let request: DescribeGroupsRequest =
        frame::decode(ApiKey::DescribeGroups, head.version, &mut body)?;
    let mut response = DescribeGroupsResponse::default();
    let mut failed = false;
    for group_id in request.groups {
        let group = group_id.0.to_string();
        let mut described = DescribedGroup::default();
        described.group_id = group_id;
        let describe = |reply| GroupCall::Describe {
            group: group.clone(),
            reply,
        };
        match handler::group_call(shard, &group, describe).await {
            Ok(description) => {
                described.group_state = text(state_name(description.state));
                described.protocol_type = text(CONSUMER);
                described.protocol_data =
                    text(description.assignor.map(assignor_name).unwrap_or_default());
                described.members = description
                    .members
                    .into_iter()
                    .map(|view| {
                        let mut member = DescribedGroupMember::default();
                        member.member_id = text(&view.member_id);
                        member.client_id = text(&view.client_id);
                        member.member_metadata = encode_subscription(&view.topics);
                        member.member_assignment = encode_assignment(&view.assignment);
                        member
                    })
                    .collect();
            }
            Err(error) => {
                failed = true;
                described.error_code = errors::group(&error);
            }
        }
        response.groups.push(described);
    }
    let parts = frame::encode(
        ApiKey::DescribeGroups,
        head.version,
        head.correlation_id,
        &response,
    )?;
    respond(parts, failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as Owned;
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;

    #[test]
    fn a_subscription_is_read_at_its_version() {
        for version in 0..=3i16 {
            let mut subscription = ConsumerProtocolSubscription::default();
            subscription.topics = vec![text("a"), text("b")];
            if version >= 1 {
                let mut owned = Owned::default();
                owned.topic = TopicName(text("a"));
                owned.partitions = vec![1];
                subscription.owned_partitions = vec![owned];
            }
            let mut bytes = BytesMut::new();
            bytes.put_i16(version);
            subscription.encode(&mut bytes, version).expect("encodes");
            assert_eq!(
                subscription_topics(&bytes.freeze()),
                Some(vec!["a".to_string(), "b".to_string()]),
                "v{version}"
            );
        }
        assert_eq!(subscription_topics(&Bytes::from_static(&[0])), None);
        assert_eq!(
            subscription_topics(&Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff])),
            None,
            "a lying topic count"
        );
    }

    #[test]
    fn the_eager_assignors_are_known_by_their_clients_names() {
        let join = |names: &[&str]| {
            let mut metadata = BytesMut::new();
            metadata.put_i16(0);
            let mut subscription = ConsumerProtocolSubscription::default();
            subscription.topics = vec![text("t")];
            subscription.encode(&mut metadata, 0).expect("encodes");
            let metadata = metadata.freeze();
            let mut request = JoinGroupRequest::default();
            request.protocols = names
                .iter()
                .map(|name| {
                    let mut proposed = JoinGroupRequestProtocol::default();
                    proposed.name = text(name);
                    proposed.metadata = metadata.clone();
                    proposed
                })
                .collect();
            protocol(&request).map(|(assignor, name, topics)| {
                assert_eq!(topics, vec!["t".to_string()]);
                (assignor, name.to_string())
            })
        };
        assert_eq!(join(&["range"]), Some((Assignor::Range, "range".into())));
        assert_eq!(
            join(&["roundrobin"]),
            Some((Assignor::RoundRobin, "roundrobin".into()))
        );
        // kafkajs's default: answered with its own name, which kafkajs checks.
        assert_eq!(
            join(&["RoundRobinAssigner"]),
            Some((Assignor::RoundRobin, "RoundRobinAssigner".into()))
        );
        assert_eq!(
            join(&["cooperative-sticky", "range"]),
            Some((Assignor::Range, "range".into())),
            "the first one ringbus implements"
        );
        assert_eq!(join(&["cooperative-sticky"]), None);
        assert_eq!(join(&["RoundRobin"]), None, "names are exact");
    }

    #[test]
    fn an_assignment_reads_back_as_kafkas() {
        let share: Assignment = [("t".to_string(), vec![0, 2])].into_iter().collect();
        let mut bytes = encode_assignment(&share);
        assert_eq!(bytes.get_i16(), 0);
        let decoded = ConsumerProtocolAssignment::decode(&mut bytes, 0).expect("decodes");
        assert_eq!(decoded.assigned_partitions.len(), 1);
        assert_eq!(decoded.assigned_partitions[0].topic.0.as_str(), "t");
        assert_eq!(decoded.assigned_partitions[0].partitions, vec![0, 2]);
    }

    #[test]
    fn a_session_answers_only_the_generation_it_joined() {
        let session = GroupSession::default();
        let share: Assignment = [("t".to_string(), vec![1])].into_iter().collect();
        session.keep("g", "m", 3, share.clone());
        assert_eq!(session.share("g", "m", 3), Some(share));
        assert_eq!(session.share("g", "m", 4), None);
        assert_eq!(session.share("g", "other", 3), None);
        session.forget("g", "m");
        assert_eq!(session.share("g", "m", 3), None);
        for member in 0..SESSION_SHARES_MAX + 5 {
            session.keep("g", &member.to_string(), 1, Assignment::new());
        }
        assert_eq!(session.shares.borrow().len(), SESSION_SHARES_MAX);
    }
}
