//! The real disk: O_DIRECT files on glommio's io_uring reactor.
//!
//! Owns [`GlommioDisk`] (the directory-level operations and the per-device direct-I/O probe)
//! and [`GlommioFile`] (one open file). Both live on the shard (executor thread) that created
//! them: they are `!Send`, and a disk must be constructed, with [`GlommioDisk::open_dir`], on
//! every shard that uses it, because the probe below is per thread.
//!
//! # The polled-I/O probe trap
//!
//! glommio decides, once per block device and per thread (its device table is a
//! `thread_local!`), whether the device supports polled I/O (`IORING_SETUP_IOPOLL`). It
//! decides by reading the first block of the *first* file it opens with O_DIRECT on that
//! device through its poll ring: `ENOTSUP` means "not pollable", success means "pollable".
//! If that first file is empty, the kernel answers "0 bytes" without touching the device,
//! glommio concludes "pollable", and from then on every DMA read on that device from that
//! thread fails with `EOPNOTSUPP` (os error 95) on a device that has `queue/io_poll` = 0 (the
//! virtio disks we run on). A log that creates its first segment and then reads it back hits
//! exactly this.
//!
//! [`GlommioDisk::open_dir`] therefore probes deliberately, before any other O_DIRECT file of
//! the shard is opened: it writes a non-empty probe file ([`PROBE_FILE_NAME`], one block,
//! written with std::fs and renamed into place so a concurrent prober on another shard never
//! sees it empty), opens it with glommio read+write and reads it back. That first read makes
//! glommio's probe see a real block, so its decision is right. If the read fails with
//! `EOPNOTSUPP` anyway, the wrong decision was already made on this thread by an earlier
//! O_DIRECT open, and `open_dir` returns [`DiskOpenError::PollProbeTooLate`] instead of letting
//! every later read fail. [`GlommioDisk::open`] refuses to open a file on a device that no
//! `open_dir` has probed on this thread, so the trap cannot be reached through this module.
//! The probe file stays in the directory (one block); [`Disk::list_dir`] hides it.
//!
//! # Filesystems without O_DIRECT
//!
//! tmpfs (since Linux 6.6) accepts `O_DIRECT` but has no device behind it: nothing is direct
//! and nothing is durable, and glommio itself silently turns direct I/O off there. Other
//! filesystems refuse `O_DIRECT` outright with `EINVAL`. In both cases the default,
//! [`DirectIo::Required`], makes `open_dir` fail with [`DiskOpenError::DirectIoUnsupported`],
//! naming the directory and the fix. [`DirectIo::BufferedFallback`], chosen explicitly, opens
//! files through glommio's buffered (page-cache) files instead, with the same contract.
//!
//! # Blocking calls
//!
//! Directory operations (create, list, rename, remove, directory fsync) and the probe use
//! blocking `std::fs` calls on the executor thread. They are rare (startup, segment roll,
//! segment deletion) and glommio has no asynchronous form of most of them; file data I/O,
//! `fdatasync`, `ftruncate`, `fallocate` and `statx` all go through io_uring.
//!
//! # Errors
//!
//! Every `io::Error` returned here names the operation and the path (and the position for
//! reads and writes) in its message, keeps the original `ErrorKind` (so ENOSPC stays
//! `StorageFull`), and keeps the original OS error as its `source()`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use glommio::GlommioError;
use glommio::io::{BufferedFile, DmaBuffer, DmaFile, OpenOptions, ReadResult};

use super::{BLOCK_BYTES, Buffer, Disk, File, OpenMode};

/// The name of the probe file that [`GlommioDisk::open_dir`] keeps in the data directory.
/// Names starting with it are hidden from [`Disk::list_dir`].
pub const PROBE_FILE_NAME: &str = ".ringbus-direct-io-probe";

/// The probe file's size: one block, so that the first O_DIRECT read of it reaches the device.
const PROBE_BYTES: usize = BLOCK_BYTES as usize;

/// Makes each temporary probe name unique within the process (two shards may probe the same
/// directory at once).
static PROBE_SEQUENCE: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// What the probe found for each device (`st_dev`) on this thread. It mirrors glommio's
    /// own per-thread device table: a device is in here only once glommio's decision for it
    /// on this thread is known to be sound.
    static PROBED_DEVICES: RefCell<HashMap<u64, Medium>> = RefCell::new(HashMap::new());
}

/// Whether a disk insists on O_DIRECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DirectIo {
    /// Fail [`GlommioDisk::open_dir`] when the filesystem does not give real direct I/O.
    #[default]
    Required,
    /// Use buffered (page-cache) files where direct I/O is not available. `sync` still
    /// issues fdatasync, so durability holds on a real filesystem; on tmpfs nothing is durable.
    BufferedFallback,
}

/// Why [`GlommioDisk::open_dir`] could not open a data directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskOpenError {
    /// The directory's filesystem does not give direct I/O and [`DirectIo::Required`] is set.
    #[error(
        "data directory {}: {reason}; put the data dir on a filesystem that supports O_DIRECT, \
         such as ext4 or XFS, or set the buffered-I/O fallback explicitly \
         (DirectIo::BufferedFallback)",
        .dir.display()
    )]
    DirectIoUnsupported {
        /// The data directory.
        dir: PathBuf,
        /// What the probe saw (the filesystem type, or the error from opening with O_DIRECT).
        reason: String,
    },
    /// An O_DIRECT file was opened on this device and thread before the probe, and glommio
    /// wrongly decided the device supports polled I/O: every DMA read would fail.
    #[error(
        "data directory {}: reading the direct-I/O probe file failed ({source}): glommio already \
         decided on this thread that the device supports polled I/O, because an O_DIRECT file \
         was opened before the probe; construct the GlommioDisk before opening any other \
         O_DIRECT file on this shard",
        .dir.display()
    )]
    PollProbeTooLate {
        /// The data directory.
        dir: PathBuf,
        /// The read error (os error 95, EOPNOTSUPP).
        source: io::Error,
    },
    /// Creating the directory or running the probe failed.
    #[error("data directory {}: {source}", .dir.display())]
    Io {
        /// The data directory.
        dir: PathBuf,
        /// The underlying error, with operation and path.
        source: io::Error,
    },
}

/// What a device gives us.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Medium {
    /// O_DIRECT works and glommio's polled-I/O decision for the device is sound.
    Direct,
    /// No direct I/O here; the reason is for messages.
    NoDirect { reason: String },
}

/// Whether a disk's files are opened with O_DIRECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// O_DIRECT files ([`DmaFile`]).
    Direct,
    /// Buffered files, because direct I/O is not available and the fallback was allowed.
    Buffered,
}

/// The real [`Disk`], rooted at a probed data directory.
///
/// Lifecycle: construct with [`GlommioDisk::open_dir`] on the shard that will use it, before
/// any other O_DIRECT file is opened there. It may open files anywhere on devices that an
/// `open_dir` has probed on this thread; opening a file elsewhere is an error. Cloning is
/// cheap. `!Send`: the probe it relies on is per thread.
#[derive(Debug, Clone)]
pub struct GlommioDisk {
    root: PathBuf,
    direct_io: DirectIo,
    io_mode: IoMode,
    // The probe result is only valid on this thread (see the module doc).
    _shard_local: PhantomData<Rc<()>>,
}

impl GlommioDisk {
    /// Creates `dir` (and its parents, durably), probes its device for direct I/O and returns
    /// a disk rooted there. Call it on the shard that will use the disk, before any other
    /// O_DIRECT file is opened on that shard.
    pub async fn open_dir(dir: &Path, direct_io: DirectIo) -> Result<GlommioDisk, DiskOpenError> {
        let io_error = |source| DiskOpenError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        create_dir_all_durably(dir).map_err(io_error)?;
        let device = device_of(dir).map_err(io_error)?;
        let medium = probe(dir).await?;
        PROBED_DEVICES.with(|devices| devices.borrow_mut().insert(device, medium.clone()));
        let io_mode = match (&medium, direct_io) {
            (Medium::Direct, _) => IoMode::Direct,
            (Medium::NoDirect { reason }, DirectIo::Required) => {
                return Err(DiskOpenError::DirectIoUnsupported {
                    dir: dir.to_path_buf(),
                    reason: reason.clone(),
                });
            }
            (Medium::NoDirect { reason }, DirectIo::BufferedFallback) => {
                tracing::warn!(
                    dir = %dir.display(),
                    reason = %reason,
                    "no direct I/O for the data directory: using buffered files, as configured"
                );
                IoMode::Buffered
            }
        };
        Ok(GlommioDisk {
            root: dir.to_path_buf(),
            direct_io,
            io_mode,
            _shard_local: PhantomData,
        })
    }

    /// The data directory this disk was opened on.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How files in the data directory are opened.
    pub fn io_mode(&self) -> IoMode {
        self.io_mode
    }

    /// Decides how to open a file at `path`, from the probe of its directory's device.
    fn io_mode_for(&self, path: &Path) -> io::Result<IoMode> {
        let dir = parent_dir(path);
        let device = device_of(dir).map_err(|e| context_error("open", path, None, e))?;
        let medium = PROBED_DEVICES.with(|devices| devices.borrow().get(&device).cloned());
        match (medium, self.direct_io) {
            (Some(Medium::Direct), _) => Ok(IoMode::Direct),
            (Some(Medium::NoDirect { .. }), DirectIo::BufferedFallback) => Ok(IoMode::Buffered),
            (Some(Medium::NoDirect { reason }), DirectIo::Required) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "open {}: {reason}, and direct I/O is required; put the file on a filesystem \
                     that supports O_DIRECT, such as ext4 or XFS",
                    path.display()
                ),
            )),
            (None, _) => Err(io::Error::other(format!(
                "open {}: its device was not probed for direct I/O on this shard; open a \
                 GlommioDisk on a directory of that filesystem first (GlommioDisk::open_dir)",
                path.display()
            ))),
        }
    }
}

impl Disk for GlommioDisk {
    type File = GlommioFile;

    async fn open(&self, path: &Path, mode: OpenMode) -> io::Result<GlommioFile> {
        let io_mode = self.io_mode_for(path)?;
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        if mode == OpenMode::CreateNew {
            options.create_new(true);
        }
        let op = match mode {
            OpenMode::CreateNew => "create",
            OpenMode::Existing => "open",
        };
        let inner = match io_mode {
            IoMode::Direct => Inner::Direct(
                options
                    .dma_open(path)
                    .await
                    .map_err(|e| glommio_error(op, path, None, e))?,
            ),
            IoMode::Buffered => Inner::Buffered(
                options
                    .buffered_open(path)
                    .await
                    .map_err(|e| glommio_error(op, path, None, e))?,
            ),
        };
        Ok(GlommioFile {
            path: path.to_path_buf(),
            inner,
        })
    }

    async fn remove(&self, path: &Path) -> io::Result<()> {
        // Blocking unlink: rare (segment deletion), see the module doc.
        std::fs::remove_file(path).map_err(|e| context_error("remove", path, None, e))
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        // Blocking rename: rare (segment roll), see the module doc.
        std::fs::rename(from, to).map_err(|e| {
            let target = format!("{} -> {}", from.display(), to.display());
            context_error("rename", Path::new(&target), None, e)
        })
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        sync_dir_blocking(dir)
    }

    async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        create_dir_all_durably(dir)
    }

    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let op = "list_dir";
        let entries = std::fs::read_dir(dir).map_err(|e| context_error(op, dir, None, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| context_error(op, dir, None, e))?;
            let name = entry.file_name().into_string().map_err(|name| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{op} {}: file name {name:?} is not UTF-8", dir.display()),
                )
            })?;
            if !name.starts_with(PROBE_FILE_NAME) {
                names.push(name);
            }
        }
        Ok(names)
    }
}

/// One open file: O_DIRECT ([`DmaFile`]) or, with the explicit fallback, buffered.
///
/// Lifecycle: opened by [`GlommioDisk::open`], closed by [`File::close`]. Used by one shard;
/// glommio serialises nothing, so the caller orders overlapping writes itself.
#[derive(Debug)]
pub struct GlommioFile {
    path: PathBuf,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Direct(DmaFile),
    Buffered(BufferedFile),
}

/// A zero-filled, block-aligned buffer: glommio DMA memory for direct files (written without
/// a copy), heap memory for buffered ones.
#[derive(Debug)]
pub struct GlommioBuffer {
    storage: BufferStorage,
}

#[derive(Debug)]
enum BufferStorage {
    Dma(DmaBuffer),
    Heap(Vec<u8>),
}

impl AsRef<[u8]> for GlommioBuffer {
    fn as_ref(&self) -> &[u8] {
        match &self.storage {
            BufferStorage::Dma(buffer) => buffer.as_bytes(),
            BufferStorage::Heap(buffer) => buffer,
        }
    }
}

impl AsMut<[u8]> for GlommioBuffer {
    fn as_mut(&mut self) -> &mut [u8] {
        match &mut self.storage {
            BufferStorage::Dma(buffer) => buffer.as_bytes_mut(),
            BufferStorage::Heap(buffer) => buffer,
        }
    }
}

impl Buffer for GlommioBuffer {
    fn truncate(&mut self, bytes: usize) {
        super::assert_truncate(self.as_ref().len(), bytes);
        match &mut self.storage {
            BufferStorage::Dma(buffer) => buffer.trim_to_size(bytes),
            BufferStorage::Heap(buffer) => buffer.truncate(bytes),
        }
    }
}

impl File for GlommioFile {
    type Buffer = GlommioBuffer;

    fn alloc_buffer(&self, bytes: usize) -> GlommioBuffer {
        super::assert_buffer_bytes(&self.path, bytes);
        let storage = match &self.inner {
            Inner::Direct(file) => {
                let mut buffer = file.alloc_dma_buffer(bytes);
                // glommio hands out its registered arena (or a fresh allocation) as is: the
                // memory may hold an earlier buffer's bytes, which must never reach the disk.
                buffer.as_bytes_mut().fill(0);
                BufferStorage::Dma(buffer)
            }
            Inner::Buffered(_) => BufferStorage::Heap(vec![0; bytes]),
        };
        GlommioBuffer { storage }
    }

    fn alloc_buffer_unfilled(&self, bytes: usize) -> GlommioBuffer {
        super::assert_buffer_bytes(&self.path, bytes);
        let storage = match &self.inner {
            Inner::Direct(file) => BufferStorage::Dma(file.alloc_dma_buffer(bytes)),
            // A heap Vec must be initialised to be handed out as a slice.
            Inner::Buffered(_) => BufferStorage::Heap(vec![0; bytes]),
        };
        GlommioBuffer { storage }
    }

    async fn write_at(&self, buffer: GlommioBuffer, position: u64) -> io::Result<()> {
        let bytes = buffer.as_ref().len() as u64;
        super::assert_write(&self.path, position, bytes);
        // A buffer from a file of the other kind (possible only across devices) is copied
        // into the kind this file can write.
        let written = match (&self.inner, buffer.storage) {
            (Inner::Direct(file), BufferStorage::Dma(dma)) => file.write_at(dma, position).await,
            (Inner::Direct(file), BufferStorage::Heap(heap)) => {
                let mut dma = file.alloc_dma_buffer(heap.len());
                dma.as_bytes_mut().copy_from_slice(&heap);
                file.write_at(dma, position).await
            }
            (Inner::Buffered(file), BufferStorage::Heap(heap)) => {
                file.write_at(heap, position).await
            }
            (Inner::Buffered(file), BufferStorage::Dma(dma)) => {
                file.write_at(dma.as_bytes().to_vec(), position).await
            }
        }
        .map_err(|e| glommio_error("write", &self.path, Some(position), e))?;
        if written as u64 != bytes {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!(
                    "write {} at {position}: short write, {written} of {bytes} bytes",
                    self.path.display()
                ),
            ));
        }
        Ok(())
    }

    async fn read_at(&self, position: u64, bytes: usize) -> io::Result<Bytes> {
        // `ReadResult` holds glommio's `Rc`-counted I/O source and a raw pointer into it, so
        // it is `!Send`, and `Bytes::from_owner` needs `Send + 'static`. We copy into an owned
        // buffer (one memcpy, ~7 GiB/s here); a zero-copy path would need a `!Send` bytes
        // type of our own.
        let mut data = Vec::with_capacity(bytes);
        // One read almost always returns everything; a short read before the end of the file
        // is continued, so that only end-of-file ends a read early (the trait's promise).
        while data.len() < bytes {
            let at = position + data.len() as u64;
            let wanted = bytes - data.len();
            if self.read_once(at, wanted, &mut data).await? == 0 {
                break;
            }
        }
        Ok(Bytes::from(data))
    }

    async fn sync(&self) -> io::Result<()> {
        match &self.inner {
            Inner::Direct(file) => file.fdatasync().await,
            Inner::Buffered(file) => file.fdatasync().await,
        }
        .map_err(|e| glommio_error("fdatasync", &self.path, None, e))
    }

    async fn size(&self) -> io::Result<u64> {
        match &self.inner {
            Inner::Direct(file) => file.file_size().await,
            Inner::Buffered(file) => file.file_size().await,
        }
        .map_err(|e| glommio_error("size", &self.path, None, e))
    }

    async fn truncate(&self, bytes: u64) -> io::Result<()> {
        match &self.inner {
            Inner::Direct(file) => file.truncate(bytes).await,
            Inner::Buffered(file) => file.truncate(bytes).await,
        }
        .map_err(|e| glommio_error("truncate", &self.path, Some(bytes), e))
    }

    async fn allocate(&self, bytes: u64) -> io::Result<()> {
        // fallocate(mode 0, 0, bytes): allocates [0, bytes) and raises the size to `bytes` if
        // it is smaller; it never shrinks the file. Not FALLOC_FL_KEEP_SIZE: a write past the
        // size must update it, which ext4 will not do under IOCB_NOWAIT, so io_uring would
        // punt every appending write to an io-wq worker thread (see `File::allocate`).
        // fallocate refuses a zero length (EINVAL); extending to zero bytes is nothing to do.
        if bytes == 0 {
            return Ok(());
        }
        let keep_size = false;
        match &self.inner {
            Inner::Direct(file) => file.pre_allocate(bytes, keep_size).await,
            Inner::Buffered(file) => file.pre_allocate(bytes, keep_size).await,
        }
        .map_err(|e| glommio_error("allocate", &self.path, Some(bytes), e))
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn duplicate(&self) -> io::Result<GlommioFile> {
        let inner = match &self.inner {
            Inner::Direct(file) => Inner::Direct(
                file.dup()
                    .map_err(|e| glommio_error("dup", &self.path, None, e))?,
            ),
            // glommio's BufferedFile has no dup; the buffered fallback syncs in line.
            Inner::Buffered(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("dup {}: not for buffered files", self.path.display()),
                ));
            }
        };
        Ok(GlommioFile {
            inner,
            path: self.path.clone(),
        })
    }

    async fn close(self) -> io::Result<()> {
        match self.inner {
            Inner::Direct(file) => file.close().await,
            Inner::Buffered(file) => file.close().await,
        }
        .map_err(|e| glommio_error("close", &self.path, None, e))
    }
}

impl GlommioFile {
    /// One read of at most `bytes` at `position`, appended to `data`; returns the number of
    /// bytes read (0 at or past the end of the file).
    async fn read_once(
        &self,
        position: u64,
        bytes: usize,
        data: &mut Vec<u8>,
    ) -> io::Result<usize> {
        let error = |e| glommio_error("read", &self.path, Some(position), e);
        match &self.inner {
            Inner::Direct(file) => {
                // Not `DmaFile::read_at`: in glommio 0.9 it returns `min(read, bytes)` bytes
                // starting `skip` bytes into the aligned read, so near the end of the file it
                // hands out up to `skip` bytes past what the kernel filled. We align ourselves
                // and keep only what was read. Example, 512-byte alignment, a file of 8192
                // bytes, 100 bytes at 8185: we ask for 1024 bytes at 7680 (skip 505), the
                // kernel reads 512 (up to the end of the file), and we keep read[505..512],
                // the 7 bytes that exist; glommio would return read[505..605], 93 bytes past
                // the end of the file.
                let alignment = file.alignment();
                let aligned_position = position / alignment * alignment;
                let skip = (position - aligned_position) as usize;
                let aligned_bytes =
                    (skip + bytes).div_ceil(alignment as usize) * alignment as usize;
                let read: ReadResult = file
                    .read_at_aligned(aligned_position, aligned_bytes)
                    .await
                    .map_err(error)?;
                let end = read.len().min(skip + bytes);
                let start = skip.min(end);
                data.extend_from_slice(&read[start..end]);
                Ok(end - start)
            }
            Inner::Buffered(file) => {
                let read: ReadResult = file.read_at(position, bytes).await.map_err(error)?;
                data.extend_from_slice(&read);
                Ok(read.len())
            }
        }
    }
}

/// Probes the device of `dir` (see the module doc). Runs before any other O_DIRECT open of
/// the shard, so the probe file is the first file glommio sees on the device.
async fn probe(dir: &Path) -> Result<Medium, DiskOpenError> {
    let io_error = |source| DiskOpenError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    let probe_path = dir.join(PROBE_FILE_NAME);
    let content = probe_content();
    write_probe_file(dir, &probe_path, &content).map_err(io_error)?;

    let device = device_of(dir).map_err(io_error)?;
    if let Some(filesystem) = filesystem_type(device) {
        // tmpfs accepts O_DIRECT (Linux >= 6.6) but there is no device behind it; ramfs
        // refuses it. Neither is direct nor durable.
        if ["tmpfs", "ramfs"].contains(&filesystem.as_str()) {
            return Ok(Medium::NoDirect {
                reason: format!("its filesystem is {filesystem}, which has no direct I/O"),
            });
        }
    }
    // Ask the kernel plainly first: a filesystem without direct I/O refuses the flag with
    // EINVAL at open time, and glommio would report that less clearly.
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe_path)
    {
        if e.raw_os_error() == Some(libc::EINVAL) {
            return Ok(Medium::NoDirect {
                reason: format!("its filesystem refuses O_DIRECT ({e})"),
            });
        }
        return Err(io_error(context_error(
            "open O_DIRECT",
            &probe_path,
            None,
            e,
        )));
    }

    // The probe proper: glommio's first O_DIRECT open on this device reads block 0 of this
    // non-empty file through the poll ring and so decides correctly.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .dma_open(&probe_path)
        .await
        .map_err(|e| io_error(glommio_error("open", &probe_path, None, e)))?;
    let read = file.read_at(0, PROBE_BYTES).await;
    let closed = file.close().await;
    let read = match read {
        Ok(read) => read,
        Err(e) => {
            let e = glommio_error("read", &probe_path, Some(0), e);
            if source_os_error(&e) == Some(libc::EOPNOTSUPP) {
                return Err(DiskOpenError::PollProbeTooLate {
                    dir: dir.to_path_buf(),
                    source: e,
                });
            }
            return Err(io_error(e));
        }
    };
    closed.map_err(|e| io_error(glommio_error("close", &probe_path, None, e)))?;
    if *read != content[..] {
        return Err(io_error(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "read {}: the probe block read back ({} bytes) differs from what was written",
                probe_path.display(),
                read.len()
            ),
        )));
    }
    Ok(Medium::Direct)
}

/// The probe file's bytes: recognisable text, zero-padded to one block.
fn probe_content() -> Vec<u8> {
    let mut content = vec![0; PROBE_BYTES];
    let text = b"ringbus direct-I/O probe: see storage/src/disk/glommio.rs\n";
    content[..text.len()].copy_from_slice(text);
    content
}

/// Writes the probe file with std::fs under a unique temporary name and renames it into
/// place, so that no reader (another shard probing the same directory) ever sees it empty.
/// No fsync: an O_DIRECT read first writes back the dirty page cache of its range.
fn write_probe_file(dir: &Path, probe_path: &Path, content: &[u8]) -> io::Result<()> {
    let sequence = PROBE_SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let temporary = dir.join(format!(
        "{PROBE_FILE_NAME}.{}.{sequence}.tmp",
        std::process::id()
    ));
    std::fs::write(&temporary, content).map_err(|e| context_error("write", &temporary, None, e))?;
    std::fs::rename(&temporary, probe_path)
        .map_err(|e| context_error("rename", &temporary, None, e))
}

/// The filesystem type of the mount whose device is `device`, from /proc/self/mountinfo
/// (std has no statfs, and this avoids `unsafe`). `None` if it cannot be told.
fn filesystem_type(device: u64) -> Option<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let wanted = format!("{}:{}", libc::major(device), libc::minor(device));
    // A line: "ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE ...".
    mountinfo.lines().find_map(|line| {
        let mut fields = line.split(' ');
        if fields.nth(2)? != wanted {
            return None;
        }
        let mut after_separator = fields.skip_while(|field| *field != "-").skip(1);
        after_separator.next().map(str::to_owned)
    })
}

/// The device (`st_dev`) holding `dir`.
fn device_of(dir: &Path) -> io::Result<u64> {
    std::fs::metadata(dir)
        .map(|metadata| metadata.dev())
        .map_err(|e| context_error("stat", dir, None, e))
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// fsync on a directory: makes its entries durable. Blocking, see the module doc.
fn sync_dir_blocking(dir: &Path) -> io::Result<()> {
    let op = "sync_dir";
    let handle = std::fs::File::open(dir).map_err(|e| context_error(op, dir, None, e))?;
    handle
        .sync_all()
        .map_err(|e| context_error(op, dir, None, e))
}

/// Creates `dir` and its missing parents, then fsyncs each directory it created and the
/// parent holding its entry. The leaf and its parent are synced even if the leaf existed: an
/// earlier call may have created it and crashed before syncing.
fn create_dir_all_durably(dir: &Path) -> io::Result<()> {
    let op = "create_dir_all";
    let mut missing = Vec::new();
    for ancestor in dir.ancestors() {
        if ancestor.as_os_str().is_empty() {
            break;
        }
        match std::fs::symlink_metadata(ancestor) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(ancestor),
            Err(e) => return Err(context_error(op, ancestor, None, e)),
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| context_error(op, dir, None, e))?;
    let mut to_sync: Vec<&Path> = Vec::new();
    for created in missing.iter().rev().chain(std::iter::once(&dir)) {
        for path in [*created, parent_dir(created)] {
            if !to_sync.contains(&path) {
                to_sync.push(path);
            }
        }
    }
    for path in to_sync {
        sync_dir_blocking(path)?;
    }
    Ok(())
}

/// An I/O error with its operation, path and (optional) position. Kept as the `source` of the
/// `io::Error` we return, so the original OS error stays reachable.
#[derive(Debug)]
struct OperationError {
    op: &'static str,
    path: PathBuf,
    position: Option<u64>,
    source: io::Error,
}

impl fmt::Display for OperationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op, self.path.display())?;
        if let Some(position) = self.position {
            write!(f, " at {position}")?;
        }
        write!(f, ": {}", self.source)
    }
}

impl StdError for OperationError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

/// Wraps `source` so that the message names the operation and path, keeping its kind.
fn context_error(
    op: &'static str,
    path: &Path,
    position: Option<u64>,
    source: io::Error,
) -> io::Error {
    io::Error::new(
        source.kind(),
        OperationError {
            op,
            path: path.to_path_buf(),
            position,
            source,
        },
    )
}

/// [`context_error`] for glommio's error type, keeping the underlying OS error: glommio's
/// own conversion to `io::Error` flattens it into a message.
fn glommio_error(
    op: &'static str,
    path: &Path,
    position: Option<u64>,
    error: GlommioError<()>,
) -> io::Error {
    let source = match error {
        GlommioError::IoError(source) => source,
        GlommioError::EnhancedIoError { source, .. } => source,
        other => io::Error::from(other),
    };
    context_error(op, path, position, source)
}

/// The raw OS error of an error made by [`context_error`] (or of a plain OS error).
fn source_os_error(error: &io::Error) -> Option<i32> {
    error.raw_os_error().or_else(|| {
        error
            .get_ref()?
            .downcast_ref::<OperationError>()?
            .source
            .raw_os_error()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_error_keeps_kind_os_error_and_names_the_operation() {
        let error = context_error(
            "write",
            Path::new("/data/p0/00000000.log"),
            Some(8192),
            io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        assert_eq!(source_os_error(&error), Some(libc::ENOSPC));
        let message = error.to_string();
        assert!(
            message.starts_with("write /data/p0/00000000.log at 8192: "),
            "{message}"
        );
        assert!(message.contains("os error 28"), "{message}");
        let source = error.get_ref().and_then(|inner| inner.source()).unwrap();
        let source = source.downcast_ref::<io::Error>().unwrap();
        assert_eq!(source.raw_os_error(), Some(libc::ENOSPC));
    }

    #[test]
    fn filesystem_type_of_root_is_known() {
        let device = device_of(Path::new("/")).unwrap();
        let filesystem = filesystem_type(device);
        assert!(
            filesystem.is_some(),
            "no mountinfo line for the root device"
        );
    }

    #[test]
    fn parent_dir_of_bare_name_is_current_dir() {
        assert_eq!(parent_dir(Path::new("segment")), Path::new("."));
        assert_eq!(parent_dir(Path::new("/a/b")), Path::new("/a"));
    }

    #[test]
    fn probe_content_is_one_block() {
        assert_eq!(probe_content().len() as u64, BLOCK_BYTES);
    }
}
