//! Producer ids for idempotent producers, handed out by the controller shard: unique for the
//! life of the data directory, across restarts and crashes.
//!
//! Ids are reserved in blocks of [`BLOCK_IDS`]: before the first id of a block is handed out,
//! the end of the block is stored durably (a CRC-checked blob, `metadata/producer-ids`:
//! `version u16 = 1 | reserved_end u64`, little-endian). After a restart, allocation resumes
//! at the stored end, so an id is never given twice; at most one block is skipped per restart.
//! Every id starts at epoch 0 (the epoch exists for fencing; a non-transactional producer
//! always gets a fresh id).
//!
//! A damaged reservation is refused, never guessed at: without it no id is known to be unused.
//!
//! Generic over the disk ([`storage::disk::Disk`]), so the crash tests drive it on the simulated
//! disk (broker/tests/producer_ids_crash.rs). Lives on the controller shard only, behind its
//! own semaphore: one allocation at a time.

use std::path::{Path, PathBuf};

use storage::disk::Disk;

/// Ids reserved by one durable write.
pub const BLOCK_IDS: u64 = 1_000;
/// Name of the blob under `<data dir>/metadata/`.
pub const PRODUCER_IDS_FILE: &str = "producer-ids";
/// Version of the blob's layout.
const VERSION: u16 = 1;
const BLOB_BYTES: usize = 10;

/// The controller's allocator. See the module documentation.
pub struct ProducerIds {
    dir: PathBuf,
    /// The next id to hand out.
    next: u64,
    /// Ids below this are covered by the stored reservation.
    reserved_end: u64,
}

/// Why no id could be handed out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerIdError {
    /// Storing the reservation failed.
    #[error("reserving producer ids: {0}")]
    Io(#[from] storage::IoFailure),
    /// The stored reservation is damaged.
    #[error("{path}: {reason}")]
    Damaged {
        /// The blob.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Every positive i64 was handed out.
    #[error("producer ids are exhausted")]
    Exhausted,
}

impl ProducerIds {
    /// Loads the reservation from `metadata_dir`: allocation resumes at its end.
    pub async fn load<D: Disk>(
        disk: &D,
        metadata_dir: &Path,
    ) -> Result<ProducerIds, ProducerIdError> {
        let path = metadata_dir.join(PRODUCER_IDS_FILE);
        let reserved_end = match storage::load_blob(disk, &path).await {
            Ok(None) => 0,
            Ok(Some(bytes)) => decode(&bytes).map_err(|reason| ProducerIdError::Damaged {
                path: path.clone(),
                reason,
            })?,
            Err(storage::BlobError::Io(failure)) => return Err(failure.into()),
            Err(error) => {
                return Err(ProducerIdError::Damaged {
                    path,
                    reason: error.to_string(),
                });
            }
        };
        Ok(ProducerIds {
            dir: metadata_dir.to_path_buf(),
            next: reserved_end,
            reserved_end,
        })
    }

    /// The next id (with epoch 0), reserving a new block durably first when needed. A failed
    /// reservation hands out nothing and leaves the allocator as it was: the next call stores
    /// the same block end again (a fresh temporary file, so no failed fdatasync is retried).
    pub async fn allocate<D: Disk>(&mut self, disk: &D) -> Result<(i64, i16), ProducerIdError> {
        if self.next >= i64::MAX as u64 {
            return Err(ProducerIdError::Exhausted);
        }
        if self.next == self.reserved_end {
            let end = self
                .reserved_end
                .saturating_add(BLOCK_IDS)
                .min(i64::MAX as u64);
            storage::store_blob(disk, &self.dir, PRODUCER_IDS_FILE, &encode(end)).await?;
            self.reserved_end = end;
        }
        assert!(
            self.next < self.reserved_end,
            "id {} handed out beyond the reservation {}",
            self.next,
            self.reserved_end
        );
        let id = self.next;
        self.next += 1;
        Ok((id as i64, 0))
    }
}

fn encode(reserved_end: u64) -> [u8; BLOB_BYTES] {
    let mut out = [0u8; BLOB_BYTES];
    out[..2].copy_from_slice(&VERSION.to_le_bytes());
    out[2..].copy_from_slice(&reserved_end.to_le_bytes());
    out
}

fn decode(bytes: &[u8]) -> Result<u64, String> {
    let bytes: &[u8; BLOB_BYTES] = bytes
        .try_into()
        .map_err(|_| format!("{} bytes, expected {BLOB_BYTES}", bytes.len()))?;
    let version = u16::from_le_bytes([bytes[0], bytes[1]]);
    if version != VERSION {
        return Err(format!("version {version}, this broker reads {VERSION}"));
    }
    let mut end = [0u8; 8];
    end.copy_from_slice(&bytes[2..]);
    Ok(u64::from_le_bytes(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reservation_round_trips_and_damage_is_refused() {
        assert_eq!(decode(&encode(123_000)), Ok(123_000));
        assert!(decode(&encode(5)[..9]).is_err());
        let mut newer = encode(5);
        newer[0] = 9;
        assert!(decode(&newer).is_err());
    }
}
