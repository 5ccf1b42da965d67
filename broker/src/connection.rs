//! One client connection on the shard that accepted it: reads frames, runs each request as its
//! own task (pipelining), and writes the responses back in request order.
//!
//! At most `in_flight_max` requests run per connection: the reader takes a permit before it
//! spawns a request's task, and the writer returns it once the response is written; with none
//! left, the reader stops reading and TCP pushes back on the client. A malformed frame (bad prefix, message
//! that fails verification) closes this connection with a logged reason, after answering with
//! an error where a correlation id is known; the broker and every other connection carry on.

use std::rc::Rc;

use glommio::channels::local_channel;
use glommio::sync::{Semaphore, StaticPermit};
use schema::wire::FRAME_PREFIX_BYTES;

use crate::handler::{self, Outcome};
use crate::shard::Shard;

/// Serves a connection until the client closes it, sends a malformed frame, or goes idle.
pub async fn serve(shard: Rc<Shard>, connection: net::Connection, in_flight_max: usize) {
    let peer = connection.peer();
    shard.metrics.connection_opened();
    let writer_shard = shard.clone();
    let (mut reader, mut writer) = connection.split();
    assert!(
        in_flight_max > 0,
        "a connection must allow one request in flight"
    );
    let in_flight = Rc::new(Semaphore::new(in_flight_max as u64));
    // Never full: a request is queued only with a permit, and there are `in_flight_max`.
    let (queue, responses) =
        local_channel::new_bounded::<(glommio::Task<Outcome>, StaticPermit)>(in_flight_max);
    let writer_in_flight = in_flight.clone();
    let writer_task = glommio::spawn_local(async move {
        write_responses(&writer_shard, peer, &mut writer, responses).await;
        // A reader waiting for a permit must not wait for a writer that is gone.
        writer_in_flight.close();
        let _ = writer.close().await;
    });
    loop {
        match reader.read_frame().await {
            Ok(Some(frame)) => {
                let frame_bytes = FRAME_PREFIX_BYTES + frame.message.len() + frame.payload.len();
                shard.metrics.record_received(frame_bytes);
                // Fails only once the writer is gone (the semaphore is closed with it).
                let Ok(permit) = in_flight.acquire_static_permit(1).await else {
                    break;
                };
                let task = glommio::spawn_local(handler::handle(shard.clone(), frame));
                if queue.send((task, permit)).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(error) => {
                tracing::warn!(%peer, %error, "closing connection");
                break;
            }
        }
    }
    drop(queue);
    writer_task.await;
    shard.metrics.connection_closed();
}

/// Writes each request's response in request order; returns when the reader is done, the
/// client went away, or a response closes the connection. A request's permit is returned once
/// its response is written.
async fn write_responses(
    shard: &Shard,
    peer: std::net::SocketAddr,
    writer: &mut net::FrameWriter,
    responses: local_channel::LocalReceiver<(glommio::Task<Outcome>, StaticPermit)>,
) {
    while let Some((task, _permit)) = responses.recv().await {
        let (frame, close) = match task.await {
            Outcome::Respond(frame) => (Some(frame), false),
            Outcome::Silent => (None, false),
            Outcome::RespondAndClose(frame, reason) => {
                tracing::warn!(%peer, %reason, "closing connection after a bad request");
                (Some(frame), true)
            }
        };
        if let Some(frame) = &frame
            && let Err(error) = writer.write_frame(&frame.message, &frame.payload).await
        {
            tracing::debug!(%peer, %error, "client went away");
            return;
        }
        if let Some(frame) = &frame {
            let payload_bytes: usize = frame.payload.iter().map(|part| part.len()).sum();
            let frame_bytes = FRAME_PREFIX_BYTES + frame.message.len() + payload_bytes;
            shard.metrics.record_sent(frame_bytes);
        }
        if close {
            break;
        }
    }
}
