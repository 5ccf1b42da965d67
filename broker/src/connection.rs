//! One client connection on the shard that accepted it: reads frames, runs each request as its
//! own task (pipelining), and writes the responses back in request order.
//!
//! At most `in_flight_max` requests run per connection: when that many are waiting, the reader
//! stops reading, and TCP pushes back on the client. A malformed frame (bad prefix, message
//! that fails verification) closes this connection with a logged reason, after answering with
//! an error where a correlation id is known; the broker and every other connection carry on.

use std::rc::Rc;

use glommio::channels::local_channel;
use schema::wire::FRAME_PREFIX_BYTES;

use crate::handler::{self, Outcome};
use crate::shard::Shard;

/// Serves a connection until the client closes it, sends a malformed frame, or goes idle.
pub async fn serve(shard: Rc<Shard>, connection: net::Connection, in_flight_max: usize) {
    let peer = connection.peer();
    shard.metrics.connection_opened();
    let writer_shard = shard.clone();
    let (mut reader, mut writer) = connection.split();
    let (queue, responses) = local_channel::new_bounded::<glommio::Task<Outcome>>(in_flight_max);
    let writer_task = glommio::spawn_local(async move {
        while let Some(task) = responses.recv().await {
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
                writer_shard.metrics.record_sent(frame_bytes);
            }
            if close {
                break;
            }
        }
        let _ = writer.close().await;
    });
    loop {
        match reader.read_frame().await {
            Ok(Some(frame)) => {
                let frame_bytes = FRAME_PREFIX_BYTES + frame.message.len() + frame.payload.len();
                shard.metrics.record_received(frame_bytes);
                let task = glommio::spawn_local(handler::handle(shard.clone(), frame));
                if queue.send(task).await.is_err() {
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
