//! The properties the fuzz targets check, one function per target. Shared (through `#[path]`) with
//! `tests/packet_fuzz_regressions.rs`, which replays the seeds and every past crasher through them on each
//! `cargo test`, without libFuzzer.
#![allow(dead_code)]

use std::net::Ipv6Addr;

use metallb_core::packet::{
    icmpv6_checksum, ArpPacket, EtherType, EthernetFrame, MacAddr, NdpMessage, NdpPacket, ARP_LEN, IPV6_HEADER_LEN,
    MIN_FRAME_LEN,
};

/// Any bytes as ARP: parsing never panics, and an accepted packet serializes back to exactly the 28 bytes it
/// was read from (ARP for Ethernet/IPv4 has no field the parser drops), which parse to the same packet.
pub fn arp_roundtrip(data: &[u8]) {
    let Ok(packet) = ArpPacket::parse(data) else { return };
    let bytes = packet.to_bytes();
    assert_eq!(&bytes[..], &data[..ARP_LEN], "serialization differs from the parsed bytes");
    assert_eq!(ArpPacket::parse(&bytes), Ok(packet));
    if let Ok(reply) = packet.reply_to(MacAddr::new(0x02, 0, 0, 0, 0, 1)) {
        assert_eq!(ArpPacket::parse(&reply.to_bytes()), Ok(reply));
    }
}

/// Any bytes as an IPv6 packet: parsing never panics, and an accepted packet serializes to bytes that parse to
/// the same packet and serialize identically (parse(to_bytes(parse(x))) is stable). When the first input byte
/// is odd, the ICMPv6 checksum of the rest is fixed up before parsing, so the fuzzer reaches the option and
/// validity checks behind it instead of stopping at the checksum.
pub fn ndp_roundtrip(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 {
        fix_checksum(&mut bytes);
    }
    let Ok(packet) = NdpPacket::parse(&bytes) else { return };
    let out = packet.to_bytes().expect("a parsed packet serializes");
    let again = NdpPacket::parse(&out).expect("a serialized packet parses");
    assert_eq!(again, packet);
    assert_eq!(again.to_bytes().expect("serializes"), out);
    if let NdpMessage::Solicitation(_) = packet.message {
        let answer = packet.answer(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1), MacAddr::new(0x02, 0, 0, 0, 0, 1));
        if let Ok(answer) = answer {
            assert_eq!(NdpPacket::parse(&answer.to_bytes().expect("serializes")), Ok(answer));
        }
    }
}

/// Any bytes as an Ethernet frame: parsing never panics, the header serializes back to the bytes it was read
/// from (short frames padded to 60 bytes), and the payload goes to the ARP or NDP parser its ethertype names.
pub fn ethernet_parse(data: &[u8]) {
    let Ok(frame) = EthernetFrame::parse(data) else { return };
    let bytes = frame.to_bytes().expect("a parsed frame serializes");
    assert_eq!(&bytes[..data.len()], data, "serialization differs from the parsed bytes");
    assert_eq!(bytes.len(), data.len().max(MIN_FRAME_LEN));
    assert!(bytes[data.len()..].iter().all(|&b| b == 0), "padding is zeros");
    let again = EthernetFrame::parse(&bytes).expect("a serialized frame parses");
    assert_eq!(again.header, frame.header);
    match frame.header.ethertype {
        EtherType::ARP => arp_roundtrip(frame.payload),
        EtherType::IPV6 => {
            if let Ok(packet) = NdpPacket::parse(frame.payload) {
                assert_eq!(NdpPacket::parse(&packet.to_bytes().expect("serializes")), Ok(packet));
            }
        }
        _ => {}
    }
}

fn fix_checksum(bytes: &mut [u8]) {
    if bytes.len() < IPV6_HEADER_LEN + 4 {
        return;
    }
    let payload_len = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
    let end = (IPV6_HEADER_LEN + payload_len).min(bytes.len());
    if end < IPV6_HEADER_LEN + 4 {
        return;
    }
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[8..24]).expect("16 bytes"));
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[24..40]).expect("16 bytes"));
    let icmp = &mut bytes[IPV6_HEADER_LEN..end];
    icmp[2..4].fill(0);
    let sum = icmpv6_checksum(src, dst, icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
}
