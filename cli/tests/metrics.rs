//! Goal: the Prometheus `/metrics` endpoint reports every shard's work: requests by API,
//! produce latency, open connections and partitions owned, in the text format; and bad HTTP
//! costs only its sender.
//!
//! Method: start `ringbus serve --metrics-listen 127.0.0.1:0` on 2 shards, create a topic and
//! produce a few batches over the wire protocol, then scrape with a plain TcpStream and sum the
//! series over the `shard` label. Garbage and wrong paths get a 4xx; the broker scrapes and
//! serves requests afterwards.

mod common;

use common::{Broker, RawClient, batch, data_dir, http, scrape, sum};
use schema::wire::{
    Acks, ErrorCode, PayloadRange, ProduceBatchOwned, RequestBodyOwned, ResponseBodyOwned,
    TopicConfigOwned,
};

const PARTITIONS: u32 = 3;

fn create_topic(client: &mut RawClient, name: &str) {
    let (response, _) = client.request(
        &RequestBodyOwned::CreateTopic {
            name: name.to_string(),
            partitions: PARTITIONS,
            config: TopicConfigOwned::default(),
        },
        &[],
    );
    match response.body {
        Some(ResponseBodyOwned::CreateTopic { error, message }) => {
            assert_eq!(error, ErrorCode::None, "{message}")
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn produce(client: &mut RawClient, topic: &str, partition: u32) {
    let bytes = batch("metrics", 4);
    let (response, _) = client.request(
        &RequestBodyOwned::Produce {
            acks: Acks::Written,
            timeout_ms: 10_000,
            batches: vec![ProduceBatchOwned {
                topic: topic.to_string(),
                partition,
                batch: PayloadRange::new(0, bytes.len() as u32),
            }],
        },
        &bytes,
    );
    match response.body {
        Some(ResponseBodyOwned::Produce { results, .. }) => {
            assert_eq!(results.len(), 1);
            assert_eq!(results[0].error, ErrorCode::None, "{}", results[0].message);
        }
        other => panic!("unexpected {other:?} ({})", response.message),
    }
}

#[test]
fn metrics_report_every_shards_work() {
    let dir = data_dir();
    let broker = Broker::start_with_args(dir.path(), &["--metrics-listen", "127.0.0.1:0"]);
    let metrics = broker.metrics_address.expect("metrics address printed");
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "events");
    let produced = 6;
    for index in 0..produced {
        produce(&mut client, "events", index % PARTITIONS);
    }

    let text = scrape(metrics);
    for family in [
        "ringbus_requests_total",
        "ringbus_request_errors_total",
        "ringbus_received_bytes_total",
        "ringbus_sent_bytes_total",
        "ringbus_connections_open",
        "ringbus_partitions_owned",
        "ringbus_produce_latency_seconds",
        "ringbus_fetch_latency_seconds",
    ] {
        assert!(text.contains(&format!("# HELP {family} ")), "{family}");
        assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
    }
    assert!(text.contains("ringbus_requests_total{shard=\"0\",api=\"produce\"}"));
    assert!(text.contains("ringbus_requests_total{shard=\"1\",api=\"produce\"}"));
    assert_eq!(
        sum(&text, "ringbus_requests_total", &["api=\"produce\""]),
        f64::from(produced)
    );
    assert_eq!(
        sum(&text, "ringbus_requests_total", &["api=\"create_topic\""]),
        1.0
    );
    assert_eq!(
        sum(&text, "ringbus_request_errors_total", &["api=\"produce\""]),
        0.0
    );
    assert!(sum(&text, "ringbus_received_bytes_total", &[]) > 0.0);
    assert!(sum(&text, "ringbus_sent_bytes_total", &[]) > 0.0);
    assert!(text.contains("# TYPE ringbus_produce_latency_seconds summary"));
    for quantile in ["0.5", "0.99", "0.999"] {
        let label = format!("quantile=\"{quantile}\"");
        assert!(sum(&text, "ringbus_produce_latency_seconds", &[&label]) > 0.0);
    }
    assert_eq!(
        sum(&text, "ringbus_produce_latency_seconds_count", &[]),
        f64::from(produced)
    );
    assert!(sum(&text, "ringbus_produce_latency_seconds_sum", &[]) > 0.0);
    // The RawClient's connection is open while we scrape.
    assert_eq!(sum(&text, "ringbus_connections_open", &[]), 1.0);
    // The topic's partitions and those of the internal offsets topic.
    assert_eq!(
        sum(&text, "ringbus_partitions_owned", &[]),
        f64::from(PARTITIONS + broker::group::offsets::OFFSETS_PARTITIONS)
    );
    drop(client);

    // Bad HTTP gets a 4xx and costs nothing else.
    let garbage = http(metrics, b"\x00\xff garbage\r\n\r\n");
    assert!(
        garbage.is_empty() || garbage.starts_with("HTTP/1.1 4"),
        "{garbage}"
    );
    let wrong_path = http(metrics, b"GET /secrets HTTP/1.1\r\n\r\n");
    assert!(wrong_path.starts_with("HTTP/1.1 404 "), "{wrong_path}");
    let wrong_method = http(metrics, b"POST /metrics HTTP/1.1\r\n\r\n");
    assert!(wrong_method.starts_with("HTTP/1.1 405 "), "{wrong_method}");
    let oversized = http(metrics, &vec![b'A'; 16 << 10]);
    assert!(
        oversized.is_empty() || oversized.starts_with("HTTP/1.1 400 "),
        "{oversized}"
    );

    let mut client = RawClient::connect(broker.address);
    produce(&mut client, "events", 0);
    let text = scrape(metrics);
    assert_eq!(
        sum(&text, "ringbus_requests_total", &["api=\"produce\""]),
        f64::from(produced + 1)
    );
    drop(client);
    broker.stop();
}

#[test]
fn no_metrics_endpoint_unless_asked() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    assert!(broker.metrics_address.is_none());
    let mut client = RawClient::connect(broker.address);
    create_topic(&mut client, "quiet");
    drop(client);
    broker.stop();
}
