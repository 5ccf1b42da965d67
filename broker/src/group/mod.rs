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
//! This file is the door between shards: [`call`] sends a [`GroupCall`] to the group's
//! coordinator shard, and [`execute`] runs it there. The domain knows no wire types: requests
//! and responses are converted in `handler::group`.

pub mod assign;
pub mod coordinator;
pub mod membership;
pub mod offsets;

use std::rc::Rc;

use crate::ops::{GroupCall, OpError, OpErrorKind, Reply, ShardOp};
use crate::shard::Shard;

/// Runs the group call `make` builds (around its reply route) on the coordinator shard of
/// `group`, and returns its answer.
pub async fn call<T: Send + 'static>(
    shard: &Rc<Shard>,
    group: &str,
    make: impl FnOnce(Reply<Result<T, OpError>>) -> GroupCall,
) -> Result<T, OpError> {
    let key = coordinator::offsets_partition(shard, group)?;
    let target = shard.owner(&key);
    shard
        .call(target, |reply| ShardOp::Group(make(reply)))
        .await
        .map_err(|gone| OpError::new(OpErrorKind::ShuttingDown, gone.to_string()))?
}

/// Runs a group call on this shard (the coordinator side of [`call`]) and answers it.
pub async fn execute(shard: &Rc<Shard>, call: GroupCall) {
    let groups = &shard.groups;
    match call {
        GroupCall::Join { args, reply } => {
            let result = groups.join(shard, args).await;
            shard.answer(reply, result).await;
        }
        GroupCall::Heartbeat {
            group,
            member_id,
            generation,
            reply,
        } => {
            let result = groups.heartbeat(&group, &member_id, generation);
            shard.answer(reply, result).await;
        }
        GroupCall::Leave {
            group,
            member_id,
            reply,
        } => {
            let result = groups.leave(shard, &group, &member_id);
            shard.answer(reply, result).await;
        }
        GroupCall::Commit { args, reply } => {
            let result = groups.commit(shard, args).await;
            shard.answer(reply, result).await;
        }
        GroupCall::FetchOffsets {
            group,
            topics,
            reply,
        } => {
            let result = groups.fetch_offsets(shard, &group, &topics).await;
            shard.answer(reply, result).await;
        }
        GroupCall::List { reply } => {
            let result = groups.list(shard).await;
            shard.answer(reply, result).await;
        }
        GroupCall::Describe { group, reply } => {
            let result = groups.describe(shard, &group);
            shard.answer(reply, result).await;
        }
    }
}
