//! Malformed BGP messages: each names its error, maps to the RFC 4271 section 6 NOTIFICATION (code, subcode,
//! data) and gets the RFC 7606 action; and values the encoder refuses, leaving the output buffer untouched.

use std::net::IpAddr;

use metallb_core::bgp::{
    decode, encode, encode_to_vec, Afi, AsSegment, Capability, CodecOptions, DecodeError, DecodeErrorKind, EncodeError,
    ErrorAction, GracefulRestart, Message, MpReach, Notification, Open, PathAttributes, Prefix, Safi, Update,
};

const MARKER: [u8; 16] = [0xff; 16];
const FOUR: CodecOptions = CodecOptions { four_octet_as: true };
const TWO: CodecOptions = CodecOptions { four_octet_as: false };

const ORIGIN: [u8; 4] = [0x40, 0x01, 0x01, 0x00];
const EMPTY_AS_PATH: [u8; 3] = [0x40, 0x02, 0x00];
const NEXT_HOP: [u8; 7] = [0x40, 0x03, 0x04, 192, 0, 2, 1];
const NLRI: [u8; 5] = [0x20, 198, 51, 100, 10];

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(19 + body.len()).unwrap();
    [&MARKER[..], &len.to_be_bytes(), &[kind], body].concat()
}

/// An UPDATE without withdrawn routes, with these path attribute bytes and NLRI bytes.
fn update(attrs: &[&[u8]], nlri: &[u8]) -> Vec<u8> {
    let attrs = attrs.concat();
    let body = [&[0, 0][..], &u16::try_from(attrs.len()).unwrap().to_be_bytes(), &attrs, nlri].concat();
    message(2, &body)
}

fn open_body(version: u8, hold: [u8; 2], id: [u8; 4], params: &[u8]) -> Vec<u8> {
    [&[version, 0xfc, 0x00][..], &hold, &id, &[u8::try_from(params.len()).unwrap()], params].concat()
}

fn error(bytes: &[u8], opts: &CodecOptions) -> DecodeError {
    match decode(bytes, opts) {
        Err(e) => e,
        other => panic!("{bytes:02x?} decoded to {other:?}"),
    }
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    opts: CodecOptions,
    notification: (u8, u8, Vec<u8>),
    action: ErrorAction,
    names: &'static str,
}

fn case(
    name: &'static str,
    bytes: Vec<u8>,
    notification: (u8, u8, &[u8]),
    action: ErrorAction,
    names: &'static str,
) -> Case {
    let (code, subcode, data) = notification;
    Case { name, bytes, opts: FOUR, notification: (code, subcode, data.to_vec()), action, names }
}

use ErrorAction::{Ignore, ResetSession as Reset, TreatAsWithdraw as Withdraw};

fn cases() -> Vec<Case> {
    let header = |marker_byte: u8, len: [u8; 2], kind: u8| {
        let mut b = MARKER.to_vec();
        b[7] = marker_byte;
        [&b[..], &len, &[kind]].concat()
    };
    let id = [192, 0, 2, 1];
    let mp_reach6 = |nh_len: u8, rest: &[u8]| -> Vec<u8> {
        let value = [&[0x00, 0x02, 0x01, nh_len][..], rest].concat();
        [&[0x80, 0x0e, u8::try_from(value.len()).unwrap()][..], &value].concat()
    };
    let nh16 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    vec![
        // --- header (RFC 4271 6.1)
        case("marker", header(0xfe, [0, 19], 4), (1, 1, &[]), Reset, "marker"),
        case("length under 19", header(0xff, [0, 18], 4), (1, 2, &[0, 18]), Reset, "length 18"),
        case("length over 4096", header(0xff, [0x10, 0x01], 2), (1, 2, &[0x10, 0x01]), Reset, "length 4097"),
        case("KEEPALIVE with a body", message(4, &[0]), (1, 2, &[0, 20]), Reset, "KEEPALIVE"),
        case("OPEN too short", message(1, &[4, 0, 0]), (1, 2, &[0, 22]), Reset, "OPEN"),
        case("ROUTE-REFRESH of 24", message(5, &[0, 1, 0, 1, 0]), (1, 2, &[0, 24]), Reset, "ROUTE-REFRESH"),
        case("type 6", header(0xff, [0, 19], 6), (1, 3, &[6]), Reset, "message type 6"),
        // --- OPEN (RFC 4271 6.2, RFC 5492, RFC 6286)
        case("version 3", message(1, &open_body(3, [0, 90], id, &[])), (2, 1, &[0, 4]), Reset, "version"),
        case("hold time 2", message(1, &open_body(4, [0, 2], id, &[])), (2, 6, &[]), Reset, "hold time"),
        case("identifier 0", message(1, &open_body(4, [0, 90], [0; 4], &[])), (2, 3, &[]), Reset, "Identifier"),
        case(
            "authentication parameter",
            message(1, &open_body(4, [0, 90], id, &[1, 1, 0])),
            (2, 4, &[]),
            Reset,
            "optional parameter type 1",
        ),
        case(
            "parameters length past the message",
            message(1, &[&open_body(4, [0, 90], id, &[2, 2, 2, 0])[..9], &[5, 2, 2, 2, 0]].concat()),
            (2, 0, &[]),
            Reset,
            "optional parameters length",
        ),
        case(
            "capability past its parameter",
            message(1, &open_body(4, [0, 90], id, &[2, 3, 65, 4, 0])),
            (2, 0, &[]),
            Reset,
            "capability",
        ),
        case(
            "4-octet AS capability of 2 octets",
            message(1, &open_body(4, [0, 90], id, &[2, 4, 65, 2, 0, 1])),
            (2, 0, &[]),
            Reset,
            "4-octet AS capability",
        ),
        // --- UPDATE framing (RFC 4271 6.3, RFC 7606 4)
        case("withdrawn length past the message", message(2, &[0, 9, 0, 0]), (3, 1, &[]), Reset, "withdrawn"),
        case("attribute length past the message", message(2, &[0, 0, 0, 9]), (3, 1, &[]), Reset, "attribute length"),
        case(
            "attribute overruns the list",
            update(&[&ORIGIN, &EMPTY_AS_PATH, &NEXT_HOP, &[0xc0, 0x08, 0x08, 0, 0, 0, 1]], &NLRI),
            (3, 1, &[]),
            Withdraw,
            "COMMUNITIES",
        ),
        case("two trailing octets", update(&[&ORIGIN, &[0x40, 0x02]], &NLRI), (3, 1, &[]), Withdraw, "trailing"),
        // --- attributes
        case(
            "unknown well-known",
            update(&[&ORIGIN, &EMPTY_AS_PATH, &NEXT_HOP, &[0x40, 0x63, 0x01, 0x07]], &NLRI),
            (3, 2, &[0x40, 0x63, 0x01, 0x07]),
            Reset,
            "type 99",
        ),
        case("missing ORIGIN", update(&[&EMPTY_AS_PATH, &NEXT_HOP], &NLRI), (3, 3, &[1]), Withdraw, "ORIGIN"),
        case("missing AS_PATH", update(&[&ORIGIN, &NEXT_HOP], &NLRI), (3, 3, &[2]), Withdraw, "AS_PATH"),
        case("missing NEXT_HOP", update(&[&ORIGIN, &EMPTY_AS_PATH], &NLRI), (3, 3, &[3]), Withdraw, "NEXT_HOP"),
        case(
            "ORIGIN marked optional",
            update(&[&[0xc0, 0x01, 0x01, 0x00], &EMPTY_AS_PATH, &NEXT_HOP], &NLRI),
            (3, 4, &[0xc0, 0x01, 0x01, 0x00]),
            Withdraw,
            "ORIGIN (type 1): flags 0xc0",
        ),
        case(
            "MED marked transitive",
            update(&[&ORIGIN, &EMPTY_AS_PATH, &NEXT_HOP, &[0xc0, 0x04, 0x04, 0, 0, 0, 1]], &NLRI),
            (3, 4, &[0xc0, 0x04, 0x04, 0, 0, 0, 1]),
            Withdraw,
            "MULTI_EXIT_DISC",
        ),
        case(
            "ORIGIN of 2 octets",
            update(&[&[0x40, 0x01, 0x02, 0x00, 0x00], &EMPTY_AS_PATH, &NEXT_HOP], &NLRI),
            (3, 5, &[0x40, 0x01, 0x02, 0x00, 0x00]),
            Withdraw,
            "ORIGIN (type 1): length 2, expected 1",
        ),
        case(
            "NEXT_HOP of 5 octets",
            update(&[&ORIGIN, &EMPTY_AS_PATH, &[0x40, 0x03, 0x05, 192, 0, 2, 1, 0]], &NLRI),
            (3, 5, &[0x40, 0x03, 0x05, 192, 0, 2, 1, 0]),
            Withdraw,
            "NEXT_HOP",
        ),
        case(
            "LOCAL_PREF of 3 octets",
            update(&[&ORIGIN, &EMPTY_AS_PATH, &NEXT_HOP, &[0x40, 0x05, 0x03, 0, 0, 100]], &NLRI),
            (3, 5, &[0x40, 0x05, 0x03, 0, 0, 100]),
            Withdraw,
            "LOCAL_PREF",
        ),
        case(
            "COMMUNITIES of 6 octets",
            update(&[&ORIGIN, &EMPTY_AS_PATH, &NEXT_HOP, &[0xc0, 0x08, 0x06, 0, 0, 0, 1, 0, 2]], &NLRI),
            (3, 5, &[0xc0, 0x08, 0x06, 0, 0, 0, 1, 0, 2]),
            Withdraw,
            "a non-zero multiple of 4",
        ),
        case(
            "empty LARGE_COMMUNITIES",
            update(&[&ORIGIN, &EMPTY_AS_PATH, &NEXT_HOP, &[0xc0, 0x20, 0x00]], &NLRI),
            (3, 5, &[0xc0, 0x20, 0x00]),
            Withdraw,
            "LARGE_COMMUNITIES",
        ),
        case(
            "ORIGIN 3",
            update(&[&[0x40, 0x01, 0x01, 0x03], &EMPTY_AS_PATH, &NEXT_HOP], &NLRI),
            (3, 6, &[0x40, 0x01, 0x01, 0x03]),
            Withdraw,
            "ORIGIN: value 3",
        ),
        case(
            "AS_CONFED_SEQUENCE",
            update(&[&ORIGIN, &[0x40, 0x02, 0x06, 0x03, 0x01, 0, 0, 0xfc, 0], &NEXT_HOP], &NLRI),
            (3, 11, &[]),
            Withdraw,
            "segment type 3",
        ),
        case(
            "empty AS_SEQUENCE",
            update(&[&ORIGIN, &[0x40, 0x02, 0x02, 0x02, 0x00], &NEXT_HOP], &NLRI),
            (3, 11, &[]),
            Withdraw,
            "empty segment",
        ),
        case(
            "AS_SEQUENCE count past the attribute",
            update(&[&ORIGIN, &[0x40, 0x02, 0x06, 0x02, 0x02, 0, 0, 0xfc, 0], &NEXT_HOP], &NLRI),
            (3, 11, &[]),
            Withdraw,
            "overruns",
        ),
        // --- NLRI (RFC 4271 6.3: Invalid Network Field; RFC 7606 5.3: session reset)
        case(
            "NLRI /33",
            update(&[&ORIGIN, &EMPTY_AS_PATH, &NEXT_HOP], &[33, 198, 51, 100, 10, 0]),
            (3, 10, &[]),
            Reset,
            "NLRI: prefix length 33 exceeds",
        ),
        case(
            "NLRI truncated",
            update(&[&ORIGIN, &EMPTY_AS_PATH, &NEXT_HOP], &[32, 198, 51]),
            (3, 10, &[]),
            Reset,
            "needs 4 octets but 2 remain",
        ),
        case("withdrawn /40", message(2, &[0, 2, 40, 1, 0, 0]), (3, 10, &[]), Reset, "withdrawn routes"),
        // --- MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760 7, RFC 7606 3 g / 5.3)
        case(
            "IPv6 next hop of 8 octets",
            update(&[&ORIGIN, &EMPTY_AS_PATH, &mp_reach6(8, &[0; 9])], &[]),
            (3, 9, &mp_reach6(8, &[0; 9])),
            Reset,
            "MP_REACH_NLRI (type 14): IPv6 next hop length",
        ),
        case(
            "IPv6 prefix /129",
            update(&[&ORIGIN, &EMPTY_AS_PATH, &mp_reach6(16, &[&nh16[..], &[0, 129]].concat())], &[]),
            (3, 9, &mp_reach6(16, &[&nh16[..], &[0, 129]].concat())),
            Reset,
            "MP_REACH_NLRI prefixes: prefix length 129",
        ),
        case(
            "MP_REACH_NLRI twice",
            update(
                &[
                    &ORIGIN,
                    &EMPTY_AS_PATH,
                    &mp_reach6(16, &[&nh16[..], &[0]].concat()),
                    &mp_reach6(16, &[&nh16[..], &[0]].concat()),
                ],
                &[],
            ),
            (3, 1, &[]),
            Reset,
            "MP_REACH_NLRI appears more than once",
        ),
        case(
            "MP_UNREACH_NLRI marked transitive",
            update(&[&[0xc0, 0x0f, 0x03, 0x00, 0x02, 0x01]], &[]),
            (3, 4, &[0xc0, 0x0f, 0x03, 0x00, 0x02, 0x01]),
            Reset,
            "MP_UNREACH_NLRI",
        ),
        case(
            "MP_UNREACH_NLRI of 2 octets",
            update(&[&[0x80, 0x0f, 0x02, 0x00, 0x02]], &[]),
            (3, 9, &[0x80, 0x0f, 0x02, 0x00, 0x02]),
            Reset,
            "shorter than AFI and SAFI",
        ),
        case(
            "a withdraw-only error before a reset one",
            update(&[&[0x40, 0x01, 0x01, 0x07], &[0x80, 0x0f, 0x03, 0, 2, 1], &[0x80, 0x0f, 0x03, 0, 2, 1]], &[]),
            (3, 1, &[]),
            Reset,
            "MP_UNREACH_NLRI appears more than once",
        ),
        // --- ROUTE-REFRESH for a family we do not speak (RFC 2918 4): ignored
        case("ROUTE-REFRESH L2VPN", message(5, &[0, 25, 0, 70]), (7, 0, &[]), Ignore, "AFI 25 SAFI 70"),
    ]
}

#[test]
fn each_malformed_message_names_its_error_and_maps_to_its_notification() {
    for c in cases() {
        let e = error(&c.bytes, &c.opts);
        let n = e.notification();
        assert_eq!((n.code, n.subcode, n.data), c.notification, "{}: {e}", c.name);
        assert_eq!(e.action(), c.action, "{}: {e}", c.name);
        let text = e.to_string();
        assert!(text.contains(c.names), "{}: {text:?} does not name {:?}", c.name, c.names);
        // A bad header cannot be skipped; anything else says how long the message was.
        let header_error = c.notification.0 == 1;
        assert_eq!(e.message_len, (!header_error).then_some(c.bytes.len()), "{}", c.name);
    }
}

#[test]
fn a_header_error_is_reported_before_the_body_arrives() {
    let mut bytes = MARKER.to_vec();
    bytes.extend_from_slice(&[0x20, 0x00, 2]); // length 8192
    assert!(matches!(error(&bytes, &FOUR).kind, DecodeErrorKind::BadMessageLength { length: 8192, .. }));
    assert_eq!(decode(&bytes[..18], &FOUR).unwrap(), None, "18 bytes are not yet a header");
}

#[test]
fn an_unknown_family_in_mp_attributes_is_skipped_and_a_bad_as4_path_discarded() {
    // MP_UNREACH_NLRI for AFI 25 / SAFI 70 (L2VPN EVPN): skipped, the UPDATE is an IPv4 End-of-RIB.
    let bytes = update(&[&[0x80, 0x0f, 0x05, 0x00, 0x19, 0x46, 0xaa, 0xbb]], &[]);
    assert_eq!(decode(&bytes, &FOUR).unwrap(), Some((Message::Update(Update::default()), bytes.len())));

    // AS4_PATH with an empty segment on a 2-octet session: discarded (RFC 6793 6), AS_PATH used as is.
    let bytes = update(
        &[&ORIGIN, &[0x40, 0x02, 0x04, 0x02, 0x01, 0x5b, 0xa0], &NEXT_HOP, &[0xc0, 0x11, 0x02, 0x02, 0x00]],
        &NLRI,
    );
    let Some((Message::Update(u), _)) = decode(&bytes, &TWO).unwrap() else { panic!("not an UPDATE") };
    assert_eq!(u.attributes.as_path, vec![AsSegment::Sequence(vec![23456])]);

    // An AS4_PATH longer than AS_PATH is ignored (RFC 6793 4.2.3).
    let bytes = update(
        &[
            &ORIGIN,
            &[0x40, 0x02, 0x04, 0x02, 0x01, 0x5b, 0xa0],
            &NEXT_HOP,
            &[0xc0, 0x11, 0x0a, 0x02, 0x02, 0, 0, 0, 1, 0, 0, 0, 2],
        ],
        &NLRI,
    );
    let Some((Message::Update(u), _)) = decode(&bytes, &TWO).unwrap() else { panic!("not an UPDATE") };
    assert_eq!(u.attributes.as_path, vec![AsSegment::Sequence(vec![23456])]);
}

fn prefix(s: &str) -> Prefix {
    let (addr, len) = s.split_once('/').unwrap();
    Prefix::new(addr.parse().unwrap(), len.parse().unwrap()).unwrap()
}

fn announce(nlri: Vec<Prefix>) -> Update {
    Update {
        withdrawn: vec![],
        attributes: PathAttributes {
            as_path: vec![AsSegment::Sequence(vec![64512])],
            next_hop: Some("192.0.2.1".parse().unwrap()),
            ..PathAttributes::default()
        },
        nlri,
    }
}

fn open(asn: u32, capabilities: Vec<Capability>) -> Message {
    Message::Open(Open { asn, hold_time: 90, router_id: "192.0.2.1".parse().unwrap(), capabilities })
}

#[test]
fn values_the_encoder_refuses_leave_the_buffer_as_it_was() {
    let many: Vec<Prefix> = (0..1000u32).map(|i| Prefix::host(IpAddr::V4((0xc633_0000 + i).into()))).collect();
    let mut no_next_hop = announce(vec![prefix("198.51.100.10/32")]);
    no_next_hop.attributes.next_hop = None;
    let mut v6_in_nlri = announce(vec![prefix("2001:db8::/64")]);
    v6_in_nlri.attributes.next_hop = Some("192.0.2.1".parse().unwrap());
    let mut wrong_next_hop = announce(vec![]);
    wrong_next_hop.attributes.mp_reach = Some(MpReach {
        afi: Afi::Ipv6,
        safi: Safi::Unicast,
        next_hops: vec!["192.0.2.1".parse().unwrap()],
        nlri: vec![prefix("2001:db8::/64")],
    });
    let mut v4_in_mp6 = announce(vec![]);
    v4_in_mp6.attributes.mp_reach = Some(MpReach {
        afi: Afi::Ipv6,
        safi: Safi::Unicast,
        next_hops: vec!["2001:db8::1".parse().unwrap()],
        nlri: vec![prefix("198.51.100.0/24")],
    });
    let mut empty_segment = announce(vec![]);
    empty_segment.attributes.as_path = vec![AsSegment::Sequence(vec![])];
    let mut huge_set = announce(vec![]);
    huge_set.attributes.as_path = vec![AsSegment::Set(vec![1; 256])];
    let gr = |restart_time| {
        Capability::GracefulRestart(GracefulRestart { restarting: false, restart_time, families: vec![] })
    };

    let refused: Vec<(Message, EncodeError)> = vec![
        (
            Message::Update(announce(many)),
            EncodeError::TooLong { message: "UPDATE", length: 19 + 4 + 4 + 9 + 7 + 5000 },
        ),
        (
            Message::Notification(Notification { code: 6, subcode: 2, data: vec![0; 4076] }),
            EncodeError::TooLong { message: "NOTIFICATION", length: 4097 },
        ),
        (Message::Update(no_next_hop), EncodeError::MissingNextHop),
        (
            Message::Update(v6_in_nlri),
            EncodeError::PrefixFamily { field: "nlri", prefix: prefix("2001:db8::/64"), expected: Afi::Ipv4 },
        ),
        (
            Message::Update(wrong_next_hop),
            EncodeError::NextHops { afi: Afi::Ipv6, next_hops: vec!["192.0.2.1".parse().unwrap()] },
        ),
        (
            Message::Update(v4_in_mp6),
            EncodeError::PrefixFamily {
                field: "mp_reach.nlri",
                prefix: prefix("198.51.100.0/24"),
                expected: Afi::Ipv6,
            },
        ),
        (Message::Update(empty_segment), EncodeError::EmptyAsSegment),
        (Message::Update(huge_set), EncodeError::AsSetTooLong { len: 256 }),
        (open(4_200_000_000, vec![]), EncodeError::OpenAsn { asn: 4_200_000_000, four_octet_capability: None }),
        (
            open(64512, vec![Capability::FourOctetAs(64513)]),
            EncodeError::OpenAsn { asn: 64512, four_octet_capability: Some(64513) },
        ),
        (
            open(64512, vec![Capability::Unknown { code: 99, value: vec![0; 256] }]),
            EncodeError::CapabilityTooLong { code: 99, length: 256 },
        ),
        (
            open(64512, vec![Capability::Unknown { code: 99, value: vec![0; 200] }; 2]),
            EncodeError::OptionalParametersTooLong { length: 406 },
        ),
        (open(64512, vec![gr(4096)]), EncodeError::RestartTime { restart_time: 4096 }),
    ];
    for (msg, expected) in refused {
        let mut out = vec![0xaa, 0xbb];
        assert_eq!(encode(&msg, &FOUR, &mut out), Err(expected.clone()), "expected {expected}");
        assert_eq!(out, [0xaa, 0xbb], "the buffer is unchanged after {expected}");
        assert!(!expected.to_string().is_empty());
    }
}

#[test]
fn an_update_filled_to_exactly_4096_octets_encodes() {
    // 19 + 4 + ORIGIN 4 + AS_PATH 9 + NEXT_HOP 7 = 43, and 5 per /32: 810 prefixes make 4093, so add a /16 (3).
    let mut nlri: Vec<Prefix> = (0..810u32).map(|i| Prefix::host(IpAddr::V4((0xc633_0000 + i).into()))).collect();
    nlri.push(prefix("203.0.0.0/16"));
    let msg = Message::Update(announce(nlri));
    let bytes = encode_to_vec(&msg, &FOUR).unwrap();
    assert_eq!(bytes.len(), 4096);
    assert_eq!(decode(&bytes, &FOUR).unwrap(), Some((msg, 4096)));
}
