//! One Kafka client connection on the shard that accepted it: reads size-prefixed requests,
//! runs each as its own task (Kafka clients pipeline: librdkafka keeps up to 5 in flight), and
//! writes the responses in request order, as Kafka requires. The same shape and limits as the
//! ringbus wire's `connection`: at most `in_flight_max` requests run at once (the reader takes
//! a permit before it spawns a request, the writer returns it once the response is written),
//! and with none left the reader stops reading, so TCP pushes back on the client.
//!
//! A request that cannot be served (garbage, an unknown API or version, a body that does not
//! decode, a size over `frame_bytes_max`) closes this connection after the responses before it,
//! with the reason logged; the broker and every other connection carry on.

use std::rc::Rc;

use glommio::channels::local_channel;
use glommio::sync::{Semaphore, StaticPermit};

use super::config::KafkaSettings;
use super::frame::Reply;
use super::group::GroupSession;
use crate::shard::Shard;

/// Serves a connection until the client closes it, sends a request that cannot be served, or
/// goes idle.
pub async fn serve(
    shard: Rc<Shard>,
    settings: Rc<KafkaSettings>,
    connection: net::Connection,
    in_flight_max: usize,
) {
    let peer = connection.peer();
    shard.metrics.connection_opened();
    let writer_shard = shard.clone();
    let (mut reader, mut writer) = connection.split_sized();
    assert!(
        in_flight_max > 0,
        "a connection must allow one request in flight"
    );
    let in_flight = Rc::new(Semaphore::new(in_flight_max as u64));
    // What this connection's group members joined with, until their SyncGroup.
    let session = Rc::new(GroupSession::default());
    // Never full: a request is queued only with a permit, and there are `in_flight_max`.
    let (queue, replies) =
        local_channel::new_bounded::<(glommio::Task<Reply>, StaticPermit)>(in_flight_max);
    let writer_in_flight = in_flight.clone();
    let writer_task = glommio::spawn_local(async move {
        write_replies(&writer_shard, peer, &mut writer, replies).await;
        // A reader waiting for a permit must not wait for a writer that is gone.
        writer_in_flight.close();
        let _ = writer.close().await;
    });
    loop {
        match reader.read_frame().await {
            Ok(Some(body)) => {
                shard
                    .metrics
                    .record_received(net::SIZE_PREFIX_BYTES + body.len());
                // Fails only once the writer is gone (the semaphore is closed with it).
                let Ok(permit) = in_flight.acquire_static_permit(1).await else {
                    break;
                };
                let task = glommio::spawn_local(super::handle(
                    shard.clone(),
                    settings.clone(),
                    session.clone(),
                    body,
                ));
                if queue.send((task, permit)).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            // A client that resets or goes quiet is ordinary (Kafka clients drop idle
            // connections); a malformed frame is the client's bug, worth a warning.
            Err(error @ (net::ReadError::Io(_) | net::ReadError::IdleTimeout(_))) => {
                tracing::debug!(%peer, %error, "Kafka connection ended");
                break;
            }
            Err(error) => {
                tracing::warn!(%peer, %error, "closing Kafka connection");
                break;
            }
        }
    }
    drop(queue);
    writer_task.await;
    shard.metrics.connection_closed();
}

/// Writes each request's response in request order; returns when the reader is done, the
/// client went away, or a request closes the connection.
async fn write_replies(
    shard: &Shard,
    peer: std::net::SocketAddr,
    writer: &mut net::SizedWriter,
    replies: local_channel::LocalReceiver<(glommio::Task<Reply>, StaticPermit)>,
) {
    while let Some((task, _permit)) = replies.recv().await {
        match task.await {
            Reply::Respond(parts) => {
                if let Err(error) = writer.write_frame(&parts).await {
                    tracing::debug!(%peer, %error, "Kafka client went away");
                    return;
                }
                let bytes: usize = parts.iter().map(|part| part.len()).sum();
                shard.metrics.record_sent(net::SIZE_PREFIX_BYTES + bytes);
            }
            Reply::Silent => {}
            Reply::Close(reason) => {
                tracing::warn!(%peer, %reason, "closing Kafka connection after a bad request");
                return;
            }
        }
    }
}
