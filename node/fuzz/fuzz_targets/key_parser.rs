//! Fuzzes the key and prefix parsers: any bytes, no panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    raftcfg_node::fuzz::key(bytes);
});
