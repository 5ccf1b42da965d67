//! Consumer groups: membership with server-side assignment, and committed offsets stored in
//! the broker's own log.
//!
//! - [`assign`]: the range and round-robin assignors (pure).
//! - [`membership`]: one group's state machine: join, heartbeat, leave, expiry, rebalance,
//!   generations (pure; time is passed in).
//! - [`offsets`]: the internal topic `__consumer_offsets`, its record and snapshot formats, and
//!   the table of committed offsets of one of its partitions.
//! - [`retention`]: when the offsets of a group without members expire
//!   (`--offsets-retention-ms`; pure, time is passed in).
//! - [`coordinator`]: per shard, the groups whose offsets partition the shard owns, their
//!   waiting joins and ticker, and the durable commit and expiry paths.
//!
//! The domain knows no wire types and no shard: requests are converted in `handler::group`,
//! which sends each as a `GroupCall` to the group's coordinator shard, where `Shard` runs it
//! on its [`coordinator::Coordinator`] (through the narrow [`coordinator::Host`]).

pub mod assign;
pub mod coordinator;
pub mod error;
pub mod membership;
pub mod offsets;
pub mod retention;
