//! Target `wire_messages`: the flatbuffers messages of the client-broker protocol, decoded the
//! way the broker decodes a request (`schema::wire::decode_request` then `request_from_wire`)
//! and the way a client decodes a response.
//!
//! Input: `message_bytes u16 LE | message | payload`. The message is decoded as a `Request`
//! and as a `Response`, each against the payload's size (the payload holds the produce
//! batches a request's ranges point into).
//!
//! Properties, for each message that passes both decoding steps:
//! - re-encoding the owned value (`encode_request` / `encode_response`) gives a message that
//!   passes both steps again, under the same limits, and decodes to the same value: what
//!   the broker understood is what the sender meant, and the encoder never writes a message
//!   the decoder refuses;
//! - every produce batch range lies inside the payload (`slice_payload` succeeds) and the
//!   batch it names is checked the way the broker checks it (`Verified::check`, which must
//!   not panic whatever the bytes).

use bytes::Bytes;
use flatbuffers::FlatBufferBuilder;
use schema::batch::Verified;
use schema::wire::{
    DecodeLimits, RequestBodyOwned, decode_request, decode_response, encode_request,
    encode_response, request_from_wire, response_from_wire, slice_payload,
};

/// Splits an input into message and payload (see the module doc).
pub fn split(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (length, rest) = data.split_first_chunk::<2>()?;
    let message_bytes = usize::from(u16::from_le_bytes(*length)).min(rest.len());
    Some(rest.split_at(message_bytes))
}

/// The input for `message` and `payload` (the inverse of [`split`]), for seeds.
pub fn encode(message: &[u8], payload: &[u8]) -> Vec<u8> {
    let length = u16::try_from(message.len()).expect("a seed message under 64 KiB");
    let mut out = length.to_le_bytes().to_vec();
    out.extend_from_slice(message);
    out.extend_from_slice(payload);
    out
}

/// The target: see the module doc.
pub fn check(data: &[u8]) {
    let Some((message, payload)) = split(data) else {
        return;
    };
    let payload = Bytes::copy_from_slice(payload);
    check_request(message, &payload);
    check_response(message, payload.len());
}

/// Decodes `message` as the broker decodes a request carrying `payload`, and checks the
/// properties of the module doc on what it accepts. Shared with the `frames` target.
pub fn check_request(message: &[u8], payload: &Bytes) {
    let limits = DecodeLimits::default();
    let Ok(request) = decode_request(message, &limits) else {
        return;
    };
    let correlation_id = request.correlation_id();
    let Ok((decoded_id, body)) = request_from_wire(request, payload.len(), &limits) else {
        return;
    };
    assert_eq!(decoded_id, correlation_id, "the id the broker answers to");
    if let RequestBodyOwned::Produce { batches, .. } = &body {
        for batch in batches {
            let bytes = slice_payload(payload, &batch.batch)
                .expect("request_from_wire checked every range against the payload");
            // The broker's one check of a produced batch: an error is a refusal, not a bug.
            let _ = Verified::check(bytes);
        }
    }
    let mut builder = FlatBufferBuilder::new();
    let encoded = encode_request(&mut builder, correlation_id, &body).to_vec();
    let again = decode_request(&encoded, &limits)
        .unwrap_or_else(|e| panic!("a re-encoded {body:?} fails verification: {e}"));
    let (again_id, again_body) = request_from_wire(again, payload.len(), &limits)
        .unwrap_or_else(|e| panic!("a re-encoded {body:?} breaks the protocol rules: {e}"));
    assert_eq!(again_id, correlation_id);
    assert_eq!(
        again_body, body,
        "a request changes through encode and decode"
    );
}

/// Decodes `message` as a client decodes a response with a `payload_bytes` payload, and
/// checks the round trip of what it accepts.
pub fn check_response(message: &[u8], payload_bytes: usize) {
    let limits = DecodeLimits::default();
    let Ok(response) = decode_response(message, &limits) else {
        return;
    };
    let Ok(owned) = response_from_wire(response, payload_bytes, &limits) else {
        return;
    };
    let mut builder = FlatBufferBuilder::new();
    let encoded = encode_response(&mut builder, &owned).to_vec();
    let again = decode_response(&encoded, &limits)
        .unwrap_or_else(|e| panic!("a re-encoded {owned:?} fails verification: {e}"));
    let again = response_from_wire(again, payload_bytes, &limits)
        .unwrap_or_else(|e| panic!("a re-encoded {owned:?} breaks the protocol rules: {e}"));
    assert_eq!(again, owned, "a response changes through encode and decode");
}
