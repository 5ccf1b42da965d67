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

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use glommio::net::{TcpListener, TcpStream};
use schema::wire::{FRAME_PREFIX_BYTES, FrameError, FrameHeader};

/// Pending connections the kernel queues per listening socket.
pub const LISTEN_BACKLOG_MAX: i32 = 1024;

/// Frames of at most this many bytes are written with one send: the prefix, message and
/// payload are copied into one buffer, saving syscalls for the small frames of the control
/// plane. Larger frames are sent part by part, without copying the payload.
const COALESCE_BYTES_MAX: usize = 64 << 10;

/// A frame body is read into its buffer this many bytes at a time at most.
const READ_STEP_BYTES: usize = 256 << 10;

/// The first step of a frame body: what a peer that announces a frame and sends nothing more
/// makes us touch.
const READ_STEP_MIN_BYTES: usize = 16 << 10;

/// A frame body's buffer is reserved up to this size at once (address space, not memory:
/// pages are touched only as the steps above fill them); larger bodies grow by doubling.
/// Above the consumer's 4 MiB fetch: a response of 4 MiB of batches plus its message was
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
        let (reader, writer) = futures_lite::io::split(self.stream);
        (
            FrameReader {
                reader,
                peer: self.peer,
                limits: self.limits,
            },
            FrameWriter {
                writer,
                peer: self.peer,
                frame_bytes_max: self.limits.frame_bytes_max,
            },
        )
    }
}

/// The reading half of a connection.
///
/// Generic over the byte stream only so that the framing rules (the prefix check, the body
/// that grows with what arrives, truncation) can be driven without a socket: the default, and
/// the only stream production uses, is the socket's read half ([`Connection::split`]); tests
/// and the fuzz targets (fuzz/, `frames`) read from an in-memory stream through
/// [`FrameReader::from_stream`].
pub struct FrameReader<R = ReadHalf<TcpStream>> {
    reader: R,
    peer: SocketAddr,
    limits: Limits,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A frame reader over any byte stream, under `limits` (the idle timeout applies only
    /// where the stream reports `TimedOut`, as a socket with a read timeout does). `peer`
    /// names the stream in errors.
    pub fn from_stream(reader: R, peer: SocketAddr, limits: Limits) -> FrameReader<R> {
        FrameReader {
            reader,
            peer,
            limits,
        }
    }

    /// Reads the next frame; `Ok(None)` when the peer closed the connection between frames.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        let mut prefix = [0u8; FRAME_PREFIX_BYTES];
        let received = self.read_up_to(&mut prefix).await?;
        if received == 0 {
            return Ok(None);
        }
        if received < FRAME_PREFIX_BYTES {
            return Err(ReadError::Truncated {
                received_bytes: received,
                expected_bytes: FRAME_PREFIX_BYTES,
            });
        }
        let header = FrameHeader::parse(&prefix, self.limits.frame_bytes_max)?;
        let body_bytes = header.frame_bytes as usize + 4 - FRAME_PREFIX_BYTES;
        let mut body = self.read_body(body_bytes, FRAME_PREFIX_BYTES).await?;
        let message = body.split_to(header.message_bytes as usize).freeze();
        Ok(Some(Frame {
            message,
            payload: body,
        }))
    }

    /// Reads a frame body of `body_bytes` (checked against `frame_bytes_max` already).
    ///
    /// The buffer grows with the bytes that arrive, in steps of at most what arrived so far
    /// (between [`READ_STEP_MIN_BYTES`] and [`READ_STEP_BYTES`]), never
    /// with the length the header claims: a peer that announces a large frame and trickles it
    /// holds only what it sent. It is reserved up to [`RESERVE_BYTES_MAX`] at once, so frames
    /// up to that size are never moved; larger ones double as they fill. Each step is zeroed
    /// just before it is read into (safe Rust reads only into initialised bytes): a `memset`
    /// of memory the allocator recycles, where `BytesMut::zeroed` was a `calloc` that jemalloc
    /// serves by `madvise(DONTNEED)` and fresh page faults (issue #11: ~20% of the broker's
    /// CPU at 400 MiB/s of produce).
    /// `prefix_bytes` (the framing's prefix, already read) only makes the counts of a
    /// truncation error whole-frame counts.
    async fn read_body(
        &mut self,
        body_bytes: usize,
        prefix_bytes: usize,
    ) -> Result<BytesMut, ReadError> {
        let mut body = BytesMut::with_capacity(body_bytes.min(RESERVE_BYTES_MAX));
        while body.len() < body_bytes {
            let start = body.len();
            // At most as much as arrived so far (so at most twice what arrived is touched), at
            // least a small first step, at most a step's cap.
            let step = start.clamp(READ_STEP_MIN_BYTES, READ_STEP_BYTES);
            let end = body_bytes.min(start + step);
            if end > body.capacity() {
                body.reserve(body.capacity().max(end - start));
            }
            body.resize(end, 0);
            let received = self.read_up_to(&mut body[start..end]).await?;
            if received < end - start {
                return Err(ReadError::Truncated {
                    received_bytes: prefix_bytes + start + received,
                    expected_bytes: prefix_bytes + body_bytes,
                });
            }
        }
        assert_eq!(body.len(), body_bytes, "the body is read whole");
        Ok(body)
    }

    /// Fills `buffer` unless the peer closes first; returns the bytes read.
    async fn read_up_to(&mut self, buffer: &mut [u8]) -> Result<usize, ReadError> {
        let mut filled = 0;
        while filled < buffer.len() {
            match self.reader.read(&mut buffer[filled..]).await {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    let timeout = self.limits.idle_timeout.unwrap_or_default();
                    return Err(ReadError::IdleTimeout(timeout));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ReadError::Io(NetError::new("read", self.peer, e))),
            }
        }
        Ok(filled)
    }
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
        let mut prefix = [0u8; SIZE_PREFIX_BYTES];
        let received = self.inner.read_up_to(&mut prefix).await?;
        if received == 0 {
            return Ok(None);
        }
        if received < SIZE_PREFIX_BYTES {
            return Err(ReadError::Truncated {
                received_bytes: received,
                expected_bytes: SIZE_PREFIX_BYTES,
            });
        }
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
            .read_body(body_bytes as usize, SIZE_PREFIX_BYTES)
            .await?;
        Ok(Some(body))
    }
}

/// The writing half of a connection that carries size-prefixed frames (Kafka's framing).
pub struct SizedWriter {
    inner: FrameWriter,
}

impl SizedWriter {
    /// Writes one frame: the size prefix, then `parts` in order. Small frames are copied into
    /// one buffer and sent with one write; larger ones are sent part by part from their own
    /// buffers (stored batch bytes go out as they are).
    pub async fn write_frame(&mut self, parts: &[Bytes]) -> Result<(), WriteError> {
        let body_bytes: usize = parts.iter().map(Bytes::len).sum();
        let Ok(size) = i32::try_from(body_bytes) else {
            return Err(WriteError::Oversized { body_bytes });
        };
        let prefix = size.to_be_bytes();
        let writer = &mut self.inner.writer;
        let result = if SIZE_PREFIX_BYTES + body_bytes <= COALESCE_BYTES_MAX {
            let mut frame = Vec::with_capacity(SIZE_PREFIX_BYTES + body_bytes);
            frame.extend_from_slice(&prefix);
            for part in parts {
                frame.extend_from_slice(part);
            }
            writer.write_all(&frame).await
        } else {
            let mut result = writer.write_all(&prefix).await;
            for part in parts {
                if result.is_err() {
                    break;
                }
                result = writer.write_all(part).await;
            }
            result
        };
        let peer = self.inner.peer;
        result.map_err(|e| WriteError::Io(NetError::new("write", peer, e)))?;
        writer
            .flush()
            .await
            .map_err(|e| WriteError::Io(NetError::new("flush", peer, e)))
    }

    /// Closes the writing side (the peer reads end of stream).
    pub async fn close(self) -> Result<(), NetError> {
        self.inner.close().await
    }
}

/// The writing half of a connection.
pub struct FrameWriter {
    writer: WriteHalf<TcpStream>,
    peer: SocketAddr,
    frame_bytes_max: u32,
}

impl FrameWriter {
    /// Writes one frame: the message, then the payload parts in order. Payload parts are
    /// sent from their own buffers (stored batch bytes go out as they are).
    pub async fn write_frame(
        &mut self,
        message: &[u8],
        payload: &[Bytes],
    ) -> Result<(), WriteError> {
        let payload_bytes: usize = payload.iter().map(Bytes::len).sum();
        let prefix =
            schema::wire::frame_prefix(message.len(), payload_bytes, self.frame_bytes_max)?;
        let total = prefix.len() + message.len() + payload_bytes;
        let result = if total <= COALESCE_BYTES_MAX {
            let mut frame = Vec::with_capacity(total);
            frame.extend_from_slice(&prefix);
            frame.extend_from_slice(message);
            for part in payload {
                frame.extend_from_slice(part);
            }
            self.writer.write_all(&frame).await
        } else {
            let mut result = self.writer.write_all(&prefix).await;
            if result.is_ok() {
                result = self.writer.write_all(message).await;
            }
            for part in payload {
                if result.is_err() {
                    break;
                }
                result = self.writer.write_all(part).await;
            }
            result
        };
        result.map_err(|e| WriteError::Io(NetError::new("write", self.peer, e)))?;
        self.writer
            .flush()
            .await
            .map_err(|e| WriteError::Io(NetError::new("flush", self.peer, e)))
    }

    /// Closes the writing side (the peer reads end of stream).
    pub async fn close(mut self) -> Result<(), NetError> {
        self.writer
            .close()
            .await
            .map_err(|e| NetError::new("close", self.peer, e))
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
