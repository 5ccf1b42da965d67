//! Target `kafka_requests`: a Kafka request body decoded the way the broker's Kafka listener
//! decodes one (`broker::kafka::dispatch`: the fixed head, the request header at the version
//! the API's header uses, then the body with the patched `kafka-protocol` codec of
//! vendor/kafka-protocol, which the fuzz workspace takes through the same `[patch.crates-io]`
//! as the main one).
//!
//! Input: one frame body, as the listener gets it after the size prefix:
//! `api_key i16 BE | version i16 BE | correlation_id i32 BE | rest of the header | body`.
//! Inputs for APIs the listener does not decode (every API it answers is in [`DECODED`]), or
//! for versions outside the codec's range, are skipped; versions the codec knows but the
//! listener refuses are still decoded (a superset of what the broker decodes, so the served
//! range need not be copied here).
//!
//! Properties:
//! - decoding never panics and never allocates more than libFuzzer's malloc limit (2 GiB by
//!   default): the patch's promise that a lying array count costs an error, not an abort;
//! - the header the codec decodes names the API, version and correlation id the listener
//!   peeked by hand (the listener asserts that the correlation ids agree).
//!
//! Not asserted: that a decoded request re-encodes to an equal one. The broker never encodes
//! a request, and the codec's encoders do not round-trip every input it accepts (found here:
//! an unknown tagged field whose tag, an unsigned varint, does not fit an i32 decodes to a
//! negative tag and is dropped on encoding; bench-results/reliability.md).

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

/// The APIs whose request bodies the listener decodes (its dispatch in broker/src/kafka/mod.rs;
/// ApiVersions and SaslHandshake are answered without decoding their bodies).
pub const DECODED: &[ApiKey] = &[
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::InitProducerId,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
];

/// The target: see the module doc.
pub fn check(data: &[u8]) {
    let Some((head, _)) = data.split_first_chunk::<8>() else {
        return;
    };
    let api_key = i16::from_be_bytes([head[0], head[1]]);
    let version = i16::from_be_bytes([head[2], head[3]]);
    let correlation_id = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    let Ok(api) = ApiKey::try_from(api_key) else {
        return;
    };
    if !DECODED.contains(&api) {
        return;
    }
    let versions = api.valid_versions();
    if version < versions.min || version > versions.max {
        return;
    }
    let header_version = api.request_header_version(version);
    let mut body = Bytes::copy_from_slice(data);
    let Ok(header) = RequestHeader::decode(&mut body, header_version) else {
        return;
    };
    // The listener peeks these before decoding and asserts the correlation ids agree.
    assert_eq!(
        (
            header.request_api_key,
            header.request_api_version,
            header.correlation_id
        ),
        (api_key, version, correlation_id),
        "the header disagrees with the head the listener peeked"
    );
    // An error is a refusal (the listener closes the connection): all that is asked of it is
    // to come back as a value, within the allocation limit.
    let _ = RequestKind::decode(api, &mut body, version);
}
