//! The one error type of the client library, [`ClientError`], and the rule for which errors a
//! producer retries.
//!
//! Errors are values: a bad or missing response from the broker becomes a `ClientError`, never
//! a panic. Where the broker named the problem, the error carries its wire [`ErrorCode`] and its
//! message. The type is `Clone` because one failure (a lost connection, a refused batch) is
//! reported to every caller it affects: all the requests waiting on the connection, every
//! record of a batch.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use schema::batch::BatchError;
use schema::wire::ErrorCode;

/// Why a client operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The TCP connection could not be opened.
    #[error("{source}")]
    Connect {
        /// The broker's address.
        address: SocketAddr,
        /// The socket error.
        #[source]
        source: Arc<net::NetError>,
    },
    /// The broker does not speak this client's protocol version.
    #[error(
        "the broker speaks protocol version {broker_version}; this client speaks {client_version}",
        client_version = schema::wire::PROTOCOL_VERSION
    )]
    UnsupportedVersion {
        /// The version the broker announced.
        broker_version: u16,
    },
    /// The connection failed (socket error, end of stream, a frame that breaks the protocol).
    /// Every request waiting on it gets this error (it may or may not have taken effect); the
    /// next call reconnects ([`crate::ClientOptions::reconnect_timeout`]).
    #[error("connection to {address} lost: {reason}")]
    ConnectionLost {
        /// The broker's address.
        address: SocketAddr,
        /// What happened.
        reason: String,
    },
    /// The connection was lost and no new one could be opened within the reconnect timeout.
    /// Nothing was sent. A later call tries again.
    #[error(
        "broker {address} unreachable: reconnecting for {waited:?} failed ({last}); the \
         connection was lost: {lost}"
    )]
    Unreachable {
        /// The broker's address.
        address: SocketAddr,
        /// The reconnect timeout that passed.
        waited: Duration,
        /// Why the connection was lost.
        lost: String,
        /// The last attempt's error.
        last: String,
    },
    /// The client (or the producer holding a batch) was closed or dropped first.
    #[error("closed: {reason}")]
    Closed {
        /// What was closed.
        reason: &'static str,
    },
    /// No response arrived in time. The request may still take effect on the broker.
    #[error("{operation}: no response within {timeout:?}")]
    Timeout {
        /// The request ("produce", "fetch", ...).
        operation: &'static str,
        /// The limit that passed.
        timeout: Duration,
    },
    /// The broker answered the request as a whole with an error.
    #[error("{operation}: {code:?}{}", suffix(message))]
    Broker {
        /// The request ("create_topic", "metadata", ...).
        operation: &'static str,
        /// The wire error code.
        code: ErrorCode,
        /// The broker's explanation (may be empty).
        message: String,
    },
    /// The broker refused the part of a request about one partition.
    #[error("{topic}/{partition}: {code:?}{}", suffix(message))]
    Partition {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The wire error code.
        code: ErrorCode,
        /// The broker's explanation (may be empty).
        message: String,
    },
    /// A response was well framed but broke the protocol (wrong body type, wrong number of
    /// results). The connection stays usable; only this request failed.
    #[error("protocol violation in {operation} response: {reason}")]
    Protocol {
        /// The request it answered.
        operation: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The request would be larger than the broker accepts; nothing was sent.
    #[error("request of {frame_bytes} bytes is over the frame limit of {frame_bytes_max} bytes")]
    RequestTooLarge {
        /// The frame size the request needs.
        frame_bytes: u64,
        /// The smaller of the client's and the broker's limit.
        frame_bytes_max: u32,
    },
    /// The caller asked for something that cannot be sent (a negative timestamp, no topic).
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What was wrong.
        reason: String,
    },
    /// A fetched batch failed verification (CRC, framing) or its records could not be decoded.
    #[error("{topic}/{partition}: invalid batch at payload byte {position}: {source}")]
    InvalidBatch {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// Where the batch starts in that partition's fetched bytes.
        position: usize,
        /// Why it was refused.
        #[source]
        source: BatchError,
    },
}

fn suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// Wire error codes a producer retries: the batch was not stored, and trying again later can
/// succeed. `ShuttingDown` is among them: the client reconnects, and a broker that restarts
/// takes the batch then (one that stays down ends the retries with `Unreachable`).
pub fn is_retriable_code(code: ErrorCode) -> bool {
    code == ErrorCode::Timeout
        || code == ErrorCode::StorageFull
        || code == ErrorCode::Throttled
        || code == ErrorCode::ShuttingDown
}

impl ClientError {
    /// The wire error code, where the broker gave one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Broker { code, .. } | ClientError::Partition { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether a producer may send the same batch again: only for broker error codes that say
    /// the batch was not stored ([`is_retriable_code`]). A client-side [`ClientError::Timeout`]
    /// is not retriable by this rule (the batch may have been stored, and sending it again
    /// could duplicate it); an idempotent producer retries it anyway, because the broker then
    /// recognises a stored batch and does not store it again.
    pub fn is_retriable(&self) -> bool {
        self.code().is_some_and(is_retriable_code)
    }
}
