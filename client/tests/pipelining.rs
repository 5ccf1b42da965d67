//! Goal: the client matches pipelined responses to their callers by correlation id whatever
//! order they come in, expects no response to an `Acks::None` produce, slices fetch payloads
//! per partition, and never leaves a caller waiting: a lost connection or a response to a
//! request never sent fails every waiting call, and a response that comes after its caller
//! timed out is dropped without disturbing the others.
//!
//! Method: a fake broker in the same glommio executor (a real TCP listener on 127.0.0.1:0,
//! speaking frames through `net` and messages through `schema::wire`) answers exactly as each
//! test scripts it. Each test runs under a generous deadline only so that a bug fails the test
//! instead of hanging it; nothing asserts on timing.

mod common;

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use client::{Acks, Client, ClientError, ClientOptions, ErrorCode, FetchArgs, ProduceItem};
use common::{Peer, Received, connect, metadata_echo, run};
use glommio::channels::local_channel;
use schema::wire::{
    self, FetchPartitionOwned, FetchResultOwned, PayloadRange, RequestBodyOwned, ResponseBodyOwned,
    ResponseOwned, TopicMetadataOwned,
};

/// Starts a metadata call for `topic` as its own task.
fn metadata_call(
    client: &Rc<Client>,
    topic: &str,
) -> glommio::Task<Result<Vec<TopicMetadataOwned>, ClientError>> {
    let (client, topic) = (client.clone(), topic.to_string());
    glommio::spawn_local(async move { client.metadata(&[topic]).await })
}

#[test]
fn responses_in_any_order_reach_their_callers() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let names = ["a", "b", "c", "d"];
        let calls: Vec<_> = names
            .iter()
            .map(|name| metadata_call(&client, name))
            .collect();
        let mut received = Vec::new();
        for _ in &names {
            received.push(peer.receive().await);
        }
        // Answer in reverse, then the middle two swapped: no relation to the request order.
        received.reverse();
        received.swap(1, 2);
        for request in &received {
            peer.respond(request.correlation_id, metadata_echo(&request.body), &[])
                .await;
        }
        for (call, name) in calls.into_iter().zip(names) {
            let topics = call.await.expect("answered");
            assert_eq!(topics.len(), 1);
            assert_eq!(topics[0].name, name, "each caller gets its own response");
        }
    });
}

#[test]
fn acks_none_produce_expects_no_response_and_sends_batches_in_the_payload() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let first = Bytes::from_static(b"first batch bytes");
        let second = Bytes::from_static(b"second");
        let items = vec![
            ProduceItem {
                topic: "t".to_string(),
                partition: 0,
                batch: first.clone(),
            },
            ProduceItem {
                topic: "t".to_string(),
                partition: 1,
                batch: second.clone(),
            },
        ];
        let results = client.produce(Acks::None, items).await.expect("written");
        assert!(results.is_empty(), "no results without a response");

        let produce = peer.receive().await;
        let RequestBodyOwned::Produce { acks, batches, .. } = &produce.body else {
            panic!("expected a produce request");
        };
        assert_eq!(*acks, Acks::None);
        let slices: Vec<&[u8]> = batches
            .iter()
            .map(|batch| {
                let range =
                    wire::payload_slice(&batch.batch, produce.payload.len()).expect("in payload");
                &produce.payload[range]
            })
            .collect();
        assert_eq!(slices, vec![&first[..], &second[..]]);

        // The next call's response is matched although the produce never got one.
        let call = metadata_call(&client, "after");
        let request = peer.receive().await;
        peer.respond(request.correlation_id, metadata_echo(&request.body), &[])
            .await;
        assert_eq!(call.await.expect("answered")[0].name, "after");
    });
}

#[test]
fn fetch_results_are_slices_of_the_payload() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let client_task = client.clone();
        let call = glommio::spawn_local(async move {
            let partitions = (0..2)
                .map(|partition| FetchPartitionOwned {
                    topic: "t".to_string(),
                    partition,
                    offset: 0,
                    bytes_max: 1 << 20,
                })
                .collect();
            let args = FetchArgs {
                wait_max: Duration::ZERO,
                bytes_min: 1,
                bytes_max: 1 << 20,
                partitions,
            };
            client_task.fetch(args).await
        });
        let request = peer.receive().await;
        let result = |partition, offset, length| FetchResultOwned {
            topic: "t".to_string(),
            partition,
            error: ErrorCode::None,
            log_end: 9,
            log_start: 0,
            batches: PayloadRange::new(offset, length),
            message: String::new(),
        };
        let body = ResponseBodyOwned::Fetch {
            error: ErrorCode::None,
            results: vec![result(0, 0, 5), result(1, 5, 3)],
        };
        let payload = [Bytes::from_static(b"zero-"), Bytes::from_static(b"one")];
        peer.respond(request.correlation_id, body, &payload).await;
        let fetched = call.await.expect("fetched");
        assert_eq!(&fetched[0].batches[..], b"zero-");
        assert_eq!(&fetched[1].batches[..], b"one");
        assert_eq!(fetched[1].log_end, 9);
    });
}

#[test]
fn a_lost_connection_fails_every_waiting_call() {
    run(|listener| async move {
        // Reconnecting off: the lost connection stays lost.
        let options = ClientOptions {
            reconnect_timeout: Duration::ZERO,
            ..ClientOptions::default()
        };
        let (client, mut peer) = connect(&listener, options).await;
        let calls: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|name| metadata_call(&client, name))
            .collect();
        for _ in 0..3 {
            peer.receive().await;
        }
        drop(peer);
        for call in calls {
            let error = call.await.expect_err("the connection is gone");
            assert!(
                matches!(error, ClientError::ConnectionLost { .. }),
                "{error}"
            );
        }
        assert!(client.failure().is_some());
        let error = client.metadata(&[]).await.expect_err("no connection");
        assert!(
            matches!(error, ClientError::ConnectionLost { .. }),
            "{error}"
        );
    });
}

#[test]
fn after_a_lost_connection_the_next_call_reconnects_and_succeeds() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let lost = metadata_call(&client, "a");
        peer.receive().await;
        drop(peer);
        let error = lost.await.expect_err("its connection is gone");
        assert!(
            matches!(error, ClientError::ConnectionLost { .. }),
            "{error}"
        );
        assert!(client.failure().is_some());
        // Two calls while the connection is down share one reconnect, then both go through.
        let calls = [metadata_call(&client, "b"), metadata_call(&client, "c")];
        let mut peer = Peer::accept(&listener).await;
        for _ in 0..2 {
            let request = peer.receive().await;
            peer.respond(request.correlation_id, metadata_echo(&request.body), &[])
                .await;
        }
        for call in calls {
            call.await.expect("answered on the new connection");
        }
        assert!(client.failure().is_none());
        assert_eq!(client.reconnects(), 1);
    });
}

#[test]
fn calls_waiting_for_a_reconnect_that_gives_up_share_its_failure() {
    run(|listener| async move {
        let options = ClientOptions {
            connect_timeout: Duration::from_millis(100),
            reconnect_timeout: Duration::from_millis(400),
            ..ClientOptions::default()
        };
        let (client, peer) = connect(&listener, options).await;
        drop(peer);
        // From now on the "broker" accepts connections but never answers a handshake: every
        // reconnect attempt times out. Count the attempts.
        let accepted = Rc::new(std::cell::Cell::new(0u32));
        let counter = accepted.clone();
        let _acceptor = glommio::spawn_local(async move {
            let mut held = Vec::new();
            loop {
                let connection = listener
                    .accept(net::Limits::default())
                    .await
                    .expect("accept");
                counter.set(counter.get() + 1);
                held.push(connection);
            }
        });
        // Let the client notice the loss.
        while client.failure().is_none() {
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        let calls: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|name| metadata_call(&client, name))
            .collect();
        for call in calls {
            let error = call.await.expect_err("the broker never answers");
            assert!(matches!(error, ClientError::Unreachable { .. }), "{error}");
        }
        // One reconnect's attempts (each 100 ms plus a pause, within 400 ms: at most 4), not
        // three reconnects' (up to 12).
        assert!(
            accepted.get() <= 5,
            "{} connection attempts for three calls",
            accepted.get()
        );
        // A later call tries again.
        let before = accepted.get();
        let error = client.metadata(&[]).await.expect_err("still no answer");
        assert!(matches!(error, ClientError::Unreachable { .. }), "{error}");
        assert!(accepted.get() > before, "a fresh call reconnects again");
    });
}

#[test]
fn connecting_waits_for_a_broker_that_is_not_up_yet_and_gives_up_at_the_deadline() {
    run(|_listener| async move {
        // Nothing listens on this address for a while: connect retries until it does.
        let address = {
            let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            socket.local_addr().expect("address")
        };
        let options = ClientOptions {
            reconnect_timeout: Duration::from_millis(300),
            ..ClientOptions::default()
        };
        let error = Client::connect(address, options.clone())
            .await
            .err()
            .expect("nobody listens there");
        assert!(matches!(error, ClientError::Connect { .. }), "{error}");
        // A broker that comes up while connect is retrying is reached.
        let options = ClientOptions {
            reconnect_timeout: Duration::from_secs(30),
            ..ClientOptions::default()
        };
        let (client, _peer) = futures_lite::future::zip(Client::connect(address, options), async {
            glommio::timer::sleep(Duration::from_millis(300)).await;
            let late = net::bind_reuseport(address).expect("bind the address later");
            let late = net::Listener::from_std(late).expect("listener");
            Peer::accept(&late).await
        })
        .await;
        client.expect("connected once the broker answered");
    });
}

#[test]
fn a_response_to_a_request_never_sent_fails_the_connection() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let call = metadata_call(&client, "a");
        let request = peer.receive().await;
        peer.respond(
            request.correlation_id + 1000,
            metadata_echo(&request.body),
            &[],
        )
        .await;
        let error = call.await.expect_err("the stream cannot be trusted");
        assert!(error.to_string().contains("never sent"), "{error}");
    });
}

#[test]
fn a_late_response_is_dropped_and_later_calls_still_match() {
    run(|listener| async move {
        let options = ClientOptions {
            request_timeout: Duration::from_millis(100),
            ..ClientOptions::default()
        };
        let (client, mut peer) = connect(&listener, options).await;
        let early = peer_answering_late(&client, &mut peer).await;
        // The timed-out call's response arrives now, then the next call's own.
        let call = metadata_call(&client, "b");
        let request = peer.receive().await;
        peer.respond(early.correlation_id, metadata_echo(&early.body), &[])
            .await;
        peer.respond(request.correlation_id, metadata_echo(&request.body), &[])
            .await;
        assert_eq!(call.await.expect("answered")[0].name, "b");
        assert!(
            client.failure().is_none(),
            "a late response is not a protocol error"
        );
    });
}

/// Makes a call the peer does not answer until the caller has timed out; returns the request.
async fn peer_answering_late(client: &Rc<Client>, peer: &mut Peer) -> Received {
    let (timed_out, on_timed_out) = local_channel::new_bounded(1);
    let call = metadata_call(client, "a");
    let watcher = glommio::spawn_local(async move {
        let error = call.await.expect_err("no answer in time");
        assert!(matches!(error, ClientError::Timeout { .. }), "{error}");
        timed_out.send(()).await.expect("signal");
    });
    let request = peer.receive().await;
    on_timed_out.recv().await.expect("the call timed out");
    watcher.await;
    request
}

#[test]
fn a_request_level_error_carries_the_code_and_message() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let call = metadata_call(&client, "a");
        let request = peer.receive().await;
        let response = ResponseOwned {
            correlation_id: request.correlation_id,
            error: ErrorCode::ShuttingDown,
            message: "the broker is shutting down".to_string(),
            body: None,
        };
        peer.send(&response, &[]).await;
        let error = call.await.expect_err("refused");
        assert_eq!(error.code(), Some(ErrorCode::ShuttingDown));
        assert!(error.to_string().contains("shutting down"), "{error}");
        assert!(client.failure().is_none(), "the connection is still usable");
    });
}

#[test]
fn close_waits_for_the_broker_to_finish() {
    run(|listener| async move {
        let (client, mut peer) = connect(&listener, ClientOptions::default()).await;
        let item = ProduceItem {
            topic: "t".to_string(),
            partition: 0,
            batch: Bytes::from_static(b"b"),
        };
        client
            .produce(Acks::None, vec![item])
            .await
            .expect("written");
        let broker = glommio::spawn_local(async move {
            let produce = peer.receive().await;
            assert!(matches!(produce.body, RequestBodyOwned::Produce { .. }));
            // The client shut down its side: end of stream after the last request.
            assert!(peer.reader.read_frame().await.expect("clean end").is_none());
            peer.writer.close().await.expect("close");
        });
        client.close().await.expect("closed gracefully");
        broker.await;
        let error = client.metadata(&[]).await.expect_err("closed");
        assert!(matches!(error, ClientError::Closed { .. }), "{error}");
    });
}
