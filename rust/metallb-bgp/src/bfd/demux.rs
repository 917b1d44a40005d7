//! Which session a received datagram belongs to, or why it is dropped: a pure decision over the datagram
//! (bytes, source, destination, TTL, the port it came to) and the sessions' keys, table-tested without a
//! socket.
//!
//! RFC 5880 6.8.6: a packet names our session by Your Discriminator; while that is zero (the remote has not
//! heard from us yet) it is matched by address, and only if it says Down or AdminDown (decode refuses the rest). RFC 5881 5 / 5883 5:
//! a single-hop packet counts only with TTL 255 (it cannot have crossed a router), a multihop one with at
//! least the session's minimum TTL.

use std::net::IpAddr;

use metallb_core::bfd::packet::{self, ControlPacket, DecodeError};

/// The single-hop TTL (hop limit): the sender's 255, not decremented by any router.
pub(super) const SINGLE_HOP_TTL: u8 = 255;

/// One received datagram and where it came from.
#[derive(Debug, Clone, Copy)]
pub(super) struct Arrival<'a> {
    pub bytes: &'a [u8],
    /// Longer than the buffer it was read into.
    pub truncated: bool,
    pub source: IpAddr,
    pub destination: Option<IpAddr>,
    pub ttl: Option<u8>,
    /// It came to the multihop port (4784) rather than the single-hop one (3784).
    pub multihop: bool,
}

/// What demultiplexing needs to know of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Key {
    pub peer: IpAddr,
    pub local: Option<IpAddr>,
    pub multihop: bool,
    pub discriminator: u32,
    pub minimum_ttl: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// For the session at this index of the keys.
    Deliver(usize, ControlPacket),
    /// Refused; `session` is the one it was meant for when that is known (its `dropped` counter).
    Drop { session: Option<usize>, reason: DropReason },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DropReason {
    Malformed(DecodeError),
    /// Longer than any control packet we read.
    Truncated,
    /// No session has this discriminator, or (discriminator zero) this address.
    NoSession,
    /// The discriminator is a session of the other kind (single-hop on the multihop port or back).
    WrongPort,
    /// The discriminator is a session with another peer.
    WrongSource {
        peer: IpAddr,
    },
    /// The TTL (hop limit) is below what the session accepts.
    Ttl {
        ttl: u8,
        minimum: u8,
    },
    /// The socket did not report the TTL, so it cannot be checked.
    NoTtl,
}

/// The session `arrival` is for, or why it is dropped.
pub(super) fn demux(arrival: &Arrival<'_>, keys: &[Key]) -> Verdict {
    let drop = |session, reason| Verdict::Drop { session, reason };
    let decoded = if arrival.truncated { Err(None) } else { packet::decode(arrival.bytes).map_err(Some) };
    let packet = match decoded {
        Ok(packet) => packet,
        Err(err) => {
            let reason = err.map_or(DropReason::Truncated, DropReason::Malformed);
            return drop(by_address(arrival, keys), reason);
        }
    };
    let session = if packet.your_discriminator != 0 {
        let Some(i) = keys.iter().position(|k| k.discriminator == packet.your_discriminator) else {
            return drop(None, DropReason::NoSession);
        };
        let key = &keys[i];
        if key.multihop != arrival.multihop {
            return drop(Some(i), DropReason::WrongPort);
        }
        if key.peer != arrival.source {
            return drop(Some(i), DropReason::WrongSource { peer: key.peer });
        }
        i
    } else {
        // decode() refused a zero Your Discriminator in Init or Up already.
        let Some(i) = by_address(arrival, keys) else { return drop(None, DropReason::NoSession) };
        i
    };
    let minimum = if keys[session].multihop { keys[session].minimum_ttl } else { SINGLE_HOP_TTL };
    match arrival.ttl {
        None => drop(Some(session), DropReason::NoTtl),
        Some(ttl) if ttl < minimum => drop(Some(session), DropReason::Ttl { ttl, minimum }),
        Some(_) => Verdict::Deliver(session, packet),
    }
}

/// The session with the datagram's source as peer, of the port's kind, bound to its destination or to no
/// address in particular (the bound one first).
fn by_address(arrival: &Arrival<'_>, keys: &[Key]) -> Option<usize> {
    let candidates = || {
        keys.iter()
            .enumerate()
            .filter(|(_, k)| k.peer == arrival.source && k.multihop == arrival.multihop)
            .filter(|(_, k)| k.local.is_none() || arrival.destination.is_none() || k.local == arrival.destination)
    };
    candidates().find(|(_, k)| k.local.is_some()).or_else(|| candidates().next()).map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use metallb_core::bfd::packet::{encode, State};

    use super::*;

    const PEER: &str = "198.51.100.2";
    const LOCAL: &str = "198.51.100.1";

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn key(peer: &str, multihop: bool, discriminator: u32) -> Key {
        Key { peer: ip(peer), local: None, multihop, discriminator, minimum_ttl: 254 }
    }

    fn control(state: State, your_discriminator: u32) -> ControlPacket {
        ControlPacket::new(state, 0x0bad_cafe, your_discriminator)
    }

    /// What `demux` says of `packet` from PEER to LOCAL with `ttl`, on the port of `multihop`.
    fn verdict(packet: &ControlPacket, ttl: Option<u8>, multihop: bool, keys: &[Key]) -> Verdict {
        let bytes = encode(packet);
        let arrival =
            Arrival { bytes: &bytes, truncated: false, source: ip(PEER), destination: Some(ip(LOCAL)), ttl, multihop };
        demux(&arrival, keys)
    }

    fn dropped(session: Option<usize>, reason: DropReason) -> Verdict {
        Verdict::Drop { session, reason }
    }

    #[test]
    fn a_discriminator_names_the_session() {
        let keys = [key("198.51.100.9", false, 7), key(PEER, false, 8), key(PEER, true, 9)];
        let up = control(State::Up, 8);
        assert_eq!(verdict(&up, Some(255), false, &keys), Verdict::Deliver(1, up.clone()));
        let multihop = control(State::Init, 9);
        assert_eq!(verdict(&multihop, Some(254), true, &keys), Verdict::Deliver(2, multihop.clone()));
    }

    #[test]
    fn without_a_discriminator_only_down_packets_match_by_address() {
        let keys = [key(PEER, true, 9), key(PEER, false, 8)];
        for state in [State::Down, State::AdminDown] {
            let packet = control(state, 0);
            assert_eq!(verdict(&packet, Some(255), false, &keys), Verdict::Deliver(1, packet.clone()), "{state}");
        }
        for state in [State::Init, State::Up] {
            let packet = control(state, 0);
            let want = dropped(Some(1), DropReason::Malformed(DecodeError::ZeroYourDiscriminator { state }));
            assert_eq!(verdict(&packet, Some(255), false, &keys), want, "{state}");
        }
    }

    #[test]
    fn a_session_bound_to_the_destination_wins_and_one_bound_elsewhere_never_matches() {
        let elsewhere = Key { local: Some(ip("198.51.100.77")), ..key(PEER, false, 1) };
        let any = key(PEER, false, 2);
        let bound = Key { local: Some(ip(LOCAL)), ..key(PEER, false, 3) };
        let packet = control(State::Down, 0);
        assert_eq!(verdict(&packet, Some(255), false, &[elsewhere, any, bound]), Verdict::Deliver(2, packet.clone()));
        assert_eq!(verdict(&packet, Some(255), false, &[elsewhere, any]), Verdict::Deliver(1, packet.clone()));
        assert_eq!(verdict(&packet, Some(255), false, &[elsewhere]), dropped(None, DropReason::NoSession));
    }

    #[test]
    fn single_hop_takes_ttl_255_only() {
        let keys = [key(PEER, false, 8)];
        let packet = control(State::Up, 8);
        assert_eq!(verdict(&packet, Some(255), false, &keys), Verdict::Deliver(0, packet.clone()));
        for ttl in [254, 64, 1] {
            let want = dropped(Some(0), DropReason::Ttl { ttl, minimum: 255 });
            assert_eq!(verdict(&packet, Some(ttl), false, &keys), want);
        }
        assert_eq!(verdict(&packet, None, false, &keys), dropped(Some(0), DropReason::NoTtl));
    }

    #[test]
    fn multihop_takes_the_minimum_ttl_and_above() {
        let keys = [Key { minimum_ttl: 250, ..key(PEER, true, 9) }];
        let packet = control(State::Up, 9);
        for ttl in [250, 254, 255] {
            assert_eq!(verdict(&packet, Some(ttl), true, &keys), Verdict::Deliver(0, packet.clone()), "{ttl}");
        }
        assert_eq!(
            verdict(&packet, Some(249), true, &keys),
            dropped(Some(0), DropReason::Ttl { ttl: 249, minimum: 250 })
        );
    }

    #[test]
    fn a_discriminator_of_another_kind_or_peer_is_refused() {
        let packet = control(State::Up, 8);
        assert_eq!(verdict(&packet, Some(255), true, &[key(PEER, false, 8)]), dropped(Some(0), DropReason::WrongPort));
        let other = key("198.51.100.9", false, 8);
        let want = dropped(Some(0), DropReason::WrongSource { peer: other.peer });
        assert_eq!(verdict(&packet, Some(255), false, &[other]), want);
        assert_eq!(verdict(&packet, Some(255), false, &[key(PEER, false, 5)]), dropped(None, DropReason::NoSession));
    }

    #[test]
    fn bytes_that_do_not_decode_count_against_the_session_of_their_source() {
        let keys = [key(PEER, false, 8)];
        let mut bytes = encode(&control(State::Up, 8));
        bytes[0] = 0; // version 0
        let arrival = Arrival {
            bytes: &bytes,
            truncated: false,
            source: ip(PEER),
            destination: None,
            ttl: Some(255),
            multihop: false,
        };
        let Verdict::Drop { session: Some(0), reason: DropReason::Malformed(_) } = demux(&arrival, &keys) else {
            panic!("{:?}", demux(&arrival, &keys));
        };
        let truncated = Arrival { truncated: true, ..arrival };
        assert_eq!(demux(&truncated, &keys), dropped(Some(0), DropReason::Truncated));
        let stranger = Arrival { source: ip("198.51.100.9"), ..arrival };
        assert!(matches!(demux(&stranger, &keys), Verdict::Drop { session: None, reason: DropReason::Malformed(_) }));
    }
}
