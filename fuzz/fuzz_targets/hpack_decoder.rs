#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| courier::fuzz::run("hpack_decoder", data));
