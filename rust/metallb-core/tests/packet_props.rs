//! Property tests: whatever the constructors accept survives build -> parse unchanged; any bytes parse or fail
//! without panicking; and whatever parses is a fixed point of parse(to_bytes(...)).

use std::net::{Ipv4Addr, Ipv6Addr};

use metallb_core::packet::{
    icmpv6_checksum, solicited_node_multicast, ArpOp, ArpPacket, EtherType, EthernetFrame, EthernetHeader, Ipv6Header,
    MacAddr, NdpMessage, NdpPacket, NeighborAdvertisement, NeighborSolicitation, VlanTag, ALL_NODES, MIN_FRAME_LEN,
};
use proptest::prelude::*;

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}

fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

/// Mostly ordinary addresses, with the ones the validity rules single out often enough to matter.
fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    prop_oneof![
        4 => any::<[u8; 16]>().prop_map(Ipv6Addr::from),
        1 => Just(Ipv6Addr::UNSPECIFIED),
        1 => Just(ALL_NODES),
        1 => any::<[u8; 3]>().prop_map(|low| solicited_node_multicast(Ipv6Addr::from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, low[0], low[1], low[2]]))),
    ]
}

fn vlan() -> impl Strategy<Value = Option<VlanTag>> {
    proptest::option::of((0u8..8, any::<bool>(), 0u16..4095).prop_map(|(p, d, id)| VlanTag::new(p, d, id).unwrap()))
}

fn arp() -> impl Strategy<Value = ArpPacket> {
    (prop_oneof![Just(ArpOp::Request), Just(ArpOp::Reply)], mac(), ipv4(), mac(), ipv4()).prop_map(
        |(op, sender_mac, sender_ip, target_mac, target_ip)| ArpPacket {
            op,
            sender_mac,
            sender_ip,
            target_mac,
            target_ip,
        },
    )
}

fn ndp_message() -> impl Strategy<Value = NdpMessage> {
    prop_oneof![
        (ipv6(), proptest::option::of(mac())).prop_map(|(target, source_link_layer)| {
            NdpMessage::Solicitation(NeighborSolicitation { target, source_link_layer })
        }),
        (any::<[bool; 3]>(), ipv6(), proptest::option::of(mac())).prop_map(|(flags, target, target_link_layer)| {
            NdpMessage::Advertisement(NeighborAdvertisement {
                router_flag: flags[0],
                solicited_flag: flags[1],
                override_flag: flags[2],
                target,
                target_link_layer,
            })
        }),
    ]
}

/// A well-formed frame of either kind, as bytes.
fn valid_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (arp(), mac(), mac(), vlan()).prop_map(|(p, dst, src, tag)| p.to_frame(dst, src, tag).to_vec()),
        (ipv6(), ipv6(), ndp_message(), mac(), mac(), vlan()).prop_filter_map(
            "invalid NDP",
            |(s, d, m, dst, src, tag)| {
                let packet = NdpPacket::new(s, d, m).ok()?;
                Some(packet.to_frame(dst, src, tag).unwrap().to_vec())
            }
        ),
    ]
}

proptest! {
    #[test]
    fn mac_text_round_trips(m in mac()) {
        prop_assert_eq!(m.to_string().parse::<MacAddr>(), Ok(m));
        prop_assert_eq!(m.to_string().to_uppercase().replace(':', "-").parse::<MacAddr>(), Ok(m));
    }

    #[test]
    fn mac_parse_of_any_text_never_panics(text in "\\PC{0,20}") {
        let _ = text.parse::<MacAddr>();
    }

    #[test]
    fn arp_build_parse_is_identity(p in arp(), dst in mac(), src in mac(), tag in vlan()) {
        prop_assert_eq!(ArpPacket::parse(&p.to_bytes()), Ok(p));
        let frame = p.to_frame(dst, src, tag);
        prop_assert_eq!(frame.len(), MIN_FRAME_LEN);
        let parsed = EthernetFrame::parse(&frame).unwrap();
        prop_assert_eq!(parsed.header, EthernetHeader { dst, src, vlan: tag, ethertype: EtherType::ARP });
        prop_assert_eq!(ArpPacket::parse(parsed.payload), Ok(p));
    }

    #[test]
    fn arp_replies_and_announcements_parse_back(p in arp(), ours in mac()) {
        for built in [p.reply_to(ours), ArpPacket::gratuitous_request(ours, p.target_ip), ArpPacket::gratuitous_reply(ours, p.target_ip)] {
            match built {
                Ok(built) => prop_assert_eq!(ArpPacket::parse(&built.to_bytes()), Ok(built)),
                Err(_) => prop_assert!(ours.is_multicast() || p.op == ArpOp::Reply),
            }
        }
    }

    #[test]
    fn ndp_build_parse_is_identity(src in ipv6(), dst in ipv6(), message in ndp_message(), macs in (mac(), mac()), tag in vlan()) {
        if let Ok(p) = NdpPacket::new(src, dst, message) {
            let bytes = p.to_bytes().unwrap();
            prop_assert_eq!(bytes.len(), p.wire_len());
            prop_assert_eq!(icmpv6_checksum(src, dst, &bytes[40..]), 0);
            prop_assert_eq!(NdpPacket::parse(&bytes), Ok(p));
            let frame = p.to_frame(macs.0, macs.1, tag).unwrap();
            let parsed = EthernetFrame::parse(&frame).unwrap();
            prop_assert_eq!(parsed.header, EthernetHeader { dst: macs.0, src: macs.1, vlan: tag, ethertype: EtherType::IPV6 });
            prop_assert_eq!(NdpPacket::parse(parsed.payload), Ok(p));
        } else {
            // What new() refuses, writing refuses too.
            let unchecked = NdpPacket { src, dst, message };
            prop_assert!(unchecked.to_bytes().is_err());
        }
    }

    #[test]
    fn ndp_answers_are_valid(src in ipv6(), target in ipv6(), sll in proptest::option::of(mac()), ours in mac(), from in ipv6()) {
        if let Ok(ns) = NdpPacket::solicitation(src, target, sll) {
            if let Ok(na) = ns.answer(from, ours) {
                prop_assert_eq!(NdpPacket::parse(&na.to_bytes().unwrap()), Ok(na));
                let NdpMessage::Advertisement(adv) = na.message else { panic!("an answer is an advertisement") };
                prop_assert_eq!(adv.solicited_flag, !src.is_unspecified());
                prop_assert_eq!(na.dst, if src.is_unspecified() { ALL_NODES } else { src });
                prop_assert!(adv.override_flag && adv.target == target && adv.target_link_layer == Some(ours));
            }
        }
    }

    #[test]
    fn ethernet_header_build_parse_is_identity(dst in mac(), src in mac(), tag in vlan(), ethertype in 0x0600u16.., payload in proptest::collection::vec(any::<u8>(), 0..80)) {
        let ethertype = EtherType(ethertype);
        if let Ok(header) = EthernetHeader::new(dst, src, tag, ethertype) {
            let frame = EthernetFrame { header, payload: &payload };
            let bytes = frame.to_bytes().unwrap();
            let parsed = EthernetFrame::parse(&bytes).unwrap();
            prop_assert_eq!(parsed.header, header);
            prop_assert_eq!(&parsed.payload[..payload.len()], &payload[..]);
        } else {
            prop_assert!(ethertype == EtherType::VLAN || ethertype == EtherType::QINQ);
        }
    }

    #[test]
    fn parsers_never_panic_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        let _ = EthernetFrame::parse(&bytes);
        let _ = ArpPacket::parse(&bytes);
        let _ = Ipv6Header::parse(&bytes);
        let _ = NdpPacket::parse(&bytes);
    }

    /// Mutations of valid frames reach deep into the parsers; with the checksum fixed up, into the NDP options.
    #[test]
    fn parse_to_bytes_parse_is_stable(frame in valid_frame(), edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4), fix in any::<bool>()) {
        let mut bytes = frame;
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let Ok(frame) = EthernetFrame::parse(&bytes) else { return Ok(()) };
        let (ethertype, at) = (frame.header.ethertype, bytes.len() - frame.payload.len());
        let payload = &mut bytes[at..];
        match ethertype {
            EtherType::ARP => {
                if let Ok(p) = ArpPacket::parse(payload) {
                    prop_assert_eq!(&p.to_bytes()[..], &payload[..28]);
                    prop_assert_eq!(ArpPacket::parse(&p.to_bytes()), Ok(p));
                }
            }
            EtherType::IPV6 => {
                if fix && payload.len() >= 44 {
                    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&payload[8..24]).unwrap());
                    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&payload[24..40]).unwrap());
                    let end = (40 + usize::from(u16::from_be_bytes([payload[4], payload[5]]))).min(payload.len());
                    if end >= 44 {
                        payload[42..44].fill(0);
                        let sum = icmpv6_checksum(src, dst, &payload[40..end]);
                        payload[42..44].copy_from_slice(&sum.to_be_bytes());
                    }
                }
                if let Ok(p) = NdpPacket::parse(payload) {
                    let once = p.to_bytes().unwrap();
                    let again = NdpPacket::parse(&once).unwrap();
                    prop_assert_eq!(again, p);
                    prop_assert_eq!(again.to_bytes().unwrap(), once);
                }
            }
            _ => {}
        }
    }
}
