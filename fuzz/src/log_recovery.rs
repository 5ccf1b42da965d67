//! Target `log_recovery`: opening a partition log (`storage::Log::open`, the recovery of
//! docs/storage-format.md) over a directory of arbitrary files on the simulated disk.
//!
//! Input: a directory image, a sequence of files (see [`File`] and [`encode`]):
//!
//! ```text
//! tag u8 | base u64 LE | length u32 LE | contents (length bytes, or what is left)
//! tag bits 0-2: 0 `<base>.log`, 1 `<base>.index`, 2 `<base>.timeindex`, 3 `log.meta`,
//!               4 `clean.shutdown`, 5 `<base>.log.tmp` (a leftover), 6-7 `<base>.log`
//! tag bit 3:    wrap the contents in a valid metadata frame (magic, version, kind, length,
//!               CRC-32C) of the kind the name calls for, so that the decoders behind the CRC
//!               (index, log.meta, marker) see fuzzed payloads; without it the bytes are the
//!               file as is
//! ```
//!
//! The files are written durably, then the log is opened with a small fixed config
//! ([`config`]).
//!
//! Properties:
//! - opening never panics: damage is an `OpenError`;
//! - an opened log serves, from its start to its written end, only batches that pass
//!   `schema::batch::verify` (CRC included), whose base offsets run on from one batch to the
//!   next without a gap; a read may fail with a typed error (an index trusted on a clean
//!   shutdown is checked only when read), never with a panic;
//! - an opened log takes an append at its end, durably, and after a clean close reopens with
//!   the same start and end and serves the same batches, the new one included.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use schema::batch::{BatchBuilder, verify};
use storage::disk::sim::{SimDisk, block_on};
use storage::disk::{Disk, File as _, OpenMode, align_up};
use storage::format::{MetaKind, encode_meta};
use storage::{FlushPolicy, Log, LogConfig, Offset};

/// The partition directory on the simulated disk.
pub const DIR: &str = "/data/t-0";
/// Bytes of a file's tag, base and length.
const FILE_HEAD_BYTES: usize = 13;
/// Tag bit 3: frame the contents as a metadata file.
pub const TAG_FRAME: u8 = 0x08;
/// The wall clock the target runs at (ms).
const NOW_MS: i64 = 1_700_000_000_000;
/// Bytes read per `Log::read` while checking.
const READ_BYTES_MAX: usize = 16 << 10;

/// One file of a directory image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Which file (bits 0-2) and whether to frame it (bit 3); see the module doc.
    pub tag: u8,
    /// The base offset in the names of segment, index and temporary files.
    pub base: u64,
    /// The contents (or the frame's payload).
    pub contents: Vec<u8>,
}

impl File {
    /// The file's name and, when its contents are to be framed, the frame's kind.
    fn name(&self) -> (String, Option<MetaKind>) {
        let base = self.base;
        let (name, kind) = match self.tag & 0x07 {
            1 => (format!("{base:020}.index"), MetaKind::OffsetIndex),
            2 => (format!("{base:020}.timeindex"), MetaKind::TimeIndex),
            3 => ("log.meta".to_string(), MetaKind::LogMeta),
            4 => ("clean.shutdown".to_string(), MetaKind::CleanShutdown),
            5 => (format!("{base:020}.log.tmp"), MetaKind::Blob),
            _ => (format!("{base:020}.log"), MetaKind::Blob),
        };
        (name, (self.tag & TAG_FRAME != 0).then_some(kind))
    }
}

/// Reads a directory image (see the module doc). Never fails: a short tail is a short file.
pub fn parse(mut data: &[u8]) -> Vec<File> {
    let mut files = Vec::new();
    while data.len() >= FILE_HEAD_BYTES {
        let (head, rest) = data.split_at(FILE_HEAD_BYTES);
        let tag = head[0];
        let base = u64::from_le_bytes(head[1..9].try_into().expect("8 bytes"));
        let length = u32::from_le_bytes(head[9..13].try_into().expect("4 bytes"));
        let length = usize::try_from(length)
            .unwrap_or(usize::MAX)
            .min(rest.len());
        let (contents, rest) = rest.split_at(length);
        files.push(File {
            tag,
            base,
            contents: contents.to_vec(),
        });
        data = rest;
    }
    files
}

/// Writes a directory image (the inverse of [`parse`]), for seeds.
pub fn encode(files: &[File]) -> Vec<u8> {
    let mut out = Vec::new();
    for file in files {
        out.push(file.tag);
        out.extend_from_slice(&file.base.to_le_bytes());
        let length = u32::try_from(file.contents.len()).expect("a seed file under 4 GiB");
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(&file.contents);
    }
    out
}

/// The log config of the target: small segments, indexes and chunks, so that small inputs
/// hold several segments and index entries.
pub fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 16 << 10,
        segment_age_ms_max: None,
        retention_ms: None,
        retention_bytes: None,
        index_interval_bytes: 1024,
        write_chunk_bytes: 8192,
        write_ahead_chunks: 2,
        preallocate_bytes: 8 << 10,
        cache_bytes_max: 0,
        batch_bytes_max: 8 << 10,
        flush_policy: FlushPolicy::EveryBatch,
    }
}

/// Writes `files` durably into [`DIR`] on a fresh simulated disk. Later files of the same
/// name replace earlier ones.
pub fn write_image(files: &[File]) -> SimDisk {
    let disk = SimDisk::new(0);
    let dir = Path::new(DIR);
    block_on(disk.create_dir_all(dir)).expect("create the directory");
    for file in files {
        let (name, frame) = file.name();
        let contents = match frame {
            Some(kind) => encode_meta(kind, &file.contents),
            None => file.contents.clone(),
        };
        let path = dir.join(name);
        let _ = block_on(disk.remove(&path));
        let handle = block_on(disk.open(&path, OpenMode::CreateNew)).expect("create a file");
        if !contents.is_empty() {
            // Whole blocks, then cut to the exact size: O_DIRECT's rule, kept by the sim.
            let bytes = usize::try_from(align_up(contents.len() as u64)).expect("small");
            let mut buffer = handle.alloc_buffer(bytes);
            buffer.as_mut()[..contents.len()].copy_from_slice(&contents);
            block_on(handle.write_at(buffer, 0)).expect("write a file");
            block_on(handle.truncate(contents.len() as u64)).expect("size a file");
        }
        block_on(handle.sync()).expect("sync a file");
        block_on(handle.close()).expect("close a file");
    }
    block_on(disk.sync_dir(dir)).expect("sync the directory");
    disk
}

/// The target: see the module doc.
pub fn check(data: &[u8]) {
    let files = parse(data);
    let disk = write_image(&files);
    let dir = PathBuf::from(DIR);
    let Ok((mut log, _report)) = block_on(Log::open(disk.clone(), &dir, config(), NOW_MS)) else {
        return;
    };
    let start = log.log_start();
    let end = log.written_end();
    assert!(start <= end, "log start {start} past its end {end}");
    let Some(batches) = read_all(&log) else {
        // A read refused damage that recovery trusted (an index of a clean shutdown): a
        // typed error, which is all that can be asked; nothing more to compare.
        return;
    };

    // One new batch at the end, durable, then a clean close and a reopen.
    if end.0 >= 1 << 62 {
        // Offsets are i64 in the batch format; an end this high leaves no room to append.
        return;
    }
    let mut builder = BatchBuilder::new(NOW_MS);
    builder.push(Some(b"k"), Some(b"fuzz"), NOW_MS, &[]);
    let appended = match block_on(log.append(BytesMut::from(&builder.finish()[..]), NOW_MS)) {
        Ok(appended) => appended,
        Err(error) => panic!("a recovered log refuses an append at {end}: {error}"),
    };
    assert_eq!(
        appended.base_offset, end,
        "the append goes at the recovered end"
    );
    block_on(log.sync(NOW_MS)).expect("sync the append");
    block_on(log.close(NOW_MS)).expect("close cleanly");

    let (reopened, report) = block_on(Log::open(disk, &dir, config(), NOW_MS))
        .unwrap_or_else(|e| panic!("a cleanly closed log does not reopen: {e}"));
    assert!(report.clean, "a clean close is recognised: {report:?}");
    assert_eq!(reopened.log_start(), start);
    assert_eq!(reopened.written_end(), end.plus(1));
    let again = read_all(&reopened).expect("a reopened log reads what it read before");
    assert_eq!(again.len(), batches.len() + 1);
    assert_eq!(
        &again[..batches.len()],
        &batches[..],
        "stored batches changed"
    );
    assert_eq!(again[batches.len()].0, end.0);
}

/// Every batch from the log start to its written end, with its base offset, checking the
/// properties of the module doc; None if a read fails (with a typed error).
fn read_all<D: Disk>(log: &Log<D>) -> Option<Vec<(u64, Bytes)>> {
    let mut out = Vec::new();
    let mut next = log.log_start();
    while next < log.written_end() {
        let read = block_on(log.read(next, READ_BYTES_MAX)).ok()?;
        assert!(
            !read.batches.is_empty(),
            "a read at {next} below the end {} returned nothing",
            log.written_end()
        );
        for bytes in read.batches {
            let header = verify(&bytes)
                .unwrap_or_else(|e| panic!("the log served an invalid batch at {next}: {e}"));
            // The first batch may start before `next` (reads return whole batches).
            if out.is_empty() {
                assert!(header.base_offset as u64 <= next.0);
            } else {
                assert_eq!(header.base_offset as u64, next.0, "a gap or overlap");
            }
            // Wrapping: a batch ending at the top of the offset range must show up as a
            // next_offset mismatch below, not as an overflow in this check.
            next = Offset((header.last_offset() as u64).wrapping_add(1));
            out.push((header.base_offset as u64, bytes));
        }
        assert_eq!(
            read.next_offset, next,
            "next_offset disagrees with the batches"
        );
    }
    Some(out)
}
