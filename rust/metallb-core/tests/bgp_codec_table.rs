//! BGP messages as bytes written by hand from the RFC text (RFC 4271 4.x, RFC 4760 3-4, RFC 5492, RFC 6793,
//! RFC 1997, RFC 8092, RFC 2918, RFC 4724): each decodes to the value beside it and that value encodes back to
//! exactly those bytes. Lengths in the headers are counted by hand in the comments.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use metallb_core::bgp::{
    decode, encode, encode_to_vec, encoded_len, frame_len, Afi, AsSegment, Capability, CodecOptions, GracefulRestart,
    Message, MpReach, MpUnreach, Notification, Open, Origin, PathAttributes, Prefix, RouteRefresh, Safi, Update,
};

const MARKER: [u8; 16] = [0xff; 16];
const FOUR: CodecOptions = CodecOptions { four_octet_as: true };
const TWO: CodecOptions = CodecOptions { four_octet_as: false };

fn wire(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn p(s: &str) -> Prefix {
    let (addr, len) = s.split_once('/').unwrap();
    Prefix::new(addr.parse().unwrap(), len.parse().unwrap()).unwrap()
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

/// `bytes` decodes to `msg` using all of them, `msg` encodes to `bytes`, and `encoded_len` agrees.
fn check(bytes: &[u8], msg: &Message, opts: &CodecOptions) {
    assert_eq!(decode(bytes, opts).unwrap(), Some((msg.clone(), bytes.len())), "decoding {bytes:02x?}");
    assert_eq!(encode_to_vec(msg, opts).unwrap(), bytes, "encoding {msg:?}");
    assert_eq!(encoded_len(msg, opts), bytes.len());
    assert_eq!(frame_len(bytes).unwrap(), Some(bytes.len()));
}

#[test]
fn keepalive_is_a_bare_header() {
    // RFC 4271 4.4: header only, length 19 (0x13), type 4.
    check(&wire(&[&MARKER, &[0x00, 0x13, 0x04]]), &Message::Keepalive, &FOUR);
}

#[test]
fn open_with_every_capability_we_speak_and_an_unknown_one() {
    let bytes = wire(&[
        &MARKER,
        &[0x00, 0x3d, 0x01], // length 61 = 19 + 10 fixed + 32 optional parameters; type OPEN
        &[0x04],             // version 4
        &[0xfc, 0x00],       // My Autonomous System 64512
        &[0x00, 0x5a],       // Hold Time 90
        &[192, 0, 2, 1],     // BGP Identifier
        &[0x20],             // Opt Parm Len 32
        &[0x02, 0x1e],       // parameter type 2 (capabilities), length 30
        &[0x01, 0x04, 0x00, 0x01, 0x00, 0x01], // multiprotocol: AFI 1 (IPv4), reserved, SAFI 1 (unicast)
        &[0x01, 0x04, 0x00, 0x02, 0x00, 0x01], // multiprotocol: AFI 2 (IPv6), reserved, SAFI 1
        &[0x02, 0x00],       // route refresh (RFC 2918)
        &[0x41, 0x04, 0x00, 0x00, 0xfc, 0x00], // 4-octet AS 64512 (RFC 6793)
        // graceful restart (RFC 4724): flags 0 and restart time 120, then IPv4 unicast with F (0x80)
        &[0x40, 0x06, 0x00, 0x78, 0x00, 0x01, 0x01, 0x80],
        &[0x46, 0x00], // enhanced route refresh (RFC 7313, code 70): not ours, kept as bytes
    ]);
    let open = Open {
        asn: 64512,
        hold_time: 90,
        router_id: v4("192.0.2.1"),
        capabilities: vec![
            Capability::Multiprotocol(Afi::Ipv4, Safi::Unicast),
            Capability::Multiprotocol(Afi::Ipv6, Safi::Unicast),
            Capability::RouteRefresh,
            Capability::FourOctetAs(64512),
            Capability::GracefulRestart(GracefulRestart {
                restarting: false,
                restart_time: 120,
                families: vec![(Afi::Ipv4, Safi::Unicast, true)],
            }),
            Capability::Unknown { code: 70, value: vec![] },
        ],
    };
    check(&bytes, &Message::Open(open), &TWO);
}

#[test]
fn open_with_a_four_octet_asn_carries_as_trans() {
    let bytes = wire(&[
        &MARKER,
        &[0x00, 0x25, 0x01], // length 37 = 19 + 10 + 8
        &[0x04, 0x5b, 0xa0], // version 4, My AS = AS_TRANS 23456 (RFC 6793 4.1)
        &[0x00, 0x03],       // hold time 3
        &[198, 51, 100, 1],
        &[0x08, 0x02, 0x06],                   // Opt Parm Len 8; capabilities, length 6
        &[0x41, 0x04, 0xfa, 0x56, 0xea, 0x00], // 4-octet AS 4200000000
    ]);
    let open = Open {
        asn: 4_200_000_000,
        hold_time: 3,
        router_id: v4("198.51.100.1"),
        capabilities: vec![Capability::FourOctetAs(4_200_000_000)],
    };
    check(&bytes, &Message::Open(open), &FOUR);
}

#[test]
fn open_without_optional_parameters_and_restarting_graceful_restart() {
    // Opt Parm Len 0: length 29.
    let bare = wire(&[&MARKER, &[0x00, 0x1d, 0x01, 0x04, 0xfc, 0x00, 0x00, 0x00, 10, 0, 0, 1, 0x00]]);
    let open = Open { asn: 64512, hold_time: 0, router_id: v4("10.0.0.1"), capabilities: vec![] };
    check(&bare, &Message::Open(open), &FOUR);

    // GR with R set (0x8000) and time 4095, IPv6 unicast without F; an AFI we do not speak (25, L2VPN) dropped.
    let gr = wire(&[
        &MARKER,
        &[0x00, 0x2b, 0x01, 0x04, 0xfc, 0x00, 0x00, 0xb4, 10, 0, 0, 1], // length 43, hold time 180
        &[0x0e, 0x02, 0x0c, 0x40, 0x0a, 0x8f, 0xff],                    // 14, param 12, GR length 10
        &[0x00, 0x02, 0x01, 0x00, 0x00, 0x19, 0x46, 0x80],
    ]);
    let Some((Message::Open(open), 43)) = decode(&gr, &FOUR).unwrap() else { panic!("not an OPEN") };
    assert_eq!(
        open.capabilities,
        vec![Capability::GracefulRestart(GracefulRestart {
            restarting: true,
            restart_time: 4095,
            families: vec![(Afi::Ipv6, Safi::Unicast, false)],
        })]
    );
}

#[test]
fn open_capabilities_in_several_parameters_and_an_unknown_family() {
    let bytes = wire(&[
        &MARKER,
        &[0x00, 0x2d, 0x01, 0x04, 0xfc, 0x00, 0x00, 0x5a, 10, 0, 0, 1], // length 45
        &[0x10],                                                        // Opt Parm Len 16
        &[0x02, 0x06, 0x01, 0x04, 0x00, 0x19, 0x00, 0x46],              // multiprotocol L2VPN EVPN (25/70)
        &[0x02, 0x02, 0x02, 0x00],                                      // route refresh alone
        &[0x02, 0x02, 0x80, 0x00],                                      // Cisco's pre-standard route refresh
    ]);
    let Some((Message::Open(open), 45)) = decode(&bytes, &FOUR).unwrap() else { panic!("not an OPEN") };
    assert_eq!(
        open.capabilities,
        vec![
            Capability::Unknown { code: 1, value: vec![0x00, 0x19, 0x00, 0x46] },
            Capability::RouteRefresh,
            Capability::Unknown { code: 128, value: vec![] },
        ]
    );
}

fn ipv4_update() -> Update {
    Update {
        withdrawn: vec![],
        attributes: PathAttributes {
            origin: Origin::Igp,
            as_path: vec![AsSegment::Sequence(vec![64512])],
            next_hop: Some(v4("192.0.2.1")),
            med: Some(10),
            local_pref: Some(100),
            communities: vec![0xfc00_0001, 0xffff_ff01],
            large_communities: vec![(64512, 1, 2)],
            mp_reach: None,
            mp_unreach: None,
        },
        nlri: vec![p("198.51.100.10/32"), p("203.0.113.0/24")],
    }
}

#[test]
fn update_ipv4_with_every_attribute_we_keep() {
    let bytes = wire(&[
        &MARKER,
        &[0x00, 0x5c, 0x02],       // length 92 = 19 + 2 + 0 + 2 + 60 + 9
        &[0x00, 0x00],             // Withdrawn Routes Length 0
        &[0x00, 0x3c],             // Total Path Attribute Length 60
        &[0x40, 0x01, 0x01, 0x00], // ORIGIN: well-known transitive, length 1, IGP
        // AS_PATH: length 6, one AS_SEQUENCE (2) of 1 ASN, 4 octets each: 64512
        &[0x40, 0x02, 0x06, 0x02, 0x01, 0x00, 0x00, 0xfc, 0x00],
        &[0x40, 0x03, 0x04, 192, 0, 2, 1],           // NEXT_HOP 192.0.2.1
        &[0x80, 0x04, 0x04, 0x00, 0x00, 0x00, 0x0a], // MULTI_EXIT_DISC: optional non-transitive, 10
        &[0x40, 0x05, 0x04, 0x00, 0x00, 0x00, 0x64], // LOCAL_PREF 100
        // COMMUNITIES: optional transitive, 64512:1 and NO_EXPORT (0xFFFFFF01)
        &[0xc0, 0x08, 0x08, 0xfc, 0x00, 0x00, 0x01, 0xff, 0xff, 0xff, 0x01],
        // LARGE_COMMUNITIES (type 32): 64512:1:2
        &[0xc0, 0x20, 0x0c, 0x00, 0x00, 0xfc, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02],
        &[0x20, 198, 51, 100, 10], // NLRI 198.51.100.10/32
        &[0x18, 203, 0, 113],      // NLRI 203.0.113.0/24: 3 octets
    ]);
    check(&bytes, &Message::Update(ipv4_update()), &FOUR);
}

#[test]
fn update_on_a_two_octet_session_uses_as_trans_and_as4_path() {
    let bytes = wire(&[
        &MARKER,
        &[0x00, 0x3d, 0x02, 0x00, 0x00, 0x00, 0x21], // length 61; no withdrawn; attributes 33
        &[0x40, 0x01, 0x01, 0x00],
        // AS_PATH with 2-octet ASNs: AS_SEQUENCE [AS_TRANS, 64512]
        &[0x40, 0x02, 0x06, 0x02, 0x02, 0x5b, 0xa0, 0xfc, 0x00],
        &[0x40, 0x03, 0x04, 192, 0, 2, 1],
        // AS4_PATH (17): optional transitive, the same path with 4-octet ASNs [4200000000, 64512]
        &[0xc0, 0x11, 0x0a, 0x02, 0x02, 0xfa, 0x56, 0xea, 0x00, 0x00, 0x00, 0xfc, 0x00],
        &[0x20, 198, 51, 100, 10],
    ]);
    let update = Update {
        withdrawn: vec![],
        attributes: PathAttributes {
            as_path: vec![AsSegment::Sequence(vec![4_200_000_000, 64512])],
            next_hop: Some(v4("192.0.2.1")),
            ..PathAttributes::default()
        },
        nlri: vec![p("198.51.100.10/32")],
    };
    check(&bytes, &Message::Update(update.clone()), &TWO);
    // A 4-octet session writes the ASN itself and no AS4_PATH.
    let four = encode_to_vec(&Message::Update(update), &FOUR).unwrap();
    assert_eq!(
        four[19 + 4 + 4..19 + 4 + 4 + 13],
        [0x40, 0x02, 0x0a, 0x02, 0x02, 0xfa, 0x56, 0xea, 0x00, 0x00, 0x00, 0xfc, 0x00]
    );
    assert!(!four.windows(2).any(|w| w == [0xc0, 0x11]), "no AS4_PATH on a 4-octet session");
}

#[test]
fn as4_path_merge_keeps_the_leading_as_path_asns_it_does_not_cover() {
    // RFC 6793 4.2.3: AS_PATH counts 3 ASNs, AS4_PATH 2, so the first AS_PATH ASN leads the merged path.
    let bytes = wire(&[
        &MARKER,
        &[0x00, 0x3f, 0x02, 0x00, 0x00, 0x00, 0x23], // length 63; attributes 35
        &[0x40, 0x01, 0x01, 0x02],                   // ORIGIN INCOMPLETE
        &[0x40, 0x02, 0x08, 0x02, 0x03, 0xfc, 0x00, 0x5b, 0xa0, 0xfc, 0x01], // [64512, AS_TRANS, 64513]
        &[0x40, 0x03, 0x04, 192, 0, 2, 1],
        &[0xc0, 0x11, 0x0a, 0x02, 0x02, 0xfa, 0x56, 0xea, 0x00, 0x00, 0x00, 0xfc, 0x01], // [4200000000, 64513]
        &[0x20, 198, 51, 100, 10],
    ]);
    let Some((Message::Update(update), 63)) = decode(&bytes, &TWO).unwrap() else { panic!("not an UPDATE") };
    assert_eq!(update.attributes.origin, Origin::Incomplete);
    assert_eq!(
        update.attributes.as_path,
        vec![AsSegment::Sequence(vec![64512]), AsSegment::Sequence(vec![4_200_000_000, 64513])]
    );
    // On a 4-octet session AS4_PATH is ignored (RFC 6793 4.1) and the 2-octet-looking path... is read as
    // 4-octet ASNs, so the same bytes are a malformed AS_PATH there: 8 octets are 2 ASNs, not 3.
    assert!(decode(&bytes, &FOUR).is_err());
}

#[test]
fn as_path_with_a_set_and_a_long_sequence_split_at_255() {
    let bytes = wire(&[
        &MARKER,
        &[0x00, 0x3a, 0x02, 0x00, 0x00, 0x00, 0x1e], // length 58; attributes 30
        &[0x40, 0x01, 0x01, 0x00],
        // AS_SEQUENCE [64512] then AS_SET (1) {64513, 64514}: 6 + 10 = 16 octets
        &[0x40, 0x02, 0x10, 0x02, 0x01, 0x00, 0x00, 0xfc, 0x00],
        &[0x01, 0x02, 0x00, 0x00, 0xfc, 0x01, 0x00, 0x00, 0xfc, 0x02],
        &[0x40, 0x03, 0x04, 192, 0, 2, 1],
        &[0x20, 198, 51, 100, 10],
    ]);
    let update = Update {
        withdrawn: vec![],
        attributes: PathAttributes {
            as_path: vec![AsSegment::Sequence(vec![64512]), AsSegment::Set(vec![64513, 64514])],
            next_hop: Some(v4("192.0.2.1")),
            ..PathAttributes::default()
        },
        nlri: vec![p("198.51.100.10/32")],
    };
    check(&bytes, &Message::Update(update.clone()), &FOUR);

    // 300 prepends do not fit one segment (count is one octet): 255 + 45 (RFC 4271 9.2.2.1).
    let mut long = update;
    long.attributes.as_path = vec![AsSegment::Sequence(vec![64512; 300])];
    let bytes = encode_to_vec(&Message::Update(long), &FOUR).unwrap();
    let Some((Message::Update(back), _)) = decode(&bytes, &FOUR).unwrap() else { panic!("not an UPDATE") };
    assert_eq!(
        back.attributes.as_path,
        vec![AsSegment::Sequence(vec![64512; 255]), AsSegment::Sequence(vec![64512; 45])]
    );
}

fn mp_update() -> Update {
    Update {
        withdrawn: vec![],
        attributes: PathAttributes {
            as_path: vec![AsSegment::Sequence(vec![64512])],
            mp_reach: Some(MpReach {
                afi: Afi::Ipv6,
                safi: Safi::Unicast,
                next_hops: vec![v6("2001:db8::1"), v6("fe80::1")],
                nlri: vec![p("2001:db8:1::10/128"), p("2001:db8:2::/64")],
            }),
            ..PathAttributes::default()
        },
        nlri: vec![],
    }
}

#[test]
fn update_ipv6_mp_reach_with_global_and_link_local_next_hops() {
    let bytes = wire(&[
        &MARKER,
        &[0x00, 0x66, 0x02, 0x00, 0x00, 0x00, 0x4f], // length 102; attributes 79
        &[0x40, 0x01, 0x01, 0x00],
        &[0x40, 0x02, 0x06, 0x02, 0x01, 0x00, 0x00, 0xfc, 0x00],
        // MP_REACH_NLRI (14): optional non-transitive, length 63 = AFI 2 + SAFI 1 + len 1 + 32 + reserved 1 + 26
        &[0x80, 0x0e, 0x3f, 0x00, 0x02, 0x01, 0x20],
        &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01], // 2001:db8::1
        &[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01],       // fe80::1
        &[0x00],                                                          // reserved
        &[0x80, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10], // 2001:db8:1::10/128
        &[0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x02, 0x00, 0x00],          // 2001:db8:2::/64
    ]);
    check(&bytes, &Message::Update(mp_update()), &FOUR);
}

#[test]
fn update_ipv4_over_mp_reach_and_ipv6_with_one_next_hop() {
    let mut update = mp_update();
    update.attributes.mp_reach = Some(MpReach {
        afi: Afi::Ipv4,
        safi: Safi::Unicast,
        next_hops: vec![IpAddr::V4(v4("192.0.2.1"))],
        nlri: vec![p("198.51.100.10/32")],
    });
    let bytes = encode_to_vec(&Message::Update(update.clone()), &FOUR).unwrap();
    // ORIGIN 4, AS_PATH 9, then MP_REACH: flags, type, length 14, AFI 1, SAFI 1, next hop length 4, ...
    assert_eq!(
        bytes[19 + 4 + 13..19 + 4 + 13 + 17],
        [0x80, 0x0e, 0x0e, 0x00, 0x01, 0x01, 0x04, 192, 0, 2, 1, 0x00, 0x20, 198, 51, 100, 10]
    );
    assert_eq!(decode(&bytes, &FOUR).unwrap(), Some((Message::Update(update.clone()), bytes.len())));

    update.attributes.mp_reach = Some(MpReach {
        afi: Afi::Ipv6,
        safi: Safi::Unicast,
        next_hops: vec![v6("2001:db8::1")],
        nlri: vec![p("2001:db8:1::10/128")],
    });
    let bytes = encode_to_vec(&Message::Update(update.clone()), &FOUR).unwrap();
    assert_eq!(bytes[19 + 4 + 13 + 6], 16, "next hop length of one global address");
    assert_eq!(decode(&bytes, &FOUR).unwrap(), Some((Message::Update(update), bytes.len())));
}

#[test]
fn update_withdrawals_and_end_of_rib_markers() {
    // IPv4 withdrawal: Withdrawn Routes Length 5, one /32, no attributes, no NLRI. Length 28.
    let withdraw = wire(&[&MARKER, &[0x00, 0x1c, 0x02, 0x00, 0x05, 0x20, 198, 51, 100, 10, 0x00, 0x00]]);
    let update = Update { withdrawn: vec![p("198.51.100.10/32")], ..Update::default() };
    check(&withdraw, &Message::Update(update), &FOUR);

    // IPv6 withdrawal: only MP_UNREACH_NLRI (15), length 20 = AFI 2 + SAFI 1 + 17. Message length 46.
    let withdraw6 = wire(&[
        &MARKER,
        &[0x00, 0x2e, 0x02, 0x00, 0x00, 0x00, 0x17],
        &[0x80, 0x0f, 0x14, 0x00, 0x02, 0x01],
        &[0x80, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10],
    ]);
    let update = Update {
        attributes: PathAttributes {
            mp_unreach: Some(MpUnreach {
                afi: Afi::Ipv6,
                safi: Safi::Unicast,
                withdrawn: vec![p("2001:db8:1::10/128")],
            }),
            ..PathAttributes::default()
        },
        ..Update::default()
    };
    check(&withdraw6, &Message::Update(update), &FOUR);

    // End-of-RIB (RFC 4724 2): IPv4 is the empty UPDATE (length 23); IPv6 an empty MP_UNREACH (length 29).
    let eor4 = wire(&[&MARKER, &[0x00, 0x17, 0x02, 0, 0, 0, 0]]);
    check(&eor4, &Message::Update(Update::end_of_rib(Afi::Ipv4)), &FOUR);
    let eor6 = wire(&[&MARKER, &[0x00, 0x1d, 0x02, 0x00, 0x00, 0x00, 0x06, 0x80, 0x0f, 0x03, 0x00, 0x02, 0x01]]);
    check(&eor6, &Message::Update(Update::end_of_rib(Afi::Ipv6)), &FOUR);
}

#[test]
fn notification_and_route_refresh() {
    // Cease (6) / Administrative Shutdown (2) with an RFC 8203 message: length 3, "bye". Length 25.
    let bytes = wire(&[&MARKER, &[0x00, 0x19, 0x03, 0x06, 0x02, 0x03, b'b', b'y', b'e']]);
    check(&bytes, &Message::Notification(Notification { code: 6, subcode: 2, data: b"\x03bye".to_vec() }), &FOUR);

    // ROUTE-REFRESH (RFC 2918 3): AFI 2, reserved, SAFI 1. Length 23.
    let bytes = wire(&[&MARKER, &[0x00, 0x17, 0x05, 0x00, 0x02, 0x00, 0x01]]);
    check(&bytes, &Message::RouteRefresh(RouteRefresh { afi: Afi::Ipv6, safi: Safi::Unicast }), &FOUR);
}

#[test]
fn extended_length_is_read_whatever_the_size_and_written_only_past_255() {
    // COMMUNITIES with the Extended Length bit (0x10) and a 2-octet length of 4. Message length 50.
    let bytes = wire(&[
        &MARKER,
        &[0x00, 0x32, 0x02, 0x00, 0x00, 0x00, 0x16],
        &[0x40, 0x01, 0x01, 0x00],
        &[0x40, 0x02, 0x00],
        &[0x40, 0x03, 0x04, 192, 0, 2, 1],
        &[0xd0, 0x08, 0x00, 0x04, 0xfc, 0x00, 0x00, 0x01],
        &[0x20, 198, 51, 100, 10],
    ]);
    let Some((Message::Update(update), 50)) = decode(&bytes, &FOUR).unwrap() else { panic!("not an UPDATE") };
    assert_eq!(update.attributes.communities, vec![0xfc00_0001]);
    assert_eq!(update.attributes.as_path, vec![], "an empty AS_PATH (iBGP) is valid");

    let mut many = update;
    many.attributes.communities = (0..65).collect(); // 260 octets
    let bytes = encode_to_vec(&Message::Update(many.clone()), &FOUR).unwrap();
    let at = 19 + 4 + 4 + 3 + 7;
    assert_eq!(bytes[at..at + 4], [0xd0, 0x08, 0x01, 0x04], "extended length 260");
    assert_eq!(decode(&bytes, &FOUR).unwrap(), Some((Message::Update(many), bytes.len())));
}

#[test]
fn host_bits_past_the_prefix_length_are_masked() {
    // NLRI /20 with octets 198.51.111: the low 4 bits of 111 (0x6f) are past the length, so 198.51.96.0/20.
    let bytes = wire(&[
        &MARKER,
        &[0x00, 0x29, 0x02, 0x00, 0x00, 0x00, 0x0e], // length 41
        &[0x40, 0x01, 0x01, 0x00, 0x40, 0x02, 0x00, 0x40, 0x03, 0x04, 192, 0, 2, 1],
        &[0x14, 198, 51, 111],
    ]);
    let Some((Message::Update(update), 41)) = decode(&bytes, &FOUR).unwrap() else { panic!("not an UPDATE") };
    assert_eq!(update.nlri, vec![p("198.51.96.0/20")]);
    assert_eq!(update.nlri[0].addr(), IpAddr::V4(v4("198.51.96.0")));
}

#[test]
fn unknown_optional_and_known_unkept_attributes_are_skipped_and_duplicates_dropped() {
    let bytes = wire(&[
        &MARKER,
        &[0x00, 0x4b, 0x02, 0x00, 0x00, 0x00, 0x2f], // length 75; attributes 47
        &[0x40, 0x01, 0x01, 0x00, 0x40, 0x02, 0x00, 0x40, 0x03, 0x04, 192, 0, 2, 1],
        &[0x40, 0x06, 0x00],                              // ATOMIC_AGGREGATE
        &[0xc0, 0x07, 0x08, 0, 0, 0xfc, 0, 192, 0, 2, 1], // AGGREGATOR (4-octet)
        &[0xe0, 0x63, 0x02, 0xbe, 0xef],                  // type 99, optional transitive partial
        &[0xc0, 0x08, 0x04, 0xfc, 0x00, 0x00, 0x01],      // COMMUNITIES 64512:1
        &[0xc0, 0x08, 0x04, 0xfc, 0x00, 0x00, 0x02],      // again: discarded (RFC 7606 3 g)
        &[0x20, 198, 51, 100, 10],
    ]);
    let Some((Message::Update(update), 75)) = decode(&bytes, &FOUR).unwrap() else { panic!("not an UPDATE") };
    assert_eq!(
        update,
        Update {
            withdrawn: vec![],
            attributes: PathAttributes {
                next_hop: Some(v4("192.0.2.1")),
                communities: vec![0xfc00_0001],
                ..PathAttributes::default()
            },
            nlri: vec![p("198.51.100.10/32")],
        }
    );
}

#[test]
fn a_stream_yields_one_message_at_a_time_and_waits_for_the_rest() {
    let mut stream = Vec::new();
    let first = Message::Update(ipv4_update());
    let second = Message::Keepalive;
    encode(&first, &FOUR, &mut stream).unwrap();
    encode(&second, &FOUR, &mut stream).unwrap();
    let first_len = encoded_len(&first, &FOUR);

    for cut in 0..first_len {
        assert_eq!(decode(&stream[..cut], &FOUR).unwrap(), None, "{cut} bytes are not a message");
    }
    assert_eq!(frame_len(&stream[..HEADER]).unwrap(), Some(first_len));
    let (msg, used) = decode(&stream, &FOUR).unwrap().unwrap();
    assert_eq!((msg, used), (first, first_len));
    assert_eq!(decode(&stream[used..], &FOUR).unwrap(), Some((second, 19)));
}

const HEADER: usize = 19;
