//! The binary form of foca's headers and membership updates, inside an authenticated datagram.
//!
//! Big-endian and length-prefixed, no self-description: both ends run the same code. An identity is
//! `name_len:u8 name generation:u64 family:u8 (4|6) ip port:u16`; a member update is
//! `identity incarnation:u16 state:u8`; a header is `src incarnation:u16 dst message`. Decoding checks every
//! length before reading and never panics on any input (see the property tests); the tag in front was already
//! verified, so a decode error means a peer runs an incompatible version, not an attack.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Buf, BufMut};
use foca::{Header, Member, Message, State};
use thiserror::Error;

use super::identity::{MemberId, MAX_NAME_LEN};

/// Why bytes are not a valid header or update.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("member name is not UTF-8")]
    NameNotUtf8,
    #[error("member name longer than {MAX_NAME_LEN} bytes")]
    NameTooLong,
    #[error("unknown address family {0}")]
    UnknownFamily(u8),
    #[error("unknown message type {0}")]
    UnknownMessage(u8),
    #[error("unknown member state {0}")]
    UnknownState(u8),
    #[error("no room left in the datagram")]
    BufferFull,
}

const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;

mod tag {
    pub const PING: u8 = 0;
    pub const ACK: u8 = 1;
    pub const PING_REQ: u8 = 2;
    pub const INDIRECT_PING: u8 = 3;
    pub const INDIRECT_ACK: u8 = 4;
    pub const FORWARDED_ACK: u8 = 5;
    pub const ANNOUNCE: u8 = 6;
    pub const FEED: u8 = 7;
    pub const GOSSIP: u8 = 8;
    pub const BROADCAST: u8 = 9;
    pub const TURN_UNDEAD: u8 = 10;
}

/// The codec foca encodes and decodes with. Stateless.
#[derive(Clone, Copy, Debug, Default)]
pub struct WireCodec;

impl foca::Codec<MemberId> for WireCodec {
    type Error = CodecError;

    fn encode_header(&mut self, header: &Header<MemberId>, mut buf: impl BufMut) -> Result<(), CodecError> {
        let mut out = Vec::with_capacity(96);
        put_id(&mut out, &header.src)?;
        out.put_u16(header.src_incarnation);
        put_id(&mut out, &header.dst)?;
        put_message(&mut out, &header.message)?;
        write_all(&mut buf, &out)
    }

    fn decode_header(&mut self, mut buf: impl Buf) -> Result<Header<MemberId>, CodecError> {
        let src = get_id(&mut buf)?;
        let src_incarnation = get_u16(&mut buf, "incarnation")?;
        let dst = get_id(&mut buf)?;
        let message = get_message(&mut buf)?;
        Ok(Header { src, src_incarnation, dst, message })
    }

    fn encode_member(&mut self, member: &Member<MemberId>, mut buf: impl BufMut) -> Result<(), CodecError> {
        let mut out = Vec::with_capacity(48);
        put_id(&mut out, member.id())?;
        out.put_u16(member.incarnation());
        out.put_u8(match member.state() {
            State::Alive => 0,
            State::Suspect => 1,
            State::Down => 2,
        });
        write_all(&mut buf, &out)
    }

    fn decode_member(&mut self, mut buf: impl Buf) -> Result<Member<MemberId>, CodecError> {
        let id = get_id(&mut buf)?;
        let incarnation = get_u16(&mut buf, "incarnation")?;
        let state = match get_u8(&mut buf, "member state")? {
            0 => State::Alive,
            1 => State::Suspect,
            2 => State::Down,
            other => return Err(CodecError::UnknownState(other)),
        };
        Ok(Member::new(id, incarnation, state))
    }
}

/// Whole or nothing: foca hands a buffer limited to the datagram size, and `BufMut` panics on overflow.
fn write_all(buf: &mut impl BufMut, bytes: &[u8]) -> Result<(), CodecError> {
    if buf.remaining_mut() < bytes.len() {
        return Err(CodecError::BufferFull);
    }
    buf.put_slice(bytes);
    Ok(())
}

pub(crate) fn put_id(out: &mut Vec<u8>, id: &MemberId) -> Result<(), CodecError> {
    let name = id.name().as_bytes();
    let len =
        u8::try_from(name.len()).ok().filter(|n| usize::from(*n) <= MAX_NAME_LEN).ok_or(CodecError::NameTooLong)?;
    out.put_u8(len);
    out.put_slice(name);
    out.put_u64(id.generation());
    match id.addr().ip() {
        IpAddr::V4(ip) => {
            out.put_u8(FAMILY_V4);
            out.put_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.put_u8(FAMILY_V6);
            out.put_slice(&ip.octets());
        }
    }
    out.put_u16(id.addr().port());
    Ok(())
}

fn put_message(out: &mut Vec<u8>, message: &Message<MemberId>) -> Result<(), CodecError> {
    match message {
        Message::Ping(n) => out.put_slice(&[tag::PING, *n]),
        Message::Ack(n) => out.put_slice(&[tag::ACK, *n]),
        Message::PingReq { target, probe_number } => with_id(out, tag::PING_REQ, target, *probe_number)?,
        Message::IndirectPing { origin, probe_number } => with_id(out, tag::INDIRECT_PING, origin, *probe_number)?,
        Message::IndirectAck { target, probe_number } => with_id(out, tag::INDIRECT_ACK, target, *probe_number)?,
        Message::ForwardedAck { origin, probe_number } => with_id(out, tag::FORWARDED_ACK, origin, *probe_number)?,
        Message::Announce => out.put_u8(tag::ANNOUNCE),
        Message::Feed => out.put_u8(tag::FEED),
        Message::Gossip => out.put_u8(tag::GOSSIP),
        Message::Broadcast => out.put_u8(tag::BROADCAST),
        Message::TurnUndead => out.put_u8(tag::TURN_UNDEAD),
    }
    Ok(())
}

fn with_id(out: &mut Vec<u8>, tag: u8, id: &MemberId, probe_number: u8) -> Result<(), CodecError> {
    out.put_u8(tag);
    put_id(out, id)?;
    out.put_u8(probe_number);
    Ok(())
}

fn get_message(buf: &mut impl Buf) -> Result<Message<MemberId>, CodecError> {
    let tag = get_u8(buf, "message type")?;
    let message = match tag {
        tag::PING => Message::Ping(get_u8(buf, "probe number")?),
        tag::ACK => Message::Ack(get_u8(buf, "probe number")?),
        tag::PING_REQ => {
            let target = get_id(buf)?;
            Message::PingReq { target, probe_number: get_u8(buf, "probe number")? }
        }
        tag::INDIRECT_PING => {
            let origin = get_id(buf)?;
            Message::IndirectPing { origin, probe_number: get_u8(buf, "probe number")? }
        }
        tag::INDIRECT_ACK => {
            let target = get_id(buf)?;
            Message::IndirectAck { target, probe_number: get_u8(buf, "probe number")? }
        }
        tag::FORWARDED_ACK => {
            let origin = get_id(buf)?;
            Message::ForwardedAck { origin, probe_number: get_u8(buf, "probe number")? }
        }
        tag::ANNOUNCE => Message::Announce,
        tag::FEED => Message::Feed,
        tag::GOSSIP => Message::Gossip,
        tag::BROADCAST => Message::Broadcast,
        tag::TURN_UNDEAD => Message::TurnUndead,
        other => return Err(CodecError::UnknownMessage(other)),
    };
    Ok(message)
}

pub(crate) fn get_id(buf: &mut impl Buf) -> Result<MemberId, CodecError> {
    let len = usize::from(get_u8(buf, "name length")?);
    if len > MAX_NAME_LEN {
        return Err(CodecError::NameTooLong);
    }
    let mut name = vec![0u8; len];
    get_slice(buf, &mut name, "name")?;
    let name = String::from_utf8(name).map_err(|_| CodecError::NameNotUtf8)?;
    let generation = get_u64(buf, "generation")?;
    let ip = match get_u8(buf, "address family")? {
        FAMILY_V4 => {
            let mut octets = [0u8; 4];
            get_slice(buf, &mut octets, "IPv4 address")?;
            IpAddr::V4(Ipv4Addr::from(octets))
        }
        FAMILY_V6 => {
            let mut octets = [0u8; 16];
            get_slice(buf, &mut octets, "IPv6 address")?;
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        other => return Err(CodecError::UnknownFamily(other)),
    };
    let port = get_u16(buf, "port")?;
    Ok(MemberId::new(&name, SocketAddr::new(ip, port), generation))
}

pub(crate) fn get_slice(buf: &mut impl Buf, out: &mut [u8], what: &'static str) -> Result<(), CodecError> {
    if buf.remaining() < out.len() {
        return Err(CodecError::Truncated(what));
    }
    buf.copy_to_slice(out);
    Ok(())
}

pub(crate) fn get_u8(buf: &mut impl Buf, what: &'static str) -> Result<u8, CodecError> {
    if buf.remaining() < 1 {
        return Err(CodecError::Truncated(what));
    }
    Ok(buf.get_u8())
}

fn get_u16(buf: &mut impl Buf, what: &'static str) -> Result<u16, CodecError> {
    if buf.remaining() < 2 {
        return Err(CodecError::Truncated(what));
    }
    Ok(buf.get_u16())
}

fn get_u64(buf: &mut impl Buf, what: &'static str) -> Result<u64, CodecError> {
    if buf.remaining() < 8 {
        return Err(CodecError::Truncated(what));
    }
    Ok(buf.get_u64())
}

#[cfg(test)]
mod tests {
    use foca::Codec;

    use super::*;

    fn id(name: &str, addr: &str) -> MemberId {
        MemberId::new(name, addr.parse().unwrap(), 1_700_000_000_123)
    }

    fn every_message() -> Vec<Message<MemberId>> {
        let other = id("node-c", "[2001:db8::3]:7946");
        vec![
            Message::Ping(7),
            Message::Ack(255),
            Message::PingReq { target: other.clone(), probe_number: 1 },
            Message::IndirectPing { origin: other.clone(), probe_number: 2 },
            Message::IndirectAck { target: other.clone(), probe_number: 3 },
            Message::ForwardedAck { origin: other, probe_number: 4 },
            Message::Announce,
            Message::Feed,
            Message::Gossip,
            Message::Broadcast,
            Message::TurnUndead,
        ]
    }

    #[test]
    fn every_header_round_trips_and_every_prefix_is_refused() {
        for message in every_message() {
            let header = Header {
                src: id("node-a", "192.0.2.1:7946"),
                src_incarnation: 513,
                dst: id("", "192.0.2.2:7946"),
                message,
            };
            let mut bytes = Vec::new();
            WireCodec.encode_header(&header, &mut bytes).unwrap();
            assert_eq!(WireCodec.decode_header(&bytes[..]).unwrap(), header);
            for cut in 0..bytes.len() {
                assert!(WireCodec.decode_header(&bytes[..cut]).is_err(), "{:?} cut at {cut}", header.message);
            }
        }
    }

    #[test]
    fn every_state_round_trips() {
        for state in [State::Alive, State::Suspect, State::Down] {
            let member = Member::new(id("node-b", "[2001:db8::2]:1"), 9, state);
            let mut bytes = Vec::new();
            WireCodec.encode_member(&member, &mut bytes).unwrap();
            assert_eq!(WireCodec.decode_member(&bytes[..]).unwrap(), member);
        }
    }

    #[test]
    fn a_full_buffer_is_an_error_not_a_panic() {
        let member = Member::alive(id("node-b", "192.0.2.2:7946"));
        let mut small = [0u8; 10];
        assert_eq!(WireCodec.encode_member(&member, &mut small[..]), Err(CodecError::BufferFull));
    }

    #[test]
    fn unknown_tags_and_bad_names_are_named() {
        let mut bytes = Vec::new();
        WireCodec.encode_member(&Member::alive(id("n", "192.0.2.2:7946")), &mut bytes).unwrap();
        let last = bytes.len() - 1;
        bytes[last] = 9;
        assert_eq!(WireCodec.decode_member(&bytes[..]), Err(CodecError::UnknownState(9)));
        bytes[1] = 0xff;
        assert_eq!(WireCodec.decode_member(&bytes[..]), Err(CodecError::NameNotUtf8));
        bytes[0] = 254;
        assert_eq!(WireCodec.decode_member(&bytes[..]), Err(CodecError::NameTooLong));
    }
}
