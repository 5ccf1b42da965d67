//! The ringbus client library: a pipelined connection ([`Client`]), a batching producer
//! ([`Producer`]) and a long-polling consumer ([`Consumer`]).
//!
//! Everything runs on a glommio executor and is `!Send`, like the broker's shards: make one
//! client per executor thread and share it between that thread's tasks with `Rc<Client>`. The
//! crate depends on `schema` (the wire protocol and the batch format) and `net` (frames over
//! TCP) only.
//!
//! - [`client`]: one connection, many requests in flight, responses matched by correlation id;
//!   typed calls for every request of the protocol.
//! - [`producer`]: partition choice ([`partitioner`]), batching ([`accumulator`]), linger,
//!   retries, per-partition ordering; a [`Delivery`] future per record.
//! - [`consumer`]: assignment, seek, long-poll fetch, verified batch decoding, positions.
//! - [`group`]: [`GroupConsumer`], a member of a consumer group: subscribe, rebalances,
//!   committed offsets (auto or manual), heartbeats.
//! - [`coordinator`]: the group and producer-id calls on [`Client`].
//! - [`fast_hash`]: [`fast_hash::FastMap`], the map of the per-record lookups.
//! - [`error`]: [`ClientError`], carrying the broker's [`ErrorCode`] and message where there is
//!   one. Bad responses are errors, never panics.
//!
//! ```no_run
//! use std::rc::Rc;
//! use std::time::Duration;
//!
//! use client::{Client, ClientOptions, Consumer, ConsumerOptions, Producer, ProducerOptions};
//! use client::{ProducerRecord, SeekTo, TopicConfigOwned};
//!
//! let executor = glommio::LocalExecutorBuilder::default().make().unwrap();
//! executor.run(async {
//!     let address = "127.0.0.1:9292".parse().unwrap();
//!     let client = Rc::new(Client::connect(address, ClientOptions::default()).await?);
//!     client.create_topic("events", 3, TopicConfigOwned::default()).await?;
//!
//!     let producer = Producer::new(client.clone(), ProducerOptions::default());
//!     let delivery = producer.send(ProducerRecord::new("events", "hello").key("user-1")).await?;
//!     let stored = delivery.await?;
//!     println!("stored in partition {} at offset {:?}", stored.partition, stored.offset);
//!
//!     let mut consumer = Consumer::new(client.clone(), ConsumerOptions::default());
//!     consumer.assign("events", &[stored.partition]);
//!     consumer.seek(stored.partition, SeekTo::Earliest).await?;
//!     for record in consumer.poll(Duration::from_secs(1)).await? {
//!         println!("{}: {:?}", record.offset, record.value);
//!     }
//!     client.close().await
//! })
//! .unwrap();
//! # Ok::<(), client::ClientError>(())
//! ```

pub mod accumulator;
pub mod client;
pub mod consumer;
pub mod coordinator;
pub mod error;
pub mod fast_hash;
pub mod group;
mod oneshot;
pub mod partitioner;
mod poll;
pub mod producer;
mod retry;

pub use accumulator::{Delivery, RecordMetadata};
pub use client::{
    BrokerInfo, Client, ClientOptions, FetchArgs, Fetched, ListOffsetsItem, OffsetQuery,
    ProduceItem,
};
pub use consumer::{ConsumedRecord, Consumer, ConsumerOptions, SeekTo};
pub use error::ClientError;
pub use group::{Assignor, GroupConsumer, GroupOptions, OffsetReset};
pub use producer::{Producer, ProducerOptions, ProducerRecord, RecordRef};
pub use schema::wire::{
    Acks, ErrorCode, FetchPartitionOwned, ListOffsetsResultOwned, PartitionMetadataOwned,
    ProduceResultOwned, TopicConfigOwned, TopicMetadataOwned,
};
