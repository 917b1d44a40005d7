//! A corpus of malformed frames, each named, with the error it must produce; and sweeps of truncations and bit
//! flips over every valid frame we know, which must never panic.
//!
//! The frames are built from the well-formed captures and hand-built frames by one targeted change each, so a
//! case tests exactly one check. NDP cases have their checksum recomputed after the change unless the case is
//! about the checksum, so they reach the check they are about.

mod packet_support;

use std::net::Ipv6Addr;

use metallb_core::packet::{ArpPacket, EtherType, EthernetFrame, NdpPacket, PacketError};
use packet_support::*;

/// What the responder does with a frame: Ethernet, then ARP or NDP by ethertype. Returns the first error.
fn parse_all(bytes: &[u8]) -> Result<(), PacketError> {
    let frame = EthernetFrame::parse(bytes)?;
    match frame.header.ethertype {
        EtherType::ARP => ArpPacket::parse(frame.payload).map(drop),
        EtherType::IPV6 => NdpPacket::parse(frame.payload).map(drop),
        _ => Ok(()),
    }
}

/// An independent RFC 4443 checksum, so the corpus does not trust the code under test to fix its own inputs.
fn oracle_checksum(ipv6: &[u8]) -> u16 {
    let len = usize::from(u16::from_be_bytes([ipv6[4], ipv6[5]])).min(ipv6.len() - 40);
    let mut data = ipv6[8..40].to_vec();
    data.extend_from_slice(&(len as u32).to_be_bytes());
    data.extend_from_slice(&[0, 0, 0, 58]);
    let mut icmp = ipv6[40..40 + len].to_vec();
    icmp[2..4].fill(0);
    data.extend_from_slice(&icmp);
    if data.len() % 2 == 1 {
        data.push(0);
    }
    let mut sum: u32 = data.chunks(2).map(|w| u32::from(w[0]) << 8 | u32::from(w[1])).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Recomputes the ICMPv6 checksum of an Ethernet frame carrying IPv6 (untagged), if it has room for one.
fn fix_checksum(mut frame: Vec<u8>) -> Vec<u8> {
    let len = usize::from(u16::from_be_bytes([frame[18], frame[19]]));
    if len.min(frame.len() - 54) < 4 {
        return frame;
    }
    let sum = oracle_checksum(&frame[14..]);
    frame[56..58].copy_from_slice(&sum.to_be_bytes());
    frame
}

/// `base` with `bytes` written at `at`.
fn patch(base: &str, at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut frame = hex(base);
    frame[at..at + bytes.len()].copy_from_slice(bytes);
    frame
}

/// `base` with `bytes` written at `at` and the checksum fixed up.
fn ndp_patch(base: &str, at: usize, bytes: &[u8]) -> Vec<u8> {
    fix_checksum(patch(base, at, bytes))
}

/// An NDP frame from `base` with its IPv6 payload replaced by `icmp` (payload length and checksum adjusted).
fn ndp_with_message(base: &str, icmp: &[u8]) -> Vec<u8> {
    let mut frame = hex(base)[..54].to_vec();
    frame[18..20].copy_from_slice(&(icmp.len() as u16).to_be_bytes());
    frame.extend_from_slice(icmp);
    if icmp.len() >= 4 {
        frame = fix_checksum(frame);
    }
    frame
}

/// The ICMPv6 message of `base` with `extra` appended (for option cases).
fn message_plus(base: &str, keep: usize, extra: &str) -> Vec<u8> {
    let mut icmp = hex(base)[54..54 + keep].to_vec();
    icmp.extend_from_slice(&hex(extra));
    icmp
}

fn ip(text: &str) -> Ipv6Addr {
    text.parse().unwrap()
}

fn option_error(kind: u8, offset: usize, problem: &'static str) -> PacketError {
    PacketError::BadOption { kind, offset, problem }
}

fn corpus() -> Vec<(&'static str, Vec<u8>, PacketError)> {
    use PacketError::*;
    let truncated = |what, need, got| Truncated { what, need, got };
    let arp = ARP_REQUEST;
    let ns = NS_FROM_NDISC6;
    let na = NA_SOLICITED;
    vec![
        // Ethernet.
        ("empty frame", vec![], truncated("Ethernet header", 14, 0)),
        ("ethernet header cut at 13 bytes", hex(arp)[..13].to_vec(), truncated("Ethernet header", 14, 13)),
        (
            "vlan tag cut off",
            patch(arp, 12, &[0x81, 0x00, 0x00])[..16].to_vec(),
            truncated("802.1Q tagged Ethernet header", 18, 16),
        ),
        ("two 802.1Q tags", patch(arp, 12, &[0x81, 0x00, 0x00, 0x64, 0x81, 0x00]), StackedVlan { tpid: 0x8100 }),
        ("802.1ad service tag", patch(arp, 12, &[0x88, 0xa8, 0x00, 0x64, 0x08, 0x06]), StackedVlan { tpid: 0x88a8 }),
        ("reserved vlan id 4095", patch(arp, 12, &[0x81, 0x00, 0x0f, 0xff, 0x08, 0x06]), BadVlanId(4095)),
        ("802.3 length instead of ethertype", patch(arp, 12, &[0x00, 0x2e]), NotEthernetII(46)),
        // ARP.
        ("arp header cut at 7 bytes", hex(arp)[..21].to_vec(), truncated("ARP header", 8, 7)),
        ("arp cut at 27 bytes", hex(arp)[..41].to_vec(), truncated("ARP packet", 28, 27)),
        ("arp hardware type ieee802", patch(arp, 14, &[0x00, 0x06]), BadHardwareType(6)),
        ("arp protocol type ipv6", patch(arp, 16, &[0x86, 0xdd]), BadProtocolType(0x86dd)),
        ("arp hardware length 8", patch(arp, 18, &[8]), BadAddressLength { hlen: 8, plen: 4 }),
        ("arp protocol length 16", patch(arp, 19, &[16]), BadAddressLength { hlen: 6, plen: 16 }),
        ("arp opcode 0", patch(arp, 20, &[0, 0]), BadOpcode(0)),
        ("arp opcode rarp request", patch(arp, 20, &[0, 3]), BadOpcode(3)),
        ("arp opcode inarp request", patch(arp, 20, &[0, 8]), BadOpcode(8)),
        ("arp opcode byte-swapped request", patch(arp, 20, &[1, 0]), BadOpcode(256)),
        // IPv6 header.
        ("ipv6 header cut at 39 bytes", hex(ns)[..53].to_vec(), truncated("IPv6 header", 40, 39)),
        ("ipv4 version in ipv6 ethertype", patch(ns, 14, &[0x45]), BadIpVersion(4)),
        ("payload length past the end", patch(ns, 18, &[0x00, 0x21]), BadPayloadLength { declared: 33, available: 32 }),
        ("jumbo payload length", patch(ns, 18, &[0xff, 0xff]), BadPayloadLength { declared: 65535, available: 32 }),
        ("next header udp", patch(ns, 20, &[17]), BadNextHeader(17)),
        ("hop limit 64", patch(ns, 21, &[64]), BadHopLimit(64)),
        ("hop limit 254: crossed a router", patch(ns, 21, &[254]), BadHopLimit(254)),
        // ICMPv6 header.
        ("icmpv6 cut at 3 bytes", ndp_with_message(ns, &hex("870000")), truncated("ICMPv6 header", 4, 3)),
        ("icmpv6 echo request", ndp_patch(ns, 54, &[128]), NotNeighborDiscovery(128)),
        ("icmpv6 redirect", ndp_patch(ns, 54, &[137]), NotNeighborDiscovery(137)),
        ("icmpv6 code 1", ndp_patch(ns, 55, &[1]), BadIcmpCode(1)),
        (
            "solicitation cut at 20 bytes",
            ndp_with_message(ns, &hex(ns)[54..74]),
            truncated("neighbor solicitation", 24, 20),
        ),
        (
            "advertisement cut at 23 bytes",
            ndp_with_message(na, &hex(na)[54..77]),
            truncated("neighbor advertisement", 24, 23),
        ),
        ("checksum off by one", patch(ns, 56, &[0x4c, 0x60]), BadChecksum { found: 0x4c60, computed: 0x4c5f }),
        ("checksum zero", patch(ns, 56, &[0, 0]), BadChecksum { found: 0, computed: 0x4c5f }),
        ("target changed after checksumming", patch(ns, 77, &[2]), BadChecksum { found: 0x4c5f, computed: 0x4c5e }),
        ("source changed after checksumming", patch(ns, 37, &[3]), BadChecksum { found: 0x4c5f, computed: 0x4c5e }),
        // Options.
        (
            "payload length cuts the option",
            ndp_patch(ns, 18, &[0x00, 0x1c]),
            option_error(1, 24, "option runs past the end of the message"),
        ),
        ("option length zero", ndp_patch(ns, 79, &[0]), option_error(1, 24, "length is zero")),
        (
            "option length 2 with 8 bytes left",
            ndp_patch(ns, 79, &[2]),
            option_error(1, 24, "option runs past the end of the message"),
        ),
        (
            "one stray byte after the options",
            ndp_with_message(ns, &message_plus(ns, 32, "00")),
            option_error(0, 32, "option header truncated: one byte left where type and length need two"),
        ),
        (
            "options not a multiple of 8 bytes",
            ndp_with_message(ns, &message_plus(ns, 32, "0e01 0000")),
            option_error(14, 32, "option runs past the end of the message"),
        ),
        (
            "source link-layer option of 16 bytes",
            ndp_with_message(ns, &message_plus(ns, 24, "0102 020000000002 0000000000000000")),
            option_error(1, 24, "link-layer address option is not 8 bytes, the length for Ethernet"),
        ),
        (
            "source link-layer option twice",
            ndp_with_message(ns, &message_plus(ns, 32, "0101 020000000003")),
            option_error(1, 32, "link-layer address option appears twice"),
        ),
        (
            "unknown option with length zero after a good one",
            ndp_with_message(ns, &message_plus(ns, 32, "0e00 000000000000")),
            option_error(14, 32, "length is zero"),
        ),
        ("target link-layer option length zero", ndp_patch(na, 79, &[0]), option_error(2, 24, "length is zero")),
        // RFC 4861 7.1 validity.
        (
            "solicitation for a multicast target",
            ndp_patch(ns, 62, &hex("ff020000000000000000000000000001")),
            MulticastTarget(ip("ff02::1")),
        ),
        (
            "advertisement for a multicast target",
            ndp_patch(na, 62, &hex("ff020000000000000000000000000001")),
            MulticastTarget(ip("ff02::1")),
        ),
        ("multicast source address", ndp_patch(ns, 22, &[0xff, 0x02]), MulticastSource(ip("ff02::ff:fe00:2"))),
        (
            "dad probe to all nodes",
            ndp_patch(NS_DAD_WITH_NONCE, 38, &hex("ff020000000000000000000000000001")),
            DadNotToSolicitedNode(ip("ff02::1")),
        ),
        ("dad probe with a source link-layer option", ndp_patch(NS_DAD_WITH_NONCE, 78, &[1]), DadWithSourceLinkLayer),
        (
            "solicited advertisement to all nodes",
            ndp_patch(NA_DAD_DEFENSE, 58, &[0x60]),
            SolicitedToMulticast(ip("ff02::1")),
        ),
    ]
}

#[test]
fn every_malformed_frame_is_refused_with_its_named_error() {
    let mut failures = Vec::new();
    for (name, bytes, want) in corpus() {
        let got = parse_all(&bytes);
        if got != Err(want.clone()) {
            failures.push(format!("{name}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_name_what_is_wrong() {
    let messages: Vec<String> = corpus().into_iter().map(|(_, _, err)| err.to_string()).collect();
    assert!(messages.contains(&"ARP opcode 3 is neither request (1) nor reply (2)".to_owned()));
    assert!(messages.contains(&"hop limit 64, neighbor discovery requires 255".to_owned()));
    assert!(messages.contains(&"ICMPv6 checksum 0x4c60 is wrong, computed 0x4c5f".to_owned()));
    assert!(messages.contains(&"NDP option type 1 at byte 24: length is zero".to_owned()));
    assert!(messages.contains(&"Ethernet header truncated: need 14 bytes, got 13".to_owned()));
}

/// Every valid frame we know, and every corpus frame: each prefix and each single-bit flip must parse or fail
/// without panicking, and whatever parses must serialize to bytes that parse to the same thing.
#[test]
fn truncations_and_bit_flips_never_panic() {
    let mut frames: Vec<Vec<u8>> = [
        ARP_REQUEST,
        ARP_REPLY,
        ARP_GRATUITOUS_REQUEST,
        ARP_GRATUITOUS_REPLY,
        NS_DAD_WITH_NONCE,
        NS_FROM_NDISC6,
        NA_SOLICITED,
        NS_DAD_CONFLICT,
        NA_DAD_DEFENSE,
        NA_UNSOLICITED,
        ROUTER_SOLICITATION,
        MLD_REPORT,
    ]
    .iter()
    .map(|text| hex(text))
    .collect();
    frames.extend(corpus().into_iter().map(|(_, bytes, _)| bytes));
    let mut parsed = 0;
    for frame in &frames {
        for len in 0..=frame.len() {
            parsed += check_stable(&frame[..len]);
        }
        for bit in 0..frame.len() * 8 {
            let mut flipped = frame.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            parsed += check_stable(&flipped);
            if flipped.len() > 58 && flipped[12..14] == [0x86, 0xdd] {
                parsed += check_stable(&fix_checksum(flipped));
            }
        }
    }
    assert!(parsed > 1000, "the sweep should reach the parsers' success paths, reached {parsed}");
}

fn check_stable(bytes: &[u8]) -> usize {
    let Ok(frame) = EthernetFrame::parse(bytes) else { return 0 };
    match frame.header.ethertype {
        EtherType::ARP => {
            let Ok(packet) = ArpPacket::parse(frame.payload) else { return 0 };
            assert_eq!(ArpPacket::parse(&packet.to_bytes()), Ok(packet));
        }
        EtherType::IPV6 => {
            let Ok(packet) = NdpPacket::parse(frame.payload) else { return 0 };
            let out = packet.to_bytes().unwrap();
            assert_eq!(NdpPacket::parse(&out), Ok(packet));
        }
        _ => {}
    }
    1
}
