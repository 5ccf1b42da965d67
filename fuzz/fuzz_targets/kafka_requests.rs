//! libFuzzer entry point of the `kafka_requests` target: the input and the properties checked are
//! documented in `ringbus_fuzz::kafka_requests` (fuzz/src/kafka_requests.rs), where they can be unit-tested.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringbus_fuzz::kafka_requests::check(data));
