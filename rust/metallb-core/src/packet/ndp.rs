use std::net::Ipv6Addr;

use super::ethernet::be16;
use super::ipv6::icmpv6_checksum_unfilled;
use super::{
    icmpv6_checksum, is_solicited_node_multicast, solicited_node_multicast, EtherType, EthernetHeader, FrameBuf,
    Ipv6Header, MacAddr, PacketError, VlanTag, ALL_NODES, IPV6_HEADER_LEN, NEXT_HEADER_ICMPV6,
};

pub const ICMPV6_NEIGHBOR_SOLICITATION: u8 = 135;
pub const ICMPV6_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// Neighbor discovery packets must arrive with the hop limit they were sent with, so none crossed a router.
pub const NDP_HOP_LIMIT: u8 = 255;
/// Bytes of a neighbor solicitation or advertisement without options: type, code, checksum, flags or
/// reserved, target address.
pub const NDP_MESSAGE_LEN: usize = 24;
/// Bytes of the largest packet [`NdpPacket::write_to`] writes: IPv6 header, message, one link-layer option.
pub const MAX_NDP_PACKET_LEN: usize = IPV6_HEADER_LEN + NDP_MESSAGE_LEN + LINK_LAYER_OPTION_LEN;

const OPTION_SOURCE_LINK_LAYER: u8 = 1;
const OPTION_TARGET_LINK_LAYER: u8 = 2;
/// Type, length (in 8-byte units, so 1) and a 6-byte Ethernet address.
const LINK_LAYER_OPTION_LEN: usize = 8;

const FLAG_ROUTER: u8 = 0x80;
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

/// "Who has `target`?" (RFC 4861 4.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct NeighborSolicitation {
    pub target: Ipv6Addr,
    /// The solicitor's link-layer address, from the source link-layer address option; absent in duplicate
    /// address detection probes and allowed to be absent in unicast solicitations.
    pub source_link_layer: Option<MacAddr>,
}

/// "`target` is at `target_link_layer`" (RFC 4861 4.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct NeighborAdvertisement {
    /// R: the sender is a router.
    pub router_flag: bool,
    /// S: the advertisement answers a solicitation from its destination.
    pub solicited_flag: bool,
    /// O: the receiver should replace a cached link-layer address with this one.
    pub override_flag: bool,
    pub target: Ipv6Addr,
    /// From the target link-layer address option.
    pub target_link_layer: Option<MacAddr>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum NdpMessage {
    Solicitation(NeighborSolicitation),
    Advertisement(NeighborAdvertisement),
}

impl NdpMessage {
    pub fn target(&self) -> Ipv6Addr {
        match self {
            NdpMessage::Solicitation(ns) => ns.target,
            NdpMessage::Advertisement(na) => na.target,
        }
    }

    pub fn icmp_type(&self) -> u8 {
        match self {
            NdpMessage::Solicitation(_) => ICMPV6_NEIGHBOR_SOLICITATION,
            NdpMessage::Advertisement(_) => ICMPV6_NEIGHBOR_ADVERTISEMENT,
        }
    }

    fn link_layer(&self) -> Option<MacAddr> {
        match self {
            NdpMessage::Solicitation(ns) => ns.source_link_layer,
            NdpMessage::Advertisement(na) => na.target_link_layer,
        }
    }

    fn wire_len(&self) -> usize {
        NDP_MESSAGE_LEN + if self.link_layer().is_some() { LINK_LAYER_OPTION_LEN } else { 0 }
    }
}

/// A neighbor solicitation or advertisement with the IPv6 addresses it travels between.
///
/// The IPv6 header's other fields are fixed for neighbor discovery (next header 58, hop limit 255) or not kept
/// (traffic class and flow label, written as 0). Of the options, only the link-layer address option that the
/// message type defines is kept (source for a solicitation, target for an advertisement); others are checked
/// for a sound length and skipped, as RFC 4861 tells receivers to do with options they do not use.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct NdpPacket {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub message: NdpMessage,
}

impl NdpPacket {
    /// A packet satisfying the RFC 4861 7.1 validity rules that do not concern encoding: source and target
    /// not multicast, probes from `::` sent to a solicited-node group without a source link-layer option,
    /// multicast advertisements not marked solicited.
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr, message: NdpMessage) -> Result<Self, PacketError> {
        let packet = NdpPacket { src, dst, message };
        packet.validate()?;
        Ok(packet)
    }

    /// A solicitation for `target` to its solicited-node group. From `::` it is a duplicate address detection
    /// probe and must then have no source link-layer address.
    pub fn solicitation(
        src: Ipv6Addr,
        target: Ipv6Addr,
        source_link_layer: Option<MacAddr>,
    ) -> Result<Self, PacketError> {
        let message = NdpMessage::Solicitation(NeighborSolicitation { target, source_link_layer });
        Self::new(src, solicited_node_multicast(target), message)
    }

    /// The duplicate address detection probe for `target` (RFC 4862 5.4.2).
    pub fn dad_probe(target: Ipv6Addr) -> Result<Self, PacketError> {
        Self::solicitation(Ipv6Addr::UNSPECIFIED, target, None)
    }

    /// The advertisement answering this solicitation: "the target is at `our_mac`", sent from `src` (an
    /// address of the sending interface; MetalLB uses its link-local address) with the Override flag and a
    /// target link-layer address option.
    ///
    /// To an ordinary solicitation the answer goes back to the solicitor with the Solicited flag set. To a
    /// duplicate address detection probe (source `::`) it goes to all nodes (`ff02::1`) with Solicited clear,
    /// as RFC 4861 7.2.4 requires, since the prober has no address to receive a unicast answer.
    pub fn answer(&self, src: Ipv6Addr, our_mac: MacAddr) -> Result<Self, PacketError> {
        let NdpMessage::Solicitation(ns) = self.message else {
            return Err(PacketError::NotARequest { what: "a neighbor advertisement" });
        };
        check_own_mac(our_mac)?;
        let probe = self.src.is_unspecified();
        let message = NdpMessage::Advertisement(NeighborAdvertisement {
            router_flag: false,
            solicited_flag: !probe,
            override_flag: true,
            target: ns.target,
            target_link_layer: Some(our_mac),
        });
        Self::new(src, if probe { ALL_NODES } else { self.src }, message)
    }

    /// An unsolicited advertisement to all nodes (`ff02::1`) with the Override flag, so neighbors replace a
    /// cached address for `target` with `our_mac` (RFC 4861 7.2.6): what an announcement sends when an address
    /// moves to this node.
    pub fn unsolicited_advertisement(src: Ipv6Addr, target: Ipv6Addr, our_mac: MacAddr) -> Result<Self, PacketError> {
        check_own_mac(our_mac)?;
        let message = NdpMessage::Advertisement(NeighborAdvertisement {
            router_flag: false,
            solicited_flag: false,
            override_flag: true,
            target,
            target_link_layer: Some(our_mac),
        });
        Self::new(src, ALL_NODES, message)
    }

    /// Parses an IPv6 packet carrying a neighbor solicitation or advertisement and validates it as RFC 4861
    /// 7.1.1 and 7.1.2 ask of a receiver. Bytes past the IPv6 payload length (Ethernet padding) are ignored.
    pub fn parse(bytes: &[u8]) -> Result<Self, PacketError> {
        let (ip, icmp) = Ipv6Header::parse(bytes)?;
        if ip.next_header != NEXT_HEADER_ICMPV6 {
            return Err(PacketError::BadNextHeader(ip.next_header));
        }
        if icmp.len() < 4 {
            return Err(PacketError::Truncated { what: "ICMPv6 header", need: 4, got: icmp.len() });
        }
        let (kind, code) = (icmp[0], icmp[1]);
        // The type comes before the hop limit: other ICMPv6 (a ping with hop limit 64) is not neighbor
        // discovery at all, rather than bad neighbor discovery.
        let what = match kind {
            ICMPV6_NEIGHBOR_SOLICITATION => "neighbor solicitation",
            ICMPV6_NEIGHBOR_ADVERTISEMENT => "neighbor advertisement",
            other => return Err(PacketError::NotNeighborDiscovery(other)),
        };
        if ip.hop_limit != NDP_HOP_LIMIT {
            return Err(PacketError::BadHopLimit(ip.hop_limit));
        }
        if code != 0 {
            return Err(PacketError::BadIcmpCode(code));
        }
        if icmp.len() < NDP_MESSAGE_LEN {
            return Err(PacketError::Truncated { what, need: NDP_MESSAGE_LEN, got: icmp.len() });
        }
        // A correct message sums to zero together with its checksum; this also accepts 0xffff for a computed
        // 0x0000, the other ones' complement zero, as the Linux kernel does.
        if icmpv6_checksum(ip.src, ip.dst, icmp) != 0 {
            let computed = icmpv6_checksum_unfilled(ip.src, ip.dst, icmp);
            return Err(PacketError::BadChecksum { found: be16(icmp, 2), computed });
        }
        let octets: [u8; 16] = icmp[8..24].try_into().expect("16 bytes");
        let target = Ipv6Addr::from(octets);
        let message = if kind == ICMPV6_NEIGHBOR_SOLICITATION {
            let source_link_layer = link_layer_option(icmp, OPTION_SOURCE_LINK_LAYER)?;
            NdpMessage::Solicitation(NeighborSolicitation { target, source_link_layer })
        } else {
            let flags = icmp[4];
            NdpMessage::Advertisement(NeighborAdvertisement {
                router_flag: flags & FLAG_ROUTER != 0,
                solicited_flag: flags & FLAG_SOLICITED != 0,
                override_flag: flags & FLAG_OVERRIDE != 0,
                target,
                target_link_layer: link_layer_option(icmp, OPTION_TARGET_LINK_LAYER)?,
            })
        };
        Self::new(ip.src, ip.dst, message)
    }

    /// Bytes [`write_to`](Self::write_to) writes: 64, or 72 with a link-layer address option.
    pub fn wire_len(&self) -> usize {
        IPV6_HEADER_LEN + self.message.wire_len()
    }

    /// Writes the IPv6 packet (hop limit 255, ICMPv6 checksum filled in) at the start of `out` and returns its
    /// length. A packet that [`new`](Self::new) would refuse is refused here too, so nothing this module sends
    /// is something it would drop.
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, PacketError> {
        self.validate()?;
        let len = self.wire_len();
        let got = out.len();
        let out = out.get_mut(..len).ok_or(PacketError::BufferTooSmall {
            what: "neighbor discovery packet",
            need: len,
            got,
        })?;
        let message_len = self.message.wire_len();
        let header = Ipv6Header {
            traffic_class: 0,
            flow_label: 0,
            payload_len: message_len as u16,
            next_header: NEXT_HEADER_ICMPV6,
            hop_limit: NDP_HOP_LIMIT,
            src: self.src,
            dst: self.dst,
        };
        header.write_to(out)?;
        let icmp = &mut out[IPV6_HEADER_LEN..];
        icmp[0] = self.message.icmp_type();
        icmp[1..8].fill(0);
        let option_kind = match self.message {
            NdpMessage::Solicitation(_) => OPTION_SOURCE_LINK_LAYER,
            NdpMessage::Advertisement(na) => {
                let flag = |set: bool, bit: u8| if set { bit } else { 0 };
                icmp[4] = flag(na.router_flag, FLAG_ROUTER)
                    | flag(na.solicited_flag, FLAG_SOLICITED)
                    | flag(na.override_flag, FLAG_OVERRIDE);
                OPTION_TARGET_LINK_LAYER
            }
        };
        icmp[8..24].copy_from_slice(&self.message.target().octets());
        if let Some(mac) = self.message.link_layer() {
            icmp[24] = option_kind;
            icmp[25] = 1;
            icmp[26..32].copy_from_slice(&mac.0);
        }
        let checksum = icmpv6_checksum(self.src, self.dst, icmp);
        icmp[2..4].copy_from_slice(&checksum.to_be_bytes());
        Ok(len)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, PacketError> {
        let mut out = vec![0; self.wire_len()];
        self.write_to(&mut out)?;
        Ok(out)
    }

    /// The packet in a complete Ethernet frame (ethertype IPv6, padded to 60 bytes). For a multicast `dst` the
    /// Ethernet destination is [`multicast_mac`](super::multicast_mac) of it.
    pub fn to_frame(&self, dst: MacAddr, src: MacAddr, vlan: Option<VlanTag>) -> Result<FrameBuf, PacketError> {
        let header = EthernetHeader { dst, src, vlan, ethertype: EtherType::IPV6 };
        FrameBuf::build(&header, |out| self.write_to(out))
    }

    fn validate(&self) -> Result<(), PacketError> {
        if self.src.is_multicast() {
            return Err(PacketError::MulticastSource(self.src));
        }
        let target = self.message.target();
        if target.is_multicast() {
            return Err(PacketError::MulticastTarget(target));
        }
        match self.message {
            NdpMessage::Solicitation(ns) if self.src.is_unspecified() => {
                if !is_solicited_node_multicast(self.dst) {
                    return Err(PacketError::DadNotToSolicitedNode(self.dst));
                }
                if ns.source_link_layer.is_some() {
                    return Err(PacketError::DadWithSourceLinkLayer);
                }
            }
            NdpMessage::Advertisement(na) if na.solicited_flag && self.dst.is_multicast() => {
                return Err(PacketError::SolicitedToMulticast(self.dst));
            }
            _ => {}
        }
        Ok(())
    }
}

fn check_own_mac(mac: MacAddr) -> Result<(), PacketError> {
    if mac.is_multicast() {
        return Err(PacketError::MulticastMac { field: "link-layer address", mac });
    }
    Ok(())
}

/// Walks the options after the fixed message and returns the Ethernet address of the one of type `wanted`.
/// Every option must have a non-zero length that fits in the message (RFC 4861 4.6); a link-layer address option
/// must be 8 bytes, as Ethernet's is (RFC 2464 8), and appear at most once, since two could name different
/// addresses.
fn link_layer_option(icmp: &[u8], wanted: u8) -> Result<Option<MacAddr>, PacketError> {
    let mut found = None;
    let mut at = NDP_MESSAGE_LEN;
    while at < icmp.len() {
        let rest = &icmp[at..];
        let kind = rest[0];
        let bad = |problem| PacketError::BadOption { kind, offset: at, problem };
        if rest.len() < 2 {
            return Err(bad("option header truncated: one byte left where type and length need two"));
        }
        let len = usize::from(rest[1]) * 8;
        if len == 0 {
            return Err(bad("length is zero"));
        }
        if len > rest.len() {
            return Err(bad("option runs past the end of the message"));
        }
        if kind == wanted {
            if len != LINK_LAYER_OPTION_LEN {
                return Err(bad("link-layer address option is not 8 bytes, the length for Ethernet"));
            }
            if found.is_some() {
                return Err(bad("link-layer address option appears twice"));
            }
            found = Some(MacAddr(rest[2..8].try_into().expect("6 bytes")));
        }
        at += len;
    }
    Ok(found)
}
