//! libFuzzer entry point of the `frames` target: the input and the properties checked are
//! documented in `ringbus_fuzz::frames` (fuzz/src/frames.rs), where they can be unit-tested.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringbus_fuzz::frames::check(data));
