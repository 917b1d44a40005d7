//! Properties of the membership wire format: any bytes, authentic or not, are refused without a panic, and
//! every header and update round-trips; the replay guard admits a datagram at most once, whatever the order
//! and however far apart in time.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use foca::{Codec, Header, Member, Message, State};
use metallb_core::membership::codec::WireCodec;
use metallb_core::membership::{Authenticator, Dropped, Engine, MemberId, MembershipConfig, ReplayGuard};
use proptest::prelude::*;

const SECRET: &[u8] = b"property test secret, 32 bytes!!";

fn addr() -> impl Strategy<Value = SocketAddr> {
    let ip = prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o))),
    ];
    (ip, any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

fn member_id() -> impl Strategy<Value = MemberId> {
    ("[a-z0-9.-]{0,63}", addr(), any::<u64>())
        .prop_map(|(name, addr, generation)| MemberId::new(&name, addr, generation))
}

fn message() -> impl Strategy<Value = Message<MemberId>> {
    prop_oneof![
        any::<u8>().prop_map(Message::Ping),
        any::<u8>().prop_map(Message::Ack),
        (member_id(), any::<u8>()).prop_map(|(target, probe_number)| Message::PingReq { target, probe_number }),
        (member_id(), any::<u8>()).prop_map(|(origin, probe_number)| Message::IndirectPing { origin, probe_number }),
        (member_id(), any::<u8>()).prop_map(|(target, probe_number)| Message::IndirectAck { target, probe_number }),
        (member_id(), any::<u8>()).prop_map(|(origin, probe_number)| Message::ForwardedAck { origin, probe_number }),
        Just(Message::Announce),
        Just(Message::Feed),
        Just(Message::Gossip),
        Just(Message::Broadcast),
        Just(Message::TurnUndead),
    ]
}

fn engine() -> Engine {
    let config = MembershipConfig::new("prop", "192.0.2.1:7946".parse().unwrap(), SECRET);
    Engine::new(config, Instant::now()).unwrap()
}

proptest! {
    #[test]
    fn headers_round_trip(src in member_id(), dst in member_id(), incarnation in any::<u16>(), message in message()) {
        let header = Header { src, src_incarnation: incarnation, dst, message };
        let mut bytes = Vec::new();
        WireCodec.encode_header(&header, &mut bytes).unwrap();
        prop_assert_eq!(WireCodec.decode_header(&bytes[..]).unwrap(), header);
    }

    #[test]
    fn updates_round_trip(id in member_id(), incarnation in any::<u16>(), state in 0u8..3) {
        let state = [State::Alive, State::Suspect, State::Down][usize::from(state)];
        let member = Member::new(id, incarnation, state);
        let mut bytes = Vec::new();
        WireCodec.encode_member(&member, &mut bytes).unwrap();
        prop_assert_eq!(WireCodec.decode_member(&bytes[..]).unwrap(), member);
    }

    #[test]
    fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = WireCodec.decode_header(&bytes[..]);
        let _ = WireCodec.decode_member(&bytes[..]);
    }

    /// Unauthenticated bytes never reach the protocol.
    #[test]
    fn forged_datagrams_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut engine = engine();
        let result = engine.receive(Instant::now(), &bytes);
        prop_assert!(matches!(result, Err(Dropped::Auth(_))), "{:?}", result);
        prop_assert!(engine.take_outgoing().is_empty());
    }

    /// Authentic garbage (a peer with a bug, or another version) is dropped as malformed or refused by the
    /// protocol, and never panics.
    #[test]
    fn authentic_garbage_is_dropped(payload in proptest::collection::vec(any::<u8>(), 0..300), boot in 1u64..1 << 62) {
        let mut engine = engine();
        let mut sender = Authenticator::new(SECRET, boot.wrapping_add(7));
        let result = engine.receive(Instant::now(), &sender.seal(&payload));
        prop_assert!(matches!(result, Err(Dropped::Malformed | Dropped::Protocol) | Ok(())), "{:?}", result);
        let stats = engine.stats();
        prop_assert_eq!(stats.bad_tag, 0);
    }

    /// Two senders, each with three lives (a start, a rejoin of the same process, a restart), their
    /// datagrams delivered in any order, duplicated, days apart: each (sender, boot, number) is admitted at
    /// most once, and never after a newer life of its sender was admitted.
    #[test]
    fn the_replay_guard_admits_a_datagram_at_most_once(
        deliveries in proptest::collection::vec((0usize..2, 0usize..3, 1u64..150, 0u64..86_400), 1..600)
    ) {
        let lives = [(5u64, 11u64), (6, 11), (9, 12)];
        let start = Instant::now();
        let mut guard = ReplayGuard::new();
        let mut admitted = HashSet::new();
        let mut newest: HashMap<usize, u64> = HashMap::new();
        for (sender, life, seq, seconds) in deliveries {
            let (generation, boot) = lives[life];
            let id = MemberId::new(&format!("node-{sender}"), "192.0.2.1:7946".parse().unwrap(), generation);
            if guard.admit(&id, boot, seq, start + Duration::from_secs(seconds)).is_ok() {
                prop_assert!(admitted.insert((sender, boot, seq)), "node-{} boot {} seq {} twice", sender, boot, seq);
                let newest = newest.entry(sender).or_insert(generation);
                prop_assert!(generation >= *newest, "an older life was admitted after a newer one");
                *newest = generation;
            }
        }
    }
}
