//! loadgen: the ringbus load generator behind `ringbus loadgen`.
//!
//! Producers and consumers run as tasks on glommio executors pinned to the cores given (one
//! executor per core, tasks spread round-robin, each task its own [`client::Client`] connection). Every
//! message starts with a [`payload::Header`] (producer id, sequence, send timestamp) so the
//! consumers can check it ([`checker::SequenceChecker`]) and measure end-to-end latency.
//!
//! Measurement (as the OpenMessaging Benchmark does): open loop (`--rate` > 0) gives message `i`
//! of a producer the intended send time `start + i / (rate / producers)`; publish latency is
//! `ack - intended` (coordinated omission corrected) and publish delay is `send - intended`.
//! Closed loop (`--rate 0`) sends as fast as the producer's buffer accepts, latency is
//! `ack - send`. Latencies go into HDR histograms in integer microseconds (3 significant
//! digits); only events after the warm-up count, and throughput is counted over `--duration`
//! after it. The send timestamps are on this process's monotonic clock, so producers and
//! consumers must be in the same run.
//!
//! Depends on `schema` and `client` only (the layering test keeps it so).

pub mod checker;
mod find_max;
pub mod payload;
pub mod plot;
pub mod report;
mod run;

pub use report::{Percentiles, Report, Throughput};
pub use run::{Config, run};

use std::path::PathBuf;

/// The `ringbus loadgen` options.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The broker's address, HOST:PORT.
    #[arg(long, env = "RINGBUS_BROKER", default_value = "127.0.0.1:9292")]
    pub broker: String,
    /// The topic to produce to and consume from.
    #[arg(long)]
    pub topic: String,
    /// Create the topic first (with --partitions); otherwise it must exist.
    #[arg(long)]
    pub create_topic: bool,
    /// Partitions of the topic --create-topic creates.
    #[arg(long, default_value_t = 16)]
    pub partitions: u32,
    /// Producer tasks, each with its own connection.
    #[arg(long, default_value_t = 1)]
    pub producers: u32,
    /// Consumer tasks, each with its own connection, reading a share of the partitions.
    #[arg(long, default_value_t = 1)]
    pub consumers: u32,
    /// Bytes per message (at least 20: the header).
    #[arg(long, default_value_t = 1024)]
    pub message_size: usize,
    /// The producers' batch size in bytes.
    #[arg(long, default_value_t = 16 << 10)]
    pub batch_bytes: usize,
    /// How long a batch waits for more messages, ms.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Bytes each producer buffers before sending waits (0: 32 MiB shared out over the
    /// producers, at least 1 MiB each). In closed loop this bounds the queueing in the latency.
    #[arg(long, default_value_t = 0)]
    pub buffer_bytes: usize,
    /// Acknowledgement level: 0 (none), 1 (written), all (fdatasync).
    #[arg(long, default_value = "1")]
    pub acks: String,
    /// Turn the producers' idempotence off (on by default, as in the client: batches carry a
    /// producer id and sequences, and the broker checks them).
    #[arg(long)]
    pub no_idempotence: bool,
    /// Messages per second over all producers (open loop); 0 = closed loop, as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Seconds measured after the warm-up.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 5.0)]
    pub warmup: f64,
    /// Message keys: none, round-robin (over 10,000 keys, so murmur2 spreads them over the
    /// partitions as Kafka would) or random (a fresh random key per message).
    #[arg(long, default_value = "none")]
    pub keys: String,
    /// Stop after this many messages over all producers (--duration is then a cap). With
    /// --producers 0 the consumers stop after consuming this many (a catch-up read).
    #[arg(long)]
    pub messages: Option<u64>,
    /// Consumers start at the earliest offset instead of the log end (with --producers 0: read
    /// a backlog that an earlier run wrote).
    #[arg(long)]
    pub from_earliest: bool,
    /// The consumers' fetch size over all their partitions, bytes (the broker caps it to its
    /// frame limit).
    #[arg(long, default_value_t = client::ConsumerOptions::default().fetch_bytes_max)]
    pub fetch_bytes: u32,
    /// The consumers' fetch size per partition, bytes.
    #[arg(long, default_value_t = client::ConsumerOptions::default().partition_bytes_max)]
    pub partition_fetch_bytes: u32,
    /// Search for the highest rate the producers and consumers sustain (as the OpenMessaging
    /// Benchmark does): a closed-loop trial, then open-loop trials of --duration each,
    /// bisecting on whether the rate was met and the consumers kept up. Reports the best
    /// sustained trial.
    #[arg(long)]
    pub find_max: bool,
    /// Write the result as JSON to this file, and the latency percentile plot beside it (the
    /// same name with .svg).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write each latency histogram in HdrHistogram's percentile distribution format
    /// (<name>.hgrm, values in ms) to this directory.
    #[arg(long)]
    pub hgrm_dir: Option<PathBuf>,
    /// How long to wait for each response, ms.
    #[arg(long, default_value_t = 30_000)]
    pub request_timeout_ms: u64,
}

/// Runs `ringbus loadgen` on executors pinned to `cores` (the command line's `--cores`, parsed
/// by the binary): the live line to stderr each second, the table to stdout at the end, the
/// JSON to `--json`. Fails on bad options, a failed connection, or when messages were lost,
/// duplicated or failed (after printing everything).
pub fn run_cli(args: Args, cores: Vec<usize>) -> Result<Report, String> {
    let config = Config::from_args(&args, cores)?;
    let report = if args.find_max {
        find_max::find_max(config)?
    } else {
        run(config)?
    };
    print!("{}", report.table());
    if let Some(path) = &args.json {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|error| format!("creating {}: {error}", parent.display()))?;
        }
        std::fs::write(path, report.to_json())
            .map_err(|error| format!("writing {}: {error}", path.display()))?;
        let svg = path.with_extension("svg");
        std::fs::write(&svg, plot::latency_svg(&report))
            .map_err(|error| format!("writing {}: {error}", svg.display()))?;
    }
    if let Some(dir) = &args.hgrm_dir {
        std::fs::create_dir_all(dir)
            .map_err(|error| format!("creating {}: {error}", dir.display()))?;
        for (name, histogram) in &report.histograms {
            let path = dir.join(format!("{name}.hgrm"));
            std::fs::write(&path, report::hgrm(histogram))
                .map_err(|error| format!("writing {}: {error}", path.display()))?;
        }
    }
    if report.errors > 0 || report.lost > 0 || report.duplicates > 0 {
        return Err(format!(
            "{} errors, {} lost, {} duplicates",
            report.errors, report.lost, report.duplicates
        ));
    }
    Ok(report)
}
