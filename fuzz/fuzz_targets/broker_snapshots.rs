//! libFuzzer entry point of the `broker_snapshots` target: the input and the properties checked are
//! documented in `ringbus_fuzz::broker_snapshots` (fuzz/src/broker_snapshots.rs), where they can be unit-tested.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringbus_fuzz::broker_snapshots::check(data));
