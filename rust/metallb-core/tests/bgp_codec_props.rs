//! Properties of the BGP codec over generated messages, on 2- and 4-octet AS sessions: decode(encode(m)) is m,
//! using exactly the encoded bytes; encoded_len is the encoded length; no strict prefix of a message decodes;
//! and arbitrary bytes after a valid header never panic the decoder.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::collection::vec;
use proptest::prelude::*;

use metallb_core::bgp::{
    decode, encode, encoded_len, Afi, AsSegment, Capability, CodecOptions, ErrorAction, GracefulRestart, Message,
    MpReach, MpUnreach, Notification, Open, Origin, PathAttributes, Prefix, RouteRefresh, Safi, Update,
};

fn afi() -> impl Strategy<Value = Afi> {
    prop_oneof![Just(Afi::Ipv4), Just(Afi::Ipv6)]
}

fn prefix_of(afi: Afi) -> BoxedStrategy<Prefix> {
    match afi {
        Afi::Ipv4 => (any::<u32>(), 0u8..=32)
            .prop_map(|(a, len)| Prefix::new(IpAddr::V4(Ipv4Addr::from(a)), len).unwrap())
            .boxed(),
        Afi::Ipv6 => (any::<u128>(), 0u8..=128)
            .prop_map(|(a, len)| Prefix::new(IpAddr::V6(Ipv6Addr::from(a)), len).unwrap())
            .boxed(),
    }
}

/// ASNs around the interesting edges: small, AS_TRANS itself, 65535/65536, and anything.
fn asn() -> impl Strategy<Value = u32> {
    prop_oneof![1u32..=65535, Just(23456), Just(65535), Just(65536), any::<u32>()]
}

fn segment() -> impl Strategy<Value = AsSegment> {
    prop_oneof![
        3 => vec(asn(), 1..8).prop_map(AsSegment::Sequence),
        1 => vec(asn(), 1..5).prop_map(AsSegment::Set),
    ]
}

fn mp_reach() -> impl Strategy<Value = MpReach> {
    afi().prop_flat_map(|afi| {
        let next_hops = match afi {
            Afi::Ipv4 => any::<u32>().prop_map(|a| vec![IpAddr::V4(a.into())]).boxed(),
            Afi::Ipv6 => vec(any::<u128>().prop_map(|a| IpAddr::V6(a.into())), 1..=2).boxed(),
        };
        (next_hops, vec(prefix_of(afi), 0..12)).prop_map(move |(next_hops, nlri)| MpReach {
            afi,
            safi: Safi::Unicast,
            next_hops,
            nlri,
        })
    })
}

fn mp_unreach() -> impl Strategy<Value = MpUnreach> {
    afi().prop_flat_map(|afi| {
        vec(prefix_of(afi), 0..12).prop_map(move |withdrawn| MpUnreach { afi, safi: Safi::Unicast, withdrawn })
    })
}

fn origin() -> impl Strategy<Value = Origin> {
    prop_oneof![Just(Origin::Igp), Just(Origin::Egp), Just(Origin::Incomplete)]
}

fn update() -> impl Strategy<Value = Update> {
    (
        vec(prefix_of(Afi::Ipv4), 0..12),
        vec(prefix_of(Afi::Ipv4), 0..12),
        (origin(), vec(segment(), 0..4), any::<Option<u32>>(), any::<Option<u32>>(), any::<Option<u32>>()),
        (vec(any::<u32>(), 0..6), vec(any::<(u32, u32, u32)>(), 0..4)),
        (proptest::option::of(mp_reach()), proptest::option::of(mp_unreach())),
    )
        .prop_map(
            |(withdrawn, nlri, (origin, as_path, next_hop, med, local_pref), (communities, large), (r, u))| {
                // IPv4 NLRI needs a NEXT_HOP (the encoder refuses it otherwise).
                let next_hop = match (next_hop, nlri.is_empty()) {
                    (None, false) => Some(Ipv4Addr::new(192, 0, 2, 1)),
                    (nh, _) => nh.map(Ipv4Addr::from),
                };
                Update {
                    withdrawn,
                    attributes: PathAttributes {
                        origin,
                        as_path,
                        next_hop,
                        med,
                        local_pref,
                        communities,
                        large_communities: large,
                        mp_reach: r,
                        mp_unreach: u,
                    },
                    nlri,
                }
            },
        )
}

fn capability() -> impl Strategy<Value = Capability> {
    let family = (afi(), Just(Safi::Unicast));
    prop_oneof![
        family.prop_map(|(a, s)| Capability::Multiprotocol(a, s)),
        Just(Capability::RouteRefresh),
        (any::<bool>(), 0u16..=4095, vec((afi(), Just(Safi::Unicast), any::<bool>()), 0..3)).prop_map(
            |(restarting, restart_time, families)| {
                Capability::GracefulRestart(GracefulRestart { restarting, restart_time, families })
            }
        ),
        // Codes we parse ourselves would not come back as Unknown.
        (any::<u8>().prop_filter("a known code", |c| ![1, 2, 64, 65].contains(c)), vec(any::<u8>(), 0..16))
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    (asn(), any::<u16>(), 1u32.., vec(capability(), 0..8), any::<bool>(), any::<prop::sample::Index>()).prop_map(
        |(asn, hold_time, id, mut capabilities, four, at)| {
            // The 4-octet AS capability carries the ASN itself; an ASN over 65535 cannot go without it.
            if four || asn > 65535 {
                let at = at.index(capabilities.len() + 1);
                capabilities.insert(at, Capability::FourOctetAs(asn));
            }
            let hold_time = if hold_time == 1 || hold_time == 2 { 3 } else { hold_time };
            Open { asn, hold_time, router_id: Ipv4Addr::from(id), capabilities }
        },
    )
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        1 => open().prop_map(Message::Open),
        4 => update().prop_map(Message::Update),
        1 => (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..64))
            .prop_map(|(code, subcode, data)| Message::Notification(Notification { code, subcode, data })),
        1 => Just(Message::Keepalive),
        1 => afi().prop_map(|afi| Message::RouteRefresh(RouteRefresh { afi, safi: Safi::Unicast })),
    ]
}

fn options() -> impl Strategy<Value = CodecOptions> {
    any::<bool>().prop_map(|four_octet_as| CodecOptions { four_octet_as })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decode_inverts_encode(msg in message(), opts in options(), junk in vec(any::<u8>(), 0..8)) {
        let mut bytes = vec![0xaa];
        encode(&msg, &opts, &mut bytes).unwrap();
        let wire = &bytes[1..];
        prop_assert_eq!(wire.len(), encoded_len(&msg, &opts));
        // Whatever follows in the stream is not read.
        let stream = [wire, &junk].concat();
        prop_assert_eq!(decode(&stream, &opts).unwrap(), Some((msg, wire.len())));
    }

    #[test]
    fn no_strict_prefix_of_a_message_decodes(msg in message(), opts in options(), cut in any::<prop::sample::Index>()) {
        let mut bytes = Vec::new();
        encode(&msg, &opts, &mut bytes).unwrap();
        let cut = cut.index(bytes.len());
        prop_assert_eq!(decode(&bytes[..cut], &opts).unwrap(), None);
    }

    /// A valid header of each type around arbitrary bodies: the decoder answers without panicking, an accepted
    /// message re-encodes and decodes to itself, and an error is consistent about what to do next.
    #[test]
    fn arbitrary_bodies_never_panic(kind in 1u8..=5, body in vec(any::<u8>(), 0..200), opts in options()) {
        let len = u16::try_from(19 + body.len()).unwrap();
        let bytes = [&[0xff; 16][..], &len.to_be_bytes(), &[kind], &body].concat();
        match decode(&bytes, &opts) {
            Ok(Some((msg, used))) => {
                prop_assert_eq!(used, bytes.len());
                let mut again = Vec::new();
                encode(&msg, &opts, &mut again).unwrap();
                prop_assert_eq!(decode(&again, &opts).unwrap(), Some((msg, again.len())));
            }
            Ok(None) => prop_assert!(false, "a whole message was not decoded"),
            Err(e) => {
                let _ = (e.notification(), e.to_string());
                if e.action() != ErrorAction::ResetSession {
                    prop_assert_eq!(e.message_len, Some(bytes.len()));
                }
            }
        }
    }
}
