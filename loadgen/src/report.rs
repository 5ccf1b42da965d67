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
             \"duplicates\": {}, \"out_of_order\": {}, \"measured_s\": {:.3}}}\n",
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
