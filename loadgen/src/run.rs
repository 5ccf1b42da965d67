//! The run itself: setup, the pinned executors with their producer and consumer tasks, the
//! live line, and the merge of every executor's results into a [`Report`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use client::{
    Acks, Client, ClientError, ClientOptions, Consumer, ConsumerOptions, Delivery, Producer,
    ProducerOptions, RecordRef, SeekTo, TopicConfigOwned,
};
use glommio::{Latency, LocalExecutorBuilder, Placement, Shares};
use hdrhistogram::Histogram;

use crate::Args;
use crate::checker::SequenceChecker;
use crate::payload::{self, HEADER_BYTES, Header};
use crate::report::{Percentiles, Report, RunConfig, Throughput};
use client::fast_hash::FastMap;

/// After the producers stop, consumers read until they have every acknowledged message, or
/// nothing new came for `DRAIN_IDLE`, or `DRAIN_MAX` passed; what is missing then is lost.
const DRAIN_IDLE: Duration = Duration::from_secs(5);
const DRAIN_MAX: Duration = Duration::from_secs(120);
/// The send times (ns) of the records of one batch, shared with the task that awaits it.
type SendTimes = Rc<RefCell<Vec<u64>>>;

/// The consumers' share of the load generator's executor against the producers' 1,000.
const CONSUMER_SHARES: usize = 4_000;

/// The longest the producers' or the consumers' task queue runs while the other waits.
const QUEUE_SLICE: Duration = Duration::from_millis(1);
/// Open loop: a producer that is ahead of its schedule sleeps until the message that is due
/// next, but at least this long, and then sends every message that has come due. Sleeping
/// for each message cost a timer and a wake-up per message (at 50,000 msg/s, half of the load
/// generator's core went to sleeping and waking); a message sent up to this late is counted
/// from its intended time, so the lateness shows in its latencies, never hides.
const PACING_SLEEP_MIN: Duration = Duration::from_micros(200);
/// Largest latency recorded, us (larger values saturate).
const LATENCY_US_MAX: u64 = 3_600_000_000;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The broker.
    pub broker: SocketAddr,
    /// The broker as given.
    pub broker_text: String,
    /// The topic.
    pub topic: String,
    /// Create the topic with `partitions` partitions first.
    pub create_topic: bool,
    /// Partitions to create.
    pub partitions: u32,
    /// Producer tasks.
    pub producers: u32,
    /// Consumer tasks.
    pub consumers: u32,
    /// Bytes per message.
    pub message_size: usize,
    /// Producer batch bytes.
    pub batch_bytes: usize,
    /// Producer linger.
    pub linger: Duration,
    /// Bytes each producer buffers.
    pub buffer_bytes: usize,
    /// Acks.
    pub acks: Acks,
    /// Acks as given.
    pub acks_text: String,
    /// Idempotent producers.
    pub idempotence: bool,
    /// Messages/s over all producers; 0 = closed loop.
    pub rate: f64,
    /// Measured seconds.
    pub duration: Duration,
    /// Warm-up seconds.
    pub warmup: Duration,
    /// Cores, one executor each.
    pub cores: Vec<usize>,
    /// Request timeout.
    pub request_timeout: Duration,
    /// Message keys.
    pub keys: Keys,
    /// Messages to produce over all producers (or, without producers, to consume).
    pub messages: Option<u64>,
    /// Consumers start at the earliest offset.
    pub from_earliest: bool,
    /// Consumer fetch bytes over all partitions.
    pub fetch_bytes: u32,
    /// Consumer fetch bytes per partition.
    pub partition_fetch_bytes: u32,
}

/// How messages are keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// No key: the producer's sticky partitioner spreads the batches.
    None,
    /// Keys `0` to `9999` in turn: murmur2 places them as Kafka would.
    RoundRobin,
    /// A random 64-bit key per message.
    Random,
}

/// Keys that `Keys::RoundRobin` cycles through (OpenMessaging Benchmark's key count).
const ROUND_ROBIN_KEYS: u64 = 10_000;

impl Config {
    /// Checks and converts the command-line options; `cores` (at least one) get an executor
    /// each.
    pub fn from_args(args: &Args, cores: Vec<usize>) -> Result<Config, String> {
        let broker = args
            .broker
            .to_socket_addrs()
            .map_err(|error| format!("invalid broker address {:?}: {error}", args.broker))?
            .next()
            .ok_or_else(|| format!("broker address {:?} resolves to nothing", args.broker))?;
        let acks = match args.acks.as_str() {
            "0" => Acks::None,
            "1" => Acks::Written,
            "all" | "-1" => Acks::Durable,
            other => return Err(format!("--acks {other:?}: expected 0, 1 or all")),
        };
        if args.fetch_bytes == 0 || args.partition_fetch_bytes == 0 {
            return Err("--fetch-bytes and --partition-fetch-bytes must be at least 1".to_string());
        }
        if args.message_size < HEADER_BYTES {
            return Err(format!("--message-size must be at least {HEADER_BYTES}"));
        }
        if args.producers == 0 && args.consumers == 0 {
            return Err("nothing to do: --producers and --consumers are both 0".to_string());
        }
        if !(args.rate >= 0.0 && args.rate.is_finite()) {
            return Err("--rate must be >= 0".to_string());
        }
        if !(args.duration > 0.0 && args.warmup >= 0.0) {
            return Err("--duration must be > 0 and --warmup >= 0".to_string());
        }
        if args.create_topic && args.partitions == 0 {
            return Err("--partitions must be at least 1".to_string());
        }
        let keys = match args.keys.as_str() {
            "none" => Keys::None,
            "round-robin" => Keys::RoundRobin,
            "random" => Keys::Random,
            other => {
                return Err(format!(
                    "--keys {other:?}: expected none, round-robin or random"
                ));
            }
        };
        if cores.is_empty() {
            return Err("no cores to run the load on".to_string());
        }
        if args.messages == Some(0) {
            return Err("--messages must be at least 1".to_string());
        }
        if args.producers == 0 && args.consumers > 0 && args.messages.is_none() {
            return Err(
                "--producers 0 needs --messages N: how many messages the consumers read"
                    .to_string(),
            );
        }
        if args.find_max && (args.producers == 0 || args.messages.is_some()) {
            return Err("--find-max needs producers and a --duration, not --messages".to_string());
        }
        Ok(Config {
            broker,
            broker_text: args.broker.clone(),
            topic: args.topic.clone(),
            create_topic: args.create_topic,
            partitions: args.partitions,
            producers: args.producers,
            consumers: args.consumers,
            message_size: args.message_size,
            batch_bytes: args.batch_bytes,
            linger: Duration::from_millis(args.linger_ms),
            buffer_bytes: if args.buffer_bytes > 0 {
                args.buffer_bytes
            } else {
                ((32usize << 20) / args.producers.max(1) as usize).max(1 << 20)
            },
            acks,
            acks_text: args.acks.clone(),
            idempotence: !args.no_idempotence,
            rate: args.rate,
            duration: Duration::from_secs_f64(args.duration),
            warmup: Duration::from_secs_f64(args.warmup),
            cores,
            request_timeout: Duration::from_millis(args.request_timeout_ms),
            keys,
            messages: args.messages,
            from_earliest: args.from_earliest,
            fetch_bytes: args.fetch_bytes,
            partition_fetch_bytes: args.partition_fetch_bytes,
        })
    }

    /// The configuration as the report gives it, with the topic's actual partition count.
    fn summary(&self, partitions: u32) -> RunConfig {
        RunConfig {
            broker: self.broker_text.clone(),
            topic: self.topic.clone(),
            partitions,
            producers: self.producers,
            consumers: self.consumers,
            message_size: self.message_size,
            batch_bytes: self.batch_bytes,
            linger_ms: u64::try_from(self.linger.as_millis()).unwrap_or(u64::MAX),
            buffer_bytes: self.buffer_bytes,
            acks: self.acks_text.clone(),
            idempotence: self.idempotence,
            rate: self.rate,
            mode: if self.rate > 0.0 {
                "open-loop"
            } else {
                "closed-loop"
            }
            .to_string(),
            duration_s: self.duration.as_secs_f64(),
            warmup_s: self.warmup.as_secs_f64(),
            cores: self.cores.clone(),
            keys: match self.keys {
                Keys::None => "none",
                Keys::RoundRobin => "round-robin",
                Keys::Random => "random",
            }
            .to_string(),
            messages: self.messages,
            from_earliest: self.from_earliest,
            fetch_bytes: self.fetch_bytes,
            partition_fetch_bytes: self.partition_fetch_bytes,
        }
    }
}

/// State every executor thread and the main thread share.
struct Shared {
    epoch: Instant,
    /// Run start (ns on the clock), 0 until every consumer is positioned.
    start_ns: AtomicU64,
    consumers_ready: AtomicUsize,
    producers_done: AtomicUsize,
    /// Acknowledged messages, whole run.
    acked: AtomicU64,
    /// Distinct messages consumed, whole run.
    consumed: AtomicU64,
    /// The last measured ack and the last measured receipt (ns): with --messages the window
    /// ends when the work does.
    last_measured_ns: AtomicU64,
    /// Publish and end-to-end latency merged every 250 ms, emptied by each live line (so the
    /// line shows the last second's p99).
    live_publish: Mutex<Histogram<u64>>,
    live_e2e: Mutex<Histogram<u64>>,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// Wall-clock ms (since the Unix epoch) at the shared clock's 0, for record timestamps.
fn wall_ms_at_epoch(shared: &Shared) -> i64 {
    let wall_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64);
    wall_ms - (shared.now_ns() / 1_000_000) as i64
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds")
}

/// What one executor measured.
struct Stats {
    publish: Histogram<u64>,
    delay: Histogram<u64>,
    e2e: Histogram<u64>,
    fetch: Histogram<u64>,
    /// `publish` and `e2e` as of the last [`merge_live`]: the live line gets the difference,
    /// so a message is recorded once, not also in a live histogram (issue #11: the load
    /// generator's cost per message).
    publish_merged: Histogram<u64>,
    e2e_merged: Histogram<u64>,
    produced: u64,
    produced_bytes: u64,
    consumed: u64,
    consumed_bytes: u64,
    errors: u64,
    first_errors: Vec<String>,
    checker: SequenceChecker,
    acked: HashMap<u32, u64>,
    /// Connections re-opened by this executor's clients.
    reconnects: u64,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            publish: histogram(),
            delay: histogram(),
            e2e: histogram(),
            fetch: histogram(),
            publish_merged: histogram(),
            e2e_merged: histogram(),
            produced: 0,
            produced_bytes: 0,
            consumed: 0,
            consumed_bytes: 0,
            errors: 0,
            reconnects: 0,
            first_errors: Vec::new(),
            checker: SequenceChecker::new(),
            acked: HashMap::new(),
        }
    }

    fn error(&mut self, error: String) {
        self.errors += 1;
        if self.first_errors.len() < 5 {
            self.first_errors.push(error);
        }
    }
}

/// The times of a run, ns on the shared clock.
#[derive(Clone, Copy)]
struct Window {
    start: u64,
    measure: u64,
    end: u64,
}

impl Window {
    fn measured(&self, at: u64) -> bool {
        at >= self.measure && at < self.end
    }
}

/// Runs the load described by `config` and returns what it measured.
pub fn run(config: Config) -> Result<Report, String> {
    let partitions = setup(&config)?;
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        start_ns: AtomicU64::new(0),
        consumers_ready: AtomicUsize::new(0),
        producers_done: AtomicUsize::new(0),
        acked: AtomicU64::new(0),
        consumed: AtomicU64::new(0),
        last_measured_ns: AtomicU64::new(0),
        live_publish: Mutex::new(histogram()),
        live_e2e: Mutex::new(histogram()),
    });
    let executors = config.cores.len();
    let mut handles = Vec::new();
    let executors_done = Arc::new(AtomicUsize::new(0));
    for (index, &core) in config.cores.iter().enumerate() {
        let producers: Vec<u32> = (0..config.producers)
            .filter(|p| *p as usize % executors == index)
            .collect();
        let consumers: Vec<(u32, Vec<u32>)> = (0..config.consumers)
            .filter(|c| *c as usize % executors == index)
            .map(|c| {
                let share = (0..partitions)
                    .filter(|p| p % config.consumers == c)
                    .collect();
                (c, share)
            })
            .collect();
        let config = config.clone();
        let shared = shared.clone();
        let done = executors_done.clone();
        let handle = LocalExecutorBuilder::new(Placement::Fixed(core))
            .name(&format!("loadgen-{core}"))
            .io_memory(1 << 20)
            // Producers and consumers share the core in task queues of equal shares; glommio
            // switches queues only when the running one yields past this timer (100 ms by
            // default), so a busy producer queue held a tailing consumer's fetches for tens of
            // milliseconds each (issue #11: consumers at 0.2 of produce, fetch p50 46 ms against
            // the broker's 12 ms).
            .preempt_timer(QUEUE_SLICE)
            .spawn(move || {
                DONE_ON_EXIT.with(|slot| *slot.borrow_mut() = Some(DoneOnExit(done)));
                executor_main(config, shared, producers, consumers)
            })
            .map_err(|error| format!("starting the executor on core {core}: {error}"))?;
        handles.push(handle);
    }

    // Start once every consumer is positioned at the log end (or an executor gave up).
    let ready_deadline = Instant::now() + Duration::from_secs(60);
    while shared.consumers_ready.load(Ordering::SeqCst) < config.consumers as usize
        && executors_done.load(Ordering::SeqCst) == 0
        && Instant::now() < ready_deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    shared
        .start_ns
        .store(shared.now_ns().max(1), Ordering::SeqCst);

    // The live line.
    let mut last = (0u64, 0u64);
    let mut second = 0u64;
    // Measured seconds in which producers that were still producing had nothing acknowledged.
    let mut stalled_s = 0u64;
    while executors_done.load(Ordering::SeqCst) < executors {
        std::thread::sleep(Duration::from_millis(100));
        let elapsed = shared.now_ns() - shared.start_ns.load(Ordering::SeqCst);
        if elapsed / 1_000_000_000 <= second {
            continue;
        }
        second = elapsed / 1_000_000_000;
        let now = (
            shared.acked.load(Ordering::Relaxed),
            shared.consumed.load(Ordering::Relaxed),
        );
        let mib = |messages: u64| (messages * config.message_size as u64) as f64 / (1 << 20) as f64;
        // The p99 of the second just past (then the window starts over), as OpenMessaging
        // Benchmark's periodic lines do: a soak or a long run shows when latency changed.
        let p99 = |h: &Mutex<Histogram<u64>>| {
            let mut h = h.lock().unwrap_or_else(|e| e.into_inner());
            let p99 = if h.is_empty() {
                0
            } else {
                h.value_at_quantile(0.99)
            };
            h.reset();
            p99
        };
        // The line covers the second before `elapsed`.
        let phase = if second * 1_000_000_000 <= config.warmup.as_nanos() as u64 {
            "warmup"
        } else {
            "measure"
        };
        // A stalled second: inside the measured window (not the flush after it), producers
        // still at work, nothing acknowledged (at rates of at least a message a second).
        let in_window =
            second * 1_000_000_000 <= (config.warmup + config.duration).as_nanos() as u64;
        let producing = config.producers > 0
            && shared.producers_done.load(Ordering::SeqCst) < config.producers as usize;
        if phase == "measure" && in_window && producing && now.0 == last.0 {
            stalled_s += 1;
        }
        eprintln!(
            "[{second:>4}s {phase}] produce {:>9} msg/s {:>8.1} MiB/s p99 {:>7} us | consume {:>9} msg/s {:>8.1} MiB/s e2e p99 {:>7} us",
            now.0 - last.0,
            mib(now.0 - last.0),
            p99(&shared.live_publish),
            now.1 - last.1,
            mib(now.1 - last.1),
            p99(&shared.live_e2e),
        );
        last = now;
    }

    let mut publish = histogram();
    let mut delay = histogram();
    let mut e2e = histogram();
    let mut fetch = histogram();
    let mut checker = SequenceChecker::new();
    let mut acked: HashMap<u32, u64> = HashMap::new();
    let (mut produced, mut produced_bytes, mut consumed, mut consumed_bytes, mut errors) =
        (0, 0, 0, 0, 0);
    let mut reconnects = 0;
    let mut fatal = Vec::new();
    for handle in handles {
        let stats = handle
            .join()
            .map_err(|error| format!("an executor failed: {error}"))?;
        let stats = match stats {
            Ok(stats) => stats,
            Err(error) => {
                fatal.push(error);
                continue;
            }
        };
        publish.add(&stats.publish).map_err(|e| e.to_string())?;
        delay.add(&stats.delay).map_err(|e| e.to_string())?;
        e2e.add(&stats.e2e).map_err(|e| e.to_string())?;
        fetch.add(&stats.fetch).map_err(|e| e.to_string())?;
        checker.merge(&stats.checker);
        for (producer, count) in stats.acked {
            *acked.entry(producer).or_default() += count;
        }
        produced += stats.produced;
        produced_bytes += stats.produced_bytes;
        consumed += stats.consumed;
        consumed_bytes += stats.consumed_bytes;
        errors += stats.errors;
        reconnects += stats.reconnects;
        for error in stats.first_errors {
            eprintln!("error: {error}");
        }
    }
    if !fatal.is_empty() {
        return Err(fatal.join("; "));
    }
    // With --messages the work may end before --duration: measure up to the last event.
    let seconds = match config.messages {
        None => config.duration.as_secs_f64(),
        Some(_) => {
            let measure_start =
                shared.start_ns.load(Ordering::SeqCst) + config.warmup.as_nanos() as u64;
            let last = shared.last_measured_ns.load(Ordering::SeqCst);
            (last.saturating_sub(measure_start) as f64 / 1e9).min(config.duration.as_secs_f64())
        }
    };
    let lost = match (config.consumers, config.producers, config.messages) {
        (0, _, _) => 0,
        // A catch-up read: everything asked for must arrive.
        (_, 0, Some(messages)) => messages.saturating_sub(checker.distinct),
        _ => checker.lost(&acked),
    };
    Ok(Report {
        config: config.summary(partitions),
        produce: Throughput::over(produced, produced_bytes, seconds),
        publish_latency_us: Percentiles::of(&publish),
        publish_delay_us: Percentiles::of(&delay),
        consume: Throughput::over(consumed, consumed_bytes, seconds),
        e2e_latency_us: Percentiles::of(&e2e),
        fetch_latency_us: Percentiles::of(&fetch),
        errors,
        lost,
        duplicates: checker.duplicates,
        out_of_order: checker.out_of_order,
        measured_s: seconds,
        reconnects,
        stalled_s,
        histograms: [
            ("publish", publish),
            ("publish-delay", delay),
            ("end-to-end", e2e),
            ("fetch", fetch),
        ]
        .into_iter()
        .filter(|(_, histogram)| !histogram.is_empty())
        .map(|(name, histogram)| (name.to_string(), histogram))
        .collect(),
        find_max: None,
    })
}

/// Counts its executor thread as done when the thread ends, however it ends: the live loop
/// waits until every executor is done, and an executor that panicked (in any of its tasks)
/// and was counted only on the way out of its main future kept `run` waiting for ever.
struct DoneOnExit(Arc<AtomicUsize>);

impl Drop for DoneOnExit {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

thread_local! {
    /// The executor thread's [`DoneOnExit`]: thread-local values are dropped when the thread
    /// exits, after a panic's unwinding too.
    static DONE_ON_EXIT: RefCell<Option<DoneOnExit>> = const { RefCell::new(None) };
}

fn client_options(config: &Config, name: &str) -> ClientOptions {
    ClientOptions {
        client_id: name.to_string(),
        request_timeout: config.request_timeout,
        ..ClientOptions::default()
    }
}

/// Creates the topic if asked, and returns its partition count.
fn setup(config: &Config) -> Result<u32, String> {
    let config = config.clone();
    let thread = std::thread::spawn(move || -> Result<u32, String> {
        let executor = LocalExecutorBuilder::default()
            .name("loadgen-setup")
            .io_memory(1 << 20)
            .make()
            .map_err(|error| format!("starting the executor: {error}"))?;
        executor.run(async move {
            let client = Client::connect(config.broker, client_options(&config, "loadgen"))
                .await
                .map_err(|error| format!("connecting to {}: {error}", config.broker))?;
            if config.create_topic {
                client
                    .create_topic(
                        &config.topic,
                        config.partitions,
                        TopicConfigOwned::default(),
                    )
                    .await
                    .map_err(|error| format!("creating topic {:?}: {error}", config.topic))?;
            }
            let metadata = client
                .topic_metadata(&config.topic)
                .await
                .map_err(|error| format!("topic {:?}: {error}", config.topic))?;
            let _ = client.close().await;
            u32::try_from(metadata.partitions.len())
                .ok()
                .filter(|count| *count > 0)
                .ok_or_else(|| format!("topic {:?} has no partitions", config.topic))
        })
    });
    thread
        .join()
        .map_err(|_| "the setup thread panicked".to_string())?
}

async fn executor_main(
    config: Config,
    shared: Arc<Shared>,
    producers: Vec<u32>,
    consumers: Vec<(u32, Vec<u32>)>,
) -> Result<Stats, String> {
    let stats = Rc::new(RefCell::new(Stats::new()));
    let config = Rc::new(config);
    let running = Rc::new(std::cell::Cell::new(true));
    let ticker = glommio::spawn_local({
        let (stats, shared, running) = (stats.clone(), shared.clone(), running.clone());
        async move {
            loop {
                glommio::timer::sleep(Duration::from_millis(250)).await;
                merge_live(&stats, &shared);
                if !running.get() {
                    break;
                }
            }
        }
    });
    // Consumers and producers get their shares of the executor as two queues, however many
    // producers there are: otherwise 100 busy producer tasks leave one consumer 1% of the
    // core. Consumers get the larger share: a closed-loop producer takes every cycle it is
    // given, and with equal shares a consumer that fell out of the broker's cache never
    // caught up (the closed loop was bistable: 416k/416k msg/s in one run, 591/100 MiB/s in
    // the next). A consumer that waits for data leaves its share to the producers.
    let executor = glommio::executor();
    let consumer_queue = executor.create_task_queue(
        Shares::Static(CONSUMER_SHARES),
        Latency::Matters(QUEUE_SLICE),
        "consumers",
    );
    let producer_queue = executor.create_task_queue(
        Shares::Static(1000),
        Latency::Matters(QUEUE_SLICE),
        "producers",
    );
    let mut tasks = Vec::new();
    for (id, partitions) in consumers {
        let task = glommio::spawn_local_into(
            consume(
                config.clone(),
                shared.clone(),
                stats.clone(),
                id,
                partitions,
            ),
            consumer_queue,
        )
        .map_err(|error| format!("spawning consumer {id}: {error}"))?;
        tasks.push(task);
    }
    for id in producers {
        let task = glommio::spawn_local_into(
            produce(config.clone(), shared.clone(), stats.clone(), id),
            producer_queue,
        )
        .map_err(|error| format!("spawning producer {id}: {error}"))?;
        tasks.push(task);
    }
    let mut fatal = Vec::new();
    for task in tasks {
        if let Err(error) = task.await {
            fatal.push(error);
        }
    }
    running.set(false);
    ticker.await;
    if !fatal.is_empty() {
        return Err(fatal.join("; "));
    }
    let stats = Rc::try_unwrap(stats)
        .map_err(|_| "tasks still hold the statistics".to_string())?
        .into_inner();
    Ok(stats)
}

fn merge_live(stats: &Rc<RefCell<Stats>>, shared: &Shared) {
    let mut stats = stats.borrow_mut();
    let stats = &mut *stats;
    for (live, all, merged) in [
        (
            &shared.live_publish,
            &stats.publish,
            &mut stats.publish_merged,
        ),
        (&shared.live_e2e, &stats.e2e, &mut stats.e2e_merged),
    ] {
        if let Ok(mut live) = live.lock() {
            // Every bucket of `all` holds at least what it held at the last merge, so the
            // subtraction cannot fail; same bounds, so neither can the addition.
            let _ = live.add(all);
            let _ = live.subtract(&*merged);
        }
        merged.reset();
        let _ = merged.add(all);
    }
}

async fn wait_for_start(config: &Config, shared: &Shared) -> Window {
    loop {
        let start = shared.start_ns.load(Ordering::SeqCst);
        if start != 0 {
            let measure = start + config.warmup.as_nanos() as u64;
            return Window {
                start,
                measure,
                end: measure + config.duration.as_nanos() as u64,
            };
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
}

/// One producer: its own connection; sends until the end of the window, then flushes.
async fn produce(
    config: Rc<Config>,
    shared: Arc<Shared>,
    stats: Rc<RefCell<Stats>>,
    id: u32,
) -> Result<(), String> {
    let result = produce_inner(&config, &shared, &stats, id).await;
    shared.producers_done.fetch_add(1, Ordering::SeqCst);
    result
}

async fn produce_inner(
    config: &Config,
    shared: &Arc<Shared>,
    stats: &Rc<RefCell<Stats>>,
    id: u32,
) -> Result<(), String> {
    let client = Rc::new(
        Client::connect(
            config.broker,
            client_options(config, &format!("loadgen-p{id}")),
        )
        .await
        .map_err(|error| format!("producer {id}: connecting: {error}"))?,
    );
    let producer = Producer::new(
        client.clone(),
        ProducerOptions {
            acks: config.acks,
            batch_bytes: config.batch_bytes,
            linger: config.linger,
            buffer_bytes_max: config.buffer_bytes,
            idempotence: config.idempotence,
            ..ProducerOptions::default()
        },
    );
    let window = wait_for_start(config, shared).await;
    // Open loop: this producer's share of the rate.
    let period_ns = (config.rate > 0.0).then(|| 1e9 / (config.rate / f64::from(config.producers)));
    let pending = Rc::new(std::cell::Cell::new(0u64));
    // Per partition, the batch the last record went into and the send times of its records.
    let mut batches: FastMap<u32, (Delivery, SendTimes)> = FastMap::default();
    let mut sequence: u64 = 0;
    // This producer's share of --messages.
    let share = config.messages.map(|messages| {
        let producers = u64::from(config.producers);
        messages / producers + u64::from(u64::from(id) < messages % producers)
    });
    // Random keys come from a generator seeded by the producer id, so a run can be repeated.
    let mut random = fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15 ^ (u64::from(id) + 1));
    // Per message, the clock is read once (issue #11: three reads were 8% of the load
    // generator's core): the time a send returned is the next message's send time, unless the
    // loop slept or yielded in between. The record's timestamp comes from the same reading.
    let topic = config.topic.as_str();
    let wall_ms_at_epoch = wall_ms_at_epoch(shared);
    // One message buffer, lent to every send (`RecordRef`): the producer copies the value into
    // its batch before `send_ref` returns, so only the header changes between messages (a
    // fresh zero-filled buffer per message was a malloc, a memset and a free; a `Bytes` handed
    // over per message, an allocation and two atomic updates).
    let mut buffer = payload::encode(Header::default(), config.message_size);
    let mut now = shared.now_ns();
    loop {
        if now >= window.end || share.is_some_and(|share| sequence >= share) {
            break;
        }
        let intended = match period_ns {
            Some(period) => {
                let intended = window.start + (sequence as f64 * period) as u64;
                if intended >= window.end {
                    break;
                }
                if intended > now {
                    let ahead = Duration::from_nanos(intended - now);
                    glommio::timer::sleep(ahead.max(PACING_SLEEP_MIN)).await;
                    now = shared.now_ns();
                }
                intended
            }
            None => now,
        };
        payload::rewrite(
            &mut buffer,
            Header {
                producer: id,
                sequence,
                sent_ns: now,
            },
        );
        let key_text;
        let key_bytes;
        let key = match config.keys {
            Keys::None => None,
            Keys::RoundRobin => {
                key_text = ((u64::from(id) + sequence) % ROUND_ROBIN_KEYS).to_string();
                Some(key_text.as_bytes())
            }
            Keys::Random => {
                key_bytes = random.u64(..).to_le_bytes();
                Some(&key_bytes[..])
            }
        };
        let record = RecordRef {
            key,
            timestamp_ms: Some(wall_ms_at_epoch + (now / 1_000_000) as i64),
            ..RecordRef::new(topic, &buffer)
        };
        sequence += 1;
        let outcome = producer.send_ref(record).await;
        now = shared.now_ns();
        match outcome {
            Ok(delivery) => {
                let sent = now;
                if window.measured(sent) && period_ns.is_some() {
                    let delay_us = sent.saturating_sub(intended) / 1_000;
                    stats.borrow_mut().delay.saturating_record(delay_us);
                }
                // Closed loop: the send time is when the producer took the message.
                let from = if period_ns.is_some() { intended } else { sent };
                pending.set(pending.get() + 1);
                // Records of one batch share one task that waits for the batch: a task per
                // record cost the load generator more than producing the record did.
                let partition = delivery.partition();
                let joined = match batches.get(&partition) {
                    Some((open, sends)) if open.same_batch(&delivery) => {
                        sends.borrow_mut().push(from);
                        true
                    }
                    _ => false,
                };
                if joined {
                    // Its batch's task records it.
                } else {
                    let sends = Rc::new(RefCell::new(vec![from]));
                    batches.insert(partition, (delivery.clone(), sends.clone()));
                    let (stats, shared, pending) = (stats.clone(), shared.clone(), pending.clone());
                    let size = config.message_size as u64;
                    glommio::spawn_local(async move {
                        let outcome = delivery.await;
                        let acked = shared.now_ns();
                        // Complete: no record joins the batch any more.
                        let sends = std::mem::take(&mut *sends.borrow_mut());
                        let count = sends.len() as u64;
                        let mut stats = stats.borrow_mut();
                        match outcome {
                            Ok(_) => {
                                shared.acked.fetch_add(count, Ordering::Relaxed);
                                *stats.acked.entry(id).or_default() += count;
                                if window.measured(acked) {
                                    shared.last_measured_ns.fetch_max(acked, Ordering::SeqCst);
                                    for from in sends {
                                        let latency_us = acked.saturating_sub(from) / 1_000;
                                        stats.publish.saturating_record(latency_us);
                                    }
                                    stats.produced += count;
                                    stats.produced_bytes += size * count;
                                }
                            }
                            Err(error) => {
                                for _ in 0..count {
                                    stats.error(format!("producer {id}: {error}"));
                                }
                            }
                        }
                        pending.set(pending.get() - count);
                    })
                    .detach();
                }
            }
            Err(error) => stats
                .borrow_mut()
                .error(format!("producer {id}: send: {error}")),
        }
        // Yield now and then in both modes. An open-loop producer that is behind its schedule
        // sends without sleeping, and without this it only let the consumers, its own
        // connection and the acknowledgement tasks run when its buffer filled: it then fell
        // further behind than a closed loop at the same rate (issue #11).
        if sequence.is_multiple_of(64) {
            glommio::yield_if_needed().await;
            now = shared.now_ns();
        }
    }
    producer.flush().await;
    while pending.get() > 0 {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    stats.borrow_mut().reconnects += client.reconnects();
    let _ = client.close().await;
    Ok(())
}

/// One consumer: its own connection, `partitions` from the log end; checks every message.
async fn consume(
    config: Rc<Config>,
    shared: Arc<Shared>,
    stats: Rc<RefCell<Stats>>,
    id: u32,
    partitions: Vec<u32>,
) -> Result<(), String> {
    let result = consume_inner(&config, &shared, &stats, id, partitions).await;
    if result.is_err() {
        // Let the run start (and end) without this consumer.
        shared.consumers_ready.fetch_add(1, Ordering::SeqCst);
    }
    result
}

async fn consume_inner(
    config: &Config,
    shared: &Arc<Shared>,
    stats: &Rc<RefCell<Stats>>,
    id: u32,
    partitions: Vec<u32>,
) -> Result<(), String> {
    if partitions.is_empty() {
        shared.consumers_ready.fetch_add(1, Ordering::SeqCst);
        return Ok(());
    }
    let start = if config.from_earliest {
        SeekTo::Earliest
    } else {
        SeekTo::Latest
    };
    // The payload's send time is on this run's clock only when this run produced it.
    let measure_e2e = config.producers > 0;
    // A catch-up read (no producers) ends when --messages arrived.
    let catch_up = if config.producers == 0 {
        config.messages
    } else {
        None
    };
    let client = Rc::new(
        Client::connect(
            config.broker,
            client_options(config, &format!("loadgen-c{id}")),
        )
        .await
        .map_err(|error| format!("consumer {id}: connecting: {error}"))?,
    );
    let mut consumer = Consumer::new(
        client.clone(),
        ConsumerOptions {
            start,
            fetch_bytes_max: config.fetch_bytes,
            partition_bytes_max: config.partition_fetch_bytes,
        },
    );
    consumer.assign(&config.topic, &partitions);
    for &partition in &partitions {
        consumer
            .seek(partition, start)
            .await
            .map_err(|error| format!("consumer {id}: seeking partition {partition}: {error}"))?;
    }
    shared.consumers_ready.fetch_add(1, Ordering::SeqCst);
    let window = wait_for_start(config, shared).await;
    let drain_end = window.end + DRAIN_MAX.as_nanos() as u64;
    let mut progress = (0u64, window.end);
    loop {
        let now = shared.now_ns();
        let consumed = shared.consumed.load(Ordering::SeqCst);
        if consumed != progress.0 {
            progress = (consumed, now.max(window.end));
        }
        let producers_done =
            shared.producers_done.load(Ordering::SeqCst) == config.producers as usize;
        if !producers_done {
            // The idle clock starts when the last producer is done.
            progress.1 = progress.1.max(now);
        }
        if catch_up.is_some_and(|messages| consumed >= messages)
            || now >= window.end && catch_up.is_some()
        {
            break;
        }
        if producers_done
            && catch_up.is_none()
            && (consumed >= shared.acked.load(Ordering::SeqCst)
                || now >= drain_end
                || now >= progress.1 + DRAIN_IDLE.as_nanos() as u64)
        {
            break;
        }
        let asked = shared.now_ns();
        match consumer.poll(Duration::from_millis(100)).await {
            Ok(records) => {
                let received = shared.now_ns();
                let mut stats = stats.borrow_mut();
                // Fetches that came back empty measure the long-poll wait, not the broker.
                if !records.is_empty() && window.measured(received) {
                    stats
                        .fetch
                        .saturating_record(received.saturating_sub(asked) / 1_000);
                    shared
                        .last_measured_ns
                        .fetch_max(received, Ordering::SeqCst);
                }
                let distinct = stats.checker.distinct;
                for record in records {
                    let value = record.value.unwrap_or_default();
                    let Some(header) = payload::decode(&value) else {
                        stats.error(format!(
                            "consumer {id}: a {} byte message in partition {} at offset {}",
                            value.len(),
                            record.partition,
                            record.offset
                        ));
                        continue;
                    };
                    if value.len() != config.message_size {
                        stats.error(format!(
                            "consumer {id}: a {} byte message (expected {}) in partition {} at offset {}",
                            value.len(),
                            config.message_size,
                            record.partition,
                            record.offset
                        ));
                    }
                    stats
                        .checker
                        .record(header.producer, record.partition, header.sequence);
                    if window.measured(received) {
                        if measure_e2e {
                            let latency_us = received.saturating_sub(header.sent_ns) / 1_000;
                            stats.e2e.saturating_record(latency_us);
                        }
                        stats.consumed += 1;
                        stats.consumed_bytes += value.len() as u64;
                    }
                }
                // Once per poll, not per message: the producers' tasks share this counter.
                let new = stats.checker.distinct - distinct;
                if new > 0 {
                    shared.consumed.fetch_add(new, Ordering::SeqCst);
                }
            }
            // A lost connection (a broker restart): the next poll reconnects. It is reported
            // as an outage (reconnects, stalled seconds), not as an error of the broker.
            Err(ClientError::ConnectionLost { .. }) => {}
            Err(error) => {
                stats
                    .borrow_mut()
                    .error(format!("consumer {id}: poll: {error}"));
                glommio::timer::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    stats.borrow_mut().reconnects += client.reconnects();
    let _ = client.close().await;
    Ok(())
}
