//! ringbus byte formats: the batch codec now, flatbuffers wire messages later.
//!
//! This crate owns the meaning of bytes and nothing else: no I/O, no async, no runtime, no
//! shard state. Every function here is a pure transformation of a slice, so it can be called
//! from any shard and tested without a disk or a socket.
//!
//! - [`batch`]: the Kafka RecordBatch v2 format (magic 2) that producers send, storage keeps
//!   byte for byte, and fetches return. Big-endian by Kafka's spec; that stays inside this
//!   module.
//! - [`varint`]: the zig-zag varints and varlongs that records inside a batch are made of.
//! - [`murmur2`]: Kafka's default partitioner hash, so keys land on the same partition as with
//!   a Kafka client.
//!
//! Untrusted bytes are decoded only through the verifying paths ([`batch::verify`],
//! [`batch::verify_with_records`], [`batch::records`]): they return errors and never panic on
//! malformed input.

#![forbid(unsafe_code)]

pub mod batch;
pub mod murmur2;
pub mod varint;
