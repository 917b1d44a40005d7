use std::fmt;
use std::ops::Deref;

use super::{MacAddr, PacketError};

/// Bytes of an untagged Ethernet II header: destination, source, ethertype.
pub const ETHERNET_HEADER_LEN: usize = 14;
/// Bytes an 802.1Q tag adds to the header.
pub const VLAN_TAG_LEN: usize = 4;
/// Shortest Ethernet frame on the wire, without the frame check sequence; shorter frames are padded.
pub const MIN_FRAME_LEN: usize = 60;
/// Capacity of [`FrameBuf`]: enough for every frame this module builds (the largest, a tagged neighbor
/// advertisement with a link-layer option, is 90 bytes).
pub const FRAME_BUF_LEN: usize = 128;

/// The type field of an Ethernet II frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: EtherType = EtherType(0x0800);
    pub const ARP: EtherType = EtherType(0x0806);
    /// IEEE 802.1Q customer VLAN tag protocol identifier.
    pub const VLAN: EtherType = EtherType(0x8100);
    pub const IPV6: EtherType = EtherType(0x86dd);
    /// IEEE 802.1ad service VLAN (QinQ) tag protocol identifier.
    pub const QINQ: EtherType = EtherType(0x88a8);

    fn is_vlan_tpid(self) -> bool {
        self == Self::VLAN || self == Self::QINQ
    }

    /// Refuses values that cannot stand in the type field of an untagged position: 802.3 lengths and tag
    /// protocol identifiers (which would make the payload read as another tag).
    fn check(self) -> Result<(), PacketError> {
        if self.0 < 0x0600 {
            Err(PacketError::NotEthernetII(self.0))
        } else if self.is_vlan_tpid() {
            Err(PacketError::StackedVlan { tpid: self.0 })
        } else {
            Ok(())
        }
    }
}

impl fmt::Debug for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EtherType({self})")
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IPV4 => f.write_str("IPv4"),
            Self::ARP => f.write_str("ARP"),
            Self::VLAN => f.write_str("802.1Q"),
            Self::IPV6 => f.write_str("IPv6"),
            Self::QINQ => f.write_str("802.1ad"),
            EtherType(other) => write!(f, "{other:#06x}"),
        }
    }
}

/// One IEEE 802.1Q tag: priority code point, drop eligible indicator and VLAN id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct VlanTag {
    priority: u8,
    drop_eligible: bool,
    id: u16,
}

impl VlanTag {
    /// `id` 0 means a priority-only tag (no VLAN); 4095 is reserved.
    pub fn new(priority: u8, drop_eligible: bool, id: u16) -> Result<Self, PacketError> {
        if priority > 7 {
            return Err(PacketError::BadVlanPriority(priority));
        }
        if id >= 0x0fff {
            return Err(PacketError::BadVlanId(id));
        }
        Ok(VlanTag { priority, drop_eligible, id })
    }

    /// Decodes a tag control information field.
    pub fn from_tci(tci: u16) -> Result<Self, PacketError> {
        Self::new((tci >> 13) as u8, tci & 0x1000 != 0, tci & 0x0fff)
    }

    pub fn tci(&self) -> u16 {
        u16::from(self.priority) << 13 | u16::from(self.drop_eligible) << 12 | self.id
    }

    pub fn priority(&self) -> u8 {
        self.priority
    }

    pub fn drop_eligible(&self) -> bool {
        self.drop_eligible
    }

    pub fn id(&self) -> u16 {
        self.id
    }
}

/// The header of an Ethernet II frame, with at most one 802.1Q tag.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct EthernetHeader {
    pub dst: MacAddr,
    pub src: MacAddr,
    /// The 802.1Q tag, if the frame carried one; the frame's `ethertype` is the one after the tag.
    pub vlan: Option<VlanTag>,
    pub ethertype: EtherType,
}

impl EthernetHeader {
    /// Validates `ethertype`: it must be an Ethernet II type and not a tag protocol identifier.
    pub fn new(dst: MacAddr, src: MacAddr, vlan: Option<VlanTag>, ethertype: EtherType) -> Result<Self, PacketError> {
        ethertype.check()?;
        Ok(EthernetHeader { dst, src, vlan, ethertype })
    }

    /// Bytes this header takes on the wire: 14, or 18 with a tag.
    pub fn wire_len(&self) -> usize {
        ETHERNET_HEADER_LEN + if self.vlan.is_some() { VLAN_TAG_LEN } else { 0 }
    }

    /// Writes the header at the start of `out` and returns its length.
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, PacketError> {
        self.ethertype.check()?;
        let need = self.wire_len();
        if out.len() < need {
            return Err(PacketError::BufferTooSmall { what: "Ethernet header", need, got: out.len() });
        }
        out[0..6].copy_from_slice(&self.dst.0);
        out[6..12].copy_from_slice(&self.src.0);
        let mut at = 12;
        if let Some(tag) = self.vlan {
            out[12..14].copy_from_slice(&EtherType::VLAN.0.to_be_bytes());
            out[14..16].copy_from_slice(&tag.tci().to_be_bytes());
            at = 16;
        }
        out[at..at + 2].copy_from_slice(&self.ethertype.0.to_be_bytes());
        Ok(need)
    }
}

/// A parsed Ethernet II frame borrowing its payload from the received bytes.
///
/// One 802.1Q tag is accepted and reported in `header.vlan`, so a reply can carry the same tag back; QinQ and
/// stacked tags are refused with [`PacketError::StackedVlan`]. The payload keeps any Ethernet padding: the
/// protocol parsers ignore bytes past their own length.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EthernetFrame<'a> {
    pub header: EthernetHeader,
    pub payload: &'a [u8],
}

impl<'a> EthernetFrame<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PacketError> {
        if bytes.len() < ETHERNET_HEADER_LEN {
            return Err(PacketError::Truncated {
                what: "Ethernet header",
                need: ETHERNET_HEADER_LEN,
                got: bytes.len(),
            });
        }
        let dst = MacAddr(bytes[0..6].try_into().expect("6 bytes"));
        let src = MacAddr(bytes[6..12].try_into().expect("6 bytes"));
        let mut ethertype = EtherType(be16(bytes, 12));
        let mut vlan = None;
        let mut at = ETHERNET_HEADER_LEN;
        if ethertype == EtherType::VLAN {
            let need = ETHERNET_HEADER_LEN + VLAN_TAG_LEN;
            if bytes.len() < need {
                return Err(PacketError::Truncated { what: "802.1Q tagged Ethernet header", need, got: bytes.len() });
            }
            vlan = Some(VlanTag::from_tci(be16(bytes, 14))?);
            ethertype = EtherType(be16(bytes, 16));
            at = need;
        } else if ethertype == EtherType::QINQ {
            return Err(PacketError::StackedVlan { tpid: ethertype.0 });
        }
        ethertype.check()?;
        Ok(EthernetFrame { header: EthernetHeader { dst, src, vlan, ethertype }, payload: &bytes[at..] })
    }

    /// Bytes [`write_to`](Self::write_to) produces: header and payload, padded to [`MIN_FRAME_LEN`].
    pub fn wire_len(&self) -> usize {
        (self.header.wire_len() + self.payload.len()).max(MIN_FRAME_LEN)
    }

    /// Writes the frame, zero-padded to [`MIN_FRAME_LEN`], and returns its length.
    pub fn write_to(&self, out: &mut [u8]) -> Result<usize, PacketError> {
        let need = self.wire_len();
        if out.len() < need {
            return Err(PacketError::BufferTooSmall { what: "Ethernet frame", need, got: out.len() });
        }
        let at = self.header.write_to(out)?;
        out[at..at + self.payload.len()].copy_from_slice(self.payload);
        out[at + self.payload.len()..need].fill(0);
        Ok(need)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, PacketError> {
        let mut out = vec![0; self.wire_len()];
        self.write_to(&mut out)?;
        Ok(out)
    }
}

/// A built frame in a fixed stack buffer, so answering a request allocates nothing.
#[derive(Clone, Copy)]
pub struct FrameBuf {
    bytes: [u8; FRAME_BUF_LEN],
    len: usize,
}

impl FrameBuf {
    /// Writes `header`, lets `payload` write the rest and pads to [`MIN_FRAME_LEN`].
    pub(crate) fn build(
        header: &EthernetHeader,
        payload: impl FnOnce(&mut [u8]) -> Result<usize, PacketError>,
    ) -> Result<Self, PacketError> {
        let mut bytes = [0u8; FRAME_BUF_LEN];
        let at = header.write_to(&mut bytes)?;
        let written = payload(&mut bytes[at..])?;
        Ok(FrameBuf { bytes, len: (at + written).max(MIN_FRAME_LEN) })
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Deref for FrameBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for FrameBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for FrameBuf {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for FrameBuf {}

impl fmt::Debug for FrameBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FrameBuf(")?;
        for b in self.as_slice() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

pub(crate) fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    const DST: MacAddr = MacAddr::BROADCAST;
    const SRC: MacAddr = MacAddr::new(0x02, 0, 0x5e, 0x10, 0, 1);

    #[test]
    fn parses_untagged_frame_and_keeps_padding_in_payload() {
        let mut bytes = vec![0xff; 6];
        bytes.extend_from_slice(&SRC.0);
        bytes.extend_from_slice(&[0x08, 0x06, 1, 2, 3]);
        let frame = EthernetFrame::parse(&bytes).unwrap();
        assert_eq!(frame.header, EthernetHeader { dst: DST, src: SRC, vlan: None, ethertype: EtherType::ARP });
        assert_eq!(frame.payload, &[1, 2, 3]);
    }

    #[test]
    fn parses_one_vlan_tag() {
        let mut bytes = vec![0xff; 6];
        bytes.extend_from_slice(&SRC.0);
        // PCP 5, DEI 1, VID 100.
        bytes.extend_from_slice(&[0x81, 0x00, 0xb0, 0x64, 0x86, 0xdd, 9]);
        let frame = EthernetFrame::parse(&bytes).unwrap();
        let tag = frame.header.vlan.unwrap();
        assert_eq!((tag.priority(), tag.drop_eligible(), tag.id()), (5, true, 100));
        assert_eq!(frame.header.ethertype, EtherType::IPV6);
        assert_eq!(frame.payload, &[9]);
    }

    #[test]
    fn refuses_stacked_and_qinq_tags() {
        let mut bytes = vec![0xff; 6];
        bytes.extend_from_slice(&SRC.0);
        let mut double = bytes.clone();
        double.extend_from_slice(&[0x81, 0x00, 0x00, 0x64, 0x81, 0x00, 0x00, 0x65, 0x08, 0x06]);
        assert_eq!(EthernetFrame::parse(&double), Err(PacketError::StackedVlan { tpid: 0x8100 }));
        bytes.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x65, 0x08, 0x06]);
        assert_eq!(EthernetFrame::parse(&bytes), Err(PacketError::StackedVlan { tpid: 0x88a8 }));
    }

    #[test]
    fn refuses_reserved_vlan_id_and_8023_length() {
        let mut bytes = vec![0xff; 6];
        bytes.extend_from_slice(&SRC.0);
        let mut reserved = bytes.clone();
        reserved.extend_from_slice(&[0x81, 0x00, 0x0f, 0xff, 0x08, 0x06]);
        assert_eq!(EthernetFrame::parse(&reserved), Err(PacketError::BadVlanId(4095)));
        bytes.extend_from_slice(&[0x05, 0xdc]);
        assert_eq!(EthernetFrame::parse(&bytes), Err(PacketError::NotEthernetII(1500)));
    }

    #[test]
    fn writes_padded_frame() {
        let header = EthernetHeader::new(DST, SRC, Some(VlanTag::new(0, false, 7).unwrap()), EtherType::ARP).unwrap();
        let frame = EthernetFrame { header, payload: &[0xaa] };
        let bytes = frame.to_bytes().unwrap();
        assert_eq!(bytes.len(), MIN_FRAME_LEN);
        assert_eq!(&bytes[12..19], &[0x81, 0x00, 0x00, 0x07, 0x08, 0x06, 0xaa]);
        assert!(bytes[19..].iter().all(|&b| b == 0));
        let again = EthernetFrame::parse(&bytes).unwrap();
        assert_eq!(again.header, header);
    }

    #[test]
    fn header_constructor_refuses_tpid_and_length_ethertypes() {
        assert_eq!(
            EthernetHeader::new(DST, SRC, None, EtherType::VLAN),
            Err(PacketError::StackedVlan { tpid: 0x8100 })
        );
        assert_eq!(EthernetHeader::new(DST, SRC, None, EtherType(46)), Err(PacketError::NotEthernetII(46)));
    }

    #[test]
    fn vlan_tag_validates_fields() {
        assert_eq!(VlanTag::new(8, false, 1), Err(PacketError::BadVlanPriority(8)));
        assert_eq!(VlanTag::new(0, false, 4095), Err(PacketError::BadVlanId(4095)));
        assert_eq!(VlanTag::from_tci(0xe123).unwrap().tci(), 0xe123);
    }

    #[test]
    fn write_to_reports_small_buffer() {
        let header = EthernetHeader::new(DST, SRC, None, EtherType::ARP).unwrap();
        let frame = EthernetFrame { header, payload: &[] };
        let mut out = [0u8; 59];
        assert_eq!(
            frame.write_to(&mut out),
            Err(PacketError::BufferTooSmall { what: "Ethernet frame", need: 60, got: 59 })
        );
    }
}
