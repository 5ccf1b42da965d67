//! `ringbus produce`: each line of stdin becomes one record.
//!
//! Lines are split at `\n` (a `\r` before it is dropped too); an empty line is a record with an
//! empty value, and a last line without a newline is a record. With `--key-separator S` a line
//! is `KEY S VALUE`, split at the first `S`; a line without `S` fails (reported, and the
//! command exits non-zero, the other lines are still produced). Keys are the line's bytes, so
//! a keyed record lands where Kafka's murmur2 partitioner puts it.
//!
//! stdin is read on glommio's blocking thread, a chunk of already-buffered lines at a time, so
//! linger timers and acknowledgements keep running while it waits for input (an interactive
//! terminal works as well as a pipe). The command exits 0 once every record is acknowledged at
//! `--acks`; with `--acks 0`, once every record is written and the broker, after the client
//! shut down its side of the connection, has closed its own (so it has handled them all).
//! Failures are printed to stderr as `error: line N: ...` and make the exit non-zero; once the
//! connection is lost, the command stops reading stdin.

use std::io::{BufRead, BufReader, Stdin};
use std::rc::Rc;

use bytes::Bytes;
use client::{Acks, Delivery, Producer, ProducerOptions, ProducerRecord};
use glommio::channels::local_channel::{self, LocalReceiver};

use crate::common::{self, ConnectArgs};

/// Lines handed over from the blocking reader at once, at most.
const LINES_PER_READ_MAX: usize = 4096;
/// Deliveries waiting to be checked before reading more input.
const DELIVERIES_QUEUED_MAX: usize = 64 << 10;
/// Failures printed one by one; after that only the count.
const FAILURES_PRINTED_MAX: u64 = 20;

/// `produce`.
#[derive(clap::Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The topic to produce to.
    #[arg(long)]
    topic: String,
    /// Put every record in this partition (default: by key hash; keyless records fill one
    /// partition's batch, then move on round-robin).
    #[arg(long)]
    partition: Option<u32>,
    /// Split each line at the first occurrence of this string into KEY and VALUE.
    #[arg(long, value_parser = non_empty)]
    key_separator: Option<String>,
    /// When the broker acknowledges: 0 = never (fire and forget), 1 = once written to the log
    /// file, all = once fdatasync'd.
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all"])]
    acks: String,
    /// Milliseconds a batch waits for more records before it is sent.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
}

fn non_empty(value: &str) -> Result<String, String> {
    if value.is_empty() {
        Err("must not be empty".to_string())
    } else {
        Ok(value.to_string())
    }
}

/// Runs `produce`.
pub fn run(args: ProduceArgs) -> Result<(), String> {
    let address = args.connect.address()?;
    let acks = match args.acks.as_str() {
        "0" => Acks::None,
        "1" => Acks::Written,
        _ => Acks::Durable,
    };
    common::run(async move {
        // With acks 0 nothing tells which records a lost connection took with it, and the
        // final close (below) vouches only for its own connection: a lost connection must fail
        // the command, so it never reconnects.
        let mut connect = args.connect.clone();
        if acks == Acks::None {
            connect.reconnect_timeout_ms = 0;
        }
        let client = Rc::new(connect.connect(address).await?);
        let options = ProducerOptions {
            acks,
            linger: std::time::Duration::from_millis(args.linger_ms),
            ..ProducerOptions::default()
        };
        let producer = Producer::new(client.clone(), options);
        let (deliveries, queued) = local_channel::new_bounded(DELIVERIES_QUEUED_MAX);
        let checker = glommio::spawn_local(check_deliveries(queued));
        let separator = args.key_separator.as_deref().map(str::as_bytes);

        let mut reader = BufReader::with_capacity(64 << 10, std::io::stdin());
        let mut line_number: u64 = 0;
        let mut malformed: u64 = 0;
        loop {
            let (returned, read) = glommio::executor()
                .spawn_blocking(move || read_lines(reader))
                .await;
            reader = returned;
            let (lines, end) = read.map_err(|error| format!("reading stdin: {error}"))?;
            for line in lines {
                line_number += 1;
                let Some(record) = record(&args.topic, args.partition, separator, line) else {
                    malformed += 1;
                    if malformed <= FAILURES_PRINTED_MAX {
                        eprintln!("error: line {line_number}: no key separator");
                    }
                    continue;
                };
                let delivery = producer
                    .send(record)
                    .await
                    .map_err(|error| format!("line {line_number}: {error}"))?;
                if deliveries.send((line_number, delivery)).await.is_err() {
                    return Err("the delivery checker stopped".to_string());
                }
            }
            if end {
                break;
            }
            if let Some(failure) = client.failure()
                && client.options().reconnect_timeout.is_zero()
            {
                // Every later record would fail the same way: stop reading, report what we have.
                // (With reconnecting on, the next request opens a new connection.)
                eprintln!("error: stopped reading stdin after line {line_number}: {failure}");
                break;
            }
        }
        producer.flush().await;
        drop(deliveries);
        let failed = checker.await;
        // A graceful close: with acks 0 this is how we know the broker handled every record.
        let closed = client.close().await;
        let failed = failed + malformed;
        if failed > 0 {
            return Err(format!("{failed} of {line_number} records failed"));
        }
        if acks == Acks::None {
            closed.map_err(|error| format!("closing the connection: {error}"))?;
        }
        Ok(())
    })
}

/// The record for one line, or `None` if the line lacks the key separator.
fn record(
    topic: &str,
    partition: Option<u32>,
    separator: Option<&[u8]>,
    line: Vec<u8>,
) -> Option<ProducerRecord> {
    let line = Bytes::from(line);
    let (key, value) = match separator {
        None => (None, line),
        Some(separator) => {
            let at = line
                .windows(separator.len())
                .position(|window| window == separator)?;
            (Some(line.slice(..at)), line.slice(at + separator.len()..))
        }
    };
    Some(ProducerRecord {
        topic: topic.into(),
        partition,
        key,
        value,
        ..ProducerRecord::default()
    })
}

/// Awaits deliveries in the order they were sent, printing failures; returns how many failed.
async fn check_deliveries(queued: LocalReceiver<(u64, Delivery)>) -> u64 {
    let mut failed: u64 = 0;
    while let Some((line_number, delivery)) = queued.recv().await {
        if let Err(error) = delivery.await {
            failed += 1;
            if failed <= FAILURES_PRINTED_MAX {
                eprintln!("error: line {line_number}: {error}");
            }
        }
    }
    failed
}

type ReadResult = std::io::Result<(Vec<Vec<u8>>, bool)>;

/// Reads at least one line (blocking), then more only while whole lines are already buffered,
/// so lines in hand are never held back waiting for input. Returns the lines without their
/// line ends, and whether stdin has ended.
fn read_lines(mut reader: BufReader<Stdin>) -> (BufReader<Stdin>, ReadResult) {
    let mut lines = Vec::new();
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return (reader, Ok((lines, true))),
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                lines.push(line);
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return (reader, Err(error)),
        }
        if lines.len() >= LINES_PER_READ_MAX || !reader.buffer().contains(&b'\n') {
            return (reader, Ok((lines, false)));
        }
    }
}
