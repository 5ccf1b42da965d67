//! The `ringbus` binary: `ringbus serve` runs the broker; the client subcommands talk to one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// ringbus: a Kafka-style event-streaming broker, shard-per-core on io_uring.
#[derive(Parser)]
#[command(version, about)]
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
    /// Close connections idle for this many seconds (0: never).
    #[arg(long, default_value_t = 600)]
    idle_timeout_s: u64,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RINGBUS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let cores = match &args.cores {
        Some(list) => broker::server::parse_cores(list)?,
        None => {
            let count = std::thread::available_parallelism().map_or(1, |n| n.get());
            (0..count).collect()
        }
    };
    let config = broker::server::ServeConfig {
        data_dir: args.data_dir,
        listen: args.listen,
        cores,
        log: storage::LogConfig::default(),
        limits: net::Limits {
            frame_bytes_max: args.frame_bytes_max,
            idle_timeout: (args.idle_timeout_s > 0)
                .then(|| std::time::Duration::from_secs(args.idle_timeout_s)),
        },
        connections_max: args.connections_max,
        in_flight_max: usize::from(broker::handler::IN_FLIGHT_MAX),
        direct_io: if args.allow_buffered_io {
            storage::disk::glommio::DirectIo::BufferedFallback
        } else {
            storage::disk::glommio::DirectIo::Required
        },
    };
    let shards = config.cores.len();
    broker::server::serve(config, |address| {
        use std::io::Write;
        println!("ringbus listening on {address} with {shards} shards");
        let _ = std::io::stdout().flush();
    })
    .map_err(|error| error.to_string())
}
