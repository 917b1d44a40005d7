//! The property the `bfd_decode` fuzz target checks. Shared (through `#[path]`) with
//! `tests/bfd_fuzz_regressions.rs`, which replays the seeds and past crashers on every `cargo test`.
#![allow(dead_code)]

use metallb_core::bfd::packet::{decode, encode, validate, DecodeError, PACKET_LEN};

/// Any bytes as a BFD control packet (a UDP payload): decoding never panics; short input is refused as
/// truncated and nothing else; an accepted packet passes the reception checks, its mandatory section encodes
/// back to the input's first 24 octets but for Length (encode writes no authentication section), and without
/// the A bit those bytes decode to the same packet.
pub fn bfd_decode(data: &[u8]) {
    match decode(data) {
        Ok(packet) => {
            assert!(validate(&packet).is_ok(), "decode accepted what validate refuses: {packet:?}");
            let bytes = encode(&packet);
            assert_eq!(bytes[..3], data[..3], "version, diag, flags or detect mult changed: {packet:?}");
            assert_eq!(bytes[4..], data[4..PACKET_LEN], "a 32-bit field changed: {packet:?}");
            assert!(usize::from(data[3]) >= PACKET_LEN && usize::from(data[3]) <= data.len());
            if !packet.authenticated {
                assert_eq!(decode(&bytes), Ok(packet));
            }
        }
        Err(e) => {
            assert_eq!(data.len() < PACKET_LEN, matches!(e, DecodeError::Truncated { .. }), "{e} for {data:02x?}");
            assert!(!e.to_string().is_empty());
        }
    }
}
