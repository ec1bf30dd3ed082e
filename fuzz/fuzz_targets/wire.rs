//! Fuzz target `wire`: see `ggen_p2p::fuzzing::wire` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ggen_p2p::fuzzing::wire(data));
