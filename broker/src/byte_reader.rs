//! A cursor over the little-endian blobs the broker decodes (topic metadata, producer-state
//! and committed-offsets snapshots, offsets records): it never reads past the end and never
//! panics on untrusted bytes. Each decoder turns [`Truncated`] into its own error type.

use std::fmt;

/// A read that would run past the end of the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Truncated {
    /// Where the read started.
    pub at: usize,
    /// Bytes it wanted.
    pub wanted: usize,
    /// Bytes there are in all.
    pub bytes: usize,
}

impl fmt::Display for Truncated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "truncated: {} bytes wanted at byte {} of {}",
            self.wanted, self.at, self.bytes
        )
    }
}

impl From<Truncated> for String {
    fn from(truncated: Truncated) -> String {
        truncated.to_string()
    }
}

/// Reads fields one after another from the start of `bytes`.
pub(crate) struct ByteReader<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> ByteReader<'b> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'b [u8]) -> ByteReader<'b> {
        ByteReader { bytes, at: 0 }
    }

    /// The next `length` bytes.
    pub fn slice(&mut self, length: usize) -> Result<&'b [u8], Truncated> {
        let truncated = Truncated {
            at: self.at,
            wanted: length,
            bytes: self.bytes.len(),
        };
        let end = self
            .at
            .checked_add(length)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(truncated)?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    /// The next `N` bytes, for `from_le_bytes`.
    pub fn take<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        Ok(self.slice(N)?.try_into().expect("slice gave N bytes"))
    }

    /// Bytes not read yet.
    pub fn left(&self) -> usize {
        self.bytes.len() - self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_at_the_end() {
        let mut reader = ByteReader::new(&[1, 0, 2]);
        assert_eq!(u16::from_le_bytes(reader.take().unwrap()), 1);
        assert_eq!(
            reader.take::<2>(),
            Err(Truncated {
                at: 2,
                wanted: 2,
                bytes: 3
            })
        );
        assert_eq!(reader.slice(usize::MAX).unwrap_err().wanted, usize::MAX);
        assert_eq!(reader.slice(1).unwrap(), &[2]);
        assert_eq!(reader.left(), 0);
    }
}
