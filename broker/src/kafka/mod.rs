//! The Kafka wire-protocol front-end: a second listener over the same shards, so unmodified
//! Kafka clients (librdkafka's kcat, ...) produce to and fetch from ringbus's partitions.
//!
//! It owns no state of its own. A request is decoded here (the `kafka-protocol` codec, see
//! [`frame`]) and then runs the same broker operations as the ringbus wire's handler:
//! `handler::append_all` with batches checked by `schema::batch::Verified` (the batch bytes
//! sliced out of the receive buffer, baseOffset the only field the broker rewrites),
//! `handler::fetch_partitions` (reads and the long-poll), `handler::list_offset`,
//! `handler::change_topics`, `handler::init_producer_id`. Topics created through either
//! protocol are the same topics. Typed broker errors become Kafka codes in [`errors`] only.
//!
//! The broker is one Kafka node (id 0) that leads every partition; Metadata names it with the
//! advertised address. Connections live on the shard that accepted them ([`connection`]);
//! [`KafkaSettings`] is a plain copy per shard.
//!
//! Served: ApiVersions 0-4, Metadata 0-12 (auto-creating topics unless turned off), Produce
//! 3-9, Fetch 4-12, ListOffsets 1-7, CreateTopics 2-7, DeleteTopics 1-6, InitProducerId 0-4
//! (idempotent producers only), and the classic group protocol over ringbus's coordinator
//! ([`group`]: FindCoordinator 0-4, JoinGroup 0-7, SyncGroup 0-5, Heartbeat 0-4, LeaveGroup
//! 0-4, OffsetCommit 2-8, OffsetFetch 1-7, ListGroups 0-4, DescribeGroups 0-5), and
//! DescribeConfigs 1-4 (topics' retention and segment settings). Not yet: transactions, SASL
//! (answered with UNSUPPORTED_SASL_MECHANISM), AlterConfigs. Compressed batches are stored
//! and served as they came (checked by header and CRC only, never decompressed: see
//! `schema::batch::verify_with_records`). Anything not served is not advertised by ApiVersions
//! and closes the connection with a logged reason.

mod admin;
mod config;
pub mod connection;
mod errors;
mod fetch;
pub(crate) mod frame;
pub(crate) mod group;
mod produce;

use std::rc::Rc;

use bytes::BytesMut;
use kafka_protocol::messages::ApiKey;

use crate::metrics::Api;
use crate::shard::Shard;

pub use config::{Advertised, KafkaConfig, KafkaSettings};
use frame::Reply;
pub use frame::RequestError;
use group::GroupSession;

/// Handles one request frame body, and counts it in the shard's metrics.
pub(crate) async fn handle(
    shard: Rc<Shard>,
    settings: Rc<KafkaSettings>,
    session: Rc<GroupSession>,
    body: BytesMut,
) -> Reply {
    let started = std::time::Instant::now();
    let (api, reply, failed) = dispatch(&shard, &settings, &session, body).await;
    shard.metrics.record_request(api, failed, started.elapsed());
    reply
}

/// Decodes and runs one request: the metrics kind, the reply, and whether an error went back.
async fn dispatch(
    shard: &Rc<Shard>,
    settings: &KafkaSettings,
    session: &GroupSession,
    body: BytesMut,
) -> (Api, Reply, bool) {
    let close = |error| (Api::Invalid, Reply::Close(error), true);
    let head = match frame::peek_head(&body) {
        Ok(head) => head,
        Err(error) => return close(error),
    };
    let Ok(api) = ApiKey::try_from(head.api_key) else {
        return close(RequestError::UnknownApi { key: head.api_key });
    };
    if api == ApiKey::ApiVersions {
        // Any version is answered: one this listener does not know gets a v0 response with
        // UNSUPPORTED_VERSION and the ranges, so the client can retry with one it knows.
        let reply = admin::api_versions(head, body.freeze());
        return (Api::Handshake, reply, false);
    }
    if shard.is_shutting_down() {
        let error = RequestError::Unsupported {
            api,
            version: head.version,
            served: "nothing: the broker is shutting down".to_string(),
        };
        return close(error);
    }
    if api == ApiKey::SaslHandshake && (0..=frame::SASL_HANDSHAKE_MAX).contains(&head.version) {
        return (
            Api::Handshake,
            admin::sasl_handshake(head, body.freeze()),
            true,
        );
    }
    let Some(served) = frame::served(api)
        .filter(|served| (served.served_min..=served.max).contains(&head.version))
    else {
        let served = match frame::served(api) {
            Some(served) => format!("versions {} to {}", served.served_min, served.max),
            None => "not yet implemented".to_string(),
        };
        let error = RequestError::Unsupported {
            api,
            version: head.version,
            served,
        };
        return close(error);
    };
    debug_assert_eq!(served.key, api);
    let mut body = body.freeze();
    let header = match frame::decode_header(api, head.version, &mut body) {
        Ok(header) => header,
        Err(error) => return close(error),
    };
    assert_eq!(
        header.correlation_id, head.correlation_id,
        "the header read twice"
    );
    // The header's client id is a view of the receive buffer: gone before Produce takes the
    // buffer back (see `produce`'s zero-copy note).
    let client_id = header
        .client_id
        .as_ref()
        .map(|id| id.as_str().to_string())
        .unwrap_or_default();
    drop(header);
    let outcome = match api {
        ApiKey::Produce => produce::produce(shard, settings, head, body).await,
        ApiKey::Fetch => fetch::fetch(shard, head, body).await,
        ApiKey::ListOffsets => admin::list_offsets(shard, head, body).await,
        ApiKey::Metadata => admin::metadata(shard, settings, head, body).await,
        ApiKey::CreateTopics => admin::create_topics(shard, settings, head, body).await,
        ApiKey::DeleteTopics => admin::delete_topics(shard, head, body).await,
        ApiKey::InitProducerId => admin::init_producer_id(shard, head, body).await,
        ApiKey::FindCoordinator => group::find_coordinator(settings, head, body),
        ApiKey::JoinGroup => group::join_group(shard, session, client_id, head, body).await,
        ApiKey::ListGroups => group::list_groups(shard, head, body).await,
        ApiKey::DescribeConfigs => admin::describe_configs(shard, head, body).await,
        ApiKey::DescribeGroups => group::describe_groups(shard, head, body).await,
        ApiKey::SyncGroup => group::sync_group(session, head, body),
        ApiKey::Heartbeat => group::heartbeat(shard, head, body).await,
        ApiKey::LeaveGroup => group::leave_group(shard, session, head, body).await,
        ApiKey::OffsetCommit => group::offset_commit(shard, head, body).await,
        ApiKey::OffsetFetch => group::offset_fetch(shard, head, body).await,
        // Every API of `frame::SUPPORTED` is dispatched above; one added there and not here
        // is refused, not served wrongly.
        _ => Err(RequestError::Unsupported {
            api,
            version: head.version,
            served: "not dispatched".to_string(),
        }),
    };
    let kind = match api {
        ApiKey::Produce => Api::Produce,
        ApiKey::Fetch => Api::Fetch,
        ApiKey::ListOffsets => Api::ListOffsets,
        ApiKey::Metadata => Api::Metadata,
        ApiKey::CreateTopics => Api::CreateTopic,
        ApiKey::DeleteTopics => Api::DeleteTopic,
        ApiKey::InitProducerId => Api::InitProducerId,
        // SyncGroup completes a join; FindCoordinator is a lookup like Metadata.
        ApiKey::JoinGroup | ApiKey::SyncGroup => Api::JoinGroup,
        ApiKey::FindCoordinator => Api::Metadata,
        ApiKey::Heartbeat => Api::Heartbeat,
        ApiKey::LeaveGroup => Api::LeaveGroup,
        ApiKey::OffsetCommit => Api::OffsetCommit,
        ApiKey::OffsetFetch => Api::OffsetFetch,
        ApiKey::ListGroups => Api::ListGroups,
        ApiKey::DescribeGroups => Api::DescribeGroup,
        // A topic's settings: the metadata family.
        ApiKey::DescribeConfigs => Api::Metadata,
        _ => Api::Invalid,
    };
    match outcome {
        Ok((reply, failed)) => (kind, reply, failed),
        Err(error) => (kind, Reply::Close(error), true),
    }
}
