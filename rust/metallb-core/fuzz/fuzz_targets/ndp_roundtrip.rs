//! Fuzzes IPv6 neighbor discovery packets: see `invariants::ndp_roundtrip`.
#![no_main]

#[path = "../invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::ndp_roundtrip(data));
