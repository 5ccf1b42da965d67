//! Goal: the message header round-trips and messages have the requested size.

use loadgen::payload::{HEADER_BYTES, Header, decode, encode};

#[test]
fn header_round_trips_and_pads_to_size() {
    let header = Header {
        producer: 7,
        sequence: u64::MAX - 3,
        sent_ns: 123_456_789_012,
    };
    let message = encode(header, 1024);
    assert_eq!(message.len(), 1024);
    assert_eq!(decode(&message), Some(header));
    assert!(message[HEADER_BYTES..].iter().all(|&b| b == 0));
}

#[test]
fn smallest_message_is_the_header_and_shorter_ones_do_not_decode() {
    let header = Header {
        producer: 1,
        sequence: 2,
        sent_ns: 3,
    };
    assert_eq!(encode(header, 0).len(), HEADER_BYTES);
    let message = encode(header, HEADER_BYTES);
    assert_eq!(decode(&message), Some(header));
    assert_eq!(decode(&message[..HEADER_BYTES - 1]), None);
}
