//! libFuzzer entry point of the `batch` target: the input and the properties checked are
//! documented in `ringbus_fuzz::batch` (fuzz/src/batch.rs), where they can be unit-tested.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringbus_fuzz::batch::check(data));
