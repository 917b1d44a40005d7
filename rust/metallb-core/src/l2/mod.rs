//! The layer-2 responder's decision: answer a received frame or say why not.
//!
//! [`decide`] is pure: it takes the frame's bytes, the set of addresses this speaker announces on the interface
//! and the interface's own addresses, and returns [`Decision::Reply`] with the frame to send or
//! [`Decision::Drop`] with a [`DropReason`], so every reason is testable without a socket and countable in
//! metrics. [`examine`] makes the same decision from the same single parse and also says whether the frame is
//! another station's [`Claim`] on an announced address (gratuitous ARP, an ARP packet sent from the address, a
//! neighbor advertisement for it): MetalLB answers on regardless and says nothing; the responder reports it.
//! The socket loop around both lives elsewhere. [`announcement`] builds the unsolicited frames sent when an
//! address moves to this node.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};

use crate::packet::{
    multicast_mac, solicited_node_multicast, ArpOp, ArpPacket, EtherType, EthernetFrame, EthernetHeader, FrameBuf,
    MacAddr, NdpMessage, NdpPacket, PacketError, ALL_NODES,
};

#[cfg(test)]
mod claim_tests;
#[cfg(test)]
mod tests;

/// The addresses this speaker answers for on one interface: those of the services it is the elected speaker
/// for, filtered by the L2 advertisements' interface selectors.
pub trait AnnounceSet {
    fn announces(&self, ip: IpAddr) -> bool;
}

impl<S: BuildHasher> AnnounceSet for HashSet<IpAddr, S> {
    fn announces(&self, ip: IpAddr) -> bool {
        self.contains(&ip)
    }
}

/// The hasher for announce sets on the packet path: every frame looks up one or two addresses (the target asked
/// about, and the sender, for claims), and foldhash takes a few nanoseconds where SipHash takes tens. The keys
/// are the speaker's own addresses, so there is no hash flooding to resist.
pub type AddressHasher = foldhash::fast::RandomState;

impl AnnounceSet for BTreeSet<IpAddr> {
    fn announces(&self, ip: IpAddr) -> bool {
        self.contains(&ip)
    }
}

impl AnnounceSet for [IpAddr] {
    fn announces(&self, ip: IpAddr) -> bool {
        self.contains(&ip)
    }
}

/// The interface a frame arrived on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Interface {
    pub mac: MacAddr,
    /// Source of neighbor advertisements. MetalLB answers from the interface's link-local address; without one
    /// the answer comes from the target address itself, as Linux does.
    pub link_local: Option<Ipv6Addr>,
}

/// A frame to send in answer, with the packet it carries for logging and tests.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Reply {
    Arp { header: EthernetHeader, packet: ArpPacket },
    Ndp { header: EthernetHeader, packet: NdpPacket },
}

impl Reply {
    /// The address the reply says is here.
    pub fn target(&self) -> IpAddr {
        match self {
            Reply::Arp { packet, .. } => packet.sender_ip.into(),
            Reply::Ndp { packet, .. } => packet.message.target().into(),
        }
    }

    /// The complete Ethernet frame to send.
    pub fn frame(&self) -> FrameBuf {
        match self {
            Reply::Arp { header, packet } => packet.to_frame(header.dst, header.src, header.vlan),
            Reply::Ndp { header, packet } => {
                packet.to_frame(header.dst, header.src, header.vlan).expect("decide only builds valid answers")
            }
        }
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Decision {
    Reply(Reply),
    Drop(DropReason),
}

/// Why a frame gets no answer. [`DropReason::label`] gives a stable name for metrics.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum DropReason {
    /// The frame is truncated or violates ARP, IPv6 or RFC 4861 rules.
    Malformed(PacketError),
    /// Neither ARP nor an IPv6 neighbor solicitation or advertisement (the socket's filter normally keeps these
    /// out).
    NotArpOrNdp,
    /// The frame carries an 802.1Q tag: it belongs to the VLAN's own interface, whose responder answers it.
    VlanTagged { vlan_id: u16 },
    /// Sent by this interface: our own announcement seen again.
    FromSelf,
    /// The Ethernet source, ARP sender or NDP source link-layer address is not a station's address.
    SenderNotUnicast(MacAddr),
    /// An ARP reply or a neighbor advertisement: information, not a question.
    NotARequest,
    /// Gratuitous ARP from another host (sender IP = target IP): an announcement, not a question.
    Gratuitous,
    /// Sent to another station's MAC address, or to a multicast group other than the target's.
    EthernetDestination(MacAddr),
    /// A solicitation sent neither to the target's solicited-node group nor to the target itself.
    Ipv6Destination(Ipv6Addr),
    /// A multicast solicitation without the source link-layer address RFC 4861 4.3 requires: there is no
    /// address to send the answer to.
    NoSourceLinkLayer,
    /// This speaker does not announce the address asked about on this interface.
    NotAnnounced(IpAddr),
}

impl DropReason {
    /// A short stable name, for metrics labels.
    pub fn label(&self) -> &'static str {
        match self {
            DropReason::Malformed(_) => "malformed",
            DropReason::NotArpOrNdp => "not_arp_or_ndp",
            DropReason::VlanTagged { .. } => "vlan_tagged",
            DropReason::FromSelf => "from_self",
            DropReason::SenderNotUnicast(_) => "sender_not_unicast",
            DropReason::NotARequest => "not_a_request",
            DropReason::Gratuitous => "gratuitous",
            DropReason::EthernetDestination(_) => "ethernet_destination",
            DropReason::Ipv6Destination(_) => "ipv6_destination",
            DropReason::NoSourceLinkLayer => "no_source_link_layer",
            DropReason::NotAnnounced(_) => "not_announced",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Malformed(err) => write!(f, "malformed frame: {err}"),
            DropReason::NotArpOrNdp => f.write_str("neither ARP nor neighbor discovery"),
            DropReason::VlanTagged { vlan_id } => write!(f, "tagged for VLAN {vlan_id}"),
            DropReason::FromSelf => f.write_str("sent by this interface"),
            DropReason::SenderNotUnicast(mac) => write!(f, "sender address {mac} is not unicast"),
            DropReason::NotARequest => f.write_str("not a request"),
            DropReason::Gratuitous => f.write_str("gratuitous ARP from another host"),
            DropReason::EthernetDestination(mac) => write!(f, "Ethernet destination {mac} is not ours"),
            DropReason::Ipv6Destination(ip) => write!(f, "IPv6 destination {ip} is neither the target nor its group"),
            DropReason::NoSourceLinkLayer => f.write_str("multicast solicitation without source link-layer address"),
            DropReason::NotAnnounced(ip) => write!(f, "{ip} is not announced here"),
        }
    }
}

/// Another station claiming an address this speaker announces on the interface: it sent an ARP packet (request
/// or reply, gratuitous or not) with the address as sender protocol address, a neighbor advertisement for it
/// (solicited or not), or a neighbor solicitation from it, with a link-layer address that is none of ours.
///
/// Neighbors that heard it may now send the address's traffic to `mac`. A duplicate address detection probe
/// (a solicitation from `::`) claims nothing: the prober does not use the address yet, and the answer the
/// responder sends it makes its detection fail.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Claim {
    pub ip: IpAddr,
    /// The link-layer address the claim tells neighbors to use: the ARP sender hardware address, the target
    /// (or source) link-layer address option, or the Ethernet source when the message has no option.
    pub mac: MacAddr,
}

/// What one received frame means to the responder: what to do with it, and the claim it makes on an announced
/// address, if any (a frame can be both a question to answer and a claim: a request sent from an announced
/// address by another host for another announced address).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Verdict {
    pub decision: Decision,
    pub claim: Option<Claim>,
}

/// Decides what to do with one frame received on `iface`.
///
/// Checks run from the cheapest and most general to the most specific, and the first that fails names the
/// drop: Ethernet (parse, VLAN tag, our own frame, unicast source), then the protocol (parse, request, addressed
/// to us), then whether the target is announced here.
pub fn decide(frame: &[u8], announced: &(impl AnnounceSet + ?Sized), iface: &Interface) -> Decision {
    examine(frame, announced, iface, &[]).decision
}

/// [`decide`], and whether the frame is another station's [`Claim`] on an address in `announced`.
///
/// `ours` lists the MAC addresses of the node's other interfaces (that of `iface` is always ours): a frame
/// claiming an address from one of them is this node's own announcement seen on another of its links, never a
/// claim. Frames that [`decide`] drops before reading the protocol (malformed, VLAN-tagged, sent by `iface`,
/// from a group address) claim nothing. The decision is exactly [`decide`]'s: a claim changes no answer.
pub fn examine(frame: &[u8], announced: &(impl AnnounceSet + ?Sized), iface: &Interface, ours: &[MacAddr]) -> Verdict {
    let (answer, claim) = examine_inner(frame, announced, iface, ours);
    let decision = match answer {
        Ok(reply) => Decision::Reply(reply),
        Err(reason) => Decision::Drop(reason),
    };
    Verdict { decision, claim }
}

type Examined = (Result<Reply, DropReason>, Option<Claim>);

fn examine_inner(
    bytes: &[u8],
    announced: &(impl AnnounceSet + ?Sized),
    iface: &Interface,
    ours: &[MacAddr],
) -> Examined {
    let frame = match EthernetFrame::parse(bytes) {
        Ok(frame) => frame,
        Err(err) => return (Err(DropReason::Malformed(err)), None),
    };
    let eth = frame.header;
    if let Some(tag) = eth.vlan {
        return (Err(DropReason::VlanTagged { vlan_id: tag.id() }), None);
    }
    if eth.src == iface.mac {
        return (Err(DropReason::FromSelf), None);
    }
    if !eth.src.is_unicast() {
        return (Err(DropReason::SenderNotUnicast(eth.src)), None);
    }
    // A claim names an address announced here from a station's address that is not ours.
    let claim = |ip: IpAddr, mac: MacAddr| {
        let foreign = mac.is_unicast() && mac != iface.mac && !ours.contains(&mac);
        (foreign && announced.announces(ip)).then_some(Claim { ip, mac })
    };
    match eth.ethertype {
        EtherType::ARP => match ArpPacket::parse(frame.payload) {
            Ok(packet) => {
                let claimed = claim(packet.sender_ip.into(), packet.sender_mac);
                (answer_arp(&eth, &packet, announced, iface), claimed)
            }
            Err(err) => (Err(DropReason::Malformed(err)), None),
        },
        EtherType::IPV6 => match NdpPacket::parse(frame.payload) {
            Ok(packet) => {
                let claimed = match packet.message {
                    NdpMessage::Advertisement(na) => claim(na.target.into(), na.target_link_layer.unwrap_or(eth.src)),
                    // From `::` it is a duplicate address detection probe, which claims nothing yet.
                    NdpMessage::Solicitation(_) if packet.src.is_unspecified() => None,
                    NdpMessage::Solicitation(ns) => claim(packet.src.into(), ns.source_link_layer.unwrap_or(eth.src)),
                };
                (answer_ndp(&eth, &packet, announced, iface), claimed)
            }
            Err(PacketError::BadNextHeader(_) | PacketError::NotNeighborDiscovery(_)) => {
                (Err(DropReason::NotArpOrNdp), None)
            }
            Err(err) => (Err(DropReason::Malformed(err)), None),
        },
        _ => (Err(DropReason::NotArpOrNdp), None),
    }
}

fn answer_arp(
    eth: &EthernetHeader,
    request: &ArpPacket,
    announced: &(impl AnnounceSet + ?Sized),
    iface: &Interface,
) -> Result<Reply, DropReason> {
    if request.op != ArpOp::Request {
        return Err(DropReason::NotARequest);
    }
    if !eth.dst.is_broadcast() && eth.dst != iface.mac {
        return Err(DropReason::EthernetDestination(eth.dst));
    }
    if !request.sender_mac.is_unicast() {
        return Err(DropReason::SenderNotUnicast(request.sender_mac));
    }
    // Sender IP 0.0.0.0 with target = sender would be a probe for 0.0.0.0, never announced; real RFC 5227
    // probes (sender 0.0.0.0, target ours) are answered so the prober sees the conflict.
    if request.is_gratuitous() {
        return Err(DropReason::Gratuitous);
    }
    if !announced.announces(request.target_ip.into()) {
        return Err(DropReason::NotAnnounced(request.target_ip.into()));
    }
    let packet = request.reply_to(iface.mac).map_err(DropReason::Malformed)?;
    let header = EthernetHeader { dst: request.sender_mac, src: iface.mac, vlan: None, ethertype: EtherType::ARP };
    Ok(Reply::Arp { header, packet })
}

fn answer_ndp(
    eth: &EthernetHeader,
    request: &NdpPacket,
    announced: &(impl AnnounceSet + ?Sized),
    iface: &Interface,
) -> Result<Reply, DropReason> {
    let NdpMessage::Solicitation(ns) = request.message else {
        return Err(DropReason::NotARequest);
    };
    let group = solicited_node_multicast(ns.target);
    if request.dst != group && request.dst != ns.target {
        return Err(DropReason::Ipv6Destination(request.dst));
    }
    let want_eth_dst = if request.dst == group { multicast_mac(group) } else { iface.mac };
    if eth.dst != want_eth_dst {
        return Err(DropReason::EthernetDestination(eth.dst));
    }
    if let Some(mac) = ns.source_link_layer.filter(|mac| !mac.is_unicast()) {
        return Err(DropReason::SenderNotUnicast(mac));
    }
    let probe = request.src.is_unspecified();
    if ns.source_link_layer.is_none() && !probe && request.dst.is_multicast() {
        return Err(DropReason::NoSourceLinkLayer);
    }
    if !announced.announces(ns.target.into()) {
        return Err(DropReason::NotAnnounced(ns.target.into()));
    }
    let packet = request.answer(iface.link_local.unwrap_or(ns.target), iface.mac).map_err(DropReason::Malformed)?;
    let dst = if probe { multicast_mac(ALL_NODES) } else { ns.source_link_layer.unwrap_or(eth.src) };
    let header = EthernetHeader { dst, src: iface.mac, vlan: None, ethertype: EtherType::IPV6 };
    Ok(Reply::Ndp { header, packet })
}

/// The unsolicited frames that tell the link `ip` is now at `iface`: for IPv4 a gratuitous ARP in both forms
/// (request, then reply; hosts differ in which they honor), for IPv6 an unsolicited neighbor advertisement
/// with the Override flag to all nodes.
pub fn announcement(ip: IpAddr, iface: &Interface) -> Result<Vec<FrameBuf>, PacketError> {
    match ip {
        IpAddr::V4(ip) => {
            let request = ArpPacket::gratuitous_request(iface.mac, ip)?;
            let reply = ArpPacket::gratuitous_reply(iface.mac, ip)?;
            Ok(vec![
                request.to_frame(MacAddr::BROADCAST, iface.mac, None),
                reply.to_frame(MacAddr::BROADCAST, iface.mac, None),
            ])
        }
        IpAddr::V6(ip) => {
            let packet = NdpPacket::unsolicited_advertisement(iface.link_local.unwrap_or(ip), ip, iface.mac)?;
            Ok(vec![packet.to_frame(multicast_mac(ALL_NODES), iface.mac, None)?])
        }
    }
}
