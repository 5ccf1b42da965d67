//! ringbus networking: TCP listeners shared across shards, and connections that carry
//! length-prefixed frames (schema::wire's layout). The only crate that touches sockets; it
//! knows frames, never what is inside them.
//!
//! Every shard binds its own listening socket on the same address with SO_REUSEPORT, so the
//! kernel spreads connections across shards and no accept path is shared. A connection lives
//! on the shard that accepted it; its state is `!Send`. Limits: a frame larger than
//! `frame_bytes_max` is refused before its body is read (the peer cannot make us allocate it),
//! and a connection whose peer sends or takes nothing for the idle timeout is closed.
//!
//! Two framings: ringbus's own (schema::wire's prefix, [`Connection::split`]) and the size
//! prefix of Kafka's protocol (a big-endian i32 byte count, then the body;
//! [`Connection::split_sized`]). Both readers share the same body reading and limits.
//!
//! [`http`] is a minimal HTTP/1.1 responder for scrape endpoints (one GET path, bounded).

pub mod http;
pub mod stop;

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, RawFd};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use glommio::net::{TcpListener, TcpStream};
use schema::wire::{FRAME_PREFIX_BYTES, FrameError, FrameHeader};

/// Pending connections the kernel queues per listening socket.
pub const LISTEN_BACKLOG_MAX: i32 = 1024;

/// Parts one vectored send carries at most (Linux's IOV_MAX is 1024).
const IOV_PARTS_MAX: usize = 1024;

/// The flags of direct sends and receives (from Linux's socket.h).
mod socket_flags {
    /// Fail with EAGAIN instead of blocking: the socket is glommio's, non-blocking use only.
    pub const MSG_DONTWAIT: i32 = 0x40;
    /// A vanished peer is an EPIPE error, never a SIGPIPE.
    pub const MSG_NOSIGNAL: i32 = 0x4000;
}

/// A frame's buffer is reserved up to this size at once (address space, not memory: pages
/// are touched only by the bytes that arrive); larger frames double each time the buffer is
/// full. Above the consumer's 4 MiB fetch: a response of 4 MiB of batches plus its message was
/// grown from 4 to 8 MiB once per fetch (a 4 MiB copy into fresh pages, ~8% of the load
/// generator's CPU in the profile).
const RESERVE_BYTES_MAX: usize = 8 << 20;

/// A socket-level failure, with what we were doing and to whom.
#[derive(Debug, thiserror::Error)]
#[error("{operation} {address}: {source}")]
pub struct NetError {
    /// What failed ("bind", "accept", "connect", "read", "write", ...).
    pub operation: &'static str,
    /// The local or peer address involved.
    pub address: String,
    /// The operating system's error.
    #[source]
    pub source: io::Error,
}

impl NetError {
    fn new(operation: &'static str, address: impl ToString, source: io::Error) -> NetError {
        NetError {
            operation,
            address: address.to_string(),
            source,
        }
    }
}

/// Why a frame could not be read. Every variant but `Io` is the peer's fault: the connection
/// is closed with the reason logged, and nothing else is affected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The frame prefix is invalid (too large, inconsistent lengths).
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed mid-frame after {received_bytes} of {expected_bytes} bytes")]
    Truncated {
        /// Bytes of the frame received.
        received_bytes: usize,
        /// Bytes the frame said it had.
        expected_bytes: usize,
    },
    /// A size-prefixed frame announced a negative size or one over the limit.
    #[error("frame size {size_bytes} is outside 0 to {max_bytes} bytes")]
    SizeOutOfRange {
        /// The size the prefix announced.
        size_bytes: i32,
        /// The limit (`frame_bytes_max`).
        max_bytes: u32,
    },
    /// No frame arrived within the idle timeout.
    #[error("idle for more than {0:?}")]
    IdleTimeout(Duration),
    /// A socket error.
    #[error(transparent)]
    Io(#[from] NetError),
}

/// One frame as received: the flatbuffer message and the raw payload after it. Both are
/// slices of one receive buffer; the payload is mutable so a produce batch can have its
/// baseOffset rewritten in place.
#[derive(Debug)]
pub struct Frame {
    /// The flatbuffer message (Request or Response), still unverified.
    pub message: Bytes,
    /// Raw bytes after the message (record batches).
    pub payload: BytesMut,
}

/// Binds a listening socket with SO_REUSEPORT on `address`. Call once per shard (with the
/// port the first bind chose, if `address` had port 0), then hand each to [`Listener`] on its
/// shard. Returns a std listener so it can be moved to the shard's thread.
pub fn bind_reuseport(address: SocketAddr) -> Result<std::net::TcpListener, NetError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if address.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let error = |operation, e| NetError::new(operation, address, e);
    let socket =
        Socket::new(domain, Type::STREAM, Some(Protocol::TCP)).map_err(|e| error("socket", e))?;
    socket
        .set_reuse_port(true)
        .map_err(|e| error("set SO_REUSEPORT", e))?;
    socket
        .set_reuse_address(true)
        .map_err(|e| error("set SO_REUSEADDR", e))?;
    socket
        .set_tcp_nodelay(true)
        .map_err(|e| error("set TCP_NODELAY", e))?;
    socket.bind(&address.into()).map_err(|e| error("bind", e))?;
    socket
        .listen(LISTEN_BACKLOG_MAX)
        .map_err(|e| error("listen", e))?;
    Ok(socket.into())
}

/// A listening socket owned by one shard.
pub struct Listener {
    inner: TcpListener,
    address: SocketAddr,
}

impl Listener {
    /// Adopts a socket from [`bind_reuseport`] on the current shard's executor.
    pub fn from_std(listener: std::net::TcpListener) -> Result<Listener, NetError> {
        let address = listener
            .local_addr()
            .map_err(|e| NetError::new("local address", "listener", e))?;
        // SAFETY: `into_raw_fd` transfers ownership of a valid, open listening socket fd; no
        // other owner remains, so glommio's listener becomes its only owner and closes it.
        let inner = unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) };
        Ok(Listener { inner, address })
    }

    /// The address it listens on (with the real port if bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Waits for the next connection.
    pub async fn accept(&self, limits: Limits) -> Result<Connection, NetError> {
        let stream = self
            .inner
            .accept()
            .await
            .map_err(|e| NetError::new("accept", self.address, e.into()))?;
        Connection::new(stream, limits)
    }
}

/// Per-connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest frame accepted (schema::wire's prefix counts from after frame_bytes).
    pub frame_bytes_max: u32,
    /// A connection with no complete frame for this long, or whose peer takes no bytes for
    /// this long, is closed (None: never).
    pub idle_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            frame_bytes_max: schema::wire::FRAME_BYTES_MAX_DEFAULT,
            idle_timeout: Some(Duration::from_secs(600)),
        }
    }
}

/// A TCP connection carrying frames. Split it to read and write from different tasks
/// (pipelining: one task reads requests while another writes responses).
pub struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    limits: Limits,
}

impl Connection {
    fn new(stream: TcpStream, limits: Limits) -> Result<Connection, NetError> {
        let peer = stream
            .peer_addr()
            .map_err(|e| NetError::new("peer address", "connection", e.into()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| NetError::new("set TCP_NODELAY", peer, e.into()))?;
        stream
            .set_read_timeout(limits.idle_timeout)
            .map_err(|e| NetError::new("set read timeout", peer, e.into()))?;
        // A peer that takes nothing for as long is gone too: without this, a client that stops
        // reading would hold its connection, and the responses queued for it, for ever.
        stream
            .set_write_timeout(limits.idle_timeout)
            .map_err(|e| NetError::new("set write timeout", peer, e.into()))?;
        Ok(Connection {
            stream,
            peer,
            limits,
        })
    }

    /// Connects to `address` within `timeout`.
    pub async fn connect(
        address: SocketAddr,
        timeout: Duration,
        limits: Limits,
    ) -> Result<Connection, NetError> {
        let stream = TcpStream::connect_timeout(address, timeout)
            .await
            .map_err(|e| NetError::new("connect", address, e.into()))?;
        Connection::new(stream, limits)
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Splits into a reader and a writer of size-prefixed frames (Kafka's framing).
    pub fn split_sized(self) -> (SizedReader, SizedWriter) {
        let (reader, writer) = self.split();
        (SizedReader { inner: reader }, SizedWriter { inner: writer })
    }

    /// Splits into a frame reader and a frame writer.
    pub fn split(self) -> (FrameReader, FrameWriter) {
        let fd = self.stream.as_raw_fd();
        let (reader, writer) = futures_lite::io::split(self.stream);
        (
            FrameReader::new(reader, Some(fd), self.peer, self.limits),
            FrameWriter {
                writer,
                fd,
                peer: self.peer,
                frame_bytes_max: self.limits.frame_bytes_max,
            },
        )
    }
}

/// The reading half of a connection.
///
/// Generic over the byte stream only so that the framing rules (the prefix check, the buffer
/// that grows with what arrives, truncation) can be driven without a socket: the default, and
/// the only stream production uses, is the socket's read half ([`Connection::split`]); tests
/// and the fuzz targets (fuzz/, `frames`) read from an in-memory stream through
/// [`FrameReader::from_stream`].
///
/// A socket is read into the unfilled capacity of `buffer` directly (a non-blocking `recv`),
/// so no byte of a frame is zeroed before it is received (issue #11: zeroing each body before
/// reading into it was 11% of the broker's CPU on produce, 5% of the load generator's); only
/// when the socket had nothing more to give does a read go through the stream, which waits.
pub struct FrameReader<R = ReadHalf<TcpStream>> {
    reader: R,
    /// The socket `reader` reads, for direct receives; `None` for other streams. `reader`
    /// keeps it open.
    fd: Option<RawFd>,
    peer: SocketAddr,
    limits: Limits,
    /// Bytes received and not yet returned: the start of the next frame. A receive asks for
    /// no more than the rest of the frame and the next frame's prefix, so between frames this
    /// holds at most one prefix. A frame is handed out as this whole buffer, and the prefix
    /// moves to a new one: a frame shares its allocation with no other frame, so a batch kept
    /// from it (the broker's cache keeps slices of the frames produce requests came in) pins
    /// that frame's allocation only.
    buffer: BytesMut,
    /// Whether the socket held fewer bytes than the last receive asked for, or a wait
    /// through the stream has not returned bytes yet: the next receive goes through the
    /// stream at once, whose own first step is usually a non-blocking `recv` too (trying one
    /// here first made two calls that find nothing per wait: +33% receive calls at
    /// omb-100p's rate). Going through the stream after a wait that was given up (its future
    /// dropped) also lets glommio cancel that wait's read timer, which a direct receive would
    /// leave armed, to fire later as a false idle timeout.
    drained: bool,
    /// Where a read through the stream lands before it is copied to `buffer` (safe reads
    /// need initialised bytes; zeroed once, on first use). Allocated only when needed.
    scratch: Vec<u8>,
}

/// A read that waits (through the stream, when the socket had nothing) reads at most this
/// much; the rest of the frame is then received directly.
const WAIT_READ_BYTES: usize = 4 << 10;

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A frame reader over any byte stream, under `limits` (the idle timeout applies only
    /// where the stream reports `TimedOut`, as a socket with a read timeout does). `peer`
    /// names the stream in errors.
    pub fn from_stream(reader: R, peer: SocketAddr, limits: Limits) -> FrameReader<R> {
        FrameReader::new(reader, None, peer, limits)
    }

    fn new(reader: R, fd: Option<RawFd>, peer: SocketAddr, limits: Limits) -> FrameReader<R> {
        FrameReader {
            reader,
            fd,
            peer,
            limits,
            buffer: BytesMut::new(),
            drained: false,
            scratch: Vec::new(),
        }
    }

    /// Reads the next frame; `Ok(None)` when the peer closed the connection between frames.
    /// After an error the stream is out of step: reading again returns the same error (the
    /// bytes that caused it stay buffered), so the caller closes the connection.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        let Some(prefix) = self.read_prefix::<FRAME_PREFIX_BYTES>().await? else {
            return Ok(None);
        };
        let header = FrameHeader::parse(&prefix, self.limits.frame_bytes_max)?;
        let frame_bytes = header.frame_bytes as usize + 4;
        let mut body = self.read_body(frame_bytes, FRAME_PREFIX_BYTES).await?;
        let message = body.split_to(header.message_bytes as usize).freeze();
        Ok(Some(Frame {
            message,
            payload: body,
        }))
    }

    /// Receives the next frame's `PREFIX` bytes (and what else the socket has of the frame, up
    /// to `PREFIX` more) and returns a copy of them, left in the buffer; `Ok(None)` when the
    /// peer closed the connection between frames, `Truncated` when it closed inside them.
    async fn read_prefix<const PREFIX: usize>(
        &mut self,
    ) -> Result<Option<[u8; PREFIX]>, ReadError> {
        let received = self.fill(PREFIX, PREFIX).await?;
        if received == 0 {
            return Ok(None);
        }
        if received < PREFIX {
            return Err(ReadError::Truncated {
                received_bytes: received,
                expected_bytes: PREFIX,
            });
        }
        let prefix = self.buffer[..PREFIX].try_into().expect("filled above");
        Ok(Some(prefix))
    }

    /// Reads the rest of a frame of `frame_bytes` (checked against `frame_bytes_max`
    /// already) whose `prefix_bytes` of prefix are buffered, and returns its body (the bytes
    /// after the prefix).
    async fn read_body(
        &mut self,
        frame_bytes: usize,
        prefix_bytes: usize,
    ) -> Result<BytesMut, ReadError> {
        debug_assert!(self.buffer.len() >= prefix_bytes);
        // Ask for the next frame's prefix too: under load it is there, and the next frame's
        // buffer is then sized without another receive.
        let received = self.fill(frame_bytes, prefix_bytes).await?;
        if received < frame_bytes {
            return Err(ReadError::Truncated {
                received_bytes: received,
                expected_bytes: frame_bytes,
            });
        }
        // The frame takes the whole buffer; the next frame's prefix, if it came, moves to a
        // new one (at most `prefix_bytes`: receives ask for no more).
        let next = BytesMut::from(&self.buffer[frame_bytes..]);
        debug_assert!(next.len() <= prefix_bytes);
        self.buffer.truncate(frame_bytes);
        let mut body = std::mem::replace(&mut self.buffer, next);
        let _prefix = body.split_to(prefix_bytes);
        Ok(body)
    }

    /// Receives until `buffer` holds `needed` bytes or the peer closes; returns the bytes
    /// buffered. Receives ask for `lookahead` bytes beyond `needed` (the next frame's prefix).
    ///
    /// The buffer is reserved for the whole frame (and the lookahead) at once up to
    /// [`RESERVE_BYTES_MAX`], so frames up to about that size are never moved; larger ones
    /// double each time the buffer is full. Reserved capacity is address space: pages are
    /// touched only by the bytes that arrive (the buffer is never an earlier frame's
    /// allocation, see `buffer`), so a peer that announces a large frame and trickles it holds
    /// only what it sent.
    async fn fill(&mut self, needed: usize, lookahead: usize) -> Result<usize, ReadError> {
        while self.buffer.len() < needed {
            let buffered = self.buffer.len();
            let capacity = self.buffer.capacity();
            let wanted = needed + lookahead;
            // Once per frame up to the cap; above it, only when full (growing earlier, for
            // every trickle of bytes, would double a buffer by copying it each time).
            let target = if capacity < wanted.min(RESERVE_BYTES_MAX) {
                wanted.min(RESERVE_BYTES_MAX)
            } else if capacity == buffered {
                wanted.min(2 * capacity)
            } else {
                capacity
            };
            if target > capacity {
                // Exactly `target` (`reserve` would round a growth up to twice the capacity).
                let mut grown = BytesMut::with_capacity(target);
                grown.extend_from_slice(&self.buffer);
                self.buffer = grown;
            }
            if self.receive(needed - buffered + lookahead).await? == 0 {
                break;
            }
        }
        Ok(self.buffer.len())
    }

    /// Receives at least one byte and at most `wanted` (and what `buffer` has room for) at
    /// the end of `buffer`; 0 when the peer closed.
    async fn receive(&mut self, wanted: usize) -> Result<usize, ReadError> {
        let buffered = self.buffer.len();
        let room = (self.buffer.capacity() - buffered).min(wanted);
        assert!(room > 0, "fill reserves room first");
        if let Some(fd) = self.fd.filter(|_| !self.drained) {
            loop {
                let unfilled = &mut self.buffer.spare_capacity_mut()[..room];
                match receive_now(fd, unfilled) {
                    Ok(received) => {
                        assert!(received <= room);
                        // SAFETY: `recv` initialised the first `received` bytes of the spare
                        // capacity, which follow the `buffered` initialised ones.
                        unsafe { self.buffer.set_len(buffered + received) };
                        self.drained = received < room;
                        return Ok(received);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.drained = true;
                        break;
                    }
                    Err(e) => return Err(ReadError::Io(NetError::new("read", self.peer, e))),
                }
            }
        }
        // Nothing to read now (or not a socket): wait through the stream, which honours the
        // idle timeout. Into `scratch` then `buffer`, so a read cancelled at the await leaves
        // `buffer` as it was.
        if self.scratch.is_empty() {
            self.scratch = vec![0; WAIT_READ_BYTES];
        }
        let step = room.min(WAIT_READ_BYTES);
        // Stays set if this wait is given up (see `drained`).
        self.drained = true;
        loop {
            match self.reader.read(&mut self.scratch[..step]).await {
                Ok(received) => {
                    self.buffer.extend_from_slice(&self.scratch[..received]);
                    // Bytes came: there may be more (a frame larger than the step).
                    self.drained = false;
                    return Ok(received);
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    let timeout = self.limits.idle_timeout.unwrap_or_default();
                    return Err(ReadError::IdleTimeout(timeout));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ReadError::Io(NetError::new("read", self.peer, e))),
            }
        }
    }
}

/// One non-blocking `recv` on `fd` into `unfilled`; `WouldBlock` when nothing is there.
///
/// Sound next to glommio's own reads of the socket: its read path is a non-blocking `recv`
/// first and otherwise a readiness poll (nothing that consumes bytes is queued in io_uring),
/// so bytes are never taken out of order.
fn receive_now(fd: RawFd, unfilled: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: `fd` is the socket of the reader's stream, which keeps it open while the
    // reader lives (the writer's close only shuts down the sending side); the borrow lives for
    // this call only, which does not yield, and the shard is one thread.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    socket2::SockRef::from(&fd).recv_with_flags(unfilled, socket_flags::MSG_DONTWAIT)
}

/// Bytes of the size prefix of Kafka's framing: a big-endian i32 that counts the bytes after it.
pub const SIZE_PREFIX_BYTES: usize = 4;

/// The reading half of a connection that carries size-prefixed frames (Kafka's framing).
pub struct SizedReader {
    inner: FrameReader,
}

impl SizedReader {
    /// Reads the next frame body (the bytes after the size prefix); `Ok(None)` when the peer
    /// closed the connection between frames. A size below 0 or above `frame_bytes_max` is
    /// refused before any of the body is read; the body's buffer grows with the bytes that
    /// arrive, as for ringbus's frames, so a peer that lies about the size holds only what it
    /// sent.
    pub async fn read_frame(&mut self) -> Result<Option<BytesMut>, ReadError> {
        let Some(prefix) = self.inner.read_prefix::<SIZE_PREFIX_BYTES>().await? else {
            return Ok(None);
        };
        let size_bytes = i32::from_be_bytes(prefix);
        let max_bytes = self.inner.limits.frame_bytes_max;
        let Some(body_bytes) = u32::try_from(size_bytes)
            .ok()
            .filter(|size| *size <= max_bytes)
        else {
            return Err(ReadError::SizeOutOfRange {
                size_bytes,
                max_bytes,
            });
        };
        let body = self
            .inner
            .read_body(SIZE_PREFIX_BYTES + body_bytes as usize, SIZE_PREFIX_BYTES)
            .await?;
        Ok(Some(body))
    }
}

/// The writing half of a connection that carries size-prefixed frames (Kafka's framing).
pub struct SizedWriter {
    inner: FrameWriter,
}

impl SizedWriter {
    /// Writes one frame: the size prefix, then `parts` in order, each from its own buffer
    /// (stored batch bytes go out as they are), with as few send calls as the socket allows.
    pub async fn write_frame(&mut self, parts: &[Bytes]) -> Result<(), WriteError> {
        let body_bytes: usize = parts.iter().map(Bytes::len).sum();
        let Ok(size) = i32::try_from(body_bytes) else {
            return Err(WriteError::Oversized { body_bytes });
        };
        let prefix = size.to_be_bytes();
        let mut slices: Vec<&[u8]> = Vec::with_capacity(1 + parts.len());
        slices.push(&prefix);
        slices.extend(parts.iter().map(|part| &part[..]));
        self.inner.write_parts(&slices).await
    }

    /// Closes the writing side (the peer reads end of stream).
    pub async fn close(self) -> Result<(), NetError> {
        self.inner.close().await
    }
}

/// The writing half of a connection.
pub struct FrameWriter {
    writer: WriteHalf<TcpStream>,
    /// The socket `writer` writes to, for vectored sends; `writer` keeps it open.
    fd: RawFd,
    peer: SocketAddr,
    frame_bytes_max: u32,
}

/// One frame to write: the flatbuffer message and the payload parts after it.
#[derive(Debug, Clone, Copy)]
pub struct OutFrame<'a> {
    /// The flatbuffer message.
    pub message: &'a [u8],
    /// Raw bytes after the message, in order (record batches, sent from their own buffers).
    pub payload: &'a [Bytes],
}

impl FrameWriter {
    /// Writes one frame: the message, then the payload parts in order. Payload parts are
    /// sent from their own buffers (stored batch bytes go out as they are).
    pub async fn write_frame(
        &mut self,
        message: &[u8],
        payload: &[Bytes],
    ) -> Result<(), WriteError> {
        self.write_frames(&[OutFrame { message, payload }]).await
    }

    /// Writes `frames` in order, every part from its own buffer, with as few send calls as
    /// the socket allows: a client's queued requests of many batches each go out in one
    /// `sendmsg` (issue #11: the load generator made one `sendto` per 16 KiB batch). Every
    /// frame is checked against the frame limit before any is written, so an oversized frame
    /// writes nothing.
    pub async fn write_frames(&mut self, frames: &[OutFrame<'_>]) -> Result<(), WriteError> {
        let mut prefixes = Vec::with_capacity(frames.len());
        let mut part_count = 0;
        for frame in frames {
            let payload_bytes: usize = frame.payload.iter().map(Bytes::len).sum();
            prefixes.push(schema::wire::frame_prefix(
                frame.message.len(),
                payload_bytes,
                self.frame_bytes_max,
            )?);
            part_count += 2 + frame.payload.len();
        }
        let mut parts: Vec<&[u8]> = Vec::with_capacity(part_count);
        for (frame, prefix) in frames.iter().zip(&prefixes) {
            parts.push(prefix);
            parts.push(frame.message);
            parts.extend(frame.payload.iter().map(|part| &part[..]));
        }
        self.write_parts(&parts).await
    }

    /// Writes `parts` in order and flushes, mapping failures to [`WriteError`].
    async fn write_parts(&mut self, parts: &[&[u8]]) -> Result<(), WriteError> {
        self.write_vectored_all(parts)
            .await
            .map_err(|e| WriteError::Io(NetError::new("write", self.peer, e)))?;
        self.writer
            .flush()
            .await
            .map_err(|e| WriteError::Io(NetError::new("flush", self.peer, e)))
    }

    /// Writes every part, in order, with as few send calls as the socket allows: one
    /// `sendmsg` carries up to [`IOV_PARTS_MAX`] parts. When the socket buffer is full, waits
    /// for room through glommio's write (which honours the write timeout).
    ///
    /// glommio has no vectored write; sending on its socket directly is sound because its
    /// write path is itself a non-blocking `send` first, with nothing queued in io_uring
    /// between calls (it polls for writability only when a send would block, and we go
    /// through it then), so bytes cannot be reordered.
    async fn write_vectored_all(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let mut cursor = PartsCursor::new(parts);
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len().min(IOV_PARTS_MAX));
        while !cursor.is_done() {
            cursor.fill(&mut slices);
            let sent = match self.send_vectored(&slices) {
                Ok(sent) => sent,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Full: glommio's write waits until the socket takes bytes again.
                    self.writer.write(cursor.current()).await?
                }
                Err(e) => return Err(e),
            };
            if sent == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            cursor.advance(sent);
        }
        Ok(())
    }

    /// One non-blocking `sendmsg` of `slices`.
    fn send_vectored(&self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        // SAFETY: `self.fd` is the socket of `self.writer`, which owns the stream (with the
        // reading half) and closes it only when both are dropped; the borrow lives for this
        // call only, while `&self` (and so the writer) is alive. Nothing else closes or reuses
        // the descriptor meanwhile: the shard is one thread and this call does not yield.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        socket2::SockRef::from(&fd).send_vectored_with_flags(
            slices,
            socket_flags::MSG_DONTWAIT | socket_flags::MSG_NOSIGNAL,
        )
    }

    /// Closes the writing side (the peer reads end of stream).
    pub async fn close(mut self) -> Result<(), NetError> {
        self.writer
            .close()
            .await
            .map_err(|e| NetError::new("close", self.peer, e))
    }
}

/// Where a vectored write stands in its parts: the first part not wholly sent and the bytes
/// of it already sent. Always at a byte still to send (empty parts are skipped), or done.
struct PartsCursor<'a> {
    parts: &'a [&'a [u8]],
    index: usize,
    offset: usize,
}

impl<'a> PartsCursor<'a> {
    fn new(parts: &'a [&'a [u8]]) -> PartsCursor<'a> {
        let mut cursor = PartsCursor {
            parts,
            index: 0,
            offset: 0,
        };
        cursor.skip_sent();
        cursor
    }

    fn is_done(&self) -> bool {
        self.index == self.parts.len()
    }

    /// The unsent rest of the current part (never empty unless done).
    fn current(&self) -> &'a [u8] {
        &self.parts[self.index][self.offset..]
    }

    /// Replaces `slices` with the unsent bytes, at most [`IOV_PARTS_MAX`] parts of them.
    fn fill(&self, slices: &mut Vec<IoSlice<'a>>) {
        assert!(!self.is_done());
        let end = self.parts.len().min(self.index + IOV_PARTS_MAX);
        slices.clear();
        slices.push(IoSlice::new(self.current()));
        slices.extend(
            self.parts[self.index + 1..end]
                .iter()
                .map(|part| IoSlice::new(part)),
        );
    }

    /// Moves past `sent` bytes, which the last [`PartsCursor::fill`]'s slices held.
    fn advance(&mut self, sent: usize) {
        let mut left = sent;
        while left > 0 {
            assert!(!self.is_done(), "sent more bytes than there were");
            let remaining = self.parts[self.index].len() - self.offset;
            if left >= remaining {
                left -= remaining;
                self.index += 1;
                self.offset = 0;
            } else {
                self.offset += left;
                left = 0;
            }
        }
        self.skip_sent();
    }

    fn skip_sent(&mut self) {
        while !self.is_done() && self.parts[self.index].len() == self.offset {
            self.index += 1;
            self.offset = 0;
        }
    }
}

/// Why a frame could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The frame would exceed the frame size limit: a programming or configuration error on
    /// the sender's side, reported instead of sending a frame the peer would refuse.
    #[error("frame too large: {0}")]
    Frame(#[from] FrameError),
    /// A size-prefixed frame's body would not fit its i32 size prefix.
    #[error("a frame of {body_bytes} bytes does not fit a size prefix")]
    Oversized {
        /// The body's size.
        body_bytes: usize,
    },
    /// A socket error.
    #[error(transparent)]
    Io(#[from] NetError),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: whatever each send takes (a few bytes, a part and a half, everything), the bytes
    /// sent are the parts' bytes in order, each once. Method: seeded random parts (empty ones
    /// included, more than one send carries) and random partial sends, the sent bytes
    /// gathered from the slices each round offered.
    #[test]
    fn partial_sends_resume_where_they_stopped() {
        for seed in 0..200 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let count = rng.usize(0..(if seed % 10 == 0 { 3_000 } else { 20 }));
            let parts: Vec<Vec<u8>> = (0..count)
                .map(|_| {
                    let longest = if rng.bool() { 3 } else { 300 };
                    let mut part = vec![0u8; rng.usize(0..longest)];
                    rng.fill(&mut part);
                    part
                })
                .collect();
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            let expected: Vec<u8> = parts.concat();
            let mut cursor = PartsCursor::new(&refs);
            let mut slices = Vec::new();
            let mut received = Vec::new();
            while !cursor.is_done() {
                cursor.fill(&mut slices);
                let offered: usize = slices.iter().map(|slice| slice.len()).sum();
                assert!(offered > 0, "seed {seed}: an empty send offered");
                let sent = rng.usize(1..=offered);
                let mut left = sent;
                for slice in &slices {
                    let take = left.min(slice.len());
                    received.extend_from_slice(&slice[..take]);
                    left -= take;
                }
                cursor.advance(sent);
            }
            assert!(received == expected, "seed {seed}: the bytes differ");
        }
    }
}
