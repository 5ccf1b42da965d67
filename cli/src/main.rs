//! The `ringbus` binary: `ringbus serve` runs the broker; the client subcommands (`topic`,
//! `produce`, `consume`, `group`) talk to one over the `client` crate.
//!
//! Every client subcommand takes `--broker HOST:PORT` (default 127.0.0.1:9292, or the
//! `RINGBUS_BROKER` environment variable), runs on one unpinned glommio executor, prints its
//! results to stdout and its errors to stderr, and exits non-zero on failure. The output
//! formats are a contract scripts and tests rely on; each module documents its own.

mod common;
mod consume;
mod cores;
mod group;
mod loadgen;
mod produce;
mod topic;
mod tune;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once at its first allocation (its `malloc_conf` global, which
/// tikv-jemalloc-sys names `_rjem_malloc_conf`; `_RJEM_MALLOC_CONF` in the environment is
/// parsed after it and adds to it). cli/tests/allocator.rs checks that jemalloc sees it.
///
/// `oversize_threshold:0`: by default jemalloc purges a freed large extent at once (gives its
/// pages back to the kernel) when it is, or merges into, 8 MiB or more, and serves requests
/// that large from a dedicated arena that does the same. A connection reserves a frame body's
/// buffer at once (up to 8 MiB, `net::FrameReader`), so at 1 MiB batches every produce
/// request's buffer was fresh pages: a page fault and the kernel's zeroing per 4 KiB,
/// 60,000-90,000 faults a second, and 0.71 of the broker's core where it now spends 0.62
/// (bench-results/perf-log.md, 2026-12-07 afternoon). With the threshold off, freed large
/// extents are reused like any other and purged by the normal decay (10 s). jemalloc purges
/// only while an arena is in use (no background thread: an idle broker runs nothing), so a
/// shard that falls idle after a burst keeps up to its peak of freed buffers resident until
/// it allocates again.
// SAFETY: jemalloc declares `malloc_conf` as a weak `const char *` that it reads, never writes,
// during its initialisation; this strong definition has that layout (`Option<&c_char>` is a
// nullable pointer) and points at a NUL-terminated literal that lives as long as the program.
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_CONF: Option<&std::ffi::c_char> =
    // SAFETY: `as_ptr` points at the literal's first byte, valid for the program's life.
    Some(unsafe { &*c"oversize_threshold:0".as_ptr() });

/// ringbus: a Kafka-style event-streaming broker, shard-per-core on io_uring.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker.
    ///
    /// Example: ringbus serve --data-dir /var/lib/ringbus --listen 0.0.0.0:9292 --cores 0-3
    Serve(ServeArgs),
    /// Create, list, describe and delete topics.
    ///
    /// Example: ringbus topic create events --partitions 3
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Produce each line of stdin as one record.
    ///
    /// With --key-separator S a line is KEY S VALUE, split at the first S, and the key picks
    /// the partition (murmur2, as Kafka does). Exits 0 once every record is acknowledged at
    /// --acks; otherwise prints the failures to stderr and exits non-zero.
    ///
    /// Example: printf 'user1:hello\nuser2:world\n' | ringbus produce --topic events --key-separator :
    Produce(produce::ProduceArgs),
    /// Print records to stdout, one per line.
    ///
    /// Line format: [PARTITION<tab>][OFFSET<tab>][KEY<separator>]VALUE, the optional parts with
    /// --print-partition, --print-offset and --print-key. Starts at the latest offset unless
    /// --from-beginning or --offset N; stops after --max-messages records or after --timeout-ms
    /// without a new record (exit 0 either way), otherwise runs until killed.
    ///
    /// With --group G it is a member of consumer group G: it gets a share of the partitions,
    /// resumes from the group's committed offsets, commits what it printed, and on exit (also
    /// on Ctrl-C or SIGTERM) commits once more and leaves the group.
    ///
    /// Example: ringbus consume --topic events --from-beginning --max-messages 10 --print-offset
    /// Example: ringbus consume --topic events --group billing
    Consume(consume::ConsumeArgs),
    /// Consumer groups: list them, describe their offsets and lag, reset their offsets.
    ///
    /// Example: ringbus group describe billing
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Generate load: pinned producers and consumers, latency histograms, message checks.
    ///
    /// Example: ringbus loadgen --topic bench --create-topic --partitions 16 --duration 20 --cores 1 --json out.json
    Loadgen(loadgen::LoadgenArgs),
    /// Check the disk, NIC, CPU and memory settings that matter to the broker; apply fixes.
    ///
    /// `check` prints each setting with its current and recommended value, status and fix,
    /// and exits 0 when nothing is off, 1 when something is; `apply` (root) makes the runtime
    /// fixes. tuning.md explains every setting.
    ///
    /// Example: ringbus tune check --data-dir /var/lib/ringbus --iface eth0 --cores 0-3
    #[command(subcommand)]
    Tune(tune::TuneCommand),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Directory for partitions and metadata (must support O_DIRECT: ext4, XFS; not tmpfs).
    #[arg(long, default_value = "./ringbus-data")]
    data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port; the chosen one is printed).
    #[arg(long, default_value = "127.0.0.1:9292")]
    listen: SocketAddr,
    /// Cores to run shards on, one shard per core, e.g. 0-3,6 (default: every online core).
    #[arg(long)]
    cores: Option<String>,
    /// Fall back to buffered I/O when the data directory refuses O_DIRECT (slower, and the
    /// page cache then sits between the log and the disk).
    #[arg(long)]
    allow_buffered_io: bool,
    /// Largest request or response frame, in bytes.
    #[arg(long, default_value_t = schema::wire::FRAME_BYTES_MAX_DEFAULT)]
    frame_bytes_max: u32,
    /// Connections each shard accepts at once.
    #[arg(long, default_value_t = 10_000)]
    connections_max: usize,
    /// Connections one client IP address may hold at once, over every shard and both the
    /// ringbus and Kafka listeners (Kafka's max.connections.per.ip); more are closed at accept
    /// and counted in /metrics as ringbus_connections_refused_total{reason="per_ip"}. Default:
    /// no limit, as in Kafka: clients behind one NAT or proxy, and benchmarks on one host,
    /// share an address, so only the operator knows a fitting number; --connections-max still
    /// bounds every shard.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    connections_per_ip_max: Option<u32>,
    /// Close connections idle for this many seconds (0: never).
    #[arg(long, default_value_t = 600)]
    idle_timeout_s: u64,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics (default: no endpoint; port 0
    /// picks a free port, printed as `metrics on HOST:PORT`).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// MiB of memory per shard for recent-batch caches (tailing consumers read from them),
    /// shared out over the shard's partitions, 64 KiB to 64 MiB each (a partition keeps its
    /// newest batch even where that is more).
    #[arg(long, default_value_t = 256)]
    cache_mib_per_shard: usize,
    /// Microseconds between the partitions' and group coordinator's ticks. Hidden: only the
    /// accelerated soak test shortens it, to wake every long-lived task millions of times.
    #[arg(long, hide = true, default_value_t = broker::shard::TICK_INTERVAL_DEFAULT.as_micros() as u64, value_parser = clap::value_parser!(u64).range(1..))]
    tick_interval_us: u64,
    /// Also listen for Kafka clients (the Apache Kafka wire protocol) at HOST:PORT, or `none`
    /// (port 0 picks a free port; the chosen one is printed as `kafka listening on HOST:PORT`).
    #[arg(long, default_value = "127.0.0.1:9092", value_parser = parse_kafka_listen)]
    kafka_listen: KafkaListen,
    /// The address Kafka clients are told to connect to (Metadata); default: the Kafka listen
    /// address.
    #[arg(long)]
    kafka_advertise: Option<broker::kafka::Advertised>,
    /// Partitions of a topic created because a Kafka client named it (Metadata or Produce).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    kafka_auto_create_partitions: u32,
    /// Do not create topics that Kafka clients name; they get UNKNOWN_TOPIC_OR_PARTITION.
    #[arg(long)]
    no_kafka_auto_create: bool,
    /// Milliseconds a consumer group's committed offsets are kept once the group has no
    /// members (Kafka's offsets.retention.minutes, counted as since KIP-211; default 7 days).
    /// A group with members never loses its offsets. The count starts when the group's last
    /// member leaves or times out; an offset committed while the group has none (a reset, a
    /// consumer outside any group) counts from its own commit. After a broker restart every
    /// count starts again from the restart: membership is not stored, so the broker cannot
    /// tell how long a group has been empty, and it never expires offsets early. 0: offsets
    /// never expire. `ringbus group describe` shows when a group's offsets expire.
    #[arg(long, default_value_t = broker::group::retention::OFFSETS_RETENTION_DEFAULT_MS)]
    offsets_retention_ms: u64,
}

/// `--kafka-listen`: an address, or none.
#[derive(Debug, Clone, Copy)]
struct KafkaListen(Option<SocketAddr>);

fn parse_kafka_listen(text: &str) -> Result<KafkaListen, String> {
    if text == "none" {
        return Ok(KafkaListen(None));
    }
    text.parse()
        .map(|address| KafkaListen(Some(address)))
        .map_err(|error| format!("{text:?}: {error} (HOST:PORT with an IP address, or none)"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The broker logs its life at info; a client command's stderr is for its own errors, so
    // only warnings from the libraries show there unless RINGBUS_LOG asks for more.
    let log_default = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RINGBUS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_default)),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: a log file or a pipe gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        // A log that cannot be written (stderr on a full disk, a closed pipe) is lost, not
        // fatal: by default tracing-subscriber reports the failure with `eprintln!`, which
        // panics when stderr fails, and so a broker logging to the disk it filled died.
        .log_internal_errors(false)
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Topic(command) => topic::run(command),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Group(command) => group::run(command),
        Command::Loadgen(args) => loadgen::run(args),
        Command::Tune(command) => return tune::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Not eprintln!, which panics (exit 101) when stderr cannot be written.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let cores = match &args.cores {
        Some(list) => cores::parse_cores(list)?,
        None => {
            let count = std::thread::available_parallelism().map_or(1, |n| n.get());
            (0..count).collect()
        }
    };
    // Shard ids are u16 (`broker::topology::ShardId`): one shard per core.
    if cores.len() > usize::from(u16::MAX) {
        return Err(format!(
            "{} cores: at most {} shards",
            cores.len(),
            u16::MAX
        ));
    }
    let config = broker::server::ServeConfig {
        data_dir: args.data_dir,
        listen: args.listen,
        cores,
        log: storage::LogConfig::default(),
        cache_bytes_per_shard: args.cache_mib_per_shard.saturating_mul(1 << 20),
        limits: net::Limits {
            frame_bytes_max: args.frame_bytes_max,
            idle_timeout: (args.idle_timeout_s > 0)
                .then(|| std::time::Duration::from_secs(args.idle_timeout_s)),
        },
        connections_max: args.connections_max,
        connections_per_ip_max: args
            .connections_per_ip_max
            .and_then(std::num::NonZeroU32::new),
        in_flight_max: usize::from(broker::handler::IN_FLIGHT_MAX),
        direct_io: if args.allow_buffered_io {
            storage::disk::glommio::DirectIo::BufferedFallback
        } else {
            storage::disk::glommio::DirectIo::Required
        },
        metrics_listen: args.metrics_listen,
        tick_interval: std::time::Duration::from_micros(args.tick_interval_us),
        offsets_retention: (args.offsets_retention_ms > 0)
            .then(|| std::time::Duration::from_millis(args.offsets_retention_ms)),
        kafka: args
            .kafka_listen
            .0
            .map(|listen| broker::kafka::KafkaConfig {
                listen,
                advertise: args.kafka_advertise.clone(),
                auto_create_partitions: (!args.no_kafka_auto_create)
                    .then_some(args.kafka_auto_create_partitions),
            }),
    };
    let shards = config.cores.len();
    broker::server::serve(config, |bound| {
        use std::io::Write;
        // Not println!: it panics when stdout cannot be written (a full disk, a closed
        // pipe), and the broker serves whether or not anyone reads these lines.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "ringbus listening on {} with {shards} shards",
            bound.listen
        );
        if let Some(kafka) = bound.kafka {
            let _ = writeln!(out, "kafka listening on {kafka}");
        }
        if let Some(metrics) = bound.metrics {
            let _ = writeln!(out, "ringbus metrics on {metrics}");
        }
        let _ = out.flush();
    })
    .map_err(|error| error.to_string())
}
