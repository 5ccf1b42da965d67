//! Why a consumer-group operation (join, heartbeat, leave, commit, offset fetch, list,
//! describe) failed: one typed family, `Send` and cheap to clone (a failed commit answers each
//! of its offsets with the same error). The front-end maps it to its protocol's codes
//! (`handler::errors`); nothing here knows a wire type.

use std::sync::Arc;

use super::membership::GroupError;
use crate::error::{AppendFailed, ReadFailed, Unreachable};

/// A group operation's failure.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum GroupFailed {
    /// The group's membership rules refused it (unknown member, generation, rebalance,
    /// assignor, timeouts, a full group, members present).
    #[error("group {group:?}: {error}")]
    Membership {
        /// The group.
        group: String,
        /// The rule that refused it.
        error: GroupError,
    },
    /// The group does not know the member.
    #[error("group {group:?} has no member {member_id:?}")]
    UnknownMember {
        /// The group.
        group: String,
        /// The member id given.
        member_id: String,
    },
    /// The same member joined again before its first join was answered (its client gave up
    /// on it): the earlier join can only be refused, with a rejoin.
    #[error("group {group:?}: superseded by a later join of the same member")]
    Superseded {
        /// The group.
        group: String,
    },
    /// A malformed request (an invalid group or topic name, a client id or commit too large).
    #[error("{reason}")]
    InvalidRequest {
        /// What is wrong.
        reason: String,
    },
    /// This coordinator holds as many groups, members or offsets as it may.
    #[error("{what}: the limit of {limit} is reached")]
    CoordinatorFull {
        /// Which limit.
        what: &'static str,
        /// Its value.
        limit: usize,
    },
    /// A commit would move a committed offset backwards outside a reset.
    #[error(
        "{topic}/{partition}: committed offset is {committed}, refusing {asked} \
         (only a reset of a group without members moves it back)"
    )]
    CommitRewind {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset committed now.
        committed: u64,
        /// The offset asked for.
        asked: u64,
    },
    /// Offsets of the broker's internal topics are not committed.
    #[error("{topic:?} is internal to the broker")]
    InternalTopic {
        /// The topic.
        topic: String,
    },
    /// The committed partition, or the offsets partition, could not be reached.
    #[error(transparent)]
    Unreachable(#[from] Unreachable),
    /// Appending the commit to the offsets partition failed.
    #[error(transparent)]
    Append(#[from] AppendFailed),
    /// Reading the offsets partition (to load its table) failed.
    #[error(transparent)]
    Read(#[from] ReadFailed),
    /// The offsets partition's snapshot, or the log after it, could not be read.
    #[error("{path}: {error}")]
    Snapshot {
        /// The snapshot file.
        path: String,
        /// Why.
        error: Arc<crate::snapshot::LoadError>,
    },
    /// The offsets partition's snapshot or records are damaged or inconsistent with its log:
    /// committed offsets would be lost or wrong, so the partition's groups are refused.
    #[error("{what}: {reason}")]
    Corrupt {
        /// The file or partition.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The offsets topic does not exist yet (the controller creates it at start).
    #[error("the {topic} topic does not exist yet")]
    NoOffsetsTopic {
        /// Its name.
        topic: &'static str,
    },
}

impl GroupFailed {
    /// The coordinator is stopping.
    pub fn shutting_down() -> GroupFailed {
        GroupFailed::Unreachable(Unreachable::ShuttingDown {
            what: "the group coordinator",
        })
    }
}
