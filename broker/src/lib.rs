//! ringbus broker: one glommio executor (a shard) per core, each owning a fixed set of
//! partitions outright, serving the flatbuffers protocol over TCP.
//!
//! The path of a request: the shard that accepted the connection decodes it
//! ([`connection`], [`handler`]); work on a partition goes to the shard that owns it
//! ([`topology::shard_for`]) through [`shard::Shard::call`], an explicit hop over a bounded
//! channel carrying plain owned structs ([`ops`]); on the owner, the partition's actor
//! ([`partition`]) runs it against the log, group-committing appends. Topic changes go to the
//! controller shard, which persists them and has every shard apply them ([`metadata`]).
//! Each shard counts its work in [`metrics`], served as Prometheus text over HTTP.
//! [`kafka`] is a second front-end: Kafka's wire protocol over the same operations.
//! [`server`] creates the executors and is the only place that does.

mod byte_reader;
pub mod connection;
pub mod error;
pub mod group;
pub mod handler;
pub mod kafka;
pub mod metadata;
pub mod metrics;
pub mod ops;
pub mod partition;
pub mod per_ip;
pub mod producer_ids;
pub mod producer_state;
pub mod server;
pub mod shard;
pub mod snapshot;
pub mod topology;
