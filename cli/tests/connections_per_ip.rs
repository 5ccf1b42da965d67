//! Goal: `--connections-per-ip-max N` keeps one host from taking every connection slot: its
//! connections past N, on either client listener (ringbus or Kafka) and whichever shard the
//! kernel hands them to, are closed at accept and counted in /metrics as
//! `ringbus_connections_refused_total{reason="per_ip"}`; the N it holds are served, and a slot
//! comes back when one of them closes.
//!
//! Method: the real binary on 2 shards with `--connections-per-ip-max 4`. From 127.0.0.1, open
//! 3 ringbus connections and 1 Kafka connection, each proven admitted by a request answered on
//! it before the next is opened (so which shard accepts each does not matter). Then 3 more (2
//! ringbus, 1 Kafka): each must be closed by the broker (end of stream or reset, with nothing
//! sent); the metric must count exactly 3. Close one admitted connection, wait until the
//! broker counts it closed, and a new connection must be served.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Broker, RawClient, data_dir, scrape, sum};
use schema::wire::{ErrorCode, RequestBodyOwned};

const PER_IP_MAX: usize = 4;
/// How long a refused connection may take to be closed, or a count to settle.
const TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn connections_past_the_per_ip_limit_are_closed_at_accept_and_counted() {
    let dir = data_dir();
    let limit = PER_IP_MAX.to_string();
    let broker = Broker::start_with_args(
        dir.path(),
        &[
            "--connections-per-ip-max",
            &limit,
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let metrics = broker.metrics_address.expect("metrics address");

    // The limit's worth: 3 ringbus connections and 1 Kafka connection, each served.
    let mut admitted = Vec::new();
    for _ in 0..PER_IP_MAX - 1 {
        let mut client = RawClient::connect(broker.address);
        metadata(&mut client);
        admitted.push(client);
    }
    let mut kafka = TcpStream::connect(broker.kafka_address).expect("connect to Kafka");
    kafka_api_versions(&mut kafka).expect("the Kafka connection is served");

    // Past the limit, on both listeners: closed at accept.
    for address in [broker.address, broker.address, broker.kafka_address] {
        assert_closed_by_broker(address);
    }
    let text = scrape(metrics);
    assert_eq!(
        sum(
            &text,
            "ringbus_connections_refused_total",
            &["reason=\"per_ip\""]
        ),
        3.0
    );
    assert_eq!(
        sum(
            &text,
            "ringbus_connections_refused_total",
            &["reason=\"connections_max\""]
        ),
        0.0
    );

    // Those admitted are still served.
    for client in &mut admitted {
        metadata(client);
    }
    kafka_api_versions(&mut kafka).expect("the Kafka connection is still served");

    // One closes: once the broker has seen it, its slot serves a new connection.
    drop(admitted.pop());
    let deadline = Instant::now() + TIMEOUT;
    while sum(&scrape(metrics), "ringbus_connections_open", &[]) as usize != PER_IP_MAX - 1 {
        assert!(
            Instant::now() < deadline,
            "the closed connection is still counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut again = RawClient::connect(broker.address);
    metadata(&mut again);

    drop((admitted, kafka, again));
    broker.stop();
}

/// A Metadata request, answered without error.
fn metadata(client: &mut RawClient) {
    let (response, _) = client.request(&RequestBodyOwned::Metadata { topics: vec![] }, &[]);
    assert_eq!(response.error, ErrorCode::None);
}

/// Kafka ApiVersions v0 (no client id) with correlation id 7; Ok once its response arrives.
fn kafka_api_versions(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(TIMEOUT))?;
    // size 10 | api_key 18 | api_version 0 | correlation_id 7 | client_id null (-1)
    let request = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff];
    stream.write_all(&request)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body)?;
    assert_eq!(body[..4], 7i32.to_be_bytes(), "the correlation id");
    Ok(())
}

/// Connects to `address` and expects the broker to close the connection without a word.
fn assert_closed_by_broker(address: SocketAddr) {
    let mut stream = TcpStream::connect(address).expect("the kernel completes the handshake");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => {}
        Err(error) if error.kind() == ErrorKind::ConnectionReset => {}
        Ok(_) => panic!("a refused connection to {address} got bytes"),
        Err(error) => panic!("a connection to {address} past the limit was not closed: {error}"),
    }
}
