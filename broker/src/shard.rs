//! One shard: the state a core owns (its partitions, its copy of the metadata) and the only
//! door to other shards, [`Shard::call`].
//!
//! Cross-shard calls travel over glommio's full channel mesh (bounded SPSC channels between
//! every pair of executors) as [`ShardMessage`]s carrying plain owned structs (ops.rs). The
//! receiving shard runs the operation in a task of its own and sends the reply back over the
//! mesh; the caller waits on a local one-shot channel keyed by call id. A call to the shard
//! itself skips the mesh. Nothing here is shared between threads.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::channel_mesh::{Receivers, Senders};
use glommio::channels::local_channel::{self, LocalSender};
use storage::disk::glommio::GlommioDisk;
use storage::{Log, LogConfig, Offset};

use crate::error::{ApplyFailed, ProducerIdFailed, TopicChangeFailed};
use crate::error::{ShardGone, Unreachable};
use crate::group::coordinator::{Coordinator, Host};
use crate::group::offsets;
use crate::metadata::{Metadata, TopicConfig, TopicSpec};
use crate::metrics::Metrics;
use crate::ops::{ControllerOp, GroupCall, LogBounds, ReadBatches, Reply, ShardOp};
use crate::partition::{self, PartitionHandle, Wake, now_ms, partition_dir};
use crate::producer_ids::ProducerIds;
use crate::topology::{CONTROLLER, PartitionId, PartitionKey, ShardId, shard_for};

/// Capacity of each channel of the mesh: calls in flight from one shard to another before
/// the caller waits.
pub const MESH_CHANNEL_MAX: usize = 1024;
/// Name of the metadata blob under `<data dir>/metadata/`.
const METADATA_FILE: &str = "topics";

/// A message between shards.
#[derive(Debug)]
pub enum ShardMessage {
    /// Run `op` and reply to `from` with `call_id`.
    Call {
        /// The caller.
        from: ShardId,
        /// Matches the reply to the waiting caller.
        call_id: u64,
        /// What to run.
        op: ShardOp,
    },
    /// The answer to a call: the value its [`Reply`] is typed by, boxed to cross the mesh.
    Reply {
        /// The call answered.
        call_id: u64,
        /// The answer; [`Shard::call`] takes it back as the type its `Reply` promised.
        answer: Answer,
    },
}

/// An answer in transit between shards.
pub type Answer = Box<dyn Any + Send>;

struct OwnedPartition {
    handle: PartitionHandle,
    task: glommio::Task<()>,
}

/// A shard's state. Shared by the tasks of one executor through `Rc`.
pub struct Shard {
    /// This shard.
    pub id: ShardId,
    /// Shards in the broker.
    pub shard_count: u16,
    /// This shard's counters (metrics.rs).
    pub metrics: Metrics,
    /// The consumer groups this shard coordinates (group/coordinator.rs).
    pub groups: Coordinator,
    data_dir: PathBuf,
    disk: GlommioDisk,
    log_defaults: LogConfig,
    cache_bytes: usize,
    tick_interval: Duration,
    /// The largest frame accepted (`--frame-bytes-max`), announced in the handshake.
    pub frame_bytes_max: u32,
    metadata: RefCell<Rc<Metadata>>,
    partitions: RefCell<HashMap<PartitionKey, OwnedPartition>>,
    peers: Option<Senders<ShardMessage>>,
    /// Calls waiting for their answer: the shard asked, and where the answer goes.
    pending: RefCell<HashMap<u64, (ShardId, LocalSender<Answer>)>>,
    next_call_id: Cell<u64>,
    /// Serialises topic changes on the controller.
    controller_gate: glommio::sync::Semaphore,
    /// Serialises metadata snapshots applied on this shard (the one at start-up and those the
    /// controller sends may overlap), so a partition is never opened twice.
    apply_gate: glommio::sync::Semaphore,
    /// The controller's producer-id allocator, loaded on first use; behind its own gate.
    producer_ids: RefCell<Option<ProducerIds>>,
    producer_ids_gate: glommio::sync::Semaphore,
    shutting_down: Cell<bool>,
}

/// What a shard is started with, besides its identity, disk and mesh.
#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// Where partitions and metadata live.
    pub data_dir: PathBuf,
    /// Log defaults for new partitions.
    pub log_defaults: LogConfig,
    /// Memory for the partitions' recent-batch caches ([`cache_share`]).
    pub cache_bytes: usize,
    /// How often partitions and the group coordinator check their timers
    /// ([`TICK_INTERVAL_DEFAULT`]; shorter only to accelerate soak tests).
    pub tick_interval: Duration,
    /// The largest frame the broker accepts, announced in the handshake.
    pub frame_bytes_max: u32,
    /// How long committed offsets of a group without members are kept
    /// (`--offsets-retention-ms`; None: for ever).
    pub offsets_retention: Option<Duration>,
}

/// Ticks between the group timer's wake-ups while the shard coordinates no group.
const GROUP_IDLE_TICKS: u32 = 10;

/// The partitions' and group coordinator's tick: flush policy, retention, snapshots, session
/// expiry. Retention and snapshots run every so many ticks (partition.rs).
pub const TICK_INTERVAL_DEFAULT: Duration = Duration::from_millis(100);

impl Shard {
    /// Creates the shard's state and opens the partitions it owns.
    pub async fn start(
        id: ShardId,
        shard_count: u16,
        config: ShardConfig,
        disk: GlommioDisk,
        mesh: Option<(Senders<ShardMessage>, Receivers<ShardMessage>)>,
    ) -> Result<Rc<Shard>, String> {
        let ShardConfig {
            data_dir,
            log_defaults,
            cache_bytes,
            tick_interval,
            frame_bytes_max,
            offsets_retention,
        } = config;
        assert!(!tick_interval.is_zero(), "a zero tick interval would spin");
        let (peers, receivers) = match mesh {
            Some((senders, receivers)) => (Some(senders), Some(receivers)),
            None => (None, None),
        };
        let metadata_path = data_dir.join("metadata").join(METADATA_FILE);
        let metadata = match storage::load_blob(&disk, &metadata_path).await {
            Ok(Some(bytes)) => {
                Metadata::decode(&bytes).map_err(|e| format!("{}: {e}", metadata_path.display()))?
            }
            Ok(None) => Metadata::default(),
            Err(error) => return Err(error.to_string()),
        };
        let shard = Rc::new(Shard {
            id,
            shard_count,
            metrics: Metrics::new(),
            groups: Coordinator::new(offsets_retention),
            data_dir,
            disk,
            log_defaults,
            cache_bytes,
            tick_interval,
            frame_bytes_max,
            metadata: RefCell::new(Rc::new(Metadata::default())),
            partitions: RefCell::new(HashMap::new()),
            peers,
            pending: RefCell::new(HashMap::new()),
            next_call_id: Cell::new(0),
            controller_gate: glommio::sync::Semaphore::new(1),
            apply_gate: glommio::sync::Semaphore::new(1),
            producer_ids: RefCell::new(None),
            producer_ids_gate: glommio::sync::Semaphore::new(1),
            shutting_down: Cell::new(false),
        });
        if let Some(mut receivers) = receivers {
            for (peer, stream) in receivers.streams() {
                let shard = shard.clone();
                glommio::spawn_local(async move {
                    while let Some(message) = stream.recv().await {
                        shard.receive(message);
                    }
                    // The peer is gone: what it was asked will never be answered.
                    shard.forget_calls_to(ShardId(peer as u16));
                })
                .detach();
            }
        }
        // A partition that refuses to open (corruption) stays offline with its reason logged;
        // the rest of the broker serves.
        if let Err(error) = shard.apply_metadata(metadata).await {
            tracing::error!(shard = %id, %error, "some partitions are offline");
        }
        // The group coordinator's timer; it holds the shard weakly and ends with it. With no
        // group to watch it wakes only every GROUP_IDLE_TICKS ticks (a new group's deadlines
        // are then noticed up to that much later): an idle broker costs next to no CPU. The
        // expiry of offsets rides on it: a comparison per offsets partition, and a task only
        // when one's next expiry is due.
        let weak = Rc::downgrade(&shard);
        glommio::spawn_local(async move {
            let mut wait = tick_interval;
            loop {
                glommio::timer::sleep(wait).await;
                let Some(shard) = weak.upgrade() else {
                    break;
                };
                if shard.is_shutting_down() {
                    break;
                }
                shard.metrics.tick();
                shard.groups.tick(&*shard);
                for key in shard.groups.offsets_due(&*shard, now_ms()) {
                    let shard = shard.clone();
                    glommio::spawn_local(async move {
                        shard.groups.expire_offsets(&*shard, key).await;
                    })
                    .detach();
                }
                wait = if shard.groups.is_empty() {
                    tick_interval * GROUP_IDLE_TICKS
                } else {
                    tick_interval
                };
            }
        })
        .detach();
        Ok(shard)
    }

    /// On the controller, at start-up: creates the internal offsets topic if it is missing.
    pub async fn ensure_internal_topics(self: &Rc<Self>) -> Result<(), TopicChangeFailed> {
        assert_eq!(self.id, CONTROLLER, "only the controller changes topics");
        if self.metadata().topics.contains_key(offsets::OFFSETS_TOPIC) {
            return Ok(());
        }
        let spec = TopicSpec {
            name: offsets::OFFSETS_TOPIC.to_string(),
            partitions: offsets::OFFSETS_PARTITIONS,
            config: TopicConfig {
                // Never deleted by time or size: snapshots let old segments go (group/offsets.rs).
                retention_ms: Some(u64::MAX),
                retention_bytes: Some(u64::MAX),
                segment_bytes: Some(offsets::OFFSETS_SEGMENT_BYTES),
            },
        };
        tracing::info!(
            topic = offsets::OFFSETS_TOPIC,
            "creating the internal offsets topic"
        );
        self.change_topics(ControllerOp::Create(spec)).await
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// The disk partitions and blobs live on.
    pub fn disk(&self) -> &GlommioDisk {
        &self.disk
    }

    /// The metadata snapshot this shard has applied.
    pub fn metadata(&self) -> Rc<Metadata> {
        self.metadata.borrow().clone()
    }

    /// The log settings a partition gets unless its topic overrides them (the Kafka
    /// listener's DescribeConfigs reports them as the defaults).
    pub fn log_defaults(&self) -> &LogConfig {
        &self.log_defaults
    }

    /// True once shutdown started.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.get()
    }

    /// The shard that owns a partition.
    pub fn owner(&self, key: &PartitionKey) -> ShardId {
        shard_for(&key.topic, key.partition, self.shard_count)
    }

    fn receive(self: &Rc<Self>, message: ShardMessage) {
        match message {
            ShardMessage::Call { from, call_id, op } => {
                let shard = self.clone();
                glommio::spawn_local(async move {
                    // The op's own `Reply` routes the answer back to `from`'s call `call_id`.
                    debug_assert_ne!(from, shard.id, "a shard calls itself without the mesh");
                    let _ = call_id;
                    shard.execute(op).await;
                })
                .detach();
            }
            ShardMessage::Reply { call_id, answer } => self.deliver(call_id, answer),
        }
    }

    fn deliver(&self, call_id: u64, answer: Answer) {
        if let Some((_, waiter)) = self.pending.borrow_mut().remove(&call_id) {
            // The caller may have given up (its client vanished): nothing to do then.
            let _ = waiter.try_send(answer);
        }
    }

    /// Runs the op that `make` builds around the reply route it is given, on shard `target`
    /// (locally, or as an explicit hop over the mesh), and returns the op's typed answer.
    pub async fn call<T: Send + 'static>(
        self: &Rc<Self>,
        target: ShardId,
        make: impl FnOnce(Reply<T>) -> ShardOp,
    ) -> Result<T, ShardGone> {
        let call_id = self.next_call_id.get();
        self.next_call_id.set(call_id + 1);
        let (sender, receiver) = local_channel::new_bounded(1);
        self.pending.borrow_mut().insert(call_id, (target, sender));
        // Whatever ends this call (its answer, a gone peer, or the caller giving up: a client
        // that vanished cancels its request's task), its entry goes with it.
        let _forget = ForgetCall {
            pending: &self.pending,
            call_id,
        };
        let op = make(Reply::new(self.id, call_id));
        if target == self.id {
            // In a task of its own, like a call from another shard: an op runs to its end
            // even when its caller gives up (a topic change applied on some shards only
            // would leave the others behind).
            let shard = self.clone();
            glommio::spawn_local(async move { shard.execute(op).await }).detach();
        } else {
            let Some(peers) = &self.peers else {
                unreachable!("a single-shard broker has no other shard to call");
            };
            let message = ShardMessage::Call {
                from: self.id,
                call_id,
                op,
            };
            if peers.send_to(usize::from(target.0), message).await.is_err() {
                return Err(ShardGone(target));
            }
        }
        let answer = receiver.recv().await.ok_or(ShardGone(target))?;
        let answer = answer
            .downcast::<T>()
            .expect("a Reply<T> is only ever answered with a T (Shard::answer)");
        Ok(*answer)
    }

    /// Fails every call waiting on `peer` (its mesh stream ended): their callers get
    /// [`ShardGone`] instead of waiting forever.
    fn forget_calls_to(&self, peer: ShardId) {
        self.pending
            .borrow_mut()
            .retain(|_, (target, _)| *target != peer);
    }

    /// Sends `value` back along `reply`: to this shard's own waiting call, or over the mesh.
    pub async fn answer<T: Send + 'static>(self: &Rc<Self>, reply: Reply<T>, value: T) {
        let answer: Answer = Box::new(value);
        if reply.to == self.id {
            self.deliver(reply.call_id, answer);
            return;
        }
        let Some(peers) = &self.peers else {
            unreachable!("a single-shard broker only answers itself");
        };
        let message = ShardMessage::Reply {
            call_id: reply.call_id,
            answer,
        };
        if peers
            .send_to(usize::from(reply.to.0), message)
            .await
            .is_err()
        {
            tracing::warn!(shard = %self.id, to = %reply.to, "answer lost: peer gone");
        }
    }

    /// Every shard's metrics snapshot, rendered as Prometheus text. A shard that does not
    /// answer (it is shutting down) is left out.
    pub async fn metrics_text(self: &Rc<Self>) -> String {
        let mut snapshots = Vec::with_capacity(usize::from(self.shard_count));
        for target in 0..self.shard_count {
            let metrics = |reply| ShardOp::Metrics { reply };
            if let Ok(snapshot) = self.call(ShardId(target), metrics).await {
                snapshots.push(snapshot);
            }
        }
        crate::metrics::render(&snapshots)
    }

    /// The actor of a partition this shard owns.
    pub fn partition(&self, key: &PartitionKey) -> Result<PartitionHandle, Unreachable> {
        self.partitions
            .borrow()
            .get(key)
            .map(|owned| owned.handle.clone())
            .ok_or_else(|| Unreachable::NotServed {
                key: key.clone(),
                shard: self.id,
            })
    }

    /// The bounds the actor of a partition this shard owns published after its last round
    /// (see [`PartitionHandle::published_bounds`]); None where it is not served here or not
    /// running.
    pub fn published_bounds(&self, key: &PartitionKey) -> Option<LogBounds> {
        self.partitions
            .borrow()
            .get(key)
            .and_then(|owned| owned.handle.published_bounds())
    }

    /// Has `wake` woken when a partition this shard owns may have data at or after `offset`
    /// (see [`PartitionHandle::watch`]); false where it is not served here or has no published
    /// bounds: then wait through its actor.
    pub fn watch(&self, key: &PartitionKey, offset: Offset, wake: &Rc<Wake>) -> bool {
        self.partitions
            .borrow()
            .get(key)
            .is_some_and(|owned| owned.handle.watch(offset, wake))
    }

    /// A read of a partition this shard owns from its recent-batch cache, without waiting
    /// for its actor (see [`PartitionHandle::read_cached`]); None: ask the actor.
    pub fn read_cached(
        &self,
        key: &PartitionKey,
        offset: Offset,
        bytes_max: usize,
    ) -> Option<ReadBatches> {
        self.partitions
            .borrow()
            .get(key)
            .and_then(|owned| owned.handle.read_cached(offset, bytes_max))
    }

    /// Runs an operation that belongs to this shard and answers it.
    async fn execute(self: &Rc<Self>, op: ShardOp) {
        match op {
            ShardOp::Append {
                key,
                batches,
                acks,
                reply,
            } => {
                let result = match self.partition(&key) {
                    Ok(partition) => partition.append_all(batches, acks).await,
                    Err(error) => {
                        let error = crate::error::AppendFailed::from(error);
                        batches.iter().map(|_| Err(error.clone())).collect()
                    }
                };
                self.answer(reply, result).await;
            }
            ShardOp::Read {
                key,
                offset,
                bytes_max,
                reply,
            } => {
                let result = match self.partition(&key) {
                    Ok(partition) => match partition.read_cached(offset, bytes_max) {
                        Some(read) => Ok(read),
                        None => partition.read(offset, bytes_max).await,
                    },
                    Err(error) => Err(error.into()),
                };
                self.answer(reply, result).await;
            }
            ShardOp::WaitForData {
                key,
                offset,
                wait,
                reply,
            } => {
                let result = match self.partition(&key) {
                    Ok(partition) => partition.wait_for_data(offset, wait).await,
                    Err(error) => Err(error.into()),
                };
                self.answer(reply, result).await;
            }
            ShardOp::ListOffset { key, query, reply } => {
                let result = match self.partition(&key) {
                    Ok(partition) => partition.list_offset(query).await,
                    Err(error) => Err(error.into()),
                };
                self.answer(reply, result).await;
            }
            ShardOp::Describe { key, reply } => {
                let result = match self.partition(&key) {
                    Ok(partition) => partition.describe().await,
                    Err(error) => Err(error.into()),
                };
                self.answer(reply, result).await;
            }
            ShardOp::ChangeTopics { change, reply } => {
                let result = self.change_topics(change).await;
                self.answer(reply, result).await;
            }
            ShardOp::ApplyMetadata { metadata, reply } => {
                let result = self.apply_metadata(metadata).await;
                self.answer(reply, result).await;
            }
            ShardOp::Metrics { reply } => {
                let partitions_owned = self.partitions.borrow().len() as u64;
                let snapshot = self.metrics.snapshot(self.id, partitions_owned);
                self.answer(reply, snapshot).await;
            }
            ShardOp::InitProducerId { reply } => {
                let result = self.allocate_producer_id().await;
                self.answer(reply, result).await;
            }
            ShardOp::Group(call) => Box::pin(self.execute_group(call)).await,
        }
    }

    /// Runs a group call on this shard's coordinator and answers it.
    async fn execute_group(self: &Rc<Self>, call: GroupCall) {
        let groups = &self.groups;
        match call {
            GroupCall::Join { args, reply } => {
                let result = groups.join(&**self, args).await;
                self.answer(reply, result).await;
            }
            GroupCall::Heartbeat {
                group,
                member_id,
                generation,
                reply,
            } => {
                let result = groups.heartbeat(&group, &member_id, generation);
                self.answer(reply, result).await;
            }
            GroupCall::Leave {
                group,
                member_id,
                reply,
            } => {
                let result = groups.leave(&**self, &group, &member_id);
                self.answer(reply, result).await;
            }
            GroupCall::Commit { args, reply } => {
                let result = groups.commit(&**self, args).await;
                self.answer(reply, result).await;
            }
            GroupCall::FetchOffsets {
                group,
                topics,
                reply,
            } => {
                let result = groups.fetch_offsets(&**self, &group, &topics).await;
                self.answer(reply, result).await;
            }
            GroupCall::List { reply } => {
                let result = groups.list(&**self).await;
                self.answer(reply, result).await;
            }
            GroupCall::Describe { group, reply } => {
                let result = groups.describe(&**self, &group).await;
                self.answer(reply, result).await;
            }
        }
    }

    /// On the controller: the next producer id (see producer_ids.rs).
    async fn allocate_producer_id(&self) -> Result<(i64, i16), ProducerIdFailed> {
        assert_eq!(self.id, CONTROLLER, "producer ids come from the controller");
        let _permit = self
            .producer_ids_gate
            .acquire_permit(1)
            .await
            .map_err(|_| controller_stopping())?;
        let failed = |error: crate::producer_ids::ProducerIdError| {
            ProducerIdFailed::Storage(Arc::new(error))
        };
        let loaded = self.producer_ids.borrow_mut().take();
        let mut ids = match loaded {
            Some(ids) => ids,
            None => ProducerIds::load(&self.disk, &self.data_dir.join("metadata"))
                .await
                .map_err(failed)?,
        };
        let result = ids.allocate(&self.disk).await.map_err(failed);
        *self.producer_ids.borrow_mut() = Some(ids);
        result
    }

    /// On the controller: validates a topic change, persists it, then has every shard apply
    /// it. The change is acknowledged only after every shard opened or closed its partitions.
    async fn change_topics(self: &Rc<Self>, op: ControllerOp) -> Result<(), TopicChangeFailed> {
        assert_eq!(self.id, CONTROLLER, "topic changes run on the controller");
        let _permit = self
            .controller_gate
            .acquire_permit(1)
            .await
            .map_err(|_| controller_stopping())?;
        let current = self.metadata();
        let next = match op {
            ControllerOp::Create(spec) => current.with_topic(spec),
            ControllerOp::Delete(name) => current.without_topic(&name),
        }?;
        storage::store_blob(
            &self.disk,
            &self.data_dir.join("metadata"),
            METADATA_FILE,
            &next.encode(),
        )
        .await
        .map_err(|error| TopicChangeFailed::Store(Arc::new(error)))?;
        let mut failures = Vec::new();
        for shard in 0..self.shard_count {
            let metadata = next.clone();
            let apply = |reply| ShardOp::ApplyMetadata { metadata, reply };
            // Boxed: call -> execute -> change_topics -> call is a cycle of async fns.
            match Box::pin(self.call(ShardId(shard), apply)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => failures.extend(error.failures),
                Err(gone) => failures.push(gone.to_string()),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ApplyFailed { failures }.into())
        }
    }

    /// Adopts a snapshot: opens the partitions this shard owns in new topics, closes (and
    /// deletes the files of) those of removed topics. Older snapshots are ignored.
    async fn apply_metadata(self: &Rc<Self>, next: Metadata) -> Result<(), ApplyFailed> {
        let _permit = self
            .apply_gate
            .acquire_permit(1)
            .await
            .map_err(|_| ApplyFailed {
                failures: vec![format!("{} is shutting down", self.id)],
            })?;
        let current = self.metadata();
        if next.epoch < current.epoch {
            return Ok(());
        }
        let mut errors = Vec::new();
        // Removed topics: close their partitions, then delete their files.
        let removed: Vec<PartitionKey> = self
            .partitions
            .borrow()
            .keys()
            .filter(|key| !next.topics.contains_key(&key.topic))
            .cloned()
            .collect();
        for key in removed {
            let owned = self.partitions.borrow_mut().remove(&key).expect("listed");
            owned.handle.close().await;
            drop(owned.handle);
            owned.task.await;
            let dir = partition_dir(&self.data_dir, &key);
            if let Err(error) = storage::remove_log_dir(&self.disk, &dir).await {
                errors.push(format!("{key}: {error}"));
            }
        }
        // New topics: open the partitions this shard owns. The cache budget is shared by the
        // clients' partitions only: the internal ones (group offsets, a few small records per
        // commit, read back only when a table loads) get the minimum, where an equal share
        // took a third of the budget from the data partitions of a 16-partition topic.
        let owned_after = next
            .topics
            .values()
            .filter(|topic| !offsets::is_internal(&topic.name))
            .flat_map(|topic| {
                (0..topic.partitions).map(|partition| PartitionKey {
                    topic: topic.name.clone(),
                    partition: PartitionId(partition),
                })
            })
            .filter(|key| self.owner(key) == self.id)
            .count();
        let cache_bytes_max = cache_share(self.cache_bytes, owned_after);
        for topic in next.topics.values() {
            for partition in 0..topic.partitions {
                let key = PartitionKey {
                    topic: topic.name.clone(),
                    partition: PartitionId(partition),
                };
                if self.owner(&key) != self.id || self.partitions.borrow().contains_key(&key) {
                    continue;
                }
                let mut config = self.log_defaults.clone();
                config.cache_bytes_max = partition_cache_bytes(&topic.name, cache_bytes_max);
                // u64::MAX is how a topic says "unlimited" (-1 on the wire).
                if let Some(ms) = topic.config.retention_ms {
                    config.retention_ms = (ms != u64::MAX).then_some(ms);
                }
                if let Some(bytes) = topic.config.retention_bytes {
                    config.retention_bytes = (bytes != u64::MAX).then_some(bytes);
                }
                if let Some(bytes) = topic.config.segment_bytes {
                    config.segment_bytes_max = bytes;
                }
                let dir = partition_dir(&self.data_dir, &key);
                match self.open_partition(&key, &dir, config).await {
                    Ok(opened) => {
                        let (handle, task) =
                            partition::spawn(key.clone(), opened, self.tick_interval);
                        self.partitions
                            .borrow_mut()
                            .insert(key, OwnedPartition { handle, task });
                    }
                    Err(error) => {
                        // The partition stays offline (requests get UnknownPartition with
                        // this logged reason); the other partitions keep serving.
                        tracing::error!(partition = %key, %error, "partition refused to open");
                        errors.push(format!("{key}: {error}"));
                    }
                }
            }
        }
        *self.metadata.borrow_mut() = Rc::new(next);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApplyFailed { failures: errors })
        }
    }

    /// Opens a partition's log and rebuilds its producer state.
    async fn open_partition(
        &self,
        key: &PartitionKey,
        dir: &std::path::Path,
        config: LogConfig,
    ) -> Result<partition::Opened, String> {
        let (log, report) = Log::open(self.disk.clone(), dir, config, now_ms())
            .await
            .map_err(|error| error.to_string())?;
        if !report.clean {
            tracing::info!(partition = %key, truncated_bytes = report.truncated_bytes,
                rebuilt_indexes = report.rebuilt_indexes.len(), "recovered after an unclean stop");
        }
        let loaded = partition::load_producer_states(&self.disk, dir, &log).await;
        let (producers, snapshot_through) = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                // Close what was opened; the partition stays offline with this reason.
                if let Err(close) = log.close(now_ms()).await {
                    tracing::error!(partition = %key, error = %close, "closing the log failed");
                }
                return Err(format!("rebuilding the producer state: {error}"));
            }
        };
        Ok(partition::Opened {
            log,
            dir: dir.to_path_buf(),
            disk: self.disk.clone(),
            producers,
            snapshot_through,
        })
    }

    /// Closes every partition cleanly (sync, indexes, clean-shutdown marker).
    pub async fn shutdown(self: &Rc<Self>) {
        self.shutting_down.set(true);
        // Calls still waiting get `ShardGone` rather than an answer that will not come.
        self.pending.borrow_mut().clear();
        self.groups.close();
        let owned: Vec<OwnedPartition> = self
            .partitions
            .borrow_mut()
            .drain()
            .map(|(_, o)| o)
            .collect();
        for partition in owned {
            partition.handle.close().await;
            drop(partition.handle);
            partition.task.await;
        }
    }
}

impl Host for Shard {
    fn id(&self) -> ShardId {
        self.id
    }

    fn owner(&self, key: &PartitionKey) -> ShardId {
        Shard::owner(self, key)
    }

    fn metadata(&self) -> Rc<Metadata> {
        Shard::metadata(self)
    }

    fn partition(&self, key: &PartitionKey) -> Result<PartitionHandle, Unreachable> {
        Shard::partition(self, key)
    }

    fn data_dir(&self) -> &std::path::Path {
        Shard::data_dir(self)
    }

    fn disk(&self) -> &GlommioDisk {
        Shard::disk(self)
    }
}

/// Removes a call's pending entry when the call ends, however it ends. No I/O: a map removal.
struct ForgetCall<'a> {
    pending: &'a RefCell<HashMap<u64, (ShardId, LocalSender<Answer>)>>,
    call_id: u64,
}

impl Drop for ForgetCall<'_> {
    fn drop(&mut self) {
        self.pending.borrow_mut().remove(&self.call_id);
    }
}

/// The controller's gates close when it stops.
fn controller_stopping() -> Unreachable {
    Unreachable::ShuttingDown {
        what: "the controller",
    }
}

/// Smallest and largest recent-batch cache one partition gets. The minimum is small so that
/// the shard's budget holds for a thousand partitions and more: at 1 MiB, 1,000 partitions
/// took 1 GiB against a 256 MiB budget, and the broker's memory grew for the whole of a
/// benchmark run (to 1.8 GiB in 14 s), every new request buffer and write chunk on fresh
/// pages (page faults ~30% of its CPU; perf-log.md 2026-12-07 evening). A partition keeps its
/// newest batch even where that is larger (`storage::log` cache).
pub const PARTITION_CACHE_BYTES_MIN: usize = 64 << 10;
/// See [`PARTITION_CACHE_BYTES_MIN`].
pub const PARTITION_CACHE_BYTES_MAX: usize = 64 << 20;

/// Each partition's recent-batch cache: the shard's budget shared out equally over the
/// `partitions` it owns, within [`PARTITION_CACHE_BYTES_MIN`, `PARTITION_CACHE_BYTES_MAX`].
///
/// Why a budget: cached batches are slices of the request buffers they arrived in, so the cache
/// size is the memory the receive path cycles through. With 64 MiB for each of 16 partitions
/// the shard touched a fresh GiB, and page faults (kernel page clearing) took about 19% of its
/// CPU; a budget of a few hundred MiB per shard is reused while it is still mapped. Partitions
/// opened earlier keep the share they were opened with until the broker restarts.
pub fn cache_share(shard_budget_bytes: usize, partitions: usize) -> usize {
    (shard_budget_bytes / partitions.max(1))
        .clamp(PARTITION_CACHE_BYTES_MIN, PARTITION_CACHE_BYTES_MAX)
}

/// The cache of one partition of `topic`: `share` ([`cache_share`] over the clients'
/// partitions), or the minimum for the broker's internal topics.
pub fn partition_cache_bytes(topic: &str, share: usize) -> usize {
    if offsets::is_internal(topic) {
        PARTITION_CACHE_BYTES_MIN
    } else {
        share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_partitions_take_the_minimum_cache() {
        assert_eq!(
            partition_cache_bytes(offsets::OFFSETS_TOPIC, 16 << 20),
            PARTITION_CACHE_BYTES_MIN
        );
        assert_eq!(partition_cache_bytes("orders", 16 << 20), 16 << 20);
    }

    #[test]
    fn the_cache_budget_is_shared_out_within_bounds() {
        assert_eq!(cache_share(256 << 20, 16), 16 << 20);
        assert_eq!(cache_share(256 << 20, 0), PARTITION_CACHE_BYTES_MAX);
        assert_eq!(cache_share(256 << 20, 1), PARTITION_CACHE_BYTES_MAX);
        assert_eq!(cache_share(256 << 20, 1_000), (256 << 20) / 1_000);
        assert_eq!(cache_share(256 << 20, 100_000), PARTITION_CACHE_BYTES_MIN);
    }
}
