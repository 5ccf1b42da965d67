//! libFuzzer entry point of the `wire_messages` target: the input and the properties checked are
//! documented in `ringbus_fuzz::wire_messages` (fuzz/src/wire_messages.rs), where they can be unit-tested.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringbus_fuzz::wire_messages::check(data));
