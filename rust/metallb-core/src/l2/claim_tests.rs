//! Claims on announced addresses: a table of frames that are and are not another station's claim, and properties
//! over generated ARP and NDP frames (a claim never changes the answer, our own MACs never claim, every claim
//! names an announced address and a foreign station).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;
use crate::packet::{NeighborAdvertisement, NeighborSolicitation, VlanTag};

const OUR_MAC: MacAddr = MacAddr::new(0x00, 0x00, 0x5e, 0x00, 0x53, 0xaa);
/// Another interface of this node (on the same segment, or bridged to it).
const OUR_OTHER_MAC: MacAddr = MacAddr::new(0x00, 0x00, 0x5e, 0x00, 0x53, 0xab);
const CLIENT_MAC: MacAddr = MacAddr::new(0x00, 0x00, 0x5e, 0x00, 0x53, 0x01);
/// The host that claims our address.
const THIEF_MAC: MacAddr = MacAddr::new(0x00, 0x00, 0x5e, 0x00, 0x53, 0x66);
const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const SERVICE_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const SECOND_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 12);
const OTHER_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
const OURS: [MacAddr; 1] = [OUR_OTHER_MAC];

fn v6(text: &str) -> Ipv6Addr {
    text.parse().unwrap()
}

fn client_v6() -> Ipv6Addr {
    v6("2001:db8::c")
}

fn service_v6() -> Ipv6Addr {
    v6("2001:db8::5")
}

fn iface() -> Interface {
    Interface { mac: OUR_MAC, link_local: None }
}

fn announced() -> HashSet<IpAddr> {
    [IpAddr::V4(SERVICE_V4), IpAddr::V4(SECOND_V4), IpAddr::V6(service_v6())].into_iter().collect()
}

fn arp(dst: MacAddr, src: MacAddr, packet: ArpPacket) -> Vec<u8> {
    packet.to_frame(dst, src, None).to_vec()
}

/// The packet from `src`, to the multicast MAC of a multicast destination or else to our MAC.
fn ndp(src: MacAddr, packet: NdpPacket) -> Vec<u8> {
    let dst = if packet.dst.is_multicast() { multicast_mac(packet.dst) } else { OUR_MAC };
    packet.to_frame(dst, src, None).unwrap().to_vec()
}

fn claim(ip: impl Into<IpAddr>, mac: MacAddr) -> Option<Claim> {
    Some(Claim { ip: ip.into(), mac })
}

fn cases() -> Vec<(&'static str, Vec<u8>, Option<Claim>)> {
    let garp_request = ArpPacket::gratuitous_request(THIEF_MAC, SERVICE_V4).unwrap();
    let garp_reply = ArpPacket::gratuitous_reply(THIEF_MAC, SERVICE_V4).unwrap();
    let reply_from_it = ArpPacket::new(ArpOp::Reply, THIEF_MAC, SERVICE_V4, OUR_MAC, CLIENT_V4).unwrap();
    let request_from_it = ArpPacket::request(THIEF_MAC, SERVICE_V4, CLIENT_V4).unwrap();
    let client_request = ArpPacket::request(CLIENT_MAC, CLIENT_V4, SERVICE_V4).unwrap();
    let rfc5227_probe = ArpPacket::request(CLIENT_MAC, Ipv4Addr::UNSPECIFIED, SERVICE_V4).unwrap();
    let unsolicited_na = NdpPacket::unsolicited_advertisement(service_v6(), service_v6(), THIEF_MAC).unwrap();
    let solicited_na_without_option = NdpPacket::new(
        service_v6(),
        client_v6(),
        NdpMessage::Advertisement(NeighborAdvertisement {
            router_flag: false,
            solicited_flag: true,
            override_flag: true,
            target: service_v6(),
            target_link_layer: None,
        }),
    )
    .unwrap();
    let ns_from_it = NdpPacket::solicitation(service_v6(), client_v6(), Some(THIEF_MAC)).unwrap();
    let tagged = garp_request.to_frame(MacAddr::BROADCAST, THIEF_MAC, Some(VlanTag::new(0, false, 7).unwrap()));
    vec![
        (
            "gratuitous ARP, request form",
            arp(MacAddr::BROADCAST, THIEF_MAC, garp_request),
            claim(SERVICE_V4, THIEF_MAC),
        ),
        ("gratuitous ARP, reply form", arp(MacAddr::BROADCAST, THIEF_MAC, garp_reply), claim(SERVICE_V4, THIEF_MAC)),
        ("ARP reply sent from the address", arp(OUR_MAC, THIEF_MAC, reply_from_it), claim(SERVICE_V4, THIEF_MAC)),
        (
            "ARP request sent from the address",
            arp(MacAddr::BROADCAST, THIEF_MAC, request_from_it),
            claim(SERVICE_V4, THIEF_MAC),
        ),
        (
            "ARP sender hardware address is what neighbors cache, not the Ethernet source",
            arp(MacAddr::BROADCAST, CLIENT_MAC, garp_request),
            claim(SERVICE_V4, THIEF_MAC),
        ),
        ("unsolicited NA", ndp(THIEF_MAC, unsolicited_na), claim(service_v6(), THIEF_MAC)),
        (
            "solicited NA without target link-layer option: the Ethernet source",
            ndp(THIEF_MAC, solicited_na_without_option),
            claim(service_v6(), THIEF_MAC),
        ),
        ("NS sent from the address", ndp(THIEF_MAC, ns_from_it), claim(service_v6(), THIEF_MAC)),
        ("client's ARP request", arp(MacAddr::BROADCAST, CLIENT_MAC, client_request), None),
        ("RFC 5227 probe", arp(MacAddr::BROADCAST, CLIENT_MAC, rfc5227_probe), None),
        (
            "gratuitous ARP for an address not announced",
            arp(MacAddr::BROADCAST, THIEF_MAC, ArpPacket::gratuitous_request(THIEF_MAC, OTHER_V4).unwrap()),
            None,
        ),
        (
            "our announcement from another of our interfaces",
            arp(MacAddr::BROADCAST, OUR_OTHER_MAC, ArpPacket::gratuitous_reply(OUR_OTHER_MAC, SERVICE_V4).unwrap()),
            None,
        ),
        (
            "our NA from another of our interfaces",
            ndp(
                OUR_OTHER_MAC,
                NdpPacket::unsolicited_advertisement(service_v6(), service_v6(), OUR_OTHER_MAC).unwrap(),
            ),
            None,
        ),
        ("our own announcement", announcement(IpAddr::V4(SERVICE_V4), &iface()).unwrap()[0].to_vec(), None),
        (
            "ARP sender is this interface's MAC behind another Ethernet source",
            arp(MacAddr::BROADCAST, CLIENT_MAC, ArpPacket::gratuitous_request(OUR_MAC, SERVICE_V4).unwrap()),
            None,
        ),
        (
            "NA for an address not announced",
            ndp(THIEF_MAC, NdpPacket::unsolicited_advertisement(client_v6(), client_v6(), THIEF_MAC).unwrap()),
            None,
        ),
        ("DAD probe for the address", ndp(CLIENT_MAC, NdpPacket::dad_probe(service_v6()).unwrap()), None),
        (
            "client's NS for the address",
            ndp(CLIENT_MAC, NdpPacket::solicitation(client_v6(), service_v6(), Some(CLIENT_MAC)).unwrap()),
            None,
        ),
        ("VLAN-tagged gratuitous ARP (the VLAN's interface sees it)", tagged.to_vec(), None),
        (
            "ARP sender hardware address is a group address",
            arp(MacAddr::BROADCAST, THIEF_MAC, ArpPacket { sender_mac: MacAddr::BROADCAST, ..garp_request }),
            None,
        ),
        ("truncated", arp(MacAddr::BROADCAST, THIEF_MAC, garp_request)[..30].to_vec(), None),
    ]
}

#[test]
fn claims_are_told_apart_from_questions_and_our_own_frames() {
    let mut failures = Vec::new();
    for (name, frame, want) in cases() {
        let verdict = examine(&frame, &announced(), &iface(), &OURS);
        if verdict.claim != want {
            failures.push(format!("{name}: got {:?}, want {want:?}", verdict.claim));
        }
        if verdict.decision != decide(&frame, &announced(), &iface()) {
            failures.push(format!("{name}: the decision differs from decide()'s"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_claim_changes_no_answer_and_a_probe_is_defended() {
    // Another host, using one announced address as its own, asks for the other one: answered and reported.
    let request = ArpPacket::request(THIEF_MAC, SECOND_V4, SERVICE_V4).unwrap();
    let verdict = examine(&arp(MacAddr::BROADCAST, THIEF_MAC, request), &announced(), &iface(), &OURS);
    assert!(matches!(verdict.decision, Decision::Reply(Reply::Arp { .. })), "{verdict:?}");
    assert_eq!(verdict.claim, claim(SECOND_V4, THIEF_MAC));
    let probe = ndp(CLIENT_MAC, NdpPacket::dad_probe(service_v6()).unwrap());
    let verdict = examine(&probe, &announced(), &iface(), &OURS);
    assert!(matches!(verdict.decision, Decision::Reply(Reply::Ndp { .. })), "{verdict:?}");
    assert_eq!(verdict.claim, None);
}

#[test]
fn an_address_announced_on_another_interface_is_not_claimed_here() {
    let frame = arp(MacAddr::BROADCAST, THIEF_MAC, ArpPacket::gratuitous_request(THIEF_MAC, SERVICE_V4).unwrap());
    let here: &[IpAddr] = &[IpAddr::V4(SECOND_V4)];
    assert_eq!(examine(&frame, here, &iface(), &OURS).claim, None);
}

fn mac() -> impl Strategy<Value = MacAddr> {
    prop_oneof![
        Just(OUR_MAC),
        Just(OUR_OTHER_MAC),
        Just(CLIENT_MAC),
        Just(THIEF_MAC),
        Just(MacAddr::BROADCAST),
        Just(MacAddr::ZERO),
        any::<[u8; 6]>().prop_map(MacAddr),
    ]
}

fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        Just(SERVICE_V4),
        Just(SECOND_V4),
        Just(OTHER_V4),
        Just(CLIENT_V4),
        Just(Ipv4Addr::UNSPECIFIED),
        any::<[u8; 4]>().prop_map(Ipv4Addr::from),
    ]
}

fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    prop_oneof![
        Just(service_v6()),
        Just(client_v6()),
        Just(Ipv6Addr::UNSPECIFIED),
        any::<[u8; 16]>().prop_map(Ipv6Addr::from)
    ]
}

fn arp_frame() -> impl Strategy<Value = (Vec<u8>, ArpPacket, MacAddr)> {
    (any::<bool>(), mac(), ipv4(), mac(), ipv4(), mac(), mac()).prop_map(
        |(reply, sender_mac, sender_ip, target_mac, target_ip, dst, src)| {
            let op = if reply { ArpOp::Reply } else { ArpOp::Request };
            let packet = ArpPacket { op, sender_mac, sender_ip, target_mac, target_ip };
            (packet.to_frame(dst, src, None).to_vec(), packet, src)
        },
    )
}

/// Neighbor discovery frames the packet layer accepts to build, from any source MAC.
fn ndp_frame() -> impl Strategy<Value = (Vec<u8>, NdpPacket, MacAddr)> {
    let message = prop_oneof![
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
    ];
    let dst = prop_oneof![Just(ALL_NODES), Just(solicited_node_multicast(service_v6())), ipv6()];
    (ipv6(), dst, message, mac()).prop_filter_map("not a valid NDP packet", |(src, dst, message, eth_src)| {
        let packet = NdpPacket::new(src, dst, message).ok()?;
        let eth_dst = if dst.is_multicast() { multicast_mac(dst) } else { OUR_MAC };
        Some((packet.to_frame(eth_dst, eth_src, None).ok()?.to_vec(), packet, eth_src))
    })
}

/// What must hold of every verdict: the decision is [`decide`]'s, a claim names an announced address and a
/// station's address that is none of ours, and nothing from one of our MACs claims.
fn check(frame: &[u8], eth_src: MacAddr, claimed_mac: Option<MacAddr>) -> Result<Verdict, TestCaseError> {
    let verdict = examine(frame, &announced(), &iface(), &OURS);
    prop_assert_eq!(&verdict.decision, &decide(frame, &announced(), &iface()));
    if let Some(found) = verdict.claim {
        prop_assert!(announced().contains(&found.ip), "{found:?}");
        prop_assert!(found.mac.is_unicast() && found.mac != OUR_MAC && !OURS.contains(&found.mac), "{found:?}");
    }
    for ours in [OUR_MAC, OUR_OTHER_MAC] {
        if claimed_mac == Some(ours) || (claimed_mac.is_none() && eth_src == ours) {
            prop_assert_eq!(verdict.claim, None);
        }
    }
    Ok(verdict)
}

proptest! {
    #[test]
    fn arp_claims_are_exactly_foreign_senders_of_announced_addresses((frame, packet, src) in arp_frame()) {
        let verdict = check(&frame, src, Some(packet.sender_mac))?;
        let foreign = |mac: MacAddr| mac.is_unicast() && mac != OUR_MAC && !OURS.contains(&mac);
        if foreign(src) && foreign(packet.sender_mac) && announced().contains(&IpAddr::V4(packet.sender_ip)) {
            prop_assert_eq!(verdict.claim, claim(packet.sender_ip, packet.sender_mac));
        } else if !announced().contains(&IpAddr::V4(packet.sender_ip)) {
            prop_assert_eq!(verdict.claim, None);
        }
    }

    #[test]
    fn ndp_claims_name_the_advertised_target_and_probes_never_claim((frame, packet, src) in ndp_frame()) {
        let link_layer = match packet.message {
            NdpMessage::Advertisement(na) => na.target_link_layer,
            NdpMessage::Solicitation(ns) => ns.source_link_layer,
        };
        let verdict = check(&frame, src, link_layer)?;
        match (packet.message, verdict.claim) {
            (NdpMessage::Solicitation(_), Some(found)) => {
                prop_assert!(!packet.src.is_unspecified(), "a DAD probe claimed {found:?}");
                prop_assert_eq!(found.ip, IpAddr::V6(packet.src));
            }
            (NdpMessage::Advertisement(na), Some(found)) => prop_assert_eq!(found.ip, IpAddr::V6(na.target)),
            (NdpMessage::Advertisement(na), None) => {
                let foreign = |mac: MacAddr| mac.is_unicast() && mac != OUR_MAC && !OURS.contains(&mac);
                let named = na.target_link_layer.unwrap_or(src);
                prop_assert!(
                    !(foreign(src) && foreign(named) && announced().contains(&IpAddr::V6(na.target))),
                    "a foreign advertisement for an announced address was not a claim"
                );
            }
            (NdpMessage::Solicitation(_), None) => {}
        }
    }

    /// Valid ARP and NDP frames with one byte changed and the end cut anywhere: whatever the parse makes of
    /// them, examining them does not panic and a claim still names an announced address.
    #[test]
    fn damaged_frames_examine_without_panicking(
        frame in prop_oneof![arp_frame().prop_map(|(frame, _, _)| frame), ndp_frame().prop_map(|(frame, _, _)| frame)],
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        keep in any::<prop::sample::Index>(),
    ) {
        let mut damaged = frame.clone();
        damaged[at.index(frame.len())] = byte;
        damaged.truncate(keep.index(frame.len() + 1));
        let verdict = examine(&damaged, &announced(), &iface(), &OURS);
        if let Some(found) = verdict.claim {
            prop_assert!(announced().contains(&found.ip));
        }
    }

    #[test]
    fn any_bytes_examine_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let verdict = examine(&bytes, &announced(), &iface(), &OURS);
        if let Some(found) = verdict.claim {
            prop_assert!(announced().contains(&found.ip));
        }
    }
}
