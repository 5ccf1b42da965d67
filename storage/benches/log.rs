//! Storage benchmark: the partition log (`storage::Log`) on the real disk (`GlommioDisk`,
//! O_DIRECT files on io_uring), measured against nothing but the clock. The physical limits
//! it is compared with (fio on the same directory, in the same round) come from
//! bench-results/storage-bench.sh, which runs this binary; see bench-results/README.md.
//!
//! Workloads, each on a fresh log in its own directory under the data dir, records of 1 KiB
//! values, batches built once with `schema::batch::BatchBuilder`:
//! - `append-64k`, `append-1m`: closed loop, append 64 KiB (64 records) or 1 MiB (1024
//!   records) batches for `--seconds`, then flush. Throughput of batch bytes appended and
//!   written; CPU seconds (getrusage, user + sys) per GiB; per-append latency.
//! - `durable-8`, `durable-1`: closed loop group commit, `{ append 8 batches of 64 KiB; sync }`
//!   and `{ append 1 batch; sync }` (3 records: the largest 1 KiB-record batch whose entry fits
//!   one 4 KiB block, the latency floor). Per-round latency (first append .. sync returned).
//! - `cold-read`: write `--read-bytes` in 64 KiB batches, close, reopen with an empty cache,
//!   read it all sequentially with `read(offset, 1 MiB)`.
//! - `hot-read`: append 128 MiB into a 256 MiB cache, flush, read it back from the cache
//!   repeatedly for `--seconds` (zero-copy handles: this measures the lookup path).
//!
//! What is timed: `append` takes the batch by value (`BytesMut`), so every append needs a fresh
//! copy of the prebuilt batch. Copies are made before each timed section (a pool of
//! [`POOL_BYTES_MAX`] for the append loops, one round's batches for the durable loops); their
//! memcpy rate is reported separately (`clone_gib_per_s`). `Log::append` awaits the writes it
//! issues before returning, and `sync` awaits its fdatasync, so no I/O is in flight while the
//! pool is refilled: pausing the clock there hides no device work.
//!
//! Output: one `RESULT name=... key=value ...` line per workload on stdout, and each latency
//! histogram as an HdrHistogram interval-log line prefixed `HLOG ` (strip the prefix and the
//! lines form a valid .hlog file). Progress goes to stderr. The data directory is created
//! fresh and removed at the end, whatever happened.
//!
//! Everything runs on one glommio executor pinned to one CPU (a single shard).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use schema::batch::BatchBuilder;
use storage::disk::glommio::{DirectIo, GlommioDisk};
use storage::{Log, LogConfig};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
const MIB_F: f64 = MIB as f64;
const GIB_F: f64 = (1u64 << 30) as f64;

/// Value bytes of every record.
const RECORD_VALUE_BYTES: usize = KIB;
/// Records in a batch of the 64 KiB workloads.
const RECORDS_64K: usize = 64;
/// Records in a batch of the 1 MiB workloads.
const RECORDS_1M: usize = 1024;
/// Records in the durable-1 batch: 3 records of 1 KiB make a 3.2 KB batch whose entry (24-byte
/// header + batch) fits one 4 KiB block, as fio's 4 KiB write does; 4 records would spill into
/// a second block on every sync.
const RECORDS_DURABLE_1: usize = 3;
/// Batches appended per sync in durable-8.
const DURABLE_8_BATCHES: usize = 8;
/// Bytes of prebuilt batch copies held for the append loops (refilled with the clock paused).
const POOL_BYTES_MAX: usize = 64 * MIB;
/// Bytes appended before the hot-read loop.
const HOT_READ_BYTES: usize = 128 * MIB;
/// Cache of the hot-read log: larger than what it appends, so every read is a cache hit.
const HOT_READ_CACHE_BYTES: usize = 256 * MIB;
/// bytes_max of every read call.
const READ_BYTES_MAX: usize = MIB;
/// Latency histograms: microseconds, 1 us .. 100 s, 3 significant digits.
const HISTOGRAM_US_MAX: u64 = 100_000_000;

const WORKLOADS: [&str; 6] = [
    "append-64k",
    "append-1m",
    "durable-8",
    "durable-1",
    "cold-read",
    "hot-read",
];

const USAGE: &str = "\
usage: log [--dir DIR] [--seconds S] [--only NAME[,NAME...]] [--read-bytes BYTES]
           [--cpu N] [--io-memory-mib MIB] [--list]
  --dir DIR            parent of the (fresh, removed afterwards) data directory; ext4 or XFS,
                       not tmpfs (default /var/tmp)
  --seconds S          duration of each timed loop (default 10)
  --only NAMES         run only these workloads (comma-separated): append-64k append-1m
                       durable-8 durable-1 cold-read hot-read
  --read-bytes BYTES   bytes written and read back by cold-read (default 1073741824; K/M/G ok)
  --cpu N              CPU to pin the executor to (default: the last online CPU)
  --io-memory-mib MIB  glommio registered-buffer arena (default 2; RLIMIT_MEMLOCK is small)
  --list               print the workload names and exit";

type BenchResult<T> = Result<T, String>;

#[derive(Debug, Clone)]
struct Args {
    parent_dir: PathBuf,
    seconds: f64,
    only: Vec<String>,
    read_bytes: u64,
    cpu: usize,
    io_memory_bytes: usize,
}

impl Args {
    fn parse(mut raw: impl Iterator<Item = String>) -> BenchResult<Option<Args>> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut args = Args {
            parent_dir: PathBuf::from("/var/tmp"),
            seconds: 10.0,
            only: WORKLOADS.iter().map(|name| name.to_string()).collect(),
            read_bytes: 1 << 30,
            cpu: cpus - 1,
            io_memory_bytes: 2 * MIB,
        };
        while let Some(arg) = raw.next() {
            let mut value = |name: &str| raw.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--dir" => args.parent_dir = PathBuf::from(value("--dir")?),
                "--seconds" => {
                    args.seconds = parse_number(&value("--seconds")?, "--seconds")?;
                    if args.seconds.is_nan() || args.seconds <= 0.0 {
                        return Err("--seconds must be > 0".into());
                    }
                }
                "--only" => {
                    args.only = value("--only")?
                        .split(',')
                        .filter(|name| !name.is_empty())
                        .map(str::to_owned)
                        .collect();
                    if let Some(unknown) = args
                        .only
                        .iter()
                        .find(|name| !WORKLOADS.contains(&name.as_str()))
                    {
                        return Err(format!("unknown workload {unknown:?}\n{USAGE}"));
                    }
                }
                "--read-bytes" => args.read_bytes = parse_bytes(&value("--read-bytes")?)?,
                "--cpu" => args.cpu = parse_number(&value("--cpu")?, "--cpu")?,
                "--io-memory-mib" => {
                    let mib: usize = parse_number(&value("--io-memory-mib")?, "--io-memory-mib")?;
                    args.io_memory_bytes = mib * MIB;
                }
                "--list" => {
                    for name in WORKLOADS {
                        println!("{name}");
                    }
                    return Ok(None);
                }
                "--help" | "-h" => {
                    println!("{USAGE}");
                    return Ok(None);
                }
                // `cargo bench` passes `--bench` to every bench binary.
                "--bench" => {}
                other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            }
        }
        Ok(Some(args))
    }

    fn runs(&self, name: &str) -> bool {
        self.only.iter().any(|only| only == name)
    }
}

fn parse_number<T: std::str::FromStr>(text: &str, name: &str) -> BenchResult<T> {
    text.parse()
        .map_err(|_| format!("{name}: cannot parse {text:?}"))
}

/// Parses a byte count with an optional K, M or G (binary) suffix.
fn parse_bytes(text: &str) -> BenchResult<u64> {
    let (digits, multiplier) = match text.chars().last() {
        Some('k' | 'K') => (&text[..text.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&text[..text.len() - 1], 1 << 20),
        Some('g' | 'G') => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    let count: u64 = parse_number(digits, "--read-bytes")?;
    Ok(count * multiplier)
}

fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => return,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let unique = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let data_dir = args.parent_dir.join(format!(
        "ringbus-storage-bench-{}-{unique}",
        std::process::id()
    ));
    if let Err(e) = std::fs::create_dir(&data_dir) {
        eprintln!("cannot create data directory {}: {e}", data_dir.display());
        std::process::exit(1);
    }
    // A panic (a failed assertion in the log) must not leave gigabytes behind either.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&args, &data_dir)))
        .unwrap_or_else(|_| Err("panicked (see above)".to_string()));
    let removed = std::fs::remove_dir_all(&data_dir);
    if let Err(e) = &removed {
        eprintln!("cannot remove data directory {}: {e}", data_dir.display());
    }
    match outcome {
        Ok(()) if removed.is_ok() => {}
        Ok(()) => std::process::exit(1),
        Err(message) => {
            eprintln!("storage bench failed: {message}");
            std::process::exit(1);
        }
    }
}

fn run(args: &Args, data_dir: &Path) -> BenchResult<()> {
    eprintln!(
        "storage bench: data dir {}, {} s per loop, cpu {}, io_memory {} MiB, workloads {}",
        data_dir.display(),
        args.seconds,
        args.cpu,
        args.io_memory_bytes / MIB,
        args.only.join(",")
    );
    let executor = LocalExecutorBuilder::new(Placement::Fixed(args.cpu))
        .name("storage-bench")
        .io_memory(args.io_memory_bytes)
        .make()
        .map_err(|e| {
            format!(
                "glommio executor on cpu {} with io_memory {} MiB: {e} (RLIMIT_MEMLOCK is \
                 small here: try a smaller --io-memory-mib)",
                args.cpu,
                args.io_memory_bytes / MIB
            )
        })?;
    let args = args.clone();
    let data_dir = data_dir.to_path_buf();
    executor.run(async move {
        // The disk probes the device for direct I/O: it must come before any other O_DIRECT
        // open on this thread (storage/src/disk/glommio.rs, "The polled-I/O probe trap").
        let disk = GlommioDisk::open_dir(&data_dir, DirectIo::Required)
            .await
            .map_err(|e| e.to_string())?;
        let bench = Bench {
            disk,
            data_dir,
            seconds: Duration::from_secs_f64(args.seconds),
            read_bytes: args.read_bytes,
        };
        eprintln!("{}", config_line());
        if args.runs("append-64k") {
            bench
                .append_loop("append-64k", RECORDS_64K, append_config(MIB))
                .await?;
        }
        if args.runs("append-1m") {
            bench
                .append_loop("append-1m", RECORDS_1M, append_config(2 * MIB))
                .await?;
        }
        if args.runs("durable-8") {
            bench
                .durable_loop("durable-8", DURABLE_8_BATCHES, RECORDS_64K)
                .await?;
        }
        if args.runs("durable-1") {
            bench
                .durable_loop("durable-1", 1, RECORDS_DURABLE_1)
                .await?;
        }
        if args.runs("cold-read") {
            bench.cold_read().await?;
        }
        if args.runs("hot-read") {
            bench.hot_read().await?;
        }
        Ok(())
    })
}

/// The config of the throughput workloads: Kafka-like defaults, 1 MiB write chunks, 4 chunks
/// written at a time (queue depth 4).
fn append_config(batch_bytes_max: usize) -> LogConfig {
    LogConfig {
        write_chunk_bytes: MIB,
        write_ahead_chunks: 4,
        batch_bytes_max,
        ..LogConfig::default()
    }
}

/// The config line printed once, so a report can say what was measured.
fn config_line() -> String {
    let config = append_config(MIB);
    format!(
        "CONFIG record_value_bytes={RECORD_VALUE_BYTES} write_chunk_bytes={} \
         write_ahead_chunks={} segment_bytes_max={} preallocate_bytes={} \
         index_interval_bytes={} cache_bytes_max={} pool_bytes_max={POOL_BYTES_MAX} \
         read_bytes_max={READ_BYTES_MAX} hot_read_bytes={HOT_READ_BYTES} \
         hot_read_cache_bytes={HOT_READ_CACHE_BYTES}",
        config.write_chunk_bytes,
        config.write_ahead_chunks,
        config.segment_bytes_max,
        config.preallocate_bytes,
        config.index_interval_bytes,
        config.cache_bytes_max,
    )
}

struct Bench {
    disk: GlommioDisk,
    data_dir: PathBuf,
    seconds: Duration,
    read_bytes: u64,
}

impl Bench {
    async fn open(
        &self,
        name: &str,
        config: LogConfig,
    ) -> BenchResult<(Log<GlommioDisk>, PathBuf)> {
        let dir = self.data_dir.join(name);
        let (log, _recovery) = Log::open(self.disk.clone(), &dir, config, now_ms())
            .await
            .map_err(|e| format!("{name}: open log {}: {e}", dir.display()))?;
        Ok((log, dir))
    }

    async fn close(&self, name: &str, log: Log<GlommioDisk>, dir: &Path) -> BenchResult<()> {
        log.close(now_ms())
            .await
            .map_err(|e| format!("{name}: close log: {e}"))?;
        std::fs::remove_dir_all(dir).map_err(|e| format!("{name}: remove {}: {e}", dir.display()))
    }

    /// append-64k / append-1m: closed loop of appends for `seconds`, then a flush.
    async fn append_loop(&self, name: &str, records: usize, config: LogConfig) -> BenchResult<()> {
        let template = build_batch(records);
        let batch_bytes = template.len();
        let pool_batches = (POOL_BYTES_MAX / batch_bytes).max(1);
        eprintln!(
            "{name}: {batch_bytes}-byte batches ({records} records), closed loop for {:.1} s",
            self.seconds.as_secs_f64()
        );
        let (mut log, dir) = self.open(name, config).await?;
        let (_, device_write_start) = device_bytes();
        let mut latency = histogram();
        let mut pool: Vec<BytesMut> = Vec::with_capacity(pool_batches);
        let mut clone_time = Duration::ZERO;
        let mut cloned_bytes = 0u64;
        let mut timed = Duration::ZERO;
        let mut cpu = Duration::ZERO;
        let mut bytes = 0u64;
        let mut batches = 0u64;
        'outer: loop {
            let clone_start = Instant::now();
            pool.clear();
            pool.extend((0..pool_batches).map(|_| template.clone()));
            clone_time += clone_start.elapsed();
            cloned_bytes += (pool_batches * batch_bytes) as u64;

            let now = now_ms();
            let cpu_start = cpu_time();
            let start = Instant::now();
            for batch in pool.drain(..) {
                let append_start = Instant::now();
                log.append(batch, now)
                    .await
                    .map_err(|e| format!("{name}: append: {e}"))?;
                let done = Instant::now();
                record_us(&mut latency, done - append_start);
                bytes += batch_bytes as u64;
                batches += 1;
                if timed + (done - start) >= self.seconds {
                    timed += done - start;
                    cpu += cpu_time() - cpu_start;
                    break 'outer;
                }
            }
            timed += start.elapsed();
            cpu += cpu_time() - cpu_start;
        }
        // The flush is part of the work: batch bytes count as appended-and-written only once
        // it returns.
        let cpu_start = cpu_time();
        let start = Instant::now();
        log.flush()
            .await
            .map_err(|e| format!("{name}: flush: {e}"))?;
        timed += start.elapsed();
        cpu += cpu_time() - cpu_start;
        let segments = log.segment_bases().len();
        let device_write_bytes = device_bytes().1 - device_write_start;
        self.close(name, log, &dir).await?;

        let seconds = timed.as_secs_f64();
        let gib = bytes as f64 / GIB_F;
        println!(
            "RESULT name={name} mode=closed-loop seconds={seconds:.3} bytes={bytes} \
             batches={batches} batch_bytes={batch_bytes} mib_per_s={:.1} cpu_s={:.3} \
             cpu_s_per_gib={:.3} append_p50_us={} append_p99_us={} append_p999_us={} \
             append_max_us={} segments={segments} device_write_bytes={device_write_bytes} \
             clone_gib_per_s={:.2}",
            bytes as f64 / MIB_F / seconds,
            cpu.as_secs_f64(),
            cpu.as_secs_f64() / gib,
            latency.value_at_quantile(0.5),
            latency.value_at_quantile(0.99),
            latency.value_at_quantile(0.999),
            latency.max(),
            cloned_bytes as f64 / GIB_F / clone_time.as_secs_f64(),
        );
        print_hlog(name, "append", &latency, timed)?;
        eprintln!(
            "{name}: {:.1} MiB/s, {:.3} CPU s/GiB",
            bytes as f64 / MIB_F / seconds,
            cpu.as_secs_f64() / gib
        );
        Ok(())
    }

    /// durable-8 / durable-1: closed loop of `{ append batches; sync }` rounds for `seconds`.
    async fn durable_loop(&self, name: &str, batches: usize, records: usize) -> BenchResult<()> {
        let template = build_batch(records);
        let batch_bytes = template.len();
        eprintln!(
            "{name}: {batches} x {batch_bytes}-byte batches per sync, closed loop for {:.1} s",
            self.seconds.as_secs_f64()
        );
        let (mut log, dir) = self.open(name, append_config(MIB)).await?;
        let mut round_latency = histogram();
        let mut append_latency = histogram();
        let mut sync_latency = histogram();
        let mut round: Vec<BytesMut> = Vec::with_capacity(batches);
        let mut timed = Duration::ZERO;
        let mut cpu = Duration::ZERO;
        let mut bytes = 0u64;
        let mut rounds = 0u64;
        while timed < self.seconds {
            round.clear();
            round.extend((0..batches).map(|_| template.clone()));
            let now = now_ms();
            let cpu_start = cpu_time();
            let start = Instant::now();
            for batch in round.drain(..) {
                log.append(batch, now)
                    .await
                    .map_err(|e| format!("{name}: append: {e}"))?;
            }
            let appended = Instant::now();
            log.sync(now)
                .await
                .map_err(|e| format!("{name}: sync: {e}"))?;
            let done = Instant::now();
            cpu += cpu_time() - cpu_start;
            record_us(&mut append_latency, appended - start);
            record_us(&mut sync_latency, done - appended);
            record_us(&mut round_latency, done - start);
            timed += done - start;
            bytes += (batches * batch_bytes) as u64;
            rounds += 1;
        }
        assert_eq!(
            log.durable_end(),
            log.appended_end(),
            "every round was synced"
        );
        self.close(name, log, &dir).await?;

        let seconds = timed.as_secs_f64();
        println!(
            "RESULT name={name} mode=closed-loop seconds={seconds:.3} bytes={bytes} \
             rounds={rounds} batches_per_sync={batches} batch_bytes={batch_bytes} \
             mib_per_s={:.1} syncs_per_s={:.0} cpu_s_per_gib={:.3} mean_us={:.1} p50_us={} \
             p99_us={} p999_us={} max_us={} append_p50_us={} append_p99_us={} sync_p50_us={} \
             sync_p99_us={}",
            bytes as f64 / MIB_F / seconds,
            rounds as f64 / seconds,
            cpu.as_secs_f64() / (bytes as f64 / GIB_F),
            seconds * 1e6 / rounds as f64,
            round_latency.value_at_quantile(0.5),
            round_latency.value_at_quantile(0.99),
            round_latency.value_at_quantile(0.999),
            round_latency.max(),
            append_latency.value_at_quantile(0.5),
            append_latency.value_at_quantile(0.99),
            sync_latency.value_at_quantile(0.5),
            sync_latency.value_at_quantile(0.99),
        );
        print_hlog(name, "round", &round_latency, timed)?;
        print_hlog(name, "append", &append_latency, timed)?;
        print_hlog(name, "sync", &sync_latency, timed)?;
        eprintln!(
            "{name}: {:.1} MiB/s, {} rounds, p50 {} us, p99 {} us, max {} us",
            bytes as f64 / MIB_F / seconds,
            rounds,
            round_latency.value_at_quantile(0.5),
            round_latency.value_at_quantile(0.99),
            round_latency.max()
        );
        Ok(())
    }

    /// cold-read: write `read_bytes`, close, reopen with no cache, read it all sequentially.
    async fn cold_read(&self) -> BenchResult<()> {
        let name = "cold-read";
        let template = build_batch(RECORDS_64K);
        let batch_bytes = template.len() as u64;
        let batches = self.read_bytes.div_ceil(batch_bytes);
        let config = LogConfig {
            cache_bytes_max: 0,
            ..append_config(MIB)
        };
        eprintln!(
            "{name}: writing {batches} batches of {batch_bytes} bytes ({:.0} MiB)",
            (batches * batch_bytes) as f64 / MIB_F
        );
        let (mut log, dir) = self.open(name, config.clone()).await?;
        let write_start = Instant::now();
        for _ in 0..batches {
            log.append(template.clone(), now_ms())
                .await
                .map_err(|e| format!("{name}: append: {e}"))?;
        }
        log.flush()
            .await
            .map_err(|e| format!("{name}: flush: {e}"))?;
        let write_seconds = write_start.elapsed().as_secs_f64();
        log.close(now_ms())
            .await
            .map_err(|e| format!("{name}: close: {e}"))?;

        let reopen_start = Instant::now();
        let (log, _) = self.open(name, config).await?;
        let reopen_ms = reopen_start.elapsed().as_secs_f64() * 1e3;
        eprintln!("{name}: reopened in {reopen_ms:.1} ms, reading back");
        let end = log.written_end();
        let mut next = log.log_start();
        let mut bytes = 0u64;
        let mut reads = 0u64;
        let (device_read_start, _) = device_bytes();
        let cpu_start = cpu_time();
        let start = Instant::now();
        while next < end {
            let read = log
                .read(next, READ_BYTES_MAX)
                .await
                .map_err(|e| format!("{name}: read at {next}: {e}"))?;
            if read.batches.is_empty() {
                return Err(format!("{name}: read at {next} returned nothing"));
            }
            bytes += read
                .batches
                .iter()
                .map(|batch| batch.len() as u64)
                .sum::<u64>();
            reads += 1;
            next = read.next_offset;
        }
        let seconds = start.elapsed().as_secs_f64();
        let cpu = cpu_time() - cpu_start;
        let device_read_bytes = device_bytes().0 - device_read_start;
        if bytes != batches * batch_bytes {
            return Err(format!(
                "{name}: read {bytes} bytes back, wrote {}",
                batches * batch_bytes
            ));
        }
        self.close(name, log, &dir).await?;
        println!(
            "RESULT name={name} seconds={seconds:.3} bytes={bytes} reads={reads} \
             mib_per_s={:.1} cpu_s_per_gib={:.3} device_read_bytes={device_read_bytes} \
             write_mib_per_s={:.1} reopen_ms={reopen_ms:.1}",
            bytes as f64 / MIB_F / seconds,
            cpu.as_secs_f64() / (bytes as f64 / GIB_F),
            bytes as f64 / MIB_F / write_seconds,
        );
        eprintln!("{name}: {:.1} MiB/s", bytes as f64 / MIB_F / seconds);
        Ok(())
    }

    /// hot-read: 128 MiB appended into a 256 MiB cache, read back from the cache repeatedly.
    async fn hot_read(&self) -> BenchResult<()> {
        let name = "hot-read";
        let template = build_batch(RECORDS_64K);
        let batch_bytes = template.len();
        let batches = HOT_READ_BYTES.div_ceil(batch_bytes);
        let config = LogConfig {
            cache_bytes_max: HOT_READ_CACHE_BYTES,
            ..append_config(MIB)
        };
        let (mut log, dir) = self.open(name, config).await?;
        for _ in 0..batches {
            log.append(template.clone(), now_ms())
                .await
                .map_err(|e| format!("{name}: append: {e}"))?;
        }
        log.flush()
            .await
            .map_err(|e| format!("{name}: flush: {e}"))?;
        eprintln!(
            "{name}: {batches} batches in the cache, reading for {:.1} s",
            self.seconds.as_secs_f64()
        );
        let start_offset = log.log_start();
        let end = log.written_end();
        let mut next = start_offset;
        let mut bytes = 0u64;
        let mut reads = 0u64;
        let start = Instant::now();
        loop {
            let read = log
                .read(next, READ_BYTES_MAX)
                .await
                .map_err(|e| format!("{name}: read at {next}: {e}"))?;
            bytes += read
                .batches
                .iter()
                .map(|batch| batch.len() as u64)
                .sum::<u64>();
            reads += 1;
            next = read.next_offset;
            if next >= end {
                next = start_offset;
                // Checking the clock once per pass over the cache keeps it out of the loop.
                if start.elapsed() >= self.seconds {
                    break;
                }
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        self.close(name, log, &dir).await?;
        println!(
            "RESULT name={name} seconds={seconds:.3} bytes={bytes} reads={reads} \
             gib_per_s={:.2} read_ns_mean={:.0}",
            bytes as f64 / GIB_F / seconds,
            seconds * 1e9 / reads as f64,
        );
        eprintln!("{name}: {:.2} GiB/s", bytes as f64 / GIB_F / seconds);
        Ok(())
    }
}

/// A batch of `records` records with 1 KiB values (null keys), stamped now.
fn build_batch(records: usize) -> BytesMut {
    let timestamp_ms = now_ms();
    let mut builder = BatchBuilder::new(timestamp_ms);
    let mut value = vec![0u8; RECORD_VALUE_BYTES];
    for record in 0..records {
        for (index, byte) in value.iter_mut().enumerate() {
            *byte = (record.wrapping_mul(31) ^ index.wrapping_mul(7)) as u8;
        }
        builder.push(None, Some(&value), timestamp_ms, &[]);
    }
    BytesMut::from(&builder.finish()[..])
}

fn now_ms() -> i64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(elapsed.as_millis()).expect("milliseconds fit i64")
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_US_MAX, 3).expect("valid histogram bounds")
}

fn record_us(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(us.max(1));
}

/// Prints one histogram as an HdrHistogram interval-log line, prefixed `HLOG `, tagged
/// `<workload>.<what>` (values in microseconds).
fn print_hlog(
    name: &str,
    what: &str,
    histogram: &Histogram<u64>,
    duration: Duration,
) -> BenchResult<()> {
    let mut text = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let tag = format!("{name}.{what}");
    {
        let mut writer = IntervalLogWriterBuilder::new()
            .begin_log_with(&mut text, &mut serializer)
            .map_err(|e| format!("histogram log: {e}"))?;
        writer
            .write_histogram(histogram, Duration::ZERO, duration, Tag::new(&tag))
            .map_err(|e| format!("histogram log: {e}"))?;
    }
    let text = String::from_utf8(text).map_err(|e| format!("histogram log: {e}"))?;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        println!("HLOG {line}");
    }
    Ok(())
}

/// Bytes this process caused to be read from and written to the storage layer so far
/// (`read_bytes` and `write_bytes` of /proc/self/io; O_DIRECT I/O included), or zeros where
/// the kernel does not report them. Diagnostic only: shows read and write amplification.
fn device_bytes() -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string("/proc/self/io") else {
        return (0, 0);
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("read_bytes:"), field("write_bytes:"))
}

/// User + system CPU time of the whole process so far.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` points to writable memory of the size of `rusage`; getrusage only writes
    // into it, and RUSAGE_SELF is a valid `who`.
    let result = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    assert_eq!(result, 0, "getrusage(RUSAGE_SELF) cannot fail");
    // SAFETY: getrusage returned 0, so it filled the struct (and zeroed memory is a valid
    // `rusage` in any case: it is plain integers).
    let usage = unsafe { usage.assume_init() };
    let timeval = |time: libc::timeval| {
        Duration::from_secs(time.tv_sec as u64) + Duration::from_micros(time.tv_usec as u64)
    };
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}
