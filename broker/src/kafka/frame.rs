//! Kafka request and response framing: which APIs and versions this listener speaks, the
//! request header (read by hand up to the correlation id, so that even a request we cannot
//! decode can be answered or refused by name), response encoding through the `kafka-protocol`
//! codec, and the Fetch response, framed here by hand around the stored batch bytes so that
//! they are sent from their own buffers and never copied. No state; any shard.
//!
//! Every decode of untrusted bytes goes through the codec's checked reads (`try_get_*`), and
//! its array decoders refuse counts larger than the bytes left (the patched copy in
//! vendor/kafka-protocol): a malformed request becomes a [`RequestError`], never a panic or a
//! huge allocation.

#[cfg(test)]
use bytes::Buf;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

/// An API this listener answers, with the versions it advertises and the versions it serves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Supported {
    /// The API.
    pub key: ApiKey,
    /// Lowest version advertised in ApiVersions.
    pub advertised_min: i16,
    /// Lowest version served; requests below it (but advertised) are refused per request.
    pub served_min: i16,
    /// Highest version advertised and served.
    pub max: i16,
}

/// Every API this listener serves. ApiVersions advertises exactly these; any other API key,
/// or a version outside its range, closes the connection with a logged reason (as Kafka does
/// for a version it does not know), never a crash or a hang.
///
/// Not yet served (so not advertised): AlterConfigs, transactions and the rest. SaslHandshake is answered (UNSUPPORTED_SASL_MECHANISM) but not
/// advertised. The group APIs start at the versions librdkafka's balanced-consumer feature
/// check asks for (FindCoordinator, JoinGroup, SyncGroup, Heartbeat and LeaveGroup 0,
/// OffsetCommit 2, OffsetFetch 1).
///
/// Produce advertises from version 0 though it serves only 3 to 9 (RecordBatch v2), as Kafka
/// 4 does: librdkafka before 2.11 turns compression and v1/v2 message features on only when
/// the advertised Produce range reaches down to v0-v2. Clients pick the highest common
/// version, so they never send the old ones; one that does is refused.
pub(crate) const SUPPORTED: &[Supported] = &[
    supported(ApiKey::Produce, 0, 3, 9),
    supported(ApiKey::Fetch, 4, 4, 12),
    supported(ApiKey::ListOffsets, 1, 1, 7),
    supported(ApiKey::Metadata, 0, 0, 12),
    supported(ApiKey::ApiVersions, 0, 0, 4),
    supported(ApiKey::CreateTopics, 2, 2, 7),
    supported(ApiKey::DeleteTopics, 1, 1, 6),
    supported(ApiKey::InitProducerId, 0, 0, 4),
    supported(ApiKey::FindCoordinator, 0, 0, 4),
    supported(ApiKey::JoinGroup, 0, 0, 7),
    supported(ApiKey::SyncGroup, 0, 0, 5),
    supported(ApiKey::Heartbeat, 0, 0, 4),
    supported(ApiKey::LeaveGroup, 0, 0, 4),
    supported(ApiKey::OffsetCommit, 2, 2, 8),
    supported(ApiKey::OffsetFetch, 1, 1, 7),
    supported(ApiKey::ListGroups, 0, 0, 4),
    supported(ApiKey::DescribeGroups, 0, 0, 5),
    supported(ApiKey::DescribeConfigs, 1, 1, 4),
];

/// SaslHandshake versions answered (with an error: no mechanism is enabled).
pub(crate) const SASL_HANDSHAKE_MAX: i16 = 1;

const fn supported(key: ApiKey, advertised_min: i16, served_min: i16, max: i16) -> Supported {
    assert!(advertised_min <= served_min);
    assert!(served_min <= max);
    Supported {
        key,
        advertised_min,
        served_min,
        max,
    }
}

/// The served range of `key`, if this listener serves it.
pub(crate) fn served(key: ApiKey) -> Option<Supported> {
    SUPPORTED.iter().copied().find(|api| api.key == key)
}

/// Why a request could not be served; each closes the connection (after the responses before
/// it), with the reason logged. Kafka does the same for requests it cannot parse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Fewer bytes than the fixed part of a request header.
    #[error("a request of {bytes} bytes is shorter than the 8-byte header start")]
    TooShort {
        /// Bytes received.
        bytes: usize,
    },
    /// An API key Kafka does not define.
    #[error("unknown API key {key}")]
    UnknownApi {
        /// The key.
        key: i16,
    },
    /// An API this listener does not serve, or a version of it outside the served range.
    #[error("{api:?} version {version} is not served (served: {served})")]
    Unsupported {
        /// The API.
        api: ApiKey,
        /// The version asked for.
        version: i16,
        /// What is served, in words.
        served: String,
    },
    /// The header or body did not decode.
    #[error("{api:?} v{version}: malformed request: {reason}")]
    Malformed {
        /// The API.
        api: ApiKey,
        /// The version.
        version: i16,
        /// The codec's message.
        reason: String,
    },
    /// A response could not be encoded (a programming error, reported rather than sent).
    #[error("{api:?} v{version}: encoding the response failed: {reason}")]
    Encode {
        /// The API.
        api: ApiKey,
        /// The version.
        version: i16,
        /// The codec's message.
        reason: String,
    },
}

/// The fixed start of a request header: enough to answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    /// The API key as sent.
    pub api_key: i16,
    /// The version as sent.
    pub version: i16,
    /// Echoed in the response.
    pub correlation_id: i32,
}

/// Reads the fixed start of a request (api key, version, correlation id) without consuming it.
pub(crate) fn peek_head(body: &[u8]) -> Result<Head, RequestError> {
    let field = |at: usize, bytes: usize| body.get(at..at + bytes);
    match (field(0, 2), field(2, 2), field(4, 4)) {
        (Some(key), Some(version), Some(correlation)) => Ok(Head {
            api_key: i16::from_be_bytes([key[0], key[1]]),
            version: i16::from_be_bytes([version[0], version[1]]),
            correlation_id: i32::from_be_bytes([
                correlation[0],
                correlation[1],
                correlation[2],
                correlation[3],
            ]),
        }),
        _ => Err(RequestError::TooShort { bytes: body.len() }),
    }
}

/// Decodes the whole request header (client id, tagged fields) off `body`, leaving the body
/// of the request.
pub(crate) fn decode_header(
    api: ApiKey,
    version: i16,
    body: &mut Bytes,
) -> Result<RequestHeader, RequestError> {
    let header_version = api.request_header_version(version);
    RequestHeader::decode(body, header_version).map_err(|error| RequestError::Malformed {
        api,
        version,
        reason: format!("header: {error}"),
    })
}

/// Decodes a request body of type `R` at `version`.
pub(crate) fn decode<R: Decodable>(
    api: ApiKey,
    version: i16,
    body: &mut Bytes,
) -> Result<R, RequestError> {
    R::decode(body, version).map_err(|error| RequestError::Malformed {
        api,
        version,
        reason: error.to_string(),
    })
}

/// Encodes a response: its header (the version the API's response uses; ApiVersions always
/// uses v0) and its body. Returns the frame body without the size prefix.
pub(crate) fn encode<R: Encodable + HeaderVersion>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &R,
) -> Result<Bytes, RequestError> {
    let failed = |error: String| RequestError::Encode {
        api,
        version,
        reason: error,
    };
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let mut out = BytesMut::with_capacity(256);
    header
        .encode(&mut out, R::header_version(version))
        .map_err(|error| failed(error.to_string()))?;
    response
        .encode(&mut out, version)
        .map_err(|error| failed(error.to_string()))?;
    Ok(out.freeze())
}

/// A topic's part of a Fetch response.
#[derive(Debug)]
pub(crate) struct FetchedTopic {
    /// The topic, as asked.
    pub name: StrBytes,
    /// Its partitions, in request order.
    pub partitions: Vec<FetchedPartition>,
}

/// A partition's part of a Fetch response.
#[derive(Debug)]
pub(crate) struct FetchedPartition {
    /// The partition index, as asked.
    pub index: i32,
    /// Kafka error code.
    pub error: i16,
    /// The written end (ringbus has no uncommitted tail: also the last stable offset).
    pub high_watermark: i64,
    /// The first stored offset.
    pub log_start: i64,
    /// Stored batches, sent as they are.
    pub records: Vec<Bytes>,
}

/// Frames a Fetch response (versions 4 to 12) around the stored batches: returns the parts to
/// send in order; the codec's encoder is not used because it would copy every record byte
/// into its output buffer. The layout, from Kafka's FetchResponse schema (v12 is the first
/// flexible version: compact arrays, strings and bytes, and tagged-field sections):
///
/// ```text
/// header:    correlation_id i32 | v12: tagged fields (empty: 0x00)
/// body:      throttle_time_ms i32 | v7+: error_code i16, session_id i32 | topics array
/// topic:     name string | partitions array | v12: tagged fields
/// partition: index i32, error_code i16, high_watermark i64, last_stable_offset i64,
///            v5+: log_start_offset i64 | aborted_transactions array (empty)
///            | v11+: preferred_read_replica i32 (-1) | records bytes | v12: tagged fields
/// ```
///
/// Session id 0 tells a client that asked for a fetch session that none was created (KIP-227):
/// it keeps sending full fetch requests.
pub(crate) fn frame_fetch_response(
    version: i16,
    correlation_id: i32,
    topics: &[FetchedTopic],
) -> Vec<Bytes> {
    assert!((4..=12).contains(&version), "fetch v{version} framed");
    let flexible = version >= 12;
    let mut parts = Vec::new();
    let mut head = BytesMut::with_capacity(64 + topics.len() * 64);
    head.put_i32(correlation_id);
    if flexible {
        head.put_u8(0);
    }
    head.put_i32(0);
    if version >= 7 {
        head.put_i16(0);
        head.put_i32(0);
    }
    put_length(&mut head, flexible, topics.len());
    for topic in topics {
        put_string(&mut head, flexible, &topic.name);
        put_length(&mut head, flexible, topic.partitions.len());
        for partition in &topic.partitions {
            head.put_i32(partition.index);
            head.put_i16(partition.error);
            head.put_i64(partition.high_watermark);
            head.put_i64(partition.high_watermark);
            if version >= 5 {
                head.put_i64(partition.log_start);
            }
            put_length(&mut head, flexible, 0);
            if version >= 11 {
                head.put_i32(-1);
            }
            let records_bytes: usize = partition.records.iter().map(Bytes::len).sum();
            put_length(&mut head, flexible, records_bytes);
            if records_bytes > 0 {
                parts.push(head.split().freeze());
                parts.extend(partition.records.iter().cloned());
            }
            if flexible {
                head.put_u8(0);
            }
        }
        if flexible {
            head.put_u8(0);
        }
    }
    if flexible {
        head.put_u8(0);
    }
    parts.push(head.freeze());
    parts
}

/// An array or bytes length: an i32 in the classic versions, an unsigned varint of length + 1
/// in the flexible ones.
fn put_length(out: &mut BytesMut, flexible: bool, length: usize) {
    if flexible {
        put_unsigned_varint(out, length as u64 + 1);
    } else {
        let length = i32::try_from(length);
        assert!(length.is_ok(), "a response part over 2 GiB");
        out.put_i32(length.unwrap_or_default());
    }
}

/// A string: an i16 length in the classic versions (the names echoed here were decoded from
/// such a string, so they fit), an unsigned varint of length + 1 in the flexible ones.
fn put_string(out: &mut BytesMut, flexible: bool, value: &str) {
    if flexible {
        put_unsigned_varint(out, value.len() as u64 + 1);
    } else {
        let length = i16::try_from(value.len());
        assert!(length.is_ok(), "a name of {} bytes echoed", value.len());
        out.put_i16(length.unwrap_or_default());
    }
    out.put_slice(value.as_bytes());
}

fn put_unsigned_varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// What the connection does after a request.
pub(crate) enum Reply {
    /// Send this frame body (its parts in order; the size prefix is added when written).
    Respond(Vec<Bytes>),
    /// Send nothing (produce with acks=0).
    Silent,
    /// Close the connection after the responses before this one, logging why.
    Close(RequestError),
}

/// A handler's result: the reply and whether it carries an error code, or a request that
/// closes the connection.
pub(crate) type Outcome = Result<(Reply, bool), RequestError>;

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{
        ApiVersionsResponse, BrokerId, FetchResponse, MetadataRequest, ProduceRequest, TopicName,
    };

    use super::*;

    fn sample_topics() -> Vec<FetchedTopic> {
        let partition = |index, error, records: Vec<Bytes>| FetchedPartition {
            index,
            error,
            high_watermark: 1_234_567,
            log_start: 12,
            records,
        };
        vec![
            FetchedTopic {
                name: StrBytes::from_static_str("events"),
                partitions: vec![
                    partition(
                        0,
                        0,
                        vec![Bytes::from(vec![1u8; 70]), Bytes::from(vec![2u8; 5])],
                    ),
                    partition(1, 1, Vec::new()),
                    partition(2, 0, vec![Bytes::from(vec![3u8; 300])]),
                ],
            },
            FetchedTopic {
                name: StrBytes::from_static_str("other"),
                partitions: vec![partition(7, 3, Vec::new())],
            },
        ]
    }

    /// What the codec's encoder makes of the same response (with records copied in).
    fn codec_fetch(version: i16, correlation_id: i32, topics: &[FetchedTopic]) -> Bytes {
        let mut response = FetchResponse::default();
        for topic in topics {
            let mut out = FetchableTopicResponse::default();
            out.topic = TopicName(topic.name.clone());
            for partition in &topic.partitions {
                let mut data = PartitionData::default();
                data.partition_index = partition.index;
                data.error_code = partition.error;
                data.high_watermark = partition.high_watermark;
                data.last_stable_offset = partition.high_watermark;
                data.log_start_offset = partition.log_start;
                data.aborted_transactions = Some(Vec::new());
                data.preferred_read_replica = BrokerId(-1);
                data.records = Some(partition.records.concat().into());
                out.partitions.push(data);
            }
            response.responses.push(out);
        }
        encode(ApiKey::Fetch, version, correlation_id, &response).expect("encodes")
    }

    /// The hand-framed Fetch response is byte for byte what the codec would have encoded, in
    /// every served version, while the records travel as their own parts (not copied).
    #[test]
    fn the_framed_fetch_response_is_the_codecs_bytes() {
        let topics = sample_topics();
        for version in 4..=12 {
            let parts = frame_fetch_response(version, 77, &topics);
            assert_eq!(
                parts.concat(),
                codec_fetch(version, 77, &topics).to_vec(),
                "fetch v{version}"
            );
            let stored = &topics[0].partitions[0].records[0];
            assert!(
                parts.iter().any(|part| part.as_ptr() == stored.as_ptr()),
                "v{version}: the stored bytes are sent from their own buffer"
            );
        }
    }

    #[test]
    fn an_empty_fetch_response_is_the_codecs_bytes() {
        for version in 4..=12 {
            let parts = frame_fetch_response(version, 1, &[]);
            assert_eq!(parts.concat(), codec_fetch(version, 1, &[]).to_vec());
        }
    }

    /// A Metadata request that declares 2^31 - 1 topics in 4 bytes is refused as malformed
    /// before anything is allocated for them (the patched codec; unpatched, this aborted the
    /// process on a failed allocation of about 150 GiB).
    #[test]
    fn a_lying_array_count_is_refused_without_allocating() {
        for version in [1i16, 4, 9, 12] {
            let mut body = BytesMut::new();
            if version >= 9 {
                // Compact array: unsigned varint of count + 1.
                body.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]);
            } else {
                body.put_i32(i32::MAX);
            }
            let mut body = body.freeze();
            let decoded: Result<MetadataRequest, _> = decode(ApiKey::Metadata, version, &mut body);
            assert!(
                matches!(decoded, Err(RequestError::Malformed { .. })),
                "v{version}: {decoded:?}"
            );
        }
        let mut produce = BytesMut::new();
        produce.put_i16(-1); // transactional id: null
        produce.put_i16(1); // acks
        produce.put_i32(1000); // timeout
        produce.put_i32(i32::MAX); // topics
        let decoded: Result<ProduceRequest, _> = decode(ApiKey::Produce, 3, &mut produce.freeze());
        assert!(matches!(decoded, Err(RequestError::Malformed { .. })));
    }

    #[test]
    fn a_short_request_has_no_head() {
        assert!(matches!(
            peek_head(&[0, 18, 0]),
            Err(RequestError::TooShort { bytes: 3 })
        ));
        let head = peek_head(&[0, 18, 0, 3, 0, 0, 1, 2, 9]).expect("a head");
        assert_eq!(
            head,
            Head {
                api_key: 18,
                version: 3,
                correlation_id: 258
            }
        );
    }

    /// ApiVersions responses use header v0 in every version, including the flexible ones
    /// (v3+), so a client can read the correlation id before it knows what the broker speaks.
    #[test]
    fn api_versions_responses_use_header_v0() {
        for version in 0..=4 {
            let mut response = ApiVersionsResponse::default();
            response.error_code = 35;
            let mut bytes = encode(ApiKey::ApiVersions, version, 99, &response).expect("encodes");
            assert_eq!(&bytes[..4], &99i32.to_be_bytes());
            bytes.advance(4);
            let decoded = ApiVersionsResponse::decode(&mut bytes, version).expect("decodes");
            assert_eq!(decoded.error_code, 35);
        }
    }

    #[test]
    fn the_advertised_ranges_are_served_or_refused_on_purpose() {
        for api in SUPPORTED {
            let codec = api.key.valid_versions();
            assert!(
                codec.min <= api.served_min && api.max <= codec.max,
                "{:?}: served {}..={} outside the codec's {codec}",
                api.key,
                api.served_min,
                api.max
            );
        }
        let produce = served(ApiKey::Produce).expect("produce");
        assert_eq!((produce.advertised_min, produce.served_min), (0, 3));
        assert!(served(ApiKey::AlterConfigs).is_none(), "not yet");
    }
}
