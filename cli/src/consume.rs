//! `ringbus consume`: prints records to stdout, one per line.
//!
//! Line format: `[PARTITION<tab>][OFFSET<tab>][KEY<separator>]VALUE`, where the partition is
//! printed with `--print-partition`, the offset with `--print-offset`, the key with
//! `--print-key` (separator `--key-separator`, a tab by default). Keys and values are written
//! as their raw bytes; a null key or value prints as `null` (as kafka-console-consumer does).
//! Records of one partition come in offset order; partitions interleave.
//!
//! Start: the latest offset (only new records) by default, the earliest with
//! `--from-beginning`, or `--offset N` (for every consumed partition). Stop: after
//! `--max-messages` records, or once `--timeout-ms` passes without a new record; without
//! either it runs until killed. Both stops exit 0, after printing `Processed a total of N
//! messages` to stderr. Errors (unknown topic, a partition error, a corrupt batch) go to stderr
//! with a non-zero exit. A closed stdout (`| head`) ends the command quietly.
//!
//! With `--group G` the command is a member of consumer group G (client::GroupConsumer): the
//! group's coordinator gives it partitions of the topic, it resumes each from the group's
//! committed offset (a partition without one starts at the latest offset, or the earliest with
//! `--from-beginning`), commits what it printed every `--auto-commit-interval-ms` and once more
//! before it exits (at `--max-messages`, after `--timeout-ms`, or on SIGINT / SIGTERM), then
//! leaves the group. Each time its partitions change it prints to stderr
//! `Assigned generation G: TOPIC/PARTITION ...` (or `(none)`).

use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use client::{
    Assignor, Client, ClientError, ConsumedRecord, Consumer, ConsumerOptions, GroupConsumer,
    GroupOptions, OffsetReset, SeekTo,
};

use crate::common::{self, ConnectArgs};

/// The longest single long-poll; the loop polls again after it.
const POLL_WAIT_MAX: Duration = Duration::from_secs(10);

/// `consume`.
#[derive(clap::Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The topic to consume.
    #[arg(long)]
    topic: String,
    /// Consume only this partition (default: every partition of the topic).
    #[arg(long)]
    partition: Option<u32>,
    /// Start at the earliest offset still stored (default: the latest, only new records).
    #[arg(long, conflicts_with = "offset")]
    from_beginning: bool,
    /// Start at this offset (in every consumed partition).
    #[arg(long)]
    offset: Option<u64>,
    /// Stop after this many records.
    #[arg(long)]
    max_messages: Option<u64>,
    /// Stop once this many milliseconds pass without a new record (default: never).
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Print each record's key before its value, followed by the key separator.
    #[arg(long)]
    print_key: bool,
    /// Print each record's offset and a tab before it.
    #[arg(long)]
    print_offset: bool,
    /// Print each record's partition and a tab before it (before the offset, if printed).
    #[arg(long)]
    print_partition: bool,
    /// What separates the key from the value with --print-key [default: a tab].
    #[arg(long, default_value = "\t", hide_default_value = true)]
    key_separator: String,
    /// Consume as a member of this consumer group: partitions are shared with the group's
    /// other members and resume from its committed offsets.
    #[arg(long, conflicts_with_all = ["partition", "offset"])]
    group: Option<String>,
    /// With --group: the coordinator removes this member after this long without a heartbeat.
    #[arg(long, default_value_t = 45_000, requires = "group")]
    session_timeout_ms: u64,
    /// With --group: time between heartbeats (at most a third of the session timeout).
    #[arg(long, default_value_t = 3_000, requires = "group")]
    heartbeat_interval_ms: u64,
    /// With --group: commit what was printed this often (and always before exiting).
    #[arg(long, default_value_t = 5_000, requires = "group")]
    auto_commit_interval_ms: u64,
    /// With --group: how the group shares partitions out; every member must use the same.
    #[arg(long, value_enum, default_value_t = AssignorArg::Range, requires = "group")]
    assignor: AssignorArg,
}

/// `--assignor`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum AssignorArg {
    /// Contiguous ranges of each topic's partitions per member.
    Range,
    /// Partitions dealt to members in turn.
    Roundrobin,
}

/// Runs `consume`.
pub fn run(args: ConsumeArgs) -> Result<(), String> {
    if args.group.is_some() {
        return run_group(args);
    }
    let address = args.connect.address()?;
    let start = if let Some(offset) = args.offset {
        SeekTo::Offset(offset)
    } else if args.from_beginning {
        SeekTo::Earliest
    } else {
        SeekTo::Latest
    };
    let timeout = args.timeout_ms.map(Duration::from_millis);
    common::run(async move {
        let client = Rc::new(args.connect.connect(address).await?);
        let options = ConsumerOptions {
            start,
            ..ConsumerOptions::default()
        };
        let mut consumer = Consumer::new(client.clone(), options);
        let partitions = match args.partition {
            Some(partition) => {
                consumer.assign(&args.topic, &[partition]);
                vec![partition]
            }
            None => consumer
                .assign_all(&args.topic)
                .await
                .map_err(|error| error.to_string())?,
        };
        // Positions are fixed now, before the first poll: "latest" means latest at start-up.
        for &partition in &partitions {
            consumer
                .seek(partition, start)
                .await
                .map_err(|error| error.to_string())?;
        }

        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let mut printed: u64 = 0;
        let mut stop = Stop {
            max_messages: args.max_messages,
            timeout,
            last_record: Instant::now(),
        };
        let mut line = Vec::new();
        'polling: while let Some(wait) = stop.next_wait(printed, POLL_WAIT_MAX) {
            let records = match consumer.poll(wait).await {
                Ok(records) => records,
                Err(error) if goes_on_after(&error, &client) => continue,
                Err(error) => return Err(error.to_string()),
            };
            if !records.is_empty() {
                stop.last_record = Instant::now();
            }
            for record in &records {
                if args.max_messages.is_some_and(|max| printed >= max) {
                    break;
                }
                line.clear();
                format_record(&args, record, &mut line);
                if out.write_all(&line).is_err() {
                    break 'polling;
                }
                printed += 1;
            }
            if let Err(error) = out.flush() {
                if error.kind() == std::io::ErrorKind::BrokenPipe {
                    break;
                }
                return Err(format!("writing to stdout: {error}"));
            }
        }
        let _ = out.flush();
        eprintln!("Processed a total of {printed} messages");
        let _ = client.close().await;
        Ok(())
    })
}

/// Stops the printing loop: at --max-messages, after --timeout-ms without a record, or when
/// `stop` says so. Returns the wait for the next poll, or None to stop.
struct Stop {
    max_messages: Option<u64>,
    timeout: Option<Duration>,
    last_record: Instant,
}

impl Stop {
    fn next_wait(&self, printed: u64, wait_max: Duration) -> Option<Duration> {
        if self.max_messages.is_some_and(|max| printed >= max) {
            return None;
        }
        match self.timeout {
            Some(timeout) => {
                let idle = self.last_record.elapsed();
                (idle < timeout).then(|| (timeout - idle).min(wait_max))
            }
            None => Some(wait_max),
        }
    }
}

/// The longest poll of a group member, so that a signal is noticed soon.
const GROUP_POLL_WAIT_MAX: Duration = Duration::from_millis(500);

/// `consume --group`.
fn run_group(args: ConsumeArgs) -> Result<(), String> {
    let address = args.connect.address()?;
    let group = args.group.clone().expect("checked by the caller");
    // Before the executor starts: every thread must inherit the blocked signals.
    let stopping = broker::server::stop_flag_on_signal();
    common::run(async move {
        let client = Rc::new(args.connect.connect(address).await?);
        let options = GroupOptions {
            session_timeout: Duration::from_millis(args.session_timeout_ms),
            // Members of this command rejoin within a poll; a shorter wait also bounds how long
            // a join (which does not watch for signals) can delay a Ctrl-C.
            rebalance_timeout: Duration::from_millis(args.session_timeout_ms),
            heartbeat_interval: Duration::from_millis(args.heartbeat_interval_ms),
            auto_commit_interval: Some(Duration::from_millis(args.auto_commit_interval_ms)),
            assignor: match args.assignor {
                AssignorArg::Range => Assignor::Range,
                AssignorArg::Roundrobin => Assignor::RoundRobin,
            },
            offset_reset: if args.from_beginning {
                OffsetReset::Earliest
            } else {
                OffsetReset::Latest
            },
            ..GroupOptions::new(group)
        };
        let mut consumer = GroupConsumer::subscribe(client.clone(), options, &[&args.topic]);
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let mut printed: u64 = 0;
        let mut generation = -1;
        let mut stop = Stop {
            max_messages: args.max_messages,
            timeout: args.timeout_ms.map(Duration::from_millis),
            last_record: Instant::now(),
        };
        let mut line = Vec::new();
        let result: Result<(), String> = async {
            'polling: while !stopping.load(Ordering::SeqCst) {
                let Some(wait) = stop.next_wait(printed, GROUP_POLL_WAIT_MAX) else {
                    break;
                };
                let records = match consumer.poll(wait).await {
                    Ok(records) => records,
                    Err(error) if goes_on_after(&error, &client) => continue,
                    Err(error) => return Err(error.to_string()),
                };
                if consumer.generation() != generation {
                    generation = consumer.generation();
                    let assigned: Vec<String> = consumer
                        .assignment()
                        .iter()
                        .map(|(topic, partition)| format!("{topic}/{partition}"))
                        .collect();
                    let assigned = if assigned.is_empty() {
                        "(none)".to_string()
                    } else {
                        assigned.join(" ")
                    };
                    eprintln!("Assigned generation {generation}: {assigned}");
                }
                if !records.is_empty() {
                    stop.last_record = Instant::now();
                }
                // The first record of this poll not printed, if one was not.
                let mut unprinted = None;
                let mut write_failed = false;
                for (index, record) in records.iter().enumerate() {
                    if args.max_messages.is_some_and(|max| printed >= max) {
                        unprinted = Some(index);
                        break;
                    }
                    line.clear();
                    format_record(&args, record, &mut line);
                    if out.write_all(&line).is_err() {
                        write_failed = true;
                        break;
                    }
                    printed += 1;
                }
                let flushed = out.flush();
                if write_failed || flushed.is_err() {
                    // Lines of this poll may sit unwritten in the buffer: the group delivers
                    // the whole poll again rather than lose any of it (at least once).
                    unprint(&mut consumer, &records);
                    match flushed {
                        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                            return Err(format!("writing to stdout: {error}"));
                        }
                        _ => break 'polling,
                    }
                }
                if let Some(index) = unprinted {
                    unprint(&mut consumer, &records[index..]);
                    break 'polling;
                }
            }
            Ok(())
        }
        .await;
        let _ = out.flush();
        // Commit what was printed and leave, also after an error where the connection lives.
        let closed = consumer.close().await.map_err(|error| error.to_string());
        eprintln!("Processed a total of {printed} messages");
        let _ = client.close().await;
        result.and(closed)
    })
}

/// Moves each partition's position back to its first record in `records`, which were fetched
/// but not printed.
fn unprint(consumer: &mut GroupConsumer, records: &[ConsumedRecord]) {
    let mut first: std::collections::BTreeMap<(&str, u32), u64> = Default::default();
    for record in records {
        first
            .entry((&*record.topic, record.partition))
            .or_insert(record.offset);
    }
    for ((topic, partition), offset) in first {
        // Assigned: the records came from it in this poll.
        let _ = consumer.seek(topic, partition, offset);
    }
}

fn format_record(args: &ConsumeArgs, record: &ConsumedRecord, line: &mut Vec<u8>) {
    if args.print_partition {
        line.extend_from_slice(format!("{}\t", record.partition).as_bytes());
    }
    if args.print_offset {
        line.extend_from_slice(format!("{}\t", record.offset).as_bytes());
    }
    if args.print_key {
        line.extend_from_slice(record.key.as_deref().unwrap_or(b"null"));
        line.extend_from_slice(args.key_separator.as_bytes());
    }
    line.extend_from_slice(record.value.as_deref().unwrap_or(b"null"));
    line.push(b'\n');
}

/// Whether a consume command goes on after a failed poll: a lost connection (a broker
/// restart) is reported and the next poll reconnects, unless `--reconnect-timeout-ms 0`. A
/// broker still unreachable after the reconnect timeout ends the command
/// ([`ClientError::Unreachable`]).
fn goes_on_after(error: &ClientError, client: &Client) -> bool {
    let lost = matches!(error, ClientError::ConnectionLost { .. });
    if lost && !client.options().reconnect_timeout.is_zero() {
        eprintln!("warning: {error}; reconnecting");
        return true;
    }
    false
}
