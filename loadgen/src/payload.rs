//! The header every loadgen message carries in its first [`HEADER_BYTES`] bytes (little-endian):
//! producer id (u32), the producer's sequence number (u64, from 0), and the send timestamp
//! (u64 ns on the run's monotonic clock, see [`crate::Clock`]). The rest is zero padding up to
//! the message size.

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes of the header at the start of every message.
pub const HEADER_BYTES: usize = 20;

/// The decoded header of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// Which producer sent it.
    pub producer: u32,
    /// Its sequence number within that producer.
    pub sequence: u64,
    /// When it was sent, ns on the run's clock.
    pub sent_ns: u64,
}

/// A message of `size` bytes (at least [`HEADER_BYTES`]) carrying `header`.
pub fn encode(header: Header, size: usize) -> Bytes {
    let size = size.max(HEADER_BYTES);
    let mut out = BytesMut::with_capacity(size);
    out.put_u32_le(header.producer);
    out.put_u64_le(header.sequence);
    out.put_u64_le(header.sent_ns);
    out.resize(size, 0);
    out.freeze()
}

/// `message` (at least [`HEADER_BYTES`]) with its header replaced by `header`: in place when
/// nothing else holds the bytes, else as a fresh message of the same size.
pub fn rewrite(message: Bytes, header: Header) -> Bytes {
    match message.try_into_mut() {
        Ok(mut unique) => {
            assert!(unique.len() >= HEADER_BYTES, "a message holds its header");
            let mut at = &mut unique[..HEADER_BYTES];
            at.put_u32_le(header.producer);
            at.put_u64_le(header.sequence);
            at.put_u64_le(header.sent_ns);
            unique.freeze()
        }
        Err(shared) => encode(header, shared.len()),
    }
}

/// The header of `message`; `None` if it is shorter than [`HEADER_BYTES`].
pub fn decode(message: &[u8]) -> Option<Header> {
    let header = message.get(..HEADER_BYTES)?;
    let u64_at = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&header[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    let mut producer = [0u8; 4];
    producer.copy_from_slice(&header[..4]);
    Some(Header {
        producer: u32::from_le_bytes(producer),
        sequence: u64_at(4),
        sent_ns: u64_at(12),
    })
}
