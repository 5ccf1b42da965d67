//! Goal: the message header round-trips and messages have the requested size; a message
//! rewritten for the next send carries the new header and keeps its size and padding.

use loadgen::payload::{HEADER_BYTES, Header, decode, encode, rewrite};

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

#[test]
fn a_rewritten_message_carries_the_new_header_and_keeps_its_size() {
    let first = Header {
        producer: 1,
        sequence: 2,
        sent_ns: 3,
    };
    let second = Header {
        producer: 4,
        sequence: 5,
        sent_ns: 6,
    };
    let mut message = encode(first, 100);
    rewrite(&mut message, second);
    assert_eq!(message.len(), 100);
    assert_eq!(decode(&message), Some(second));
    assert!(message[HEADER_BYTES..].iter().all(|&byte| byte == 0));
}

#[test]
#[should_panic(expected = "a message holds its header")]
fn rewriting_a_message_shorter_than_its_header_is_a_programmer_error() {
    rewrite(&mut [0; HEADER_BYTES - 1], Header::default());
}
