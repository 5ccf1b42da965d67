//! Goal: the Kafka listener answers ApiVersions as Kafka does (the served ranges; any unknown
//! version gets a v0 response with UNSUPPORTED_VERSION), and bad input (garbage, lying sizes
//! and counts, unknown APIs and versions, a frame cut short) closes only the connection that
//! sent it: the broker keeps serving others and still stops cleanly.
//!
//! Method: `ringbus serve` (tests/common, Kafka listener on a free port) and a blocking TCP
//! client that writes Kafka frames by hand (big-endian, as the protocol spec lays them out),
//! so the test depends on no Kafka codec.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{Broker, data_dir};

const API_VERSIONS: i16 = 18;
const UNSUPPORTED_VERSION: i16 = 35;

fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).expect("connect to the Kafka listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream
}

/// A request frame: size, api key, version, correlation id, client id (header v1), body.
fn request(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&api_key.to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(&4i16.to_be_bytes());
    frame.extend_from_slice(b"test");
    frame.extend_from_slice(body);
    let mut out = (frame.len() as i32).to_be_bytes().to_vec();
    out.extend(frame);
    out
}

/// Reads one response frame's body (after its size).
fn response(stream: &mut TcpStream) -> Vec<u8> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("a response");
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).expect("the response body");
    body
}

/// A cursor over big-endian fields.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn i16(&mut self) -> i16 {
        let (field, rest) = self.0.split_at(2);
        self.0 = rest;
        i16::from_be_bytes([field[0], field[1]])
    }

    fn i32(&mut self) -> i32 {
        let (field, rest) = self.0.split_at(4);
        self.0 = rest;
        i32::from_be_bytes([field[0], field[1], field[2], field[3]])
    }
}

/// An ApiVersions v0 response: correlation id, error code, and (key, min, max) per API.
fn api_versions_v0(body: &[u8]) -> (i32, i16, Vec<(i16, i16, i16)>) {
    let mut fields = Fields(body);
    let correlation_id = fields.i32();
    let error = fields.i16();
    let count = fields.i32();
    let apis = (0..count)
        .map(|_| (fields.i16(), fields.i16(), fields.i16()))
        .collect();
    assert!(fields.0.is_empty(), "v0 has nothing after the ranges");
    (correlation_id, error, apis)
}

/// Asks ApiVersions v0 on a new connection and checks the answer.
fn assert_serves(address: SocketAddr) {
    let mut stream = connect(address);
    stream
        .write_all(&request(API_VERSIONS, 0, 5, &[]))
        .expect("send");
    let (correlation_id, error, apis) = api_versions_v0(&response(&mut stream));
    assert_eq!((correlation_id, error), (5, 0));
    assert!(apis.len() >= 8, "{apis:?}");
}

/// The served ranges, as ApiVersions lists them (Produce advertised from v0, as Kafka 4 does
/// for librdkafka's feature checks); APIs not served yet are not listed.
#[test]
fn api_versions_lists_the_served_ranges() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut stream = connect(broker.kafka_address);
    stream
        .write_all(&request(API_VERSIONS, 0, 41, &[]))
        .expect("send");
    let (correlation_id, error, apis) = api_versions_v0(&response(&mut stream));
    assert_eq!((correlation_id, error), (41, 0));
    for expected in [
        (0, 0, 9),
        (1, 4, 12),
        (2, 1, 7),
        (3, 0, 12),
        (18, 0, 4),
        (19, 2, 7),
        (20, 1, 6),
        (22, 0, 4),
        (8, 2, 8),
        (9, 1, 7),
        (10, 0, 4),
        (11, 0, 7),
        (12, 0, 4),
        (13, 0, 4),
        (14, 0, 5),
        (15, 0, 5),
        (16, 0, 4),
        (32, 1, 4),
    ] {
        assert!(apis.contains(&expected), "{expected:?} in {apis:?}");
    }
    assert!(
        apis.iter().all(|(key, _, _)| *key != 33),
        "AlterConfigs is not served yet: {apis:?}"
    );
    // v3 (flexible: header v2 with tagged fields, compact strings) on the same connection;
    // the response header is still v0: the correlation id, then the error code.
    let mut body = vec![0u8]; // header tagged fields
    body.extend_from_slice(&[5]);
    body.extend_from_slice(b"test");
    body.extend_from_slice(&[4]);
    body.extend_from_slice(b"1.0");
    body.push(0);
    stream
        .write_all(&request(API_VERSIONS, 3, 42, &body))
        .expect("send v3");
    let v3 = response(&mut stream);
    let mut fields = Fields(&v3);
    assert_eq!((fields.i32(), fields.i16()), (42, 0));
    broker.stop();
}

/// A version this broker does not know is answered in v0 with UNSUPPORTED_VERSION and the
/// ranges, so a newer client can retry with one it shares.
#[test]
fn an_unknown_api_versions_version_is_answered_in_v0() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut stream = connect(broker.kafka_address);
    stream
        .write_all(&request(API_VERSIONS, 99, 7, &[1, 2, 3]))
        .expect("send");
    let (correlation_id, error, apis) = api_versions_v0(&response(&mut stream));
    assert_eq!((correlation_id, error), (7, UNSUPPORTED_VERSION));
    assert!(apis.contains(&(18, 0, 4)), "{apis:?}");
    // The connection stays usable.
    stream
        .write_all(&request(API_VERSIONS, 0, 8, &[]))
        .expect("send");
    assert_eq!(api_versions_v0(&response(&mut stream)).1, 0);
    broker.stop();
}

/// Reads until the broker closes the connection; fails if it answers or keeps it open.
fn assert_closed(stream: &mut TcpStream, case: &str) {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(_) => panic!("{case}: the broker answered instead of closing"),
        Err(error) => panic!("{case}: the connection stayed open ({error})"),
    }
}

#[test]
fn bad_input_closes_only_its_connection() {
    let dir = data_dir();
    let mut broker = Broker::start(dir.path());
    // Metadata v1 whose topic array claims 2^31 - 1 entries in 4 bytes.
    let lying_count = request(3, 1, 1, &i32::MAX.to_be_bytes());
    // Produce v3 with acks 1 whose topic array claims 2^31 - 1 entries.
    let mut produce_body = (-1i16).to_be_bytes().to_vec();
    produce_body.extend_from_slice(&1i16.to_be_bytes());
    produce_body.extend_from_slice(&1000i32.to_be_bytes());
    produce_body.extend_from_slice(&i32::MAX.to_be_bytes());
    let lying_produce = request(0, 3, 1, &produce_body);
    let mut garbage = 8i32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0xfe, 0xed, 0xfa, 0xce]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", garbage),
        ("a negative size", (-1i32).to_be_bytes().to_vec()),
        ("a 1 GiB size", (1i32 << 30).to_be_bytes().to_vec()),
        ("a header cut short", {
            let mut frame = 3i32.to_be_bytes().to_vec();
            frame.extend_from_slice(&[0, 3, 0]);
            frame
        }),
        ("a lying Metadata array count", lying_count),
        ("a lying Produce array count", lying_produce),
        ("an unknown API key", request(9999, 0, 1, &[])),
        ("Produce v2 (v0-v2 refused)", request(0, 2, 1, &[0; 16])),
        ("a version past the served ones", request(3, 13, 1, &[])),
        (
            "an API not served yet (AlterConfigs)",
            request(33, 0, 1, &[0; 16]),
        ),
        (
            "a JoinGroup version past the served ones",
            request(11, 8, 1, &[]),
        ),
        (
            "a body that does not decode",
            request(3, 1, 1, &[0, 0, 0, 1, 0]),
        ),
    ];
    for (case, bytes) in &cases {
        let mut stream = connect(broker.kafka_address);
        // A good request first: it is answered before the bad one closes the connection.
        let mut both = request(API_VERSIONS, 0, 1, &[]);
        both.extend_from_slice(bytes);
        stream.write_all(&both).expect("send");
        assert_eq!(api_versions_v0(&response(&mut stream)).1, 0, "{case}");
        assert_closed(&mut stream, case);
        assert_serves(broker.kafka_address);
    }
    // A frame cut short by the client: the broker sees the end mid-frame and lets it go.
    let mut stream = connect(broker.kafka_address);
    stream.write_all(&100i32.to_be_bytes()).expect("send");
    stream.write_all(&[0, 18, 0, 0]).expect("send");
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("shut down");
    assert_closed(&mut stream, "a frame cut short");
    assert_serves(broker.kafka_address);
    assert!(broker.is_running());
    broker.stop();
}

/// A Kafka string: i16 length, then the bytes.
fn string(value: &str) -> Vec<u8> {
    let mut out = (value.len() as i16).to_be_bytes().to_vec();
    out.extend_from_slice(value.as_bytes());
    out
}

/// CreateTopics v2 for one topic: its name, partitions and replication factor.
fn create_topics(name: &str, partitions: i32, replication: i16) -> Vec<u8> {
    let mut body = 1i32.to_be_bytes().to_vec();
    body.extend(string(name));
    body.extend_from_slice(&partitions.to_be_bytes());
    body.extend_from_slice(&replication.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes()); // assignments
    body.extend_from_slice(&0i32.to_be_bytes()); // configs
    body.extend_from_slice(&5000i32.to_be_bytes()); // timeout
    body.push(0); // validate only: no
    request(19, 2, 3, &body)
}

/// The error code of a CreateTopics v2 / DeleteTopics v1 response for one topic: both are
/// correlation id, throttle time, then [name, error code, ...].
fn topic_error(body: &[u8], name: &str) -> i16 {
    let mut fields = Fields(body);
    fields.i32();
    fields.i32();
    assert_eq!(fields.i32(), 1, "one topic");
    let length = fields.i16() as usize;
    assert_eq!(&fields.0[..length], name.as_bytes());
    fields.0 = &fields.0[length..];
    fields.i16()
}

/// The partitions `ringbus topic describe` lists (None: no such topic).
fn described_partitions(broker: &Broker, topic: &str) -> Option<usize> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ringbus"))
        .args(["topic", "describe", topic, "--broker"])
        .arg(broker.address.to_string())
        .output()
        .expect("run ringbus topic describe");
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).lines().count())
}

/// CreateTopics and DeleteTopics go through the same controller as `ringbus topic`: a topic a
/// Kafka admin client creates is the ringbus topic, and the errors are Kafka's.
#[test]
fn kafka_admin_requests_create_and_delete_ringbus_topics() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut stream = connect(broker.kafka_address);
    let name = "made-by-kafka";
    stream.write_all(&create_topics(name, 4, -1)).expect("send");
    assert_eq!(topic_error(&response(&mut stream), name), 0);
    assert_eq!(described_partitions(&broker, name), Some(4));
    stream.write_all(&create_topics(name, 4, 1)).expect("send");
    assert_eq!(
        topic_error(&response(&mut stream), name),
        36,
        "TOPIC_ALREADY_EXISTS"
    );
    stream
        .write_all(&create_topics("replicated", 1, 3))
        .expect("send");
    let refused = response(&mut stream);
    assert_eq!(
        topic_error(&refused, "replicated"),
        38,
        "INVALID_REPLICATION_FACTOR"
    );
    assert_eq!(described_partitions(&broker, "replicated"), None);
    // DeleteTopics v1: [name], timeout.
    let delete = |name: &str| {
        let mut body = 1i32.to_be_bytes().to_vec();
        body.extend(string(name));
        body.extend_from_slice(&5000i32.to_be_bytes());
        request(20, 1, 4, &body)
    };
    stream.write_all(&delete(name)).expect("send");
    assert_eq!(topic_error(&response(&mut stream), name), 0);
    assert_eq!(described_partitions(&broker, name), None);
    stream.write_all(&delete(name)).expect("send");
    assert_eq!(
        topic_error(&response(&mut stream), name),
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    stream
        .write_all(&delete("__consumer_offsets"))
        .expect("send");
    assert_eq!(
        topic_error(&response(&mut stream), "__consumer_offsets"),
        17,
        "INVALID_TOPIC_EXCEPTION: internal"
    );
    broker.stop();
}

/// Produce v3 (acks=1) to one topic: one entry per (partition, records).
fn produce_v3(topic: &str, entries: &[(i32, Vec<u8>)]) -> Vec<u8> {
    let mut body = (-1i16).to_be_bytes().to_vec(); // transactional id: null
    body.extend_from_slice(&1i16.to_be_bytes()); // acks
    body.extend_from_slice(&5000i32.to_be_bytes()); // timeout
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend(string(topic));
    body.extend_from_slice(&(entries.len() as i32).to_be_bytes());
    for (partition, records) in entries {
        body.extend_from_slice(&partition.to_be_bytes());
        body.extend_from_slice(&(records.len() as i32).to_be_bytes());
        body.extend_from_slice(records);
    }
    request(0, 3, 9, &body)
}

/// A Produce v3 response for one topic: (partition, error code, base offset) per entry.
fn produce_v3_answers(body: &[u8]) -> Vec<(i32, i16, i64)> {
    let mut fields = Fields(body);
    assert_eq!(fields.i32(), 9, "correlation id");
    assert_eq!(fields.i32(), 1, "one topic");
    let length = fields.i16() as usize;
    fields.0 = &fields.0[length..];
    let count = fields.i32();
    (0..count)
        .map(|_| {
            let partition = fields.i32();
            let error = fields.i16();
            let base_offset = (i64::from(fields.i32()) << 32) | i64::from(fields.i32() as u32);
            fields.i32();
            fields.i32(); // log append time (i64)
            (partition, error, base_offset)
        })
        .collect()
}

/// Each partition entry of a Produce is answered on its own: a corrupt batch (a flipped byte,
/// or an old message format) refuses its entry only, even beside entries for the same
/// partition, and an unknown partition is UNKNOWN_TOPIC_OR_PARTITION.
#[test]
fn a_bad_batch_refuses_only_its_own_partition_entry() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut stream = connect(broker.kafka_address);
    let mut flipped = common::batch("b", 2);
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    let mut magic_1 = common::batch("c", 2);
    magic_1[16] = 1;
    let entries = vec![
        (0, common::batch("a", 3)),
        (0, flipped),
        (0, common::batch("d", 2)),
        (0, magic_1),
        (5, common::batch("e", 1)),
    ];
    // The topic is created by this first produce (auto-creation, 1 partition).
    stream
        .write_all(&produce_v3("entries", &entries))
        .expect("send");
    let answers = produce_v3_answers(&response(&mut stream));
    assert_eq!(
        answers,
        vec![(0, 0, 0), (0, 2, -1), (0, 0, 3), (0, 2, -1), (5, 3, -1)],
        "(partition, error, base offset): 2 CORRUPT_MESSAGE, 3 UNKNOWN_TOPIC_OR_PARTITION"
    );
    broker.stop();
}

/// Reads a Kafka string off `fields`.
fn read_string(fields: &mut Fields) -> String {
    let length = fields.i16() as usize;
    let (value, rest) = fields.0.split_at(length);
    fields.0 = rest;
    String::from_utf8(value.to_vec()).expect("utf-8")
}

/// A consumer outside any group membership (generation -1, no member id: librdkafka's
/// `assign()` + commit) commits through OffsetCommit v2 and reads it back through OffsetFetch
/// v1; ListGroups and DescribeGroups then show the group, Empty, as ringbus's coordinator
/// keeps it.
#[test]
fn offsets_committed_outside_a_membership_are_listed_and_fetched() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let mut stream = connect(broker.kafka_address);
    stream
        .write_all(&create_topics("orders", 2, 1))
        .expect("send");
    assert_eq!(topic_error(&response(&mut stream), "orders"), 0);
    let mut commit = string("auditors");
    commit.extend_from_slice(&(-1i32).to_be_bytes()); // generation
    commit.extend(string("")); // member id
    commit.extend_from_slice(&(-1i64).to_be_bytes()); // retention: the broker's
    commit.extend_from_slice(&1i32.to_be_bytes());
    commit.extend(string("orders"));
    commit.extend_from_slice(&1i32.to_be_bytes());
    commit.extend_from_slice(&1i32.to_be_bytes()); // partition 1
    commit.extend_from_slice(&42i64.to_be_bytes()); // offset
    commit.extend_from_slice(&(-1i16).to_be_bytes()); // metadata: null
    stream.write_all(&request(8, 2, 11, &commit)).expect("send");
    let answer = response(&mut stream);
    let mut fields = Fields(&answer);
    assert_eq!(fields.i32(), 11);
    assert_eq!(fields.i32(), 1);
    assert_eq!(read_string(&mut fields), "orders");
    assert_eq!(fields.i32(), 1);
    assert_eq!(
        (fields.i32(), fields.i16()),
        (1, 0),
        "partition 1 committed"
    );

    let mut fetch = string("auditors");
    fetch.extend_from_slice(&1i32.to_be_bytes());
    fetch.extend(string("orders"));
    fetch.extend_from_slice(&2i32.to_be_bytes());
    fetch.extend_from_slice(&0i32.to_be_bytes());
    fetch.extend_from_slice(&1i32.to_be_bytes());
    stream.write_all(&request(9, 1, 12, &fetch)).expect("send");
    let answer = response(&mut stream);
    let mut fields = Fields(&answer);
    assert_eq!(fields.i32(), 12);
    assert_eq!(fields.i32(), 1);
    assert_eq!(read_string(&mut fields), "orders");
    assert_eq!(fields.i32(), 2);
    let mut offsets = Vec::new();
    for _ in 0..2 {
        let partition = fields.i32();
        let high = fields.i32() as i64;
        let low = fields.i32() as u32 as i64;
        let metadata = fields.i16();
        assert!(metadata <= 0, "metadata empty or null");
        let error = fields.i16();
        offsets.push((partition, (high << 32) | low, error));
    }
    assert_eq!(
        offsets,
        vec![(0, -1, 0), (1, 42, 0)],
        "(partition, offset, error)"
    );

    stream.write_all(&request(16, 0, 13, &[])).expect("send");
    let answer = response(&mut stream);
    let mut fields = Fields(&answer);
    assert_eq!((fields.i32(), fields.i16()), (13, 0));
    let groups: Vec<(String, String)> = (0..fields.i32())
        .map(|_| (read_string(&mut fields), read_string(&mut fields)))
        .collect();
    assert!(
        groups.contains(&("auditors".to_string(), "consumer".to_string())),
        "{groups:?}"
    );

    let mut describe = 1i32.to_be_bytes().to_vec();
    describe.extend(string("auditors"));
    stream
        .write_all(&request(15, 0, 14, &describe))
        .expect("send");
    let answer = response(&mut stream);
    let mut fields = Fields(&answer);
    assert_eq!((fields.i32(), fields.i32()), (14, 1));
    assert_eq!(fields.i16(), 0, "no error");
    assert_eq!(read_string(&mut fields), "auditors");
    assert_eq!(read_string(&mut fields), "Empty");
    assert_eq!(read_string(&mut fields), "consumer");
    read_string(&mut fields); // the assignor: none while empty
    assert_eq!(fields.i32(), 0, "no members");
    broker.stop();
}

/// DescribeConfigs v1 of a topic created with a retention (`ringbus topic create`): Kafka's
/// names and units, the topic's own setting marked as such (source 1), the others as the
/// broker's defaults (source 5); an unknown topic is UNKNOWN_TOPIC_OR_PARTITION.
#[test]
fn describe_configs_reports_a_topics_settings() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let created = std::process::Command::new(env!("CARGO_BIN_EXE_ringbus"))
        .args(["topic", "create", "kept", "--partitions", "1"])
        .args(["--retention-ms", "3600000", "--broker"])
        .arg(broker.address.to_string())
        .output()
        .expect("run ringbus topic create");
    assert!(created.status.success(), "{created:?}");
    let mut stream = connect(broker.kafka_address);
    let mut describe = 2i32.to_be_bytes().to_vec();
    for name in ["kept", "missing"] {
        describe.push(2); // resource type: topic
        describe.extend(string(name));
        describe.extend_from_slice(&(-1i32).to_be_bytes()); // every config
    }
    describe.push(0); // no synonyms
    stream
        .write_all(&request(32, 1, 21, &describe))
        .expect("send");
    let answer = response(&mut stream);
    let mut fields = Fields(&answer);
    assert_eq!((fields.i32(), fields.i32()), (21, 0));
    assert_eq!(fields.i32(), 2, "two resources");
    let mut configs = BTreeMap::new();
    let mut errors = Vec::new();
    for _ in 0..2 {
        let error = fields.i16();
        let message = fields.i16();
        assert_eq!(message, -1, "no error message");
        let kind = fields.0[0];
        fields.0 = &fields.0[1..];
        assert_eq!(kind, 2);
        let name = read_string(&mut fields);
        errors.push((name.clone(), error));
        for _ in 0..fields.i32() {
            let config = read_string(&mut fields);
            let value = read_string(&mut fields);
            let (read_only, source, sensitive) = (fields.0[0], fields.0[1], fields.0[2]);
            fields.0 = &fields.0[3..];
            assert_eq!((read_only, sensitive), (0, 0));
            assert_eq!(fields.i32(), 0, "no synonyms");
            configs.insert(config, (value, source));
        }
    }
    assert_eq!(
        errors,
        vec![("kept".to_string(), 0), ("missing".to_string(), 3)]
    );
    assert_eq!(
        configs.get("retention.ms"),
        Some(&("3600000".to_string(), 1))
    );
    assert_eq!(
        configs.get("cleanup.policy"),
        Some(&("delete".to_string(), 5))
    );
    assert_eq!(
        configs.get("retention.bytes").map(|(_, source)| *source),
        Some(5)
    );
    assert!(configs.contains_key("segment.bytes"), "{configs:?}");
    broker.stop();
}
