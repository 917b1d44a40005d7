//! The BGP-4 wire format: encode and decode `message` values (RFC 4271, 4760, 5492, 6793, 1997, 8092, 2918, 4724).
//!
//! `encode` appends one message to a buffer; `decode` reads one from the front of a stream buffer and says how
//! many bytes it used, or that more are needed. Both are pure and never panic, whatever the input.
//!
//! Choices where the RFCs leave room:
//! - Host bits past a prefix's length are masked off on decode (RFC 4271 4.3: trailing bits are irrelevant);
//!   a prefix length over the family's width is an error.
//! - Decoding follows RFC 7606: the error says whether the session must end or the UPDATE only counts as a
//!   withdrawal (`DecodeError::action`). A second occurrence of an attribute other than the MP ones is
//!   discarded; a malformed AS4_PATH is discarded (RFC 6793); attributes we do not keep (ATOMIC_AGGREGATE,
//!   AGGREGATOR, unknown optional ones) are skipped; MP_REACH/MP_UNREACH of a family we do not speak are
//!   skipped. AS_CONFED segments are malformed AS_PATH here: metallb-py never joins a confederation.
//! - An UPDATE with nothing to announce carries no ORIGIN/AS_PATH unless some other attribute is set, so
//!   withdrawals and End-of-RIB markers are as short as the RFC allows.
//! - Without the 4-octet AS capability, ASNs over 65535 go out as AS_TRANS in AS_PATH plus an AS4_PATH with the
//!   real path, and come back merged (RFC 6793 4.2.3); with it, a received AS4_PATH is ignored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::{DecodeError, DecodeErrorKind as K, EncodeError, PrefixError};
use super::message::{
    Afi, AsSegment, Capability, GracefulRestart, Message, MpReach, MpUnreach, Notification, Open, Origin,
    PathAttributes, Prefix, RouteRefresh, Safi, Update, AS_TRANS,
};

/// The largest BGP message (RFC 4271 4.1; RFC 8654 extended messages are not spoken).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Marker (16), length (2), type (1).
pub const HEADER_LEN: usize = 19;

/// What the session negotiated that changes the wire format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodecOptions {
    /// Both sides sent the 4-octet AS capability (RFC 6793): AS_PATH carries 4-octet ASNs. OPEN itself is
    /// always encoded the same way.
    pub four_octet_as: bool,
}

/// Message type octets.
pub mod message_type {
    pub const OPEN: u8 = 1;
    pub const UPDATE: u8 = 2;
    pub const NOTIFICATION: u8 = 3;
    pub const KEEPALIVE: u8 = 4;
    pub const ROUTE_REFRESH: u8 = 5;
}

/// Path attribute type codes.
pub mod attr {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITIES: u8 = 32;
}

/// Path attribute flag bits.
pub mod flag {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// Capability codes.
pub mod capability_code {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
}

const MARKER: [u8; 16] = [0xff; 16];
const BGP_VERSION: u8 = 4;
const PARAM_CAPABILITIES: u8 = 2;
const AFI_IPV4: u16 = 1;
const AFI_IPV6: u16 = 2;
const SAFI_UNICAST: u8 = 1;
const SEGMENT_SET: u8 = 1;
const SEGMENT_SEQUENCE: u8 = 2;
const MAX_SEGMENT: usize = 255;
const GR_RESTARTING: u16 = 0x8000;
const GR_TIME_MASK: u16 = 0x0fff;
const GR_FORWARDING_PRESERVED: u8 = 0x80;
const WELL_KNOWN: u8 = flag::TRANSITIVE;
const OPTIONAL_TRANSITIVE: u8 = flag::OPTIONAL | flag::TRANSITIVE;
const OPTIONAL_NON_TRANSITIVE: u8 = flag::OPTIONAL;

// ---------------------------------------------------------------------------------------------------------
// Encoding

/// Appends `msg` to `out` as one BGP message. On error `out` is left as it was.
pub fn encode(msg: &Message, opts: &CodecOptions, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    let result = encode_message(msg, opts, out, start);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// `encode` into a new buffer.
pub fn encode_to_vec(msg: &Message, opts: &CodecOptions) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(encoded_len(msg, opts));
    encode(msg, opts, &mut out)?;
    Ok(out)
}

/// The number of bytes `encode` appends for `msg`, without writing them (also for a message over
/// `MAX_MESSAGE_LEN`, which `encode` refuses): lets a caller fill UPDATEs up to the limit.
pub fn encoded_len(msg: &Message, opts: &CodecOptions) -> usize {
    HEADER_LEN
        + match msg {
            Message::Open(open) => 10 + capabilities_len(&open.capabilities).map_or(0, |n| n + 2),
            Message::Update(update) => update_body_len(update, opts),
            Message::Notification(n) => 2 + n.data.len(),
            Message::Keepalive => 0,
            Message::RouteRefresh(_) => 4,
        }
}

fn encode_message(msg: &Message, opts: &CodecOptions, out: &mut Vec<u8>, start: usize) -> Result<(), EncodeError> {
    let (kind, name) = match msg {
        Message::Open(_) => (message_type::OPEN, "OPEN"),
        Message::Update(_) => (message_type::UPDATE, "UPDATE"),
        Message::Notification(_) => (message_type::NOTIFICATION, "NOTIFICATION"),
        Message::Keepalive => (message_type::KEEPALIVE, "KEEPALIVE"),
        Message::RouteRefresh(_) => (message_type::ROUTE_REFRESH, "ROUTE-REFRESH"),
    };
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&[0, 0, kind]);
    match msg {
        Message::Open(open) => encode_open(open, out)?,
        Message::Update(update) => encode_update(update, opts, out)?,
        Message::Notification(n) => {
            out.extend_from_slice(&[n.code, n.subcode]);
            out.extend_from_slice(&n.data);
        }
        Message::Keepalive => {}
        Message::RouteRefresh(rr) => {
            out.extend_from_slice(&afi_code(rr.afi).to_be_bytes());
            out.extend_from_slice(&[0, safi_code(rr.safi)]);
        }
    }
    let length = out.len() - start;
    if length > MAX_MESSAGE_LEN {
        return Err(EncodeError::TooLong { message: name, length });
    }
    // length <= 4096 was just checked, so the cast is exact.
    out[start + 16..start + 18].copy_from_slice(&(length as u16).to_be_bytes());
    Ok(())
}

fn afi_code(afi: Afi) -> u16 {
    match afi {
        Afi::Ipv4 => AFI_IPV4,
        Afi::Ipv6 => AFI_IPV6,
    }
}

fn safi_code(safi: Safi) -> u8 {
    match safi {
        Safi::Unicast => SAFI_UNICAST,
    }
}

fn family(afi: u16, safi: u8) -> Option<(Afi, Safi)> {
    let afi = match afi {
        AFI_IPV4 => Afi::Ipv4,
        AFI_IPV6 => Afi::Ipv6,
        _ => return None,
    };
    (safi == SAFI_UNICAST).then_some((afi, Safi::Unicast))
}

// --- OPEN

fn capability_value_len(cap: &Capability) -> usize {
    match cap {
        Capability::Multiprotocol(..) | Capability::FourOctetAs(_) => 4,
        Capability::RouteRefresh => 0,
        Capability::GracefulRestart(gr) => 2 + 4 * gr.families.len(),
        Capability::Unknown { value, .. } => value.len(),
    }
}

/// The capabilities optional parameter's value length; None when there are no capabilities (no parameter).
fn capabilities_len(caps: &[Capability]) -> Option<usize> {
    (!caps.is_empty()).then(|| caps.iter().map(|c| 2 + capability_value_len(c)).sum())
}

fn encode_open(open: &Open, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let four_octet = open.capabilities.iter().find_map(|c| match c {
        Capability::FourOctetAs(asn) => Some(*asn),
        _ => None,
    });
    let my_as = match (u16::try_from(open.asn), four_octet) {
        (_, Some(asn)) if asn != open.asn => None,
        (Ok(asn), _) => Some(asn),
        (Err(_), Some(_)) => Some(AS_TRANS),
        (Err(_), None) => None,
    };
    let my_as = my_as.ok_or(EncodeError::OpenAsn { asn: open.asn, four_octet_capability: four_octet })?;
    out.push(BGP_VERSION);
    out.extend_from_slice(&my_as.to_be_bytes());
    out.extend_from_slice(&open.hold_time.to_be_bytes());
    out.extend_from_slice(&open.router_id.octets());
    // The most specific complaint first: one capability too long for its length octet.
    if let Some((code, length)) =
        open.capabilities.iter().map(|c| (capability_code_of(c), capability_value_len(c))).find(|&(_, n)| n > 255)
    {
        return Err(EncodeError::CapabilityTooLong { code, length });
    }
    let Some(params_len) = capabilities_len(&open.capabilities) else {
        out.push(0);
        return Ok(());
    };
    // Optional Parameters Length covers the one parameter's type, length and value.
    let total =
        u8::try_from(params_len + 2).map_err(|_| EncodeError::OptionalParametersTooLong { length: params_len + 2 })?;
    out.extend_from_slice(&[total, PARAM_CAPABILITIES, total - 2]);
    for cap in &open.capabilities {
        encode_capability(cap, out)?;
    }
    Ok(())
}

fn capability_code_of(cap: &Capability) -> u8 {
    match cap {
        Capability::Multiprotocol(..) => capability_code::MULTIPROTOCOL,
        Capability::RouteRefresh => capability_code::ROUTE_REFRESH,
        Capability::GracefulRestart(_) => capability_code::GRACEFUL_RESTART,
        Capability::FourOctetAs(_) => capability_code::FOUR_OCTET_AS,
        Capability::Unknown { code, .. } => *code,
    }
}

fn encode_capability(cap: &Capability, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    // Every known capability is short; only Unknown can exceed a length octet.
    let len = capability_value_len(cap);
    let code = capability_code_of(cap);
    let len8 = u8::try_from(len).map_err(|_| EncodeError::CapabilityTooLong { code, length: len })?;
    out.extend_from_slice(&[code, len8]);
    match cap {
        Capability::Multiprotocol(afi, safi) => {
            out.extend_from_slice(&afi_code(*afi).to_be_bytes());
            out.extend_from_slice(&[0, safi_code(*safi)]);
        }
        Capability::RouteRefresh => {}
        Capability::GracefulRestart(gr) => {
            if gr.restart_time > GR_TIME_MASK {
                return Err(EncodeError::RestartTime { restart_time: gr.restart_time });
            }
            let head = gr.restart_time | if gr.restarting { GR_RESTARTING } else { 0 };
            out.extend_from_slice(&head.to_be_bytes());
            for (afi, safi, preserved) in &gr.families {
                out.extend_from_slice(&afi_code(*afi).to_be_bytes());
                out.push(safi_code(*safi));
                out.push(if *preserved { GR_FORWARDING_PRESERVED } else { 0 });
            }
        }
        Capability::FourOctetAs(asn) => out.extend_from_slice(&asn.to_be_bytes()),
        Capability::Unknown { value, .. } => out.extend_from_slice(value),
    }
    Ok(())
}

// --- UPDATE

/// Octets of one prefix on the wire (NLRI, withdrawn routes, MP attributes): the length octet and the
/// significant address octets.
pub(crate) fn prefix_wire_len(p: &Prefix) -> usize {
    1 + usize::from(p.len()).div_ceil(8)
}

fn prefixes_len(prefixes: &[Prefix]) -> usize {
    prefixes.iter().map(prefix_wire_len).sum()
}

fn write_prefix(p: &Prefix, out: &mut Vec<u8>) {
    let n = usize::from(p.len()).div_ceil(8);
    out.push(p.len());
    match p.addr() {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()[..n]),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()[..n]),
    }
}

fn write_prefixes(field: &'static str, prefixes: &[Prefix], afi: Afi, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    for p in prefixes {
        if p.afi() != afi {
            return Err(EncodeError::PrefixFamily { field, prefix: *p, expected: afi });
        }
        write_prefix(p, out);
    }
    Ok(())
}

/// Attribute header length for a value of `len` octets.
fn attr_header_len(len: usize) -> usize {
    if len > 255 {
        4
    } else {
        3
    }
}

fn write_attr_header(flags: u8, type_code: u8, len: usize, out: &mut Vec<u8>) {
    if len > 255 {
        // Longer values than 65535 cannot be in a message of 4096 octets: the TooLong check catches them
        // after writing, and the saturated length here is never sent.
        let len16 = u16::try_from(len).unwrap_or(u16::MAX);
        out.extend_from_slice(&[flags | flag::EXTENDED_LENGTH, type_code]);
        out.extend_from_slice(&len16.to_be_bytes());
    } else {
        out.extend_from_slice(&[flags, type_code, len as u8]);
    }
}

fn asn_width(opts: &CodecOptions) -> usize {
    if opts.four_octet_as {
        4
    } else {
        2
    }
}

/// AS_PATH value length: sequences over 255 ASNs are split into several segments (RFC 4271 9.2.2.1).
fn as_path_len(path: &[AsSegment], width: usize) -> usize {
    path.iter()
        .map(|seg| match seg {
            AsSegment::Sequence(asns) => asns.len().div_ceil(MAX_SEGMENT) * 2 + asns.len() * width,
            AsSegment::Set(asns) => 2 + asns.len() * width,
        })
        .sum()
}

fn needs_as4_path(path: &[AsSegment], opts: &CodecOptions) -> bool {
    !opts.four_octet_as
        && path.iter().any(|seg| match seg {
            AsSegment::Sequence(asns) | AsSegment::Set(asns) => asns.iter().any(|&a| a > u32::from(u16::MAX)),
        })
}

fn write_as_path(path: &[AsSegment], four_octet: bool, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    for seg in path {
        let (kind, asns) = match seg {
            AsSegment::Sequence(asns) => (SEGMENT_SEQUENCE, asns),
            AsSegment::Set(asns) => (SEGMENT_SET, asns),
        };
        if asns.is_empty() {
            return Err(EncodeError::EmptyAsSegment);
        }
        if kind == SEGMENT_SET && asns.len() > MAX_SEGMENT {
            return Err(EncodeError::AsSetTooLong { len: asns.len() });
        }
        for chunk in asns.chunks(MAX_SEGMENT) {
            out.extend_from_slice(&[kind, chunk.len() as u8]);
            for &asn in chunk {
                if four_octet {
                    out.extend_from_slice(&asn.to_be_bytes());
                } else {
                    let two = u16::try_from(asn).unwrap_or(AS_TRANS);
                    out.extend_from_slice(&two.to_be_bytes());
                }
            }
        }
    }
    Ok(())
}

fn next_hops_len(mp: &MpReach) -> usize {
    mp.next_hops
        .iter()
        .map(|nh| match nh {
            IpAddr::V4(_) => 4,
            IpAddr::V6(_) => 16,
        })
        .sum()
}

fn mp_reach_len(mp: &MpReach) -> usize {
    // AFI, SAFI, next hop length, next hops, reserved, NLRI.
    3 + 1 + next_hops_len(mp) + 1 + prefixes_len(&mp.nlri)
}

fn mp_unreach_len(mp: &MpUnreach) -> usize {
    3 + prefixes_len(&mp.withdrawn)
}

/// Whether the UPDATE carries path attributes beyond MP_UNREACH_NLRI (see the module comment).
fn carries_path(update: &Update) -> bool {
    let a = &update.attributes;
    !update.nlri.is_empty()
        || a.mp_reach.is_some()
        || a.origin != Origin::default()
        || !a.as_path.is_empty()
        || a.next_hop.is_some()
        || a.med.is_some()
        || a.local_pref.is_some()
        || !a.communities.is_empty()
        || !a.large_communities.is_empty()
}

fn path_attributes_len(update: &Update, opts: &CodecOptions) -> usize {
    let a = &update.attributes;
    let mut len = 0;
    let mut add = |value: usize| len += attr_header_len(value) + value;
    if carries_path(update) {
        add(1);
        add(as_path_len(&a.as_path, asn_width(opts)));
        if a.next_hop.is_some() {
            add(4);
        }
        if a.med.is_some() {
            add(4);
        }
        if a.local_pref.is_some() {
            add(4);
        }
        if !a.communities.is_empty() {
            add(4 * a.communities.len());
        }
        if let Some(mp) = &a.mp_reach {
            add(mp_reach_len(mp));
        }
        if needs_as4_path(&a.as_path, opts) {
            add(as_path_len(&a.as_path, 4));
        }
        if !a.large_communities.is_empty() {
            add(12 * a.large_communities.len());
        }
    }
    if let Some(mp) = &a.mp_unreach {
        add(mp_unreach_len(mp));
    }
    len
}

fn update_body_len(update: &Update, opts: &CodecOptions) -> usize {
    2 + prefixes_len(&update.withdrawn) + 2 + path_attributes_len(update, opts) + prefixes_len(&update.nlri)
}

/// Writes a two-octet length placeholder and returns its position.
fn length_placeholder(out: &mut Vec<u8>) -> usize {
    out.extend_from_slice(&[0, 0]);
    out.len() - 2
}

/// Fills a placeholder with the number of bytes written after it (saturated: the message-level TooLong check
/// rejects anything that large).
fn fill_length(out: &mut [u8], at: usize) {
    let len = u16::try_from(out.len() - at - 2).unwrap_or(u16::MAX);
    out[at..at + 2].copy_from_slice(&len.to_be_bytes());
}

fn encode_update(update: &Update, opts: &CodecOptions, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let a = &update.attributes;
    let at = length_placeholder(out);
    write_prefixes("withdrawn", &update.withdrawn, Afi::Ipv4, out)?;
    fill_length(out, at);

    let at = length_placeholder(out);
    if carries_path(update) {
        if !update.nlri.is_empty() && a.next_hop.is_none() {
            return Err(EncodeError::MissingNextHop);
        }
        write_attr_header(WELL_KNOWN, attr::ORIGIN, 1, out);
        out.push(match a.origin {
            Origin::Igp => 0,
            Origin::Egp => 1,
            Origin::Incomplete => 2,
        });
        write_attr_header(WELL_KNOWN, attr::AS_PATH, as_path_len(&a.as_path, asn_width(opts)), out);
        write_as_path(&a.as_path, opts.four_octet_as, out)?;
        if let Some(nh) = a.next_hop {
            write_attr_header(WELL_KNOWN, attr::NEXT_HOP, 4, out);
            out.extend_from_slice(&nh.octets());
        }
        if let Some(med) = a.med {
            write_attr_header(OPTIONAL_NON_TRANSITIVE, attr::MULTI_EXIT_DISC, 4, out);
            out.extend_from_slice(&med.to_be_bytes());
        }
        if let Some(lp) = a.local_pref {
            write_attr_header(WELL_KNOWN, attr::LOCAL_PREF, 4, out);
            out.extend_from_slice(&lp.to_be_bytes());
        }
        if !a.communities.is_empty() {
            write_attr_header(OPTIONAL_TRANSITIVE, attr::COMMUNITIES, 4 * a.communities.len(), out);
            for c in &a.communities {
                out.extend_from_slice(&c.to_be_bytes());
            }
        }
        if let Some(mp) = &a.mp_reach {
            write_mp_reach(mp, out)?;
        }
    }
    if let Some(mp) = &a.mp_unreach {
        write_attr_header(OPTIONAL_NON_TRANSITIVE, attr::MP_UNREACH_NLRI, mp_unreach_len(mp), out);
        out.extend_from_slice(&afi_code(mp.afi).to_be_bytes());
        out.push(safi_code(mp.safi));
        write_prefixes("mp_unreach.withdrawn", &mp.withdrawn, mp.afi, out)?;
    }
    if carries_path(update) {
        if needs_as4_path(&a.as_path, opts) {
            write_attr_header(OPTIONAL_TRANSITIVE, attr::AS4_PATH, as_path_len(&a.as_path, 4), out);
            write_as_path(&a.as_path, true, out)?;
        }
        if !a.large_communities.is_empty() {
            write_attr_header(OPTIONAL_TRANSITIVE, attr::LARGE_COMMUNITIES, 12 * a.large_communities.len(), out);
            for (global, local1, local2) in &a.large_communities {
                out.extend_from_slice(&global.to_be_bytes());
                out.extend_from_slice(&local1.to_be_bytes());
                out.extend_from_slice(&local2.to_be_bytes());
            }
        }
    }
    fill_length(out, at);

    write_prefixes("nlri", &update.nlri, Afi::Ipv4, out)
}

fn write_mp_reach(mp: &MpReach, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let fits = matches!(
        (mp.afi, mp.next_hops.as_slice()),
        (Afi::Ipv4, [IpAddr::V4(_)]) | (Afi::Ipv6, [IpAddr::V6(_)] | [IpAddr::V6(_), IpAddr::V6(_)])
    );
    if !fits {
        return Err(EncodeError::NextHops { afi: mp.afi, next_hops: mp.next_hops.clone() });
    }
    write_attr_header(OPTIONAL_NON_TRANSITIVE, attr::MP_REACH_NLRI, mp_reach_len(mp), out);
    out.extend_from_slice(&afi_code(mp.afi).to_be_bytes());
    out.push(safi_code(mp.safi));
    out.push(next_hops_len(mp) as u8); // at most 32, checked above
    for nh in &mp.next_hops {
        match nh {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        }
    }
    out.push(0); // reserved (RFC 4760 3)
    write_prefixes("mp_reach.nlri", &mp.nlri, mp.afi, out)
}

// ---------------------------------------------------------------------------------------------------------
// Decoding

/// A bounds-checked reader over a byte slice: every read is an Option, so no input can index out of range.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.buf.split_at_checked(n)?;
        self.buf = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        let (&b, tail) = self.buf.split_first()?;
        self.buf = tail;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, tail) = self.buf.split_first_chunk::<N>()?;
        self.buf = tail;
        Some(*head)
    }
}

/// Validates the header at the front of `buf` and returns the whole message's length, or None when fewer than
/// `HEADER_LEN` bytes have arrived. A stream reader can use it to know how much to wait for.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    if header[..16] != MARKER {
        return Err(DecodeError::new(K::NotSynchronized, None));
    }
    let length = u16::from_be_bytes([header[16], header[17]]);
    let message_type = header[18];
    let bad_length = || Err(DecodeError::new(K::BadMessageLength { length, message_type }, None));
    let len = usize::from(length);
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&len) {
        return bad_length();
    }
    let ok = match message_type {
        message_type::OPEN => len >= HEADER_LEN + 10,
        message_type::UPDATE => len >= HEADER_LEN + 4,
        message_type::NOTIFICATION => len >= HEADER_LEN + 2,
        message_type::KEEPALIVE => len == HEADER_LEN,
        message_type::ROUTE_REFRESH => len == HEADER_LEN + 4,
        _ => return Err(DecodeError::new(K::BadMessageType { message_type }, None)),
    };
    if !ok {
        return bad_length();
    }
    Ok(Some(len))
}

/// Decodes the message at the front of `buf`. Ok(None): not a whole message yet (read more and call again).
/// Ok(Some((msg, consumed))): one message, `consumed` bytes long. Err: a protocol error; see
/// `DecodeError::action` for whether the session survives it.
pub fn decode(buf: &[u8], opts: &CodecOptions) -> Result<Option<(Message, usize)>, DecodeError> {
    let Some(len) = frame_len(buf)? else {
        return Ok(None);
    };
    let Some(message) = buf.get(..len) else {
        return Ok(None);
    };
    let body = &message[HEADER_LEN..];
    let fail = |kind| DecodeError::new(kind, Some(len));
    let msg = match message[18] {
        message_type::OPEN => Message::Open(decode_open(body).map_err(fail)?),
        message_type::UPDATE => Message::Update(decode_update(body, opts).map_err(fail)?),
        message_type::NOTIFICATION => {
            Message::Notification(Notification { code: body[0], subcode: body[1], data: body[2..].to_vec() })
        }
        message_type::KEEPALIVE => Message::Keepalive,
        // frame_len admits only the five types above, and ROUTE-REFRESH bodies of exactly 4 octets.
        _ => {
            let afi = u16::from_be_bytes([body[0], body[1]]);
            let safi = body[3];
            let (afi, safi) = family(afi, safi).ok_or_else(|| fail(K::UnknownRouteRefreshFamily { afi, safi }))?;
            Message::RouteRefresh(RouteRefresh { afi, safi })
        }
    };
    Ok(Some((msg, len)))
}

// --- OPEN

fn malformed_open(field: &'static str, reason: &'static str) -> K {
    K::MalformedOpen { field, reason }
}

fn decode_open(body: &[u8]) -> Result<Open, K> {
    let mut r = Reader::new(body);
    // frame_len guarantees the 10 fixed octets.
    let too_short = || malformed_open("fixed fields", "truncated");
    let version = r.u8().ok_or_else(too_short)?;
    if version != BGP_VERSION {
        return Err(K::UnsupportedVersion { version });
    }
    let my_as = r.u16().ok_or_else(too_short)?;
    let hold_time = r.u16().ok_or_else(too_short)?;
    if hold_time == 1 || hold_time == 2 {
        return Err(K::UnacceptableHoldTime { hold_time });
    }
    let router_id = Ipv4Addr::from(r.u32().ok_or_else(too_short)?);
    if router_id.is_unspecified() {
        return Err(K::BadBgpIdentifier { router_id });
    }
    let params_len = usize::from(r.u8().ok_or_else(too_short)?);
    if params_len != r.remaining() {
        return Err(malformed_open(
            "optional parameters length",
            "does not match the octets that follow it in the message",
        ));
    }
    let mut capabilities = Vec::new();
    while !r.is_empty() {
        let param_type = r.u8().ok_or_else(|| malformed_open("optional parameter", "truncated header"))?;
        let param_len = r.u8().ok_or_else(|| malformed_open("optional parameter", "truncated header"))?;
        let value = r
            .take(usize::from(param_len))
            .ok_or_else(|| malformed_open("optional parameter", "its length overruns the parameters"))?;
        if param_type != PARAM_CAPABILITIES {
            return Err(K::UnsupportedOptionalParameter { param_type });
        }
        decode_capabilities(value, &mut capabilities)?;
    }
    let asn = capabilities
        .iter()
        .find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
        .unwrap_or(u32::from(my_as));
    Ok(Open { asn, hold_time, router_id, capabilities })
}

fn decode_capabilities(value: &[u8], out: &mut Vec<Capability>) -> Result<(), K> {
    let mut r = Reader::new(value);
    while !r.is_empty() {
        let truncated = || malformed_open("capability", "its length overruns the capabilities parameter");
        let code = r.u8().ok_or_else(truncated)?;
        let len = r.u8().ok_or_else(truncated)?;
        let value = r.take(usize::from(len)).ok_or_else(truncated)?;
        out.push(decode_capability(code, value)?);
    }
    Ok(())
}

fn decode_capability(code: u8, value: &[u8]) -> Result<Capability, K> {
    let unknown = || Capability::Unknown { code, value: value.to_vec() };
    Ok(match code {
        capability_code::MULTIPROTOCOL => {
            let [a0, a1, _reserved, safi] = *value
                .first_chunk::<4>()
                .filter(|_| value.len() == 4)
                .ok_or_else(|| malformed_open("multiprotocol capability", "length is not 4"))?;
            // A family we do not speak is kept as bytes: the peer may offer it, we just will not use it.
            match family(u16::from_be_bytes([a0, a1]), safi) {
                Some((afi, safi)) => Capability::Multiprotocol(afi, safi),
                None => unknown(),
            }
        }
        capability_code::ROUTE_REFRESH => {
            if !value.is_empty() {
                return Err(malformed_open("route refresh capability", "length is not 0"));
            }
            Capability::RouteRefresh
        }
        capability_code::FOUR_OCTET_AS => {
            let asn = value
                .first_chunk::<4>()
                .filter(|_| value.len() == 4)
                .ok_or_else(|| malformed_open("4-octet AS capability", "length is not 4"))?;
            Capability::FourOctetAs(u32::from_be_bytes(*asn))
        }
        capability_code::GRACEFUL_RESTART => {
            if value.len() < 2 || (value.len() - 2) % 4 != 0 {
                return Err(malformed_open("graceful restart capability", "length is not 2 + 4 per family"));
            }
            let head = u16::from_be_bytes([value[0], value[1]]);
            let families = value[2..]
                .chunks_exact(4)
                .filter_map(|f| {
                    let (afi, safi) = family(u16::from_be_bytes([f[0], f[1]]), f[2])?;
                    Some((afi, safi, f[3] & GR_FORWARDING_PRESERVED != 0))
                })
                .collect();
            Capability::GracefulRestart(GracefulRestart {
                restarting: head & GR_RESTARTING != 0,
                restart_time: head & GR_TIME_MASK,
                families,
            })
        }
        _ => unknown(),
    })
}

// --- UPDATE

/// Reads prefixes of `afi` until `bytes` is exhausted.
fn read_prefixes(bytes: &[u8], afi: Afi, out: &mut Vec<Prefix>) -> Result<(), PrefixError> {
    let width: u8 = match afi {
        Afi::Ipv4 => 32,
        Afi::Ipv6 => 128,
    };
    let mut r = Reader::new(bytes);
    while let Some(len) = r.u8() {
        if len > width {
            return Err(PrefixError::TooLong { len, width });
        }
        let n = usize::from(len).div_ceil(8);
        let remaining = r.remaining();
        let octets = r.take(n).ok_or(PrefixError::Truncated { len, remaining })?;
        let addr = match afi {
            Afi::Ipv4 => {
                let mut a = [0u8; 4];
                a[..n].copy_from_slice(octets);
                IpAddr::V4(Ipv4Addr::from(a))
            }
            Afi::Ipv6 => {
                let mut a = [0u8; 16];
                a[..n].copy_from_slice(octets);
                IpAddr::V6(Ipv6Addr::from(a))
            }
        };
        // Prefix::new clears host bits past `len`; len <= width was checked above, so it is always Some.
        if let Some(p) = Prefix::new(addr, len) {
            out.push(p);
        }
    }
    Ok(())
}

fn ipv4_prefix_capacity(bytes: usize) -> usize {
    // A /32 takes 5 octets, the usual case for a load balancer; shorter prefixes grow the Vec once or twice.
    bytes / 5
}

/// Expected optional/transitive flag bits of the attributes we interpret.
fn expected_flags(type_code: u8) -> Option<u8> {
    Some(match type_code {
        attr::ORIGIN | attr::AS_PATH | attr::NEXT_HOP | attr::LOCAL_PREF => WELL_KNOWN,
        attr::MULTI_EXIT_DISC | attr::MP_REACH_NLRI | attr::MP_UNREACH_NLRI => OPTIONAL_NON_TRANSITIVE,
        attr::COMMUNITIES | attr::AS4_PATH | attr::LARGE_COMMUNITIES => OPTIONAL_TRANSITIVE,
        _ => return None,
    })
}

/// Type codes seen so far in one UPDATE (RFC 7606 3 g: duplicates are discarded, MP duplicates are fatal).
#[derive(Default)]
struct Seen([u64; 4]);

impl Seen {
    /// Marks `t` and says whether it was already marked.
    fn insert(&mut self, t: u8) -> bool {
        let (word, bit) = (usize::from(t / 64), 1u64 << (t % 64));
        let was = self.0[word] & bit != 0;
        self.0[word] |= bit;
        was
    }

    fn contains(&self, t: u8) -> bool {
        self.0[usize::from(t / 64)] & (1u64 << (t % 64)) != 0
    }
}

fn decode_update(body: &[u8], opts: &CodecOptions) -> Result<Update, K> {
    let mut r = Reader::new(body);
    let lengths = |field, length: u16, available| K::UpdateLengths { field, length, available };
    // frame_len guarantees the two length fields' 4 octets.
    let withdrawn_len = r.u16().unwrap_or(0);
    let withdrawn_bytes = r
        .take(usize::from(withdrawn_len))
        .ok_or_else(|| lengths("withdrawn routes length", withdrawn_len, body.len() - 2))?;
    let available = r.remaining();
    let attrs_len = r.u16().ok_or_else(|| lengths("total path attribute length", 0, available))?;
    let available = r.remaining();
    let attr_bytes =
        r.take(usize::from(attrs_len)).ok_or_else(|| lengths("total path attribute length", attrs_len, available))?;
    let nlri_bytes = r.buf;

    // Prefix errors end the session whatever the attributes hold (RFC 7606 5.3), so they are checked first.
    let mut withdrawn = Vec::with_capacity(ipv4_prefix_capacity(withdrawn_bytes.len()));
    read_prefixes(withdrawn_bytes, Afi::Ipv4, &mut withdrawn).map_err(|reason| K::BadPrefix {
        field: "withdrawn routes",
        reason,
        attribute: Vec::new(),
    })?;
    let mut nlri = Vec::with_capacity(ipv4_prefix_capacity(nlri_bytes.len()));
    read_prefixes(nlri_bytes, Afi::Ipv4, &mut nlri).map_err(|reason| K::BadPrefix {
        field: "NLRI",
        reason,
        attribute: Vec::new(),
    })?;

    let attributes = decode_attributes(attr_bytes, !nlri.is_empty(), opts)?;
    Ok(Update { withdrawn, attributes, nlri })
}

/// Parses the path attributes. An error that only makes the UPDATE a withdrawal is remembered while the rest is
/// still read, so that a later error that ends the session wins (RFC 7606 2: the strongest action applies).
fn decode_attributes(bytes: &[u8], has_nlri: bool, opts: &CodecOptions) -> Result<PathAttributes, K> {
    let mut attrs = PathAttributes::default();
    let mut seen = Seen::default();
    let mut as4_path: Option<Vec<AsSegment>> = None;
    let mut withdraw: Option<K> = None;
    let mut r = Reader::new(bytes);
    while !r.is_empty() {
        let start = r.buf;
        let remaining = r.remaining();
        let (Some(flags), Some(type_code)) = (r.u8(), r.u8()) else {
            withdraw.get_or_insert(K::AttributeOverrun { type_code: None, remaining });
            break;
        };
        let length = if flags & flag::EXTENDED_LENGTH != 0 { r.u16() } else { r.u8().map(u16::from) };
        let Some(length) = length else {
            withdraw.get_or_insert(K::AttributeOverrun { type_code: None, remaining });
            break;
        };
        let Some(value) = r.take(usize::from(length)) else {
            withdraw.get_or_insert(K::AttributeOverrun { type_code: Some(type_code), remaining });
            break;
        };
        let whole = &start[..remaining - r.remaining()];

        let is_mp = type_code == attr::MP_REACH_NLRI || type_code == attr::MP_UNREACH_NLRI;
        if seen.insert(type_code) {
            if is_mp {
                return Err(K::DuplicateMpAttribute { type_code });
            }
            continue;
        }
        match expected_flags(type_code) {
            // AS4_PATH is only ever discarded when wrong (RFC 6793 6).
            Some(expected) if flags & OPTIONAL_TRANSITIVE != expected && type_code == attr::AS4_PATH => continue,
            Some(expected) if flags & OPTIONAL_TRANSITIVE != expected => {
                let error = K::AttributeFlags { type_code, flags, attribute: whole.to_vec() };
                if is_mp {
                    return Err(error);
                }
                withdraw.get_or_insert(error);
                continue;
            }
            Some(_) => {}
            None if flags & flag::OPTIONAL == 0 && !is_known_skipped(type_code) => {
                return Err(K::UnrecognizedWellKnownAttribute { type_code, attribute: whole.to_vec() });
            }
            None => continue,
        }
        let bad_length = |expected| K::AttributeLength { type_code, length, expected, attribute: whole.to_vec() };
        let result = match type_code {
            attr::ORIGIN => match value {
                [v] => match v {
                    0 => Ok(Origin::Igp),
                    1 => Ok(Origin::Egp),
                    2 => Ok(Origin::Incomplete),
                    _ => Err(K::InvalidOrigin { value: *v, attribute: whole.to_vec() }),
                }
                .map(|origin| attrs.origin = origin),
                _ => Err(bad_length("1")),
            },
            attr::AS_PATH => decode_as_path(value, asn_width(opts)).map(|path| attrs.as_path = path),
            attr::NEXT_HOP => {
                four_octets(value).map(|v| attrs.next_hop = Some(Ipv4Addr::from(v))).ok_or_else(|| bad_length("4"))
            }
            attr::MULTI_EXIT_DISC => four_octets(value).map(|v| attrs.med = Some(v)).ok_or_else(|| bad_length("4")),
            attr::LOCAL_PREF => four_octets(value).map(|v| attrs.local_pref = Some(v)).ok_or_else(|| bad_length("4")),
            attr::COMMUNITIES => {
                if value.is_empty() || value.len() % 4 != 0 {
                    Err(bad_length("a non-zero multiple of 4"))
                } else {
                    attrs.communities =
                        value.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
                    Ok(())
                }
            }
            attr::LARGE_COMMUNITIES => {
                if value.is_empty() || value.len() % 12 != 0 {
                    Err(bad_length("a non-zero multiple of 12"))
                } else {
                    let word = |c: &[u8], i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
                    attrs.large_communities =
                        value.chunks_exact(12).map(|c| (word(c, 0), word(c, 4), word(c, 8))).collect();
                    Ok(())
                }
            }
            attr::MP_REACH_NLRI => {
                attrs.mp_reach = decode_mp_reach(value, whole)?;
                Ok(())
            }
            attr::MP_UNREACH_NLRI => {
                attrs.mp_unreach = decode_mp_unreach(value, whole)?;
                Ok(())
            }
            attr::AS4_PATH => {
                // Only a 2-octet session uses it; a malformed one is discarded (RFC 6793 6).
                if !opts.four_octet_as {
                    as4_path = decode_as_path(value, 4).ok();
                }
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(error) = result {
            withdraw.get_or_insert(error);
        }
    }
    if let Some(error) = withdraw {
        return Err(error);
    }

    // Mandatory attributes are only mandatory for an UPDATE that announces something (RFC 4271 5, RFC 4760 3).
    let announces = has_nlri || seen.contains(attr::MP_REACH_NLRI);
    if announces {
        for type_code in [attr::ORIGIN, attr::AS_PATH] {
            if !seen.contains(type_code) {
                return Err(K::MissingWellKnownAttribute { type_code });
            }
        }
    }
    if has_nlri && !seen.contains(attr::NEXT_HOP) {
        return Err(K::MissingWellKnownAttribute { type_code: attr::NEXT_HOP });
    }
    if let Some(as4) = as4_path {
        attrs.as_path = merge_as4_path(std::mem::take(&mut attrs.as_path), as4);
    }
    Ok(attrs)
}

/// Attribute types we recognize but do not keep: skipped whatever their flags (RFC 7606 7.6, 7.7: a malformed
/// ATOMIC_AGGREGATE or AGGREGATOR is discarded anyway).
fn is_known_skipped(type_code: u8) -> bool {
    matches!(type_code, attr::ATOMIC_AGGREGATE | attr::AGGREGATOR | attr::AS4_AGGREGATOR)
}

fn four_octets(value: &[u8]) -> Option<u32> {
    value.first_chunk::<4>().filter(|_| value.len() == 4).map(|a| u32::from_be_bytes(*a))
}

fn decode_as_path(value: &[u8], width: usize) -> Result<Vec<AsSegment>, K> {
    let mut r = Reader::new(value);
    let mut path = Vec::new();
    while !r.is_empty() {
        let malformed = |reason, segment_type| K::MalformedAsPath { reason, segment_type };
        let (Some(segment_type), Some(count)) = (r.u8(), r.u8()) else {
            return Err(malformed("truncated segment header", 0));
        };
        if count == 0 {
            return Err(malformed("empty segment", segment_type));
        }
        let bytes = r
            .take(usize::from(count) * width)
            .ok_or_else(|| malformed("its ASN count overruns the attribute", segment_type))?;
        let asns: Vec<u32> = if width == 4 {
            bytes.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect()
        } else {
            bytes.chunks_exact(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).collect()
        };
        path.push(match segment_type {
            SEGMENT_SEQUENCE => AsSegment::Sequence(asns),
            SEGMENT_SET => AsSegment::Set(asns),
            _ => return Err(malformed("not AS_SET (1) or AS_SEQUENCE (2)", segment_type)),
        });
    }
    Ok(path)
}

/// The number of ASNs a path counts for in path selection: a set counts once (RFC 4271 9.1.2.2).
fn path_count(path: &[AsSegment]) -> usize {
    path.iter()
        .map(|seg| match seg {
            AsSegment::Sequence(asns) => asns.len(),
            AsSegment::Set(_) => 1,
        })
        .sum()
}

/// RFC 6793 4.2.3: keep the leading part of AS_PATH that AS4_PATH does not cover, then AS4_PATH; an AS4_PATH
/// longer than AS_PATH is ignored.
fn merge_as4_path(as_path: Vec<AsSegment>, as4_path: Vec<AsSegment>) -> Vec<AsSegment> {
    let (count, count4) = (path_count(&as_path), path_count(&as4_path));
    if count < count4 {
        return as_path;
    }
    let mut lead = count - count4;
    let mut merged = Vec::with_capacity(as_path.len() + as4_path.len());
    for seg in as_path {
        if lead == 0 {
            break;
        }
        match seg {
            AsSegment::Sequence(mut asns) => {
                asns.truncate(lead);
                lead -= asns.len();
                merged.push(AsSegment::Sequence(asns));
            }
            AsSegment::Set(asns) => {
                lead -= 1;
                merged.push(AsSegment::Set(asns));
            }
        }
    }
    merged.extend(as4_path);
    merged
}

fn decode_mp_reach(value: &[u8], whole: &[u8]) -> Result<Option<MpReach>, K> {
    let error = |reason| K::OptionalAttribute { type_code: attr::MP_REACH_NLRI, reason, attribute: whole.to_vec() };
    let mut r = Reader::new(value);
    let (Some(afi), Some(safi), Some(nh_len)) = (r.u16(), r.u8(), r.u8()) else {
        return Err(error("shorter than AFI, SAFI and next hop length"));
    };
    let nh = r.take(usize::from(nh_len)).ok_or_else(|| error("next hop length overruns the attribute"))?;
    r.u8().ok_or_else(|| error("no reserved octet after the next hop"))?;
    let Some((afi, safi)) = family(afi, safi) else {
        // A family we did not negotiate and do not speak: skipped (RFC 4760 7 lets us ignore it).
        return Ok(None);
    };
    let next_hops = match (afi, nh.len()) {
        (Afi::Ipv4, 4) => vec![IpAddr::V4(Ipv4Addr::new(nh[0], nh[1], nh[2], nh[3]))],
        (Afi::Ipv6, 16) => vec![IpAddr::V6(ipv6(nh))],
        (Afi::Ipv6, 32) => vec![IpAddr::V6(ipv6(&nh[..16])), IpAddr::V6(ipv6(&nh[16..]))],
        (Afi::Ipv4, _) => return Err(error("IPv4 next hop length is not 4")),
        (Afi::Ipv6, _) => return Err(error("IPv6 next hop length is not 16 or 32")),
    };
    let mut nlri = Vec::new();
    read_prefixes(r.buf, afi, &mut nlri).map_err(|reason| K::BadPrefix {
        field: "MP_REACH_NLRI prefixes",
        reason,
        attribute: whole.to_vec(),
    })?;
    Ok(Some(MpReach { afi, safi, next_hops, nlri }))
}

fn decode_mp_unreach(value: &[u8], whole: &[u8]) -> Result<Option<MpUnreach>, K> {
    let mut r = Reader::new(value);
    let (Some(afi), Some(safi)) = (r.u16(), r.u8()) else {
        return Err(K::OptionalAttribute {
            type_code: attr::MP_UNREACH_NLRI,
            reason: "shorter than AFI and SAFI",
            attribute: whole.to_vec(),
        });
    };
    let Some((afi, safi)) = family(afi, safi) else {
        return Ok(None);
    };
    let mut withdrawn = Vec::new();
    read_prefixes(r.buf, afi, &mut withdrawn).map_err(|reason| K::BadPrefix {
        field: "MP_UNREACH_NLRI prefixes",
        reason,
        attribute: whole.to_vec(),
    })?;
    Ok(Some(MpUnreach { afi, safi, withdrawn }))
}

/// 16 octets as an IPv6 address (callers pass exactly 16).
fn ipv6(octets: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&octets[..16]);
    Ipv6Addr::from(a)
}
