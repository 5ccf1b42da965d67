//! Goal: `--json` keeps the field names scripts rely on (issue #4's contract).

use loadgen::report::{Percentiles, Report, Throughput};

#[test]
fn json_has_the_contract_fields() {
    let report = Report {
        config: vec![("topic".to_string(), "\"t\"".to_string())],
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
        ..Report::default()
    };
    let json = report.to_json();
    for expected in [
        "{\"config\": {\"topic\": \"t\"}",
        "\"produce\": {\"messages\": 2048, \"bytes\": 2097152, \"msgs_per_s\": 1024.0, \"mib_per_s\": 1.000, \"latency_us\": {\"p50\": 1, \"p90\": 2, \"p99\": 3, \"p999\": 4, \"p9999\": 5, \"max\": 6}}",
        "\"publish_delay_us\": {\"p50\": 0, \"p90\": 0, \"p99\": 0, \"p999\": 0, \"p9999\": 0, \"max\": 0}",
        "\"consume\": {\"messages\": 1024, \"bytes\": 1048576, \"msgs_per_s\": 512.0, \"mib_per_s\": 0.500}",
        "\"e2e_latency_us\": {\"p50\": 0",
        "\"errors\": 7",
        "\"lost\": 8",
        "\"duplicates\": 9",
    ] {
        assert!(json.contains(expected), "{expected} missing from {json}");
    }
    // Balanced braces: one object.
    assert_eq!(json.matches('{').count(), json.matches('}').count());
    assert!(json.trim_end().ends_with('}'));
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
