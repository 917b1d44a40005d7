use std::net::Ipv6Addr;

use super::ethernet::be16;
use super::{MacAddr, PacketError};

/// Bytes of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;
/// IPv6 next header value for ICMPv6.
pub const NEXT_HEADER_ICMPV6: u8 = 58;
/// The link-local all-nodes group, destination of unsolicited advertisements.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The fixed IPv6 header (RFC 8200). Extension headers are not interpreted: `next_header` is whatever follows.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Ipv6Header {
    pub traffic_class: u8,
    /// 20 bits; higher bits are dropped when writing.
    pub flow_label: u32,
    pub payload_len: u16,
    pub next_header: u8,
    pub hop_limit: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
}

impl Ipv6Header {
    /// Parses the header and returns it with its payload, cut to `payload_len` (trailing Ethernet padding is
    /// dropped). A payload length larger than the bytes present is an error.
    pub fn parse(bytes: &[u8]) -> Result<(Self, &[u8]), PacketError> {
        if bytes.len() < IPV6_HEADER_LEN {
            return Err(PacketError::Truncated { what: "IPv6 header", need: IPV6_HEADER_LEN, got: bytes.len() });
        }
        let version = bytes[0] >> 4;
        if version != 6 {
            return Err(PacketError::BadIpVersion(version));
        }
        let traffic_class = (bytes[0] << 4) | (bytes[1] >> 4);
        let flow_label = u32::from_be_bytes([0, bytes[1] & 0x0f, bytes[2], bytes[3]]);
        let payload_len = be16(bytes, 4);
        let available = bytes.len() - IPV6_HEADER_LEN;
        if usize::from(payload_len) > available {
            return Err(PacketError::BadPayloadLength { declared: payload_len.into(), available });
        }
        let header = Ipv6Header {
            traffic_class,
            flow_label,
            payload_len,
            next_header: bytes[6],
            hop_limit: bytes[7],
            src: ipv6_at(bytes, 8),
            dst: ipv6_at(bytes, 24),
        };
        Ok((header, &bytes[IPV6_HEADER_LEN..IPV6_HEADER_LEN + usize::from(payload_len)]))
    }

    /// Writes the header at the start of `out` and returns [`IPV6_HEADER_LEN`].
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, PacketError> {
        let got = out.len();
        let out = out.get_mut(..IPV6_HEADER_LEN).ok_or(PacketError::BufferTooSmall {
            what: "IPv6 header",
            need: IPV6_HEADER_LEN,
            got,
        })?;
        let word = 6u32 << 28 | u32::from(self.traffic_class) << 20 | (self.flow_label & 0x000f_ffff);
        out[0..4].copy_from_slice(&word.to_be_bytes());
        out[4..6].copy_from_slice(&self.payload_len.to_be_bytes());
        out[6] = self.next_header;
        out[7] = self.hop_limit;
        out[8..24].copy_from_slice(&self.src.octets());
        out[24..40].copy_from_slice(&self.dst.octets());
        Ok(IPV6_HEADER_LEN)
    }
}

/// The solicited-node multicast group of `addr` (RFC 4291 2.7.1): `ff02::1:ff` followed by its low 24 bits.
/// Neighbor solicitations for `addr` are sent there.
pub fn solicited_node_multicast(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15]])
}

/// Whether `addr` is in `ff02::1:ff00:0/104`.
pub fn is_solicited_node_multicast(addr: Ipv6Addr) -> bool {
    addr.octets()[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff]
}

/// The Ethernet address an IPv6 multicast group maps to (RFC 2464 section 7): `33:33` and the group's low 32
/// bits. Only meaningful for a multicast `group`.
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The Ethernet address of `addr`'s solicited-node group: `33:33:ff` and its low 24 bits.
pub fn solicited_node_mac(addr: Ipv6Addr) -> MacAddr {
    multicast_mac(solicited_node_multicast(addr))
}

/// The ICMPv6 checksum (RFC 4443 2.3) of `message` sent from `src` to `dst`: the ones' complement of the ones'
/// complement sum over the pseudo-header (RFC 8200 8.1) and the message. Whatever the message holds in its
/// checksum field is summed too: zero it to compute a checksum; over a correct message the result is 0.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    finish(pseudo_header_sum(src, dst, message.len()) + sum_words(message))
}

/// The checksum `message` should carry, as if its checksum field (bytes 2 and 3) were zero.
pub(crate) fn icmpv6_checksum_unfilled(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    finish(pseudo_header_sum(src, dst, message.len()) + sum_words(&message[..2]) + sum_words(&message[4..]))
}

fn pseudo_header_sum(src: Ipv6Addr, dst: Ipv6Addr, len: usize) -> u64 {
    // Upper-layer packet length (32 bits) and next header (low byte of 32 bits).
    let len = len as u64;
    sum_words(&src.octets()) + sum_words(&dst.octets()) + (len >> 16) + (len & 0xffff) + u64::from(NEXT_HEADER_ICMPV6)
}

fn finish(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sums big-endian 16-bit words, padding an odd tail with a zero byte; carries are folded by the caller.
fn sum_words(bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(2);
    let mut sum: u64 = chunks.by_ref().map(|w| u64::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    if let [last] = chunks.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

fn ipv6_at(bytes: &[u8], at: usize) -> Ipv6Addr {
    let octets: [u8; 16] = bytes[at..at + 16].try_into().expect("16 bytes");
    Ipv6Addr::from(octets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solicited_node_group_and_mac() {
        let addr: Ipv6Addr = "2001:db8::abcd:1234:5678".parse().unwrap();
        assert_eq!(solicited_node_multicast(addr), "ff02::1:ff34:5678".parse::<Ipv6Addr>().unwrap());
        assert!(is_solicited_node_multicast(solicited_node_multicast(addr)));
        assert!(!is_solicited_node_multicast(ALL_NODES));
        assert_eq!(solicited_node_mac(addr), MacAddr::new(0x33, 0x33, 0xff, 0x34, 0x56, 0x78));
        assert_eq!(multicast_mac(ALL_NODES), MacAddr::new(0x33, 0x33, 0, 0, 0, 1));
    }

    #[test]
    fn header_round_trips_all_fields() {
        let header = Ipv6Header {
            traffic_class: 0xab,
            flow_label: 0xcdef1,
            payload_len: 2,
            next_header: 58,
            hop_limit: 255,
            src: "2001:db8::1".parse().unwrap(),
            dst: "ff02::1".parse().unwrap(),
        };
        let mut bytes = [0u8; 43];
        header.write_to(&mut bytes).unwrap();
        assert_eq!(&bytes[..4], &[0x6a, 0xbc, 0xde, 0xf1]);
        let (parsed, payload) = Ipv6Header::parse(&bytes).unwrap();
        assert_eq!(parsed, header);
        assert_eq!(payload.len(), 2, "trailing padding is cut off");
    }

    #[test]
    fn header_refuses_wrong_version_and_long_payload_length() {
        let mut bytes = [0u8; 40];
        bytes[0] = 0x45;
        assert_eq!(Ipv6Header::parse(&bytes), Err(PacketError::BadIpVersion(4)));
        bytes[0] = 0x60;
        bytes[5] = 1;
        assert_eq!(Ipv6Header::parse(&bytes), Err(PacketError::BadPayloadLength { declared: 1, available: 0 }));
    }

    #[test]
    fn checksum_over_a_correct_message_is_zero_also_for_odd_lengths() {
        let (src, dst): (Ipv6Addr, Ipv6Addr) = ("fe80::1".parse().unwrap(), "ff02::1".parse().unwrap());
        for len in [4, 5, 24, 33] {
            let mut message: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            message[2..4].fill(0);
            let sum = icmpv6_checksum(src, dst, &message);
            message[2..4].copy_from_slice(&sum.to_be_bytes());
            assert_eq!(icmpv6_checksum(src, dst, &message), 0, "length {len}");
        }
    }
}
