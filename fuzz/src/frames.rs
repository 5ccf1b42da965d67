//! Target `frames`: the broker's frame reader (`net::FrameReader`) over a stream of arbitrary
//! bytes, and each frame it returns decoded as the broker decodes a request.
//!
//! Input: `piece u8 | stream`. The stream is read through an in-memory reader that hands out
//! at most `piece` bytes per read (0: as many as asked), as a socket hands out what arrived,
//! so the reader's growing body buffer meets every split of the bytes. Frames are limited to
//! [`FRAME_BYTES_MAX`].
//!
//! Properties:
//! - each frame returned is exactly the bytes the stream holds at that point: the message and
//!   the payload that its prefix names, one frame after the other;
//! - the stream ends cleanly (`Ok(None)`) only between frames; a frame cut short is reported
//!   with the bytes that arrived and the bytes it claimed; a prefix is refused exactly when
//!   `FrameHeader::parse` refuses it, and with the same error;
//! - every frame's message goes through [`crate::wire_messages::check_request`] with its
//!   payload.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::AsyncRead;
use futures_lite::future::block_on;
use net::{FrameReader, Limits, ReadError};
use schema::wire::{FRAME_PREFIX_BYTES, FrameHeader};

/// The frame limit of the target: small, so that inputs reach it.
pub const FRAME_BYTES_MAX: u32 = 64 << 10;

/// A stream that hands out at most `piece` bytes per read.
struct Pieces<'a> {
    bytes: &'a [u8],
    piece: usize,
}

impl AsyncRead for Pieces<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buffer: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let count = self.bytes.len().min(buffer.len()).min(self.piece);
        let (head, rest) = self.bytes.split_at(count);
        buffer[..count].copy_from_slice(head);
        self.bytes = rest;
        Poll::Ready(Ok(count))
    }
}

/// The input for a stream read `piece` bytes at a time (0: whole reads), for seeds.
pub fn encode(piece: u8, stream: &[u8]) -> Vec<u8> {
    let mut out = vec![piece];
    out.extend_from_slice(stream);
    out
}

/// The target: see the module doc.
pub fn check(data: &[u8]) {
    let Some((&piece, stream)) = data.split_first() else {
        return;
    };
    let piece = if piece == 0 {
        usize::MAX
    } else {
        usize::from(piece)
    };
    let peer: SocketAddr = ([127, 0, 0, 1], 9).into();
    let limits = Limits {
        frame_bytes_max: FRAME_BYTES_MAX,
        idle_timeout: None,
    };
    let mut reader = FrameReader::from_stream(
        Pieces {
            bytes: stream,
            piece,
        },
        peer,
        limits,
    );
    // Where the next frame starts in `stream`.
    let mut position = 0;
    loop {
        let left = &stream[position..];
        match block_on(reader.read_frame()) {
            Ok(None) => {
                assert!(
                    left.is_empty(),
                    "a clean end with {} bytes left",
                    left.len()
                );
                return;
            }
            Ok(Some(frame)) => {
                let prefix = left
                    .first_chunk::<FRAME_PREFIX_BYTES>()
                    .expect("a frame was read, so its prefix was there");
                let header = FrameHeader::parse(prefix, FRAME_BYTES_MAX)
                    .expect("the reader accepted this prefix");
                let body = &left[FRAME_PREFIX_BYTES..FRAME_PREFIX_BYTES + header.body_bytes()];
                assert_eq!(&frame.message[..], &body[header.message_range()]);
                assert_eq!(&frame.payload[..], &body[header.payload_range()]);
                position += FRAME_PREFIX_BYTES + header.body_bytes();
                crate::wire_messages::check_request(&frame.message, &frame.payload.freeze());
            }
            Err(ReadError::Frame(error)) => {
                let prefix = left
                    .first_chunk::<FRAME_PREFIX_BYTES>()
                    .expect("a prefix was refused, so it was there");
                assert_eq!(FrameHeader::parse(prefix, FRAME_BYTES_MAX), Err(error));
                return;
            }
            Err(ReadError::Truncated {
                received_bytes,
                expected_bytes,
            }) => {
                assert_eq!(received_bytes, left.len(), "every byte left was received");
                assert!(received_bytes < expected_bytes);
                let expected = match left.first_chunk::<FRAME_PREFIX_BYTES>() {
                    None => FRAME_PREFIX_BYTES,
                    Some(prefix) => {
                        let header = FrameHeader::parse(prefix, FRAME_BYTES_MAX)
                            .expect("a body was read, so the prefix was accepted");
                        FRAME_PREFIX_BYTES + header.body_bytes()
                    }
                };
                assert_eq!(expected_bytes, expected);
                return;
            }
            Err(other) => panic!("an in-memory stream cannot fail with {other}"),
        }
    }
}
