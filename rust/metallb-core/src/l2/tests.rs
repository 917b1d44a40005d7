//! One case per drop reason, and the replies, as a table over frames built with the packet layer.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::packet::{solicited_node_mac, VlanTag};

const OUR_MAC: MacAddr = MacAddr::new(0x00, 0x00, 0x5e, 0x00, 0x53, 0xaa);
const CLIENT_MAC: MacAddr = MacAddr::new(0x00, 0x00, 0x5e, 0x00, 0x53, 0x01);
const OTHER_MAC: MacAddr = MacAddr::new(0x00, 0x00, 0x5e, 0x00, 0x53, 0x02);
const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const SERVICE_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const OTHER_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);

fn v6(text: &str) -> Ipv6Addr {
    text.parse().unwrap()
}

fn client_v6() -> Ipv6Addr {
    v6("2001:db8::c")
}

fn service_v6() -> Ipv6Addr {
    v6("2001:db8::5")
}

fn link_local() -> Ipv6Addr {
    v6("fe80::200:5eff:fe00:53aa")
}

fn iface() -> Interface {
    Interface { mac: OUR_MAC, link_local: Some(link_local()) }
}

fn announced() -> HashSet<IpAddr> {
    [IpAddr::V4(SERVICE_V4), IpAddr::V6(service_v6())].into_iter().collect()
}

fn arp_frame(dst: MacAddr, src: MacAddr, packet: ArpPacket) -> Vec<u8> {
    packet.to_frame(dst, src, None).to_vec()
}

fn who_has(target: Ipv4Addr) -> ArpPacket {
    ArpPacket::request(CLIENT_MAC, CLIENT_V4, target).unwrap()
}

fn ns_frame(packet: NdpPacket) -> Vec<u8> {
    let dst = if packet.dst.is_multicast() { multicast_mac(packet.dst) } else { OUR_MAC };
    packet.to_frame(dst, CLIENT_MAC, None).unwrap().to_vec()
}

fn solicit(target: Ipv6Addr) -> NdpPacket {
    NdpPacket::solicitation(client_v6(), target, Some(CLIENT_MAC)).unwrap()
}

fn drop_cases() -> Vec<(&'static str, Vec<u8>, DropReason)> {
    let tagged =
        who_has(SERVICE_V4).to_frame(MacAddr::BROADCAST, CLIENT_MAC, Some(VlanTag::new(0, false, 42).unwrap()));
    let mut ping = ns_frame(solicit(service_v6()));
    ping[20] = 17; // next header UDP
    let mut bad_checksum = ns_frame(solicit(service_v6()));
    bad_checksum[57] ^= 1;
    let unsolicited = NdpPacket::unsolicited_advertisement(client_v6(), client_v6(), CLIENT_MAC).unwrap();
    let multicast_sll = NdpPacket::solicitation(client_v6(), service_v6(), Some(MacAddr::BROADCAST)).unwrap();
    let no_sll = NdpPacket::solicitation(client_v6(), service_v6(), None).unwrap();
    let to_all_nodes = NdpPacket::new(client_v6(), ALL_NODES, solicit(service_v6()).message).unwrap();
    vec![
        (
            "truncated frame",
            vec![0xff; 10],
            DropReason::Malformed(PacketError::Truncated { what: "Ethernet header", need: 14, got: 10 }),
        ),
        (
            "bad arp opcode",
            {
                let mut f = arp_frame(MacAddr::BROADCAST, CLIENT_MAC, who_has(SERVICE_V4));
                f[21] = 3;
                f
            },
            DropReason::Malformed(PacketError::BadOpcode(3)),
        ),
        (
            "bad icmpv6 checksum",
            bad_checksum,
            DropReason::Malformed(PacketError::BadChecksum { found: 0x6d14, computed: 0x6d15 }),
        ),
        (
            "ipv4 traffic",
            {
                let mut f = arp_frame(MacAddr::BROADCAST, CLIENT_MAC, who_has(SERVICE_V4));
                f[12..14].copy_from_slice(&[0x08, 0x00]);
                f
            },
            DropReason::NotArpOrNdp,
        ),
        ("ipv6 udp", ping, DropReason::NotArpOrNdp),
        ("vlan tagged", tagged.to_vec(), DropReason::VlanTagged { vlan_id: 42 }),
        (
            "our own announcement",
            announcement(IpAddr::V4(SERVICE_V4), &iface()).unwrap()[0].to_vec(),
            DropReason::FromSelf,
        ),
        (
            "multicast ethernet source",
            arp_frame(MacAddr::BROADCAST, MacAddr::BROADCAST, who_has(SERVICE_V4)),
            DropReason::SenderNotUnicast(MacAddr::BROADCAST),
        ),
        (
            "zero arp sender",
            arp_frame(MacAddr::BROADCAST, CLIENT_MAC, ArpPacket { sender_mac: MacAddr::ZERO, ..who_has(SERVICE_V4) }),
            DropReason::SenderNotUnicast(MacAddr::ZERO),
        ),
        (
            "multicast source link-layer option",
            ns_frame(multicast_sll),
            DropReason::SenderNotUnicast(MacAddr::BROADCAST),
        ),
        (
            "arp reply",
            arp_frame(OUR_MAC, CLIENT_MAC, ArpPacket::gratuitous_reply(CLIENT_MAC, CLIENT_V4).unwrap()),
            DropReason::NotARequest,
        ),
        ("neighbor advertisement", ns_frame(unsolicited), DropReason::NotARequest),
        (
            "gratuitous arp request",
            arp_frame(MacAddr::BROADCAST, CLIENT_MAC, ArpPacket::gratuitous_request(CLIENT_MAC, SERVICE_V4).unwrap()),
            DropReason::Gratuitous,
        ),
        (
            "arp unicast to another station",
            arp_frame(OTHER_MAC, CLIENT_MAC, who_has(SERVICE_V4)),
            DropReason::EthernetDestination(OTHER_MAC),
        ),
        (
            "ns to the wrong group mac",
            solicit(service_v6()).to_frame(solicited_node_mac(v6("2001:db8::6")), CLIENT_MAC, None).unwrap().to_vec(),
            DropReason::EthernetDestination(solicited_node_mac(v6("2001:db8::6"))),
        ),
        ("ns to all nodes", ns_frame(to_all_nodes), DropReason::Ipv6Destination(ALL_NODES)),
        ("multicast ns without source link-layer", ns_frame(no_sll), DropReason::NoSourceLinkLayer),
        (
            "arp for another address",
            arp_frame(MacAddr::BROADCAST, CLIENT_MAC, who_has(OTHER_V4)),
            DropReason::NotAnnounced(IpAddr::V4(OTHER_V4)),
        ),
        (
            "ns for another address",
            ns_frame(solicit(v6("2001:db8::6"))),
            DropReason::NotAnnounced(IpAddr::V6(v6("2001:db8::6"))),
        ),
    ]
}

#[test]
fn every_drop_reason_is_decided_from_its_frame() {
    let mut failures = Vec::new();
    let mut labels = HashSet::new();
    for (name, frame, want) in drop_cases() {
        labels.insert(want.label());
        let got = decide(&frame, &announced(), &iface());
        if got != Decision::Drop(want.clone()) {
            failures.push(format!("{name}: got {got:?}, want Drop({want:?})"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(labels.len(), 11, "one case or more per drop reason: {labels:?}");
}

#[test]
fn answers_a_broadcast_arp_request() {
    let frame = arp_frame(MacAddr::BROADCAST, CLIENT_MAC, who_has(SERVICE_V4));
    let Decision::Reply(reply) = decide(&frame, &announced(), &iface()) else { panic!("no reply") };
    assert_eq!(reply.target(), IpAddr::V4(SERVICE_V4));
    let want = ArpPacket::new(ArpOp::Reply, OUR_MAC, SERVICE_V4, CLIENT_MAC, CLIENT_V4).unwrap();
    assert_eq!(reply.frame(), want.to_frame(CLIENT_MAC, OUR_MAC, None));
}

#[test]
fn answers_a_unicast_arp_request_and_an_rfc5227_probe() {
    let unicast = arp_frame(OUR_MAC, CLIENT_MAC, who_has(SERVICE_V4));
    assert!(matches!(decide(&unicast, &announced(), &iface()), Decision::Reply(_)));
    let probe = ArpPacket::request(CLIENT_MAC, Ipv4Addr::UNSPECIFIED, SERVICE_V4).unwrap();
    let Decision::Reply(Reply::Arp { packet, .. }) =
        decide(&arp_frame(MacAddr::BROADCAST, CLIENT_MAC, probe), &announced(), &iface())
    else {
        panic!("no reply")
    };
    assert_eq!((packet.target_ip, packet.target_mac), (Ipv4Addr::UNSPECIFIED, CLIENT_MAC));
}

#[test]
fn answers_a_solicitation_from_the_link_local_address() {
    let frame = ns_frame(solicit(service_v6()));
    let Decision::Reply(reply) = decide(&frame, &announced(), &iface()) else { panic!("no reply") };
    let want = solicit(service_v6()).answer(link_local(), OUR_MAC).unwrap();
    assert_eq!(reply.frame(), want.to_frame(CLIENT_MAC, OUR_MAC, None).unwrap());
    let without_link_local = Interface { link_local: None, ..iface() };
    let Decision::Reply(Reply::Ndp { packet, .. }) = decide(&frame, &announced(), &without_link_local) else {
        panic!("no reply")
    };
    assert_eq!(packet.src, service_v6());
}

#[test]
fn answers_a_unicast_solicitation_without_option_to_the_ethernet_source() {
    let ns = NdpPacket::new(client_v6(), service_v6(), solicit(service_v6()).message).unwrap();
    let ns = NdpPacket {
        message: NdpMessage::Solicitation(crate::packet::NeighborSolicitation {
            target: service_v6(),
            source_link_layer: None,
        }),
        ..ns
    };
    let frame = ns.to_frame(OUR_MAC, CLIENT_MAC, None).unwrap();
    let Decision::Reply(Reply::Ndp { header, packet }) = decide(&frame, &announced(), &iface()) else {
        panic!("no reply")
    };
    assert_eq!((header.dst, packet.dst), (CLIENT_MAC, client_v6()));
}

#[test]
fn defends_an_announced_address_against_a_dad_probe() {
    let frame = ns_frame(NdpPacket::dad_probe(service_v6()).unwrap());
    let Decision::Reply(Reply::Ndp { header, packet }) = decide(&frame, &announced(), &iface()) else {
        panic!("no reply")
    };
    assert_eq!((header.dst, packet.dst), (multicast_mac(ALL_NODES), ALL_NODES));
    let NdpMessage::Advertisement(na) = packet.message else { panic!("not an advertisement") };
    assert!(!na.solicited_flag && na.override_flag);
}

#[test]
fn announcement_frames() {
    let v4 = announcement(IpAddr::V4(SERVICE_V4), &iface()).unwrap();
    assert_eq!(v4.len(), 2);
    assert_eq!(
        v4[0],
        ArpPacket::gratuitous_request(OUR_MAC, SERVICE_V4).unwrap().to_frame(MacAddr::BROADCAST, OUR_MAC, None)
    );
    assert_eq!(
        v4[1],
        ArpPacket::gratuitous_reply(OUR_MAC, SERVICE_V4).unwrap().to_frame(MacAddr::BROADCAST, OUR_MAC, None)
    );
    let v6 = announcement(IpAddr::V6(service_v6()), &iface()).unwrap();
    let want = NdpPacket::unsolicited_advertisement(link_local(), service_v6(), OUR_MAC).unwrap();
    assert_eq!(v6, vec![want.to_frame(multicast_mac(ALL_NODES), OUR_MAC, None).unwrap()]);
}

#[test]
fn drop_reasons_read_well() {
    assert_eq!(DropReason::NotAnnounced(IpAddr::V4(OTHER_V4)).to_string(), "198.51.100.11 is not announced here");
    assert_eq!(
        DropReason::Malformed(PacketError::BadHopLimit(64)).to_string(),
        "malformed frame: hop limit 64, neighbor discovery requires 255"
    );
}

#[test]
fn slices_and_btree_sets_are_announce_sets() {
    let frame = arp_frame(MacAddr::BROADCAST, CLIENT_MAC, who_has(SERVICE_V4));
    let slice: &[IpAddr] = &[IpAddr::V4(SERVICE_V4)];
    assert!(matches!(decide(&frame, slice, &iface()), Decision::Reply(_)));
    let tree: std::collections::BTreeSet<IpAddr> = announced().into_iter().collect();
    assert!(matches!(decide(&frame, &tree, &iface()), Decision::Reply(_)));
}
