//! Fuzzes Ethernet frames: see `invariants::ethernet_parse`.
#![no_main]

#[path = "../invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::ethernet_parse(data));
