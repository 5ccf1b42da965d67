//! Goal: the message header round-trips and messages have the requested size; a message
//! rewritten for the next send carries the new header, keeps its size and padding, and never
//! writes over bytes someone else still holds.

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
    let message = encode(first, 100);
    let rewritten = rewrite(message, second);
    assert_eq!(rewritten.len(), 100);
    assert_eq!(decode(&rewritten), Some(second));
    assert!(rewritten[HEADER_BYTES..].iter().all(|&byte| byte == 0));
}

#[test]
fn a_message_someone_else_holds_is_not_written_over() {
    let first = Header {
        producer: 1,
        sequence: 2,
        sent_ns: 3,
    };
    let message = encode(first, 64);
    let held = message.clone();
    let rewritten = rewrite(message, Header::default());
    assert_eq!(decode(&held), Some(first));
    assert_eq!(decode(&rewritten), Some(Header::default()));
    assert_eq!(rewritten.len(), 64);
}
