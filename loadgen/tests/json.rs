//! Goal: `--json` keeps the field names, nesting and number formats scripts rely on (issue
//! #4's contract; bench-results/run.sh, soak.sh and tuning-bench.sh read them).
//!
//! Method: build reports by hand, write their JSON, parse it back with serde_json and check
//! every field the scripts read, and that rates keep their rounding.

use loadgen::report::{FindMax, FindMaxTrial, Percentiles, Report, RunConfig, Throughput};
use serde_json::{Value, json};

fn parse(report: &Report) -> Value {
    let text = report.to_json();
    assert!(text.ends_with('\n'), "one line: {text}");
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

#[test]
fn json_has_the_contract_fields() {
    let report = Report {
        config: RunConfig {
            topic: "t".to_string(),
            partitions: 16,
            rate: 5000.0,
            mode: "open-loop".to_string(),
            cores: vec![1, 2],
            messages: None,
            ..RunConfig::default()
        },
        produce: Throughput::over(2048, 2 << 20, 2.0),
        publish_latency_us: Percentiles {
            p50: 1,
            p90: 2,
            p99: 3,
            p999: 4,
            p9999: 5,
            max: 6,
        },
        consume: Throughput::over(1024, 1 << 20, 2.0),
        errors: 7,
        lost: 8,
        duplicates: 9,
        out_of_order: 10,
        measured_s: 2.0004,
        reconnects: 11,
        stalled_s: 12,
        ..Report::default()
    };
    let json = parse(&report);
    let zero = json!({"p50": 0, "p90": 0, "p99": 0, "p999": 0, "p9999": 0, "max": 0});
    assert_eq!(json["config"]["topic"], "t");
    assert_eq!(json["config"]["partitions"], 16);
    assert_eq!(json["config"]["rate"], 5000.0);
    assert_eq!(json["config"]["mode"], "open-loop");
    assert_eq!(json["config"]["cores"], json!([1, 2]));
    assert_eq!(json["config"]["messages"], Value::Null);
    assert_eq!(
        json["produce"],
        json!({
            "messages": 2048,
            "bytes": 2097152,
            "msgs_per_s": 1024.0,
            "mib_per_s": 1.0,
            "latency_us": {"p50": 1, "p90": 2, "p99": 3, "p999": 4, "p9999": 5, "max": 6},
        })
    );
    assert_eq!(json["publish_delay_us"], zero);
    assert_eq!(
        json["consume"],
        json!({"messages": 1024, "bytes": 1048576, "msgs_per_s": 512.0, "mib_per_s": 0.5})
    );
    assert_eq!(json["e2e_latency_us"], zero);
    assert_eq!(json["fetch_latency_us"], zero);
    assert_eq!(json["errors"], 7);
    assert_eq!(json["lost"], 8);
    assert_eq!(json["duplicates"], 9);
    assert_eq!(json["out_of_order"], 10);
    assert_eq!(json["measured_s"], 2.0);
    assert_eq!(json["reconnects"], 11);
    assert_eq!(json["stalled_s"], 12);
    // Integers stay integers (the scripts format them with `:,`).
    assert!(json["produce"]["latency_us"]["p99"].is_u64());
    assert!(json["produce"]["messages"].is_u64());
    // Without --find-max there is no find_max.
    assert!(json.get("find_max").is_none(), "{json}");
    let keys: Vec<&str> = json
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "config",
        "consume",
        "duplicates",
        "e2e_latency_us",
        "errors",
        "fetch_latency_us",
        "lost",
        "measured_s",
        "out_of_order",
        "produce",
        "publish_delay_us",
        "reconnects",
        "stalled_s",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
}

#[test]
fn rates_keep_their_rounding() {
    let report = Report {
        produce: Throughput {
            messages: 1,
            bytes: 1,
            msgs_per_s: 1023.96,
            mib_per_s: 0.123_456,
        },
        measured_s: 1.234_567,
        ..Report::default()
    };
    let json = parse(&report);
    assert_eq!(json["produce"]["msgs_per_s"], 1024.0);
    assert_eq!(json["produce"]["mib_per_s"], 0.123);
    assert_eq!(json["measured_s"], 1.235);
}

#[test]
fn find_max_reports_every_trial() {
    let report = Report {
        find_max: Some(FindMax {
            max_sustained_rate: 70_949.6,
            closed_loop_msgs_per_s: 80_000.04,
            trials: vec![
                FindMaxTrial {
                    rate: 0.0,
                    produce_msgs_per_s: 80_000.04,
                    consume_msgs_per_s: 79_999.96,
                    publish_delay_p99_us: 0,
                    publish_p99_us: 900,
                    sustained: true,
                },
                FindMaxTrial {
                    rate: 70_949.6,
                    produce_msgs_per_s: 70_950.0,
                    consume_msgs_per_s: 70_950.0,
                    publish_delay_p99_us: 120,
                    publish_p99_us: 1_500,
                    sustained: true,
                },
            ],
        }),
        ..Report::default()
    };
    let json = parse(&report);
    let find_max = &json["find_max"];
    // run.sh reads int(find_max.max_sustained_rate): a whole number.
    assert!(find_max["max_sustained_rate"].is_u64(), "{find_max}");
    assert_eq!(find_max["max_sustained_rate"], 70_950);
    assert_eq!(find_max["closed_loop_msgs_per_s"], 80_000.0);
    let trials = find_max["trials"].as_array().expect("trials");
    assert_eq!(trials.len(), 2);
    assert_eq!(
        trials[0],
        json!({
            "rate": 0,
            "produce_msgs_per_s": 80_000.0,
            "consume_msgs_per_s": 80_000.0,
            "publish_delay_p99_us": 0,
            "publish_p99_us": 900,
            "sustained": true,
        })
    );
    assert_eq!(trials[1]["rate"], 70_950);
    assert_eq!(trials[1]["publish_delay_p99_us"], 120);
}

#[test]
fn hgrm_rows_are_cumulative_and_in_ms() {
    let mut histogram =
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("histogram");
    for us in 1..=1_000u64 {
        histogram.record(us * 1_000).expect("record");
    }
    let text = loadgen::report::hgrm(&histogram);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(2)
        .take_while(|line| !line.starts_with('#'))
        .map(|line| line.split_whitespace().collect())
        .collect();
    let counts: Vec<u64> = rows
        .iter()
        .map(|row| row[2].parse().expect("count"))
        .collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{text}");
    assert_eq!(*counts.last().expect("rows"), 1_000, "{text}");
    let last_value: f64 = rows.last().expect("rows")[0].parse().expect("value");
    assert!((last_value - 1_000.0).abs() < 1.0, "max in ms: {text}");
    assert!(text.contains("Total count    =         1000"), "{text}");
}
