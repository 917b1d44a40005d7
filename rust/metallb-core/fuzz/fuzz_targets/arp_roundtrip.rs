//! Fuzzes ARP packets: see `invariants::arp_roundtrip`.
#![no_main]

#[path = "../invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::arp_roundtrip(data));
