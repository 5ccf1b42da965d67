//! What the in-memory frame tests share: a byte stream that reads in pieces.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::AsyncRead;

/// Hands out the bytes at most `piece` at a time, like a socket that receives in pieces.
pub struct Pieces {
    pub bytes: Vec<u8>,
    pub position: usize,
    pub piece: usize,
}

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buffer: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let left = &self.bytes[self.position..];
        let count = left.len().min(buffer.len()).min(self.piece);
        buffer[..count].copy_from_slice(&left[..count]);
        self.position += count;
        Poll::Ready(Ok(count))
    }
}
