use std::net::Ipv6Addr;

use thiserror::Error;

use super::MacAddr;

/// Why bytes are not a frame this module accepts, or why a frame cannot be built.
///
/// One enum for the whole packet domain: parse errors name the field that is wrong and what was expected, so a
/// dropped frame can be logged with a reason an operator understands.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PacketError {
    /// Fewer bytes than the structure needs.
    #[error("{what} truncated: need {need} bytes, got {got}")]
    Truncated { what: &'static str, need: usize, got: usize },
    /// The output buffer given to a `write_to` is too small.
    #[error("buffer too small for {what}: need {need} bytes, got {got}")]
    BufferTooSmall { what: &'static str, need: usize, got: usize },
    #[error("invalid MAC address {input:?}: want six two-digit hex octets separated by ':' or '-'")]
    BadMacAddr { input: String },
    /// Values below 0x0600 are IEEE 802.3 length fields (LLC frames), which carry neither ARP nor IPv6.
    #[error("ethertype {0:#06x} is an 802.3 length field, not an Ethernet II type")]
    NotEthernetII(u16),
    /// Only a single 802.1Q tag is understood; QinQ (802.1ad) and double tags are refused.
    #[error("stacked VLAN tags are not supported (tag protocol {tpid:#06x} where an ethertype was expected)")]
    StackedVlan { tpid: u16 },
    /// VLAN id 4095 is reserved by 802.1Q; larger values do not fit in 12 bits.
    #[error("VLAN id {0} is invalid: want 0 (priority tag only) to 4094")]
    BadVlanId(u16),
    #[error("VLAN priority {0} is invalid: want 0 to 7")]
    BadVlanPriority(u8),
    #[error("ARP hardware type {0} is not Ethernet (1)")]
    BadHardwareType(u16),
    #[error("ARP protocol type {0:#06x} is not IPv4 (0x0800)")]
    BadProtocolType(u16),
    #[error("ARP address lengths are hardware {hlen} / protocol {plen}, want 6 / 4 for Ethernet / IPv4")]
    BadAddressLength { hlen: u8, plen: u8 },
    #[error("ARP opcode {0} is neither request (1) nor reply (2)")]
    BadOpcode(u16),
    /// A builder was given a group address where a station's own address is required.
    #[error("{field} {mac} is a multicast MAC address, want a unicast one")]
    MulticastMac { field: &'static str, mac: MacAddr },
    /// Only requests (ARP request, neighbor solicitation) can be answered.
    #[error("cannot answer {what}: it is not a request")]
    NotARequest { what: &'static str },
    #[error("IP version {0}, want 6")]
    BadIpVersion(u8),
    #[error("IPv6 payload length {declared} exceeds the {available} bytes after the header")]
    BadPayloadLength { declared: usize, available: usize },
    #[error("IPv6 next header {0} is not ICMPv6 (58)")]
    BadNextHeader(u8),
    /// RFC 4861 requires 255 so that a neighbor discovery message cannot have crossed a router.
    #[error("hop limit {0}, neighbor discovery requires 255")]
    BadHopLimit(u8),
    #[error("ICMPv6 type {0} is not a neighbor solicitation (135) or advertisement (136)")]
    NotNeighborDiscovery(u8),
    #[error("ICMPv6 code {0}, neighbor discovery requires 0")]
    BadIcmpCode(u8),
    #[error("ICMPv6 checksum {found:#06x} is wrong, computed {computed:#06x}")]
    BadChecksum { found: u16, computed: u16 },
    /// An NDP option is malformed; `offset` counts from the start of the ICMPv6 message.
    #[error("NDP option type {kind} at byte {offset}: {problem}")]
    BadOption { kind: u8, offset: usize, problem: &'static str },
    #[error("NDP target address {0} is multicast")]
    MulticastTarget(Ipv6Addr),
    #[error("IPv6 source address {0} is multicast")]
    MulticastSource(Ipv6Addr),
    /// RFC 4861 7.1.1: a duplicate address detection probe goes to the solicited-node group.
    #[error("solicitation from the unspecified address is sent to {0}, want a solicited-node multicast address")]
    DadNotToSolicitedNode(Ipv6Addr),
    /// RFC 4861 7.1.1: a probe from `::` has no address to bind a link-layer address to.
    #[error("solicitation from the unspecified address carries a source link-layer address option")]
    DadWithSourceLinkLayer,
    /// RFC 4861 7.1.2: a multicast advertisement cannot be an answer to one host.
    #[error("advertisement to multicast {0} has the Solicited flag set")]
    SolicitedToMulticast(Ipv6Addr),
}
