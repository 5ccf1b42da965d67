//! `ringbus serve`: starts one glommio executor per core, each a shard with its own listening
//! socket (SO_REUSEPORT), its own partitions and its own connections; stops them cleanly on
//! SIGINT or SIGTERM. The only place that creates executors.
//!
//! With `metrics_listen`, every shard also binds the metrics address (SO_REUSEPORT) and serves
//! `GET /metrics` (Prometheus text, every shard's counters) beside its accept loop.
//! With `kafka`, every shard also binds the Kafka listener's address and accepts Kafka clients
//! ([`crate::kafka`]) in an accept loop of its own, under the same connection limits: the
//! shard's `connections_max`, and the per-IP limit shared by every shard ([`crate::per_ip`]).
//!
//! Start-up order: lock the data directory (one broker per directory), bind the first listener
//! (resolving port 0), then start every shard; each opens its disk (the O_DIRECT probe), joins
//! the mesh, loads the metadata, opens its partitions and reports ready. Only when every shard
//! is ready does any accept a connection (a `go` event each) and the broker print `listening
//! on ADDR`. Signals are waited for from the start, and a start-up races its shard's stop
//! event: Ctrl-C or one shard's failure ends every start-up still under way.
//! Shutdown: a signal fires one stop event per shard ([`net::stop`]), which wakes the shard
//! once; it cancels its accept loops, then closes its partitions (sync, indexes, clean-shutdown
//! marker). Connections still open are dropped. Nothing polls: see [`serve_until`] for why a
//! pending accept must live in a task of its own.
//!
//! Fail-stop: once `serve` runs, a panic on any thread ends the process with exit code 101
//! after logging which thread panicked, never leaving a half-dead broker on its port.

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};
use net::stop::{StopReceiver, StopSender};
use storage::LogConfig;
use storage::disk::glommio::{DirectIo, GlommioDisk};

use crate::connection;
use crate::kafka::{self, Advertised, KafkaConfig, KafkaSettings};
use crate::metrics::{self, ConnectionRefusal};
use crate::per_ip::{PerIpLimit, PerIpSlot};
use crate::shard::{MESH_CHANNEL_MAX, Shard, ShardConfig, ShardMessage};
use crate::topology::{CONTROLLER, ShardId};

/// Bytes of glommio's registered-buffer arena per shard (see where the executors are built).
pub const IO_MEMORY_BYTES: usize = 32 << 20;

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where partitions and metadata live.
    pub data_dir: PathBuf,
    /// Address to listen on (port 0: pick one).
    pub listen: SocketAddr,
    /// Cores to run shards on, one shard per core.
    pub cores: Vec<usize>,
    /// Log defaults for new partitions.
    pub log: LogConfig,
    /// Memory each shard gives its partitions' recent-batch caches, shared out equally over
    /// the partitions it owns (see [`crate::shard::cache_share`]).
    pub cache_bytes_per_shard: usize,
    /// Frame and idle limits per connection.
    pub limits: net::Limits,
    /// Connections each shard accepts at once; more are closed on accept.
    pub connections_max: usize,
    /// Connections one IP address may hold at once, over every shard and both client
    /// listeners; more are closed on accept ([`crate::per_ip`]). None: no limit.
    pub connections_per_ip_max: Option<NonZeroU32>,
    /// Requests in flight per connection before the broker stops reading it.
    pub in_flight_max: usize,
    /// Direct I/O policy for the data directory.
    pub direct_io: DirectIo,
    /// Address of the Prometheus `/metrics` endpoint (None: no endpoint; port 0: pick one).
    pub metrics_listen: Option<SocketAddr>,
    /// The partitions' and group coordinator's tick
    /// ([`crate::shard::TICK_INTERVAL_DEFAULT`]; shorter only to accelerate soak tests).
    pub tick_interval: Duration,
    /// How long committed offsets of a consumer group without members are kept
    /// (`--offsets-retention-ms`; None: for ever). See [`crate::group::retention`].
    pub offsets_retention: Option<Duration>,
    /// The Kafka wire-protocol listener (None: none).
    pub kafka: Option<KafkaConfig>,
}

/// The addresses a started broker listens on.
#[derive(Debug, Clone, Copy)]
pub struct BoundAddresses {
    /// The wire protocol.
    pub listen: SocketAddr,
    /// The metrics endpoint, if enabled.
    pub metrics: Option<SocketAddr>,
    /// The Kafka listener, if enabled.
    pub kafka: Option<SocketAddr>,
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Binding the listener failed.
    #[error(transparent)]
    Bind(#[from] net::NetError),
    /// A shard failed to start.
    #[error("shard {shard} failed to start: {reason}")]
    Shard {
        /// Which.
        shard: u16,
        /// Why.
        reason: String,
    },
    /// An executor could not be created.
    #[error("executor: {0}")]
    Executor(String),
    /// Another broker holds the data directory (or its lock file could not be taken).
    #[error("data directory {path}: {reason}")]
    DataDirLocked {
        /// The lock file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Name of the lock file in the data directory.
const LOCK_FILE: &str = ".lock";

/// Takes an exclusive lock on the data directory for the life of the returned file: a second
/// broker on the same directory (SO_REUSEPORT would even let it share the port) is refused
/// instead of writing the same segments. The kernel drops the lock when the process ends,
/// however it ends.
fn lock_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File, ServeError> {
    let path = data_dir.join(LOCK_FILE);
    let failed = |reason: String| ServeError::DataDirLocked {
        path: path.clone(),
        reason,
    };
    std::fs::create_dir_all(data_dir).map_err(|error| failed(error.to_string()))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| failed(error.to_string()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(failed("another broker is using it".to_string()))
        }
        Err(std::fs::TryLockError::Error(error)) => Err(failed(error.to_string())),
    }
}

/// Blocks SIGINT and SIGTERM in the calling thread (and the threads it spawns afterwards), so
/// that [`wait_for_signal`] receives them synchronously instead of the default handler killing
/// the process.
fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it before use, and
    // pthread_sigmask only reads it. No memory is shared with other threads.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// For client commands that must finish their work on Ctrl-C or SIGTERM (a group consumer
/// commits and leaves): blocks both signals in the calling thread and returns a flag that a
/// helper thread sets when one arrives. Call it before starting any other thread, so that
/// every thread inherits the blocked mask and the signal reaches only the helper.
pub fn stop_flag_on_signal() -> Arc<AtomicBool> {
    let signals = block_signals();
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    std::thread::Builder::new()
        .name("ringbus-signals".to_string())
        .spawn(move || {
            wait_for_signal(&signals);
            set.store(true, Ordering::SeqCst);
        })
        .expect("spawning the signal thread");
    flag
}

fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut signal: libc::c_int = 0;
    // SAFETY: `set` was initialised by block_signals and the signals in it are blocked in this
    // thread, as sigwait requires; `signal` is a valid out-pointer.
    unsafe { libc::sigwait(set, &mut signal) };
    signal
}

/// Exit code of a broker that stopped because a thread panicked (Rust's own panic exit code).
pub const PANIC_EXIT_CODE: i32 = 101;

/// Makes any panic in the process end it at once with [`PANIC_EXIT_CODE`] (fail-stop).
///
/// Why: a panicking shard thread would otherwise die alone (or, inside glommio's waker calls,
/// be caught and logged) while the other threads hold the port and the data directory: a
/// half-dead broker that accepts connections nobody serves and ignores SIGTERM. Stopping the
/// whole process lets a supervisor restart it, and recovery is the crash path every restart
/// already takes. The default hook still prints the panic message and location first.
fn fail_stop_on_panic() {
    use std::io::Write;
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        // Written directly, not through tracing: it must show even where no subscriber is set.
        // Not eprintln!: that panics on a closed stderr, and a panic in this hook aborts.
        let _ = writeln!(
            std::io::stderr(),
            "ringbus: thread {thread} panicked: stopping the process (fail-stop)"
        );
        // SAFETY: `_exit` takes no pointers and only ends the process. Skipping atexit
        // handlers and destructors is the point: other threads may be mid-operation, and no
        // cleanup may run on state a panic left inconsistent. Durable data needs none.
        unsafe { libc::_exit(PANIC_EXIT_CODE) };
    }));
}

/// Binds `address` once per shard with SO_REUSEPORT (port 0: the first bind picks the port the
/// others reuse); returns the listeners and the bound address.
fn bind_per_shard(
    address: SocketAddr,
    shard_count: u16,
) -> Result<(Vec<std::net::TcpListener>, SocketAddr), ServeError> {
    let first = net::bind_reuseport(address)?;
    let bound = first.local_addr().map_err(|e| net::NetError {
        operation: "local address",
        address: address.to_string(),
        source: e,
    })?;
    let mut listeners = vec![first];
    for _ in 1..shard_count {
        listeners.push(net::bind_reuseport(bound)?);
    }
    Ok((listeners, bound))
}

/// Runs the broker until SIGINT/SIGTERM. `ready` is called with the bound addresses once every
/// shard accepts connections.
pub fn serve(config: ServeConfig, ready: impl FnOnce(BoundAddresses)) -> Result<(), ServeError> {
    fail_stop_on_panic();
    let _data_dir_lock = lock_data_dir(&config.data_dir)?;
    let signals = block_signals();
    let shard_count = u16::try_from(config.cores.len())
        .ok()
        .filter(|count| *count > 0)
        .ok_or_else(|| {
            ServeError::Executor(format!(
                "{} cores: one to {} shards",
                config.cores.len(),
                u16::MAX
            ))
        })?;
    let (listeners, address) = bind_per_shard(config.listen, shard_count)?;
    let (mut metrics_listeners, metrics_address) = match config.metrics_listen {
        Some(metrics) => {
            let (listeners, bound) = bind_per_shard(metrics, shard_count)?;
            (listeners.into_iter().map(Some).collect(), Some(bound))
        }
        None => (Vec::new(), None),
    };
    metrics_listeners.resize_with(usize::from(shard_count), || None);
    let (mut kafka_listeners, kafka_address) = match &config.kafka {
        Some(kafka) => {
            let (listeners, bound) = bind_per_shard(kafka.listen, shard_count)?;
            (listeners.into_iter().map(Some).collect(), Some(bound))
        }
        None => (Vec::new(), None),
    };
    kafka_listeners.resize_with(usize::from(shard_count), || None);
    // Metadata advertises the bound address unless told otherwise (port 0 resolved).
    let kafka_settings = config
        .kafka
        .as_ref()
        .zip(kafka_address)
        .map(|(kafka, bound)| KafkaSettings {
            advertised: kafka.advertise.clone().unwrap_or(Advertised {
                host: bound.ip().to_string(),
                port: bound.port(),
            }),
            auto_create_partitions: kafka.auto_create_partitions,
        });
    // Two one-shot events per shard: `go` once every shard is ready (none serves before all
    // can: a partition on a shard still recovering would answer UnknownPartition), and `stop`
    // on a signal or a failed start-up, which also ends a start-up still under way.
    let mut stop_receivers = Vec::with_capacity(usize::from(shard_count));
    let mut go_receivers = Vec::with_capacity(usize::from(shard_count));
    let mut stop_senders = Vec::with_capacity(usize::from(shard_count));
    let mut go_senders = Vec::with_capacity(usize::from(shard_count));
    for _ in 0..shard_count {
        let (sender, receiver) = net::stop::pair()?;
        stop_senders.push(sender);
        stop_receivers.push(receiver);
        let (sender, receiver) = net::stop::pair()?;
        go_senders.push(sender);
        go_receivers.push(receiver);
    }
    let stops = Stops::new(stop_senders);
    // One count for every shard: see crate::per_ip for why it is not split per shard.
    let per_ip = config.connections_per_ip_max.map(PerIpLimit::new);
    // Signals are waited for from the start: Ctrl-C during a long recovery stops it.
    let signal_waiter = {
        let stops = stops.clone();
        std::thread::Builder::new()
            .name("ringbus-signals".to_string())
            .spawn(move || {
                let signal = wait_for_signal(&signals);
                tracing::info!(signal, "shutting down");
                stops.fire();
            })
            .map_err(|e| ServeError::Executor(format!("the signal thread: {e}")))?
    };
    let mesh = (shard_count > 1)
        .then(|| MeshBuilder::<ShardMessage, _>::full(usize::from(shard_count), MESH_CHANNEL_MAX));
    let (ready_sender, ready_receiver) = std::sync::mpsc::channel::<Result<(), ServeError>>();
    let mut handles = Vec::new();
    let shard_listeners = listeners
        .into_iter()
        .zip(metrics_listeners.into_iter().zip(kafka_listeners));
    let events = stop_receivers.into_iter().zip(go_receivers);
    for (index, ((core, (listener, (metrics_listener, kafka_listener))), (stop, go))) in config
        .cores
        .iter()
        .zip(shard_listeners)
        .zip(events)
        .enumerate()
    {
        let id = ShardId(index as u16);
        let config = config.clone();
        let mesh = mesh.clone();
        let ready_sender = ready_sender.clone();
        let kafka_settings = kafka_settings.clone();
        let per_ip = per_ip.clone();
        let spawned = LocalExecutorBuilder::new(Placement::Fixed(*core))
            .name(&format!("ringbus-shard-{index}"))
            // glommio's registered-buffer arena, on huge pages (vendor/glommio/RINGBUS-PATCH.md):
            // the partitions' write chunks (1 MiB) and disk reads are carved from it, so the
            // virtio disk gets one memory segment per 2 MiB instead of one per 4 KiB. Beyond it
            // DMA buffers come from ordinary aligned memory. Registering it needs `ulimit -l`
            // above it or CAP_IPC_LOCK; without, glommio logs a warning and uses it unregistered.
            .io_memory(IO_MEMORY_BYTES)
            .spawn(move || async move {
                // Every event on this thread belongs to this shard. The span stays entered
                // for the executor's life on purpose: a glommio executor is one pinned thread,
                // its tasks never migrate, so the usual rule against holding a span across
                // awaits (tasks moving between threads) does not apply, and the tasks this
                // shard spawns (connections, partition actors) inherit the span for free.
                let _shard_span = tracing::info_span!("shard", id = id.0).entered();
                let listeners = ShardListeners {
                    frames: listener,
                    metrics: metrics_listener,
                    kafka: kafka_listener.zip(kafka_settings),
                    per_ip,
                };
                let events = ShardEvents { stop, go };
                run_shard(
                    id,
                    shard_count,
                    config,
                    listeners,
                    mesh,
                    events,
                    ready_sender,
                )
                .await;
            });
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(error) => {
                // The shards already started wait in the mesh for this one: stop them.
                stops.fire();
                for handle in handles {
                    let _ = handle.join();
                }
                return Err(ServeError::Executor(error.to_string()));
            }
        }
    }
    drop(ready_sender);
    let mut failure = None;
    for _ in 0..shard_count {
        let result = ready_receiver
            .recv()
            .unwrap_or_else(|_| Err(ServeError::Executor("a shard exited".to_string())));
        if let Err(error) = result {
            // The first failure stops the others, even those still starting (or stuck
            // waiting in the mesh for the shard that failed).
            stops.fire();
            failure.get_or_insert(error);
        }
    }
    if let Some(error) = failure {
        for handle in handles {
            let _ = handle.join();
        }
        return Err(error);
    }
    go_senders.into_iter().for_each(StopSender::fire);
    ready(BoundAddresses {
        listen: address,
        metrics: metrics_address,
        kafka: kafka_address,
    });
    let _ = signal_waiter.join();
    for handle in handles {
        let _ = handle.join();
    }
    Ok(())
}

/// Every shard's stop event, fired once by whoever decides first (the signal thread, or the
/// main thread on a failed start-up).
#[derive(Clone)]
struct Stops(Arc<std::sync::Mutex<Vec<StopSender>>>);

impl Stops {
    fn new(senders: Vec<StopSender>) -> Stops {
        Stops(Arc::new(std::sync::Mutex::new(senders)))
    }

    /// Fires every stop event; later calls find none left.
    fn fire(&self) {
        let senders = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        senders.into_iter().for_each(StopSender::fire);
    }
}

/// The events a shard waits for: start serving (`go`), and `stop`.
struct ShardEvents {
    stop: StopReceiver,
    go: StopReceiver,
}

/// The sockets one shard listens on, and the per-IP count its client listeners share with
/// every other shard's.
struct ShardListeners {
    frames: std::net::TcpListener,
    metrics: Option<std::net::TcpListener>,
    kafka: Option<(std::net::TcpListener, KafkaSettings)>,
    per_ip: Option<Arc<PerIpLimit>>,
}

/// The sockets one shard listens on, adopted by its executor.
struct Adopted {
    frames: net::Listener,
    metrics: Option<net::Listener>,
    kafka: Option<(net::Listener, KafkaSettings)>,
}

async fn run_shard(
    id: ShardId,
    shard_count: u16,
    config: ServeConfig,
    listeners: ShardListeners,
    mesh: Option<MeshBuilder<ShardMessage, glommio::channels::channel_mesh::Full>>,
    events: ShardEvents,
    ready: std::sync::mpsc::Sender<Result<(), ServeError>>,
) {
    let (mut stop, mut go) = (events.stop.adopt(), events.go.adopt());
    let per_ip = listeners.per_ip.clone();
    // Start-up raced against the stop event: a signal, or another shard failing, ends it
    // (this shard might otherwise wait forever in the mesh for a shard that is gone). The
    // stop is a socket read, which keeps one waker however often the race re-polls it.
    let starting = start_shard(id, shard_count, &config, listeners, mesh);
    let started = futures_lite::future::or(async { Some(starting.await) }, async {
        stop.wait().await;
        None
    })
    .await;
    let (shard, adopted) = match started {
        Some(Ok(started)) => started,
        Some(Err(error)) => {
            let _ = ready.send(Err(error));
            return;
        }
        None => {
            let reason = "stopped during start-up".to_string();
            let _ = ready.send(Err(ServeError::Shard {
                shard: id.0,
                reason,
            }));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let go_first = futures_lite::future::or(
        async {
            go.wait().await;
            true
        },
        async {
            stop.wait().await;
            false
        },
    )
    .await;
    if go_first {
        let mut serving: Vec<Pin<Box<dyn Future<Output = ()>>>> = Vec::new();
        // One count for both protocols: `connections_max` bounds the shard's connections.
        let connections = Rc::new(std::cell::Cell::new(0usize));
        let starter = ConnectionStarter {
            shard: shard.clone(),
            connections,
            connections_max: config.connections_max,
            per_ip,
            in_flight_max: config.in_flight_max,
        };
        serving.push(Box::pin(accept_loop(
            id,
            adopted.frames,
            config.limits,
            starter.clone().ringbus(),
        )));
        if let Some((listener, settings)) = adopted.kafka {
            serving.push(Box::pin(accept_loop(
                id,
                listener,
                config.limits,
                starter.kafka(Rc::new(settings)),
            )));
        }
        if let Some(listener) = adopted.metrics {
            let shard = shard.clone();
            serving.push(Box::pin(net::http::serve(
                listener,
                metrics::METRICS_PATH,
                move || {
                    let shard = shard.clone();
                    async move { shard.metrics_text().await }
                },
            )));
        }
        serve_until(stop.wait(), serving).await;
    }
    shard.shutdown().await;
    tracing::info!(shard = %id, "stopped");
}

/// Opens the shard: its disk, the mesh, its partitions (recovery), the internal topics (on
/// the controller) and its listeners. Connections queue in the kernel meanwhile.
async fn start_shard(
    id: ShardId,
    shard_count: u16,
    config: &ServeConfig,
    listeners: ShardListeners,
    mesh: Option<MeshBuilder<ShardMessage, glommio::channels::channel_mesh::Full>>,
) -> Result<(Rc<Shard>, Adopted), ServeError> {
    let fail = |reason: String| ServeError::Shard {
        shard: id.0,
        reason,
    };
    let disk = GlommioDisk::open_dir(&config.data_dir, config.direct_io)
        .await
        .map_err(|error| fail(error.to_string()))?;
    let mesh = match mesh {
        Some(builder) => Some(
            builder
                .join()
                .await
                .map_err(|error| fail(format!("joining the shard mesh failed: {error}")))?,
        ),
        None => None,
    };
    let shard_config = ShardConfig {
        data_dir: config.data_dir.clone(),
        log_defaults: config.log.clone(),
        cache_bytes: config.cache_bytes_per_shard,
        tick_interval: config.tick_interval,
        offsets_retention: config.offsets_retention,
        frame_bytes_max: config.limits.frame_bytes_max,
    };
    let shard = Shard::start(id, shard_count, shard_config, disk, mesh)
        .await
        .map_err(fail)?;
    if id == CONTROLLER {
        shard
            .ensure_internal_topics()
            .await
            .map_err(|error| fail(format!("creating the internal topics failed: {error}")))?;
    }
    let listener =
        net::Listener::from_std(listeners.frames).map_err(|error| fail(error.to_string()))?;
    let metrics_listener = listeners
        .metrics
        .map(net::Listener::from_std)
        .transpose()
        .map_err(|error| fail(error.to_string()))?;
    let kafka_listener = match listeners.kafka {
        Some((listener, settings)) => Some((
            net::Listener::from_std(listener).map_err(|error| fail(error.to_string()))?,
            settings,
        )),
        None => None,
    };
    let adopted = Adopted {
        frames: listener,
        metrics: metrics_listener,
        kafka: kafka_listener,
    };
    Ok((shard, adopted))
}

/// Runs each of `serving` as a task of its own until `stop` completes, then cancels them.
///
/// Why separate tasks: glommio 0.9 keeps one waker clone per poll of a pending accept (and of
/// DMA file I/O and shared channels) and panics when a task holds 32,767. A future raced
/// against `stop` in one task would be re-polled every time anything else wakes that task; in
/// a task of its own, a pending accept is polled only when its own completion wakes it. The
/// task awaiting `stop` must therefore be woken by nothing but the stop event itself.
async fn serve_until(
    stop: impl Future<Output = ()>,
    serving: Vec<Pin<Box<dyn Future<Output = ()>>>>,
) {
    let tasks: Vec<glommio::Task<()>> = serving.into_iter().map(glommio::spawn_local).collect();
    stop.await;
    for task in tasks {
        // Dropping the pending accept inside cancels it; nothing else is lost.
        task.cancel().await;
    }
}

/// Accepts connections forever, handing each to `start`. Runs as a task of its own (see
/// [`serve_until`]): it is woken only when an accept completes.
async fn accept_loop(
    id: ShardId,
    listener: net::Listener,
    limits: net::Limits,
    mut start: impl FnMut(net::Connection),
) {
    loop {
        match listener.accept(limits).await {
            Ok(connection) => start(connection),
            Err(error) => {
                // Running out of descriptors must not spin: back off a little.
                tracing::warn!(shard = %id, %error, "accept failed");
                glommio::timer::sleep(ACCEPT_FAILED_BACKOFF).await;
            }
        }
    }
}

/// How long the accept loop waits after a failed accept (out of descriptors) before the next.
const ACCEPT_FAILED_BACKOFF: Duration = Duration::from_millis(10);

/// What the accept loops do with a new connection: serve it in a task of its own, unless the
/// shard already serves `connections_max` (of both protocols together) or its address already
/// holds `connections_per_ip_max` (over every shard). A refused connection is closed at once
/// (dropped: nothing was read from it) and counted by reason in the shard's metrics.
#[derive(Clone)]
struct ConnectionStarter {
    shard: Rc<Shard>,
    connections: Rc<std::cell::Cell<usize>>,
    connections_max: usize,
    per_ip: Option<Arc<PerIpLimit>>,
    in_flight_max: usize,
}

/// An admitted connection's places in the shard's count and its address's: both are given
/// back when it is dropped, at the end of the connection's task.
struct Admitted {
    connections: Rc<std::cell::Cell<usize>>,
    _per_ip: Option<PerIpSlot>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let open = self.connections.get();
        assert!(open > 0, "a shard's connection count went below zero");
        self.connections.set(open - 1);
    }
}

impl ConnectionStarter {
    /// Takes a connection slot, or refuses (None) at either limit.
    fn admit(&self, connection: &net::Connection) -> Option<Admitted> {
        if self.connections.get() >= self.connections_max {
            tracing::warn!(shard = %self.shard.id, peer = %connection.peer(),
                limit = self.connections_max, "connection limit reached: closing");
            self.shard
                .metrics
                .connection_refused(ConnectionRefusal::ConnectionsMax);
            return None;
        }
        // Logged inside, at most once a second: one host can refuse thousands a second.
        let per_ip = match self
            .per_ip
            .as_ref()
            .map(|limit| limit.admit(connection.peer().ip()))
        {
            Some(Err(_refused)) => {
                self.shard
                    .metrics
                    .connection_refused(ConnectionRefusal::PerIp);
                return None;
            }
            Some(Ok(slot)) => Some(slot),
            None => None,
        };
        self.connections.set(self.connections.get() + 1);
        Some(Admitted {
            connections: self.connections.clone(),
            _per_ip: per_ip,
        })
    }

    /// Starts ringbus-wire connections.
    fn ringbus(self) -> impl FnMut(net::Connection) {
        move |connection| {
            let Some(admitted) = self.admit(&connection) else {
                return;
            };
            let shard = self.shard.clone();
            let in_flight_max = self.in_flight_max;
            glommio::spawn_local(async move {
                connection::serve(shard, connection, in_flight_max).await;
                drop(admitted);
            })
            .detach();
        }
    }

    /// Starts Kafka-protocol connections.
    fn kafka(self, settings: Rc<KafkaSettings>) -> impl FnMut(net::Connection) {
        move |connection| {
            let Some(admitted) = self.admit(&connection) else {
                return;
            };
            let shard = self.shard.clone();
            let (settings, in_flight_max) = (settings.clone(), self.in_flight_max);
            glommio::spawn_local(async move {
                kafka::connection::serve(shard, settings, connection, in_flight_max).await;
                drop(admitted);
            })
            .detach();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::future::Future;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::time::Duration;

    use futures_lite::future::yield_now;

    use super::{accept_loop, serve_until};
    use crate::topology::ShardId;

    /// More wakes than glommio 0.9's i16 waker count holds (32,767).
    const WAKES: u32 = 40_000;

    /// Regression for the broker that wedged 27 minutes after its last new connection: the
    /// shard's stop future used to poll a flag every 50 ms in the same task as the pending
    /// accept, and every poll leaked one waker into the accept until glommio panicked at
    /// 32,767. Here the stop future wakes its task 40,000 times with no connection arriving;
    /// then a connection must still be accepted, and the stop must end the loops. With the
    /// accept raced in the stop's task (`future::or`), this panics.
    #[test]
    fn the_accept_loop_survives_wakes_of_the_task_awaiting_stop() {
        let handle = glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let bound =
                    net::bind_reuseport("127.0.0.1:0".parse().expect("address")).expect("bind");
                let address = bound.local_addr().expect("address");
                let listener = net::Listener::from_std(bound).expect("listener");
                let accepted = Rc::new(Cell::new(0u32));
                let counter = accepted.clone();
                let on_connection = move |_| counter.set(counter.get() + 1);
                let stop = async move {
                    for _ in 0..WAKES {
                        yield_now().await;
                    }
                    let _client = net::Connection::connect(
                        address,
                        Duration::from_secs(5),
                        net::Limits::default(),
                    )
                    .await
                    .expect("connect after the wakes");
                    while accepted.get() == 0 {
                        glommio::timer::sleep(Duration::from_millis(1)).await;
                    }
                    accepted.get()
                };
                let accepting =
                    accept_loop(ShardId(0), listener, net::Limits::default(), on_connection);
                let serving: Vec<Pin<Box<dyn Future<Output = ()>>>> = vec![Box::pin(accepting)];
                let result = Rc::new(Cell::new(0));
                let out = result.clone();
                serve_until(async move { out.set(stop.await) }, serving).await;
                result.get()
            })
            .expect("executor");
        assert_eq!(handle.join().expect("the shard thread panicked"), 1);
    }

    /// The child side of the fail-stop test: set when the test re-runs itself.
    const FAIL_STOP_CHILD: &str = "RINGBUS_FAIL_STOP_CHILD";

    /// A panic on a shard thread must end the whole process with exit code 101 and a line
    /// naming the thread, not leave the other threads serving. The test runs itself again as a
    /// child process (the hook ends the process it runs in), which installs the broker's hook
    /// and panics on a glommio executor thread.
    #[test]
    fn a_panicking_shard_thread_ends_the_process() {
        let name = "server::tests::a_panicking_shard_thread_ends_the_process";
        if std::env::var_os(FAIL_STOP_CHILD).is_some() {
            super::fail_stop_on_panic();
            let handle = glommio::LocalExecutorBuilder::default()
                .name("ringbus-shard-7")
                .spawn(|| async { panic!("a shard invariant broke") })
                .expect("executor");
            let _ = handle.join();
            // Not reached when the hook works: the parent then sees exit code 0.
            std::process::exit(0);
        }
        let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(FAIL_STOP_CHILD, "1")
            .output()
            .expect("running the child");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(super::PANIC_EXIT_CODE),
            "{stderr}"
        );
        assert!(stderr.contains("a shard invariant broke"), "{stderr}");
        assert!(
            stderr.contains("thread ringbus-shard-7") && stderr.contains("fail-stop"),
            "{stderr}"
        );
    }
}
