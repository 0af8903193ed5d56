//! Fuzzes the peer message decoder: any bytes, no panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    raftcfg_node::fuzz::peer_message(bytes);
});
