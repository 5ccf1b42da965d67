//! Goal: a frame's bytes pin only that frame's allocation, and a large frame grows to its
//! own size. The broker's cache keeps slices of the frames produce requests arrive in, and
//! counts only the slices' bytes: if a small frame landed in the allocation of a large one
//! read before it (a buffer reused, or grown with spare room), a kept 100-byte batch would
//! hold megabytes no one counts.
//!
//! Method: a counting global allocator (this test binary only) tracks live heap bytes. The
//! reader reads rounds of a 4 MiB frame, dropped once read, and a 100-byte frame, kept; the
//! heap that stays live must be about the kept frames' size, not the large frames'. The
//! in-memory stream (`FrameReader::from_stream`) shares the buffer logic with the socket's
//! path. An earlier version of the reader failed this: 800 bytes kept held 32 MiB. A 12 MiB
//! frame must end in a buffer of about 12 MiB (the earlier version doubled past it).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::Pieces;
use futures_lite::future::block_on;
use net::{FrameReader, Limits};
use schema::wire::frame_prefix;

/// Counts the bytes of live allocations; the system allocator does the work.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds exactly as it does for `System`; the counter only observes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::SeqCst);
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Ordering::SeqCst);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: the caller's contract for `realloc`, passed on.
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The count is process-wide: each test holds this for its whole run, so the harness's
/// parallel threads cannot allocate inside another test's measurement.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn frame(message_bytes: usize, payload_bytes: usize) -> Vec<u8> {
    let mut bytes = frame_prefix(message_bytes, payload_bytes, u32::MAX - 4)
        .expect("prefix")
        .to_vec();
    bytes.resize(bytes.len() + message_bytes + payload_bytes, 7);
    bytes
}

#[test]
fn a_kept_small_frame_pins_only_its_own_bytes() {
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    const ROUNDS: usize = 8;
    const LARGE_BYTES: usize = 4 << 20;
    const SMALL_BYTES: usize = 100;
    let mut stream = Vec::new();
    for _ in 0..ROUNDS {
        stream.extend(frame(16, LARGE_BYTES));
        stream.extend(frame(16, SMALL_BYTES));
    }
    let peer: SocketAddr = "127.0.0.1:9".parse().expect("address");
    let limits = Limits {
        frame_bytes_max: 64 << 20,
        idle_timeout: None,
    };
    // Whole frames per read (the reader's buffer logic, not the stream's, is under test).
    let source = Pieces {
        bytes: stream,
        position: 0,
        piece: 1 << 30,
    };
    let mut reader = FrameReader::from_stream(source, peer, limits);
    let mut kept = Vec::new();
    let before = LIVE_BYTES.load(Ordering::SeqCst);
    for round in 0..ROUNDS {
        let large = block_on(reader.read_frame())
            .expect("read")
            .expect("a frame");
        assert_eq!(large.payload.len(), LARGE_BYTES, "round {round}");
        drop(large);
        let small = block_on(reader.read_frame())
            .expect("read")
            .expect("a frame");
        assert_eq!(small.payload.len(), SMALL_BYTES, "round {round}");
        kept.push(small);
    }
    let grown = LIVE_BYTES.load(Ordering::SeqCst).saturating_sub(before);
    // Each kept frame: its buffer (prefix, message, payload and lookahead), the Vec of kept
    // frames, and the reader's scratch for waits (4 KiB). 64 KiB is generous; one large
    // frame's allocation pinned is 4 MiB.
    let bound = 64 << 10;
    assert!(
        grown <= bound,
        "{} small frames kept hold {grown} bytes of heap (bound {bound})",
        kept.len()
    );
}

/// A frame larger than the reader reserves at once (8 MiB) grows to its own size, not to a
/// doubling beyond it: 12 MiB of payload takes about 12 MiB of address space, not 16 or 32.
#[test]
fn a_large_frame_grows_to_its_size() {
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    const PAYLOAD_BYTES: usize = 12 << 20;
    let peer: SocketAddr = "127.0.0.1:9".parse().expect("address");
    let limits = Limits {
        frame_bytes_max: 64 << 20,
        idle_timeout: None,
    };
    for piece in [4096, 1 << 30] {
        let source = Pieces {
            bytes: frame(16, PAYLOAD_BYTES),
            position: 0,
            piece,
        };
        let mut reader = FrameReader::from_stream(source, peer, limits);
        let frame = block_on(reader.read_frame())
            .expect("read")
            .expect("a frame");
        assert_eq!(frame.payload.len(), PAYLOAD_BYTES);
        assert!(
            frame.payload[..].iter().all(|byte| *byte == 7),
            "bytes intact"
        );
        // The payload's view runs to the end of the frame's allocation: the frame and the
        // lookahead of the next frame's prefix, nothing doubled.
        assert!(
            frame.payload.capacity() <= PAYLOAD_BYTES + (64 << 10),
            "a {PAYLOAD_BYTES}-byte payload in a buffer of {} bytes (pieces of {piece})",
            frame.payload.capacity()
        );
    }
}
