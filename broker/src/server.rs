//! `ringbus serve`: starts one glommio executor per core, each a shard with its own listening
//! socket (SO_REUSEPORT), its own partitions and its own connections; stops them cleanly on
//! SIGINT or SIGTERM. The only place that creates executors.
//!
//! With `metrics_listen`, every shard also binds the metrics address (SO_REUSEPORT) and serves
//! `GET /metrics` (Prometheus text, every shard's counters) beside its accept loop.
//!
//! Start-up order: bind the first listener (resolving port 0), then start every shard; each
//! opens its disk (the O_DIRECT probe), loads the metadata, opens its partitions and reports
//! ready. Only when every shard is ready does the broker print `listening on ADDR`.
//! Shutdown: a signal sets a flag that every shard watches; each stops accepting, then closes
//! its partitions (sync, indexes, clean-shutdown marker). Connections still open are dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};
use storage::LogConfig;
use storage::disk::glommio::{DirectIo, GlommioDisk};

use crate::connection;
use crate::metrics;
use crate::shard::{MESH_CHANNEL_MAX, Shard, ShardMessage};
use crate::topology::{CONTROLLER, ShardId};

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
    /// Requests in flight per connection before the broker stops reading it.
    pub in_flight_max: usize,
    /// Direct I/O policy for the data directory.
    pub direct_io: DirectIo,
    /// Address of the Prometheus `/metrics` endpoint (None: no endpoint; port 0: pick one).
    pub metrics_listen: Option<SocketAddr>,
}

/// The addresses a started broker listens on.
#[derive(Debug, Clone, Copy)]
pub struct BoundAddresses {
    /// The wire protocol.
    pub listen: SocketAddr,
    /// The metrics endpoint, if enabled.
    pub metrics: Option<SocketAddr>,
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
}

/// Parses a core list such as `0-3,6`.
pub fn parse_cores(list: &str) -> Result<Vec<usize>, String> {
    let mut cores = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parse = |s: &str| {
            s.parse::<usize>()
                .map_err(|_| format!("invalid core {s:?} in {list:?}"))
        };
        match part.split_once('-') {
            Some((low, high)) => {
                let (low, high) = (parse(low)?, parse(high)?);
                if low > high {
                    return Err(format!("invalid core range {part:?}"));
                }
                cores.extend(low..=high);
            }
            None => cores.push(parse(part)?),
        }
    }
    cores.sort_unstable();
    cores.dedup();
    if cores.is_empty() {
        return Err("the core list is empty".to_string());
    }
    if cores.len() > usize::from(u16::MAX) {
        return Err("too many cores".to_string());
    }
    Ok(cores)
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
    let signals = block_signals();
    let shard_count = config.cores.len() as u16;
    let (listeners, address) = bind_per_shard(config.listen, shard_count)?;
    let (mut metrics_listeners, metrics_address) = match config.metrics_listen {
        Some(metrics) => {
            let (listeners, bound) = bind_per_shard(metrics, shard_count)?;
            (listeners.into_iter().map(Some).collect(), Some(bound))
        }
        None => (Vec::new(), None),
    };
    metrics_listeners.resize_with(usize::from(shard_count), || None);
    let stop = Arc::new(AtomicBool::new(false));
    let mesh = (shard_count > 1)
        .then(|| MeshBuilder::<ShardMessage, _>::full(usize::from(shard_count), MESH_CHANNEL_MAX));
    let (ready_sender, ready_receiver) = std::sync::mpsc::channel::<Result<(), ServeError>>();
    let mut handles = Vec::new();
    let shard_listeners = listeners.into_iter().zip(metrics_listeners);
    for (index, (core, (listener, metrics_listener))) in
        config.cores.iter().zip(shard_listeners).enumerate()
    {
        let id = ShardId(index as u16);
        let config = config.clone();
        let stop = stop.clone();
        let mesh = mesh.clone();
        let ready_sender = ready_sender.clone();
        let handle = LocalExecutorBuilder::new(Placement::Fixed(*core))
            .name(&format!("ringbus-shard-{index}"))
            // `ulimit -l` may be small (8 MiB on the machines we test on): keep glommio's
            // registered-buffer arena small; DMA buffers fall back to ordinary aligned memory.
            .io_memory(1 << 20)
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
                };
                run_shard(id, shard_count, config, listeners, mesh, stop, ready_sender).await;
            })
            .map_err(|e| ServeError::Executor(e.to_string()))?;
        handles.push(handle);
    }
    drop(ready_sender);
    let mut failure = None;
    for _ in 0..shard_count {
        match ready_receiver.recv() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                failure.get_or_insert(error);
            }
            Err(_) => {
                failure.get_or_insert(ServeError::Executor("a shard exited".to_string()));
            }
        }
    }
    if let Some(error) = failure {
        stop.store(true, Ordering::SeqCst);
        for handle in handles {
            let _ = handle.join();
        }
        return Err(error);
    }
    ready(BoundAddresses {
        listen: address,
        metrics: metrics_address,
    });
    let signal = wait_for_signal(&signals);
    tracing::info!(signal, "shutting down");
    stop.store(true, Ordering::SeqCst);
    for handle in handles {
        let _ = handle.join();
    }
    Ok(())
}

/// How often a shard checks whether shutdown was requested.
const STOP_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The sockets one shard listens on.
struct ShardListeners {
    frames: std::net::TcpListener,
    metrics: Option<std::net::TcpListener>,
}

async fn run_shard(
    id: ShardId,
    shard_count: u16,
    config: ServeConfig,
    listeners: ShardListeners,
    mesh: Option<MeshBuilder<ShardMessage, glommio::channels::channel_mesh::Full>>,
    stop: Arc<AtomicBool>,
    ready: std::sync::mpsc::Sender<Result<(), ServeError>>,
) {
    let fail = |reason: String| ServeError::Shard {
        shard: id.0,
        reason,
    };
    let disk = match GlommioDisk::open_dir(&config.data_dir, config.direct_io).await {
        Ok(disk) => disk,
        Err(error) => {
            let _ = ready.send(Err(fail(error.to_string())));
            return;
        }
    };
    let mesh = match mesh {
        Some(builder) => match builder.join().await {
            Ok(joined) => Some(joined),
            Err(error) => {
                let _ = ready.send(Err(fail(format!("joining the shard mesh failed: {error}"))));
                return;
            }
        },
        None => None,
    };
    let shard = match Shard::start(
        id,
        shard_count,
        config.data_dir.clone(),
        disk,
        config.log.clone(),
        config.cache_bytes_per_shard,
        mesh,
    )
    .await
    {
        Ok(shard) => shard,
        Err(reason) => {
            let _ = ready.send(Err(fail(reason)));
            return;
        }
    };
    if id == CONTROLLER
        && let Err(error) = shard.ensure_internal_topics().await
    {
        let _ = ready.send(Err(fail(format!(
            "creating the internal topics failed: {}",
            error.message
        ))));
        return;
    }
    let listener = match net::Listener::from_std(listeners.frames) {
        Ok(listener) => listener,
        Err(error) => {
            let _ = ready.send(Err(fail(error.to_string())));
            return;
        }
    };
    let metrics_listener = match listeners.metrics.map(net::Listener::from_std).transpose() {
        Ok(listener) => listener,
        Err(error) => {
            let _ = ready.send(Err(fail(error.to_string())));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let connections = Rc::new(std::cell::Cell::new(0usize));
    let stopped = async {
        while !stop.load(Ordering::SeqCst) {
            glommio::timer::sleep(STOP_POLL_INTERVAL).await;
        }
    };
    let accept_loop = async {
        loop {
            match listener.accept(config.limits).await {
                Ok(connection) => {
                    if connections.get() >= config.connections_max {
                        tracing::warn!(shard = %id, peer = %connection.peer(),
                            limit = config.connections_max, "connection limit reached: closing");
                        continue;
                    }
                    connections.set(connections.get() + 1);
                    let (shard, connections) = (shard.clone(), connections.clone());
                    let in_flight_max = config.in_flight_max;
                    glommio::spawn_local(async move {
                        connection::serve(shard, connection, in_flight_max).await;
                        connections.set(connections.get() - 1);
                    })
                    .detach();
                }
                Err(error) => {
                    // Running out of descriptors must not spin: back off a little.
                    tracing::warn!(shard = %id, %error, "accept failed");
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    };
    let metrics_server = async {
        match metrics_listener {
            Some(listener) => {
                let shard = shard.clone();
                net::http::serve(listener, metrics::METRICS_PATH, move || {
                    let shard = shard.clone();
                    async move { metrics::gather(&shard).await }
                })
                .await;
            }
            None => std::future::pending().await,
        }
    };
    let serving = futures_lite::future::or(accept_loop, metrics_server);
    futures_lite::future::or(stopped, serving).await;
    shard.shutdown().await;
    tracing::info!(shard = %id, "stopped");
}

#[cfg(test)]
mod tests {
    use super::parse_cores;

    #[test]
    fn core_lists_parse_like_taskset() {
        assert_eq!(parse_cores("0-3,6"), Ok(vec![0, 1, 2, 3, 6]));
        assert_eq!(parse_cores("1,1,0"), Ok(vec![0, 1]));
        assert!(parse_cores("").is_err());
        assert!(parse_cores("3-1").is_err());
        assert!(parse_cores("a").is_err());
    }
}
