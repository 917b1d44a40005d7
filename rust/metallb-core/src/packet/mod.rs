//! Ethernet, ARP and NDP frames: parse and build, no I/O.
//!
//! What the layer-2 responder reads and writes. Each packet type has a validating constructor, `parse` from
//! borrowed bytes and `write_to` / `to_bytes` / `to_frame` to serialize; replies are built in a stack
//! [`FrameBuf`], so answering a request allocates nothing. Parsers reject with a [`PacketError`] that names the
//! offending field, never panic, and ignore trailing Ethernet padding.
//!
//! VLANs: one 802.1Q tag is parsed and kept in [`EthernetHeader::vlan`], so a frame re-serializes exactly and
//! a reply can carry the tag back; QinQ (802.1ad) and stacked tags are refused. Whether to answer tagged frames
//! at all is the responder's decision, not this module's.
//!
//! Scope: Ethernet II with at most one 802.1Q tag; ARP for Ethernet/IPv4 (RFC 826, gratuitous forms per RFC 5227
//! and RFC 5944); IPv6 neighbor solicitations and advertisements (RFC 4861) with their link-layer address options.

mod arp;
mod error;
mod ethernet;
mod ipv6;
mod mac;
mod ndp;

pub use arp::{ArpOp, ArpPacket, ARP_LEN};
pub use error::PacketError;
pub use ethernet::{
    EtherType, EthernetFrame, EthernetHeader, FrameBuf, VlanTag, ETHERNET_HEADER_LEN, FRAME_BUF_LEN, MIN_FRAME_LEN,
    VLAN_TAG_LEN,
};
pub use ipv6::{
    icmpv6_checksum, is_solicited_node_multicast, multicast_mac, solicited_node_mac, solicited_node_multicast,
    Ipv6Header, ALL_NODES, IPV6_HEADER_LEN, NEXT_HEADER_ICMPV6,
};
pub use mac::MacAddr;
pub use ndp::{
    NdpMessage, NdpPacket, NeighborAdvertisement, NeighborSolicitation, ICMPV6_NEIGHBOR_ADVERTISEMENT,
    ICMPV6_NEIGHBOR_SOLICITATION, MAX_NDP_PACKET_LEN, NDP_HOP_LIMIT, NDP_MESSAGE_LEN,
};
