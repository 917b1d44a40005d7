//! Fuzzes the BGP-4 codec with arbitrary streams: see `bgp_invariants::bgp_decode`.
#![no_main]

#[path = "bgp_invariants.rs"]
mod bgp_invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bgp_invariants::bgp_decode(data));
