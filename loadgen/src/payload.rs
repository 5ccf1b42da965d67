//! The header every loadgen message carries in its first [`HEADER_BYTES`] bytes (little-endian):
//! producer id (u32), the producer's sequence number (u64, from 0), and the send timestamp
//! (u64 ns on the run's monotonic clock, see [`crate::Clock`]). The rest is zero padding up to
//! the message size.

use bytes::BufMut;

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
pub fn encode(header: Header, size: usize) -> Vec<u8> {
    let mut out = vec![0; size.max(HEADER_BYTES)];
    rewrite(&mut out, header);
    out
}

/// Replaces the header of `message` (at least [`HEADER_BYTES`]) with `header`, in place: a
/// producer lends one buffer for every message it sends (`client::RecordRef`), and only the
/// header changes between them.
pub fn rewrite(message: &mut [u8], header: Header) {
    assert!(message.len() >= HEADER_BYTES, "a message holds its header");
    let mut at = &mut message[..HEADER_BYTES];
    at.put_u32_le(header.producer);
    at.put_u64_le(header.sequence);
    at.put_u64_le(header.sent_ns);
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
