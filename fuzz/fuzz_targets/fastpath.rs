#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rdpdiag_fuzz::fastpath_target(data));
