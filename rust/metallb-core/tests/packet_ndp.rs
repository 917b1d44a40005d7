//! IPv6 neighbor solicitations and advertisements: byte-exact frames worked out from RFC 4861 (checksums from an
//! independent implementation of RFC 4443 2.3), frames captured from Linux, and the RFC 4861 7.1 validity rules.

mod packet_support;

use std::net::Ipv6Addr;

use metallb_core::packet::{
    multicast_mac, solicited_node_mac, EtherType, EthernetFrame, MacAddr, NdpMessage, NdpPacket, NeighborAdvertisement,
    NeighborSolicitation, PacketError, ALL_NODES,
};
use packet_support::*;

/// Documentation MAC addresses (RFC 7042 2.1.2).
const CLIENT_MAC: MacAddr = MacAddr::new(0x00, 0x00, 0x5e, 0x00, 0x53, 0x01);
const OUR_MAC: MacAddr = MacAddr::new(0x00, 0x00, 0x5e, 0x00, 0x53, 0xaa);

fn ip(text: &str) -> Ipv6Addr {
    text.parse().unwrap()
}

fn client() -> Ipv6Addr {
    ip("2001:db8::c")
}

fn service() -> Ipv6Addr {
    ip("2001:db8::5")
}

/// Our interface's link-local address, the source MetalLB answers from.
fn our_link_local() -> Ipv6Addr {
    ip("fe80::200:5eff:fe00:53aa")
}

/// 2001:db8::c asks who has 2001:db8::5, giving its MAC in a source link-layer address option.
fn solicitation_frame() -> Vec<u8> {
    hex("3333ff000005 00005e005301 86dd
         6 00 00000 0020 3a ff 20010db800000000000000000000000c ff0200000000000000000001ff000005
         87 00 6d15 00000000 20010db8000000000000000000000005
         01 01 00005e005301")
}

/// The duplicate address detection probe for 2001:db8::5.
fn dad_probe_frame() -> Vec<u8> {
    hex("3333ff000005 00005e005301 86dd
         6 00 00000 0018 3a ff 00000000000000000000000000000000 ff0200000000000000000001ff000005
         87 00 4ce5 00000000 20010db8000000000000000000000005")
}

fn parse_frame(bytes: &[u8]) -> NdpPacket {
    let frame = EthernetFrame::parse(bytes).unwrap();
    assert_eq!(frame.header.ethertype, EtherType::IPV6);
    NdpPacket::parse(frame.payload).unwrap()
}

#[test]
fn parses_a_solicitation() {
    let packet = parse_frame(&solicitation_frame());
    let want = NdpPacket {
        src: client(),
        dst: ip("ff02::1:ff00:5"),
        message: NdpMessage::Solicitation(NeighborSolicitation {
            target: service(),
            source_link_layer: Some(CLIENT_MAC),
        }),
    };
    assert_eq!(packet, want);
    assert_eq!(NdpPacket::solicitation(client(), service(), Some(CLIENT_MAC)), Ok(want));
    let frame = want.to_frame(solicited_node_mac(service()), CLIENT_MAC, None).unwrap();
    assert_eq!(frame.as_slice(), solicitation_frame().as_slice());
}

#[test]
fn answers_a_solicitation_with_solicited_override_and_target_option() {
    let request = parse_frame(&solicitation_frame());
    let answer = request.answer(our_link_local(), OUR_MAC).unwrap();
    assert_eq!(
        answer.message,
        NdpMessage::Advertisement(NeighborAdvertisement {
            router_flag: false,
            solicited_flag: true,
            override_flag: true,
            target: service(),
            target_link_layer: Some(OUR_MAC),
        })
    );
    let want = hex("00005e005301 00005e0053aa 86dd
         6 00 00000 0020 3a ff fe8000000000000002005efffe0053aa 20010db800000000000000000000000c
         88 00 574a 60000000 20010db8000000000000000000000005
         02 01 00005e0053aa");
    assert_eq!(answer.to_frame(CLIENT_MAC, OUR_MAC, None).unwrap().as_slice(), want.as_slice());
}

#[test]
fn answers_a_dad_probe_to_all_nodes_without_solicited() {
    let probe = parse_frame(&dad_probe_frame());
    assert_eq!(NdpPacket::dad_probe(service()), Ok(probe));
    let answer = probe.answer(our_link_local(), OUR_MAC).unwrap();
    assert_eq!(answer.dst, ALL_NODES);
    let want = hex("333300000001 00005e0053aa 86dd
         6 00 00000 0020 3a ff fe8000000000000002005efffe0053aa ff020000000000000000000000000001
         88 00 c60b 20000000 20010db8000000000000000000000005
         02 01 00005e0053aa");
    let frame = answer.to_frame(multicast_mac(answer.dst), OUR_MAC, None).unwrap();
    assert_eq!(frame.as_slice(), want.as_slice());
}

#[test]
fn builds_an_unsolicited_advertisement() {
    let packet = NdpPacket::unsolicited_advertisement(our_link_local(), service(), OUR_MAC).unwrap();
    let want = hex("333300000001 00005e0053aa 86dd
         6 00 00000 0020 3a ff fe8000000000000002005efffe0053aa ff020000000000000000000000000001
         88 00 c60b 20000000 20010db8000000000000000000000005
         02 01 00005e0053aa");
    assert_eq!(packet.to_frame(multicast_mac(ALL_NODES), OUR_MAC, None).unwrap().as_slice(), want.as_slice());
}

#[test]
fn captured_ndisc6_solicitation_answers_like_the_linux_kernel() {
    let request = parse_frame(&hex(NS_FROM_NDISC6));
    assert_eq!(request.src, ip("fe80::ff:fe00:2"));
    assert_eq!(request.message.target(), ip("2001:db8::1"));
    let host1 = MacAddr::new(2, 0, 0, 0, 0, 1);
    // Linux answers from the target address itself.
    let answer = request.answer(ip("2001:db8::1"), host1).unwrap();
    let frame = answer.to_frame(MacAddr::new(2, 0, 0, 0, 0, 2), host1, None).unwrap();
    assert_eq!(frame.as_slice(), hex(NA_SOLICITED).as_slice());
}

#[test]
fn captured_kernel_dad_probe_with_nonce_option_parses() {
    let probe = parse_frame(&hex(NS_DAD_WITH_NONCE));
    assert_eq!(NdpPacket::dad_probe(ip("2001:db8::1")), Ok(probe), "the nonce option is skipped");
}

#[test]
fn captured_dad_conflict_answers_like_the_linux_kernel() {
    let probe = parse_frame(&hex(NS_DAD_CONFLICT));
    let host1 = MacAddr::new(2, 0, 0, 0, 0, 1);
    let answer = probe.answer(ip("2001:db8::1"), host1).unwrap();
    let frame = answer.to_frame(multicast_mac(answer.dst), host1, None).unwrap();
    assert_eq!(frame.as_slice(), hex(NA_DAD_DEFENSE).as_slice());
}

#[test]
fn captured_unsolicited_advertisement_matches_ours() {
    let mac = MacAddr::new(2, 0, 0, 0, 0, 0x11);
    let packet = NdpPacket::unsolicited_advertisement(ip("2001:db8::1"), ip("2001:db8::1"), mac).unwrap();
    let frame = packet.to_frame(multicast_mac(ALL_NODES), mac, None).unwrap();
    assert_eq!(frame.as_slice(), hex(NA_UNSOLICITED).as_slice());
    assert_eq!(parse_frame(&hex(NA_UNSOLICITED)), packet);
}

#[test]
fn captured_other_icmpv6_is_refused_by_name() {
    let rs = hex(ROUTER_SOLICITATION);
    assert_eq!(NdpPacket::parse(&rs[14..]), Err(PacketError::NotNeighborDiscovery(133)));
    let mld = hex(MLD_REPORT);
    assert_eq!(NdpPacket::parse(&mld[14..]), Err(PacketError::BadNextHeader(0)));
}

#[test]
fn only_solicitations_are_answered() {
    let na = NdpPacket::unsolicited_advertisement(our_link_local(), service(), OUR_MAC).unwrap();
    assert_eq!(
        na.answer(our_link_local(), OUR_MAC),
        Err(PacketError::NotARequest { what: "a neighbor advertisement" })
    );
}

#[test]
fn builders_refuse_a_group_link_layer_address() {
    let request = NdpPacket::solicitation(client(), service(), Some(CLIENT_MAC)).unwrap();
    let err = PacketError::MulticastMac { field: "link-layer address", mac: MacAddr::BROADCAST };
    assert_eq!(request.answer(our_link_local(), MacAddr::BROADCAST), Err(err.clone()));
    assert_eq!(NdpPacket::unsolicited_advertisement(our_link_local(), service(), MacAddr::BROADCAST), Err(err));
}

#[test]
fn constructor_enforces_rfc_4861_validity_rules() {
    let ns = |target, source_link_layer| NdpMessage::Solicitation(NeighborSolicitation { target, source_link_layer });
    let na = |solicited_flag| {
        NdpMessage::Advertisement(NeighborAdvertisement {
            router_flag: false,
            solicited_flag,
            override_flag: true,
            target: service(),
            target_link_layer: Some(OUR_MAC),
        })
    };
    let any = Ipv6Addr::UNSPECIFIED;
    assert_eq!(
        NdpPacket::new(client(), ip("ff02::1:ff00:1"), ns(ip("ff02::1"), None)),
        Err(PacketError::MulticastTarget(ip("ff02::1")))
    );
    assert_eq!(NdpPacket::new(ip("ff02::2"), client(), na(true)), Err(PacketError::MulticastSource(ip("ff02::2"))));
    assert_eq!(NdpPacket::new(any, client(), ns(service(), None)), Err(PacketError::DadNotToSolicitedNode(client())));
    assert_eq!(
        NdpPacket::new(any, ip("ff02::1:ff00:5"), ns(service(), Some(CLIENT_MAC))),
        Err(PacketError::DadWithSourceLinkLayer)
    );
    assert_eq!(NdpPacket::new(service(), ALL_NODES, na(true)), Err(PacketError::SolicitedToMulticast(ALL_NODES)));
    assert!(NdpPacket::new(service(), ALL_NODES, na(false)).is_ok());
    // A unicast solicitation may omit the source link-layer address (RFC 4861 7.2.2).
    assert!(NdpPacket::new(client(), service(), ns(service(), None)).is_ok());
}

#[test]
fn write_refuses_what_parse_would_refuse() {
    let mut packet = NdpPacket::unsolicited_advertisement(our_link_local(), service(), OUR_MAC).unwrap();
    if let NdpMessage::Advertisement(na) = &mut packet.message {
        na.solicited_flag = true;
    }
    assert_eq!(packet.to_bytes(), Err(PacketError::SolicitedToMulticast(ALL_NODES)));
}

#[test]
fn parse_ignores_ethernet_padding_and_unknown_options() {
    // The probe is 78 bytes; a sender that pads frames would still send it as is. Add padding past the IPv6
    // payload and an unknown option (type 14, nonce) inside it.
    let mut bytes = dad_probe_frame();
    bytes[14 + 5] = 0x20; // payload length 32
    bytes.extend_from_slice(&hex("0e01 010203040506"));
    let (src, dst) = (Ipv6Addr::UNSPECIFIED, ip("ff02::1:ff00:5"));
    let icmp = &mut bytes[54..];
    icmp[2..4].fill(0);
    let sum = metallb_core::packet::icmpv6_checksum(src, dst, icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    bytes.extend_from_slice(&[0; 8]);
    assert_eq!(parse_frame(&bytes), NdpPacket::dad_probe(service()).unwrap());
}
