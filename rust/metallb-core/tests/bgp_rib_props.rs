//! Adj-RIB-Out against a model of the peer: after any sequence of changes, new sessions and route refreshes,
//! the UPDATEs it builds — encoded and decoded by the real codec — leave the peer holding exactly what is
//! wanted; every UPDATE fits 4096 octets; a change of one prefix's attributes is one UPDATE for it alone.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use metallb_core::bgp::codec::{decode, encode_to_vec, CodecOptions, MAX_MESSAGE_LEN};
use metallb_core::bgp::rib::{AdjRibOut, RouteAttrs, UpdateContext, DEFAULT_LOCAL_PREF};
use metallb_core::bgp::{Afi, AsSegment, Message, Origin, PathAttributes, Prefix, Safi, Update};
use proptest::prelude::*;

const NH4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const NH6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 10);

#[derive(Debug, Clone)]
enum Op {
    SetWanted(BTreeMap<Prefix, RouteAttrs>),
    Advertise(Prefix, RouteAttrs),
    Withdraw(Prefix),
    /// The session went down and came back: the peer forgot everything.
    NewSession,
    RouteRefresh(Afi),
    /// The family's next hop went away (and, in this test, came back).
    TakeBack(Afi),
    /// Send at most this many UPDATEs now.
    Drain(usize),
}

/// Prefixes from a small pool (so that operations meet), wide enough to need several UPDATEs.
fn prefix() -> impl Strategy<Value = Prefix> {
    prop_oneof![
        (0u32..400).prop_map(|n| Prefix::host(IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + n)))),
        (0u16..400).prop_map(|n| Prefix::host(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, n)))),
        (0u8..4, 0u8..33).prop_map(|(n, len)| Prefix::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, n)), len).unwrap()),
        (0u16..4, 0u8..129).prop_map(|(n, len)| Prefix::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, n, 0, 0, 0, 0, 1)),
            len
        )
        .unwrap()),
    ]
}

fn attrs() -> impl Strategy<Value = RouteAttrs> {
    (
        prop_oneof![Just(None), Just(Some(50)), Just(Some(200))],
        prop::collection::vec(0u32..4, 0..4),
        prop::collection::vec((0u32..2, 0u32..2, 0u32..2), 0..3),
    )
        .prop_map(|(local_pref, communities, large_communities)| RouteAttrs {
            local_pref,
            communities,
            large_communities,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => prop::collection::btree_map(prefix(), attrs(), 0..600).prop_map(Op::SetWanted),
        6 => (prefix(), attrs()).prop_map(|(p, a)| Op::Advertise(p, a)),
        3 => prefix().prop_map(Op::Withdraw),
        1 => Just(Op::NewSession),
        1 => prop_oneof![Just(Afi::Ipv4), Just(Afi::Ipv6)].prop_map(Op::RouteRefresh),
        1 => prop_oneof![Just(Afi::Ipv4), Just(Afi::Ipv6)].prop_map(Op::TakeBack),
        2 => (0usize..4).prop_map(Op::Drain),
    ]
}

fn context() -> impl Strategy<Value = UpdateContext> {
    (any::<bool>(), any::<bool>(), prop_oneof![Just(64512u32), Just(4_200_000_000)], any::<bool>()).prop_map(
        |(ibgp, four_octet_as, local_asn, end_of_rib)| UpdateContext {
            local_asn,
            ibgp,
            next_hop_v4: Some(NH4),
            next_hop_v6: Some(NH6),
            families: vec![(Afi::Ipv4, Safi::Unicast), (Afi::Ipv6, Safi::Unicast)],
            four_octet_as,
            end_of_rib,
        },
    )
}

/// What the peer holds: each prefix with the attributes MetalLB lets a user set, as read off the wire.
type PeerTable = BTreeMap<Prefix, RouteAttrs>;

/// The family an UPDATE is the End-of-RIB marker of (RFC 4724 2), read off the decoded message.
fn end_of_rib(u: &Update) -> Option<Afi> {
    let a = &u.attributes;
    let nothing_else = u.withdrawn.is_empty() && u.nlri.is_empty() && a.mp_reach.is_none() && a.next_hop.is_none();
    match &a.mp_unreach {
        None if nothing_else && *a == PathAttributes::default() => Some(Afi::Ipv4),
        Some(mp) if nothing_else && mp.withdrawn.is_empty() => Some(mp.afi),
        _ => None,
    }
}

/// The peer's side of a session: what it holds, and the End-of-RIB markers it got.
#[derive(Default)]
struct Peer {
    table: PeerTable,
    end_of_rib: BTreeMap<Afi, usize>,
}

/// Sends `updates` through the codec to the peer: checks each fits and decodes back to itself, the attributes
/// every announcement must carry, and that an End-of-RIB marker comes only when promised, once per family,
/// when the peer holds that family's whole table.
fn deliver(
    updates: &[Update],
    ctx: &UpdateContext,
    wanted: &BTreeMap<Prefix, RouteAttrs>,
    peer: &mut Peer,
) -> Result<(), TestCaseError> {
    let opts = CodecOptions { four_octet_as: ctx.four_octet_as };
    let mut markers = Vec::new();
    for update in updates {
        let bytes = encode_to_vec(&Message::Update(update.clone()), &opts).expect("encodes");
        prop_assert!(bytes.len() <= MAX_MESSAGE_LEN);
        let Ok(Some((Message::Update(got), used))) = decode(&bytes, &opts) else {
            return Err(TestCaseError::fail(format!("does not decode: {update:?}")));
        };
        prop_assert_eq!(used, bytes.len());
        if let Some(afi) = end_of_rib(&got) {
            prop_assert!(ctx.end_of_rib, "a marker without graceful restart advertised");
            let count = peer.end_of_rib.entry(afi).or_default();
            *count += 1;
            prop_assert_eq!(*count, 1, "one marker per family and session");
            markers.push(afi);
            continue;
        }
        let peer = &mut peer.table;
        let a = &got.attributes;
        for p in got.withdrawn.iter().chain(a.mp_unreach.iter().flat_map(|m| &m.withdrawn)) {
            peer.remove(p);
        }
        let announced: Vec<Prefix> = got.nlri.iter().chain(a.mp_reach.iter().flat_map(|m| &m.nlri)).copied().collect();
        if announced.is_empty() {
            continue;
        }
        prop_assert_eq!(a.origin, Origin::Igp);
        let as_path = if ctx.ibgp { vec![] } else { vec![AsSegment::Sequence(vec![ctx.local_asn])] };
        prop_assert_eq!(&a.as_path, &as_path);
        prop_assert_eq!(a.local_pref.is_some(), ctx.ibgp, "LOCAL_PREF for iBGP only");
        if !got.nlri.is_empty() {
            prop_assert_eq!(a.next_hop, Some(NH4));
        }
        if let Some(mp) = &a.mp_reach {
            prop_assert_eq!(&mp.next_hops, &vec![IpAddr::V6(NH6)]);
        }
        let held = RouteAttrs {
            local_pref: a.local_pref,
            communities: a.communities.clone(),
            large_communities: a.large_communities.clone(),
        };
        for p in announced {
            peer.insert(p, held.clone());
        }
    }
    // Markers come last in a batch: by then the peer holds all of the family.
    let whole = expected(wanted, ctx);
    for afi in markers {
        let of = |t: &PeerTable| t.iter().filter(|(p, _)| p.afi() == afi).map(|(p, a)| (*p, a.clone())).collect();
        let (held, want): (PeerTable, PeerTable) = (of(&peer.table), of(&whole));
        prop_assert_eq!(held, want, "End-of-RIB before the table of {:?}", afi);
    }
    Ok(())
}

/// What the peer should hold for `wanted`: normalized attributes, LOCAL_PREF filled in for iBGP only.
fn expected(wanted: &BTreeMap<Prefix, RouteAttrs>, ctx: &UpdateContext) -> PeerTable {
    wanted
        .iter()
        .map(|(p, a)| {
            let mut a = a.clone().normalized();
            a.local_pref = ctx.ibgp.then(|| a.local_pref.unwrap_or(DEFAULT_LOCAL_PREF));
            (*p, a)
        })
        .collect()
}

fn drain(rib: &mut AdjRibOut, ctx: &UpdateContext, peer: &mut Peer) -> Result<usize, TestCaseError> {
    let mut count = 0;
    loop {
        let updates = rib.next_updates(ctx, 8);
        deliver(&updates, ctx, rib.wanted(), peer)?;
        count += updates.len();
        if updates.len() < 8 {
            prop_assert!(!rib.has_pending(ctx));
            return Ok(count);
        }
    }
}

/// IPv6 prefixes of any length and address: UPDATEs filled with them end at every possible octet count.
fn any_v6_prefix() -> impl Strategy<Value = Prefix> {
    (any::<u128>(), 0u8..=128).prop_map(|(a, len)| Prefix::new(IpAddr::V6(Ipv6Addr::from(a)), len).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn updates_of_prefixes_of_every_length_fit(
        ctx in context(),
        routes in prop::collection::btree_map(any_v6_prefix(), Just(RouteAttrs::default()), 200..700),
    ) {
        let mut rib = AdjRibOut::new();
        let mut peer = Peer::default();
        rib.set_wanted(routes.clone());
        drain(&mut rib, &ctx, &mut peer)?;
        rib.set_wanted(BTreeMap::new());
        drain(&mut rib, &ctx, &mut peer)?;
        prop_assert!(peer.table.is_empty());
    }

    #[test]
    fn the_peer_ends_up_holding_exactly_what_is_wanted(
        ctx in context(),
        ops in prop::collection::vec(op(), 0..40),
    ) {
        let mut rib = AdjRibOut::new();
        let mut wanted: BTreeMap<Prefix, RouteAttrs> = BTreeMap::new();
        let mut peer = Peer::default();
        for op in ops {
            match op {
                Op::SetWanted(routes) => {
                    wanted = routes.clone();
                    rib.set_wanted(routes);
                }
                Op::Advertise(p, a) => {
                    wanted.insert(p, a.clone());
                    rib.advertise(p, a);
                }
                Op::Withdraw(p) => {
                    prop_assert_eq!(rib.withdraw(p), wanted.remove(&p).is_some());
                }
                Op::NewSession => {
                    rib.reset_sent();
                    peer = Peer::default();
                }
                Op::RouteRefresh(afi) => rib.resend(afi),
                Op::TakeBack(afi) => rib.take_back(afi),
                Op::Drain(n) => {
                    let updates = rib.next_updates(&ctx, n);
                    prop_assert!(updates.len() <= n);
                    deliver(&updates, &ctx, rib.wanted(), &mut peer)?;
                }
            }
            prop_assert_eq!(rib.wanted().len(), wanted.len());
        }
        drain(&mut rib, &ctx, &mut peer)?;
        prop_assert_eq!(&peer.table, &expected(&wanted, &ctx));
        prop_assert_eq!(rib.sent_count(), wanted.len());
        prop_assert_eq!(rib.pending_count(), 0);
        let markers = if ctx.end_of_rib { BTreeMap::from([(Afi::Ipv4, 1), (Afi::Ipv6, 1)]) } else { BTreeMap::new() };
        prop_assert_eq!(peer.end_of_rib, markers, "each family's marker, once, in the session");
    }

    #[test]
    fn a_change_of_one_prefix_is_one_update_for_it_alone(
        ctx in context(),
        routes in prop::collection::btree_map(prefix(), attrs(), 1..300),
        pick in any::<prop::sample::Index>(),
        new in attrs(),
    ) {
        let mut rib = AdjRibOut::new();
        let mut peer = Peer::default();
        rib.set_wanted(routes.clone());
        drain(&mut rib, &ctx, &mut peer)?;
        let (p, old) = routes.iter().nth(pick.index(routes.len())).unwrap();
        prop_assume!(new.clone().normalized() != old.clone().normalized());
        rib.advertise(*p, new);
        let updates = rib.next_updates(&ctx, usize::MAX);
        prop_assert_eq!(updates.len(), 1);
        let u = &updates[0];
        let announced: Vec<Prefix> =
            u.nlri.iter().chain(u.attributes.mp_reach.iter().flat_map(|m| &m.nlri)).copied().collect();
        prop_assert_eq!(announced, vec![*p]);
        prop_assert!(u.withdrawn.is_empty() && u.attributes.mp_unreach.is_none());
    }
}
