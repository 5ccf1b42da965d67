//! Per-shard metrics and their Prometheus text rendering.
//!
//! Each shard owns one [`Metrics`] (a field of `Shard`): plain `Cell`s and two latency
//! histograms, touched only by that shard's tasks, so no atomics. A scrape arriving on any
//! shard asks every shard for a [`MetricsSnapshot`] (a plain owned `Send` struct) through
//! `Shard::call` (`ShardOp::Metrics`, in `Shard::metrics_text`) and renders them all here,
//! each series labelled `shard="N"`. A leaf module: it knows no shard, only counters.
//! Counters and latency quantiles cover the shard's whole life (quantiles are not windowed).

use std::cell::{Cell, RefCell};
use std::fmt::Write;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::topology::ShardId;

/// The HTTP path a scrape asks for.
pub const METRICS_PATH: &str = "/metrics";
/// Latencies above this are recorded as this (1 hour, in microseconds).
const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Significant decimal digits the latency histograms keep.
const LATENCY_DIGITS: u8 = 3;
/// The quantiles every latency summary reports.
pub const QUANTILES: [f64; 3] = [0.5, 0.99, 0.999];

/// The request kinds counted apart; `Invalid` is a frame that failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Handshake.
    Handshake,
    /// Metadata.
    Metadata,
    /// CreateTopic.
    CreateTopic,
    /// DeleteTopic.
    DeleteTopic,
    /// Produce.
    Produce,
    /// Fetch.
    Fetch,
    /// ListOffsets.
    ListOffsets,
    /// InitProducerId.
    InitProducerId,
    /// JoinGroup.
    JoinGroup,
    /// Heartbeat.
    Heartbeat,
    /// LeaveGroup.
    LeaveGroup,
    /// OffsetCommit.
    OffsetCommit,
    /// OffsetFetch.
    OffsetFetch,
    /// ListGroups.
    ListGroups,
    /// DescribeGroup.
    DescribeGroup,
    /// A frame whose request did not decode.
    Invalid,
}

/// How many [`Api`] kinds there are.
pub const API_COUNT: usize = 16;

impl Api {
    /// Every kind, in label order.
    pub const ALL: [Api; API_COUNT] = [
        Api::Handshake,
        Api::Metadata,
        Api::CreateTopic,
        Api::DeleteTopic,
        Api::Produce,
        Api::Fetch,
        Api::ListOffsets,
        Api::InitProducerId,
        Api::JoinGroup,
        Api::Heartbeat,
        Api::LeaveGroup,
        Api::OffsetCommit,
        Api::OffsetFetch,
        Api::ListGroups,
        Api::DescribeGroup,
        Api::Invalid,
    ];

    /// The `api` label value.
    pub fn label(self) -> &'static str {
        match self {
            Api::Handshake => "handshake",
            Api::Metadata => "metadata",
            Api::CreateTopic => "create_topic",
            Api::DeleteTopic => "delete_topic",
            Api::Produce => "produce",
            Api::Fetch => "fetch",
            Api::ListOffsets => "list_offsets",
            Api::InitProducerId => "init_producer_id",
            Api::JoinGroup => "join_group",
            Api::Heartbeat => "heartbeat",
            Api::LeaveGroup => "leave_group",
            Api::OffsetCommit => "offset_commit",
            Api::OffsetFetch => "offset_fetch",
            Api::ListGroups => "list_groups",
            Api::DescribeGroup => "describe_group",
            Api::Invalid => "invalid",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A latency histogram with the exact sum beside it (the histogram's buckets round).
struct Latency {
    histogram: Histogram<u64>,
    sum_us: u64,
}

impl Latency {
    fn new() -> Latency {
        Latency {
            histogram: Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_DIGITS)
                .expect("valid histogram bounds"),
            sum_us: 0,
        }
    }

    fn record(&mut self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.histogram
            .saturating_record(us.clamp(1, LATENCY_US_MAX));
        self.sum_us = self.sum_us.saturating_add(us);
    }

    fn summary(&self) -> LatencySummary {
        LatencySummary {
            quantiles_us: QUANTILES.map(|q| self.histogram.value_at_quantile(q)),
            sum_us: self.sum_us,
            count: self.histogram.len(),
        }
    }
}

/// One shard's live counters. Lives on its shard, `!Send`.
pub struct Metrics {
    requests_total: [Cell<u64>; API_COUNT],
    request_errors_total: [Cell<u64>; API_COUNT],
    received_bytes_total: Cell<u64>,
    sent_bytes_total: Cell<u64>,
    fetch_reads_total: Cell<u64>,
    connections_open: Cell<u64>,
    connections_refused_total: [Cell<u64>; ConnectionRefusal::ALL.len()],
    ticks_total: Cell<u64>,
    produce_latency: RefCell<Latency>,
    fetch_latency: RefCell<Latency>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// All zero.
    pub fn new() -> Metrics {
        Metrics {
            requests_total: Default::default(),
            request_errors_total: Default::default(),
            received_bytes_total: Cell::new(0),
            sent_bytes_total: Cell::new(0),
            fetch_reads_total: Cell::new(0),
            connections_open: Cell::new(0),
            connections_refused_total: Default::default(),
            ticks_total: Cell::new(0),
            produce_latency: RefCell::new(Latency::new()),
            fetch_latency: RefCell::new(Latency::new()),
        }
    }

    /// Counts one handled request; `failed` when any error code went back to the client.
    /// Produce and fetch also record how long they took (a fetch's long-poll wait included).
    pub fn record_request(&self, api: Api, failed: bool, elapsed: Duration) {
        add(&self.requests_total[api.index()], 1);
        if failed {
            add(&self.request_errors_total[api.index()], 1);
        }
        match api {
            Api::Produce => self.produce_latency.borrow_mut().record(elapsed),
            Api::Fetch => self.fetch_latency.borrow_mut().record(elapsed),
            _ => {}
        }
    }

    /// Counts a request frame received.
    pub fn record_received(&self, bytes: usize) {
        add(&self.received_bytes_total, bytes as u64);
    }

    /// Counts a response frame sent.
    pub fn record_sent(&self, bytes: usize) {
        add(&self.sent_bytes_total, bytes as u64);
    }

    /// Counts a partition read a fetch sent to its log (not one the recent-batch cache
    /// answered on the fetch's shard).
    pub fn record_fetch_read(&self) {
        add(&self.fetch_reads_total, 1);
    }

    /// One tick of the shard's timer task.
    pub fn tick(&self) {
        add(&self.ticks_total, 1);
    }

    /// A client connection opened on this shard.
    pub fn connection_opened(&self) {
        add(&self.connections_open, 1);
    }

    /// A client connection on this shard closed.
    pub fn connection_closed(&self) {
        let open = self.connections_open.get();
        assert!(open > 0, "more connections closed than opened");
        self.connections_open.set(open - 1);
    }

    /// A connection closed at accept, and why.
    pub fn connection_refused(&self, reason: ConnectionRefusal) {
        add(&self.connections_refused_total[reason as usize], 1);
    }

    /// A copy of the counters, to send to the shard rendering a scrape.
    pub fn snapshot(&self, shard: ShardId, partitions_owned: u64) -> MetricsSnapshot {
        MetricsSnapshot {
            shard,
            requests_total: self.requests_total.each_ref().map(Cell::get),
            request_errors_total: self.request_errors_total.each_ref().map(Cell::get),
            received_bytes_total: self.received_bytes_total.get(),
            sent_bytes_total: self.sent_bytes_total.get(),
            fetch_reads_total: self.fetch_reads_total.get(),
            connections_open: self.connections_open.get(),
            connections_refused_total: self.connections_refused_total.each_ref().map(Cell::get),
            ticks_total: self.ticks_total.get(),
            partitions_owned,
            produce_latency: self.produce_latency.borrow().summary(),
            fetch_latency: self.fetch_latency.borrow().summary(),
        }
    }
}

/// Why a connection was closed as soon as it was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionRefusal {
    /// The shard already served `connections_max` connections.
    ConnectionsMax = 0,
    /// Its address already held `connections_per_ip_max` ([`crate::per_ip`]).
    PerIp = 1,
}

impl ConnectionRefusal {
    /// Every reason, in index order.
    pub const ALL: [ConnectionRefusal; 2] =
        [ConnectionRefusal::ConnectionsMax, ConnectionRefusal::PerIp];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            ConnectionRefusal::ConnectionsMax => "connections_max",
            ConnectionRefusal::PerIp => "per_ip",
        }
    }
}

fn add(cell: &Cell<u64>, amount: u64) {
    cell.set(cell.get().wrapping_add(amount));
}

/// Quantiles, sum and count of one latency histogram, in microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencySummary {
    /// The values at [`QUANTILES`], in order.
    pub quantiles_us: [u64; QUANTILES.len()],
    /// Sum of every recorded latency.
    pub sum_us: u64,
    /// Latencies recorded.
    pub count: u64,
}

/// One shard's metrics at one moment: plain owned data that crosses shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Whose.
    pub shard: ShardId,
    /// Requests handled, indexed like [`Api::ALL`].
    pub requests_total: [u64; API_COUNT],
    /// Requests answered with an error code, indexed like [`Api::ALL`].
    pub request_errors_total: [u64; API_COUNT],
    /// Request frame bytes received (prefix included).
    pub received_bytes_total: u64,
    /// Response frame bytes sent (prefix included).
    pub sent_bytes_total: u64,
    /// Partition reads fetches sent to their logs.
    pub fetch_reads_total: u64,
    /// Client connections open now.
    pub connections_open: u64,
    /// Connections closed at accept, indexed like [`ConnectionRefusal::ALL`].
    pub connections_refused_total: [u64; ConnectionRefusal::ALL.len()],
    /// Ticks of the shard's timer task (the group coordinator's; a busy partition checks its
    /// own timers at the same interval).
    pub ticks_total: u64,
    /// Partitions this shard serves now.
    pub partitions_owned: u64,
    /// Produce request latency.
    pub produce_latency: LatencySummary,
    /// Fetch request latency.
    pub fetch_latency: LatencySummary,
}

/// The Prometheus text exposition format (version 0.0.4) of `snapshots`.
pub fn render(snapshots: &[MetricsSnapshot]) -> String {
    let mut out = String::with_capacity(4096);
    let header = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
    };
    header(
        &mut out,
        "ringbus_requests_total",
        "counter",
        "Requests handled, by API.",
    );
    for snapshot in snapshots {
        for api in Api::ALL {
            let _ = writeln!(
                out,
                "ringbus_requests_total{{shard=\"{}\",api=\"{}\"}} {}",
                snapshot.shard.0,
                api.label(),
                snapshot.requests_total[api.index()]
            );
        }
    }
    header(
        &mut out,
        "ringbus_request_errors_total",
        "counter",
        "Requests answered with an error code (whole request or any partition), by API.",
    );
    for snapshot in snapshots {
        for api in Api::ALL {
            let _ = writeln!(
                out,
                "ringbus_request_errors_total{{shard=\"{}\",api=\"{}\"}} {}",
                snapshot.shard.0,
                api.label(),
                snapshot.request_errors_total[api.index()]
            );
        }
    }
    header(
        &mut out,
        "ringbus_connections_refused_total",
        "counter",
        "Connections closed at accept, by reason (connections_max: the shard's limit; per_ip: \
         the address's limit).",
    );
    for snapshot in snapshots {
        for reason in ConnectionRefusal::ALL {
            let _ = writeln!(
                out,
                "ringbus_connections_refused_total{{shard=\"{}\",reason=\"{}\"}} {}",
                snapshot.shard.0,
                reason.label(),
                snapshot.connections_refused_total[reason as usize]
            );
        }
    }
    let scalars: [(&str, &str, &str, ScalarOf); 6] = [
        (
            "ringbus_received_bytes_total",
            "counter",
            "Request frame bytes received.",
            |s| s.received_bytes_total,
        ),
        (
            "ringbus_sent_bytes_total",
            "counter",
            "Response frame bytes sent.",
            |s| s.sent_bytes_total,
        ),
        (
            "ringbus_fetch_reads_total",
            "counter",
            "Partition reads fetches sent to the partitions' logs (the recent-batch cache's \
             answers on the fetch's shard aside).",
            |s| s.fetch_reads_total,
        ),
        (
            "ringbus_connections_open",
            "gauge",
            "Client connections open.",
            |s| s.connections_open,
        ),
        (
            "ringbus_ticks_total",
            "counter",
            "Ticks of the shard's group timer (busy partitions check their timers at the same rate).",
            |s| s.ticks_total,
        ),
        (
            "ringbus_partitions_owned",
            "gauge",
            "Partitions the shard serves.",
            |s| s.partitions_owned,
        ),
    ];
    for (name, kind, help, value) in scalars {
        header(&mut out, name, kind, help);
        for snapshot in snapshots {
            let _ = writeln!(
                out,
                "{name}{{shard=\"{}\"}} {}",
                snapshot.shard.0,
                value(snapshot)
            );
        }
    }
    let summaries: [(&str, &str, SummaryOf); 2] = [
        (
            "ringbus_produce_latency_seconds",
            "Produce request latency, from decode to response.",
            |s| &s.produce_latency,
        ),
        (
            "ringbus_fetch_latency_seconds",
            "Fetch request latency, from decode to response (long-poll wait included).",
            |s| &s.fetch_latency,
        ),
    ];
    for (name, help, summary) in summaries {
        header(&mut out, name, "summary", help);
        for snapshot in snapshots {
            let shard = snapshot.shard.0;
            let summary = summary(snapshot);
            for (quantile, us) in QUANTILES.iter().zip(summary.quantiles_us) {
                let _ = writeln!(
                    out,
                    "{name}{{shard=\"{shard}\",quantile=\"{quantile}\"}} {}",
                    seconds(us)
                );
            }
            let _ = writeln!(
                out,
                "{name}_sum{{shard=\"{shard}\"}} {}",
                seconds(summary.sum_us)
            );
            let _ = writeln!(out, "{name}_count{{shard=\"{shard}\"}} {}", summary.count);
        }
    }
    out
}

/// Reads one number of a snapshot.
type ScalarOf = fn(&MetricsSnapshot) -> u64;
/// Reads one latency summary of a snapshot.
type SummaryOf = fn(&MetricsSnapshot) -> &LatencySummary;

/// Microseconds as seconds: 1_500 -> 0.0015.
fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::{Api, ConnectionRefusal, Metrics, render};
    use crate::topology::ShardId;
    use std::time::Duration;

    #[test]
    fn every_series_has_help_and_type_and_a_shard_label() {
        let metrics = Metrics::new();
        metrics.record_request(Api::Produce, false, Duration::from_millis(2));
        metrics.record_request(Api::Fetch, true, Duration::from_micros(300));
        metrics.connection_opened();
        metrics.record_received(100);
        metrics.connection_refused(ConnectionRefusal::PerIp);
        let text = render(&[
            metrics.snapshot(ShardId(0), 3),
            Metrics::new().snapshot(ShardId(1), 1),
        ]);
        assert!(text.contains("ringbus_requests_total{shard=\"0\",api=\"produce\"} 1\n"));
        assert!(text.contains("ringbus_request_errors_total{shard=\"0\",api=\"fetch\"} 1\n"));
        assert!(text.contains("ringbus_partitions_owned{shard=\"1\"} 1\n"));
        assert!(text.contains("ringbus_connections_open{shard=\"0\"} 1\n"));
        assert!(
            text.contains("ringbus_connections_refused_total{shard=\"0\",reason=\"per_ip\"} 1\n")
        );
        assert!(text.contains(
            "ringbus_connections_refused_total{shard=\"1\",reason=\"connections_max\"} 0\n"
        ));
        assert!(text.contains("ringbus_received_bytes_total{shard=\"0\"} 100\n"));
        assert!(text.contains("ringbus_produce_latency_seconds_sum{shard=\"0\"} 0.002\n"));
        assert!(text.contains("ringbus_produce_latency_seconds_count{shard=\"0\"} 1\n"));
        assert!(
            text.contains("ringbus_fetch_latency_seconds{shard=\"0\",quantile=\"0.99\"} 0.0003")
        );
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let name = line.split(['{', ' ']).next().expect("a name");
            let family = name
                .strip_suffix("_sum")
                .or_else(|| name.strip_suffix("_count"))
                .filter(|family| text.contains(&format!("# TYPE {family} summary")))
                .unwrap_or(name);
            assert!(text.contains(&format!("# HELP {family} ")), "{line}");
            assert!(text.contains(&format!("# TYPE {family} ")), "{line}");
            assert!(line.contains("shard=\""), "{line}");
        }
    }
}
