//! The fake broker the client tests talk to: a real TCP listener on 127.0.0.1:0 in the test's
//! own glommio executor, speaking frames through `net` and messages through `schema::wire`,
//! answering exactly as each test scripts it. Shared by the test files; each uses a part.
#![allow(dead_code)]

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use client::{Client, ClientOptions, ErrorCode};
use flatbuffers::FlatBufferBuilder;
use schema::wire::{
    self, DecodeLimits, RequestBodyOwned, ResponseBodyOwned, ResponseOwned, TopicConfigOwned,
    TopicMetadataOwned,
};

const TEST_DEADLINE: Duration = Duration::from_secs(20);

/// Runs `test` on a fresh executor with a listener for the fake broker.
pub fn run<F, Fut>(test: F)
where
    F: FnOnce(net::Listener) -> Fut,
    Fut: Future<Output = ()>,
{
    let executor = glommio::LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .make()
        .expect("executor");
    executor.run(async move {
        let listener = net::bind_reuseport("127.0.0.1:0".parse().expect("address")).expect("bind");
        let listener = net::Listener::from_std(listener).expect("listener");
        let deadline = async {
            glommio::timer::sleep(TEST_DEADLINE).await;
            panic!("the test did not finish within {TEST_DEADLINE:?}: a call is hanging");
        };
        futures_lite::future::or(test(listener), deadline).await;
    });
}

/// The broker side of one connection.
pub struct Peer {
    pub reader: net::FrameReader,
    pub writer: net::FrameWriter,
    builder: FlatBufferBuilder<'static>,
}

/// One request as the peer received it.
pub struct Received {
    pub correlation_id: u64,
    pub body: RequestBodyOwned,
    pub payload: BytesMut,
}

impl Peer {
    /// Accepts the client's connection and answers its handshake.
    pub async fn accept(listener: &net::Listener) -> Peer {
        let connection = listener
            .accept(net::Limits::default())
            .await
            .expect("accept");
        let (reader, writer) = connection.split();
        let mut peer = Peer {
            reader,
            writer,
            builder: FlatBufferBuilder::new(),
        };
        let handshake = peer.receive().await;
        assert!(matches!(handshake.body, RequestBodyOwned::Handshake { .. }));
        let body = ResponseBodyOwned::Handshake {
            error: ErrorCode::None,
            version: wire::PROTOCOL_VERSION,
            shard_count: 1,
            frame_bytes_max: wire::FRAME_BYTES_MAX_DEFAULT,
            in_flight_max: 16,
        };
        peer.respond(handshake.correlation_id, body, &[]).await;
        peer
    }

    pub async fn receive(&mut self) -> Received {
        let frame = self
            .reader
            .read_frame()
            .await
            .expect("read")
            .expect("a frame");
        let limits = DecodeLimits::default();
        let request = wire::decode_request(&frame.message, &limits).expect("decodes");
        let (correlation_id, body) =
            wire::request_from_wire(request, frame.payload.len(), &limits).expect("valid");
        Received {
            correlation_id,
            body,
            payload: frame.payload,
        }
    }

    pub async fn respond(
        &mut self,
        correlation_id: u64,
        body: ResponseBodyOwned,
        payload: &[Bytes],
    ) {
        let response = ResponseOwned {
            correlation_id,
            error: ErrorCode::None,
            message: String::new(),
            body: Some(body),
        };
        self.send(&response, payload).await;
    }

    pub async fn send(&mut self, response: &ResponseOwned, payload: &[Bytes]) {
        let message = wire::encode_response(&mut self.builder, response).to_vec();
        self.writer
            .write_frame(&message, payload)
            .await
            .expect("write");
    }
}

/// A metadata response naming the topics asked for.
pub fn metadata_echo(request: &RequestBodyOwned) -> ResponseBodyOwned {
    let RequestBodyOwned::Metadata { topics } = request else {
        panic!("expected a metadata request");
    };
    let topics = topics
        .iter()
        .map(|name| TopicMetadataOwned {
            name: name.clone(),
            error: ErrorCode::None,
            partitions: Vec::new(),
            config: TopicConfigOwned::default(),
        })
        .collect();
    ResponseBodyOwned::Metadata {
        error: ErrorCode::None,
        topics,
    }
}

pub async fn connect(listener: &net::Listener, options: ClientOptions) -> (Rc<Client>, Peer) {
    let address = listener.local_addr();
    let (client, peer) =
        futures_lite::future::zip(Client::connect(address, options), Peer::accept(listener)).await;
    (Rc::new(client.expect("connect")), peer)
}

/// A metadata response describing `topic` with `partition_count` partitions.
pub fn metadata_with_partitions(topic: &str, partition_count: u32) -> ResponseBodyOwned {
    let partitions = (0..partition_count)
        .map(|partition| wire::PartitionMetadataOwned {
            partition,
            shard: 0,
            error: ErrorCode::None,
            log_start: 0,
            log_end: 0,
        })
        .collect();
    ResponseBodyOwned::Metadata {
        error: ErrorCode::None,
        topics: vec![TopicMetadataOwned {
            name: topic.to_string(),
            error: ErrorCode::None,
            partitions,
            config: TopicConfigOwned::default(),
        }],
    }
}

/// The batches of a produce request: (topic, partition, batch bytes), in request order.
pub fn produced_batches(request: &Received) -> Vec<(String, u32, Bytes)> {
    let RequestBodyOwned::Produce { batches, .. } = &request.body else {
        panic!("expected a produce request");
    };
    let payload = Bytes::copy_from_slice(&request.payload);
    batches
        .iter()
        .map(|batch| {
            let bytes = wire::slice_payload(&payload, &batch.batch).expect("in the payload");
            (batch.topic.clone(), batch.partition, bytes)
        })
        .collect()
}

/// Answers a produce request: batch i gets `outcomes[i]`, an error code or a base offset.
pub async fn answer_produce(
    peer: &mut Peer,
    request: &Received,
    outcomes: &[Result<u64, ErrorCode>],
) {
    let batches = produced_batches(request);
    assert_eq!(batches.len(), outcomes.len(), "one outcome per batch");
    let results = batches
        .iter()
        .zip(outcomes)
        .map(|((topic, partition, bytes), outcome)| {
            let header = schema::batch::verify(bytes).expect("the producer sends valid batches");
            let (error, base_offset) = match outcome {
                Ok(base) => (ErrorCode::None, *base),
                Err(code) => (*code, 0),
            };
            wire::ProduceResultOwned {
                topic: topic.clone(),
                partition: *partition,
                error,
                base_offset,
                last_offset: base_offset + header.last_offset_delta as u64,
                log_start: 0,
                message: String::new(),
            }
        })
        .collect();
    let body = ResponseBodyOwned::Produce {
        error: ErrorCode::None,
        results,
    };
    peer.respond(request.correlation_id, body, &[]).await;
}

/// The record values of a batch, as strings.
pub fn batch_values(batch: &Bytes) -> Vec<String> {
    schema::batch::records(batch)
        .expect("records")
        .map(|record| {
            let record = record.expect("record");
            String::from_utf8(record.value.expect("value").to_vec()).expect("utf-8")
        })
        .collect()
}

/// A stored batch of `count` records at `base_offset`, values "v<offset>".
pub fn stored_batch(base_offset: u64, count: u64) -> Bytes {
    let mut builder = schema::batch::BatchBuilder::new(0);
    for offset in base_offset..base_offset + count {
        builder.push(None, Some(format!("v{offset}").as_bytes()), 0, &[]);
    }
    let mut batch = builder.finish();
    schema::batch::set_base_offset(&mut batch, base_offset as i64);
    Bytes::from(batch)
}

/// Answers a fetch of topic "t": one result per `(partition, error, batches)`, in order.
pub async fn answer_fetch(
    peer: &mut Peer,
    request: &Received,
    answers: &[(u32, ErrorCode, Bytes)],
) {
    let mut at = 0;
    let results = answers
        .iter()
        .map(|(partition, error, batches)| {
            let range = wire::PayloadRange::new(at, batches.len() as u32);
            at += batches.len() as u32;
            wire::FetchResultOwned {
                topic: "t".to_string(),
                partition: *partition,
                error: *error,
                log_end: 100,
                log_start: 0,
                batches: range,
                message: String::new(),
            }
        })
        .collect();
    let payload: Vec<Bytes> = answers.iter().map(|(_, _, bytes)| bytes.clone()).collect();
    let body = ResponseBodyOwned::Fetch {
        error: ErrorCode::None,
        results,
    };
    peer.respond(request.correlation_id, body, &payload).await;
}
