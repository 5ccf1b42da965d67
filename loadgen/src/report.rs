//! The result of a run: [`Report`], its JSON (`--json`, a contract: field names must not
//! change) and its text table.

use hdrhistogram::Histogram;

/// Percentiles of a histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
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

    fn json(&self) -> String {
        format!(
            "{{\"p50\": {}, \"p90\": {}, \"p99\": {}, \"p999\": {}, \"p9999\": {}, \"max\": {}}}",
            self.p50, self.p90, self.p99, self.p999, self.p9999, self.max
        )
    }
}

/// Messages and bytes moved in one direction during the measured window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Throughput {
    /// Messages.
    pub messages: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Messages per second.
    pub msgs_per_s: f64,
    /// MiB (2^20 bytes) per second.
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

    fn json_fields(&self) -> String {
        format!(
            "\"messages\": {}, \"bytes\": {}, \"msgs_per_s\": {:.1}, \"mib_per_s\": {:.3}",
            self.messages, self.bytes, self.msgs_per_s, self.mib_per_s
        )
    }
}

/// Everything a run measured. The histograms cover the window after the warm-up; the message
/// checks (`lost`, `duplicates`, `out_of_order`) cover the whole run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The configuration, as (name, JSON value) pairs.
    pub config: Vec<(String, String)>,
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
    /// The non-empty histograms by name (publish, publish-delay, end-to-end, fetch), in us.
    pub histograms: Vec<(String, Histogram<u64>)>,
    /// More top-level JSON fields as (name, JSON value), e.g. the trials of `--find-max`.
    pub extra: Vec<(String, String)>,
}

impl Report {
    /// The `--json` document.
    pub fn to_json(&self) -> String {
        let config: Vec<String> = self
            .config
            .iter()
            .map(|(name, value)| format!("\"{}\": {}", json_escape(name), value))
            .collect();
        format!(
            "{{\"config\": {{{}}}, \"produce\": {{{}, \"latency_us\": {}}}, \"publish_delay_us\": {}, \
             \"consume\": {{{}}}, \"e2e_latency_us\": {}, \"errors\": {}, \"lost\": {}, \
             \"duplicates\": {}, \"out_of_order\": {}, \"measured_s\": {:.3}, \
             \"fetch_latency_us\": {}{}}}\n",
            config.join(", "),
            self.produce.json_fields(),
            self.publish_latency_us.json(),
            self.publish_delay_us.json(),
            self.consume.json_fields(),
            self.e2e_latency_us.json(),
            self.errors,
            self.lost,
            self.duplicates,
            self.out_of_order,
            self.measured_s,
            self.fetch_latency_us.json(),
            self.extra
                .iter()
                .map(|(name, value)| format!(", \"{}\": {}", json_escape(name), value))
                .collect::<String>(),
        )
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
            "errors {}  lost {}  duplicates {}  out-of-order {}\n",
            self.errors, self.lost, self.duplicates, self.out_of_order
        ));
        out
    }
}

/// `text` as a JSON string (with quotes).
pub fn json_string(text: &str) -> String {
    format!("\"{}\"", json_escape(text))
}

fn json_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
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
