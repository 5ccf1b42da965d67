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

use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};

use client::{ConsumedRecord, Consumer, ConsumerOptions, SeekTo};

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
}

/// Runs `consume`.
pub fn run(args: ConsumeArgs) -> Result<(), String> {
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
        let mut last_record = Instant::now();
        let mut line = Vec::new();
        'polling: loop {
            if args.max_messages.is_some_and(|max| printed >= max) {
                break;
            }
            let wait = match timeout {
                Some(timeout) => {
                    let idle = last_record.elapsed();
                    if idle >= timeout {
                        break;
                    }
                    (timeout - idle).min(POLL_WAIT_MAX)
                }
                None => POLL_WAIT_MAX,
            };
            let records = consumer
                .poll(wait)
                .await
                .map_err(|error| error.to_string())?;
            if !records.is_empty() {
                last_record = Instant::now();
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
