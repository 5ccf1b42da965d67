//! Goal: `FrameReader` over an in-memory stream (what the `frames` fuzz target drives) splits a
//! byte stream into the frames it holds whatever size the stream's reads come in, reports a
//! frame cut short with the bytes that arrived, and refuses a bad prefix before reading on.
//!
//! Method: frames built with `schema::wire::frame_prefix` are concatenated and read back
//! through a stream that hands out at most `piece` bytes per read, for pieces from 1 byte to
//! more than a frame; the frames must come back byte for byte, then `None` at the end.

mod common;

use std::net::SocketAddr;

use common::Pieces;
use futures_lite::future::block_on;
use net::{FrameReader, Limits, ReadError};
use schema::wire::{FrameError, frame_prefix};

fn reader(bytes: Vec<u8>, piece: usize, frame_bytes_max: u32) -> FrameReader<Pieces> {
    let peer: SocketAddr = "127.0.0.1:9".parse().expect("address");
    let limits = Limits {
        frame_bytes_max,
        idle_timeout: None,
    };
    let stream = Pieces {
        bytes,
        position: 0,
        piece,
    };
    FrameReader::from_stream(stream, peer, limits)
}

/// A frame of a `message_bytes` message (bytes 1, 2, 3, ...) and a payload of `payload_bytes`.
fn frame(message_bytes: usize, payload_bytes: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let message: Vec<u8> = (0..message_bytes).map(|i| (i % 251) as u8 + 1).collect();
    let payload: Vec<u8> = (0..payload_bytes).map(|i| (i % 241) as u8).collect();
    let mut bytes = frame_prefix(message_bytes, payload_bytes, u32::MAX - 4)
        .expect("prefix")
        .to_vec();
    bytes.extend_from_slice(&message);
    bytes.extend_from_slice(&payload);
    (bytes, message, payload)
}

#[test]
fn frames_come_back_whole_whatever_the_read_sizes() {
    // The last frame is larger than the in-memory stream's reads (4 KiB at most), so its
    // body arrives in many reads.
    let shapes = [(12, 0), (40, 70), (13, 1), (100, 40_000)];
    for piece in [1, 2, 7, 4096, 1 << 20] {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (message_bytes, payload_bytes) in shapes {
            let (bytes, message, payload) = frame(message_bytes, payload_bytes);
            stream.extend_from_slice(&bytes);
            expected.push((message, payload));
        }
        let mut reader = reader(stream, piece, 1 << 20);
        for (index, (message, payload)) in expected.iter().enumerate() {
            let frame = block_on(reader.read_frame())
                .unwrap_or_else(|e| panic!("piece {piece} frame {index}: {e}"))
                .unwrap_or_else(|| panic!("piece {piece} frame {index}: ended early"));
            assert_eq!(
                &frame.message[..],
                &message[..],
                "piece {piece} frame {index}"
            );
            assert_eq!(
                &frame.payload[..],
                &payload[..],
                "piece {piece} frame {index}"
            );
        }
        assert!(
            block_on(reader.read_frame()).expect("clean end").is_none(),
            "piece {piece}: nothing after the last frame"
        );
    }
}

#[test]
fn a_frame_cut_short_reports_what_arrived() {
    let (bytes, _, _) = frame(20, 30);
    assert_eq!(bytes.len(), 58);
    for cut in 1..bytes.len() {
        let mut reader = reader(bytes[..cut].to_vec(), 5, 1 << 20);
        match block_on(reader.read_frame()) {
            Err(ReadError::Truncated {
                received_bytes,
                expected_bytes,
            }) => {
                // Inside the prefix, only the prefix was expected.
                let expected = if cut < 8 { 8 } else { 58 };
                assert_eq!(
                    (received_bytes, expected_bytes),
                    (cut, expected),
                    "cut {cut}"
                );
            }
            other => panic!("cut {cut}: expected Truncated, got {other:?}"),
        }
    }
}

#[test]
fn a_bad_prefix_is_refused_before_the_body() {
    let (bytes, _, _) = frame(20, 30);
    let mut reader = reader(bytes, 3, 40);
    match block_on(reader.read_frame()) {
        Err(ReadError::Frame(FrameError::TooLarge {
            frame_bytes: 54,
            frame_bytes_max: 40,
        })) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
}
