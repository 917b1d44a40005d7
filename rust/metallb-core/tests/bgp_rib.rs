//! Adj-RIB-Out, case by case: the UPDATEs it builds for iBGP and eBGP, IPv4 and IPv6, how it groups and
//! splits them, what it cannot send and why, and what a new session or a ROUTE-REFRESH sends again.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use metallb_core::bgp::codec::{encode_to_vec, encoded_len, CodecOptions, MAX_MESSAGE_LEN};
use metallb_core::bgp::fsm::{Action, Event, PeerAsn, Session, SessionConfig};
use metallb_core::bgp::rib::{AdjRibOut, RouteAttrs, Unsendable, UpdateContext, DEFAULT_LOCAL_PREF};
use metallb_core::bgp::{
    Afi, AsSegment, Capability, GracefulRestart, Message, MpReach, MpUnreach, Open, Origin, PathAttributes, Prefix,
    Safi, Update,
};

const LOCAL_ASN: u32 = 64512;
const NH4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const NH6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 10);
const V4: (Afi, Safi) = (Afi::Ipv4, Safi::Unicast);
const V6: (Afi, Safi) = (Afi::Ipv6, Safi::Unicast);

fn ctx(ibgp: bool) -> UpdateContext {
    UpdateContext {
        local_asn: LOCAL_ASN,
        ibgp,
        next_hop_v4: Some(NH4),
        next_hop_v6: Some(NH6),
        families: vec![V4, V6],
        four_octet_as: true,
        end_of_rib: false,
    }
}

fn v4(last: u8) -> Prefix {
    Prefix::host(IpAddr::V4(Ipv4Addr::new(198, 51, 100, last)))
}

fn v4_n(n: u32) -> Prefix {
    Prefix::host(IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(203, 0, 113, 0)) + n)))
}

fn v6(last: u16) -> Prefix {
    Prefix::host(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, last)))
}

fn attrs(local_pref: Option<u32>, communities: &[u32]) -> RouteAttrs {
    RouteAttrs { local_pref, communities: communities.to_vec(), large_communities: Vec::new() }
}

fn ebgp_attributes(communities: &[u32]) -> PathAttributes {
    PathAttributes {
        origin: Origin::Igp,
        as_path: vec![AsSegment::Sequence(vec![LOCAL_ASN])],
        next_hop: Some(NH4),
        communities: communities.to_vec(),
        ..PathAttributes::default()
    }
}

fn encoded(update: &Update, ctx: &UpdateContext) -> Vec<u8> {
    let opts = CodecOptions { four_octet_as: ctx.four_octet_as };
    encode_to_vec(&Message::Update(update.clone()), &opts).expect("every UPDATE the RIB builds encodes")
}

#[test]
fn an_ebgp_ipv4_route_carries_origin_our_as_next_hop_and_communities_but_no_local_pref() {
    let mut rib = AdjRibOut::new();
    rib.advertise(v4(1), attrs(Some(300), &[0xfde8_0002, 0xfde8_0001, 0xfde8_0002]));
    let updates = rib.next_updates(&ctx(false), 10);
    let expected =
        Update { withdrawn: vec![], attributes: ebgp_attributes(&[0xfde8_0001, 0xfde8_0002]), nlri: vec![v4(1)] };
    assert_eq!(updates, vec![expected]);
    assert_eq!(rib.sent_count(), 1);
    assert!(!rib.has_pending(&ctx(false)));
}

#[test]
fn an_ibgp_route_has_an_empty_as_path_and_local_pref_100_unless_set() {
    let mut rib = AdjRibOut::new();
    rib.advertise(v4(1), attrs(None, &[]));
    rib.advertise(v4(2), attrs(Some(250), &[]));
    let updates = rib.next_updates(&ctx(true), 10);
    let lp_of = |u: &Update| (u.nlri.clone(), u.attributes.local_pref, u.attributes.as_path.clone());
    let got: Vec<_> = updates.iter().map(lp_of).collect();
    assert_eq!(got, vec![(vec![v4(1)], Some(DEFAULT_LOCAL_PREF), vec![]), (vec![v4(2)], Some(250), vec![])]);
    assert_eq!(DEFAULT_LOCAL_PREF, 100);
}

#[test]
fn ipv6_routes_go_in_mp_reach_with_the_ipv6_next_hop() {
    let mut rib = AdjRibOut::new();
    let large = RouteAttrs { large_communities: vec![(64512, 2, 1), (64512, 1, 1)], ..RouteAttrs::default() };
    rib.advertise(v6(1), large);
    let updates = rib.next_updates(&ctx(false), 10);
    let expected = Update {
        withdrawn: vec![],
        attributes: PathAttributes {
            origin: Origin::Igp,
            as_path: vec![AsSegment::Sequence(vec![LOCAL_ASN])],
            next_hop: None,
            large_communities: vec![(64512, 1, 1), (64512, 2, 1)],
            mp_reach: Some(MpReach {
                afi: Afi::Ipv6,
                safi: Safi::Unicast,
                next_hops: vec![IpAddr::V6(NH6)],
                nlri: vec![v6(1)],
            }),
            ..PathAttributes::default()
        },
        nlri: vec![],
    };
    assert_eq!(updates, vec![expected]);
}

#[test]
fn withdrawals_come_first_and_both_families_share_one_update() {
    let mut rib = AdjRibOut::new();
    for p in [v4(1), v4(2), v6(1)] {
        rib.advertise(p, RouteAttrs::default());
    }
    rib.next_updates(&ctx(false), 10);
    assert!(rib.withdraw(v4(1)));
    assert!(rib.withdraw(v6(1)));
    rib.advertise(v4(3), RouteAttrs::default());
    let updates = rib.next_updates(&ctx(false), 10);
    let withdrawal = Update {
        withdrawn: vec![v4(1)],
        attributes: PathAttributes {
            mp_unreach: Some(MpUnreach { afi: Afi::Ipv6, safi: Safi::Unicast, withdrawn: vec![v6(1)] }),
            ..PathAttributes::default()
        },
        nlri: vec![],
    };
    let announcement = Update { withdrawn: vec![], attributes: ebgp_attributes(&[]), nlri: vec![v4(3)] };
    assert_eq!(updates, vec![withdrawal, announcement]);
    assert_eq!(rib.sent().keys().copied().collect::<Vec<_>>(), vec![v4(2), v4(3)]);
}

#[test]
fn prefixes_with_the_same_attributes_share_updates() {
    let mut rib = AdjRibOut::new();
    let gold = attrs(None, &[1]);
    let silver = attrs(None, &[2]);
    for (p, a) in [(v4(1), &gold), (v4(2), &silver), (v4(3), &gold), (v4(4), &silver), (v4(5), &gold)] {
        rib.advertise(p, a.clone());
    }
    let updates = rib.next_updates(&ctx(false), 10);
    let got: Vec<_> = updates.iter().map(|u| (u.attributes.communities.clone(), u.nlri.clone())).collect();
    assert_eq!(got, vec![(vec![1], vec![v4(1), v4(3), v4(5)]), (vec![2], vec![v4(2), v4(4)])]);
}

/// Every UPDATE fits 4096 octets, and every one but the last of a run could not take one more prefix.
fn assert_full(updates: &[Update], ctx: &UpdateContext, widest: usize, slack: usize) {
    let opts = CodecOptions { four_octet_as: ctx.four_octet_as };
    for (i, u) in updates.iter().enumerate() {
        let len = encoded(u, ctx).len();
        assert!(len <= MAX_MESSAGE_LEN, "UPDATE {i} is {len} octets");
        assert_eq!(len, encoded_len(&Message::Update(u.clone()), &opts));
        if i + 1 < updates.len() {
            assert!(len + widest + slack > MAX_MESSAGE_LEN, "UPDATE {i} ({len} octets) had room for more");
        }
    }
}

#[test]
fn many_prefixes_fill_updates_up_to_4096_octets() {
    let c = ctx(true);
    let mut rib = AdjRibOut::new();
    let wanted: BTreeMap<Prefix, RouteAttrs> = (0..2000).map(|n| (v4_n(n), attrs(None, &[7, 8]))).collect();
    rib.set_wanted(wanted.clone());
    let updates = rib.next_updates(&c, usize::MAX);
    assert!(updates.len() > 1);
    assert_full(&updates, &c, 5, 0);
    assert_eq!(updates.iter().map(|u| u.nlri.len()).sum::<usize>(), 2000);

    rib.set_wanted(BTreeMap::new());
    let withdrawals = rib.next_updates(&c, usize::MAX);
    assert_full(&withdrawals, &c, 5, 0);
    assert_eq!(withdrawals.iter().map(|u| u.withdrawn.len()).sum::<usize>(), 2000);
    assert_eq!(rib.sent_count(), 0);
}

#[test]
fn many_ipv6_prefixes_fill_mp_reach_updates() {
    let c = ctx(false);
    let mut rib = AdjRibOut::new();
    for n in 0..1000 {
        rib.advertise(v6(n), RouteAttrs::default());
    }
    let updates = rib.next_updates(&c, usize::MAX);
    // One octet of slack: the MP attribute's length field may grow to two octets.
    assert_full(&updates, &c, 17, 1);
    assert_eq!(updates.iter().map(|u| u.attributes.mp_reach.as_ref().unwrap().nlri.len()).sum::<usize>(), 1000);
}

#[test]
fn a_changed_attribute_sends_one_update_for_that_prefix_only() {
    let c = ctx(true);
    let mut rib = AdjRibOut::new();
    for n in 0..100 {
        rib.advertise(v4_n(n), attrs(None, &[1]));
    }
    rib.next_updates(&c, usize::MAX);
    rib.advertise(v4_n(42), attrs(None, &[1, 2]));
    let updates = rib.next_updates(&c, usize::MAX);
    assert_eq!(updates.len(), 1);
    assert_eq!((updates[0].withdrawn.clone(), updates[0].nlri.clone()), (vec![], vec![v4_n(42)]));
    assert_eq!(updates[0].attributes.communities, vec![1, 2]);
}

#[test]
fn unchanged_attributes_send_nothing_and_equal_sets_are_equal_in_any_order() {
    let c = ctx(false);
    let mut rib = AdjRibOut::new();
    rib.advertise(v4(1), attrs(None, &[3, 1]));
    rib.next_updates(&c, 10);
    rib.advertise(v4(1), attrs(None, &[1, 3, 3]));
    assert!(!rib.has_pending(&c));
    assert_eq!(rib.next_updates(&c, 10), vec![]);
    // Changed and changed back before anything was sent: nothing to send either.
    rib.advertise(v4(1), attrs(None, &[9]));
    rib.advertise(v4(1), attrs(None, &[1, 3]));
    assert_eq!(rib.next_updates(&c, 10), vec![]);
}

#[test]
fn withdrawing_what_was_never_sent_sends_nothing() {
    let c = ctx(false);
    let mut rib = AdjRibOut::new();
    assert!(!rib.withdraw(v4(1)), "not wanted");
    rib.advertise(v4(1), RouteAttrs::default());
    assert!(rib.withdraw(v4(1)));
    assert_eq!(rib.next_updates(&c, 10), vec![]);
    assert_eq!(rib.pending_count(), 0);
}

#[test]
fn at_most_max_messages_and_the_rest_later() {
    let c = ctx(false);
    let mut rib = AdjRibOut::new();
    for n in 0..5 {
        rib.advertise(v4_n(n), attrs(None, &[n]));
    }
    assert_eq!(rib.next_updates(&c, 2).len(), 2);
    assert!(rib.has_pending(&c));
    assert_eq!(rib.next_updates(&c, 0), vec![]);
    assert_eq!(rib.next_updates(&c, 10).len(), 3);
    assert!(!rib.has_pending(&c));
}

#[test]
fn what_cannot_be_sent_stays_pending_with_its_reason() {
    let mut rib = AdjRibOut::new();
    rib.advertise(v4(1), RouteAttrs::default());
    rib.advertise(v6(1), RouteAttrs::default());
    let too_many: Vec<u32> = (0..1100).collect();
    rib.advertise(v4(2), attrs(None, &too_many));

    let v4_only = UpdateContext { families: vec![V4], ..ctx(false) };
    assert_eq!(
        rib.unsendable(&v4_only),
        vec![(v4(2), Unsendable::AttributesTooLarge), (v6(1), Unsendable::FamilyNotNegotiated)]
    );
    let no_v6_hop = UpdateContext { next_hop_v6: None, ..ctx(false) };
    assert_eq!(
        rib.unsendable(&no_v6_hop),
        vec![(v4(2), Unsendable::AttributesTooLarge), (v6(1), Unsendable::NoNextHop)]
    );

    let updates = rib.next_updates(&no_v6_hop, 10);
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].nlri, vec![v4(1)]);
    assert!(!rib.has_pending(&no_v6_hop), "only unsendable prefixes are left");
    assert_eq!(rib.next_updates(&no_v6_hop, 10), vec![]);
    assert_eq!(rib.pending_count(), 2);
    // With the next hop configured (on a new session), the IPv6 route goes out.
    rib.reset_sent();
    let updates = rib.next_updates(&ctx(false), 10);
    assert_eq!(updates.len(), 2, "{updates:?}");
}

#[test]
fn a_new_session_sends_everything_again() {
    let c = ctx(false);
    let mut rib = AdjRibOut::new();
    rib.advertise(v4(1), RouteAttrs::default());
    rib.advertise(v4(2), RouteAttrs::default());
    rib.next_updates(&c, 10);
    rib.withdraw(v4(2));
    rib.reset_sent();
    assert_eq!(rib.sent_count(), 0);
    let updates = rib.next_updates(&c, 10);
    assert_eq!(updates, vec![Update { withdrawn: vec![], attributes: ebgp_attributes(&[]), nlri: vec![v4(1)] }]);
}

#[test]
fn a_route_refresh_resends_one_family_and_keeps_withdrawals() {
    let c = ctx(false);
    let mut rib = AdjRibOut::new();
    for p in [v4(1), v4(2), v6(1)] {
        rib.advertise(p, RouteAttrs::default());
    }
    rib.next_updates(&c, 10);
    rib.withdraw(v4(2));
    rib.resend(Afi::Ipv4);
    let updates = rib.next_updates(&c, 10);
    let got: Vec<_> = updates.iter().map(|u| (u.withdrawn.clone(), u.nlri.clone())).collect();
    assert_eq!(got, vec![(vec![v4(2)], vec![]), (vec![], vec![v4(1)])]);
    // A prefix asked for again and then withdrawn is withdrawn, not forgotten.
    rib.resend(Afi::Ipv6);
    rib.withdraw(v6(1));
    let updates = rib.next_updates(&c, 10);
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].attributes.mp_unreach.as_ref().map(|m| m.withdrawn.clone()), Some(vec![v6(1)]));
    assert_eq!(rib.sent_count(), 1);
}

#[test]
fn a_two_octet_peer_gets_updates_that_still_fit() {
    let c = UpdateContext { local_asn: 4_200_000_000, four_octet_as: false, ..ctx(false) };
    let mut rib = AdjRibOut::new();
    for n in 0..1500 {
        rib.advertise(v4_n(n), attrs(None, &[5]));
    }
    let updates = rib.next_updates(&c, usize::MAX);
    assert_full(&updates, &c, 5, 0);
}

/// The prefixes `updates` announce, both families, sorted.
fn announced(updates: &[Update]) -> Vec<Prefix> {
    let mut out: Vec<Prefix> = updates
        .iter()
        .flat_map(|u| u.nlri.iter().chain(u.attributes.mp_reach.iter().flat_map(|m| &m.nlri)))
        .copied()
        .collect();
    out.sort();
    out
}

/// The context of a session established by the state machine, with or without graceful restart in our OPEN.
fn established_context(graceful_restart: bool) -> UpdateContext {
    let now = Instant::now();
    let mut cfg = SessionConfig::new(LOCAL_ASN, PeerAsn::Fixed(64513), Ipv4Addr::new(192, 0, 2, 1));
    cfg.graceful_restart =
        graceful_restart.then(|| GracefulRestart { restarting: false, restart_time: 120, families: vec![] });
    let mut session = Session::new(cfg, now).unwrap();
    session.handle(Event::Start, now);
    session.handle(Event::TcpConnected, now);
    let open = Open {
        asn: 64513,
        hold_time: 90,
        router_id: Ipv4Addr::new(192, 0, 2, 254),
        capabilities: vec![
            Capability::Multiprotocol(Afi::Ipv4, Safi::Unicast),
            Capability::Multiprotocol(Afi::Ipv6, Safi::Unicast),
            Capability::FourOctetAs(64513),
        ],
    };
    session.handle(Event::Received(Message::Open(open)), now);
    let actions = session.handle(Event::Received(Message::Keepalive), now);
    let Some(Action::Up(negotiated)) = actions.into_iter().next() else { panic!("established") };
    UpdateContext::new(LOCAL_ASN, &negotiated, Some(NH4), Some(NH6))
}

#[test]
fn a_session_that_advertised_graceful_restart_ends_each_initial_table_with_end_of_rib() {
    // RFC 4724 3: the capability announces that End-of-RIB markers will follow each family's initial table.
    let c = established_context(true);
    let mut rib = AdjRibOut::new();
    rib.advertise(v4(1), RouteAttrs::default());
    rib.advertise(v4(2), attrs(None, &[7]));
    rib.reset_sent();
    let updates = rib.next_updates(&c, 10);
    assert_eq!(updates.len(), 4, "two announcements and two markers: {updates:?}");
    let marker = |afi| updates.iter().position(|u| *u == Update::end_of_rib(afi)).expect("a marker");
    let last_announcement = updates.iter().rposition(|u| !u.nlri.is_empty()).unwrap();
    assert!(marker(Afi::Ipv4) > last_announcement, "IPv4's marker follows its table");
    marker(Afi::Ipv6); // nothing of IPv6 to send: its initial table is empty, and that is said too
    assert!(!rib.has_pending(&c));

    // Once per session: later changes are plain UPDATEs.
    rib.advertise(v4(3), RouteAttrs::default());
    assert_eq!(announced(&rib.next_updates(&c, 10)), vec![v4(3)]);
    assert_eq!(rib.next_updates(&c, 10), vec![]);
    // A new session, even with nothing to send, ends its (empty) table with the markers again.
    rib.set_wanted(BTreeMap::new());
    rib.reset_sent();
    let updates = rib.next_updates(&c, 10);
    assert_eq!(updates.len(), 2);
    assert!(updates.contains(&Update::end_of_rib(Afi::Ipv4)) && updates.contains(&Update::end_of_rib(Afi::Ipv6)));
}

#[test]
fn end_of_rib_waits_for_the_whole_table_and_counts_in_max_messages() {
    let c = established_context(true);
    let mut rib = AdjRibOut::new();
    for n in 0..1500 {
        rib.advertise(v4_n(n), RouteAttrs::default());
    }
    rib.reset_sent();
    let mut seen = Vec::new();
    loop {
        let updates = rib.next_updates(&c, 1);
        if updates.is_empty() {
            break;
        }
        assert_eq!(updates.len(), 1);
        seen.extend(updates);
    }
    let markers: Vec<usize> = (0..seen.len()).filter(|&i| seen[i].nlri.is_empty()).collect();
    assert_eq!(markers, vec![seen.len() - 2, seen.len() - 1], "both markers after every announcement");
    assert_eq!(seen.iter().map(|u| u.nlri.len()).sum::<usize>(), 1500);
}

#[test]
fn end_of_rib_only_for_negotiated_families_and_after_what_can_be_sent() {
    // IPv6 not negotiated: no marker for it. IPv4 with no next hop: what cannot be sent stays pending (and
    // is reported), the initial table is complete as far as it goes, so its marker goes out.
    let mut c = established_context(true);
    c.families = vec![(Afi::Ipv4, Safi::Unicast)];
    c.next_hop_v4 = None;
    let mut rib = AdjRibOut::new();
    rib.advertise(v4(1), RouteAttrs::default());
    rib.reset_sent();
    assert_eq!(rib.next_updates(&c, 10), vec![Update::end_of_rib(Afi::Ipv4)]);
    assert_eq!(rib.unsendable(&c), vec![(v4(1), Unsendable::NoNextHop)]);
    assert!(!rib.has_pending(&c));
}

#[test]
fn without_graceful_restart_no_end_of_rib_is_sent() {
    let c = established_context(false);
    let mut rib = AdjRibOut::new();
    rib.reset_sent();
    assert!(!rib.has_pending(&c));
    assert_eq!(rib.next_updates(&c, 10), vec![]);
    rib.advertise(v4(1), RouteAttrs::default());
    let updates = rib.next_updates(&c, 10);
    assert_eq!(announced(&updates), vec![v4(1)]);
    assert_eq!(updates.len(), 1);
}

#[test]
fn routes_whose_next_hop_is_gone_are_withdrawn_and_wait_for_one() {
    let c = ctx(false);
    let mut rib = AdjRibOut::new();
    rib.advertise(v6(1), RouteAttrs::default());
    rib.advertise(v6(2), RouteAttrs::default());
    rib.advertise(v4(1), RouteAttrs::default());
    rib.next_updates(&c, 10);
    rib.withdraw(v6(2)); // a withdrawal pending when the next hop goes

    let no_hop = UpdateContext { next_hop_v6: None, ..ctx(false) };
    rib.take_back(Afi::Ipv6);
    let updates = rib.next_updates(&no_hop, 10);
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].attributes.mp_unreach.as_ref().unwrap().withdrawn, vec![v6(1), v6(2)]);
    assert_eq!(rib.sent_count(), 1, "the IPv4 route is untouched");
    assert_eq!(rib.unsendable(&no_hop), vec![(v6(1), Unsendable::NoNextHop)]);
    assert_eq!(rib.wanted().len(), 2);

    // A next hop again: the route goes out again, nothing else.
    rib.resend(Afi::Ipv6);
    assert_eq!(announced(&rib.next_updates(&c, 10)), vec![v6(1)]);
    assert_eq!(rib.pending_count(), 0);
}
