//! Small files replaced atomically (metadata, indexes, and opaque blobs for the broker), and
//! removal of a partition's files.
//!
//! A small file is one or more blocks written to `<name>.tmp`, fdatasynced, renamed over
//! `<name>` and the directory fsynced, so a crash leaves the old contents or the new, never a
//! mix (docs/storage-format.md, "Index files and metadata files"). Blobs carry the metadata
//! file framing (magic, version, kind, length, CRC), so a damaged blob is reported, not used.

use std::path::Path;

use crate::disk::{BLOCK_BYTES, Disk, File, OpenMode};
use crate::error::IoFailure;
use crate::format::{self, FormatError, MetaKind};

/// Suffix of a small file being written; leftovers are removed on open.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// Stores `bytes` as `dir/name`, atomically and durably (an opaque blob: the broker's topic
/// metadata). The directory is created if missing.
pub async fn store_blob<D: Disk>(
    disk: &D,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<(), IoFailure> {
    disk.create_dir_all(dir)
        .await
        .map_err(|e| IoFailure::new("create directory", dir, None, e))?;
    write_small_file(disk, dir, name, &format::encode_meta(MetaKind::Blob, bytes)).await
}

/// Loads a blob stored by [`store_blob`]: None if there is none.
pub async fn load_blob<D: Disk>(disk: &D, path: &Path) -> Result<Option<Vec<u8>>, BlobError> {
    let Some(bytes) = read_small_file(disk, path).await? else {
        return Ok(None);
    };
    let payload =
        format::decode_meta(MetaKind::Blob, &bytes).map_err(|source| BlobError::Damaged {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(Some(payload.to_vec()))
}

/// Why a blob could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] IoFailure),
    /// The blob failed its checks.
    #[error("{path} is damaged: {source}")]
    Damaged {
        /// The file.
        path: std::path::PathBuf,
        /// What was wrong.
        source: FormatError,
    },
}

/// Removes every file of a partition directory (the log in it must be closed first) and
/// syncs the directory. The empty directory stays: the Disk seam has no directory removal,
/// and an empty directory opens as a new, empty log, which is what re-creating a deleted
/// topic needs.
pub async fn remove_log_dir<D: Disk>(disk: &D, dir: &Path) -> Result<(), IoFailure> {
    let names = match disk.list_dir(dir).await {
        Ok(names) => names,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(IoFailure::new("list directory", dir, None, e)),
    };
    for name in names {
        let path = dir.join(&name);
        disk.remove(&path)
            .await
            .map_err(|e| IoFailure::new("remove", &path, None, e))?;
    }
    disk.sync_dir(dir)
        .await
        .map_err(|e| IoFailure::new("fsync directory", dir, None, e))
}

/// Reads a whole small file; None if it does not exist.
pub(crate) async fn read_small_file<D: Disk>(
    disk: &D,
    path: &Path,
) -> Result<Option<Vec<u8>>, IoFailure> {
    let file = match disk.open(path, OpenMode::Existing).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(IoFailure::new("open", path, None, e)),
    };
    let size = file
        .size()
        .await
        .map_err(|e| IoFailure::new("size", path, None, e))?;
    let bytes = file
        .read_at(0, usize::try_from(size).expect("small file"))
        .await
        .map_err(|e| IoFailure::new("read", path, Some(0), e))?;
    file.close()
        .await
        .map_err(|e| IoFailure::new("close", path, None, e))?;
    Ok(Some(bytes.to_vec()))
}

/// Replaces `dir/name` atomically: write a temporary file, sync it, rename it over the old
/// one, sync the directory. A crash leaves the old contents or the new, never a mix.
pub(crate) async fn write_small_file<D: Disk>(
    disk: &D,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<(), IoFailure> {
    assert!((bytes.len() as u64).is_multiple_of(BLOCK_BYTES));
    let temp = dir.join(format!("{name}{TEMP_SUFFIX}"));
    let path = dir.join(name);
    match disk.remove(&temp).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(IoFailure::new("remove", &temp, None, e)),
    }
    let file = disk
        .open(&temp, OpenMode::CreateNew)
        .await
        .map_err(|e| IoFailure::new("create", &temp, None, e))?;
    let mut buffer = file.alloc_buffer(bytes.len());
    buffer.as_mut().copy_from_slice(bytes);
    file.write_at(buffer, 0)
        .await
        .map_err(|e| IoFailure::new("write", &temp, Some(0), e))?;
    file.sync()
        .await
        .map_err(|e| IoFailure::new("fdatasync", &temp, None, e))?;
    file.close()
        .await
        .map_err(|e| IoFailure::new("close", &temp, None, e))?;
    disk.rename(&temp, &path)
        .await
        .map_err(|e| IoFailure::new("rename", &temp, None, e))?;
    disk.sync_dir(dir)
        .await
        .map_err(|e| IoFailure::new("fsync directory", dir, None, e))
}
