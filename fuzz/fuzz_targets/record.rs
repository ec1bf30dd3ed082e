//! Fuzz target `record`: see `ggen_p2p::fuzzing::record` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ggen_p2p::fuzzing::record(data));
