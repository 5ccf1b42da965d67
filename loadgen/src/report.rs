//! The result of a run: [`Report`], its JSON (`--json`, a contract: field names and nesting must
//! not change; bench-results/run.sh, soak.sh and tuning-bench.sh read them) and its text table.
//!
//! The JSON is written by serde from the types below and from [`ReportJson`], which gives the
//! report the document's nesting. Rates are rounded as the document has always shown them
//! (msgs/s to 0.1, MiB/s and seconds to 0.001, asked rates to whole messages).

use hdrhistogram::Histogram;
use serde::{Serialize, Serializer};

/// Percentiles of a histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// 99.99th percentile.
    pub p9999: u64,
    /// Largest value.
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of `histogram` (all 0 when it is empty).
    pub fn of(histogram: &Histogram<u64>) -> Percentiles {
        if histogram.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: histogram.value_at_quantile(0.5),
            p90: histogram.value_at_quantile(0.9),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            p9999: histogram.value_at_quantile(0.9999),
            max: histogram.max(),
        }
    }
}

/// Messages and bytes moved in one direction during the measured window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Throughput {
    /// Messages.
    pub messages: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Messages per second.
    #[serde(serialize_with = "tenths")]
    pub msgs_per_s: f64,
    /// MiB (2^20 bytes) per second.
    #[serde(serialize_with = "thousandths")]
    pub mib_per_s: f64,
}

impl Throughput {
    /// `messages` and `bytes` over `seconds`.
    pub fn over(messages: u64, bytes: u64, seconds: f64) -> Throughput {
        let seconds = seconds.max(1e-9);
        Throughput {
            messages,
            bytes,
            msgs_per_s: messages as f64 / seconds,
            mib_per_s: bytes as f64 / seconds / (1u64 << 20) as f64,
        }
    }
}

/// The configuration of a run, as its JSON reports it (`config`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunConfig {
    /// The broker as given.
    pub broker: String,
    /// The topic.
    pub topic: String,
    /// Partitions of the topic.
    pub partitions: u32,
    /// Producer tasks.
    pub producers: u32,
    /// Consumer tasks.
    pub consumers: u32,
    /// Bytes per message.
    pub message_size: usize,
    /// Producer batch bytes.
    pub batch_bytes: usize,
    /// Producer linger, ms.
    pub linger_ms: u64,
    /// Bytes each producer buffers.
    pub buffer_bytes: usize,
    /// Acks as given: 0, 1 or all.
    pub acks: String,
    /// Idempotent producers.
    pub idempotence: bool,
    /// Messages/s over all producers; 0 = closed loop.
    pub rate: f64,
    /// `open-loop` or `closed-loop`.
    pub mode: String,
    /// Measured seconds asked for.
    pub duration_s: f64,
    /// Warm-up seconds.
    pub warmup_s: f64,
    /// Cores, one executor each.
    pub cores: Vec<usize>,
    /// Message keys: none, round-robin or random.
    pub keys: String,
    /// Messages to produce over all producers (or, without producers, to consume).
    pub messages: Option<u64>,
    /// Consumers started at the earliest offset.
    pub from_earliest: bool,
    /// Consumer fetch bytes over all partitions.
    pub fetch_bytes: u32,
    /// Consumer fetch bytes per partition.
    pub partition_fetch_bytes: u32,
}

/// What `--find-max` found: the best sustained rate and every trial (`find_max` in the JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FindMax {
    /// The highest open-loop rate sustained, msgs/s.
    #[serde(serialize_with = "whole")]
    pub max_sustained_rate: f64,
    /// What the producers pushed in the closed-loop trial, msgs/s.
    #[serde(serialize_with = "tenths")]
    pub closed_loop_msgs_per_s: f64,
    /// Every trial, in the order run (the closed-loop one first, with rate 0).
    pub trials: Vec<FindMaxTrial>,
}

/// One `--find-max` trial.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FindMaxTrial {
    /// The rate asked, msgs/s (0: closed loop).
    #[serde(serialize_with = "whole")]
    pub rate: f64,
    /// Produced, msgs/s.
    #[serde(serialize_with = "tenths")]
    pub produce_msgs_per_s: f64,
    /// Consumed, msgs/s.
    #[serde(serialize_with = "tenths")]
    pub consume_msgs_per_s: f64,
    /// p99 publish delay, us.
    pub publish_delay_p99_us: u64,
    /// p99 publish latency, us.
    pub publish_p99_us: u64,
    /// Whether the trial met its rate.
    pub sustained: bool,
}

/// Everything a run measured. The histograms cover the window after the warm-up; the message
/// checks (`lost`, `duplicates`, `out_of_order`) cover the whole run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The configuration.
    pub config: RunConfig,
    /// Acknowledged messages.
    pub produce: Throughput,
    /// Publish latency: ack - intended send (open loop) or ack - send (closed loop).
    pub publish_latency_us: Percentiles,
    /// Publish delay: actual send - intended send (0 in closed loop).
    pub publish_delay_us: Percentiles,
    /// Consumed messages.
    pub consume: Throughput,
    /// End-to-end latency: receipt - the send timestamp in the payload.
    pub e2e_latency_us: Percentiles,
    /// Fetch latency: request to response of each fetch that returned records (a long-poll
    /// wait before the first record arrived is included).
    pub fetch_latency_us: Percentiles,
    /// Failed sends, failed fetches and malformed messages.
    pub errors: u64,
    /// Acknowledged messages never consumed.
    pub lost: u64,
    /// Messages consumed more than once.
    pub duplicates: u64,
    /// Messages consumed after a later one of the same producer in the same partition.
    pub out_of_order: u64,
    /// Length of the measured window, s.
    pub measured_s: f64,
    /// Connections the clients had to open again after losing one (a broker restart).
    pub reconnects: u64,
    /// Whole seconds of the measured window in which the producers had nothing acknowledged:
    /// how long an outage (a broker restart, a stall) lasted.
    pub stalled_s: u64,
    /// The non-empty histograms by name (publish, publish-delay, end-to-end, fetch), in us.
    pub histograms: Vec<(String, Histogram<u64>)>,
    /// The search, when the run was a `--find-max`.
    pub find_max: Option<FindMax>,
}

impl Report {
    /// The `--json` document, on one line:
    /// `{"config": {...}, "produce": {"messages", "bytes", "msgs_per_s", "mib_per_s",
    /// "latency_us": {"p50", "p90", "p99", "p999", "p9999", "max"}}, "publish_delay_us",
    /// "consume": {"messages", "bytes", "msgs_per_s", "mib_per_s"}, "e2e_latency_us", "errors",
    /// "lost", "duplicates", "out_of_order", "measured_s", "reconnects", "stalled_s",
    /// "fetch_latency_us", ["find_max"]}`.
    pub fn to_json(&self) -> String {
        let document = ReportJson {
            config: &self.config,
            produce: ProduceJson {
                throughput: &self.produce,
                latency_us: &self.publish_latency_us,
            },
            publish_delay_us: &self.publish_delay_us,
            consume: &self.consume,
            e2e_latency_us: &self.e2e_latency_us,
            errors: self.errors,
            lost: self.lost,
            duplicates: self.duplicates,
            out_of_order: self.out_of_order,
            measured_s: self.measured_s,
            reconnects: self.reconnects,
            stalled_s: self.stalled_s,
            fetch_latency_us: &self.fetch_latency_us,
            find_max: self.find_max.as_ref(),
        };
        let mut json = serde_json::to_string(&document).expect("a report serializes");
        json.push('\n');
        json
    }

    /// The final table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "window {:.1} s\n{:<10} {:>12} {:>14} {:>10}\n",
            self.measured_s, "", "messages", "msgs/s", "MiB/s"
        ));
        for (name, t) in [("produce", &self.produce), ("consume", &self.consume)] {
            out.push_str(&format!(
                "{:<10} {:>12} {:>14.0} {:>10.1}\n",
                name, t.messages, t.msgs_per_s, t.mib_per_s
            ));
        }
        out.push_str(&format!(
            "{:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            "latency (us)", "p50", "p90", "p99", "p99.9", "p99.99", "max"
        ));
        for (name, p) in [
            ("publish", &self.publish_latency_us),
            ("publish delay", &self.publish_delay_us),
            ("end-to-end", &self.e2e_latency_us),
            ("fetch", &self.fetch_latency_us),
        ] {
            out.push_str(&format!(
                "{:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
                name, p.p50, p.p90, p.p99, p.p999, p.p9999, p.max
            ));
        }
        out.push_str(&format!(
            "errors {}  lost {}  duplicates {}  out-of-order {}  reconnects {}  stalled {} s\n",
            self.errors,
            self.lost,
            self.duplicates,
            self.out_of_order,
            self.reconnects,
            self.stalled_s
        ));
        out
    }
}

/// A [`Report`] with the nesting of the `--json` document.
#[derive(Serialize)]
struct ReportJson<'a> {
    config: &'a RunConfig,
    produce: ProduceJson<'a>,
    publish_delay_us: &'a Percentiles,
    consume: &'a Throughput,
    e2e_latency_us: &'a Percentiles,
    errors: u64,
    lost: u64,
    duplicates: u64,
    out_of_order: u64,
    #[serde(serialize_with = "thousandths")]
    measured_s: f64,
    reconnects: u64,
    stalled_s: u64,
    fetch_latency_us: &'a Percentiles,
    #[serde(skip_serializing_if = "Option::is_none")]
    find_max: Option<&'a FindMax>,
}

/// `produce`: the producers' throughput with their latency inside.
#[derive(Serialize)]
struct ProduceJson<'a> {
    #[serde(flatten)]
    throughput: &'a Throughput,
    latency_us: &'a Percentiles,
}

/// `value` rounded to `places` decimal places. Dividing the rounded integer by the power of
/// ten gives the double nearest that decimal, which serde_json prints as the decimal itself:
/// 1023.96 to 1 place is 10240 / 10 = 1024.0.
fn round_to(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

fn tenths<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(round_to(*value, 1))
}

fn thousandths<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(round_to(*value, 3))
}

/// A rate in whole messages per second, written as an integer (as it always was).
fn whole<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(value.round() as u64)
}

/// `histogram` (values in us) in HdrHistogram's percentile distribution text format, values in
/// ms, 5 ticks per half distance: the format HdrHistogram's plotters read.
pub fn hgrm(histogram: &Histogram<u64>) -> String {
    let mut out = format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if histogram.is_empty() {
        return out;
    }
    let mut total = 0u64;
    for step in histogram.iter_quantiles(5) {
        total += step.count_since_last_iteration();
        let quantile = step.quantile_iterated_to();
        let value_ms = step.value_iterated_to() as f64 / 1_000.0;
        if quantile < 1.0 {
            out.push_str(&format!(
                "{value_ms:>12.3} {quantile:>14.12} {total:>10} {:>14.2}\n",
                1.0 / (1.0 - quantile)
            ));
        } else {
            out.push_str(&format!("{value_ms:>12.3} {quantile:>14.12} {total:>10}\n"));
        }
    }
    out.push_str(&format!(
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]\n",
        histogram.mean() / 1_000.0,
        histogram.stdev() / 1_000.0
    ));
    out.push_str(&format!(
        "#[Max     = {:>12.3}, Total count    = {:>12}]\n",
        histogram.max() as f64 / 1_000.0,
        histogram.len()
    ));
    out
}
