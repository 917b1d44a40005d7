use std::fmt;
use std::net::Ipv4Addr;

use super::ethernet::be16;
use super::{EtherType, EthernetHeader, FrameBuf, MacAddr, PacketError, VlanTag};

/// Bytes of an ARP packet for Ethernet and IPv4.
pub const ARP_LEN: usize = 28;

const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;
/// Hardware type, protocol type, address lengths and opcode.
const ARP_FIXED_LEN: usize = 8;

/// The ARP operation (RFC 826); RARP and InARP opcodes are refused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ArpOp {
    Request = 1,
    Reply = 2,
}

impl ArpOp {
    pub fn from_u16(op: u16) -> Result<Self, PacketError> {
        match op {
            1 => Ok(ArpOp::Request),
            2 => Ok(ArpOp::Reply),
            other => Err(PacketError::BadOpcode(other)),
        }
    }
}

impl fmt::Display for ArpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArpOp::Request => "request",
            ArpOp::Reply => "reply",
        })
    }
}

/// An ARP packet for Ethernet hardware addresses and IPv4 protocol addresses.
///
/// Only the fields that vary are stored: hardware type 1, protocol type 0x0800 and the lengths 6 and 4 are
/// checked by [`parse`](Self::parse) and written by [`to_bytes`](Self::to_bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ArpPacket {
    pub op: ArpOp,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

impl ArpPacket {
    /// A packet to send. The sender hardware address must not be a group address: neighbors would cache it.
    /// A zero sender IP is allowed (RFC 5227 probes).
    pub fn new(
        op: ArpOp,
        sender_mac: MacAddr,
        sender_ip: Ipv4Addr,
        target_mac: MacAddr,
        target_ip: Ipv4Addr,
    ) -> Result<Self, PacketError> {
        if sender_mac.is_multicast() {
            return Err(PacketError::MulticastMac { field: "ARP sender hardware address", mac: sender_mac });
        }
        Ok(ArpPacket { op, sender_mac, sender_ip, target_mac, target_ip })
    }

    /// "Who has `target_ip`? Tell `sender_ip`": the target hardware address is unknown and left zero.
    pub fn request(sender_mac: MacAddr, sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Result<Self, PacketError> {
        Self::new(ArpOp::Request, sender_mac, sender_ip, MacAddr::ZERO, target_ip)
    }

    /// The answer to this request: "`target_ip` is at `our_mac`", addressed to the requester.
    pub fn reply_to(&self, our_mac: MacAddr) -> Result<Self, PacketError> {
        if self.op != ArpOp::Request {
            return Err(PacketError::NotARequest { what: "an ARP reply" });
        }
        Self::new(ArpOp::Reply, our_mac, self.target_ip, self.sender_mac, self.sender_ip)
    }

    /// Gratuitous ARP, request form (an RFC 5227 ARP announcement): sender and target IP are both `ip` and the
    /// target hardware address is zero. Send it to [`MacAddr::BROADCAST`].
    pub fn gratuitous_request(mac: MacAddr, ip: Ipv4Addr) -> Result<Self, PacketError> {
        Self::new(ArpOp::Request, mac, ip, MacAddr::ZERO, ip)
    }

    /// Gratuitous ARP, reply form: sender and target IP are both `ip`, and, as RFC 5944 4.6 says for the reply
    /// form, the target hardware address repeats `mac`. Send it to [`MacAddr::BROADCAST`].
    pub fn gratuitous_reply(mac: MacAddr, ip: Ipv4Addr) -> Result<Self, PacketError> {
        Self::new(ArpOp::Reply, mac, ip, mac, ip)
    }

    /// Sender and target IP are the same, as in gratuitous ARP (both forms) and RFC 5227 announcements.
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip
    }

    /// Parses an ARP packet from the payload of an Ethernet frame. Bytes past [`ARP_LEN`] (Ethernet padding)
    /// are ignored.
    pub fn parse(bytes: &[u8]) -> Result<Self, PacketError> {
        if bytes.len() < ARP_FIXED_LEN {
            return Err(PacketError::Truncated { what: "ARP header", need: ARP_FIXED_LEN, got: bytes.len() });
        }
        let htype = be16(bytes, 0);
        if htype != HTYPE_ETHERNET {
            return Err(PacketError::BadHardwareType(htype));
        }
        let ptype = be16(bytes, 2);
        if ptype != PTYPE_IPV4 {
            return Err(PacketError::BadProtocolType(ptype));
        }
        let (hlen, plen) = (bytes[4], bytes[5]);
        if (hlen, plen) != (6, 4) {
            return Err(PacketError::BadAddressLength { hlen, plen });
        }
        let op = ArpOp::from_u16(be16(bytes, 6))?;
        if bytes.len() < ARP_LEN {
            return Err(PacketError::Truncated { what: "ARP packet", need: ARP_LEN, got: bytes.len() });
        }
        Ok(ArpPacket {
            op,
            sender_mac: mac_at(bytes, 8),
            sender_ip: ipv4_at(bytes, 14),
            target_mac: mac_at(bytes, 18),
            target_ip: ipv4_at(bytes, 24),
        })
    }

    pub fn to_bytes(&self) -> [u8; ARP_LEN] {
        let mut out = [0u8; ARP_LEN];
        out[0..2].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        out[2..4].copy_from_slice(&PTYPE_IPV4.to_be_bytes());
        out[4] = 6;
        out[5] = 4;
        out[6..8].copy_from_slice(&(self.op as u16).to_be_bytes());
        out[8..14].copy_from_slice(&self.sender_mac.0);
        out[14..18].copy_from_slice(&self.sender_ip.octets());
        out[18..24].copy_from_slice(&self.target_mac.0);
        out[24..28].copy_from_slice(&self.target_ip.octets());
        out
    }

    /// Writes the packet at the start of `out` and returns [`ARP_LEN`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, PacketError> {
        let got = out.len();
        let dst =
            out.get_mut(..ARP_LEN).ok_or(PacketError::BufferTooSmall { what: "ARP packet", need: ARP_LEN, got })?;
        dst.copy_from_slice(&self.to_bytes());
        Ok(ARP_LEN)
    }

    /// The packet in a complete Ethernet frame (ethertype ARP, padded to 60 bytes).
    pub fn to_frame(&self, dst: MacAddr, src: MacAddr, vlan: Option<VlanTag>) -> FrameBuf {
        let header = EthernetHeader { dst, src, vlan, ethertype: EtherType::ARP };
        FrameBuf::build(&header, |out| self.write_to(out)).expect("an ARP frame fits in a FrameBuf")
    }
}

fn mac_at(bytes: &[u8], at: usize) -> MacAddr {
    MacAddr(bytes[at..at + 6].try_into().expect("6 bytes"))
}

fn ipv4_at(bytes: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3])
}
