//! `--find-max`: the highest rate the producers and consumers sustain, found the way the
//! OpenMessaging Benchmark's max-rate mode does it: by trials at fixed (open-loop) rates,
//! keeping a rate only when it was met and the consumers kept up.
//!
//! A closed-loop trial first gives the ceiling (what the producers push with no schedule);
//! then open-loop trials of `--duration` each bisect between the best sustained rate and the
//! lowest failed one, starting at 90% of the ceiling, until they are 3% apart or
//! [`TRIALS_MAX`] trials ran. The report is the best sustained trial's, with every trial in
//! its JSON (`find_max`).

use crate::report::{FindMax, FindMaxTrial, Report};
use crate::run::{Config, run};

/// Open-loop trials after the closed-loop one, at most.
pub const TRIALS_MAX: usize = 8;
/// A trial sustains its rate when producers reach this share of it and consumers this share
/// of what was produced.
const MET: f64 = 0.97;
/// ... and the producers' p99 publish delay (how late sends were against their schedule)
/// stays under this, us: a longer delay means the load generator or the broker fell behind.
const DELAY_P99_US_MAX: u64 = 100_000;

/// One trial's outcome.
#[derive(Debug, Clone)]
struct Trial {
    rate: f64,
    report: Report,
    sustained: bool,
}

/// Whether `report` shows `rate` (msgs/s; 0 = closed loop) was sustained.
fn sustained(report: &Report, rate: f64, consumers: u32) -> bool {
    let clean = report.errors == 0 && report.lost == 0 && report.duplicates == 0;
    let produced = report.produce.msgs_per_s;
    let met = rate == 0.0 || produced >= MET * rate;
    let kept_up = consumers == 0 || report.consume.msgs_per_s >= MET * produced;
    let on_time = rate == 0.0 || report.publish_delay_us.p99 <= DELAY_P99_US_MAX;
    clean && met && kept_up && on_time
}

/// Runs the search; fails when not even a low rate is sustained.
pub fn find_max(config: Config) -> Result<Report, String> {
    let mut trials: Vec<Trial> = Vec::new();
    let mut closed = config.clone();
    closed.rate = 0.0;
    eprintln!("find-max: closed-loop trial for the ceiling");
    let ceiling_report = run(closed)?;
    // The producers' closed-loop rate bounds the search. Not the consumers': with many
    // producers a closed loop can starve the one consumer (100 producers pushed 267k msg/s
    // while it read 8k), and an open-loop rate well above that consume rate may still be
    // sustained once producers stop flooding the broker.
    let ceiling = ceiling_report.produce.msgs_per_s;
    if ceiling_report.errors > 0 || ceiling < 1.0 {
        return Err(format!(
            "find-max: the closed-loop trial moved {ceiling:.0} msg/s with {} errors",
            ceiling_report.errors
        ));
    }
    let consumers = config.consumers;
    trials.push(Trial {
        rate: 0.0,
        sustained: sustained(&ceiling_report, 0.0, consumers),
        report: ceiling_report,
    });

    let mut open = config;
    open.create_topic = false;
    let (mut low, mut high) = (0.0f64, ceiling * 1.05);
    let mut rate = ceiling * 0.9;
    for _ in 0..TRIALS_MAX {
        open.rate = rate.round().max(1.0);
        eprintln!("find-max: trying {:.0} msg/s", open.rate);
        let report = run(open.clone())?;
        let ok = sustained(&report, open.rate, consumers);
        eprintln!(
            "find-max: {:.0} msg/s -> produced {:.0}, consumed {:.0}, publish delay p99 {} us: {}",
            open.rate,
            report.produce.msgs_per_s,
            report.consume.msgs_per_s,
            report.publish_delay_us.p99,
            if ok { "sustained" } else { "not sustained" }
        );
        trials.push(Trial {
            rate: open.rate,
            report,
            sustained: ok,
        });
        if ok {
            low = open.rate;
        } else {
            high = open.rate;
        }
        if high - low <= 0.03 * high {
            break;
        }
        // Nothing sustained yet: step down fast; otherwise bisect.
        rate = if low == 0.0 {
            open.rate * 0.6
        } else {
            (low + high) / 2.0
        };
    }
    let best = trials
        .iter()
        .filter(|trial| trial.rate > 0.0 && trial.sustained)
        .max_by(|a, b| a.rate.total_cmp(&b.rate))
        .cloned()
        .ok_or_else(|| {
            format!(
                "find-max: no open-loop rate was sustained (ceiling {ceiling:.0} msg/s, lowest tried {:.0})",
                trials.iter().map(|t| t.rate).filter(|r| *r > 0.0).fold(f64::MAX, f64::min)
            )
        })?;
    let mut report = best.report;
    report.find_max = Some(FindMax {
        max_sustained_rate: best.rate,
        closed_loop_msgs_per_s: ceiling,
        trials: trials
            .iter()
            .map(|trial| FindMaxTrial {
                rate: trial.rate,
                produce_msgs_per_s: trial.report.produce.msgs_per_s,
                consume_msgs_per_s: trial.report.consume.msgs_per_s,
                publish_delay_p99_us: trial.report.publish_delay_us.p99,
                publish_p99_us: trial.report.publish_latency_us.p99,
                sustained: trial.sustained,
            })
            .collect(),
    });
    Ok(report)
}
