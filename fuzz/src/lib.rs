//! The fuzz targets of ringbus (issue #14): one module per target, each with the layout of its
//! input, the properties it asserts and an `encode` for seeds where the input is structured.
//!
//! The libFuzzer entry points (fuzz_targets/*.rs) only call [`frames::check`] and its kin, so
//! the properties live here, in plain Rust that `cargo test` also runs on the seed corpus
//! (tests/seeds.rs) and that examples/seed_corpus.rs uses to write that corpus.
//!
//! A property that fails panics, which libFuzzer reports as a crash with the input saved;
//! an input that the code under test refuses with a typed error is not a failure. What each
//! target asserts beyond "does not panic":
//! - [`frames`]: the frame reader over an in-memory stream returns exactly the bytes of each
//!   frame, fails only as the prefix rules say, and every request the broker would accept
//!   round-trips through its encoder.
//! - [`wire_messages`]: requests and responses that pass verified decoding round-trip
//!   (decode, encode, decode gives the same owned value); produce payload ranges lie inside the
//!   payload.
//! - [`batch`]: `verify`, `verify_with_records` and `records` agree with each other; a valid
//!   batch rebuilt with `BatchBuilder` from its records decodes to the same records.
//! - [`log_recovery`]: a log opened over arbitrary files either is refused with an error or
//!   serves only CRC-valid batches with contiguous offsets, takes an append, and reopens after
//!   a clean close with the same batches.
//! - [`kafka_requests`]: the Kafka listener's request decoding (the patched codec) never
//!   panics and no lying count makes it allocate past libFuzzer's limit.
//! - [`broker_snapshots`]: the broker's snapshot decoders (producer state, committed offsets,
//!   topic metadata, producer-id reservation) round-trip what they accept, and the
//!   snapshot-then-replay rule (`broker::snapshot::load`) keeps its promises.
//!
//! Everything runs on the calling thread: the simulated disk completes every future at once
//! and in-memory streams never wait, so no executor is started.

pub mod batch;
pub mod broker_snapshots;
pub mod frames;
pub mod kafka_requests;
pub mod log_recovery;
pub mod wire_messages;
