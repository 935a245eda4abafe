#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| courier::fuzz::run("http2_codec", data));
