//! The classic BPF program attached to every responder socket, and a small interpreter that runs it in tests.
//!
//! The kernel runs the program on each frame before queueing it: only ARP packets and ICMPv6 neighbor
//! solicitations and advertisements (IPv6 next header 58, type 135 or 136) that this host did not send and that
//! carry no VLAN tag reach user space, so a busy link costs the responder nothing for the traffic it never
//! reads. Requests and solicitations are answered; ARP replies and advertisements are read only to see another
//! station claim an announced address ([`metallb_core::l2::examine`]): they are rare next to requests (replies
//! are unicast, so only those to this host arrive, and advertisements are sent once per address change), and a
//! request's path through the program is no longer than before. The checks are coarse on purpose: `examine`
//! validates everything again.

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Instruction {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// Opcodes: class | size | mode. BPF_LD = 0, BPF_W = 0, BPF_H = 0x08, BPF_B = 0x10, BPF_ABS = 0x20,
// BPF_JMP = 0x05, BPF_JEQ = 0x10, BPF_K = 0, BPF_RET = 0x06.
const LD_W_ABS: u16 = 0x20;
const LD_H_ABS: u16 = 0x28;
const LD_B_ABS: u16 = 0x30;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;

/// `SKF_AD_OFF`: loads at this negative offset read packet metadata instead of bytes.
const AD_OFF: u32 = (-0x1000i32) as u32;
const AD_PKTTYPE: u32 = AD_OFF + 4;
const AD_VLAN_TAG_PRESENT: u32 = AD_OFF + 48;

const PACKET_OUTGOING: u32 = 4;
const ETHERTYPE_ARP: u32 = 0x0806;
const ETHERTYPE_IPV6: u32 = 0x86dd;
const NEXT_HEADER_ICMPV6: u32 = 58;
const NEIGHBOR_SOLICITATION: u32 = 135;
const NEIGHBOR_ADVERTISEMENT: u32 = 136;
/// Bytes of an accepted frame to keep: all of it.
const ACCEPT_LEN: u32 = 0xffff;

const fn stmt(code: u16, k: u32) -> Instruction {
    Instruction { code, jt: 0, jf: 0, k }
}

const fn jeq(k: u32, jt: u8, jf: u8) -> Instruction {
    Instruction { code: JEQ_K, jt, jf, k }
}

/// The filter: outgoing and VLAN-tagged frames out, then ARP, neighbor solicitations and advertisements in.
///
/// Offsets are for an untagged Ethernet header (tags are removed into metadata before taps see the frame, and
/// a software tag would fail the ethertype test): ethertype at 12, IPv6 next header at 20, ICMPv6 type at 54.
/// Every ARP opcode passes (the parser refuses what is neither request nor reply). Jump offsets count
/// instructions after the jump.
pub const RESPONDER_FILTER: [Instruction; 14] = [
    /* 0 */ stmt(LD_W_ABS, AD_PKTTYPE),
    /* 1 */ jeq(PACKET_OUTGOING, 11, 0), // -> 13 drop
    /* 2 */ stmt(LD_W_ABS, AD_VLAN_TAG_PRESENT),
    /* 3 */ jeq(0, 0, 9), // -> 13 drop
    /* 4 */ stmt(LD_H_ABS, 12),
    /* 5 */ jeq(ETHERTYPE_ARP, 6, 0), // -> 12 accept
    /* 6 */ jeq(ETHERTYPE_IPV6, 0, 6), // A still holds the ethertype here; -> 13 drop
    /* 7 */ stmt(LD_B_ABS, 20),
    /* 8 */ jeq(NEXT_HEADER_ICMPV6, 0, 4), // -> 13 drop
    /* 9 */ stmt(LD_B_ABS, 54),
    /* 10 */ jeq(NEIGHBOR_SOLICITATION, 1, 0), // -> 12 accept
    /* 11 */ jeq(NEIGHBOR_ADVERTISEMENT, 0, 1), // -> 12 accept, 13 drop
    /* 12 */ stmt(RET_K, ACCEPT_LEN),
    /* 13 */ stmt(RET_K, 0),
];

/// What a filter sees of a frame besides its bytes.
#[derive(Clone, Copy, Default, Debug)]
pub struct FrameMeta {
    pub pkttype: u32,
    pub vlan_tag_present: bool,
}

/// Runs `program` the way the kernel does for the instructions used here; returns the number of bytes to keep
/// (0 = drop). A load past the end of the frame drops it, as in the kernel.
pub fn run(program: &[Instruction], frame: &[u8], meta: FrameMeta) -> u32 {
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    while let Some(insn) = program.get(pc) {
        pc += 1;
        match insn.code {
            LD_W_ABS | LD_H_ABS | LD_B_ABS => {
                acc = match insn.k {
                    AD_PKTTYPE => meta.pkttype,
                    AD_VLAN_TAG_PRESENT => u32::from(meta.vlan_tag_present),
                    k => {
                        let at = k as usize;
                        let width = match insn.code {
                            LD_W_ABS => 4,
                            LD_H_ABS => 2,
                            _ => 1,
                        };
                        let Some(bytes) = frame.get(at..at + width) else { return 0 };
                        bytes.iter().fold(0, |a, b| a << 8 | u32::from(*b))
                    }
                }
            }
            JEQ_K => pc += usize::from(if acc == insn.k { insn.jt } else { insn.jf }),
            RET_K => return insn.k,
            other => panic!("instruction {other:#x} is not interpreted"),
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use metallb_core::packet::{
        multicast_mac, solicited_node_mac, solicited_node_multicast, ArpPacket, MacAddr, NdpPacket, ALL_NODES,
    };

    use super::*;

    const CLIENT: MacAddr = MacAddr::new(0x02, 0, 0, 0, 0, 1);
    const HOST: u32 = 0;
    const BROADCAST: u32 = 1;
    const MULTICAST: u32 = 2;

    fn accepts(frame: &[u8], meta: FrameMeta) -> bool {
        run(&RESPONDER_FILTER, frame, meta) != 0
    }

    fn arp_request() -> Vec<u8> {
        let req = ArpPacket::request(CLIENT, Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 10)).unwrap();
        req.to_frame(MacAddr::BROADCAST, CLIENT, None).to_vec()
    }

    fn solicitation() -> (Vec<u8>, NdpPacket) {
        let target: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let ns = NdpPacket::solicitation("2001:db8::1".parse().unwrap(), target, Some(CLIENT)).unwrap();
        let group = solicited_node_multicast(target);
        assert_eq!(ns.dst, group);
        (ns.to_frame(solicited_node_mac(target), CLIENT, None).unwrap().to_vec(), ns)
    }

    #[test]
    fn jumps_stay_inside_the_program_and_end_in_a_return() {
        for (at, insn) in RESPONDER_FILTER.iter().enumerate() {
            if insn.code == JEQ_K {
                for offset in [insn.jt, insn.jf] {
                    let to = at + 1 + usize::from(offset);
                    assert!(to < RESPONDER_FILTER.len(), "instruction {at} jumps to {to}");
                }
            }
        }
        assert_eq!(RESPONDER_FILTER.last().unwrap().code, RET_K);
    }

    #[test]
    fn accepts_arp_requests_and_solicitations() {
        assert!(accepts(&arp_request(), FrameMeta { pkttype: BROADCAST, ..Default::default() }));
        assert!(accepts(&arp_request(), FrameMeta { pkttype: HOST, ..Default::default() }));
        let (ns, _) = solicitation();
        assert!(accepts(&ns, FrameMeta { pkttype: MULTICAST, ..Default::default() }));
    }

    /// What another station sends when it claims an address: gratuitous ARP (both forms), an ARP reply, an
    /// unsolicited neighbor advertisement.
    #[test]
    fn accepts_what_a_claim_is_made_of() {
        let ip = Ipv4Addr::new(192, 0, 2, 10);
        for packet in
            [ArpPacket::gratuitous_request(CLIENT, ip).unwrap(), ArpPacket::gratuitous_reply(CLIENT, ip).unwrap()]
        {
            let frame = packet.to_frame(MacAddr::BROADCAST, CLIENT, None);
            assert!(accepts(&frame, FrameMeta { pkttype: BROADCAST, ..Default::default() }), "{packet:?}");
        }
        let target: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let na = NdpPacket::unsolicited_advertisement(target, target, CLIENT).unwrap();
        let frame = na.to_frame(multicast_mac(ALL_NODES), CLIENT, None).unwrap();
        assert!(accepts(&frame, FrameMeta { pkttype: MULTICAST, ..Default::default() }));
    }

    #[test]
    fn refuses_outgoing_and_tagged_frames() {
        let outgoing = FrameMeta { pkttype: PACKET_OUTGOING, vlan_tag_present: false };
        assert!(!accepts(&arp_request(), outgoing));
        let tagged = FrameMeta { pkttype: BROADCAST, vlan_tag_present: true };
        assert!(!accepts(&arp_request(), tagged));
        // A tag left in the frame moves the ethertype: the 0x8100 at offset 12 fails the ethertype test.
        let mut inline = arp_request();
        inline.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
        assert!(!accepts(&inline, FrameMeta::default()));
    }

    #[test]
    fn refuses_other_icmpv6_and_other_protocols() {
        let (mut ns, _) = solicitation();
        ns[54] = 128;
        assert!(!accepts(&ns, FrameMeta::default()), "echo request");
        let (mut ns, _) = solicitation();
        ns[54] = 134;
        assert!(!accepts(&ns, FrameMeta::default()), "router advertisement");
        let (mut ns, _) = solicitation();
        ns[20] = 17;
        assert!(!accepts(&ns, FrameMeta::default()), "UDP");
        let mut ipv4 = arp_request();
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert!(!accepts(&ipv4, FrameMeta::default()));
    }

    #[test]
    fn refuses_frames_too_short_to_load_from() {
        assert!(!accepts(&arp_request()[..13], FrameMeta::default()));
        let (ns, _) = solicitation();
        assert!(!accepts(&ns[..54], FrameMeta::default()));
    }
}
