//! The calls to the broker's coordinators on [`Client`]: producer ids for the idempotent
//! producer, and consumer-group membership and committed offsets. Each is one request on the
//! client's pipelined connection; an error code the broker puts in the body comes back as
//! [`ClientError::Broker`] with that code, so callers can tell `RebalanceInProgress` from
//! `UnknownMemberId` and react as the protocol asks.

use std::time::Duration;

use schema::wire::{
    ErrorCode, GroupDescriptionOwned, GroupSummaryOwned, JoinGroupOwned, JoinedOwned,
    OffsetCommitResultOwned, PartitionOffsetOwned, RequestBodyOwned, ResponseBodyOwned,
};

use crate::client::{Client, body_error, unexpected};
use crate::error::ClientError;

impl Client {
    /// A new producer id and its epoch, for an idempotent producer.
    pub async fn init_producer_id(&self) -> Result<(i64, i16), ClientError> {
        const OPERATION: &str = "init_producer_id";
        let body = RequestBodyOwned::InitProducerId;
        match self.request(OPERATION, body, Vec::new(), None).await?.0 {
            ResponseBodyOwned::InitProducerId {
                error,
                message,
                producer_id,
                producer_epoch,
            } => {
                body_error(OPERATION, error, message)?;
                if producer_id < 0 || producer_epoch < 0 {
                    return Err(ClientError::Protocol {
                        operation: OPERATION,
                        reason: format!("producer id {producer_id} epoch {producer_epoch}"),
                    });
                }
                Ok((producer_id, producer_epoch))
            }
            other => Err(unexpected(OPERATION, &other)),
        }
    }

    /// Joins (or rejoins) a group and waits until the rebalance completes, which may take up
    /// to `join.rebalance_timeout_ms`: the answer carries this member's partitions.
    pub async fn join_group(&self, join: JoinGroupOwned) -> Result<JoinedOwned, ClientError> {
        const OPERATION: &str = "join_group";
        // The coordinator holds the request until every member has rejoined.
        let timeout = self
            .options()
            .request_timeout
            .saturating_add(Duration::from_millis(u64::from(join.rebalance_timeout_ms)));
        let body = RequestBodyOwned::JoinGroup(join);
        match self
            .request(OPERATION, body, Vec::new(), Some(timeout))
            .await?
            .0
        {
            ResponseBodyOwned::JoinGroup {
                error,
                message,
                joined,
            } => {
                body_error(OPERATION, error, message)?;
                Ok(joined)
            }
            other => Err(unexpected(OPERATION, &other)),
        }
    }

    /// Tells the coordinator the member is alive. `RebalanceInProgress` means: commit, then
    /// rejoin; `UnknownMemberId` / `IllegalGeneration`: the member was removed, rejoin.
    pub async fn heartbeat(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
    ) -> Result<(), ClientError> {
        const OPERATION: &str = "heartbeat";
        let body = RequestBodyOwned::Heartbeat {
            group: group.to_string(),
            member_id: member_id.to_string(),
            generation,
        };
        match self.request(OPERATION, body, Vec::new(), None).await?.0 {
            ResponseBodyOwned::Heartbeat { error, message } => {
                body_error(OPERATION, error, message)
            }
            other => Err(unexpected(OPERATION, &other)),
        }
    }

    /// Leaves a group at once (its partitions move to the others without waiting for the
    /// session to expire).
    pub async fn leave_group(&self, group: &str, member_id: &str) -> Result<(), ClientError> {
        const OPERATION: &str = "leave_group";
        let body = RequestBodyOwned::LeaveGroup {
            group: group.to_string(),
            member_id: member_id.to_string(),
        };
        match self.request(OPERATION, body, Vec::new(), None).await?.0 {
            ResponseBodyOwned::LeaveGroup { error, message } => {
                body_error(OPERATION, error, message)
            }
            other => Err(unexpected(OPERATION, &other)),
        }
    }

    /// Commits offsets (each the next offset to consume) durably. A member commits with its id
    /// and generation; outside any membership use an empty id and generation -1 (allowed
    /// while the group has no members). `reset` lets offsets move backwards (an operator's
    /// reset, only while the group has no members). One result per offset, each with its
    /// own error code (`OffsetCommitRewind` when it would move backwards without `reset`).
    pub async fn commit_offsets(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
        offsets: Vec<PartitionOffsetOwned>,
        reset: bool,
    ) -> Result<Vec<OffsetCommitResultOwned>, ClientError> {
        const OPERATION: &str = "offset_commit";
        let count = offsets.len();
        let body = RequestBodyOwned::OffsetCommit {
            group: group.to_string(),
            member_id: member_id.to_string(),
            generation,
            offsets,
            reset,
        };
        match self.request(OPERATION, body, Vec::new(), None).await?.0 {
            ResponseBodyOwned::OffsetCommit {
                error,
                message,
                results,
            } => {
                body_error(OPERATION, error, message)?;
                if results.len() != count {
                    return Err(ClientError::Protocol {
                        operation: OPERATION,
                        reason: format!("{} results for {count} offsets", results.len()),
                    });
                }
                Ok(results)
            }
            other => Err(unexpected(OPERATION, &other)),
        }
    }

    /// The group's committed offsets for `topics` (all topics when empty); a partition without
    /// a committed offset is absent.
    pub async fn fetch_offsets(
        &self,
        group: &str,
        topics: &[String],
    ) -> Result<Vec<PartitionOffsetOwned>, ClientError> {
        const OPERATION: &str = "offset_fetch";
        let body = RequestBodyOwned::OffsetFetch {
            group: group.to_string(),
            topics: topics.to_vec(),
        };
        match self.request(OPERATION, body, Vec::new(), None).await?.0 {
            ResponseBodyOwned::OffsetFetch {
                error,
                message,
                offsets,
            } => {
                body_error(OPERATION, error, message)?;
                Ok(offsets)
            }
            other => Err(unexpected(OPERATION, &other)),
        }
    }

    /// Every group the broker knows: with members, or with committed offsets.
    pub async fn list_groups(&self) -> Result<Vec<GroupSummaryOwned>, ClientError> {
        const OPERATION: &str = "list_groups";
        match self
            .request(OPERATION, RequestBodyOwned::ListGroups, Vec::new(), None)
            .await?
            .0
        {
            ResponseBodyOwned::ListGroups {
                error,
                message,
                groups,
            } => {
                body_error(OPERATION, error, message)?;
                Ok(groups)
            }
            other => Err(unexpected(OPERATION, &other)),
        }
    }

    /// A group's state, generation and members with their assignments (an unknown group
    /// describes as `Empty` with no members).
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescriptionOwned, ClientError> {
        const OPERATION: &str = "describe_group";
        let body = RequestBodyOwned::DescribeGroup {
            group: group.to_string(),
        };
        match self.request(OPERATION, body, Vec::new(), None).await?.0 {
            ResponseBodyOwned::DescribeGroup {
                error,
                message,
                group,
            } => {
                body_error(OPERATION, error, message)?;
                Ok(group)
            }
            other => Err(unexpected(OPERATION, &other)),
        }
    }
}

/// True for the codes that mean "this member must join again" in a heartbeat or commit.
pub fn must_rejoin(code: ErrorCode) -> bool {
    code == ErrorCode::RebalanceInProgress
        || code == ErrorCode::UnknownMemberId
        || code == ErrorCode::IllegalGeneration
}
