//! libFuzzer entry point of the `log_recovery` target: the input and the properties checked are
//! documented in `ringbus_fuzz::log_recovery` (fuzz/src/log_recovery.rs), where they can be unit-tested.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringbus_fuzz::log_recovery::check(data));
