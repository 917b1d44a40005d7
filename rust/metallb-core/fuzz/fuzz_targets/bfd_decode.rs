//! Fuzzes the BFD control packet codec: see `bfd_invariants::bfd_decode`.
#![no_main]

#[path = "bfd_invariants.rs"]
mod bfd_invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bfd_invariants::bfd_decode(data));
