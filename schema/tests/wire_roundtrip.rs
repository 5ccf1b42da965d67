//! Goal: every request and response the broker and clients can build comes back unchanged
//! through the whole path a frame takes: encode the message, prefix it, parse the prefix, split
//! the body into message and payload, verify, convert to owned. And the frame prefix has the
//! documented layout.
//!
//! Method: a fixed sample covering every body variant with extreme values (u64::MAX offsets,
//! empty and non-ASCII strings, empty vectors, a range ending exactly at the payload's end, a
//! bodiless error response, an error code this version does not name), then seeded random
//! messages (printed seed, replay with `RINGBUS_SEED=<seed>`) through one reused builder, so
//! that builder reuse across messages of different shapes and sizes is exercised too. Each
//! decoded batch range must also slice its bytes out of the payload.

mod common;
mod wire_common;

use bytes::Bytes;
use flatbuffers::FlatBufferBuilder;
use schema::wire::{
    self, DecodeLimits, FRAME_BYTES_MAX_DEFAULT, FRAME_PREFIX_BYTES, FrameHeader, PayloadRange,
    RequestBodyOwned, ResponseOwned,
};
use wire_common::{
    REQUEST_VARIANTS, RESPONSE_VARIANTS, frame, read_request, read_response, request_ranges,
    response_ranges, split_frame,
};

const RANDOM_MESSAGES: usize = 400;

fn check_request(
    builder: &mut FlatBufferBuilder<'_>,
    correlation_id: u64,
    body: &RequestBodyOwned,
    payload: &[u8],
) {
    let message = wire::encode_request(builder, correlation_id, body);
    let frame = frame(message, payload);
    let (header, message, payload_read) = split_frame(&frame);
    assert_eq!(header.payload_bytes(), payload.len());
    assert_eq!(payload_read, payload);
    let limits = DecodeLimits::default();
    let decoded = read_request(message, header.payload_bytes(), &limits)
        .unwrap_or_else(|error| panic!("{body:?} does not decode: {error}"));
    assert_eq!(decoded, (correlation_id, body.clone()));
    check_ranges(&request_ranges(body), payload);
}

fn check_response(builder: &mut FlatBufferBuilder<'_>, response: &ResponseOwned, payload: &[u8]) {
    let message = wire::encode_response(builder, response);
    let frame = frame(message, payload);
    let (header, message, payload_read) = split_frame(&frame);
    assert_eq!(payload_read, payload);
    let limits = DecodeLimits::default();
    let decoded = read_response(message, header.payload_bytes(), &limits)
        .unwrap_or_else(|error| panic!("{response:?} does not decode: {error}"));
    assert_eq!(&decoded, response);
    check_ranges(&response_ranges(response), payload);
}

/// Each range slices exactly its bytes out of the payload, sharing the payload's buffer.
fn check_ranges(ranges: &[PayloadRange], payload: &[u8]) {
    let shared = Bytes::copy_from_slice(payload);
    for range in ranges {
        let start = range.offset() as usize;
        let end = start + range.length() as usize;
        assert_eq!(wire::payload_slice(range, payload.len()), Ok(start..end));
        let slice = wire::slice_payload(&shared, range).expect("range in bounds");
        assert_eq!(&slice[..], &payload[start..end]);
        if !slice.is_empty() {
            assert_eq!(slice.as_ptr(), shared[start..].as_ptr(), "not copied");
        }
    }
}

#[test]
fn every_request_variant_round_trips() {
    let samples = wire_common::sample_requests();
    assert_eq!(
        wire_common::variant_count(samples.iter().map(|(body, _)| body)),
        REQUEST_VARIANTS,
        "the sample covers every variant"
    );
    let mut builder = FlatBufferBuilder::new();
    for (index, (body, payload)) in samples.iter().enumerate() {
        check_request(&mut builder, index as u64 * 1_000_003, body, payload);
        check_request(&mut builder, u64::MAX - index as u64, body, payload);
    }
}

#[test]
fn every_response_variant_round_trips() {
    let samples = wire_common::sample_responses();
    let bodies = samples
        .iter()
        .filter_map(|(response, _)| response.body.as_ref());
    assert_eq!(
        wire_common::variant_count(bodies),
        RESPONSE_VARIANTS,
        "the sample covers every variant"
    );
    assert!(samples.iter().any(|(response, _)| response.body.is_none()));
    let mut builder = FlatBufferBuilder::new();
    for (response, payload) in &samples {
        check_response(&mut builder, response, payload);
    }
}

#[test]
fn random_messages_round_trip_through_one_builder() {
    let seed = common::seed("random_messages_round_trip_through_one_builder");
    let mut rng = common::Rng::with_seed(seed);
    let mut builder = FlatBufferBuilder::new();
    for _ in 0..RANDOM_MESSAGES {
        let (body, payload) = wire_common::random_request(&mut rng);
        let correlation_id = rng.u64(..);
        check_request(&mut builder, correlation_id, &body, &payload);
        let (response, payload) = wire_common::random_response(&mut rng);
        check_response(&mut builder, &response, &payload);
    }
}

#[test]
fn encoding_depends_only_on_the_message() {
    // A builder reused after other (bigger, differently shaped) messages gives the same bytes as
    // a fresh one: the reset at the start of each encode leaves no trace of the previous one.
    let samples = wire_common::sample_requests();
    let mut reused = FlatBufferBuilder::new();
    for (index, (body, _)) in samples.iter().enumerate() {
        let fresh = wire_common::request_message(index as u64, body);
        let again = wire::encode_request(&mut reused, index as u64, body).to_vec();
        assert_eq!(fresh, again, "{body:?}");
    }
}

#[test]
fn frame_prefix_matches_the_documented_layout() {
    // The worked example in wire.rs: a 96-byte message and a 70-byte batch.
    let prefix = wire::frame_prefix(96, 70, FRAME_BYTES_MAX_DEFAULT).expect("fits");
    assert_eq!(prefix, [0xaa, 0, 0, 0, 0x60, 0, 0, 0]);
    let header = FrameHeader::parse(&prefix, FRAME_BYTES_MAX_DEFAULT).expect("parses");
    assert_eq!(
        header,
        FrameHeader {
            frame_bytes: 170,
            message_bytes: 96
        }
    );
    assert_eq!(header.encode(), prefix);
    assert_eq!(header.body_bytes(), 166);
    assert_eq!(header.payload_bytes(), 70);
    assert_eq!(header.message_range(), 0..96);
    assert_eq!(header.payload_range(), 96..166);
    assert_eq!(FRAME_PREFIX_BYTES + header.body_bytes(), 174);
    assert_eq!(
        FrameHeader::new(96, 70, FRAME_BYTES_MAX_DEFAULT),
        Ok(header)
    );

    // Little-endian, every byte significant.
    let header = FrameHeader {
        frame_bytes: 0x0807_0605,
        message_bytes: 0x0403_0201,
    };
    assert_eq!(header.encode(), [5, 6, 7, 8, 1, 2, 3, 4]);
    assert_eq!(FrameHeader::parse(&header.encode(), u32::MAX), Ok(header));
}

#[test]
fn frames_at_the_limits_are_accepted() {
    // The largest frame allowed, all message; and all payload but the smallest message.
    let max = FRAME_BYTES_MAX_DEFAULT as usize;
    let header = FrameHeader::new(max - 4, 0, FRAME_BYTES_MAX_DEFAULT).expect("exactly the max");
    assert_eq!(header.frame_bytes, FRAME_BYTES_MAX_DEFAULT);
    assert_eq!(header.payload_bytes(), 0);
    let header = FrameHeader::new(12, max - 16, FRAME_BYTES_MAX_DEFAULT).expect("exactly the max");
    assert_eq!(header.payload_bytes(), max - 16);
    assert_eq!(
        FrameHeader::parse(&header.encode(), FRAME_BYTES_MAX_DEFAULT),
        Ok(header)
    );
    // The smallest frame: a 12-byte message, no payload.
    let header = FrameHeader::parse(&[16, 0, 0, 0, 12, 0, 0, 0], FRAME_BYTES_MAX_DEFAULT)
        .expect("smallest frame");
    assert_eq!(header.payload_bytes(), 0);
}
