//! Shared harness for the broker's integration tests: runs the real `ringbus` binary on
//! 127.0.0.1 with an OS-chosen port and a temp data dir under /tmp (ext4: O_DIRECT works), and
//! a small blocking client that speaks the wire protocol directly (so the tests do not depend
//! on the client library they might be testing).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use flatbuffers::FlatBufferBuilder;
use schema::wire::{
    self, Acks, DecodeLimits, ErrorCode, FetchPartitionOwned, PayloadRange, ProduceBatchOwned,
    ProduceResultOwned, RequestBodyOwned, ResponseBodyOwned, ResponseOwned, TopicConfigOwned,
};

/// How long a broker may take to start or stop before the test fails.
const START_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running broker process; killed if the test panics.
pub struct Broker {
    child: Option<Child>,
    /// Its address.
    pub address: SocketAddr,
    /// Its metrics endpoint, when started with `--metrics-listen`.
    pub metrics_address: Option<SocketAddr>,
    /// Its Kafka listener (every broker the tests start has one, on a free port).
    pub kafka_address: SocketAddr,
    /// Its data directory.
    pub data_dir: PathBuf,
}

impl Broker {
    /// Starts `ringbus serve` on 2 shards (cores 0-1) over `data_dir`.
    pub fn start(data_dir: &Path) -> Broker {
        Broker::start_with_args(data_dir, &[])
    }

    /// Like [`Broker::start`], with extra `serve` arguments; with `--metrics-listen` it also
    /// waits for the `metrics on ADDR` line.
    pub fn start_with_args(data_dir: &Path, extra: &[&str]) -> Broker {
        Broker::start_listening(data_dir, "127.0.0.1:0", extra)
    }

    /// Like [`Broker::start_with_args`], listening on `listen` (to restart a broker on the
    /// address its clients know).
    pub fn start_listening(data_dir: &Path, listen: &str, extra: &[&str]) -> Broker {
        Broker::start_logging(data_dir, listen, extra, "warn", Stdio::inherit())
    }

    /// Like [`Broker::start_listening`], with the Kafka listener on `kafka_listen` (to restart
    /// a broker on the Kafka address its Kafka clients know).
    pub fn start_listening_kafka(
        data_dir: &Path,
        listen: &str,
        kafka_listen: &str,
        extra: &[&str],
    ) -> Broker {
        let command = serve_command_kafka_at(data_dir, "0-1", listen, kafka_listen);
        Broker::spawn(command, data_dir, extra, "warn", Stdio::inherit())
    }

    /// Like [`Broker::start_listening`], logging at `log` (RINGBUS_LOG) to `stderr`.
    pub fn start_logging(
        data_dir: &Path,
        listen: &str,
        extra: &[&str],
        log: &str,
        stderr: Stdio,
    ) -> Broker {
        let command = serve_command_at(data_dir, "0-1", listen);
        Broker::spawn(command, data_dir, extra, log, stderr)
    }

    /// Runs `command` (a `serve`) with `extra`, and waits for its listening lines.
    fn spawn(
        mut command: Command,
        data_dir: &Path,
        extra: &[&str],
        log: &str,
        stderr: Stdio,
    ) -> Broker {
        let mut child = command
            .args(extra)
            .env("RINGBUS_LOG", log)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start ringbus");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The first marker a line starts with names it (`kafka listening on` before
                // `ringbus listening on`).
                let markers = [
                    ("kafka listening on ", Listener::Kafka),
                    ("ringbus listening on ", Listener::Ringbus),
                    ("ringbus metrics on ", Listener::Metrics),
                ];
                for (marker, listener) in markers {
                    if let Some(rest) = line.strip_prefix(marker) {
                        let address = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = sender.send((listener, address));
                        break;
                    }
                }
            }
        });
        let wants_metrics = extra.contains(&"--metrics-listen");
        let mut address = None;
        let mut metrics_address = None;
        let mut kafka_address = None;
        while address.is_none()
            || kafka_address.is_none()
            || (wants_metrics && metrics_address.is_none())
        {
            let (listener, line) = receiver.recv_timeout(START_STOP_TIMEOUT).expect(
                "broker printed 'listening on ADDR', 'kafka listening on ADDR' (and 'metrics on ADDR')",
            );
            let parsed: SocketAddr = line.parse().expect("an address");
            match listener {
                Listener::Ringbus => address = Some(parsed),
                Listener::Kafka => kafka_address = Some(parsed),
                Listener::Metrics => metrics_address = Some(parsed),
            }
        }
        Broker {
            child: Some(child),
            address: address.expect("listening address"),
            metrics_address,
            kafka_address: kafka_address.expect("kafka listening address"),
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// SIGTERM, then waits for a clean exit (status 0).
    pub fn stop(mut self) {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = wait(&mut child).expect("broker stops after SIGTERM");
        assert!(status.success(), "broker exited with {status}");
    }

    /// SIGKILL: a crash, no clean shutdown.
    pub fn kill(mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("kill -9");
        let _ = child.wait();
    }

    /// The process id (to read its /proc entries).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }
}

/// Which line of `serve`'s start-up output.
#[derive(Debug, Clone, Copy)]
enum Listener {
    Ringbus,
    Kafka,
    Metrics,
}

fn wait(child: &mut Child) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + START_STOP_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `ringbus serve` on an OS-chosen port of 127.0.0.1 (and its Kafka listener on another, so
/// that tests never contend for Kafka's 9092), on `cores`, over `data_dir`, logging warnings;
/// the caller adds arguments, stdio and the environment it needs.
pub fn serve_command(data_dir: &Path, cores: &str) -> Command {
    serve_command_at(data_dir, cores, "127.0.0.1:0")
}

/// [`serve_command`] listening on `listen`.
pub fn serve_command_at(data_dir: &Path, cores: &str, listen: &str) -> Command {
    serve_command_kafka_at(data_dir, cores, listen, "127.0.0.1:0")
}

/// [`serve_command_at`] with the Kafka listener on `kafka_listen`.
pub fn serve_command_kafka_at(
    data_dir: &Path,
    cores: &str,
    listen: &str,
    kafka_listen: &str,
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ringbus"));
    command
        .args([
            "serve",
            "--listen",
            listen,
            "--kafka-listen",
            kafka_listen,
            "--cores",
            cores,
            "--data-dir",
        ])
        .arg(data_dir)
        .env("RINGBUS_LOG", "warn");
    command
}

/// A temp data dir on /tmp (ext4 here: supports O_DIRECT).
pub fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ringbus-it-")
        .tempdir_in("/tmp")
        .expect("temp dir")
}

/// A blocking client speaking the wire protocol, one request at a time.
pub struct RawClient {
    stream: TcpStream,
    next_id: u64,
}

impl RawClient {
    /// Connects.
    pub fn connect(address: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        RawClient { stream, next_id: 1 }
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends a request without reading a response.
    pub fn send(&mut self, body: &RequestBodyOwned, payload: &[u8]) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut builder = FlatBufferBuilder::new();
        let message = wire::encode_request(&mut builder, id, body).to_vec();
        let prefix =
            wire::frame_prefix(message.len(), payload.len(), wire::FRAME_BYTES_MAX_DEFAULT)
                .expect("frame fits");
        let mut frame = prefix.to_vec();
        frame.extend_from_slice(&message);
        frame.extend_from_slice(payload);
        self.stream.write_all(&frame).expect("write request");
        id
    }

    /// Reads one response frame; None when the broker closed the connection.
    pub fn receive(&mut self) -> Option<(ResponseOwned, Bytes)> {
        let mut prefix = [0u8; wire::FRAME_PREFIX_BYTES];
        if self.stream.read_exact(&mut prefix).is_err() {
            return None;
        }
        let header = wire::FrameHeader::parse(&prefix, u32::MAX).expect("valid prefix");
        let mut body = vec![0u8; header.body_bytes()];
        self.stream.read_exact(&mut body).ok()?;
        let body = Bytes::from(body);
        let message = body.slice(header.message_range());
        let payload = body.slice(header.payload_range());
        let limits = DecodeLimits::default();
        let response = wire::decode_response(&message, &limits).expect("valid response");
        let response =
            wire::response_from_wire(response, payload.len(), &limits).expect("valid response");
        Some((response, payload))
    }

    /// Sends a request and waits for its response.
    pub fn request(&mut self, body: &RequestBodyOwned, payload: &[u8]) -> (ResponseOwned, Bytes) {
        let id = self.send(body, payload);
        let (response, payload) = self.receive().expect("a response");
        assert_eq!(response.correlation_id, id);
        (response, payload)
    }
}

/// One batch of `records` values `prefix-i`, keyed `key-i`.
pub fn batch(prefix: &str, records: usize) -> Vec<u8> {
    let mut builder = schema::batch::BatchBuilder::new(1_700_000_000_000);
    for i in 0..records {
        let key = format!("key-{i}");
        let value = format!("{prefix}-{i}");
        builder.push(
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            1_700_000_000_000,
            &[],
        );
    }
    builder.finish()
}

pub fn create_topic(client: &mut RawClient, name: &str, partitions: u32) {
    let (response, _) = client.request(
        &RequestBodyOwned::CreateTopic {
            name: name.to_string(),
            partitions,
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

/// Produces one batch per (partition, batch) in one request; returns base offsets in order.
pub fn produce(
    client: &mut RawClient,
    topic: &str,
    batches: &[(u32, Vec<u8>)],
    acks: Acks,
) -> Vec<(ErrorCode, u64)> {
    produce_results(client, topic, batches, acks)
        .into_iter()
        .map(|result| (result.error, result.base_offset))
        .collect()
}

/// Produces one batch per (partition, batch) in one request; returns every result in order.
pub fn produce_results(
    client: &mut RawClient,
    topic: &str,
    batches: &[(u32, Vec<u8>)],
    acks: Acks,
) -> Vec<ProduceResultOwned> {
    let mut payload = Vec::new();
    let mut specs = Vec::new();
    for (partition, bytes) in batches {
        specs.push(ProduceBatchOwned {
            topic: topic.to_string(),
            partition: *partition,
            batch: PayloadRange::new(payload.len() as u32, bytes.len() as u32),
        });
        payload.extend_from_slice(bytes);
    }
    let (response, _) = client.request(
        &RequestBodyOwned::Produce {
            acks,
            timeout_ms: 10_000,
            batches: specs,
        },
        &payload,
    );
    match response.body {
        Some(ResponseBodyOwned::Produce { results, .. }) => results,
        other => panic!("unexpected {other:?} ({})", response.message),
    }
}

/// Fetches every batch of a partition from `offset` (loops until the log end).
pub fn fetch_all(
    client: &mut RawClient,
    topic: &str,
    partition: u32,
    mut offset: u64,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let (response, payload) = client.request(
            &RequestBodyOwned::Fetch {
                wait_ms_max: 0,
                bytes_min: 0,
                bytes_max: 1 << 20,
                partitions: vec![FetchPartitionOwned {
                    topic: topic.to_string(),
                    partition,
                    offset,
                    bytes_max: 1 << 20,
                }],
            },
            &[],
        );
        let Some(ResponseBodyOwned::Fetch { results, .. }) = response.body else {
            panic!("unexpected {:?}", response.body);
        };
        let result = &results[0];
        assert_eq!(result.error, ErrorCode::None, "{}", result.message);
        let start = result.batches.offset() as usize;
        let mut bytes = &payload[start..start + result.batches.length() as usize];
        if bytes.is_empty() {
            assert_eq!(offset, result.log_end);
            return out;
        }
        while !bytes.is_empty() {
            let length = schema::batch::total_bytes(bytes).expect("a whole batch");
            let header = schema::batch::verify(&bytes[..length]).expect("stored batch verifies");
            out.push(bytes[..length].to_vec());
            offset = header.last_offset() as u64 + 1;
            bytes = &bytes[length..];
        }
    }
}

/// Sends `request` as is and returns the whole response (the server closes after one).
pub fn http(address: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).expect("connect to metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    // The server may close early on an oversized head; the response (or none) is checked.
    let _ = stream.write_all(request);
    let mut response = Vec::new();
    // A reset after the response is fine: what was read is what we check.
    let _ = stream.read_to_end(&mut response);
    String::from_utf8(response).expect("utf-8 response")
}

/// `GET /metrics`: checks the head (200, the Prometheus content type, the length) and returns
/// the body.
pub fn scrape(address: SocketAddr) -> String {
    let response = http(address, b"GET /metrics HTTP/1.1\r\nHost: ringbus\r\n\r\n");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Content-Length: {}\r\n", body.len())),
        "{head}"
    );
    body.to_string()
}

/// The sum over shards of the series whose name and labels (other than shard) match.
pub fn sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    let mut total = 0.0;
    let mut found = false;
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some(rest) = series.strip_prefix(name) else {
            continue;
        };
        if !rest.starts_with('{') || !rest.contains("shard=\"") {
            continue;
        }
        if labels.iter().all(|label| rest.contains(label)) {
            total += value.parse::<f64>().expect("a number");
            found = true;
        }
    }
    assert!(found, "no series {name} {labels:?} in:\n{text}");
    total
}

/// Runs `command` to its end, as [`Command::output`] does, but for at most `limit`: a command
/// still running then has its threads' stacks printed (with gdb, where installed), is killed,
/// and the test fails with what it printed. A hang in CI is then a failure that says where it
/// hung, not a run that ends at CI's own time limit with nothing to go on.
pub fn output_within(command: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    // The pipes are drained beside the wait: a chatty child must not block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let Some(status) = status else {
        let stacks = Command::new("gdb")
            .args([
                "-batch",
                "-p",
                &child.id().to_string(),
                "-ex",
                "thread apply all bt",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|error| format!("(no stacks: gdb: {error})"));
        let _ = child.kill();
        let _ = child.wait();
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        panic!(
            "{command:?} still ran after {limit:?}: killed\n--- stdout\n{}\n--- stderr\n{}\n--- stacks\n{stacks}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr),
        );
    };
    std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Whether the tests run under CI (the CI environment variable set, and not to "0"): there a
/// missing external client is a broken set-up (.ci/run installs each), elsewhere a reason to
/// skip that test with a message.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "0")
}

/// The Python that `RINGBUS_KAFKA_PYTHON` names (else `python3`) if it imports `module` (the
/// PyPI package `package`); None, after saying so, where it does not outside CI; under CI,
/// where .ci/run installs it, a failed test.
pub fn kafka_python(module: &str, package: &str) -> Option<String> {
    let python = std::env::var("RINGBUS_KAFKA_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let usable = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    match (usable, in_ci()) {
        (true, _) => Some(python),
        (false, true) => panic!(
            "{python} cannot import {module} ({package}), and CI is set: .ci/run must install \
             it (RINGBUS_KAFKA_PYTHON names its venv's python)"
        ),
        (false, false) => {
            eprintln!(
                "SKIPPED: {python} has no {module} (pip install {package}, or set \
                 RINGBUS_KAFKA_PYTHON); not under CI"
            );
            None
        }
    }
}

/// Runs `ringbus ARGS --broker ADDRESS` against `broker` with `stdin` as its input; the test
/// fails unless it succeeds.
pub fn ringbus_with_stdin(broker: &Broker, args: &[&str], stdin: &[u8]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringbus"))
        .args(args)
        .arg("--broker")
        .arg(broker.address.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ringbus");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    let output = child.wait_with_output().expect("ringbus output");
    assert!(output.status.success(), "ringbus {args:?}: {output:?}");
}
