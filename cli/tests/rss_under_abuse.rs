//! Goal: hostile clients cost only themselves in memory. Thousands of connections that each
//! announce the largest frame the broker accepts and then trickle a few bytes must not grow the
//! broker's resident memory past a bound derived from what one connection may cost, and the
//! broker must keep serving a normal client meanwhile.
//!
//! Method: raise this process's soft descriptor limit to its hard limit (`setrlimit`; the
//! broker, started afterwards, inherits it) and open N = min(10,000, limit - 256) connections
//! to the real binary (2 shards), half on the ringbus listener (an 8-byte prefix claiming a
//! 16 MiB frame: `--frame-bytes-max`'s default) and half on the Kafka listener (a size prefix
//! claiming the same), each followed by 3 bytes of body. Once the broker's
//! `ringbus_connections_open` counts all N, every connection trickles 5 more bytes, and a normal
//! client creates nothing new but produces and fetches one batch (checked byte for byte).
//! VmRSS (/proc/PID/status) is read after a warm-up (topic created, one batch produced and
//! fetched) and twice under abuse (the larger counts).
//!
//! The bound: what a connection may make the broker touch is [`READ_TOUCH_BYTES`]: the
//! page its received bytes land in (net receives into the frame's buffer as bytes arrive,
//! never touching what a header claims; the up to 8 MiB it reserves is address space, not
//! memory) and the 4 KiB a read that waits lands in first (net's `WAIT_READ_BYTES`), plus
//! [`CONNECTION_OVERHEAD_BYTES`] for the rest of it: its tasks (reader, writer, the request
//! queue and permits), glommio's socket source, the allocator's metadata for the reserved
//! extent. The kernel's socket buffers are not the process's RSS.
//! Bound = N x (8 KiB + 16 KiB) + 32 MiB of slack for the allocator's own growth.
//!
//! Measured (debug build, 2 shards, the shared 2-core machine, descriptor hard limit
//! 20,000; the test prints its figures as `rss:` with `--nocapture`): N = 10,000.
//! - 2026-12-05, when a frame's buffer was zeroed 16 KiB ahead of the bytes: 27.9 KB per
//!   connection (RSS 25.1 MiB before, 291 MiB under abuse) against a bound of 344.5 MiB.
//! - 2026-12-07, receiving into unzeroed capacity: 15.9 KB per connection (87.5 MiB
//!   before, 239 MiB under abuse) against a bound of 272.6 MiB (bench-results/reliability.md).
//!
//! The whole test takes about a second.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Broker, RawClient, batch, create_topic, data_dir, fetch_all, produce, scrape, sum};
use schema::wire::{Acks, ErrorCode, FRAME_BYTES_MAX_DEFAULT, FrameHeader};

/// Connections the issue asks for; fewer when the descriptor limit does not allow them.
const CONNECTIONS_WANTED: usize = 10_000;
/// Descriptors left for everything else the test process and the broker open (files, io_uring
/// rings, the normal client, the metrics scrapes).
const DESCRIPTORS_RESERVED: usize = 256;
/// What a peer that announces a frame and sends a few bytes makes net touch: the page of the
/// frame's buffer they land in and the 4 KiB a waiting read lands in first
/// (`net::WAIT_READ_BYTES`, private there).
const READ_TOUCH_BYTES: u64 = 8 << 10;
/// Everything else one idle connection holds in the broker's memory (see the module doc).
const CONNECTION_OVERHEAD_BYTES: u64 = 16 << 10;
/// The allocator's own growth (arenas, caches) and the scrapes, whatever N is.
const SLACK_BYTES: u64 = 32 << 20;
/// How long the broker may take to accept every connection.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn connections_claiming_the_largest_frame_cost_only_what_they_sent() {
    let started = Instant::now();
    let limit = raise_descriptor_limit();
    let connections = CONNECTIONS_WANTED.min(limit.saturating_sub(DESCRIPTORS_RESERVED));
    assert!(
        connections >= 1_000,
        "the descriptor limit ({limit}) allows only {connections} connections"
    );
    let dir = data_dir();
    let broker = Broker::start_with_args(dir.path(), &["--metrics-listen", "127.0.0.1:0"]);
    let metrics = broker.metrics_address.expect("metrics address");
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "normal", 1);
    produce_and_fetch(&mut client, "warm-up", 0);
    let rss_before = vm_rss_bytes(broker.pid());

    // The abuse: every connection claims the largest frame and sends 3 bytes of it.
    let ringbus_claim = FrameHeader::new(
        64,
        FRAME_BYTES_MAX_DEFAULT as usize - 4 - 64,
        FRAME_BYTES_MAX_DEFAULT,
    )
    .expect("the largest frame's header")
    .encode();
    let kafka_claim = (FRAME_BYTES_MAX_DEFAULT as i32).to_be_bytes();
    let mut abusers = Vec::with_capacity(connections);
    for index in 0..connections {
        let (address, claim): (_, &[u8]) = if index % 2 == 0 {
            (broker.address, &ringbus_claim)
        } else {
            (broker.kafka_address, &kafka_claim)
        };
        let mut stream = TcpStream::connect(address)
            .unwrap_or_else(|error| panic!("abusive connection {index}: {error}"));
        stream.write_all(claim).expect("the claim");
        stream.write_all(&[1, 2, 3]).expect("the first bytes");
        abusers.push(stream);
    }
    // The normal client's connection counts too.
    let deadline = Instant::now() + ACCEPT_TIMEOUT;
    loop {
        let open = sum(&scrape(metrics), "ringbus_connections_open", &[]) as usize;
        if open == connections + 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broker accepted {open} of {} connections",
            connections + 1
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for stream in &mut abusers {
        stream.write_all(&[4, 5, 6, 7, 8]).expect("a trickle");
    }

    // The broker still serves a normal client, and its memory stays within the bound.
    produce_and_fetch(&mut client, "during-abuse", 1);
    let rss_first = vm_rss_bytes(broker.pid());
    produce_and_fetch(&mut client, "during-abuse-again", 2);
    let rss_after = rss_first.max(vm_rss_bytes(broker.pid()));
    let grown = rss_after.saturating_sub(rss_before);
    let bound = connections as u64 * (READ_TOUCH_BYTES + CONNECTION_OVERHEAD_BYTES) + SLACK_BYTES;
    eprintln!(
        "rss: {connections} connections (descriptor limit {limit}): before {} KiB, after {} KiB, \
         grown {} KiB ({} bytes per connection), bound {} KiB; {:.1} s",
        rss_before >> 10,
        rss_after >> 10,
        grown >> 10,
        grown / connections as u64,
        bound >> 10,
        started.elapsed().as_secs_f64()
    );
    assert!(
        grown <= bound,
        "RSS grew {grown} bytes for {connections} connections: over the bound of {bound}"
    );

    // Stopped first: the broker then drops the connections without a warning for each.
    broker.stop();
    drop(abusers);
    drop(client);
}

/// Produces one batch to partition 0 of `normal` and fetches it back from its offset.
fn produce_and_fetch(client: &mut RawClient, prefix: &str, expected_offset_index: u64) {
    let bytes = batch(prefix, 4);
    let results = produce(client, "normal", &[(0, bytes.clone())], Acks::Written);
    assert_eq!(results.len(), 1);
    let (error, base_offset) = results[0];
    assert_eq!(error, ErrorCode::None);
    // Each batch holds 4 records: the n-th starts at 4n.
    assert_eq!(base_offset, expected_offset_index * 4);
    let fetched = fetch_all(client, "normal", 0, base_offset);
    assert_eq!(fetched.len(), 1, "one batch from {base_offset}");
    // The broker rewrites the base offset; the records after the header are the same.
    let records = |batch: &[u8]| batch[61..].to_vec();
    assert_eq!(records(&fetched[0]), records(&bytes));
}

/// Raises the soft limit on open descriptors to the hard limit (capped where the hard limit
/// is infinite); returns the soft limit now in force.
fn raise_descriptor_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid, exclusive pointer.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(got, 0, "getrlimit: {}", std::io::Error::last_os_error());
    // An infinite hard limit still meets the kernel's nr_open (1,048,576 by default).
    let wanted = limit.rlim_max.min(1 << 20);
    if limit.rlim_cur < wanted {
        limit.rlim_cur = wanted;
        // SAFETY: setrlimit reads one initialised rlimit through a valid pointer.
        let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
        assert_eq!(set, 0, "setrlimit: {}", std::io::Error::last_os_error());
    }
    limit.rlim_cur as usize
}

/// The resident set of process `pid`, in bytes (VmRSS in /proc/PID/status).
fn vm_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .expect("a VmRSS line");
    let kib: u64 = line
        .trim()
        .strip_suffix("kB")
        .expect("VmRSS in kB")
        .trim()
        .parse()
        .expect("a number");
    kib << 10
}
