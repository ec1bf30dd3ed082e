//! Fuzz target `unpack`: see `ggen_p2p::fuzzing::archive` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ggen_p2p::fuzzing::archive(data));
