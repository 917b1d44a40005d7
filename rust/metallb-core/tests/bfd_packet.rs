//! BFD control packets as bytes written by hand from RFC 5880 section 4.1: each field at its bit position
//! decodes to the value beside it and encodes back to exactly those bytes; each reception check of section
//! 6.8.6 that is about the packet alone refuses with its own error. Then properties: decode(encode(p)) is p for
//! every valid packet, and any bytes decode or fail without panicking.

use metallb_core::bfd::packet::{
    decode, encode, validate, ControlPacket, DecodeError, Diag, State, ECHO_PORT, MULTIHOP_PORT, PACKET_LEN,
    SINGLE_HOP_PORT, SOURCE_PORTS,
};
use proptest::prelude::*;

/// The Down packet every test starts from: no flags, Detect Mult 3, My Discriminator 1, intervals 1 s, 0.3 s.
fn down() -> ControlPacket {
    ControlPacket { required_min_rx: 300_000, ..ControlPacket::new(State::Down, 1, 0) }
}

const DOWN_BYTES: [u8; 24] = [
    0x20, // version 1 (001), diag 0 (00000)
    0x40, // state Down (01), P F C A D M all 0
    0x03, // Detect Mult 3
    0x18, // Length 24
    0x00, 0x00, 0x00, 0x01, // My Discriminator 1
    0x00, 0x00, 0x00, 0x00, // Your Discriminator 0
    0x00, 0x0f, 0x42, 0x40, // Desired Min TX 1,000,000 µs
    0x00, 0x04, 0x93, 0xe0, // Required Min RX 300,000 µs
    0x00, 0x00, 0x00, 0x00, // Required Min Echo RX 0
];

/// `bytes` decodes to `packet`, and `packet` encodes to `bytes`.
fn check(bytes: &[u8; 24], packet: &ControlPacket) {
    assert_eq!(decode(bytes).as_ref(), Ok(packet), "decoding {bytes:02x?}");
    assert_eq!(&encode(packet), bytes, "encoding {packet:?}");
}

fn with(edit: impl FnOnce(&mut [u8; 24])) -> [u8; 24] {
    let mut bytes = DOWN_BYTES;
    edit(&mut bytes);
    bytes
}

#[test]
fn ports_are_the_rfc_5881_and_5883_ones() {
    assert_eq!((SINGLE_HOP_PORT, ECHO_PORT, MULTIHOP_PORT), (3784, 3785, 4784));
    assert_eq!((*SOURCE_PORTS.start(), *SOURCE_PORTS.end()), (49152, 65535));
    assert_eq!(PACKET_LEN, 24);
}

#[test]
fn a_down_packet_without_your_discriminator() {
    check(&DOWN_BYTES, &down());
}

#[test]
fn every_state_in_the_top_two_bits_of_the_second_octet() {
    for (bits, state) in [(0x00, State::AdminDown), (0x40, State::Down), (0x80, State::Init), (0xc0, State::Up)] {
        let bytes = with(|b| {
            b[1] = bits;
            b[8..12].copy_from_slice(&[0x12, 0x34, 0x56, 0x78]); // Init and Up need Your Discriminator
        });
        check(&bytes, &ControlPacket { state, your_discriminator: 0x1234_5678, ..down() });
    }
}

#[test]
fn each_flag_at_its_bit() {
    type Set = fn(&mut ControlPacket);
    let flags: [(u8, Set); 4] = [
        (0x20, |p| p.poll = true),
        (0x10, |p| p.final_ = true),
        (0x08, |p| p.control_plane_independent = true),
        (0x02, |p| p.demand = true),
    ];
    for (bit, set) in flags {
        let mut packet = down();
        set(&mut packet);
        check(&with(|b| b[1] = 0x40 | bit), &packet);
    }
}

#[test]
fn every_diagnostic_in_the_low_five_bits_of_the_first_octet() {
    let named = [
        Diag::None,
        Diag::ControlDetectionTimeExpired,
        Diag::EchoFunctionFailed,
        Diag::NeighborSignaledSessionDown,
        Diag::ForwardingPlaneReset,
        Diag::PathDown,
        Diag::ConcatenatedPathDown,
        Diag::AdministrativelyDown,
        Diag::ReverseConcatenatedPathDown,
    ];
    for (code, diag) in named.into_iter().enumerate() {
        check(&with(|b| b[0] = 0x20 | code as u8), &ControlPacket { diag, ..down() });
    }
    for code in 9..=31u8 {
        check(&with(|b| b[0] = 0x20 | code), &ControlPacket { diag: Diag::Unknown(code), ..down() });
    }
}

#[test]
fn the_32_bit_fields_are_big_endian_in_order() {
    let bytes = [
        0x20, 0xc0, 0xff, 0x18, // version 1, Up, Detect Mult 255, Length 24
        0xde, 0xad, 0xbe, 0xef, // My Discriminator
        0x01, 0x02, 0x03, 0x04, // Your Discriminator
        0x00, 0x00, 0xc3, 0x50, // Desired Min TX 50,000 µs
        0x00, 0x00, 0x27, 0x10, // Required Min RX 10,000 µs
        0xff, 0xff, 0xff, 0xff, // Required Min Echo RX 2^32 - 1 µs
    ];
    check(
        &bytes,
        &ControlPacket {
            state: State::Up,
            detect_mult: 255,
            my_discriminator: 0xdead_beef,
            your_discriminator: 0x0102_0304,
            desired_min_tx: 50_000,
            required_min_rx: 10_000,
            required_min_echo_rx: u32::MAX,
            ..down()
        },
    );
}

#[test]
fn an_authenticated_packet_decodes_with_its_section_unread() {
    // A bit (0x04), Length 31: Simple Password section (RFC 5880 4.2): Auth Type 1, Auth Len 7, Key ID 1, "abcd".
    let mut bytes = with(|b| {
        b[1] = 0x44;
        b[3] = 31;
    })
    .to_vec();
    bytes.extend_from_slice(&[0x01, 0x07, 0x01, b'a', b'b', b'c', b'd']);
    let packet = decode(&bytes).unwrap();
    assert_eq!(packet, ControlPacket { authenticated: true, ..down() });
    // The shortest authenticated packet: the two octets Auth Type and Auth Len.
    let mut shortest = with(|b| {
        b[1] = 0x44;
        b[3] = 26;
    })
    .to_vec();
    shortest.extend_from_slice(&[0x01, 0x02]);
    assert_eq!(decode(&shortest), Ok(ControlPacket { authenticated: true, ..down() }));
}

#[test]
fn octets_after_length_are_udp_padding() {
    let mut bytes = DOWN_BYTES.to_vec();
    bytes.extend_from_slice(&[0xaa; 8]);
    assert_eq!(decode(&bytes), Ok(down()));
}

#[test]
fn each_reception_check_has_its_error() {
    let cases: Vec<(Vec<u8>, DecodeError)> = vec![
        (Vec::new(), DecodeError::Truncated { len: 0 }),
        (DOWN_BYTES[..23].to_vec(), DecodeError::Truncated { len: 23 }),
        (with(|b| b[0] = 0x00).to_vec(), DecodeError::Version { version: 0 }),
        (with(|b| b[0] = 0x40).to_vec(), DecodeError::Version { version: 2 }),
        (with(|b| b[0] = 0xe0).to_vec(), DecodeError::Version { version: 7 }),
        (with(|b| b[3] = 23).to_vec(), DecodeError::LengthTooShort { length: 23, minimum: 24 }),
        (with(|b| b[3] = 0).to_vec(), DecodeError::LengthTooShort { length: 0, minimum: 24 }),
        (
            with(|b| {
                b[1] = 0x44;
                b[3] = 25;
            })
            .to_vec(),
            DecodeError::LengthTooShort { length: 25, minimum: 26 },
        ),
        (with(|b| b[3] = 25).to_vec(), DecodeError::LengthExceedsPayload { length: 25, received: 24 }),
        (
            with(|b| {
                b[1] = 0x44;
                b[3] = 26;
            })
            .to_vec(),
            DecodeError::LengthExceedsPayload { length: 26, received: 24 },
        ),
        (with(|b| b[2] = 0).to_vec(), DecodeError::ZeroDetectMult),
        (with(|b| b[1] = 0x41).to_vec(), DecodeError::Multipoint),
        (with(|b| b[4..8].fill(0)).to_vec(), DecodeError::ZeroMyDiscriminator),
        (with(|b| b[1] = 0x80).to_vec(), DecodeError::ZeroYourDiscriminator { state: State::Init }),
        (with(|b| b[1] = 0xc0).to_vec(), DecodeError::ZeroYourDiscriminator { state: State::Up }),
    ];
    for (bytes, error) in cases {
        assert_eq!(decode(&bytes), Err(error.clone()), "decoding {bytes:02x?}");
        assert!(!error.to_string().is_empty());
    }
    // AdminDown may omit Your Discriminator too.
    assert_eq!(decode(&with(|b| b[1] = 0x00)).map(|p| p.state), Ok(State::AdminDown));
}

#[test]
fn errors_name_the_field_and_the_value() {
    let cases = [
        (DecodeError::Truncated { len: 23 }, ["23", "24"]),
        (DecodeError::Version { version: 2 }, ["version 2", "version 1"]),
        (DecodeError::LengthTooShort { length: 25, minimum: 26 }, ["Length field 25", "26"]),
        (DecodeError::LengthExceedsPayload { length: 40, received: 24 }, ["Length field 40", "24 octets"]),
        (DecodeError::ZeroYourDiscriminator { state: State::Up }, ["Your Discriminator", "state Up"]),
    ];
    for (error, parts) in cases {
        let text = error.to_string();
        for part in parts {
            assert!(text.contains(part), "{text:?} does not say {part:?}");
        }
    }
}

#[test]
fn validate_applies_the_decode_checks_to_a_built_packet() {
    assert_eq!(validate(&down()), Ok(()));
    assert_eq!(validate(&ControlPacket { detect_mult: 0, ..down() }), Err(DecodeError::ZeroDetectMult));
    assert_eq!(validate(&ControlPacket { multipoint: true, ..down() }), Err(DecodeError::Multipoint));
    assert_eq!(validate(&ControlPacket { my_discriminator: 0, ..down() }), Err(DecodeError::ZeroMyDiscriminator));
    assert_eq!(
        validate(&ControlPacket { state: State::Up, ..down() }),
        Err(DecodeError::ZeroYourDiscriminator { state: State::Up })
    );
}

#[test]
fn states_and_diagnostics_display_in_words() {
    let states = [State::AdminDown, State::Down, State::Init, State::Up].map(|s| s.to_string());
    assert_eq!(states, ["AdminDown", "Down", "Init", "Up"]);
    assert_eq!(Diag::ControlDetectionTimeExpired.to_string(), "control detection time expired");
    assert_eq!(Diag::NeighborSignaledSessionDown.to_string(), "neighbor signaled session down");
    assert_eq!(Diag::AdministrativelyDown.to_string(), "administratively down");
    assert_eq!(Diag::Unknown(17).to_string(), "unknown diagnostic 17");
    for code in 0..32u8 {
        assert_eq!(Diag::from_code(code).code(), code);
        assert_eq!(Diag::from_code(code | 0xe0), Diag::from_code(code), "only the low five bits are read");
    }
    for code in 0..4u8 {
        assert_eq!(State::from_code(code).code(), code);
    }
}

fn state() -> impl Strategy<Value = State> {
    (0u8..4).prop_map(State::from_code)
}

/// Every packet `decode` accepts and `encode` can write: no A bit, no M bit, the RFC's nonzero fields.
fn valid_packet() -> impl Strategy<Value = ControlPacket> {
    (
        (0u8..32).prop_map(Diag::from_code),
        state(),
        any::<[bool; 4]>(),
        1u8..=255,
        1u32..,
        any::<u32>(),
        any::<[u32; 3]>(),
    )
        .prop_map(|(diag, state, [poll, final_, cpi, demand], detect_mult, my, your, [tx, rx, echo])| {
            // Init and Up must name the peer's session.
            let your = if matches!(state, State::Init | State::Up) { your.max(1) } else { your };
            ControlPacket {
                diag,
                state,
                poll,
                final_,
                control_plane_independent: cpi,
                authenticated: false,
                demand,
                multipoint: false,
                detect_mult,
                my_discriminator: my,
                your_discriminator: your,
                desired_min_tx: tx,
                required_min_rx: rx,
                required_min_echo_rx: echo,
            }
        })
}

proptest! {
    #[test]
    fn decode_inverts_encode(packet in valid_packet()) {
        prop_assert_eq!(decode(&encode(&packet)), Ok(packet));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(packet) = decode(&bytes) {
            prop_assert!(validate(&packet).is_ok());
            let encoded = encode(&packet);
            prop_assert_eq!(&encoded[..3], &bytes[..3]);
            prop_assert_eq!(&encoded[4..], &bytes[4..24]);
        }
    }

    /// Bytes that start like a packet (version 1, Length within what was given) reach the later checks.
    #[test]
    fn plausible_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 24..48)) {
        bytes[0] = (bytes[0] & 0x1f) | 0x20;
        bytes[3] = 24 + bytes[3] % (bytes.len() as u8 - 23);
        match decode(&bytes) {
            Ok(packet) => prop_assert_eq!(decode(&encode(&packet)).is_ok(), !packet.authenticated),
            Err(e) => {
                let early = matches!(e, DecodeError::Truncated { .. } | DecodeError::Version { .. });
                prop_assert!(!early, "{}", e);
            }
        }
    }
}
