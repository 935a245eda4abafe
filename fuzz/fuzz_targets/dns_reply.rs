#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| courier::fuzz::run("dns_reply", data));
