//! ARP for Ethernet/IPv4: byte-exact frames worked out from RFC 826, RFC 5227 and RFC 5944, and frames captured
//! from Linux.

mod packet_support;

use std::net::Ipv4Addr;

use metallb_core::packet::{
    ArpOp, ArpPacket, EtherType, EthernetFrame, EthernetHeader, MacAddr, PacketError, VlanTag, ARP_LEN,
};
use packet_support::*;

/// Documentation MAC addresses (RFC 7042 2.1.2).
const CLIENT_MAC: MacAddr = MacAddr::new(0x00, 0x00, 0x5e, 0x00, 0x53, 0x01);
const OUR_MAC: MacAddr = MacAddr::new(0x00, 0x00, 0x5e, 0x00, 0x53, 0xaa);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);

/// Who has 198.51.100.10? Tell 192.0.2.1 -- laid out field by field as RFC 826 defines them.
fn request_frame() -> Vec<u8> {
    hex("ffffffffffff 00005e005301 0806
         0001 0800 06 04 0001
         00005e005301 c0000201
         000000000000 c633640a")
}

#[test]
fn parses_a_request_frame() {
    let bytes = request_frame();
    let frame = EthernetFrame::parse(&bytes).unwrap();
    assert_eq!(
        frame.header,
        EthernetHeader { dst: MacAddr::BROADCAST, src: CLIENT_MAC, vlan: None, ethertype: EtherType::ARP }
    );
    let packet = ArpPacket::parse(frame.payload).unwrap();
    assert_eq!(
        packet,
        ArpPacket {
            op: ArpOp::Request,
            sender_mac: CLIENT_MAC,
            sender_ip: CLIENT_IP,
            target_mac: MacAddr::ZERO,
            target_ip: SERVICE_IP
        }
    );
    assert_eq!(ArpPacket::request(CLIENT_MAC, CLIENT_IP, SERVICE_IP), Ok(packet));
    assert!(!packet.is_gratuitous());
}

#[test]
fn builds_the_reply_byte_for_byte() {
    let bytes = request_frame();
    let request = ArpPacket::parse(&bytes[14..]).unwrap();
    let reply = request.reply_to(OUR_MAC).unwrap();
    let want = hex("00005e005301 00005e0053aa 0806
         0001 0800 06 04 0002
         00005e0053aa c633640a
         00005e005301 c0000201
         000000000000000000000000000000000000");
    assert_eq!(reply.to_frame(request.sender_mac, OUR_MAC, None).as_slice(), want.as_slice());
    assert_eq!(&reply.to_bytes()[..], &want[14..14 + ARP_LEN]);
}

#[test]
fn builds_gratuitous_request_form() {
    // RFC 5227 announcement: sender IP = target IP, target hardware address zero, broadcast.
    let packet = ArpPacket::gratuitous_request(OUR_MAC, SERVICE_IP).unwrap();
    assert!(packet.is_gratuitous());
    let want = hex("ffffffffffff 00005e0053aa 0806
         0001 0800 06 04 0001
         00005e0053aa c633640a
         000000000000 c633640a
         000000000000000000000000000000000000");
    assert_eq!(packet.to_frame(MacAddr::BROADCAST, OUR_MAC, None).as_slice(), want.as_slice());
}

#[test]
fn builds_gratuitous_reply_form() {
    // RFC 5944 4.6: in the reply form the target hardware address is the sender's too.
    let packet = ArpPacket::gratuitous_reply(OUR_MAC, SERVICE_IP).unwrap();
    assert!(packet.is_gratuitous());
    let want = hex("ffffffffffff 00005e0053aa 0806
         0001 0800 06 04 0002
         00005e0053aa c633640a
         00005e0053aa c633640a
         000000000000000000000000000000000000");
    assert_eq!(packet.to_frame(MacAddr::BROADCAST, OUR_MAC, None).as_slice(), want.as_slice());
}

#[test]
fn keeps_the_vlan_tag_in_a_reply_frame() {
    let tag = VlanTag::new(0, false, 100).unwrap();
    let reply = ArpPacket::request(CLIENT_MAC, CLIENT_IP, SERVICE_IP).unwrap().reply_to(OUR_MAC).unwrap();
    let frame = reply.to_frame(CLIENT_MAC, OUR_MAC, Some(tag));
    assert_eq!(&frame[12..18], &hex("8100 0064 0806")[..]);
    assert_eq!(frame.len(), 60);
    let parsed = EthernetFrame::parse(&frame).unwrap();
    assert_eq!(parsed.header.vlan, Some(tag));
    assert_eq!(ArpPacket::parse(parsed.payload), Ok(reply));
}

#[test]
fn captured_request_answers_like_the_linux_kernel() {
    let bytes = hex(ARP_REQUEST);
    let frame = EthernetFrame::parse(&bytes).unwrap();
    let request = ArpPacket::parse(frame.payload).unwrap();
    assert_eq!(request.op, ArpOp::Request);
    assert_eq!(request.target_ip, Ipv4Addr::new(192, 0, 2, 1));
    let host1 = MacAddr::new(2, 0, 0, 0, 0, 1);
    let ours = request.reply_to(host1).unwrap().to_frame(frame.header.src, host1, None);
    let kernel = hex(ARP_REPLY);
    // The kernel's frame was captured on a veth, which does not pad to 60 bytes; ours is padded.
    assert_eq!(&ours[..kernel.len()], kernel.as_slice());
    assert!(ours[kernel.len()..].iter().all(|&b| b == 0));
}

#[test]
fn captured_arping_gratuitous_reply_matches_ours() {
    let host2 = MacAddr::new(2, 0, 0, 0, 0, 2);
    let ip = Ipv4Addr::new(192, 0, 2, 2);
    let arping = hex(ARP_GRATUITOUS_REPLY);
    let ours = ArpPacket::gratuitous_reply(host2, ip).unwrap().to_frame(MacAddr::BROADCAST, host2, None);
    assert_eq!(&ours[..arping.len()], arping.as_slice());
}

#[test]
fn captured_arping_gratuitous_request_differs_only_in_the_ignored_target_hardware_address() {
    // arping fills the target hardware address with broadcast; RFC 5227 says zero. Receivers ignore it.
    let bytes = hex(ARP_GRATUITOUS_REQUEST);
    let arping = ArpPacket::parse(&bytes[14..]).unwrap();
    assert!(arping.is_gratuitous());
    let ours = ArpPacket::gratuitous_request(arping.sender_mac, arping.sender_ip).unwrap();
    assert_eq!(ArpPacket { target_mac: MacAddr::BROADCAST, ..ours }, arping);
}

#[test]
fn parse_ignores_ethernet_padding() {
    let mut bytes = request_frame();
    bytes.resize(60, 0);
    let frame = EthernetFrame::parse(&bytes).unwrap();
    assert_eq!(frame.payload.len(), 46);
    assert_eq!(ArpPacket::parse(frame.payload).unwrap().target_ip, SERVICE_IP);
}

#[test]
fn only_requests_are_answered() {
    let reply = ArpPacket::gratuitous_reply(OUR_MAC, SERVICE_IP).unwrap();
    assert_eq!(reply.reply_to(OUR_MAC), Err(PacketError::NotARequest { what: "an ARP reply" }));
}

#[test]
fn constructors_refuse_a_group_sender_address() {
    let err = PacketError::MulticastMac { field: "ARP sender hardware address", mac: MacAddr::BROADCAST };
    assert_eq!(ArpPacket::gratuitous_request(MacAddr::BROADCAST, SERVICE_IP), Err(err.clone()));
    let request = ArpPacket::request(CLIENT_MAC, CLIENT_IP, SERVICE_IP).unwrap();
    assert_eq!(request.reply_to(MacAddr::BROADCAST), Err(err));
    assert_eq!(
        err_text(ArpPacket::reply_to(&request, MacAddr::new(0x01, 0, 0x5e, 0, 0, 1))),
        "ARP sender hardware address 01:00:5e:00:00:01 is a multicast MAC address, want a unicast one"
    );
}

fn err_text(result: Result<ArpPacket, PacketError>) -> String {
    result.unwrap_err().to_string()
}
